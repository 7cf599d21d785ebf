/**
 * Imports into a workspace as a state of their own: `POST /v1/import/begin`
 * opens one (only into an empty workspace), the per-table imports write only
 * while one is open (they lock its row), and `finish` closes it. At most one
 * open import per workspace (partial unique index).
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE imports (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              started_by text NOT NULL,
              started_at timestamptz NOT NULL DEFAULT now(),
              manifest jsonb NOT NULL,
              finished_at timestamptz
            )`.execute(db);
  await sql`CREATE UNIQUE INDEX imports_one_open ON imports (workspace_id) WHERE finished_at IS NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE imports`.execute(db);
}
