/**
 * Idempotency keys for POSTs that create (the `Idempotency-Key` header, as in
 * Stripe's API and the IETF draft): a retried request with the same key and
 * body gets the first response back and creates nothing; the same key with a
 * different body is refused.
 */
import { DomainError } from "@outcome-runtime/core";
import { idempotency, type Trx } from "@outcome-runtime/db";
import { contentHash } from "@outcome-runtime/spec";
import { inTransaction, nowOf, type RuntimeDeps } from "./context";

/** How long a key's response is kept for retries: 24 hours, in seconds (Stripe keeps keys as long). */
const IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600;

export interface IdempotentResponse<T> {
  readonly statusCode: number;
  readonly body: T;
  /** True when this is the stored response of an earlier request. */
  readonly replayed: boolean;
}

/**
 * SHA-256 of an operation and its input, keys sorted: the same request sent
 * with its fields in another order has the same fingerprint.
 */
export function requestFingerprint(operation: string, subjectId: string, input: unknown): string {
  return contentHash({ operation, subjectId, input: input ?? null });
}

/**
 * Run `create` once per (workspace, key). The work, and the stored response,
 * commit in one transaction; concurrent requests with the same key wait on a
 * transaction-scoped advisory lock and then replay the stored response.
 *
 * @throws DomainError `idempotency_key_reused` when the key was used with another request.
 */
export async function runIdempotent<T>(
  deps: RuntimeDeps,
  scope: { workspaceId: string; key: string; fingerprint: string },
  create: (trx: Trx) => Promise<{ statusCode: number; body: T }>,
): Promise<IdempotentResponse<T>> {
  if (scope.key.length === 0 || scope.key.length > 255) {
    throw new DomainError("validation_failed", "Idempotency-Key must be 1–255 characters (a UUID is a good choice)", {
      field: "Idempotency-Key",
    });
  }
  return inTransaction(deps.db, async (trx) => {
    await idempotency.lockIdempotencyKey(trx, scope.workspaceId, scope.key);
    const windowStart = new Date(nowOf(deps).getTime() - IDEMPOTENCY_WINDOW_SECONDS * 1000);
    await idempotency.deleteIdempotencyKeyIfOlder(trx, scope.workspaceId, scope.key, windowStart);
    const stored = await idempotency.findIdempotentResponse(trx, scope.workspaceId, scope.key);
    if (stored !== null) {
      if (stored.requestHash !== scope.fingerprint) {
        throw new DomainError(
          "idempotency_key_reused",
          "this Idempotency-Key was used for a different request; use a new key for a new request",
          { field: "Idempotency-Key" },
        );
      }
      return { statusCode: stored.statusCode, body: stored.response as T, replayed: true };
    }
    const result = await create(trx);
    // Stored as the client saw it: JSON (dates become strings).
    const body = JSON.parse(JSON.stringify(result.body)) as T;
    await idempotency.saveIdempotentResponse(trx, scope.workspaceId, scope.key, {
      requestHash: scope.fingerprint,
      statusCode: result.statusCode,
      response: body,
    });
    return { statusCode: result.statusCode, body, replayed: false };
  });
}
