/**
 * `postgres`: the user's own SQL, with named parameters, on the user's own
 * database. See docs/connectors.md for how to write the queries.
 */
import { assertWindow, checkArmAggregates, checkSeries } from "../boundary-checks";
import { ConfigReader, formatSeconds, requireEnv } from "../config-reader";
import type {
  ArmAggregate,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { acquirePool, type QueryRows, releasePool, runReadOnly } from "./read-only-query";
import { type ParameterDefinition, type PreparedStatement, prepareStatement, READ_KINDS } from "./sql-statement";

/** Parameters of `query`: `:experiment_key` and `:until` are the older names of `:experiment` and `:to`. */
export const EXPERIMENT_PARAMETERS: Readonly<Record<string, ParameterDefinition>> = Object.freeze({
  experiment: { canonical: "experiment", sqlType: "text" },
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

const FIELDS = ["query", "series_query", "database_url_env", "timeout", "max_rows"] as const;
const AGGREGATE_COLUMNS = ["arm", "units", "sum", "sum_sq"] as const;
const SERIES_COLUMNS = ["ts", "value"] as const;

/** Default statement timeout, in seconds. */
const DEFAULT_POSTGRES_TIMEOUT_SECONDS = 30;
/** Default row cap. */
const DEFAULT_MAX_ROWS = 10_000;

/**
 * Creates a `postgres` connector. Checks the settings and the SQL (named
 * parameters, a single statement) now; connects on the first poll.
 *
 * @throws ConnectorError `invalid_config`
 */
export function createPostgresConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  const reader = new ConfigReader(config, FIELDS);
  const query = prepare(reader, "query", EXPERIMENT_PARAMETERS);
  const seriesQuery = reader.has("series_query") ? prepare(reader, "series_query", SERIES_PARAMETERS) : undefined;
  const envName = reader.envName("database_url_env");
  let url: string;
  if (envName !== undefined) {
    url = requireEnv(reader, context.env, "database_url_env", envName, "the connection string (postgres://...)");
  } else if (context.defaultDatabaseUrl !== undefined && context.defaultDatabaseUrl !== "") {
    url = context.defaultDatabaseUrl;
  } else {
    throw reader.invalid(
      "database_url_env",
      "is not set, and there is no default database",
      "set database_url_env to the name of an environment variable holding the connection string",
    );
  }
  const timeoutSeconds = reader.durationSeconds("timeout", DEFAULT_POSTGRES_TIMEOUT_SECONDS);
  const maxRows = reader.integer("max_rows", DEFAULT_MAX_ROWS, 1, 1_000_000);
  return new PostgresConnector({
    url,
    source: envName ?? "the runtime's database",
    query,
    seriesQuery,
    timeoutMs: timeoutSeconds * 1000,
    maxRows,
    metricKind: context.metricKind,
  });
}

function prepare(
  reader: ConfigReader,
  field: string,
  parameters: Readonly<Record<string, ParameterDefinition>>,
): PreparedStatement {
  const sql = reader.string(field, "write the SQL query (see docs/connectors.md)");
  const result = prepareStatement(sql, parameters);
  if (!result.ok) {
    throw reader.invalid(`${field} (line ${result.line}, column ${result.column})`, result.problem, result.fix, {
      line: result.line,
      column: result.column,
    });
  }
  return result;
}

interface PostgresSettings {
  url: string;
  /** Where the URL came from, for describe(): the env var name, never the value. */
  source: string;
  query: PreparedStatement;
  seriesQuery: PreparedStatement | undefined;
  timeoutMs: number;
  maxRows: number;
  metricKind: "proportion" | "mean";
}

class PostgresConnector implements SignalConnector {
  readonly type = "postgres";
  private readonly settings: PostgresSettings;
  private pool: ReturnType<typeof acquirePool> | undefined;
  private closed = false;

  constructor(settings: PostgresSettings) {
    this.settings = settings;
  }

  describe(): string {
    const { source, timeoutMs, maxRows } = this.settings;
    return `postgres ${safeLocation(this.settings.url)} (${source}), timeout ${formatSeconds(timeoutMs / 1000)}, at most ${maxRows} rows${this.settings.seriesQuery === undefined ? "" : ", with a series query"}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const values: Record<string, string> = {
      experiment: window.experimentKey,
      arms: textArray(window.arms),
      from: window.from.toISOString(),
      to: window.to.toISOString(),
    };
    const result = await this.run("query", this.settings.query, values, signal);
    const index = columnIndex(result, "query", [...AGGREGATE_COLUMNS], ["ts"]);
    const rows = result.rows.map((row, i) => ({
      arm: row[index.arm ?? -1],
      units: row[index.units ?? -1],
      sum: row[index.sum ?? -1],
      sum_sq: row[index.sum_sq ?? -1],
      ts: index.ts === undefined ? null : row[index.ts],
      location: `row ${i + 1}`,
    }));
    return checkArmAggregates(rows, window, this.settings.metricKind, "postgres query");
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
    const index = columnIndex(result, "series_query", [...SERIES_COLUMNS], []);
    const rows = result.rows.map((row, i) => ({
      ts: row[index.ts ?? -1],
      value: row[index.value ?? -1],
      location: `row ${i + 1}`,
    }));
    return checkSeries(rows, window, "postgres series_query");
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
    if (!READ_KINDS.includes(statement.kind)) {
      // Refused here, never sent: only a query that reads may run.
      throw new ConnectorError(
        "read_only_violation",
        `postgres ${field}: ${/^[aeiou]/iu.test(statement.kind) ? "an" : "a"} ${statement.kind.toUpperCase()} statement was refused and not run; the connector only reads: write a SELECT (or WITH ... SELECT, VALUES, TABLE)`,
        { details: { field, statement: statement.kind } },
      );
    }
    this.pool ??= acquirePool(this.settings.url);
    return runReadOnly(
      this.pool,
      statement.text,
      statement.parameters.map((name) => values[name] ?? null),
      { timeoutMs: this.settings.timeoutMs, maxRows: this.settings.maxRows, signal, field },
    );
  }
}

/** Column name → index, or `missing_columns` naming what is missing. */
function columnIndex(
  result: QueryRows,
  field: string,
  required: readonly string[],
  optional: readonly string[],
): Record<string, number | undefined> {
  const counts = new Map<string, number>();
  for (const name of result.fields) counts.set(name, (counts.get(name) ?? 0) + 1);
  const duplicated = [...counts].filter(([name, count]) => count > 1 && [...required, ...optional].includes(name));
  if (duplicated.length > 0) {
    throw new ConnectorError(
      "bad_response",
      `postgres ${field}: the column ${duplicated.map(([name]) => `"${name}"`).join(", ")} appears more than once; give each column one name with AS`,
      { details: { field, columns: result.fields } },
    );
  }
  const missing = required.filter((name) => !counts.has(name));
  if (missing.length > 0) {
    throw new ConnectorError(
      "missing_columns",
      `postgres ${field}: the result has no ${missing.map((m) => `"${m}"`).join(", ")} column (it has: ${result.fields.map((f) => `"${f}"`).join(", ") || "no columns"}); return ${required.join(", ")}${optional.length > 0 ? ` (and optionally ${optional.join(", ")})` : ""}, naming each column with AS, e.g. count(*) AS ${missing[0]}`,
      { details: { field, missing, columns: result.fields } },
    );
  }
  const index: Record<string, number | undefined> = {};
  for (const name of [...required, ...optional]) {
    const i = result.fields.indexOf(name);
    index[name] = i === -1 ? undefined : i;
  }
  return index;
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
