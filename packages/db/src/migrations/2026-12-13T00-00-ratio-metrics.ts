/**
 * Ratio metrics (outcome.yaml `kind: ratio`): a signal series may be of kind
 * `ratio`, and its points store the denominator beside the numerator's
 * units, sum and sum_sq: Σd (`den_sum`), Σd² (`den_sum_sq`) and Σn·d
 * (`num_den_sum`) over the arm's units, all three on a ratio's points and
 * NULL on any other (the connectors' boundary checks hold to that; no CHECK
 * constraint, which a compressed TimescaleDB hypertable may refuse).
 * Nullable columns without a default: adding them rewrites nothing. A
 * revision keeps the old and new denominator beside the old and new totals.
 * Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_series DROP CONSTRAINT signal_series_kind_check,
              ADD CONSTRAINT signal_series_kind_check CHECK (kind IN ('proportion', 'mean', 'ratio'))`.execute(db);
  await sql`ALTER TABLE signal_points
              ADD COLUMN den_sum double precision,
              ADD COLUMN den_sum_sq double precision,
              ADD COLUMN num_den_sum double precision`.execute(db);
  await sql`ALTER TABLE signal_point_revisions
              ADD COLUMN old_den_sum double precision,
              ADD COLUMN old_den_sum_sq double precision,
              ADD COLUMN old_num_den_sum double precision,
              ADD COLUMN new_den_sum double precision,
              ADD COLUMN new_den_sum_sq double precision,
              ADD COLUMN new_num_den_sum double precision`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_point_revisions
              DROP COLUMN old_den_sum, DROP COLUMN old_den_sum_sq, DROP COLUMN old_num_den_sum,
              DROP COLUMN new_den_sum, DROP COLUMN new_den_sum_sq, DROP COLUMN new_num_den_sum`.execute(db);
  await sql`ALTER TABLE signal_points DROP COLUMN den_sum, DROP COLUMN den_sum_sq, DROP COLUMN num_den_sum`.execute(db);
  // A ratio series cannot be read as a proportion or a mean: it goes, with its points (ON DELETE CASCADE).
  await sql`DELETE FROM signal_series WHERE kind = 'ratio'`.execute(db);
  await sql`ALTER TABLE signal_series DROP CONSTRAINT signal_series_kind_check,
              ADD CONSTRAINT signal_series_kind_check CHECK (kind IN ('proportion', 'mean'))`.execute(db);
}
