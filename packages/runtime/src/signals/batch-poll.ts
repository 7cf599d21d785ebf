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
import { experiments as experimentRows, outcomes, signals } from "@outcome-runtime/db";
import pLimit from "p-limit";
import { inTransaction, nowOf } from "../context";
import { specOf } from "../spec-of";
import { type AnalysisOutcome, writeAnalyses } from "./analyse";
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

/** Experiments read in one source request when the worker's `POLL_BATCH_SIZE` is not set. */
export const DEFAULT_POLL_BATCH_SIZE = 500;

/** What one batched poll of an outcome's running experiments did. */
export interface BatchPollResult {
  readonly outcomeId: string;
  /** Running experiments of the outcome this round. */
  readonly experiments: number;
  /** Source requests made, every metric included (one per metric and batch in the batched form). */
  readonly requests: number;
  /** Each source request, in the order made. */
  readonly reads: readonly SourceRead[];
  /** Experiments whose points were stored and analysed, each in one transaction. */
  readonly polled: readonly {
    readonly experimentId: string;
    readonly experimentKey: string;
    readonly inserted: number;
    readonly updated: number;
    readonly unchanged: number;
    /** The analysis of the new snapshots (its decision, the webhooks to deliver after commit). */
    readonly analysis: AnalysisOutcome;
    /** Wall time of the experiment's transaction, seconds. */
    readonly durationSeconds: number;
  }[];
  /** Experiments whose poll failed this round, with the error recorded on each. */
  readonly failed: readonly {
    readonly experimentId: string;
    readonly experimentKey: string;
    readonly code: string;
    readonly message: string;
  }[];
  /** Pauses applied because an experiment failed too many polls in a row (`consecutive_error_limit`). */
  readonly escalations: readonly { readonly experimentId: string; readonly action: string; readonly reason: string }[];
}

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
 * the single poll does. Then each experiment's points are upserted and its new
 * snapshots analysed (decision included) in a transaction of its own, with its
 * poll mark: no queue round-trip per experiment; an experiment whose read failed
 * (its batch's request, or its own rows) gets the error recorded instead,
 * counts towards `consecutive_error_limit`, and is retried next round. A
 * failure of the runtime's own database is thrown (the job is retried).
 *
 * @param options.batchSize experiments per source request, ≥ 1 (default {@link DEFAULT_POLL_BATCH_SIZE}).
 * @param options.concurrency experiments stored at once, each in its own transaction (default 1).
 * @throws RangeError when `batchSize` or `concurrency` is not a whole number ≥ 1.
 */
export async function pollExperimentBatches(
  deps: SignalDeps,
  outcomeId: string,
  options: { readonly batchSize?: number; readonly concurrency?: number } = {},
): Promise<BatchPollResult> {
  const batchSize = options.batchSize ?? DEFAULT_POLL_BATCH_SIZE;
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a whole number ≥ 1, got ${batchSize}`);
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a whole number ≥ 1, got ${concurrency}`);
  }
  const outcome = await outcomes.findOutcomeById(deps.db, outcomeId);
  const empty = { outcomeId, experiments: 0, requests: 0, reads: [], polled: [], failed: [], escalations: [] };
  if (outcome === null) return empty;
  const running = await experimentRows.listExperiments(deps.db, outcome.workspaceId, {
    outcomeId,
    state: "running",
  });
  if (running.length === 0) return empty;
  const spec = specOf(outcome);
  const at = nowOf(deps);
  const ids = running.map((e) => e.id);
  const reads: SourceRead[] = [];
  /** Per experiment id: per metric index, the rows read, or the error. */
  const answers = new Map<string, (ArmAggregate[] | Error)[]>(ids.map((id) => [id, []]));
  const series: Map<string, signals.SeriesRecord>[] = [];

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
    let connector: SignalConnector;
    try {
      connector = await deps.connectors.get(outcome.workspaceId, metric.connector, metric.kind);
    } catch (error) {
      for (const id of ids) (answers.get(id) as unknown[])[m] = asError(error);
      continue;
    }
    const batched = connector.fetchBatchAggregates?.bind(connector);
    if (batched === undefined) {
      for (const e of running) {
        (answers.get(e.id) as unknown[])[m] = await readOne(deps, connector, metric, e, fromOf(e), at, reads);
      }
      continue;
    }
    for (const batch of chunks(running, batchSize)) {
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
      for (const e of batch) {
        const mine = answer instanceof Error ? answer : (answer.get(e.key) ?? []);
        const from = fromOf(e);
        // The request read from the batch's earliest start: keep what is new for this experiment.
        (answers.get(e.id) as unknown[])[m] =
          mine instanceof Error ? mine : mine.filter((r) => r.ts === null || r.ts > from);
      }
    }
  }

  const polled: BatchPollResult["polled"][number][] = [];
  const failed: BatchPollResult["failed"][number][] = [];
  const escalations: BatchPollResult["escalations"][number][] = [];
  const limit = pLimit(concurrency);
  const store = async (e: Experiment): Promise<void> => {
    const rowsByMetric = answers.get(e.id) ?? [];
    const error = rowsByMetric.find((r): r is Error => r instanceof Error);
    if (error !== undefined) {
      const described = describePollError(error);
      await signals.recordExperimentPoll(deps.db, e.id, at, { code: described.code, message: described.message });
      failed.push({ experimentId: e.id, experimentKey: e.key, code: described.code, message: described.message });
      const escalation = await escalateConsecutiveErrors(deps, e.id).catch(() => null);
      if (escalation !== null) {
        deps.observer?.decisionApplied(escalation.decision);
        escalations.push({ experimentId: e.id, ...escalation.decision });
      }
      return;
    }
    const arms = e.arms.map((a) => a.name);
    const started = performance.now();
    const stored = await inTransaction(deps.db, async (trx) => {
      // The outcome share-locked, then the experiment locked and read again (the order of an analysis, a gate
      // decision and an abandon): a pause or a decision since the list was read means this round skips it.
      const lockedOutcome = await outcomes.findOutcome(trx, e.workspaceId, e.outcomeId, { forShare: true });
      const current = await experimentRows.findExperimentById(trx, e.id, { forUpdate: true });
      if (current === null || current.state !== "running" || lockedOutcome === null) return null;
      let inserted = 0;
      let updated = 0;
      let unchanged = 0;
      for (const [m, rows] of rowsByMetric.entries()) {
        const s = series[m]?.get(e.id);
        if (s === undefined || rows instanceof Error) continue;
        const report = await signals.upsertPoints(trx, s, pointInputs(rows, arms, at), at);
        inserted += report.inserted;
        updated += report.updated;
        unchanged += report.unchanged;
      }
      await signals.recordExperimentPoll(trx, e.id, at, null);
      // Analysed in the same transaction: the points and their analyses commit together, or neither.
      const analysis = await writeAnalyses(deps, trx, current, lockedOutcome);
      return { inserted, updated, unchanged, analysis };
    });
    if (stored !== null) {
      polled.push({
        experimentId: e.id,
        experimentKey: e.key,
        ...stored,
        durationSeconds: (performance.now() - started) / 1000,
      });
    }
  };
  await Promise.all(running.map((e) => limit(() => store(e))));
  return { outcomeId, experiments: running.length, requests: reads.length, reads, polled, failed, escalations };
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
