import type { Principal, Role } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

export interface NewApiKey {
  readonly workspaceId: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly keyHash: string;
  readonly createdBy: string;
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

export async function insertApiKey(db: DbOrTrx, key: NewApiKey): Promise<ApiKeyRecord> {
  const row = await db
    .insertInto("api_keys")
    .values({
      workspace_id: key.workspaceId,
      name: key.name,
      role: key.role,
      prefix: key.prefix,
      key_hash: key.keyHash,
      created_by: key.createdBy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    name: row.name,
    role: row.role as Role,
    prefix: row.prefix,
    createdBy: row.created_by,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
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

/** The principal a non-revoked key hash belongs to, or null. */
export async function findPrincipalByKeyHash(db: DbOrTrx, keyHash: string): Promise<Principal | null> {
  const row = await db
    .selectFrom("api_keys")
    .select(["id", "workspace_id", "name", "role"])
    .where("key_hash", "=", keyHash)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row ? { id: row.id, workspaceId: row.workspace_id, name: row.name, role: row.role as Role } : null;
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
