/**
 * `pnpm bench`: the performance figures of docs/performance.md, measured on
 * the local Postgres and Redis.
 *
 * 1. `sequentialTest` updates per second, in process;
 * 2. poll→analysis cycles per second with 1,000 and 10,000 running experiments
 *    (the worker in process, a synthetic connector);
 * 3. `signals.upsertPoints` points per second (new, identical, 1 % revised).
 *
 * Uses databases of its own (`outcome_runtime_bench_<pid>*`, dropped at the
 * end) and a BullMQ prefix of its own (`outcome-runtime-bench-<pid>-*`, deleted
 * at the end). Prints a table, then rewrites the generated section of
 * docs/performance.md.
 *
 * Options: `--quick` (small sizes, for a smoke run; writes nothing),
 * `--no-write` (do not touch docs/performance.md), `--experiments 1000,10000`,
 * `--rounds 3`, `--concurrency 8`. Environment: BENCH_POSTGRES_URL (server URL
 * without a database), BENCH_ADMIN_DB (default `postgres`), BENCH_REDIS_URL.
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { BenchDatabases, deleteRedisKeys, redisUrl } from "./bench-database";
import { benchKillLatency, type KillLatencyFigure } from "./kill-latency.bench";
import { machineFacts } from "./machine";
import { benchPollCycles, type CycleFigure } from "./poll-cycle.bench";
import { type BenchResults, renderMarkdown, renderText, writeGeneratedSection } from "./report";
import { benchSequentialTest } from "./sequential-test.bench";
import { benchUpsertPoints } from "./upsert-points.bench";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "no-write": { type: "boolean", default: false },
    experiments: { type: "string" },
    rounds: { type: "string" },
    concurrency: { type: "string" },
    polling: { type: "string" },
  },
  strict: true,
});

function positiveInts(text: string, name: string): number[] {
  const values = text.split(",").map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new Error(`--${name}: expected positive integers separated by commas, got "${text}"`);
  }
  return values;
}

/** `--polling batched,single`: which poll→analysis scenarios run, in that order. */
function pollingModes(text: string): ("batched" | "single")[] {
  const modes = text.split(",").map((s) => s.trim());
  const bad = modes.filter((m) => m !== "batched" && m !== "single");
  if (bad.length > 0 || modes.length === 0) {
    throw new Error(`--polling: expected batched, single or both separated by a comma, got "${text}"`);
  }
  return modes as ("batched" | "single")[];
}

const quick = args.quick;
const sizes = {
  sequentialUpdates: quick ? 100_000 : 1_000_000,
  experiments: args.experiments ? positiveInts(args.experiments, "experiments") : quick ? [200] : [1000, 10_000],
  rounds: args.rounds ? (positiveInts(args.rounds, "rounds")[0] as number) : quick ? 2 : 3,
  concurrency: args.concurrency ? (positiveInts(args.concurrency, "concurrency")[0] as number) : 8,
  polling: pollingModes(args.polling ?? "batched,single"),
  upsertPoints: quick ? 20_000 : 200_000,
  upsertBatch: 1000,
};
const write = !quick && !args["no-write"];
const docPath = fileURLToPath(new URL("../docs/performance.md", import.meta.url));

const progress = (text: string) => process.stderr.write(`[bench] ${text}\n`);

const started = performance.now();
const loadAtStart = os.loadavg()[0] ?? 0;
const dbs = new BenchDatabases();
const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
redis.on("error", (error) => progress(`redis error: ${error.message}`));
const prefixBase = `outcome-runtime-bench-${process.pid}`;

let cleaned: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    await dbs.dropAll().catch((error: unknown) => progress(`could not drop the bench databases: ${String(error)}`));
    await deleteRedisKeys(redis, `${prefixBase}-*`).catch(() => 0);
    await redis.quit().catch(() => {});
  })();
  return cleaned;
}
process.once("SIGINT", () => {
  progress("interrupted: dropping the bench databases and Redis keys");
  void cleanup().finally(() => process.exit(130));
});

async function main(): Promise<void> {
  progress(`preparing ${dbs.template} (migrated template)`);
  const signalStorage = await dbs.prepare();
  const machine = await machineFacts(redis, signalStorage);

  progress(`1/3 sequentialTest: ${sizes.sequentialUpdates.toLocaleString("en-US")} updates per run, per metric kind`);
  const sequential = (["proportion", "mean"] as const).map((kind) =>
    benchSequentialTest(kind, { updates: sizes.sequentialUpdates }),
  );

  const cycles: CycleFigure[] = [];
  for (const n of sizes.experiments)
    for (const mode of sizes.polling) {
      progress(
        `2/3 poll→analysis cycles with ${n.toLocaleString("en-US")} running experiments (${mode}), ${sizes.rounds} rounds`,
      );
      const prefix = `${prefixBase}-e${n}-${mode}`;
      try {
        cycles.push(
          await benchPollCycles(dbs, redis, {
            experiments: n,
            rounds: sizes.rounds,
            concurrency: sizes.concurrency,
            prefix,
            roundTimeoutMs: 180_000,
            budgetMs: 300_000,
            batched: mode === "batched",
          }),
        );
      } finally {
        await deleteRedisKeys(redis, `${prefix}:*`);
      }
      const last = cycles.at(-1);
      progress(
        `   ${last?.rounds.map((r) => `${Math.round(r.cyclesPerSecond)}/s in ${r.seconds.toFixed(1)} s`).join(", ")}`,
      );
    }

  const kill: KillLatencyFigure[] = [];
  for (const n of sizes.experiments) {
    progress(`2b kill-switch latency with ${n.toLocaleString("en-US")} running experiments polled in batches`);
    const prefix = `${prefixBase}-k${n}`;
    try {
      kill.push(
        await benchKillLatency(dbs, redis, {
          experiments: n,
          concurrency: sizes.concurrency,
          prefix,
          timeoutMs: 300_000,
        }),
      );
    } finally {
      await deleteRedisKeys(redis, `${prefix}:*`);
    }
    const k = kill.at(-1);
    progress(
      `   ${k?.paused}/${k?.harmful} paused, p99 ${k?.pauseSeconds?.p99.toFixed(2)} s; webhooks p99 ${k?.webhookSeconds?.p99.toFixed(2)} s`,
    );
  }

  progress(`3/3 upsertPoints: ${sizes.upsertPoints.toLocaleString("en-US")} points, ${sizes.upsertBatch} per call`);
  const upsert = await benchUpsertPoints(dbs, {
    points: sizes.upsertPoints,
    batch: sizes.upsertBatch,
    revisedFraction: 0.01,
  });

  const results: BenchResults = {
    machine,
    sequential,
    cycles,
    kill,
    upsert,
    totalSeconds: (performance.now() - started) / 1000,
    load: [loadAtStart, os.loadavg()[0] ?? 0],
  };
  process.stdout.write(renderText(results));
  if (write) {
    writeGeneratedSection(docPath, renderMarkdown(results));
    progress(`wrote ${docPath}`);
  } else {
    progress("docs/performance.md left as it was (--quick or --no-write)");
  }
}

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await cleanup();
}
