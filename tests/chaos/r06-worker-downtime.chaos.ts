/**
 * R6: worker downtime. Every worker is stopped for three poll intervals while
 * the source gains one snapshot per interval; then a worker starts again.
 *
 * Pass, per trial: the three windows missed are ingested by the watermark
 * catch-up (the first poll after the restart asks for everything after the
 * series' "polled until" mark, so all three snapshots arrive in one poll: one
 * `ingested_at`, the poll's transaction time), one analysis per snapshot, and
 * over all trials every source row stored exactly once (auditIngest: 0 lost,
 * 0 duplicated). In order: per experiment, taken by snapshot time, each
 * analysis holds the source's totals at its snapshot, none was written before
 * an earlier snapshot's, and the always-valid p-value never rises.
 *
 * R6b: the same with the outcome's query in the batched form (`:experiments`),
 * 30 experiments stored 8 per transaction (`POLL_STORE_SIZE`): the catch-up is
 * one `poll-experiments` job whose groups each store and analyse the three
 * missed snapshots of their experiments. The treatment converts a little better
 * than control, so the running p-value moves and its order shows.
 */
import type { AnalysisCarry, Experiment } from "@outcome-runtime/core";
import { signals } from "@outcome-runtime/db";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, type WorkerProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  BATCHED_SOURCE_QUERY,
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

interface DowntimeScenario {
  readonly id: string;
  readonly title: string;
  readonly slug: string;
  readonly keys: readonly string[];
  /** The connector query (default the one-experiment `SOURCE_QUERY`). */
  readonly query?: string;
  /** The worker's environment beyond `startWorkerProcess`'s. */
  readonly env?: Record<string, string>;
  /** The treatment's conversion rate (control converts 20 %). */
  readonly treatmentRate: number;
}

/** Cumulative per-arm totals of each key, growing by one snapshot per call. */
function snapshotWriter(world: World, keys: readonly string[], treatmentRate: number) {
  const totals = new Map(keys.flatMap((k) => ["control", "treatment"].map((arm) => [`${k}/${arm}`, 0])));
  return async (): Promise<Date> => {
    const ts = new Date();
    const rows: SourceRow[] = [];
    for (const key of keys) {
      for (const arm of ["control", "treatment"]) {
        const units = totals.get(`${key}/${arm}`)! + 100;
        totals.set(`${key}/${arm}`, units);
        rows.push({ key, arm, ts, units, conversions: Math.round(units * (arm === "control" ? 0.2 : treatmentRate)) });
      }
    }
    await insertSource(world, rows);
    return ts;
  };
}

/**
 * Analyses out of order, over every experiment: taken by snapshot time, an analysis whose arms' units are
 * not the source's at its snapshot, one written before the analysis of an earlier snapshot, or one whose
 * always-valid p-value (the running minimum the next analysis continues from) is above the one before;
 * and the lowest always-valid p-value of all (below 1 when the treatment's edge moved it).
 */
async function analysesOutOfOrder(
  world: World,
  experiments: readonly Experiment[],
): Promise<{ wrong: number; lowestP: number }> {
  let wrong = 0;
  let lowestP = 1;
  for (const e of experiments) {
    const { rows } = await world.source.query<{ arm: string; ts: Date; units: string }>(
      "SELECT arm, ts, units FROM source_points WHERE experiment_key = $1",
      [e.key],
    );
    const units = new Map(rows.map((r) => [`${r.arm}@${r.ts.toISOString()}`, Number(r.units)]));
    const analyses = await signals.listAnalyses(world.t.db, e.id, 100_000);
    let previous: { createdAt: number; pValue: number } | null = null;
    for (const a of analyses) {
      const ts = a.ts.toISOString();
      const pValue = (a.details as { carry?: AnalysisCarry }).carry?.arms.treatment?.pValue ?? Number.NaN;
      const totalsMatch = ["control", "treatment"].every((arm) => a.arms[arm]?.units === units.get(`${arm}@${ts}`));
      if (
        !totalsMatch ||
        !(pValue >= 0) ||
        (previous !== null && (a.createdAt.getTime() < previous.createdAt || pValue > previous.pValue))
      ) {
        wrong += 1;
      }
      previous = { createdAt: a.createdAt.getTime(), pValue };
      lowestP = Math.min(lowestP, pValue);
    }
  }
  return { wrong, lowestP };
}

it(`R6: ${TRIALS} worker downtimes of ${MISSED} poll intervals are caught up by the watermark`, () =>
  downtimeScenario({
    id: "R6",
    title: "Worker downtime of three poll intervals",
    slug: "chaos-down",
    keys: ["down-a", "down-b", "down-c"],
    treatmentRate: 0.2,
  }));

const BATCHED_EXPERIMENTS = 30;
const STORE_SIZE = 8;

it(`R6b: ${TRIALS} worker downtimes of ${MISSED} poll intervals are caught up by batched polls, ${STORE_SIZE} experiments per transaction`, () =>
  downtimeScenario({
    id: "R6b",
    title: "Worker downtime of three poll intervals, batched polls",
    slug: "chaos-down-b",
    keys: Array.from({ length: BATCHED_EXPERIMENTS }, (_, i) => `down-b-${i}`),
    query: BATCHED_SOURCE_QUERY,
    env: { POLL_STORE_SIZE: String(STORE_SIZE) },
    treatmentRate: 0.23,
  }));

async function downtimeScenario(scenario: DowntimeScenario): Promise<void> {
  const started = Date.now();
  const KEYS = scenario.keys;
  const world = await createWorld(cleanups);
  // A minimum sample no experiment reaches: nothing is decided, polling goes on.
  await activeOutcome(world, scenario.slug, 1_000_000_000, {
    pollInterval: `${INTERVAL_MS / 1000}s`,
    ...(scenario.query === undefined ? {} : { query: scenario.query }),
  });
  const launched = await launchExperiments(world, scenario.slug, KEYS);
  const snapshot = snapshotWriter(world, KEYS, scenario.treatmentRate);
  await snapshot();

  const env = scenario.env ?? {};
  let worker: WorkerProcess = await startWorkerProcess(world, cleanups, env);
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
    worker = await startWorkerProcess(world, cleanups, env);
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
  const { wrong: outOfOrder, lowestP } = await analysesOutOfOrder(world, launched);
  const { median, max } = medianMax(catchUps);
  const batched = scenario.query !== undefined;
  report({
    id: scenario.id,
    title: scenario.title,
    fault: `every worker stopped for ${MISSED} poll intervals (${INTERVAL_MS} ms each)${batched ? `; ${KEYS.length} experiments polled in one batched job, ${STORE_SIZE} per transaction` : ""}`,
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
      "analyses out of order": outOfOrder,
      "lowest always-valid p": Number(lowestP.toPrecision(3)),
    },
    ms: Date.now() - started,
  });
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(ingest.storedPoints).toBe(ingest.sourcePoints);
  // One analysis per snapshot: the first one and the missed ones of every trial.
  expect(ingest.analyses).toBe(KEYS.length * (1 + TRIALS * MISSED));
  expect(windowsInOnePoll).toBe(TRIALS * KEYS.length);
  expect(outOfOrder).toBe(0);
}
