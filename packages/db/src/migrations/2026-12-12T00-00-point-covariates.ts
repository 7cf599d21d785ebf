/**
 * The pre-exposure covariate of a signal point (CUPED): Σx, Σx² and Σxy over
 * the arm's units, when the source gives them: all three or none (NULL; the
 * connectors' boundary checks hold to that, no CHECK constraint, which a
 * compressed TimescaleDB hypertable may refuse). Nullable columns without a
 * default: adding them rewrites nothing. A revision keeps the old and new
 * covariate beside the old and new totals. Frozen in time: no imports of app
 * code.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_points
              ADD COLUMN cov_sum double precision,
              ADD COLUMN cov_sum_sq double precision,
              ADD COLUMN cov_sum_product double precision`.execute(db);
  await sql`ALTER TABLE signal_point_revisions
              ADD COLUMN old_cov_sum double precision,
              ADD COLUMN old_cov_sum_sq double precision,
              ADD COLUMN old_cov_sum_product double precision,
              ADD COLUMN new_cov_sum double precision,
              ADD COLUMN new_cov_sum_sq double precision,
              ADD COLUMN new_cov_sum_product double precision`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_point_revisions
              DROP COLUMN old_cov_sum, DROP COLUMN old_cov_sum_sq, DROP COLUMN old_cov_sum_product,
              DROP COLUMN new_cov_sum, DROP COLUMN new_cov_sum_sq, DROP COLUMN new_cov_sum_product`.execute(db);
  await sql`ALTER TABLE signal_points DROP COLUMN cov_sum, DROP COLUMN cov_sum_sq, DROP COLUMN cov_sum_product`.execute(
    db,
  );
}
