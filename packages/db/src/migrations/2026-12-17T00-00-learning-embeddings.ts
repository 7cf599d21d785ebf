/**
 * Semantic search over learnings with pgvector, where the server has it.
 *
 * When `vector` is in `pg_available_extensions`, the extension is created (in
 * a savepoint, so a refusal, e.g. a role that may not create it, leaves the
 * migration's transaction usable) and `learning_embeddings` holds one row per
 * learning: the model and dimensions that embedded it, the sha256 of the text
 * embedded (so the backfill skips what is already done), and the vector, or
 * the error of the last failed attempt (the learning stays searchable by full
 * text meanwhile).
 *
 * The column is `vector` without a fixed dimension: the operator chooses the
 * embedding model (OpenAI's text-embedding-3-small has 1536, Ollama's
 * nomic-embed-text 768), and changing it must not need a migration. Rows of
 * another model or dimension are simply not compared (the search filters on
 * both) and are re-embedded by the backfill. Without a fixed dimension there is
 * no HNSW/IVFFlat index: the search is an exact scan of one workspace's rows,
 * which is both correct under the workspace filter (an approximate index
 * filtered afterwards can return fewer than asked) and fast at the size of a
 * learning library (thousands of rows).
 *
 * Either way `settings.semantic_search` records what happened:
 * `{ available, version, reason }`. Without pgvector nothing else is created.
 * Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations are written against an untyped database on purpose
export async function up(db: Kysely<any>): Promise<void> {
  let available = false;
  let reason: string | null = null;
  let version: string | null = null;
  const offered = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`.execute(db);
  if ((offered.rows[0]?.n ?? 0) === 0) {
    reason = "the pgvector extension (vector) is not installed on this PostgreSQL server";
  } else {
    await sql`SAVEPOINT try_pgvector`.execute(db);
    try {
      await sql`CREATE EXTENSION IF NOT EXISTS vector`.execute(db);
      await sql`
        CREATE TABLE learning_embeddings (
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
        )`.execute(db);
      await sql`CREATE INDEX learning_embeddings_workspace_idx
                  ON learning_embeddings (workspace_id, model, dimensions)`.execute(db);
      const v = await sql<{ v: string }>`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`.execute(db);
      version = v.rows[0]?.v ?? null;
      await sql`RELEASE SAVEPOINT try_pgvector`.execute(db);
      available = true;
    } catch (error) {
      await sql`ROLLBACK TO SAVEPOINT try_pgvector`.execute(db);
      reason = `CREATE EXTENSION vector failed: ${(error as Error).message}`;
    }
  }
  await sql`INSERT INTO settings (key, value)
            VALUES ('semantic_search', ${JSON.stringify({ available, version, reason })}::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE IF EXISTS learning_embeddings`.execute(db);
  await sql`DELETE FROM settings WHERE key = 'semantic_search'`.execute(db);
}
