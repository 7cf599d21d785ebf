/**
 * Learnings: what concluded experiments taught, searchable with Postgres
 * full-text search (the generated `search` tsvector and its GIN index) and,
 * where pgvector is installed and an embedding model configured, by meaning:
 * hybrid ranking fuses the full-text ranking with the cosine similarity of
 * each learning's embedding (`learning_embeddings`) to the query's.
 */
import { sql } from "kysely";
import type { DbOrTrx } from "../database";

export interface LearningRecord {
  readonly id: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly statement: string;
  /** The analysis gate's decision: `ship`, `roll_back`, `iterate` (or `loss`/`win` from imports). */
  readonly decision: string;
  readonly effect: number | null;
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
  readonly tags: readonly string[];
  readonly createdAt: Date;
  /**
   * Relevance to the query, higher first (0 when listed without one): `ts_rank` in a full-text search, the
   * reciprocal-rank-fusion score in a hybrid one. Compare ranks within one answer only.
   */
  readonly rank: number;
  /** Links kept with the learning, e.g. the pull request. */
  readonly links: readonly { readonly label: string; readonly url: string }[];
}

export interface NewLearning {
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly statement: string;
  readonly decision: string;
  readonly effect?: number | null;
  readonly ciLow?: number | null;
  readonly ciHigh?: number | null;
  readonly tags?: readonly string[];
  /** `rules` (default) or `llm:<model>`: what wrote the statement. */
  readonly source?: string;
  /** The analysis gate whose decision concluded the experiment (one learning per gate). */
  readonly gateId?: string | null;
  readonly links?: readonly { readonly label: string; readonly url: string }[];
}

/** Insert a learning; returns its id. */
export async function insertLearning(db: DbOrTrx, l: NewLearning): Promise<string> {
  const row = await db
    .insertInto("learnings")
    .values({
      source: l.source ?? "rules",
      gate_id: l.gateId ?? null,
      workspace_id: l.workspaceId,
      outcome_id: l.outcomeId,
      experiment_id: l.experimentId,
      statement: l.statement,
      decision: l.decision,
      effect: l.effect ?? null,
      ci_low: l.ciLow ?? null,
      ci_high: l.ciHigh ?? null,
      tags: [...(l.tags ?? [])],
      links: JSON.stringify(l.links ?? []),
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A learning's statement and where it came from, for re-summarising. */
export async function findLearningForSummary(
  db: DbOrTrx,
  id: string,
): Promise<{
  id: string;
  workspaceId: string;
  outcomeId: string;
  experimentId: string | null;
  statement: string;
  decision: string;
  effect: number | null;
  ciLow: number | null;
  ciHigh: number | null;
  source: string;
} | null> {
  const row = await db.selectFrom("learnings").selectAll().where("id", "=", id).executeTakeFirst();
  return row
    ? {
        id: row.id,
        workspaceId: row.workspace_id,
        outcomeId: row.outcome_id,
        experimentId: row.experiment_id,
        statement: row.statement,
        decision: row.decision,
        effect: row.effect,
        ciLow: row.ci_low,
        ciHigh: row.ci_high,
        source: row.source,
      }
    : null;
}

/** Replace the statement and tags written by the rules with a model's summary (only while still `rules`). */
export async function replaceLearningSummary(
  db: DbOrTrx,
  id: string,
  summary: { statement: string; tags: readonly string[]; source: string },
): Promise<boolean> {
  const result = await db
    .updateTable("learnings")
    .set({ statement: summary.statement, tags: [...summary.tags], source: summary.source })
    .where("id", "=", id)
    .where("source", "=", "rules")
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** A learning row as the searches select it. */
interface LearningRow {
  id: string;
  outcome_id: string;
  experiment_id: string | null;
  statement: string;
  decision: string;
  effect: number | null;
  ci_low: number | null;
  ci_high: number | null;
  tags: string[];
  created_at: Date;
  rank: number;
  links: { label: string; url: string }[] | null;
}

function toLearning(r: LearningRow): LearningRecord {
  return {
    id: r.id,
    outcomeId: r.outcome_id,
    experimentId: r.experiment_id,
    statement: r.statement,
    decision: r.decision,
    effect: r.effect,
    ciLow: r.ci_low,
    ciHigh: r.ci_high,
    tags: r.tags,
    createdAt: r.created_at,
    rank: r.rank,
    links: Array.isArray(r.links) ? r.links : [],
  };
}

/** The words of a search as full-text terms: lower case, letters and digits only, 3 letters or more, once each. */
function searchTerms(words: readonly string[]): string[] {
  return [...new Set(words.map((w) => w.toLowerCase().replace(/[^a-z0-9]/g, "")).filter((w) => w.length >= 3))];
}

/**
 * A query's embedding, for a hybrid search: the vector, the model and length
 * it was made with (only learnings embedded by the same model and length are
 * compared), and the least cosine similarity (−1 to 1) that counts as a match.
 */
export interface SemanticQuery {
  readonly vector: readonly number[];
  readonly model: string;
  readonly dimensions: number;
  readonly minSimilarity: number;
}

/** Reciprocal rank fusion's constant (Cormack, Clarke and Büttcher, SIGIR 2009: k = 60). */
const RRF_K = 60;
/** How many of each ranking (full text, vector) are fused. */
const FUSION_POOL = 100;

/**
 * The ids of a workspace's learnings matching a query, each with its fused
 * score: `Σ 1 / (60 + position)` over the full-text ranking (`ts_rank`) and,
 * with `semantic`, the vector ranking (cosine distance, matches at or above
 * `minSimilarity`). `narrow` filters both rankings. Every row is read under
 * `workspace_id = workspaceId` on both tables: no other workspace's vector
 * is ever compared.
 */
function fusedMatches(
  workspaceId: string,
  tsquery: string | null,
  semantic: SemanticQuery | null,
  narrow: ReturnType<typeof sql>,
) {
  const ft =
    tsquery === null
      ? sql`SELECT NULL::uuid AS id, 0::bigint AS r WHERE false`
      : sql`SELECT id, row_number() OVER (ORDER BY ts_rank(search, to_tsquery('english', ${tsquery})) DESC,
                                                   created_at DESC, id DESC) AS r
              FROM learnings l
             WHERE workspace_id = ${workspaceId} AND search @@ to_tsquery('english', ${tsquery}) ${narrow}
             ORDER BY r LIMIT ${FUSION_POOL}`;
  // The distance is computed only for rows of the query's model and length (CASE keeps that order): pgvector
  // refuses to compare vectors of different lengths.
  const vec =
    semantic === null
      ? sql`SELECT NULL::uuid AS id, 0::bigint AS r WHERE false`
      : sql`SELECT id, row_number() OVER (ORDER BY distance, id) AS r
              FROM (SELECT l.id,
                           CASE WHEN e.dimensions = ${semantic.dimensions} AND e.model = ${semantic.model}
                                THEN e.embedding <=> ${JSON.stringify(semantic.vector)}::vector END AS distance
                      FROM learning_embeddings e
                      JOIN learnings l ON l.id = e.learning_id AND l.workspace_id = ${workspaceId}
                     WHERE e.workspace_id = ${workspaceId} AND e.embedding IS NOT NULL
                       AND e.model = ${semantic.model} AND e.dimensions = ${semantic.dimensions} ${narrow}
                    OFFSET 0) d
             WHERE distance IS NOT NULL AND 1 - distance >= ${semantic.minSimilarity}
             ORDER BY r LIMIT ${FUSION_POOL}`;
  return sql`SELECT id, sum(1.0 / (${RRF_K} + r))::float8 AS score
               FROM ((${ft}) UNION ALL (${vec})) ranked GROUP BY id`;
}

/** The full-text query of some words (their terms OR-ed), or null when none is 3 letters long. */
function tsqueryOf(words: readonly string[]): string | null {
  const terms = searchTerms(words);
  return terms.length === 0 ? null : terms.join(" | ");
}

/**
 * The learnings of a workspace most relevant to some words, best first: any of
 * the words may match (an OR of the stemmed terms), ranked by `ts_rank`; the
 * learnings of `outcomeId` always come along (they rank first on a tie).
 * With `semantic`, ranked by fusing that full-text ranking with the vector
 * ranking (hybrid): a learning may match by meaning alone.
 */
export async function searchLearnings(
  db: DbOrTrx,
  workspaceId: string,
  words: readonly string[],
  options: { outcomeId?: string; limit?: number; semantic?: SemanticQuery } = {},
): Promise<LearningRecord[]> {
  const query = tsqueryOf(words) ?? "";
  if (options.semantic !== undefined) {
    const matches = fusedMatches(workspaceId, query === "" ? null : query, options.semantic, sql``);
    const rows = await sql<LearningRow>`
      SELECT l.id, outcome_id, experiment_id, statement, decision, effect, ci_low, ci_high, tags, created_at, links,
             COALESCE(m.score, 0)::float8 AS rank
        FROM learnings l LEFT JOIN (${matches}) m ON m.id = l.id
       WHERE l.workspace_id = ${workspaceId} AND (m.id IS NOT NULL OR l.outcome_id = ${options.outcomeId ?? null})
       ORDER BY rank DESC, (l.outcome_id = ${options.outcomeId ?? null}) DESC, l.created_at DESC, l.id DESC
       LIMIT ${options.limit ?? 10}`.execute(db);
    return rows.rows.map(toLearning);
  }
  const rows = await sql<LearningRow>`
    SELECT id, outcome_id, experiment_id, statement, decision, effect, ci_low, ci_high, tags, created_at, links,
           ${query === "" ? sql`0` : sql`ts_rank(search, to_tsquery('english', ${query}))`}::float8 AS rank
      FROM learnings
     WHERE workspace_id = ${workspaceId}
       AND (${query === "" ? sql`false` : sql`search @@ to_tsquery('english', ${query})`}
            OR outcome_id = ${options.outcomeId ?? null})
     ORDER BY rank DESC, (outcome_id = ${options.outcomeId ?? null}) DESC, created_at DESC
     LIMIT ${options.limit ?? 10}`.execute(db);
  return rows.rows.map(toLearning);
}

/**
 * Learnings of a workspace for browsing: with `words`, those matching any of
 * them (stemmed, words under 3 letters ignored), best rank first; without,
 * newest first. `outcomeId` and `tag` narrow the list; at most `limit`.
 * With `words` and `semantic`, hybrid: those matching by full text or by
 * meaning, ranked by the fusion of both rankings.
 */
export async function browseLearnings(
  db: DbOrTrx,
  workspaceId: string,
  options: {
    words?: readonly string[];
    outcomeId?: string;
    tag?: string;
    limit?: number;
    semantic?: SemanticQuery;
  } = {},
): Promise<LearningRecord[]> {
  const narrow = sql`${options.outcomeId === undefined ? sql`` : sql`AND l.outcome_id = ${options.outcomeId}`}
                     ${options.tag === undefined ? sql`` : sql`AND ${options.tag} = ANY (l.tags)`}`;
  if (options.words !== undefined && options.semantic !== undefined) {
    const matches = fusedMatches(workspaceId, tsqueryOf(options.words), options.semantic, narrow);
    const rows = await sql<LearningRow>`
      SELECT l.id, outcome_id, experiment_id, statement, decision, effect, ci_low, ci_high, tags, created_at, links,
             m.score AS rank
        FROM (${matches}) m JOIN learnings l ON l.id = m.id AND l.workspace_id = ${workspaceId}
       ORDER BY rank DESC, l.created_at DESC, l.id DESC
       LIMIT ${options.limit ?? 50}`.execute(db);
    return rows.rows.map(toLearning);
  }
  const terms = options.words === undefined ? null : searchTerms(options.words);
  if (terms !== null && terms.length === 0) return [];
  const query = terms === null ? null : terms.join(" | ");
  const rows = await sql<LearningRow>`
    SELECT id, outcome_id, experiment_id, statement, decision, effect, ci_low, ci_high, tags, created_at, links,
           ${query === null ? sql`0` : sql`ts_rank(search, to_tsquery('english', ${query}))`}::float8 AS rank
      FROM learnings l
     WHERE workspace_id = ${workspaceId}
       ${query === null ? sql`` : sql`AND search @@ to_tsquery('english', ${query})`}
       ${narrow}
     ORDER BY rank DESC, created_at DESC, id DESC
     LIMIT ${options.limit ?? 50}`.execute(db);
  return rows.rows.map(toLearning);
}

/** What the migration found: whether pgvector is installed in this database, its version, or why not. */
export interface SemanticSearchSupport {
  readonly available: boolean;
  readonly version: string | null;
  /** Why not (the extension is not installed, or could not be created), or null. */
  readonly reason: string | null;
}

/** Read `settings.semantic_search`, recorded by the learning-embeddings migration. */
export async function semanticSearchSupport(db: DbOrTrx): Promise<SemanticSearchSupport> {
  const row = await db.selectFrom("settings").select("value").where("key", "=", "semantic_search").executeTakeFirst();
  const value = (row?.value ?? {}) as { available?: unknown; version?: unknown; reason?: unknown };
  return {
    available: value.available === true,
    version: typeof value.version === "string" ? value.version : null,
    reason:
      typeof value.reason === "string"
        ? value.reason
        : value.available === true
          ? null
          : "the learning-embeddings migration has not recorded pgvector support",
  };
}

/**
 * The text of a learning that is embedded, and its sha256 (hex), both in SQL
 * so that what is hashed is exactly what is stored: the statement, then its
 * tags on a line `Tags: a, b`.
 */
const EMBEDDED_TEXT = sql`(l.statement || CASE WHEN cardinality(l.tags) > 0
                             THEN E'\nTags: ' || array_to_string(l.tags, ', ') ELSE '' END)`;
const EMBEDDED_HASH = sql`encode(sha256(convert_to(${EMBEDDED_TEXT}, 'UTF8')), 'hex')`;

/** A learning whose embedding is missing or stale, with the text to embed. */
export interface PendingEmbedding {
  readonly learningId: string;
  readonly workspaceId: string;
  readonly text: string;
  /** sha256 (hex) of `text`. */
  readonly contentHash: string;
}

/**
 * Learnings with no embedding of their current text by `model` at
 * `dimensions` (new, summarised since, or embedded by another model), oldest
 * first, optionally of one workspace. A failed attempt at the same text counts
 * as done until `retryFailedBefore`: a failure last tried before then is due
 * again. Needs pgvector (the table).
 */
export async function listPendingEmbeddings(
  db: DbOrTrx,
  options: { model: string; dimensions: number; retryFailedBefore: Date; workspaceId?: string; limit?: number },
): Promise<PendingEmbedding[]> {
  const rows = await sql<{ id: string; workspace_id: string; text: string; hash: string }>`
    SELECT l.id, l.workspace_id, ${EMBEDDED_TEXT} AS text, ${EMBEDDED_HASH} AS hash
      FROM learnings l
     WHERE ${options.workspaceId === undefined ? sql`true` : sql`l.workspace_id = ${options.workspaceId}`}
       AND NOT EXISTS (
         SELECT 1 FROM learning_embeddings e
          WHERE e.learning_id = l.id AND e.model = ${options.model} AND e.dimensions = ${options.dimensions}
            AND e.content_hash = ${EMBEDDED_HASH}
            AND (e.embedding IS NOT NULL OR e.updated_at >= ${options.retryFailedBefore}))
     ORDER BY l.created_at, l.id
     LIMIT ${options.limit ?? 500}`.execute(db);
  return rows.rows.map((r) => ({ learningId: r.id, workspaceId: r.workspace_id, text: r.text, contentHash: r.hash }));
}

/** The embedding of one learning's text, or the error of the attempt that failed to get it. */
export type EmbeddingOutcome =
  | { readonly embedding: readonly number[]; readonly error?: undefined }
  | { readonly embedding?: undefined; readonly error: string };

/**
 * Record a learning's embedding, or why there is none (replacing what was
 * there; `attempts` counts the tries at the same text). A learning deleted
 * meanwhile is skipped. Needs pgvector (the table).
 */
export async function saveLearningEmbedding(
  db: DbOrTrx,
  row: {
    learningId: string;
    workspaceId: string;
    model: string;
    dimensions: number;
    contentHash: string;
    at: Date;
  } & EmbeddingOutcome,
): Promise<void> {
  const vector = row.embedding === undefined ? null : JSON.stringify(row.embedding);
  await sql`
    INSERT INTO learning_embeddings (learning_id, workspace_id, model, dimensions, content_hash, embedding, error,
                                     attempts, created_at, updated_at)
    SELECT l.id, l.workspace_id, ${row.model}, ${row.dimensions}, ${row.contentHash}, ${vector}::vector,
           ${row.error ?? null}, 1, ${row.at}, ${row.at}
      FROM learnings l WHERE l.id = ${row.learningId} AND l.workspace_id = ${row.workspaceId}
    ON CONFLICT (learning_id) DO UPDATE
       SET model = EXCLUDED.model, dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding,
           error = EXCLUDED.error, updated_at = EXCLUDED.updated_at,
           attempts = CASE WHEN learning_embeddings.content_hash = EXCLUDED.content_hash
                            AND learning_embeddings.model = EXCLUDED.model
                           THEN learning_embeddings.attempts + 1 ELSE 1 END,
           content_hash = EXCLUDED.content_hash`.execute(db);
}

/** A learning's embedding row as stored (the vector's length, not the vector), or null. Needs pgvector. */
export async function findLearningEmbedding(
  db: DbOrTrx,
  learningId: string,
): Promise<{
  model: string;
  dimensions: number;
  contentHash: string;
  embedded: boolean;
  error: string | null;
  attempts: number;
} | null> {
  const rows = await sql<{
    model: string;
    dimensions: number;
    content_hash: string;
    embedded: boolean;
    error: string | null;
    attempts: number;
  }>`SELECT model, dimensions, content_hash, embedding IS NOT NULL AS embedded, error, attempts
       FROM learning_embeddings WHERE learning_id = ${learningId}`.execute(db);
  const r = rows.rows[0];
  return r === undefined
    ? null
    : {
        model: r.model,
        dimensions: r.dimensions,
        contentHash: r.content_hash,
        embedded: r.embedded,
        error: r.error,
        attempts: r.attempts,
      };
}
