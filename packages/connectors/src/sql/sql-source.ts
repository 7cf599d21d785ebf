/**
 * One connector for every warehouse that answers SQL (mysql, duckdb,
 * bigquery, snowflake, clickhouse): the settings every one of them takes,
 * the static checks of the query, the batched and one-experiment forms, a
 * per-source concurrency limit and retries with backoff on the source's
 * throttling answers. What differs per source (its client library, its
 * placeholders, its read-only mode, its types) is a {@link SqlDriver}.
 */
import { setTimeout as sleep } from "node:timers/promises";
import pLimit, { type LimitFunction } from "p-limit";
import pRetry from "p-retry";
import { assertWindow } from "../boundary-checks";
import { ConfigReader, formatSeconds, show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  CostEstimate,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialFields } from "../credentials";
import { lineColumn } from "../postgres/sql-statement";
import { type NamedStatement, parseNamedStatement, type SqlLexicon } from "./named-parameters";
import { aggregatesOfRows, batchFrom, batchOfOne, type SqlRows, seriesOfRows, splitBatch } from "./result-rows";

/** The parameters a signal query may use. */
export const SQL_QUERY_PARAMETERS: readonly string[] = Object.freeze([
  "experiment",
  "experiments",
  "arms",
  "from",
  "to",
]);
/** The parameters a series query may use. */
export const SQL_SERIES_PARAMETERS: readonly string[] = Object.freeze(["from", "to"]);

/** The settings every SQL source takes besides its own and its credentials'. */
export const SQL_COMMON_FIELDS: readonly string[] = Object.freeze([
  "query",
  "series_query",
  "timeout",
  "max_rows",
  "max_concurrency",
  "retries",
]);

/** Default statement timeout, in seconds. */
const DEFAULT_TIMEOUT_SECONDS = 30;
/** The longest `timeout` outcome.yaml may ask for, in seconds; the worker's POLL_TIMEOUT_MS caps it further. */
const MAX_TIMEOUT_SECONDS = 3600;
/** Default row cap. */
const DEFAULT_MAX_ROWS = 10_000;
/** Default number of queries one source runs at once. */
const DEFAULT_MAX_CONCURRENCY = 4;
/** Default number of retries of a throttled or unavailable read. */
const DEFAULT_RETRIES = 3;
/** The first retry's wait, in milliseconds; each next one doubles it (with jitter), up to {@link MAX_RETRY_WAIT_MS}. */
const FIRST_RETRY_WAIT_MS = 500;
const MAX_RETRY_WAIT_MS = 30_000;

/** The values of one read's parameters. Lists are never empty. */
export interface SqlParameterValues {
  /** The one-experiment form's key. */
  readonly experiment?: string;
  /** The batched form's keys. */
  readonly experiments?: readonly string[];
  /** Every arm asked for (in the batched form, every arm of any experiment of the batch). */
  readonly arms?: readonly string[];
  readonly from: Date;
  readonly to: Date;
}

/** One read a driver runs. */
export interface SqlRequest {
  /** `query` or `series_query`: the setting the statement came from, for messages. */
  readonly field: "query" | "series_query";
  readonly statement: NamedStatement;
  readonly values: SqlParameterValues;
  /** The server-side timeout to set, in milliseconds. */
  readonly timeoutMs: number;
  /** The most rows to read; a result with more is `too_many_rows`, never read whole. */
  readonly maxRows: number;
  readonly signal: AbortSignal | undefined;
}

/** What differs per SQL source: its client, placeholders, read-only mode and types. */
export interface SqlDriver {
  /** Where the driver reads from, for describe(), logs and the per-source limit; never a secret. */
  readonly location: string;
  /**
   * Runs `request` read-only and returns its columns and rows.
   *
   * @throws ConnectorError: `query_failed` (with `details.line`/`column` where the source gives a position),
   *   `rate_limited` (with `retryAfterMs` when the source says), `unavailable`, `auth_failed`, `timeout`,
   *   `too_many_rows`, `read_only_violation`, `cost_exceeded`
   */
  run(request: SqlRequest): Promise<SqlRows>;
  /** The source's own estimate of what `request` would cost, without running it (BigQuery: a dry run). */
  estimateCost?(request: SqlRequest): Promise<CostEstimate>;
  /** Checks, before any poll, that the source may be read as configured (a least-privilege role). */
  check?(signal: AbortSignal | undefined): Promise<void>;
  close(): Promise<void>;
}

/** The settings every SQL source takes, read and checked. */
export interface SqlCommonSettings {
  readonly query: NamedStatement;
  readonly seriesQuery: NamedStatement | undefined;
  /** Statement timeout, in milliseconds, already capped by the worker's `POLL_TIMEOUT_MS`. */
  readonly timeoutMs: number;
  readonly maxRows: number;
  readonly maxConcurrency: number;
  readonly retries: number;
}

/** A SQL source: its name, lexical rules, own settings and driver. */
export interface SqlSourceDefinition {
  /** The connector type (`mysql`, `bigquery`, ...). */
  readonly type: string;
  readonly lexicon: SqlLexicon;
  /** The source's own settings (besides {@link SQL_COMMON_FIELDS} and its credentials). */
  readonly fields: readonly string[];
  /**
   * Reads the source's own settings and credentials and makes its driver.
   * Connects nowhere: the first read does.
   *
   * @throws ConnectorError `invalid_config` naming the field, the value and the fix
   */
  createDriver(reader: ConfigReader, context: ConnectorContext, common: SqlCommonSettings): SqlDriver;
  /**
   * The source's own static check of a query, after the shared one (e.g.
   * DuckDB's parser): null when it passes.
   */
  checkStatement?(sql: string, field: string): { problem: string; fix: string; offset: number } | null;
}

/**
 * Creates the connector of a SQL source from its settings: the common ones
 * (`query`, `series_query`, `timeout`, `max_rows`, `max_concurrency`,
 * `retries`), checked now, then the source's own through its definition.
 *
 * @throws ConnectorError `invalid_config` naming the field (with line and column in a query, and `details.offset`)
 */
export function createSqlSourceConnector(
  definition: SqlSourceDefinition,
  config: ConnectorConfig,
  context: ConnectorContext,
): SignalConnector {
  const reader = new ConfigReader(config, [
    ...SQL_COMMON_FIELDS,
    ...definition.fields,
    ...credentialFields(definition.type),
  ]);
  const common = readCommonSettings(definition, reader, context);
  const driver = definition.createDriver(reader, context, common);
  return new SqlSourceConnector(definition.type, common, driver, context.metricKind);
}

/**
 * Whether a SQL source's `query` reads many experiments at once (it uses
 * `:experiments`). False for settings that do not parse.
 */
export function sqlSourceReadsInBatches(definition: SqlSourceDefinition, config: ConnectorConfig): boolean {
  if (typeof config.query !== "string") return false;
  const parsed = parseNamedStatement(config.query, definition.lexicon, SQL_QUERY_PARAMETERS);
  return parsed.ok && parsed.statement.names.includes("experiments");
}

function readCommonSettings(
  definition: SqlSourceDefinition,
  reader: ConfigReader,
  context: ConnectorContext,
): SqlCommonSettings {
  const timeoutSeconds = reader.durationSeconds("timeout", DEFAULT_TIMEOUT_SECONDS);
  if (timeoutSeconds > MAX_TIMEOUT_SECONDS) {
    throw reader.invalid(
      "timeout",
      `${show(reader.raw("timeout"))} is longer than the most a signal query may run (1h)`,
      "write a timeout of at most 1h, e.g. 30s; a slow query needs a partitioned or pre-aggregated table",
      { value: reader.raw("timeout") },
    );
  }
  const query = readStatement(definition, reader, "query");
  const seriesQuery = reader.has("series_query") ? readStatement(definition, reader, "series_query") : undefined;
  return {
    query,
    seriesQuery,
    timeoutMs: Math.min(timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY),
    maxRows: reader.integer("max_rows", DEFAULT_MAX_ROWS, 1, 1_000_000),
    maxConcurrency: reader.integer("max_concurrency", DEFAULT_MAX_CONCURRENCY, 1, 64),
    retries: reader.integer("retries", DEFAULT_RETRIES, 0, 10),
  };
}

/** Parameters each query must use: without them every experiment, or every moment, would read the same rows. */
const REQUIRED: Readonly<Record<string, readonly string[]>> = { query: ["experiment", "to"], series_query: ["to"] };

function readStatement(
  definition: SqlSourceDefinition,
  reader: ConfigReader,
  field: "query" | "series_query",
): NamedStatement {
  const sql = reader.string(field, "write the SQL query (see docs/connectors.md)");
  const known = field === "query" ? SQL_QUERY_PARAMETERS : SQL_SERIES_PARAMETERS;
  const parsed = parseNamedStatement(sql, definition.lexicon, known);
  if (!parsed.ok) throw sqlProblem(reader, field, sql, parsed);
  const own = definition.checkStatement?.(parsed.statement.sql, field) ?? null;
  if (own !== null) throw sqlProblem(reader, field, sql, own);
  const names = parsed.statement.names;
  if (field === "query" && names.includes("experiment") && names.includes("experiments")) {
    throw sqlProblem(reader, field, sql, {
      problem: "the query uses both :experiment and :experiments",
      fix: "use :experiments (returning an experiment column) to read many experiments in one query, or :experiment for one at a time; not both",
      offset: 0,
    });
  }
  const required = (REQUIRED[field] ?? []).map((name) =>
    name === "experiment" && names.includes("experiments") ? "experiments" : name,
  );
  const missing = required.filter((name) => !names.includes(name));
  if (missing.length > 0) {
    throw sqlProblem(reader, field, sql, {
      problem: `the query does not use ${missing.map((m) => `:${m}`).join(" or ")}`,
      fix:
        field === "query"
          ? "filter on the experiment (WHERE experiment_key = :experiment, or IN (:experiments) to read many at once; see docs/connectors.md for your source's form) and read only what happened up to :to"
          : "read only the points up to :to (WHERE ts <= :to)",
      offset: 0,
    });
  }
  return parsed.statement;
}

/** An `invalid_config` error about the SQL in `field`, at a character offset into it. */
function sqlProblem(
  reader: ConfigReader,
  field: string,
  sql: string,
  refusal: { problem: string; fix: string; offset: number },
): ConnectorError {
  const { line, column } = lineColumn(sql, refusal.offset);
  return reader.invalid(`${field} (line ${line}, column ${column})`, refusal.problem, refusal.fix, {
    line,
    column,
    offset: refusal.offset,
    sqlField: field,
  });
}

/** One concurrency limit per source (type and location), shared by every connector reading it in this process. */
const limits = new Map<string, LimitFunction>();

function limitOf(key: string, concurrency: number): LimitFunction {
  let limit = limits.get(key);
  if (limit === undefined) {
    limit = pLimit(concurrency);
    limits.set(key, limit);
  } else if (limit.concurrency < concurrency) {
    // The most any connector of the source asked for wins.
    limit.concurrency = concurrency;
  }
  return limit;
}

class SqlSourceConnector implements SignalConnector {
  readonly type: string;
  private readonly settings: SqlCommonSettings;
  private readonly driver: SqlDriver;
  private readonly metricKind: "proportion" | "mean" | "ratio";
  private readonly limit: LimitFunction;
  private closed = false;

  constructor(
    type: string,
    settings: SqlCommonSettings,
    driver: SqlDriver,
    metricKind: "proportion" | "mean" | "ratio",
  ) {
    this.type = type;
    this.settings = settings;
    this.driver = driver;
    this.metricKind = metricKind;
    this.limit = limitOf(`${type} ${driver.location}`, settings.maxConcurrency);
  }

  describe(): string {
    const { timeoutMs, maxRows, maxConcurrency, seriesQuery } = this.settings;
    return `${this.type} ${this.driver.location}, timeout ${formatSeconds(timeoutMs / 1000)}, at most ${maxRows} rows, ${maxConcurrency} queries at once${this.batched ? ", batched" : ""}${seriesQuery === undefined ? "" : ", with a series query"}`;
  }

  private get batched(): boolean {
    return this.settings.query.names.includes("experiments");
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    if (this.batched) {
      const mine = (await this.batchRead(batchOfOne(window), signal)).get(window.experimentKey) ?? [];
      if (mine instanceof ConnectorError) throw mine;
      return mine;
    }
    const values = { experiment: window.experimentKey, arms: window.arms, from: window.from, to: window.to };
    const result = await this.run("query", this.settings.query, values, signal);
    return aggregatesOfRows(result, result.rows, window, this.metricKind, `${this.type} query`);
  }

  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    return this.batched ? (window, signal) => this.batchRead(window, signal) : undefined;
  }

  get estimateCost(): SignalConnector["estimateCost"] {
    const estimate = this.driver.estimateCost?.bind(this.driver);
    if (estimate === undefined) return undefined;
    return async (window, signal) => {
      if (this.closed) throw new Error(`${this.type} connector: used after close()`);
      const request = this.request("query", this.settings.query, this.valuesOf(window), signal);
      return this.limit(() => estimate(request));
    };
  }

  /** One query for every experiment of `window`, split by its `experiment` column (see `splitBatch`). */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    if (window.experiments.length === 0) return new Map();
    const values = this.valuesOf(window);
    assertWindow(values);
    const result = await this.run("query", this.settings.query, values, signal);
    return splitBatch(result, window, values.from, this.metricKind, `${this.type} query`);
  }

  /** The parameter values of a read of `window` in the query's form. */
  private valuesOf(window: BatchWindow): SqlParameterValues {
    const arms = [...new Set(window.experiments.flatMap((e) => e.arms))];
    const from = batchFrom(window);
    if (this.batched) return { experiments: window.experiments.map((e) => e.experimentKey), arms, from, to: window.to };
    return { experiment: window.experiments[0]?.experimentKey ?? "", arms, from, to: window.to };
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const statement = this.settings.seriesQuery;
    if (statement === undefined) {
      throw new ConnectorError(
        "unsupported",
        `${this.type} connector: no series_query; add a series_query returning ts, value to read the outcome's series`,
        { details: { field: "series_query" } },
      );
    }
    const result = await this.run("series_query", statement, { from: window.from, to: window.to }, signal);
    return seriesOfRows(result, window, `${this.type} series_query`);
  }

  async check(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new Error(`${this.type} connector: used after close()`);
    await this.driver.check?.(signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.driver.close();
  }

  private request(
    field: "query" | "series_query",
    statement: NamedStatement,
    values: SqlParameterValues,
    signal: AbortSignal | undefined,
  ): SqlRequest {
    return { field, statement, values, timeoutMs: this.settings.timeoutMs, maxRows: this.settings.maxRows, signal };
  }

  /**
   * Runs a read under the source's concurrency limit, retrying a throttled
   * (`rate_limited`) or unreachable (`unavailable`) source with exponential
   * backoff and jitter, waiting at least what the source asked for
   * (`retryAfterMs`). Other errors, and an abort, end it at once.
   */
  private async run(
    field: "query" | "series_query",
    statement: NamedStatement,
    values: SqlParameterValues,
    signal: AbortSignal | undefined,
  ): Promise<SqlRows> {
    if (this.closed) throw new Error(`${this.type} connector: used after close()`);
    const request = this.request(field, statement, values, signal);
    try {
      return await this.retried(request, signal);
    } catch (error) {
      if (error instanceof ConnectorError || signal?.aborted !== true) throw error;
      // Aborted while waiting for a retry or for a free slot of the source: the poll gave up.
      throw new ConnectorError(
        "timeout",
        `${this.type} ${field}: cancelled (the poll gave up) while waiting to retry`,
        {
          cause: error,
          details: { field },
        },
      );
    }
  }

  private retried(request: SqlRequest, signal: AbortSignal | undefined): Promise<SqlRows> {
    return pRetry(() => this.limit(() => this.driver.run(request)), {
      retries: this.settings.retries,
      minTimeout: FIRST_RETRY_WAIT_MS,
      maxTimeout: MAX_RETRY_WAIT_MS,
      factor: 2,
      randomize: true,
      ...(signal === undefined ? {} : { signal }),
      shouldRetry: ({ error }) =>
        error instanceof ConnectorError && (error.code === "rate_limited" || error.code === "unavailable"),
      onFailedAttempt: async ({ error, retriesLeft }) => {
        // The source's own wait (Retry-After), when longer than the backoff's.
        const wait = error instanceof ConnectorError ? (error.retryAfterMs ?? 0) : 0;
        if (retriesLeft > 0 && wait > FIRST_RETRY_WAIT_MS) {
          await sleep(Math.min(wait, MAX_RETRY_WAIT_MS), undefined, signal === undefined ? {} : { signal });
        }
      },
    });
  }
}
