/**
 * Typed errors of the domain. Every error carries a stable snake_case `code`
 * that adapters map to HTTP statuses, MCP error results and CLI exit codes; the
 * registry of codes lives in `error-codes.ts`.
 */
import type { ErrorCode } from "./error-codes";

/** Base class of every error the domain throws on purpose. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "DomainError";
    this.code = code;
    this.details = details;
  }
}

/** Thrown when an action is not allowed from the entity's current state. */
export class IllegalTransitionError extends DomainError {
  constructor(machine: string, from: string, action: string, allowed: readonly string[]) {
    super(
      "illegal_transition",
      `cannot ${action.replaceAll("_", " ")} the ${machine}: it is ${from}` +
        (allowed.length > 0 ? `; from ${from} you can: ${allowed.join(", ")}` : `; ${from} is a final state`),
      { machine, from, action, allowed },
    );
    this.name = "IllegalTransitionError";
  }
}

/** Thrown when an action is legal from the state but its guard refuses it. */
export class GuardRejectedError extends DomainError {
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = "GuardRejectedError";
  }
}

/** Exhaustiveness check for `switch` statements over unions. */
export function assertNever(value: never, what = "value"): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
