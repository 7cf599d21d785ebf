/**
 * Flag rollouts: the outbox of the flag providers. One row per experiment of
 * an outcome with `flags`: the split the provider should serve (`desired`,
 * numbered by `version`), whether and when it was applied, the attempts
 * while the provider fails, the lease of the worker writing it, and what the
 * last drift check read. Weights are fractions of the units by arm name.
 */
import { type Selectable, sql } from "kysely";
import type { DbOrTrx } from "../database";
import type { FlagRolloutsTable } from "../schema";

/** Where a rollout stands: waiting to be written, written, or waiting for an approval in the provider. */
export type FlagRolloutStatus = "pending" | "applied" | "waiting_for_approval";

/** One experiment's flag rollout. Times are Dates; weights fractions by arm name. */
export interface FlagRollout {
  readonly experimentId: string;
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly provider: string;
  readonly flagKey: string;
  /** The experiment's arms with their configured weights, control first. */
  readonly arms: readonly { readonly name: string; readonly weight: number }[];
  /** The split wanted now. */
  readonly desired: Readonly<Record<string, number>>;
  /** What asked for it: `launch`, `pause`, `resume`, `extend`, `ship`, `roll_back`, `iterate`. */
  readonly reason: string;
  readonly version: number;
  /** When this version was asked for (the kill's time for a rollback). */
  readonly requestedAt: Date;
  readonly status: FlagRolloutStatus;
  readonly appliedVersion: number | null;
  readonly appliedAt: Date | null;
  readonly appliedAnswer: Readonly<Record<string, unknown>> | null;
  /** Failed attempts at the current version. */
  readonly attempts: number;
  readonly lastAttemptAt: Date | null;
  readonly lastError: { readonly code: string; readonly message: string } | null;
  readonly nextAttemptAt: Date;
  readonly leaseUntil: Date | null;
  /** What the provider served at the last read (`{ exists, enabled, variations, weights, version }`). */
  readonly observed: Readonly<Record<string, unknown>> | null;
  readonly observedAt: Date | null;
  /** The drift found at the last read, null when it served what was applied. */
  readonly drift: Readonly<Record<string, unknown>> | null;
  readonly driftAt: Date | null;
}

function toRollout(row: Selectable<FlagRolloutsTable>): FlagRollout {
  return {
    experimentId: row.experiment_id,
    workspaceId: row.workspace_id,
    outcomeId: row.outcome_id,
    provider: row.provider,
    flagKey: row.flag_key,
    arms: row.arms,
    desired: row.desired.weights,
    reason: row.reason,
    version: row.version,
    requestedAt: row.requested_at,
    status: row.status as FlagRolloutStatus,
    appliedVersion: row.applied_version,
    appliedAt: row.applied_at,
    appliedAnswer: row.applied_answer,
    attempts: row.attempts,
    lastAttemptAt: row.last_attempt_at,
    lastError:
      row.last_error_code === null
        ? null
        : { code: row.last_error_code, message: row.last_error ?? row.last_error_code },
    nextAttemptAt: row.next_attempt_at,
    leaseUntil: row.lease_until,
    observed: row.observed,
    observedAt: row.observed_at,
    drift: row.drift,
    driftAt: row.drift_at,
  };
}

/** Two splits are the same when every arm's fraction agrees to 10⁻⁶. */
export function sameWeights(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const name of names) if (Math.abs((a[name] ?? 0) - (b[name] ?? 0)) > 1e-6) return false;
  return true;
}

/** What a move of the experiment asks the provider to serve. */
export interface RolloutRequest {
  readonly experimentId: string;
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly provider: string;
  readonly flagKey: string;
  readonly arms: readonly { readonly name: string; readonly weight: number }[];
  readonly weights: Readonly<Record<string, number>>;
  readonly reason: string;
  readonly at: Date;
}

/**
 * Ask for a split, inside the caller's transaction (the move's): a first
 * request creates the row at version 1; a different split than the one wanted
 * now makes a new version, pending, due at once, its attempts reset; the same
 * split again changes nothing (the answer says so).
 *
 * @returns the row and whether a new version was made
 */
export async function requestRollout(
  db: DbOrTrx,
  request: RolloutRequest,
): Promise<{ rollout: FlagRollout; changed: boolean }> {
  const current = await db
    .selectFrom("flag_rollouts")
    .selectAll()
    .where("experiment_id", "=", request.experimentId)
    .forUpdate()
    .executeTakeFirst();
  if (current !== undefined && sameWeights(current.desired.weights, request.weights)) {
    return { rollout: toRollout(current), changed: false };
  }
  const values = {
    provider: request.provider,
    flag_key: request.flagKey,
    arms: JSON.stringify(request.arms),
    desired: JSON.stringify({ weights: request.weights }),
    reason: request.reason,
    requested_at: request.at,
    status: "pending",
    attempts: 0,
    last_error_code: null,
    last_error: null,
    next_attempt_at: request.at,
  };
  const row =
    current === undefined
      ? await db
          .insertInto("flag_rollouts")
          .values({
            experiment_id: request.experimentId,
            workspace_id: request.workspaceId,
            outcome_id: request.outcomeId,
            version: 1,
            ...values,
          })
          .returningAll()
          .executeTakeFirstOrThrow()
      : await db
          .updateTable("flag_rollouts")
          .set({ ...values, version: current.version + 1 })
          .where("experiment_id", "=", request.experimentId)
          .returningAll()
          .executeTakeFirstOrThrow();
  return { rollout: toRollout(row), changed: true };
}

/** One experiment's rollout, or null when its outcome has no flag provider. */
export async function findRollout(db: DbOrTrx, experimentId: string): Promise<FlagRollout | null> {
  const row = await db
    .selectFrom("flag_rollouts")
    .selectAll()
    .where("experiment_id", "=", experimentId)
    .executeTakeFirst();
  return row === undefined ? null : toRollout(row);
}

/** The rollouts of these experiments (any workspace: the caller scoped the ids), by experiment id. */
export async function findRollouts(db: DbOrTrx, experimentIds: readonly string[]): Promise<Map<string, FlagRollout>> {
  if (experimentIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("flag_rollouts")
    .selectAll()
    .where("experiment_id", "in", [...experimentIds])
    .execute();
  return new Map(rows.map((r) => [r.experiment_id, toRollout(r)]));
}

/**
 * Take the lease of a rollout that is not applied, due (`next_attempt_at` ≤ now)
 * and not leased by another worker: only one worker writes a version at a time.
 *
 * @returns the leased row, or null when there is nothing to do or another worker holds it
 */
export async function claimRollout(
  db: DbOrTrx,
  experimentId: string,
  owner: string,
  now: Date,
  leaseMs: number,
): Promise<FlagRollout | null> {
  const row = await db
    .updateTable("flag_rollouts")
    .set({ lease_until: new Date(now.getTime() + leaseMs), lease_owner: owner })
    .where("experiment_id", "=", experimentId)
    .where("status", "<>", "applied")
    .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
    .where("next_attempt_at", "<=", now)
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toRollout(row);
}

/**
 * Record that `version` was applied at `at` with the provider's answer, once:
 * only when the row still wants that version and has not recorded it.
 * Releases the lease. Also starts a period of the weight history.
 *
 * @returns the row when this call recorded it; null when the version moved on or was already recorded
 */
export async function markApplied(
  db: DbOrTrx,
  experimentId: string,
  version: number,
  at: Date,
  answer: Readonly<Record<string, unknown>>,
): Promise<FlagRollout | null> {
  const row = await db
    .updateTable("flag_rollouts")
    .set({
      status: "applied",
      applied_version: version,
      applied_at: at,
      applied_answer: JSON.stringify(answer),
      lease_until: null,
      lease_owner: null,
      last_error_code: null,
      last_error: null,
      drift: null,
      drift_at: null,
    })
    .where("experiment_id", "=", experimentId)
    .where("version", "=", version)
    .where("status", "<>", "applied")
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) return null;
  await recordWeights(db, row.workspace_id, experimentId, at, row.desired.weights, "applied");
  return toRollout(row);
}

/** The provider holds the change for an approval: checked again at `nextAt`. Releases the lease. */
export async function markWaitingForApproval(
  db: DbOrTrx,
  experimentId: string,
  version: number,
  at: Date,
  answer: Readonly<Record<string, unknown>>,
  nextAt: Date,
): Promise<void> {
  await db
    .updateTable("flag_rollouts")
    .set({
      status: "waiting_for_approval",
      applied_answer: JSON.stringify(answer),
      last_attempt_at: at,
      next_attempt_at: nextAt,
      lease_until: null,
      lease_owner: null,
    })
    .where("experiment_id", "=", experimentId)
    .where("version", "=", version)
    .where("status", "<>", "applied")
    .execute();
}

/** A failed attempt at `version`: counted, its error kept, tried again at `nextAt`. Releases the lease. */
export async function markAttemptFailed(
  db: DbOrTrx,
  experimentId: string,
  version: number,
  at: Date,
  error: { readonly code: string; readonly message: string },
  nextAt: Date,
): Promise<void> {
  await db
    .updateTable("flag_rollouts")
    .set((eb) => ({
      attempts: eb("attempts", "+", 1),
      last_attempt_at: at,
      last_error_code: error.code,
      last_error: error.message.slice(0, 2000),
      next_attempt_at: nextAt,
      lease_until: null,
      lease_owner: null,
    }))
    .where("experiment_id", "=", experimentId)
    .where("version", "=", version)
    .execute();
}

/** Give the lease back without recording anything (the version moved on meanwhile): due again at once. */
export async function releaseRollout(db: DbOrTrx, experimentId: string, owner: string): Promise<void> {
  await db
    .updateTable("flag_rollouts")
    .set({ lease_until: null, lease_owner: null })
    .where("experiment_id", "=", experimentId)
    .where("lease_owner", "=", owner)
    .execute();
}

/** Experiment ids of the rollouts due now and not leased, oldest first, at most `limit`. */
export async function dueRollouts(
  db: DbOrTrx,
  now: Date,
  limit: number,
): Promise<{ experimentId: string; version: number; dueMs: number; leaseUntilMs: number }[]> {
  const rows = await db
    .selectFrom("flag_rollouts")
    .select(["experiment_id", "version", "next_attempt_at", "lease_until"])
    .where("status", "<>", "applied")
    .where("next_attempt_at", "<=", now)
    .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
    .orderBy("next_attempt_at")
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    experimentId: r.experiment_id,
    version: r.version,
    dueMs: r.next_attempt_at.getTime(),
    leaseUntilMs: r.lease_until?.getTime() ?? 0,
  }));
}

/** Rollouts not applied yet, every workspace, oldest request first (for `/healthz`), at most `limit`. */
export async function unappliedRollouts(db: DbOrTrx, limit: number): Promise<FlagRollout[]> {
  const rows = await db
    .selectFrom("flag_rollouts")
    .selectAll()
    .where("status", "<>", "applied")
    .orderBy("requested_at")
    .limit(limit)
    .execute();
  return rows.map(toRollout);
}

/** How many rollouts are not applied, every workspace. */
export async function countUnapplied(db: DbOrTrx): Promise<number> {
  const row = await db
    .selectFrom("flag_rollouts")
    .select(sql<number>`count(*)::int`.as("n"))
    .where("status", "<>", "applied")
    .executeTakeFirstOrThrow();
  return row.n;
}

/**
 * Record what the provider served at a drift check, and the drift found
 * (null: none). Returns whether the drift is new (none, or a different one,
 * was recorded before), so the caller audits it once.
 */
export async function recordObservation(
  db: DbOrTrx,
  experimentId: string,
  at: Date,
  observed: Readonly<Record<string, unknown>>,
  drift: Readonly<Record<string, unknown>> | null,
): Promise<{ newDrift: boolean }> {
  const before = await db
    .selectFrom("flag_rollouts")
    .select("drift")
    .where("experiment_id", "=", experimentId)
    .forUpdate()
    .executeTakeFirst();
  if (before === undefined) return { newDrift: false };
  // jsonb gives its keys back in its own order: compare the values, not the texts.
  const same = canonicalJson(before.drift ?? null) === canonicalJson(drift);
  await db
    .updateTable("flag_rollouts")
    .set({
      observed: JSON.stringify(observed),
      observed_at: at,
      ...(same ? {} : { drift: drift === null ? null : JSON.stringify(drift), drift_at: drift === null ? null : at }),
    })
    .where("experiment_id", "=", experimentId)
    .execute();
  return { newDrift: drift !== null && !same };
}

/** JSON with every object's keys sorted, so equal values read back from jsonb compare equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Start a period of the weight history at `since` (a second record at the same instant is ignored). */
export async function recordWeights(
  db: DbOrTrx,
  workspaceId: string,
  experimentId: string,
  since: Date,
  weights: Readonly<Record<string, number>>,
  source: "applied" | "drift",
): Promise<void> {
  await db
    .insertInto("flag_weight_history")
    .values({ experiment_id: experimentId, workspace_id: workspaceId, since, weights: JSON.stringify(weights), source })
    .onConflict((oc) => oc.columns(["experiment_id", "since"]).doNothing())
    .execute();
}

/** The weights the provider served, each from its `since`, oldest first. */
export async function weightHistory(
  db: DbOrTrx,
  experimentId: string,
): Promise<{ since: Date; weights: Record<string, number>; source: string }[]> {
  const rows = await db
    .selectFrom("flag_weight_history")
    .select(["since", "weights", "source"])
    .where("experiment_id", "=", experimentId)
    .orderBy("since")
    .execute();
  return rows.map((r) => ({ since: r.since, weights: r.weights, source: r.source }));
}
