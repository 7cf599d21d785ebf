/**
 * Gate emails: the notification outbox (one row per gate, recipient and
 * reason) and the decision tokens of their links, stored only as SHA-256
 * hashes.
 */
import { sql } from "kysely";
import type { DbOrTrx } from "../database";
import { UUID } from "./pagination";

export type NotificationReason = "opened" | "reminder" | "escalation";
export type NotificationStatus = "pending" | "sending" | "sent" | "failed" | "cancelled";

export interface GateNotification {
  readonly id: string;
  readonly workspaceId: string;
  readonly gateId: string;
  readonly recipient: string;
  readonly reason: NotificationReason;
  readonly status: NotificationStatus;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly messageId: string | null;
  readonly claimedAt: Date | null;
  readonly sentAt: Date | null;
  readonly createdAt: Date;
}

function toNotification(row: {
  id: string;
  workspace_id: string;
  gate_id: string;
  recipient: string;
  reason: string;
  status: string;
  attempts: number;
  last_error: string | null;
  message_id: string | null;
  claimed_at: Date | null;
  sent_at: Date | null;
  created_at: Date;
}): GateNotification {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    gateId: row.gate_id,
    recipient: row.recipient,
    reason: row.reason as NotificationReason,
    status: row.status as NotificationStatus,
    attempts: row.attempts,
    lastError: row.last_error,
    messageId: row.message_id,
    claimedAt: row.claimed_at,
    sentAt: row.sent_at,
    createdAt: row.created_at,
  };
}

/**
 * Record notifications to send; a (gate, recipient, reason) already recorded
 * is skipped, so a duplicated reminder job records nothing new.
 *
 * @returns the ids of the rows this call inserted.
 */
export async function insertNotifications(
  db: DbOrTrx,
  rows: readonly { workspaceId: string; gateId: string; recipient: string; reason: NotificationReason; at: Date }[],
): Promise<string[]> {
  if (rows.length === 0) return [];
  const inserted = await db
    .insertInto("gate_notifications")
    .values(
      rows.map((r) => ({
        workspace_id: r.workspaceId,
        gate_id: r.gateId,
        recipient: r.recipient.toLowerCase(),
        reason: r.reason,
        created_at: r.at,
      })),
    )
    .onConflict((oc) => oc.constraint("gate_notifications_once").doNothing())
    .returning("id")
    .execute();
  return inserted.map((r) => r.id);
}

export async function findNotification(db: DbOrTrx, id: string): Promise<GateNotification | null> {
  if (!UUID.test(id)) return null;
  const row = await db.selectFrom("gate_notifications").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toNotification(row) : null;
}

export async function listNotificationsOfGate(db: DbOrTrx, gateId: string): Promise<GateNotification[]> {
  const rows = await db
    .selectFrom("gate_notifications")
    .selectAll()
    .where("gate_id", "=", gateId)
    .orderBy("created_at")
    .orderBy("recipient")
    .execute();
  return rows.map(toNotification);
}

/**
 * Claim a notification for sending: `pending`, or `sending` with a claim older
 * than `staleBefore` (a worker died mid-send). One conditional UPDATE, so of
 * two workers holding duplicate jobs exactly one gets the row.
 */
export async function claimNotification(
  db: DbOrTrx,
  id: string,
  at: Date,
  staleBefore: Date,
): Promise<GateNotification | null> {
  const row = await db
    .updateTable("gate_notifications")
    .set((eb) => ({ status: "sending", claimed_at: at, attempts: eb("attempts", "+", 1) }))
    .where("id", "=", id)
    .where((eb) =>
      eb.or([eb("status", "=", "pending"), eb.and([eb("status", "=", "sending"), eb("claimed_at", "<", staleBefore)])]),
    )
    .returningAll()
    .executeTakeFirst();
  return row ? toNotification(row) : null;
}

/** Mark a claimed notification sent (or its gate closed: `cancelled`). */
export async function finishNotification(
  db: DbOrTrx,
  id: string,
  outcome:
    | { status: "sent"; messageId: string | null; at: Date }
    | { status: "cancelled"; reason: string }
    | { status: "failed"; error: string; final: boolean },
): Promise<void> {
  if (outcome.status === "sent") {
    await db
      .updateTable("gate_notifications")
      .set({ status: "sent", sent_at: outcome.at, message_id: outcome.messageId, last_error: null })
      .where("id", "=", id)
      .execute();
  } else if (outcome.status === "cancelled") {
    await db
      .updateTable("gate_notifications")
      .set({ status: "cancelled", last_error: outcome.reason })
      .where("id", "=", id)
      .execute();
  } else {
    await db
      .updateTable("gate_notifications")
      .set({ status: outcome.final ? "failed" : "pending", last_error: outcome.error.slice(0, 2000), claimed_at: null })
      .where("id", "=", id)
      .execute();
  }
}

/** Cancel the unsent notifications of a gate (it was decided or closed). */
export async function cancelPendingNotifications(db: DbOrTrx, gateId: string, reason: string): Promise<number> {
  const result = await db
    .updateTable("gate_notifications")
    .set({ status: "cancelled", last_error: reason })
    .where("gate_id", "=", gateId)
    .where("status", "=", "pending")
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Notifications waiting to be sent, and claims older than `staleBefore`, oldest first. */
export async function listOpenNotificationIds(db: DbOrTrx, staleBefore: Date, limit = 500): Promise<string[]> {
  const rows = await db
    .selectFrom("gate_notifications")
    .select("id")
    .where((eb) =>
      eb.or([eb("status", "=", "pending"), eb.and([eb("status", "=", "sending"), eb("claimed_at", "<", staleBefore)])]),
    )
    .orderBy("created_at")
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/** Gate emails not sent yet across every workspace (waiting, or claimed by a worker), and the oldest one's creation. */
export async function notificationBacklog(db: DbOrTrx): Promise<{ count: number; oldestAt: Date | null }> {
  const row = await db
    .selectFrom("gate_notifications")
    .select([sql<number>`count(*)::int`.as("count"), (eb) => eb.fn.min<Date | null>("created_at").as("oldest_at")])
    .where("status", "in", ["pending", "sending"])
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldestAt: row.oldest_at };
}

export interface GateToken {
  readonly id: string;
  readonly workspaceId: string;
  readonly gateId: string;
  readonly notificationId: string | null;
  readonly recipient: string;
  readonly decision: string;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly usedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly revokedReason: "decided" | "superseded" | "closed" | null;
}

function toToken(row: {
  id: string;
  workspace_id: string;
  gate_id: string;
  notification_id: string | null;
  recipient: string;
  decision: string;
  expires_at: Date;
  created_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
}): GateToken {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    gateId: row.gate_id,
    notificationId: row.notification_id,
    recipient: row.recipient,
    decision: row.decision,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    usedAt: row.used_at,
    revokedAt: row.revoked_at,
    revokedReason: row.revoked_reason as GateToken["revokedReason"],
  };
}

/** Store the hashes of new tokens. */
export async function insertTokens(
  db: DbOrTrx,
  tokens: readonly {
    workspaceId: string;
    gateId: string;
    notificationId: string | null;
    recipient: string;
    decision: string;
    tokenHash: string;
    expiresAt: Date;
    at: Date;
  }[],
): Promise<void> {
  if (tokens.length === 0) return;
  await db
    .insertInto("gate_tokens")
    .values(
      tokens.map((t) => ({
        workspace_id: t.workspaceId,
        gate_id: t.gateId,
        notification_id: t.notificationId,
        recipient: t.recipient.toLowerCase(),
        decision: t.decision,
        token_hash: t.tokenHash,
        expires_at: t.expiresAt,
        created_at: t.at,
      })),
    )
    .execute();
}

export async function findTokenByHash(db: DbOrTrx, tokenHash: string): Promise<GateToken | null> {
  const row = await db.selectFrom("gate_tokens").selectAll().where("token_hash", "=", tokenHash).executeTakeFirst();
  return row ? toToken(row) : null;
}

/**
 * Record the token that made a gate's decision, inside the decision's
 * transaction (which has just revoked every token of the gate): it is marked
 * used instead of revoked. False when it was already used.
 */
export async function markTokenUsed(db: DbOrTrx, id: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("gate_tokens")
    .set({ used_at: at, revoked_at: null, revoked_reason: null })
    .where("id", "=", id)
    .where("used_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Revoke the live tokens of a gate: all of them (`decided`, `closed`), or one
 * recipient's older ones when a newer email replaces them (`superseded`).
 */
export async function revokeTokens(
  db: DbOrTrx,
  gateId: string,
  reason: "decided" | "superseded" | "closed",
  at: Date,
  only: { recipient?: string; exceptNotificationId?: string } = {},
): Promise<number> {
  let q = db
    .updateTable("gate_tokens")
    .set({ revoked_at: at, revoked_reason: reason })
    .where("gate_id", "=", gateId)
    .where("used_at", "is", null)
    .where("revoked_at", "is", null);
  if (only.recipient !== undefined) q = q.where("recipient", "=", only.recipient.toLowerCase());
  if (only.exceptNotificationId !== undefined) {
    q = q.where(sql<boolean>`notification_id IS DISTINCT FROM ${only.exceptNotificationId}::uuid`);
  }
  const result = await q.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Tokens of a gate, for tests and the audit view (hashes are never returned). */
export async function listTokensOfGate(db: DbOrTrx, gateId: string): Promise<GateToken[]> {
  const rows = await db
    .selectFrom("gate_tokens")
    .selectAll()
    .where("gate_id", "=", gateId)
    .orderBy("created_at")
    .execute();
  return rows.map(toToken);
}
