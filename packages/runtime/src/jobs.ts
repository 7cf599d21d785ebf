/**
 * Background jobs shared by the API (which enqueues) and the worker (which
 * processes): queue names, job names and deterministic job ids. A job id names
 * the work, so adding the same work twice while the first is still stored is a
 * no-op in BullMQ (the deduplication the at-least-once delivery needs).
 */
import { Queue } from "bullmq";
import type { Redis } from "ioredis";

/** Default prefix of the BullMQ keys in Redis. */
export const DEFAULT_QUEUE_PREFIX = "outcome-runtime";

/** Polls and analyses: the bulk of the work. */
export const SIGNALS_QUEUE = "signals";
/** Reconciliation and webhook deliveries: small and never stuck behind polls. */
export const CONTROL_QUEUE = "control";
/** Gate emails, gate SLA steps (reminder, expiry) and learning summaries. */
export const NOTIFY_QUEUE = "notify";

export const JOB = {
  pollExperiment: "poll-experiment",
  analyzeExperiment: "analyze-experiment",
  pollOutcome: "poll-outcome",
  reconcile: "reconcile",
  deliverWebhook: "deliver-webhook",
  sendGateEmail: "send-gate-email",
  gateReminder: "gate-reminder",
  gateExpiry: "gate-expiry",
  summarizeLearning: "summarize-learning",
} as const;

/** Job id of sending one gate email (one per outbox row). */
export function gateEmailJobId(notificationId: string): string {
  return `gate-email-${notificationId}`;
}

/** Job id of a gate's SLA step: its reminder or its expiry. */
export function gateSlaJobId(step: "reminder" | "expiry", gateId: string): string {
  return `gate-${step}-${gateId}`;
}

/** Job id of the LLM summary of a learning. */
export function learningJobId(learningId: string): string {
  return `learning-${learningId}`;
}

/** Scheduler id of an experiment's poll (one Job Scheduler per running experiment). */
export function experimentSchedulerId(experimentId: string): string {
  return `poll-experiment:${experimentId}`;
}

/** Scheduler id of an outcome's poll. */
export function outcomeSchedulerId(outcomeId: string): string {
  return `poll-outcome:${outcomeId}`;
}

/** Job id of the analysis of an experiment up to a point in time (ms). */
export function analyzeJobId(experimentId: string, upToMs: number): string {
  return `analyze-${experimentId}-${upToMs}`;
}

/** Job id of a webhook delivery (one per outbox row). */
export function webhookJobId(deliveryId: string): string {
  return `webhook-${deliveryId}`;
}

/**
 * Completed jobs are kept an hour (at most 100 000 of them, about two per running
 * experiment per poll round at 50 000 experiments), so a duplicate add within
 * that time is ignored.
 */
export const KEEP_COMPLETED = { age: 3600, count: 100_000 } as const;
export const KEEP_FAILED = { age: 7 * 86_400 } as const;

/**
 * Ask for an immediate poll of one experiment (the "poll now" of the API),
 * deduplicated per second. Uses the given connection, which the API creates
 * with `enableOfflineQueue: false` so a Redis outage fails fast.
 *
 * @throws Error from ioredis when Redis is unreachable.
 */
export async function enqueuePollNow(
  connection: Redis,
  experimentId: string,
  prefix: string = DEFAULT_QUEUE_PREFIX,
): Promise<string> {
  // BullMQ waits for a connection that is not ready; a request must fail fast instead.
  if (connection.status !== "ready") throw new Error(`Redis is not connected (${connection.status})`);
  const queue = new Queue(SIGNALS_QUEUE, { connection, prefix });
  try {
    const second = Math.floor(Date.now() / 1000);
    const job = await queue.add(
      JOB.pollExperiment,
      { experimentId },
      {
        jobId: `poll-now-${experimentId}-${second}`,
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
        attempts: 3,
        backoff: { type: "exponential", delay: 1000 },
      },
    );
    return job.id ?? "";
  } finally {
    await queue.close();
  }
}

/**
 * Ask the worker to summarise a new learning with the LLM gateway (best
 * effort: the rules' statement stays when this fails or no LLM is configured).
 *
 * @throws Error from ioredis when Redis is unreachable.
 */
export async function enqueueLearningSummary(
  connection: Redis,
  learningId: string,
  prefix: string = DEFAULT_QUEUE_PREFIX,
): Promise<void> {
  if (connection.status !== "ready") throw new Error(`Redis is not connected (${connection.status})`);
  const queue = new Queue(NOTIFY_QUEUE, { connection, prefix });
  try {
    await queue.add(
      JOB.summarizeLearning,
      { learningId },
      {
        jobId: learningJobId(learningId),
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
        attempts: 3,
        backoff: { type: "exponential", delay: 5000 },
      },
    );
  } finally {
    await queue.close();
  }
}
