/**
 * Signals and analyses at work: poll bookkeeping on series and experiments,
 * the statistical plan of each experiment, the reason a gate was opened, and
 * the webhook outbox.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // "Polled until": the as-of time of the newest point stored for the series.
  // The next poll asks the connector for everything after it, so windows
  // missed while workers were down are caught up.
  await db.schema
    .alterTable("signal_series")
    .addColumn("polled_until", "timestamptz")
    .addColumn("last_polled_at", "timestamptz")
    .execute();

  await db.schema
    .alterTable("experiments")
    // When traffic first flowed (the launch), and the statistical plan fixed at
    // the first analysis (τ², planned sample, the rule that chose them).
    .addColumn("launched_at", "timestamptz")
    .addColumn("stats_plan", "jsonb")
    // The last poll's outcome, for the API: an error stays visible until a poll succeeds.
    .addColumn("last_polled_at", "timestamptz")
    .addColumn("poll_error", "jsonb")
    .addColumn("poll_failures", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`CREATE INDEX experiments_running_idx ON experiments (state) WHERE state = 'running'`.execute(db);

  // Why a gate was opened, e.g. { action: "analyse", reason: "win" } for an analysis review.
  await db.schema
    .alterTable("gates")
    .addColumn("context", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    .execute();

  await db.schema.createIndex("analyses_experiment_ts_idx").on("analyses").columns(["experiment_id", "ts"]).execute();

  // Outbox: a webhook is recorded in the transaction that made the change, then
  // delivered (and retried) by the worker; the event id makes delivery idempotent.
  await db.schema
    .createTable("webhook_deliveries")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("event_type", "text", (c) => c.notNull())
    .addColumn("dedupe_key", "text", (c) => c.notNull())
    .addColumn("payload", "jsonb", (c) => c.notNull())
    .addColumn("status", "text", (c) =>
      c.notNull().defaultTo("pending").check(sql`status IN ('pending', 'delivered', 'failed')`),
    )
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("delivered_at", "timestamptz")
    .addUniqueConstraint("webhook_deliveries_dedupe_key", ["workspace_id", "dedupe_key"])
    .execute();
  await sql`CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (created_at) WHERE status = 'pending'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("webhook_deliveries").execute();
  await db.schema.dropIndex("analyses_experiment_ts_idx").execute();
  await db.schema.alterTable("gates").dropColumn("context").execute();
  await sql`DROP INDEX experiments_running_idx`.execute(db);
  await db.schema
    .alterTable("experiments")
    .dropColumn("launched_at")
    .dropColumn("stats_plan")
    .dropColumn("last_polled_at")
    .dropColumn("poll_error")
    .dropColumn("poll_failures")
    .execute();
  await db.schema.alterTable("signal_series").dropColumn("polled_until").dropColumn("last_polled_at").execute();
}
