/**
 * Lookups the worker makes on every poll: an experiment's series by
 * `experiment_id` gets an index of its own; the plain index on analyses
 * (experiment_id, ts) repeated the unique key's index and only slowed inserts.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex("signal_series_experiment_idx").on("signal_series").column("experiment_id").execute();
  await sql`DROP INDEX IF EXISTS analyses_experiment_ts_idx`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex("analyses_experiment_ts_idx").on("analyses").columns(["experiment_id", "ts"]).execute();
  await db.schema.dropIndex("signal_series_experiment_idx").execute();
}
