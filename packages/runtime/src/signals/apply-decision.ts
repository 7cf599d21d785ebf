/**
 * The runtime's automatic decisions on a running experiment: the kill-switch,
 * the guardrails, the other policy stops and the consecutive-error pause all
 * move the experiment through here, as the worker (actor `worker`, role
 * `system`, channel `system`).
 */
import {
  applyTransition,
  type Experiment,
  experimentMachine,
  type Outcome,
  type PolicyDecision,
} from "@outcome-runtime/core";
import { audit, experiments, signals, type Trx } from "@outcome-runtime/db";
import { auditActor, nowOf, type RuntimeDeps, workerCaller } from "../context";
import { ensurePendingGate } from "../open-gate";

/**
 * Apply a decision to a running experiment locked by the caller's transaction:
 * move it (`pause` → paused, `analyse` → analysing) with a conditional UPDATE
 * from `running`, write the audit event (actor `worker`), open the
 * analysis_review gate with `{ action, reason, detail }` and put the webhook in
 * the outbox. The one path of every automatic decision: the kill-switch, the
 * guardrails, the other policy stops and the consecutive-error escalation.
 *
 * @param ts the analysis (or failed poll) the decision is about; it names the webhook's dedupe key
 * @param facts figures shown in the audit event and the webhook
 * @throws Error when the experiment is not `running` (the caller holds its row lock and checked)
 */
export async function applyDecision(
  deps: RuntimeDeps,
  trx: Trx,
  experiment: Experiment,
  outcome: Outcome,
  decision: PolicyDecision,
  ts: Date,
  facts: Record<string, unknown>,
): Promise<{ state: string; webhookId: string }> {
  const at = nowOf(deps);
  const caller = workerCaller(experiment.workspaceId);
  const action = decision.action === "pause" ? "pause" : "analyse";
  const move = applyTransition(experimentMachine, experiment.state, action, { actor: caller.principal });
  const updated = await experiments.updateExperimentState(trx, experiment.id, move.from, move.to, { at });
  if (updated === null) throw new Error(`experiment ${experiment.id} changed state under a row lock`);
  const summary = {
    state: move.to,
    action: decision.action,
    reason: decision.reason,
    detail: decision.detail,
    analysis_ts: ts.toISOString(),
    ...facts,
  };
  await audit.insertAuditEvent(trx, {
    workspaceId: experiment.workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: move.events[0] ?? `experiment.${action}`,
    subjectType: "experiment",
    subjectId: experiment.id,
    before: { state: move.from },
    after: summary,
    requestId: null,
  });
  // A stop (win, loss, futility, SRM, maximum duration, inconclusive) asks for ship / iterate / extend /
  // roll back; a pause (kill-switch, guardrail harm, errors) for resume / roll back.
  await ensurePendingGate(trx, caller, outcome, "analysis_review", experiment.id, at, {
    action: decision.action,
    reason: decision.reason,
    detail: decision.detail,
    analysis_ts: ts.toISOString(),
  });
  const webhookId = await signals.enqueueWebhook(trx, {
    workspaceId: experiment.workspaceId,
    eventType: `experiment.${move.to}`,
    dedupeKey: `experiment.${move.to}:${experiment.id}:${ts.toISOString()}`,
    payload: {
      type: `experiment.${move.to}`,
      created_at: at.toISOString(),
      data: {
        experiment: { id: experiment.id, key: experiment.key, outcome: outcome.slug, state: move.to },
        ...summary,
      },
    },
  });
  return { state: move.to, webhookId };
}
