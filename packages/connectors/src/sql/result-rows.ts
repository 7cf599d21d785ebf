/**
 * From a SQL source's answer (column names and rows) to checked aggregates:
 * the columns named, the batched answer split by experiment, each
 * experiment's rows checked by the one set of boundary rules. Every SQL
 * connector (postgres, mysql, duckdb, bigquery, snowflake, clickhouse) reads
 * its rows through here.
 */
import { checkArmAggregates, checkSeries } from "../boundary-checks";
import { show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
} from "../connector";
import { ConnectorError } from "../connector-error";

/** A query's answer: column names, and rows of values as the driver gives them (numbers, bigints, decimal text, Dates, ISO text, null). */
export interface SqlRows {
  readonly fields: readonly string[];
  readonly rows: readonly (readonly unknown[])[];
}

const AGGREGATE_COLUMNS = ["arm", "units", "sum", "sum_sq"] as const;
/** The optional pre-exposure covariate (CUPED): all three or none. */
const COVARIATE_COLUMNS = ["cov_sum", "cov_sum_sq", "cov_sum_product"] as const;
/** A ratio metric's denominator: required for a ratio, refused (by the boundary check) for any other kind. */
const DENOMINATOR_COLUMNS = ["den_sum", "den_sum_sq", "num_den_sum"] as const;
const SERIES_COLUMNS = ["ts", "value"] as const;

/**
 * The checked aggregates of `rows` (rows of `result`) for one experiment.
 *
 * @param source names the query in messages, e.g. `mysql query`
 * @param at each row's place in the whole result (1-based positions in messages); default their index in `rows`
 * @throws ConnectorError `missing_columns`, `bad_response` (see `checkArmAggregates`)
 */
export function aggregatesOfRows(
  result: SqlRows,
  rows: readonly (readonly unknown[])[],
  window: ExperimentWindow,
  metricKind: "proportion" | "mean" | "ratio",
  source: string,
  at?: readonly number[],
): ArmAggregate[] {
  const index =
    metricKind === "ratio"
      ? columnIndex(
          result,
          source,
          [...AGGREGATE_COLUMNS, ...DENOMINATOR_COLUMNS],
          ["ts"],
          [...COVARIATE_COLUMNS, "experiment"],
        )
      : columnIndex(
          result,
          source,
          [...AGGREGATE_COLUMNS],
          ["ts"],
          [...COVARIATE_COLUMNS, ...DENOMINATOR_COLUMNS, "experiment"],
        );
  // An optional column the result lacks stays undefined: the boundary check names a partial set.
  const cell = (row: readonly unknown[], column: string): unknown => {
    const i = index[column];
    return i === undefined ? undefined : row[i];
  };
  const checked = rows.map((row, i) => ({
    arm: row[index.arm ?? -1],
    units: row[index.units ?? -1],
    sum: row[index.sum ?? -1],
    sum_sq: row[index.sum_sq ?? -1],
    ts: index.ts === undefined ? null : row[index.ts],
    cov_sum: cell(row, "cov_sum"),
    cov_sum_sq: cell(row, "cov_sum_sq"),
    cov_sum_product: cell(row, "cov_sum_product"),
    den_sum: cell(row, "den_sum"),
    den_sum_sq: cell(row, "den_sum_sq"),
    num_den_sum: cell(row, "num_den_sum"),
    location: `row ${(at?.[i] ?? i) + 1}`,
  }));
  return checkArmAggregates(checked, window, metricKind, source);
}

/**
 * A batched query's answer split by its `experiment` column. An
 * experiment's rows of an arm only another experiment of the batch has are
 * dropped (`:arms` asked for every arm of the batch), and each experiment's
 * rows are checked on their own: an error there concerns that experiment
 * only.
 *
 * @param from the batch's window start (the earliest `from`)
 * @param source names the query in messages, e.g. `bigquery query`
 * @throws ConnectorError `missing_columns` without an `experiment` column;
 *   `bad_response` when a row names no experiment or one outside the batch
 */
export function splitBatch(
  result: SqlRows,
  window: BatchWindow,
  from: Date,
  metricKind: "proportion" | "mean" | "ratio",
  source: string,
): BatchAggregates {
  const keys = window.experiments.map((e) => e.experimentKey);
  const column = result.fields.indexOf("experiment");
  if (column === -1) {
    throw new ConnectorError(
      "missing_columns",
      `${source}: the result has no "experiment" column (it has: ${result.fields.map((f) => `"${f}"`).join(", ") || "no columns"}); a query that uses :experiments returns each row's experiment key, e.g. SELECT experiment_key AS experiment, arm, ...`,
      { details: { field: "query", missing: ["experiment"], columns: [...result.fields] } },
    );
  }
  const rowsByKey = new Map<string, { row: readonly unknown[]; at: number }[]>(keys.map((k) => [k, []]));
  for (const [i, row] of result.rows.entries()) {
    const key = row[column];
    const mine = typeof key === "string" ? rowsByKey.get(key) : undefined;
    if (mine === undefined) {
      throw new ConnectorError(
        "bad_response",
        `${source}, row ${i + 1}, column experiment: ${show(key)} is not one of the ${keys.length} experiments asked for; filter on :experiments and return that key as experiment`,
        { details: { field: "experiment", value: key, row: i + 1 } },
      );
    }
    mine.push({ row, at: i });
  }
  const answer: BatchAggregates = new Map();
  const armIndex = result.fields.indexOf("arm");
  const arms = new Set(window.experiments.flatMap((x) => x.arms));
  for (const e of window.experiments) {
    const mine = (rowsByKey.get(e.experimentKey) ?? []).filter((r) => {
      const arm = r.row[armIndex];
      return !(typeof arm === "string" && arms.has(arm) && !e.arms.includes(arm));
    });
    try {
      answer.set(
        e.experimentKey,
        aggregatesOfRows(
          result,
          mine.map((r) => r.row),
          { experimentKey: e.experimentKey, arms: e.arms, from, to: window.to },
          metricKind,
          source,
          mine.map((r) => r.at),
        ),
      );
    } catch (error) {
      if (!(error instanceof ConnectorError)) throw error;
      answer.set(e.experimentKey, error);
    }
  }
  return answer;
}

/**
 * The checked series points of a series query's answer.
 *
 * @throws ConnectorError `missing_columns`, `bad_response` (see `checkSeries`)
 */
export function seriesOfRows(result: SqlRows, window: SeriesWindow, source: string): SeriesPoint[] {
  const index = columnIndex(result, source, [...SERIES_COLUMNS], []);
  const rows = result.rows.map((row, i) => ({
    ts: row[index.ts ?? -1],
    value: row[index.value ?? -1],
    location: `row ${i + 1}`,
  }));
  return checkSeries(rows, window, source);
}

/** The one batch window of one experiment's window. */
export function batchOfOne(window: ExperimentWindow): BatchWindow {
  return {
    experiments: [{ experimentKey: window.experimentKey, arms: window.arms, from: window.from }],
    to: window.to,
  };
}

/** The earliest `from` of a batch. */
export function batchFrom(window: BatchWindow): Date {
  return new Date(Math.min(...window.experiments.map((e) => e.from.getTime())));
}

/** Column name → index, or `missing_columns` naming what is missing. */
function columnIndex(
  result: SqlRows,
  source: string,
  required: readonly string[],
  optional: readonly string[],
  /** Optional columns the missing-columns message leaves out (the covariate's and, but for a ratio, the denominator's). */
  unlisted: readonly string[] = [],
): Record<string, number | undefined> {
  const field = source.split(" ").at(-1) ?? "query";
  const counts = new Map<string, number>();
  for (const name of result.fields) counts.set(name, (counts.get(name) ?? 0) + 1);
  const known = [...required, ...optional, ...unlisted];
  const duplicated = [...counts].filter(([name, count]) => count > 1 && known.includes(name));
  if (duplicated.length > 0) {
    throw new ConnectorError(
      "bad_response",
      `${source}: the column ${duplicated.map(([name]) => `"${name}"`).join(", ")} appears more than once; give each column one name with AS`,
      { details: { field, columns: [...result.fields] } },
    );
  }
  const missing = required.filter((name) => !counts.has(name));
  if (missing.length > 0) {
    throw new ConnectorError(
      "missing_columns",
      `${source}: the result has no ${missing.map((m) => `"${m}"`).join(", ")} column (it has: ${result.fields.map((f) => `"${f}"`).join(", ") || "no columns"}); return ${required.join(", ")}${optional.length > 0 ? ` (and optionally ${optional.join(", ")})` : ""}, naming each column with AS, e.g. count(*) AS ${missing[0]}`,
      { details: { field, missing, columns: [...result.fields] } },
    );
  }
  const index: Record<string, number | undefined> = {};
  for (const name of known) {
    const i = result.fields.indexOf(name);
    index[name] = i === -1 ? undefined : i;
  }
  return index;
}
