/**
 * Dashboard sessions. A session is found by the SHA-256 of its token, and only
 * while it is not revoked, not past `expires_at`, and its API key is not
 * revoked either: revoking the key ends its sessions at their next request.
 */
import type { Principal, Role } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

/** A live session and the principal of its API key or member. */
export interface SessionRecord {
  readonly id: string;
  readonly principal: Principal;
  /** The key's scopes, as stored; null for a member's session (the role's scopes apply). */
  readonly scopes: readonly string[] | null;
  /** The member whose session it is; null for a session signed in with an API key. */
  readonly memberId: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly lastSeenAt: Date;
}

/** Store a new session of an API key (`apiKeyId`) or of a member (`memberId`); returns its id. */
export async function insertSession(
  db: DbOrTrx,
  session: { tokenHash: string; at: Date; expiresAt: Date } & (
    | { apiKeyId: string; workspaceId: string; memberId?: undefined }
    | { memberId: string; workspaceId: string | null; apiKeyId?: undefined }
  ),
): Promise<string> {
  const row = await db
    .insertInto("sessions")
    .values({
      workspace_id: session.workspaceId,
      api_key_id: session.apiKeyId ?? null,
      member_id: session.memberId ?? null,
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
 * The session with this token hash and its principal, when the session is not
 * revoked and `at` is before its `expires_at`, and: for a key's session, the
 * key is not revoked; for a member's session, the member is not disabled and
 * still belongs to the session's workspace (with the role it has there now).
 * Otherwise null. (The idle limit is the caller's: it has `lastSeenAt`.)
 */
export async function findLiveSession(db: DbOrTrx, tokenHash: string, at: Date): Promise<SessionRecord | null> {
  const row = await db
    .selectFrom("sessions as s")
    .leftJoin("api_keys as k", "k.id", "s.api_key_id")
    .leftJoin("members as m", "m.id", "s.member_id")
    .leftJoin("workspace_members as wm", (join) =>
      join.onRef("wm.member_id", "=", "s.member_id").onRef("wm.workspace_id", "=", "s.workspace_id"),
    )
    .select([
      "s.id",
      "s.workspace_id",
      "s.created_at",
      "s.expires_at",
      "s.last_seen_at",
      "s.member_id",
      "k.id as key_id",
      "k.workspace_id as key_workspace_id",
      "k.name as key_name",
      "k.role as key_role",
      "k.scopes",
      "k.revoked_at as key_revoked_at",
      "m.email",
      "m.disabled_at",
      "wm.role as member_role",
    ])
    .where("s.token_hash", "=", tokenHash)
    .where("s.revoked_at", "is", null)
    .where("s.expires_at", ">", at)
    .executeTakeFirst();
  if (row === undefined) return null;
  const times = { createdAt: row.created_at, expiresAt: row.expires_at, lastSeenAt: row.last_seen_at };
  if (row.member_id !== null) {
    if (row.email === null || row.disabled_at !== null || row.member_role === null || row.workspace_id === null) {
      return null;
    }
    return {
      id: row.id,
      principal: {
        id: row.member_id,
        workspaceId: row.workspace_id,
        name: row.email,
        role: row.member_role as Role,
        memberId: row.member_id,
      },
      scopes: null,
      memberId: row.member_id,
      ...times,
    };
  }
  if (row.key_id === null || row.key_revoked_at !== null || row.key_workspace_id === null) return null;
  return {
    id: row.id,
    principal: {
      id: row.key_id,
      workspaceId: row.key_workspace_id,
      name: row.key_name ?? "",
      role: row.key_role as Role,
    },
    scopes: row.scopes ?? [],
    memberId: null,
    ...times,
  };
}

/** A member's live session as the sign-in pages need it: its workspace may be null. */
export interface MemberSessionRecord {
  readonly id: string;
  readonly memberId: string;
  readonly workspaceId: string | null;
  readonly expiresAt: Date;
  readonly lastSeenAt: Date;
}

/**
 * The member's session with this token hash when not revoked or expired at
 * `at`, and its member not disabled; null otherwise (and for a key's session).
 */
export async function findMemberSession(db: DbOrTrx, tokenHash: string, at: Date): Promise<MemberSessionRecord | null> {
  const row = await db
    .selectFrom("sessions as s")
    .innerJoin("members as m", "m.id", "s.member_id")
    .select(["s.id", "s.member_id", "s.workspace_id", "s.expires_at", "s.last_seen_at"])
    .where("s.token_hash", "=", tokenHash)
    .where("s.revoked_at", "is", null)
    .where("s.expires_at", ">", at)
    .where("m.disabled_at", "is", null)
    .executeTakeFirst();
  if (row === undefined || row.member_id === null) return null;
  return {
    id: row.id,
    memberId: row.member_id,
    workspaceId: row.workspace_id,
    expiresAt: row.expires_at,
    lastSeenAt: row.last_seen_at,
  };
}

/**
 * Move a member's session to another workspace (the switcher); the caller has
 * checked the membership. Returns whether the session was live and moved.
 */
export async function switchSessionWorkspace(
  db: DbOrTrx,
  tokenHash: string,
  workspaceId: string,
  at: Date,
): Promise<boolean> {
  const result = await db
    .updateTable("sessions")
    .set({ workspace_id: workspaceId })
    .where("token_hash", "=", tokenHash)
    .where("member_id", "is not", null)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", at)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
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
