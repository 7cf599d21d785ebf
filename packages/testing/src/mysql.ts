/**
 * MySQL/MariaDB databases standing for a team's analytics database, on the
 * local server (`TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`),
 * read through an account granted SELECT only, as docs/connectors.md tells
 * users to create it.
 */
import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";

/** The read-only account's name and password. */
export const MYSQL_READER = "outcome_runtime_reader";
export const MYSQL_READER_PASSWORD = "outcome-runtime-reader";

/** The server's administrative URL (`TEST_MYSQL_URL`). */
export function mysqlServerUrl(): string {
  return process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
}

/** A scratch database on the MySQL server, with a reader account that may only SELECT from it. */
export interface MysqlSourceDatabase {
  readonly name: string;
  /** As the server's admin: to create tables and write rows. */
  readonly adminUrl: string;
  /** As the reader: what a connector is given. */
  readonly readerUrl: string;
  /** Runs statements as the admin, in this database. */
  admin<T = unknown>(sql: string, values?: unknown[]): Promise<T>;
  /** Drops the database (the reader account stays, for other databases). */
  drop(): Promise<void>;
}

/**
 * Creates a uniquely named database (`ort_src_<random>`) and grants the
 * reader account SELECT on it, creating the account when the server has none.
 */
export async function createMysqlSourceDatabase(): Promise<MysqlSourceDatabase> {
  const name = `ort_src_${randomBytes(6).toString("hex")}`;
  const server = new URL(mysqlServerUrl());
  const adminUrl = new URL(server);
  adminUrl.pathname = `/${name}`;
  const root = await mysql.createConnection({ uri: server.toString(), multipleStatements: false });
  try {
    await root.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    for (const host of ["localhost", "127.0.0.1"]) {
      await root.query(
        `CREATE USER IF NOT EXISTS '${MYSQL_READER}'@'${host}' IDENTIFIED BY '${MYSQL_READER_PASSWORD}'`,
      );
      await root.query(`GRANT SELECT ON \`${name}\`.* TO '${MYSQL_READER}'@'${host}'`);
    }
  } finally {
    await root.end();
  }
  const reader = new URL(adminUrl);
  reader.username = MYSQL_READER;
  reader.password = MYSQL_READER_PASSWORD;
  const pool = mysql.createPool({ uri: adminUrl.toString(), connectionLimit: 2, timezone: "Z" });
  return {
    name,
    adminUrl: adminUrl.toString(),
    readerUrl: reader.toString(),
    async admin<T>(sql: string, values?: unknown[]): Promise<T> {
      const [rows] = await pool.query(sql, values);
      return rows as T;
    },
    async drop() {
      await pool.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await pool.end();
    },
  };
}
