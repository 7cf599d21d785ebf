/**
 * Semantic search of learnings turned on after the first migration: a server
 * that gets pgvector later (installed by the operator, or the extension
 * created by a superuser once the runtime's role could not), without a new
 * migration. The learning-embeddings migration recorded pgvector absent; at
 * every start, when `vector` has become available, this creates the extension
 * and `learning_embeddings` as that migration would have, and records it.
 * The DDL is the migration's (2026-12-17T00-00-learning-embeddings), written
 * again here because migrations stay frozen.
 */
import { sql } from "kysely";
import type { Db, DbOrTrx } from "./database";
import { type SemanticSearchSupport, semanticSearchSupport } from "./repositories/learning.repository";

/**
 * Turn semantic search on if the migration recorded pgvector absent and it is
 * available now. Idempotent and cheap when nothing changed (one read). Never
 * throws for a refusal (e.g. the role may not create the extension): the
 * recorded reason is updated instead.
 *
 * @returns what `settings.semantic_search` says afterwards.
 */
export async function enableSemanticSearch(db: Db): Promise<SemanticSearchSupport> {
  const before = await semanticSearchSupport(db);
  if (before.available) return before;
  const offered = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`.execute(db);
  if ((offered.rows[0]?.n ?? 0) === 0) return before;
  try {
    await db.transaction().execute(async (trx) => {
      await sql`CREATE EXTENSION IF NOT EXISTS vector`.execute(trx);
      await sql`
        CREATE TABLE IF NOT EXISTS learning_embeddings (
          learning_id uuid PRIMARY KEY REFERENCES learnings (id) ON DELETE CASCADE,
          workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
          model text NOT NULL,
          dimensions integer NOT NULL CHECK (dimensions > 0),
          content_hash text NOT NULL,
          embedding vector,
          error text,
          attempts integer NOT NULL DEFAULT 1,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CHECK ((embedding IS NULL) <> (error IS NULL)),
          CHECK (embedding IS NULL OR vector_dims(embedding) = dimensions)
        )`.execute(trx);
      await sql`CREATE INDEX IF NOT EXISTS learning_embeddings_workspace_idx
                  ON learning_embeddings (workspace_id, model, dimensions)`.execute(trx);
      const v = await sql<{ v: string }>`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`.execute(
        trx,
      );
      await record(trx, { available: true, version: v.rows[0]?.v ?? null, reason: null });
    });
  } catch (error) {
    const reason = `CREATE EXTENSION vector failed: ${(error as Error).message}`;
    if (reason !== before.reason) await record(db, { available: false, version: null, reason });
  }
  return semanticSearchSupport(db);
}

async function record(db: DbOrTrx, value: SemanticSearchSupport): Promise<void> {
  await sql`INSERT INTO settings (key, value) VALUES ('semantic_search', ${JSON.stringify(value)}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`.execute(db);
}
