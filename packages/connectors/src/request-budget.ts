/**
 * Request budgets of rate-limited sources (Mixpanel, Amplitude, GA4, PostHog,
 * Datadog): each vendor documents how many query requests a project, property
 * or organisation may send an hour and how many at once. One budget per key
 * (e.g. API base URL and project) is shared by every connector of this
 * process that reads it; it counts each request before it is sent, refuses a
 * read whose requests do not all fit (nothing is sent then), holds the
 * vendor's concurrency limit, and stops sending after the vendor's own 429
 * until its reset time. What it refuses is a `rate_limited` ConnectorError
 * with `retryAfterMs`, which the poll scheduler turns into a slower poll
 * (docs/connectors.md, "Rate limits and source health").
 */
import pLimit, { type LimitFunction } from "p-limit";
import { ConnectorError } from "./connector-error";

/** A vendor's documented limits, and who shares them. */
export interface RequestBudgetLimits {
  /** The connector type, e.g. `amplitude`. */
  readonly vendor: string;
  /** Who shares the budget, for messages: `project 123`, `property 987`. */
  readonly scope: string;
  /** Identity of the shared budget, e.g. `${baseUrl}|${projectId}`; every connector with this key shares it. */
  readonly key: string;
  /** Documented requests an hour (a per-minute or per-day limit converted), ≥ 1. */
  readonly perHour: number;
  /** Documented concurrent requests, ≥ 1. */
  readonly maxConcurrent: number;
  /** The vendor's page documenting the limits. */
  readonly docs: string;
  /** What `perHour` counts, plural, for notes: `queries` (the default), or e.g. `query-cost units` (Amplitude). */
  readonly unit?: string;
}

/** What one budget shows the dashboard and `/healthz`. */
export interface RequestBudgetState {
  readonly vendor: string;
  readonly scope: string;
  /** Requests counted in the last hour by this process. */
  readonly spent: number;
  readonly perHour: number;
  /** Until when no request is sent, after the vendor's 429 or because the hour's budget is spent; null when none. */
  readonly pausedUntil: Date | null;
}

/** A shared hourly request budget; see {@link requestBudget}. */
export interface RequestBudget {
  readonly limits: RequestBudgetLimits;
  /**
   * Counts `count` requests of the hour's budget, all or none, before any is
   * sent: a read that needs 2 requests when 1 is left is refused whole.
   *
   * @param count requests the read will send, a whole number ≥ 1
   * @throws ConnectorError `rate_limited` with `retryAfterMs` (when enough of the
   *   hour's requests will have aged out, or when a pause after a 429 ends);
   *   nothing is counted then
   * @throws RangeError when `count` is not a whole number ≥ 1
   */
  spend(count: number): void;
  /**
   * Runs one request within the vendor's concurrency limit. A request still
   * waiting for its turn when `signal` aborts leaves the queue and rejects with
   * the signal's reason, without running.
   */
  run<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /**
   * After the vendor's own 429: no request is counted or sent until
   * `retryAfterMs` milliseconds have passed (from `Retry-After` or the vendor's
   * reset header). A longer pause already in force is kept.
   */
  pause(retryAfterMs: number): void;
  /** Milliseconds left of a pause after the vendor's 429 (0 when none); a budget spent for the hour is not a pause. */
  pauseRemainingMs(): number;
  /** The budget as of now. */
  state(): RequestBudgetState;
}

/**
 * What one poll round of a connector costs its source's budget: the poll
 * scheduler stretches the poll interval of the series sharing a budget so
 * that they stay within `plannedPerHour`.
 */
export interface PollCost {
  readonly limits: RequestBudgetLimits;
  /** Requests an hour planned for polling, ≤ `limits.perHour`: the rest is left for retries and people using the tool. */
  readonly plannedPerHour: number;
  /** Requests one poll round of `experiments` experiments with `arms` arms each costs, ≥ 1. */
  requestsPerRound(experiments: number, arms: number): number;
}

const HOUR_MS = 3_600_000;

class HourlyBudget implements RequestBudget {
  /** Epoch ms of each request counted in the last hour, oldest first. */
  private spentAt: number[] = [];
  /** Epoch ms before which nothing is sent (after a 429). */
  private pausedUntilMs = 0;
  private readonly limit: LimitFunction;

  constructor(readonly limits: RequestBudgetLimits) {
    this.limit = pLimit(limits.maxConcurrent);
  }

  private prune(now: number): void {
    const first = this.spentAt.findIndex((at) => at > now - HOUR_MS);
    this.spentAt = first === -1 ? [] : this.spentAt.slice(first);
  }

  spend(count: number): void {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a whole number ≥ 1, got ${count}`);
    const now = Date.now();
    const { vendor, scope, perHour, docs, unit = "API requests" } = this.limits;
    if (this.pausedUntilMs > now) {
      const waitMs = this.pausedUntilMs - now;
      throw new ConnectorError(
        "rate_limited",
        `${vendor}: ${scope} hit the API's rate limit; not querying again for ${Math.ceil(waitMs / 1000)}s (limits: ${docs})`,
        { retryAfterMs: waitMs, details: { vendor, scope, perHour } },
      );
    }
    this.prune(now);
    const spent = this.spentAt.length;
    if (spent + count > perHour) {
      // The request that must age out before `count` fit; a read larger than the whole budget waits an hour.
      const oldest = this.spentAt[Math.max(0, spent + count - perHour - 1)] ?? now;
      const retryAfterMs = Math.max(1000, oldest + HOUR_MS - now);
      throw new ConnectorError(
        "rate_limited",
        `${vendor}: ${scope} has spent ${spent} of its ${perHour} ${unit} this hour and this read needs ${count}; nothing was sent: retry in ${Math.ceil(retryAfterMs / 1000)}s, or poll less often (limits: ${docs})`,
        { retryAfterMs, details: { vendor, scope, spent, needed: count, perHour } },
      );
    }
    for (let i = 0; i < count; i++) this.spentAt.push(now);
  }

  run<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.limit(async () => {
        // Aborted while queued: give the slot back without running.
        if (settled) return;
        try {
          const value = await request();
          if (!settled) resolve(value);
        } catch (error) {
          if (!settled) reject(error);
        } finally {
          settled = true;
          signal?.removeEventListener("abort", onAbort);
        }
      }).catch(() => undefined);
    });
  }

  pause(retryAfterMs: number): void {
    const until = Date.now() + Math.max(0, retryAfterMs);
    if (until > this.pausedUntilMs) this.pausedUntilMs = until;
  }

  pauseRemainingMs(): number {
    return Math.max(0, this.pausedUntilMs - Date.now());
  }

  state(): RequestBudgetState {
    const now = Date.now();
    this.prune(now);
    const { vendor, scope, perHour } = this.limits;
    const spent = this.spentAt.length;
    let pausedUntil: Date | null = this.pausedUntilMs > now ? new Date(this.pausedUntilMs) : null;
    const oldest = this.spentAt[0];
    if (pausedUntil === null && spent >= perHour && oldest !== undefined) pausedUntil = new Date(oldest + HOUR_MS);
    return { vendor, scope, spent, perHour, pausedUntil };
  }
}

const budgets = new Map<string, HourlyBudget>();

/**
 * The budget of `limits.vendor` and `limits.key`, one per process: every
 * connector that reads the same project (property, organisation) shares it.
 * The limits of the first caller hold.
 *
 * @throws RangeError when `perHour` or `maxConcurrent` is not a whole number ≥ 1
 */
export function requestBudget(limits: RequestBudgetLimits): RequestBudget {
  for (const field of ["perHour", "maxConcurrent"] as const) {
    const value = limits[field];
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`${field} must be a whole number ≥ 1, got ${value}`);
  }
  const id = `${limits.vendor}\u0000${limits.key}`;
  let budget = budgets.get(id);
  if (budget === undefined) {
    budget = new HourlyBudget(limits);
    budgets.set(id, budget);
  }
  return budget;
}

/** Every budget of this process, as of now, for `/healthz` and the dashboard. */
export function requestBudgetStates(): RequestBudgetState[] {
  return [...budgets.values()].map((b) => b.state());
}

/** Forgets every budget: what was counted and every pause (tests). */
export function resetRequestBudgets(): void {
  budgets.clear();
}
