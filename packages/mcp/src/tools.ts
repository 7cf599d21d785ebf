/**
 * The MCP tools: one definition each (name, description written for a model,
 * input and output schema, the four annotations, the operation of the
 * permissions table it runs, and a `run` that calls one use case and maps its
 * result). Read tools and write tools are separate.
 *
 * Annotations are all set explicitly because their defaults assume the worst
 * (destructive, open world). None is open-world: every tool talks only to this
 * service. None is destructive: the write tools only add records or move an
 * experiment forward along its lifecycle (claim → building, report → built),
 * never delete or overwrite anything, and nothing goes live without a person
 * approving the launch gate.
 */
import {
  activeOutcomes,
  type Caller,
  claimExperiment,
  type Experiment,
  experimentBrief,
  type Gate,
  getExperiment,
  getGate,
  type Operation,
  queryLearnings,
  type RuntimeDeps,
  requestHumanGate,
  sourceHealthJson,
  transitionExperiment,
} from "@outcome-runtime/runtime";
import { z } from "zod";
import {
  ActiveOutcomesOutput,
  activeOutcomesOut,
  analysisOut,
  BriefOutput,
  briefOut,
  briefResource,
  ClaimOutput,
  clip,
  experimentRef,
  experimentStatusRef,
  type GateOut,
  GateStatusOutput,
  gateOut,
  HumanGateOutput,
  LearningsOutput,
  type Links,
  learningsOut,
  ReportBuiltOutput,
  StatusOutput,
} from "./shapes";

/** What every tool runs with: the use cases' dependencies, the authenticated caller, the links' base. */
export interface ToolContext {
  readonly deps: RuntimeDeps;
  readonly caller: Caller;
  readonly links: Links;
}

/** The four behaviour hints, always all set (MCP's defaults assume destructive and open-world). */
interface ToolHints {
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: boolean;
}

/** What a tool's `run` returns: the structured payload, its short text rendering, and the audit subject. */
interface ToolOutcome<O> {
  readonly structured: O;
  readonly text: string;
  /** The experiment or gate id the call was about, for the audit event. */
  readonly subject: string | null;
}

export interface ToolDefinition<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly input: I;
  readonly output: O;
  readonly annotations: ToolHints;
  /** What the tool does in the permissions table: the dispatcher refuses a caller who may not, before reading the arguments. */
  readonly operation: Operation;
  /** The id the raw arguments name (for the audit of a refused call), or null. */
  readonly subjectOf: (args: Record<string, unknown>) => string | null;
  readonly run: (context: ToolContext, args: z.output<I>) => Promise<ToolOutcome<z.output<O>>>;
}

/** Defined with its types checked, stored without them (the dispatcher validates at run time). */
function tool<I extends z.ZodObject, O extends z.ZodObject>(definition: ToolDefinition<I, O>): ToolDefinition {
  return definition as unknown as ToolDefinition;
}

/** Learnings repeated in the text rendering (the structured result has them all). */
const TEXT_LEARNINGS = 3;

const READ: ToolHints = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

// ---------------------------------------------------------------------------
// Input fields

const experimentId = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .describe("The experiment's id (a UUID) or its key (e.g. `express-pay`).");
const gateId = z.string().trim().min(1).max(100).describe("The gate's id (a UUID).");
const agentName = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .describe(
    "Your agent name as the builder (default: the name of your API key). Use the same name to claim and report.",
  );

const argString = (args: Record<string, unknown>, key: string): string | null =>
  typeof args[key] === "string" ? (args[key] as string) : null;
const experimentSubject = (args: Record<string, unknown>) => argString(args, "experiment_id");

// ---------------------------------------------------------------------------
// Presentation helpers

function fmt(x: number | null, digits = 4): string {
  return x === null ? "n/a" : String(+x.toFixed(digits));
}

function gateLine(g: GateOut): string {
  const decided = g.decision
    ? `${g.decision.decision} by ${g.decision.decidedBy}${g.decision.reason ? ` ("${g.decision.reason}")` : ""}`
    : `waiting for ${g.assignees.join(" or ") || "its assignees"} until ${g.dueAt}`;
  return `gate ${g.id} (${g.kind}) ${g.status}: ${decided}`;
}

/** What an agent does next with an experiment in each state (presentation of the lifecycle, not a rule). */
function nextFor(e: Experiment): string {
  switch (e.state) {
    case "proposed":
      return "Wait: the hypothesis awaits its portfolio review by a person.";
    case "approved":
      return "Claim it with claim_experiment, then build it from the brief (get_experiment_brief).";
    case "building":
      return `Being built by ${e.claimedBy ?? "nobody"}. The builder calls report_experiment_built when the change is ready.`;
    case "built":
      return "Wait for a person to approve the launch gate; poll get_experiment_status every few minutes, not in a tight loop.";
    case "running":
      return "Traffic flows. Each signal poll adds an analysis; nothing to build. A stop (win, loss, futility) opens an analysis review for a person.";
    case "paused":
      return "Paused (kill-switch, guardrail harm or by hand). A person decides resume or roll back at the analysis review.";
    case "analysing":
      return "A person decides at the analysis review: ship, iterate, extend or roll back.";
    case "rejected":
      return "Rejected at review; do not build it.";
    default:
      return `Concluded (${e.state}). Its learning is searchable with query_learnings.`;
  }
}

// ---------------------------------------------------------------------------
// The tools

const getActiveOutcomes = tool({
  name: "get_active_outcomes",
  title: "Active outcomes",
  description:
    "List the active outcomes of this workspace: the metric each one moves (the signal), its target and horizon, the signal's current value against its goal, how many experiments are in each state (approved ones are ready to claim), and how many gates wait for a person. Use it first, to find work. Paginated: pass nextCursor back as cursor for more.",
  input: z.strictObject({
    cursor: z
      .string()
      .min(1)
      .max(500)
      .optional()
      .describe("nextCursor from the previous page; omit for the first page."),
    limit: z.number().int().min(1).max(20).default(10).describe("Outcomes per page, 1 to 20 (default 10)."),
  }),
  output: ActiveOutcomesOutput,
  annotations: READ,
  operation: "outcome.read",
  subjectOf: () => null,
  run: async ({ deps, caller }, args) => {
    const page = await activeOutcomes(deps, caller, { cursor: args.cursor, limit: args.limit });
    const structured = activeOutcomesOut(page);
    const lines = structured.outcomes.map((o) => {
      const counts = Object.entries(o.experiments)
        .map(([state, n]) => `${n} ${state}`)
        .join(", ");
      return `- ${o.slug}: ${o.metric} ${fmt(o.progress.current)} (goal ${fmt(o.progress.goal)}); experiments: ${counts || "none"}; ${o.pendingGates} pending gate(s)`;
    });
    const text = [
      `${structured.outcomes.length} active outcome(s)${structured.nextCursor ? " (more: pass nextCursor as cursor)" : ""}`,
      ...lines,
    ].join("\n");
    return { structured, text, subject: null };
  },
});

const getExperimentBrief = tool({
  name: "get_experiment_brief",
  title: "Experiment brief",
  description:
    "Everything needed to build one experiment: the hypothesis and mechanism, the arms and their weights, how assignment and exposure must be logged so the signal query sees them, the measurement and rollout plans, the allowed and forbidden paths, the acceptance checklist and the next step. Read it before claiming and keep to it while building. The same brief is the Markdown resource experiment://{id}/brief.",
  input: z.strictObject({ experiment_id: experimentId }),
  output: BriefOutput,
  annotations: READ,
  operation: "experiment.read",
  subjectOf: experimentSubject,
  run: async ({ deps, caller, links }, args) => {
    const brief = await experimentBrief(deps, caller, args.experiment_id);
    const structured = briefOut(links, brief);
    const text = `Brief of ${brief.experiment.key} (${brief.experiment.state}): ${brief.experiment.title}\nNext: ${brief.next}\nAs Markdown: ${structured.resource}`;
    return { structured, text, subject: brief.experiment.id };
  },
});

const claimExperimentTool = tool({
  name: "claim_experiment",
  title: "Claim an experiment",
  description:
    "Take an approved experiment to build it: it moves to building under your agent name, so no other agent builds it. Claiming again with the same agent name returns it unchanged. Refused when another agent holds it (the refusal names the holder) or when it is not approved. After claiming, build inside the brief's allowed paths and call report_experiment_built.",
  input: z.strictObject({ experiment_id: experimentId, agent_name: agentName.optional() }),
  output: ClaimOutput,
  // Writes (the claim), not destructive (nothing is removed), idempotent for the same agent name.
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  operation: "experiment.claim",
  subjectOf: experimentSubject,
  run: async ({ deps, caller, links }, args) => {
    const builder = args.agent_name ?? caller.principal.name;
    const experiment = await claimExperiment(deps, caller, args.experiment_id, builder);
    const structured = {
      experiment: experimentRef(links, experiment),
      next: `Build it inside the allowed paths of the brief, behind the flag the brief names (its Feature flag section, when the outcome has a flag provider; otherwise one keyed \`${experiment.key}\`), then call report_experiment_built with a summary, changed_paths, pull_request_url and flag_key${args.agent_name ? ` and agent_name "${builder}"` : ""}.`,
      brief: briefResource(experiment.id),
    };
    return {
      structured,
      text: `Claimed ${experiment.key} for ${builder}; it is ${experiment.state}.\nNext: ${structured.next}`,
      subject: experiment.id,
    };
  },
});

const reportExperimentBuilt = tool({
  name: "report_experiment_built",
  title: "Report an experiment built",
  description:
    "Report that the experiment you claimed is built: a summary, the changed paths, the pull request and the flag key. If any changed path matches the outcome's forbidden paths the report is refused, listing those paths, and nothing changes. Otherwise the experiment becomes built and a launch gate opens for a person to approve before any traffic flows; poll it with get_experiment_status. Call it once per build: a second report of the same experiment is refused.",
  input: z.strictObject({
    experiment_id: experimentId,
    summary: z
      .string()
      .trim()
      .min(1)
      .max(4000)
      .describe("What was built and how it maps to the hypothesis; shown to the person approving the launch."),
    changed_paths: z
      .array(z.string().min(1).max(500))
      .min(1)
      .max(1000)
      .describe("Every repository path the change touched (as in `git diff --name-only`), at most 1000."),
    pull_request_url: z
      .string()
      .max(2000)
      .regex(/^https?:\/\//, "must be an http(s) URL")
      .optional()
      .describe("Link to the pull request (http or https)."),
    flag_key: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .optional()
      .describe(
        "The feature flag that splits traffic: with a flag provider, the key the brief names (the runtime created it; another key is refused); otherwise your own flag, normally the experiment key.",
      ),
    agent_name: agentName.optional(),
  }),
  output: ReportBuiltOutput,
  // Writes (the build report, the launch gate). Not destructive: it only records and opens a gate; the
  // change itself stays dark until a person approves the launch. Not idempotent: the first call moves
  // building → built and opens the gate; a repeat does not return that result again but is refused
  // (illegal_transition), so a client must not retry it as if it were safe to repeat.
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  operation: "experiment.report_built",
  subjectOf: experimentSubject,
  run: async ({ deps, caller, links }, args) => {
    // The claimant reports: an agent that claimed under another name than its key's reports under that name.
    const { experiment, openedGates } = await transitionExperiment(deps, caller, args.experiment_id, {
      action: "report_built",
      builder: args.agent_name,
      changedPaths: args.changed_paths,
      build: { summary: args.summary, pullRequestUrl: args.pull_request_url ?? null, flagKey: args.flag_key ?? null },
    });
    const launch = openedGates.find((g: Gate) => g.kind === "launch_approval") ?? null;
    const launchGate = launch ? gateOut(links, launch) : null;
    const next =
      "Wait for a person to approve the launch gate (no traffic flows before). Poll get_experiment_status every few minutes, not in a tight loop; ask questions with request_human_gate.";
    return {
      structured: { experiment: experimentRef(links, experiment), launchGate, next },
      text: `${experiment.key} is ${experiment.state}.${launchGate ? ` Launch ${gateLine(launchGate)}.` : ""}\nNext: ${next}`,
      subject: experiment.id,
    };
  },
});

const getExperimentStatus = tool({
  name: "get_experiment_status",
  title: "Experiment status",
  description:
    "Where one experiment stands: its state and builder, the latest analysis (effect, always-valid confidence interval, p-value, sample ratio check, units per arm, guardrail verdicts), the gates waiting for a person, and the last decisions. Use it to wait for the launch gate after reporting a build, and to follow a running experiment.",
  input: z.strictObject({ experiment_id: experimentId }),
  output: StatusOutput,
  annotations: READ,
  operation: "experiment.read",
  subjectOf: experimentSubject,
  run: async ({ deps, caller, links }, args) => {
    const { experiment, gates, latestAnalysis, sources, flag } = await getExperiment(deps, caller, args.experiment_id);
    const pending = gates.filter((g) => g.status === "pending").map((g) => gateOut(links, g));
    const decided = gates
      .filter((g) => g.status !== "pending")
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
      .slice(0, 3)
      .map((g) => gateOut(links, g));
    const analysis = latestAnalysis ? analysisOut(latestAnalysis) : null;
    const structured = {
      experiment: experimentStatusRef(links, experiment),
      latestAnalysis: analysis,
      pendingGates: pending,
      recentDecisions: decided,
      sources: sources.map((h) => {
        const json = sourceHealthJson(h);
        return {
          metric: json.metric,
          role: json.role,
          connector: json.connector,
          status: json.status,
          lastReadAt: json.lastReadAt,
          lastError: json.lastError,
          throttledUntil: json.throttledUntil,
        };
      }),
      flag:
        flag === null
          ? null
          : {
              provider: flag.provider,
              flagKey: flag.flagKey,
              status: flag.status,
              weights: flag.weights,
              reason: flag.reason,
              pendingSince: flag.pendingSince,
              lastError: flag.lastError,
              drift: flag.drift,
              summary: flag.summary,
            },
      next: nextFor(experiment),
    };
    const text = [
      `${experiment.key} is ${experiment.state}${experiment.claimedBy ? ` (builder ${experiment.claimedBy})` : ""}.`,
      analysis
        ? `Latest analysis (${analysis.at}): effect ${fmt(analysis.effect)} [${fmt(analysis.ciLow)}, ${fmt(analysis.ciHigh)}], p ${fmt(analysis.pValue)}, decision ${analysis.decision?.action ?? "n/a"}.`
        : "No analysis yet.",
      ...pending.map((g) => `Pending ${gateLine(g)}.`),
      ...structured.sources
        .filter((h) => h.status === "failing" || h.status === "throttled")
        .map((h) =>
          h.status === "throttled"
            ? `Source of ${h.role} ${h.metric} (${h.connector}) is throttled by its rate limit until ${h.throttledUntil}.`
            : `Source of ${h.role} ${h.metric} (${h.connector}) is failing: ${h.lastError?.message ?? "unknown error"}.`,
        ),
      ...(flag === null ? [] : [`Flag ${flag.flagKey} (${flag.provider}): ${flag.summary}.`]),
      `Next: ${structured.next}`,
    ].join("\n");
    return { structured, text, subject: experiment.id };
  },
});

const queryLearningsTool = tool({
  name: "query_learnings",
  title: "Search learnings",
  description:
    "What do we already know about X? Searches the learnings of concluded experiments (what was shipped, iterated or rolled back, with the measured effect and its interval), ranked by relevance to your words (and, where semantic search is configured, to their meaning: the answer's `search` says hybrid or full_text). Use it before proposing or building a change, to avoid repeating a failed idea. Returns the best matches (limit, default 10).",
  input: z.strictObject({
    query: z
      .string()
      .trim()
      .min(1)
      .max(500)
      .describe("Words to search for, e.g. `express checkout button`; any word may match."),
    outcome: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .optional()
      .describe("Only learnings of this outcome (id or slug); omit to search every outcome."),
    limit: z.number().int().min(1).max(20).default(10).describe("How many, 1 to 20 (default 10)."),
  }),
  output: LearningsOutput,
  annotations: READ,
  operation: "learning.read",
  subjectOf: () => null,
  run: async ({ deps, caller, links }, args) => {
    const answer = await queryLearnings(deps, caller, { query: args.query, outcome: args.outcome, limit: args.limit });
    const hits = answer.learnings;
    const structured = learningsOut(links, hits, answer.search);
    const shown = structured.learnings.slice(0, TEXT_LEARNINGS);
    const text = [
      `${hits.length} learning(s) for "${args.query}"${hits.length > shown.length ? ` (the first ${shown.length} here; all in the structured result)` : ""}; search: ${answer.search.note}`,
      ...shown.map(
        (l, i) =>
          `${i + 1}. ${clip(l.statement, 160)} (${l.decision}; effect ${fmt(l.effect)} [${fmt(l.ciLow)}, ${fmt(l.ciHigh)}])`,
      ),
    ].join("\n");
    return { structured, text, subject: null };
  },
});

const requestHumanGateTool = tool({
  name: "request_human_gate",
  title: "Ask a person",
  description:
    "Ask a person a question about an experiment (a decision you should not make alone: scope, a risky path, an unclear requirement). It returns at once with a gate handle in status pending; it never waits for the answer. A person answers on the dashboard or by email; poll get_gate_status with the gate id every few minutes and carry on with work that does not depend on the answer. Asking the same question again returns the same pending gate; a different question waits until the first is answered.",
  input: z.strictObject({
    experiment_id: experimentId,
    question: z
      .string()
      .trim()
      .min(1)
      .max(2000)
      .describe("The question, answerable with yes or no plus a reason; include the context a person needs."),
  }),
  output: HumanGateOutput,
  // Writes (opens an agent_request gate, notifies its assignees); idempotent for the same question.
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  operation: "gate.request",
  subjectOf: experimentSubject,
  run: async ({ deps, caller, links }, args) => {
    const { gate, opened } = await requestHumanGate(deps, caller, args.experiment_id, args.question);
    const out = gateOut(links, gate);
    const next = `Do not wait on it: poll get_gate_status with gate_id ${gate.id} every few minutes; the answer (yes or no, with a reason) appears in gate.decision.`;
    return {
      structured: { gate: out, opened, next },
      text: `${opened ? "Asked" : "Already asked"}: ${gateLine(out)}.\nNext: ${next}`,
      subject: gate.id,
    };
  },
});

const getGateStatus = tool({
  name: "get_gate_status",
  title: "Gate status",
  description:
    "The state of one gate (a human decision point): pending, approved, rejected or expired, and once decided the decision, the reason, who decided and through which channel. Use it to read the answer to a question asked with request_human_gate, or to follow the launch gate after report_experiment_built.",
  input: z.strictObject({ gate_id: gateId }),
  output: GateStatusOutput,
  annotations: READ,
  operation: "gate.read",
  subjectOf: (args) => argString(args, "gate_id"),
  run: async ({ deps, caller, links }, args) => {
    const detail = await getGate(deps, caller, args.gate_id, links);
    const gate = gateOut(links, detail.gate);
    const experiment = detail.gate.experimentId
      ? (detail.experiments.find((e) => e.id === detail.gate.experimentId) ?? null)
      : null;
    const next =
      gate.status === "pending"
        ? "Not decided yet: poll again in a few minutes (not in a tight loop) and carry on with other work meanwhile."
        : gate.status === "expired"
          ? "It expired unanswered: decide without it if you may, or ask again with request_human_gate."
          : `Decided (${gate.decision?.decision ?? gate.status}): act on it${gate.decision?.reason ? `; the reason: ${gate.decision.reason}` : ""}.`;
    return {
      structured: {
        gate,
        experiment: experiment ? experimentRef(links, experiment) : null,
        options: detail.options.map((o) => o.decision),
        next,
      },
      text: `${gateLine(gate)}.\nNext: ${next}`,
      subject: detail.gate.id,
    };
  },
});

/** Every tool, in the order `tools/list` shows them. */
export const TOOLS: readonly ToolDefinition[] = [
  getActiveOutcomes,
  getExperimentBrief,
  claimExperimentTool,
  reportExperimentBuilt,
  getExperimentStatus,
  queryLearningsTool,
  requestHumanGateTool,
  getGateStatus,
];
