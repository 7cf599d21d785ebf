import {
  isOutcomeClosed,
  type Outcome,
  type OutcomeRevision,
  type OutcomeState,
  type StoredSpec,
} from "@outcome-runtime/core";
import type { Selectable } from "kysely";
import type { DbOrTrx } from "../database";
import type { OutcomeRevisionsTable, OutcomesTable } from "../schema";
import { cursorTs, type Page, type PageRequest, pageAfter, pageLimit, toPage, UUID } from "./pagination";

function toOutcome(row: Selectable<OutcomesTable>): Outcome {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    slug: row.slug,
    name: row.name,
    owner: row.owner,
    state: row.state as OutcomeState,
    revision: row.revision,
    contentHash: row.content_hash,
    spec: row.spec as StoredSpec,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    activatedAt: row.activated_at,
    closedAt: row.closed_at,
  };
}

function toRevision(row: Selectable<OutcomeRevisionsTable>): OutcomeRevision {
  return {
    outcomeId: row.outcome_id,
    revision: row.revision,
    contentHash: row.content_hash,
    source: row.source,
    spec: row.spec as StoredSpec,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

export interface OutcomeLookup {
  /**
   * Lock the row until the transaction ends (`FOR NO KEY UPDATE`: it serialises
   * writers of the outcome without blocking inserts that reference it).
   */
  readonly forUpdate?: boolean;
  /**
   * Share-lock the row until the transaction ends (`FOR SHARE`): the outcome's
   * writers wait, readers and inserts that reference it do not.
   */
  readonly forShare?: boolean;
  /** Match the slug only, even when the value looks like an id. */
  readonly bySlug?: boolean;
}

/** An outcome by id in any workspace (for the worker, which serves every workspace); null for a non-UUID. */
export async function findOutcomeById(db: DbOrTrx, id: string): Promise<Outcome | null> {
  if (!UUID.test(id)) return null;
  const row = await db.selectFrom("outcomes").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toOutcome(row) : null;
}

/** Find an outcome of a workspace by its id or its slug (the `id:` of outcome.yaml). */
export async function findOutcome(
  db: DbOrTrx,
  workspaceId: string,
  idOrSlug: string,
  lookup: OutcomeLookup = {},
): Promise<Outcome | null> {
  const isUuid = !lookup.bySlug && UUID.test(idOrSlug);
  let q = db
    .selectFrom("outcomes")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where(isUuid ? "id" : "slug", "=", idOrSlug);
  if (lookup.forUpdate) q = q.forNoKeyUpdate();
  else if (lookup.forShare) q = q.forShare();
  const row = await q.executeTakeFirst();
  return row ? toOutcome(row) : null;
}

export interface NewOutcome {
  readonly workspaceId: string;
  readonly slug: string;
  readonly name: string;
  readonly owner: string;
  readonly contentHash: string;
  readonly spec: StoredSpec;
}

/**
 * Insert a draft outcome at revision 1, unless one with the slug exists
 * (returns null then: a concurrent apply won the race).
 */
export async function insertOutcome(db: DbOrTrx, outcome: NewOutcome): Promise<Outcome | null> {
  const row = await db
    .insertInto("outcomes")
    .values({
      workspace_id: outcome.workspaceId,
      slug: outcome.slug,
      name: outcome.name,
      owner: outcome.owner,
      state: "draft",
      revision: 1,
      content_hash: outcome.contentHash,
      spec: JSON.stringify(outcome.spec),
    })
    .onConflict((oc) => oc.columns(["workspace_id", "slug"]).doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toOutcome(row) : null;
}

/** Point an outcome at a new revision's content. */
export async function updateOutcomeContent(
  db: DbOrTrx,
  id: string,
  content: { revision: number; contentHash: string; spec: StoredSpec; name: string; owner: string },
): Promise<Outcome> {
  const row = await db
    .updateTable("outcomes")
    .set({
      revision: content.revision,
      content_hash: content.contentHash,
      spec: JSON.stringify(content.spec),
      name: content.name,
      owner: content.owner,
      updated_at: new Date(),
    })
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return toOutcome(row);
}

/**
 * Move an outcome from `from` to `to` with one conditional UPDATE. Returns null
 * when the outcome is no longer in `from` (someone else moved it first).
 */
export async function updateOutcomeState(
  db: DbOrTrx,
  id: string,
  from: OutcomeState,
  to: OutcomeState,
  at: Date,
): Promise<Outcome | null> {
  const row = await db
    .updateTable("outcomes")
    .set({
      state: to,
      updated_at: at,
      ...(to === "active" ? { activated_at: at } : {}),
      ...(isOutcomeClosed(to) ? { closed_at: at } : {}),
    })
    .where("id", "=", id)
    .where("state", "=", from)
    .returningAll()
    .executeTakeFirst();
  return row ? toOutcome(row) : null;
}

export async function listOutcomes(
  db: DbOrTrx,
  workspaceId: string,
  filter: { state?: OutcomeState | undefined } & PageRequest,
): Promise<Page<Outcome>> {
  const limit = pageLimit(filter);
  let q = db.selectFrom("outcomes").selectAll().where("workspace_id", "=", workspaceId);
  if (filter.state) q = q.where("state", "=", filter.state);
  if (filter.cursor) q = q.where(pageAfter(filter.cursor));
  const rows = await q
    .select(cursorTs)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  return toPage(rows, limit, toOutcome);
}

export async function insertRevision(
  db: DbOrTrx,
  revision: OutcomeRevision & { workspaceId: string },
): Promise<OutcomeRevision> {
  const row = await db
    .insertInto("outcome_revisions")
    .values({
      workspace_id: revision.workspaceId,
      outcome_id: revision.outcomeId,
      revision: revision.revision,
      content_hash: revision.contentHash,
      source: revision.source,
      spec: JSON.stringify(revision.spec),
      created_by: revision.createdBy,
      created_at: revision.createdAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRevision(row);
}

/** Revisions of an outcome, newest first. */
/**
 * Revisions of an outcome, newest first, a page at a time (`limit` 1–200,
 * default 50). Scoped to the workspace: another workspace's outcome id gives an
 * empty page.
 *
 * @throws DomainError `validation_failed` for a cursor no page made.
 */
export async function listRevisions(
  db: DbOrTrx,
  workspaceId: string,
  outcomeId: string,
  page: PageRequest = {},
): Promise<Page<OutcomeRevision>> {
  const limit = pageLimit(page);
  let q = db
    .selectFrom("outcome_revisions")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where("outcome_id", "=", outcomeId);
  if (page.cursor) q = q.where(pageAfter(page.cursor));
  const rows = await q
    .select(cursorTs)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  return toPage(rows, limit, toRevision);
}

/**
 * Who made the revisions of an outcome created at or after `since`, newest
 * first (number, `created_by`, `created_at`; not their content).
 */
export async function listRevisionAuthorsSince(
  db: DbOrTrx,
  outcomeId: string,
  since: Date,
): Promise<{ revision: number; createdBy: string; createdAt: Date }[]> {
  const rows = await db
    .selectFrom("outcome_revisions")
    .select(["revision", "created_by", "created_at"])
    .where("outcome_id", "=", outcomeId)
    .where("created_at", ">=", since)
    .orderBy("revision", "desc")
    .execute();
  return rows.map((r) => ({ revision: r.revision, createdBy: r.created_by, createdAt: r.created_at }));
}
