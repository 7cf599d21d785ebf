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
import { experiments as experimentRows } from "@outcome-runtime/db";
import { JOB, SIGNALS_QUEUE } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test reads BullMQ's completed jobs to count the polls
import { Queue } from "bullmq";
// biome-ignore lint/style/noRestrictedImports: the test instruments the runtime's database with triggers
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { terminate } from "./support/compose";
import { startWorkerProcess, type WorkerProcess } from "./support/processes";
import {
  activeOutcome,
  type Cleanups,
  caughtUp,
  createWorld as createWorldOf,
  launchExperiments,
  runCleanups,
  startSourceTicker,
  type World,
} from "./support/world";

const POLL_INTERVAL_MS = 1000;
const RUN_MS = 6 * POLL_INTERVAL_MS;
const KEYS = ["scale-a", "scale-b", "scale-c", "scale-d", "scale-e", "scale-f"];

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups));

/** The runtime's database, for the instrumentation below (not a signal source). */
function runtimeDatabase(world: World): pg.Pool {
  const pool = new pg.Pool({ connectionString: world.t.url, max: 2 });
  cleanups.push(() => pool.end());
  return pool;
}

/** The test world, plus the instrumentation: who ran each successful poll and each analysis (triggers in the runtime's database). */
async function createWorld(): Promise<World & { runtime: pg.Pool }> {
  const world = await createWorldOf(cleanups);
  const runtime = runtimeDatabase(world);
  await runtime.query(`
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
  return { ...world, runtime };
}

/** A worker process whose database sessions carry `outcome_test.worker = name`, for the triggers above. */
function startWorker(world: World, name: string): Promise<WorkerProcess> {
  const url = new URL(world.t.url);
  url.searchParams.set("options", `-c outcome_test.worker=${name}`);
  return startWorkerProcess(world, cleanups, {
    DATABASE_URL: url.toString(),
    WORKER_CONCURRENCY: "4",
    LOCK_DURATION_MS: "5000",
  });
}

describe("two worker processes on one Redis", () => {
  it("share the scheduled polls, and each poll runs exactly once", async () => {
    const world = await createWorld();
    // Nothing is ever decided: the minimum sample is never reached.
    await activeOutcome(world, "scale-out", 1_000_000_000);
    const launched = await launchExperiments(world, "scale-out", KEYS);

    // A cumulative snapshot per arm per experiment every 250 ms, each tick in one commit.
    const ticker = startSourceTicker(world, KEYS, 250, cleanups);

    const a = await startWorker(world, "a");
    const b = await startWorker(world, "b");
    await Promise.all([a.ready, b.ready]);
    await sleep(RUN_MS);
    await ticker.stop();

    // Both keep going until every experiment has every snapshot stored and analysed.
    const diagnostics = () => `worker a:\n${a.output()}\nworker b:\n${b.output()}`;
    await waitFor("every experiment to catch up with the source", () => caughtUp(world, launched), {
      timeoutMs: 30_000,
      intervalMs: 250,
      diagnostics,
    });
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
    const polls = await world.runtime.query<{ experiment_id: string; polled_at: Date; worker: string | null }>(
      "SELECT experiment_id, polled_at, worker FROM test_poll_log",
    );
    const analyses = await world.runtime.query<{ experiment_id: string; ts: Date; worker: string | null }>(
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
