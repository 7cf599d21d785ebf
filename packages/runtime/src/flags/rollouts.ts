/**
 * The runtime's ownership of the traffic split (docs/flags.md).
 *
 * A move of an experiment whose outcome has a flag provider writes, in the
 * move's transaction, the split the provider should serve
 * ({@link requestFlagRollout}, the rule in `flagSplitFor`). The worker then
 * applies it ({@link applyFlagRollout}): it takes the row's lease (one writer
 * at a time), reads what the provider serves, compares, writes only the
 * difference, and records the version applied with the provider's answer
 * and one audit event (`experiment.rollback_applied` when everyone goes to
 * control, `experiment.rollout_applied` otherwise). While the provider fails
 * the attempts are counted and retried with backoff; the experiment and
 * `/healthz` show "rollback pending since …".
 */
import { type Experiment, flagSplitFor, type Outcome } from "@outcome-runtime/core";
import { audit, experiments, type FlagRollout, flagRollouts, outcomes, type Trx } from "@outcome-runtime/db";
import { type FlagChange, FlagProviderError, type FlagTarget, type ServedFlag } from "@outcome-runtime/flags";
import { auditActor, inTransaction, nowOf, type RuntimeDeps, workerCaller } from "../context";
import type { SourceAccess } from "../signals/source-access";
import { type FlagAccess, flagKeyOf, flagsOf, openFlagProvider } from "./flag-access";

/** What applying a rollout needs besides the database. */
export interface FlagDeps extends RuntimeDeps {
  readonly flags: FlagAccess;
  readonly sources: SourceAccess;
}

/** How long a worker holds a rollout while it talks to the provider at least, ms (a killed worker's lease lapses). */
const FLAG_LEASE_MS = 30_000;
/** The longest wait between attempts while a provider fails, ms. */
const FLAG_MAX_BACKOFF_MS = 300_000;
/** How often a change held for an approval in the provider is checked again, ms. */
const FLAG_APPROVAL_RECHECK_MS = 30_000;

/**
 * The audit action of an applied split: `experiment.rollback_applied` when it
 * takes traffic back to control (a pause, a roll back, an iterate),
 * `experiment.flag_prepared` for the flag created before the build,
 * `experiment.rollout_applied` otherwise (a launch, a resume, an extension, a ship).
 */
function appliedAction(reason: string): string {
  if (reason === "pause" || reason === "roll_back" || reason === "iterate") return "experiment.rollback_applied";
  return reason === "prepare" ? "experiment.flag_prepared" : "experiment.rollout_applied";
}

/** Reasons whose split serves the arms' weights: once applied, the experiment's test has started. */
const SERVES_ARMS = new Set(["launch", "resume", "extend"]);

/**
 * Ask the provider for the split the move `from` → `to` implies, inside the
 * move's transaction; nothing for an outcome without `flags` or a move that
 * changes nothing served.
 *
 * @returns the rollout row when one was asked for (a new version, or the same split already wanted)
 */
export async function requestFlagRollout(
  trx: Trx,
  outcome: Outcome,
  experiment: Experiment,
  from: Experiment["state"],
  to: Experiment["state"],
  at: Date,
): Promise<FlagRollout | null> {
  const flags = flagsOf(outcome);
  if (flags === null) return null;
  const split = flagSplitFor(from, to, experiment.arms);
  if (split === null) return null;
  const { rollout } = await flagRollouts.requestRollout(trx, {
    experimentId: experiment.id,
    workspaceId: experiment.workspaceId,
    outcomeId: outcome.id,
    provider: flags.provider,
    flagKey: flagKeyOf(flags, experiment.key),
    arms: experiment.arms.map((a) => ({ name: a.name, weight: a.weight })),
    weights: split.weights,
    reason: split.reason,
    at,
  });
  return rollout;
}

/** The flag of a rollout as a provider target, serving `weights`. */
function flagTarget(rollout: FlagRollout, experimentKey: string, title: string): FlagTarget {
  return {
    key: rollout.flagKey,
    experimentKey,
    description: `Outcome Runtime experiment ${experimentKey}: ${title}`.slice(0, 300),
    arms: rollout.arms.map((a) => ({ name: a.name, weight: rollout.desired[a.name] ?? 0 })),
  };
}

/** True when the provider serves exactly `weights` on a flag with a variation per arm, on. */
function servesSplit(
  served: ServedFlag | undefined,
  arms: readonly { readonly name: string }[],
  weights: Readonly<Record<string, number>>,
): boolean {
  if (served === undefined || !served.exists || served.weights === null) return false;
  if (!arms.every((a) => served.variations.includes(a.name))) return false;
  return flagRollouts.sameWeights(served.weights, weights);
}

/** The wait before the next attempt after `attempts` failures, ms: 1 s doubling to 5 min, or what the provider asked. */
function flagBackoffMs(attempts: number, retryAfterMs: number | null): number {
  const doubling = Math.min(FLAG_MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 20));
  return Math.min(FLAG_MAX_BACKOFF_MS, Math.max(doubling, retryAfterMs ?? 0));
}

/** What {@link applyFlagRollout} did. */
export type FlagApplyResult =
  | { readonly status: "nothing_to_do" }
  | {
      readonly status: "applied";
      readonly version: number;
      readonly reason: string;
      readonly action: string;
      readonly appliedAt: Date;
      /** True when the provider already served the split: no write was made. */
      readonly unchanged: boolean;
    }
  | { readonly status: "superseded"; readonly version: number }
  | { readonly status: "waiting_for_approval"; readonly version: number; readonly approvalId: string }
  | {
      readonly status: "failed";
      readonly version: number;
      readonly code: string;
      readonly message: string;
      readonly retryInMs: number;
    };

function described(error: unknown): { code: string; message: string; retryAfterMs: number | null } {
  if (error instanceof FlagProviderError) {
    return { code: error.code, message: error.message, retryAfterMs: error.retryAfterMs };
  }
  const code = (error as { code?: unknown } | null)?.code;
  return {
    code: typeof code === "string" ? code : "error",
    message: error instanceof Error ? error.message : String(error),
    retryAfterMs: null,
  };
}

/**
 * Apply the split an experiment's rollout wants, when it is due and no other
 * worker holds it: read what the provider serves, write the difference
 * (create the flag when it is missing or lacks an arm's variation; `disable`
 * for everyone to control; `setWeights` otherwise), then record the version
 * applied, once, with one audit event (a launch also sets the experiment's
 * `launched_at` to the provider's confirmation). A failure is counted and
 * retried after {@link flagBackoffMs}; it is returned, not thrown.
 *
 * @param owner names the worker holding the lease
 */
export async function applyFlagRollout(deps: FlagDeps, experimentId: string, owner: string): Promise<FlagApplyResult> {
  const now = nowOf(deps);
  // The lease outlasts the attempt's timeout, so no second worker writes while the first still waits.
  const leaseMs = Math.max(FLAG_LEASE_MS, 2 * deps.flags.timeoutMs + 5000);
  const claimed = await flagRollouts.claimRollout(deps.db, experimentId, owner, now, leaseMs);
  if (claimed === null) return { status: "nothing_to_do" };
  try {
    const experiment = await experiments.findExperimentById(deps.db, experimentId);
    const outcome =
      experiment === null ? null : await outcomes.findOutcome(deps.db, experiment.workspaceId, experiment.outcomeId);
    if (experiment === null || outcome === null) throw new Error(`experiment ${experimentId} or its outcome is gone`);
    const provider = await openFlagProvider(deps.db, deps.flags, deps.sources, outcome, "worker", now);
    const target = flagTarget(claimed, experiment.key, experiment.title);
    const signal = AbortSignal.timeout(deps.flags.timeoutMs);
    const served = (await provider.read([claimed.flagKey], signal)).get(claimed.flagKey);
    let change: FlagChange;
    let unchanged = false;
    if (servesSplit(served, claimed.arms, claimed.desired)) {
      unchanged = true;
      change = { status: "applied", at: nowOf(deps), answer: { unchanged: true, version: served?.version ?? null } };
    } else if (
      served === undefined ||
      !served.exists ||
      !claimed.arms.every((a) => served.variations.includes(a.name))
    ) {
      change = await provider.ensureFlag(target, signal);
    } else if (appliedAction(claimed.reason) === "experiment.rollback_applied") {
      change = await provider.disable(target, signal);
    } else {
      change = await provider.setWeights(target, claimed.desired, signal);
    }
    if (change.status === "waiting_for_approval") {
      await flagRollouts.markWaitingForApproval(
        deps.db,
        experimentId,
        claimed.version,
        now,
        { ...change.answer, approval: change.approval },
        new Date(now.getTime() + FLAG_APPROVAL_RECHECK_MS),
      );
      // Recorded only for the version tried: a newer one asked for meanwhile must not wait for the lease to lapse.
      await flagRollouts.releaseRollout(deps.db, experimentId, owner);
      return { status: "waiting_for_approval", version: claimed.version, approvalId: change.approval.id };
    }
    const applied = change;
    const action = appliedAction(claimed.reason);
    const recorded = await inTransaction(deps.db, async (trx) => {
      const row = await flagRollouts.markApplied(trx, experimentId, claimed.version, applied.at, applied.answer);
      if (row === null) return false;
      // The test starts when the provider first serves the arms (a launch, or the resume of a launch a pause
      // overtook before the provider confirmed it).
      if (SERVES_ARMS.has(claimed.reason)) await experiments.markLaunched(trx, experimentId, applied.at);
      await audit.insertAuditEvent(trx, {
        workspaceId: experiment.workspaceId,
        actor: auditActor(workerCaller(experiment.workspaceId)),
        channel: "system",
        action,
        subjectType: "experiment",
        subjectId: experimentId,
        before: { served: served?.weights ?? null, exists: served?.exists ?? false },
        after: {
          provider: claimed.provider,
          flag_key: claimed.flagKey,
          weights: claimed.desired,
          reason: claimed.reason,
          version: claimed.version,
          requested_at: claimed.requestedAt.toISOString(),
          applied_at: applied.at.toISOString(),
          attempts: claimed.attempts + 1,
          unchanged,
          answer: applied.answer,
        },
        requestId: null,
      });
      return true;
    });
    if (!recorded) {
      await flagRollouts.releaseRollout(deps.db, experimentId, owner);
      return { status: "superseded", version: claimed.version };
    }
    return {
      status: "applied",
      version: claimed.version,
      reason: claimed.reason,
      action,
      appliedAt: applied.at,
      unchanged,
    };
  } catch (error) {
    const e = described(error);
    // A refusal no retry can fix soon (a token, a permission, a setting) waits the longest; a person fixes it.
    const permanent = error instanceof FlagProviderError && !error.retryable;
    const retryInMs = permanent ? FLAG_MAX_BACKOFF_MS : flagBackoffMs(claimed.attempts, e.retryAfterMs);
    await flagRollouts.markAttemptFailed(
      deps.db,
      experimentId,
      claimed.version,
      now,
      { code: e.code, message: e.message },
      new Date(now.getTime() + retryInMs),
    );
    // Counted only for the version tried: a newer one asked for meanwhile must not wait for the lease to lapse.
    await flagRollouts.releaseRollout(deps.db, experimentId, owner);
    return { status: "failed", version: claimed.version, code: e.code, message: e.message, retryInMs };
  }
}

/** The rollouts due now (not leased), oldest first: what the outbox sweep queues. */
export async function dueFlagRollouts(
  deps: RuntimeDeps,
  limit = 500,
): Promise<{ experimentId: string; version: number; dueMs: number; leaseUntilMs: number }[]> {
  return flagRollouts.dueRollouts(deps.db, nowOf(deps), limit);
}

/**
 * The version, due time and lapsed lease of an experiment's rollout when it is due now and no worker holds it;
 * null otherwise (applied, waiting for its backoff, held, or none).
 */
export async function flagRolloutDue(
  deps: RuntimeDeps,
  experimentId: string,
): Promise<{ version: number; dueMs: number; leaseUntilMs: number } | null> {
  const rollout = await flagRollouts.findRollout(deps.db, experimentId);
  const now = nowOf(deps);
  // A rollout another worker holds is its to write; the sweep re-queues it if that worker dies.
  if (rollout === null || rollout.status === "applied" || rollout.nextAttemptAt > now) return null;
  if (rollout.leaseUntil !== null && rollout.leaseUntil > now) return null;
  return {
    version: rollout.version,
    dueMs: rollout.nextAttemptAt.getTime(),
    leaseUntilMs: rollout.leaseUntil?.getTime() ?? 0,
  };
}

/** What the experiment page, the API and MCP show of its flag. */
export interface FlagStatus {
  readonly provider: string;
  readonly flagKey: string;
  /** `applied`, `pending` (being applied, or failing: see `lastError`), `waiting_for_approval`. */
  readonly status: FlagRollout["status"];
  /** The split wanted now, fractions by arm. */
  readonly weights: Readonly<Record<string, number>>;
  readonly reason: string;
  readonly version: number;
  readonly requestedAt: string;
  readonly appliedAt: string | null;
  /** While not applied: when it was asked for ("rollback pending since …"); null once applied. */
  readonly pendingSince: string | null;
  /** True when the split wanted sends everyone to control. */
  readonly rollback: boolean;
  readonly attempts: number;
  readonly nextAttemptAt: string | null;
  readonly lastError: { readonly code: string; readonly message: string } | null;
  /** What the last drift check found, null when the provider served what was applied. */
  readonly drift: Readonly<Record<string, unknown>> | null;
  readonly driftAt: string | null;
  readonly observedAt: string | null;
  /** One line for people: "rollback pending since …", "applied …", "waiting for approval in launchdarkly". */
  readonly summary: string;
}

/** The flag status of a rollout row. */
export function flagStatusOf(rollout: FlagRollout): FlagStatus {
  const action = appliedAction(rollout.reason);
  const rollback = action === "experiment.rollback_applied";
  const what = rollback ? "rollback" : action === "experiment.flag_prepared" ? "flag creation" : "rollout";
  const summary =
    rollout.status === "applied"
      ? `${what} (${rollout.reason}) applied in ${rollout.provider} at ${rollout.appliedAt?.toISOString()}`
      : rollout.status === "waiting_for_approval"
        ? `${what} (${rollout.reason}) waiting for approval in ${rollout.provider} since ${rollout.requestedAt.toISOString()}`
        : `${what} (${rollout.reason}) pending since ${rollout.requestedAt.toISOString()}${
            rollout.lastError === null ? "" : `: ${rollout.lastError.code}, attempt ${rollout.attempts}`
          }`;
  return {
    provider: rollout.provider,
    flagKey: rollout.flagKey,
    status: rollout.status,
    weights: rollout.desired,
    reason: rollout.reason,
    version: rollout.version,
    requestedAt: rollout.requestedAt.toISOString(),
    appliedAt: rollout.status === "applied" ? (rollout.appliedAt?.toISOString() ?? null) : null,
    pendingSince: rollout.status === "applied" ? null : rollout.requestedAt.toISOString(),
    rollback,
    attempts: rollout.attempts,
    nextAttemptAt: rollout.status === "applied" ? null : rollout.nextAttemptAt.toISOString(),
    lastError: rollout.status === "applied" ? null : rollout.lastError,
    drift: rollout.drift,
    driftAt: rollout.driftAt?.toISOString() ?? null,
    observedAt: rollout.observedAt?.toISOString() ?? null,
    summary,
  };
}

/** What the worker's `/healthz` shows of the flag rollouts not applied, every workspace. */
export interface FlagRolloutsHealth {
  /** How many rollouts are not applied (being written, failing, or waiting for an approval). */
  readonly unapplied: number;
  /** The oldest of them (at most 20): experiment, flag, why, since when, the last error. */
  readonly oldest: readonly {
    readonly experimentId: string;
    readonly provider: string;
    readonly flagKey: string;
    readonly reason: string;
    readonly status: string;
    readonly pendingSince: string;
    readonly attempts: number;
    readonly lastError: { readonly code: string; readonly message: string } | null;
    readonly summary: string;
  }[];
}

/** The flag rollouts not applied, for `/healthz` ("rollback pending since …"). */
export async function flagRolloutsHealth(deps: RuntimeDeps): Promise<FlagRolloutsHealth> {
  const [unapplied, oldest] = await Promise.all([
    flagRollouts.countUnapplied(deps.db),
    flagRollouts.unappliedRollouts(deps.db, 20),
  ]);
  return {
    unapplied,
    oldest: oldest.map((r) => {
      const status = flagStatusOf(r);
      return {
        experimentId: r.experimentId,
        provider: r.provider,
        flagKey: r.flagKey,
        reason: r.reason,
        status: r.status,
        pendingSince: status.pendingSince ?? status.requestedAt,
        attempts: r.attempts,
        lastError: r.lastError,
        summary: status.summary,
      };
    }),
  };
}
