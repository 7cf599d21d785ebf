import type { AuditEvent, DecisionChannel, Role } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

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
  return rows.map((r) => ({
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
  }));
}
