/**
 * The two storage paths of signal points (docs/self-hosting.md, Storage), on
 * the real server: a TimescaleDB hypertable (7-day chunks, compression of
 * chunks older than 30 days, the `signal_points_daily` continuous aggregate)
 * where the server has TimescaleDB preloaded, plain tables (a BRIN index and a
 * plain view) everywhere. The same points are stored, revised and read back on
 * each; on TimescaleDB a window whose chunks are already compressed is
 * re-read and revised idempotently, and the continuous aggregate agrees with
 * the plain view. A server with TimescaleDB installed but not preloaded gets
 * plain tables and says so, with the fix, in the log and in /healthz.
 *
 * scripts/test.sh sets TEST_REQUIRE_TIMESCALEDB=1 when its setup installed
 * TimescaleDB: then a server without it fails here instead of quietly testing
 * one path.
 */
import { randomBytes } from "node:crypto";
import { createDb, type Db, migrateToLatest, signals } from "@outcome-runtime/db";
import { applyOutcome } from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  outcomeVariant,
  type SignalStorage,
  seedWorkspace,
  signalStorages,
  type TestDatabase,
  timescaleUsable,
} from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the private cluster's databases are created with plain pg
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { startApiProcess, startPrivatePostgres } from "./support/processes";
import { type Cleanups, runCleanups } from "./support/world";

const DAY = 86_400_000;

/** One statement on a test database, over a client of its own (the tests read catalogs the schema types lack). */
async function q<R extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}
const storages = signalStorages();
console.log(`signal storage paths tested on this server: ${storages.join(", ")}`);

/** An outcome-level series of a fresh workspace, to store points in. */
async function outcomeSeries(db: Db, slug: string): Promise<{ id: string; workspaceId: string }> {
  const seed = await seedWorkspace(db);
  const applied = await applyOutcome({ db }, seed.admin, { source: outcomeVariant(slug) });
  const series = await signals.ensureSeries(db, {
    workspaceId: seed.workspaceId,
    outcomeId: applied.outcome.id,
    experimentId: null,
    metric: "conversion_rate",
    role: "outcome",
    kind: "proportion",
  });
  return { id: series.id, workspaceId: seed.workspaceId };
}

/** Cumulative daily points per arm over `days` days ending yesterday (UTC noon): deterministic values. */
function dailyPoints(days: number, now: number): signals.PointInput[] {
  const points: signals.PointInput[] = [];
  const end = Math.floor(now / DAY) * DAY - DAY / 2;
  for (let d = days - 1; d >= 0; d--) {
    const ts = new Date(end - d * DAY);
    const day = days - d;
    for (const [arm, rate] of [
      ["control", 0.1],
      ["treatment", 0.12],
    ] as const) {
      const units = 1000 * day;
      const conversions = Math.round(units * rate);
      points.push({ arm, ts, units, sum: conversions, sum_sq: conversions });
    }
  }
  return points;
}

describe.each(storages)("signal storage on %s", (storage: SignalStorage) => {
  let t: TestDatabase;
  afterAll(async () => {
    await t?.drop();
  });

  it("is what the migration recorded, with the path's indexes, policies and daily roll-up", async () => {
    t = await createTestDatabase({ storage });
    expect(await recordedStorage(t.db)).toBe(storage);
    const daily = await q<{ kind: string }>(
      t.url,
      `
      SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized' ELSE c.relkind::text END AS kind
        FROM pg_class c WHERE c.relname = 'signal_points_daily'`,
    );
    if (storage === "plain") {
      expect(daily[0]?.kind).toBe("view");
      const brin = await q<{ n: number }>(
        t.url,
        `
        SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'signal_points' AND indexdef LIKE '%USING brin%'`,
      );
      expect(brin[0]?.n).toBe(1);
      const ext = await q<{
        n: number;
      }>(t.url, `SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`);
      expect(ext[0]?.n).toBe(0);
      return;
    }
    const dim = await q<{ interval: string }>(
      t.url,
      `
      SELECT time_interval::text AS interval FROM timescaledb_information.dimensions
       WHERE hypertable_name = 'signal_points' AND column_name = 'ts'`,
    );
    expect(dim[0]?.interval).toBe("7 days");
    // Every read names its series: the primary key serves them, and no `ts` index tempts the planner into walking
    // every series' points (migration 2026-12-18T00-00-hypertable-ts-index).
    const indexes = await q<{ indexname: string }>(
      t.url,
      "SELECT indexname FROM pg_indexes WHERE tablename = 'signal_points'",
    );
    expect(indexes.map((i) => i.indexname)).toEqual(["signal_points_pkey"]);
    const segment = await q<{ attname: string }>(
      t.url,
      `
      SELECT attname FROM timescaledb_information.compression_settings
       WHERE hypertable_name = 'signal_points' AND segmentby_column_index IS NOT NULL
       ORDER BY segmentby_column_index`,
    );
    expect(segment.map((r) => r.attname)).toEqual(["series_id", "arm"]);
    const jobs = await q<{ proc_name: string; config: Record<string, unknown> }>(
      t.url,
      `
      SELECT proc_name, config FROM timescaledb_information.jobs
       WHERE hypertable_name IN ('signal_points', 'signal_points_daily')
       ORDER BY proc_name`,
    );
    const compression = jobs.find((j) => j.proc_name === "policy_compression");
    expect(compression?.config.compress_after).toBe("30 days");
    expect(jobs.map((j) => j.proc_name)).toContain("policy_refresh_continuous_aggregate");
    const cagg = await q<{ n: number }>(
      t.url,
      `
      SELECT count(*)::int AS n FROM timescaledb_information.continuous_aggregates
       WHERE view_name = 'signal_points_daily' AND NOT materialized_only`,
    );
    expect(cagg[0]?.n).toBe(1);
  });

  it("stores 60 days, then re-reads and revises a window older than compress_after idempotently", async () => {
    const series = await outcomeSeries(t.db, `storage-${storage}`);
    const now = Date.now();
    const points = dailyPoints(60, now);
    const first = await signals.upsertPoints(t.db, series, points, new Date(now));
    expect(first).toEqual({ inserted: 120, updated: 0, unchanged: 0 });

    let compressed = 0;
    if (storage === "timescaledb") {
      const chunks = await q<{ n: number }>(t.url, `SELECT count(*)::int AS n FROM show_chunks('signal_points')`);
      expect(chunks[0]?.n).toBeGreaterThanOrEqual(9);
      // What the policy would do on its schedule, now: every chunk entirely older than 30 days.
      const done = await q<{ chunk: string }>(
        t.url,
        `
        SELECT compress_chunk(c)::text AS chunk FROM show_chunks('signal_points', older_than => now() - INTERVAL '30 days') c`,
      );
      compressed = done.length;
      expect(compressed).toBeGreaterThanOrEqual(3);
      const state = await q<{ n: number }>(
        t.url,
        `
        SELECT count(*)::int AS n FROM timescaledb_information.chunks
         WHERE hypertable_name = 'signal_points' AND is_compressed`,
      );
      expect(state[0]?.n).toBe(compressed);
    }

    // The same window again: nothing written.
    const again = await signals.upsertPoints(t.db, series, points, new Date(now + 1000));
    expect(again).toEqual({ inserted: 0, updated: 0, unchanged: 120 });

    // The source revises one old value (45 days ago) and one recent one: two updates, two revision rows.
    const revisedOld = points.findIndex((p) => p.ts.getTime() < now - 44 * DAY && p.arm === "treatment");
    const revisedNew = points.length - 1;
    const revised = points.map((p, i) =>
      i === revisedOld || i === revisedNew ? { ...p, sum: p.sum + 7, sum_sq: p.sum_sq + 7 } : p,
    );
    const third = await signals.upsertPoints(t.db, series, revised, new Date(now + 2000));
    expect(third).toEqual({ inserted: 0, updated: 2, unchanged: 118 });
    const revisions = await q<{ n: number }>(
      t.url,
      `
      SELECT count(*)::int AS n FROM signal_point_revisions WHERE series_id = $1`,
      [series.id],
    );
    expect(revisions[0]?.n).toBe(2);
    const stored = await signals.listPoints(t.db, series.id, null);
    expect(stored).toHaveLength(120);
    const old = stored.find((p) => p.arm === "treatment" && p.ts.getTime() === points[revisedOld]!.ts.getTime());
    expect(old?.sum).toBe(points[revisedOld]!.sum + 7);

    // And once more with the revised values: idempotent.
    const fourth = await signals.upsertPoints(t.db, series, revised, new Date(now + 3000));
    expect(fourth).toEqual({ inserted: 0, updated: 0, unchanged: 120 });
    console.log(
      `${storage}: 120 points over 60 days, ${compressed} chunks compressed, 2 revisions, re-reads idempotent`,
    );
  });
});

describe.runIf(storages.includes("timescaledb"))("the continuous aggregate and the plain view", () => {
  it("give the same daily rows for the same points, before and after a refresh", async () => {
    const dbs = await Promise.all([
      createTestDatabase({ storage: "plain" }),
      createTestDatabase({ storage: "timescaledb" }),
    ]);
    try {
      const now = Date.now();
      const points = dailyPoints(20, now);
      // Several points a day: the daily row keeps the day's last cumulative point.
      const extra = points.map((p) => ({ ...p, ts: new Date(p.ts.getTime() - 3 * 3_600_000), units: p.units - 10 }));
      const read = async (url: string, id: string) =>
        (
          await q<{ arm: string; day: Date; last_ts: Date; units: string; sum: number; sum_sq: number }>(
            url,
            `
            SELECT arm, day, last_ts, units::text AS units, sum, sum_sq FROM signal_points_daily
             WHERE series_id = $1 ORDER BY arm, day`,
            [id],
          )
        ).map((r) => ({ ...r, day: r.day.toISOString(), last_ts: r.last_ts.toISOString() }));
      const rows: Record<string, unknown>[][] = [];
      for (const t of dbs) {
        const series = await outcomeSeries(t.db, "daily-agrees");
        await signals.upsertPoints(t.db, series, [...extra, ...points], new Date(now));
        rows.push(await read(t.url, series.id));
      }
      expect(rows[0]).toHaveLength(40);
      expect(rows[1]).toEqual(rows[0]);
      // Materialised (not only the real-time union): refresh, then compare again.
      const tsdb = dbs[1]!;
      await q(tsdb.url, `CALL refresh_continuous_aggregate('signal_points_daily', NULL, NULL)`);
      const series = await tsdb.db.selectFrom("signal_series").select("id").executeTakeFirstOrThrow();
      expect(await read(tsdb.url, series.id)).toEqual(rows[1]);
      const materialised = await q<{ n: number }>(
        tsdb.url,
        `
        SELECT count(*)::int AS n FROM _timescaledb_catalog.continuous_agg ca
          JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id
         WHERE ca.user_view_name = 'signal_points_daily'`,
      );
      expect(materialised[0]?.n).toBe(1);
    } finally {
      await Promise.all(dbs.map((d) => d.drop()));
    }
  });
});

describe("a server with TimescaleDB installed but not preloaded", () => {
  const cleanups: Cleanups = [];
  afterAll(() => runCleanups(cleanups));

  it("gets plain tables, and the API says why with the fix, once in its log and in /healthz", async () => {
    const cluster = await startPrivatePostgres(cleanups);
    const admin = new pg.Client({ connectionString: cluster.url("postgres") });
    await admin.connect();
    const probe = await admin.query<{ available: boolean; preload: string }>(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
              current_setting('shared_preload_libraries') AS preload`,
    );
    const name = `ort_np_${randomBytes(4).toString("hex")}`;
    await admin.query(`CREATE DATABASE ${name}`);
    // And one owned by a role that is no superuser, as the compose file runs the runtime: it may not read
    // shared_preload_libraries.
    const owned = `${name}_role`;
    await admin.query("CREATE ROLE outcome_runtime_np LOGIN");
    await admin.query(`CREATE DATABASE ${owned} OWNER outcome_runtime_np`);
    await admin.end();
    // A fresh cluster preloads nothing; the binaries (and TimescaleDB, once installed) are the machine's.
    expect(probe.rows[0]?.preload).not.toContain("timescaledb");
    const installed = probe.rows[0]?.available === true;
    if (process.env.TEST_REQUIRE_TIMESCALEDB === "1") expect(installed).toBe(true);

    const db = createDb({ url: cluster.url(name), max: 2 });
    try {
      const report = await migrateToLatest(db);
      expect(report.signalStorage).toBe("plain");
      const recorded = await db
        .selectFrom("settings")
        .select("value")
        .where("key", "=", "signal_storage")
        .executeTakeFirst();
      expect(recorded?.value).toEqual({
        mode: "plain",
        reason: installed ? "timescaledb_not_preloaded" : "timescaledb_not_installed",
      });
      if (!installed) {
        expect(report.signalStorageNote).toBeNull();
        return;
      }
      expect(report.signalStorageNote).toMatchObject({ reason: "timescaledb_not_preloaded" });
      expect(report.signalStorageNote?.fix).toContain("shared_preload_libraries = 'timescaledb'");
      const ownedUrl = new URL(cluster.url(owned));
      ownedUrl.username = "outcome_runtime_np";
      const asRole = createDb({ url: ownedUrl.toString(), max: 1 });
      try {
        const byRole = await migrateToLatest(asRole);
        expect(byRole.signalStorage).toBe("plain");
        expect(byRole.signalStorageNote?.fix).toContain("shared_preload_libraries = 'timescaledb'");
      } finally {
        await asRole.destroy();
      }
      // The connection survived (no FATAL): the database answers, with no extension created.
      const ext = await q<{
        n: number;
      }>(cluster.url(name), `SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`);
      expect(ext[0]?.n).toBe(0);
    } finally {
      await db.destroy();
    }

    const api = await startApiProcess(
      {
        DATABASE_URL: cluster.url(name),
        REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
        OUTCOME_RUNTIME_API_KEY: `ort_${randomBytes(24).toString("hex")}`,
        QUEUE_PREFIX: `np-${randomBytes(4).toString("hex")}`,
      },
      cleanups,
    );
    const health = (await (await fetch(`${api.base}/healthz`)).json()) as {
      signalStorage: string;
      signalStorageNote: { reason: string; message: string; fix: string } | null;
    };
    expect(health.signalStorage).toBe("plain");
    expect(health.signalStorageNote?.reason).toBe("timescaledb_not_preloaded");
    expect(health.signalStorageNote?.fix).toMatch(/shared_preload_libraries = 'timescaledb'.*restart PostgreSQL/);
    const said = api
      .output()
      .split("\n")
      .filter((line) => line.includes("timescaledb_not_preloaded"));
    expect(said).toHaveLength(1);
  });
});

describe("the storage paths of this server", () => {
  it("are the ones it can run; with the setup's TimescaleDB, both, and TimescaleDB sends no telemetry", async () => {
    expect(storages).toEqual((await timescaleUsable()) ? ["plain", "timescaledb"] : ["plain"]);
    if (process.env.TEST_REQUIRE_TIMESCALEDB !== "1") return;
    expect(storages).toEqual(["plain", "timescaledb"]);
    const t = await createTestDatabase({ storage: "timescaledb" });
    try {
      const level = await q<{
        level: string;
      }>(t.url, `SELECT current_setting('timescaledb.telemetry_level') AS level`);
      expect(level[0]?.level).toBe("off");
    } finally {
      await t.drop();
    }
  });
});

async function recordedStorage(db: Db): Promise<string> {
  const row = await db.selectFrom("settings").select("value").where("key", "=", "signal_storage").executeTakeFirst();
  return (row?.value as { mode?: string } | undefined)?.mode ?? "(none recorded)";
}
