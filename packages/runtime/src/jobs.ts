/**
 * The job catalogue: every background job the worker runs, named once with its
 * queue, its payload, its retries (attempts, exponential backoff) and how its
 * job id is made. The worker adds jobs and dispatches them from here; nothing
 * else names a job or spells its options.
 *
 * A job id names the work, so adding the same work twice while the first is
 * still stored is a no-op in BullMQ (the deduplication the at-least-once
 * delivery needs). Payloads hold ids only, never secrets: the work's facts are
 * read from Postgres when the job runs.
 *
 * This module imports no queue library: options are plain objects that
 * BullMQ's `JobsOptions` accepts.
 */

/** Default prefix of the BullMQ keys in Redis. */
export const DEFAULT_QUEUE_PREFIX = "outcome-runtime";

/** Polls and analyses: the bulk of the work. */
export const SIGNALS_QUEUE = "signals";
/** Reconciliation and webhook deliveries: small and never stuck behind polls. */
export const CONTROL_QUEUE = "control";
/** Gate emails, gate SLA steps (reminder, expiry), learning summaries and learning embeddings. */
export const NOTIFY_QUEUE = "notify";

export type QueueName = typeof SIGNALS_QUEUE | typeof CONTROL_QUEUE | typeof NOTIFY_QUEUE;

/**
 * Completed jobs are kept an hour (at most 100 000 of them, about two per running
 * experiment per poll round at 50 000 experiments), so a duplicate add within
 * that time is ignored.
 */
export const KEEP_COMPLETED = { age: 3600, count: 100_000 } as const;
/** Failed jobs are kept a week, for the operators to read. */
export const KEEP_FAILED = { age: 7 * 86_400 } as const;

/** Exponential backoff: the first retry after `delay` ms, then twice as long each time. */
interface Backoff {
  readonly type: "exponential";
  readonly delay: number;
}

const exponential = (delay: number): Backoff => ({ type: "exponential", delay });

/** A job's payload: each field an id (a UUID, as a string). */
export type PayloadOf<F extends readonly string[]> = { readonly [K in F[number]]: string };

/** How one piece of work's job id is made: from the payload and what else names the work. */
// biome-ignore lint/suspicious/noExplicitAny: each job names its work with its own extra arguments
type JobIdRule<F extends readonly string[]> = (payload: PayloadOf<F>, ...key: any[]) => string;

interface JobSpec<
  N extends string,
  Q extends QueueName,
  F extends readonly string[],
  J extends JobIdRule<F> | null,
  S extends ((payload: PayloadOf<F>) => string) | null,
> {
  readonly name: N;
  readonly queue: Q;
  /** The payload's fields. */
  readonly payload: F;
  /** Runs in all, the first included. */
  readonly attempts: number;
  /** Between attempts; null with one attempt. */
  readonly backoff: Backoff | null;
  /** The job id of one piece of work; null for jobs only a scheduler makes. */
  readonly jobId: J;
  /** The Job Scheduler's id for jobs a scheduler repeats; null for one-off jobs. */
  readonly schedulerId: S;
}

function defineJob<
  const N extends string,
  const Q extends QueueName,
  const F extends readonly string[],
  J extends JobIdRule<F> | null,
  S extends ((payload: PayloadOf<F>) => string) | null,
>(spec: JobSpec<N, Q, F, J, S>): JobSpec<N, Q, F, J, S> {
  return spec;
}

/** The catalogue. Read `docs/worker.md` for when each job runs and what it does. */
export const JOBS = {
  /** Read an experiment's metrics through their connectors and store the points; then queue its analysis. */
  pollExperiment: defineJob({
    name: "poll-experiment",
    queue: SIGNALS_QUEUE,
    payload: ["experimentId"],
    attempts: 5,
    backoff: exponential(2000),
    // A person's "poll now": one job per experiment and second of the request.
    jobId: (p, requestedAt: Date) => `poll-now-${p.experimentId}-${Math.floor(requestedAt.getTime() / 1000)}`,
    schedulerId: (p) => `poll-experiment:${p.experimentId}`,
  }),
  /**
   * Read the running experiments of an outcome whose metrics all read in batches, one source request per
   * metric and batch; store each experiment's points, then analyse each in the same job.
   */
  pollExperimentBatch: defineJob({
    name: "poll-experiments",
    queue: SIGNALS_QUEUE,
    payload: ["outcomeId"],
    attempts: 5,
    backoff: exponential(2000),
    jobId: null,
    schedulerId: (p) => `poll-experiments:${p.outcomeId}`,
  }),
  /** Analyse the snapshots of an experiment up to a point in time (ms), and apply the decision policy. */
  analyseExperiment: defineJob({
    name: "analyse-experiment",
    queue: SIGNALS_QUEUE,
    payload: ["experimentId"],
    attempts: 5,
    backoff: exponential(1000),
    // A re-poll that found nothing new asks for the same analysis: a no-op.
    jobId: (p, upToMs: number) => `analyse-${p.experimentId}-${upToMs}`,
    schedulerId: null,
  }),
  /** Read an outcome's own signal; close it (achieved, missed) when its target or horizon says so. */
  pollOutcome: defineJob({
    name: "poll-outcome",
    queue: SIGNALS_QUEUE,
    payload: ["outcomeId"],
    attempts: 5,
    backoff: exponential(2000),
    jobId: null,
    schedulerId: (p) => `poll-outcome:${p.outcomeId}`,
  }),
  /** Make the Job Schedulers in Redis match Postgres; re-queue webhooks whose job was lost. */
  reconcile: defineJob({
    name: "reconcile",
    queue: CONTROL_QUEUE,
    payload: [],
    attempts: 1,
    backoff: null,
    jobId: null,
    schedulerId: () => "reconcile",
  }),
  /**
   * Delete raw signal points past each workspace's `signalRetention` (old points of finished experiments and
   * abandoned outcomes, never the latest analysis' points: `applySignalRetention`). Daily; an admin runs it
   * for a workspace on demand through the API. Safe to repeat: it deletes nothing the second time.
   */
  applySignalRetention: defineJob({
    name: "apply-signal-retention",
    queue: CONTROL_QUEUE,
    payload: [],
    attempts: 3,
    backoff: exponential(60_000),
    jobId: null,
    schedulerId: () => "signal-retention",
  }),
  /** POST one signed webhook from the outbox. */
  deliverWebhook: defineJob({
    name: "deliver-webhook",
    queue: CONTROL_QUEUE,
    payload: ["deliveryId"],
    attempts: 8,
    backoff: exponential(1000),
    jobId: (p) => `webhook-${p.deliveryId}`,
    schedulerId: null,
  }),
  /**
   * Apply one version of an experiment's flag rollout (read the provider, write the difference, record it
   * once). One attempt: the rollout row keeps its own backoff, and the sweep queues the next attempt.
   */
  applyFlagRollout: defineJob({
    name: "apply-flag-rollout",
    queue: CONTROL_QUEUE,
    payload: ["experimentId"],
    attempts: 1,
    backoff: null,
    // The attempt's due time names a retry (after a failure, or an approval's re-check); the lease's end one
    // after a worker died holding the rollout (its job had completed).
    jobId: (p, version: number, dueMs: number, leaseUntilMs: number) =>
      `flag-${p.experimentId}-v${version}-d${dueMs}-l${leaseUntilMs}`,
    schedulerId: null,
  }),
  /** Claim, render and send one gate email from the outbox; 12 attempts, 2 s doubling: about an hour. */
  sendGateEmail: defineJob({
    name: "send-gate-email",
    queue: NOTIFY_QUEUE,
    payload: ["notificationId"],
    attempts: 12,
    backoff: exponential(2000),
    jobId: (p) => `gate-email-${p.notificationId}`,
    schedulerId: null,
  }),
  /** A gate's reminder at half its SLA, once. */
  gateReminder: defineJob({
    name: "gate-reminder",
    queue: NOTIFY_QUEUE,
    payload: ["gateId"],
    attempts: 5,
    backoff: exponential(2000),
    jobId: (p) => `gate-reminder-${p.gateId}`,
    schedulerId: null,
  }),
  /** A gate's escalation or expiry at the end of its SLA, once. */
  gateExpiry: defineJob({
    name: "gate-expiry",
    queue: NOTIFY_QUEUE,
    payload: ["gateId"],
    attempts: 5,
    backoff: exponential(2000),
    jobId: (p) => `gate-expiry-${p.gateId}`,
    schedulerId: null,
  }),
  /** Ask the LLM gateway for a learning's sentence (best effort: the rules' sentence stays otherwise). */
  summarizeLearning: defineJob({
    name: "summarize-learning",
    queue: NOTIFY_QUEUE,
    payload: ["learningId"],
    attempts: 3,
    backoff: exponential(5000),
    jobId: (p) => `learning-${p.learningId}`,
    schedulerId: null,
  }),
  /**
   * Embed the learnings whose current text has no embedding yet (new, re-summarised, a failure due again):
   * the embedding of new learnings and the backfill of existing ones. One attempt: failures are recorded per
   * learning and the sweep queues the next pass.
   */
  embedLearnings: defineJob({
    name: "embed-learnings",
    queue: NOTIFY_QUEUE,
    payload: [],
    attempts: 1,
    backoff: null,
    // Named by the oldest learning waiting (its text's hash) and the quarter hour: a new learning starts a new
    // pass at once; a failure, due again 15 min later, falls in a later quarter hour.
    jobId: (_p, learningId: string, contentHash: string, quarterHour: number) =>
      `embed-learnings-${learningId}-${contentHash.slice(0, 12)}-${quarterHour}`,
    schedulerId: null,
  }),
} as const;

/** A job of the catalogue, by its key (`pollExperiment`). */
export type JobKey = keyof typeof JOBS;

/** The payload of a job of the catalogue. */
export type JobPayload<K extends JobKey> = PayloadOf<(typeof JOBS)[K]["payload"]>;

/** The jobs of one queue. */
export type JobsOfQueue<Q extends QueueName> = {
  [K in JobKey]: (typeof JOBS)[K]["queue"] extends Q ? K : never;
}[JobKey];

/** Job names by key, e.g. `JOB.pollExperiment` is `"poll-experiment"`. */
export const JOB = Object.fromEntries(Object.entries(JOBS).map(([key, spec]) => [key, spec.name])) as {
  readonly [K in JobKey]: (typeof JOBS)[K]["name"];
};

/**
 * Names a job had in an earlier release, so a job still queued in Redis when
 * the worker is upgraded is run, not refused.
 */
const FORMER_NAMES: Readonly<Record<string, JobKey>> = { "analyze-experiment": "analyseExperiment" };

const KEY_BY_NAME = new Map<string, JobKey>([
  ...Object.entries(FORMER_NAMES),
  ...Object.entries(JOBS).map(([key, spec]) => [spec.name, key as JobKey] as const),
]);

/** The catalogue's key of a job name (a former name included), or null for a name it does not know. */
export function jobKeyOf(name: string): JobKey | null {
  return KEY_BY_NAME.get(name) ?? null;
}

/** Options to add a job of the catalogue with (BullMQ `JobsOptions`). */
export interface JobOptions {
  readonly attempts: number;
  readonly backoff?: Backoff;
  readonly removeOnComplete: typeof KEEP_COMPLETED;
  readonly removeOnFail: typeof KEEP_FAILED;
  readonly jobId?: string;
  readonly delay?: number;
}

/**
 * The options of a job: its retries and retention, with `jobId` and a delay
 * (ms, only when positive) when given. Scheduler-made jobs take these too.
 */
export function jobOptions(key: JobKey, add: { readonly jobId?: string; readonly delay?: number } = {}): JobOptions {
  const spec = JOBS[key];
  return {
    attempts: spec.attempts,
    ...(spec.backoff === null ? {} : { backoff: spec.backoff }),
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    ...(add.jobId === undefined ? {} : { jobId: add.jobId }),
    ...(add.delay !== undefined && add.delay > 0 ? { delay: add.delay } : {}),
  };
}

/** A job's data does not match its payload in the catalogue: retrying cannot fix it. */
export class InvalidJobPayloadError extends Error {
  constructor(name: string, problem: string) {
    super(`job ${name}: ${problem}`);
    this.name = "InvalidJobPayloadError";
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Check a job's data against its payload: an object with each field a UUID
 * string (other fields are ignored).
 *
 * @throws InvalidJobPayloadError naming the first field that is missing or malformed.
 */
export function parseJobPayload<K extends JobKey>(key: K, data: unknown): JobPayload<K> {
  const spec = JOBS[key];
  if (typeof data !== "object" || data === null) throw new InvalidJobPayloadError(spec.name, "data is not an object");
  const payload: Record<string, string> = {};
  for (const field of spec.payload as readonly string[]) {
    const value = (data as Record<string, unknown>)[field];
    if (typeof value !== "string" || !UUID.test(value)) {
      throw new InvalidJobPayloadError(spec.name, `${field} is not an id (${JSON.stringify(value) ?? "missing"})`);
    }
    payload[field] = value;
  }
  return payload as JobPayload<K>;
}

/** Scheduler id of an experiment's poll (one Job Scheduler per running experiment). */
export function experimentSchedulerId(experimentId: string): string {
  return JOBS.pollExperiment.schedulerId({ experimentId });
}

/** Scheduler id of the batched poll of an outcome's running experiments. */
export function batchSchedulerId(outcomeId: string): string {
  return JOBS.pollExperimentBatch.schedulerId({ outcomeId });
}

/** Scheduler id of an outcome's poll. */
export function outcomeSchedulerId(outcomeId: string): string {
  return JOBS.pollOutcome.schedulerId({ outcomeId });
}

/** Job id of a person's "poll now" of an experiment, requested at `requestedAt` (to the second). */
export function pollNowJobId(experimentId: string, requestedAt: Date): string {
  return JOBS.pollExperiment.jobId({ experimentId }, requestedAt);
}

/** Job id of the analysis of an experiment up to a point in time (ms). */
export function analyseJobId(experimentId: string, upToMs: number): string {
  return JOBS.analyseExperiment.jobId({ experimentId }, upToMs);
}

/** Job id of a webhook delivery (one per outbox row). */
export function webhookJobId(deliveryId: string): string {
  return JOBS.deliverWebhook.jobId({ deliveryId });
}

/**
 * Job id of one attempt at one version of an experiment's flag rollout: adding it twice queues it once.
 * `dueMs` is when the attempt is due (the row's `next_attempt_at`), `leaseUntilMs` the end of a lapsed lease
 * (0 when none), so a retry, a re-check and a rollout whose writer died are each queued again.
 */
export function flagJobId(experimentId: string, version: number, dueMs: number, leaseUntilMs = 0): string {
  return JOBS.applyFlagRollout.jobId({ experimentId }, version, dueMs, leaseUntilMs);
}

/** Job id of sending one gate email (one per outbox row). */
export function gateEmailJobId(notificationId: string): string {
  return JOBS.sendGateEmail.jobId({ notificationId });
}

/** Job id of a gate's SLA step: its reminder or its expiry. */
export function gateSlaJobId(step: "reminder" | "expiry", gateId: string): string {
  return (step === "reminder" ? JOBS.gateReminder : JOBS.gateExpiry).jobId({ gateId });
}

/** Job id of the LLM summary of a learning. */
export function learningJobId(learningId: string): string {
  return JOBS.summarizeLearning.jobId({ learningId });
}

/**
 * Job id of the pass of learning embeddings that embeds the oldest learning waiting (`next`), at `at`: replicas
 * sweeping at once add it once; a failure due again after 15 minutes gets a new pass.
 */
export function embedLearningsJobId(next: { learningId: string; contentHash: string }, at: Date): string {
  return JOBS.embedLearnings.jobId({}, next.learningId, next.contentHash, Math.floor(at.getTime() / 900_000));
}
