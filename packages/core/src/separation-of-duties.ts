/**
 * Separation of duties at a launch: the person who changed an outcome's rules
 * (who approves, the forbidden paths, the kill threshold, …) may not alone
 * approve the launch of an experiment under them.
 */
import type { Gate } from "./entities";
import type { Actor } from "./gate.machine";

/** Who made one revision of an outcome, and when (`outcome_revisions.created_by`, `created_at`). */
export interface RevisionAuthor {
  readonly revision: number;
  /** The principal name of whoever applied it: a person's email. */
  readonly createdBy: string;
  readonly createdAt: Date;
}

/** The revision that bars an approval: its number, its author and when it was made. */
export interface DutiesConflict {
  readonly revision: number;
  readonly revisedBy: string;
  readonly revisedAt: Date;
  /** The start of the window the revision fell in: the gate's opening (or now, if earlier) minus its SLA. */
  readonly since: Date;
}

/**
 * The shortest window, in seconds (48 hours, the default gate SLA): a reviser
 * who also shortens `gates.launch_approval.sla` does not shorten the bar on
 * their own approval with it.
 */
const MIN_DUTIES_WINDOW_SECONDS = 48 * 3600;

/** How long before a launch gate opened a revision bars its author, in seconds: its SLA, at least {@link MIN_DUTIES_WINDOW_SECONDS}. */
export function dutiesWindowSeconds(gate: Pick<Gate, "slaSeconds">): number {
  return Math.max(gate.slaSeconds, MIN_DUTIES_WINDOW_SECONDS);
}

/**
 * The start of the window in which a revision bars its author from approving
 * `gate` alone: {@link dutiesWindowSeconds} before the gate opened (or before
 * `now`, when the clock is behind the gate), so a revision made in that period
 * before the gate opened or at any time since counts.
 */
export function dutiesWindowStart(gate: Pick<Gate, "createdAt" | "slaSeconds">, now: Date): Date {
  const from = Math.min(gate.createdAt.getTime(), now.getTime());
  return new Date(from - dutiesWindowSeconds(gate) * 1000);
}

/**
 * Whether `actor` approving `gate` would make them the only approver of a
 * launch whose outcome they revised: the gate is a `launch_approval`, the
 * decision is `approve`, and `revisions` holds a revision after the first
 * (creating an outcome is not revising one) made by the actor (names compared
 * case-insensitively) at or after {@link dutiesWindowStart}. Every role counts,
 * admins included. Rejecting is never barred.
 *
 * @returns the latest such revision, or null when the approval may go ahead.
 */
export function separationOfDutiesConflict(input: {
  readonly actor: Pick<Actor, "name">;
  readonly gate: Pick<Gate, "kind" | "createdAt" | "slaSeconds">;
  readonly decision: string;
  readonly revisions: readonly RevisionAuthor[];
  readonly now: Date;
}): DutiesConflict | null {
  if (input.gate.kind !== "launch_approval" || input.decision !== "approve") return null;
  const since = dutiesWindowStart(input.gate, input.now);
  const name = input.actor.name.trim().toLowerCase();
  const mine = input.revisions
    .filter(
      (r) => r.revision > 1 && r.createdBy.trim().toLowerCase() === name && r.createdAt.getTime() >= since.getTime(),
    )
    .sort((a, b) => b.revision - a.revision);
  const latest = mine[0];
  return latest === undefined
    ? null
    : { revision: latest.revision, revisedBy: latest.createdBy, revisedAt: latest.createdAt, since };
}
