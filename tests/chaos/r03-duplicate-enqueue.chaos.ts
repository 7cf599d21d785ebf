/**
 * R3: the same analysis job added 1 000 times at once while a worker process
 * runs, then 1 000 times again after it completed.
 *
 * The job is the one the worker itself enqueues after a poll: name
 * `JOB.analyseExperiment`, data `{ experimentId }`, job id
 * `analyseJobId(experiment, polledUntil)` and the worker's options
 * (`removeOnComplete: KEEP_COMPLETED`, so the completed job stays and later
 * adds are no-ops). The data is harmful (treatment converts half as often as
 * control), so the one analysis pauses the experiment.
 *
 * Pass: exactly 1 analysis row for the snapshot, exactly 1 `experiment.paused`
 * audit row and no other transition, exactly 1 execution of the job (one
 * `completed` event, one attempt); every other add reported `duplicated`.
 */
import { audit, experiments as experimentRows, signals } from "@outcome-runtime/db";
import {
  analyseJobId,
  connectorProvider,
  JOB,
  KEEP_COMPLETED,
  KEEP_FAILED,
  pollExperiment,
  primaryPolledUntil,
  SIGNALS_QUEUE,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the scenario adds the worker's own analysis job, as a duplicate would
import { Queue, QueueEvents } from "bullmq";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  type Cleanups,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  stateOf,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const ADDS = scaled(1000, 1000);

/** The options services/worker/src/worker.ts adds an analysis job with. */
const ANALYSE_OPTS = {
  attempts: 5,
  backoff: { type: "exponential" as const, delay: 1000 },
  removeOnComplete: KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
};

it(`R3: the same analysis job added ${ADDS}× concurrently, then ${ADDS}× after it completed, runs once`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  // An hourly poll: the worker's scheduler polls once at start (nothing in the source yet) and not again.
  await activeOutcome(world, "chaos-dup", 100, { pollInterval: "1h" });
  const [experiment] = await launchExperiments(world, "chaos-dup", ["dup"]);
  const id = experiment!.id;

  const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
  const events = new QueueEvents(SIGNALS_QUEUE, { connection: world.redis.duplicate(), prefix: world.prefix });
  cleanups.push(async () => {
    await events.close();
    await queue.close();
  });
  await events.waitUntilReady();

  const worker = await startWorkerProcess(world, cleanups);
  await workerBooted(worker);
  // The worker's first (scheduled) poll found an empty source: no analysis job of its own.
  await waitFor(
    "the worker's first poll",
    async () => (await experimentRows.findExperimentById(world.t.db, id))?.polling.lastPolledAt != null,
    { timeoutMs: 20_000, diagnostics: worker.output },
  );

  // One harmful snapshot: 5 000 units per arm, control converts 20 %, treatment 10 %.
  // Taken now, seconds after the launch: past the outcome's min_duration of 1 s.
  const ts = new Date();
  await insertSource(world, [
    { key: "dup", arm: "control", ts, units: 5000, conversions: 1000 },
    { key: "dup", arm: "treatment", ts, units: 5000, conversions: 500 },
  ]);
  // The poll, as the worker runs it (the real use case and connector), stores the snapshot.
  const connectors = connectorProvider({ db: world.t.db, access: world.deps.sources });
  cleanups.push(() => connectors.close());
  const polled = await pollExperiment({ db: world.t.db, connectors }, id);
  expect(polled).toMatchObject({ status: "polled", inserted: 2 });
  const upTo = await primaryPolledUntil({ db: world.t.db }, id);
  expect(upTo).toBe(ts.getTime());
  const jobId = analyseJobId(id, upTo!);

  let completed = 0;
  let duplicated = 0;
  let failed = 0;
  events.on("completed", ({ jobId: j }) => {
    if (j === jobId) completed += 1;
  });
  events.on("failed", ({ jobId: j }) => {
    if (j === jobId) failed += 1;
  });
  events.on("duplicated", ({ jobId: j }) => {
    if (j === jobId) duplicated += 1;
  });

  const before = new Set(
    (await audit.listAuditEvents(world.t.db, world.seed.workspaceId, { subjectId: id })).map((e) => e.id),
  );
  const addAll = () =>
    Promise.all(
      Array.from({ length: ADDS }, () =>
        queue.add(JOB.analyseExperiment, { experimentId: id }, { ...ANALYSE_OPTS, jobId }),
      ),
    );
  const firstAddStarted = Date.now();
  const first = await addAll();
  const firstAddMs = Date.now() - firstAddStarted;
  expect(first.every((job) => job.id === jobId)).toBe(true);
  const completedMs = await waitFor(
    "the analysis job to complete",
    async () => ((await queue.getJob(jobId))?.finishedOn !== undefined ? Date.now() - firstAddStarted : undefined),
    { timeoutMs: 30_000, intervalMs: 20, diagnostics: worker.output },
  );
  await waitFor("the completed event", async () => completed > 0, { timeoutMs: 10_000 });
  const duplicatedFirst = await waitFor(
    "every duplicate add of the first round to be reported",
    async () => (duplicated >= ADDS - 1 ? duplicated : undefined),
    { timeoutMs: 10_000 },
  ).catch(() => duplicated);

  const second = await addAll();
  expect(second.every((job) => job.id === jobId)).toBe(true);
  await waitFor(
    "every add of the second round to be reported as a duplicate",
    async () => duplicated >= duplicatedFirst + ADDS,
    {
      timeoutMs: 10_000,
    },
  ).catch(() => {});
  // Give a second execution (there should be none) time to happen and be reported.
  await sleep(3000);

  const job = await queue.getJob(jobId);
  const state = await job?.getState();
  const analyses = await signals.listAnalyses(world.t.db, id);
  const history = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, { subjectId: id });
  const paused = history.filter((e) => e.action === "experiment.paused");
  // The experiment's audit rows written since the first add: its transitions under the duplicates.
  const transitionsAfterLaunch = history.filter((e) => !before.has(e.id));
  const finalState = await stateOf(world, id);
  expect(await stopProcess(worker.proc)).toMatchObject({ code: 0 });

  const executions = completed + failed;
  report({
    id: "R3",
    title: "Duplicate enqueue of one analysis job",
    fault: `the same job id added ${ADDS}× at once, then ${ADDS}× after completion`,
    faults: 2 * ADDS,
    lost: Math.max(0, 1 - executions) + Math.max(0, 1 - analyses.length) + Math.max(0, 1 - paused.length),
    duplicated: Math.max(0, executions - 1) + Math.max(0, analyses.length - 1) + Math.max(0, paused.length - 1),
    figures: {
      "adds returning the existing job (round 1)": duplicatedFirst,
      "adds returning the existing job (round 2)": duplicated - duplicatedFirst,
      "completed events": completed,
      "failed events": failed,
      attemptsMade: job?.attemptsMade ?? -1,
      "analysis rows": analyses.length,
      "experiment.paused rows": paused.length,
      "transitions after launch": transitionsAfterLaunch.length,
      "round 1 add ms": firstAddMs,
      "add → completed ms": completedMs,
    },
    ms: Date.now() - started,
  });
  expect(state).toBe("completed");
  expect(completed).toBe(1);
  expect(failed).toBe(0);
  expect(job?.attemptsMade).toBe(1);
  // Every add but the one that created the job returned the existing one.
  expect(duplicatedFirst).toBe(ADDS - 1);
  expect(duplicated - duplicatedFirst).toBe(ADDS);
  expect(analyses).toHaveLength(1);
  expect(analyses[0]!.ts.getTime()).toBe(ts.getTime());
  expect(analyses[0]!.decision).toMatchObject({ action: "pause", reason: "kill" });
  expect(paused).toHaveLength(1);
  expect(transitionsAfterLaunch.map((e) => e.action)).toEqual(["experiment.paused"]);
  expect(finalState).toBe("paused");
});
