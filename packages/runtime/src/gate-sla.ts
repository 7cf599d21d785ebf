/**
 * The SLA of a gate: a reminder to the assignees at half the SLA, and at its
 * end an escalation to the backup (the outcome's owner when there is none) or,
 * when the outcome's policy says `on_expiry: expire`, the gate expires.
 *
 * The worker runs these from delayed BullMQ jobs and from a periodic sweep.
 * Both are idempotent in Postgres: each step is one conditional UPDATE of the
 * gate (`reminded_at IS NULL`, `escalated_at IS NULL`, `status = 'pending'`),
 * and the emails it records are unique per (gate, recipient, reason), so a
 * restart or a duplicated job never sends a second reminder.
 */
import { applyTransition, gateMachine } from "@outcome-runtime/core";
import { audit, gateMail, gates, outcomes } from "@outcome-runtime/db";
import { auditActor, inTransaction, nowOf, type RuntimeDeps, workerCaller } from "./context";
import { enqueueGateWebhook, recordGateClosed } from "./gate-events";

export type SlaStepResult =
  | { readonly status: "done"; readonly step: "reminded" | "escalated" | "expired"; readonly notifications: string[] }
  | { readonly status: "not_due"; readonly dueAt: Date }
  | { readonly status: "skipped"; readonly reason: string };

/**
 * Send the half-SLA reminder of a gate, once.
 * @returns `done` with the notifications recorded, `not_due` when called early
 *   (the clock is before `remindAt`), or `skipped` (decided, already reminded, escalated).
 */
export async function remindGate(deps: RuntimeDeps, gateId: string): Promise<SlaStepResult> {
  return inTransaction(deps.db, async (trx) => {
    const gate = await gates.findGateById(trx, gateId, { forUpdate: true });
    if (gate === null) return { status: "skipped", reason: "gate not found" };
    if (gate.status !== "pending") return { status: "skipped", reason: `gate is ${gate.status}` };
    if (gate.remindedAt !== null) return { status: "skipped", reason: "already reminded" };
    if (gate.escalatedAt !== null) return { status: "skipped", reason: "already escalated" };
    const now = nowOf(deps);
    if (now < gate.remindAt) return { status: "not_due", dueAt: gate.remindAt };
    // A reminder that comes after the SLA ended (the worker was down) is replaced by the escalation.
    if (now >= gate.dueAt) return { status: "skipped", reason: "the SLA is over; the expiry step follows" };
    const stamped = await gates.markGateReminded(trx, gate.id, now);
    if (stamped === null) return { status: "skipped", reason: "already reminded" };
    const notifications = await gateMail.insertNotifications(
      trx,
      gate.assignees.map((recipient) => ({
        workspaceId: gate.workspaceId,
        gateId: gate.id,
        recipient,
        reason: "reminder" as const,
        at: now,
      })),
    );
    await audit.insertAuditEvent(trx, {
      workspaceId: gate.workspaceId,
      actor: auditActor(workerCaller(gate.workspaceId)),
      channel: "system",
      action: "gate.reminded",
      subjectType: "gate",
      subjectId: gate.id,
      before: null,
      after: { recipients: gate.assignees, dueAt: gate.dueAt },
      requestId: null,
    });
    return { status: "done", step: "reminded", notifications };
  });
}

/**
 * The SLA of a gate ran out: escalate it to the backup (the owner when there
 * is none), or expire it when its policy is `expire`. Once.
 * @returns `done`, `not_due` when called before `dueAt`, or `skipped`.
 */
export async function handleGateExpiry(deps: RuntimeDeps, gateId: string): Promise<SlaStepResult> {
  return inTransaction(deps.db, async (trx) => {
    const gate = await gates.findGateById(trx, gateId, { forUpdate: true });
    if (gate === null) return { status: "skipped", reason: "gate not found" };
    if (gate.status !== "pending") return { status: "skipped", reason: `gate is ${gate.status}` };
    if (gate.escalatedAt !== null) return { status: "skipped", reason: "already escalated" };
    const now = nowOf(deps);
    if (now < gate.dueAt) return { status: "not_due", dueAt: gate.dueAt };
    const outcome = await outcomes.findOutcome(trx, gate.workspaceId, gate.outcomeId);
    if (outcome === null) return { status: "skipped", reason: "outcome not found" };
    const caller = workerCaller(gate.workspaceId);

    if (gate.onExpiry === "expire") {
      applyTransition(gateMachine, gate.status, "expire", {});
      const expired = await gates.expirePendingGate(trx, gate.id, now);
      if (expired === null) return { status: "skipped", reason: "no longer pending" };
      await audit.insertAuditEvent(trx, {
        workspaceId: gate.workspaceId,
        actor: auditActor(caller),
        channel: "system",
        action: "gate.expired",
        subjectType: "gate",
        subjectId: gate.id,
        before: { status: "pending" },
        after: { status: "expired", reason: "SLA expired (on_expiry: expire)", dueAt: gate.dueAt },
        requestId: null,
      });
      await recordGateClosed(trx, expired, outcome, now);
      return { status: "done", step: "expired", notifications: [] };
    }

    const to = gate.backup ?? outcome.owner;
    const escalated = await gates.markGateEscalated(trx, gate.id, to, now);
    if (escalated === null) return { status: "skipped", reason: "already escalated" };
    const notifications = await gateMail.insertNotifications(trx, [
      { workspaceId: gate.workspaceId, gateId: gate.id, recipient: to, reason: "escalation", at: now },
    ]);
    await audit.insertAuditEvent(trx, {
      workspaceId: gate.workspaceId,
      actor: auditActor(caller),
      channel: "system",
      action: "gate.escalated",
      subjectType: "gate",
      subjectId: gate.id,
      before: { escalatedTo: null },
      after: { escalatedTo: to, from: gate.assignees, dueAt: gate.dueAt, backup: gate.backup !== null },
      requestId: null,
    });
    await enqueueGateWebhook(trx, "gate.escalated", escalated, outcome, now);
    return { status: "done", step: "escalated", notifications };
  });
}

/** A step of a gate's SLA that is due, for the worker's sweep. */
export interface DueSlaStep {
  readonly gateId: string;
  readonly step: "reminder" | "expiry";
  readonly at: Date;
}

/** Reminders and expiries due now (by the deps' clock) and not yet handled. */
export async function dueSlaSteps(deps: RuntimeDeps): Promise<DueSlaStep[]> {
  return gates.listDueDeadlines(deps.db, nowOf(deps));
}

/** Pending gates whose delayed SLA jobs are not on the queue yet, with their due times. */
export async function unscheduledGates(deps: RuntimeDeps): Promise<{ id: string; remindAt: Date; dueAt: Date }[]> {
  return gates.listUnscheduledGates(deps.db);
}

/** Record that the delayed SLA jobs of these gates are on the queue. */
export async function markGatesScheduled(deps: RuntimeDeps, ids: readonly string[]): Promise<void> {
  await gates.markSlaScheduled(deps.db, ids, nowOf(deps));
}
