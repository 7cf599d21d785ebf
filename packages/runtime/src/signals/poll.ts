/**
 * Polling: read an experiment's signals (primary metric and guardrails) through
 * their connectors and store the cumulative per-arm points.
 *
 * At-least-once safe: points are upserted by (series, arm, ts), so a poll that
 * runs twice stores nothing twice. Each series keeps a "polled until" mark (the
 * as-of time of its newest point); the next poll asks the connector for
 * everything after it, so windows missed while no worker ran are caught up.
 */

import { type ArmAggregate, ConnectorError, type SignalConnector } from "@outcome-runtime/connectors";
import { DomainError, type Experiment, type Outcome } from "@outcome-runtime/core";
import { type DbOrTrx, experiments, outcomes, signals, sourceHealth } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import { inTransaction, nowOf, type RuntimeDeps } from "../context";
import { flagsOf } from "../flags/flag-access";
import { specOf } from "../spec-of";
import type { ConnectorProvider } from "./connectors";
import { escalateConsecutiveErrors } from "./error-escalation";
import { describePollError } from "./poll-errors";
import { isRateLimited, isThrottled, sourceRead } from "./source-reads";

export { describePollError } from "./poll-errors";

/**
 * Where a poll starts reading (exclusive): the series' newest stored point
 * (`polledUntil`), less the outcome's `signal.lookback` (seconds) so that
 * values the source revised or completed late are read again; the epoch when
 * nothing is stored yet.
 */
export function readFrom(polledUntil: Date | null, lookbackSeconds: number | undefined): Date {
  if (polledUntil === null) return new Date(0);
  return lookbackSeconds === undefined ? polledUntil : new Date(polledUntil.getTime() - lookbackSeconds * 1000);
}

/** One read of one metric through its connector (a connector call), successful or not. */
export interface SourceRead {
  /** The connector's type (`postgres`, `mixpanel`, `csv`, …): a short, fixed list. */
  readonly connector: string;
  /** What the read was for: the experiment's primary metric, a guardrail, or the outcome's own signal. */
  readonly role: "primary" | "guardrail" | "secondary" | "outcome";
  readonly result: "ok" | "error";
  /** Rows the connector returned (0 on error). */
  readonly rows: number;
  /** Wall time of the read, seconds: finding the connector and its call. */
  readonly durationSeconds: number;
  /** The error's stable code (`describePollError`), on error. */
  readonly errorCode?: string;
}

/**
 * What the polls report as they happen, for the operators' metrics (the
 * worker feeds Prometheus with it). Called outside any transaction that could
 * still roll back what it reports; it must not throw.
 */
export interface SignalObserver {
  /** After every connector call of a poll. */
  sourceRead(read: SourceRead): void;
  /** After a decision a poll applied on its own: the consecutive-error pause (reason `errors`). */
  decisionApplied(decision: { readonly action: string; readonly reason: string }): void;
}

export interface SignalDeps extends RuntimeDeps {
  readonly connectors: ConnectorProvider;
  /** Timeout of one connector call, ms (default 60 000). */
  readonly pollTimeoutMs?: number;
  /** Told of every connector call and of the pauses polls apply (metrics); none by default. */
  readonly observer?: SignalObserver;
}

/** Seconds elapsed since `startMs` (a `performance.now()` reading). */
function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

/**
 * Time one connector call and tell `observer` about it, success or failure.
 * The call's result is returned and its error rethrown unchanged. A connector
 * that cannot make this read at all (`unsupported`: an outcome's connector
 * without a series query) made no call, and is not reported.
 */
export async function observedRead<T>(
  observer: SignalObserver | undefined,
  what: { readonly connector: string; readonly role: SourceRead["role"] },
  read: () => Promise<T>,
  rowsOf: (result: T) => number,
): Promise<{ result: T; read: SourceRead }> {
  const start = performance.now();
  try {
    const result = await read();
    const report: SourceRead = {
      ...what,
      result: "ok",
      rows: rowsOf(result),
      durationSeconds: secondsSince(start),
    };
    observer?.sourceRead(report);
    return { result, read: report };
  } catch (error) {
    if (error instanceof ConnectorError && error.code === "unsupported") throw error;
    observer?.sourceRead({
      ...what,
      result: "error",
      rows: 0,
      durationSeconds: secondsSince(start),
      errorCode: describePollError(error).code,
    });
    throw error;
  }
}

/** A metric an experiment is measured on: the outcome's signal, a guardrail or a secondary metric. */
export interface MeasuredMetric {
  readonly metric: string;
  readonly role: "primary" | "guardrail" | "secondary";
  readonly kind: "proportion" | "mean" | "ratio";
  readonly connector: { type: string } & Record<string, unknown>;
}

/** The primary metric, the guardrails and the secondary metrics of an outcome, from its spec. */
export function measuredMetrics(spec: OutcomeSpec): MeasuredMetric[] {
  const primary: MeasuredMetric = {
    metric: spec.signal.metric,
    role: "primary",
    kind: spec.signal.kind,
    connector: spec.signal.connector as MeasuredMetric["connector"],
  };
  const guardrails = (spec.constraints?.guardrails ?? []).map(
    (g): MeasuredMetric => ({
      metric: g.metric,
      role: "guardrail",
      kind: g.kind,
      connector: g.connector as MeasuredMetric["connector"],
    }),
  );
  const secondary = (spec.secondary_metrics ?? []).map(
    (s): MeasuredMetric => ({
      metric: s.metric,
      role: "secondary",
      kind: s.kind,
      connector: s.connector as MeasuredMetric["connector"],
    }),
  );
  return [primary, ...guardrails, ...secondary];
}

/** A metric whose read failed or was held back this poll. */
export interface MetricFailure {
  readonly metric: string;
  readonly role: MeasuredMetric["role"];
  readonly connector: string;
  readonly code: string;
  readonly message: string;
  /** `true` when the source's rate limit holds the metric back (not counted as a failed poll). */
  readonly throttled: boolean;
}

export type PollResult =
  | { readonly status: "skipped"; readonly experimentKey: string; readonly state: string }
  | {
      readonly status: "polled";
      readonly experimentKey: string;
      /** Newest as-of time stored for the primary metric (null: no data yet). */
      readonly newestTs: Date | null;
      readonly inserted: number;
      readonly updated: number;
      readonly unchanged: number;
      /** Each connector call, primary metric first, then the guardrails. */
      readonly reads: readonly SourceRead[];
      /**
       * The metrics not stored this poll: a source that failed (the others were stored; the poll counts as
       * failed) or one whose rate limit holds it back (read again once it allows, from where it stopped).
       */
      readonly failures: readonly MetricFailure[];
    };

async function loadExperiment(
  db: DbOrTrx,
  experimentId: string,
): Promise<{ experiment: Experiment; outcome: Outcome }> {
  const experiment = await experiments.findExperimentById(db, experimentId);
  if (experiment === null)
    throw new DomainError("not_found", `no experiment ${experimentId}`, { experiment: experimentId });
  const outcome = await outcomes.findOutcome(db, experiment.workspaceId, experiment.outcomeId);
  if (outcome === null) throw new DomainError("not_found", `no outcome ${experiment.outcomeId}`, {});
  return { experiment, outcome };
}

/**
 * The points a poll stores from a connector's rows: those of the experiment's
 * `arms`, a row without `ts` dated `at` (the end of the window), with the
 * covariate and the denominator when the source gave them.
 */
export function pointInputs(rows: readonly ArmAggregate[], arms: readonly string[], at: Date): signals.PointInput[] {
  return rows
    .filter((r) => arms.includes(r.arm))
    .map((r) => ({
      arm: r.arm,
      ts: r.ts ?? at,
      units: r.units,
      sum: r.sum,
      sum_sq: r.sum_sq,
      ...(r.covariate === undefined ? {} : { covariate: r.covariate }),
      ...(r.denominator === undefined ? {} : { denominator: r.denominator }),
    }));
}

/**
 * Poll one running experiment: fetch every metric, then store the points of
 * those read in one transaction. A non-running experiment is skipped (its
 * scheduler is about to be removed). Each source's read is recorded on its
 * series (source health). One source's outage does not stop the others: the
 * metrics read are stored and analysed, and the failure is recorded on the
 * experiment (it counts towards `consecutive_error_limit`). A source's rate
 * limit holds its metric back until the source allows a read (no request is
 * sent meanwhile, and it is not a failed poll); the watermark stays, so the
 * next read catches up.
 *
 * @throws ConnectorError (after recording it) when no metric could be read and one failed for another
 *   reason than a rate limit, so the job is retried.
 */
export async function pollExperiment(deps: SignalDeps, experimentId: string): Promise<PollResult> {
  const { experiment, outcome } = await loadExperiment(deps.db, experimentId);
  // A launch a flag provider has not confirmed yet: no unit is in the test, nothing to read.
  if (experiment.state !== "running" || (experiment.launchedAt === null && flagsOf(outcome) !== null))
    return { status: "skipped", experimentKey: experiment.key, state: experiment.state };
  const spec = specOf(outcome);
  const arms = experiment.arms.map((a) => a.name);
  const at = nowOf(deps);
  const fetched: { series: signals.SeriesRecord; rows: ArmAggregate[] }[] = [];
  const reads: SourceRead[] = [];
  const failures: (MetricFailure & { error: unknown })[] = [];
  const health: sourceHealth.SourceReadRecord[] = [];
  try {
    for (const m of measuredMetrics(spec)) {
      const series = await signals.ensureSeries(deps.db, {
        workspaceId: experiment.workspaceId,
        outcomeId: outcome.id,
        experimentId: experiment.id,
        metric: m.metric,
        role: m.role,
        kind: m.kind,
      });
      const what = { metric: m.metric, role: m.role, connector: m.connector.type };
      if (isThrottled(series, at)) {
        // The source asked for a pause: no request until it ends; the watermark keeps what is left to read.
        failures.push({ ...what, ...throttleOf(series), throttled: true, error: null });
        continue;
      }
      const used = { type: m.connector.type, instance: null as SignalConnector | null };
      try {
        const { result: rows, read } = await observedRead(
          deps.observer,
          { connector: m.connector.type, role: m.role },
          async () => {
            const connector = await deps.connectors.get(experiment.workspaceId, m.connector, m.kind);
            used.instance = connector;
            return connector.fetchArmAggregates(
              {
                experimentKey: experiment.key,
                arms,
                from: readFrom(series.polledUntil, spec.signal.lookback),
                to: at,
                // A replay at `speed` is anchored at the launch; without it the connector anchors at `from`,
                // which moves with every poll.
                ...(experiment.launchedAt === null ? {} : { startedAt: experiment.launchedAt }),
              },
              AbortSignal.timeout(deps.pollTimeoutMs ?? 60_000),
            );
          },
          (result) => result.length,
        );
        reads.push(read);
        fetched.push({ series, rows });
        health.push(sourceRead([series.id], used, at));
      } catch (error) {
        const described = describePollError(error);
        failures.push({ ...what, ...described, throttled: isRateLimited(error), error });
        health.push(sourceRead([series.id], used, at, error));
      }
    }
  } finally {
    // What each source did, before anything can fail the poll: an outage must show on the page.
    await sourceHealth.recordSourceReads(deps.db, health).catch(() => undefined);
  }
  const hard = failures.find((f) => !f.throttled);
  const shown = failures.map(({ error: _error, ...f }) => f);
  if (hard !== undefined && fetched.length === 0) {
    await recordFailedPoll(deps, experiment.id, at, hard);
    throw hard.error;
  }
  const result = await inTransaction(deps.db, async (trx) => {
    let inserted = 0;
    let updated = 0;
    let unchanged = 0;
    let newestTs: Date | null = null;
    for (const { series, rows } of fetched) {
      const points = pointInputs(rows, arms, at);
      const report = await signals.upsertPoints(trx, series, points, at);
      inserted += report.inserted;
      updated += report.updated;
      unchanged += report.unchanged;
      if (series.role === "primary" && points.length > 0) {
        newestTs = new Date(Math.max(...points.map((p) => p.ts.getTime())));
      }
    }
    // Held back by a rate limit only: not a failed poll, and not a successful one either.
    if (hard !== undefined) await signals.recordExperimentPoll(trx, experiment.id, at, errorOf(hard));
    else if (fetched.length > 0) await signals.recordExperimentPoll(trx, experiment.id, at, null);
    return {
      status: "polled" as const,
      experimentKey: experiment.key,
      newestTs,
      inserted,
      updated,
      unchanged,
      reads,
      failures: shown,
    };
  });
  if (hard !== undefined) await escalate(deps, experiment.id);
  return result;
}

/** The code and message recorded on the experiment for a metric's failure, naming the metric. */
function errorOf(failure: MetricFailure): { code: string; message: string } {
  return {
    code: failure.code,
    message: `${failure.role} ${failure.metric} (${failure.connector}): ${failure.message}`,
  };
}

/** A throttled series' reason, as a failure shows it. */
function throttleOf(series: signals.SeriesRecord): { code: string; message: string } {
  return {
    code: "rate_limited",
    message: `held back by the source's rate limit until ${series.throttledUntil?.toISOString() ?? "later"}; the next read starts at ${series.polledUntil?.toISOString() ?? "the beginning"}`,
  };
}

/** Record a failed poll on the experiment, then let the consecutive-error limit act. */
async function recordFailedPoll(deps: SignalDeps, experimentId: string, at: Date, failure: MetricFailure) {
  await signals.recordExperimentPoll(deps.db, experimentId, at, errorOf(failure));
  await escalate(deps, experimentId);
}

/**
 * The 5th failure in a row (decision_rules.consecutive_error_limit) pauses the experiment. Its own failure
 * must not hide the poll's error; the next failed poll tries the escalation again.
 */
async function escalate(deps: SignalDeps, experimentId: string): Promise<void> {
  const escalation = await escalateConsecutiveErrors(deps, experimentId).catch(() => null);
  if (escalation !== null) deps.observer?.decisionApplied(escalation.decision);
}
