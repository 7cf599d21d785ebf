/**
 * A local stand-in for ClickHouse's HTTP interface, answering each query with
 * what the test chose (`respondWith`). It follows the published description:
 *
 * - github.com/ClickHouse/ClickHouse `docs/en/interfaces/http.md` (also
 *   https://clickhouse.com/docs/en/interfaces/http): the query in the POST
 *   body or the `query` URL parameter, `database`, `query_id`,
 *   `default_format`, `wait_end_of_query` and the other reserved URL
 *   parameters, every other URL parameter a setting; users by HTTP Basic, by
 *   `X-ClickHouse-User`/`X-ClickHouse-Key` or by `user`/`password`; typed
 *   placeholders `{name:Type}` with values in `param_<name>` (values in the
 *   escaped format, arrays as `['a','b']`); the `X-ClickHouse-Query-Id`,
 *   `-Format`, `-Timezone`, `-Summary` and `-Server-Display-Name` headers;
 *   errors as `Code: N. DB::Exception: <message>. (<NAME>) (version ...)` with
 *   `X-ClickHouse-Exception-Code`, and, without `wait_end_of_query=1`, an error
 *   after the first rows written at the end of a 200 body ("HTTP response
 *   codes caveats");
 * - `src/Server/HTTP/exceptionCodeToHTTPStatus.cpp`: the status of each
 *   exception code (403 for AUTHENTICATION_FAILED, 400 for SYNTAX_ERROR, 404
 *   for UNKNOWN_TABLE, 408 for TIMEOUT_EXCEEDED, else 500);
 * - `src/Common/ErrorCodes.cpp`: the codes and names used here;
 * - `docs/en/operations/settings/permissions-for-queries.md` and
 *   `constraints-on-settings.md`: `readonly=1` allows only reads, and a user
 *   whose profile sets `readonly = 1` may change only the settings marked
 *   `CHANGEABLE_IN_READONLY` (a setting sent with its current value is no
 *   change, `src/Access/SettingsConstraints.cpp`);
 * - `docs/en/operations/settings/query-complexity.md`: `max_result_rows` with
 *   `result_overflow_mode` (`throw` → TOO_MANY_ROWS_OR_BYTES),
 *   `max_execution_time` with `timeout_overflow_mode` (`throw` →
 *   TIMEOUT_EXCEEDED); `settings.md`: `cancel_http_readonly_queries_on_client_close`
 *   (a read-only query stops when its client goes away);
 * - `docs/en/interfaces/formats/JSON/*.md`: `JSONCompactEachRowWithNamesAndTypes`
 *   (a row of names, a row of types, then one JSON array per row), `JSON`,
 *   `JSONEachRow`, `JSONCompactEachRow`; 64-bit integers quoted unless
 *   `output_format_json_quote_64bit_integers=0`, decimals unquoted, DateTime
 *   as `YYYY-MM-DD hh:mm:ss[.fff]` text.
 *
 * What a client sends is read as @clickhouse/client sends it
 * (github.com/ClickHouse/clickhouse-js, `packages/client-node/src/connection/node_base_connection.ts`:
 * a POST whose body is the query followed by `FORMAT <format>`, settings and
 * `param_` values in the URL). Every request is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A result column: its name and its ClickHouse type (`String`, `UInt64`, `Float64`, `DateTime64(3, 'UTC')`, ...). */
export interface FakeClickHouseColumn {
  readonly name: string;
  readonly type: string;
}

/** A query as the fake understood it, handed to the test's handler. */
export interface FakeClickHouseQuery {
  /** The query text as received, placeholders (`{experiments:Array(String)}`) included, without its `FORMAT` clause. */
  readonly sql: string;
  /** Each placeholder's value, decoded by its type: `String` → string, `Array(String)` → string[], `DateTime64`/`DateTime` → Date, numbers → number. */
  readonly parameters: Readonly<Record<string, unknown>>;
  /** The settings sent as URL parameters, as text. */
  readonly settings: Readonly<Record<string, string>>;
  readonly format: string;
  readonly queryId: string;
  readonly user: string;
  readonly database: string;
}

/**
 * The test's answer to one query:
 * - `{ columns, rows }`: a result (each row's values in column order: numbers,
 *   bigints, decimal text, strings, Dates, null, arrays), written in the
 *   requested format; `delayMs` makes the query run that long first (cut at
 *   `max_execution_time`);
 * - `{ exception: { code, message } }`: ClickHouse's own error (the status follows from the code);
 * - `{ httpStatus, body, retryAfterSeconds }`: an answer of something in front
 *   of the server (a load balancer's 429 or 503), without ClickHouse's headers.
 */
export type FakeClickHouseAnswer =
  | {
      readonly columns: readonly FakeClickHouseColumn[];
      readonly rows: readonly (readonly unknown[])[];
      readonly delayMs?: number;
    }
  | { readonly exception: { readonly code: number; readonly message: string }; readonly delayMs?: number }
  | { readonly httpStatus: number; readonly body?: string; readonly retryAfterSeconds?: number };

/** Chooses the answer to each query. */
export type FakeClickHouseHandler = (
  query: FakeClickHouseQuery,
) => FakeClickHouseAnswer | Promise<FakeClickHouseAnswer>;

/** One request as received, and how it ended. */
export interface FakeClickHouseRequest {
  readonly method: string;
  readonly path: string;
  readonly params: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  /** Set once the request was read as a query. */
  query?: FakeClickHouseQuery;
  /** The HTTP status sent. */
  status?: number;
  /** The exception code sent, if any. */
  exceptionCode?: number;
  /**
   * `cancelled`: the client went away and the query was stopped
   * (`cancel_http_readonly_queries_on_client_close=1` on a read-only query);
   * `abandoned`: the client went away and the query ran on.
   */
  ended?: "answered" | "cancelled" | "abandoned";
}

export interface FakeClickHouse {
  /** The HTTP interface's base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: FakeClickHouseRequest[];
  /** Sets the handler that answers every later query. */
  respondWith(handler: FakeClickHouseHandler): void;
  close(): Promise<void>;
}

/** Options of {@link startClickHouseFake}. */
export interface FakeClickHouseOptions {
  /** User → password (default `{ reader: "reader-password" }`). */
  readonly users?: Readonly<Record<string, string>>;
  /** The server's time zone, sent as `X-ClickHouse-Timezone` (default `UTC`). */
  readonly timezone?: string;
  /**
   * The users' settings profile: settings with their values (`readonly: "1"`)
   * and the settings marked `CHANGEABLE_IN_READONLY`. Without it the users
   * have the defaults (readonly=0) and may change any setting.
   */
  readonly profile?: {
    readonly settings: Readonly<Record<string, string>>;
    readonly changeableInReadonly?: readonly string[];
  };
  /** Rows per write of a result body (default 2): a client must join rows split across chunks. */
  readonly rowsPerChunk?: number;
}

const VERSION = "24.8.4.13 (official build)";

/** Names of the exception codes the fake sends (src/Common/ErrorCodes.cpp). */
const CODE_NAMES: Readonly<Record<number, string>> = {
  47: "UNKNOWN_IDENTIFIER",
  60: "UNKNOWN_TABLE",
  62: "SYNTAX_ERROR",
  73: "UNKNOWN_FORMAT",
  159: "TIMEOUT_EXCEEDED",
  164: "READONLY",
  192: "UNKNOWN_USER",
  194: "REQUIRED_PASSWORD",
  201: "QUOTA_EXCEEDED",
  202: "TOO_MANY_SIMULTANEOUS_QUERIES",
  241: "MEMORY_LIMIT_EXCEEDED",
  394: "QUERY_WAS_CANCELLED",
  396: "TOO_MANY_ROWS_OR_BYTES",
  456: "UNKNOWN_QUERY_PARAMETER",
  457: "BAD_QUERY_PARAMETER",
  497: "ACCESS_DENIED",
  516: "AUTHENTICATION_FAILED",
};

/** The HTTP status of an exception code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp). */
function statusOf(code: number): number {
  if (code === 194) return 401;
  if ([192, 193, 497, 516].includes(code)) return 403;
  if ([62, 457, 36, 53, 6, 27, 38, 41].includes(code)) return 400;
  if ([60, 46, 47, 81, 73, 115].includes(code)) return 404;
  if (code === 159) return 408;
  if (code === 439 || code === 209) return 503;
  return 500;
}

/** URL parameters the HTTP handler reads itself; every other one (but `param_*`) is a setting. */
const RESERVED = new Set([
  "query",
  "query_id",
  "database",
  "default_format",
  "user",
  "password",
  "quota_key",
  "session_id",
  "session_timeout",
  "session_check",
  "compress",
  "decompress",
  "buffer_size",
  "wait_end_of_query",
  "role",
  "stacktrace",
  "close_session",
]);

/** Keywords a query that writes or changes the server starts with (docs/en/operations/settings/permissions-for-queries.md). */
const WRITES = /^\s*(insert|optimize|set|create|alter|rename|attach|detach|drop|truncate|grant|revoke|system|kill)\b/iu;

/**
 * A syntax error at the first occurrence of `near` in `sql`, as ClickHouse's
 * parser words it (src/Parsers/parseQuery.cpp: `failed at position N` with N
 * the 1-based byte offset into the query received, then `(line L, col C)`).
 */
export function clickHouseSyntaxError(sql: string, near: string): FakeClickHouseAnswer {
  const at = sql.indexOf(near);
  const offset = at === -1 ? 0 : at;
  const before = sql.slice(0, offset);
  const line = before.split("\n").length;
  const col = offset - before.lastIndexOf("\n");
  const position = Buffer.byteLength(before, "utf8") + 1;
  return {
    exception: {
      code: 62,
      message: `Syntax error: failed at position ${position} ('${near}') (line ${line}, col ${col}): ${sql.slice(offset, offset + 40)}. Expected one of: token, Comma, FROM, WHERE`,
    },
  };
}

/**
 * Starts the fake on a free loopback port. Until `respondWith` is called,
 * every query fails with UNKNOWN_TABLE.
 */
export async function startClickHouseFake(options: FakeClickHouseOptions = {}): Promise<FakeClickHouse> {
  const users = options.users ?? { reader: "reader-password" };
  const timezone = options.timezone ?? "UTC";
  const rowsPerChunk = options.rowsPerChunk ?? 2;
  let handler: FakeClickHouseHandler = () => ({
    exception: { code: 60, message: "Unknown table expression identifier: the fake has no answer; call respondWith" },
  });
  const requests: FakeClickHouseRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const record: FakeClickHouseRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        params: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(record);
      void serve(record, res).catch((error: unknown) => {
        if (!res.headersSent) {
          sendException(res, record, 1001, error instanceof Error ? error.message : String(error), "");
        } else {
          res.destroy();
        }
      });
    });
  });

  async function serve(record: FakeClickHouseRequest, res: ServerResponse): Promise<void> {
    if (record.path === "/ping") {
      record.status = 200;
      res.writeHead(200, { "Content-Type": "text/html; charset=UTF-8" });
      res.end("Ok.\n");
      return;
    }
    const params = record.params;
    const queryId = params.get("query_id") ?? crypto.randomUUID();
    const user = authenticate(record, params, users);
    if (typeof user !== "string") {
      sendException(res, record, user.code, user.message, queryId);
      return;
    }
    const settings: Record<string, string> = {};
    const parameterTexts: Record<string, string> = {};
    for (const [key, value] of params) {
      if (key.startsWith("param_")) parameterTexts[key.slice(6)] = value;
      else if (!RESERVED.has(key)) settings[key] = value;
    }
    const refused = checkProfile(settings, options.profile);
    if (refused !== null) {
      sendException(res, record, 164, refused, queryId);
      return;
    }
    // "If part of the query is sent in the parameter, and part in the POST, a line feed is inserted between".
    const fromUrl = params.get("query");
    const text = fromUrl === null ? record.body : record.body === "" ? fromUrl : `${fromUrl}\n${record.body}`;
    const formatMatch = /\s+FORMAT\s+([A-Za-z]+)\s*;?\s*$/u.exec(text);
    const sql = formatMatch === null ? text.trim() : text.slice(0, formatMatch.index);
    const format = formatMatch?.[1] ?? params.get("default_format") ?? "TabSeparated";
    const readonly = settings.readonly ?? options.profile?.settings.readonly ?? "0";
    if (readonly !== "0" && WRITES.test(sql)) {
      sendException(res, record, 164, "Cannot execute query in readonly mode", queryId);
      return;
    }
    const decoded = decodeParameters(sql, parameterTexts);
    if ("code" in decoded) {
      sendException(res, record, decoded.code, decoded.message, queryId);
      return;
    }
    if (
      !["JSONCompactEachRowWithNamesAndTypes", "JSONCompactEachRow", "JSONEachRow", "JSON", "TabSeparated"].includes(
        format,
      )
    ) {
      sendException(res, record, 73, `Unknown output format ${format}`, queryId);
      return;
    }
    const query: FakeClickHouseQuery = {
      sql,
      parameters: decoded.values,
      settings,
      format,
      queryId,
      user,
      database: params.get("database") ?? "default",
    };
    record.query = query;
    const answer = await handler(query);
    if ("httpStatus" in answer) {
      record.status = answer.httpStatus;
      res.writeHead(answer.httpStatus, {
        "Content-Type": "text/plain; charset=UTF-8",
        ...(answer.retryAfterSeconds === undefined ? {} : { "Retry-After": String(answer.retryAfterSeconds) }),
      });
      res.end(answer.body ?? "");
      return;
    }
    const limitSeconds = Number(settings.max_execution_time ?? options.profile?.settings.max_execution_time ?? "0");
    const delayMs = answer.delayMs ?? 0;
    const timesOut =
      limitSeconds > 0 && delayMs > limitSeconds * 1000 && (settings.timeout_overflow_mode ?? "throw") === "throw";
    const ran = await runFor(timesOut ? limitSeconds * 1000 : delayMs, res, record, settings, readonly);
    if (!ran) return;
    if (timesOut) {
      sendException(
        res,
        record,
        159,
        `Timeout exceeded: elapsed ${(limitSeconds + 0.001).toFixed(6)} seconds, maximum: ${limitSeconds}`,
        queryId,
      );
      return;
    }
    if ("exception" in answer) {
      sendException(res, record, answer.exception.code, answer.exception.message, queryId);
      return;
    }
    writeResult(res, record, query, answer, timezone, rowsPerChunk, params.get("wait_end_of_query") === "1");
  }

  /** Waits `ms` as a running query would; false when the client went away meanwhile. */
  function runFor(
    ms: number,
    res: ServerResponse,
    record: FakeClickHouseRequest,
    settings: Readonly<Record<string, string>>,
    readonly: string,
  ): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onClose = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        const cancels = (settings.cancel_http_readonly_queries_on_client_close ?? "0") === "1" && readonly !== "0";
        record.ended = cancels ? "cancelled" : "abandoned";
        resolve(false);
      };
      const timer = setTimeout(() => {
        timers.delete(timer);
        res.off("close", onClose);
        resolve(true);
      }, ms);
      timers.add(timer);
      res.once("close", onClose);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    respondWith(next) {
      handler = next;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The user a request authenticates as, or the exception ClickHouse answers. */
function authenticate(
  record: FakeClickHouseRequest,
  params: URLSearchParams,
  users: Readonly<Record<string, string>>,
): string | { code: number; message: string } {
  let name = "default";
  let password = "";
  const authorization = record.headers.authorization;
  const headerUser = record.headers["x-clickhouse-user"];
  if (typeof authorization === "string" && authorization.startsWith("Basic ")) {
    const decoded = Buffer.from(authorization.slice(6), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    name = colon === -1 ? decoded : decoded.slice(0, colon);
    password = colon === -1 ? "" : decoded.slice(colon + 1);
  } else if (typeof headerUser === "string") {
    name = headerUser;
    const key = record.headers["x-clickhouse-key"];
    password = typeof key === "string" ? key : "";
  } else if (params.has("user")) {
    name = params.get("user") ?? "default";
    password = params.get("password") ?? "";
  }
  if (users[name] === undefined || users[name] !== password) {
    return {
      code: 516,
      message: `${name}: Authentication failed: password is incorrect, or there is no user with such name`,
    };
  }
  return name;
}

/** Why a profile with `readonly = 1` refuses the settings sent, or null. */
function checkProfile(
  settings: Readonly<Record<string, string>>,
  profile: FakeClickHouseOptions["profile"],
): string | null {
  if (profile === undefined || (profile.settings.readonly ?? "0") !== "1") return null;
  for (const [name, value] of Object.entries(settings)) {
    // A setting sent with its current value is no change and is not checked.
    if (profile.settings[name] === value) continue;
    if (name === "readonly" || !(profile.changeableInReadonly ?? []).includes(name)) {
      return `Cannot modify '${name}' setting in readonly mode`;
    }
  }
  return null;
}

const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*((?:[^{}()]|\([^()]*\))+?)\s*\}/gu;

/** Each placeholder's value, decoded by its type, or the exception a missing or malformed one raises. */
function decodeParameters(
  sql: string,
  texts: Readonly<Record<string, string>>,
): { values: Record<string, unknown> } | { code: number; message: string } {
  const values: Record<string, unknown> = {};
  for (const match of sql.matchAll(PLACEHOLDER)) {
    const name = match[1] ?? "";
    const type = (match[2] ?? "").trim();
    const text = texts[name];
    if (text === undefined) return { code: 456, message: `Substitution \`${name}\` is not set` };
    const value = decodeValue(text, type);
    if (value === undefined) {
      return {
        code: 457,
        message: `Value ${text} cannot be parsed as ${type} for query parameter '${name}'`,
      };
    }
    values[name] = value;
  }
  return { values };
}

/** A `param_` value in the escaped format, read as `type`; undefined when it does not parse. */
function decodeValue(text: string, type: string): unknown {
  const inner = /^(?:Nullable|LowCardinality)\((.*)\)$/u.exec(type);
  if (inner !== null) return text === "\\N" ? null : decodeValue(text, inner[1] ?? "");
  if (type === "String") return unescapeText(text);
  const array = /^Array\((.*)\)$/u.exec(type);
  if (array !== null) return decodeArray(text, array[1] ?? "");
  if (/^DateTime(?:64)?\b/u.test(type)) return decodeDateTime(text);
  if (/^(?:U?Int\d+|Float\d+|Decimal)/u.test(type)) {
    const n = Number(text);
    return text.trim() !== "" && Number.isFinite(n) ? n : undefined;
  }
  return text;
}

/** `\t`, `\n`, `\\`, `\'` and other backslash escapes of the escaped format. */
function unescapeText(text: string): string {
  return text.replaceAll(
    /\\(.)/gsu,
    (_, c: string) => ({ t: "\t", n: "\n", r: "\r", 0: "\0", b: "\b", f: "\f" })[c] ?? c,
  );
}

/** `['a','b\'c']` → ["a", "b'c"]; elements of other types as numbers. */
function decodeArray(text: string, elementType: string): unknown[] | undefined {
  const body = text.trim();
  if (!body.startsWith("[") || !body.endsWith("]")) return undefined;
  const items: unknown[] = [];
  let i = 1;
  const end = body.length - 1;
  const skipBlanks = (): void => {
    while (i < end && /\s/u.test(body[i] ?? "")) i++;
  };
  skipBlanks();
  while (i < end) {
    if (body[i] === "'") {
      let value = "";
      i++;
      while (i < end && body[i] !== "'") {
        if (body[i] === "\\") {
          value += unescapeText(body.slice(i, i + 2));
          i += 2;
        } else {
          value += body[i];
          i++;
        }
      }
      if (body[i] !== "'") return undefined;
      i++;
      items.push(/^DateTime/u.test(elementType) ? decodeDateTime(value) : value);
    } else {
      const start = i;
      while (i < end && body[i] !== ",") i++;
      const raw = body.slice(start, i).trim();
      if (raw === "NULL") items.push(null);
      else if (Number.isFinite(Number(raw)) && raw !== "") items.push(Number(raw));
      else return undefined;
    }
    skipBlanks();
    if (i < end) {
      if (body[i] !== ",") return undefined;
      i++;
      skipBlanks();
    }
  }
  return items;
}

/** A unix timestamp (`1704067200.123`) or `YYYY-MM-DD hh:mm:ss[.fff]` (read as UTC) as a Date. */
function decodeDateTime(text: string): Date | undefined {
  if (/^\d+(?:\.\d+)?$/u.test(text)) return new Date(Math.round(Number(text) * 1000));
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)$/u.exec(text);
  if (match === null) return undefined;
  const date = new Date(`${match[1]}T${match[2]}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function sendException(
  res: ServerResponse,
  record: FakeClickHouseRequest,
  code: number,
  message: string,
  queryId: string,
): void {
  const status = statusOf(code);
  record.status = status;
  record.exceptionCode = code;
  record.ended = "answered";
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=UTF-8",
    "X-ClickHouse-Server-Display-Name": "fake-clickhouse",
    "X-ClickHouse-Exception-Code": String(code),
    ...(queryId === "" ? {} : { "X-ClickHouse-Query-Id": queryId }),
  });
  res.end(exceptionText(code, message));
}

function exceptionText(code: number, message: string): string {
  return `Code: ${code}. DB::Exception: ${message}. (${CODE_NAMES[code] ?? "UNKNOWN_EXCEPTION"}) (version ${VERSION})\n`;
}

/** Writes a result in `query.format`, honouring `max_result_rows` and `result_overflow_mode`. */
function writeResult(
  res: ServerResponse,
  record: FakeClickHouseRequest,
  query: FakeClickHouseQuery,
  answer: { readonly columns: readonly FakeClickHouseColumn[]; readonly rows: readonly (readonly unknown[])[] },
  timezone: string,
  rowsPerChunk: number,
  waitEndOfQuery: boolean,
): void {
  const { settings } = query;
  const maxRows = Number(settings.max_result_rows ?? "0");
  const overflows = maxRows > 0 && answer.rows.length > maxRows;
  const mode = settings.result_overflow_mode ?? "throw";
  const overflowMessage = `Limit for result exceeded, max rows: ${maxRows}, current rows: ${answer.rows.length}`;
  if (overflows && mode === "throw" && waitEndOfQuery) {
    sendException(res, record, 396, overflowMessage, query.queryId);
    return;
  }
  const rows = overflows ? answer.rows.slice(0, maxRows) : answer.rows;
  const quote64 = (settings.output_format_json_quote_64bit_integers ?? "1") !== "0";
  const cells = (row: readonly unknown[]): unknown[] =>
    answer.columns.map((column, i) => encodeValue(row[i] ?? null, column.type, quote64, timezone));
  const lines: string[] = [];
  switch (query.format) {
    case "JSONCompactEachRowWithNamesAndTypes":
      lines.push(JSON.stringify(answer.columns.map((c) => c.name)), JSON.stringify(answer.columns.map((c) => c.type)));
      for (const row of rows) lines.push(jsonRow(cells(row)));
      break;
    case "JSONCompactEachRow":
      for (const row of rows) lines.push(jsonRow(cells(row)));
      break;
    case "JSONEachRow":
      for (const row of rows) {
        const values = cells(row);
        lines.push(`{${answer.columns.map((c, i) => `${JSON.stringify(c.name)}:${jsonValue(values[i])}`).join(",")}}`);
      }
      break;
    case "JSON":
      lines.push(
        `{"meta":${JSON.stringify(answer.columns)},"data":[${rows
          .map((row) => {
            const values = cells(row);
            return `{${answer.columns.map((c, i) => `${JSON.stringify(c.name)}:${jsonValue(values[i])}`).join(",")}}`;
          })
          .join(",")}],"rows":${rows.length},"statistics":{"elapsed":0.001,"rows_read":${rows.length},"bytes_read":0}}`,
      );
      break;
    default:
      for (const row of rows) {
        lines.push(
          cells(row)
            .map((v) => (v === null ? "\\N" : v instanceof RawJson ? v.text : String(v)).replaceAll("\t", "\\t"))
            .join("\t"),
        );
      }
  }
  record.status = 200;
  res.writeHead(200, {
    "Content-Type":
      query.format === "TabSeparated" ? "text/tab-separated-values; charset=UTF-8" : "application/json; charset=UTF-8",
    "X-ClickHouse-Server-Display-Name": "fake-clickhouse",
    "X-ClickHouse-Query-Id": query.queryId,
    "X-ClickHouse-Format": query.format,
    "X-ClickHouse-Timezone": timezone,
    "X-ClickHouse-Summary": JSON.stringify({
      read_rows: String(rows.length),
      read_bytes: "0",
      written_rows: "0",
      written_bytes: "0",
      total_rows_to_read: String(rows.length),
      result_rows: String(rows.length),
      result_bytes: "0",
      elapsed_ns: "1000000",
    }),
  });
  for (let i = 0; i < lines.length; i += rowsPerChunk) {
    res.write(`${lines.slice(i, i + rowsPerChunk).join("\n")}\n`);
  }
  if (overflows && mode === "throw") {
    // Without wait_end_of_query the status is already sent: the error ends the body.
    res.end(exceptionText(396, overflowMessage));
  } else {
    res.end();
  }
  record.ended = "answered";
}

/** Text written into JSON as is (an unquoted number ClickHouse writes, a decimal). */
class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function jsonValue(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(jsonValue).join(",")}]`;
  return JSON.stringify(value);
}

function jsonRow(values: readonly unknown[]): string {
  return `[${values.map(jsonValue).join(",")}]`;
}

/** One value as ClickHouse's JSON formats write a column of `type`. */
function encodeValue(value: unknown, type: string, quote64: boolean, timezone: string): unknown {
  const inner = /^(?:Nullable|LowCardinality)\((.*)\)$/u.exec(type);
  if (inner !== null) return value === null ? null : encodeValue(value, inner[1] ?? "", quote64, timezone);
  if (value === null || value === undefined) return null;
  const array = /^Array\((.*)\)$/u.exec(type);
  if (array !== null && Array.isArray(value))
    return value.map((v) => encodeValue(v, array[1] ?? "", quote64, timezone));
  if (/^U?Int(64|128|256)$/u.test(type)) return quote64 ? String(value) : new RawJson(String(value));
  if (/^(U?Int(8|16|32)|Float(32|64))$/u.test(type)) {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }
  if (/^Decimal/u.test(type)) return new RawJson(String(value));
  if (type === "Bool") return Boolean(value);
  const dateTime = /^DateTime(?:64\((\d+)(?:\s*,\s*'([^']+)')?\)|\('([^']+)'\))?$/u.exec(type);
  if (dateTime !== null) {
    if (!(value instanceof Date)) return String(value);
    const zone = dateTime[2] ?? dateTime[3] ?? timezone;
    if (zone !== "UTC") throw new Error(`the fake writes Dates only in UTC; give ${type} values as text`);
    const precision = Number(dateTime[1] ?? "0");
    const iso = value.toISOString();
    const fraction = precision > 0 ? `.${iso.slice(20, 23).padEnd(precision, "0").slice(0, precision)}` : "";
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}`;
  }
  if (/^Date(32)?$/u.test(type)) return value instanceof Date ? value.toISOString().slice(0, 10) : String(value);
  return typeof value === "string" ? value : String(value);
}
