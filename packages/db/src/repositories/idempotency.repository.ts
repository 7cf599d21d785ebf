import { sql } from "kysely";
import type { DbOrTrx, Trx } from "../database";

export interface StoredResponse {
  readonly requestHash: string;
  readonly statusCode: number;
  readonly response: unknown;
}

export async function findIdempotentResponse(
  db: DbOrTrx,
  workspaceId: string,
  key: string,
): Promise<StoredResponse | null> {
  const row = await db
    .selectFrom("idempotency_keys")
    .select(["request_hash", "status_code", "response"])
    .where("workspace_id", "=", workspaceId)
    .where("key", "=", key)
    .executeTakeFirst();
  return row ? { requestHash: row.request_hash, statusCode: row.status_code, response: row.response } : null;
}

/**
 * Forget a key stored before `before` (keys are kept for a retry window, then
 * may be used again). Returns whether one was deleted.
 */
export async function deleteIdempotencyKeyIfOlder(
  db: DbOrTrx,
  workspaceId: string,
  key: string,
  before: Date,
): Promise<boolean> {
  const result = await db
    .deleteFrom("idempotency_keys")
    .where("workspace_id", "=", workspaceId)
    .where("key", "=", key)
    .where("created_at", "<", before)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Store the response of a request made with an idempotency key; false if the key was taken meanwhile. */
export async function saveIdempotentResponse(
  db: DbOrTrx,
  workspaceId: string,
  key: string,
  stored: StoredResponse,
): Promise<boolean> {
  const result = await db
    .insertInto("idempotency_keys")
    .values({
      workspace_id: workspaceId,
      key,
      request_hash: stored.requestHash,
      status_code: stored.statusCode,
      response: JSON.stringify(stored.response),
    })
    .onConflict((oc) => oc.columns(["workspace_id", "key"]).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/**
 * Serialise requests that share an idempotency key until the transaction ends
 * (`pg_advisory_xact_lock` on a 64-bit hash of workspace and key).
 */
export async function lockIdempotencyKey(trx: Trx, workspaceId: string, key: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`${workspaceId}:${key}`}, 0))`.execute(trx);
}
