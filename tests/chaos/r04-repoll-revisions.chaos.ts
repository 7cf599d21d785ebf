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
 * R4b: R4 with the outcome's query in the batched form (`:experiments`): five
 * experiments read in one request per poll and stored in groups of two
 * (`storeSize`), each group's points upserted and its new snapshots analysed in
 * one transaction. A twin outcome with the one-experiment query reads the same
 * values (the same revisions, the same new snapshot each round) and is polled
 * and analysed one experiment at a time, as the worker's `poll-experiment` and
 * `analyse-experiment` jobs do. Pass: every revision updated exactly one point
 * and wrote exactly one revision row (old and new values checked), no write for
 * an unchanged value, every new snapshot stored and analysed once, and every
 * analysis (its figures, decision and carry) equal to the twin's: a revised
 * value reaches the next analysis as it does in the one-experiment form.
 *
 * Polls run in this process through the real use cases (`pollExperiment`,
 * `analyseExperiment`, `pollExperimentBatches`) and the real `postgres`
 * connector reading the source table.
 */
import { signals } from "@outcome-runtime/db";
import {
  analyseExperiment,
  connectorProvider,
  pollExperiment,
  pollExperimentBatches,
  type SignalDeps,
} from "@outcome-runtime/runtime";
import { afterAll, expect, it } from "vitest";
import {
  activeOutcome,
  BATCHED_SOURCE_QUERY,
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

/** Experiments of R4b's batched outcome (and of its one-experiment twin). */
const BATCHED_EXPERIMENTS = 5;
/** R4b's store groups: two experiments per transaction, so one poll commits three groups. */
const STORE_SIZE = 2;

/**
 * Revise `n` random rows of `template` and the newest control row (the totals the next analysis starts
 * from), one more conversion each, and the same rows of every key in `keys` (`template` among them).
 *
 * @returns per key, the revised rows as `arm@ts`.
 */
async function reviseAlike(world: World, template: string, keys: readonly string[], n: number) {
  const { rows } = await world.source.query<{ experiment_key: string; arm: string; ts: Date }>(
    `WITH picked AS (
       (SELECT arm, ts FROM source_points WHERE experiment_key = $1 ORDER BY random() LIMIT $3)
       UNION
       (SELECT arm, ts FROM source_points WHERE experiment_key = $1 AND arm = 'control' ORDER BY ts DESC LIMIT 1))
     UPDATE source_points s SET sum = s.sum + 1, sum_sq = s.sum_sq + 1
       FROM picked WHERE s.experiment_key = ANY($2) AND s.arm = picked.arm AND s.ts = picked.ts
     RETURNING s.experiment_key, s.arm, s.ts`,
    [template, keys, n],
  );
  const byKey = new Map<string, string[]>(keys.map((k) => [k, []]));
  for (const r of rows) byKey.get(r.experiment_key)?.push(`${r.arm}@${r.ts.toISOString()}`);
  return byKey;
}

/** An analysis as both forms must write it: everything but its ids and creation time. */
function analysisFigures(a: Awaited<ReturnType<typeof signals.listAnalyses>>[number]) {
  const { id: _id, experimentId: _e, workspaceId: _w, createdAt: _c, ...figures } = a;
  return { ...figures, ts: a.ts.toISOString() };
}

it(`R4b: ten batched re-reads of a seven-day window with revised values, stored ${STORE_SIZE} experiments per transaction`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const deps = depsOf(world);
  const batchedOutcome = await activeOutcome(world, "chaos-repoll-b", 1_000_000_000, {
    lookback: "7d",
    query: BATCHED_SOURCE_QUERY,
  });
  await activeOutcome(world, "chaos-repoll-one", 1_000_000_000, { lookback: "7d" });
  const batchedKeys = Array.from({ length: BATCHED_EXPERIMENTS }, (_, i) => `repoll-b-${i}`);
  const twinKeys = batchedKeys.map((k) => k.replace("repoll-b-", "repoll-one-"));
  const batched = await launchExperiments(world, "chaos-repoll-b", batchedKeys);
  const twins = await launchExperiments(world, "chaos-repoll-one", twinKeys);
  const allKeys = [...batchedKeys, ...twinKeys];
  // The same seven days of hourly snapshots under every key, ending an hour ago; before each poll one
  // snapshot a minute later. After a revision it holds the treatment only: its analysis carries the control's
  // newest totals forward, the very row just revised, so a revised value reaches the analysis.
  const HOURS = 7 * 24;
  const window = hourly("template", HOURS, HOUR);
  await insertSource(
    world,
    allKeys.flatMap((key) => window.map((r) => ({ ...r, key }))),
  );
  const lastTs = window.at(-1)!.ts.getTime();
  const addSnapshot = async (round: number, arms: readonly string[]) => {
    const ts = new Date(lastTs + (round + 1) * 60_000);
    const units = 100 * (HOURS + round + 1);
    await insertSource(
      world,
      allKeys.flatMap((key) => arms.map((arm) => ({ key, arm, ts, units, conversions: Math.round(units * 0.2) }))),
    );
  };
  /** One round of the one-experiment form: each twin polled, then analysed (its two jobs). */
  const pollTwins = async () => {
    for (const e of twins) {
      expect(await pollExperiment(deps, e.id)).toMatchObject({ status: "polled" });
      await analyseExperiment(deps, e.id);
    }
  };
  const pollBatched = async () => {
    const result = await pollExperimentBatches(deps, batchedOutcome, { storeSize: STORE_SIZE });
    expect(result.failed).toEqual([]);
    expect(result.requests).toBe(1);
    expect(result.polled.map((p) => p.experimentKey).sort()).toEqual([...batchedKeys].sort());
    return new Map(result.polled.map((p) => [p.experimentKey, p]));
  };

  const first = await pollBatched();
  await pollTwins();
  for (const p of first.values()) expect(p).toMatchObject({ inserted: 2 * HOURS, updated: 0 });

  const polls = scaled(10, 10);
  const revisedKeys = new Map<string, string[]>(batchedKeys.map((k) => [k, []]));
  let revised = 0;
  let updates = 0;
  let identicalWrites = 0;
  let missedInserts = 0;
  let revisedControlsAnalysed = 0;
  for (let i = 0; i < polls; i += 1) {
    const revising = i % 2 === 0;
    const changed = revising ? await reviseAlike(world, batchedKeys[0]!, allKeys, 3) : new Map<string, string[]>();
    const arms = revising ? ["treatment"] : ["control", "treatment"];
    await addSnapshot(i, arms);
    const polled = await pollBatched();
    await pollTwins();
    for (const key of batchedKeys) {
      const mine = changed.get(key) ?? [];
      revisedKeys.get(key)!.push(...mine);
      revised += mine.length;
      const p = polled.get(key)!;
      updates += p.updated;
      // Exactly the revised values are updated; the rest of the window, read again, writes nothing.
      if (mine.length === 0) identicalWrites += p.updated;
      else expect(p.updated).toBe(new Set(mine).size);
      // The new snapshot's rows; and its one analysis, in the transaction that stored it.
      if (p.inserted !== arms.length || p.analysis.analysed !== 1) missedInserts += 1;
    }
    if (!revising) continue;
    // The new snapshot's analysis read the control's revised totals (the source's value now).
    for (const e of batched) {
      const { rows } = await world.source.query<{ sum: number }>(
        "SELECT sum FROM source_points WHERE experiment_key = $1 AND arm = 'control' ORDER BY ts DESC LIMIT 1",
        [e.key],
      );
      const newest = (await signals.listAnalyses(world.t.db, e.id, 1))[0];
      if (newest?.arms.control?.sum === rows[0]!.sum) revisedControlsAnalysed += 1;
    }
  }

  let lost = 0;
  let extra = 0;
  let revisionRows = 0;
  let wrongRevisions = 0;
  let missingAnalyses = 0;
  let duplicateAnalyses = 0;
  let analyses = 0;
  let differing = 0;
  const differences: string[] = [];
  for (const [i, e] of batched.entries()) {
    const source = (await sourceRows(world, e.key)).map((r) => `${r.arm}@${r.ts.toISOString()}`);
    const stored = await storedPoints(world, e.id);
    const storedSet = new Set(stored);
    const seriesId = await primarySeriesId(world, e.id);
    const revisions = await signals.listPointRevisions(world.t.db, seriesId);
    const mine = revisedKeys.get(e.key)!;
    revisionRows += revisions.length;
    wrongRevisions += revisions.filter(
      (r) =>
        !mine.includes(`${r.arm}@${r.ts.toISOString()}`) ||
        r.after.sum !== r.before.sum + 1 ||
        r.after.units !== r.before.units,
    ).length;
    const { rows: truth } = await world.source.query<{ arm: string; ts: Date; sum: number }>(
      "SELECT arm, ts, sum FROM source_points WHERE experiment_key = $1",
      [e.key],
    );
    const truthByKey = new Map(truth.map((r) => [`${r.arm}@${r.ts.toISOString()}`, r.sum]));
    const points = await signals.listPoints(world.t.db, seriesId, null);
    const stale = points.filter((p) => truthByKey.get(`${p.arm}@${p.ts.toISOString()}`) !== p.sum).length;
    lost += source.filter((p) => !storedSet.has(p)).length + stale;
    extra += stored.length - source.length;

    const written = await signals.listAnalyses(world.t.db, e.id, 100_000);
    const snapshots = new Set(truth.map((r) => r.ts.toISOString()));
    const analysedTs = written.map((a) => a.ts.toISOString());
    analyses += written.length;
    duplicateAnalyses += analysedTs.length - new Set(analysedTs).size;
    missingAnalyses += [...snapshots].filter((ts) => !analysedTs.includes(ts)).length;
    // The one-experiment form, over the same source history: the same analyses, figure for figure.
    const twin = (await signals.listAnalyses(world.t.db, twins[i]!.id, 100_000)).map(analysisFigures);
    const ours = written.map(analysisFigures);
    for (let k = 0; k < Math.max(ours.length, twin.length); k += 1) {
      if (JSON.stringify(ours[k]) !== JSON.stringify(twin[k])) {
        differing += 1;
        if (differences.length < 3)
          differences.push(`${e.key} #${k}: ${JSON.stringify({ ours: ours[k], twin: twin[k] })}`);
      }
    }
  }

  report({
    id: "R4b",
    title: "Re-poll of an overlapping window, 1 % revised, batched polls",
    fault: `as R4, ${BATCHED_EXPERIMENTS} experiments in one batched read, stored ${STORE_SIZE} per transaction; a new snapshot each poll`,
    faults: polls + revised,
    lost: lost + missingAnalyses + missedInserts,
    duplicated: extra + Math.max(0, revisionRows - revised) + identicalWrites + duplicateAnalyses,
    figures: {
      experiments: BATCHED_EXPERIMENTS,
      "store groups per poll": Math.ceil(BATCHED_EXPERIMENTS / STORE_SIZE),
      "polls of the window": polls + 1,
      "values revised by the source": revised,
      "points updated": updates,
      "revision rows": revisionRows,
      "writes for identical values": identicalWrites,
      "wrong revision rows": wrongRevisions,
      analyses,
      "analyses of a revised control": revisedControlsAnalysed,
      "analyses differing from the one-experiment form": differing,
    },
    ms: Date.now() - started,
  });
  expect(differences).toEqual([]);
  expect({ lost, extra, identicalWrites, wrongRevisions, missingAnalyses, duplicateAnalyses, missedInserts }).toEqual({
    lost: 0,
    extra: 0,
    identicalWrites: 0,
    wrongRevisions: 0,
    missingAnalyses: 0,
    duplicateAnalyses: 0,
    missedInserts: 0,
  });
  expect(revised).toBeGreaterThan(0);
  expect(updates).toBe(revised);
  expect(revisionRows).toBe(revised);
  expect(revisedControlsAnalysed).toBe(BATCHED_EXPERIMENTS * Math.ceil(polls / 2));
  // One analysis per snapshot: the window's and one new snapshot per poll, per experiment.
  expect(analyses).toBe(BATCHED_EXPERIMENTS * (HOURS + polls));
});

it("R20: a re-read of a window older than compress_after", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  // The storage the migration chose (scripts/test.sh runs this scenario on both; TEST_SIGNAL_STORAGE).
  const { rows } = await world.runtime.query<{ mode: string }>(
    "SELECT value->>'mode' AS mode FROM settings WHERE key = 'signal_storage'",
  );
  const timescale = rows[0]?.mode === "timescaledb";
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
    // The window's chunks really are compressed before the re-read.
    expect(compressed).toBeGreaterThan(0);
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
      storage: timescale ? "TimescaleDB hypertable" : "plain table",
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
