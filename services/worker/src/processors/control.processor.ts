/**
 * The `control` queue: the reconciliation of schedulers with Postgres, and
 * webhook deliveries from the outbox. Small jobs, never stuck behind polls.
 */
import { deliverWebhook } from "@outcome-runtime/runtime";
import type { WorkerContext } from "../context";
import type { QueueProcessor } from "../dispatch";
import { reconcile } from "../reconcile";

/** The processor of the `control` queue. */
export function controlProcessor(context: WorkerContext): QueueProcessor<"control"> {
  return {
    reconcile: () => reconcile(context),
    deliverWebhook: ({ deliveryId }, run) =>
      deliverWebhook(context.deps, deliveryId, context.webhook, { final: run.final }),
  };
}
