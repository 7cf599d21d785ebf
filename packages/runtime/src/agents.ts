/**
 * What coding agents work with (the MCP tools and the CLI): the active
 * outcomes and where they stand, the brief of one experiment, claiming it,
 * asking a person a question, the learnings, and the audit of every tool call.
 */
import { createHash } from "node:crypto";
import {
  type Arm,
  authorize,
  DomainError,
  type Experiment,
  type ExperimentState,
  type Gate,
  type Outcome,
} from "@outcome-runtime/core";
import { audit, flagRollouts, gates, learnings, signals } from "@outcome-runtime/db";
import { SNIPPET_LANGUAGES, type SnippetLanguage } from "@outcome-runtime/flags";
import { canonicalJson } from "@outcome-runtime/llm";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { requireExperiment, transitionExperiment } from "./experiments";
import { flagKeyOf, flagsOf, moduleOf } from "./flags/flag-access";
import { flagStatusOf } from "./flags/rollouts";
import { outcomeBrief } from "./gate-context";
import { type LearningSearchInfo, prepareLearningSearch } from "./learning-search";
import { ensurePendingGate } from "./open-gate";
import { listOutcomes, requireOutcome } from "./outcomes";
import { horizonEnd, targetLevel } from "./signals/outcome-poll";
import { specOf } from "./spec-of";

/** Where an outcome's own signal stands. */
export interface OutcomeProgress {
  /** The latest value of the outcome's signal (a fraction for proportions), or null before the first poll. */
  readonly current: number | null;
  /** ISO time of that value. */
  readonly asOf: string | null;
  /** The baseline of a relative target: the declared `signal.baseline`, else the level at activation; or null. */
  readonly baseline: number | null;
  /** The level the target asks for, or null while it cannot be computed (relative target, no baseline yet). */
  readonly goal: number | null;
  /** ISO end of the horizon, or null before activation. */
  readonly horizonEnd: string | null;
}

export interface ActiveOutcome {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
  readonly owner: string;
  readonly metric: string;
  readonly metricKind: "proportion" | "mean" | "ratio";
  /** The target in words, e.g. "checkout_abandonment_rate: decrease by 10 % (relative…) by 2027-03-31". */
  readonly target: string;
  readonly progress: OutcomeProgress;
  /** Experiments by state (states with none are absent). */
  readonly experiments: Partial<Record<ExperimentState, number>>;
  readonly pendingGates: number;
}

/** Progress of an outcome's own signal, from its stored series. */
export async function outcomeProgress(deps: RuntimeDeps, outcome: Outcome): Promise<OutcomeProgress> {
  const spec = specOf(outcome);
  const points = await signals.outcomeSeriesPoints(deps.db, outcome.id);
  const activated = outcome.activatedAt;
  const atActivation = activated === null ? undefined : points.filter((p) => p.ts <= activated).at(-1);
  // The declared baseline when the outcome gives one, else the signal's level at activation.
  const baseline = spec.signal.baseline ?? (atActivation ?? points[0])?.sum ?? null;
  const latest = points.at(-1) ?? null;
  const end = horizonEnd(spec, activated);
  return {
    current: latest?.sum ?? null,
    asOf: latest?.ts.toISOString() ?? null,
    baseline,
    goal: targetLevel(spec, baseline),
    horizonEnd: end?.toISOString() ?? null,
  };
}

/**
 * The active outcomes of the caller's workspace with their signal, target,
 * progress and experiment counts, newest first, paginated (at most 50 a page).
 */
export async function activeOutcomes(
  deps: RuntimeDeps,
  caller: Caller,
  page: { cursor?: string | undefined; limit?: number | undefined } = {},
): Promise<{ items: ActiveOutcome[]; nextCursor: string | null }> {
  authorize(caller, "outcome.read");
  const listed = await listOutcomes(deps, caller, {
    state: "active",
    cursor: page.cursor,
    limit: Math.min(page.limit ?? 20, 50),
  });
  const items: ActiveOutcome[] = [];
  for (const summary of listed.items) {
    const spec = specOf(summary.outcome);
    items.push({
      id: summary.outcome.id,
      slug: summary.outcome.slug,
      name: summary.outcome.name,
      owner: summary.outcome.owner,
      metric: spec.signal.metric,
      metricKind: spec.signal.kind,
      target: outcomeBrief(summary.outcome).target,
      progress: await outcomeProgress(deps, summary.outcome),
      experiments: summary.experimentCounts,
      pendingGates: summary.pendingGates,
    });
  }
  return { items, nextCursor: listed.nextCursor };
}

/** Everything a builder needs for one experiment. */
export interface ExperimentBriefDoc {
  readonly experiment: {
    readonly id: string;
    readonly key: string;
    readonly title: string;
    readonly state: ExperimentState;
    readonly claimedBy: string | null;
  };
  readonly outcome: { readonly id: string; readonly slug: string; readonly name: string; readonly target: string };
  readonly hypothesis: string;
  readonly mechanism: string;
  readonly prediction: Experiment["prediction"];
  readonly arms: readonly Arm[];
  /** How assignment and exposure must be logged so that the signal query sees them. */
  readonly instrumentation: readonly string[];
  readonly measurementPlan: string;
  readonly rolloutPlan: string;
  readonly allowedPaths: readonly string[];
  readonly forbiddenPaths: readonly string[];
  /** Paths the hypothesis expects to touch. */
  readonly touchedPaths: readonly string[];
  /** What must hold before reporting the build. */
  readonly acceptance: readonly string[];
  /** What to do next, in this state. */
  readonly next: string;
  /**
   * The feature flag the runtime created for the experiment, when the outcome has a flag provider: its key,
   * the variation each arm is served as (the arm's name), whether it exists yet, and code for the provider's
   * server SDK per language. Null without a flag provider.
   */
  readonly flag: {
    readonly provider: string;
    readonly key: string;
    readonly variations: Readonly<Record<string, string>>;
    /** Applied: the flag exists in the provider. */
    readonly status: string;
    readonly snippets: Readonly<Record<SnippetLanguage, string>>;
  } | null;
}

function nextStep(e: Experiment): string {
  switch (e.state) {
    case "approved":
      return "Claim it (claim_experiment) with your agent name, then build it inside the allowed paths.";
    case "building":
      return `Build it, then report it (report_experiment_built) with a summary, the pull request, the changed paths and the flag key. Claimed by ${e.claimedBy ?? "nobody"}.`;
    case "built":
      return "Wait for the launch approval; nothing to build now (get_experiment_status shows the gate).";
    case "proposed":
      return "Wait for the portfolio review; it is not approved yet.";
    default:
      return `The experiment is ${e.state}; there is nothing to build.`;
  }
}

/**
 * The brief of one experiment: hypothesis, mechanism, arms and weights, how to
 * log assignment and exposure, plans, allowed and forbidden paths, the
 * acceptance checklist and the next step.
 *
 * @throws DomainError `not_found`.
 */
export async function experimentBrief(deps: RuntimeDeps, caller: Caller, idOrKey: string): Promise<ExperimentBriefDoc> {
  authorize(caller, "experiment.read");
  const experiment = await requireExperiment(deps.db, caller.principal.workspaceId, idOrKey);
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, experiment.outcomeId);
  const spec = specOf(outcome);
  const scope = spec.constraints?.scope;
  const connector = spec.signal.connector as { type?: string };
  const armList = experiment.arms.map((a) => `\`${a.name}\` (${Math.round(a.weight * 1000) / 10} %)`).join(", ");
  const flags = flagsOf(outcome);
  const flag = flags === null ? null : await briefFlag(deps, flags, experiment);
  const instrumentation = [
    flag === null
      ? `Assign each unit (user, session) to one arm with the weights ${armList}, deterministically: a unit keeps its arm on every visit.`
      : `Read the arm from the ${flag.provider} flag \`${flag.key}\` the runtime created (its variations are named by the arms; see the snippets below): the runtime sets its weights (${armList}) at the launch and takes them back on a kill. Never hard-code or change the split yourself.`,
    `Use the experiment key \`${experiment.key}\` as the experiment name in your events, and the arm names exactly as written: the signal query filters on \`:experiment\` = \`${experiment.key}\` and \`:arms\`.`,
    `Log an exposure when the unit first sees the changed experience, in either arm, with the experiment key, the arm and a timestamp; units never exposed must not count.`,
    connector.type === "postgres"
      ? `The ${spec.signal.metric} signal is read by a SQL query from your database: make sure its tables get the exposure and outcome rows the query joins on.`
      : `The ${spec.signal.metric} signal is read from ${connector.type ?? "the connector"}: send the exposure event with the experiment key and arm as properties.`,
  ];
  const acceptance = [
    "Every changed path is inside the allowed paths and none is a forbidden path (report_experiment_built refuses forbidden ones).",
    "Control keeps today's behaviour exactly; only the treatment arm(s) change.",
    `Assignment and exposure are logged as described, with the key \`${experiment.key}\` and the arm names ${experiment.arms.map((a) => `\`${a.name}\``).join(", ")}.`,
    "The change ships dark: behind the flag, with traffic off until the launch gate is approved.",
    "Tests cover both arms; the pull request describes the hypothesis and links this experiment.",
  ];
  return {
    experiment: {
      id: experiment.id,
      key: experiment.key,
      title: experiment.title,
      state: experiment.state,
      claimedBy: experiment.claimedBy,
    },
    outcome: { id: outcome.id, slug: outcome.slug, name: outcome.name, target: outcomeBrief(outcome).target },
    hypothesis: experiment.statement,
    mechanism: experiment.mechanism,
    prediction: experiment.prediction,
    arms: experiment.arms,
    instrumentation,
    measurementPlan: experiment.measurementPlan,
    rolloutPlan: experiment.rolloutPlan,
    allowedPaths: [...(scope?.allowed_paths ?? [])],
    forbiddenPaths: [...(scope?.forbidden_paths ?? [])],
    touchedPaths: experiment.touchedPaths,
    acceptance,
    next: nextStep(experiment),
    flag,
  };
}

/** The brief's flag section: the key, the variation per arm, whether it exists, the SDK snippets. */
async function briefFlag(
  deps: RuntimeDeps,
  flags: NonNullable<ReturnType<typeof flagsOf>>,
  experiment: Experiment,
): Promise<NonNullable<ExperimentBriefDoc["flag"]>> {
  const key = flagKeyOf(flags, experiment.key);
  const rollout = await flagRollouts.findRollout(deps.db, experiment.id);
  const target = { key, experimentKey: experiment.key, description: experiment.title, arms: experiment.arms };
  const module = moduleOf(flags.provider);
  return {
    provider: flags.provider,
    key,
    variations: Object.fromEntries(experiment.arms.map((a) => [a.name, a.name])),
    status:
      rollout === null ? "not created" : rollout.appliedVersion === null ? flagStatusOf(rollout).summary : "exists",
    snippets: Object.fromEntries(SNIPPET_LANGUAGES.map((l) => [l, module.snippet(l, target)])) as Record<
      SnippetLanguage,
      string
    >,
  };
}

/** The brief as Markdown (the `experiment://{id}/brief` resource and `outcome-runtime experiments brief`). */
export function renderBriefMarkdown(brief: ExperimentBriefDoc): string {
  const list = (items: readonly string[], empty: string) =>
    items.length === 0 ? `- ${empty}` : items.map((i) => `- ${i}`).join("\n");
  const code = (items: readonly string[], empty: string) =>
    list(
      items.map((i) => `\`${i}\``),
      empty,
    );
  const prediction = brief.prediction
    ? `${brief.prediction.direction} by ${brief.prediction.relative ? `${Math.round(brief.prediction.effect * 10000) / 100} % (relative)` : brief.prediction.effect}`
    : "not stated";
  return [
    `# ${brief.experiment.title}`,
    "",
    `Experiment \`${brief.experiment.key}\` (${brief.experiment.state}${brief.experiment.claimedBy ? `, claimed by ${brief.experiment.claimedBy}` : ""}) for the outcome **${brief.outcome.name}** (${brief.outcome.target}).`,
    "",
    `**Next:** ${brief.next}`,
    "",
    "## Hypothesis",
    "",
    brief.hypothesis,
    "",
    `Mechanism: ${brief.mechanism || "not stated"}. Predicted effect: ${prediction}.`,
    "",
    "## Arms",
    "",
    list(
      brief.arms.map((a) => `\`${a.name}\`: ${Math.round(a.weight * 1000) / 10} % of units`),
      "none",
    ),
    "",
    "## Assignment and exposure",
    "",
    list(brief.instrumentation, "none"),
    "",
    "## Measurement plan",
    "",
    brief.measurementPlan || "Not written.",
    "",
    "## Rollout plan",
    "",
    brief.rolloutPlan || "Not written.",
    "",
    "## Paths",
    "",
    "Allowed:",
    code(brief.allowedPaths, "anything not forbidden"),
    "",
    "Forbidden:",
    code(brief.forbiddenPaths, "none"),
    "",
    "Expected to touch:",
    code(brief.touchedPaths, "not stated"),
    "",
    ...(brief.flag === null
      ? []
      : [
          "## Feature flag",
          "",
          `The runtime owns the split in ${brief.flag.provider}: flag \`${brief.flag.key}\` (${brief.flag.status}), one variation per arm named by the arm (${Object.keys(
            brief.flag.variations,
          )
            .map((a) => `\`${a}\``)
            .join(", ")}). Report the build with this flag key.`,
          "",
          ...Object.entries(brief.flag.snippets).flatMap(([language, code]) => [
            `${language}:`,
            "",
            `\`\`\`${language === "typescript" ? "ts" : language}`,
            code.trimEnd(),
            "```",
            "",
          ]),
        ]),
    "## Acceptance checklist",
    "",
    brief.acceptance.map((a) => `- [ ] ${a}`).join("\n"),
    "",
  ].join("\n");
}

/**
 * An agent takes an approved experiment to build it (`building`). Claiming
 * again by the same builder returns it unchanged (the experiment machine's
 * rule, the same through the REST API).
 *
 * @throws DomainError `not_found`; `already_claimed` naming the holder when
 *   another builder has it; `illegal_transition` when it is not approved;
 *   `outcome_closed`.
 */
export async function claimExperiment(
  deps: RuntimeDeps,
  caller: Caller,
  idOrKey: string,
  builder: string,
): Promise<Experiment> {
  authorize(caller, "experiment.claim");
  const moved = await transitionExperiment(deps, caller, idOrKey, { action: "claim", claimedBy: builder });
  return moved.experiment;
}

/**
 * An agent asks a person a question about an experiment: opens an
 * `agent_request` gate (assigned as the launch approval is) and returns at
 * once. Asking the same question again returns the pending gate.
 *
 * @throws DomainError `not_found`; `validation_failed` for an empty or too long
 *   question (max 2 000 characters); `question_pending` when a different
 *   question about the experiment still waits; `outcome_closed`.
 */
export async function requestHumanGate(
  deps: RuntimeDeps,
  caller: Caller,
  idOrKey: string,
  question: string,
): Promise<{ gate: Gate; opened: boolean }> {
  authorize(caller, "gate.request");
  const text = question.trim();
  if (text.length === 0 || text.length > 2000) {
    throw new DomainError("validation_failed", "question: write the question in 1 to 2 000 characters", {
      field: "question",
    });
  }
  return inTransaction(deps.db, async (trx) => {
    const experiment = await requireExperiment(trx, caller.principal.workspaceId, idOrKey, { forUpdate: true });
    const outcome = await requireOutcome(trx, caller.principal.workspaceId, experiment.outcomeId);
    if (outcome.state !== "active") {
      throw new DomainError("outcome_closed", `outcome ${outcome.slug} is ${outcome.state}; nobody answers its gates`, {
        state: outcome.state,
      });
    }
    const pending = await gates.findPendingGate(trx, {
      outcomeId: outcome.id,
      kind: "agent_request",
      experimentId: experiment.id,
    });
    if (pending !== null) {
      if ((pending.context as { question?: string }).question === text) return { gate: pending, opened: false };
      throw new DomainError(
        "question_pending",
        `a question about ${experiment.key} already waits for an answer (gate ${pending.id}); poll it with get_gate_status and ask again once it is answered`,
        { gateId: pending.id },
      );
    }
    const { gate, opened } = await ensurePendingGate(
      trx,
      caller,
      outcome,
      "agent_request",
      experiment.id,
      nowOf(deps),
      {
        question: text,
        askedBy: caller.principal.name,
      },
    );
    return { gate, opened };
  });
}

export interface LearningHit {
  readonly id: string;
  readonly statement: string;
  readonly decision: string;
  readonly effect: number | null;
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
  readonly tags: readonly string[];
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly createdAt: string;
  readonly rank: number;
  /** Links kept with the learning, e.g. the pull request. */
  readonly links: readonly { readonly label: string; readonly url: string }[];
}

/** Learnings found for a query, and what ranked them. */
export interface LearningSearchAnswer {
  readonly learnings: LearningHit[];
  /** `hybrid` (full text and vector similarity) or `full_text`, and why. */
  readonly search: LearningSearchInfo;
}

/**
 * "What do we know about X": the workspace's learnings most relevant to
 * `query`, at most `limit` (default 10, max 50): matching any of its words
 * (full text) or, when the search is hybrid, its meaning (see
 * `prepareLearningSearch`); `search` says which.
 */
export async function queryLearnings(
  deps: RuntimeDeps,
  caller: Caller,
  input: { query: string; outcome?: string | undefined; limit?: number | undefined },
): Promise<LearningSearchAnswer> {
  authorize(caller, "learning.read");
  const workspaceId = caller.principal.workspaceId;
  const outcomeId = input.outcome ? (await requireOutcome(deps.db, workspaceId, input.outcome)).id : undefined;
  const prepared = await prepareLearningSearch(deps, {
    workspaceId,
    query: input.query,
    actor: caller.principal,
    channel: caller.channel,
    requestId: caller.requestId,
    outcomeId: outcomeId ?? null,
  });
  const found = await learnings.searchLearnings(deps.db, workspaceId, input.query.split(/\s+/), {
    ...(outcomeId ? { outcomeId } : {}),
    limit: Math.min(Math.max(input.limit ?? 10, 1), 50),
    ...(prepared.semantic === undefined ? {} : { semantic: prepared.semantic }),
  });
  // The search brings an outcome's own learnings along whatever the words (for hypothesis generation);
  // a person's query wants only what matches, within the outcome when one is named.
  return {
    learnings: found
      .filter((l) => l.rank > 0 && (outcomeId === undefined || l.outcomeId === outcomeId))
      .map(learningHit),
    search: prepared.info,
  };
}

/** A stored learning as the API and the tools show it. */
export function learningHit(l: learnings.LearningRecord): LearningHit {
  return {
    id: l.id,
    statement: l.statement,
    decision: l.decision,
    effect: l.effect,
    ciLow: l.ciLow,
    ciHigh: l.ciHigh,
    tags: l.tags,
    outcomeId: l.outcomeId,
    experimentId: l.experimentId,
    createdAt: l.createdAt.toISOString(),
    rank: l.rank,
    links: l.links,
  };
}

/** SHA-256 of the arguments as canonical JSON (keys sorted): the audit keeps the digest, not the text. */
export function argumentsDigest(args: unknown): string {
  return createHash("sha256").update(canonicalJson(args)).digest("hex");
}

/**
 * Audit one MCP tool call: the tool, the agent (the caller), the digest of the
 * arguments, and the result (`ok`, or the error code).
 */
export async function recordToolCall(
  deps: RuntimeDeps,
  caller: Caller,
  call: { tool: string; arguments: unknown; result: "ok" | "error"; code?: string | null; subject?: string | null },
): Promise<void> {
  await audit.insertAuditEvent(deps.db, {
    workspaceId: caller.principal.workspaceId,
    actor: auditActor(caller),
    channel: "mcp",
    action: "mcp.tool_called",
    subjectType: "mcp_tool",
    subjectId: call.tool,
    before: null,
    after: {
      tool: call.tool,
      argumentsDigest: argumentsDigest(call.arguments ?? {}),
      result: call.result,
      ...(call.code ? { code: call.code } : {}),
      ...(call.subject ? { subject: call.subject } : {}),
    },
    requestId: caller.requestId,
  });
}
