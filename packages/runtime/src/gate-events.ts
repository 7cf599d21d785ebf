/**
 * What follows a gate opening or closing, written in the same transaction as
 * the gate itself (an outbox): the emails to send, the signed webhooks, and
 * the death of every email link when the gate is decided, on any channel.
 * The worker sends what the outbox holds (packages/runtime/src/gate-mail.ts,
 * signals/webhooks.ts).
 */
import type { Gate, Outcome } from "@outcome-runtime/core";
import { gateMail, signals, type Trx } from "@outcome-runtime/db";

/** Webhook event types about gates. */
export const GATE_WEBHOOK_EVENTS = ["gate.opened", "gate.decided", "gate.escalated", "gate.expired"] as const;
export type GateWebhookEvent = (typeof GATE_WEBHOOK_EVENTS)[number];

/** The `data` of a gate webhook: enough for a receiver to act without calling back. */
function gateWebhookData(gate: Gate, outcome: Pick<Outcome, "slug">): Record<string, unknown> {
  return {
    gate: {
      id: gate.id,
      kind: gate.kind,
      status: gate.status,
      outcome: outcome.slug,
      outcome_id: gate.outcomeId,
      experiment_id: gate.experimentId,
      assignees: gate.assignees,
      backup: gate.backup,
      escalated_to: gate.escalatedTo,
      due_at: gate.dueAt.toISOString(),
      context: gate.context,
    },
    decision: gate.decision
      ? {
          decision: gate.decision.decision,
          reason: gate.decision.reason,
          decided_by: gate.decision.decidedBy,
          channel: gate.decision.channel,
          decided_at: gate.decision.decidedAt.toISOString(),
          detail: gate.decision.detail,
        }
      : null,
  };
}

/** Put a gate webhook in the outbox; one per (event, gate). @returns its id. */
export async function enqueueGateWebhook(
  trx: Trx,
  event: GateWebhookEvent,
  gate: Gate,
  outcome: Pick<Outcome, "slug">,
  at: Date,
): Promise<string> {
  return signals.enqueueWebhook(trx, {
    workspaceId: gate.workspaceId,
    eventType: event,
    dedupeKey: `${event}:${gate.id}`,
    payload: { type: event, created_at: at.toISOString(), data: gateWebhookData(gate, outcome) },
  });
}

/**
 * A gate was just opened: email each assignee and tell the webhook receivers.
 * @returns the notification ids recorded.
 */
export async function recordGateOpened(trx: Trx, gate: Gate, outcome: Outcome, at: Date): Promise<string[]> {
  const ids = await gateMail.insertNotifications(
    trx,
    gate.assignees.map((recipient) => ({
      workspaceId: gate.workspaceId,
      gateId: gate.id,
      recipient,
      reason: "opened" as const,
      at,
    })),
  );
  await enqueueGateWebhook(trx, "gate.opened", gate, outcome, at);
  return ids;
}

/**
 * A gate left `pending` (decided on any channel, or expired): every email link
 * of it dies, unsent emails are cancelled, and the webhook receivers are told.
 */
export async function recordGateClosed(trx: Trx, gate: Gate, outcome: Pick<Outcome, "slug">, at: Date): Promise<void> {
  await gateMail.revokeTokens(trx, gate.id, gate.status === "expired" ? "closed" : "decided", at);
  await gateMail.cancelPendingNotifications(trx, gate.id, `gate ${gate.status}`);
  await enqueueGateWebhook(trx, gate.status === "expired" ? "gate.expired" : "gate.decided", gate, outcome, at);
}
