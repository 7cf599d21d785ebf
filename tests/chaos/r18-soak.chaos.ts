/**
 * R18: soak. Many series polled for a long time by one worker, watching for
 * leaks: the worker's resident memory after warm-up, Redis' memory and keys
 * (bounded by the jobs' `removeOnComplete`/`removeOnFail`), Node's
 * `MaxListenersExceededWarning`, and Postgres' dead tuples on the hot tables.
 *
 * Full: 100 experiments × 10 series (the primary metric and 9 guardrails) =
 * 1 000 series, a new snapshot and a poll every 5 s, for `CHAOS_SOAK_MINUTES`
 * (default 60). `pnpm chaos --short` leaves it out; run alone with CHAOS_MODE=short
 * it is a smoke run of 20 experiments × 10 series, every 2 s, for 1.5 minutes,
 * too short to judge memory growth (the RSS bound is then reported, not asserted).
 * No experiment reaches its minimum sample, so nothing is decided and every
 * series keeps polling throughout.
 */
import { readFileSync } from "node:fs";
import { applyOutcome, KEEP_COMPLETED, transitionOutcome } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "../support/processes";
import {
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  launchExperiments,
  runCleanups,
  SOURCE_QUERY,
  startSourceTicker,
} from "../support/world";
import { medianMax, report, SHORT, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const EXPERIMENTS = scaled(100, 20);
const GUARDRAILS = 9;
const EVERY_S = scaled(5, 2);
const MINUTES = SHORT ? 1.5 : Number(process.env.CHAOS_SOAK_MINUTES ?? 60);
const SAMPLE_EVERY_MS = 5000;

function soakYaml(slug: string): string {
  const guardrails = Array.from(
    { length: GUARDRAILS },
    (_, i) => `    - metric: guard_${i + 1}
      kind: proportion
      direction: increase
      max_regression: 90%
      relative: true
      connector:
        type: postgres
        database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL
        query: ${JSON.stringify(SOURCE_QUERY)}`,
  ).join("\n");
  return `version: 1
id: ${slug}
name: Soak ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: ${EVERY_S}s
  connector:
    type: postgres
    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL
    query: ${JSON.stringify(SOURCE_QUERY)}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  guardrails:
${guardrails}
  kill:
    max_harm: 50%
    relative: true
  max_concurrent_experiments: ${EXPERIMENTS}
experiment_defaults:
  min_sample_per_arm: 1000000000
  min_duration: 1s
  max_duration: 30d
  expected_effect: 10%
  arms:
    - name: control
      weight: 50%
    - name: treatment
      weight: 50%
`;
}

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}

async function redisMemory(world: Awaited<ReturnType<typeof createWorld>>): Promise<number> {
  const info = await world.redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

async function redisKeys(world: Awaited<ReturnType<typeof createWorld>>): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await world.redis.scan(cursor, "MATCH", `${world.prefix}:*`, "COUNT", 5000);
    cursor = next;
    n += keys.length;
  } while (cursor !== "0");
  return n;
}

it(`R18: soak, ${EXPERIMENTS * (1 + GUARDRAILS)} series polled every ${EVERY_S} s for ${MINUTES} min`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await applyOutcome(world.deps, world.seed.admin, { source: soakYaml("chaos-soak") });
  await transitionOutcome(world.deps, world.seed.admin, "chaos-soak", "activate", null);
  const keys = Array.from({ length: EXPERIMENTS }, (_, i) => `soak-${i}`);
  const launched = await launchExperiments(world, "chaos-soak", keys);
  const ticker = startSourceTicker(world, keys, EVERY_S * 1000, cleanups);

  const worker = await startWorkerProcess(world, cleanups, {
    WORKER_CONCURRENCY: "16",
    LOCK_DURATION_MS: "30000",
    RECONCILE_INTERVAL_MS: "30000",
  });
  await worker.ready;
  const pid = worker.proc.child.pid!;
  const samples: { at: number; rss: number; redis: number }[] = [];
  const end = Date.now() + MINUTES * 60_000;
  while (Date.now() < end) {
    await sleep(SAMPLE_EVERY_MS);
    samples.push({ at: Date.now(), rss: rssKiB(pid), redis: await redisMemory(world) });
  }
  await ticker.stop();
  await waitFor("the worker to catch up with the source", () => caughtUp(world, launched), {
    timeoutMs: 300_000,
    intervalMs: 1000,
    diagnostics: worker.output,
  });
  const keysInRedis = await redisKeys(world);
  const dead = await world.runtime.query<{ relname: string; n_live_tup: string; n_dead_tup: string; vacuums: string }>(
    `SELECT relname, n_live_tup, n_dead_tup, autovacuum_count + vacuum_count AS vacuums
       FROM pg_stat_user_tables WHERE relname IN ('experiments', 'signal_series', 'signal_points', 'analyses')
      ORDER BY relname`,
  );
  expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });
  const ingest = await auditIngest(world, launched);

  // After warm-up (the first fifth of the run, at least a minute when the run allows it), compare the median
  // of the first three samples with that of the last three.
  const warmUpEnd = started + Math.min(Math.max(60_000, (MINUTES * 60_000) / 5), (MINUTES * 60_000) / 2);
  const afterWarmUp = samples.filter((s) => s.at >= warmUpEnd);
  const head = afterWarmUp.slice(0, 3);
  const tail = afterWarmUp.slice(-3);
  const rssHead = medianMax(head.map((s) => s.rss)).median;
  const rssTail = medianMax(tail.map((s) => s.rss)).median;
  const rssGrowth = rssHead > 0 ? (rssTail - rssHead) / rssHead : 0;
  const redisHead = medianMax(head.map((s) => s.redis)).median;
  const redisTail = medianMax(tail.map((s) => s.redis)).median;
  const listenerWarnings = (worker.output().match(/MaxListenersExceededWarning/g) ?? []).length;
  const polls = ingest.analyses;
  const figures: Record<string, number | string> = {
    series: EXPERIMENTS * (1 + GUARDRAILS),
    minutes: MINUTES,
    analyses: polls,
    "source points": ingest.sourcePoints,
    "worker RSS after warm-up MiB": Math.round(rssHead / 1024),
    "worker RSS at end MiB": Math.round(rssTail / 1024),
    "RSS growth %": Math.round(rssGrowth * 1000) / 10,
    "Redis used_memory after warm-up MiB": Math.round(redisHead / 2 ** 20),
    "Redis used_memory at end MiB": Math.round(redisTail / 2 ** 20),
    "Redis keys of the queues": keysInRedis,
    MaxListenersExceededWarning: listenerWarnings,
  };
  for (const row of dead.rows) figures[`${row.relname} dead/live tuples`] = `${row.n_dead_tup}/${row.n_live_tup}`;
  report({
    id: "R18",
    title: "Soak",
    fault: "sustained polling",
    faults: 0,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures,
    ms: Date.now() - started,
  });
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(listenerWarnings).toBe(0);
  expect(head.length).toBeGreaterThan(0);
  if (!SHORT) expect(rssGrowth).toBeLessThan(0.1);
  // Redis holds at most the kept completed jobs (KEEP_COMPLETED.count per queue) plus a few keys per
  // scheduler and queue: bounded whatever the run's length.
  expect(keysInRedis).toBeLessThan(3 * KEEP_COMPLETED.count + 100 * EXPERIMENTS);
  // Autovacuum keeps up with the tables every poll updates (checked on runs long enough for its 1-minute naptime).
  if (MINUTES >= 10) {
    for (const row of dead.rows) {
      expect(Number(row.n_dead_tup), `${row.relname} dead tuples`).toBeLessThan(
        Math.max(10_000, 0.5 * Number(row.n_live_tup)),
      );
    }
  }
});
