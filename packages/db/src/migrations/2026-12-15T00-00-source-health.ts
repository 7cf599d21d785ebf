/**
 * Source health per series: which connector reads it (its type and its
 * one-line description, never a secret), the last successful read, the last
 * error with the source's own message, and a throttle: after a source's
 * rate-limit answer no request is sent for the series before
 * `throttled_until`, and `throttle_note` says why. The experiment and outcome
 * pages, the API and the worker's `/healthz` read them.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_series
              ADD COLUMN connector text,
              ADD COLUMN source text,
              ADD COLUMN last_read_at timestamptz,
              ADD COLUMN last_error_at timestamptz,
              ADD COLUMN last_error_code text,
              ADD COLUMN last_error_message text,
              ADD COLUMN throttled_until timestamptz,
              ADD COLUMN throttle_note text`.execute(db);
  // /healthz lists the throttled series of every workspace: only the few throttled rows are indexed.
  await sql`CREATE INDEX signal_series_throttled ON signal_series (throttled_until)
            WHERE throttled_until IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX signal_series_throttled`.execute(db);
  await sql`ALTER TABLE signal_series
              DROP COLUMN connector, DROP COLUMN source, DROP COLUMN last_read_at, DROP COLUMN last_error_at,
              DROP COLUMN last_error_code, DROP COLUMN last_error_message, DROP COLUMN throttled_until,
              DROP COLUMN throttle_note`.execute(db);
}
