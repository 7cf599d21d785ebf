/**
 * The SQL sources `createConnector` knows, by connector type. Each is a
 * {@link SqlSourceDefinition}: its lexical rules, its own settings and its
 * driver; everything else is `sql-source.ts`'s.
 */
import { BIGQUERY_SOURCE } from "../bigquery/bigquery.connector";
import { CLICKHOUSE_SOURCE } from "../clickhouse/clickhouse.source";
import { DUCKDB_SOURCE } from "../duckdb/duckdb.source";
import { MYSQL_SOURCE } from "../mysql/mysql.source";
import { SNOWFLAKE_SOURCE } from "../snowflake/snowflake.source";
import type { SqlSourceDefinition } from "./sql-source";

/** Connector type → its definition. */
export const SQL_SOURCES: Readonly<Record<string, SqlSourceDefinition>> = Object.freeze({
  mysql: MYSQL_SOURCE,
  duckdb: DUCKDB_SOURCE,
  clickhouse: CLICKHOUSE_SOURCE,
  snowflake: SNOWFLAKE_SOURCE,
  bigquery: BIGQUERY_SOURCE,
});
