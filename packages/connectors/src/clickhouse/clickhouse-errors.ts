/**
 * From what @clickhouse/client throws to a {@link ConnectorError}: the
 * server's exception code (src/Common/ErrorCodes.cpp of ClickHouse) picks
 * the connector's code, and a syntax error's position in the query sent
 * (placeholders and all) is taken back to a line and column of the query as
 * written in outcome.yaml.
 */
import { ClickHouseError } from "@clickhouse/client";
import { ConnectorError } from "../connector-error";
import { lineColumn } from "../postgres/sql-statement";
import type { NamedStatement } from "../sql/named-parameters";

/** ClickHouse exception codes the connector tells apart (src/Common/ErrorCodes.cpp). */
const CODES = {
  UNKNOWN_IDENTIFIER: 47,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  UNKNOWN_USER: 192,
  WRONG_PASSWORD: 193,
  REQUIRED_PASSWORD: 194,
  QUOTA_EXCEEDED: 201,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  SOCKET_TIMEOUT: 209,
  NETWORK_ERROR: 210,
  QUERY_WAS_CANCELLED: 394,
  TOO_MANY_ROWS_OR_BYTES: 396,
  CANNOT_SCHEDULE_TASK: 439,
  ACCESS_DENIED: 497,
  AUTHENTICATION_FAILED: 516,
} as const;

/** What went to the server: the query text sent and how it was rendered from the user's. */
export interface SentQuery {
  /** `query` or `series_query`, or `check` for the connector's own queries. */
  readonly field: string;
  /** The user's statement; undefined for the connector's own queries. */
  readonly statement: NamedStatement | undefined;
  /** The placeholder text of each use of a parameter, in order. */
  readonly placeholders: readonly string[];
  /** How many characters of the rendered query were trimmed from its start before it was sent. */
  readonly lead: number;
  /** The text sent (before the client's own ` \nFORMAT ...`). */
  readonly text: string;
}

/** The circumstances of a failure the client's error alone does not tell. */
export interface FailureContext {
  readonly sent: SentQuery;
  readonly signal: AbortSignal | undefined;
  readonly timeoutMs: number;
  readonly maxRows: number;
  /** Where the source is, for messages (never a secret). */
  readonly location: string;
}

const FIX_USER =
  "connect as a user the profile of docs/connectors.md#a-read-only-clickhouse-user allows (readonly = 1, with max_execution_time and max_result_rows CHANGEABLE_IN_READONLY)";

/**
 * The {@link ConnectorError} of something @clickhouse/client threw.
 *
 * @returns `query_failed` (with `details.line`/`column` for a syntax error), `timeout`, `too_many_rows`,
 *   `read_only_violation`, `auth_failed`, `rate_limited`, `unavailable`
 */
export function clickHouseFailure(error: unknown, context: FailureContext): ConnectorError {
  if (error instanceof ConnectorError) return error;
  const where = `clickhouse ${context.sent.field}`;
  if (context.signal?.aborted === true) {
    return new ConnectorError("timeout", `${where}: aborted; the query on ${context.location} was cancelled`, {
      cause: error,
      details: { field: context.sent.field, aborted: true },
    });
  }
  if (!(error instanceof ClickHouseError)) return transportFailure(error, where, context);
  const code = Number(error.code);
  const message = error.message.trim().replace(/\.$/u, "");
  const details = { field: context.sent.field, clickhouseCode: code, clickhouseError: error.type ?? null };
  switch (code) {
    case CODES.SYNTAX_ERROR:
      return syntaxFailure(message, where, context, details, error);
    case CODES.TIMEOUT_EXCEEDED:
    case CODES.QUERY_WAS_CANCELLED:
    case CODES.SOCKET_TIMEOUT:
      return new ConnectorError(
        "timeout",
        `${where}: ${message}; the query ran longer than its timeout (${context.timeoutMs / 1000}s): read a partitioned or pre-aggregated table, or raise timeout`,
        { cause: error, details },
      );
    case CODES.TOO_MANY_ROWS_OR_BYTES:
      return tooManyRows(where, context.maxRows, error, details);
    case CODES.READONLY:
      return new ConnectorError(
        "read_only_violation",
        /Cannot modify '.*' setting in readonly mode/u.test(message)
          ? `${where}: ${message}; the user's profile has readonly = 1 without letting the connector set its limits: ${FIX_USER}`
          : `${where}: ${message}; a signal query only reads: write one SELECT`,
        { cause: error, details },
      );
    case CODES.AUTHENTICATION_FAILED:
    case CODES.UNKNOWN_USER:
    case CODES.WRONG_PASSWORD:
    case CODES.REQUIRED_PASSWORD:
      return new ConnectorError(
        "auth_failed",
        `${where}: ${context.location} refused the credentials (${message}); check the user and password in the url credential`,
        { cause: error, details },
      );
    case CODES.TOO_MANY_SIMULTANEOUS_QUERIES:
    case CODES.QUOTA_EXCEEDED:
      return new ConnectorError(
        "rate_limited",
        `${where}: ${message}; retried with backoff; lower max_concurrency or raise the user's limits`,
        { cause: error, details },
      );
    case CODES.NETWORK_ERROR:
    case CODES.CANNOT_SCHEDULE_TASK:
      return new ConnectorError("unavailable", `${where}: ${message}`, { cause: error, details });
    case CODES.ACCESS_DENIED:
      return new ConnectorError(
        "query_failed",
        `${where}: ${message}; GRANT SELECT on the tables the query reads to the connector's user`,
        { cause: error, details },
      );
    case CODES.UNKNOWN_TABLE:
    case CODES.UNKNOWN_IDENTIFIER:
      return new ConnectorError(
        "query_failed",
        `${where}: ${message}; check the names in the query (and the database setting)`,
        { cause: error, details },
      );
    default:
      return new ConnectorError("query_failed", `${where}: ${message}`, { cause: error, details });
  }
}

/** The `too_many_rows` error of a result over the cap. */
export function tooManyRows(
  where: string,
  maxRows: number,
  cause: unknown,
  details: Record<string, unknown> = {},
): ConnectorError {
  return new ConnectorError(
    "too_many_rows",
    `${where}: the result has more than ${maxRows} rows (max_rows); aggregate in the query (one row per arm, or per arm and ts) or raise max_rows`,
    { cause, details: { ...details, maxRows } },
  );
}

/** An error without a ClickHouse exception: the network, the client's own timeout, or a proxy's answer. */
function transportFailure(error: unknown, where: string, context: FailureContext): ConnectorError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (message === "Timeout error.") {
    return new ConnectorError(
      "timeout",
      `${where}: ${context.location} did not answer within ${context.timeoutMs / 1000}s (and the server's max_execution_time did not end it)`,
      { cause: error, details: { field: context.sent.field } },
    );
  }
  // A load balancer's or a cloud proxy's answer carries no ClickHouse exception; its text is all the client keeps.
  if (/too many requests|rate.?limit|throttl|\b429\b/iu.test(message)) {
    return new ConnectorError("rate_limited", `${where}: ${context.location} is throttling requests (${message})`, {
      cause: error,
      details: { field: context.sent.field },
    });
  }
  return new ConnectorError(
    "unavailable",
    `${where}: ${context.location} could not be reached or failed on its side (${message === "" ? "an HTTP error without a body" : message}${typeof code === "string" ? `, ${code}` : ""})`,
    { cause: error, details: { field: context.sent.field } },
  );
}

/** A syntax error, its position taken back to the user's query. */
function syntaxFailure(
  message: string,
  where: string,
  context: FailureContext,
  details: Record<string, unknown>,
  cause: unknown,
): ConnectorError {
  const match = /failed at position (\d+)/u.exec(message);
  const statement = context.sent.statement;
  if (match === null || statement === undefined) {
    return new ConnectorError("query_failed", `${where}: ${message}`, { cause, details });
  }
  const offset = userOffset(context.sent, Number(match[1]));
  const { line, column } = lineColumn(statement.sql, offset);
  // The server's own position and line/column are in the query as sent, placeholders included: say the user's.
  const own = message
    .replace(/failed at position \d+/u, `failed at line ${line}, column ${column}`)
    .replace(/\s*\(line \d+, col \d+\)/u, "");
  return new ConnectorError("query_failed", `${where} (line ${line}, column ${column}): ${own}`, {
    cause,
    details: { ...details, line, column, offset },
  });
}

/**
 * The offset in the user's query of ClickHouse's `failed at position N` (a
 * 1-based byte offset into the text sent). A position inside a placeholder
 * is the parameter's `:name`; one past the query (in the client's `FORMAT`
 * clause) is its end.
 */
function userOffset(sent: SentQuery, position: number): number {
  const statement = sent.statement;
  if (statement === undefined) return 0;
  const renderedOffset = sent.lead + charIndexOfByte(sent.text, Math.max(position - 1, 0));
  let delta = 0;
  for (const [i, use] of statement.uses.entries()) {
    const start = use.start + delta;
    const placeholder = sent.placeholders[i] ?? "";
    if (renderedOffset < start) break;
    if (renderedOffset < start + placeholder.length) return use.start;
    delta += placeholder.length - (use.end - use.start);
  }
  return Math.min(Math.max(renderedOffset - delta, 0), statement.sql.length);
}

/** The index of the character holding UTF-8 byte `byte` of `text` (its length past the end). */
function charIndexOfByte(text: string, byte: number): number {
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const point = text.codePointAt(i) ?? 0;
    const size = point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
    if (bytes + size > byte) return i;
    bytes += size;
    i += point >= 0x10000 ? 2 : 1;
  }
  return text.length;
}
