/**
 * Drop the `ts` index TimescaleDB's `create_hypertable` adds by default
 * (`signal_points_ts_idx`, ts DESC) on every chunk.
 *
 * Every read of signal points names its series (the primary key
 * `(series_id, arm, ts)` serves them), but for "the first point of a series"
 * (`ORDER BY ts LIMIT 1`, in `pointsSince`) the planner preferred walking this
 * index over all series and filtering by series: measured on a chunk of 82,000
 * points, 8 ms and 17,800 rows filtered per series, a quarter of a second per
 * batch of 100 experiments, where the primary key answers in a few
 * microseconds. Plain tables never had it (their `ts` index is a BRIN).
 * Chunk exclusion uses the chunks' constraints, not this index; the continuous
 * aggregate's refresh reads a few days of chunks without it.
 *
 * Only on TimescaleDB; nothing on plain tables. Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

async function hypertable(db: Kysely<unknown>): Promise<boolean> {
  const result = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`.execute(db);
  if ((result.rows[0]?.n ?? 0) === 0) return false;
  const hyper = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM timescaledb_information.hypertables
     WHERE hypertable_schema = current_schema() AND hypertable_name = 'signal_points'`.execute(db);
  return (hyper.rows[0]?.n ?? 0) > 0;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (await hypertable(db)) await sql`DROP INDEX IF EXISTS signal_points_ts_idx`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (await hypertable(db)) {
    await sql`CREATE INDEX IF NOT EXISTS signal_points_ts_idx ON signal_points (ts DESC)`.execute(db);
  }
}
