import { createEmptyDatabase } from "@outcome-runtime/testing";
import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "./database";
import { migrateToLatest, signalStorageMode } from "./migrate";
import * as apiKeyScopes from "./migrations/2026-12-07T00-00-api-key-scopes";
import * as analysisNames from "./migrations/2026-12-11T00-00-analysis-names";
import * as ratioMetrics from "./migrations/2026-12-13T00-00-ratio-metrics";
import * as viewerRole from "./migrations/2026-12-19T00-00-viewer-role";

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
        "2026-12-06T00-00-timescale-policies",
        "2026-12-07T00-00-api-key-scopes",
        "2026-12-08T00-00-point-revisions",
        "2026-12-09T00-00-workspace-secrets",
        "2026-12-09T01-00-sessions",
        "2026-12-09T02-00-imports",
        "2026-12-10T00-00-job-requests",
        "2026-12-11T00-00-analysis-names",
        "2026-12-11T01-00-secondary-metrics",
        "2026-12-12T00-00-point-covariates",
        "2026-12-13T00-00-ratio-metrics",
        "2026-12-13T01-00-achievement-gates",
        "2026-12-14T00-00-auth-change-notify",
        "2026-12-15T00-00-source-health",
        "2026-12-16T00-00-flag-rollouts",
        "2026-12-17T00-00-learning-embeddings",
        "2026-12-18T00-00-hypertable-ts-index",
        "2026-12-19T00-00-viewer-role",
        "2026-12-19T01-00-members",
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

  it("roll signal points up per series, arm and UTC day in signal_points_daily (a view on plain Postgres)", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    try {
      const policies = await sql<{ value: { compression: boolean; retention: null; daily: string } }>`
        SELECT value FROM settings WHERE key = 'signal_policies'`.execute(db);
      const mode = await signalStorageMode(db);
      expect(policies.rows[0]?.value).toEqual(
        mode === "plain"
          ? { compression: false, retention: null, daily: "view" }
          : { compression: true, retention: null, daily: "continuous_aggregate" },
      );
      // A workspace, outcome and series to hang points on, inside a transaction that is rolled back.
      await sql`BEGIN`.execute(db);
      try {
        const ws = await sql<{ id: string }>`
          INSERT INTO workspaces (slug, name) VALUES ('daily-view', 'Daily view') RETURNING id`.execute(db);
        const workspaceId = ws.rows[0]!.id;
        const series = await sql<{ id: string }>`
          SELECT gen_random_uuid() AS id`.execute(db);
        const seriesId = series.rows[0]!.id;
        // The view reads signal_points only: the foreign key to signal_series is deferred out of the way.
        await sql`SET LOCAL session_replication_role = replica`.execute(db);
        await sql`
          INSERT INTO signal_points (series_id, arm, ts, workspace_id, units, sum, sum_sq) VALUES
            (${seriesId}, 'control',   '2026-11-30T08:00:00Z', ${workspaceId}, 100, 10, 10),
            (${seriesId}, 'control',   '2026-11-30T23:00:00Z', ${workspaceId}, 200, 21, 21),
            (${seriesId}, 'treatment', '2026-11-30T23:00:00Z', ${workspaceId}, 210, 30, 30),
            (${seriesId}, 'control',   '2026-12-01T00:30:00Z', ${workspaceId}, 250, 26, 26)`.execute(db);
        const rows = await sql<{ arm: string; day: Date; last_ts: Date; units: string; sum: number }>`
          SELECT arm, day, last_ts, units, sum FROM signal_points_daily
           WHERE series_id = ${seriesId} ORDER BY arm, day`.execute(db);
        expect(
          rows.rows.map((r) => [r.arm, r.day.toISOString(), r.last_ts.toISOString(), Number(r.units), r.sum]),
        ).toEqual([
          ["control", "2026-11-30T00:00:00.000Z", "2026-11-30T23:00:00.000Z", 200, 21],
          ["control", "2026-12-01T00:00:00.000Z", "2026-12-01T00:30:00.000Z", 250, 26],
          ["treatment", "2026-11-30T00:00:00.000Z", "2026-11-30T23:00:00.000Z", 210, 30],
        ]);
      } finally {
        await sql`ROLLBACK`.execute(db);
      }
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
           AND t.table_name NOT IN ('settings', 'workspaces', 'members', 'kysely_migration', 'kysely_migration_lock')
           AND NOT EXISTS (SELECT 1 FROM information_schema.columns c
                            WHERE c.table_name = t.table_name AND c.column_name = 'workspace_id')`.execute(db);
      expect(rows.rows.map((r) => r.table_name)).toEqual([]);
    } finally {
      await db.destroy();
    }
  });

  it("give the API keys that exist their role's scopes, and allow no scope beyond the role", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    try {
      // Inside a transaction that is rolled back: keys made before the migration, then the migration again.
      await sql`BEGIN`.execute(db);
      try {
        await apiKeyScopes.down(db as unknown as Kysely<unknown>);
        const ws = await sql<{ id: string }>`
          INSERT INTO workspaces (slug, name) VALUES ('scopes', 'Scopes') RETURNING id`.execute(db);
        const workspaceId = ws.rows[0]!.id;
        await sql`
          INSERT INTO api_keys (workspace_id, name, role, prefix, key_hash, created_by) VALUES
            (${workspaceId}, 'root', 'admin', 'ork_a', 'hash-a', 'test'),
            (${workspaceId}, 'sam', 'member', 'ork_m', 'hash-m', 'test'),
            (${workspaceId}, 'bot', 'agent', 'ork_g', 'hash-g', 'test')`.execute(db);
        await apiKeyScopes.up(db as unknown as Kysely<unknown>);
        const keys = await sql<{ name: string; scopes: string[] }>`
          SELECT name, scopes FROM api_keys WHERE workspace_id = ${workspaceId} ORDER BY name`.execute(db);
        expect(keys.rows.map((r) => [r.name, r.scopes])).toEqual([
          ["bot", ["read", "write"]],
          ["root", ["read", "write", "admin"]],
          ["sam", ["read", "write"]],
        ]);
        for (const scopes of [["admin"], [], ["read", "delete"]]) {
          await sql`SAVEPOINT attempt`.execute(db);
          await expect(
            sql`UPDATE api_keys SET scopes = ${scopes}::text[] WHERE name = 'sam' AND workspace_id = ${workspaceId}`.execute(
              db,
            ),
          ).rejects.toThrow(/api_keys_scopes_check/);
          await sql`ROLLBACK TO SAVEPOINT attempt`.execute(db);
        }
        await expect(
          sql`INSERT INTO api_keys (workspace_id, name, role, prefix, key_hash, created_by)
              VALUES (${workspaceId}, 'x', 'member', 'ork_x', 'hash-x', 'test')`.execute(db),
        ).rejects.toThrow(/scopes/);
      } finally {
        await sql`ROLLBACK`.execute(db);
      }
    } finally {
      await db.destroy();
    }
  });
  it("allow viewer keys, holding read only, and down restores the former roles once no viewer key is left", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    try {
      await sql`BEGIN`.execute(db);
      try {
        const ws = await sql<{ id: string }>`
          INSERT INTO workspaces (slug, name) VALUES ('viewers', 'Viewers') RETURNING id`.execute(db);
        const workspaceId = ws.rows[0]!.id;
        const insertKey = (name: string, role: string, scopes: string[]) =>
          sql`INSERT INTO api_keys (workspace_id, name, role, scopes, prefix, key_hash, created_by)
              VALUES (${workspaceId}, ${name}, ${role}, ${scopes}::text[], ${`ork_${name}`}, ${`hash-${name}`}, 'test')`.execute(
            db,
          );
        /** The statement fails with `pattern`, and the transaction goes on as before it. */
        const refused = async (statement: () => Promise<unknown>, pattern: RegExp) => {
          await sql`SAVEPOINT attempt`.execute(db);
          await expect(statement()).rejects.toThrow(pattern);
          await sql`ROLLBACK TO SAVEPOINT attempt`.execute(db);
        };
        await insertKey("tv", "viewer", ["read"]);
        for (const scopes of [["read", "write"], ["write"]]) {
          await refused(() => insertKey(`tv-${scopes.join("-")}`, "viewer", scopes), /api_keys_viewer_scopes_check/);
        }
        await refused(
          () => sql`UPDATE api_keys SET scopes = ARRAY['read', 'write'] WHERE name = 'tv'`.execute(db),
          /api_keys_viewer_scopes_check/,
        );
        await refused(() => insertKey("owner", "owner", ["read"]), /api_keys_role_check/);

        // Down refuses while a viewer key exists, and changes nothing.
        await refused(() => viewerRole.down(db as unknown as Kysely<unknown>), /1 API key\(s\) have the viewer role/);
        await sql`DELETE FROM api_keys WHERE name = 'tv'`.execute(db);
        await viewerRole.down(db as unknown as Kysely<unknown>);
        await refused(() => insertKey("tv2", "viewer", ["read"]), /api_keys_role_check/);
        await insertKey("sam", "member", ["read", "write"]);

        await viewerRole.up(db as unknown as Kysely<unknown>);
        await insertKey("tv3", "viewer", ["read"]);
        const keys = await sql<{ name: string; role: string; scopes: string[] }>`
          SELECT name, role, scopes FROM api_keys WHERE workspace_id = ${workspaceId} ORDER BY name`.execute(db);
        expect(keys.rows.map((r) => [r.name, r.role, r.scopes])).toEqual([
          ["sam", "member", ["read", "write"]],
          ["tv3", "viewer", ["read"]],
        ]);
      } finally {
        await sql`ROLLBACK`.execute(db);
      }
    } finally {
      await db.destroy();
    }
  });

  it("rename the analyses' relative_effect to relative_lift and their JSON keys to camelCase, and back", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    // An analysis as the runtime wrote it before: snake_case keys, arms and a metric named with underscores.
    const before = {
      arms: {
        control: { units: 10, sum: 4, sum_sq: 4, mean: 0.4, variance: 0.24 },
        new_flow: { units: 9, sum: 5, sum_sq: 5 },
      },
      guardrails: [
        {
          metric: "p_value",
          arm: "new_flow",
          verdict: "ok",
          harm: 0,
          harm_ci: [-1, 1],
          p_value: 0.5,
          margin: 0.1,
          relative: true,
          failure_limit: 0,
          dry_run: false,
          failed_analyses: 0,
        },
      ],
      details: {
        comparisons: [
          {
            arm: "new_flow",
            effect: 0.1,
            ci: [-1, 1],
            relative_lift: 0.2,
            relative_ci: [-2, 2],
            p_value: 0.9,
            log_lambda: -1,
            fixed_p_value: 0.6,
            warnings: [],
          },
        ],
        srm: { p_value: 0.8, alarm: false, sequential_p_value: 1, sequential_alarm: false },
        elapsed_seconds: 60,
        tau2: 0.01,
        tau2_source: "given",
        planned_per_arm: 100,
        fixed_per_arm: 80,
        rules: {
          counts: { kill: 0, guardrails: { p_value: 0 }, inconclusive: 0 },
          kill_failure_limit: null,
          inconclusive_limit: -1,
        },
        carry: {
          arms: { new_flow: { p_value: 0.9, ci: [-1, 1], relative_ci: [-2, 2] } },
          srm: 1,
          guardrails: { p_value: { tau2: 0.02, arms: { new_flow: { p_value: 0.5, ci: [-1, 1], relative_ci: null } } } },
        },
      },
    };
    try {
      await sql`BEGIN`.execute(db);
      try {
        await analysisNames.down(db as unknown as Kysely<unknown>);
        // No parent rows: foreign keys are not what is under test (replica role skips their triggers).
        await sql`SET LOCAL session_replication_role = replica`.execute(db);
        await sql`
          INSERT INTO analyses (workspace_id, experiment_id, ts, arms, effect, relative_effect, guardrails, decision, details)
          VALUES (gen_random_uuid(), gen_random_uuid(), now(), ${JSON.stringify(before.arms)}::jsonb, 0.1, 0.2,
                  ${JSON.stringify(before.guardrails)}::jsonb, '{"action":"continue"}'::jsonb, ${JSON.stringify(before.details)}::jsonb)`.execute(
          db,
        );
        await analysisNames.up(db as unknown as Kysely<unknown>);
        const after = await sql<{ relative_lift: number; arms: unknown; guardrails: unknown; details: unknown }>`
          SELECT relative_lift, arms, guardrails, details FROM analyses`.execute(db);
        const row = after.rows[0]!;
        expect(row.relative_lift).toBe(0.2);
        expect(row.arms).toEqual({
          control: { units: 10, sum: 4, sumSq: 4, mean: 0.4, variance: 0.24 },
          new_flow: { units: 9, sum: 5, sumSq: 5 },
        });
        expect(row.guardrails).toEqual([
          {
            metric: "p_value",
            arm: "new_flow",
            verdict: "ok",
            harm: 0,
            harmCi: [-1, 1],
            pValue: 0.5,
            margin: 0.1,
            relative: true,
            failureLimit: 0,
            dryRun: false,
            failedAnalyses: 0,
          },
        ]);
        expect(row.details).toEqual({
          comparisons: [
            {
              arm: "new_flow",
              effect: 0.1,
              ci: [-1, 1],
              relativeLift: 0.2,
              relativeCi: [-2, 2],
              pValue: 0.9,
              logLambda: -1,
              fixedPValue: 0.6,
              warnings: [],
            },
          ],
          srm: { pValue: 0.8, alarm: false, sequentialPValue: 1, sequentialAlarm: false },
          elapsedSeconds: 60,
          tau2: 0.01,
          tau2Source: "given",
          plannedPerArm: 100,
          fixedPerArm: 80,
          rules: {
            counts: { kill: 0, guardrails: { p_value: 0 }, inconclusive: 0 },
            killFailureLimit: null,
            inconclusiveLimit: -1,
          },
          carry: {
            arms: { new_flow: { pValue: 0.9, ci: [-1, 1], relativeCi: [-2, 2] } },
            srm: 1,
            guardrails: { p_value: { tau2: 0.02, arms: { new_flow: { pValue: 0.5, ci: [-1, 1], relativeCi: null } } } },
          },
        });
        // Idempotent on what it wrote, and down gives the former row back.
        expect(analysisNames.upgradeAnalysisJson(row)).toEqual({
          arms: row.arms,
          guardrails: row.guardrails,
          details: row.details,
        });
        await analysisNames.down(db as unknown as Kysely<unknown>);
        const back = await sql<{ relative_effect: number; arms: unknown; guardrails: unknown; details: unknown }>`
          SELECT relative_effect, arms, guardrails, details FROM analyses`.execute(db);
        expect(back.rows[0]).toEqual({ relative_effect: 0.2, ...before });
      } finally {
        await sql`ROLLBACK`.execute(db);
      }
    } finally {
      await db.destroy();
    }
  });

  it("take series of kind ratio with their points' denominator, and down removes both", async () => {
    const db = createDb({ url: empty.url, max: 1 });
    const columns = async (table: string) =>
      (
        await sql<{ column_name: string }>`
          SELECT column_name FROM information_schema.columns
           WHERE table_name = ${table} AND column_name LIKE '%den_sum%' ORDER BY column_name`.execute(db)
      ).rows.map((r) => r.column_name);
    try {
      await sql`BEGIN`.execute(db);
      try {
        expect(await columns("signal_points")).toEqual(["den_sum", "den_sum_sq", "num_den_sum"]);
        expect(await columns("signal_point_revisions")).toEqual([
          "new_den_sum",
          "new_den_sum_sq",
          "new_num_den_sum",
          "old_den_sum",
          "old_den_sum_sq",
          "old_num_den_sum",
        ]);
        const ws = await sql<{ id: string }>`
          INSERT INTO workspaces (slug, name) VALUES ('ratio', 'Ratio') RETURNING id`.execute(db);
        const workspaceId = ws.rows[0]!.id;
        const outcome = await sql<{ id: string }>`
          INSERT INTO outcomes (workspace_id, slug, name, owner, state, revision, spec, content_hash)
          VALUES (${workspaceId}, 'ratio', 'Ratio', 'o@acme.example', 'draft', 1, '{}', 'h') RETURNING id`.execute(db);
        await sql`INSERT INTO signal_series (workspace_id, outcome_id, metric, role, kind)
                  VALUES (${workspaceId}, ${outcome.rows[0]!.id}, 'revenue_per_session', 'outcome', 'ratio')`.execute(
          db,
        );
        await ratioMetrics.down(db as unknown as Kysely<unknown>);
        expect(await columns("signal_points")).toEqual([]);
        expect(await columns("signal_point_revisions")).toEqual([]);
        const left = await sql<{ n: number }>`SELECT count(*)::int AS n FROM signal_series`.execute(db);
        expect(left.rows[0]?.n).toBe(0);
        await sql`SAVEPOINT refused`.execute(db);
        await expect(
          sql`INSERT INTO signal_series (workspace_id, outcome_id, metric, role, kind)
              VALUES (${workspaceId}, ${outcome.rows[0]!.id}, 'm', 'outcome', 'ratio')`.execute(db),
        ).rejects.toThrow(/signal_series_kind_check/);
        await sql`ROLLBACK TO SAVEPOINT refused`.execute(db);
        await ratioMetrics.up(db as unknown as Kysely<unknown>);
        expect(await columns("signal_points")).toEqual(["den_sum", "den_sum_sq", "num_den_sum"]);
      } finally {
        await sql`ROLLBACK`.execute(db);
      }
    } finally {
      await db.destroy();
    }
  });
});
