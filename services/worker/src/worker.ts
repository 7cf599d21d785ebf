/**
 * The worker: BullMQ processors for the jobs of the catalogue
 * (`packages/runtime/src/jobs.ts`), one per queue (`processors/`), the
 * reconciliation of schedulers with Postgres (`reconcile.ts`) and the outbox
 * sweep (`outbox-sweep.ts`).
 *
 * Outboxes in Postgres (gate emails, webhooks, "poll now" requests, learning
 * summaries) and the SLA deadlines of pending gates are dispatched to the
 * queues by a sweep every `outboxIntervalMs`; job ids name the work, so
 * replicas sweeping at once add each job once.
 *
 * Postgres is the source of truth. Job Schedulers (one per running experiment
 * and per active outcome) live in Redis and are re-created from Postgres at
 * start and on every reconciliation, so a Redis that lost its data (or a
 * scheduler removed by hand) heals on its own. BullMQ delivers at least once; every
 * effect is idempotent in Postgres (see packages/runtime/src/signals).
 */

import { hostname } from "node:os";
import {
  CONTROL_QUEUE,
  type ConnectorProvider,
  DEFAULT_POLL_BATCH_SIZE,
  DEFAULT_QUEUE_PREFIX,
  DEFAULT_STORE_SIZE,
  databaseError,
  type FlagAccess,
  type GateLinks,
  type GateMailDeps,
  type Gateway,
  NOTIFY_QUEUE,
  type RuntimeDeps,
  SIGNALS_QUEUE,
  type SignalMetrics,
  type SourceAccess,
  type WebhookTarget,
} from "@outcome-runtime/runtime";
import { type Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { WorkerContext } from "./context";
import { dispatcher } from "./dispatch";
import { type DispatchReport, sweepOutboxes } from "./outbox-sweep";
import { controlProcessor } from "./processors/control.processor";
import { notifyProcessor } from "./processors/notify.processor";
import { signalsProcessor } from "./processors/signals.processor";
import { openQueues } from "./queues";
import { type ReconcileReport, reconcile } from "./reconcile";

export type { DispatchReport } from "./outbox-sweep";
export type { ReconcileReport } from "./reconcile";

export interface WorkerOptions {
  readonly db: RuntimeDeps["db"];
  /** A connection for BullMQ (`maxRetriesPerRequest: null`); duplicated for the blocking worker connections. */
  readonly redis: Redis;
  readonly connectors: ConnectorProvider;
  readonly logger: Logger;
  /** Prefix of the BullMQ keys (default `outcome-runtime`); the API must use the same. */
  readonly prefix?: string;
  readonly concurrency?: number;
  readonly reconcileIntervalMs?: number;
  readonly lockDurationMs?: number;
  readonly pollTimeoutMs?: number;
  /** Experiments read in one source request by a batched poll (default `DEFAULT_POLL_BATCH_SIZE`, 500). */
  readonly pollBatchSize?: number;
  /** Experiments of a batched poll stored in one transaction (default `DEFAULT_STORE_SIZE`, 100). */
  readonly pollStoreSize?: number;
  readonly webhook?: WebhookTarget;
  /**
   * Flag providers: the operator's settings (`FLAG_API_URLS`, the timeout) and the sources' settings the
   * tokens resolve through (`OUTCOME_RUNTIME_FLAGS_` variables, workspace secrets). Without them flag rollouts
   * wait in their outbox.
   */
  readonly flags?: { readonly access: FlagAccess; readonly sources: SourceAccess };
  /** Sends gate emails; without one, gate emails wait in the outbox. */
  readonly mailer?: GateMailDeps["mailer"];
  /** Base of the links in emails (OUTCOME_RUNTIME_PUBLIC_URL). */
  readonly links?: GateLinks;
  /** Summarises learnings with an LLM; without one the rules' sentence stays. */
  readonly gateway?: Gateway;
  /** How often the outboxes and gate deadlines are swept to the queues, ms (default 2 000; 0: only on `dispatch()`). */
  readonly outboxIntervalMs?: number;
  /** Clock for the use cases (tests). */
  readonly now?: () => Date;
  /** This worker's name, recorded on every job it takes (`job.processedBy`); default `<hostname>:<pid>`. */
  readonly name?: string;
  /** Counts polls, analyses and automatic pauses for Prometheus; none by default. */
  readonly metrics?: SignalMetrics;
}

export interface RunningWorker {
  /** Reconcile schedulers with Postgres now; returns what changed. */
  reconcile(): Promise<ReconcileReport>;
  /** Sweep the outboxes and the due gate deadlines to the queues now; returns what was queued. */
  dispatch(): Promise<DispatchReport>;
  /** Time the last job of any kind completed, or null. */
  lastCompletedAt(): Date | null;
  /** Whether jobs wait to be taken (work exists that some worker should be doing). */
  hasWaitingWork(): Promise<boolean>;
  /** Stop taking jobs, wait for the active ones, close the queues. */
  close(): Promise<void>;
  readonly signalsQueue: Queue;
  readonly controlQueue: Queue;
  readonly notifyQueue: Queue;
  /** The name recorded on the jobs this worker takes (`job.processedBy`). */
  readonly name: string;
}

/** The signal retention's schedule: once a day, ms. */
const RETENTION_INTERVAL_MS = 86_400_000;

/** Control jobs (webhook deliveries, the reconcile) a worker runs at once. */
const CONTROL_CONCURRENCY = 16;

/**
 * Start the processors. Reconciles schedulers at once (before taking jobs), then
 * every `reconcileIntervalMs` through a scheduler of its own.
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { db, logger } = options;
  const clock = options.now === undefined ? {} : { now: options.now };
  const queues = openQueues(options.redis, options.prefix ?? DEFAULT_QUEUE_PREFIX);
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const context: WorkerContext = {
    name,
    deps: { db, ...clock },
    signals: {
      db,
      connectors: options.connectors,
      ...(options.pollTimeoutMs === undefined ? {} : { pollTimeoutMs: options.pollTimeoutMs }),
      ...clock,
      ...(options.metrics === undefined ? {} : { observer: options.metrics }),
    },
    mail:
      options.mailer === undefined
        ? null
        : { db, mailer: options.mailer, links: options.links ?? { publicUrl: "http://localhost:8080" }, ...clock },
    webhook: options.webhook ?? { url: null, secret: "" },
    flags:
      options.flags === undefined
        ? null
        : { db, flags: options.flags.access, sources: options.flags.sources, ...clock },
    gateway: options.gateway,
    metrics: options.metrics,
    queues,
    logger,
    pollBatchSize: options.pollBatchSize ?? DEFAULT_POLL_BATCH_SIZE,
    pollStoreSize: options.pollStoreSize ?? DEFAULT_STORE_SIZE,
    concurrency: options.concurrency ?? 8,
  };
  let lastCompleted: Date | null = null;

  let dispatching: Promise<DispatchReport> | null = null;
  function dispatch(): Promise<DispatchReport> {
    // One sweep at a time in this process; a caller during a sweep waits for it.
    if (dispatching === null) {
      dispatching = sweepOutboxes(context).finally(() => {
        dispatching = null;
      });
    }
    return dispatching;
  }

  // Reconcile before taking jobs: the schedulers match Postgres from the first moment.
  const first = await reconcile(context);
  logger.info(first, "schedulers reconciled");

  const lockDuration = options.lockDurationMs ?? 30_000;
  const workerOpts = {
    name,
    connection: options.redis,
    prefix: options.prefix ?? DEFAULT_QUEUE_PREFIX,
    lockDuration,
    // A killed worker's job is found stalled by this check (BullMQ's default interval is 30 s whatever the
    // lock): checking as often as the lock lasts takes the job over within about two lock durations.
    stalledInterval: lockDuration,
    // A killed worker's job is stalled; let it be retried rather than failed after one stall.
    maxStalledCount: 10,
  };
  const workers = [
    new Worker(SIGNALS_QUEUE, dispatcher(SIGNALS_QUEUE, signalsProcessor(context)), {
      ...workerOpts,
      concurrency: options.concurrency ?? 8,
    }),
    // Webhook deliveries wait on receivers (up to their timeout each): enough slots that a pause's webhooks go
    // out together and a slow receiver does not hold back the reconcile.
    new Worker(CONTROL_QUEUE, dispatcher(CONTROL_QUEUE, controlProcessor(context)), {
      ...workerOpts,
      concurrency: CONTROL_CONCURRENCY,
    }),
    new Worker(NOTIFY_QUEUE, dispatcher(NOTIFY_QUEUE, notifyProcessor(context)), { ...workerOpts, concurrency: 4 }),
  ];
  for (const w of workers) {
    w.on("completed", () => {
      lastCompleted = new Date();
    });
    w.on("failed", (job, error) => {
      // A database error carries the code REST and MCP answer with (service_unavailable, conflict, …).
      const code = databaseError(error)?.code;
      logger.warn(
        { job: job?.name, jobId: job?.id, attempts: job?.attemptsMade, ...(code ? { code } : {}), err: error },
        "job failed",
      );
    });
    w.on("error", (error) => logger.error({ err: error }, "worker error"));
  }
  // Daily retention of raw signal points (a no-op for workspaces that keep them forever, the default).
  await queues.upsertScheduler("applySignalRetention", {}, RETENTION_INTERVAL_MS);
  const reconcileEvery = options.reconcileIntervalMs ?? 30_000;
  const ensureReconcileScheduler = () => queues.upsertScheduler("reconcile", {}, reconcileEvery);
  await ensureReconcileScheduler();
  // The reconcile scheduler itself lives in Redis; a Redis that lost its data would lose it too.
  // Re-assert it from this process (an idempotent upsert) so reconciliation always resumes.
  const keepScheduling = setInterval(() => {
    ensureReconcileScheduler().catch((error: unknown) =>
      logger.warn({ err: error }, "could not re-assert the reconcile scheduler"),
    );
  }, reconcileEvery);
  keepScheduling.unref();
  const outboxEvery = options.outboxIntervalMs ?? 2000;
  const sweeping =
    outboxEvery > 0
      ? setInterval(() => {
          dispatch().catch((error: unknown) => logger.warn({ err: error }, "outbox sweep failed"));
        }, outboxEvery)
      : null;
  sweeping?.unref();

  return {
    reconcile: () => reconcile(context),
    dispatch,
    lastCompletedAt: () => lastCompleted,
    async hasWaitingWork() {
      const counts = await Promise.all(
        [queues.signals, queues.control, queues.notify].map((q: Queue) => q.getWaitingCount()),
      );
      return counts.some((n) => n > 0);
    },
    signalsQueue: queues.signals,
    controlQueue: queues.control,
    notifyQueue: queues.notify,
    name: workerOpts.name,
    async close() {
      clearInterval(keepScheduling);
      if (sweeping !== null) clearInterval(sweeping);
      await dispatching?.catch(() => undefined);
      await Promise.allSettled(workers.map((w) => w.close()));
      await queues.close();
    },
  };
}
