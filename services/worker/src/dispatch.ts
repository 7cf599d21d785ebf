/**
 * From a BullMQ job to its processor: the job's name is looked up in the
 * catalogue, its data checked against the catalogue's payload, and the
 * processor of its queue called with the typed payload. A job the catalogue
 * does not know, or bad data, fails at once (`UnrecoverableError`): retrying
 * cannot fix it.
 */
import {
  InvalidJobPayloadError,
  JOBS,
  type JobKey,
  type JobPayload,
  type JobsOfQueue,
  jobKeyOf,
  parseJobPayload,
  type QueueName,
} from "@outcome-runtime/runtime";
import { type Job, UnrecoverableError } from "bullmq";

/** One run of a job, as its processor sees it. */
export interface JobRun {
  readonly id: string | undefined;
  /** 1 for the first run. */
  readonly attempt: number;
  /** Whether this is the last attempt the catalogue allows (the work is given up if it fails). */
  readonly final: boolean;
}

/** The processor of a queue: one function per job of that queue in the catalogue. */
export type QueueProcessor<Q extends QueueName> = {
  readonly [K in JobsOfQueue<Q>]: (payload: JobPayload<K>, run: JobRun) => Promise<unknown>;
};

/** The BullMQ processor function of `queue`, dispatching each job to `processor`. */
export function dispatcher<Q extends QueueName>(
  queue: Q,
  processor: QueueProcessor<Q>,
): (job: Job) => Promise<unknown> {
  return async (job) => {
    const key = jobKeyOf(job.name);
    if (key === null || JOBS[key].queue !== queue) {
      throw new UnrecoverableError(`unknown job ${job.name} on queue ${queue}`);
    }
    let payload: JobPayload<JobKey>;
    try {
      payload = parseJobPayload(key, job.data);
    } catch (error) {
      if (error instanceof InvalidJobPayloadError) throw new UnrecoverableError(error.message);
      throw error;
    }
    const attempt = job.attemptsMade + 1;
    const run: JobRun = { id: job.id, attempt, final: attempt >= (job.opts.attempts ?? 1) };
    const handle = (processor as unknown as Record<JobKey, (p: JobPayload<JobKey>, r: JobRun) => Promise<unknown>>)[
      key
    ];
    return handle(payload, run);
  };
}
