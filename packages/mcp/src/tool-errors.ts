/**
 * Refusals a model can act on, as tool results: `isError: true`, a text block
 * with the error as JSON (`{ error: { code, message, hint, … } }`), and the
 * same object under `_meta["dev.outcome-runtime/error"]`.
 *
 * Why not `structuredContent`: a tool with an output schema must return
 * structured content that matches it, and the SDK's `Client.callTool`
 * validates `structuredContent` against the output schema even on an error
 * result, so an `{ error }` payload would turn every refusal into a client-side
 * exception. Without `structuredContent`, clients (Claude Code among them) hand
 * the text to the model, and the text says what to do next.
 *
 * Protocol errors (JSON-RPC errors) are left for protocol faults: an unknown
 * tool, a malformed request.
 */
import type { DomainError, ErrorCode } from "@outcome-runtime/runtime";

/** `_meta` key of the structured error on an error result (reverse-DNS prefix, as the spec asks). */
export const ERROR_META_KEY = "dev.outcome-runtime/error";

export interface ToolError {
  readonly code: ErrorCode;
  readonly message: string;
  /** What the agent should do next. */
  readonly hint: string;
  /** Extra facts an agent can use (e.g. the forbidden `paths`, the `claimedBy` holder, a pending `gateId`). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The result shape the tools return (a subset of the SDK's CallToolResult). */
export interface ToolResult {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  _meta?: Record<string, unknown>;
}

/** The error result of a refusal. */
export function errorResult(error: ToolError): ToolResult {
  const body = {
    code: error.code,
    message: error.message,
    hint: error.hint,
    ...(error.details && Object.keys(error.details).length > 0 ? { details: error.details } : {}),
  };
  return {
    content: [{ type: "text", text: JSON.stringify({ error: body }) }],
    isError: true,
    _meta: { [ERROR_META_KEY]: body },
  };
}

/** What to do after each refusal, per tool where it differs. */
function hintFor(tool: string, error: DomainError): string {
  const d = error.details as Record<string, unknown>;
  switch (error.code) {
    case "not_found":
      return tool === "get_gate_status"
        ? "Check the gate id: it is the gate.id returned by request_human_gate or report_experiment_built, or listed by get_experiment_status."
        : tool === "query_learnings"
          ? "Check the outcome: pass an id or slug from get_active_outcomes, or leave outcome out to search every outcome."
          : "Check the experiment: pass its id (a UUID) or key as shown by get_active_outcomes, get_experiment_brief or the dashboard.";
    case "illegal_transition":
      return tool === "claim_experiment"
        ? "Only an approved experiment can be claimed. Call get_experiment_status to see its state; pick another approved experiment from get_active_outcomes."
        : tool === "report_experiment_built"
          ? "Only an experiment in state building (claimed by you) can be reported built. Call get_experiment_status: claim it first if it is approved; if it is built, wait for the launch gate."
          : "Call get_experiment_status to see the experiment's state and what it allows now.";
    case "already_claimed":
      return `Do not build it: ${String(d.claimedBy ?? "another builder")} is building it. Pick another approved experiment (get_active_outcomes), or ask a person to have it released.`;
    case "claim_required":
      return "Claim it first with claim_experiment and an agent name.";
    case "not_claimant":
      return `Report it with the agent_name that claimed it (${String(d.claimedBy ?? "the claimant")}), or leave it to that builder.`;
    case "forbidden_paths_touched": {
      const paths = Array.isArray(d.paths) ? (d.paths as unknown[]).map(String) : [];
      return `Nothing was recorded. Move or revert the changes to ${paths.join(", ")} (the outcome forbids them; see forbiddenPaths in get_experiment_brief), then call report_experiment_built again with the new changed_paths.`;
    }
    case "question_pending":
      return `A person has not answered the earlier question yet. Poll it with get_gate_status (gate ${String(d.gateId ?? "")}) and ask again once it is decided.`;
    case "outcome_closed":
    case "outcome_not_active":
      return "The outcome is closed; nothing more happens on it. Call get_active_outcomes for open work.";
    case "validation_failed":
      return "Fix the arguments as the message says and call the tool again.";
    case "agents_cannot_decide":
    case "gate_not_assignee":
      return "A person decides gates. Ask with request_human_gate and poll get_gate_status for the answer.";
    case "forbidden":
      return "This API key may not do this; ask a person with an admin key.";
    case "conflict":
    case "service_unavailable":
      return "A temporary problem: call the tool again in a few seconds.";
    default:
      return "Read the message; call get_experiment_status to see where things stand.";
  }
}

/** The refusal of a DomainError thrown by a use case. */
export function fromDomainError(tool: string, error: DomainError): ToolError {
  return { code: error.code, message: error.message, hint: hintFor(tool, error), details: error.details };
}

/** A tool's arguments did not match its input schema. */
export function invalidArguments(issues: readonly { path: readonly PropertyKey[]; message: string }[]): ToolError {
  const errors = issues.map((i) => ({ field: i.path.map(String).join(".") || "(arguments)", message: i.message }));
  return {
    code: "validation_failed",
    message: `invalid arguments: ${errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`,
    hint: "Fix the arguments as the message says (see the tool's input schema) and call the tool again.",
    details: { errors },
  };
}

/** Anything else: no server internals reach the agent. */
export function internalError(): ToolError {
  return {
    code: "internal_error",
    message: "the server failed to handle this call",
    hint: "Try again in a little while; if it keeps failing, tell a person (the server logged it).",
  };
}
