/**
 * The runtime's automatic decisions on a running experiment: the kill-switch,
 * the guardrails, the other policy stops and the consecutive-error pause all
 * move the experiment through here, as the worker (actor `worker`, role
 * `system`, channel `system`).
 */
import type { Experiment, Outcome, PolicyDecision } from "@outcome-runtime/core";
import type { Trx } from "@outcome-runtime/db";
import { nowOf, type RuntimeDeps, workerCaller } from "../context";
import { moveExperiment } from "../move-experiment";

/**
 * Apply a decision to a running experiment locked by the caller's transaction,
 * with `moveExperiment`: `pause` → paused, `analyse` → analysing, the audit
 * event (actor `worker`, `after`: the state, the action, reason and detail, the
 * look's time and `facts`), the analysis_review gate with `{ action, reason,
 * detail, analysis_ts }` (a stop asks for ship / iterate / extend / roll back,
 * a pause for resume / roll back) and the `experiment.<state>` webhook in the
 * outbox.
 *
 * @param ts the analysis (or failed poll) the decision is about; it names the webhook's dedupe key
 * @param facts figures shown in the audit event and the webhook
 * @throws what `moveExperiment` throws; `illegal_transition` when the experiment is not running
 *   (the caller holds its row lock and checked)
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
  const why = {
    action: decision.action,
    reason: decision.reason,
    detail: decision.detail,
    analysis_ts: ts.toISOString(),
  };
  const moved = await moveExperiment(trx, workerCaller(experiment.workspaceId), nowOf(deps), {
    experiment,
    outcome,
    action: decision.action === "pause" ? "pause" : "analyse",
    facts: { ...why, ...facts },
    gateContext: why,
    webhook: { ts },
  });
  return { state: moved.to, webhookId: moved.webhookId ?? "" };
}
