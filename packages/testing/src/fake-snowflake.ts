/**
 * A local stand-in for Snowflake's SQL API v2, answering each statement as the
 * test says (`respondWith`). It follows the published description:
 *
 * - the OpenAPI document github.com/snowflakedb/snowflake-rest-api-specs,
 *   `specifications/sqlapi.yaml` (Snowflake SQL API 2.0.0): `POST
 *   /api/v2/statements` (query parameters `requestId`, `async`, `nullable`;
 *   body `statement`, `timeout` in seconds, `database`, `schema`,
 *   `warehouse`, `role`, `bindings` `{ "1": { type, value } }`, session
 *   `parameters`), answers 200 `ResultSet` (`resultSetMetaData` with
 *   `format: jsonv2`, `numRows`, `rowType[]`, `partitionInfo[]`; `data` as
 *   arrays of strings), 202 `QueryStatus` (`statementHandle`,
 *   `statementStatusUrl`), 408 (statement timeout), 422 `QueryFailureStatus`
 *   (`code`, `sqlState`, `message`), 429, 401; `GET
 *   /api/v2/statements/{statementHandle}` with `partition`; `POST
 *   /api/v2/statements/{statementHandle}/cancel` (`CancelStatus`);
 * - the guide docs.snowflake.com/en/developer-guide/sql-api: "Handling
 *   responses" (each cell a string: FIXED decimal text, REAL, BOOLEAN
 *   "true"/"false", DATE days since the epoch, TIMESTAMP_NTZ/LTZ seconds since
 *   the epoch with nine decimals, TIMESTAMP_TZ the same, a space and the
 *   offset in minutes + 1440; a partition after the first carries only
 *   `data`), "Authenticating to the server" (key-pair JWT: `Authorization:
 *   Bearer`, `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`, claims
 *   `iss` = `ACCOUNT.USER.SHA256:<fingerprint>`, `sub` = `ACCOUNT.USER`,
 *   `iat`, `exp` at most one hour later), "Submitting multiple statements"
 *   (`MULTI_STATEMENT_COUNT`, default 1: another count of statements fails
 *   with 000008);
 * - the SQL reference: `SHOW GRANTS TO ROLE` (columns created_on, privilege,
 *   granted_on, name, granted_to, grantee_name, grant_option, granted_by),
 *   the `ROWS_PER_RESULTSET` and `TIMEZONE` session parameters, and the
 *   error texts of a syntax error (001003, "syntax error line L at position
 *   P") and of a statement timeout (000630).
 *
 * The JWT's signature is checked against the public half of the fake's key
 * pair (`privateKey` is the PKCS#8 PEM to configure the connector with).
 * Every request is recorded.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { jwtVerify } from "jose";

/** A result column, its type in Snowflake's `rowType` names (FIXED, REAL, TEXT, BOOLEAN, DATE, TIMESTAMP_NTZ, TIMESTAMP_LTZ, TIMESTAMP_TZ, ...). */
export interface SnowflakeFakeColumn {
  readonly name: string;
  readonly type: string;
  readonly scale?: number;
}

/**
 * Rows to answer with: JS values (numbers, bigints, strings, booleans, Dates
 * or ISO text for dates and timestamps, null) serialised as Snowflake does.
 */
export interface SnowflakeFakeRows {
  readonly columns: readonly SnowflakeFakeColumn[];
  readonly rows: readonly (readonly unknown[])[];
  /** How long the statement runs, ms (a slow statement: 202 until then, or 408 past the request's `timeout`). */
  readonly delayMs?: number;
  /** Rows per partition (default the fake's `partitionRows`). */
  readonly partitionRows?: number;
}

/** A failure to answer with. */
export type SnowflakeFakeFailure =
  /** 429, with `Retry-After` when given. */
  | { readonly fail: "throttled"; readonly retryAfterSeconds?: number }
  /** 401, as for a JWT Snowflake refuses. */
  | { readonly fail: "auth" }
  /** 422, 001003: "SQL compilation error: syntax error line L at position P unexpected 'near'." */
  | { readonly fail: "syntax"; readonly line: number; readonly position: number; readonly near?: string }
  /** 422 with this code, SQL state and message. */
  | { readonly fail: "statement"; readonly code: string; readonly sqlState: string; readonly message: string }
  /** 408, 000630: the statement reached its timeout. */
  | { readonly fail: "timeout" }
  /** 503. */
  | { readonly fail: "unavailable" };

export type SnowflakeFakeAnswer = SnowflakeFakeRows | SnowflakeFakeFailure;

/** A request as the fake received it. */
export interface SnowflakeFakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The parsed JSON body of a POST, else undefined. */
  readonly body: unknown;
}

/** What the handler is asked: the statement, its bind values in order, and the request (context, session parameters). */
export interface SnowflakeFakeQuery {
  readonly sql: string;
  /** The `bindings` "1", "2", ... decoded: TEXT as strings, FIXED and REAL as numbers, BOOLEAN as booleans, others as sent. */
  readonly parameters: readonly unknown[];
  readonly request: SnowflakeFakeRequest;
}

export type SnowflakeFakeHandler = (query: SnowflakeFakeQuery) => SnowflakeFakeAnswer | Promise<SnowflakeFakeAnswer>;

/** One row of `SHOW GRANTS TO ROLE`. */
export interface SnowflakeFakeGrant {
  readonly privilege: string;
  /** `WAREHOUSE`, `DATABASE`, `SCHEMA`, `TABLE`, `ROLE`, `DATABASE_ROLE`, ... */
  readonly granted_on: string;
  readonly name: string;
}

export interface SnowflakeFake {
  /** The SQL API base, `http://127.0.0.1:<port>` (the connector's `api_url`). */
  readonly url: string;
  readonly account: string;
  readonly user: string;
  /** The PKCS#8 PEM private key whose public half the fake trusts. */
  readonly privateKey: string;
  /** Every request, in order. */
  readonly requests: SnowflakeFakeRequest[];
  /** Handles of the statements cancelled, in order. */
  readonly cancelled: string[];
  /** Answers the next statements with `handler` (`SHOW GRANTS` is answered from {@link SnowflakeFake.setGrants}). */
  respondWith(handler: SnowflakeFakeHandler): void;
  /** The grants `SHOW GRANTS TO ROLE <role>` lists (default: USAGE on a warehouse, database and schema, SELECT on a table). */
  setGrants(role: string, grants: readonly SnowflakeFakeGrant[]): void;
  close(): Promise<void>;
}

export interface SnowflakeFakeOptions {
  /** Default `MYORG-MYACCOUNT`. */
  readonly account?: string;
  /** Default `OUTCOME_READER`. */
  readonly user?: string;
  /** The PKCS#8 PEM private key of the user's key pair; default a new 2048-bit RSA pair. */
  readonly privateKey?: string;
  /** How long a synchronous submit (`async` not true) waits before answering 202, ms; Snowflake's is 45 s. */
  readonly syncWaitMs?: number;
  /** Rows per partition, default 1000. */
  readonly partitionRows?: number;
}

/** The read-only grants of a role the test did not set. */
const DEFAULT_GRANTS: readonly SnowflakeFakeGrant[] = [
  { privilege: "USAGE", granted_on: "WAREHOUSE", name: "ANALYTICS_WH" },
  { privilege: "USAGE", granted_on: "DATABASE", name: "ANALYTICS" },
  { privilege: "USAGE", granted_on: "SCHEMA", name: "ANALYTICS.PUBLIC" },
  { privilege: "SELECT", granted_on: "TABLE", name: "ANALYTICS.PUBLIC.EXPOSURES" },
];

const GRANT_COLUMNS: readonly SnowflakeFakeColumn[] = [
  { name: "created_on", type: "TIMESTAMP_LTZ", scale: 3 },
  { name: "privilege", type: "TEXT" },
  { name: "granted_on", type: "TEXT" },
  { name: "name", type: "TEXT" },
  { name: "granted_to", type: "TEXT" },
  { name: "grantee_name", type: "TEXT" },
  { name: "grant_option", type: "TEXT" },
  { name: "granted_by", type: "TEXT" },
];

/** Snowflake's longest token lifetime, seconds. */
const MAX_JWT_LIFETIME_SECONDS = 3600;

interface Statement {
  readonly handle: string;
  readonly createdOn: number;
  readonly readyAt: number;
  /** When Snowflake cancels it for its `timeout`; Infinity for none. */
  readonly timeoutAt: number;
  readonly timeoutSeconds: number;
  readonly columns: readonly SnowflakeFakeColumn[];
  /** Serialised rows, cut at ROWS_PER_RESULTSET. */
  readonly data: readonly (readonly (string | null)[])[];
  readonly partitionRows: number;
  cancelled: boolean;
}

/**
 * Starts the fake on a free loopback port.
 */
export async function startSnowflakeFake(options: SnowflakeFakeOptions = {}): Promise<SnowflakeFake> {
  const account = (options.account ?? "MYORG-MYACCOUNT").toUpperCase();
  const user = (options.user ?? "OUTCOME_READER").toUpperCase();
  const privateKey =
    options.privateKey ??
    generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const publicKey = createPublicKey(createPrivateKey(privateKey));
  const fingerprint = `SHA256:${createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("base64")}`;
  const syncWaitMs = options.syncWaitMs ?? 45_000;
  const defaultPartitionRows = options.partitionRows ?? 1000;
  const statements = new Map<string, Statement>();
  const grants = new Map<string, readonly SnowflakeFakeGrant[]>();
  let handler: SnowflakeFakeHandler = () => ({
    fail: "statement",
    code: "002003",
    sqlState: "02000",
    message: "SQL compilation error:\nno answer set (respondWith)",
  });

  const server: Server = createServer((req, res) => {
    void serve(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { message: error instanceof Error ? error.message : String(error) });
    });
  });

  const fake: SnowflakeFake = {
    url: "",
    account,
    user,
    privateKey,
    requests: [],
    cancelled: [],
    respondWith(next) {
      handler = next;
    },
    setGrants(role, list) {
      grants.set(role, list);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const text = await readBody(req);
    let body: unknown;
    if (req.method === "POST" && text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        fake.requests.push(recorded(req, url, undefined));
        return send(res, 400, { message: "the request body is not JSON" });
      }
    }
    const request = recorded(req, url, body);
    fake.requests.push(request);
    if (!(await authenticated(req))) {
      return send(res, 401, { code: "390144", message: "JWT token is invalid." });
    }
    const parts = url.pathname.split("/").filter((p) => p !== "");
    if (parts[0] !== "api" || parts[1] !== "v2" || parts[2] !== "statements") {
      return send(res, 404, { message: "Not Found" });
    }
    if (parts.length === 3 && req.method === "POST") return submit(request, res);
    const statement = statements.get(decodeURIComponent(parts[3] ?? ""));
    if (statement === undefined) return send(res, 404, { message: "Statement not found" });
    if (parts.length === 5 && parts[4] === "cancel" && req.method === "POST") {
      statement.cancelled = true;
      fake.cancelled.push(statement.handle);
      return send(res, 200, { message: "successfully canceled", statementHandle: statement.handle });
    }
    if (parts.length === 4 && req.method === "GET") {
      const partition = Number(url.searchParams.get("partition") ?? "0");
      return status(statement, partition, res);
    }
    return send(res, 405, { message: "Method Not Allowed" });
  }

  /** Whether the request carries a key-pair JWT signed by the fake's key, for its account and user, valid now. */
  async function authenticated(req: IncomingMessage): Promise<boolean> {
    const header = req.headers.authorization ?? "";
    if (req.headers["x-snowflake-authorization-token-type"] !== "KEYPAIR_JWT" || !header.startsWith("Bearer ")) {
      return false;
    }
    try {
      const { payload } = await jwtVerify(header.slice("Bearer ".length), publicKey, {
        algorithms: ["RS256"],
        issuer: `${account}.${user}.${fingerprint}`,
        subject: `${account}.${user}`,
        requiredClaims: ["iat", "exp"],
      });
      return (payload.exp ?? 0) - (payload.iat ?? 0) <= MAX_JWT_LIFETIME_SECONDS;
    } catch {
      return false;
    }
  }

  async function submit(request: SnowflakeFakeRequest, res: ServerResponse): Promise<void> {
    const body = request.body;
    if (!isRecord(body) || typeof body.statement !== "string") {
      return send(res, 400, { message: "statement is required" });
    }
    const sql = body.statement;
    const parameters = lowerKeys(isRecord(body.parameters) ? body.parameters : {});
    const handle = randomUUID();
    const createdOn = Date.now();
    const failureBody = (code: string, sqlState: string, message: string) => ({
      code,
      sqlState,
      message,
      statementHandle: handle,
      createdOn,
      statementStatusUrl: `/api/v2/statements/${handle}`,
    });
    const wanted = Number(parameters.multi_statement_count ?? 1);
    const count = statementCount(sql);
    if (wanted !== 0 && count !== wanted) {
      return send(
        res,
        422,
        failureBody(
          "000008",
          "0A000",
          `Actual statement count ${count} did not match the desired statement count ${wanted}.`,
        ),
      );
    }
    const showGrants = /^\s*SHOW\s+GRANTS\s+TO\s+(?:DATABASE\s+)?ROLE\s+(.+?)\s*;?\s*$/isu.exec(sql);
    let answer: SnowflakeFakeAnswer;
    if (showGrants !== null) {
      const role = unquote(showGrants[1] ?? "");
      answer = {
        columns: GRANT_COLUMNS,
        rows: (grants.get(role) ?? DEFAULT_GRANTS).map((g) => [
          new Date(createdOn),
          g.privilege,
          g.granted_on,
          g.name,
          "ROLE",
          role,
          "false",
          "SECURITYADMIN",
        ]),
      };
    } else {
      if (typeof body.warehouse !== "string" || body.warehouse === "") {
        return send(
          res,
          422,
          failureBody(
            "000606",
            "57P03",
            "No active warehouse selected in the current session.  Select an active warehouse with the 'use warehouse' command.",
          ),
        );
      }
      answer = await handler({ sql, parameters: decodeBindings(body.bindings), request });
    }
    if ("fail" in answer) {
      switch (answer.fail) {
        case "throttled":
          return send(
            res,
            429,
            { message: "Too many requests. Please retry later." },
            answer.retryAfterSeconds === undefined ? {} : { "Retry-After": String(answer.retryAfterSeconds) },
          );
        case "auth":
          return send(res, 401, { code: "390144", message: "JWT token is invalid." });
        case "syntax":
          return send(
            res,
            422,
            failureBody(
              "001003",
              "42000",
              `SQL compilation error:\nsyntax error line ${answer.line} at position ${answer.position} unexpected '${answer.near ?? "?"}'.`,
            ),
          );
        case "statement":
          return send(res, 422, failureBody(answer.code, answer.sqlState, answer.message));
        case "timeout":
          return send(res, 408, failureBody("000630", "57014", timeoutMessage(Number(body.timeout ?? 0))));
        case "unavailable":
          return send(res, 503, { message: "Service Unavailable" });
      }
    }
    const limit = Number(parameters.rows_per_resultset ?? 0);
    const rows = limit > 0 ? answer.rows.slice(0, limit) : answer.rows;
    const timeoutSeconds = typeof body.timeout === "number" && body.timeout > 0 ? body.timeout : 0;
    const statement: Statement = {
      handle,
      createdOn,
      readyAt: createdOn + (answer.delayMs ?? 0),
      timeoutAt: timeoutSeconds > 0 ? createdOn + timeoutSeconds * 1000 : Number.POSITIVE_INFINITY,
      timeoutSeconds,
      columns: answer.columns,
      data: rows.map((row) => answer.columns.map((column, i) => serialise(row[i], column))),
      partitionRows: answer.partitionRows ?? defaultPartitionRows,
      cancelled: false,
    };
    statements.set(handle, statement);
    if (request.query.get("async") === "true") return queued(statement, res);
    const wait = Math.min(
      Math.max(0, statement.readyAt - Date.now()),
      syncWaitMs,
      Math.max(0, statement.timeoutAt - Date.now()),
    );
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    return status(statement, 0, res);
  }

  function queued(statement: Statement, res: ServerResponse): void {
    send(res, 202, {
      code: "333334",
      message: "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
      statementHandle: statement.handle,
      createdOn: statement.createdOn,
      statementStatusUrl: `/api/v2/statements/${statement.handle}`,
    });
  }

  function status(statement: Statement, partition: number, res: ServerResponse): void {
    const now = Date.now();
    const failed = (code: string, sqlState: string, message: string) => ({
      code,
      sqlState,
      message,
      statementHandle: statement.handle,
      createdOn: statement.createdOn,
      statementStatusUrl: `/api/v2/statements/${statement.handle}`,
    });
    if (statement.cancelled) {
      send(res, 422, failed("000604", "57014", "SQL execution canceled"));
      return;
    }
    if (statement.timeoutAt < statement.readyAt && now >= statement.timeoutAt) {
      send(res, 408, failed("000630", "57014", timeoutMessage(statement.timeoutSeconds)));
      return;
    }
    if (now < statement.readyAt) {
      queued(statement, res);
      return;
    }
    const size = Math.max(1, statement.partitionRows);
    const partitions = Math.max(1, Math.ceil(statement.data.length / size));
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      send(res, 400, { message: `partition ${partition} does not exist (0 to ${partitions - 1})` });
      return;
    }
    const slice = (p: number) => statement.data.slice(p * size, (p + 1) * size);
    if (partition > 0) {
      send(res, 200, { data: slice(partition) });
      return;
    }
    send(res, 200, {
      code: "090001",
      sqlState: "00000",
      message: "Statement executed successfully.",
      statementHandle: statement.handle,
      createdOn: statement.createdOn,
      statementStatusUrl: `/api/v2/statements/${statement.handle}`,
      resultSetMetaData: {
        numRows: statement.data.length,
        format: "jsonv2",
        rowType: statement.columns.map((c) => ({
          name: c.name,
          type: c.type.toUpperCase(),
          length: 0,
          precision: c.type.toUpperCase() === "FIXED" ? 38 : 0,
          scale: c.scale ?? 0,
          nullable: true,
        })),
        partitionInfo: Array.from({ length: partitions }, (_, p) => {
          const rows = slice(p);
          return { rowCount: rows.length, uncompressedSize: JSON.stringify(rows).length };
        }),
      },
      data: slice(0),
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function timeoutMessage(seconds: number): string {
  return `Statement reached its statement or warehouse timeout of ${seconds} second(s) and was canceled.`;
}

function recorded(req: IncomingMessage, url: URL, body: unknown): SnowflakeFakeRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.headers))
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  return { method: req.method ?? "GET", path: url.pathname, query: url.searchParams, headers, body };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Session parameter names are case-insensitive. */
function lowerKeys(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
}

/** `"OUTCOME_READER"` → `OUTCOME_READER` (doubled quotes undone); an unquoted name as written. */
function unquote(name: string): string {
  return name
    .split(/\.(?=(?:[^"]*"[^"]*")*[^"]*$)/u)
    .map((part) => (part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1).replaceAll('""', '"') : part))
    .join(".");
}

/** The `bindings` values in order ("1", "2", ...). */
function decodeBindings(bindings: unknown): unknown[] {
  if (!isRecord(bindings)) return [];
  return Object.keys(bindings)
    .sort((a, b) => Number(a) - Number(b))
    .map((key) => {
      const binding = bindings[key];
      if (!isRecord(binding)) return undefined;
      const value = binding.value;
      if (value === null || typeof value !== "string") return value;
      switch (String(binding.type).toUpperCase()) {
        case "FIXED":
        case "REAL":
          return Number(value);
        case "BOOLEAN":
          return value.toLowerCase() === "true";
        default:
          return value;
      }
    });
}

/** Statements in `sql`: `;`-separated, outside strings, quoted names and comments, an empty last one not counted. */
function statementCount(sql: string): number {
  let count = 0;
  let current = "";
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] ?? "";
    if (c === "'" || c === '"') {
      const close = sql.indexOf(c, i + 1);
      const end = close === -1 ? sql.length : close + 1;
      current += sql.slice(i, end);
      i = end;
    } else if (c === "-" && sql[i + 1] === "-") {
      const newline = sql.indexOf("\n", i);
      i = newline === -1 ? sql.length : newline;
    } else if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      i = close === -1 ? sql.length : close + 2;
    } else if (c === ";") {
      if (current.trim() !== "") count++;
      current = "";
      i++;
    } else {
      current += c;
      i++;
    }
  }
  if (current.trim() !== "") count++;
  return count;
}

/** One value in the SQL API's jsonv2 form for its column's type. */
function serialise(value: unknown, column: SnowflakeFakeColumn): string | null {
  if (value === null || value === undefined) return null;
  const type = column.type.toUpperCase();
  switch (type) {
    case "FIXED":
    case "NUMBER":
      return typeof value === "number" && column.scale !== undefined && column.scale > 0
        ? value.toFixed(column.scale)
        : String(value);
    case "BOOLEAN":
      return value === true || value === "true" ? "true" : "false";
    case "DATE":
      return String(Math.floor(toMillis(value) / 86_400_000));
    case "TIMESTAMP_NTZ":
    case "TIMESTAMP_LTZ":
      return epochText(toMillis(value));
    case "TIMESTAMP_TZ":
      return `${epochText(toMillis(value))} 1440`;
    default:
      return typeof value === "string" ? value : String(value);
  }
}

function toMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "number") return value;
  return Date.parse(String(value));
}

/** Milliseconds since the epoch → `"<seconds>.<nine digits>"`. */
function epochText(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  return `${seconds}.${String(nanos).padStart(9, "0")}`;
}
