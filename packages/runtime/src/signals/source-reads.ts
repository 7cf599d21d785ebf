/**
 * Source health as polls see it: each read's result recorded on its series
 * (`sourceHealth.recordSourceReads`), and the throttle a source's rate-limit
 * answer sets. A throttled series is not read again before the source allows
 * it (no request is sent), and its watermark stays where it was, so the read
 * after the throttle catches up on everything since: no window is lost.
 */
import { ConnectorError, type SignalConnector } from "@outcome-runtime/connectors";
import type { signals, sourceHealth } from "@outcome-runtime/db";
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
