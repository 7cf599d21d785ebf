/**
 * The ASOS Digital Experiments Dataset (Liu, Cardoso, Couturier & McCoy,
 * NeurIPS 2021 Datasets and Benchmarks, arXiv:2111.10198, CC BY 4.0; see
 * data/asos/README.md) as the demo's "app" database.
 *
 * `loadAsos` reads and validates the CSV and turns every checkpoint into
 * per-arm sufficient statistics `(units, sum, sum_sq)`. `createAppDatabase`
 * writes them into a database of their own, standing in for the analytics
 * database of a team that runs experiments; `setClock` moves that database's
 * simulated clock; `connectorSql` is the query the runtime's `postgres`
 * connector runs against it, which sees only the checkpoints up to the clock.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { readerOf } from "@outcome-runtime/testing/read-only-role";
import { parse } from "csv-parse/sync";
// biome-ignore lint/style/noRestrictedImports: this module plays the customer's own application writing its own analytics database, which is not the runtime's storage (packages/db)
import pg from "pg";

/** Absolute path of the dataset's CSV, copied unchanged into data/asos. */
export const ASOS_CSV: string = fileURLToPath(
  new URL("../../data/asos/asos_digital_experiments_dataset.csv", import.meta.url),
);

/** Simulated day 0 of every experiment: checkpoint `day` is at `SIM_EPOCH + day` days. */
export const SIM_EPOCH: Date = new Date("2026-01-05T00:00:00Z");

const DAY_MS = 86_400_000;

/** Cumulative totals of one arm: units so far, Σx and Σx² over them. */
export interface ArmTotals {
  units: number;
  sum: number;
  sum_sq: number;
}

export interface AsosCheckpoint {
  /** `time_since_start` in days, a multiple of 0.5. */
  day: number;
  control: ArmTotals;
  treatment: ArmTotals;
}

/** One treatment arm of one experiment against that experiment's control. */
export interface AsosComparison {
  /** `asos-<experiment_id>-v<variant_id>`, lowercase: the runtime's experiment key. */
  key: string;
  experimentId: string;
  variantId: number;
  /** First and last usable checkpoint day over all metrics. */
  firstDay: number;
  lastDay: number;
  /** The traffic split to declare, fractions summing to 1 (see `declaredWeights`). */
  weights: { control: number; treatment: number };
  /** By metric_id (1–4): usable checkpoints in day order. */
  metrics: Record<number, AsosCheckpoint[]>;
}

export interface AsosLoad {
  comparisons: AsosComparison[];
  /** Data rows read (header excluded). */
  rows: number;
  /** Rows left out of a metric's series, by reason. */
  skipped: { reason: string; count: number }[];
}

/** The columns of the published CSV, in order. */
export const ASOS_COLUMNS = [
  "experiment_id",
  "variant_id",
  "metric_id",
  "time_since_start",
  "count_c",
  "count_t",
  "mean_c",
  "mean_t",
  "variance_c",
  "variance_t",
] as const;

type Column = (typeof ASOS_COLUMNS)[number];

/** Reasons a row is left out of its metric's series. */
export const SKIP_ZERO_COUNT = "count of 0 in an arm";
export const SKIP_MISSING_VARIANCE = "variance missing (metrics 2–4)";

/** A CSV that does not have the dataset's shape: names the file, line, column and value. */
export class AsosCsvError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    readonly column: string | null,
    readonly value: string | null,
    detail: string,
  ) {
    super(
      `${source}:${line}: ${column === null ? "" : `column ${column}: `}${value === null ? "" : `${JSON.stringify(value)}: `}${detail}`,
    );
    this.name = "AsosCsvError";
  }
}

/**
 * Read, validate and convert the dataset.
 *
 * @param csvPath the CSV (default `ASOS_CSV`)
 * @throws AsosCsvError when the file does not have the dataset's columns or a
 *   value is not of its column's type
 */
export async function loadAsos(csvPath: string = ASOS_CSV): Promise<AsosLoad> {
  return parseAsos(await readFile(csvPath, "utf8"), csvPath);
}

/**
 * Sufficient statistics of one arm from the published `(count, mean, variance)`.
 *
 * - `sum = mean · count`.
 * - Metric 1 (binary): `variance` is exactly `mean·(1−mean)` on every row of
 *   the file, the population (divide-by-n) variance of a 0/1 response, and
 *   `mean·count` is a whole number to within 5e-10. So `sum = sum_sq =
 *   round(mean·count)` (for 0/1 responses x² = x); the variance is not needed.
 * - Metrics 2–4: the dataset's schema calls `variance` "the sample variance"
 *   without saying which divisor. We assume the population form
 *   `sum_sq = variance·count + count·mean²` for these too: all four metrics
 *   come from the same pipeline at the same checkpoints with the same counts,
 *   and metric 1 shows that pipeline divides by n. Had it divided by n − 1, the
 *   difference in `sum_sq` would be `variance` alone, a relative error of
 *   1/count in the variance: under 0.6 % at the smallest count in the file
 *   (175) and under 1e-5 at the median checkpoint.
 */
export function armTotals(metricId: number, count: number, mean: number, variance: number | null): ArmTotals {
  if (metricId === 1) {
    const successes = Math.round(mean * count);
    return { units: count, sum: successes, sum_sq: successes };
  }
  if (variance === null) throw new Error(`armTotals: metric ${metricId} needs a variance`);
  return { units: count, sum: mean * count, sum_sq: variance * count + count * mean * mean };
}

/**
 * The traffic split to declare for a comparison. The dataset does not publish
 * the configured split, so we declare the split observed at the last
 * checkpoint, `count_t / (count_c + count_t)`, rounded to the nearest whole
 * percent: the sample-ratio-mismatch check then looks for drift away from the
 * split the experiment ended with, not for a mismatch with an unknown design.
 */
export function declaredWeights(last: AsosCheckpoint): { control: number; treatment: number } {
  const percent = Math.round((100 * last.treatment.units) / (last.control.units + last.treatment.units));
  // (100 − p)/100 + p/100 is exactly 1 in doubles for every whole p in 0..100.
  return { control: (100 - percent) / 100, treatment: percent / 100 };
}

/** The runtime's experiment key of a comparison. */
function comparisonKey(experimentId: string, variantId: number): string {
  return `asos-${experimentId.toLowerCase()}-v${variantId}`;
}

interface Row {
  line: number;
  experimentId: string;
  variantId: number;
  metricId: number;
  day: number;
  count: { c: number; t: number };
  mean: { c: number; t: number };
  variance: { c: number | null; t: number | null };
}

/** A csv-parse record with `info: true`: the fields and the line the record ends on (1-based). */
interface CsvRecord {
  record: string[];
  info: { lines: number };
}

/**
 * Parse the dataset's CSV text (see `loadAsos`). `source` names the file in
 * errors.
 */
export function parseAsos(text: string, source = "asos.csv"): AsosLoad {
  let records: CsvRecord[];
  try {
    // With `info`, each record comes as { record, info } (csv-parse's typings only model plain arrays here).
    records = parse(text, {
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
    }) as unknown as CsvRecord[];
  } catch (error) {
    const lines = (error as { lines?: unknown }).lines;
    throw new AsosCsvError(source, typeof lines === "number" ? lines : 0, null, null, (error as Error).message);
  }
  const header = records[0];
  if (header === undefined) throw new AsosCsvError(source, 1, null, null, "the file is empty");
  const index = headerIndex(header.record, source, header.info.lines);

  const rows: Row[] = [];
  for (const { record, info } of records.slice(1)) {
    if (record.length !== header.record.length) {
      throw new AsosCsvError(
        source,
        info.lines,
        null,
        null,
        `${record.length} fields where the header has ${header.record.length}`,
      );
    }
    rows.push(readRow(record, index, source, info.lines));
  }
  return assemble(rows, source);
}

function headerIndex(header: string[], source: string, line: number): Record<Column, number> {
  const index = {} as Record<Column, number>;
  for (const column of ASOS_COLUMNS) {
    const at = header.indexOf(column);
    if (at === -1) throw new AsosCsvError(source, line, column, null, "column missing from the header");
    index[column] = at;
  }
  return index;
}

function readRow(record: string[], index: Record<Column, number>, source: string, line: number): Row {
  const field = (column: Column): string => record[index[column]] ?? "";
  const fail = (column: Column, detail: string): never => {
    throw new AsosCsvError(source, line, column, field(column), detail);
  };
  const number = (column: Column): number => {
    const raw = field(column);
    const value = raw === "" ? Number.NaN : Number(raw);
    if (!Number.isFinite(value)) fail(column, raw === "" ? "missing; expected a number" : "not a number");
    return value;
  };
  const whole = (column: Column, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const value = number(column);
    // Counts are stored as doubles ("188065.0"); they must still be whole.
    if (Math.abs(value - Math.round(value)) > 1e-6 || value < min || value > max) {
      fail(column, `expected a whole number${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` in ${min}..${max}`}`);
    }
    return Math.round(value);
  };
  const optional = (column: Column): number | null => {
    if (field(column) === "") return null;
    const value = number(column);
    if (value < 0) fail(column, "a variance cannot be negative");
    return value;
  };

  const experimentId = field("experiment_id");
  if (!/^[A-Za-z0-9]+$/.test(experimentId)) fail("experiment_id", "expected letters and digits");
  const metricId = whole("metric_id", 1, 4);
  // time_since_start carries float noise (1.5000000000000002); checkpoints are 12 h apart.
  const rawDay = number("time_since_start");
  const day = Math.round(rawDay * 2) / 2;
  if (rawDay < 0 || Math.abs(rawDay - day) > 1e-6) fail("time_since_start", "expected a multiple of 0.5 days ≥ 0");
  const mean = { c: number("mean_c"), t: number("mean_t") };
  if (metricId === 1) {
    for (const column of ["mean_c", "mean_t"] as const) {
      const value = column === "mean_c" ? mean.c : mean.t;
      if (value < 0 || value > 1) fail(column, "metric 1 is binary: expected a proportion in [0, 1]");
    }
  }
  return {
    line,
    experimentId,
    variantId: whole("variant_id", 0),
    metricId,
    day,
    count: { c: whole("count_c", 0), t: whole("count_t", 0) },
    mean,
    variance: { c: optional("variance_c"), t: optional("variance_t") },
  };
}

function assemble(rows: Row[], source: string): AsosLoad {
  const skipped = new Map<string, number>([
    [SKIP_ZERO_COUNT, 0],
    [SKIP_MISSING_VARIANCE, 0],
  ]);
  const skip = (reason: string) => skipped.set(reason, (skipped.get(reason) ?? 0) + 1);

  const groups = new Map<
    string,
    { experimentId: string; variantId: number; metrics: Record<number, AsosCheckpoint[]> }
  >();
  const seen = new Map<string, number>();
  for (const row of rows) {
    const key = comparisonKey(row.experimentId, row.variantId);
    const at = `${key} metric ${row.metricId} day ${row.day}`;
    const previous = seen.get(at);
    if (previous !== undefined) {
      throw new AsosCsvError(
        source,
        row.line,
        "time_since_start",
        String(row.day),
        `duplicates line ${previous} (${at})`,
      );
    }
    seen.set(at, row.line);

    let group = groups.get(key);
    if (group === undefined) {
      group = { experimentId: row.experimentId, variantId: row.variantId, metrics: {} };
      groups.set(key, group);
    } else if (group.experimentId !== row.experimentId) {
      throw new AsosCsvError(
        source,
        row.line,
        "experiment_id",
        row.experimentId,
        `differs from "${group.experimentId}" only in case`,
      );
    }

    if (row.count.c === 0 || row.count.t === 0) {
      skip(SKIP_ZERO_COUNT);
      continue;
    }
    if (row.metricId !== 1 && (row.variance.c === null || row.variance.t === null)) {
      skip(SKIP_MISSING_VARIANCE);
      continue;
    }
    const series = group.metrics[row.metricId] ?? [];
    group.metrics[row.metricId] = series;
    series.push({
      day: row.day,
      control: armTotals(row.metricId, row.count.c, row.mean.c, row.variance.c),
      treatment: armTotals(row.metricId, row.count.t, row.mean.t, row.variance.t),
    });
  }

  const comparisons: AsosComparison[] = [];
  for (const [key, group] of groups) {
    const all = Object.values(group.metrics);
    for (const series of all) series.sort((a, b) => a.day - b.day);
    const days = all.flatMap((series) => series.map((checkpoint) => checkpoint.day));
    if (days.length === 0) continue; // nothing usable in any metric
    // Every metric has the same counts at a checkpoint; prefer metric 1, the demo's signal.
    const reference = group.metrics[1] ?? all.reduce((a, b) => (a.at(-1)!.day >= b.at(-1)!.day ? a : b));
    comparisons.push({
      key,
      experimentId: group.experimentId,
      variantId: group.variantId,
      firstDay: Math.min(...days),
      lastDay: Math.max(...days),
      weights: declaredWeights(reference.at(-1)!),
      metrics: group.metrics,
    });
  }
  comparisons.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    comparisons,
    rows: rows.length,
    skipped: [...skipped].map(([reason, count]) => ({ reason, count })),
  };
}

// ── The app database ────────────────────────────────────────────────────────

/** Simulated timestamp of a checkpoint day. */
export function simTime(day: number): Date {
  return new Date(SIM_EPOCH.getTime() + day * DAY_MS);
}

function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const pools = new Map<string, pg.Pool>();

function poolFor(url: string): pg.Pool {
  let pool = pools.get(url);
  if (pool === undefined) {
    pool = new pg.Pool({ connectionString: url, max: 2, application_name: "outcome-runtime-demo" });
    // An idle client losing its connection must not crash the demo; the next query reconnects.
    pool.on("error", () => {});
    pools.set(url, pool);
  }
  return pool;
}

/** Close the pools `setClock` opened. */
export async function closeAppPools(): Promise<void> {
  const open = [...pools.values()];
  pools.clear();
  await Promise.all(open.map((pool) => pool.end()));
}

const SCHEMA = `
CREATE TABLE demo_clock (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  sim_now timestamptz NOT NULL
);
CREATE TABLE asos_checkpoint (
  experiment_key text NOT NULL,
  metric_id smallint NOT NULL CHECK (metric_id BETWEEN 1 AND 4),
  ts timestamptz NOT NULL,
  arm text NOT NULL CHECK (arm IN ('control', 'treatment')),
  day double precision NOT NULL,
  units bigint NOT NULL CHECK (units > 0),
  sum double precision NOT NULL,
  sum_sq double precision NOT NULL,
  -- Serves WHERE experiment_key = $1 AND metric_id = $2 AND ts > $3 as one index range scan.
  PRIMARY KEY (experiment_key, metric_id, ts, arm)
);
`;

const INSERT = `
INSERT INTO asos_checkpoint (experiment_key, metric_id, ts, arm, day, units, sum, sum_sq)
SELECT * FROM unnest($1::text[], $2::smallint[], $3::timestamptz[], $4::text[], $5::float8[], $6::int8[], $7::float8[], $8::float8[])
`;

const BATCH = 5_000;

/**
 * Drop and re-create database `name` on the server of `adminUrl`, create the
 * tables and load every checkpoint of every metric of `comparisons`, both
 * arms. The clock starts at `SIM_EPOCH` (day 0), before any checkpoint.
 *
 * The runtime reads it as a team's analytics database should be read: through
 * the read-only role of docs/connectors.md (`outcome_runtime_reader`, created
 * here when the server has none), never as the admin.
 *
 * @param adminUrl a postgres:// URL to any database on the server (not `name`)
 * @param name the app database: lowercase letters, digits and `_`
 * @returns the app database's URL as the admin (to move the clock) and as the read-only role (for the connector)
 */
export async function createAppDatabase(
  adminUrl: string,
  name: string,
  comparisons: AsosComparison[],
): Promise<{ url: string; readerUrl: string }> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`createAppDatabase: "${name}" is not a plain database name (lowercase letters, digits, _)`);
  }
  const appUrl = databaseUrl(adminUrl, name);
  // The re-created database invalidates any pooled connection to the old one.
  const stale = pools.get(appUrl);
  if (stale !== undefined) {
    pools.delete(appUrl);
    await stale.end();
  }

  const admin = new pg.Client({ connectionString: adminUrl, application_name: "outcome-runtime-demo" });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }

  const app = new pg.Client({ connectionString: appUrl, application_name: "outcome-runtime-demo" });
  await app.connect();
  try {
    await app.query("BEGIN");
    await app.query(SCHEMA);
    await app.query("INSERT INTO demo_clock (sim_now) VALUES ($1)", [SIM_EPOCH]);
    const columns: [string[], number[], Date[], string[], number[], number[], number[], number[]] = [
      [],
      [],
      [],
      [],
      [],
      [],
      [],
      [],
    ];
    const flush = async () => {
      if (columns[0].length === 0) return;
      await app.query(INSERT, columns);
      for (const column of columns) column.length = 0;
    };
    for (const comparison of comparisons) {
      for (const [metric, series] of Object.entries(comparison.metrics)) {
        for (const checkpoint of series) {
          for (const arm of ["control", "treatment"] as const) {
            const totals = checkpoint[arm];
            columns[0].push(comparison.key);
            columns[1].push(Number(metric));
            columns[2].push(simTime(checkpoint.day));
            columns[3].push(arm);
            columns[4].push(checkpoint.day);
            columns[5].push(totals.units);
            columns[6].push(totals.sum);
            columns[7].push(totals.sum_sq);
          }
          if (columns[0].length >= BATCH) await flush();
        }
      }
    }
    await flush();
    await app.query("COMMIT");
    await app.query("ANALYZE");
  } catch (error) {
    await app.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await app.end();
  }
  return { url: appUrl, readerUrl: await readerOf(appUrl) };
}

/** Move the app database's simulated clock to `day` days after `SIM_EPOCH`. */
export async function setClock(appUrl: string, day: number): Promise<void> {
  if (!Number.isFinite(day)) throw new Error(`setClock: day must be a finite number, got ${day}`);
  await poolFor(appUrl).query("UPDATE demo_clock SET sim_now = $1", [simTime(day)]);
}

/**
 * The query of the runtime's `postgres` connector for one metric. Named
 * parameters: `:experiment` (the comparison's key) and `:from` (timestamptz,
 * exclusive). Returns `arm` ('control' | 'treatment'), `units`, `sum`,
 * `sum_sq`, `ts` for every checkpoint with `:from < ts <= ` the simulated
 * clock, in time order; each row is the arm's cumulative totals as of `ts`.
 *
 * `units` is cast to double precision so every driver hands back a plain
 * number (a bigint comes back from `pg` as a string); counts here stay far
 * below 2^53. The SQL has no `::` casts, so a named-parameter rewrite that
 * looks for `:name` cannot mistake a cast for a parameter.
 */
export function connectorSql(metricId: number): string {
  if (!Number.isInteger(metricId) || metricId < 1 || metricId > 4) {
    throw new Error(`connectorSql: metric_id must be 1, 2, 3 or 4, got ${metricId}`);
  }
  return [
    "SELECT c.arm, CAST(c.units AS double precision) AS units, c.sum, c.sum_sq, c.ts",
    "FROM asos_checkpoint c",
    `WHERE c.experiment_key = :experiment AND c.metric_id = ${metricId}`,
    "  AND c.ts > COALESCE(CAST(:from AS timestamptz), '-infinity')",
    "  AND c.ts <= (SELECT sim_now FROM demo_clock) AND c.ts <= :to",
    "ORDER BY c.ts, c.arm",
  ].join("\n");
}
