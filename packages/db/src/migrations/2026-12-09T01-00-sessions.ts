/**
 * Dashboard sessions, held by the server: signing in with an API key creates a
 * row, the browser's cookie holds a random session token whose SHA-256 only is
 * stored here (never the key). Signing out revokes the row; revoking the key
 * ends its sessions (the lookup joins the key); a session ends after
 * `expires_at` (absolute) or when `last_seen_at` is older than the idle limit
 * the application applies. `last_seen_at` is written at most once a minute.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE sessions (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
              token_hash text NOT NULL UNIQUE,
              created_at timestamptz NOT NULL DEFAULT now(),
              expires_at timestamptz NOT NULL,
              last_seen_at timestamptz NOT NULL DEFAULT now(),
              revoked_at timestamptz,
              CHECK (expires_at > created_at)
            )`.execute(db);
  await sql`CREATE INDEX sessions_api_key ON sessions (api_key_id) WHERE revoked_at IS NULL`.execute(db);
  await sql`CREATE INDEX sessions_expires_at ON sessions (expires_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE sessions`.execute(db);
}
