import { type AuditEvent, type DecisionChannel, DomainError, type Role } from "@outcome-runtime/core";
import type { Selectable } from "kysely";
import type { DbOrTrx } from "../database";
import type { AuditEventsTable } from "../schema";
import type { Page } from "./pagination";

export type NewAuditEvent = Omit<AuditEvent, "id" | "at">;

/** Append one audit event. Call inside the transaction of the change it records. */
export async function insertAuditEvent(db: DbOrTrx, event: NewAuditEvent): Promise<void> {
  await db
    .insertInto("audit_events")
    .values({
      workspace_id: event.workspaceId,
      actor_id: event.actor?.id ?? null,
      actor_name: event.actor?.name ?? null,
      actor_role: event.actor?.role ?? null,
      channel: event.channel,
      action: event.action,
      subject_type: event.subjectType,
      subject_id: event.subjectId,
      before: event.before === undefined ? null : JSON.stringify(event.before),
      after: event.after === undefined ? null : JSON.stringify(event.after),
      request_id: event.requestId,
    })
    .execute();
}

export interface AuditQuery {
  readonly subjectType?: AuditEvent["subjectType"];
  readonly subjectId?: string;
  readonly action?: string;
  readonly limit?: number;
}

/** Audit events of a workspace, newest first. */
export async function listAuditEvents(db: DbOrTrx, workspaceId: string, query: AuditQuery = {}): Promise<AuditEvent[]> {
  let q = db.selectFrom("audit_events").selectAll().where("workspace_id", "=", workspaceId);
  if (query.subjectType) q = q.where("subject_type", "=", query.subjectType);
  if (query.subjectId) q = q.where("subject_id", "=", query.subjectId);
  if (query.action) q = q.where("action", "=", query.action);
  const rows = await q
    .orderBy("id", "desc")
    .limit(Math.min(query.limit ?? 100, 1000))
    .execute();
  return rows.map(toAuditEvent);
}

function toAuditEvent(r: Selectable<AuditEventsTable>): AuditEvent {
  return {
    id: String(r.id),
    workspaceId: r.workspace_id,
    at: r.at,
    actor:
      r.actor_id === null
        ? null
        : { id: r.actor_id, name: r.actor_name ?? "", role: (r.actor_role ?? "member") as Role },
    channel: r.channel as DecisionChannel,
    action: r.action,
    subjectType: r.subject_type as AuditEvent["subjectType"],
    subjectId: r.subject_id,
    before: r.before,
    after: r.after,
    requestId: r.request_id,
  };
}

export interface AuditPageQuery extends AuditQuery {
  /** The actor's name (e.g. the key name or the email of a person). */
  readonly actorName?: string;
  readonly channel?: DecisionChannel;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** A page of audit events of a workspace, newest first: `nextCursor` is the base64url of the last id shown. */
export async function listAuditEventsPage(
  db: DbOrTrx,
  workspaceId: string,
  query: AuditPageQuery = {},
): Promise<Page<AuditEvent>> {
  const limit = Math.min(Math.max(Math.trunc(query.limit ?? 100), 1), 1000);
  let q = db.selectFrom("audit_events").selectAll().where("workspace_id", "=", workspaceId);
  if (query.subjectType) q = q.where("subject_type", "=", query.subjectType);
  if (query.subjectId) q = q.where("subject_id", "=", query.subjectId);
  if (query.action) q = q.where("action", "=", query.action);
  if (query.actorName) q = q.where("actor_name", "=", query.actorName);
  if (query.channel) q = q.where("channel", "=", query.channel);
  if (query.cursor !== undefined) q = q.where("id", "<", decodeAuditCursor(query.cursor));
  const rows = await q
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  const kept = rows.slice(0, limit);
  const last = kept.at(-1);
  return {
    items: kept.map(toAuditEvent),
    nextCursor: rows.length > limit && last ? Buffer.from(String(last.id)).toString("base64url") : null,
  };
}

/** @throws DomainError `validation_failed` when the cursor is not one of ours. */
function decodeAuditCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString("utf8");
  if (!/^[1-9][0-9]{0,18}$/.test(id)) {
    throw new DomainError(
      "validation_failed",
      `cursor "${cursor}" is not valid; use the nextCursor of a previous page`,
      {
        field: "cursor",
      },
    );
  }
  return id;
}

/**
 * Audit events of every workspace with an id above `afterId`, oldest first (at
 * most `limit`): what the live stream sends. Ids come from a sequence, so a
 * transaction that commits late may show an id below one already read.
 */
export async function listAuditEventsAfter(db: DbOrTrx, afterId: string, limit = 500): Promise<AuditEvent[]> {
  const rows = await db
    .selectFrom("audit_events")
    .selectAll()
    .where("id", ">", afterId)
    .orderBy("id", "asc")
    .limit(limit)
    .execute();
  return rows.map(toAuditEvent);
}

/** The highest audit event id, `"0"` when there is none: where the live stream starts. */
export async function latestAuditEventId(db: DbOrTrx): Promise<string> {
  const row = await db
    .selectFrom("audit_events")
    .select((eb) => eb.fn.max("id").as("max"))
    .executeTakeFirst();
  return row?.max == null ? "0" : String(row.max);
}
