/**
 * R9: SIGTERM a worker while it holds many jobs. The connector query sleeps
 * 0.5 s, so every poll is in flight when the signal arrives (50 polls share
 * the connector's 4 connections to the source: about 6 s of work, within the
 * pool's 10 s wait for a connection); the worker must
 * stop taking jobs, let the active ones finish, and exit 0 well before its
 * 30 s drain deadline. Nothing is lost or written twice: each job the signal
 * found active completes exactly once, and a worker started afterwards
 * ingests every source row once.
 */
import { hostname } from "node:os";
import { SIGNALS_QUEUE } from "@outcome-runtime/runtime";
import { waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the suite reads the queue to see which jobs a SIGTERM found active
import { type Job, Queue } from "bullmq";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  SOURCE_QUERY,
} from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const EXPERIMENTS = scaled(50, 12);
const ROUNDS = scaled(5, 2);
/** The worker's own drain deadline (services/worker/src/main.ts). */
const DEADLINE_MS = 30_000;

it(`R9: SIGTERM with ${EXPERIMENTS} polls active, ${ROUNDS} times: exit 0 before the deadline, nothing lost`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-drain", 1_000_000_000, {
    pollInterval: "2s",
    query: SOURCE_QUERY.replace("FROM source_points", "FROM source_points CROSS JOIN pg_sleep(0.5)"),
  });
  const keys = Array.from({ length: EXPERIMENTS }, (_, i) => `drain-${i}`);
  const launched = await launchExperiments(world, "chaos-drain", keys);
  const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
  cleanups.push(() => queue.close());

  const exits: number[] = [];
  let activeAtSignal = 0;
  let completedOfThose = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    // A new snapshot for every experiment, so every poll has something to store.
    const ts = new Date();
    await insertSource(
      world,
      keys.flatMap((key) =>
        ["control", "treatment"].map((arm) => ({
          key,
          arm,
          ts,
          units: 1000 * (round + 1),
          conversions: 200 * (round + 1),
        })),
      ),
    );
    const worker = await startWorkerProcess(world, cleanups, { WORKER_CONCURRENCY: String(EXPERIMENTS) });
    await worker.ready;
    const name = `${hostname()}:${worker.proc.child.pid}`;
    const active = await waitFor(
      `${EXPERIMENTS} polls active in the worker`,
      async () => {
        const mine = (await queue.getActive()).filter((job) => job.processedBy === name);
        return mine.length >= EXPERIMENTS ? mine : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, diagnostics: worker.output },
    );
    const stopped = await stopProcess(worker.proc, DEADLINE_MS + 5000);
    expect(stopped.code).toBe(0);
    exits.push(stopped.ms);
    activeAtSignal += active.length;
    // Each job the signal found active finished in that worker (a drain, not a stall).
    for (const job of active) {
      const after = (await queue.getJob(job.id!)) as Job | undefined;
      if (
        after?.finishedOn !== undefined &&
        after.processedBy === name &&
        after.attemptsStarted === job.attemptsStarted
      ) {
        completedOfThose += 1;
      }
    }
  }

  // A last worker catches up; every source row is stored once and analysed once.
  const last = await startWorkerProcess(world, cleanups);
  await waitFor("the experiments to catch up", () => caughtUp(world, launched), {
    timeoutMs: 120_000,
    intervalMs: 500,
    diagnostics: last.output,
  });
  expect(await stopProcess(last.proc)).toMatchObject({ code: 0 });
  const ingest = await auditIngest(world, launched);
  const { median, max } = medianMax(exits);
  report({
    id: "R9",
    title: "Graceful shutdown with jobs active",
    fault: "SIGTERM of a busy worker",
    faults: ROUNDS,
    lost: ingest.lostPoints + ingest.missingAnalyses + (activeAtSignal - completedOfThose),
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "jobs active at SIGTERM": activeAtSignal,
      "completed by the draining worker": completedOfThose,
      "exit p50 ms": median,
      "exit max ms": max,
      "deadline ms": DEADLINE_MS,
      "source points": ingest.sourcePoints,
    },
    ms: Date.now() - started,
  });
  expect(max).toBeLessThan(DEADLINE_MS);
  expect(completedOfThose).toBe(activeAtSignal);
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
});
