import type { Principal, Role } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

export interface NewApiKey {
  readonly workspaceId: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly keyHash: string;
  readonly createdBy: string;
  /** ⊆ read, write, admin (the CHECK constraint holds the list); the use case chooses them. */
  readonly scopes: readonly string[];
  /** The member who owns the key (revoked with their membership); absent for agents' and bootstrap keys. */
  readonly memberId?: string | null;
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly name: string;
  readonly role: Role;
  readonly scopes: readonly string[];
  readonly prefix: string;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  /** The member who owns the key, or null. */
  readonly memberId: string | null;
}

/** The columns of a record: everything but the hash, which never leaves this file. */
const RECORD_COLUMNS = [
  "id",
  "member_id",
  "workspace_id",
  "name",
  "role",
  "scopes",
  "prefix",
  "created_by",
  "created_at",
  "last_used_at",
  "revoked_at",
] as const;

function toRecord(row: {
  id: string;
  workspace_id: string;
  name: string;
  role: string;
  scopes: string[];
  prefix: string;
  created_by: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  member_id: string | null;
}): ApiKeyRecord {
  return {
    id: row.id,
    memberId: row.member_id,
    workspaceId: row.workspace_id,
    name: row.name,
    role: row.role as Role,
    scopes: row.scopes,
    prefix: row.prefix,
    createdBy: row.created_by,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

export async function insertApiKey(db: DbOrTrx, key: NewApiKey): Promise<ApiKeyRecord> {
  const row = await db
    .insertInto("api_keys")
    .values({
      workspace_id: key.workspaceId,
      name: key.name,
      role: key.role,
      scopes: [...key.scopes],
      prefix: key.prefix,
      key_hash: key.keyHash,
      created_by: key.createdBy,
      member_id: key.memberId ?? null,
    })
    .returning(RECORD_COLUMNS)
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

/**
 * Insert a key unless one with the same hash exists (the bootstrap key on every
 * start); re-enable it if it was revoked. True when inserted or re-enabled.
 */
export async function insertApiKeyIfAbsent(db: DbOrTrx, key: NewApiKey): Promise<boolean> {
  const result = await db
    .insertInto("api_keys")
    .values({
      workspace_id: key.workspaceId,
      name: key.name,
      role: key.role,
      prefix: key.prefix,
      scopes: [...key.scopes],
      key_hash: key.keyHash,
      created_by: key.createdBy,
    })
    // The same key configured again after a rotation is re-enabled.
    .onConflict((oc) =>
      oc
        .column("key_hash")
        .doUpdateSet({ revoked_at: null })
        .where("api_keys.created_by", "=", key.createdBy)
        .where("api_keys.revoked_at", "is not", null),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/**
 * The principal a non-revoked key hash belongs to and the key's scopes, or
 * null. Looked up by the hash's unique index: the key is 256 random bits, so
 * the lookup's timing tells nothing useful about any key.
 */
export async function findPrincipalByKeyHash(
  db: DbOrTrx,
  keyHash: string,
): Promise<{ principal: Principal; scopes: readonly string[] } | null> {
  const row = await db
    .selectFrom("api_keys")
    .select(["id", "workspace_id", "name", "role", "scopes"])
    .where("key_hash", "=", keyHash)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row
    ? {
        principal: { id: row.id, workspaceId: row.workspace_id, name: row.name, role: row.role as Role },
        scopes: row.scopes,
      }
    : null;
}

/** The keys of a workspace, oldest first, revoked ones included (never their hashes). */
export async function listApiKeys(db: DbOrTrx, workspaceId: string): Promise<ApiKeyRecord[]> {
  const rows = await db
    .selectFrom("api_keys")
    .select(RECORD_COLUMNS)
    .where("workspace_id", "=", workspaceId)
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  return rows.map(toRecord);
}

/**
 * Revoke a key of a workspace. Idempotent: a key revoked already keeps its
 * first `revoked_at`.
 *
 * @returns the key (null when the workspace has no key with this id) and
 *   whether this call revoked it.
 */
export async function revokeApiKey(
  db: DbOrTrx,
  workspaceId: string,
  id: string,
  at: Date,
): Promise<{ record: ApiKeyRecord | null; revoked: boolean }> {
  const updated = await db
    .updateTable("api_keys")
    .set({ revoked_at: at })
    .where("id", "=", id)
    .where("workspace_id", "=", workspaceId)
    .where("revoked_at", "is", null)
    .returning(RECORD_COLUMNS)
    .executeTakeFirst();
  if (updated) return { record: toRecord(updated), revoked: true };
  const row = await db
    .selectFrom("api_keys")
    .select(RECORD_COLUMNS)
    .where("id", "=", id)
    .where("workspace_id", "=", workspaceId)
    .executeTakeFirst();
  return { record: row ? toRecord(row) : null, revoked: false };
}

/** How stale `last_used_at` may be: one write per key per minute at most. */
export const LAST_USED_PRECISION_MS = 60_000;

/**
 * Record that a key was used at `at`, at most once a minute: a conditional
 * UPDATE that writes only when `last_used_at` is empty or older than a minute
 * before `at`, so a busy key costs one write a minute, not one per request.
 *
 * @returns true when the time was written.
 */
export async function touchLastUsed(db: DbOrTrx, id: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("api_keys")
    .set({ last_used_at: at })
    .where("id", "=", id)
    .where((eb) =>
      eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", new Date(at.getTime() - LAST_USED_PRECISION_MS))]),
    )
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Revoke the keys created by `createdBy` in a workspace except the one with
 * `keepHash` (rotating the bootstrap key revokes the previous one).
 *
 * @returns how many keys were revoked.
 */
export async function revokeKeysCreatedByExcept(
  db: DbOrTrx,
  workspaceId: string,
  createdBy: string,
  keepHash: string,
  at: Date,
): Promise<number> {
  const result = await db
    .updateTable("api_keys")
    .set({ revoked_at: at })
    .where("workspace_id", "=", workspaceId)
    .where("created_by", "=", createdBy)
    .where("key_hash", "<>", keepHash)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
