/**
 * The worker's three queues, and the ways it adds the jobs of the catalogue
 * (`packages/runtime/src/jobs.ts`) to them: each job goes to its queue with
 * its options, so no caller spells a queue, an attempt count or a backoff.
 */
import {
  CONTROL_QUEUE,
  JOBS,
  type JobKey,
  type JobPayload,
  jobOptions,
  NOTIFY_QUEUE,
  type QueueName,
  SIGNALS_QUEUE,
} from "@outcome-runtime/runtime";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";

export interface JobQueues {
  readonly signals: Queue;
  readonly control: Queue;
  readonly notify: Queue;
  /** Add a job of the catalogue; with a `jobId` already stored, BullMQ keeps the stored one. */
  add<K extends JobKey>(key: K, payload: JobPayload<K>, at?: { readonly jobId?: string }): Promise<void>;
  /**
   * Add a job unless one of that id is stored and has not failed; a failed
   * one (it gave up, and would swallow every later add until it expires) is
   * replaced.
   *
   * @returns whether a job was added.
   */
  addUnlessStored<K extends JobKey>(key: K, payload: JobPayload<K>, jobId: string): Promise<boolean>;
  /**
   * Add a job unless the same work is already waiting, delayed or running. A
   * job of that id that finished (completed or failed) while Postgres still
   * says the work is open is replaced: it ran too early, or gave up. With
   * `promote`, a delayed one runs now (a deadline that has come by the clock);
   * otherwise a delayed one keeps waiting (a retry waiting out its backoff).
   *
   * @returns whether a job was added or promoted.
   */
  ensure<K extends JobKey>(
    key: K,
    payload: JobPayload<K>,
    jobId: string,
    options?: { readonly delay?: number; readonly promote?: boolean },
  ): Promise<boolean>;
  /** The state of the job of that id (`waiting`, `active`, `delayed`, `completed`, `failed`, …), or null when none is stored. */
  stateOf(key: JobKey, jobId: string): Promise<string | null>;
  /** Create or update the Job Scheduler that repeats a job every `every` ms. */
  upsertScheduler<K extends JobKey>(key: K, payload: JobPayload<K>, every: number): Promise<void>;
  /** Stop the Job Scheduler of that id (no-op when there is none). */
  removeScheduler(key: JobKey, schedulerId: string): Promise<void>;
  close(): Promise<void>;
}

/** Open the three queues on `connection` under `prefix`. */
export function openQueues(connection: Redis, prefix: string): JobQueues {
  const queues: Record<QueueName, Queue> = {
    [SIGNALS_QUEUE]: new Queue(SIGNALS_QUEUE, { connection, prefix }),
    [CONTROL_QUEUE]: new Queue(CONTROL_QUEUE, { connection, prefix }),
    [NOTIFY_QUEUE]: new Queue(NOTIFY_QUEUE, { connection, prefix }),
  };
  const queueOf = (key: JobKey): Queue => queues[JOBS[key].queue];

  return {
    signals: queues[SIGNALS_QUEUE],
    control: queues[CONTROL_QUEUE],
    notify: queues[NOTIFY_QUEUE],
    async add(key, payload, at = {}) {
      await queueOf(key).add(JOBS[key].name, payload, jobOptions(key, at));
    },
    async addUnlessStored(key, payload, jobId) {
      const queue = queueOf(key);
      const existing = await queue.getJob(jobId);
      if (existing !== undefined) {
        if (!(await existing.isFailed())) return false;
        await existing.remove();
      }
      await queue.add(JOBS[key].name, payload, jobOptions(key, { jobId }));
      return true;
    },
    async ensure(key, payload, jobId, options = {}) {
      const queue = queueOf(key);
      const existing = await queue.getJob(jobId);
      if (existing !== undefined) {
        const state = await existing.getState();
        if (state === "delayed" && options.promote === true) {
          await existing.promote();
          return true;
        }
        if (state !== "completed" && state !== "failed") return false;
        await existing.remove();
      }
      await queue.add(
        JOBS[key].name,
        payload,
        jobOptions(key, { jobId, ...(options.delay ? { delay: options.delay } : {}) }),
      );
      return true;
    },
    async stateOf(key, jobId) {
      const job = await queueOf(key).getJob(jobId);
      return job === undefined ? null : await job.getState();
    },
    async upsertScheduler(key, payload, every) {
      const spec = JOBS[key];
      if (spec.schedulerId === null) throw new Error(`job ${spec.name} is not made by a scheduler`);
      await queueOf(key).upsertJobScheduler(
        (spec.schedulerId as (p: JobPayload<typeof key>) => string)(payload),
        { every },
        { name: spec.name, data: payload, opts: jobOptions(key) },
      );
    },
    async removeScheduler(key, schedulerId) {
      await queueOf(key).removeJobScheduler(schedulerId);
    },
    async close() {
      await Promise.allSettled(Object.values(queues).map((q) => q.close()));
    },
  };
}
