/**
 * The consecutive-error rule (Argo Rollouts' `consecutiveErrorLimit`): when
 * the polls of a running experiment have failed more times in a row than
 * `experiment_defaults.decision_rules.consecutive_error_limit` (default 4, so
 * at the 5th failure), the experiment is paused with reason `errors`: its harm
 * can no longer be watched, so it fails safe. The pause takes the kill-switch's
 * path (`applyDecision`: transition, audit event, analysis_review gate, webhook
 * outbox, one transaction, only from `running`).
 *
 * Once per run of failures: the escalation's audit event records the count it
 * acted on. If a person resumes the experiment while its polls still fail, the
 * count keeps growing (only a successful poll resets it) and the next
 * escalation waits for `limit + 1` more failures, rather than pausing again at
 * the first failure after the resume.
 */
import { assessErrors, DEFAULT_CONSECUTIVE_ERROR_LIMIT, type PolicyDecision } from "@outcome-runtime/core";
import { audit, experiments, outcomes } from "@outcome-runtime/db";
import { inTransaction, nowOf, type RuntimeDeps } from "../context";
import { specOf } from "../spec-of";
import { applyDecision } from "./apply-decision";

export interface ErrorEscalation {
  readonly decision: PolicyDecision;
  readonly consecutiveErrors: number;
  /** Webhook outbox id (delivered by the worker's outbox sweep). */
  readonly webhookId: string;
}

/** Of the latest `errors` escalation of an experiment: when, and at which count. */
async function lastEscalation(
  trx: Parameters<typeof audit.listAuditEvents>[0],
  workspaceId: string,
  experimentId: string,
): Promise<{ at: Date; consecutiveErrors: number } | null> {
  const events = await audit.listAuditEvents(trx, workspaceId, {
    subjectType: "experiment",
    subjectId: experimentId,
    action: "experiment.paused",
    limit: 50,
  });
  for (const event of events) {
    const after = event.after as { reason?: unknown; consecutive_errors?: unknown } | null;
    if (after?.reason === "errors" && typeof after.consecutive_errors === "number") {
      return { at: event.at, consecutiveErrors: after.consecutive_errors };
    }
  }
  return null;
}

/**
 * Call after a failed poll was recorded on the experiment (`poll_failures`
 * incremented). Pauses the experiment when its consecutive failures exceed
 * the limit; returns the escalation, or null when nothing was done (limit not
 * exceeded, −1, not running, or this run of failures already escalated).
 */
export async function escalateConsecutiveErrors(
  deps: RuntimeDeps,
  experimentId: string,
): Promise<ErrorEscalation | null> {
  return inTransaction(deps.db, async (trx) => {
    const found = await experiments.findExperimentById(trx, experimentId);
    if (found === null || found.state !== "running") return null;
    // The lock order of an analysis: the outcome (shared), then the experiment.
    const outcome = await outcomes.findOutcome(trx, found.workspaceId, found.outcomeId, { forShare: true });
    const experiment = await experiments.findExperimentById(trx, experimentId, { forUpdate: true });
    if (outcome === null || experiment === null || experiment.state !== "running") return null;
    const limit =
      specOf(outcome).experiment_defaults?.decision_rules?.consecutive_error_limit ?? DEFAULT_CONSECUTIVE_ERROR_LIMIT;
    const failures = experiment.polling.failures;
    const previous = await lastEscalation(trx, experiment.workspaceId, experiment.id);
    // Same run of failures when no poll has succeeded since that escalation: count from it.
    const sameRun =
      previous !== null &&
      (experiment.polling.lastPolledAt === null || experiment.polling.lastPolledAt <= previous.at) &&
      failures >= previous.consecutiveErrors;
    const run = sameRun ? failures - previous.consecutiveErrors : failures;
    const lastError =
      experiment.polling.error === null
        ? null
        : `${experiment.polling.error.code}: ${experiment.polling.error.message}`;
    const assessed = assessErrors(run, limit, lastError);
    if (assessed === null) return null;
    const decision: PolicyDecision = sameRun
      ? { ...assessed, detail: `${assessed.detail} (again, ${failures} in a row in all)` }
      : assessed;
    const at = nowOf(deps);
    const applied = await applyDecision(deps, trx, experiment, outcome, decision, at, {
      consecutive_errors: failures,
      consecutive_error_limit: limit,
      last_error: experiment.polling.error,
    });
    return { decision, consecutiveErrors: failures, webhookId: applied.webhookId };
  });
}
