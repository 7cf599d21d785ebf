/**
 * The worker behind `duckdbParse` (duckdb-statement.ts): DuckDB's own parser,
 * run synchronously for the caller through synckit. It parses only
 * (`json_serialize_sql`): nothing is bound, no file is opened, the database
 * is in memory and locked with no external access.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { runAsWorker } from "synckit";

/** @type {Promise<import("@duckdb/node-api").DuckDBConnection> | undefined} */
let connection;

async function connect() {
  const instance = await DuckDBInstance.create(":memory:", {
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
    threads: "1",
    memory_limit: "64MB",
    temp_directory: "",
    enable_external_access: "false",
    // Last: once locked, no option after it can be set.
    lock_configuration: "true",
  });
  return instance.connect();
}

runAsWorker(async (sql) => {
  connection ??= connect();
  const c = await connection;
  const literal = `'${String(sql).replaceAll("'", "''")}'`;
  const reader = await c.runAndReadAll(`SELECT json_serialize_sql(${literal})`);
  return String(reader.getRows()[0]?.[0] ?? "");
});
