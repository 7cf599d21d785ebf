/**
 * The worker: BullMQ processors for polls, analyses, outcome polls, webhook
 * deliveries, gate emails, gate SLA steps (reminder, escalation or expiry),
 * learning summaries, and the reconciliation of schedulers with Postgres.
 *
 * Outboxes in Postgres (gate emails, webhooks) and the SLA deadlines of
 * pending gates are dispatched to the queues by a sweep every
 * `outboxIntervalMs`; job ids name the work, so replicas sweeping at once add
 * each job once.
 *
 * Postgres is the source of truth. Job Schedulers (one per running experiment
 * and per active outcome) live in Redis and are re-created from Postgres at
 * start and on every reconciliation, so a Redis that lost its data (or a
 * scheduler removed by hand) heals on its own. BullMQ delivers at least once; every
 * effect is idempotent in Postgres (see packages/runtime/src/signals).
 */

import { hostname } from "node:os";
import {
  analyzeExperiment,
  analyzeJobId,
  CONTROL_QUEUE,
  type ConnectorProvider,
  DEFAULT_QUEUE_PREFIX,
  databaseError,
  deliverWebhook,
  describePollError,
  desiredSchedules,
  dueSlaSteps,
  experimentSchedulerId,
  type GateLinks,
  type GateMailDeps,
  type Gateway,
  gateEmailJobId,
  gateSlaJobId,
  handleGateExpiry,
  JOB,
  KEEP_COMPLETED,
  KEEP_FAILED,
  markGatesScheduled,
  NOTIFY_QUEUE,
  openNotifications,
  outcomeSchedulerId,
  pendingWebhooks,
  pollExperiment,
  pollOutcome,
  primaryPolledUntil,
  type RuntimeDeps,
  refineLearning,
  remindGate,
  SIGNALS_QUEUE,
  type SignalDeps,
  type SignalMetrics,
  sendGateNotification,
  unscheduledGates,
  type WebhookTarget,
  webhookJobId,
} from "@outcome-runtime/runtime";
import { type Job, Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

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
  readonly webhook?: WebhookTarget;
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

export interface DispatchReport {
  /** Gate email jobs added. */
  readonly emails: number;
  readonly webhooks: number;
  /** Delayed SLA jobs added for newly opened gates. */
  readonly scheduled: number;
  /** Due SLA steps queued now (a delayed job promoted, or a lost one re-added). */
  readonly due: number;
}

export interface ReconcileReport {
  readonly experiments: number;
  readonly outcomes: number;
  readonly added: number;
  readonly removed: number;
  /** Pending webhooks re-enqueued (their job was lost). */
  readonly webhooksRequeued: number;
  /** Notes about stretched poll intervals (e.g. Mixpanel's hourly budget). */
  readonly notes: readonly string[];
}

/** Milliseconds since `start` (a `performance.now()` reading), rounded to 0.1 ms. */
function msSince(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

const POLL_JOB_OPTS = {
  attempts: 5,
  backoff: { type: "exponential" as const, delay: 2000 },
  removeOnComplete: KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
};

const WEBHOOK_ATTEMPTS = 8;
// 12 attempts, 2 s doubling: about 68 minutes of retries before an email is given up.
const EMAIL_ATTEMPTS = 12;

const NOTIFY_JOB_OPTS = {
  removeOnComplete: KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
  attempts: 5,
  backoff: { type: "exponential" as const, delay: 2000 },
};

/**
 * Start the processors. Reconciles schedulers at once (before taking jobs), then
 * every `reconcileIntervalMs` through a scheduler of its own.
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { db, logger } = options;
  const deps: SignalDeps = {
    db,
    connectors: options.connectors,
    ...(options.pollTimeoutMs === undefined ? {} : { pollTimeoutMs: options.pollTimeoutMs }),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.metrics === undefined ? {} : { observer: options.metrics }),
  };
  const webhook: WebhookTarget = options.webhook ?? { url: null, secret: "" };
  const prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
  const signalsQueue = new Queue(SIGNALS_QUEUE, { connection: options.redis, prefix });
  const controlQueue = new Queue(CONTROL_QUEUE, { connection: options.redis, prefix });
  const notifyQueue = new Queue(NOTIFY_QUEUE, { connection: options.redis, prefix });
  let lastCompleted: Date | null = null;
  const clock = options.now ?? (() => new Date());
  const mailDeps: GateMailDeps | null =
    options.mailer === undefined
      ? null
      : {
          db,
          mailer: options.mailer,
          links: options.links ?? { publicUrl: "http://localhost:8080" },
          ...(options.now === undefined ? {} : { now: options.now }),
        };

  /**
   * Add a job unless the same work is already queued. A job of that id that
   * finished (completed or failed) while Postgres still says the work is open
   * is replaced: it ran too early, or gave up.
   */
  async function ensureJob(
    queue: Queue,
    name: string,
    data: Record<string, string>,
    jobId: string,
    opts: Record<string, unknown>,
    delay = 0,
    promote = false,
  ): Promise<boolean> {
    const existing = await queue.getJob(jobId);
    if (existing !== undefined) {
      const state = await existing.getState();
      // A delayed SLA job whose deadline has come by the clock runs now. A delayed email job is a
      // retry waiting out its backoff: it keeps waiting.
      if (state === "delayed" && promote) {
        await existing.promote();
        return true;
      }
      if (state !== "completed" && state !== "failed") return false;
      await existing.remove();
    }
    await queue.add(name, data, { ...opts, jobId, ...(delay > 0 ? { delay } : {}) });
    return true;
  }

  async function enqueueEmails(ids: readonly string[]): Promise<number> {
    let added = 0;
    for (const id of ids) {
      const ok = await ensureJob(notifyQueue, JOB.sendGateEmail, { notificationId: id }, gateEmailJobId(id), {
        ...NOTIFY_JOB_OPTS,
        attempts: EMAIL_ATTEMPTS,
      });
      if (ok) added += 1;
    }
    return added;
  }

  let dispatching: Promise<DispatchReport> | null = null;
  async function dispatchOnce(): Promise<DispatchReport> {
    const deps0 = { db, ...(options.now === undefined ? {} : { now: options.now }) };
    const emails = mailDeps === null ? 0 : await enqueueEmails(await openNotifications(deps0));
    let webhooks = 0;
    if (webhook.url !== null) {
      for (const id of await pendingWebhooks({ db }, 0)) {
        const job = await controlQueue.getJob(webhookJobId(id));
        if (job !== undefined && !(await job.isFailed())) continue;
        if (job !== undefined) await job.remove();
        await enqueueWebhooks([id]);
        webhooks += 1;
      }
    }
    // Newly opened gates: their reminder and expiry as delayed jobs.
    const fresh = await unscheduledGates(deps0);
    const now = clock().getTime();
    for (const gate of fresh) {
      for (const [step, at] of [
        ["reminder", gate.remindAt],
        ["expiry", gate.dueAt],
      ] as const) {
        await ensureJob(
          notifyQueue,
          step === "reminder" ? JOB.gateReminder : JOB.gateExpiry,
          { gateId: gate.id },
          gateSlaJobId(step, gate.id),
          NOTIFY_JOB_OPTS,
          Math.max(1, at.getTime() - now),
        );
      }
    }
    await markGatesScheduled(
      deps0,
      fresh.map((g) => g.id),
    );
    // Deadlines that have come by the clock: run them now (a lost or early job is replaced).
    let due = 0;
    for (const step of await dueSlaSteps(deps0)) {
      const ok = await ensureJob(
        notifyQueue,
        step.step === "reminder" ? JOB.gateReminder : JOB.gateExpiry,
        { gateId: step.gateId },
        gateSlaJobId(step.step, step.gateId),
        NOTIFY_JOB_OPTS,
        0,
        true,
      );
      if (ok) due += 1;
    }
    return { emails, webhooks, scheduled: fresh.length, due };
  }
  function dispatch(): Promise<DispatchReport> {
    // One sweep at a time in this process; a caller during a sweep waits for it.
    if (dispatching === null) {
      dispatching = dispatchOnce().finally(() => {
        dispatching = null;
      });
    }
    return dispatching;
  }

  async function enqueueWebhooks(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      await controlQueue.add(
        JOB.deliverWebhook,
        { deliveryId: id },
        {
          jobId: webhookJobId(id),
          attempts: WEBHOOK_ATTEMPTS,
          backoff: { type: "exponential", delay: 1000 },
          removeOnComplete: KEEP_COMPLETED,
          removeOnFail: KEEP_FAILED,
        },
      );
    }
  }

  async function reconcile(): Promise<ReconcileReport> {
    const desired = await desiredSchedules({ db });
    const existing = await signalsQueue.getJobSchedulers(0, -1);
    const byKey = new Map(existing.map((s) => [s.key, s]));
    let added = 0;
    let removed = 0;
    const want = new Map<string, { every: number; name: string; data: Record<string, string> }>();
    for (const [id, every] of desired.experiments) {
      want.set(experimentSchedulerId(id), { every, name: JOB.pollExperiment, data: { experimentId: id } });
    }
    for (const [id, every] of desired.outcomes) {
      want.set(outcomeSchedulerId(id), { every, name: JOB.pollOutcome, data: { outcomeId: id } });
    }
    for (const [key, w] of want) {
      const current = byKey.get(key);
      if (current !== undefined && current.every === w.every) continue;
      await signalsQueue.upsertJobScheduler(
        key,
        { every: w.every },
        { name: w.name, data: w.data, opts: POLL_JOB_OPTS },
      );
      added += 1;
    }
    for (const s of existing) {
      if (!want.has(s.key)) {
        await signalsQueue.removeJobScheduler(s.key);
        removed += 1;
      }
    }
    // Webhooks whose delivery job was lost (a Redis that forgot, a crash between commit and add).
    // Without a URL nothing is sent: the outbox keeps them until one is configured.
    const pending = webhook.url === null ? [] : await pendingWebhooks({ db }, 60_000);
    let requeued = 0;
    for (const id of pending) {
      const job = await controlQueue.getJob(webhookJobId(id));
      if (job === undefined || (await job.isFailed())) {
        if (job !== undefined) await job.remove();
        await enqueueWebhooks([id]);
        requeued += 1;
      }
    }
    for (const note of desired.notes) logger.warn({ note }, "poll interval stretched");
    return {
      experiments: desired.experiments.size,
      outcomes: desired.outcomes.size,
      added,
      removed,
      webhooksRequeued: requeued,
      notes: desired.notes,
    };
  }

  async function processSignals(job: Job): Promise<unknown> {
    switch (job.name) {
      case JOB.pollExperiment: {
        const experimentId = String(job.data.experimentId);
        const started = performance.now();
        let result: Awaited<ReturnType<typeof pollExperiment>>;
        try {
          result = await pollExperiment(deps, experimentId);
        } catch (error) {
          const described = describePollError(error);
          logger.warn(
            { experimentId, ...described, attempt: job.attemptsMade + 1, durationMs: msSince(started), err: error },
            "poll failed",
          );
          // A bad config or bad SQL will not heal by retrying; the next scheduled poll tries again.
          if (!described.retryable) throw new UnrecoverableError(`${described.code}: ${described.message}`);
          throw error;
        }
        if (result.status === "skipped") {
          logger.info(
            {
              experimentId,
              experimentKey: result.experimentKey,
              status: result.status,
              state: result.state,
              durationMs: msSince(started),
            },
            "experiment polled",
          );
          return result;
        }
        logger.info(
          {
            experimentId,
            experimentKey: result.experimentKey,
            status: result.status,
            connectors: [...new Set(result.reads.map((r) => r.connector))],
            rowsRead: result.reads.reduce((sum, r) => sum + r.rows, 0),
            inserted: result.inserted,
            updated: result.updated,
            unchanged: result.unchanged,
            newestTs: result.newestTs?.toISOString() ?? null,
            attempt: job.attemptsMade + 1,
            durationMs: msSince(started),
          },
          "experiment polled",
        );
        // Analyse up to the newest stored point; the job id makes a re-poll with nothing new a no-op.
        const upTo = await primaryPolledUntil(deps, experimentId);
        if (upTo !== null) {
          // A job id that failed all its attempts would swallow every later add until it expires: clear it.
          const previous = await signalsQueue.getJob(analyzeJobId(experimentId, upTo));
          if (previous !== undefined && (await previous.isFailed())) await previous.remove();
          await signalsQueue.add(
            JOB.analyzeExperiment,
            { experimentId },
            {
              jobId: analyzeJobId(experimentId, upTo),
              attempts: 5,
              backoff: { type: "exponential", delay: 1000 },
              removeOnComplete: KEEP_COMPLETED,
              removeOnFail: KEEP_FAILED,
            },
          );
        }
        return { ...result, newestTs: result.newestTs?.toISOString() ?? null };
      }
      case JOB.analyzeExperiment: {
        const experimentId = String(job.data.experimentId);
        const started = performance.now();
        const outcome = await analyzeExperiment(deps, experimentId);
        const durationMs = msSince(started);
        options.metrics?.analysisDone(outcome, durationMs / 1000);
        // The newest analysis's answer (a decision, or `continue` with its reason), if one was written.
        const latest = outcome.decision ?? outcome.looks.at(-1) ?? null;
        logger.info(
          {
            experimentId,
            experimentKey: outcome.experimentKey,
            analyses: outcome.analysed,
            action: latest?.action ?? null,
            reason: latest?.reason ?? null,
            state: outcome.state,
            durationMs,
          },
          "experiment analysed",
        );
        if (outcome.decision !== null) {
          logger.info(
            {
              experimentId,
              action: outcome.decision.action,
              reason: outcome.decision.reason,
              detail: outcome.decision.detail,
            },
            "experiment decided",
          );
          await signalsQueue.removeJobScheduler(experimentSchedulerId(experimentId));
        }
        await enqueueWebhooks(outcome.webhooks);
        return { analysed: outcome.analysed, decision: outcome.decision, state: outcome.state };
      }
      case JOB.pollOutcome: {
        const outcomeId = String(job.data.outcomeId);
        const started = performance.now();
        const result = await pollOutcome(deps, outcomeId);
        logger.info(
          result.status === "polled"
            ? {
                outcomeId,
                status: result.status,
                value: result.value,
                goal: result.goal,
                state: result.state,
                note: result.note,
                durationMs: msSince(started),
              }
            : { outcomeId, status: result.status, state: result.state, durationMs: msSince(started) },
          "outcome polled",
        );
        if (result.status === "polled" && result.state !== "active") {
          await signalsQueue.removeJobScheduler(outcomeSchedulerId(outcomeId));
        }
        return result;
      }
      default:
        throw new Error(`unknown job ${job.name}`);
    }
  }

  async function processNotify(job: Job): Promise<unknown> {
    const deps0 = { db, ...(options.now === undefined ? {} : { now: options.now }) };
    switch (job.name) {
      case JOB.sendGateEmail: {
        if (mailDeps === null) throw new UnrecoverableError("no mailer configured in this worker");
        const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        return sendGateNotification(mailDeps, String(job.data.notificationId), { final });
      }
      case JOB.gateReminder:
      case JOB.gateExpiry: {
        const gateId = String(job.data.gateId);
        const result =
          job.name === JOB.gateReminder ? await remindGate(deps0, gateId) : await handleGateExpiry(deps0, gateId);
        if (result.status === "done") {
          logger.info({ gateId, step: result.step }, "gate SLA step");
          if (mailDeps !== null) await enqueueEmails(result.notifications);
        }
        return result;
      }
      case JOB.summarizeLearning: {
        if (options.gateway === undefined) return { status: "kept" };
        return { status: await refineLearning({ db, gateway: options.gateway }, String(job.data.learningId)) };
      }
      default:
        throw new Error(`unknown job ${job.name}`);
    }
  }

  async function processControl(job: Job): Promise<unknown> {
    switch (job.name) {
      case JOB.reconcile:
        return reconcile();
      case JOB.deliverWebhook: {
        const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        return deliverWebhook({ db }, String(job.data.deliveryId), webhook, { final });
      }
      default:
        throw new Error(`unknown job ${job.name}`);
    }
  }

  // Reconcile before taking jobs: the schedulers match Postgres from the first moment.
  const first = await reconcile();
  logger.info(first, "schedulers reconciled");

  const lockDuration = options.lockDurationMs ?? 30_000;
  const workerOpts = {
    name: options.name ?? `${hostname()}:${process.pid}`,
    connection: options.redis,
    prefix,
    lockDuration,
    // A killed worker's job is found stalled by this check (BullMQ's default interval is 30 s whatever the
    // lock): checking as often as the lock lasts takes the job over within about two lock durations.
    stalledInterval: lockDuration,
    // A killed worker's job is stalled; let it be retried rather than failed after one stall.
    maxStalledCount: 10,
  };
  const signalsWorker = new Worker(SIGNALS_QUEUE, processSignals, {
    ...workerOpts,
    concurrency: options.concurrency ?? 8,
  });
  const controlWorker = new Worker(CONTROL_QUEUE, processControl, { ...workerOpts, concurrency: 4 });
  const notifyWorker = new Worker(NOTIFY_QUEUE, processNotify, { ...workerOpts, concurrency: 4 });
  for (const w of [signalsWorker, controlWorker, notifyWorker]) {
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
  const reconcileEvery = options.reconcileIntervalMs ?? 30_000;
  const ensureReconcileScheduler = () =>
    controlQueue.upsertJobScheduler(
      "reconcile",
      { every: reconcileEvery },
      { name: JOB.reconcile, data: {}, opts: { removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED } },
    );
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
    reconcile,
    dispatch,
    lastCompletedAt: () => lastCompleted,
    async hasWaitingWork() {
      const counts = await Promise.all([
        signalsQueue.getWaitingCount(),
        controlQueue.getWaitingCount(),
        notifyQueue.getWaitingCount(),
      ]);
      return counts.some((n) => n > 0);
    },
    signalsQueue,
    controlQueue,
    notifyQueue,
    name: workerOpts.name,
    async close() {
      clearInterval(keepScheduling);
      if (sweeping !== null) clearInterval(sweeping);
      await dispatching?.catch(() => undefined);
      await Promise.allSettled([signalsWorker.close(), controlWorker.close(), notifyWorker.close()]);
      await Promise.allSettled([signalsQueue.close(), controlQueue.close(), notifyQueue.close()]);
    },
  };
}
