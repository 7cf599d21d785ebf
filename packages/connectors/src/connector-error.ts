/**
 * The one error type connectors throw. `code` is stable (callers branch on
 * it), `retryable` says whether the same call may succeed later, and the
 * message names the field or column, the value and the fix.
 */

/** Stable codes of {@link ConnectorError}. */
export type ConnectorErrorCode =
  | "invalid_config"
  | "unsupported"
  | "timeout"
  | "query_failed"
  | "read_only_violation"
  | "missing_columns"
  | "bad_response"
  | "too_many_rows"
  | "rate_limited"
  | "unavailable"
  | "auth_failed"
  | "source_refused"
  | "cost_exceeded";

/** Every code with what it means and whether a retry can help by default. */
export const CONNECTOR_ERROR_CODES: Readonly<Record<ConnectorErrorCode, { retryable: boolean; meaning: string }>> =
  Object.freeze({
    invalid_config: {
      retryable: false,
      meaning: "The connector settings are wrong; fix outcome.yaml or the environment.",
    },
    unsupported: {
      retryable: false,
      meaning: "The connector cannot do this with its settings (e.g. no series query).",
    },
    timeout: { retryable: true, meaning: "The source did not answer in time, or the call was aborted." },
    query_failed: {
      retryable: false,
      meaning: "The source refused the query (syntax, unknown table, bad expression).",
    },
    read_only_violation: { retryable: false, meaning: "The query tried to write or to run more than one statement." },
    missing_columns: { retryable: false, meaning: "The result lacks a required column." },
    bad_response: { retryable: false, meaning: "The source answered with data that breaks the contract." },
    too_many_rows: { retryable: false, meaning: "The result has more rows than the connector's cap." },
    rate_limited: { retryable: true, meaning: "The source's rate limit was hit; retry after `retryAfterMs`." },
    unavailable: { retryable: true, meaning: "The source could not be reached or failed on its side." },
    auth_failed: { retryable: false, meaning: "The source refused the credentials." },
    source_refused: {
      retryable: false,
      meaning:
        "The source may not be read: the runtime's own database, a superuser or a role that may write, a host the vendor does not own, or a credential this workspace may not use.",
    },
    cost_exceeded: {
      retryable: false,
      meaning:
        "The read would scan more than the connector's cost guard allows (BigQuery `maximum_bytes_billed`); narrow the query or raise the guard.",
    },
  });

/** Options of the {@link ConnectorError} constructor. */
export interface ConnectorErrorOptions {
  /** Defaults to the code's entry in {@link CONNECTOR_ERROR_CODES}. */
  retryable?: boolean;
  /** When the source said how long to wait (HTTP `Retry-After`), in milliseconds. */
  retryAfterMs?: number | null;
  /** Structured facts for logs and API errors (field, value, line, ...). Never secrets. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * A connector failure with a stable `code`.
 *
 * @example
 * throw new ConnectorError("missing_columns", 'query: the result has no column "sum_sq"; add `... AS sum_sq`', {
 *   details: { missing: ["sum_sq"] },
 * });
 */
export class ConnectorError extends Error {
  readonly code: ConnectorErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | null;
  readonly details: Record<string, unknown>;

  constructor(code: ConnectorErrorCode, message: string, options: ConnectorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ConnectorError";
    this.code = code;
    this.retryable = options.retryable ?? CONNECTOR_ERROR_CODES[code].retryable;
    this.retryAfterMs = options.retryAfterMs ?? null;
    this.details = options.details ?? {};
  }
}
