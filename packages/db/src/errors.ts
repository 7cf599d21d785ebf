/**
 * What an error of Postgres or of its driver means to a caller, as the
 * DomainError every face reports alike: REST (problem details), MCP (a tool
 * error) and the worker (a job's error code). The SQLSTATEs are PostgreSQL's
 * (Appendix A, "PostgreSQL Error Codes").
 */
import { DomainError } from "@outcome-runtime/core";

/** The codes a database error maps to: a subset of the error registry (`ERROR_CODES` in core). */
export type DatabaseErrorCode = "conflict" | "validation_failed" | "service_unavailable";

/**
 * A database or driver error as a DomainError. `cause` is the driver's error
 * (for the logs, never for a client); `retryable` says whether the same
 * request may succeed later (a conflict, an outage), unlike a value the
 * columns cannot hold.
 */
export class DatabaseError extends DomainError {
  override readonly code: DatabaseErrorCode;
  override readonly cause: unknown;
  readonly retryable: boolean;

  constructor(code: DatabaseErrorCode, message: string, cause: unknown) {
    super(code, message);
    this.name = "DatabaseError";
    this.code = code;
    this.cause = cause;
    this.retryable = code !== "validation_failed";
  }
}

/** Network errors of the socket to Postgres, and the 57P0x SQLSTATEs of a backend that went away. */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "57P01", // admin_shutdown: a backend terminated by an administrator, or a restart
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the server is starting up
]);

/** What `pg` and Kysely throw when a client's connection died or a pool cannot connect. */
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|connection error and is not queryable|Client was closed and is not queryable|terminating connection due to administrator command/i;

/**
 * Whether an error means "the database is unreachable right now": refused or
 * reset connections, a backend terminated by an administrator or a restart
 * (57P01–57P03), the connection-exception class (08xxx), and the messages
 * `pg` throws for a client whose connection died (e.g. the ROLLBACK Kysely
 * sends after a statement failed on a terminated backend fails with "Client
 * has encountered a connection error and is not queryable", and that error
 * replaces the first). Looks into `cause` too, three levels deep.
 */
function isUnavailable(error: unknown, depth = 0): boolean {
  const e = error as { code?: unknown; message?: unknown; cause?: unknown } | null;
  if (!e || typeof e !== "object") return false;
  if (depth < 3 && e.cause !== undefined && isUnavailable(e.cause, depth + 1)) return true;
  const code = typeof e.code === "string" ? e.code : undefined;
  return (
    (code !== undefined && (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) ||
    UNAVAILABLE_MESSAGE.test(typeof e.message === "string" ? e.message : "")
  );
}

/**
 * The DomainError a Postgres or driver error stands for, or null when it is
 * not one of these (a bug: report it as `internal_error`):
 *
 * - `conflict`: a unique violation (23505), a serialization failure (40001)
 *   or a deadlock (40P01) from a concurrent write; retrying is safe;
 * - `validation_failed`: a data exception (class 22: a NUL in a text, a
 *   malformed timestamp), the client's input rather than a server fault; the
 *   message quotes Postgres' reason;
 * - `service_unavailable`: the database is unreachable (see `isUnavailable`)
 *   or a statement was cancelled by its timeout (57014).
 *
 * Messages name no server internals except Postgres' reason for a refused value.
 * A DomainError passed in is not a database error: null.
 *
 * @example databaseError(Object.assign(new Error("duplicate key"), { code: "23505" }))?.code // "conflict"
 */
export function databaseError(error: unknown): DatabaseError | null {
  if (error instanceof DomainError || error === null || typeof error !== "object") return null;
  const sqlstate = (error as { code?: unknown }).code;
  if (sqlstate === "23505" || sqlstate === "40001" || sqlstate === "40P01") {
    return new DatabaseError("conflict", "the request collided with a concurrent change; retry it", error);
  }
  if (typeof sqlstate === "string" && sqlstate.startsWith("22")) {
    return new DatabaseError(
      "validation_failed",
      sqlstate === "22021" || sqlstate === "22P05"
        ? "a text value contains a NUL character (U+0000) or a byte sequence that cannot be stored; remove it"
        : `a value cannot be stored: ${(error as { message?: unknown }).message}; correct it and retry`,
      error,
    );
  }
  if (sqlstate === "57014" || isUnavailable(error)) {
    return new DatabaseError(
      "service_unavailable",
      "the database is unavailable or too slow right now; retry shortly",
      error,
    );
  }
  return null;
}
