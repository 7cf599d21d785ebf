/**
 * Runs a signal query in embedded DuckDB, in a sandbox: one DuckDB instance
 * per (directory, database file, limits) shared by every connector reading
 * it in the process, one connection per read.
 *
 * The sandbox, set on the instance before any query and locked so a query
 * cannot undo it (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview):
 * - an in-memory database, or the `database` file opened `access_mode: READ_ONLY`;
 * - `autoinstall_known_extensions` and `autoload_known_extensions` off,
 *   community extensions and persistent secrets off, no temp directory;
 *   `threads` and `memory_limit` bounded;
 * - `SET allowed_directories = [<base dir>, <remote_urls>...]`, then
 *   `SET enable_external_access = false` (no file, URL or extension outside
 *   those), then `SET lock_configuration = true`.
 * Each connection checks that the instance is still locked before the query
 * runs. The query itself must be one statement whose prepared type is SELECT.
 */
import { realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import {
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBValue,
  LIST,
  listValue,
  StatementType,
  TIMESTAMPTZ,
  timestampTZValue,
  VARCHAR,
} from "@duckdb/node-api";
import { show } from "../config-reader";
import { ConnectorError } from "../connector-error";
import { renderStatement } from "../sql/named-parameters";
import type { SqlRows } from "../sql/result-rows";
import type { SqlDriver, SqlRequest } from "../sql/sql-source";
import { duckdbCell } from "./duckdb-values";

/** A table the query reads by name: a view over files of the base directory. */
export interface DuckdbTable {
  /** The view's name (an SQL identifier). */
  readonly name: string;
  /** As written (relative to `base_dir`, a glob allowed), for messages. */
  readonly path: string;
  /** `read_parquet`, `read_csv` or `read_json`. */
  readonly reader: "read_parquet" | "read_csv" | "read_json";
}

/** The settings a DuckDB driver runs with, checked. */
export interface DuckdbDriverSettings {
  /** The directory every file must be in (not yet resolved through symbolic links). */
  readonly baseDir: string;
  /** The directory `base_dir` may not leave (the runtime's `context.baseDir`). */
  readonly rootDir: string;
  /** As written, for messages. */
  readonly baseDirSetting: string;
  /** The database file (relative to `baseDir`), or undefined for an in-memory database. */
  readonly database: string | undefined;
  readonly tables: readonly DuckdbTable[];
  readonly threads: number;
  /** DuckDB's `memory_limit`, e.g. `512MB`. */
  readonly memoryLimit: string;
  /** URL prefixes the query may read through the httpfs extension; empty: none. */
  readonly remoteUrls: readonly string[];
}

/** One instance per (directory, database, limits), with the number of drivers using it. */
const instances = new Map<string, { instance: Promise<DuckDBInstance>; users: number }>();

/** Where a read is, for the error it may end with: the setting concerned and, in the user's query, its SQL. */
interface Step {
  phase: string;
  sql: string | undefined;
}

/** How often a read past its deadline is interrupted again (DuckDB may start its next step after an interrupt). */
const INTERRUPT_EVERY_MS = 100;

/** A SQL string literal. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The driver of a `duckdb` connector. */
export class DuckdbDriver implements SqlDriver {
  readonly location: string;
  private readonly settings: DuckdbDriverSettings;
  private key: string | undefined;

  constructor(settings: DuckdbDriverSettings) {
    this.settings = settings;
    this.location = `${settings.baseDirSetting}${settings.database === undefined ? "" : ` ${settings.database}`}`;
  }

  /**
   * The shared, sandboxed instance, made on first use.
   *
   * @throws ConnectorError `source_refused` (a directory or database that is a link out of the base directory),
   *   `invalid_config` (missing), `unavailable` (DuckDB failed to open it), `query_failed` (remote_urls without httpfs)
   */
  private async instance(): Promise<DuckDBInstance> {
    if (this.key !== undefined) {
      const held = instances.get(this.key);
      if (held !== undefined) return held.instance;
    }
    const { baseDir, database } = await this.resolvePaths();
    const s = this.settings;
    const key = [baseDir, database ?? "", s.threads, s.memoryLimit, s.remoteUrls.join(" ")].join("\u0000");
    let held = instances.get(key);
    if (held === undefined) {
      held = { instance: openSandbox(baseDir, database, s), users: 0 };
      instances.set(key, held);
      const mine = held;
      mine.instance.catch(() => {
        if (instances.get(key) === mine) instances.delete(key);
      });
    }
    if (this.key !== key) {
      held.users += 1;
      this.key = key;
    }
    return held.instance;
  }

  /** The base directory and database file after symbolic links, each checked to stay inside its parent. */
  private async resolvePaths(): Promise<{ baseDir: string; database: string | undefined }> {
    const s = this.settings;
    const root = await real(s.rootDir, "the directory sources are read from", "base_dir");
    const baseDir = await real(s.baseDir, s.baseDirSetting, "base_dir");
    if (!inside(root, baseDir, true)) {
      throw new ConnectorError(
        "source_refused",
        `duckdb connector: base_dir: ${show(s.baseDirSetting)} is a link to somewhere outside the directory sources are read from; copy the files into it`,
        { details: { field: "base_dir", value: s.baseDirSetting } },
      );
    }
    if (s.database === undefined) return { baseDir, database: undefined };
    const database = await real(resolve(s.baseDir, s.database), s.database, "database");
    if (!inside(baseDir, database, false)) {
      throw new ConnectorError(
        "source_refused",
        `duckdb connector: database: ${show(s.database)} is a link to somewhere outside base_dir; copy the database file into it`,
        { details: { field: "database", value: s.database } },
      );
    }
    return { baseDir, database };
  }

  async run(request: SqlRequest): Promise<SqlRows> {
    return this.withConnection(request.timeoutMs, request.signal, async (connection, step) => {
      const sql = renderStatement(request.statement, (name) => `$${name}`);
      step.phase = request.field;
      step.sql = sql;
      const extracted = await connection.extractStatements(sql);
      if (extracted.count !== 1) {
        throw new ConnectorError(
          "read_only_violation",
          `duckdb ${request.field}: DuckDB reads ${extracted.count} statements; write a single SELECT`,
          { details: { field: request.field } },
        );
      }
      const prepared = await extracted.prepare(0);
      try {
        if (prepared.statementType !== StatementType.SELECT) {
          throw new ConnectorError(
            "read_only_violation",
            `duckdb ${request.field}: DuckDB prepares it as a ${StatementType[prepared.statementType] ?? "statement"} statement, not a SELECT; a signal query only reads`,
            { details: { field: request.field, statementType: StatementType[prepared.statementType] ?? null } },
          );
        }
        const { values, types } = parameters(request);
        prepared.bind(values, types);
        const result = await prepared.stream();
        const fields = result.columnNames();
        const rows: unknown[][] = [];
        for (;;) {
          const chunk = await result.fetchChunk();
          if (chunk === null || chunk.rowCount === 0) break;
          for (const row of chunk.getRows()) {
            if (rows.length >= request.maxRows) {
              throw new ConnectorError(
                "too_many_rows",
                `duckdb ${request.field}: more than ${request.maxRows} rows; return one row per arm (and per experiment, per ts), GROUP BY them, or raise max_rows`,
                { details: { field: request.field, maxRows: request.maxRows } },
              );
            }
            rows.push(row.map(duckdbCell));
          }
        }
        return { fields, rows };
      } finally {
        prepared.destroySync();
      }
    });
  }

  async check(signal: AbortSignal | undefined): Promise<void> {
    await this.withConnection(30_000, signal, async (connection) => {
      await connection.run("SELECT 1");
    });
  }

  /**
   * Runs `work` on a new connection of the shared instance, after checking
   * the sandbox holds and setting up the `tables` views; interrupts it at
   * `timeoutMs` or on `signal`, and closes the connection.
   */
  private async withConnection<T>(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    work: (connection: DuckDBConnection, step: Step) => Promise<T>,
  ): Promise<T> {
    if (signal?.aborted) throw aborted("the poll was aborted before the query ran");
    const instance = await this.instance().catch((error: unknown) => {
      throw error instanceof ConnectorError
        ? error
        : engineError(error, this.settings.database === undefined ? "base_dir" : "database", undefined);
    });
    const connection = await instance.connect();
    const step: Step = { phase: "setup", sql: undefined };
    let ended: "timeout" | "aborted" | undefined;
    let repeat: NodeJS.Timeout | undefined;
    const stop = (why: "timeout" | "aborted"): void => {
      ended ??= why;
      connection.interrupt();
      repeat ??= setInterval(() => connection.interrupt(), INTERRUPT_EVERY_MS);
    };
    const timer = setTimeout(() => stop("timeout"), timeoutMs);
    const onAbort = (): void => stop("aborted");
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await this.prepareConnection(connection, step);
      if (ended !== undefined) throw endedError(ended, timeoutMs);
      return await work(connection, step);
    } catch (error) {
      if (ended !== undefined) throw endedError(ended, timeoutMs);
      if (error instanceof ConnectorError) throw error;
      throw engineError(error, step.phase, step.sql);
    } finally {
      clearTimeout(timer);
      if (repeat !== undefined) clearInterval(repeat);
      signal?.removeEventListener("abort", onAbort);
      connection.closeSync();
    }
  }

  /** Checks the instance is still sandboxed, then gives the connection its `base_dir` variable and `tables` views. */
  private async prepareConnection(connection: DuckDBConnection, step: Step): Promise<void> {
    const state = await connection.runAndReadAll(
      "SELECT current_setting('enable_external_access')::VARCHAR, current_setting('lock_configuration')::VARCHAR",
    );
    const [external, locked] = state.getRows()[0] ?? [];
    if (external !== "false" || locked !== "true") {
      throw new ConnectorError(
        "source_refused",
        "duckdb connector: the DuckDB instance is not sandboxed (external access on, or its configuration unlocked); no query runs on it",
        { details: { enableExternalAccess: external ?? null, lockConfiguration: locked ?? null } },
      );
    }
    const { baseDir } = await this.resolvePaths();
    await connection.run(`SET VARIABLE base_dir = ${literal(baseDir)}`);
    for (const table of this.settings.tables) {
      step.phase = `tables.${table.name}`;
      const files = resolve(baseDir, table.path);
      await connection.run(
        `CREATE OR REPLACE TEMP VIEW "${table.name}" AS SELECT * FROM ${table.reader}(${literal(files)})`,
      );
    }
  }

  async close(): Promise<void> {
    const key = this.key;
    this.key = undefined;
    if (key === undefined) return;
    const held = instances.get(key);
    if (held === undefined) return;
    held.users -= 1;
    if (held.users > 0) return;
    instances.delete(key);
    const instance = await held.instance.catch(() => undefined);
    instance?.closeSync();
  }
}

/** Opens the instance and sets its sandbox (see the file's header). */
async function openSandbox(
  baseDir: string,
  database: string | undefined,
  s: DuckdbDriverSettings,
): Promise<DuckDBInstance> {
  const instance = await DuckDBInstance.create(database ?? ":memory:", {
    ...(database === undefined ? {} : { access_mode: "READ_ONLY" }),
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
    allow_community_extensions: "false",
    allow_persistent_secrets: "false",
    temp_directory: "",
    threads: String(s.threads),
    memory_limit: s.memoryLimit,
  });
  const connection = await instance.connect();
  try {
    if (s.remoteUrls.length > 0) {
      try {
        // Loaded, never installed: the operator installs httpfs in the worker's extension directory ahead.
        await connection.run("LOAD httpfs");
      } catch (error) {
        throw new ConnectorError(
          "query_failed",
          `duckdb connector: remote_urls: DuckDB's httpfs extension cannot be loaded (${firstLine(error)}); install it where the worker runs (duckdb -c "INSTALL httpfs"), or remove remote_urls and read exported files from base_dir`,
          { details: { field: "remote_urls" }, cause: error },
        );
      }
    }
    const allowed = [`${baseDir.replace(/\/+$/u, "")}/`, ...s.remoteUrls].map(literal).join(", ");
    await connection.run(`SET allowed_directories = [${allowed}]`);
    await connection.run("SET enable_external_access = false");
    await connection.run("SET lock_configuration = true");
  } catch (error) {
    connection.closeSync();
    instance.closeSync();
    throw error;
  }
  connection.closeSync();
  return instance;
}

/** The values and DuckDB types of the parameters the statement uses. */
function parameters(request: SqlRequest): {
  values: Record<string, DuckDBValue>;
  types: Record<string, ReturnType<typeof LIST> | typeof VARCHAR | typeof TIMESTAMPTZ>;
} {
  const v = request.values;
  const values: Record<string, DuckDBValue> = {};
  const types: Record<string, ReturnType<typeof LIST> | typeof VARCHAR | typeof TIMESTAMPTZ> = {};
  for (const name of request.statement.names) {
    if (name === "experiment") {
      values[name] = v.experiment ?? "";
      types[name] = VARCHAR;
    } else if (name === "experiments" || name === "arms") {
      values[name] = listValue([...((name === "experiments" ? v.experiments : v.arms) ?? [])]);
      types[name] = LIST(VARCHAR);
    } else if (name === "from" || name === "to") {
      values[name] = timestampTZValue(BigInt(v[name].getTime()) * 1000n);
      types[name] = TIMESTAMPTZ;
    }
  }
  return { values, types };
}

async function real(path: string, name: string, field: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    throw new ConnectorError(
      "invalid_config",
      `duckdb connector: ${field}: ${show(name)} cannot be opened (${(error as { code?: unknown }).code === "ENOENT" ? "no such file or directory" : firstLine(error)}); it is relative to the directory sources are read from (the worker's SOURCE_CSV_DIR)`,
      { details: { field, value: name }, cause: error },
    );
  }
}

/** Whether `path` is `dir` (when `self`) or inside it. */
function inside(dir: string, path: string, self: boolean): boolean {
  const rel = relative(dir, path);
  if (rel === "") return self;
  return !rel.startsWith("..") && !isAbsolute(rel);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}

function aborted(message: string): ConnectorError {
  return new ConnectorError("timeout", `duckdb connector: ${message}`, { details: { aborted: true } });
}

function endedError(why: "timeout" | "aborted", timeoutMs: number): ConnectorError {
  return why === "aborted"
    ? aborted("the poll was aborted; the query was interrupted")
    : new ConnectorError(
        "timeout",
        `duckdb connector: the query ran longer than its timeout (${timeoutMs} ms) and was interrupted; read fewer files (filter on the partition), pre-aggregate, or raise timeout`,
        { details: { timeoutMs } },
      );
}

/**
 * A DuckDB error as a ConnectorError: `source_refused` for the sandbox's
 * refusals (a file outside `base_dir`, a URL outside `remote_urls`), else
 * `query_failed` with DuckDB's message, and the line and column of the
 * query DuckDB points at (`LINE n: ...` and its caret).
 *
 * @param field the setting concerned (`query`, `series_query`, `tables.<name>`, `base_dir`)
 * @param sql the SQL DuckDB ran, when the error concerns the user's query
 */
function engineError(error: unknown, field: string, sql: string | undefined): ConnectorError {
  const message = (error instanceof Error ? error.message : String(error)).replace(
    /^Failed to (?:extract statements|prepare): /u,
    "",
  );
  const kind = /^([A-Za-z ]+?) Error:/u.exec(message)?.[1] ?? "";
  const position = sql === undefined ? undefined : lineColumnOf(message, sql);
  const where = position === undefined ? "" : ` (line ${position.line}, column ${position.column})`;
  const text = message.split("\n")[0] ?? message;
  if (kind === "Permission") {
    return new ConnectorError(
      "source_refused",
      `duckdb ${field}${where}: ${text}; a query reads only files under base_dir (through the tables setting, or by absolute path: getvariable('base_dir') || '/events/*.parquet') and only the URLs remote_urls lists`,
      { details: { field, ...position }, cause: error },
    );
  }
  const fix =
    kind === "Out of Memory"
      ? "read fewer files or columns, pre-aggregate, or raise memory_limit"
      : field.startsWith("tables.")
        ? "check the path of that table in the tables setting (relative to base_dir) and the files there"
        : "fix the query (DuckDB's dialect)";
  return new ConnectorError("query_failed", `duckdb ${field}${where}: ${text}; ${fix}`, {
    details: { field, ...position, duckdbError: message },
    cause: error,
  });
}

/** The line and column (1-based) DuckDB's `LINE n: <text>` and caret point at in `sql`. */
function lineColumnOf(message: string, sql: string): { line: number; column: number } | undefined {
  const match = /\nLINE (\d+): ([^\n]*)\n( *)\^/u.exec(message);
  if (match === null) return undefined;
  const line = Number(match[1]);
  let shown = match[2] ?? "";
  let caret = (match[3] ?? "").length - `LINE ${match[1]}: `.length;
  // DuckDB shows a window of a long line, marked with ...
  if (shown.startsWith("...")) {
    shown = shown.slice(3);
    caret -= 3;
  }
  if (shown.endsWith("...")) shown = shown.slice(0, -3);
  const text = sql.split("\n")[line - 1] ?? "";
  const start = Math.max(text.indexOf(shown), 0);
  return { line, column: start + Math.max(caret, 0) + 1 };
}
