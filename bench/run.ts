/**
 * `pnpm bench`: the performance figures of docs/performance.md, measured on
 * the local Postgres and Redis.
 *
 * 1. `sequentialTest` updates per second, in process;
 * 2. poll→analysis cycles per second with 1,000 and 10,000 running experiments
 *    (the worker in process, a synthetic connector);
 * 3. `signals.upsertPoints` points per second (new, identical, 1 % revised);
 * 4. API reads under load: the API in a process of its own on the demo's
 *    data, driven by autocannon (requests/s at saturation, p50/p99 at half);
 * 5. MCP tool calls through the SDK client over HTTP (p50/p99 per tool).
 *
 * Part 2c (`flag`): kills rolled back in a real Unleash (unleash-server on a
 * database of its own, dropped at the end): ms from the pause to the rollback
 * applied and to the official unleash-client serving control to every sampled
 * user.
 *
 * Uses databases of its own (`outcome_runtime_bench_<pid>*`, dropped at the
 * end) and a BullMQ prefix of its own (`outcome-runtime-bench-<pid>-*`, deleted
 * at the end). Prints a table, then rewrites the generated section of
 * docs/performance.md.
 *
 * Options: `--quick` (small sizes, for a smoke run; writes nothing),
 * `--no-write` (do not touch docs/performance.md), `--experiments 1000,10000`,
 * `--rounds 3` (default 10 batched, 3 one per experiment), `--concurrency 8`, `--only api,mcp` (run only these parts of
 * `sequential,cycles,kill,flag,upsert,api,mcp`; the other parts' figures in
 * docs/performance.md are kept as they were), `--comparisons 24` (ASOS
 * comparisons in the demo world of parts 4 and 5; `all` for the demo's 99),
 * `--seconds 8` (each load run of part 4), `--kills 30` (experiments killed per scenario of part 2c), `--storage
 * plain|timescaledb` (signal points in plain tables even where TimescaleDB is preloaded, or insist on TimescaleDB;
 * default: TimescaleDB where the server has it preloaded). Environment: BENCH_POSTGRES_URL (server URL
 * without a database), BENCH_ADMIN_DB (default `postgres`), BENCH_REDIS_URL.
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { type ApiProcess, startApi } from "./api-process";
import { benchApiReads } from "./api-reads.bench";
import { BenchDatabases, deleteRedisKeys, redisUrl } from "./bench-database";
import { buildDemoWorld, type DemoWorld } from "./demo-world";
import {
  type BenchUnleash,
  benchFlagRollback,
  type FlagRollbackFigure,
  startBenchUnleash,
} from "./flag-rollback.bench";
import { benchKillLatency, type KillLatencyFigure } from "./kill-latency.bench";
import { machineFacts } from "./machine";
import { approveExperiments, benchMcpCalls } from "./mcp-calls.bench";
import { benchPollCycles, type CycleFigure } from "./poll-cycle.bench";
import {
  BENCH_PARTS,
  type BenchPart,
  type BenchResults,
  renderMarkdown,
  renderText,
  writeGeneratedSection,
} from "./report";
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
    only: { type: "string" },
    comparisons: { type: "string" },
    seconds: { type: "string" },
    kills: { type: "string" },
    storage: { type: "string" },
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

/** `--storage plain|timescaledb`: how the bench's databases store signal points (default: as the server allows). */
function storageOf(text: string | undefined): "timescaledb" | "plain" | undefined {
  if (text === undefined) return undefined;
  if (text !== "plain" && text !== "timescaledb") {
    throw new Error(`--storage: expected plain or timescaledb, got "${text}"`);
  }
  return text;
}

/** `--only api,mcp`: which parts run. */
function partsOf(text: string | undefined): ReadonlySet<BenchPart> {
  if (text === undefined) return new Set(BENCH_PARTS);
  const parts = text.split(",").map((s) => s.trim());
  const bad = parts.filter((p) => !(BENCH_PARTS as readonly string[]).includes(p));
  if (bad.length > 0 || parts.length === 0) {
    throw new Error(`--only: expected some of ${BENCH_PARTS.join(", ")} separated by commas, got "${text}"`);
  }
  return new Set(parts as BenchPart[]);
}

const quick = args.quick;
const parts = partsOf(args.only);
const sizes = {
  sequentialUpdates: quick ? 100_000 : 1_000_000,
  experiments: args.experiments ? positiveInts(args.experiments, "experiments") : quick ? [200] : [1000, 10_000],
  // Batched rounds are short: ten of them, the worker's memory measured after the tenth.
  rounds: (mode: "batched" | "single") =>
    args.rounds ? (positiveInts(args.rounds, "rounds")[0] as number) : quick ? 2 : mode === "batched" ? 10 : 3,
  concurrency: args.concurrency ? (positiveInts(args.concurrency, "concurrency")[0] as number) : 8,
  polling: pollingModes(args.polling ?? "batched,single"),
  upsertPoints: quick ? 20_000 : 200_000,
  upsertBatch: 1000,
  comparisons:
    args.comparisons === "all"
      ? null
      : args.comparisons
        ? (positiveInts(args.comparisons, "comparisons")[0] as number)
        : quick
          ? 4
          : 24,
  loadSeconds: args.seconds ? (positiveInts(args.seconds, "seconds")[0] as number) : quick ? 2 : 8,
  connections: 16,
  kills: args.kills ? (positiveInts(args.kills, "kills")[0] as number) : quick ? 5 : 30,
  flagUsers: 1000,
  flagRefreshMs: 50,
  mcpCalls: quick ? 20 : 200,
  mcpWrites: quick ? 10 : 100,
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

/** Part 2c's Unleash while it starts and runs: stopped (its database dropped) at the end, also on Ctrl-C. */
let unleashStarting: Promise<BenchUnleash> | null = null;
let cleaned: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    // A start that failed dropped its database itself.
    const unleash = await unleashStarting?.catch(() => null);
    await unleash?.stop().catch((error: unknown) => progress(`could not stop Unleash: ${String(error)}`));
    await dbs.dropAll().catch((error: unknown) => progress(`could not drop the bench databases: ${String(error)}`));
    await deleteRedisKeys(redis, `${prefixBase}-*`).catch(() => 0);
    await redis.quit().catch(() => {});
  })();
  return cleaned;
}
process.once("SIGINT", () => {
  progress("interrupted: dropping the bench databases and Redis keys (and stopping Unleash)");
  void cleanup().finally(() => process.exit(130));
});

async function main(): Promise<void> {
  progress(`preparing ${dbs.template} (migrated template)`);
  const signalStorage = await dbs.prepare(storageOf(args.storage));
  const machine = await machineFacts(redis, signalStorage);

  const sequential = parts.has("sequential")
    ? (["proportion", "mean"] as const).map((kind) => {
        progress(`1/5 sequentialTest (${kind}): ${sizes.sequentialUpdates.toLocaleString("en-US")} updates per run`);
        return benchSequentialTest(kind, { updates: sizes.sequentialUpdates });
      })
    : [];

  const cycles: CycleFigure[] = [];
  for (const n of parts.has("cycles") ? sizes.experiments : [])
    for (const mode of sizes.polling) {
      progress(
        `2/5 poll→analysis cycles with ${n.toLocaleString("en-US")} running experiments (${mode}), ${sizes.rounds(mode)} rounds`,
      );
      const prefix = `${prefixBase}-e${n}-${mode}`;
      try {
        cycles.push(
          await benchPollCycles(dbs, redis, {
            experiments: n,
            rounds: sizes.rounds(mode),
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
  for (const n of parts.has("kill") ? sizes.experiments : []) {
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

  const flag: FlagRollbackFigure[] = [];
  if (parts.has("flag")) {
    progress(
      `2c flag rollback on a real Unleash: ${sizes.kills} kills one at a time, then ${sizes.kills} at once (starting unleash-server)`,
    );
    const unleashStarted = performance.now();
    unleashStarting = startBenchUnleash(sizes.flagRefreshMs);
    const unleash = await unleashStarting;
    progress(
      `   Unleash ${unleash.server.url} healthy in ${((performance.now() - unleashStarted) / 1000).toFixed(1)} s`,
    );
    try {
      for (const scenario of ["one at a time", "all at once"] as const) {
        const prefix = `${prefixBase}-f${scenario === "all at once" ? "all" : "one"}`;
        try {
          flag.push(
            await benchFlagRollback(dbs, redis, unleash, {
              scenario,
              kills: sizes.kills,
              concurrency: sizes.concurrency,
              prefix,
              sampledUsers: sizes.flagUsers,
              waveTimeoutMs: 30_000,
              load: () => os.loadavg()[0] ?? 0,
              progress,
            }),
          );
        } finally {
          await deleteRedisKeys(redis, `${prefix}:*`);
        }
        const f = flag.at(-1);
        progress(
          `   ${scenario}: ${f?.served}/${f?.kills} served control; applied p99 ${f?.appliedMs?.p99} ms, served p99 ${f?.servedMs?.p99} ms`,
        );
      }
    } finally {
      await unleash.stop();
    }
  }

  let upsert = null;
  if (parts.has("upsert")) {
    progress(`3/5 upsertPoints: ${sizes.upsertPoints.toLocaleString("en-US")} points, ${sizes.upsertBatch} per call`);
    upsert = await benchUpsertPoints(dbs, {
      points: sizes.upsertPoints,
      batch: sizes.upsertBatch,
      revisedFraction: 0.01,
    });
  }

  const serving = await benchServing();

  const results: BenchResults = {
    machine,
    sequential,
    cycles,
    kill,
    flag,
    upsert,
    ...serving,
    parts: [...parts],
    totalSeconds: (performance.now() - started) / 1000,
    load: [loadAtStart, os.loadavg()[0] ?? 0],
  };
  process.stdout.write(renderText(results));
  if (write) {
    writeGeneratedSection(docPath, renderMarkdown(results), parts);
    progress(`wrote ${docPath}`);
  } else {
    progress("docs/performance.md left as it was (--quick or --no-write)");
  }
}

/** Parts 4 and 5: the demo world, the API in a process of its own, autocannon and the MCP client. */
async function benchServing(): Promise<Pick<BenchResults, "apiReads" | "mcpCalls" | "world">> {
  if (!parts.has("api") && !parts.has("mcp")) return { apiReads: [], mcpCalls: [], world: null };
  const load = () => os.loadavg()[0] ?? 0;
  const which = sizes.comparisons === null ? "every" : `the first ${sizes.comparisons}`;
  progress(`4/5 the demo's world: ${which} ASOS comparison(s) with metric 1, polled and analysed to the last day`);
  let world: DemoWorld | null = null;
  let api: ApiProcess | null = null;
  try {
    world = await buildDemoWorld(dbs, "serving", { comparisons: sizes.comparisons, progress });
    const approved = parts.has("mcp") ? await approveExperiments(world, sizes.mcpWrites) : [];
    progress(`   built in ${world.seconds.toFixed(0)} s; starting the API`);
    api = await startApi({
      databaseUrl: world.url,
      redisUrl: redisUrl(),
      queuePrefix: `${prefixBase}-serving`,
      adminKey: world.adminKey,
    });
    const experiment = world.experimentIds[0] as string;
    const apiLoad: [number, number] = [load(), 0];
    const apiReads = parts.has("api")
      ? await benchApiReads(
          api,
          world.pmKey,
          [
            { name: "GET /v1/experiments/:id", path: `/v1/experiments/${experiment}` },
            { name: "GET /v1/gates?assignee=me&status=pending", path: "/v1/gates?assignee=me&status=pending" },
            { name: "GET /v1/outcomes/:id", path: `/v1/outcomes/${world.outcomeId}` },
            { name: "GET /v1/experiments/:id/analyses", path: `/v1/experiments/${experiment}/analyses` },
          ],
          { connections: sizes.connections, seconds: sizes.loadSeconds, warmupSeconds: 2, progress },
        )
      : [];
    apiLoad[1] = load();
    const mcpLoad: [number, number] = [load(), 0];
    if (parts.has("mcp"))
      progress(`5/5 MCP tool calls: ${sizes.mcpCalls} per read tool, ${approved.length} claims and reports`);
    const mcpCalls = parts.has("mcp")
      ? await benchMcpCalls(api, world.agentKey, world, approved, { calls: sizes.mcpCalls, warmup: 10, progress })
      : [];
    mcpLoad[1] = load();
    return {
      apiReads,
      mcpCalls,
      world: {
        comparisons: world.comparisons,
        analyses: world.analyses,
        seconds: world.seconds,
        connections: sizes.connections,
        loadSeconds: sizes.loadSeconds,
        apiLoad,
        mcpLoad,
      },
    };
  } finally {
    await api?.stop();
    await world?.close();
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
