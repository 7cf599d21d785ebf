/**
 * Reconciliation: Postgres is the source of truth, and the Job Schedulers in
 * Redis (one poll per running experiment, or per outcome whose experiments are
 * polled in batches, and one per active outcome) are made to
 * match it, so a Redis that lost its data (or a scheduler removed by hand)
 * heals on its own. Webhooks whose delivery job was lost are queued again.
 */
import {
  batchSchedulerId,
  desiredSchedules,
  experimentSchedulerId,
  outcomeSchedulerId,
  pendingWebhooks,
  webhookJobId,
} from "@outcome-runtime/runtime";
import type { WorkerContext } from "./context";

export interface ReconcileReport {
  /** Running experiments polled one at a time. */
  readonly experiments: number;
  /** Outcomes whose running experiments are polled together, in batches. */
  readonly batches: number;
  readonly outcomes: number;
  readonly added: number;
  readonly removed: number;
  /** Pending webhooks re-enqueued (their job was lost). */
  readonly webhooksRequeued: number;
  /** Notes about stretched poll intervals (e.g. Mixpanel's hourly budget). */
  readonly notes: readonly string[];
}

/** Reconcile the schedulers with Postgres now, and re-queue lost webhook jobs; returns what changed. */
export async function reconcile(context: WorkerContext): Promise<ReconcileReport> {
  const { queues, logger } = context;
  const desired = await desiredSchedules(context.deps);
  const existing = await queues.signals.getJobSchedulers(0, -1);
  const byKey = new Map(existing.map((s) => [s.key, s]));
  let added = 0;
  let removed = 0;
  const want = new Map<string, { every: number; add: () => Promise<void> }>();
  for (const [id, every] of desired.experiments) {
    want.set(experimentSchedulerId(id), {
      every,
      add: () => queues.upsertScheduler("pollExperiment", { experimentId: id }, every),
    });
  }
  for (const [id, every] of desired.batches) {
    want.set(batchSchedulerId(id), {
      every,
      add: () => queues.upsertScheduler("pollExperimentBatch", { outcomeId: id }, every),
    });
  }
  for (const [id, every] of desired.outcomes) {
    want.set(outcomeSchedulerId(id), {
      every,
      add: () => queues.upsertScheduler("pollOutcome", { outcomeId: id }, every),
    });
  }
  for (const [key, w] of want) {
    const current = byKey.get(key);
    if (current !== undefined && current.every === w.every) continue;
    await w.add();
    added += 1;
  }
  for (const s of existing) {
    if (!want.has(s.key)) {
      await queues.signals.removeJobScheduler(s.key);
      removed += 1;
    }
  }
  // Webhooks whose delivery job was lost (a Redis that forgot, a crash between commit and add).
  // Without a URL nothing is sent: the outbox keeps them until one is configured.
  const pending = context.webhook.url === null ? [] : await pendingWebhooks(context.deps, 60_000);
  let requeued = 0;
  for (const id of pending) {
    if (await queues.addUnlessStored("deliverWebhook", { deliveryId: id }, webhookJobId(id))) requeued += 1;
  }
  for (const note of desired.notes) logger.warn({ note }, "poll interval stretched");
  return {
    experiments: desired.experiments.size,
    batches: desired.batches.size,
    outcomes: desired.outcomes.size,
    added,
    removed,
    webhooksRequeued: requeued,
    notes: desired.notes,
  };
}
