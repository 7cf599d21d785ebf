/**
 * The context package of a gate (see `GateContextPackage` in packages/core):
 * the facts a person needs to decide, read from the database. The API, the
 * dashboard and the emails all show this same package.
 */
import type {
  AchievementEvidence,
  AchievementReviewContext,
  AnalysisSummary,
  Experiment,
  ExperimentBrief,
  Gate,
  GateContextPackage,
  Outcome,
  OutcomeBrief,
} from "@outcome-runtime/core";
import { type DbOrTrx, experiments, outcomes, signals } from "@outcome-runtime/db";
import { specOf } from "./spec-of";

/** Where links in a context package point: the public base URL of the service (no trailing slash). */
export interface GateLinks {
  readonly publicUrl: string;
}

/** Dashboard page of a gate. */
export function gateUrl(links: GateLinks, gateId: string): string {
  return `${links.publicUrl}/gates/${gateId}`;
}

/** Dashboard page of an outcome, with its signal's chart. */
function outcomeUrl(links: GateLinks, outcomeId: string): string {
  return `${links.publicUrl}/outcomes/${outcomeId}`;
}

/** Dashboard page of an experiment, with its chart. */
export function experimentUrl(links: GateLinks, experimentId: string): string {
  return `${links.publicUrl}/experiments/${experimentId}`;
}

/** The outcome in brief, with its target in words. */
export function outcomeBrief(outcome: Outcome): OutcomeBrief {
  const spec = specOf(outcome);
  const value = spec.target.relative
    ? `by ${+(Math.abs(spec.target.value) * 100).toFixed(4)} % (relative to the level at activation)`
    : `to ${spec.target.value}`;
  const horizon =
    "end_date" in spec.horizon && spec.horizon.end_date
      ? `by ${spec.horizon.end_date}`
      : "seconds" in spec.horizon
        ? `within ${Math.round(Number(spec.horizon.seconds) / 86_400)} days`
        : "";
  return {
    id: outcome.id,
    slug: outcome.slug,
    name: outcome.name,
    owner: outcome.owner,
    target: `${spec.signal.metric}: ${spec.target.direction} ${value} ${horizon}`.trim(),
  };
}

function experimentBrief(e: Experiment): ExperimentBrief {
  return { id: e.id, key: e.key, title: e.title, statement: e.statement, state: e.state };
}

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** The latest analysis of an experiment, summarised (null when none is stored). */
async function analysisSummary(db: DbOrTrx, experiment: Experiment, outcome: Outcome): Promise<AnalysisSummary | null> {
  const latest = await signals.latestAnalysis(db, experiment.id);
  if (latest === null) return null;
  const spec = specOf(outcome);
  const arms = latest.arms;
  const details = latest.details;
  const guardrails = latest.guardrails.map((g) => ({
    metric: g.metric,
    arm: g.arm,
    verdict: g.verdict,
    harm: num(g.harm),
    margin: num(g.margin) ?? 0,
    relative: g.relative === true,
  }));
  return {
    ts: latest.ts.toISOString(),
    metric: spec.signal.metric,
    metricKind: spec.signal.kind,
    effect: latest.effect,
    ciLow: latest.ciLow,
    ciHigh: latest.ciHigh,
    relativeLift: latest.relativeLift,
    pValue: latest.pValue,
    alpha: experiment.statsPlan?.alpha ?? 0.05,
    srm: { pValue: latest.srmPValue, alarm: details.srm?.alarm === true },
    guardrails,
    arms: experiment.arms.map((a) => ({
      name: a.name,
      units: Number(arms[a.name]?.units ?? 0),
      mean: num(arms[a.name]?.mean),
    })),
    durationSeconds: num(details.elapsedSeconds),
  };
}

/**
 * Build the context package of a gate.
 * @throws Error when the gate's outcome or experiment is gone (rows cascade, so only mid-deletion).
 */
export async function buildGateContext(db: DbOrTrx, gate: Gate, links: GateLinks): Promise<GateContextPackage> {
  const outcome = await outcomes.findOutcome(db, gate.workspaceId, gate.outcomeId);
  if (outcome === null) throw new Error(`the outcome of gate ${gate.id} is gone`);
  const brief = outcomeBrief(outcome);
  if (gate.kind === "portfolio_review") {
    const list = await experiments.listExperiments(db, gate.workspaceId, { portfolioGateId: gate.id });
    return {
      kind: "portfolio_review",
      outcome: brief,
      hypotheses: list.map((e) => ({
        id: e.id,
        key: e.key,
        title: e.title,
        statement: e.statement,
        prediction: e.prediction,
        effort: e.effort,
        risk: e.risk,
        touchedPaths: e.touchedPaths,
        state: e.state,
        source: e.source,
      })),
    };
  }
  if (gate.kind === "achievement_review") return achievementContext(db, gate, outcome, brief, links);
  const experiment = gate.experimentId
    ? await experiments.findExperiment(db, gate.workspaceId, gate.experimentId)
    : null;
  if (experiment === null) throw new Error(`the experiment of gate ${gate.id} is gone`);
  if (gate.kind === "launch_approval") {
    return {
      kind: "launch_approval",
      outcome: brief,
      experiment: experimentBrief(experiment),
      build: experiment.build,
      arms: experiment.arms,
    };
  }
  if (gate.kind === "agent_request") {
    const asked = gate.context as { question?: unknown; askedBy?: unknown };
    return {
      kind: "agent_request",
      outcome: brief,
      experiment: experimentBrief(experiment),
      question: typeof asked.question === "string" ? asked.question : "",
      askedBy: typeof asked.askedBy === "string" ? asked.askedBy : "an agent",
    };
  }
  const trigger = gate.context as { action?: unknown; reason?: unknown; detail?: unknown };
  return {
    kind: "analysis_review",
    outcome: brief,
    experiment: experimentBrief(experiment),
    trigger: {
      action: typeof trigger.action === "string" ? trigger.action : "analyse",
      reason: typeof trigger.reason === "string" ? trigger.reason : "requested",
      detail: typeof trigger.detail === "string" ? trigger.detail : null,
    },
    analysis: await analysisSummary(db, experiment, outcome),
    chartUrl: experimentUrl(links, experiment.id),
  };
}

/** Points of the outcome's series an achievement review shows: the latest 500 at most. */
const ACHIEVEMENT_SERIES_POINTS = 500;

/**
 * The context of an `achievement_review`: the evidence the worker stored when
 * it opened the gate, the outcome's series since activation and the
 * experiments shipped since then (with their latest relative lift).
 */
async function achievementContext(
  db: DbOrTrx,
  gate: Gate,
  outcome: Outcome,
  brief: OutcomeBrief,
  links: GateLinks,
): Promise<AchievementReviewContext> {
  const since = outcome.activatedAt;
  const points = (await signals.outcomeSeriesPoints(db, outcome.id))
    .filter((p) => since === null || p.ts >= since)
    .slice(-ACHIEVEMENT_SERIES_POINTS)
    .map((p) => ({ ts: p.ts.toISOString(), value: p.sum }));
  const shippedList = (
    await experiments.listExperiments(db, gate.workspaceId, { outcomeId: outcome.id, state: "shipped" })
  )
    .filter((e) => since === null || e.updatedAt >= since)
    .sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime());
  const shipped = [];
  for (const e of shippedList) {
    const latest = await signals.latestAnalysis(db, e.id);
    shipped.push({
      ...experimentBrief(e),
      shippedAt: e.updatedAt.toISOString(),
      relativeLift: latest?.relativeLift ?? null,
    });
  }
  return {
    kind: "achievement_review",
    outcome: brief,
    metricKind: specOf(outcome).signal.kind === "proportion" ? "proportion" : "mean",
    evidence: evidenceOf(gate.context),
    series: points,
    shipped,
    chartUrl: outcomeUrl(links, outcome.id),
  };
}

/** The evidence stored in an achievement gate's context, or null when it is not whole. */
export function evidenceOf(context: Readonly<Record<string, unknown>>): AchievementEvidence | null {
  const c = context as Record<string, unknown>;
  const numbers = ["goal", "latest", "mean", "bound", "confidence", "points", "sustainSeconds"].map((k) => num(c[k]));
  if (numbers.some((n) => n === null)) return null;
  if (c.direction !== "increase" && c.direction !== "decrease") return null;
  if (typeof c.windowStart !== "string" || typeof c.windowEnd !== "string") return null;
  const [goal, latest, mean, bound, confidence, points, sustainSeconds] = numbers as number[];
  return {
    goal: goal as number,
    direction: c.direction,
    latest: latest as number,
    mean: mean as number,
    bound: bound as number,
    confidence: confidence as number,
    points: points as number,
    windowStart: c.windowStart,
    windowEnd: c.windowEnd,
    sustainSeconds: sustainSeconds as number,
  };
}
