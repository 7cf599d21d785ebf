/**
 * The SQL sources `createConnector` knows, by connector type. Each is a
 * {@link SqlSourceDefinition}: its lexical rules, its own settings and its
 * driver; everything else is `sql-source.ts`'s.
 */
import { BIGQUERY_SOURCE } from "../bigquery/bigquery.connector";
import type { SqlSourceDefinition } from "./sql-source";

/** Connector type → its definition. */
export const SQL_SOURCES: Readonly<Record<string, SqlSourceDefinition>> = Object.freeze({
  bigquery: BIGQUERY_SOURCE,
});
