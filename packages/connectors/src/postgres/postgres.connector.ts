/**
 * `postgres`: the user's own SQL, with named parameters, on the user's own
 * database. See docs/connectors.md for how to write the queries.
 */
import { assertWindow } from "../boundary-checks";
import { ConfigReader, formatSeconds, show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  DatabaseIdentity,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { type CredentialRequirement, credentialFields, credentialValue, readCredentialRef } from "../credentials";
import { aggregatesOfRows, batchFrom, batchOfOne, seriesOfRows, splitBatch } from "../sql/result-rows";
import { acquirePool, type QueryRows, releasePool, runReadOnly, withConnection } from "./read-only-query";
import { inspectSource, SOURCE_RECHECK_MS, sourceRefusal } from "./source-check";
import { checkSqlPolicy } from "./sql-policy";
import { lineColumn, type ParameterDefinition, type PreparedStatement, prepareStatement } from "./sql-statement";

/** Parameters of `query`: `:experiment_key` and `:until` are the older names of `:experiment` and `:to`. */
export const EXPERIMENT_PARAMETERS: Readonly<Record<string, ParameterDefinition>> = Object.freeze({
  experiment: { canonical: "experiment", sqlType: "text" },
  /** The batched form: the keys of every experiment of the request; the result names each row's `experiment`. */
  experiments: { canonical: "experiments", sqlType: "text[]" },
  arms: { canonical: "arms", sqlType: "text[]" },
  from: { canonical: "from", sqlType: "timestamptz" },
  to: { canonical: "to", sqlType: "timestamptz" },
  experiment_key: { canonical: "experiment", sqlType: "text" },
  until: { canonical: "to", sqlType: "timestamptz" },
});

/** Parameters of `series_query`. */
export const SERIES_PARAMETERS: Readonly<Record<string, ParameterDefinition>> = Object.freeze({
  from: { canonical: "from", sqlType: "timestamptz" },
  to: { canonical: "to", sqlType: "timestamptz" },
});

const FIELDS = ["query", "series_query", ...credentialFields("postgres"), "timeout", "max_rows"] as const;

/** Default statement timeout, in seconds. */
const DEFAULT_POSTGRES_TIMEOUT_SECONDS = 30;
/** The longest `timeout` outcome.yaml may ask for, in seconds; the worker's POLL_TIMEOUT_MS caps it further. */
const MAX_POSTGRES_TIMEOUT_SECONDS = 3600;
/** Default row cap. */
const DEFAULT_MAX_ROWS = 10_000;

/** Parameters each query must use: without them every experiment, or every moment, would read the same rows. */
const REQUIRED_PARAMETERS: Readonly<Record<string, readonly string[]>> = {
  query: ["experiment", "to"],
  series_query: ["to"],
};

/** A `postgres` connector's settings, checked, before any credential is read. */
interface PostgresSettingsRead {
  readonly credential: CredentialRequirement;
  readonly query: PreparedStatement;
  readonly seriesQuery: PreparedStatement | undefined;
  readonly timeoutSeconds: number;
  readonly maxRows: number;
}

/**
 * Reads and checks a `postgres` connector's settings: the fields, where the
 * connection string is kept, and each query against the SQL policy
 * (PostgreSQL's parser: one SELECT, nothing that writes, no denied function,
 * the required named parameters). Reads no credential, connects nowhere.
 *
 * @throws ConnectorError `invalid_config` naming the field (with the line and column in the query, and `details.offset`)
 */
function readPostgresSettings(config: ConnectorConfig): PostgresSettingsRead {
  const reader = new ConfigReader(config, FIELDS);
  const timeoutSeconds = reader.durationSeconds("timeout", DEFAULT_POSTGRES_TIMEOUT_SECONDS);
  if (timeoutSeconds > MAX_POSTGRES_TIMEOUT_SECONDS) {
    throw reader.invalid(
      "timeout",
      `${show(reader.raw("timeout"))} is longer than the most a signal query may run (1h)`,
      "write a timeout of at most 1h, e.g. 30s; a slow query needs an index or a pre-aggregated table",
      { value: reader.raw("timeout") },
    );
  }
  const query = prepare(reader, "query", EXPERIMENT_PARAMETERS, timeoutSeconds);
  const seriesQuery = reader.has("series_query")
    ? prepare(reader, "series_query", SERIES_PARAMETERS, timeoutSeconds)
    : undefined;
  const credential = readCredentialRef(
    reader,
    "database_url",
    "the connection string (postgres://...) of a read-only role",
  );
  const maxRows = reader.integer("max_rows", DEFAULT_MAX_ROWS, 1, 1_000_000);
  return { credential, query, seriesQuery, timeoutSeconds, maxRows };
}

/**
 * Whether a `postgres` connector's `query` is in the batched form (it uses
 * `:experiments` and returns an `experiment` column), so that one query reads
 * many experiments. False for the one-experiment form and for settings that do
 * not parse (their error is reported where the connector is created).
 */
export function postgresReadsInBatches(config: ConnectorConfig): boolean {
  const query = config.query;
  if (typeof query !== "string") return false;
  const result = prepareStatement(query, EXPERIMENT_PARAMETERS);
  return result.ok && result.parameters.includes("experiments");
}

/**
 * Creates a `postgres` connector. Checks the settings and the SQL now;
 * connects on the first poll, where the connection's role and database are
 * checked before any query runs (never the runtime's database, never a role
 * that is a superuser or may write).
 *
 * @throws ConnectorError `invalid_config`
 */
export function createPostgresConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  const read = readPostgresSettings(config);
  const url = credentialValue(context.credentials, read.credential, "postgres");
  const timeoutMs = Math.min(read.timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY);
  return new PostgresConnector({
    url,
    source: `${read.credential.field}: ${read.credential.ref.name}`,
    query: read.query,
    seriesQuery: read.seriesQuery,
    timeoutMs,
    maxRows: read.maxRows,
    metricKind: context.metricKind,
    runtimeDatabase: context.runtimeDatabase,
  });
}

function prepare(
  reader: ConfigReader,
  field: string,
  parameters: Readonly<Record<string, ParameterDefinition>>,
  timeoutSeconds: number,
): PreparedStatement {
  const sql = reader.string(field, "write the SQL query (see docs/connectors.md)");
  const result = prepareStatement(sql, parameters);
  if (!result.ok) throw sqlProblem(reader, field, sql, result.problem, result.fix, offsetOf(sql, result));
  const refused = checkSqlPolicy(result.checkText, { timeoutSeconds });
  if (refused !== null) throw sqlProblem(reader, field, sql, refused.problem, refused.fix, refused.offset);
  if (field === "query" && result.parameters.includes("experiment") && result.parameters.includes("experiments")) {
    throw sqlProblem(
      reader,
      field,
      sql,
      "the query uses both :experiment and :experiments",
      "use :experiments (WHERE experiment_key = ANY(:experiments), returning an experiment column) to read many experiments in one query, or :experiment for one at a time; not both",
      0,
    );
  }
  // The batched form filters on :experiments instead of :experiment.
  const required = (REQUIRED_PARAMETERS[field] ?? []).map((name) =>
    name === "experiment" && result.parameters.includes("experiments") ? "experiments" : name,
  );
  const missing = required.filter((name) => !result.parameters.includes(name));
  if (missing.length > 0) {
    throw sqlProblem(
      reader,
      field,
      sql,
      `the query does not use ${missing.map((m) => `:${m}`).join(" or ")}`,
      field === "query"
        ? "filter on the experiment (WHERE experiment_key = :experiment, or = ANY(:experiments) to read many at once) and read only what happened up to :to (AND exposed_at <= :to)"
        : "read only the points up to :to (WHERE ts <= :to)",
      0,
    );
  }
  return result;
}

/** An `invalid_config` error about the SQL in `field`, at `offset` (a character offset into the SQL). */
function sqlProblem(
  reader: ConfigReader,
  field: string,
  sql: string,
  problem: string,
  fix: string,
  offset: number,
): ConnectorError {
  const { line, column } = lineColumn(sql, offset);
  return reader.invalid(`${field} (line ${line}, column ${column})`, problem, fix, {
    line,
    column,
    offset,
    sqlField: field,
  });
}

/** The character offset of a lexer problem's line and column. */
function offsetOf(sql: string, at: { line: number; column: number }): number {
  let offset = 0;
  for (let line = 1; line < at.line; line++) {
    const next = sql.indexOf("\n", offset);
    if (next === -1) break;
    offset = next + 1;
  }
  return offset + at.column - 1;
}

interface PostgresSettings {
  url: string;
  /** Where the URL came from, for describe(): the env var name, never the value. */
  source: string;
  query: PreparedStatement;
  seriesQuery: PreparedStatement | undefined;
  timeoutMs: number;
  maxRows: number;
  metricKind: "proportion" | "mean" | "ratio";
  runtimeDatabase: (() => Promise<DatabaseIdentity>) | undefined;
}

class PostgresConnector implements SignalConnector {
  readonly type = "postgres";
  private readonly settings: PostgresSettings;
  private pool: ReturnType<typeof acquirePool> | undefined;
  private closed = false;
  /** When the source's role and database last passed the check (ms since the epoch). */
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(settings: PostgresSettings) {
    this.settings = settings;
  }

  describe(): string {
    const { source, timeoutMs, maxRows } = this.settings;
    return `postgres ${safeLocation(this.settings.url)} (${source}), timeout ${formatSeconds(timeoutMs / 1000)}, at most ${maxRows} rows${this.settings.seriesQuery === undefined ? "" : ", with a series query"}`;
  }

  /** Whether `query` is in the batched form (`:experiments`, an `experiment` column). */
  private get batched(): boolean {
    return this.settings.query.parameters.includes("experiments");
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    if (this.batched) {
      // The batched query asked for this one experiment.
      const answer = await this.batchRead(batchOfOne(window), signal);
      const mine = answer.get(window.experimentKey) ?? [];
      if (mine instanceof ConnectorError) throw mine;
      return mine;
    }
    const values: Record<string, string> = {
      experiment: window.experimentKey,
      arms: textArray(window.arms),
      from: window.from.toISOString(),
      to: window.to.toISOString(),
    };
    const result = await this.run("query", this.settings.query, values, signal);
    return aggregatesOfRows(result, result.rows, window, this.settings.metricKind, "postgres query");
  }

  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    return this.batched ? (window, signal) => this.batchRead(window, signal) : undefined;
  }

  /**
   * One query for every experiment of `window`: `:experiments` their keys,
   * `:arms` every arm any of them has, `:from` the earliest start. Rows are
   * split by the `experiment` column; an experiment's rows of an arm only
   * another experiment of the batch has are dropped (`:arms` asked for it), and
   * each experiment's rows are checked on their own (an error there concerns
   * that experiment only).
   *
   * @throws ConnectorError `missing_columns` without an `experiment` column;
   *   `bad_response` when a row names no experiment or one outside the batch.
   */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    if (window.experiments.length === 0) return new Map();
    const from = batchFrom(window);
    assertWindow({ from, to: window.to });
    const values: Record<string, string> = {
      experiments: textArray(window.experiments.map((e) => e.experimentKey)),
      arms: textArray([...new Set(window.experiments.flatMap((e) => e.arms))]),
      from: from.toISOString(),
      to: window.to.toISOString(),
    };
    const result = await this.run("query", this.settings.query, values, signal);
    return splitBatch(result, window, from, this.settings.metricKind, "postgres query");
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const statement = this.settings.seriesQuery;
    if (statement === undefined) {
      throw new ConnectorError(
        "unsupported",
        "postgres connector: no series_query; add a series_query returning ts, value to read the outcome's series",
        { details: { field: "series_query" } },
      );
    }
    const values = { from: window.from.toISOString(), to: window.to.toISOString() };
    const result = await this.run("series_query", statement, values, signal);
    return seriesOfRows(result, window, "postgres series_query");
  }

  async check(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new Error("postgres connector: used after close()");
    this.pool ??= acquirePool(this.settings.url);
    this.checkedAt = Number.NEGATIVE_INFINITY;
    const pool = this.pool;
    await abortable(this.checkSource(pool), signal, this.settings.source);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pool !== undefined) {
      this.pool = undefined;
      await releasePool(this.settings.url);
    }
  }

  private async run(
    field: string,
    statement: PreparedStatement,
    values: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<QueryRows> {
    if (this.closed) throw new Error("postgres connector: used after close()");
    // Checked again before every poll, so a statement can never run unchecked (the check is the parser's, ~0.1 ms).
    const refused = checkSqlPolicy(statement.checkText, { timeoutSeconds: this.settings.timeoutMs / 1000 });
    if (refused !== null) {
      throw new ConnectorError("read_only_violation", `postgres ${field}: ${refused.problem}; ${refused.fix}`, {
        details: { field, offset: refused.offset },
      });
    }
    this.pool ??= acquirePool(this.settings.url);
    await this.checkSource(this.pool);
    return runReadOnly(
      this.pool,
      statement.text,
      statement.parameters.map((name) => values[name] ?? null),
      { timeoutMs: this.settings.timeoutMs, maxRows: this.settings.maxRows, signal, field },
    );
  }

  /**
   * Refuses a connection to the runtime's own database, or as a role that is a superuser or may write, before
   * any query runs; a passed check is trusted for SOURCE_RECHECK_MS.
   *
   * @throws ConnectorError `source_refused`, or `unavailable`/`auth_failed` when no connection can be made
   */
  private async checkSource(pool: ReturnType<typeof acquirePool>): Promise<void> {
    if (Date.now() - this.checkedAt < SOURCE_RECHECK_MS) return;
    const runtime = this.settings.runtimeDatabase === undefined ? undefined : await this.settings.runtimeDatabase();
    let facts: Awaited<ReturnType<typeof inspectSource>>;
    try {
      facts = await withConnection(pool, (client) => inspectSource(client));
    } catch (error) {
      if (error instanceof ConnectorError) throw error;
      throw new ConnectorError(
        "unavailable",
        `postgres (${this.settings.source}): could not check the source's role (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
        { cause: error },
      );
    }
    const refusal = sourceRefusal(facts, runtime, this.settings.source);
    if (refusal !== null) throw refusal;
    this.checkedAt = Date.now();
  }
}

/** `work`, or a `timeout` error when `signal` aborts first (the work is left to finish on its own). */
async function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined, source: string): Promise<T> {
  if (signal === undefined) return work;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () =>
      reject(new ConnectorError("timeout", `postgres (${source}): no answer while checking the source`, {}));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  work.catch(() => {});
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
  }
}

/** A Postgres array literal of text values: `{"control","treatment"}`. */
function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/["\\]/gu, (c) => `\\${c}`)}"`).join(",")}}`;
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
