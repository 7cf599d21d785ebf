/**
 * Batched polling against a real source: 100 running experiments of one
 * outcome, read through the `postgres` connector with the batched query form
 * (`:experiments`). The statements are counted at the source, by a TCP proxy in
 * front of the analytics database that reads the PostgreSQL protocol's Parse
 * and Query messages: one per batch for the signal and for the guardrail. The
 * points stored are then compared with those the one-experiment form stores.
 */
import { createServer, type Server, Socket } from "node:net";
import { signals } from "@outcome-runtime/db";
import {
  analyseExperiment,
  applyOutcome,
  connectorProvider,
  pollExperiment,
  pollExperimentBatches,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Cleanups,
  createWorld,
  launchExperiments,
  runCleanups,
  SOURCE_ENV,
  testSourceAccess,
  type World,
} from "./support/world";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups.splice(0)));

/** A TCP proxy to `target` counting the statements (Parse or simple Query messages) whose SQL names one of `tables`. */
async function countingProxy(target: URL, tables: readonly string[]): Promise<{ url: string; count: () => number }> {
  let counted = 0;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port || 5432), target.hostname);
    upstream.on("data", (d) => client.write(d));
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    let buffer = Buffer.alloc(0);
    let started = false;
    client.on("data", (d) => {
      upstream.write(d);
      buffer = Buffer.concat([buffer, d]);
      for (;;) {
        if (!started) {
          // StartupMessage, SSLRequest or GSSENCRequest: an int32 length, no type byte.
          if (buffer.length < 8) break;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) break;
          const code = buffer.readInt32BE(4);
          if (code !== 80877103 && code !== 80877104) started = true;
          buffer = buffer.subarray(length);
          continue;
        }
        if (buffer.length < 5) break;
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) break;
        const type = String.fromCharCode(buffer[0] as number);
        const body = buffer.subarray(5, 1 + length).toString("utf8");
        if ((type === "P" || type === "Q") && tables.some((t) => body.includes(t))) counted += 1;
        buffer = buffer.subarray(1 + length);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target.toString());
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return { url: url.toString(), count: () => counted };
}

const SIGNAL_BATCHED =
  "SELECT experiment_key AS experiment, arm, units::float8 AS units, sum, sum_sq, ts FROM source_points " +
  "WHERE experiment_key = ANY(:experiments) AND ts > :from AND ts <= :to ORDER BY ts";
const SIGNAL_SINGLE =
  "SELECT arm, units::float8 AS units, sum, sum_sq, ts FROM source_points " +
  "WHERE experiment_key = :experiment AND ts > :from AND ts <= :to ORDER BY ts";
const GUARD_BATCHED =
  "SELECT experiment_key AS experiment, arm, units::float8 AS units, errors AS sum, errors AS sum_sq, ts " +
  "FROM guard_points WHERE experiment_key = ANY(:experiments) AND ts > :from AND ts <= :to ORDER BY ts";
const GUARD_SINGLE =
  "SELECT arm, units::float8 AS units, errors AS sum, errors AS sum_sq, ts " +
  "FROM guard_points WHERE experiment_key = :experiment AND ts > :from AND ts <= :to ORDER BY ts";

function outcomeFile(slug: string, signalQuery: string, guardQuery: string): string {
  return `version: 1
id: ${slug}
name: Batched ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1m
  connector:
    type: postgres
    database_url_env: ${SOURCE_ENV}
    query: ${JSON.stringify(signalQuery)}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  guardrails:
    - metric: error_rate
      kind: proportion
      direction: decrease
      max_regression: 1%
      relative: false
      connector:
        type: postgres
        database_url_env: ${SOURCE_ENV}
        query: ${JSON.stringify(guardQuery)}
  kill:
    max_harm: 50%
    relative: true
experiment_defaults:
  min_sample_per_arm: 100000
  min_duration: 1d
  max_duration: 30d
  expected_effect: 10%
  arms:
    - name: control
      weight: 0.5
    - name: treatment
      weight: 0.5
`;
}

/** Every stored point of the experiments' primary and guardrail series, by experiment key, in a stable order. */
async function storedPoints(world: World, experiments: readonly { id: string; key: string }[]) {
  const out: Record<string, unknown[]> = {};
  for (const e of experiments) {
    const series = await signals.listSeriesOfExperiment(world.t.db, e.id);
    const rows = [];
    for (const s of series.sort((a, b) => a.role.localeCompare(b.role))) {
      for (const p of await signals.listPoints(world.t.db, s.id, null)) {
        rows.push({ role: s.role, arm: p.arm, ts: p.ts.toISOString(), units: p.units, sum: p.sum, sum_sq: p.sum_sq });
      }
    }
    out[e.key] = rows;
  }
  return out;
}

/** Every analysis of the experiments as stored, by experiment key, without ids and creation times. */
async function storedAnalyses(world: World, experiments: readonly { id: string; key: string }[]) {
  const out: Record<string, unknown[]> = {};
  for (const e of experiments) {
    out[e.key] = (await signals.listAnalyses(world.t.db, e.id)).map(({ id: _id, createdAt: _at, ...a }) => a);
  }
  return out;
}

/** Fills the source with three hourly cumulative snapshots per experiment and arm, for the signal and the guardrail. */
async function fillSource(world: World, keys: readonly string[]): Promise<void> {
  await world.source.query(
    "CREATE TABLE guard_points (experiment_key text, arm text, ts timestamptz, units bigint, errors float8)",
  );
  const t0 = Date.now() - 3 * 3600_000;
  // Different per experiment.
  await world.source.query(
    `INSERT INTO source_points (experiment_key, arm, ts, units, sum, sum_sq)
     SELECT k, arm, to_timestamp($2::float8 / 1000) + make_interval(hours => h),
            100 * h + i, 10 * h + (i % 7), 10 * h + (i % 7)
       FROM unnest($1::text[]) WITH ORDINALITY AS e(k, i), unnest(ARRAY['control', 'treatment']) AS arm,
            generate_series(1, 3) AS h`,
    [keys, t0],
  );
  await world.source.query(
    `INSERT INTO guard_points (experiment_key, arm, ts, units, errors)
     SELECT k, arm, to_timestamp($2::float8 / 1000) + make_interval(hours => h), 100 * h + i, h + (i % 3)
       FROM unnest($1::text[]) WITH ORDINALITY AS e(k, i), unnest(ARRAY['control', 'treatment']) AS arm,
            generate_series(1, 3) AS h`,
    [keys, t0],
  );
}

describe("batched polling", () => {
  it("reads 100 experiments with ⌈100 / batch size⌉ source statements per metric, storing what the one-experiment form stores", async () => {
    const world = await createWorld(cleanups);
    const keys = Array.from({ length: 100 }, (_, i) => `exp-${String(i).padStart(3, "0")}`);
    await fillSource(world, keys);
    const proxy = await countingProxy(new URL(world.sourceUrl), ["source_points", "guard_points"]);
    const connectors = connectorProvider({ db: world.t.db, access: testSourceAccess(proxy.url) });
    cleanups.push(() => connectors.close());
    const deps = { db: world.t.db, connectors };

    const applied = await applyOutcome(world.deps, world.seed.admin, {
      source: outcomeFile("batched", SIGNAL_BATCHED, GUARD_BATCHED),
    });
    const outcomeId = applied.outcome.id;
    await transitionOutcome(world.deps, world.seed.admin, "batched", "activate", null);
    const running = await launchExperiments(world, "batched", keys);
    expect(running).toHaveLength(100);

    // One round, batches of 30: ⌈100 / 30⌉ = 4 statements for the signal, 4 for the guardrail.
    const before = proxy.count();
    const round = await pollExperimentBatches(deps, outcomeId, { batchSize: 30, concurrency: 4 });
    expect(round).toMatchObject({ experiments: 100, requests: 8, failed: [] });
    expect(round.polled).toHaveLength(100);
    expect(proxy.count() - before).toBe(8);
    const batched = await storedPoints(world, running);
    expect(Object.values(batched).every((rows) => rows.length === 12)).toBe(true);
    // Stored and analysed in groups: one analysis per snapshot (3 hourly ones) of every experiment.
    expect(round.polled.every((p) => p.analysis.analysed === 3)).toBe(true);
    const batchedAnalyses = await storedAnalyses(world, running);
    expect(Object.values(batchedAnalyses).every((rows) => rows.length === 3)).toBe(true);

    // The same experiments polled one at a time with the one-experiment form store the same points.
    await applyOutcome(world.deps, world.seed.admin, {
      source: outcomeFile("batched", SIGNAL_SINGLE, GUARD_SINGLE),
    });
    await world.runtime.query(
      "DELETE FROM signal_points WHERE series_id IN (SELECT id FROM signal_series WHERE outcome_id = $1)",
      [outcomeId],
    );
    await world.runtime.query("UPDATE signal_series SET polled_until = NULL WHERE outcome_id = $1", [outcomeId]);
    await world.runtime.query(
      "DELETE FROM analyses WHERE experiment_id IN (SELECT id FROM experiments WHERE outcome_id = $1)",
      [outcomeId],
    );
    await world.runtime.query("UPDATE experiments SET stats_plan = NULL WHERE outcome_id = $1", [outcomeId]);
    const beforeSingle = proxy.count();
    for (const e of running) {
      await pollExperiment(deps, e.id);
      await analyseExperiment(world.deps, e.id);
    }
    expect(proxy.count() - beforeSingle).toBe(200);
    expect(await storedPoints(world, running)).toEqual(batched);
    // And the one-experiment analysis finds what the group's found, figure for figure.
    expect(await storedAnalyses(world, running)).toEqual(batchedAnalyses);
  }, 120_000);

  it("stores a group in one transaction and, when one experiment's store fails, analyses the rest of its group alone", async () => {
    const world = await createWorld(cleanups);
    const keys = Array.from({ length: 40 }, (_, i) => `exp-${String(i).padStart(3, "0")}`);
    await fillSource(world, keys);
    const connectors = connectorProvider({ db: world.t.db, access: testSourceAccess(world.sourceUrl) });
    cleanups.push(() => connectors.close());
    const deps = { db: world.t.db, connectors };
    const applied = await applyOutcome(world.deps, world.seed.admin, {
      source: outcomeFile("grouped", SIGNAL_BATCHED, GUARD_BATCHED),
    });
    await transitionOutcome(world.deps, world.seed.admin, "grouped", "activate", null);
    const running = await launchExperiments(world, "grouped", keys);
    const broken = running[7] as { id: string; key: string };
    // A real refusal by the runtime's database, for one experiment's points only.
    await world.runtime.query(`
      CREATE FUNCTION refuse_points() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.series_id IN (SELECT id FROM signal_series WHERE experiment_id = '${broken.id}') THEN
          RAISE EXCEPTION 'points of ${broken.key} refused';
        END IF;
        RETURN NEW;
      END $$`);
    await world.runtime.query(
      "CREATE TRIGGER refuse_points BEFORE INSERT ON signal_points FOR EACH ROW EXECUTE FUNCTION refuse_points()",
    );
    cleanups.push(async () => {
      await world.runtime.query("DROP TRIGGER IF EXISTS refuse_points ON signal_points").catch(() => undefined);
    });

    await expect(
      pollExperimentBatches(deps, applied.outcome.id, { batchSize: 40, storeSize: 20, concurrency: 2 }),
    ).rejects.toThrow(`points of ${broken.key} refused`);
    const analyses = await storedAnalyses(world, running);
    // Its group's 19 others and the other group's 20 are analysed; the refused experiment has nothing stored.
    expect(running.filter((e) => (analyses[e.key] ?? []).length === 3).map((e) => e.key)).toEqual(
      keys.filter((k) => k !== broken.key),
    );
    expect(analyses[broken.key]).toEqual([]);
    expect((await storedPoints(world, [broken]))[broken.key]).toEqual([]);

    // Once the database accepts it, the next round stores and analyses it, and nothing twice.
    await world.runtime.query("DROP TRIGGER refuse_points ON signal_points");
    const again = await pollExperimentBatches(deps, applied.outcome.id, { batchSize: 40, storeSize: 20 });
    expect(again.failed).toEqual([]);
    const after = await storedAnalyses(world, running);
    expect(Object.values(after).every((rows) => rows.length === 3)).toBe(true);
  }, 120_000);
  it("stores first, on their own, the experiments whose new rows point to harm", async () => {
    const world = await createWorld(cleanups);
    const keys = Array.from({ length: 30 }, (_, i) => `exp-${String(i).padStart(3, "0")}`);
    await fillSource(world, keys);
    // exp-027's treatment converts at a third of its control's rate (the signal must increase): harmful.
    await world.source.query(
      "UPDATE source_points SET sum = sum / 3, sum_sq = sum_sq / 3 WHERE experiment_key = 'exp-027' AND arm = 'treatment'",
    );
    const connectors = connectorProvider({ db: world.t.db, access: testSourceAccess(world.sourceUrl) });
    cleanups.push(() => connectors.close());
    const applied = await applyOutcome(world.deps, world.seed.admin, {
      source: outcomeFile("ordered", SIGNAL_BATCHED, GUARD_BATCHED),
    });
    await transitionOutcome(world.deps, world.seed.admin, "ordered", "activate", null);
    await launchExperiments(world, "ordered", keys);
    const stored: string[] = [];
    let beforeTheRest: string[] | null = null;
    const round = await pollExperimentBatches({ db: world.t.db, connectors }, applied.outcome.id, {
      batchSize: 30,
      storeSize: 10,
      concurrency: 1,
      onStored: (p) => {
        stored.push(p.experimentKey);
      },
      afterSuspects: async () => {
        beforeTheRest = [...stored];
      },
    });
    expect(round.polled).toHaveLength(30);
    // Acted on, and waited for, before any other experiment was stored.
    expect(beforeTheRest).toEqual(["exp-027"]);
    expect(stored).toHaveLength(30);
    // Its group of one is stored before the others' three groups of at most ten.
    expect(round.polled[0]?.experimentKey).toBe("exp-027");
    expect(new Set(round.polled.slice(1).map((p) => p.experimentKey)).size).toBe(29);
  }, 120_000);
});
