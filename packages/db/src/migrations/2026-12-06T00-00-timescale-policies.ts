/**
 * Time-series policies for `signal_points` and a daily roll-up for the
 * dashboard's charts.
 *
 * With TimescaleDB (the extension is installed and `signal_points` is a
 * hypertable):
 * - compression, segmented by (series_id, arm) and ordered by ts, of chunks
 *   older than 30 days (re-polls of compressed chunks still upsert: TimescaleDB
 *   2.11+ handles ON CONFLICT there);
 * - no retention policy: points are the evidence behind every analysis, so
 *   dropping them is the operator's choice (`add_retention_policy`, see
 *   docs/self-hosting.md);
 * - `signal_points_daily`, a continuous aggregate (real-time, refreshed hourly
 *   over the last 3 days) with the last cumulative point per series, arm and
 *   UTC day.
 *
 * On plain Postgres, `signal_points_daily` is a plain view with the same
 * columns, so the same queries work everywhere. Each TimescaleDB statement runs
 * in a savepoint, as in the initial migration: a refusal falls back to the view
 * instead of aborting the migration. Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

/** The plain view: the same columns and day boundaries (UTC midnight) as the continuous aggregate. */
async function createPlainView(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE VIEW signal_points_daily AS
    SELECT DISTINCT ON (series_id, arm, day)
           workspace_id, series_id, arm, day, ts AS last_ts, units, sum, sum_sq
      FROM (SELECT *, date_bin(INTERVAL '1 day', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS day
              FROM signal_points) p
     ORDER BY series_id, arm, day, ts DESC`.execute(db);
}

async function isHypertable(db: Kysely<unknown>): Promise<boolean> {
  const installed = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'timescaledb'`.execute(db);
  if ((installed.rows[0]?.n ?? 0) === 0) return false;
  const hyper = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM timescaledb_information.hypertables
     WHERE hypertable_schema = current_schema() AND hypertable_name = 'signal_points'`.execute(db);
  return (hyper.rows[0]?.n ?? 0) > 0;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  let daily: "continuous_aggregate" | "view" = "view";
  let compression = false;
  if (await isHypertable(db)) {
    await sql`SAVEPOINT timescale_compression`.execute(db);
    try {
      await sql`ALTER TABLE signal_points SET (
                  timescaledb.compress,
                  timescaledb.compress_segmentby = 'series_id, arm',
                  timescaledb.compress_orderby = 'ts DESC')`.execute(db);
      await sql`SELECT add_compression_policy('signal_points', INTERVAL '30 days', if_not_exists => true)`.execute(db);
      await sql`RELEASE SAVEPOINT timescale_compression`.execute(db);
      compression = true;
    } catch {
      await sql`ROLLBACK TO SAVEPOINT timescale_compression`.execute(db);
    }

    // WITH NO DATA: a continuous aggregate cannot be filled inside a transaction; the policy and the
    // real-time union (materialized_only = false) answer from the first query on.
    await sql`SAVEPOINT timescale_daily`.execute(db);
    try {
      await sql`
        CREATE MATERIALIZED VIEW signal_points_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT workspace_id, series_id, arm, time_bucket(INTERVAL '1 day', ts) AS day,
               max(ts) AS last_ts, last(units, ts) AS units, last(sum, ts) AS sum, last(sum_sq, ts) AS sum_sq
          FROM signal_points
         GROUP BY workspace_id, series_id, arm, time_bucket(INTERVAL '1 day', ts)
        WITH NO DATA`.execute(db);
      await sql`SELECT add_continuous_aggregate_policy('signal_points_daily',
                  start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
                  schedule_interval => INTERVAL '1 hour')`.execute(db);
      await sql`RELEASE SAVEPOINT timescale_daily`.execute(db);
      daily = "continuous_aggregate";
    } catch {
      await sql`ROLLBACK TO SAVEPOINT timescale_daily`.execute(db);
    }
  }
  if (daily === "view") await createPlainView(db);
  await sql`INSERT INTO settings (key, value)
            VALUES ('signal_policies', ${JSON.stringify({ compression, retention: null, daily })}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const hypertable = await isHypertable(db);
  const continuous =
    hypertable &&
    ((
      await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM timescaledb_information.continuous_aggregates
         WHERE view_name = 'signal_points_daily'`.execute(db)
    ).rows[0]?.n ?? 0) > 0;
  if (continuous) await sql`DROP MATERIALIZED VIEW signal_points_daily`.execute(db);
  else await sql`DROP VIEW IF EXISTS signal_points_daily`.execute(db);
  // Chunks already compressed stay compressed (decompress_chunk undoes that); no new ones are.
  if (hypertable) await sql`SELECT remove_compression_policy('signal_points', if_exists => true)`.execute(db);
  await sql`DELETE FROM settings WHERE key = 'signal_policies'`.execute(db);
}
