/**
 * The demo's app database on MariaDB (or MySQL) instead of Postgres
 * (`pnpm demo --source mariadb`): the same checkpoints and simulated clock
 * as `createAppDatabase`, read by the runtime's `mysql` connector through an
 * account granted SELECT only. The decisions are the same as on Postgres.
 */
import mysql from "mysql2/promise";
import type { AsosComparison } from "./asos";
import { simTime } from "./asos";

/** The read-only account the runtime reads the app database as. */
const READER = "outcome_runtime_reader";
const READER_PASSWORD = "outcome-runtime-reader";
const BATCH = 2_000;

/** The app database on MariaDB: its reader URL, its clock, and its newest checkpoints. */
export interface MariadbApp {
  /** As the read-only account: what the connector is given. */
  readonly readerUrl: string;
  /** Moves the simulated clock to `day` days after SIM_EPOCH. */
  setClock(day: number): Promise<void>;
  /** Experiment key → the newest checkpoint of metric 1, in ms since the epoch. */
  newestCheckpoints(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

/**
 * Drops and re-creates database `name` on the MariaDB server of `serverUrl`
 * (`mysql://root@127.0.0.1:3306`), loads every checkpoint of `comparisons`
 * and grants the reader account SELECT on it.
 */
export async function createMariadbAppDatabase(
  serverUrl: string,
  name: string,
  comparisons: readonly AsosComparison[],
): Promise<MariadbApp> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/u.test(name))
    throw new Error(`createMariadbAppDatabase: "${name}" is not a plain name`);
  const root = await mysql.createConnection({ uri: serverUrl, timezone: "Z" });
  try {
    await root.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await root.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    for (const host of ["localhost", "127.0.0.1"]) {
      await root.query(`CREATE USER IF NOT EXISTS '${READER}'@'${host}' IDENTIFIED BY '${READER_PASSWORD}'`);
      await root.query(`GRANT SELECT ON \`${name}\`.* TO '${READER}'@'${host}'`);
    }
  } finally {
    await root.end();
  }
  const appUrl = new URL(serverUrl);
  appUrl.pathname = `/${name}`;
  const pool = mysql.createPool({ uri: appUrl.toString(), connectionLimit: 2, timezone: "Z" });
  await pool.query("CREATE TABLE demo_clock (id TINYINT PRIMARY KEY, sim_now DATETIME(3) NOT NULL)");
  await pool.query(
    `CREATE TABLE asos_checkpoint (
       experiment_key VARCHAR(100) NOT NULL,
       metric_id TINYINT NOT NULL,
       ts DATETIME(3) NOT NULL,
       arm VARCHAR(20) NOT NULL,
       day DOUBLE NOT NULL,
       units BIGINT NOT NULL,
       \`sum\` DOUBLE NOT NULL,
       sum_sq DOUBLE NOT NULL,
       PRIMARY KEY (experiment_key, metric_id, ts, arm)
     )`,
  );
  await pool.query("INSERT INTO demo_clock VALUES (1, ?)", [simTime(-1)]);
  let rows: unknown[][] = [];
  const flush = async () => {
    if (rows.length === 0) return;
    await pool.query("INSERT INTO asos_checkpoint VALUES ?", [rows]);
    rows = [];
  };
  for (const comparison of comparisons) {
    for (const [metric, series] of Object.entries(comparison.metrics)) {
      for (const checkpoint of series) {
        for (const arm of ["control", "treatment"] as const) {
          const t = checkpoint[arm];
          rows.push([
            comparison.key,
            Number(metric),
            simTime(checkpoint.day),
            arm,
            checkpoint.day,
            t.units,
            t.sum,
            t.sum_sq,
          ]);
        }
        if (rows.length >= BATCH) await flush();
      }
    }
  }
  await flush();
  const reader = new URL(appUrl);
  reader.username = READER;
  reader.password = READER_PASSWORD;
  return {
    readerUrl: reader.toString(),
    async setClock(day) {
      await pool.query("UPDATE demo_clock SET sim_now = ?", [simTime(day)]);
    },
    async newestCheckpoints() {
      const [newest] = await pool.query<mysql.RowDataPacket[]>(
        "SELECT experiment_key, MAX(ts) AS ts FROM asos_checkpoint WHERE metric_id = 1 GROUP BY experiment_key",
      );
      return new Map(newest.map((r) => [String(r.experiment_key), (r.ts as Date).getTime()]));
    },
    async close() {
      await pool.end();
    },
  };
}

/**
 * The `mysql` connector's query for one metric: the same rows as
 * `connectorSql` on Postgres (every checkpoint with `:from < ts <=` the
 * simulated clock, each an arm's cumulative totals), in MySQL's dialect.
 */
export function mysqlConnectorSql(metricId: number): string {
  if (!Number.isInteger(metricId) || metricId < 1 || metricId > 4) {
    throw new Error(`mysqlConnectorSql: metric_id must be 1, 2, 3 or 4, got ${metricId}`);
  }
  return [
    "SELECT c.arm, CAST(c.units AS DOUBLE) AS units, c.`sum`, c.sum_sq, c.ts",
    "FROM asos_checkpoint c",
    `WHERE c.experiment_key = :experiment AND c.metric_id = ${metricId}`,
    "  AND c.ts > :from",
    "  AND c.ts <= (SELECT sim_now FROM demo_clock) AND c.ts <= :to",
    "ORDER BY c.ts, c.arm",
  ].join("\n");
}
