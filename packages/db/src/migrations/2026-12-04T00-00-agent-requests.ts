/**
 * Agents ask people: a fourth gate kind, `agent_request`, opened by a coding
 * agent with a question about the experiment it builds (MCP
 * `request_human_gate`); answered yes or no, with a reason.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE gates DROP CONSTRAINT gates_kind_check`.execute(db);
  await sql`ALTER TABLE gates ADD CONSTRAINT gates_kind_check
            CHECK (kind IN ('portfolio_review', 'launch_approval', 'analysis_review', 'agent_request'))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DELETE FROM gates WHERE kind = 'agent_request'`.execute(db);
  await sql`ALTER TABLE gates DROP CONSTRAINT gates_kind_check`.execute(db);
  await sql`ALTER TABLE gates ADD CONSTRAINT gates_kind_check
            CHECK (kind IN ('portfolio_review', 'launch_approval', 'analysis_review'))`.execute(db);
}
