/**
 * Batched polling: the running experiments of one outcome read together, one
 * source request per metric and batch instead of one per experiment. Each
 * experiment's points are then stored in a transaction of its own, so a bad
 * answer for one experiment (or a failed store) leaves the others polled.
 */
import {
  type ArmAggregate,
  type BatchAggregates,
  ConnectorError,
  type SignalConnector,
} from "@outcome-runtime/connectors";
import type { Experiment } from "@outcome-runtime/core";
import { experiments as experimentRows, outcomes, signals, sourceHealth } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import type { ArmTotals } from "@outcome-runtime/stats";
import pLimit from "p-limit";
import { inTransaction, nowOf } from "../context";
import { flagsOf } from "../flags/flag-access";
import { specOf } from "../spec-of";
import { type AnalysisOutcome, writeAnalysesOf } from "./analyse";
import { escalateConsecutiveErrors } from "./error-escalation";
import {
  describePollError,
  type MeasuredMetric,
  measuredMetrics,
  observedRead,
  pointInputs,
  readFrom,
  type SignalDeps,
  type SourceRead,
} from "./poll";
import { harmEvidence } from "./snapshot-analysis";
import { isRateLimited, isThrottled, sourceRead } from "./source-reads";

/** Experiments read in one source request when the worker's `POLL_BATCH_SIZE` is not set. */
export const DEFAULT_POLL_BATCH_SIZE = 500;

/**
 * Experiments stored and analysed in one transaction by default: large enough that a round costs a
 * handful of statements per hundred experiments, small enough that their row locks are held for tens of
 * milliseconds (a gate decision or a pause from the API waits at most that long).
 */
export const DEFAULT_STORE_SIZE = 100;

/** What one batched poll of an outcome's running experiments did. */
export interface BatchPollResult {
  readonly outcomeId: string;
  /** Running experiments of the outcome this round. */
  readonly experiments: number;
  /** Source requests made, every metric included (one per metric and batch in the batched form). */
  readonly requests: number;
  /** Each source request, in the order made. */
  readonly reads: readonly SourceRead[];
  /** Experiments whose points were stored and analysed, with the others of their store group in one transaction. */
  readonly polled: readonly {
    readonly experimentId: string;
    readonly experimentKey: string;
    readonly inserted: number;
    readonly updated: number;
    readonly unchanged: number;
    /** The analysis of the new snapshots (its decision, the webhooks to deliver after commit). */
    readonly analysis: AnalysisOutcome;
    /** Wall time of the transaction that stored it (its store group's), seconds. */
    readonly durationSeconds: number;
  }[];
  /**
   * Experiments whose poll failed this round, with the error recorded on each: every read failed, or one
   * source failed while the others' points were stored (`partial`).
   */
  readonly failed: readonly {
    readonly experimentId: string;
    readonly experimentKey: string;
    readonly code: string;
    readonly message: string;
    readonly partial: boolean;
  }[];
  /** Reads held back by a source's rate limit (no request sent, or the source's own 429): metric and experiments. */
  readonly throttled: readonly { readonly metric: string; readonly role: string; readonly experiments: number }[];
  /** Pauses applied because an experiment failed too many polls in a row (`consecutive_error_limit`). */
  readonly escalations: readonly { readonly experimentId: string; readonly action: string; readonly reason: string }[];
}

/** One experiment a batched poll stored and analysed. */
type Polled = BatchPollResult["polled"][number];

/** A metric held back for an experiment: its source's rate limit asked for a pause (no request was sent). */
const HELD = Symbol("held back by the source's rate limit");

/** What a metric's read gave one experiment: rows, the error, or nothing asked because the source is throttled. */
type Answer = ArmAggregate[] | Error | typeof HELD;

/** Splits `items` into slices of at most `size`. */
function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Poll every running experiment of an outcome together. For each metric (the
 * outcome's signal, each guardrail, each secondary metric) a connector that
 * reads in batches (`fetchBatchAggregates`) is asked once per batch of at most
 * `batchSize` experiments; one that does not is asked once per experiment, as
 * the single poll does. Then the experiments are stored in groups of at most
 * `storeSize`, each group in one transaction: every point upserted, every new
 * snapshot analysed (decisions included) and every poll mark set in a dozen
 * statements for the whole group, no queue round-trip per experiment. When a
 * group's transaction fails, each of its experiments is stored again in a
 * transaction of its own, so one experiment's failure leaves the others
 * polled and analysed (and the first failure is thrown: the job is retried).
 * Exactly one analysis per (experiment, snapshot) holds as in the single poll:
 * the experiments are locked (in id order) for the transaction and analyses are
 * keyed by (experiment, ts). An experiment whose read failed
 * (its batch's request, or its own rows) gets the error recorded instead,
 * counts towards `consecutive_error_limit`, and is retried next round. A
 * failure of the runtime's own database is thrown (the job is retried).
 *
 * @param options.batchSize experiments per source request, ≥ 1 (default {@link DEFAULT_POLL_BATCH_SIZE}).
 * @param options.concurrency store groups stored at once, each in its own transaction (default 1).
 * @param options.storeSize experiments per store transaction, ≥ 1 (default {@link DEFAULT_STORE_SIZE}).
 * @param options.onStored called for each experiment once its group's transaction has committed (for the
 *   experiments of a group at once), before the round goes on (to deliver a pause's webhooks at once, not at the end of the round); what it throws fails
 *   the round (the job is retried; what committed stays committed).
 * @param options.afterSuspects awaited once the suspects (the experiments whose new rows point to harm) are
 *   stored and acted on, before the rest of the round: the worker lets their pauses' webhooks go out first.
 * @throws RangeError when `batchSize`, `concurrency` or `storeSize` is not a whole number ≥ 1.
 */
export async function pollExperimentBatches(
  deps: SignalDeps,
  outcomeId: string,
  options: {
    readonly batchSize?: number;
    readonly concurrency?: number;
    readonly storeSize?: number;
    readonly onStored?: (polled: BatchPollResult["polled"][number]) => Promise<void> | void;
    readonly afterSuspects?: () => Promise<void>;
  } = {},
): Promise<BatchPollResult> {
  const batchSize = options.batchSize ?? DEFAULT_POLL_BATCH_SIZE;
  const concurrency = options.concurrency ?? 1;
  const storeSize = options.storeSize ?? DEFAULT_STORE_SIZE;
  for (const [name, value] of Object.entries({ batchSize, concurrency, storeSize })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1, got ${value}`);
  }
  const outcome = await outcomes.findOutcomeById(deps.db, outcomeId);
  const empty = {
    outcomeId,
    experiments: 0,
    requests: 0,
    reads: [],
    polled: [],
    failed: [],
    escalations: [],
    throttled: [],
  };
  if (outcome === null) return empty;
  // A launch a flag provider has not confirmed yet is left out: no unit is in its test.
  const flagged = flagsOf(outcome) !== null;
  const running = (
    await experimentRows.listExperiments(deps.db, outcome.workspaceId, {
      outcomeId,
      state: "running",
    })
  ).filter((e) => !flagged || e.launchedAt !== null);
  if (running.length === 0) return empty;
  const spec = specOf(outcome);
  const at = nowOf(deps);
  const ids = running.map((e) => e.id);
  const reads: SourceRead[] = [];
  /** Per experiment id: per metric index, the rows read, the error, or {@link HELD}. */
  const answers = new Map<string, Answer[]>(ids.map((id) => [id, []]));
  const series: Map<string, signals.SeriesRecord>[] = [];
  const health: sourceHealth.SourceReadRecord[] = [];
  const throttled: BatchPollResult["throttled"][number][] = [];
  const seriesIdsOf = (byExperiment: Map<string, signals.SeriesRecord>, list: readonly Experiment[]) =>
    list.flatMap((e) => {
      const one = byExperiment.get(e.id);
      return one === undefined ? [] : [one.id];
    });

  const metrics = measuredMetrics(spec);
  for (const [m, metric] of metrics.entries()) {
    const byExperiment = await signals.ensureExperimentSeries(
      deps.db,
      {
        workspaceId: outcome.workspaceId,
        outcomeId,
        metric: metric.metric,
        role: metric.role,
        kind: metric.kind,
      },
      ids,
    );
    series.push(byExperiment);
    const fromOf = (e: Experiment) => readFrom(byExperiment.get(e.id)?.polledUntil ?? null, spec.signal.lookback);
    // A source whose rate limit asked for a pause is not asked again before it ends; the watermark waits.
    const held = running.filter((e) => {
      const one = byExperiment.get(e.id);
      return one !== undefined && isThrottled(one, at);
    });
    for (const e of held) (answers.get(e.id) as Answer[])[m] = HELD;
    if (held.length > 0) throttled.push({ metric: metric.metric, role: metric.role, experiments: held.length });
    const open = running.filter((e) => !held.includes(e));
    if (open.length === 0) continue;
    let connector: SignalConnector;
    try {
      connector = await deps.connectors.get(outcome.workspaceId, metric.connector, metric.kind);
    } catch (error) {
      for (const e of open) (answers.get(e.id) as Answer[])[m] = asError(error);
      health.push(
        sourceRead(seriesIdsOf(byExperiment, open), { type: metric.connector.type, instance: null }, at, error),
      );
      continue;
    }
    const used = { type: metric.connector.type, instance: connector };
    const batched = connector.fetchBatchAggregates?.bind(connector);
    if (batched === undefined) {
      for (const e of open) {
        const answer = await readOne(deps, connector, metric, e, fromOf(e), at, reads);
        (answers.get(e.id) as Answer[])[m] = answer;
        health.push(sourceRead(seriesIdsOf(byExperiment, [e]), used, at, answer instanceof Error ? answer : undefined));
      }
      continue;
    }
    for (const batch of chunks(open, batchSize)) {
      let answer: BatchAggregates | Error;
      try {
        const { result, read } = await observedRead(
          deps.observer,
          { connector: metric.connector.type, role: metric.role },
          () =>
            batched(
              {
                experiments: batch.map((e) => ({
                  experimentKey: e.key,
                  arms: e.arms.map((a) => a.name),
                  from: fromOf(e),
                  ...(e.launchedAt === null ? {} : { startedAt: e.launchedAt }),
                })),
                to: at,
              },
              AbortSignal.timeout(deps.pollTimeoutMs ?? 60_000),
            ),
          (answered) => [...answered.values()].reduce((n, r) => n + (Array.isArray(r) ? r.length : 0), 0),
        );
        reads.push(read);
        answer = result;
      } catch (error) {
        answer = asError(error);
        reads.push(failedRead(metric, error));
      }
      const fine: Experiment[] = [];
      for (const e of batch) {
        const mine = answer instanceof Error ? answer : (answer.get(e.key) ?? []);
        const from = fromOf(e);
        // The request read from the batch's earliest start: keep what is new for this experiment.
        (answers.get(e.id) as Answer[])[m] =
          mine instanceof Error ? mine : mine.filter((r) => r.ts === null || r.ts > from);
        if (mine instanceof Error && !(answer instanceof Error)) {
          health.push(sourceRead(seriesIdsOf(byExperiment, [e]), used, at, mine));
        } else if (!(mine instanceof Error)) fine.push(e);
      }
      if (answer instanceof Error) health.push(sourceRead(seriesIdsOf(byExperiment, batch), used, at, answer));
      else health.push(sourceRead(seriesIdsOf(byExperiment, fine), used, at));
    }
  }
  // What each source did, before anything can fail the round: an outage must show on the page.
  await sourceHealth.recordSourceReads(deps.db, health).catch(() => undefined);

  const polled: Polled[] = [];
  const failed: BatchPollResult["failed"][number][] = [];
  const escalations: BatchPollResult["escalations"][number][] = [];
  const limit = pLimit(concurrency);
  const escalateFor = async (e: Experiment): Promise<void> => {
    const escalation = await escalateConsecutiveErrors(deps, e.id).catch(() => null);
    if (escalation !== null) {
      deps.observer?.decisionApplied(escalation.decision);
      escalations.push({ experimentId: e.id, ...escalation.decision });
    }
  };
  const recordFailure = async (e: Experiment, error: { code: string; message: string }): Promise<void> => {
    await signals.recordExperimentPoll(deps.db, e.id, at, error);
    failed.push({ experimentId: e.id, experimentKey: e.key, ...error, partial: false });
    await escalateFor(e);
  };
  /** The first failure of an experiment's metrics that is not a rate limit, as recorded on it; null when none. */
  const hardFailureOf = (e: Experiment): { code: string; message: string } | null => {
    for (const [m, answer] of (answers.get(e.id) ?? []).entries()) {
      if (!(answer instanceof Error) || isRateLimited(answer)) continue;
      const metric = metrics[m] as MeasuredMetric;
      const described = describePollError(answer);
      return {
        code: described.code,
        message: `${metric.role} ${metric.metric} (${metric.connector.type}): ${described.message}`,
      };
    }
    return null;
  };
  /**
   * Store and analyse experiments whose reads succeeded, all in one transaction: the outcome share-locked,
   * then the experiments locked and read again (the order of an analysis, a gate decision and an abandon;
   * one paused or decided since the list was read is skipped), every point upserted in one statement, the
   * analyses read and written in a handful more. Stores nothing when the outcome is gone.
   */
  const storeTogether = async (group: readonly Experiment[]) => {
    const started = performance.now();
    const stored = await inTransaction(deps.db, async (trx) => {
      await signals.disableJit(trx);
      const lockedOutcome = await outcomes.findOutcome(trx, outcome.workspaceId, outcomeId, { forShare: true });
      if (lockedOutcome === null) return [];
      const current = (
        await experimentRows.lockExperiments(
          trx,
          group.map((e) => e.id),
        )
      ).filter((e) => e.state === "running" && e.outcomeId === outcomeId);
      const entries: { series: signals.SeriesRecord; points: signals.PointInput[]; experimentId: string }[] = [];
      for (const e of current) {
        const arms = e.arms.map((a) => a.name);
        for (const [m, rows] of (answers.get(e.id) ?? []).entries()) {
          const s = series[m]?.get(e.id);
          if (s === undefined || !Array.isArray(rows)) continue;
          entries.push({ series: s, points: pointInputs(rows, arms, at), experimentId: e.id });
        }
      }
      const reports = await signals.upsertPointsOfSeries(trx, entries, at);
      // A source that failed while the others were read: the points read are stored, the poll counts as failed.
      const clean = current.filter((e) => hardFailureOf(e) === null);
      await signals.recordExperimentPoll(
        trx,
        clean.map((e) => e.id),
        at,
        null,
      );
      for (const e of current) {
        const failure = hardFailureOf(e);
        if (failure !== null) await signals.recordExperimentPoll(trx, e.id, at, failure);
      }
      // Analysed in the same transaction: the points and their analyses commit together, or neither.
      const analyses = await writeAnalysesOf(deps, trx, lockedOutcome, current);
      const counts = new Map(current.map((e) => [e.id, { inserted: 0, updated: 0, unchanged: 0 }]));
      for (const entry of entries) {
        const report = reports.get(entry.series.id);
        const sum = counts.get(entry.experimentId);
        if (report === undefined || sum === undefined) continue;
        sum.inserted += report.inserted;
        sum.updated += report.updated;
        sum.unchanged += report.unchanged;
      }
      return current.map((e, i) => ({
        experimentId: e.id,
        experimentKey: e.key,
        ...(counts.get(e.id) ?? { inserted: 0, updated: 0, unchanged: 0 }),
        analysis: analyses[i],
      }));
    });
    const durationSeconds = (performance.now() - started) / 1000;
    const committed: Polled[] = [];
    for (const one of stored) {
      if (one.analysis !== undefined) committed.push({ ...one, analysis: one.analysis, durationSeconds });
    }
    polled.push(...committed);
    for (const one of committed) {
      const e = group.find((g) => g.id === one.experimentId);
      const failure = e === undefined ? null : hardFailureOf(e);
      if (e === undefined || failure === null) continue;
      failed.push({ experimentId: e.id, experimentKey: e.key, ...failure, partial: true });
      await escalateFor(e);
    }
    return committed;
  };
  const ready: Experiment[] = [];
  const failedReads: [Experiment, { code: string; message: string }][] = [];
  for (const e of running) {
    const mine = answers.get(e.id) ?? [];
    const failure = hardFailureOf(e);
    // Stored when any metric was read; the metrics whose source failed or is throttled wait for a later poll.
    if (mine.some((r) => Array.isArray(r))) ready.push(e);
    else if (failure !== null) failedReads.push([e, failure]);
  }
  /** Stores `list` in groups; every group is finished (committed or failed) before the first failure is thrown. */
  const storeGroups = async (list: readonly Experiment[], size = storeSize) => {
    const settled = await Promise.allSettled(
      chunks(list, size).map((group) =>
        limit(async () => {
          let committed: Polled[] = [];
          try {
            committed = await storeTogether(group);
          } catch (groupError) {
            if (group.length === 1) throw groupError;
            // One experiment's failure (a deadlock with a gate decision, a row the database refuses) must not
            // cost the others their round: each is stored again in a transaction of its own, where it fails
            // alone; the first such failure is thrown afterwards, so the job is retried for it.
            let first: unknown = null;
            for (const e of group) {
              try {
                const one = await storeTogether([e]);
                committed.push(...one);
                for (const c of one) await options.onStored?.(c);
              } catch (error) {
                first ??= error;
              }
            }
            if (first !== null) throw first;
            return;
          }
          await Promise.all(committed.map((c) => options.onStored?.(c)));
        }),
      ),
    );
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (rejected !== undefined) throw rejected.reason;
  };
  await Promise.all(failedReads.map(([e, error]) => limit(() => recordFailure(e, error))));
  // The suspects first, on their own: a harmful experiment's pause waits for the few groups of experiments
  // whose new rows point to harm, not for the whole round (the analyses decide; this only orders the work).
  const evidence = new Map(ready.map((e) => [e.id, harmEvidenceOf(spec, metrics, e, answers.get(e.id) ?? [], at)]));
  const byEvidence = [...ready].sort((a, b) => (evidence.get(b.id) ?? 0) - (evidence.get(a.id) ?? 0));
  const suspects = byEvidence.filter((e) => (evidence.get(e.id) ?? 0) >= SUSPECT_EVIDENCE);
  // In small groups: a decision is a dozen statements of its own, and a group commits all its pauses at once.
  await storeGroups(suspects, Math.min(storeSize, SUSPECT_GROUP_SIZE));
  if (suspects.length > 0) await options.afterSuspects?.();
  await storeGroups(byEvidence.slice(suspects.length));
  return {
    outcomeId,
    experiments: running.length,
    requests: reads.length,
    reads,
    polled,
    failed,
    escalations,
    throttled,
  };
}

/** Harm evidence ({@link harmEvidence}) from which an experiment is stored ahead of the round: z ≥ 2. */
const SUSPECT_EVIDENCE = 2;

/** Suspects stored per transaction: their pauses commit a few at a time, not all with the slowest. */
const SUSPECT_GROUP_SIZE = 5;

/**
 * The harm evidence of an experiment's new rows: per arm its newest row of the signal and of each guardrail
 * (secondary metrics never decide), harmful against the target's direction and against each guardrail's.
 */
function harmEvidenceOf(
  spec: OutcomeSpec,
  metrics: readonly MeasuredMetric[],
  e: Experiment,
  rowsByMetric: readonly Answer[],
  at: Date,
): number {
  const opposite = (d: "increase" | "decrease") => (d === "increase" ? "decrease" : "increase");
  const guardrails = new Map((spec.constraints?.guardrails ?? []).map((g) => [g.metric, g.direction]));
  const measured: { harmful: "increase" | "decrease"; totals: Map<string, ArmTotals> }[] = [];
  for (const [m, metric] of metrics.entries()) {
    const rows = rowsByMetric[m];
    if (!Array.isArray(rows) || metric.role === "secondary") continue;
    const desired = metric.role === "primary" ? spec.target.direction : guardrails.get(metric.metric);
    if (desired === undefined) continue;
    const newest = new Map<string, ArmAggregate>();
    for (const r of rows) {
      const seen = newest.get(r.arm);
      if (seen === undefined || (r.ts ?? at) >= (seen.ts ?? at)) newest.set(r.arm, r);
    }
    measured.push({
      harmful: opposite(desired),
      totals: new Map([...newest].map(([arm, r]) => [arm, { units: r.units, sum: r.sum, sumSq: r.sum_sq }])),
    });
  }
  return harmEvidence(e.arms, measured);
}
/** One experiment's read through a connector that does not batch: its rows, or the error. */
async function readOne(
  deps: SignalDeps,
  connector: SignalConnector,
  metric: MeasuredMetric,
  e: Experiment,
  from: Date,
  to: Date,
  reads: SourceRead[],
): Promise<ArmAggregate[] | Error> {
  try {
    const { result, read } = await observedRead(
      deps.observer,
      { connector: metric.connector.type, role: metric.role },
      () =>
        connector.fetchArmAggregates(
          {
            experimentKey: e.key,
            arms: e.arms.map((a) => a.name),
            from,
            to,
            ...(e.launchedAt === null ? {} : { startedAt: e.launchedAt }),
          },
          AbortSignal.timeout(deps.pollTimeoutMs ?? 60_000),
        ),
      (rows) => rows.length,
    );
    reads.push(read);
    return result;
  } catch (error) {
    reads.push(failedRead(metric, error));
    return asError(error);
  }
}

/** A failed request as the result lists it (the observer was told by `observedRead`). */
function failedRead(metric: MeasuredMetric, error: unknown): SourceRead {
  return {
    connector: metric.connector.type,
    role: metric.role,
    result: "error",
    rows: 0,
    durationSeconds: 0,
    errorCode: describePollError(error).code,
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new ConnectorError("bad_response", String(error));
}
