/**
 * The MCP server of Outcome Runtime: the tools, the resources and the prompt,
 * for one authenticated caller. Side-effect free to create; the Streamable
 * HTTP route creates one per request (stateless), tests connect one to an
 * in-memory client.
 */
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { CallToolRequestSchema, McpError, ErrorCode as RpcErrorCode } from "@modelcontextprotocol/sdk/types.js";
import {
  activeOutcomes,
  type Caller,
  DomainError,
  databaseError,
  experimentBrief,
  getOutcome,
  listExperimentsOfOutcome,
  outcomeJson,
  outcomeProgress,
  type RuntimeDeps,
  recordToolCall,
  refusalOf,
  renderBriefMarkdown,
} from "@outcome-runtime/runtime";
import { z } from "zod";
import { briefResource, type Links, outcomeResource } from "./shapes";
import {
  errorResult,
  fromDomainError,
  internalError,
  invalidArguments,
  type ToolError,
  type ToolResult,
} from "./tool-errors";
import { TOOLS, type ToolContext, type ToolDefinition } from "./tools";

/** Name and version the server announces in `initialize`. */
const SERVER_INFO = { name: "outcome-runtime", version: "0.1.0" } as const;

/** What the server tells a model about itself in `initialize`. */
const SERVER_INSTRUCTIONS = [
  "Outcome Runtime turns declared outcomes (a metric target) into experiments that people approve at gates.",
  "Workflow for a coding agent: get_active_outcomes to find approved experiments; get_experiment_brief (or the experiment://{id}/brief resource) to read one;",
  "claim_experiment before building; build inside the allowed paths, behind the flag named by the experiment key; report_experiment_built with the changed paths;",
  "then wait for a person to approve the launch gate (get_experiment_status). Ask people with request_human_gate and read answers with get_gate_status; neither blocks.",
  "Refusals come back as tool errors with a code and a hint saying what to do next.",
].join(" ");

export interface McpServerContext {
  readonly deps: RuntimeDeps;
  /** The authenticated caller (an API key's principal); tool calls run with channel `mcp`. */
  readonly caller: Caller;
  /** Public base URL of the service, for dashboard links (no trailing slash). */
  readonly publicUrl: string;
  /** Told about failures that are not refusals (a bug, the database down), for the logs. */
  readonly onError?: (error: unknown, message: string) => void;
}

/** The tools/call handler: validate, run, audit, answer. */
async function callTool(
  context: ToolContext,
  report: McpServerContext["onError"],
  definition: ToolDefinition,
  rawArgs: Record<string, unknown>,
): Promise<ToolResult> {
  const audit = async (result: "ok" | "error", subject: string | null, code?: string) => {
    try {
      await recordToolCall(context.deps, context.caller, {
        tool: definition.name,
        arguments: rawArgs,
        result,
        code: code ?? null,
        subject,
      });
    } catch (error) {
      // The call's own effect is committed (or refused) already; a lost audit row is logged, not fatal to the answer.
      report?.(error, `audit of MCP tool call ${definition.name} failed`);
    }
  };
  const refuse = async (error: ToolError, subject: string | null) => {
    await audit("error", subject, error.code);
    return errorResult(error);
  };

  // Who may run the tool, from the permissions table, before the arguments are read (the use case asks again).
  const refusal = refusalOf(context.caller.principal, definition.operation);
  if (refusal !== null) return refuse(fromDomainError(definition.name, refusal), definition.subjectOf(rawArgs));
  const parsed = await definition.input.safeParseAsync(rawArgs);
  if (!parsed.success) return refuse(invalidArguments(parsed.error.issues), definition.subjectOf(rawArgs));
  try {
    const outcome = await definition.run(context, parsed.data);
    const checked = definition.output.safeParse(outcome.structured);
    if (!checked.success) {
      // Our bug, not the agent's: never send a payload that breaks the published schema.
      report?.(checked.error, `MCP tool ${definition.name} produced output outside its schema`);
      return refuse(internalError(), outcome.subject);
    }
    await audit("ok", outcome.subject);
    return {
      content: [{ type: "text", text: outcome.text }],
      structuredContent: checked.data as Record<string, unknown>,
    };
  } catch (error) {
    if (error instanceof DomainError) {
      return refuse(fromDomainError(definition.name, error), definition.subjectOf(rawArgs));
    }
    // A lost connection, a write conflict, a value Postgres refuses: the codes REST answers with.
    const fromDatabase = databaseError(error);
    if (fromDatabase !== null) {
      report?.(error, `MCP tool ${definition.name}: ${fromDatabase.message}`);
      return refuse(fromDomainError(definition.name, fromDatabase), definition.subjectOf(rawArgs));
    }
    report?.(error, `MCP tool ${definition.name} failed`);
    return refuse(internalError(), definition.subjectOf(rawArgs));
  }
}

/**
 * A failed resource read or listing as a JSON-RPC error: a DomainError keeps
 * its message, code and details (`not_found` as -32002, "resource not found";
 * a refusal names its `details.operation`); anything else is logged and
 * answered without server internals (a database error with its code,
 * `service_unavailable` or `conflict`, in the error's data).
 */
function resourceError(error: unknown, report: McpServerContext["onError"]): never {
  if (error instanceof DomainError) {
    throw new McpError(error.code === "not_found" ? -32002 : RpcErrorCode.InvalidParams, error.message, {
      code: error.code,
      ...(Object.keys(error.details).length > 0 ? { details: error.details } : {}),
    });
  }
  report?.(error, "MCP resource read failed");
  const fromDatabase = databaseError(error);
  if (fromDatabase !== null) {
    throw new McpError(RpcErrorCode.InternalError, fromDatabase.message, { code: fromDatabase.code });
  }
  throw new McpError(RpcErrorCode.InternalError, "the server failed to read the resource; try again shortly");
}

/**
 * Create the MCP server for one caller: the eight tools, the resources
 * `outcome://{id}` (JSON) and `experiment://{id}/brief` (Markdown), and the
 * prompt `build-experiment`. Every tool call is audited (`mcp.tool_called`,
 * with the digest of the arguments and the result or error code).
 *
 * Not connected: call `server.connect(transport)`.
 */
export function createMcpServer(context: McpServerContext): McpServer {
  const caller: Caller = { ...context.caller, channel: "mcp" };
  const links: Links = { publicUrl: context.publicUrl.replace(/\/+$/, "") };
  const toolContext: ToolContext = { deps: context.deps, caller, links };
  const server = new McpServer(SERVER_INFO, {
    capabilities: { tools: {}, resources: {}, prompts: {} },
    instructions: SERVER_INSTRUCTIONS,
  });

  const byName = new Map<string, ToolDefinition>();
  for (const definition of TOOLS) {
    byName.set(definition.name, definition);
    server.registerTool(
      definition.name,
      {
        title: definition.title,
        description: definition.description,
        inputSchema: definition.input,
        outputSchema: definition.output,
        annotations: { ...definition.annotations },
      },
      (args: Record<string, unknown>) => callTool(toolContext, context.onError, definition, args),
    );
  }
  // McpServer validates arguments before a tool's callback runs and answers a mismatch itself: unaudited
  // and without an error code. This handler replaces its tools/call (tools/list stays McpServer's, built
  // from the same definitions) so that every call, a malformed one too, is audited and refused alike.
  server.server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const definition = byName.get(request.params.name);
    if (definition === undefined) {
      throw new McpError(RpcErrorCode.InvalidParams, `unknown tool "${request.params.name}"; call tools/list`);
    }
    return callTool(toolContext, context.onError, definition, request.params.arguments ?? {});
  });

  server.registerResource(
    "outcome",
    new ResourceTemplate("outcome://{id}", {
      // The active outcomes (the first 50).
      list: async () => {
        try {
          const page = await activeOutcomes(context.deps, caller, { limit: 50 });
          return {
            resources: page.items.map((o) => ({
              uri: outcomeResource(o.id),
              name: o.slug,
              title: o.name,
              description: o.target,
              mimeType: "application/json",
            })),
          };
        } catch (error) {
          return resourceError(error, context.onError);
        }
      },
    }),
    {
      title: "Outcome",
      description:
        "One outcome as JSON: its state, the signal's progress toward the target, experiment counts by state, pending gates, and the validated outcome.yaml spec (signal, target, horizon, guardrails, kill threshold, allowed and forbidden paths).",
      mimeType: "application/json",
    },
    async (uri, variables) => {
      try {
        const detail = await getOutcome(context.deps, caller, String(variables.id));
        // A projection of the outcome's JSON (the REST API's): no hash or times of the record itself, with the
        // signal's progress and the counts an agent plans with.
        const o = outcomeJson(detail.outcome);
        const body = {
          id: o.id,
          slug: o.slug,
          name: o.name,
          owner: o.owner,
          state: o.state,
          revision: o.revision,
          activatedAt: o.activatedAt,
          closedAt: o.closedAt,
          progress: await outcomeProgress(context.deps, detail.outcome),
          experiments: detail.experimentCounts,
          pendingGates: detail.pendingGates,
          spec: o.spec,
        };
        return { contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify(body, null, 2) }] };
      } catch (error) {
        return resourceError(error, context.onError);
      }
    },
  );

  server.registerResource(
    "experiment-brief",
    new ResourceTemplate("experiment://{id}/brief", {
      // The briefs worth reading: experiments ready to claim or being built, in the active outcomes.
      list: async () => {
        try {
          const page = await activeOutcomes(context.deps, caller, { limit: 50 });
          const resources = [];
          for (const outcome of page.items) {
            let cursor: string | undefined;
            do {
              const experiments = await listExperimentsOfOutcome(context.deps, caller, outcome.id, {
                cursor,
                limit: 200,
              });
              for (const e of experiments.items) {
                if (e.state !== "approved" && e.state !== "building") continue;
                resources.push({
                  uri: briefResource(e.id),
                  name: e.key,
                  title: `Brief: ${e.title}`,
                  description: `${e.state} experiment of ${outcome.slug}`,
                  mimeType: "text/markdown",
                });
              }
              cursor = experiments.nextCursor ?? undefined;
            } while (cursor !== undefined);
          }
          return { resources };
        } catch (error) {
          return resourceError(error, context.onError);
        }
      },
    }),
    {
      title: "Experiment brief",
      description:
        "The brief of one experiment as Markdown: hypothesis, arms, assignment and exposure logging, plans, allowed and forbidden paths, acceptance checklist. {id} is the experiment's id or key.",
      mimeType: "text/markdown",
    },
    async (uri, variables) => {
      try {
        const brief = await experimentBrief(context.deps, caller, String(variables.id));
        return { contents: [{ uri: uri.href, mimeType: "text/markdown", text: renderBriefMarkdown(brief) }] };
      } catch (error) {
        return resourceError(error, context.onError);
      }
    },
  );

  server.registerPrompt(
    "build-experiment",
    {
      title: "Build an experiment",
      description: "The workflow for building one approved experiment, from its brief to the launch gate.",
      argsSchema: {
        experiment_id: z.string().min(1).max(100).describe("The experiment's id (a UUID) or key."),
      },
    },
    ({ experiment_id }) => ({
      description: `Build experiment ${experiment_id}`,
      messages: [{ role: "user", content: { type: "text", text: buildExperimentPrompt(experiment_id) } }],
    }),
  );

  return server;
}

/** The text of the `build-experiment` prompt. */
function buildExperimentPrompt(experimentId: string): string {
  return [
    `Build the experiment ${experimentId} with the Outcome Runtime tools, step by step:`,
    "",
    `1. Read its brief: the resource experiment://${experimentId}/brief (or the get_experiment_brief tool). Keep to its hypothesis, arms, assignment and exposure logging, and acceptance checklist.`,
    `2. Claim it with claim_experiment (experiment_id "${experimentId}"). If another agent holds it, stop and pick another approved experiment from get_active_outcomes.`,
    "3. Build the change inside the brief's allowed paths only, never in a forbidden path, behind the flag named by the experiment key, with control keeping today's behaviour. Open a pull request.",
    "4. Call report_experiment_built with a summary, every changed path, the pull request URL and the flag key. If it refuses forbidden paths, move those changes out and report again.",
    "5. A person now approves the launch gate. Check get_experiment_status every few minutes (not in a tight loop); do not launch anything yourself.",
    "If you need a person's decision at any point, ask with request_human_gate (it returns at once) and read the answer later with get_gate_status.",
  ].join("\n");
}
