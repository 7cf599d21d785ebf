/**
 * The LLM gateway's store: a response cache and the metering ledger that
 * budgets are summed from. Frozen in time: imports nothing from the app.
 */
import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations are written against an untyped database on purpose
export async function up(db: Kysely<any>): Promise<void> {
  // Cached validated outputs, per workspace so no tenant reads another's entries.
  // `key` = operation:prompt_version:model:sha256(canonical input JSON).
  await db.schema
    .createTable("llm_cache")
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("operation", "text", (c) => c.notNull())
    .addColumn("prompt_version", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("value", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("llm_cache_pkey", ["workspace_id", "key"])
    .execute();

  // One row per gateway run: what was asked, what served it, what it cost.
  await db.schema
    .createTable("llm_calls")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("outcome_id", "uuid")
    .addColumn("actor_id", "text", (c) => c.notNull())
    .addColumn("operation", "text", (c) => c.notNull())
    .addColumn("prompt_version", "text", (c) => c.notNull())
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("input_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("output_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("cost_usd", "numeric(14, 8)", (c) => c.notNull().defaultTo(0))
    .addColumn("latency_ms", "integer", (c) => c.notNull())
    .addColumn("cache_hit", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("repaired", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("fallback_reason", "text")
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("llm_calls_tokens_check", sql`input_tokens >= 0 AND output_tokens >= 0 AND cost_usd >= 0`)
    .execute();
  // Budget sums: a workspace's month, a user's day.
  await db.schema.createIndex("llm_calls_workspace_at_idx").on("llm_calls").columns(["workspace_id", "at"]).execute();
  await db.schema
    .createIndex("llm_calls_actor_at_idx")
    .on("llm_calls")
    .columns(["workspace_id", "actor_id", "at"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("llm_calls").execute();
  await db.schema.dropTable("llm_cache").execute();
}
