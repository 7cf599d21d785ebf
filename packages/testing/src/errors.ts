import { DomainError } from "@outcome-runtime/core";

/**
 * The error of class `kind` a call rejects with. Rethrows any other error;
 * throws if the call succeeds.
 */
export async function rejectionOf<E extends Error>(
  promise: Promise<unknown>,
  kind: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof kind) return error;
    throw error;
  }
  throw new Error(`expected the call to fail with a ${kind.name}`);
}

/**
 * The `code` of the DomainError a call rejects with. Rethrows any other error;
 * throws if the call succeeds.
 */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  return (await rejectionOf(promise, DomainError)).code;
}
