/**
 * The `viewer` role: a person who reads what a member reads and changes
 * nothing. `api_keys.role` may now be `viewer` (the CHECK the initial
 * migration named `api_keys_role_check` is replaced), and a viewer's key holds
 * `read` only (`api_keys_viewer_scopes_check`), as the application already
 * refuses, so a key edited by hand cannot write either.
 *
 * `down` restores the former CHECK. It refuses while viewer keys exist: the
 * schema before has no role they could keep (making them members would let
 * them write), so an operator deletes them first, knowingly.
 *
 * Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check`.execute(db);
  await sql`ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
            CHECK (role IN ('admin', 'member', 'approver', 'viewer', 'agent'))`.execute(db);
  await sql`ALTER TABLE api_keys ADD CONSTRAINT api_keys_viewer_scopes_check
            CHECK (role <> 'viewer' OR scopes = ARRAY['read']::text[])`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const viewers = await sql<{ n: number }>`SELECT count(*)::int AS n FROM api_keys WHERE role = 'viewer'`.execute(db);
  const n = viewers.rows[0]?.n ?? 0;
  if (n > 0) {
    throw new Error(
      `${n} API key(s) have the viewer role, which the schema before this migration cannot hold; ` +
        "delete them first (DELETE FROM api_keys WHERE role = 'viewer'), then migrate down again",
    );
  }
  await sql`ALTER TABLE api_keys DROP CONSTRAINT api_keys_viewer_scopes_check`.execute(db);
  await sql`ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check`.execute(db);
  await sql`ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
            CHECK (role IN ('admin', 'member', 'approver', 'agent'))`.execute(db);
}
