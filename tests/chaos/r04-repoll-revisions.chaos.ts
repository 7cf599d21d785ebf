/**
 * R4 and R20: re-reading windows already stored.
 *
 * R4: an outcome with `signal.lookback: 7d` re-reads the last seven days at
 * every poll. Ten polls of the same window, with 1 % of the source's values
 * revised between some of them: the row count never changes, exactly the
 * revised values are updated, each with one revision row holding the old and
 * new values, and identical values are never written.
 *
 * R20: the same over a window older than TimescaleDB's `compress_after` (30
 * days in migration 2026-12-06): with TimescaleDB its chunks are compressed
 * first, and the re-read must either succeed idempotently or fail with a clear
 * error, never store a duplicate. On plain Postgres the old window is re-read
 * from the plain table (what the scenario reports).
 *
 * Polls run in this process through the real use case (`pollExperiment`) and
 * the real `postgres` connector reading the source table.
 */
import { signals } from "@outcome-runtime/db";
import { connectorProvider, pollExperiment, type SignalDeps } from "@outcome-runtime/runtime";
import { afterAll, expect, it } from "vitest";
import {
  activeOutcome,
  type Cleanups,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  type SourceRow,
  sourceRows,
  storedPoints,
  type World,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function depsOf(world: World): SignalDeps {
  const connectors = connectorProvider({ db: world.t.db, access: world.deps.sources });
  cleanups.push(() => connectors.close());
  return { db: world.t.db, connectors };
}

/** Hourly cumulative snapshots of both arms over `hours` hours ending `endAgoMs` before now. */
function hourly(key: string, hours: number, endAgoMs: number): SourceRow[] {
  const end = Date.now() - endAgoMs;
  const rows: SourceRow[] = [];
  for (let h = hours - 1; h >= 0; h -= 1) {
    const ts = new Date(Math.floor((end - h * HOUR) / 1000) * 1000);
    const units = 100 * (hours - h);
    for (const arm of ["control", "treatment"])
      rows.push({ key, arm, ts, units, conversions: Math.round(units * 0.2) });
  }
  return rows;
}

/** Revise `n` random source rows of `key` (one more conversion each); returns them as `arm@ts`. */
async function revise(world: World, key: string, n: number): Promise<string[]> {
  const { rows } = await world.source.query<{ arm: string; ts: Date }>(
    `UPDATE source_points SET sum = sum + 1, sum_sq = sum_sq + 1
      WHERE ctid IN (SELECT ctid FROM source_points WHERE experiment_key = $1 ORDER BY random() LIMIT $2)
      RETURNING arm, ts`,
    [key, n],
  );
  return rows.map((r) => `${r.arm}@${r.ts.toISOString()}`);
}

async function primarySeriesId(world: World, experimentId: string): Promise<string> {
  const series = (await signals.listSeriesOfExperiment(world.t.db, experimentId)).find((s) => s.role === "primary");
  if (series === undefined) throw new Error("no primary series");
  return series.id;
}

interface RepollFigures {
  readonly polls: number;
  readonly revised: number;
  readonly updates: number;
  readonly revisionRows: number;
  readonly identicalWrites: number;
  readonly lost: number;
  readonly extra: number;
  readonly wrongRevisions: number;
}

/**
 * Store the window once, then poll it `polls` times, revising `perRound` source rows before every other poll.
 * Counts what each poll reported against what the source changed.
 */
async function repoll(world: World, key: string, experimentId: string, polls: number, perRound: number) {
  const deps = depsOf(world);
  const first = await pollExperiment(deps, experimentId);
  expect(first).toMatchObject({ status: "polled", updated: 0 });
  const seriesId = await primarySeriesId(world, experimentId);
  const revisedKeys: string[] = [];
  let updates = 0;
  let identicalWrites = 0;
  for (let i = 0; i < polls; i += 1) {
    const changed = i % 2 === 0 ? await revise(world, key, perRound) : [];
    revisedKeys.push(...changed);
    const result = await pollExperiment(deps, experimentId);
    if (result.status !== "polled") throw new Error(`poll ${i} did not run: ${JSON.stringify(result)}`);
    updates += result.updated;
    // A poll after no revision must write nothing.
    if (changed.length === 0) identicalWrites += result.updated + result.inserted;
    else expect(result.updated).toBe(new Set(changed).size);
  }
  const source = (await sourceRows(world, key)).map((r) => `${r.arm}@${r.ts.toISOString()}`);
  const stored = await storedPoints(world, experimentId);
  const storedSet = new Set(stored);
  const revisions = await signals.listPointRevisions(world.t.db, seriesId);
  // Every revision row says the source's value went up by one conversion at a point the source revised.
  const wrongRevisions = revisions.filter(
    (r) =>
      !revisedKeys.includes(`${r.arm}@${r.ts.toISOString()}`) ||
      r.after.sum !== r.before.sum + 1 ||
      r.after.units !== r.before.units,
  ).length;
  const points = await signals.listPoints(world.t.db, seriesId, null);
  const { rows: truth } = await world.source.query<{ arm: string; ts: Date; sum: number }>(
    "SELECT arm, ts, sum FROM source_points WHERE experiment_key = $1",
    [key],
  );
  const truthByKey = new Map(truth.map((r) => [`${r.arm}@${r.ts.toISOString()}`, r.sum]));
  const stale = points.filter((p) => truthByKey.get(`${p.arm}@${p.ts.toISOString()}`) !== p.sum).length;
  return {
    polls: polls + 1,
    revised: revisedKeys.length,
    updates,
    revisionRows: revisions.length,
    identicalWrites,
    lost: source.filter((p) => !storedSet.has(p)).length + stale,
    extra: stored.length - source.length,
    wrongRevisions,
  } satisfies RepollFigures;
}

it("R4: ten re-reads of a seven-day window with 1 % revised values", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-repoll", 1_000_000_000, { lookback: "7d" });
  const [experiment] = await launchExperiments(world, "chaos-repoll", ["repoll"]);
  // 7 days of hourly snapshots: 336 rows; 1 % of them is 3 or 4.
  await insertSource(world, hourly("repoll", 7 * 24, 60_000));
  const polls = scaled(10, 10);
  const f = await repoll(world, "repoll", experiment!.id, polls, 4);
  report({
    id: "R4",
    title: "Re-poll of an overlapping window, 1 % revised",
    fault: "the same 7-day window read again, values revised",
    faults: polls + f.revised,
    lost: f.lost,
    duplicated: f.extra + Math.max(0, f.revisionRows - f.revised) + f.identicalWrites,
    figures: {
      "polls of the window": f.polls,
      "values revised by the source": f.revised,
      "points updated": f.updates,
      "revision rows": f.revisionRows,
      "writes for identical values": f.identicalWrites,
      "wrong revision rows": f.wrongRevisions,
    },
    ms: Date.now() - started,
  });
  expect(f).toMatchObject({ lost: 0, extra: 0, identicalWrites: 0, wrongRevisions: 0 });
  expect(f.updates).toBe(f.revised);
  expect(f.revisionRows).toBe(f.revised);
});

it("R20: a re-read of a window older than compress_after", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const { rows } = await world.runtime.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'",
  );
  const timescale = Number(rows[0]!.n) > 0;
  await activeOutcome(world, "chaos-compressed", 1_000_000_000, { lookback: "60d" });
  const [experiment] = await launchExperiments(world, "chaos-compressed", ["old-window"]);
  // Two days of hourly snapshots ending 40 days ago: older than the 30-day compression policy.
  await insertSource(world, hourly("old-window", 48, 40 * DAY));
  let compressed = 0;
  let refused: string | null = null;
  const deps = depsOf(world);
  await pollExperiment(deps, experiment!.id);
  if (timescale) {
    const chunks = await world.runtime.query<{ c: string }>(
      "SELECT compress_chunk(c, if_not_compressed => true)::text AS c FROM show_chunks('signal_points', older_than => interval '30 days') c",
    );
    compressed = chunks.rows.length;
  }
  let f: RepollFigures | null = null;
  try {
    f = await repoll(world, "old-window", experiment!.id, scaled(10, 4), 1);
  } catch (error) {
    // Refused: acceptable only as a clear error (and then nothing may have been written twice).
    refused = error instanceof Error ? error.message : String(error);
  }
  const stored = await storedPoints(world, experiment!.id);
  const duplicates = stored.length - new Set(stored).size;
  report({
    id: "R20",
    title: "Re-read of a window older than compress_after",
    fault: timescale ? "re-read into compressed chunks" : "re-read of a 40-day-old window (plain Postgres)",
    faults: f?.polls ?? 1,
    lost: f?.lost ?? 0,
    duplicated: duplicates + (f?.extra ?? 0),
    figures: {
      storage: timescale ? "TimescaleDB hypertable" : "plain table (TimescaleDB not installed)",
      "chunks compressed": compressed,
      outcome: refused === null ? "re-read idempotently" : `refused: ${refused.slice(0, 120)}`,
      "values revised": f?.revised ?? 0,
      "revision rows": f?.revisionRows ?? 0,
    },
    ms: Date.now() - started,
  });
  expect(duplicates).toBe(0);
  if (refused === null) {
    expect(f).toMatchObject({ lost: 0, extra: 0, identicalWrites: 0, wrongRevisions: 0 });
  } else {
    // Only TimescaleDB may refuse (a version before 2.11 cannot update compressed rows), and only clearly.
    expect(timescale).toBe(true);
    expect(refused).toMatch(/compress/i);
  }
});
