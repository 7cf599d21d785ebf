/**
 * Workspace secrets: source credentials (connection strings, service account
 * secrets) an admin stores for the workspace's connectors to name
 * (`database_url_secret: analytics-db`). Only ciphertext is kept: AES-256-GCM
 * under the operator's OUTCOME_RUNTIME_SECRETS_KEY, bound to the workspace
 * and the name; `key_id` says which key sealed it.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE workspace_secrets (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
              description text NOT NULL DEFAULT '',
              ciphertext bytea NOT NULL,
              key_id text NOT NULL,
              version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
              created_by text NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(),
              updated_by text NOT NULL,
              updated_at timestamptz NOT NULL DEFAULT now(),
              last_used_at timestamptz,
              UNIQUE (workspace_id, name)
            )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE workspace_secrets`.execute(db);
}
