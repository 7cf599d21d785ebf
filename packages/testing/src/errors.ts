import { DomainError } from "@outcome-runtime/core";

/**
 * The `code` of the DomainError a call rejects with. Rethrows any other error;
 * throws if the call succeeds.
 */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
  throw new Error("expected the call to fail with a DomainError");
}
