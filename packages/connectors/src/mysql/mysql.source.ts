/**
 * `mysql`: the user's own SQL on MySQL 8 or MariaDB 10.6+, through `mysql2`.
 *
 * Every read runs:
 * - as a prepared statement (the binary protocol: one statement, values
 *   never spliced into the text); a list parameter (`:experiments`,
 *   `:arms`) becomes `?, ?, ?`, so a query writes `IN (:experiments)`;
 * - inside `START TRANSACTION READ ONLY`, rolled back afterwards;
 * - under the server's statement timeout (`max_statement_time` on MariaDB,
 *   `max_execution_time` on MySQL), and `KILL QUERY` from a second
 *   connection when the caller gives up first;
 * - wrapped as `SELECT * FROM (<query>) AS q LIMIT <max_rows + 1>`, so the
 *   server never sends more than the cap;
 * - after a check that the account holds nothing but read privileges
 *   (`SHOW GRANTS`), made on the first read and every 10 minutes.
 */
import mysql from "mysql2/promise";
import type { ConnectorContext } from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialValue, readCredentialRef } from "../credentials";
import { lineColumn } from "../postgres/sql-statement";
import { renderStatement } from "../sql/named-parameters";
import type { SqlRows } from "../sql/result-rows";
import type { SqlCommonSettings, SqlDriver, SqlRequest, SqlSourceDefinition } from "../sql/sql-source";

/** How long a passed privilege check is trusted, in milliseconds. */
const GRANTS_RECHECK_MS = 10 * 60_000;
/** How long past the statement timeout the client waits before it kills the query itself, in milliseconds. */
const CLIENT_GRACE_MS = 2_000;
/** Connections per source. */
const POOL_SIZE = 4;

/**
 * Privileges a signal source's account may hold: reading, and what a login
 * needs. Anything else (INSERT, CREATE, FILE, SUPER, ALL PRIVILEGES, GRANT
 * OPTION, ...) is refused.
 */
const READ_PRIVILEGES: ReadonlySet<string> = new Set(["SELECT", "USAGE", "SHOW VIEW", "SHOW DATABASES"]);

/** MySQL and MariaDB error numbers of the source's throttling and availability answers. */
const THROTTLED = new Set([
  1040 /* ER_CON_COUNT_ERROR */, 1203 /* ER_TOO_MANY_USER_CONNECTIONS */, 1226 /* ER_USER_LIMIT_REACHED */,
]);
const TIMED_OUT = new Set([
  1969 /* MariaDB ER_STATEMENT_TIMEOUT */, 3024 /* MySQL ER_QUERY_TIMEOUT */, 1317 /* ER_QUERY_INTERRUPTED */,
]);
const AUTH_FAILED = new Set([1045 /* ER_ACCESS_DENIED_ERROR */, 1044 /* ER_DBACCESS_DENIED_ERROR */, 1698]);
const READ_ONLY = new Set([
  1792 /* ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION */, 1290 /* ER_OPTION_PREVENTS_STATEMENT */,
]);
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "PROTOCOL_CONNECTION_LOST",
]);

/** The `mysql` source: MySQL's and MariaDB's lexical rules, a `database_url` credential. */
export const MYSQL_SOURCE: SqlSourceDefinition = {
  type: "mysql",
  lexicon: {
    identifierQuotes: ["`"],
    stringQuotes: ["'", '"'],
    backslashEscapes: true,
    hashComments: true,
    dashCommentNeedsSpace: true,
    slashComments: false,
    executableComments: true,
    dollarStrings: false,
  },
  fields: [],
  createDriver(reader, context: ConnectorContext, common: SqlCommonSettings): SqlDriver {
    const credential = readCredentialRef(
      reader,
      "database_url",
      "the connection string (mysql://user:password@host:3306/database) of a read-only account",
    );
    const url = credentialValue(context.credentials, credential, "mysql");
    return new MysqlDriver(url, `${credential.field}: ${credential.ref.name}`, common);
  },
};

class MysqlDriver implements SqlDriver {
  readonly location: string;
  private readonly url: string;
  private readonly source: string;
  private pool: mysql.Pool | undefined;
  private flavor: { mariadb: boolean } | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(url: string, source: string, _common: SqlCommonSettings) {
    this.url = url;
    this.source = source;
    this.location = `${safeLocation(url)} (${source})`;
  }

  private poolOf(): mysql.Pool {
    if (this.pool !== undefined) return this.pool;
    let options: mysql.PoolOptions;
    try {
      options = { uri: this.url };
      new URL(this.url);
    } catch {
      throw new ConnectorError(
        "invalid_config",
        `mysql connector: ${this.source}: the value is not a connection string; write mysql://user:password@host:3306/database`,
        { details: { field: this.source.split(":")[0] } },
      );
    }
    this.pool = mysql.createPool({
      ...options,
      connectionLimit: POOL_SIZE,
      // Times are UTC both ways; big and decimal numbers arrive as text, parsed strictly by the boundary checks.
      timezone: "Z",
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
      multipleStatements: false,
      connectTimeout: 10_000,
    });
    return this.pool;
  }

  async check(signal: AbortSignal | undefined): Promise<void> {
    this.checkedAt = Number.NEGATIVE_INFINITY;
    if (signal?.aborted) throw new ConnectorError("timeout", `mysql (${this.source}): aborted before the check`, {});
    await this.checkGrants();
  }

  async run(request: SqlRequest): Promise<SqlRows> {
    const pool = this.poolOf();
    await this.checkGrants();
    const mariadb = this.flavor?.mariadb ?? false;
    const values: (string | Date | null)[] = [];
    const text = renderStatement(request.statement, (name) => {
      const value = request.values[name as keyof typeof request.values];
      if (Array.isArray(value)) {
        values.push(...value);
        return value.map(() => "?").join(", ");
      }
      values.push((value as string | Date | undefined) ?? null);
      return "?";
    });
    const wrapped = `SELECT * FROM (\n${text}\n) AS outcome_runtime_q LIMIT ${request.maxRows + 1}`;
    const connection = await this.connect(pool);
    const threadId = connection.threadId;
    const timeout = mariadb
      ? `SET SESSION max_statement_time = ${(request.timeoutMs / 1000).toFixed(3)}`
      : `SET SESSION max_execution_time = ${Math.ceil(request.timeoutMs)}`;
    let killed: "abort" | "timeout" | undefined;
    const kill = (why: "abort" | "timeout") => {
      if (killed !== undefined) return;
      killed = why;
      // A dropped connection alone leaves the query running on the server.
      void pool.query(`KILL QUERY ${Number(threadId)}`).catch(() => {});
    };
    const onAbort = () => kill("abort");
    request.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => kill("timeout"), request.timeoutMs + CLIENT_GRACE_MS);
    try {
      if (request.signal?.aborted) kill("abort");
      await connection.query(timeout);
      await connection.query("START TRANSACTION READ ONLY");
      const [rows, fields] = await connection.execute({ sql: wrapped, rowsAsArray: true }, values);
      if (!Array.isArray(rows)) {
        throw new ConnectorError("read_only_violation", `mysql ${request.field}: the statement returned no rows`, {
          details: { field: request.field },
        });
      }
      if (rows.length > request.maxRows) {
        throw new ConnectorError(
          "too_many_rows",
          `mysql ${request.field}: the result has more than ${request.maxRows} rows (max_rows); aggregate per arm (GROUP BY arm) or raise max_rows`,
          { details: { field: request.field, maxRows: request.maxRows } },
        );
      }
      return { fields: (fields ?? []).map((f) => f.name), rows: rows as unknown as unknown[][] };
    } catch (error) {
      if (error instanceof ConnectorError) throw error;
      throw this.toConnectorError(error, request, text, killed);
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
      try {
        await connection.query("ROLLBACK");
        connection.release();
      } catch {
        connection.destroy();
      }
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  private async connect(pool: mysql.Pool): Promise<mysql.PoolConnection> {
    try {
      return await pool.getConnection();
    } catch (error) {
      throw this.toConnectorError(error, undefined, "", undefined);
    }
  }

  /**
   * Refuses an account that may do more than read (`SHOW GRANTS`), and learns
   * whether the server is MariaDB; trusted for {@link GRANTS_RECHECK_MS}.
   *
   * @throws ConnectorError `source_refused` naming the privilege; `unavailable`/`auth_failed` when it cannot connect
   */
  private async checkGrants(): Promise<void> {
    if (Date.now() - this.checkedAt < GRANTS_RECHECK_MS) return;
    const pool = this.poolOf();
    const connection = await this.connect(pool);
    try {
      const [version] = await connection.query<mysql.RowDataPacket[]>("SELECT VERSION() AS v");
      this.flavor = { mariadb: /mariadb/iu.test(String(version[0]?.v ?? "")) };
      const [grants] = await connection.query<mysql.RowDataPacket[]>({ sql: "SHOW GRANTS", rowsAsArray: true });
      for (const row of grants as unknown as unknown[][]) {
        const refused = refusedPrivilege(String(row[0] ?? ""));
        if (refused !== null) {
          throw new ConnectorError(
            "source_refused",
            `mysql (${this.source}): the account may ${refused}, not only read (${String(row[0]).slice(0, 200)}); connect as an account granted SELECT only (docs/connectors.md, "MySQL and MariaDB")`,
            { details: { privilege: refused } },
          );
        }
      }
      this.checkedAt = Date.now();
    } catch (error) {
      if (error instanceof ConnectorError) throw error;
      throw this.toConnectorError(error, undefined, "", undefined);
    } finally {
      connection.release();
    }
  }

  /** A driver error as a ConnectorError: its code by the server's error number, its position in the user's query. */
  private toConnectorError(
    error: unknown,
    request: SqlRequest | undefined,
    rendered: string,
    killed: "abort" | "timeout" | undefined,
  ): ConnectorError {
    const e = error as { errno?: number; code?: string; sqlMessage?: string; message?: string };
    // The row cap's wrapper is ours, not the user's: the message quotes the user's text only.
    const message = (e.sqlMessage ?? e.message ?? String(error)).replace(/\s*\) AS outcome_runtime_q LIMIT \d+/u, "");
    const field = request?.field ?? "database_url";
    const where = `mysql ${request === undefined ? `(${this.source})` : request.field}`;
    if (killed !== undefined || (e.errno !== undefined && TIMED_OUT.has(e.errno))) {
      return new ConnectorError(
        "timeout",
        killed === "abort"
          ? `${where}: cancelled (the poll gave up)`
          : `${where}: no answer within the timeout (${message}); add an index or a pre-aggregated table, or raise timeout`,
        { cause: error, details: { field } },
      );
    }
    if (e.errno !== undefined && THROTTLED.has(e.errno)) {
      return new ConnectorError("rate_limited", `${where}: the server is at its connection limit (${message})`, {
        cause: error,
        retryAfterMs: 1000,
        details: { field },
      });
    }
    if (e.errno !== undefined && AUTH_FAILED.has(e.errno)) {
      return new ConnectorError("auth_failed", `${where}: the server refused the account (${message})`, {
        cause: error,
        details: { field },
      });
    }
    if (e.errno !== undefined && READ_ONLY.has(e.errno)) {
      return new ConnectorError("read_only_violation", `${where}: ${message}; a signal query only reads`, {
        cause: error,
        details: { field },
      });
    }
    if (e.code !== undefined && UNAVAILABLE_CODES.has(e.code)) {
      return new ConnectorError(
        "unavailable",
        `${where}: could not reach the server (${message}); the poll will be retried`,
        {
          cause: error,
          details: { field },
        },
      );
    }
    const position = request === undefined ? undefined : positionOf(message, request, rendered);
    return new ConnectorError(
      "query_failed",
      `${where}${position === undefined ? "" : ` (line ${position.line}, column ${position.column})`}: ${message}`,
      { cause: error, details: { field, sourceMessage: message, ...position } },
    );
  }
}

/**
 * Where in the user's query a MySQL error points: the server names the text
 * near the problem and its line in the statement it ran ("... near 'GRUOP BY
 * arm' at line 5"; line 1 of that is the row cap's wrapper). The text is found
 * on that line of the rendered query, then mapped back over the placeholders
 * to the query as written.
 */
function positionOf(
  message: string,
  request: SqlRequest,
  rendered: string,
): { line: number; column: number } | undefined {
  const near = /near '([\s\S]*?)' at line (\d+)/u.exec(message);
  if (near === null) return undefined;
  const line = Number(near[2]) - 1;
  const lines = rendered.split("\n");
  if (line < 1 || line > lines.length) return undefined;
  const lineStart = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  const fragment = (near[1] ?? "").split("\n")[0] ?? "";
  const within = fragment === "" ? (lines[line - 1] ?? "").length : (lines[line - 1] ?? "").indexOf(fragment);
  if (within === -1) return undefined;
  const at = lineStart + within;
  // Back over the placeholders before `at`: each use of the rendered text is longer or shorter than `:name`.
  let shift = 0;
  for (const use of request.statement.uses) {
    const renderedStart = use.start + shift;
    if (renderedStart >= at) break;
    const value = request.values[use.name as keyof typeof request.values];
    const length = Array.isArray(value) ? value.length * 3 - 2 : 1;
    if (at < renderedStart + length) return lineColumn(request.statement.sql, use.start);
    shift += length - (use.end - use.start);
  }
  return lineColumn(request.statement.sql, at - shift);
}

/** What a `SHOW GRANTS` line allows beyond reading, or null. */
export function refusedPrivilege(grant: string): string | null {
  const match = /^GRANT\s+(.+?)\s+ON\s+/iu.exec(grant);
  if (match === null) {
    // A role granted to the account (GRANT `role` TO ...): its privileges have lines of their own once it is the default role.
    return null;
  }
  // Column lists (SELECT (`a`, `b`)) hold commas of their own.
  const privileges = (match[1] ?? "")
    .replaceAll(/\([^)]*\)/gu, "")
    .split(",")
    .map((p) => p.trim().toUpperCase());
  for (const privilege of privileges) {
    if (!READ_PRIVILEGES.has(privilege))
      return privilege === "ALL PRIVILEGES" ? "do anything (ALL PRIVILEGES)" : `${privilege}`;
  }
  if (/WITH\s+GRANT\s+OPTION/iu.test(grant)) return "grant privileges to others (WITH GRANT OPTION)";
  return null;
}

/** host:port/database of a connection string, without credentials. */
function safeLocation(url: string): string {
  try {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.replace(/^\//u, "")) || "(default database)";
    return `${parsed.hostname || "localhost"}${parsed.port === "" ? "" : `:${parsed.port}`}/${database}`;
  } catch {
    return "(connection string not shown)";
  }
}
