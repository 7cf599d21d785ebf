/**
 * The demo's analytics as files instead of a database
 * (`pnpm demo --source duckdb`): the same checkpoints and simulated clock as
 * `createAppDatabase`, exported as Parquet into one directory and read by the
 * runtime's `duckdb` connector (embedded DuckDB, sandboxed to that
 * directory). The decisions are the same as on Postgres.
 *
 * - `asos_checkpoint.parquet`: every checkpoint of every metric, both arms,
 *   written once, typed as the Postgres table is (experiment_key VARCHAR,
 *   metric_id SMALLINT, ts TIMESTAMPTZ, arm VARCHAR, day DOUBLE, units
 *   BIGINT, sum DOUBLE, sum_sq DOUBLE);
 * - `demo_clock.parquet`: one row, `sim_now` TIMESTAMPTZ, rewritten at each
 *   tick of the clock.
 *
 * Both are written under another name and renamed into place: a rename
 * within a directory is atomic, so the worker, polling meanwhile, opens
 * either the previous file or the next one, never one half written.
 */
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { type DuckDBConnection, DuckDBInstance, timestampTZValue } from "@duckdb/node-api";
import type { AsosComparison } from "./asos";
import { simTime } from "./asos";

/** The connector's `tables`: the views its query reads, name → file under `base_dir`. */
export const DUCKDB_TABLES: Readonly<Record<"asos_checkpoint" | "demo_clock", string>> = Object.freeze({
  asos_checkpoint: "asos_checkpoint.parquet",
  demo_clock: "demo_clock.parquet",
});

/** The exported files: their directory, the clock, and the newest checkpoints. */
export interface DuckdbApp {
  /** The directory the files are in (absolute): what the worker's SOURCE_CSV_DIR names. */
  readonly dir: string;
  /** Moves the simulated clock to `day` days after SIM_EPOCH (rewrites demo_clock.parquet). */
  setClock(day: number): Promise<void>;
  /** Experiment key → the newest checkpoint of metric 1, in ms since the epoch. */
  newestCheckpoints(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

/** A SQL string literal. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Writes `file` in `dir` through `COPY (select) TO` a temporary name beside
 * it, then renames it into place (atomic on one file system).
 */
async function copyAtomically(connection: DuckDBConnection, select: string, dir: string, file: string): Promise<void> {
  const next = join(dir, `.${file}.next`);
  await connection.run(`COPY (${select}) TO ${literal(next)} (FORMAT parquet)`);
  await rename(next, join(dir, file));
}

/**
 * Empties (or creates) `dir`, writes every checkpoint of `comparisons` into
 * `asos_checkpoint.parquet` and starts the clock the day before any
 * checkpoint (day −1).
 *
 * @param dir an absolute directory, owned by the demo: its contents are replaced
 */
export async function createDuckdbAppFiles(dir: string, comparisons: readonly AsosComparison[]): Promise<DuckdbApp> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  try {
    await connection.run(
      `CREATE TABLE asos_checkpoint (
         experiment_key VARCHAR NOT NULL,
         metric_id SMALLINT NOT NULL,
         ts TIMESTAMPTZ NOT NULL,
         arm VARCHAR NOT NULL,
         day DOUBLE NOT NULL,
         units BIGINT NOT NULL,
         sum DOUBLE NOT NULL,
         sum_sq DOUBLE NOT NULL
       )`,
    );
    const appender = await connection.createAppender("asos_checkpoint");
    for (const comparison of comparisons) {
      for (const [metric, series] of Object.entries(comparison.metrics)) {
        for (const checkpoint of series) {
          // Whole milliseconds (days are multiples of 0.5), so exact in microseconds.
          const ts = timestampTZValue(BigInt(simTime(checkpoint.day).getTime()) * 1000n);
          for (const arm of ["control", "treatment"] as const) {
            const totals = checkpoint[arm];
            appender.appendVarchar(comparison.key);
            appender.appendSmallInt(Number(metric));
            appender.appendTimestampTZ(ts);
            appender.appendVarchar(arm);
            appender.appendDouble(checkpoint.day);
            appender.appendBigInt(BigInt(totals.units));
            appender.appendDouble(totals.sum);
            appender.appendDouble(totals.sum_sq);
            appender.endRow();
          }
        }
      }
    }
    appender.closeSync();
    // Sorted as the Postgres table's primary key, so each row group's statistics narrow a read to one experiment.
    await copyAtomically(
      connection,
      "SELECT * FROM asos_checkpoint ORDER BY experiment_key, metric_id, ts, arm",
      dir,
      DUCKDB_TABLES.asos_checkpoint,
    );
    await connection.run("DROP TABLE asos_checkpoint");
  } catch (error) {
    connection.closeSync();
    instance.closeSync();
    throw error;
  }

  const setClock = async (day: number): Promise<void> => {
    if (!Number.isFinite(day)) throw new Error(`setClock: day must be a finite number, got ${day}`);
    await copyAtomically(
      connection,
      `SELECT TIMESTAMPTZ ${literal(simTime(day).toISOString())} AS sim_now`,
      dir,
      DUCKDB_TABLES.demo_clock,
    );
  };
  await setClock(-1);
  return {
    dir,
    setClock,
    async newestCheckpoints() {
      const reader = await connection.runAndReadAll(
        `SELECT experiment_key, epoch_ms(max(ts)) AS ts
           FROM read_parquet(${literal(join(dir, DUCKDB_TABLES.asos_checkpoint))})
          WHERE metric_id = 1
          GROUP BY experiment_key`,
      );
      return new Map(reader.getRows().map(([key, ts]) => [String(key), Number(ts)]));
    },
    async close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/**
 * The `duckdb` connector's query for one metric: the same rows as
 * `connectorSql` on Postgres (every checkpoint with `:from < ts <=` the
 * simulated clock and `:to`, each an arm's cumulative totals, in time
 * order), over the views of `DUCKDB_TABLES`.
 */
export function duckdbConnectorSql(metricId: number): string {
  if (!Number.isInteger(metricId) || metricId < 1 || metricId > 4) {
    throw new Error(`duckdbConnectorSql: metric_id must be 1, 2, 3 or 4, got ${metricId}`);
  }
  return [
    "SELECT c.arm, CAST(c.units AS DOUBLE) AS units, c.sum, c.sum_sq, c.ts",
    "FROM asos_checkpoint c",
    `WHERE c.experiment_key = :experiment AND c.metric_id = ${metricId}`,
    "  AND c.ts > :from",
    "  AND c.ts <= (SELECT sim_now FROM demo_clock) AND c.ts <= :to",
    "ORDER BY c.ts, c.arm",
  ].join("\n");
}
