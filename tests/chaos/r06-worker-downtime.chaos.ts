/**
 * R6: worker downtime. Every worker is stopped for three poll intervals while
 * the source gains one snapshot per interval; then a worker starts again.
 *
 * Pass, per trial: the three windows missed are ingested by the watermark
 * catch-up (the first poll after the restart asks for everything after the
 * series' "polled until" mark, so all three snapshots arrive in one poll: one
 * `ingested_at`, the poll's transaction time), one analysis per snapshot, and
 * over all trials every source row stored exactly once (auditIngest: 0 lost,
 * 0 duplicated).
 */
import { signals } from "@outcome-runtime/db";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, type WorkerProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  type SourceRow,
  type World,
} from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const TRIALS = scaled(10, 2);
const INTERVAL_MS = 2000;
const MISSED = 3;
const KEYS = ["down-a", "down-b", "down-c"];

/** Cumulative per-arm totals of each key, growing by one snapshot per call. */
function snapshotWriter(world: World) {
  const totals = new Map(KEYS.flatMap((k) => ["control", "treatment"].map((arm) => [`${k}/${arm}`, 0])));
  return async (): Promise<Date> => {
    const ts = new Date();
    const rows: SourceRow[] = [];
    for (const key of KEYS) {
      for (const arm of ["control", "treatment"]) {
        const units = totals.get(`${key}/${arm}`)! + 100;
        totals.set(`${key}/${arm}`, units);
        rows.push({ key, arm, ts, units, conversions: Math.round(units * 0.2) });
      }
    }
    await insertSource(world, rows);
    return ts;
  };
}

it(`R6: ${TRIALS} worker downtimes of ${MISSED} poll intervals are caught up by the watermark`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  // A minimum sample no experiment reaches: nothing is decided, polling goes on.
  await activeOutcome(world, "chaos-down", 1_000_000_000, { pollInterval: `${INTERVAL_MS / 1000}s` });
  const launched = await launchExperiments(world, "chaos-down", KEYS);
  const snapshot = snapshotWriter(world);
  await snapshot();

  let worker: WorkerProcess = await startWorkerProcess(world, cleanups);
  await workerBooted(worker);
  await waitFor("the first catch-up", () => caughtUp(world, launched), {
    timeoutMs: 60_000,
    intervalMs: 200,
    diagnostics: () => worker.output(),
  });

  const catchUps: number[] = [];
  let windowsMissed = 0;
  let windowsInOnePoll = 0;
  let windowsSeparately = 0;
  for (let trial = 0; trial < TRIALS; trial += 1) {
    expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });
    // Downtime: the source gains one snapshot per poll interval; no worker is there to poll.
    const missed: Date[] = [];
    for (let i = 0; i < MISSED; i += 1) {
      missed.push(await snapshot());
      await sleep(INTERVAL_MS);
    }
    windowsMissed += missed.length;
    const restart = Date.now();
    worker = await startWorkerProcess(world, cleanups);
    await waitFor("every experiment to catch up after the downtime", () => caughtUp(world, launched), {
      timeoutMs: 120_000,
      intervalMs: 100,
      diagnostics: () => worker.output(),
    });
    catchUps.push(Date.now() - restart);
    await workerBooted(worker);
    // One poll fetched every missed window: the missed snapshots' points share one ingestion transaction.
    for (const e of launched) {
      const primary = (await signals.listSeriesOfExperiment(world.t.db, e.id)).find((s) => s.role === "primary")!;
      const { rows } = await world.runtime.query<{ n: number }>(
        "SELECT count(DISTINCT ingested_at)::int AS n FROM signal_points WHERE series_id = $1 AND ts = ANY($2::timestamptz[])",
        [primary.id, missed.map((d) => d.toISOString())],
      );
      if (rows[0]!.n === 1) windowsInOnePoll += 1;
      else windowsSeparately += 1;
    }
  }
  expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });

  const ingest = await auditIngest(world, launched);
  const { median, max } = medianMax(catchUps);
  report({
    id: "R6",
    title: "Worker downtime of three poll intervals",
    fault: `every worker stopped for ${MISSED} poll intervals (${INTERVAL_MS} ms each)`,
    faults: TRIALS,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "windows missed per experiment": windowsMissed,
      "catch-ups in one poll (experiment × trial)": windowsInOnePoll,
      "catch-ups over several polls": windowsSeparately,
      "restart → caught up p50 ms": median,
      "restart → caught up max ms": max,
      "source points": ingest.sourcePoints,
      "stored points": ingest.storedPoints,
      analyses: ingest.analyses,
    },
    ms: Date.now() - started,
  });
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(ingest.storedPoints).toBe(ingest.sourcePoints);
  // One analysis per snapshot: the first one and the missed ones of every trial.
  expect(ingest.analyses).toBe(KEYS.length * (1 + TRIALS * MISSED));
  expect(windowsInOnePoll).toBe(TRIALS * KEYS.length);
});
