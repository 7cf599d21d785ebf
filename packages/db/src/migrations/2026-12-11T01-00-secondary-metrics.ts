/**
 * Secondary metrics (outcome.yaml `secondary_metrics`): a signal series may
 * now hold one, role `secondary`, polled and analysed like a guardrail but
 * never acted on.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE signal_series DROP CONSTRAINT signal_series_role_check,
              ADD CONSTRAINT signal_series_role_check CHECK (role IN ('primary', 'guardrail', 'secondary', 'outcome'))`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DELETE FROM signal_series WHERE role = 'secondary'`.execute(db);
  await sql`ALTER TABLE signal_series DROP CONSTRAINT signal_series_role_check,
              ADD CONSTRAINT signal_series_role_check CHECK (role IN ('primary', 'guardrail', 'outcome'))`.execute(db);
}
