/**
 * Source health as polls see it: each read's result recorded on its series
 * (`sourceHealth.recordSourceReads`), and the throttle a source's rate-limit
 * answer sets. A throttled series is not read again before the source allows
 * it (no request is sent), and its watermark stays where it was, so the read
 * after the throttle catches up on everything since: no window is lost.
 */
import { ConnectorError, requestBudgetStates, type SignalConnector } from "@outcome-runtime/connectors";
import { type DbOrTrx, type signals, sourceHealth } from "@outcome-runtime/db";
import { describePollError } from "./poll-errors";

/** How long a series is held back after a rate-limit answer that said nothing of when to retry: 60 s. */
export const DEFAULT_THROTTLE_MS = 60_000;

/** Whether `error` is the source's rate limit (its own 429, or the runtime's budget of its requests). */
export function isRateLimited(error: unknown): error is ConnectorError {
  return error instanceof ConnectorError && error.code === "rate_limited";
}

/** Whether the series may not be read at `at`: a rate limit holds it back. */
export function isThrottled(series: Pick<signals.SeriesRecord, "throttledUntil">, at: Date): boolean {
  return series.throttledUntil !== null && series.throttledUntil.getTime() > at.getTime();
}

/**
 * The record of one read of `seriesIds` through `connector` (its type; its
 * description when it was created) at `at`: `ok` without an error, a throttle
 * until `at + retryAfterMs` (or {@link DEFAULT_THROTTLE_MS}) for a rate limit,
 * else the error's code and message.
 */
export function sourceRead(
  seriesIds: readonly string[],
  connector: { readonly type: string; readonly instance: SignalConnector | null },
  at: Date,
  error?: unknown,
): sourceHealth.SourceReadRecord {
  const base = { seriesIds, connector: connector.type, source: describeSafely(connector.instance), at };
  if (error === undefined) return { ...base, result: { status: "ok" } };
  const described = describePollError(error);
  if (isRateLimited(error)) {
    const waitMs = error.retryAfterMs ?? DEFAULT_THROTTLE_MS;
    return {
      ...base,
      result: {
        status: "throttled",
        code: described.code,
        message: described.message,
        until: new Date(at.getTime() + Math.max(1000, waitMs)),
      },
    };
  }
  return { ...base, result: { status: "error", code: described.code, message: described.message } };
}

function describeSafely(connector: SignalConnector | null): string | null {
  if (connector === null) return null;
  try {
    return connector.describe();
  } catch {
    return null;
  }
}

/** What the worker's `/healthz` shows of the sources: those throttled now, and each request budget. */
export interface SourcesStatus {
  /** Sources whose rate limit holds polls back now, by connector and description (no workspace data). */
  readonly throttled: readonly {
    readonly connector: string | null;
    readonly source: string | null;
    readonly series: number;
    readonly until: string;
    readonly note: string | null;
  }[];
  /** The hourly request budget of each rate-limited source this process reads (`request-budget.ts`). */
  readonly budgets: readonly {
    readonly vendor: string;
    readonly scope: string;
    readonly spent: number;
    readonly perHour: number;
    readonly pausedUntil: string | null;
  }[];
}

/** The sources throttled at `at` (every workspace) and this process's request budgets. */
export async function sourcesStatus(db: DbOrTrx, at: Date): Promise<SourcesStatus> {
  const throttled = await sourceHealth.listThrottledSources(db, at);
  return {
    throttled: throttled.map((t) => ({ ...t, until: t.until.toISOString() })),
    budgets: requestBudgetStates().map((b) => ({ ...b, pausedUntil: b.pausedUntil?.toISOString() ?? null })),
  };
}
