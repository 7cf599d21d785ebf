/**
 * What the worker's processors, its reconciliation and its outbox sweep share:
 * the use cases' dependencies, the queues and the logger.
 */
import {
  type FlagDeps,
  type GateMailDeps,
  type Gateway,
  gateEmailJobId,
  type RuntimeDeps,
  type SignalDeps,
  type SignalMetrics,
  type WebhookTarget,
} from "@outcome-runtime/runtime";
import type { Logger } from "pino";
import type { JobQueues } from "./queues";

export interface WorkerContext {
  /** The database and the clock, for the use cases that need nothing else. */
  readonly deps: RuntimeDeps;
  /** Polls and analyses: connectors, their timeout, the metrics observer. */
  readonly signals: SignalDeps;
  /** Sends gate emails; null without a mailer (the emails wait in the outbox). */
  readonly mail: GateMailDeps | null;
  readonly webhook: WebhookTarget;
  /** Applies flag rollouts and checks drift; null without the sources' and flags' settings (tests). */
  readonly flags: FlagDeps | null;
  /** Summarises learnings; without one the rules' sentence stays. */
  readonly gateway: Gateway | undefined;
  readonly metrics: SignalMetrics | undefined;
  readonly queues: JobQueues;
  readonly logger: Logger;
  /** This worker's name (`<hostname>:<pid>` by default): the holder of the flag rollouts it writes. */
  readonly name: string;
  /** Experiments read in one source request by a batched poll (`POLL_BATCH_SIZE`). */
  readonly pollBatchSize: number;
  /** Experiments of a batched poll stored and analysed in one transaction (`POLL_STORE_SIZE`). */
  readonly pollStoreSize: number;
  /** Jobs at once (`WORKER_CONCURRENCY`); a batched poll stores and analyses half as many groups at once. */
  readonly concurrency: number;
}

/** Milliseconds since `start` (a `performance.now()` reading), rounded to 0.1 ms. */
export function msSince(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

/**
 * Queue the sending of gate emails from the outbox, one job per email (its
 * id names it), unless one is already waiting.
 *
 * @returns how many were queued.
 */
export async function queueGateEmails(context: WorkerContext, ids: readonly string[]): Promise<number> {
  let added = 0;
  for (const id of ids) {
    if (await context.queues.ensure("sendGateEmail", { notificationId: id }, gateEmailJobId(id))) added += 1;
  }
  return added;
}
