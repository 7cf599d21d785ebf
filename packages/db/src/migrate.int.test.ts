import { createEmptyDatabase } from "@outcome-runtime/testing";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "./database";
import { migrateToLatest, signalStorageMode } from "./migrate";

describe("migrations", () => {
  let empty: Awaited<ReturnType<typeof createEmptyDatabase>>;
  beforeAll(async () => {
    empty = await createEmptyDatabase();
  });
  afterAll(async () => {
    await empty.drop();
  });

  it("apply once when several processes migrate at the same time (advisory lock)", async () => {
    const handles = Array.from({ length: 4 }, () => createDb({ url: empty.url, max: 2 }));
    try {
      const reports = await Promise.all(handles.map((db) => migrateToLatest(db)));
      const applied = reports.flatMap((r) => r.applied);
      // Each migration applied by exactly one of the four, in order.
      expect(applied).toEqual([
        "2026-11-22T00-00-initial",
        "2026-12-01T00-00-signals",
        "2026-12-01T01-00-series-lookups",
        "2026-12-02T00-00-llm",
        "2026-12-03T00-00-gates",
        "2026-12-04T00-00-agent-requests",
        "2026-12-05T00-00-dashboard",
      ]);
      // A later start finds nothing to do.
      const again = await migrateToLatest(handles[0]!);
      expect(again.applied).toEqual([]);
    } finally {
      await Promise.all(handles.map((db) => db.destroy()));
    }
  });

  it("record the signal storage mode and index signal points accordingly", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    try {
      const hasTimescale = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`.execute(db);
      const mode = await signalStorageMode(db);
      expect(mode).toBe(hasTimescale.rows[0]?.n ? "timescaledb" : "plain");
      const indexes = await sql<{ indexdef: string }>`
        SELECT indexdef FROM pg_indexes WHERE tablename = 'signal_points'`.execute(db);
      const defs = indexes.rows.map((r) => r.indexdef);
      // The primary key that makes re-polls idempotent.
      expect(defs.some((d) => /UNIQUE INDEX signal_points_pkey .*\(series_id, arm, ts\)/.test(d))).toBe(true);
      if (mode === "plain") expect(defs.some((d) => /USING brin \(ts\)/.test(d))).toBe(true);
    } finally {
      await db.destroy();
    }
  });

  it("every tenant table carries workspace_id", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    try {
      const rows = await sql<{ table_name: string }>`
        SELECT t.table_name FROM information_schema.tables t
         WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND t.table_name NOT IN ('settings', 'workspaces', 'kysely_migration', 'kysely_migration_lock')
           AND NOT EXISTS (SELECT 1 FROM information_schema.columns c
                            WHERE c.table_name = t.table_name AND c.column_name = 'workspace_id')`.execute(db);
      expect(rows.rows.map((r) => r.table_name)).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});
