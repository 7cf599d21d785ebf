/**
 * Workspace secrets at rest: names, metadata and ciphertext. Sealing and
 * opening are the runtime's (`packages/runtime/src/secrets.ts`); this file
 * never sees a value in the clear.
 */
import type { DbOrTrx } from "../database";

/** A secret without its ciphertext: what lists and audits may show. */
export interface SecretRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly name: string;
  readonly description: string;
  readonly version: number;
  readonly keyId: string;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly updatedBy: string;
  readonly updatedAt: Date;
  readonly lastUsedAt: Date | null;
}

/** A secret with its sealed value. */
export interface SealedSecret extends SecretRecord {
  readonly ciphertext: Buffer;
}

const RECORD_COLUMNS = [
  "id",
  "workspace_id",
  "name",
  "description",
  "version",
  "key_id",
  "created_by",
  "created_at",
  "updated_by",
  "updated_at",
  "last_used_at",
] as const;

interface Row {
  id: string;
  workspace_id: string;
  name: string;
  description: string;
  version: number;
  key_id: string;
  created_by: string;
  created_at: Date;
  updated_by: string;
  updated_at: Date;
  last_used_at: Date | null;
}

function toRecord(row: Row): SecretRecord {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    name: row.name,
    description: row.description,
    version: row.version,
    keyId: row.key_id,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedBy: row.updated_by,
    updatedAt: row.updated_at,
    lastUsedAt: row.last_used_at,
  };
}

/** The workspace's secrets by name, without values. */
export async function listSecrets(db: DbOrTrx, workspaceId: string): Promise<SecretRecord[]> {
  const rows = await db
    .selectFrom("workspace_secrets")
    .select(RECORD_COLUMNS)
    .where("workspace_id", "=", workspaceId)
    .orderBy("name")
    .execute();
  return rows.map(toRecord);
}

/** One secret with its ciphertext, or null. `forUpdate` locks the row. */
export async function findSealedSecret(
  db: DbOrTrx,
  workspaceId: string,
  name: string,
  options: { forUpdate?: boolean } = {},
): Promise<SealedSecret | null> {
  let query = db
    .selectFrom("workspace_secrets")
    .select([...RECORD_COLUMNS, "ciphertext"])
    .where("workspace_id", "=", workspaceId)
    .where("name", "=", name);
  if (options.forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row === undefined ? null : { ...toRecord(row), ciphertext: row.ciphertext };
}

/** The names among `names` the workspace has a secret for. */
export async function existingSecretNames(
  db: DbOrTrx,
  workspaceId: string,
  names: readonly string[],
): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db
    .selectFrom("workspace_secrets")
    .select("name")
    .where("workspace_id", "=", workspaceId)
    .where("name", "in", [...names])
    .execute();
  return rows.map((r) => r.name);
}

export interface SecretWrite {
  readonly workspaceId: string;
  readonly name: string;
  readonly description: string;
  readonly ciphertext: Buffer;
  readonly keyId: string;
  readonly actor: string;
  readonly at: Date;
}

/**
 * Creates the secret, or replaces its value (a rotation: `version` + 1).
 *
 * @returns the record and whether it was created
 */
export async function upsertSecret(
  db: DbOrTrx,
  write: SecretWrite,
): Promise<{ record: SecretRecord; created: boolean }> {
  const row = await db
    .insertInto("workspace_secrets")
    .values({
      workspace_id: write.workspaceId,
      name: write.name,
      description: write.description,
      ciphertext: write.ciphertext,
      key_id: write.keyId,
      created_by: write.actor,
      created_at: write.at,
      updated_by: write.actor,
      updated_at: write.at,
    })
    .onConflict((oc) =>
      oc.columns(["workspace_id", "name"]).doUpdateSet((eb) => ({
        ciphertext: eb.ref("excluded.ciphertext"),
        key_id: eb.ref("excluded.key_id"),
        description: eb.ref("excluded.description"),
        version: eb(eb.ref("workspace_secrets.version"), "+", 1),
        updated_by: eb.ref("excluded.updated_by"),
        updated_at: eb.ref("excluded.updated_at"),
      })),
    )
    .returning([...RECORD_COLUMNS])
    .executeTakeFirstOrThrow();
  return { record: toRecord(row), created: row.version === 1 };
}

/** Deletes the secret; the deleted record, or null when there was none. */
export async function deleteSecret(db: DbOrTrx, workspaceId: string, name: string): Promise<SecretRecord | null> {
  const row = await db
    .deleteFrom("workspace_secrets")
    .where("workspace_id", "=", workspaceId)
    .where("name", "=", name)
    .returning([...RECORD_COLUMNS])
    .executeTakeFirst();
  return row === undefined ? null : toRecord(row);
}

/** Records that a poll used the secret, at most once a minute. */
export async function touchSecret(db: DbOrTrx, id: string, at: Date): Promise<void> {
  await db
    .updateTable("workspace_secrets")
    .set({ last_used_at: at })
    .where("id", "=", id)
    .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", new Date(at.getTime() - 60_000))]))
    .execute();
}
