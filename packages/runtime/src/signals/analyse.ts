/**
 * Analysis: run the sequential tests on every new snapshot of a running
 * experiment, record one `analyses` row per snapshot, and apply the decision
 * policy of `packages/core` (kill-switch, guardrails, SRM, win/loss, futility,
 * maximum duration), with the decision rules' limits (failure_limit, dry_run,
 * inconclusive_limit; counts kept in each row's carry, see decision-rules.ts).
 * The computation of each snapshot is pure (`snapshot-analysis.ts`); this
 * module reads the points and writes the rows and the decision.
 *
 * Exactly once in effect: the outcome row is share-locked and the experiment
 * row locked (`FOR NO KEY UPDATE`) for the whole analysis, analyses are keyed
 * by (experiment, ts), and a decision moves the experiment with a conditional
 * UPDATE from `running`, so a duplicated or re-run job finds nothing left to do.
 */
import type { Experiment, Outcome, PolicyDecision, StatsPlan } from "@outcome-runtime/core";
import { experiments, outcomes, signals, type Trx } from "@outcome-runtime/db";
import { inTransaction, type RuntimeDeps } from "../context";
import { specOf } from "../spec-of";
import { applyDecision } from "./apply-decision";
import {
  type AnalysisCarry,
  analyseSnapshot,
  completeControl,
  EMPTY_CARRY,
  makeStatsPlan,
  type SnapshotTotals,
  snapshotsAfter,
  totalsOf,
} from "./snapshot-analysis";

export interface AnalysisOutcome {
  /** The experiment's key (null when the experiment does not exist). */
  readonly experimentKey: string | null;
  /** Analyses written by this call (0 when there was nothing new). */
  readonly analysed: number;
  /** The policy's answer at each analysis written, oldest first (`continue` included): one per analysis. */
  readonly looks: readonly { readonly action: PolicyDecision["action"]; readonly reason: PolicyDecision["reason"] }[];
  /** The decision taken, if any (the experiment moved to `paused` or `analysing`). */
  readonly decision: (PolicyDecision & { ts: Date }) | null;
  /** Webhook outbox ids to deliver (after commit). */
  readonly webhooks: readonly string[];
  readonly state: string;
}

/**
 * Analyse every snapshot of a running experiment newer than its last analysis.
 * Stops at the first snapshot that leads to a decision, moves the experiment
 * (`pause`: kill-switch or guardrail; `analyse`: opens the analysis_review gate
 * with `{ action, reason }`), writes the audit event (actor `worker`) and a
 * webhook to the outbox, all in one transaction.
 */
export async function analyseExperiment(deps: RuntimeDeps, experimentId: string): Promise<AnalysisOutcome> {
  return inTransaction(deps.db, async (trx) => {
    const found = await experiments.findExperimentById(trx, experimentId);
    if (found === null) return nothingAnalysed(null, "missing");
    // The outcome first, then the experiment: the order of a gate decision and of an outcome's
    // wind-down, so a decision here and an abandon there apply one after the other, never interleaved.
    const outcome = await outcomes.findOutcome(trx, found.workspaceId, found.outcomeId, { forShare: true });
    const experiment = await experiments.findExperimentById(trx, experimentId, { forUpdate: true });
    if (experiment === null) return nothingAnalysed(found.key, "missing");
    if (experiment.state !== "running" || outcome === null) return nothingAnalysed(experiment.key, experiment.state);
    return writeAnalyses(deps, trx, experiment, outcome);
  });
}

/**
 * The transactional side of an analysis, for an experiment locked by the
 * caller (its outcome share-locked first, then the experiment, as
 * `analyseExperiment` does): read the new snapshots, fix the statistical plan
 * once, write one row per snapshot (`analyseSnapshot` computes it) and apply
 * the first decision. The batched poll calls it in the transaction that
 * stored the points.
 */
export async function writeAnalyses(
  deps: RuntimeDeps,
  trx: Trx,
  experiment: Experiment,
  outcome: Outcome,
): Promise<AnalysisOutcome> {
  const spec = specOf(outcome);
  // Read, not created: a series holds points only once a poll has created it. An insert here would wait
  // for a poll that has updated the series and waits in turn for this experiment's row (a deadlock).
  const seriesByMetric = new Map<string, signals.SeriesRecord>(
    (await signals.listSeriesOfExperiment(trx, experiment.id)).map((s) => [`${s.role}:${s.metric}`, s]),
  );
  const primary = seriesByMetric.get(`primary:${spec.signal.metric}`);
  if (primary === undefined) return nothingAnalysed(experiment.key, experiment.state);
  const last = await signals.latestAnalysis(trx, experiment.id);
  const lastTs = last?.ts ?? null;
  const previousTotals =
    lastTs === null ? new Map() : totalsOf(await signals.latestPointsAtOrBefore(trx, primary.id, lastTs));
  const snapshots = snapshotsAfter(previousTotals, await signals.listPoints(trx, primary.id, lastTs));
  if (snapshots.length === 0) return nothingAnalysed(experiment.key, experiment.state);

  const firstTs = await signals.firstPointTs(trx, primary.id);
  const startedAt = new Date(
    Math.min(
      experiment.launchedAt?.getTime() ?? Number.POSITIVE_INFINITY,
      firstTs?.getTime() ?? Number.POSITIVE_INFINITY,
    ),
  );
  let plan = experiment.statsPlan;
  let carry: AnalysisCarry = last?.details.carry ?? EMPTY_CARRY;
  let analysed = 0;
  const looks: { action: PolicyDecision["action"]; reason: PolicyDecision["reason"] }[] = [];

  for (const snapshot of snapshots) {
    const control = completeControl(experiment.arms, snapshot);
    if (control === null) continue;
    if (plan === null) {
      const made = makeStatsPlan(spec, control);
      if (made === null) continue;
      plan = (await signals.setStatsPlanOnce(trx, experiment.id, made)) as StatsPlan;
    }
    // Each guardrail's newest totals at or before this snapshot.
    const guardrailTotals = new Map<string, Map<string, SnapshotTotals>>();
    for (const g of spec.constraints?.guardrails ?? []) {
      const series = seriesByMetric.get(`guardrail:${g.metric}`);
      if (series === undefined) continue;
      guardrailTotals.set(g.metric, totalsOf(await signals.latestPointsAtOrBefore(trx, series.id, snapshot.ts)));
    }
    // Each secondary metric's likewise: reported, never decides.
    const secondaryTotals = new Map<string, Map<string, SnapshotTotals>>();
    for (const m of spec.secondary_metrics ?? []) {
      const series = seriesByMetric.get(`secondary:${m.metric}`);
      if (series === undefined) continue;
      secondaryTotals.set(m.metric, totalsOf(await signals.latestPointsAtOrBefore(trx, series.id, snapshot.ts)));
    }
    const look = analyseSnapshot({
      spec,
      arms: experiment.arms,
      snapshot,
      guardrailTotals,
      secondaryTotals,
      plan,
      carry,
      startedAt,
    });
    carry = look.carry;
    const inserted = await signals.insertAnalysis(trx, {
      workspaceId: experiment.workspaceId,
      experimentId: experiment.id,
      ts: snapshot.ts,
      ...look.row,
    });
    if (!inserted) continue;
    analysed += 1;
    looks.push({ action: look.decision.action, reason: look.decision.reason });
    if (look.decision.action === "continue") continue;

    const applied = await applyDecision(deps, trx, experiment, outcome, look.decision, snapshot.ts, {
      // The webhook payload's published snake_case (docs/worker.md#webhooks).
      effect: look.head.effect,
      ci: look.head.ci,
      relative_lift: look.head.relativeLift,
      p_value: look.head.pValue,
    });
    return {
      experimentKey: experiment.key,
      analysed,
      looks,
      decision: { ...look.decision, ts: snapshot.ts },
      webhooks: [applied.webhookId],
      state: applied.state,
    };
  }
  return { experimentKey: experiment.key, analysed, looks, decision: null, webhooks: [], state: experiment.state };
}

function nothingAnalysed(experimentKey: string | null, state: string): AnalysisOutcome {
  return { experimentKey, analysed: 0, looks: [], decision: null, webhooks: [], state };
}
