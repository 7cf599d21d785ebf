/**
 * BigQuery's errors as {@link ConnectorError} codes, from the error's
 * `reason` first, as BigQuery documents them
 * (https://cloud.google.com/bigquery/docs/error-messages: "The Error message
 * column ... maps to the reason property in an ErrorProto object"), then from
 * the HTTP status when there is no reason. An error reaches the connector in
 * one of three shapes: an HTTP error answer
 * `{ error: { code, message, errors: [{ reason, message, location }], status } }`
 * (the client's `ApiError`: `code`, `errors`, `response`), a job that ended
 * with `status.errorResult` (an `ErrorProto`), or a network failure.
 */
import { ConnectorError, type ConnectorErrorCode } from "../connector-error";

/** One of BigQuery's `ErrorProto`s: `reason`, `message`, `location`. */
export interface BigQueryErrorProto {
  readonly reason?: string;
  readonly message?: string;
  readonly location?: string;
}

/** What an error is about, for its message. */
export interface ErrorContext {
  /** `query` or `series_query`, when the error concerns one. */
  readonly field?: "query" | "series_query";
  /** What was being done: `dry run`, `job`, `results`, `token`. */
  readonly operation: string;
  /** The billing project, for the IAM hint. */
  readonly projectId: string;
  /** The cost guard, for the cost hint. */
  readonly maximumBytesBilled: number;
}

/** The code of each documented reason (https://cloud.google.com/bigquery/docs/error-messages). */
const REASON_CODES: Readonly<Record<string, ConnectorErrorCode>> = {
  // 403 "your project exceeds a short-term rate limit"; 400 "the job ... failed with a rateLimitExceeded error".
  rateLimitExceeded: "rate_limited",
  jobRateLimitExceeded: "rate_limited",
  userRateLimitExceeded: "rate_limited",
  // 403: a quota of the project (concurrent interactive queries, a custom daily quota): wait and try again.
  quotaExceeded: "rate_limited",
  // 5xx "the service is currently unavailable"; 400 "the job ... failed with an internal error".
  backendError: "unavailable",
  internalError: "unavailable",
  jobBackendError: "unavailable",
  jobInternalError: "unavailable",
  tableUnavailable: "unavailable",
  // 403 "temporarily denylisted the operation".
  blocked: "unavailable",
  invalidQuery: "query_failed",
  invalid: "query_failed",
  notFound: "query_failed",
  resourcesExceeded: "query_failed",
  billingTierLimitExceeded: "query_failed",
  responseTooLarge: "query_failed",
  notImplemented: "query_failed",
  // 400 "Query exceeded limit for bytes billed": the job's maximumBytesBilled refused it, before any charge.
  bytesBilledLimitExceeded: "cost_exceeded",
  accessDenied: "auth_failed",
  // 401's reasons.
  authError: "auth_failed",
  required: "auth_failed",
  // 403: the project cannot be billed, whatever the query.
  billingNotEnabled: "source_refused",
  // 400 "The job timed out" (jobTimeoutMs); 200 "stopped": the job was cancelled.
  timeout: "timeout",
  stopped: "timeout",
};

/** How to make a query cheaper, in messages. */
export const READ_LESS =
  "read less (bound the scan on the partitioning column, e.g. the exposure date, with a lookback as long as your longest experiment; select fewer columns)";

/** `... at [3:15]` in a BigQuery message: the line and column in the query. */
const POSITION = /\bat \[(\d+):(\d+)\]/u;

/** The line and column a BigQuery message points at, if any. */
function positionOf(message: string): { line: number; column: number } | undefined {
  const match = POSITION.exec(message);
  return match === null ? undefined : { line: Number(match[1]), column: Number(match[2]) };
}

/** A `ConnectorError` for a BigQuery `ErrorProto` (a job's `errorResult`, or an answer's first error). */
export function errorOfProto(
  proto: BigQueryErrorProto,
  status: number | undefined,
  context: ErrorContext,
): ConnectorError {
  const reason = proto.reason ?? "";
  const message = (proto.message ?? "").trim() || `HTTP ${status ?? "error"}`;
  const code = codeOf(reason, status, message);
  const where = `bigquery ${context.field ?? "source"} (${context.operation})`;
  const position = code === "query_failed" ? positionOf(message) : undefined;
  const details: Record<string, unknown> = {
    reason: reason === "" ? undefined : reason,
    status,
    ...(context.field === undefined ? {} : { field: context.field }),
    ...(position ?? {}),
  };
  return new ConnectorError(
    code,
    `${where}: ${message}${reason === "" ? "" : ` (${reason})`}; ${fixOf(code, reason, context, position)}`,
    {
      details,
    },
  );
}

function codeOf(reason: string, status: number | undefined, message: string): ConnectorErrorCode {
  if (
    reason === "accessDenied" &&
    /VPC Service Controls|organization'?s? policy|prohibited by organization/iu.test(message)
  ) {
    // The organisation's perimeter refuses the caller: no role granted to the service account changes that.
    return "source_refused";
  }
  const byReason = REASON_CODES[reason];
  if (byReason !== undefined) return byReason;
  if (status === 401) return "auth_failed";
  if (status === 403) return "auth_failed";
  if (status === 429) return "rate_limited";
  if (status === 408) return "timeout";
  if (status !== undefined && status >= 500) return "unavailable";
  if (status === 400 || status === 404) return "query_failed";
  return "unavailable";
}

function fixOf(
  code: ConnectorErrorCode,
  reason: string,
  context: ErrorContext,
  position: { line: number; column: number } | undefined,
): string {
  switch (code) {
    case "query_failed":
      return position === undefined
        ? `fix the ${context.field ?? "query"} (docs/connectors.md, bigquery)`
        : `fix the ${context.field ?? "query"} at line ${position.line}, column ${position.column}`;
    case "cost_exceeded":
      return `the job would bill more than maximum_bytes_billed (${formatBytes(context.maximumBytesBilled)}) and was refused before any charge; ${READ_LESS} or raise maximum_bytes_billed`;
    case "auth_failed":
      return reason === "accessDenied"
        ? `grant the service account roles/bigquery.jobUser on project ${context.projectId} and roles/bigquery.dataViewer on the datasets the query reads (docs/connectors.md, bigquery)`
        : "check the service account key (a new key, or an account that was disabled)";
    case "source_refused":
      return reason === "billingNotEnabled"
        ? `enable billing on project ${context.projectId}, or set project_id to a project that runs and pays for the jobs`
        : "the organisation's policy refuses this caller; ask its administrators to allow the service account";
    case "rate_limited":
      return "BigQuery is throttling the project; the read will be retried";
    case "unavailable":
      return "BigQuery failed on its side; the read will be retried";
    case "timeout":
      return reason === "stopped"
        ? "the job was cancelled; the read will be retried"
        : `the job ran past the connector's timeout; raise timeout, or ${READ_LESS}`;
    default:
      return "see docs/connectors.md, bigquery";
  }
}

/** The client's HTTP error (`ApiError`): `code` (the HTTP status), `errors` (ErrorProtos), `response.headers`. */
interface ClientApiError {
  readonly code?: unknown;
  readonly errors?: unknown;
  readonly message?: unknown;
  readonly response?: { readonly headers?: Record<string, unknown>; readonly statusCode?: unknown };
}

/** Network failures of the client's transport (node-fetch's `FetchError`), by `code` or `type`. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
]);

/**
 * The `ConnectorError` of anything the BigQuery client threw.
 *
 * @param error a `ConnectorError` (kept as is), the client's `ApiError`, or a transport error
 */
export function bigQueryError(error: unknown, context: ErrorContext): ConnectorError {
  if (error instanceof ConnectorError) return error;
  const api = (error ?? {}) as ClientApiError;
  const status =
    typeof api.code === "number"
      ? api.code
      : typeof api.response?.statusCode === "number"
        ? api.response.statusCode
        : undefined;
  const protos = Array.isArray(api.errors) ? (api.errors as BigQueryErrorProto[]) : [];
  const message = error instanceof Error ? error.message : String(error);
  if (status === undefined && protos.length === 0) {
    const errno = (error as { code?: unknown; type?: unknown }) ?? {};
    const timedOut = errno.type === "request-timeout" || /network timeout|timed out/iu.test(message);
    return new ConnectorError(
      timedOut ? "timeout" : "unavailable",
      `bigquery ${context.field ?? "source"} (${context.operation}): ${timedOut ? "no answer in time" : "cannot reach BigQuery"} (${message}); the read will be retried`,
      {
        details: {
          ...(context.field === undefined ? {} : { field: context.field }),
          ...(typeof errno.code === "string" && NETWORK_CODES.has(errno.code) ? { errno: errno.code } : {}),
        },
        cause: error,
      },
    );
  }
  // The first error is the one that stopped the job; the others repeat it or are warnings.
  const first = protos.find((p) => typeof p.reason === "string" && p.reason !== "") ?? protos[0] ?? {};
  const mapped = errorOfProto({ ...first, message: first.message ?? message }, status, context);
  const retryAfter = Number(api.response?.headers?.["retry-after"]);
  const retryAfterMs = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null;
  return new ConnectorError(mapped.code, mapped.message, {
    details: mapped.details,
    retryAfterMs,
    cause: error,
  });
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"] as const;

/** `1234567890` → `1.2 GB` (powers of 1000, one decimal when under 10). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  // 999,999 bytes is 1 MB, not 1000 KB.
  while (value >= 999.5 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  const shown = unit === 0 || value >= 10 ? Math.round(value).toString() : (Math.round(value * 10) / 10).toString();
  return `${shown} ${UNITS[unit]}`;
}
