/**
 * R1 and R2: SIGKILL the worker at random points inside its poll and analysis
 * jobs, many times, while the source keeps gaining snapshots.
 *
 * A survivor worker runs throughout, as a second replica would; each victim
 * worker is started, left to take jobs for a random 0.2–1.5 s, and killed
 * (preferably while it holds a job: `job.processedBy` names the process). The
 * connector query sleeps 300 ms, so a kill often lands inside the fetch, and
 * sometimes inside the insert or between the insert and the ack.
 *
 * Pass: every source row stored exactly once and one analysis per snapshot
 * (R1); every interrupted job found stalled and re-queued within
 * 2 × lockDuration + 2 s of the kill, and run again (R2: both times reported);
 * BullMQ's `stalled` events equal the jobs the kills interrupted.
 */
import { hostname } from "node:os";
import { CONTROL_QUEUE, SIGNALS_QUEUE } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the suite reads the queues to see which jobs a kill interrupted
import { type Job, Queue, QueueEvents } from "bullmq";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  BATCHED_SOURCE_QUERY,
  type Cleanups,
  caughtUp,
  createWorld,
  launchExperiments,
  runCleanups,
  SOURCE_QUERY,
  startSourceTicker,
  stateOf,
} from "../support/world";
import { expectWithinLoadBound, medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const LOCK_MS = 5000;
const KILLS = scaled(100, 6);

interface Interrupted {
  readonly key: string;
  readonly killAt: number;
}

it(`R1/R2: ${KILLS} SIGKILLs of a worker in the middle of polls lose and duplicate nothing`, () =>
  sigkillScenario({ ids: ["R1", "R2"], kills: KILLS, query: SOURCE_QUERY }));

it(`R1b/R2b: ${scaled(50, 4)} SIGKILLs of a worker in the middle of batched polls (one job reads every experiment) lose and duplicate nothing`, () =>
  sigkillScenario({ ids: ["R1b", "R2b"], kills: scaled(50, 4), query: BATCHED_SOURCE_QUERY }));

async function sigkillScenario(scenario: {
  readonly ids: readonly [string, string];
  readonly kills: number;
  readonly query: string;
}): Promise<void> {
  const KILLS = scenario.kills;
  const started = Date.now();
  const world = await createWorld(cleanups);
  // A minimum sample no experiment reaches: every analysis is "warming up", nothing is decided.
  await activeOutcome(world, "chaos-kill", 1_000_000_000, {
    query: scenario.query.replace("FROM source_points", "FROM source_points CROSS JOIN pg_sleep(0.3)"),
  });
  const keys = ["kill-a", "kill-b", "kill-c", "kill-d", "kill-e"];
  const launched = await launchExperiments(world, "chaos-kill", keys);
  const ticker = startSourceTicker(world, keys, 100, cleanups);

  const queues = [SIGNALS_QUEUE, CONTROL_QUEUE].map(
    (name) => new Queue(name, { connection: world.redis, prefix: world.prefix }),
  );
  const events = new QueueEvents(SIGNALS_QUEUE, { connection: world.redis.duplicate(), prefix: world.prefix });
  cleanups.push(async () => {
    await events.close();
    await Promise.all(queues.map((q) => q.close()));
  });
  await events.waitUntilReady();
  let stalled = 0;
  // When BullMQ found each job stalled (moved it back to wait): the event's stream id is its time in ms.
  const stalledAt = new Map<string, number[]>();
  events.on("stalled", ({ jobId }, id) => {
    stalled += 1;
    stalledAt.set(jobId, [...(stalledAt.get(jobId) ?? []), Number(String(id).split("-")[0])]);
  });

  const env = { LOCK_DURATION_MS: String(LOCK_MS), WORKER_CONCURRENCY: "4" };
  // The survivor has room to take a re-queued job at once (the polls wait on I/O): R2 measures the recovery,
  // not a queue the kills left the survivor alone to drain.
  const survivor = await startWorkerProcess(world, cleanups, { ...env, WORKER_CONCURRENCY: "16" });
  await survivor.ready;

  const interrupted: Interrupted[] = [];
  let killsWithJob = 0;
  // Poll and analysis jobs (the signals queue) held by the worker of that name.
  const held = async (name: string): Promise<Job[]> =>
    (await queues[0]!.getActive()).filter((job) => job.processedBy === name);
  for (let i = 0; i < KILLS; i += 1) {
    const victim = await startWorkerProcess(world, cleanups, env);
    await victim.ready;
    const name = `${hostname()}:${victim.proc.child.pid}`;
    await sleep(200 + Math.floor(Math.random() * 1300));
    const holding = await waitFor("the victim to hold a job", async () => (await held(name)).length > 0, {
      timeoutMs: 3000,
      intervalMs: 5,
    }).catch(() => false);
    victim.proc.child.kill("SIGKILL");
    const killAt = Date.now();
    expect((await victim.proc.exited).signal).toBe("SIGKILL");
    // The jobs the kill interrupted: still active, taken by the dead process (their lock has not expired yet).
    const jobs = await held(name);
    if (holding || jobs.length > 0) killsWithJob += 1;
    for (const job of jobs) interrupted.push({ key: `${job.queueName}/${job.id}`, killAt });
  }

  // Recovery (R2): each interrupted job runs again (a new processedOn) after its lock expires.
  const byKey = new Map(queues.map((q) => [q.name, q]));
  const recoveries: number[] = [];
  const detections: number[] = [];
  for (const item of interrupted) {
    const [queueName, id] = [item.key.slice(0, item.key.indexOf("/")), item.key.slice(item.key.indexOf("/") + 1)];
    const ms = await waitFor(
      `job ${item.key} to run again`,
      async () => {
        const job = await byKey.get(queueName)!.getJob(id);
        return job?.processedOn !== undefined && job.processedOn > item.killAt
          ? job.processedOn - item.killAt
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, diagnostics: survivor.output },
    );
    recoveries.push(ms);
    const found = (stalledAt.get(id) ?? []).filter((t) => t > item.killAt);
    if (found.length > 0) detections.push(Math.min(...found) - item.killAt);
  }

  await ticker.stop();
  await waitFor("every experiment to catch up with the source", () => caughtUp(world, launched), {
    timeoutMs: 120_000,
    intervalMs: 500,
    diagnostics: survivor.output,
  });
  await waitFor(
    "no job left active",
    async () => (await Promise.all(queues.map((q) => q.getActive()))).flat().length === 0,
    {
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  );
  // Let late stalled events arrive before counting.
  await sleep(1000);
  expect(await stopProcess(survivor.proc)).toMatchObject({ code: 0 });

  const ingest = await auditIngest(world, launched);
  for (const e of launched) expect(await stateOf(world, e.id)).toBe("running");
  const { median, max } = medianMax(recoveries);
  const detected = medianMax(detections);
  const bound = 2 * LOCK_MS + 2000;
  const batched = scenario.query.includes(":experiments");
  report({
    id: scenario.ids[0],
    title: batched
      ? "SIGKILL the worker inside batched poll jobs (every experiment of the outcome in one job)"
      : "SIGKILL the worker inside poll and analysis jobs",
    fault: "SIGKILL of a worker process",
    faults: KILLS,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "kills holding a job": killsWithJob,
      "jobs interrupted": recoveries.length,
      "stalled events": stalled,
      "source points": ingest.sourcePoints,
      "stored points": ingest.storedPoints,
      analyses: ingest.analyses,
    },
    ms: Date.now() - started,
  });
  report({
    id: scenario.ids[1],
    title: batched ? "Recovery latency after a SIGKILL, batched polls" : "Recovery latency after a SIGKILL",
    fault: `as ${scenario.ids[0]}`,
    faults: recoveries.length,
    lost: 0,
    duplicated: 0,
    figures: {
      "lock ms": LOCK_MS,
      "re-run p50 ms": median,
      "re-run max ms": max,
      "found stalled p50 ms": detected.median,
      "found stalled max ms": detected.max,
      "bound ms": bound,
    },
    ms: Date.now() - started,
  });
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(ingest.storedPoints).toBe(ingest.sourcePoints);
  expect(killsWithJob).toBeGreaterThan(0);
  expect(stalled).toBe(recoveries.length);
  // The lock governs how soon a dead worker's job is found stalled and re-queued: within 2 × lock + 2 s.
  // When it is then taken depends on the load of the replica left (reported as the re-run figures).
  expect(detections).toHaveLength(recoveries.length);
  expectWithinLoadBound(detected.max, bound);
}
