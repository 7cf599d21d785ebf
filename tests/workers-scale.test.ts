/**
 * Two worker processes sharing one Redis (one QUEUE_PREFIX) and one database,
 * with several running experiments read through the real `postgres` connector:
 * BullMQ shares the scheduled polls between them and each runs once.
 *
 * Which worker ran a poll is recorded without touching the worker: each
 * process connects with its own custom setting (`options=-c
 * outcome_test.worker=a|b` in DATABASE_URL), and a trigger in this test's
 * database logs every successful poll (the experiment's `last_polled_at`
 * update) and every analysis insert with that setting. The counts are then
 * compared with BullMQ's completed poll jobs in Redis.
 */
import { randomBytes } from "node:crypto";
import { experiments as experimentRows, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  decideGate,
  type Experiment,
  JOB,
  proposeExperiment,
  SIGNALS_QUEUE,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  type Seeded,
  seedWorkspace,
  sleep,
  type TestDatabase,
  waitFor,
} from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test reads BullMQ's completed jobs to count the polls
import { Queue } from "bullmq";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the source table stands for the user's own database, read by the postgres connector
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { type Process, spawnProcess, terminate, waitHealthy } from "./support/compose";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const POLL_INTERVAL_MS = 1000;
const RUN_MS = 6 * POLL_INTERVAL_MS;
const KEYS = ["scale-a", "scale-b", "scale-c", "scale-d", "scale-e", "scale-f"];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface World {
  readonly t: TestDatabase;
  readonly seed: Seeded;
  readonly source: pg.Pool;
  readonly prefix: string;
  readonly redis: Redis;
  readonly deps: { db: TestDatabase["db"] };
}

async function createWorld(): Promise<World> {
  const t = await createTestDatabase();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const source = new pg.Pool({ connectionString: t.url, max: 4 });
  const prefix = `test-scale-${randomBytes(6).toString("hex")}`;
  cleanups.push(async () => {
    await source.end();
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
    await t.drop();
  });
  await source.query(
    "CREATE TABLE source_points (experiment_key text, arm text, ts timestamptz, units bigint, sum float8, sum_sq float8)",
  );
  // Test instrumentation: who ran each successful poll and each analysis.
  await source.query(`
    CREATE TABLE test_poll_log (experiment_id uuid, polled_at timestamptz, worker text);
    CREATE TABLE test_analysis_log (experiment_id uuid, ts timestamptz, worker text);
    CREATE FUNCTION test_log_poll() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.last_polled_at IS DISTINCT FROM OLD.last_polled_at THEN
        INSERT INTO test_poll_log VALUES (NEW.id, NEW.last_polled_at, current_setting('outcome_test.worker', true));
      END IF;
      RETURN NEW;
    END $$;
    CREATE FUNCTION test_log_analysis() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO test_analysis_log VALUES (NEW.experiment_id, NEW.ts, current_setting('outcome_test.worker', true));
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_log_poll AFTER UPDATE ON experiments FOR EACH ROW EXECUTE FUNCTION test_log_poll();
    CREATE TRIGGER test_log_analysis AFTER INSERT ON analyses FOR EACH ROW EXECUTE FUNCTION test_log_analysis();`);
  return { t, seed: await seedWorkspace(t.db), source, prefix, redis, deps: { db: t.db } };
}

function outcomeYaml(slug: string): string {
  return `version: 1
id: ${slug}
name: Scale test ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1s
  connector:
    type: postgres
    database_url_env: SOURCE_DATABASE_URL
    query: "SELECT arm, units::float8 AS units, sum, sum_sq, ts FROM source_points WHERE experiment_key = :experiment AND ts > :from AND ts <= :to ORDER BY ts"
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  kill:
    max_harm: 5%
    relative: true
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

/** An active outcome and one running experiment per key (nothing is ever decided: the sample is never reached). */
async function launch(world: World, slug: string, keys: readonly string[]): Promise<Experiment[]> {
  const { deps, seed } = world;
  await applyOutcome(deps, seed.admin, { source: outcomeYaml(slug) });
  await transitionOutcome(deps, seed.admin, slug, "activate", null);
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
    running.push(launched.experiments[0]!);
  }
  return running;
}

async function startWorker(world: World, name: string): Promise<{ proc: Process; port: number }> {
  const port = await freePort();
  const url = new URL(world.t.url);
  url.searchParams.set("options", `-c outcome_test.worker=${name}`);
  const proc = spawnProcess(
    ["node", "--import", "tsx", "services/worker/src/main.ts"],
    {
      DATABASE_URL: url.toString(),
      SOURCE_DATABASE_URL: world.t.url,
      REDIS_URL,
      QUEUE_PREFIX: world.prefix,
      HOST: "127.0.0.1",
      WORKER_PORT: String(port),
      WORKER_CONCURRENCY: "4",
      RECONCILE_INTERVAL_MS: "500",
      LOCK_DURATION_MS: "5000",
      LOG_LEVEL: "warn",
    },
    (c) => cleanups.push(c),
  );
  return { proc, port };
}

describe("two worker processes on one Redis", () => {
  it("share the scheduled polls, and each poll runs exactly once", async () => {
    const world = await createWorld();
    const launched = await launch(world, "scale-out", KEYS);

    // A cumulative snapshot per arm per experiment every 250 ms, each tick in one commit.
    const totals = new Map<string, number>();
    const tick = async () => {
      const ts = new Date().toISOString();
      const rows: [string, string, number][] = [];
      for (const key of KEYS) {
        for (const arm of ["control", "treatment"]) {
          const units = (totals.get(`${key}/${arm}`) ?? 0) + 20 + Math.floor(Math.random() * 10);
          totals.set(`${key}/${arm}`, units);
          rows.push([key, arm, units]);
        }
      }
      await world.source.query(
        `INSERT INTO source_points (experiment_key, arm, ts, units, sum, sum_sq)
         SELECT k, a, $3::timestamptz, u, round(u * 0.2), round(u * 0.2)
           FROM unnest($1::text[], $2::text[], $4::bigint[]) AS t(k, a, u)`,
        [rows.map((r) => r[0]), rows.map((r) => r[1]), ts, rows.map((r) => r[2])],
      );
    };
    await tick();
    let inserting = true;
    const inserter = (async () => {
      while (inserting) {
        await sleep(250);
        await tick();
      }
    })();
    cleanups.push(async () => {
      inserting = false;
      await inserter;
    });

    const a = await startWorker(world, "a");
    const b = await startWorker(world, "b");
    await Promise.all([
      waitHealthy(a.proc, `http://127.0.0.1:${a.port}/readyz`),
      waitHealthy(b.proc, `http://127.0.0.1:${b.port}/readyz`),
    ]);
    await sleep(RUN_MS);
    inserting = false;
    await inserter;

    // Both keep going until every experiment has every snapshot stored and analysed.
    const diagnostics = () => `worker a:\n${a.proc.output()}\nworker b:\n${b.proc.output()}`;
    await waitFor(
      "every experiment to catch up with the source",
      async () => {
        for (const e of launched) {
          const { rows } = await world.source.query<{ n: number; newest: Date }>(
            "SELECT count(*)::int AS n, max(ts) AS newest FROM source_points WHERE experiment_key = $1",
            [e.key],
          );
          const series = (await signals.listSeriesOfExperiment(world.t.db, e.id)).find((s) => s.role === "primary");
          if (series === undefined) return false;
          if ((await signals.listPoints(world.t.db, series.id, null)).length !== rows[0]!.n) return false;
          if ((await signals.latestAnalysis(world.t.db, e.id))?.ts.getTime() !== rows[0]!.newest.getTime()) {
            return false;
          }
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 250, diagnostics },
    );
    expect(await terminate(a.proc)).toEqual({ code: 0, signal: null });
    expect(await terminate(b.proc)).toEqual({ code: 0, signal: null });

    // BullMQ's record: every poll job of an experiment completed, each started once, none failed or left active.
    const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
    cleanups.push(() => queue.close());
    const completed = (await queue.getJobs(["completed"], 0, -1)).filter((j) => j.name === JOB.pollExperiment);
    const failed = (await queue.getJobs(["failed"], 0, -1)).filter((j) => j.name === JOB.pollExperiment);
    expect(failed.map((j) => j.failedReason)).toEqual([]);
    expect(await queue.getJobs(["active"], 0, -1)).toEqual([]);
    expect(completed.filter((j) => j.attemptsStarted !== 1 || j.stalledCounter !== 0).map((j) => j.id)).toEqual([]);
    expect(new Set(completed.map((j) => j.id)).size).toBe(completed.length);

    // Postgres' record: one successful poll per completed job, per experiment, and who ran it.
    const polls = await world.source.query<{ experiment_id: string; polled_at: Date; worker: string | null }>(
      "SELECT experiment_id, polled_at, worker FROM test_poll_log",
    );
    const analyses = await world.source.query<{ experiment_id: string; ts: Date; worker: string | null }>(
      "SELECT experiment_id, ts, worker FROM test_analysis_log",
    );
    const perWorker = { a: 0, b: 0 } as Record<string, number>;
    for (const row of polls.rows) perWorker[String(row.worker)] = (perWorker[String(row.worker)] ?? 0) + 1;
    let scheduledSlots = 0;
    for (const e of launched) {
      const jobs = completed.filter((j) => j.data.experimentId === e.id);
      const polled = jobs.filter((j) => (j.returnvalue as { status?: string } | null)?.status === "polled");
      const logged = polls.rows.filter((r) => r.experiment_id === e.id);
      expect(polled.length).toBeGreaterThanOrEqual(RUN_MS / POLL_INTERVAL_MS - 1);
      // As many successful polls in Postgres as poll jobs BullMQ completed: no job ran twice.
      expect(logged).toHaveLength(polled.length);
      expect(new Set(logged.map((r) => r.polled_at.getTime())).size).toBe(logged.length);
      // Each scheduled time (the job id ends with it) has one job.
      const slots = jobs.map((j) => Number(String(j.id).split(":").at(-1)));
      expect(new Set(slots).size).toBe(jobs.length);
      scheduledSlots += slots.length;
      // One analysis per analysed snapshot.
      const analysed = analyses.rows.filter((r) => r.experiment_id === e.id).map((r) => r.ts.getTime());
      expect(new Set(analysed).size).toBe(analysed.length);
      expect(await experimentRows.findExperimentById(world.t.db, e.id)).toMatchObject({ state: "running" });
    }
    // Both workers took polls, and nothing else wrote them.
    expect(Object.keys(perWorker).sort()).toEqual(["a", "b"]);
    expect(perWorker.a).toBeGreaterThan(0);
    expect(perWorker.b).toBeGreaterThan(0);
    const analysesPerWorker = analyses.rows.reduce<Record<string, number>>((acc, r) => {
      acc[String(r.worker)] = (acc[String(r.worker)] ?? 0) + 1;
      return acc;
    }, {});
    console.log(
      `${KEYS.length} experiments, ${RUN_MS} ms: ${completed.length} poll jobs completed (${scheduledSlots} scheduled times), ` +
        `${polls.rows.length} polls in Postgres (worker a ${perWorker.a}, b ${perWorker.b}); ` +
        `${analyses.rows.length} analyses (${JSON.stringify(analysesPerWorker)}), none duplicated`,
    );
  }, 120_000);
});
