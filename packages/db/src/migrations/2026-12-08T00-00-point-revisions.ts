/**
 * Revisions of signal points: when a re-read (an outcome's `signal.lookback`,
 * or a re-poll) finds that the source changed a value already stored, the
 * point is updated and one row here keeps what it was and what it became, so
 * no number a decision was based on changes without a trace. A plain table
 * (not a hypertable): revisions are few.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE signal_point_revisions (
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              series_id uuid NOT NULL REFERENCES signal_series (id) ON DELETE CASCADE,
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              arm text NOT NULL,
              ts timestamptz NOT NULL,
              old_units bigint NOT NULL,
              old_sum double precision NOT NULL,
              old_sum_sq double precision NOT NULL,
              new_units bigint NOT NULL,
              new_sum double precision NOT NULL,
              new_sum_sq double precision NOT NULL,
              revised_at timestamptz NOT NULL DEFAULT now()
            )`.execute(db);
  await sql`CREATE INDEX signal_point_revisions_series ON signal_point_revisions (series_id, arm, ts)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE signal_point_revisions`.execute(db);
}
