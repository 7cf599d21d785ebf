/**
 * Kill-switch latency with N running experiments polled in batches: from the
 * harmful rows appearing in the source to each harmful experiment paused
 * (its pause committed, seen by reading its state) and to its signed webhook received by
 * a local HTTP receiver.
 *
 * The batched example outcome runs N experiments; 1 % of them (at least 5)
 * have a treatment converting 1.3 × the control's rate (abandonment goes up:
 * harm, for an outcome that wants it down). The synthetic source gives every
 * arm 6,000 units per snapshot, past `min_sample_per_arm` (5,000) at the first
 * snapshot. The worker runs in process with the webhook target. After the
 * warm-up, one snapshot is published and one `poll-experiments` job added at
 * the same instant: the moment a poll interval ends. Latencies are measured
 * from it, so they are what comes on top of the poll interval.
 */
import { createServer, type Server } from "node:http";
import type { Db } from "@outcome-runtime/db";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { type ConnectorProvider, JOB, KEEP_COMPLETED, KEEP_FAILED } from "@outcome-runtime/runtime";
import { type RunningWorker, startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import type { Redis } from "ioredis";
import type { BenchDatabases } from "./bench-database";
import { activeExampleOutcome, insertRunningExperiments } from "./bench-fixtures";
import { median } from "./poll-cycle.bench";
import { SyntheticSource, syntheticProvider } from "./synthetic-connector";

export interface KillLatencyFigure {
  readonly experiments: number;
  readonly harmful: number;
  readonly concurrency: number;
  /** Harmful experiments paused (of `harmful`) and webhooks received before the timeout. */
  readonly paused: number;
  readonly webhooks: number;
  /** Seconds from the harmful rows to the pause, and to the webhook received: median, p99, max. */
  readonly pauseSeconds: Quantiles | null;
  readonly webhookSeconds: Quantiles | null;
  /** Seconds the whole round (every experiment polled and analysed) took. */
  readonly roundSeconds: number;
  readonly note: string | null;
}

export interface Quantiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank quantiles of the values; null when there are none. */
export function quantiles(values: readonly number[]): Quantiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return { p50: median(sorted) as number, p99: rank(0.99), max: sorted.at(-1) as number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const SECRET = "bench-webhook-secret-0123456789";

/** A logger that drops everything: the scenario reads the database, not the log. */
function silentLogger(): WorkerOptions["logger"] {
  const logger = {
    level: "warn",
    info: () => {},
    debug: () => {},
    trace: () => {},
    warn: () => {},
    error: () => {},
    fatal: () => {},
    child: () => logger,
  };
  return logger as unknown as WorkerOptions["logger"];
}

/** A webhook receiver recording when each experiment's `experiment.paused` event arrived (ms, performance.now). */
async function receiver(): Promise<{ url: string; received: Map<string, number>; close: () => Promise<void> }> {
  const received = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const at = performance.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          type?: string;
          data?: { experiment?: { id?: string } };
        };
        const id = body.data?.experiment?.id;
        if (body.type === "experiment.paused" && id !== undefined && !received.has(id)) received.set(id, at);
      } catch {
        // Not ours: answered all the same.
      }
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The experiments of `ids` whose pause has committed (`state = 'paused'`), added to `seen` with `at`, the
 * moment this check ran (performance.now, ms). The audit event's `at` would be its transaction's start
 * (`now()`), earlier than the commit by the rest of the transaction: a pause counts once others can see it.
 */
async function notePaused(db: Db, ids: readonly string[], seen: Map<string, number>, at: number): Promise<void> {
  const rows = await db
    .selectFrom("experiments")
    .select("id")
    .where("state", "=", "paused")
    .where("id", "in", [...ids])
    .execute();
  for (const r of rows) if (!seen.has(r.id)) seen.set(r.id, at);
}

export async function benchKillLatency(
  dbs: BenchDatabases,
  redis: Redis,
  options: { experiments: number; concurrency: number; prefix: string; timeoutMs: number },
): Promise<KillLatencyFigure> {
  const n = options.experiments;
  const bench = await dbs.clone(`k${n}`, options.concurrency + 4);
  const hooks = await receiver();
  let worker: RunningWorker | null = null;
  let connectors: ConnectorProvider | null = null;
  try {
    const outcome = await activeExampleOutcome(bench.db, { batched: true });
    const ids = await insertRunningExperiments(bench.db, outcome, n);
    const every = Math.floor(n / Math.max(5, Math.ceil(n / 100)));
    // Spread through the list, so they are polled early, midway and late in the round.
    const harmfulIndexes = ids.map((_, i) => i).filter((i) => i % every === every - 1);
    const keyOf = (i: number) => `bench-${String(i + 1).padStart(6, "0")}`;
    const harmfulIds = harmfulIndexes.map((i) => ids[i] as string);
    const source = new SyntheticSource({
      unitsPerSnapshot: 6000,
      harmful: new Set(harmfulIndexes.map(keyOf)),
      harmFactor: 1.3,
    });
    connectors = syntheticProvider(bench.db, source, outcome.spec);
    worker = await startWorker({
      db: bench.db,
      redis,
      connectors,
      logger: silentLogger(),
      prefix: options.prefix,
      concurrency: options.concurrency,
      reconcileIntervalMs: 3_600_000,
      outboxIntervalMs: 200,
      webhook: { url: hooks.url, secret: SECRET, policy: parseOutboundPolicy("127.0.0.1") },
    });
    // Warm-up: the scheduler's first job, before any snapshot (series created, nothing analysed).
    const warmup = performance.now();
    for (;;) {
      const polled = await bench.db
        .selectFrom("experiments")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("last_polled_at", "is not", null)
        .executeTakeFirstOrThrow();
      if (Number(polled.n) >= n) break;
      if (performance.now() - warmup > options.timeoutMs) throw new Error(`warm-up polls of ${n} did not finish`);
      await sleep(100);
    }
    for (;;) {
      const idle = await worker.signalsQueue.getJobCounts("wait", "active");
      if ((idle.wait ?? 0) + (idle.active ?? 0) === 0) break;
      await sleep(50);
    }

    // The poll interval ends: the harmful rows are there, and the poll job is added.
    source.advance();
    const t0 = performance.now();
    await worker.signalsQueue.add(
      JOB.pollExperimentBatch,
      { outcomeId: outcome.outcomeId },
      {
        jobId: `bench-kill-${outcome.outcomeId}`,
        attempts: 5,
        backoff: { type: "exponential", delay: 2000 },
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
      },
    );
    let roundSeconds = Number.NaN;
    let note: string | null = null;
    const paused = new Map<string, number>();
    for (;;) {
      await notePaused(bench.db, harmfulIds, paused, performance.now());
      const counts = await worker.signalsQueue.getJobCounts("wait", "active", "completed");
      if (Number.isNaN(roundSeconds) && (counts.wait ?? 0) + (counts.active ?? 0) === 0) {
        roundSeconds = (performance.now() - t0) / 1000;
      }
      if (!Number.isNaN(roundSeconds) && hooks.received.size >= harmfulIds.length) break;
      if (performance.now() - t0 > options.timeoutMs) {
        note = `stopped after ${Math.round(options.timeoutMs / 1000)} s with ${hooks.received.size} of ${harmfulIds.length} webhooks`;
        break;
      }
      await sleep(20);
    }
    await notePaused(bench.db, harmfulIds, paused, performance.now());
    const pauseSeconds = [...paused.values()].map((at) => (at - t0) / 1000);
    const webhookSeconds = [...hooks.received.values()].map((at) => (at - t0) / 1000);
    return {
      experiments: n,
      harmful: harmfulIds.length,
      concurrency: options.concurrency,
      paused: paused.size,
      webhooks: hooks.received.size,
      pauseSeconds: quantiles(pauseSeconds),
      webhookSeconds: quantiles(webhookSeconds),
      roundSeconds,
      note,
    };
  } finally {
    if (worker !== null) await worker.close();
    if (connectors !== null) await connectors.close();
    await hooks.close();
    await bench.drop();
  }
}
