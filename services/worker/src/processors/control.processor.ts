/**
 * The `control` queue: the reconciliation of schedulers with Postgres,
 * webhook deliveries and flag rollouts from the outboxes, and the daily
 * signal retention. Small jobs, never stuck behind polls.
 */
import { applyFlagRollout, applySignalRetention, deliverWebhook } from "@outcome-runtime/runtime";
import type { WorkerContext } from "../context";
import type { QueueProcessor } from "../dispatch";
import { reconcile } from "../reconcile";

/** The processor of the `control` queue. */
export function controlProcessor(context: WorkerContext): QueueProcessor<"control"> {
  return {
    reconcile: () => reconcile(context),
    deliverWebhook: ({ deliveryId }, run) =>
      deliverWebhook(context.deps, deliveryId, context.webhook, { final: run.final }),
    async applyFlagRollout({ experimentId }) {
      if (context.flags === null) return { status: "not_configured" as const };
      const result = await applyFlagRollout(context.flags, experimentId, context.name);
      if (result.status === "failed") {
        context.logger.warn({ experimentId, ...result }, "flag rollout failed: retried after its backoff");
      } else if (result.status !== "nothing_to_do") {
        context.logger.info({ experimentId, ...result }, `flag rollout ${result.status}`);
      }
      return result;
    },
    async applySignalRetention() {
      const reports = await applySignalRetention(context.deps);
      for (const r of reports) {
        if (r.status === "applied" && r.pointsDeleted > 0) context.logger.info(r, "signal retention applied");
        else if (r.status === "busy")
          context.logger.info(r, "signal retention skipped: another run holds the workspace");
      }
      return reports;
    },
  };
}
