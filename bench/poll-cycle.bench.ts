/**
 * Figure 2: poll→analysis cycles per second with N running experiments.
 *
 * A fresh migrated database gets the example outcome (active) and N running
 * experiments; the worker runs in this process (`startWorker`) with the
 * synthetic connector of `synthetic-connector.ts`. Its start reconciles one
 * Job Scheduler per experiment (every 15 min, the example's `poll_interval`);
 * BullMQ runs each scheduler's first job at once, and the source has no
 * snapshot yet, so that first pass creates the series and analyses nothing
 * (the warm-up). Then each round publishes one snapshot, enqueues one
 * `poll-experiment` job per experiment and stops the clock when the queue is
 * drained and every experiment has its analysis row for that snapshot. A cycle
 * is one poll job plus the analyse job it enqueues.
 *
 * Batched (`batched: true`): the outcome's queries are in the batched form, so
 * the worker reconciles one `poll-experiments` scheduler for the outcome; each
 * round adds one such job, which reads every metric once per batch of
 * `POLL_BATCH_SIZE` experiments, then stores and analyses each experiment in
 * the same job, WORKER_CONCURRENCY at a time. A cycle is then one experiment
 * polled and analysed.
 */
import type { Db } from "@outcome-runtime/db";
import { type ConnectorProvider, JOB, KEEP_COMPLETED, KEEP_FAILED } from "@outcome-runtime/runtime";
import { type RunningWorker, startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import type { Redis } from "ioredis";
import type { BenchDatabases } from "./bench-database";
import { activeExampleOutcome, insertRunningExperiments } from "./bench-fixtures";
import { SyntheticSource, syntheticProvider } from "./synthetic-connector";

export interface CycleRound {
  readonly round: number;
  /** From the first job added to the last analysis stored. */
  readonly seconds: number;
  /** Time spent adding the N poll jobs (part of `seconds`). */
  readonly enqueueSeconds: number;
  readonly analyses: number;
  readonly cyclesPerSecond: number;
  readonly complete: boolean;
}

export interface CycleFigure {
  readonly experiments: number;
  /** Polled in batches (one job per round for the outcome) or one job per experiment. */
  readonly batched: boolean;
  /** Source requests per round (median over the rounds). */
  readonly requestsPerRound: number | null;
  readonly concurrency: number;
  /** `startWorker`: reconciling one scheduler per experiment. */
  readonly reconcileSeconds: number;
  /** The schedulers' first jobs (no data yet): series created, nothing analysed. */
  readonly warmupSeconds: number;
  /** `reconcile()` again after the rounds, when nothing has to change (the worker repeats it every 30 s by default). */
  readonly steadyReconcileSeconds: number;
  readonly rounds: readonly CycleRound[];
  /** Median over the complete rounds; null when none completed. */
  readonly cyclesPerSecond: number | null;
  /** Mean processing time of one job, ms, over the jobs sampled during the rounds. */
  readonly jobMs: { readonly poll: number | null; readonly analyse: number | null };
  readonly failedJobs: number;
  /** Resident set size of the process (worker in process) after the rounds, MiB. */
  readonly rssMiB: number;
  /** The process's resident set and V8 heap in use after a full garbage collection (null without `--expose-gc`). */
  readonly afterGcMiB: { readonly rss: number; readonly heapUsed: number } | null;
  readonly warnings: readonly string[];
  readonly note: string | null;
}

/** A pino-shaped logger that keeps the worker's warnings and errors for the report and prints nothing. */
function collectingLogger(warnings: string[]): WorkerOptions["logger"] {
  const keep = (level: string) => (obj: unknown, msg?: string) => {
    if (warnings.length < 20) warnings.push(`${level}: ${msg ?? ""} ${JSON.stringify(obj)}`);
  };
  const logger = {
    level: "warn",
    info: () => {},
    debug: () => {},
    trace: () => {},
    warn: keep("warn"),
    error: keep("error"),
    fatal: keep("fatal"),
    child: () => logger,
  };
  // pino is the worker's dependency, not the repository root's; the worker calls only these methods.
  return logger as unknown as WorkerOptions["logger"];
}

/** Median of the values; null when there are none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function countAnalyses(db: Db): Promise<number> {
  const row = await db
    .selectFrom("analyses")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function countPolled(db: Db): Promise<number> {
  const row = await db
    .selectFrom("experiments")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("last_polled_at", "is not", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function pending(worker: RunningWorker): Promise<number> {
  const c = await worker.signalsQueue.getJobCounts("wait", "active", "prioritized");
  return (c.wait ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
}

async function addPolls(worker: RunningWorker, ids: readonly string[], tag: string): Promise<void> {
  for (let start = 0; start < ids.length; start += 1000) {
    await worker.signalsQueue.addBulk(
      ids.slice(start, start + 1000).map((experimentId) => ({
        name: JOB.pollExperiment,
        data: { experimentId },
        // The worker's own options for scheduled polls.
        opts: {
          jobId: `bench-${tag}-${experimentId}`,
          attempts: 5,
          backoff: { type: "exponential" as const, delay: 2000 },
          removeOnComplete: KEEP_COMPLETED,
          removeOnFail: KEEP_FAILED,
        },
      })),
    );
  }
}

/** One `poll-experiments` job for the outcome: every running experiment of it, in batches. */
async function addBatchPoll(worker: RunningWorker, outcomeId: string, tag: string): Promise<void> {
  await worker.signalsQueue.add(
    JOB.pollExperimentBatch,
    { outcomeId },
    {
      jobId: `bench-${tag}-${outcomeId}`,
      attempts: 5,
      backoff: { type: "exponential" as const, delay: 2000 },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    },
  );
}

/**
 * Processing times of completed jobs, sampled while the rounds run (BullMQ
 * keeps only the newest completed jobs, so reading them once at the end would
 * see only the last analyse jobs of a large round).
 */
class JobSampler {
  private readonly seen = new Map<string, { name: string; ms: number }>();

  async sample(worker: RunningWorker): Promise<void> {
    for (const job of await worker.signalsQueue.getJobs(["completed"], 0, 299)) {
      if (job.id === undefined || job.processedOn === undefined || job.finishedOn === undefined) continue;
      this.seen.set(job.id, { name: job.name, ms: job.finishedOn - job.processedOn });
    }
  }

  /** Mean processing time of the sampled jobs of `name`, ms. */
  mean(name: string): number | null {
    const ms = [...this.seen.values()].filter((j) => j.name === name).map((j) => j.ms);
    return ms.length === 0 ? null : ms.reduce((a, b) => a + b, 0) / ms.length;
  }
}

export interface CycleOptions {
  readonly experiments: number;
  readonly rounds: number;
  readonly concurrency: number;
  /** BullMQ prefix of this scenario. */
  readonly prefix: string;
  /** Stop waiting for a round after this long (its partial rate is reported). */
  readonly roundTimeoutMs: number;
  /** No new round starts when the rounds so far plus one more would exceed this. */
  readonly budgetMs: number;
  /** Poll the outcome's experiments together (`poll-experiments`), with the batched query form. */
  readonly batched?: boolean;
  /** Experiments per source request when batched (default 500). */
  readonly batchSize?: number;
}

export async function benchPollCycles(dbs: BenchDatabases, redis: Redis, options: CycleOptions): Promise<CycleFigure> {
  const n = options.experiments;
  const bench = await dbs.clone(`e${n}${options.batched ? "b" : ""}`, options.concurrency + 4);
  const warnings: string[] = [];
  let worker: RunningWorker | null = null;
  let connectors: ConnectorProvider | null = null;
  const source = new SyntheticSource();
  try {
    const batched = options.batched === true;
    const outcome = await activeExampleOutcome(bench.db, { batched });
    const ids = await insertRunningExperiments(bench.db, outcome, n);

    connectors = syntheticProvider(bench.db, source, outcome.spec);

    const started = performance.now();
    worker = await startWorker({
      db: bench.db,
      redis,
      connectors,
      logger: collectingLogger(warnings),
      prefix: options.prefix,
      concurrency: options.concurrency,
      reconcileIntervalMs: 3_600_000,
      ...(options.batchSize === undefined ? {} : { pollBatchSize: options.batchSize }),
    });
    const reconciled = performance.now();

    // Warm-up: the schedulers' first jobs. Should BullMQ not run them at once, add them here.
    const warmupDeadline = reconciled + options.roundTimeoutMs;
    let added = false;
    while ((await countPolled(bench.db)) < n) {
      if (performance.now() > warmupDeadline) throw new Error(`warm-up polls of ${n} experiments did not finish`);
      if (!added && performance.now() - reconciled > 3000 && (await pending(worker)) === 0) {
        if (batched) await addBatchPoll(worker, outcome.outcomeId, "warmup");
        else await addPolls(worker, ids, "warmup");
        added = true;
      }
      await sleep(100);
    }
    while ((await pending(worker)) > 0) await sleep(50);
    const warmedUp = performance.now();

    const rounds: CycleRound[] = [];
    const requests: number[] = [];
    const sampler = new JobSampler();
    let note: string | null = null;
    const roundsStarted = performance.now();
    for (let r = 1; r <= options.rounds; r++) {
      const last = rounds.at(-1);
      if (last !== undefined && performance.now() - roundsStarted + last.seconds * 1000 > options.budgetMs) {
        note =
          `${rounds.length} of ${options.rounds} rounds: a round takes about ${Math.round(last.seconds)} s, ` +
          `and another would take the rounds past their ${Math.round(options.budgetMs / 1000)} s budget`;
        break;
      }
      const before = await countAnalyses(bench.db);
      const requestsBefore = source.requests;
      source.advance();
      const start = performance.now();
      if (batched) await addBatchPoll(worker, outcome.outcomeId, `round${r}`);
      else await addPolls(worker, ids, `round${r}`);
      const enqueued = performance.now();
      let stored = before;
      let complete = false;
      let sampledAt = start;
      while (performance.now() - start < options.roundTimeoutMs) {
        if (performance.now() - sampledAt >= 1000) {
          await sampler.sample(worker);
          sampledAt = performance.now();
        }
        if ((await pending(worker)) === 0) {
          stored = await countAnalyses(bench.db);
          if (stored - before >= n) {
            complete = true;
            break;
          }
        }
        await sleep(50);
      }
      const end = performance.now();
      await sampler.sample(worker);
      if (!complete) stored = await countAnalyses(bench.db);
      const analyses = stored - before;
      requests.push(source.requests - requestsBefore);
      const seconds = (end - start) / 1000;
      rounds.push({
        round: r,
        seconds,
        enqueueSeconds: (enqueued - start) / 1000,
        analyses,
        cyclesPerSecond: analyses / seconds,
        complete,
      });
      if (!complete) {
        note = `round ${r} stopped after ${Math.round(seconds)} s with ${analyses} of ${n} analyses`;
        break;
      }
    }
    const done = rounds.filter((r) => r.complete).map((r) => r.cyclesPerSecond);
    const reconcileStart = performance.now();
    const steady = await worker.reconcile();
    const steadyReconcileSeconds = (performance.now() - reconcileStart) / 1000;
    if (steady.added !== 0 || steady.removed !== 0) {
      warnings.push(`the steady reconcile changed schedulers: ${steady.added} added, ${steady.removed} removed`);
    }
    const failed = await worker.signalsQueue.getJobCounts("failed");
    return {
      experiments: n,
      batched,
      requestsPerRound: median(requests),
      concurrency: options.concurrency,
      reconcileSeconds: (reconciled - started) / 1000,
      warmupSeconds: (warmedUp - reconciled) / 1000,
      steadyReconcileSeconds,
      rounds,
      cyclesPerSecond: median(done),
      jobMs: batched
        ? { poll: sampler.mean(JOB.pollExperimentBatch), analyse: null }
        : { poll: sampler.mean(JOB.pollExperiment), analyse: sampler.mean(JOB.analyseExperiment) },
      failedJobs: failed.failed ?? 0,
      rssMiB: process.memoryUsage().rss / 2 ** 20,
      ...afterGc(),
      warnings,
      note,
    };
  } finally {
    if (worker !== null) await worker.close();
    if (connectors !== null) await connectors.close();
    await bench.drop();
  }
}

/** Memory once the garbage of the rounds is collected: what the process keeps, not what it has yet to free. */
function afterGc(): { afterGcMiB: { rss: number; heapUsed: number } | null } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return { afterGcMiB: null };
  gc();
  const m = process.memoryUsage();
  return { afterGcMiB: { rss: m.rss / 2 ** 20, heapUsed: m.heapUsed / 2 ** 20 } };
}
