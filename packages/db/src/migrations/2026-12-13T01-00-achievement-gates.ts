/**
 * Achievement an owner confirms: a fifth gate kind, `achievement_review`,
 * opened by the worker once an outcome's signal has stayed past its target for
 * `target.sustain`; approving it marks the outcome achieved. At most one is
 * pending per outcome.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE gates DROP CONSTRAINT gates_kind_check`.execute(db);
  await sql`ALTER TABLE gates ADD CONSTRAINT gates_kind_check
            CHECK (kind IN ('portfolio_review', 'launch_approval', 'analysis_review', 'agent_request',
                            'achievement_review'))`.execute(db);
  await sql`CREATE UNIQUE INDEX gates_one_pending_achievement ON gates (outcome_id)
            WHERE kind = 'achievement_review' AND status = 'pending'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX gates_one_pending_achievement`.execute(db);
  await sql`DELETE FROM gates WHERE kind = 'achievement_review'`.execute(db);
  await sql`ALTER TABLE gates DROP CONSTRAINT gates_kind_check`.execute(db);
  await sql`ALTER TABLE gates ADD CONSTRAINT gates_kind_check
            CHECK (kind IN ('portfolio_review', 'launch_approval', 'analysis_review', 'agent_request'))`.execute(db);
}
