/**
 * The outcome's own signal: polled like an experiment's, stored as a series of
 * `ts, value` points (arm `all`), and compared with the target. An active
 * outcome becomes `achieved` when its target is reached and `missed` when its
 * horizon passes first.
 */

import { ConnectorError } from "@outcome-runtime/connectors";
import type { Outcome } from "@outcome-runtime/core";
import { outcomes, signals } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import { inTransaction, nowOf, workerCaller } from "../context";
import { moveOutcome } from "../move-outcome";
import { specOf } from "../spec-of";
import { observedRead, readFrom, type SignalDeps } from "./poll";

export type OutcomePollResult =
  | { readonly status: "skipped"; readonly state: string }
  | {
      readonly status: "polled";
      readonly value: number | null;
      readonly goal: number | null;
      readonly state: string;
      /** Why no series was read (the connector has no series query), if so. */
      readonly note: string | null;
    };

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
 * Poll an active outcome's signal and close the outcome when its target is met
 * (`achieved`) or its horizon has passed (`missed`), with an audit event whose
 * actor is `worker`. A connector without a series query still lets the horizon
 * close the outcome.
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
  try {
    const connector = await deps.connectors.get(
      outcome.workspaceId,
      spec.signal.connector as { type: string },
      spec.signal.kind,
    );
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
  } catch (error) {
    if (error instanceof ConnectorError && error.code === "unsupported") note = error.message;
    else failure = error;
  }
  const all = await signals.listPoints(deps.db, series.id, null);
  const end = horizonEnd(spec, outcome.activatedAt);
  // Without a declared baseline, the signal's level when the outcome was activated (a series may reach
  // far back before it); its first point when nothing is that old.
  const activated = outcome.activatedAt;
  const atActivation = activated === null ? undefined : all.filter((p) => p.ts <= activated).at(-1);
  const first = (atActivation ?? all[0])?.sum ?? null;
  // Only the signal within the horizon counts: a level first reached after the horizon is a miss.
  const latest = (end === null ? all : all.filter((p) => p.ts <= end)).at(-1)?.sum ?? null;
  const goal = targetLevel(spec, first);
  const reached =
    latest !== null && goal !== null && (spec.target.direction === "increase" ? latest >= goal : latest <= goal);
  const passed = end !== null && at.getTime() >= end.getTime();
  let state: string = outcome.state;
  if (reached || passed) {
    state = await closeOutcome(deps, outcome, reached ? "achieve" : "miss", { value: latest, goal, horizonEnd: end });
  }
  if (failure !== null && state === "active") throw failure;
  return { status: "polled", value: latest, goal, state, note };
}

async function closeOutcome(
  deps: SignalDeps,
  outcome: Outcome,
  action: "achieve" | "miss",
  facts: { value: number | null; goal: number | null; horizonEnd: Date | null },
): Promise<string> {
  return inTransaction(deps.db, async (trx) => {
    // Locked, then read again: a person's abandon (or another worker's poll) may have closed it meanwhile.
    const current = await outcomes.findOutcome(trx, outcome.workspaceId, outcome.id, { forUpdate: true });
    if (current === null || current.state !== "active") return current?.state ?? "missing";
    const moved = await moveOutcome(trx, workerCaller(outcome.workspaceId), nowOf(deps), {
      outcome: current,
      action,
      context: { targetMet: action === "achieve", horizonPassed: action === "miss" },
      facts: { value: facts.value, goal: facts.goal, horizon_end: facts.horizonEnd },
    });
    return moved.to;
  });
}
