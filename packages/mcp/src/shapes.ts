/**
 * The output shapes of the MCP tools (zod, as the SDK takes them; it
 * publishes them as JSON Schema in `tools/list`) and the mappers from the
 * runtime's records to them. Outputs are compact on purpose: an agent's
 * context is the budget (Claude Code warns at 10k tokens), so records carry
 * what an agent acts on, with links to the rest. An experiment, a gate and an
 * analysis are mapped to JSON once, by the runtime (`experimentJson`,
 * `gateJson`, `analysisJson`, which the REST API answers with); the mappers
 * here are projections of that JSON: the fields kept, renamed or added are
 * the whole difference.
 */
import {
  type ActiveOutcome,
  type AnalysisRecord,
  analysisJson,
  EXPERIMENT_STATES,
  type Experiment,
  type ExperimentBriefDoc,
  experimentJson,
  GATE_KINDS,
  GATE_STATES,
  type Gate,
  gateJson,
  type LearningHit,
  type LearningSearchInfo,
} from "@outcome-runtime/runtime";
import { z } from "zod";

// ---------------------------------------------------------------------------
// Links

/** Where the tools point: the service's public base URL (no trailing slash). */
export interface Links {
  readonly publicUrl: string;
}

/** Dashboard page of an experiment. */
const experimentLink = (links: Links, id: string): string => `${links.publicUrl}/experiments/${id}`;
/** Dashboard page of a gate. */
const gateLink = (links: Links, id: string): string => `${links.publicUrl}/gates/${id}`;
/** The MCP resource of an outcome. */
export const outcomeResource = (id: string): string => `outcome://${id}`;
/** The MCP resource of an experiment's brief (Markdown). */
export const briefResource = (id: string): string => `experiment://${id}/brief`;

// ---------------------------------------------------------------------------
// Shared pieces

const isoTime = z.string().describe("ISO 8601 time");
const experimentState = z.enum(EXPERIMENT_STATES);

const ProgressShape = z.object({
  current: z
    .number()
    .nullable()
    .describe("latest value of the signal (a fraction for proportions); null before the first poll"),
  asOf: isoTime.nullable().describe("time of that value"),
  baseline: z.number().nullable().describe("level at activation, the base of a relative target"),
  goal: z.number().nullable().describe("level the target asks for; null while it cannot be computed yet"),
  horizonEnd: isoTime.nullable().describe("end of the horizon"),
});

export const ExperimentRefShape = z.object({
  id: z.string(),
  key: z.string().describe("stable key: the flag name and the signal query's :experiment"),
  title: z.string(),
  state: experimentState,
  claimedBy: z.string().nullable().describe("the builder (agent name) who claimed it"),
  link: z.string().describe("dashboard page"),
});

const GateShape = z.object({
  id: z.string(),
  kind: z.enum(GATE_KINDS),
  status: z.enum(GATE_STATES),
  experimentId: z.string().nullable(),
  assignees: z.array(z.string()).describe("people who may decide it"),
  question: z.string().nullable().describe("the agent's question (agent_request gates)"),
  createdAt: isoTime,
  dueAt: isoTime.describe("when its SLA expires (then it is escalated or expires)"),
  decision: z
    .object({
      decision: z.string().describe("approve, reject, ship, iterate, extend, resume or roll_back"),
      reason: z.string().nullable(),
      decidedBy: z.string(),
      channel: z.string().describe("where it was decided: web, email, api, …"),
      decidedAt: isoTime,
    })
    .nullable()
    .describe("null while pending"),
  link: z.string().describe("dashboard page, where a person decides it"),
});

export type GateOut = z.infer<typeof GateShape>;

/** The reference to an experiment in an agent's output, from its JSON: what it is, its state, and its page. */
function refOf(links: Links, json: ReturnType<typeof experimentJson>): z.infer<typeof ExperimentRefShape> {
  return {
    id: json.id,
    key: json.key,
    title: json.title,
    state: json.state,
    claimedBy: json.claimedBy,
    link: experimentLink(links, json.id),
  };
}

/** An experiment as the tools name it: a projection of `experimentJson` with its dashboard link. */
export function experimentRef(links: Links, e: Experiment): z.infer<typeof ExperimentRefShape> {
  return refOf(links, experimentJson(e));
}

/**
 * An experiment as `get_experiment_status` shows it: the reference, plus when
 * it launched and changed and its pull request (a projection of `experimentJson`).
 */
export function experimentStatusRef(links: Links, e: Experiment): z.infer<typeof StatusOutput>["experiment"] {
  const json = experimentJson(e);
  return {
    ...refOf(links, json),
    outcomeId: json.outcomeId,
    launchedAt: json.launchedAt,
    updatedAt: json.updatedAt,
    pullRequestUrl: json.build?.pullRequestUrl ?? null,
  };
}

/**
 * A gate as the tools show it: a projection of `gateJson` without the SLA
 * bookkeeping (reminders, escalation, backup) and the decision's detail, with
 * the agent's question lifted out of the context and the gate's dashboard link.
 */
export function gateOut(links: Links, g: Gate): GateOut {
  const json = gateJson(g);
  const question = json.context.question;
  return {
    id: json.id,
    kind: json.kind,
    status: json.status,
    experimentId: json.experimentId,
    assignees: json.assignees,
    question: typeof question === "string" ? question : null,
    createdAt: json.createdAt,
    dueAt: json.dueAt,
    decision: json.decision
      ? {
          decision: json.decision.decision,
          reason: json.decision.reason,
          decidedBy: json.decision.decidedBy,
          channel: json.decision.channel,
          decidedAt: json.decision.decidedAt,
        }
      : null,
    link: gateLink(links, json.id),
  };
}

// ---------------------------------------------------------------------------
// get_active_outcomes

export const ActiveOutcomesOutput = z.object({
  outcomes: z.array(
    z.object({
      id: z.string(),
      slug: z.string().describe("the outcome.yaml id"),
      name: z.string(),
      owner: z.string(),
      metric: z.string().describe("the signal"),
      metricKind: z.enum(["proportion", "mean", "ratio"]),
      target: z.string().describe("the target in words, with its horizon"),
      progress: ProgressShape,
      experiments: z.record(z.string(), z.number().int()).describe("experiments by state; states with none are absent"),
      pendingGates: z.number().int(),
      resource: z.string().describe("outcome://{id}: the outcome as a resource"),
    }),
  ),
  nextCursor: z.string().nullable().describe("pass as cursor for the next page; null on the last page"),
});

export function activeOutcomesOut(page: {
  items: readonly ActiveOutcome[];
  nextCursor: string | null;
}): z.infer<typeof ActiveOutcomesOutput> {
  return {
    outcomes: page.items.map((o) => ({
      id: o.id,
      slug: o.slug,
      name: o.name,
      owner: o.owner,
      metric: o.metric,
      metricKind: o.metricKind,
      target: o.target,
      progress: { ...o.progress },
      experiments: { ...o.experiments } as Record<string, number>,
      pendingGates: o.pendingGates,
      resource: outcomeResource(o.id),
    })),
    nextCursor: page.nextCursor,
  };
}

// ---------------------------------------------------------------------------
// get_experiment_brief

export const BriefOutput = z.object({
  experiment: ExperimentRefShape,
  outcome: z.object({ id: z.string(), slug: z.string(), name: z.string(), target: z.string() }),
  hypothesis: z.string(),
  mechanism: z.string(),
  prediction: z
    .object({
      direction: z.enum(["increase", "decrease"]),
      effect: z.number().describe("a fraction when relative"),
      relative: z.boolean(),
    })
    .nullable(),
  arms: z.array(z.object({ name: z.string(), weight: z.number().describe("share of units, a fraction") })),
  instrumentation: z.array(z.string()).describe("how assignment and exposure must be logged for the signal query"),
  measurementPlan: z.string(),
  rolloutPlan: z.string(),
  allowedPaths: z.array(z.string()).describe("globs the change may touch (empty: anything not forbidden)"),
  forbiddenPaths: z.array(z.string()).describe("globs report_experiment_built refuses"),
  touchedPaths: z.array(z.string()).describe("paths the hypothesis expects to touch"),
  acceptance: z.array(z.string()).describe("what must hold before reporting the build"),
  next: z.string().describe("what to do now, in this state"),
  flag: z
    .object({
      provider: z.string(),
      key: z.string().describe("the flag the runtime created: read the arm from it, report the build with it"),
      variations: z.record(z.string(), z.string()).describe("arm → the variation it is served as"),
      status: z.string().describe("exists, or why it does not yet"),
      snippets: z.record(z.string(), z.string()).describe("the provider's server SDK, per language"),
    })
    .nullable()
    .describe("the feature flag of the experiment when the outcome has a flag provider; null otherwise"),
  resource: z.string().describe("experiment://{id}/brief: this brief as Markdown"),
});

export function briefOut(links: Links, b: ExperimentBriefDoc): z.infer<typeof BriefOutput> {
  return {
    experiment: { ...b.experiment, link: experimentLink(links, b.experiment.id) },
    outcome: { ...b.outcome },
    hypothesis: b.hypothesis,
    mechanism: b.mechanism,
    prediction: b.prediction ? { ...b.prediction } : null,
    arms: b.arms.map((a) => ({ name: a.name, weight: a.weight })),
    instrumentation: [...b.instrumentation],
    measurementPlan: b.measurementPlan,
    rolloutPlan: b.rolloutPlan,
    allowedPaths: [...b.allowedPaths],
    forbiddenPaths: [...b.forbiddenPaths],
    touchedPaths: [...b.touchedPaths],
    acceptance: [...b.acceptance],
    next: b.next,
    flag:
      b.flag === null ? null : { ...b.flag, variations: { ...b.flag.variations }, snippets: { ...b.flag.snippets } },
    resource: briefResource(b.experiment.id),
  };
}

// ---------------------------------------------------------------------------
// claim_experiment, report_experiment_built

export const ClaimOutput = z.object({
  experiment: ExperimentRefShape,
  next: z.string(),
  brief: z.string().describe("experiment://{id}/brief: the brief to build from"),
});

export const ReportBuiltOutput = z.object({
  experiment: ExperimentRefShape,
  launchGate: GateShape.nullable().describe("the launch approval a person decides before traffic flows"),
  next: z.string(),
});

// ---------------------------------------------------------------------------
// get_experiment_status

export const AnalysisShape = z.object({
  at: isoTime.describe("time of the data the analysis looked at"),
  effect: z.number().nullable().describe("treatment − control, in metric units (a fraction for proportions)"),
  ciLow: z.number().nullable().describe("always-valid confidence sequence, lower end"),
  ciHigh: z.number().nullable().describe("always-valid confidence sequence, upper end"),
  relativeLift: z.number().nullable().describe("effect over control (a fraction)"),
  pValue: z.number().nullable().describe("always-valid p-value"),
  srmPValue: z.number().nullable().describe("sample ratio mismatch p-value (alarm below 0.001)"),
  units: z.record(z.string(), z.number()).describe("units per arm"),
  decision: z
    .object({ action: z.string(), reason: z.string() })
    .nullable()
    .describe("what the stopping policy concluded: continue, pause or analyse, and why"),
  guardrails: z.array(z.object({ metric: z.string(), verdict: z.string() })),
});

export const StatusOutput = z.object({
  experiment: ExperimentRefShape.extend({
    outcomeId: z.string(),
    launchedAt: isoTime.nullable(),
    updatedAt: isoTime,
    pullRequestUrl: z.string().nullable().describe("from the build report"),
  }),
  latestAnalysis: AnalysisShape.nullable().describe("null before the first analysis"),
  pendingGates: z.array(GateShape).describe("gates waiting for a person"),
  recentDecisions: z.array(GateShape).describe("the last decided gates of the experiment, newest first (at most 3)"),
  sources: z
    .array(
      z.object({
        metric: z.string(),
        role: z.string().describe("primary, guardrail or secondary"),
        connector: z.string().nullable(),
        status: z.string().describe("ok, failing, throttled (the source's rate limit holds polls back) or waiting"),
        lastReadAt: isoTime.nullable(),
        lastError: z.object({ code: z.string(), message: z.string(), at: isoTime }).nullable(),
        throttledUntil: isoTime.nullable(),
      }),
    )
    .describe("each metric's source: its last successful read, its last error, whether a rate limit holds it back"),
  flag: z
    .object({
      provider: z.string(),
      flagKey: z.string().describe("the flag the build must read; variation names are the arm names"),
      status: z.string().describe("applied, pending (being written or failing) or waiting_for_approval"),
      weights: z.record(z.string(), z.number()).describe("the split wanted now: fractions by arm"),
      reason: z.string(),
      pendingSince: isoTime.nullable(),
      lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
      drift: z.record(z.string(), z.unknown()).nullable(),
      summary: z.string(),
    })
    .nullable()
    .describe("its feature flag when the outcome has a flag provider (docs/flags.md); null otherwise"),
  next: z.string(),
});

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/**
 * An analysis as the tools show it: a projection of `analysisJson` with the
 * interval as two numbers, only the units of each arm, the decision without
 * its detail and each guardrail's verdict alone.
 */
export function analysisOut(a: AnalysisRecord): z.infer<typeof AnalysisShape> {
  const json = analysisJson(a);
  const units: Record<string, number> = {};
  for (const [arm, totals] of Object.entries(json.arms)) {
    const n = num(totals.units);
    if (n !== null) units[arm] = n;
  }
  return {
    at: json.ts,
    effect: json.effect,
    ciLow: json.ci?.[0] ?? null,
    ciHigh: json.ci?.[1] ?? null,
    relativeLift: json.relativeLift,
    pValue: json.pValue,
    srmPValue: json.srmPValue,
    units,
    decision: { action: json.decision.action, reason: json.decision.reason },
    guardrails: json.guardrails.map((g) => ({ metric: g.metric, verdict: g.verdict })),
  };
}

// ---------------------------------------------------------------------------
// query_learnings

export const LearningsOutput = z.object({
  learnings: z.array(
    z.object({
      id: z.string(),
      statement: z.string().describe("what was learned (cut at 400 characters)"),
      decision: z.string().describe("ship, iterate or roll_back"),
      effect: z.number().nullable(),
      ciLow: z.number().nullable(),
      ciHigh: z.number().nullable(),
      tags: z.array(z.string()),
      outcomeId: z.string(),
      experimentId: z.string().nullable(),
      createdAt: isoTime,
      rank: z.number().describe("relevance; higher first (compare within one answer)"),
      link: z.string().nullable().describe("dashboard page of the experiment it came from"),
      links: z
        .array(z.object({ label: z.string(), url: z.string() }))
        .describe("links kept with the learning, e.g. the pull request"),
    }),
  ),
  search: z
    .enum(["hybrid", "full_text"])
    .describe("hybrid: matched by words and by meaning (vector similarity); full_text: by words only"),
  searchFallbackReason: z
    .enum(["pgvector_unavailable", "no_embedding_model", "embedding_failed"])
    .nullable()
    .describe("why full text; null when hybrid"),
  searchNote: z.string().describe("what ranked the answer, or why full text"),
});

/** A learning's statement is a sentence or two; a longer one (a long decision reason) is cut here. */
const MAX_STATEMENT = 400;

/** `text`, cut to `max` characters with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function learningsOut(
  links: Links,
  hits: readonly LearningHit[],
  search: LearningSearchInfo,
): z.infer<typeof LearningsOutput> {
  return {
    search: search.search,
    searchFallbackReason: search.fallbackReason,
    searchNote: search.note,
    learnings: hits.map((l) => ({
      id: l.id,
      statement: clip(l.statement, MAX_STATEMENT),
      decision: l.decision,
      effect: l.effect,
      ciLow: l.ciLow,
      ciHigh: l.ciHigh,
      tags: [...l.tags],
      outcomeId: l.outcomeId,
      experimentId: l.experimentId,
      createdAt: l.createdAt,
      rank: l.rank,
      link: l.experimentId ? experimentLink(links, l.experimentId) : null,
      links: l.links.slice(0, 5).map((k) => ({ label: clip(k.label, 80), url: clip(k.url, 500) })),
    })),
  };
}

// ---------------------------------------------------------------------------
// request_human_gate, get_gate_status

export const HumanGateOutput = z.object({
  gate: GateShape,
  opened: z.boolean().describe("false: the same question was already waiting, and this is its gate"),
  next: z.string(),
});

export const GateStatusOutput = z.object({
  gate: GateShape,
  experiment: ExperimentRefShape.nullable(),
  options: z.array(z.string()).describe("decisions a person can still make; empty once decided"),
  next: z.string(),
});
