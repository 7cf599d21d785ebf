/**
 * API key scopes: a key carries `scopes` ⊆ {read, write, admin}, and may do
 * what both its role and its scopes allow. Keys that exist get what their role
 * allows (admin: all three; other roles: read and write), so nothing they did
 * before stops working. Only an admin key may carry `admin`; a key has at
 * least one scope. No column default: the default depends on the role, so the
 * application always writes the scopes.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE api_keys ADD COLUMN scopes text[]`.execute(db);
  await sql`UPDATE api_keys
            SET scopes = CASE WHEN role = 'admin' THEN ARRAY['read', 'write', 'admin'] ELSE ARRAY['read', 'write'] END`.execute(
    db,
  );
  await sql`ALTER TABLE api_keys ALTER COLUMN scopes SET NOT NULL`.execute(db);
  await sql`ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
            CHECK (cardinality(scopes) > 0
                   AND scopes <@ ARRAY['read', 'write', 'admin']::text[]
                   AND (role = 'admin' OR NOT ('admin' = ANY (scopes))))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN scopes`.execute(db);
}
