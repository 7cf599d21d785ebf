/**
 * The hypothesis engine: a portfolio of experiment hypotheses for an active
 * outcome, from the LLM gateway (which falls back to the offline rules engine),
 * informed by what past experiments taught, screened against the outcome's
 * scope, and proposed into the outcome's `portfolio_review` gate.
 *
 * Screening (applied to every hypothesis, whoever wrote it):
 * - touched paths that match `constraints.scope.forbidden_paths` → dropped;
 * - a repeat of a hypothesis that already failed for this outcome → dropped.
 *   "Repeat" is the rules engine's similarity: the same `mechanism_key`, or a
 *   token Jaccard index ≥ 0.5 on the title (or title + statement);
 * - a second hypothesis with a mechanism already in the portfolio → dropped.
 * Dropped hypotheses are replaced from the rules engine (excluding the
 * mechanisms kept), and every drop is an audit event `hypothesis.dropped`.
 */
import { authorize, DomainError, matchPaths, type Outcome } from "@outcome-runtime/core";
import { audit, experiments, learnings } from "@outcome-runtime/db";
import {
  findSimilarFailure,
  type Gateway,
  type GenerateHypothesesOutput,
  planByRules,
  type RulesFailedHypothesis,
  type RulesHypothesesInput,
  type RulesLearning,
} from "@outcome-runtime/llm";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import { planSample } from "@outcome-runtime/stats";
import { auditActor, type Caller, type RuntimeDeps } from "./context";
import { type ProposeResult, proposeExperiment } from "./experiments";
import { type LearningSearchInfo, prepareLearningSearch } from "./learning-search";
import { requireOutcome, transitionOutcome } from "./outcomes";
import { specOf } from "./spec-of";

/** Hypotheses in one portfolio. */
export const PORTFOLIO_SIZE = 3;

type Hypothesis = GenerateHypothesesOutput["hypotheses"][number];

export interface DroppedHypothesis {
  readonly title: string;
  readonly mechanismKey: string;
  readonly reason: "forbidden_paths" | "failed_before" | "duplicate_mechanism";
  readonly detail: string;
}

export interface PortfolioResult {
  readonly proposals: readonly ProposeResult[];
  /** `llm:<model>` or `rules`. */
  readonly source: string;
  readonly fallbackReason: string | null;
  readonly costUsd: number;
  readonly dropped: readonly DroppedHypothesis[];
  /** Ids of the learnings given to the generator. */
  readonly learningsConsidered: readonly string[];
  /** How those learnings were found: `hybrid` (by meaning too) or `full_text`, and why. */
  readonly learningSearch: LearningSearchInfo;
}

export interface HypothesisDeps extends RuntimeDeps {
  readonly gateway: Gateway;
}

const EFFORT_COST = { S: 1, M: 2, L: 3, XL: 5 } as const;
const EFFORT_LEVEL = { S: "low", M: "medium", L: "high", XL: "high" } as const;
const FAILED_STATES = ["rejected", "rolled_back"] as const;
const FAILED_DECISIONS = ["roll_back", "rolled_back", "loss", "reject"];

/** The words an outcome is about, for the learnings search. */
function outcomeWords(outcome: Outcome, spec: OutcomeSpec): string[] {
  const text = [outcome.name, outcome.slug, spec.signal.metric, spec.description ?? "", spec.objective ?? ""].join(" ");
  return text.split(/[^A-Za-z0-9]+/).filter((w) => w.length >= 3);
}

/** The generator's input for an outcome: its spec, past learnings and what failed. */
export function hypothesisInput(
  outcome: Pick<Outcome, "slug" | "name">,
  spec: OutcomeSpec,
  learned: readonly RulesLearning[],
  failed: readonly RulesFailedHypothesis[],
  count = PORTFOLIO_SIZE,
): RulesHypothesesInput {
  return {
    outcome: {
      id: outcome.slug,
      name: outcome.name,
      ...(spec.description ? { description: spec.description } : {}),
      ...(spec.objective ? { objective: spec.objective } : {}),
      signal: {
        metric: spec.signal.metric,
        // The playbooks' templates know proportions and means; a ratio moves like a continuous value per unit.
        kind: spec.signal.kind === "ratio" ? "mean" : spec.signal.kind,
        unit: spec.signal.unit,
        ...(spec.signal.baseline === undefined ? {} : { baseline: spec.signal.baseline }),
      },
      target: { direction: spec.target.direction, value: spec.target.value, relative: spec.target.relative },
      allowed_paths: [...(spec.constraints?.scope?.allowed_paths ?? [])],
      forbidden_paths: [...(spec.constraints?.scope?.forbidden_paths ?? [])],
    },
    learnings: [...learned],
    failed: [...failed],
    count,
  };
}

/**
 * Keep the hypotheses that respect the scope, have not failed before and add a
 * new mechanism; say why each other one was dropped.
 */
export function screenHypotheses(
  spec: OutcomeSpec,
  hypotheses: readonly Hypothesis[],
  failed: readonly RulesFailedHypothesis[],
  kept: readonly Hypothesis[] = [],
): { kept: Hypothesis[]; dropped: DroppedHypothesis[] } {
  const forbidden = spec.constraints?.scope?.forbidden_paths ?? [];
  const out: Hypothesis[] = [...kept];
  const dropped: DroppedHypothesis[] = [];
  for (const h of hypotheses) {
    const touched = matchPaths(h.touched_paths, forbidden);
    if (touched.length > 0) {
      dropped.push({
        title: h.title,
        mechanismKey: h.mechanism_key,
        reason: "forbidden_paths",
        detail: `touches paths the outcome forbids: ${touched.join(", ")}`,
      });
      continue;
    }
    const similar = findSimilarFailure(
      { title: h.title, statement: h.statement, mechanism_key: h.mechanism_key },
      failed,
    );
    if (similar !== undefined) {
      dropped.push({
        title: h.title,
        mechanismKey: h.mechanism_key,
        reason: "failed_before",
        detail: `repeats "${similar.failed.title}", which failed for this outcome (${similar.why})`,
      });
      continue;
    }
    if (out.some((k) => k.mechanism_key === h.mechanism_key)) {
      dropped.push({
        title: h.title,
        mechanismKey: h.mechanism_key,
        reason: "duplicate_mechanism",
        detail: `mechanism ${h.mechanism_key} is already in the portfolio`,
      });
      continue;
    }
    out.push(h);
  }
  return { kept: out, dropped };
}

/**
 * Priority = expected impact × confidence ÷ effort, explained. Impact is the
 * predicted relative effect (a fraction); confidence defaults to 0.5; effort
 * costs S 1, M 2, L 3, XL 5.
 */
export function priorityOf(h: Hypothesis): { score: number; explanation: string } {
  const confidence = h.confidence ?? 0.5;
  const cost = EFFORT_COST[h.effort];
  const score = (h.prediction.effect * confidence) / cost;
  return {
    score,
    explanation: `impact ${(h.prediction.effect * 100).toFixed(1)} % × confidence ${confidence} ÷ effort ${h.effort} (${cost}) = ${(score * 100).toFixed(2)}`,
  };
}

/** The rollout plan with arms, weights and the minimum sample from the power calculation. */
function rolloutPlan(spec: OutcomeSpec, h: Hypothesis): string {
  const d = spec.experiment_defaults;
  const arms = d.arms.map((a) => `${a.name} ${Math.round(a.weight * 100)} %`).join(", ");
  const baseline = spec.signal.baseline;
  let sample = `at least ${d.min_sample_per_arm} units per arm`;
  if (baseline !== undefined && spec.signal.kind === "proportion" && baseline > 0 && baseline < 1) {
    const mde = h.prediction.relative ? h.prediction.effect * baseline : h.prediction.effect;
    try {
      const plan = planSample({ kind: "proportion", alpha: d.alpha, power: d.power, baseline, mde });
      sample = `${Math.ceil(plan.sequentialPerArm)} units per arm for the always-valid test at power ${d.power} (a fixed-horizon test would need ${Math.ceil(plan.fixedPerArm)})`;
    } catch {
      // An effect the calculator cannot size: keep the configured minimum.
    }
  }
  return `${h.rollout_plan}\nArms: ${arms}. Minimum sample: ${sample}.`;
}

/**
 * Generate a portfolio of {@link PORTFOLIO_SIZE} hypotheses for an active
 * outcome and propose them into its `portfolio_review` gate (opened if none is
 * pending). Uses the LLM gateway when one is configured, the rules engine
 * otherwise or on any failure; the source is recorded on every experiment.
 *
 * @throws DomainError `forbidden` unless the caller may `portfolio.generate` (agents may not), `not_found`,
 *   `outcome_not_active`.
 */
export async function generatePortfolio(
  deps: HypothesisDeps,
  caller: Caller,
  outcomeIdOrSlug: string,
): Promise<PortfolioResult> {
  authorize(caller, "portfolio.generate");
  const workspaceId = caller.principal.workspaceId;
  const outcome = await requireOutcome(deps.db, workspaceId, outcomeIdOrSlug);
  if (outcome.state !== "active") {
    throw new DomainError(
      "outcome_not_active",
      `outcome ${outcome.slug} is ${outcome.state}; portfolios are generated for active outcomes`,
      { state: outcome.state },
    );
  }
  const spec = specOf(outcome);
  const words = outcomeWords(outcome, spec);
  const search = await prepareLearningSearch(deps, {
    workspaceId,
    query: words.join(" "),
    actor: caller.principal,
    channel: caller.channel,
    requestId: caller.requestId,
    outcomeId: outcome.id,
  });
  const found = await learnings.searchLearnings(deps.db, workspaceId, words, {
    outcomeId: outcome.id,
    limit: 8,
    ...(search.semantic === undefined ? {} : { semantic: search.semantic }),
  });
  const learned: RulesLearning[] = found.map((l) => ({
    id: l.id,
    statement: l.statement,
    decision: l.decision,
    effect: l.effect,
    tags: [...l.tags],
  }));
  const past = await experiments.listExperiments(deps.db, workspaceId, { outcomeId: outcome.id });
  const failed: RulesFailedHypothesis[] = [
    ...past
      .filter((e) => (FAILED_STATES as readonly string[]).includes(e.state))
      .map((e) => ({ title: e.title, statement: e.statement })),
    ...found
      .filter((l) => l.outcomeId === outcome.id && FAILED_DECISIONS.includes(l.decision))
      .map((l) => ({
        title: l.statement.slice(0, 120),
        statement: l.statement,
        ...(l.tags[0] ? { mechanism_key: l.tags[0] } : {}),
      })),
  ];
  const input = hypothesisInput(outcome, spec, learned, failed);
  const result = await deps.gateway.run("generate_hypotheses", input, {
    workspaceId,
    outcomeId: outcome.id,
    actor: caller.principal,
    channel: caller.channel,
    requestId: caller.requestId,
  });
  const screened = screenHypotheses(spec, (result.output as GenerateHypothesesOutput).hypotheses, failed);
  let kept = screened.kept.slice(0, PORTFOLIO_SIZE);
  const fromGenerator = new Set(kept);
  const dropped = [...screened.dropped];
  let source = result.source;
  if (kept.length < PORTFOLIO_SIZE) {
    // Replace what was dropped from the rules engine, with other mechanisms.
    const refill = planByRules({
      ...input,
      count: PORTFOLIO_SIZE - kept.length,
      exclude_mechanisms: kept.map((h) => h.mechanism_key),
    });
    const again = screenHypotheses(spec, refill.hypotheses, failed, kept);
    kept = again.kept.slice(0, PORTFOLIO_SIZE);
    dropped.push(...again.dropped);
    if (source !== "rules") source = `${source}+rules`;
  }

  for (const d of dropped) {
    await audit.insertAuditEvent(deps.db, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "hypothesis.dropped",
      subjectType: "outcome",
      subjectId: outcome.id,
      before: null,
      after: { ...d },
      requestId: caller.requestId,
    });
  }

  const proposals: ProposeResult[] = [];
  for (const h of kept) {
    const priority = priorityOf(h);
    const proposal = await proposeExperiment(
      deps,
      caller,
      outcome.id,
      {
        title: h.title,
        statement: h.statement,
        mechanism: `${h.mechanism} [${h.mechanism_key}]`,
        prediction: { direction: h.prediction.direction, effect: h.prediction.effect, relative: h.prediction.relative },
        measurementPlan: `${h.measurement_plan}\nRationale: ${h.rationale}\nPriority: ${priority.explanation}.`,
        rolloutPlan: rolloutPlan(spec, h),
        effort: EFFORT_LEVEL[h.effort],
        risk: h.risk,
        touchedPaths: h.touched_paths,
      },
      fromGenerator.has(h) ? result.source : "rules",
    );
    proposals.push(proposal);
  }
  return {
    proposals,
    source,
    fallbackReason: result.fallbackReason,
    costUsd: result.costUsd,
    dropped,
    learningsConsidered: learned.map((l) => l.id),
    learningSearch: search.info,
  };
}

/**
 * Activate an outcome and propose its first portfolio. The activation stands
 * even if the portfolio cannot be made (the error is returned, with its stack
 * for the log, and `POST /v1/outcomes/:id/hypotheses` tries again).
 *
 * @throws DomainError `forbidden` unless the caller may `outcome.activate`; from the activation
 *   (`not_found`, `illegal_transition`).
 */
export async function activateOutcome(
  deps: HypothesisDeps,
  caller: Caller,
  outcomeIdOrSlug: string,
  reason: string | null,
): Promise<{ outcome: Outcome; portfolio: PortfolioResult | null; portfolioError: Error | null }> {
  authorize(caller, "outcome.activate");
  const outcome = await transitionOutcome(deps, caller, outcomeIdOrSlug, "activate", reason);
  try {
    return { outcome, portfolio: await generatePortfolio(deps, caller, outcome.id), portfolioError: null };
  } catch (error) {
    return { outcome, portfolio: null, portfolioError: error instanceof Error ? error : new Error(String(error)) };
  }
}
