/**
 * Initial schema. Frozen in time: this file imports nothing from the app and
 * must never change once released; later changes are new migrations.
 */
import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations are written against an untyped database on purpose
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE EXTENSION IF NOT EXISTS pgcrypto`.execute(db);

  await db.schema
    .createTable("settings")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("value", "jsonb", (c) => c.notNull())
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("workspaces")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("slug", "text", (c) => c.notNull().unique())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull().check(sql`role IN ('admin', 'member', 'approver', 'agent')`))
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("last_used_at", "timestamptz")
    .addColumn("revoked_at", "timestamptz")
    .execute();
  await db.schema.createIndex("api_keys_workspace_idx").on("api_keys").column("workspace_id").execute();

  await db.schema
    .createTable("outcomes")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("slug", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) =>
      c.notNull().check(sql`state IN ('draft', 'active', 'achieved', 'missed', 'abandoned')`),
    )
    .addColumn("revision", "integer", (c) => c.notNull())
    .addColumn("content_hash", "text", (c) => c.notNull())
    .addColumn("spec", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("activated_at", "timestamptz")
    .addColumn("closed_at", "timestamptz")
    .addUniqueConstraint("outcomes_workspace_slug_key", ["workspace_id", "slug"])
    .execute();

  await db.schema
    .createTable("outcome_revisions")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid", (c) => c.notNull().references("outcomes.id").onDelete("cascade"))
    .addColumn("revision", "integer", (c) => c.notNull())
    .addColumn("content_hash", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("spec", "jsonb", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("outcome_revisions_outcome_revision_key", ["outcome_id", "revision"])
    .execute();

  await db.schema
    .createTable("gates")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid", (c) => c.notNull().references("outcomes.id").onDelete("cascade"))
    .addColumn("experiment_id", "uuid")
    .addColumn("kind", "text", (c) =>
      c.notNull().check(sql`kind IN ('portfolio_review', 'launch_approval', 'analysis_review')`),
    )
    .addColumn("status", "text", (c) =>
      c.notNull().check(sql`status IN ('pending', 'approved', 'rejected', 'expired')`),
    )
    .addColumn("assignees", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("backup", "text")
    .addColumn("sla_seconds", "integer", (c) => c.notNull())
    .addColumn("due_at", "timestamptz", (c) => c.notNull())
    .addColumn("decision", "text")
    .addColumn("reason", "text")
    .addColumn("decided_by", "text")
    .addColumn("decided_channel", "text")
    .addColumn("decided_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // At most one pending portfolio review per outcome: hypotheses join it.
  await sql`CREATE UNIQUE INDEX gates_one_pending_portfolio ON gates (outcome_id)
            WHERE kind = 'portfolio_review' AND status = 'pending'`.execute(db);
  // At most one pending gate of a kind per experiment.
  await sql`CREATE UNIQUE INDEX gates_one_pending_per_experiment ON gates (experiment_id, kind)
            WHERE experiment_id IS NOT NULL AND status = 'pending'`.execute(db);
  await db.schema.createIndex("gates_workspace_status_idx").on("gates").columns(["workspace_id", "status"]).execute();

  await db.schema
    .createTable("experiments")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid", (c) => c.notNull().references("outcomes.id").onDelete("cascade"))
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("title", "text", (c) => c.notNull())
    .addColumn("statement", "text", (c) => c.notNull())
    .addColumn("mechanism", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("prediction", "jsonb")
    .addColumn("measurement_plan", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("rollout_plan", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("effort", "text")
    .addColumn("risk", "text")
    .addColumn("touched_paths", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("arms", "jsonb", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) =>
      c
        .notNull()
        .check(
          sql`state IN ('proposed', 'approved', 'rejected', 'building', 'built', 'running', 'paused', 'analysing', 'shipped', 'rolled_back', 'iterated')`,
        ),
    )
    .addColumn("claimed_by", "text")
    .addColumn("portfolio_gate_id", "uuid", (c) => c.references("gates.id"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("experiments_workspace_key_key", ["workspace_id", "key"])
    .execute();
  await db.schema.createIndex("experiments_outcome_idx").on("experiments").column("outcome_id").execute();
  await sql`ALTER TABLE gates ADD CONSTRAINT gates_experiment_fk FOREIGN KEY (experiment_id)
            REFERENCES experiments (id) ON DELETE CASCADE`.execute(db);

  await db.schema
    .createTable("signal_series")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid", (c) => c.notNull().references("outcomes.id").onDelete("cascade"))
    .addColumn("experiment_id", "uuid", (c) => c.references("experiments.id").onDelete("cascade"))
    .addColumn("metric", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull().check(sql`role IN ('primary', 'guardrail', 'outcome')`))
    .addColumn("kind", "text", (c) => c.notNull().check(sql`kind IN ('proportion', 'mean')`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`CREATE UNIQUE INDEX signal_series_identity ON signal_series
            (outcome_id, COALESCE(experiment_id, '00000000-0000-0000-0000-000000000000'::uuid), metric, role)`.execute(
    db,
  );

  // Cumulative per-arm sufficient statistics per poll. The primary key makes a
  // re-poll of the same (series, arm, ts) an idempotent upsert.
  await db.schema
    .createTable("signal_points")
    .addColumn("series_id", "uuid", (c) => c.notNull().references("signal_series.id").onDelete("cascade"))
    .addColumn("arm", "text", (c) => c.notNull())
    .addColumn("ts", "timestamptz", (c) => c.notNull())
    .addColumn("workspace_id", "uuid", (c) => c.notNull())
    .addColumn("units", "bigint", (c) => c.notNull().check(sql`units >= 0`))
    .addColumn("sum", "double precision", (c) => c.notNull())
    .addColumn("sum_sq", "double precision", (c) => c.notNull().check(sql`sum_sq >= 0`))
    .addColumn("ingested_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("signal_points_pkey", ["series_id", "arm", "ts"])
    .execute();

  // TimescaleDB when the server has it; a plain table with a BRIN index on ts
  // otherwise. The database setting `outcome_runtime.signal_storage = 'plain'`
  // keeps plain tables on a server that has TimescaleDB (the tests of the plain
  // path; an operator's choice). TimescaleDB must be preloaded: on a server
  // where it is installed but not in shared_preload_libraries, CREATE EXTENSION
  // ends the connection with a FATAL (no savepoint survives that), so that case
  // is checked first and recorded with its reason. Any other refusal runs in a
  // savepoint and falls back to plain tables.
  let mode: "timescaledb" | "plain" = "plain";
  let reason: string | null = null;
  // Preloaded: the extension already exists here (created by a superuser: it loaded), or TimescaleDB's loader
  // defined its settings in this backend (pg_settings lists no mere placeholders). `shared_preload_libraries`
  // itself is readable only by superusers and pg_read_all_settings, and the runtime's role is neither.
  const probe = await sql<{ available: boolean; preloaded: boolean; forced: string | null }>`
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
           (EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
            OR EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.disable_load')) AS preloaded,
           nullif(current_setting('outcome_runtime.signal_storage', true), '') AS forced`.execute(db);
  const { available, preloaded, forced } = probe.rows[0] ?? { available: false, preloaded: false, forced: null };
  if (forced === "plain") {
    reason = "chosen";
  } else if (!available) {
    reason = "timescaledb_not_installed";
  } else if (!preloaded) {
    reason = "timescaledb_not_preloaded";
  } else {
    await sql`SAVEPOINT try_timescaledb`.execute(db);
    try {
      await sql`CREATE EXTENSION IF NOT EXISTS timescaledb`.execute(db);
      await sql`SELECT create_hypertable('signal_points', 'ts', chunk_time_interval => INTERVAL '7 days')`.execute(db);
      await sql`RELEASE SAVEPOINT try_timescaledb`.execute(db);
      mode = "timescaledb";
    } catch (error) {
      await sql`ROLLBACK TO SAVEPOINT try_timescaledb`.execute(db);
      reason = `timescaledb_refused: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
    }
  }
  if (mode === "plain") {
    await sql`CREATE INDEX signal_points_ts_brin ON signal_points USING brin (ts)`.execute(db);
  }
  await sql`INSERT INTO settings (key, value) VALUES ('signal_storage', ${JSON.stringify({ mode, reason })}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`.execute(db);

  await db.schema
    .createTable("analyses")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("experiment_id", "uuid", (c) => c.notNull().references("experiments.id").onDelete("cascade"))
    .addColumn("ts", "timestamptz", (c) => c.notNull())
    .addColumn("arms", "jsonb", (c) => c.notNull())
    .addColumn("effect", "double precision")
    .addColumn("ci_low", "double precision")
    .addColumn("ci_high", "double precision")
    .addColumn("relative_effect", "double precision")
    .addColumn("p_value", "double precision")
    .addColumn("srm_p_value", "double precision")
    .addColumn("guardrails", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'`))
    .addColumn("decision", "jsonb", (c) => c.notNull())
    .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("analyses_experiment_ts_key", ["experiment_id", "ts"])
    .execute();

  // array_to_string is only STABLE in general (element output functions may
  // vary); for text[] it is immutable, which a generated column needs.
  await sql`CREATE FUNCTION learning_search_text(statement text, tags text[]) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT statement || ' ' || array_to_string(tags, ' ') $$`.execute(db);
  await db.schema
    .createTable("learnings")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid", (c) => c.notNull().references("outcomes.id").onDelete("cascade"))
    .addColumn("experiment_id", "uuid", (c) => c.references("experiments.id").onDelete("set null"))
    .addColumn("statement", "text", (c) => c.notNull())
    .addColumn("decision", "text", (c) => c.notNull())
    .addColumn("effect", "double precision")
    .addColumn("ci_low", "double precision")
    .addColumn("ci_high", "double precision")
    .addColumn("tags", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("links", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'`))
    .addColumn("search", sql`tsvector`, (c) =>
      c.generatedAlwaysAs(sql`to_tsvector('english'::regconfig, learning_search_text(statement, tags))`).stored(),
    )
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`CREATE INDEX learnings_search_idx ON learnings USING gin (search)`.execute(db);

  await db.schema
    .createTable("audit_events")
    .addColumn("id", "bigserial", (c) => c.primaryKey())
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("actor_id", "text")
    .addColumn("actor_name", "text")
    .addColumn("actor_role", "text")
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("subject_type", "text", (c) => c.notNull())
    .addColumn("subject_id", "text", (c) => c.notNull())
    .addColumn("before", "jsonb")
    .addColumn("after", "jsonb")
    .addColumn("request_id", "text")
    .execute();
  await db.schema
    .createIndex("audit_events_subject_idx")
    .on("audit_events")
    .columns(["workspace_id", "subject_type", "subject_id"])
    .execute();
  // Append-only: no row is ever updated. Deletes are left to an administrator
  // removing a whole workspace (the cascade from workspaces).
  await sql`CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$`.execute(db);
  await sql`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`.execute(db);

  await db.schema
    .createTable("idempotency_keys")
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("request_hash", "text", (c) => c.notNull())
    .addColumn("status_code", "integer", (c) => c.notNull())
    .addColumn("response", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("idempotency_keys_pkey", ["workspace_id", "key"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    "idempotency_keys",
    "audit_events",
    "learnings",
    "analyses",
    "signal_points",
    "signal_series",
    "experiments",
    "gates",
    "outcome_revisions",
    "outcomes",
    "api_keys",
    "workspaces",
    "settings",
  ]) {
    await db.schema.dropTable(table).ifExists().cascade().execute();
  }
  await sql`DROP FUNCTION IF EXISTS audit_events_append_only()`.execute(db);
  await sql`DROP FUNCTION IF EXISTS learning_search_text(text, text[])`.execute(db);
}
