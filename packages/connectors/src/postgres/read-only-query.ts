/**
 * Runs one user statement on a pooled connection, as safely as Postgres
 * allows:
 *
 * - in a `READ ONLY` transaction, rolled back afterwards, so nothing the
 *   statement does is kept;
 * - with `statement_timeout` and `idle_in_transaction_session_timeout` set
 *   for that transaction only, so the server ends the query (and a
 *   transaction left open) even if the worker is gone;
 * - cancelled on the server (a CancelRequest) when the caller gives up
 *   first (its abort, or no answer past the timeout), before the connection
 *   is dropped: a dropped connection alone leaves the query running;
 * - through the extended query protocol (Parse/Bind/Execute), which refuses
 *   a text holding several statements; with the simple protocol,
 *   `SELECT 1; COMMIT; CREATE TABLE ...` would end the read-only
 *   transaction and write;
 * - with the row cap enforced by the server: Execute asks for at most
 *   `maxRows + 1` rows, so a huge result is never read into memory;
 * - followed by `DISCARD ALL`, because session state (advisory locks,
 *   prepared statements, temporary tables, `set_config(..., false)` made
 *   before a rollback...) survives a rollback and would leak into the next
 *   run on the same connection.
 *
 * Errors come back as {@link ConnectorError}s; see {@link toConnectorError}.
 */
// biome-ignore lint/style/noRestrictedImports: the postgres connector runs a user's SQL on the user's own database (DESIGN §3: connectors are infrastructure).
import pg from "pg";
import { ConnectorError } from "../connector-error";
import { lineColumn } from "./sql-statement";

/**
 * What a run returns: column names, and rows of the values as Postgres
 * writes them in text (numbers as decimal text, timestamps in ISO form).
 */
export interface QueryRows {
  fields: string[];
  rows: (string | null)[][];
}

/** Options of {@link runReadOnly}. */
export interface RunOptions {
  /** Server-side statement timeout, in milliseconds. */
  timeoutMs: number;
  maxRows: number;
  signal?: AbortSignal;
  /** Used in messages: `query` or `series_query`. */
  field: string;
}

/** How long past the statement timeout the client waits before it gives the connection up. */
const CLIENT_GRACE_MS = 5_000;

const pools = new Map<string, { pool: pg.Pool; refs: number }>();

/** A shared pool for `url`; every call must be paired with {@link releasePool}. */
export function acquirePool(url: string): pg.Pool {
  const entry = pools.get(url);
  if (entry !== undefined) {
    entry.refs++;
    return entry.pool;
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 10_000,
    allowExitOnIdle: true,
    application_name: "outcome-runtime-connector",
  });
  // An idle connection dropped by the server must not crash the process; the next checkout reconnects.
  pool.on("error", () => {});
  // Nor one lost while checked out between two queries (inside the read-only transaction): pg emits
  // `error` on the client, which with no listener ends the process; the query in flight fails on its own.
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  pools.set(url, { pool, refs: 1 });
  return pool;
}

/** Releases one reference to the pool of `url`, and ends the pool with the last one. */
export async function releasePool(url: string): Promise<void> {
  const entry = pools.get(url);
  if (entry === undefined) return;
  entry.refs--;
  if (entry.refs > 0) return;
  pools.delete(url);
  await entry.pool.end().catch(() => {});
}

/**
 * Runs `text` (one statement, `$n` parameters) read-only on a connection
 * from `pool`, then resets the connection.
 *
 * @param values text values for `$1..$n` (null for NULL)
 * @throws ConnectorError (`timeout`, `too_many_rows`, `read_only_violation`, `query_failed`, `unavailable`, `auth_failed`)
 */
export async function runReadOnly(
  pool: pg.Pool,
  text: string,
  values: readonly (string | null)[],
  options: RunOptions,
): Promise<QueryRows> {
  if (options.signal?.aborted) throw aborted(options.field, options.signal);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw connectError(error);
  }

  let broken = false;
  let settled = false;
  let running: CappedQuery | undefined;
  const release = (): void => {
    if (settled) return;
    settled = true;
    // release(true) destroys the connection instead of returning it to the pool.
    client.release(broken ? true : undefined);
  };

  // The server cancels the statement at `timeoutMs`; this timer only covers a
  // server or network that stops answering, and an abort by the caller.
  let stop: ((error: ConnectorError) => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    stop = reject;
  });
  stopped.catch(() => {});
  const giveUp = (error: ConnectorError): void => {
    broken = true;
    if (running !== undefined && !running.finished) cancelOnServer(client);
    stop?.(error);
  };
  const timer = setTimeout(
    () =>
      giveUp(
        new ConnectorError(
          "timeout",
          `postgres ${options.field}: no answer from the server ${Math.round((options.timeoutMs + CLIENT_GRACE_MS) / 1000)}s after the query started`,
          { details: { field: options.field, timeoutMs: options.timeoutMs } },
        ),
      ),
    options.timeoutMs + CLIENT_GRACE_MS,
  );
  const onAbort = (): void => giveUp(aborted(options.field, options.signal));
  options.signal?.addEventListener("abort", onAbort, { once: true });

  try {
    const work = async (): Promise<QueryRows> => {
      const timeoutMs = Math.max(1, Math.round(options.timeoutMs));
      await client.query(
        `BEGIN READ ONLY; SET LOCAL statement_timeout = ${timeoutMs}; SET LOCAL idle_in_transaction_session_timeout = ${timeoutMs + CLIENT_GRACE_MS}`,
      );
      try {
        const result = await new Promise<CappedResult>((resolve, reject) => {
          running = new CappedQuery(text, values, options.maxRows, resolve, reject);
          client.query(running);
        });
        if (result.truncated || result.rows.length > options.maxRows) {
          throw new ConnectorError(
            "too_many_rows",
            `postgres ${options.field}: the query returns more than max_rows = ${options.maxRows} rows; return one row per arm (and per ts), e.g. GROUP BY arm, or raise max_rows`,
            { details: { field: options.field, maxRows: options.maxRows } },
          );
        }
        return { fields: result.fields, rows: result.rows };
      } finally {
        await client.query("ROLLBACK");
      }
    };
    return await Promise.race([work(), stopped]);
  } catch (error) {
    if (error instanceof ConnectorError) throw error;
    if (isConnectionLoss(error)) broken = true;
    throw toConnectorError(error, text, options.field, options.timeoutMs);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    if (!broken) {
      try {
        await client.query("DISCARD ALL");
      } catch {
        broken = true;
      }
    }
    release();
  }
}

/**
 * Asks the server to cancel what `client` is running (PostgreSQL's
 * CancelRequest, sent with pg's `Connection` over a connection of its own), so a
 * query the caller gave up on stops on the server too. Best effort: the
 * statement timeout ends it anyway.
 */
function cancelOnServer(client: pg.PoolClient): void {
  const target = client as unknown as {
    host: string;
    port: number;
    processID: number | null;
    secretKey: number | null;
  };
  if (target.processID === null || target.secretKey === null) return;
  try {
    const connection = new pg.Connection() as pg.Connection & {
      connect(portOrPath: number | string, host?: string): void;
      cancel(processID: number, secretKey: number): void;
    };
    connection.on("error", () => {});
    connection.on("connect", () => connection.cancel(target.processID as number, target.secretKey as number));
    if (target.host.startsWith("/")) connection.connect(`${target.host}/.s.PGSQL.${target.port}`);
    else connection.connect(target.port, target.host);
    // The server closes a cancel connection once it has read the request; this only frees a hung one.
    setTimeout(() => connection.stream.destroy(), 5_000).unref();
  } catch {
    // The statement timeout ends the query.
  }
}

/**
 * Runs `fn` with a connection of `pool` (released afterwards, destroyed if it
 * failed on the connection).
 *
 * @throws ConnectorError `unavailable` or `auth_failed` when no connection can be made; `fn`'s errors as they are
 */
export async function withConnection<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw connectError(error);
  }
  let broken = false;
  try {
    return await fn(client);
  } catch (error) {
    broken = isConnectionLoss(error);
    throw error;
  } finally {
    client.release(broken ? true : undefined);
  }
}

interface CappedResult {
  fields: string[];
  rows: (string | null)[][];
  truncated: boolean;
}

interface FieldDescription {
  name: string;
  dataTypeID: number;
}

/** The subset of pg's connection a submittable drives (what pg-cursor uses). */
interface ProtocolConnection {
  parse(query: { text: string; name?: string; types?: number[] }): void;
  bind(config: { portal?: string; statement?: string; values?: readonly (string | null)[] }): void;
  describe(msg: { type: "P" | "S"; name?: string }): void;
  execute(config: { portal?: string; rows?: number }): void;
  flush(): void;
  sync(): void;
}

/**
 * One statement through the extended protocol, reading at most
 * `maxRows + 1` rows (Execute's row limit), values in text. The client calls
 * the `handle*` methods as messages arrive (the protocol pg-cursor uses).
 */
class CappedQuery implements pg.Submittable {
  private fields: FieldDescription[] = [];
  private readonly rows: (string | null)[][] = [];
  private truncated = false;
  private error: unknown;
  private done = false;

  /** Whether the server has answered (rows, an error or ReadyForQuery). */
  get finished(): boolean {
    return this.done;
  }

  constructor(
    private readonly text: string,
    private readonly values: readonly (string | null)[],
    private readonly maxRows: number,
    private readonly resolve: (result: CappedResult) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  submit(connection: unknown): void {
    const con = connection as ProtocolConnection;
    con.parse({ text: this.text, name: "", types: [] });
    con.bind({ portal: "", statement: "", values: this.values });
    con.describe({ type: "P", name: "" });
    con.execute({ portal: "", rows: this.maxRows + 1 });
    con.flush();
  }

  handleRowDescription(msg: { fields: FieldDescription[] }): void {
    this.fields = msg.fields;
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    // Values stay as the server's text: pg's shared type parsers may be
    // changed by other code in the process (e.g. int8 → Number), and the
    // boundary checks parse numbers and timestamps strictly themselves.
    this.rows.push(msg.fields);
  }

  handlePortalSuspended(connection: unknown): void {
    // More rows than maxRows + 1: stop here; Sync ends the portal unread.
    this.truncated = true;
    (connection as ProtocolConnection).sync();
  }

  handleCommandComplete(_msg: unknown, connection: unknown): void {
    (connection as ProtocolConnection).sync();
  }

  handleEmptyQuery(connection: unknown): void {
    (connection as ProtocolConnection).sync();
  }

  handleError(error: unknown, connection: unknown): void {
    this.error = error;
    // After an error the server skips messages until a Sync; send it so the
    // connection becomes ready again (the client has dropped this query already).
    if (error instanceof pg.DatabaseError) {
      try {
        (connection as ProtocolConnection).sync();
      } catch {
        // The connection is gone; the pool discards it.
      }
    }
    this.finish();
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.error !== undefined) this.reject(this.error);
    else this.resolve({ fields: this.fields.map((f) => f.name), rows: this.rows, truncated: this.truncated });
  }
}

function aborted(field: string, signal: AbortSignal | undefined): ConnectorError {
  // The worker aborts a poll that outlasts its timeout (POLL_TIMEOUT_MS) with a TimeoutError: say so.
  const timedOut = (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return new ConnectorError(
    "timeout",
    timedOut
      ? `postgres ${field}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); make the query faster (an index, fewer rows) or raise the timeout`
      : `postgres ${field}: the poll was aborted before the query finished`,
    { details: { field, aborted: true } },
  );
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
  "EPIPE",
]);

function isConnectionLoss(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08") || code.startsWith("57P"))) {
    return true;
  }
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|not queryable|ECONNRESET/u.test(message);
}

/** A failure to get a connection: credentials refused, or the server unreachable. */
function connectError(error: unknown): ConnectorError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === "28P01" || code === "28000") {
    return new ConnectorError(
      "auth_failed",
      `postgres: the server refused the credentials (${message}); check the user and password in the connection string`,
      { details: { sqlstate: code }, cause: error },
    );
  }
  return new ConnectorError(
    "unavailable",
    `postgres: cannot connect (${message}); check the connection string and that the database is up`,
    { details: { cause: typeof code === "string" ? code : null }, cause: error },
  );
}

/**
 * Maps a Postgres or driver error to a {@link ConnectorError}: 25006 (write
 * in a read-only transaction) → `read_only_violation`, 57014 (statement
 * timeout) → `timeout`, connection loss → `unavailable`, a statement list
 * refused by the extended protocol → `read_only_violation`, anything else →
 * `query_failed` with the server's message, hint and line.
 */
function toConnectorError(error: unknown, text: string, field: string, timeoutMs: number): ConnectorError {
  const db = error as { code?: unknown; message?: unknown; position?: unknown; hint?: unknown; detail?: unknown };
  const sqlstate = typeof db.code === "string" ? db.code : undefined;
  const message = typeof db.message === "string" ? db.message : String(error);
  const details: Record<string, unknown> = { field, sqlstate: sqlstate ?? null };
  if (sqlstate === "25006") {
    return new ConnectorError(
      "read_only_violation",
      `postgres ${field}: the query tried to write (${message}); it runs in a READ ONLY transaction and nothing was written: read with a SELECT only`,
      { details, cause: error },
    );
  }
  if (sqlstate === "57014") {
    return new ConnectorError(
      "timeout",
      `postgres ${field}: the query ran longer than the timeout of ${formatMs(timeoutMs)} and was cancelled; make it faster (an index on the filtered columns, a pre-aggregated table) or raise timeout`,
      { details: { ...details, timeoutMs }, cause: error },
    );
  }
  if (sqlstate === "42601" && /multiple commands/u.test(message)) {
    return new ConnectorError(
      "read_only_violation",
      `postgres ${field}: refused a text holding more than one statement (${message}); nothing was run: write a single SELECT`,
      { details, cause: error },
    );
  }
  if (sqlstate === "28P01" || sqlstate === "28000") return connectError(error);
  if (isConnectionLoss(error) || sqlstate === "53300" || sqlstate === "3D000") {
    return new ConnectorError(
      "unavailable",
      `postgres ${field}: lost the database (${message}); the poll will be retried`,
      {
        details,
        cause: error,
      },
    );
  }
  const position = Number(db.position);
  const where = Number.isInteger(position) && position > 0 ? ` at line ${lineColumn(text, position - 1).line}` : "";
  const hint = typeof db.hint === "string" ? ` (hint: ${db.hint})` : "";
  return new ConnectorError(
    "query_failed",
    `postgres ${field}${where}: ${message}${hint}; fix the SQL in outcome.yaml`,
    {
      details: { ...details, position: Number.isInteger(position) ? position : null },
      cause: error,
      retryable: sqlstate === "40001" || sqlstate === "40P01",
    },
  );
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
