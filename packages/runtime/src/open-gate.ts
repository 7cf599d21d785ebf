/**
 * Opening gates from an outcome's `gates:` configuration.
 */
import type { Gate, GateExpiryPolicy, GateKind, Outcome } from "@outcome-runtime/core";
import { audit, gates, type Trx } from "@outcome-runtime/db";
import { auditActor, type Caller } from "./context";
import { recordGateOpened } from "./gate-events";
import { specOf } from "./spec-of";

/** SLA when an outcome configures no gate of the kind: 48 hours, in seconds. */
export const DEFAULT_GATE_SLA_SECONDS = 48 * 3600;

/**
 * Assignees, backup, SLA (seconds) and expiry policy for a gate kind, from the
 * outcome's `gates:` (the owner, 48 h and `escalate` when unset). An
 * `agent_request` takes the `launch_approval` configuration; an
 * `achievement_review` always goes to the owner.
 */
export function gatePolicy(
  outcome: Outcome,
  kind: GateKind,
): { assignees: string[]; backup: string | null; slaSeconds: number; onExpiry: GateExpiryPolicy } {
  // An agent's question goes to the people who approve its build; the confirmation of achievement to the owner.
  const config =
    kind === "achievement_review"
      ? undefined
      : specOf(outcome).gates?.[kind === "agent_request" ? "launch_approval" : kind];
  return {
    assignees: config?.assignees ? [...config.assignees] : [outcome.owner],
    backup: config?.backup ?? null,
    slaSeconds: config?.sla ?? DEFAULT_GATE_SLA_SECONDS,
    onExpiry: config?.on_expiry === "expire" ? "expire" : "escalate",
  };
}

/**
 * Return the pending gate of `kind` for the outcome (and experiment), opening
 * one when none is pending. Safe under concurrency: the partial unique indexes
 * on `gates` admit one pending gate per (outcome, portfolio) and per
 * (experiment, kind); a loser of the race reads the winner's gate.
 *
 * Opening one also records its emails (one per assignee) and its
 * `gate.opened` webhook in the same transaction.
 *
 * @returns the gate and whether this call opened it.
 */
export async function ensurePendingGate(
  trx: Trx,
  caller: Caller,
  outcome: Outcome,
  kind: GateKind,
  experimentId: string | null,
  at: Date,
  context: Readonly<Record<string, unknown>> = {},
): Promise<{ gate: Gate; opened: boolean }> {
  const lookup = { outcomeId: outcome.id, kind, experimentId };
  const pending = await gates.findPendingGate(trx, lookup);
  if (pending !== null) return { gate: pending, opened: false };
  const inserted = await gates.insertPendingGate(trx, {
    workspaceId: outcome.workspaceId,
    outcomeId: outcome.id,
    experimentId,
    kind,
    ...gatePolicy(outcome, kind),
    createdAt: at,
    context,
  });
  if (inserted === null) {
    const winner = await gates.findPendingGate(trx, lookup);
    if (winner === null) throw new Error(`pending ${kind} gate vanished for outcome ${outcome.id}`);
    return { gate: winner, opened: false };
  }
  await audit.insertAuditEvent(trx, {
    workspaceId: outcome.workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: "gate.opened",
    subjectType: "gate",
    subjectId: inserted.id,
    before: null,
    after: {
      kind,
      outcomeId: outcome.id,
      experimentId,
      assignees: inserted.assignees,
      dueAt: inserted.dueAt,
      ...(Object.keys(context).length > 0 ? { context } : {}),
    },
    requestId: caller.requestId,
  });
  await recordGateOpened(trx, inserted, outcome, at);
  return { gate: inserted, opened: true };
}
