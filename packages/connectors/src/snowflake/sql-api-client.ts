/**
 * A small client of Snowflake's SQL API v2, the documented REST API
 * (OpenAPI: github.com/snowflakedb/snowflake-rest-api-specs,
 * `specifications/sqlapi.yaml`; guide: docs.snowflake.com/en/developer-guide/sql-api):
 *
 * - `POST /api/v2/statements?async=true` submits one statement with its
 *   context (`warehouse`, `role`, `database`, `schema`), `timeout` (seconds,
 *   enforced by Snowflake), `bindings` and session `parameters`; the answer is
 *   202 with a `statementHandle` (or 200 with the result);
 * - `GET /api/v2/statements/{handle}` polls it: 202 while it runs, then 200
 *   with `resultSetMetaData` (`numRows`, `rowType`, `partitionInfo`) and the
 *   first partition's `data`; `?partition=n` fetches the others;
 * - `POST /api/v2/statements/{handle}/cancel` cancels it.
 *
 * Errors are mapped to {@link ConnectorError} codes: 422 (the statement
 * failed: `code`, `sqlState`, `message`), 408 and code 000630 (Snowflake's
 * statement timeout), 429 (rate limit, `Retry-After`), 401/403 (the JWT or the
 * API refused), 5xx (unavailable). Every result cell arrives as a string
 * ("jsonv2"), decoded here by its column's type (docs "Handling responses").
 *
 * Why not `snowflake-sdk`: the driver speaks Snowflake's internal protocol
 * (`/session/v1/login-request`, `/queries/v1/query-request`, Arrow result
 * chunks fetched from cloud storage), which has no published description a
 * test server could follow; the SQL API is documented request by request.
 */
import { randomUUID } from "node:crypto";
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { ConnectorError } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";
import type { KeyPairAuth } from "./key-pair-auth";

/** The largest response body read, in bytes; a larger one stops reading (`bad_response`). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** The first wait between polls of a running statement, in ms; each next one is 1.5 times longer, up to {@link MAX_POLL_WAIT_MS}. */
const FIRST_POLL_WAIT_MS = 100;
const MAX_POLL_WAIT_MS = 2_000;
/** Throttled (429) or failing (5xx) polls of one statement tolerated in a row before giving up on it. */
const MAX_POLL_SETBACKS = 5;
/** How long a cancel request may take, in ms. */
const CANCEL_TIMEOUT_MS = 5_000;
/** How long to wait after a 429 without `Retry-After`, in ms. */
const DEFAULT_RETRY_AFTER_MS = 1_000;
const USER_AGENT = "outcome-runtime/0.1 (snowflake connector)";

/** Snowflake's error codes the client treats apart (docs: "Error messages" of the SQL API, and query errors). */
const STATEMENT_TIMEOUT_CODE = "000630";
const STATEMENT_CANCELLED_CODE = "000604";
const STATEMENT_COUNT_CODE = "000008";

/** The statement context every request carries. */
interface StatementContext {
  readonly warehouse: string;
  readonly role: string;
  readonly database: string;
  readonly schema: string | undefined;
  readonly queryTag: string;
}

/** How to reach one account's SQL API. */
export interface SqlApiSettings {
  /** `https://<account>.snowflakecomputing.com`, or an operator-allowed base. */
  readonly baseUrl: string;
  readonly auth: KeyPairAuth;
  readonly fetch: typeof fetch;
  readonly context: StatementContext;
}

/** One positional bind value (`"1"`, `"2"`, ... in `bindings`). */
export interface Binding {
  readonly type: "TEXT" | "FIXED";
  readonly value: string;
}

/** One statement to run. */
export interface StatementRun {
  readonly sql: string;
  readonly bindings: readonly Binding[];
  /** Snowflake's statement timeout (the request's `timeout`), in seconds, at least 1. */
  readonly timeoutSeconds: number;
  /** The most rows to read: a result with more is `too_many_rows`, decided from `numRows` before any further partition. */
  readonly maxRows: number;
  /** The client's own deadline for the whole run (submit, polls, partitions), in ms. */
  readonly deadlineMs: number;
  readonly signal: AbortSignal | undefined;
  /** Names the statement in messages, e.g. `snowflake query`. */
  readonly label: string;
  /**
   * The outcome.yaml setting the statement came from (`query`, `series_query`), named as `details.field` by the
   * errors of the statement itself (its SQL, its timeout, its statement count), so that they point at the setting.
   */
  readonly field?: string;
  /** Maps a position Snowflake reports (1-based line, 0-based position in the statement sent) to the user's line and column. */
  readonly positionOf?: (line: number, position: number) => { line: number; column: number };
}

/** One column of a result (`resultSetMetaData.rowType[]`). */
interface ColumnType {
  readonly name: string;
  readonly type: string;
  readonly scale?: number;
}

/** A statement's result: its columns and decoded rows. */
export interface StatementResult {
  readonly columns: readonly ColumnType[];
  readonly rows: readonly (readonly unknown[])[];
}

/** A JSON answer with its status and `Retry-After`. */
interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly retryAfterMs: number | null;
}

/**
 * Runs `run` as one statement and reads its whole result, at most
 * `run.maxRows` rows. The statement is submitted asynchronously, so it can
 * always be cancelled: on an abort of `run.signal` or at `run.deadlineMs` it
 * is cancelled on Snowflake before the call rejects.
 *
 * @throws ConnectorError `query_failed` (with `details.line`/`column` when Snowflake gives a position),
 *   `read_only_violation` (more than one statement), `timeout`, `rate_limited`, `unavailable`, `auth_failed`,
 *   `too_many_rows`, `bad_response`, `invalid_config` (the outbound guard refused the host)
 */
export async function executeStatement(settings: SqlApiSettings, run: StatementRun): Promise<StatementResult> {
  const deadline = AbortSignal.timeout(run.deadlineMs);
  const signal = run.signal === undefined ? deadline : AbortSignal.any([run.signal, deadline]);
  const { context } = settings;
  const body = {
    statement: run.sql,
    timeout: Math.max(1, Math.ceil(run.timeoutSeconds)),
    warehouse: context.warehouse,
    role: context.role,
    database: context.database,
    ...(context.schema === undefined ? {} : { schema: context.schema }),
    ...(run.bindings.length === 0
      ? {}
      : {
          bindings: Object.fromEntries(run.bindings.map((b, i) => [String(i + 1), { type: b.type, value: b.value }])),
        }),
    parameters: {
      QUERY_TAG: context.queryTag,
      // A second statement fails on Snowflake's side, whatever the static check missed.
      MULTI_STATEMENT_COUNT: "1",
      TIMEZONE: "UTC",
      // Snowflake stops the result one row past the cap: a larger result is never produced, let alone sent.
      ROWS_PER_RESULTSET: String(run.maxRows + 1),
    },
  };
  const submitted = await send(settings, "POST", `/api/v2/statements?${submitQuery()}`, body, run, signal, undefined);
  let answer = submitted;
  let handle = handleOf(submitted.body);
  try {
    let wait = FIRST_POLL_WAIT_MS;
    let setbacks = 0;
    for (;;) {
      if (answer.status === 200) break;
      if (answer.status === 202) {
        setbacks = 0;
      } else if (handle !== undefined && (answer.status === 429 || answer.status >= 500)) {
        // The statement runs on: a throttled or failing poll is waited out, a few times.
        setbacks++;
        if (setbacks > MAX_POLL_SETBACKS) throw failure(answer, run);
      } else {
        throw failure(answer, run);
      }
      if (handle === undefined) {
        throw new ConnectorError(
          "bad_response",
          `${run.label}: Snowflake accepted the statement (HTTP 202) without a statementHandle; check api_url`,
          { details: { status: answer.status } },
        );
      }
      await sleep(answer.retryAfterMs ?? wait, signal);
      wait = Math.min(MAX_POLL_WAIT_MS, Math.round(wait * 1.5));
      answer = await send(settings, "GET", statementPath(handle), undefined, run, signal, handle);
      handle = handleOf(answer.body) ?? handle;
    }
    return await readResult(settings, answer.body, handle, run, signal);
  } catch (error) {
    // A statement given up on while it may still run (an abort, or polls that kept failing) is cancelled.
    const running = answer.status !== 200 && answer.status !== 408 && answer.status !== 422;
    if (handle !== undefined && (signal.aborted || running)) await cancel(settings, handle);
    if (signal.aborted && !(error instanceof ConnectorError && error.code === "timeout")) {
      throw abortedError(run, run.signal?.aborted === true ? run.signal : deadline);
    }
    throw error;
  }
}

function submitQuery(): string {
  // nullable=true: SQL NULL arrives as JSON null, not the text "null".
  return new URLSearchParams({ async: "true", nullable: "true", requestId: randomUUID() }).toString();
}

function statementPath(handle: string, partition?: number): string {
  return `/api/v2/statements/${encodeURIComponent(handle)}${partition === undefined ? "" : `?partition=${partition}`}`;
}

/** The `statementHandle` of an answer, when it looks like one. */
function handleOf(body: unknown): string | undefined {
  const handle = isRecord(body) ? body.statementHandle : undefined;
  return typeof handle === "string" && /^[0-9A-Za-z-]{1,100}$/u.test(handle) ? handle : undefined;
}

/** Reads a 200 answer: checks the row count against the cap, then fetches the other partitions. */
async function readResult(
  settings: SqlApiSettings,
  body: unknown,
  handle: string | undefined,
  run: StatementRun,
  signal: AbortSignal,
): Promise<StatementResult> {
  const meta = isRecord(body) ? body.resultSetMetaData : undefined;
  if (!isRecord(meta) || !Array.isArray(meta.rowType)) {
    throw new ConnectorError(
      "bad_response",
      `${run.label}: Snowflake's answer has no resultSetMetaData.rowType; check api_url (it should be the account's SQL API)`,
      { details: { handle } },
    );
  }
  const columns = meta.rowType.map((c, i): ColumnType => {
    if (!isRecord(c) || typeof c.name !== "string" || typeof c.type !== "string") {
      throw new ConnectorError("bad_response", `${run.label}: column ${i + 1} of rowType has no name or type`, {
        details: { handle },
      });
    }
    return { name: c.name, type: c.type.toUpperCase(), ...(typeof c.scale === "number" ? { scale: c.scale } : {}) };
  });
  const numRows = meta.numRows;
  if (typeof numRows !== "number" || !Number.isSafeInteger(numRows) || numRows < 0) {
    throw new ConnectorError("bad_response", `${run.label}: resultSetMetaData.numRows is not a row count`, {
      details: { handle, numRows },
    });
  }
  if (numRows > run.maxRows) {
    throw new ConnectorError(
      "too_many_rows",
      `${run.label}: the result has more than ${run.maxRows} rows (max_rows); nothing more was read. Group by arm (and ts) so the query returns one row per arm and checkpoint, or raise max_rows`,
      { details: { maxRows: run.maxRows, numRows } },
    );
  }
  const partitions = Array.isArray(meta.partitionInfo) ? meta.partitionInfo.length : 1;
  const rows: unknown[][] = [];
  const take = (data: unknown, partition: number): void => {
    if (!Array.isArray(data)) {
      throw new ConnectorError("bad_response", `${run.label}: partition ${partition} has no data array`, {
        details: { handle, partition },
      });
    }
    if (rows.length + data.length > numRows) {
      throw new ConnectorError(
        "bad_response",
        `${run.label}: Snowflake sent more rows than numRows (${numRows}) said; reading stopped`,
        { details: { handle, partition, numRows } },
      );
    }
    for (const row of data) rows.push(decodeRow(row, columns, run.label));
  };
  take(isRecord(body) ? body.data : undefined, 0);
  for (let partition = 1; partition < partitions; partition++) {
    if (handle === undefined) {
      throw new ConnectorError("bad_response", `${run.label}: a result in partitions has no statementHandle`, {
        details: { partitions },
      });
    }
    const answer = await send(settings, "GET", statementPath(handle, partition), undefined, run, signal, handle);
    if (answer.status !== 200) throw failure(answer, run);
    take(isRecord(answer.body) ? answer.body.data : undefined, partition);
  }
  if (rows.length !== numRows) {
    throw new ConnectorError(
      "bad_response",
      `${run.label}: Snowflake sent ${rows.length} rows in ${partitions} partitions, but numRows is ${numRows}`,
      { details: { handle, numRows, received: rows.length } },
    );
  }
  return { columns, rows };
}

/**
 * One cell as the connector's row checks take it. Each non-null cell is a
 * string (docs "Handling responses"): FIXED is decimal text (kept as text, so
 * no digit is lost), REAL a float, BOOLEAN "true"/"false", DATE days since the
 * epoch, TIMESTAMP_NTZ/LTZ seconds since the epoch with a fraction,
 * TIMESTAMP_TZ the same followed by a space and the offset (minutes + 1440).
 */
function decodeRow(row: unknown, columns: readonly ColumnType[], label: string): unknown[] {
  if (!Array.isArray(row) || row.length !== columns.length) {
    throw new ConnectorError(
      "bad_response",
      `${label}: a row has ${Array.isArray(row) ? row.length : "no"} cells for ${columns.length} columns`,
      { details: { columns: columns.length } },
    );
  }
  return row.map((cell, i) => {
    if (cell === null) return null;
    const column = columns[i] as ColumnType;
    if (typeof cell !== "string") {
      throw new ConnectorError("bad_response", `${label}: column ${column.name} holds a ${typeof cell}, not a string`, {
        details: { column: column.name },
      });
    }
    switch (column.type) {
      case "REAL":
      case "FLOAT":
      case "DOUBLE":
        return Number(cell);
      case "BOOLEAN":
        return cell === "true";
      case "DATE":
        return /^-?\d+$/u.test(cell) ? new Date(Number(cell) * 86_400_000) : cell;
      case "TIMESTAMP_NTZ":
      case "TIMESTAMP_LTZ":
      case "TIMESTAMP_TZ":
        return epochSeconds(cell.split(" ")[0] ?? "") ?? cell;
      default:
        // FIXED/NUMBER (decimal text), TEXT, TIME, VARIANT and the rest: as sent.
        return cell;
    }
  });
}

/** `"1717243200.123456789"` → its Date (millisecond precision), or null when it is not that form. */
function epochSeconds(text: string): Date | null {
  const match = /^(-?)(\d+)(?:\.(\d{1,9}))?$/u.exec(text);
  if (match === null) return null;
  const sign = match[1] === "-" ? -1 : 1;
  const millis = Number(match[2]) * 1000 + Math.round(Number(`0.${match[3] ?? "0"}`) * 1000);
  return new Date(sign * millis);
}

/** Sends one request and reads its JSON answer (any status). */
async function send(
  settings: SqlApiSettings,
  method: "GET" | "POST",
  path: string,
  body: unknown,
  run: StatementRun,
  signal: AbortSignal,
  handle: string | undefined,
): Promise<Answer> {
  let response: Response;
  let text: string | null;
  try {
    response = await settings.fetch(`${settings.baseUrl}${path}`, {
      method,
      headers: {
        ...(await settings.auth.headers()),
        Accept: "application/json",
        "User-Agent": USER_AGENT,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal,
    });
    text = await readCapped(response, MAX_RESPONSE_BYTES);
  } catch (error) {
    if (signal.aborted) throw abortedError(run, run.signal?.aborted === true ? run.signal : undefined, handle);
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError("invalid_config", `${run.label}: ${error.message}`, {
        details: { url: error.url, address: error.address },
        cause: error,
      });
    }
    throw new ConnectorError(
      "unavailable",
      `${run.label}: cannot reach ${new URL(settings.baseUrl).host} (${error instanceof Error ? error.message : String(error)}); the read will be retried`,
      { details: { handle }, cause: error },
    );
  }
  if (text === null) {
    throw new ConnectorError(
      "bad_response",
      `${run.label}: an answer is larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB; reading stopped. Return one row per arm (and ts)`,
      { details: { handle, status: response.status, maxBytes: MAX_RESPONSE_BYTES } },
    );
  }
  let parsed: unknown = null;
  if (text.trim() !== "") {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text.trim().slice(0, 200);
      if (response.status >= 200 && response.status < 300) {
        throw new ConnectorError(
          "bad_response",
          `${run.label}: the answer is not JSON (starts with ${JSON.stringify(text.slice(0, 60))}); check api_url`,
          { details: { handle, status: response.status } },
        );
      }
    }
  }
  return { status: response.status, body: parsed, retryAfterMs: parseRetryAfter(response.headers.get("retry-after")) };
}

/** The ConnectorError of an answer that is not a result. */
function failure(answer: Answer, run: StatementRun): ConnectorError {
  const { status, body } = answer;
  const code = isRecord(body) && typeof body.code === "string" ? body.code : undefined;
  const sqlState = isRecord(body) && typeof body.sqlState === "string" ? body.sqlState : undefined;
  const message =
    isRecord(body) && typeof body.message === "string" ? body.message : typeof body === "string" ? body : "";
  const said = `${message === "" ? `HTTP ${status}` : message}${code === undefined ? "" : ` (code ${code}${sqlState === undefined ? "" : `, SQL state ${sqlState}`})`}`;
  const details = { status, ...(code === undefined ? {} : { snowflakeCode: code }), ...(sqlState ? { sqlState } : {}) };
  // What the statement's own text caused names the setting it came from; an auth or a transport failure does not.
  const statementDetails = { ...details, ...(run.field === undefined ? {} : { field: run.field }) };
  if (status === 408 || code === STATEMENT_TIMEOUT_CODE) {
    return new ConnectorError(
      "timeout",
      `${run.label}: the statement ran longer than its timeout (${run.timeoutSeconds}s) and Snowflake cancelled it: ${said}. Raise timeout, filter on :from/:to or a clustered column, or use a larger warehouse`,
      { details: { ...statementDetails, timeoutSeconds: run.timeoutSeconds } },
    );
  }
  if (status === 429) {
    const retryAfterMs = answer.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
    return new ConnectorError(
      "rate_limited",
      `${run.label}: Snowflake's SQL API rate limit was hit (429: ${said}); retrying in ${Math.ceil(retryAfterMs / 1000)}s. Lower max_concurrency or poll less often`,
      { retryAfterMs, details },
    );
  }
  if (status === 401 || status === 403) {
    return new ConnectorError(
      "auth_failed",
      status === 401
        ? `${run.label}: Snowflake refused the key-pair JWT (401: ${said}); check account and user, and that the user's RSA_PUBLIC_KEY is the public half of private_key (DESC USER shows its RSA_PUBLIC_KEY_FP)`
        : `${run.label}: Snowflake forbade the request (403: ${said}); check that the SQL API is allowed for this user (network policy) and that role is granted to user`,
      { details },
    );
  }
  if (status >= 500) {
    return new ConnectorError(
      "unavailable",
      `${run.label}: Snowflake failed (${status}: ${said}); the read will be retried`,
      {
        retryAfterMs: answer.retryAfterMs,
        details,
      },
    );
  }
  if (status === 422 && code === STATEMENT_COUNT_CODE) {
    return new ConnectorError(
      "read_only_violation",
      `${run.label}: Snowflake refused more than one statement (${said}); write a single SELECT`,
      { details: statementDetails },
    );
  }
  if (status === 422 && code === STATEMENT_CANCELLED_CODE) {
    return new ConnectorError("timeout", `${run.label}: the statement was cancelled (${said})`, {
      details: statementDetails,
    });
  }
  if (status === 422 || status === 400) {
    const at = /line (\d+) at position (\d+)/u.exec(message);
    const position =
      at === null
        ? undefined
        : (run.positionOf?.(Number(at[1]), Number(at[2])) ?? { line: Number(at[1]), column: Number(at[2]) + 1 });
    return new ConnectorError(
      "query_failed",
      `${run.label}${position === undefined ? "" : ` (line ${position.line}, column ${position.column})`}: Snowflake refused the statement: ${said}`,
      {
        details: {
          ...statementDetails,
          ...(position === undefined ? {} : { line: position.line, column: position.column }),
          message,
        },
      },
    );
  }
  return new ConnectorError(
    "bad_response",
    `${run.label}: unexpected answer from Snowflake (HTTP ${status}: ${said}); check account and api_url`,
    { details },
  );
}

/** The `timeout` error of an aborted run: the caller's abort, or the client's own deadline. */
function abortedError(run: StatementRun, aborted: AbortSignal | undefined, handle?: string): ConnectorError {
  const reason = (aborted?.reason as { name?: string } | undefined)?.name;
  const callerAborted = aborted !== undefined && aborted === run.signal;
  return new ConnectorError(
    "timeout",
    callerAborted
      ? reason === "TimeoutError"
        ? `${run.label}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the statement was cancelled`
        : `${run.label}: the read was aborted; the statement was cancelled`
      : `${run.label}: no result within ${Math.round(run.deadlineMs / 1000)}s; the statement was cancelled. Raise timeout, or make the query cheaper`,
    { details: { aborted: true, ...(handle === undefined ? {} : { handle }) } },
  );
}

/** Cancels a statement; a failure to cancel is not the caller's error (the statement's own timeout ends it). */
async function cancel(settings: SqlApiSettings, handle: string): Promise<void> {
  try {
    const response = await settings.fetch(`${settings.baseUrl}${statementPath(handle)}/cancel`, {
      method: "POST",
      headers: { ...(await settings.auth.headers()), Accept: "application/json", "User-Agent": USER_AGENT },
      signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS),
    });
    await response.body?.cancel().catch(() => {});
  } catch {
    // Snowflake ends it at its timeout.
  }
}

/** Waits `ms`, or rejects when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
