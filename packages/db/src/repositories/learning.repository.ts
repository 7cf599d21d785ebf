/**
 * Learnings: what concluded experiments taught, searchable with Postgres
 * full-text search (the generated `search` tsvector and its GIN index).
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
  /** Full-text rank against the query (0 when listed without one). */
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
 * The learnings of a workspace most relevant to some words, best first: any of
 * the words may match (an OR of the stemmed terms), ranked by `ts_rank`; the
 * learnings of `outcomeId` always come along (they rank first on a tie).
 */
export async function searchLearnings(
  db: DbOrTrx,
  workspaceId: string,
  words: readonly string[],
  options: { outcomeId?: string; limit?: number } = {},
): Promise<LearningRecord[]> {
  const terms = searchTerms(words);
  const query = terms.join(" | ");
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
 */
export async function browseLearnings(
  db: DbOrTrx,
  workspaceId: string,
  options: { words?: readonly string[]; outcomeId?: string; tag?: string; limit?: number } = {},
): Promise<LearningRecord[]> {
  const terms = options.words === undefined ? null : searchTerms(options.words);
  if (terms !== null && terms.length === 0) return [];
  const query = terms === null ? null : terms.join(" | ");
  const rows = await sql<LearningRow>`
    SELECT id, outcome_id, experiment_id, statement, decision, effect, ci_low, ci_high, tags, created_at, links,
           ${query === null ? sql`0` : sql`ts_rank(search, to_tsquery('english', ${query}))`}::float8 AS rank
      FROM learnings
     WHERE workspace_id = ${workspaceId}
       ${query === null ? sql`` : sql`AND search @@ to_tsquery('english', ${query})`}
       ${options.outcomeId === undefined ? sql`` : sql`AND outcome_id = ${options.outcomeId}`}
       ${options.tag === undefined ? sql`` : sql`AND ${options.tag} = ANY (tags)`}
     ORDER BY rank DESC, created_at DESC, id DESC
     LIMIT ${options.limit ?? 50}`.execute(db);
  return rows.rows.map(toLearning);
}
