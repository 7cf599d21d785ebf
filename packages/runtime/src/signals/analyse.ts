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
import type { Experiment, NewAnalysis, Outcome, PolicyDecision, StatsPlan } from "@outcome-runtime/core";
import { experiments, outcomes, signals, type Trx } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
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
    await signals.disableJit(trx);
    const [one] = await writeAnalysesOf(deps, trx, outcome, [experiment]);
    return one ?? nothingAnalysed(experiment.key, experiment.state);
  });
}

/** What one experiment's new snapshots gave before anything is written. */
interface PlannedAnalyses {
  readonly experiment: Experiment;
  /** One row per analysed snapshot, oldest first; the last is the decision's when there is one. */
  readonly rows: (NewAnalysis & { readonly look: ReturnType<typeof analyseSnapshot> })[];
}

/**
 * The analyses of experiments of one outcome, each locked by the caller (the
 * outcome share-locked first, then the experiments, as `analyseExperiment`
 * does for one): read their new snapshots (series, latest analyses and points
 * in three statements however many experiments), fix each statistical plan
 * once, compute one row per snapshot (`analyseSnapshot`), insert every row in
 * one statement and apply each experiment's first decision. The poll (batched
 * or not) calls it in the transaction that stored the points; the caller turns JIT off for its
 * transaction (`signals.disableJit`), as its statements' estimates grow with the tables.
 *
 * @returns one outcome per experiment, in the order given.
 */
export async function writeAnalysesOf(
  deps: RuntimeDeps,
  trx: Trx,
  outcome: Outcome,
  locked: readonly Experiment[],
): Promise<AnalysisOutcome[]> {
  if (locked.length === 0) return [];
  const spec = specOf(outcome);
  const ids = locked.map((e) => e.id);
  // Read, not created: a series holds points only once a poll has created it. An insert here would wait
  // for a poll that has updated the series and waits in turn for this experiment's row (a deadlock).
  const seriesOf = new Map<string, Map<string, signals.SeriesRecord>>();
  for (const s of await signals.listSeriesOfExperiments(trx, ids)) {
    if (s.experimentId === null) continue;
    const mine = seriesOf.get(s.experimentId) ?? new Map<string, signals.SeriesRecord>();
    mine.set(`${s.role}:${s.metric}`, s);
    seriesOf.set(s.experimentId, mine);
  }
  const latest = await signals.latestAnalyses(trx, ids);
  const wanted = [
    `primary:${spec.signal.metric}`,
    ...(spec.constraints?.guardrails ?? []).map((g) => `guardrail:${g.metric}`),
    ...(spec.secondary_metrics ?? []).map((m) => `secondary:${m.metric}`),
  ];
  const requests: { seriesId: string; since: Date | null }[] = [];
  for (const e of locked) {
    const mine = seriesOf.get(e.id);
    if (mine?.get(wanted[0] as string) === undefined) continue;
    for (const key of wanted) {
      const series = mine.get(key);
      if (series !== undefined) requests.push({ seriesId: series.id, since: latest.get(e.id)?.ts ?? null });
    }
  }
  const points = await signals.pointsSince(trx, requests);

  const planned: PlannedAnalyses[] = [];
  for (const experiment of locked) {
    const mine = seriesOf.get(experiment.id) ?? new Map<string, signals.SeriesRecord>();
    planned.push(await planAnalyses(trx, spec, experiment, mine, latest.get(experiment.id) ?? null, points));
  }
  const inserted = await signals.insertAnalyses(
    trx,
    planned.flatMap((p) => p.rows.map(({ look: _look, ...row }) => row)),
  );

  const out: AnalysisOutcome[] = [];
  for (const { experiment, rows } of planned) {
    const mine = rows.filter((r) => inserted.has(signals.analysisKey(r.experimentId, r.ts)));
    const looks = mine.map((r) => ({ action: r.look.decision.action, reason: r.look.decision.reason }));
    const decided = mine.find((r) => r.look.decision.action !== "continue");
    if (decided === undefined) {
      out.push({
        experimentKey: experiment.key,
        analysed: mine.length,
        looks,
        decision: null,
        webhooks: [],
        state: experiment.state,
      });
      continue;
    }
    const { look } = decided;
    const applied = await applyDecision(deps, trx, experiment, outcome, look.decision, decided.ts, {
      // The webhook payload's published snake_case (docs/worker.md#webhooks).
      effect: look.head.effect,
      ci: look.head.ci,
      relative_lift: look.head.relativeLift,
      p_value: look.head.pValue,
    });
    out.push({
      experimentKey: experiment.key,
      analysed: mine.length,
      looks,
      decision: { ...look.decision, ts: decided.ts },
      webhooks: [applied.webhookId],
      state: applied.state,
    });
  }
  return out;
}

/** An arm's newest totals at or before `ts`, from a series' points as of the last analysis and after it. */
function totalsAtOrBefore(points: signals.SeriesPointsSince, ts: Date): Map<string, SnapshotTotals> {
  const totals = totalsOf(points.base);
  for (const [arm, t] of totalsOf(points.after.filter((p) => p.ts <= ts))) totals.set(arm, t);
  return totals;
}

/**
 * One experiment's analyses of its snapshots after its last analysis, up to and
 * including the first that decides (nothing written but the statistical plan,
 * fixed once at the first complete snapshot).
 */
async function planAnalyses(
  trx: Trx,
  spec: OutcomeSpec,
  experiment: Experiment,
  seriesByMetric: ReadonlyMap<string, signals.SeriesRecord>,
  last: signals.AnalysisRecord | null,
  points: ReadonlyMap<string, signals.SeriesPointsSince>,
): Promise<PlannedAnalyses> {
  const none: PlannedAnalyses = { experiment, rows: [] };
  const primary = seriesByMetric.get(`primary:${spec.signal.metric}`);
  const primaryPoints = primary === undefined ? undefined : points.get(primary.id);
  if (primaryPoints === undefined) return none;
  const snapshots = snapshotsAfter(totalsOf(primaryPoints.base), primaryPoints.after);
  if (snapshots.length === 0) return none;

  const firstTs = primaryPoints.firstTs;
  const startedAt = new Date(
    Math.min(
      experiment.launchedAt?.getTime() ?? Number.POSITIVE_INFINITY,
      firstTs?.getTime() ?? Number.POSITIVE_INFINITY,
    ),
  );
  const pointsOf = (role: string, metric: string) => {
    const series = seriesByMetric.get(`${role}:${metric}`);
    return series === undefined ? undefined : points.get(series.id);
  };
  let plan = experiment.statsPlan;
  let carry: AnalysisCarry = last?.details.carry ?? EMPTY_CARRY;
  const rows: PlannedAnalyses["rows"] = [];

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
      const mine = pointsOf("guardrail", g.metric);
      if (mine !== undefined) guardrailTotals.set(g.metric, totalsAtOrBefore(mine, snapshot.ts));
    }
    // Each secondary metric's likewise: reported, never decides.
    const secondaryTotals = new Map<string, Map<string, SnapshotTotals>>();
    for (const m of spec.secondary_metrics ?? []) {
      const mine = pointsOf("secondary", m.metric);
      if (mine !== undefined) secondaryTotals.set(m.metric, totalsAtOrBefore(mine, snapshot.ts));
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
    rows.push({
      workspaceId: experiment.workspaceId,
      experimentId: experiment.id,
      ts: snapshot.ts,
      ...look.row,
      look,
    });
    if (look.decision.action !== "continue") break;
  }
  return { experiment, rows };
}

function nothingAnalysed(experimentKey: string | null, state: string): AnalysisOutcome {
  return { experimentKey, analysed: 0, looks: [], decision: null, webhooks: [], state };
}
