/**
 * The outcome's own signal: polled like an experiment's, stored as a series of
 * `ts, value` points (arm `all`), and compared with the target. Once the signal
 * has stayed past the target for `target.sustain` (a one-sided bound, see
 * {@link sustainedTarget}), an `achievement_review` gate asks the owner to
 * confirm; approving it marks the outcome `achieved`. An active outcome
 * becomes `missed` when its horizon passes with no such gate pending.
 */

import { ConnectorError, type SignalConnector } from "@outcome-runtime/connectors";
import type { AchievementEvidence, Gate } from "@outcome-runtime/core";
import { gates, outcomes, signals, sourceHealth } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import { levelBound } from "@outcome-runtime/stats";
import { inTransaction, nowOf, workerCaller } from "../context";
import { moveOutcome } from "../move-outcome";
import { ensurePendingGate } from "../open-gate";
import { specOf } from "../spec-of";
import { observedRead, readFrom, type SignalDeps } from "./poll";
import { isRateLimited, isThrottled, sourceRead } from "./source-reads";

export type OutcomePollResult =
  | { readonly status: "skipped"; readonly state: string }
  | {
      readonly status: "polled";
      readonly value: number | null;
      readonly goal: number | null;
      readonly state: string;
      /** Why no series was read (the connector has no series query, or the source's rate limit holds it back), if so. */
      readonly note: string | null;
      /** The sustained-target check: its evidence when it held, why not otherwise. */
      readonly achievement: AchievementCheck;
      /** The pending `achievement_review` gate, and whether this poll opened it. */
      readonly gate: { readonly id: string; readonly opened: boolean } | null;
    };

/** `target.sustain` when the file leaves it out: 7 days, in seconds. */
const DEFAULT_SUSTAIN_SECONDS = 7 * 86_400;
/** Confidence of the one-sided bound a sustained target needs (a fraction). */
const SUSTAIN_CONFIDENCE = 0.95;
/** Fewest points the sustain window holds before the bound is judged. */
export const SUSTAIN_MIN_POINTS = 3;

/** The outcome of {@link sustainedTarget}: the evidence when the target held, or why it did not. */
type AchievementCheck =
  | { readonly sustained: true; readonly evidence: AchievementEvidence }
  | { readonly sustained: false; readonly reason: string };

/** The level the signal must reach: baseline ± relative change, or the absolute value. Null without a baseline. */
export function targetLevel(spec: OutcomeSpec, firstValue: number | null): number | null {
  const t = spec.target;
  if (!t.relative) return t.value;
  const baseline = spec.signal.baseline ?? firstValue;
  if (baseline === null || baseline === undefined) return null;
  return t.direction === "increase" ? baseline * (1 + t.value) : baseline * (1 - t.value);
}

/** When the horizon ends: `activatedAt + seconds`, or the end of the end date (UTC). */
export function horizonEnd(spec: OutcomeSpec, activatedAt: Date | null): Date | null {
  const h = spec.horizon as { seconds?: number; end_date?: string };
  if (h.end_date !== undefined) return new Date(`${h.end_date}T23:59:59.999Z`);
  if (h.seconds !== undefined && activatedAt !== null) return new Date(activatedAt.getTime() + h.seconds * 1000);
  return null;
}

/**
 * Whether an outcome's signal has stayed past its goal for `sustainSeconds`.
 * The window is the points with `ts` in `(latest − sustain, latest]`; it holds
 * when (1) the series reaches back a whole window (a point at or before
 * `latest − sustain`), (2) the window has at least {@link SUSTAIN_MIN_POINTS}
 * points, (3) the one-sided {@link SUSTAIN_CONFIDENCE} Student-t bound of their
 * mean is past the goal (lower bound for `increase`, upper for `decrease`;
 * `levelBound` in @outcome-runtime/stats), and (4) the latest point is past
 * the goal too. One good point, or a good mean the latest point has fallen
 * back from, does not count.
 *
 * @param points the series oldest first, only those that may count (within the
 *   horizon, after the window an owner last turned down).
 * @param goal the level to reach, in the signal's units; null without a baseline.
 */
export function sustainedTarget(
  points: readonly { readonly ts: Date; readonly value: number }[],
  goal: number | null,
  direction: "increase" | "decrease",
  sustainSeconds: number,
): AchievementCheck {
  if (goal === null) return { sustained: false, reason: "no goal yet: the signal has no baseline" };
  const latest = points.at(-1);
  if (latest === undefined) return { sustained: false, reason: "no points yet" };
  const past = (v: number) => (direction === "increase" ? v >= goal : v <= goal);
  const start = latest.ts.getTime() - sustainSeconds * 1000;
  const first = points[0] as { ts: Date };
  if (first.ts.getTime() > start) {
    return {
      sustained: false,
      reason: `the series covers ${Math.round((latest.ts.getTime() - first.ts.getTime()) / 1000)} s of the ${sustainSeconds} s target.sustain`,
    };
  }
  const window = points.filter((p) => p.ts.getTime() > start);
  if (window.length < SUSTAIN_MIN_POINTS) {
    return {
      sustained: false,
      reason: `${window.length} point(s) in the target.sustain window; at least ${SUSTAIN_MIN_POINTS} are needed`,
    };
  }
  const side = direction === "increase" ? "lower" : "upper";
  const bound = levelBound(
    window.map((p) => p.value),
    side,
    SUSTAIN_CONFIDENCE,
  );
  if (bound === null) return { sustained: false, reason: "the window's points are not all finite" };
  if (!past(latest.value)) return { sustained: false, reason: `the latest point ${latest.value} is not past ${goal}` };
  if (!past(bound.bound)) {
    return {
      sustained: false,
      reason: `the ${side} ${SUSTAIN_CONFIDENCE * 100}% bound of the window's mean, ${bound.bound}, is not past ${goal}`,
    };
  }
  return {
    sustained: true,
    evidence: {
      goal,
      direction,
      latest: latest.value,
      mean: bound.mean,
      bound: bound.bound,
      confidence: SUSTAIN_CONFIDENCE,
      points: bound.n,
      windowStart: (window[0] as { ts: Date }).ts.toISOString(),
      windowEnd: latest.ts.toISOString(),
      sustainSeconds,
    },
  };
}

/**
 * Poll an active outcome's signal. When its target has been sustained (see
 * {@link sustainedTarget}) an `achievement_review` gate opens for the owner
 * (one at a time; approving it marks the outcome achieved). When the horizon
 * has passed and no such gate is pending, the outcome becomes `missed`, with an
 * audit event whose actor is `worker`. After an owner turns a gate down, only
 * points after that gate's window count, so the runtime asks again once the
 * target has held for another whole window. A connector without a series
 * query still lets the horizon close the outcome.
 *
 * @throws ConnectorError when the connector fails (recorded by the caller's retry).
 */
export async function pollOutcome(deps: SignalDeps, outcomeId: string): Promise<OutcomePollResult> {
  const outcome = await outcomes.findOutcomeById(deps.db, outcomeId);
  if (outcome === null || outcome.state !== "active") return { status: "skipped", state: outcome?.state ?? "missing" };
  const spec = specOf(outcome);
  const at = nowOf(deps);
  const series = await signals.ensureSeries(deps.db, {
    workspaceId: outcome.workspaceId,
    outcomeId: outcome.id,
    experimentId: null,
    metric: spec.signal.metric,
    role: "outcome",
    kind: spec.signal.kind,
  });
  let note: string | null = null;
  // A failing connector must not keep an outcome open past its horizon: remember the error,
  // still check the horizon, and rethrow (for the job's retry) only while the outcome stays active.
  let failure: unknown = null;
  const used = { type: (spec.signal.connector as { type: string }).type, instance: null as SignalConnector | null };
  try {
    if (isThrottled(series, at)) {
      // The source asked for a pause: no request until it ends; the next read starts at the watermark.
      throw new ConnectorError(
        "rate_limited",
        `held back by the source's rate limit until ${series.throttledUntil?.toISOString()}`,
        { retryAfterMs: (series.throttledUntil?.getTime() ?? at.getTime()) - at.getTime() },
      );
    }
    const connector = await deps.connectors.get(
      outcome.workspaceId,
      spec.signal.connector as { type: string },
      spec.signal.kind,
    );
    used.instance = connector;
    const { result: points } = await observedRead(
      deps.observer,
      { connector: (spec.signal.connector as { type: string }).type, role: "outcome" },
      () =>
        connector.fetchOutcomeSeries(
          { from: readFrom(series.polledUntil, spec.signal.lookback), to: at },
          AbortSignal.timeout(deps.pollTimeoutMs ?? 60_000),
        ),
      (result) => result.length,
    );
    await signals.upsertPoints(
      deps.db,
      series,
      points.map((p) => ({ arm: "all", ts: p.ts, units: 1, sum: p.value, sum_sq: p.value * p.value })),
      at,
    );
    await sourceHealth.recordSourceReads(deps.db, [sourceRead([series.id], used, at)]);
  } catch (error) {
    if (error instanceof ConnectorError && error.code === "unsupported") note = error.message;
    else if (isRateLimited(error)) {
      // Not a failure to retry at once: the throttle lets the next scheduled poll catch up.
      note = error.message;
      if (!isThrottled(series, at)) {
        await sourceHealth
          .recordSourceReads(deps.db, [sourceRead([series.id], used, at, error)])
          .catch(() => undefined);
      }
    } else {
      failure = error;
      await sourceHealth.recordSourceReads(deps.db, [sourceRead([series.id], used, at, error)]).catch(() => undefined);
    }
  }
  const all = await signals.listPoints(deps.db, series.id, null);
  const end = horizonEnd(spec, outcome.activatedAt);
  // Without a declared baseline, the signal's level when the outcome was activated (a series may reach
  // far back before it); its first point when nothing is that old.
  const activated = outcome.activatedAt;
  const atActivation = activated === null ? undefined : all.filter((p) => p.ts <= activated).at(-1);
  const first = (atActivation ?? all[0])?.sum ?? null;
  // Only the signal within the horizon counts: a level first reached after the horizon is a miss.
  const within = end === null ? all : all.filter((p) => p.ts <= end);
  const latest = within.at(-1)?.sum ?? null;
  const goal = targetLevel(spec, first);
  const turnedDown = await latestTurnedDownWindow(deps, outcome.id);
  const counted = within
    .filter((p) => turnedDown === null || p.ts > turnedDown)
    .map((p) => ({ ts: p.ts, value: p.sum }));
  const sustain = (spec.target as { sustain?: number }).sustain ?? DEFAULT_SUSTAIN_SECONDS;
  const achievement = sustainedTarget(counted, goal, spec.target.direction, sustain);
  const passed = end !== null && at.getTime() >= end.getTime();
  const settled = await inTransaction(deps.db, async (trx) => {
    // Locked, then read again: a person's abandon (or another worker's poll) may have closed it meanwhile.
    const current = await outcomes.findOutcome(trx, outcome.workspaceId, outcome.id, { forUpdate: true });
    if (current === null || current.state !== "active") return { state: current?.state ?? "missing", gate: null };
    let pending: { gate: Gate; opened: boolean } | null = null;
    const found = await gates.findPendingGate(trx, { outcomeId: current.id, kind: "achievement_review" });
    if (found !== null) pending = { gate: found, opened: false };
    else if (achievement.sustained) {
      pending = await ensurePendingGate(
        trx,
        workerCaller(current.workspaceId),
        current,
        "achievement_review",
        null,
        at,
        { ...achievement.evidence },
      );
    }
    // A pending confirmation holds the miss: the owner decides whether the target was reached in time.
    if (passed && pending === null) {
      const moved = await moveOutcome(trx, workerCaller(current.workspaceId), at, {
        outcome: current,
        action: "miss",
        context: { horizonPassed: true },
        facts: { value: latest, goal, horizon_end: end },
      });
      return { state: moved.to as string, gate: null };
    }
    return {
      state: current.state as string,
      gate: pending === null ? null : { id: pending.gate.id, opened: pending.opened },
    };
  });
  if (failure !== null && settled.state === "active") throw failure;
  return { status: "polled", value: latest, goal, state: settled.state, note, achievement, gate: settled.gate };
}

/**
 * The end of the window of the outcome's latest turned-down `achievement_review`
 * (its evidence's `windowEnd`, else when it was decided); null when none was.
 */
async function latestTurnedDownWindow(deps: SignalDeps, outcomeId: string): Promise<Date | null> {
  const rejected = await gates.latestDecidedGate(deps.db, {
    outcomeId,
    kind: "achievement_review",
    status: "rejected",
  });
  if (rejected === null) return null;
  const windowEnd = (rejected.context as { windowEnd?: unknown }).windowEnd;
  const parsed = typeof windowEnd === "string" ? new Date(windowEnd) : null;
  return parsed !== null && Number.isFinite(parsed.getTime()) ? parsed : (rejected.decision?.decidedAt ?? null);
}
