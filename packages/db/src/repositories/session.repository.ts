/**
 * Dashboard sessions. A session is found by the SHA-256 of its token, and only
 * while it is not revoked, not past `expires_at`, and its API key is not
 * revoked either: revoking the key ends its sessions at their next request.
 */
import type { Principal, Role } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

/** A live session and the principal of its API key. */
export interface SessionRecord {
  readonly id: string;
  readonly principal: Principal;
  /** The key's scopes, as stored. */
  readonly scopes: readonly string[];
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly lastSeenAt: Date;
}

/** Store a new session of `apiKeyId`; returns its id. */
export async function insertSession(
  db: DbOrTrx,
  session: { workspaceId: string; apiKeyId: string; tokenHash: string; at: Date; expiresAt: Date },
): Promise<string> {
  const row = await db
    .insertInto("sessions")
    .values({
      workspace_id: session.workspaceId,
      api_key_id: session.apiKeyId,
      token_hash: session.tokenHash,
      created_at: session.at,
      last_seen_at: session.at,
      expires_at: session.expiresAt,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * The session with this token hash and its key's principal, when the session
 * is not revoked, `at` is before its `expires_at`, and the key is not revoked;
 * otherwise null. (The idle limit is the caller's: it has `lastSeenAt`.)
 */
export async function findLiveSession(db: DbOrTrx, tokenHash: string, at: Date): Promise<SessionRecord | null> {
  const row = await db
    .selectFrom("sessions as s")
    .innerJoin("api_keys as k", "k.id", "s.api_key_id")
    .select([
      "s.id",
      "s.created_at",
      "s.expires_at",
      "s.last_seen_at",
      "k.id as key_id",
      "k.workspace_id",
      "k.name",
      "k.role",
      "k.scopes",
    ])
    .where("s.token_hash", "=", tokenHash)
    .where("s.revoked_at", "is", null)
    .where("s.expires_at", ">", at)
    .where("k.revoked_at", "is", null)
    .executeTakeFirst();
  if (row === undefined) return null;
  return {
    id: row.id,
    principal: { id: row.key_id, workspaceId: row.workspace_id, name: row.name, role: row.role as Role },
    scopes: row.scopes,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastSeenAt: row.last_seen_at,
  };
}

/** Record a session's use at `at`, at most once a minute (a conditional UPDATE). True when written. */
export async function touchSession(db: DbOrTrx, id: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("sessions")
    .set({ last_seen_at: at })
    .where("id", "=", id)
    .where("last_seen_at", "<", new Date(at.getTime() - 60_000))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Revoke the session with this token hash (idempotent). True when this call revoked it. */
export async function revokeSession(db: DbOrTrx, tokenHash: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("sessions")
    .set({ revoked_at: at })
    .where("token_hash", "=", tokenHash)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Revoke every open session of an API key; returns how many. */
export async function revokeSessionsOfKey(db: DbOrTrx, apiKeyId: string, at: Date): Promise<number> {
  const result = await db
    .updateTable("sessions")
    .set({ revoked_at: at })
    .where("api_key_id", "=", apiKeyId)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Delete sessions that ended (expired, or revoked) before `before`: they authenticate nothing. */
export async function deleteEndedSessions(db: DbOrTrx, before: Date): Promise<number> {
  const result = await db
    .deleteFrom("sessions")
    .where((eb) => eb.or([eb("expires_at", "<", before), eb("revoked_at", "<", before)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
