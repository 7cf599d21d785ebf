/**
 * A test world for the processes' tests (the worker's and the fault-injection
 * suite's): a database of its own, a bootstrapped workspace, a BullMQ prefix of
 * its own, and a source table standing for the user's analytics database, read
 * through the real `postgres` connector.
 */
import { randomBytes } from "node:crypto";
import { experiments as experimentRows, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  decideGate,
  type Experiment,
  proposeExperiment,
  type SourceAccess,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createSourceDatabase,
  createTestDatabase,
  deleteRedisKeys,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the source table stands for the user's own database, read by the postgres connector
import pg from "pg";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Clean-up steps of one test, run last-in first-out (`runCleanups`). */
export type Cleanups = (() => Promise<void>)[];

/** Run and empty the clean-up steps, last registered first; a failing step does not stop the others. */
export async function runCleanups(cleanups: Cleanups): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
}

/** The source variable the test outcomes name for their analytics database. */
export const SOURCE_ENV = "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL";

export interface World {
  readonly t: TestDatabase;
  readonly seed: Seeded;
  /** The analytics database as its admin: to create tables and write rows. */
  readonly source: pg.Pool;
  /** The analytics database as the read-only role: what the connector reads through. */
  readonly sourceUrl: string;
  /** The runtime's own database as its admin, for the tests' checks and faults (never a signal source). */
  readonly runtime: pg.Pool;
  readonly prefix: string;
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly deps: { db: TestDatabase["db"]; sources: SourceAccess };
}

/** What the runtime may read as sources in a test: `SOURCE_ENV` → the reader's URL of `sourceUrl`, plus `env`. */
export function testSourceAccess(sourceUrl: string, env: Record<string, string> = {}): SourceAccess {
  return sourceAccessFromEnv({ [SOURCE_ENV]: sourceUrl, ...env });
}

/**
 * A database cloned from the run's template, a workspace, an analytics
 * database of its own (never the runtime's) with a table
 * `source_points(experiment_key, arm, ts, units, sum, sum_sq)` read through
 * the read-only role, and a random queue prefix on `redisUrl` (default
 * `TEST_REDIS_URL` or the local Redis).
 */
export async function createWorld(cleanups: Cleanups, options: { redisUrl?: string } = {}): Promise<World> {
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const t = await createTestDatabase();
  const analytics = await createSourceDatabase();
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  redis.on("error", () => {});
  const source = new pg.Pool({ connectionString: analytics.adminUrl, max: 4 });
  const runtime = new pg.Pool({ connectionString: t.url, max: 2 });
  // An idle connection ended by the server (a scenario's pg_terminate_backend, a dropped database) is replaced,
  // not an uncaught error.
  source.on("error", () => {});
  runtime.on("error", () => {});
  const prefix = `test-${randomBytes(6).toString("hex")}`;
  cleanups.push(async () => {
    await source.end();
    await runtime.end();
    await deleteRedisKeys(redis, prefix).catch(() => {});
    redis.disconnect();
    await t.drop();
    await analytics.drop();
  });
  await source.query(
    "CREATE TABLE source_points (experiment_key text, arm text, ts timestamptz, units bigint, sum float8, sum_sq float8)",
  );
  return {
    t,
    seed: await seedWorkspace(t.db),
    source,
    sourceUrl: analytics.readerUrl,
    runtime,
    prefix,
    redis,
    redisUrl,
    deps: { db: t.db, sources: testSourceAccess(analytics.readerUrl) },
  };
}

export interface SourceRow {
  readonly key: string;
  readonly arm: string;
  readonly ts: Date;
  readonly units: number;
  readonly conversions: number;
}

/** Cumulative per-arm snapshots, as the user's analytics database would hold them (one statement, one commit). */
export async function insertSource(world: World, rows: readonly SourceRow[]): Promise<void> {
  if (rows.length === 0) return;
  await world.source.query(
    `INSERT INTO source_points (experiment_key, arm, ts, units, sum, sum_sq)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::float8[], $6::float8[])`,
    [
      rows.map((r) => r.key),
      rows.map((r) => r.arm),
      rows.map((r) => r.ts.toISOString()),
      rows.map((r) => r.units),
      rows.map((r) => r.conversions),
      rows.map((r) => r.conversions),
    ],
  );
}

/** The source's rows of one experiment, oldest first. */
export async function sourceRows(world: World, key: string): Promise<{ arm: string; ts: Date }[]> {
  const { rows } = await world.source.query<{ arm: string; ts: Date }>(
    "SELECT arm, ts FROM source_points WHERE experiment_key = $1 ORDER BY ts, arm",
    [key],
  );
  return rows;
}

/** The connector query over `source_points` (`:to` bounds the snapshots, as the connector requires of an as-of time). */
export const SOURCE_QUERY =
  "SELECT arm, units::float8 AS units, sum, sum_sq, ts FROM source_points WHERE experiment_key = :experiment AND ts > :from AND ts <= :to ORDER BY ts";

/**
 * `SOURCE_QUERY` in the batched form (docs/connectors.md, "Many experiments in one query"): every
 * experiment of a batch in one query, each row naming its experiment.
 */
export const BATCHED_SOURCE_QUERY = SOURCE_QUERY.replace(
  "SELECT arm,",
  "SELECT experiment_key AS experiment, arm,",
).replace("experiment_key = :experiment", "experiment_key = ANY(:experiments)");

export interface OutcomeOptions {
  /** Poll interval as outcome.yaml writes it (default `1s`). */
  readonly pollInterval?: string;
  /** The connector query (default `SOURCE_QUERY`). */
  readonly query?: string;
  /** `signal.lookback` as outcome.yaml writes it (default: none). */
  readonly lookback?: string;
  /** The arms, `control` first, with equal weights (default: control and treatment). */
  readonly arms?: readonly string[];
  /** `min_duration` as outcome.yaml writes it (default `1s`). */
  readonly minDuration?: string;
  /** A secondary metric of this name, read with the same query as the signal (default: none). */
  readonly secondaryMetric?: string;
  /** The connector's `series_query` for the outcome's own series (default: none). */
  readonly seriesQuery?: string;
  /** The target block's lines after `target:`, indented two spaces (default: increase by 10 %, relative). */
  readonly target?: string;
  /** The signal's (and the secondary metric's) kind (default `proportion`). */
  readonly kind?: "proportion" | "mean" | "ratio";
}

/** An outcome read through the `postgres` connector from `source_points`. */
export function outcomeYaml(slug: string, minSamplePerArm: number, options: OutcomeOptions = {}): string {
  return `version: 1
id: ${slug}
name: Worker test ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: ${options.kind ?? "proportion"}
  unit: user
  poll_interval: ${options.pollInterval ?? "1s"}${options.lookback === undefined ? "" : `\n  lookback: ${options.lookback}`}
  connector:
    type: postgres
    database_url_env: ${SOURCE_ENV}
    query: ${JSON.stringify(options.query ?? SOURCE_QUERY)}${options.seriesQuery === undefined ? "" : `\n    series_query: ${JSON.stringify(options.seriesQuery)}`}
target:
${options.target ?? "  direction: increase\n  value: 10%\n  relative: true"}
horizon: 60d${
    options.secondaryMetric === undefined
      ? ""
      : `
secondary_metrics:
  - metric: ${options.secondaryMetric}
    kind: ${options.kind ?? "proportion"}
    connector:
      type: postgres
      database_url_env: ${SOURCE_ENV}
      query: ${JSON.stringify(options.query ?? SOURCE_QUERY)}`
  }
constraints:
  kill:
    max_harm: 5%
    relative: true
experiment_defaults:
  min_sample_per_arm: ${minSamplePerArm}
  min_duration: ${options.minDuration ?? "1s"}
  max_duration: 30d
  expected_effect: 10%
  arms:
${(options.arms ?? ["control", "treatment"]).map((name, _, all) => `    - name: ${name}\n      weight: ${1 / all.length}`).join("\n")}
`;
}

/** Apply and activate the outcome of `outcomeYaml`; returns its id. */
export async function activeOutcome(
  world: World,
  slug: string,
  minSamplePerArm = 100,
  options: OutcomeOptions = {},
): Promise<string> {
  const applied = await applyOutcome(world.deps, world.seed.admin, {
    source: outcomeYaml(slug, minSamplePerArm, options),
  });
  await transitionOutcome(world.deps, world.seed.admin, slug, "activate", null);
  return applied.outcome.id;
}

/** Propose, approve the portfolio, claim, report built and approve the launch of each key: all end `running`. */
export async function launchExperiments(world: World, slug: string, keys: readonly string[]): Promise<Experiment[]> {
  const { deps, seed } = world;
  const proposed = [];
  for (const key of keys) {
    proposed.push(
      await proposeExperiment(deps, seed.admin, slug, {
        key,
        title: `Variant ${key}`,
        statement: `If we ship variant ${key}, more users convert, because the flow is shorter.`,
      }),
    );
  }
  await decideGate(deps, seed.admin, proposed[0]!.gate.id, { decision: "approve" });
  const running: Experiment[] = [];
  for (const p of proposed) {
    await transitionExperiment(deps, seed.admin, p.experiment.id, { action: "claim", claimedBy: "test-agent" });
    const built = await transitionExperiment(deps, seed.admin, p.experiment.id, {
      action: "report_built",
      changedPaths: [],
    });
    const launched = await decideGate(deps, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
    if (launched.experiments[0]?.state !== "running") {
      throw new Error(`experiment ${key(p)} did not start: ${launched.experiments[0]?.state}`);
    }
    running.push(launched.experiments[0]);
  }
  return running;
}

function key(p: { experiment: { key: string } }): string {
  return p.experiment.key;
}

/** The experiment's state in Postgres. */
export async function stateOf(world: World, experimentId: string): Promise<string | undefined> {
  return (await experimentRows.findExperimentById(world.t.db, experimentId))?.state;
}

/** The primary series' stored points as `arm@ISO-ts`, in storage order. */
export async function storedPoints(world: World, experimentId: string): Promise<string[]> {
  const series = (await signals.listSeriesOfExperiment(world.t.db, experimentId)).find((s) => s.role === "primary");
  if (series === undefined) return [];
  return (await signals.listPoints(world.t.db, series.id, null)).map((p) => `${p.arm}@${p.ts.toISOString()}`);
}

export interface SourceTicker {
  /** Snapshots written so far (one per tick, every experiment and arm). */
  ticks(): number;
  /** Stop after the tick in progress. */
  stop(): Promise<void>;
}

/**
 * Write a cumulative snapshot per arm of every experiment key every
 * `everyMs` (timestamps strictly increasing, each tick in one commit), with no
 * true effect: 20–29 more units per arm and tick, 20 % converting.
 */
export function startSourceTicker(
  world: World,
  keys: readonly string[],
  everyMs: number,
  cleanups: Cleanups,
): SourceTicker {
  const totals = new Map(keys.flatMap((k) => ["control", "treatment"].map((arm) => [`${k}/${arm}`, { u: 0, c: 0 }])));
  let count = 0;
  let running = true;
  const tick = async () => {
    const ts = new Date();
    const rows: SourceRow[] = [];
    for (const key of keys) {
      for (const arm of ["control", "treatment"]) {
        const total = totals.get(`${key}/${arm}`)!;
        const added = 20 + Math.floor(Math.random() * 10);
        total.u += added;
        total.c += Math.round(added * 0.2);
        rows.push({ key, arm, ts, units: total.u, conversions: total.c });
      }
    }
    await insertSource(world, rows);
    count += 1;
  };
  const loop = (async () => {
    while (running) {
      await tick();
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  cleanups.push(stop);
  return { ticks: () => count, stop };
}

export interface IngestAudit {
  readonly sourcePoints: number;
  readonly storedPoints: number;
  readonly lostPoints: number;
  readonly duplicatePoints: number;
  readonly analyses: number;
  readonly duplicateAnalyses: number;
  /** Snapshots (both arms present) with no analysis. */
  readonly missingAnalyses: number;
}

/**
 * Compare what the experiments stored with the source's ground truth: every
 * source row stored exactly once, and one analysis per snapshot.
 */
export async function auditIngest(world: World, experiments: readonly Experiment[]): Promise<IngestAudit> {
  let sourcePoints = 0;
  let stored = 0;
  let lostPoints = 0;
  let duplicatePoints = 0;
  let analyses = 0;
  let duplicateAnalyses = 0;
  let missingAnalyses = 0;
  for (const e of experiments) {
    const rows = await sourceRows(world, e.key);
    const source = rows.map((r) => `${r.arm}@${r.ts.toISOString()}`);
    const points = await storedPoints(world, e.id);
    const set = new Set(points);
    sourcePoints += source.length;
    stored += points.length;
    duplicatePoints += points.length - set.size;
    lostPoints += source.filter((p) => !set.has(p)).length;
    const snapshots = [
      ...new Set(
        rows
          .filter((r, _, all) => all.some((o) => o.arm !== r.arm && o.ts.getTime() === r.ts.getTime()))
          .map((r) => r.ts.toISOString()),
      ),
    ];
    const analysed = (await signals.listAnalyses(world.t.db, e.id, 100_000)).map((a) => a.ts.toISOString());
    analyses += analysed.length;
    duplicateAnalyses += analysed.length - new Set(analysed).size;
    const done = new Set(analysed);
    missingAnalyses += snapshots.filter((ts) => !done.has(ts)).length;
  }
  return {
    sourcePoints,
    storedPoints: stored,
    lostPoints,
    duplicatePoints,
    analyses,
    duplicateAnalyses,
    missingAnalyses,
  };
}

/** Whether every experiment stored every source row and analysed its newest snapshot. */
export async function caughtUp(world: World, experiments: readonly Experiment[]): Promise<boolean> {
  for (const e of experiments) {
    const source = await sourceRows(world, e.key);
    if ((await storedPoints(world, e.id)).length !== source.length) return false;
    const newest = (await signals.latestAnalysis(world.t.db, e.id))?.ts.getTime();
    if (newest !== source.at(-1)?.ts.getTime()) return false;
  }
  return true;
}
