/**
 * DuckDB's own static check of a signal query, run when the settings are
 * read (synchronously, as `SqlSourceDefinition.checkStatement` is): DuckDB's
 * parser, through `json_serialize_sql`, in a worker thread. Parsing only:
 * tables and files are not looked at until a read (which checks the
 * prepared statement's type again, see duckdb-driver.ts).
 */
import { fileURLToPath } from "node:url";
import { createSyncFn } from "synckit";
import type { StatementRefusal } from "../sql/named-parameters";

/** The first call starts the worker and loads DuckDB; later ones take about a millisecond. */
const PARSE_TIMEOUT_MS = 15_000;

let parse: ((sql: string) => string) | undefined;

/**
 * DuckDB's verdict on `sql` (placeholders already in DuckDB's `$name`
 * form): null when it is one SELECT, else why not, at a character offset.
 * When DuckDB cannot be loaded at all (the worker fails), null: the read's
 * own check of the prepared statement still refuses anything but a SELECT.
 */
export function duckdbParse(sql: string): StatementRefusal | null {
  let json: string;
  try {
    parse ??= createSyncFn<(sql: string) => Promise<string>>(
      fileURLToPath(new URL("./duckdb-parse.worker.mjs", import.meta.url)),
      { timeout: PARSE_TIMEOUT_MS },
    );
    json = parse(sql);
  } catch {
    return null;
  }
  const answer = JSON.parse(json) as {
    error: boolean;
    error_type?: string;
    error_message?: string;
    position?: string;
    statements?: unknown[];
  };
  if (answer.error) {
    const parser = answer.error_type === "parser";
    return {
      problem: parser
        ? `DuckDB cannot parse the query: ${answer.error_message ?? "syntax error"}`
        : `DuckDB reads it as something other than a SELECT (${answer.error_message ?? answer.error_type ?? "not a SELECT"})`,
      fix: parser
        ? "fix the SQL at this position (DuckDB's dialect: https://duckdb.org/docs/sql/introduction)"
        : "a signal query only reads: write one SELECT (or WITH ... SELECT, FROM ...)",
      offset: parser ? characterOffset(sql, Number(answer.position ?? 0)) : 0,
    };
  }
  if ((answer.statements ?? []).length !== 1) {
    return {
      problem: `DuckDB reads ${(answer.statements ?? []).length} statements`,
      fix: "write a single SELECT",
      offset: 0,
    };
  }
  return null;
}

/** DuckDB's positions count bytes of UTF-8; JavaScript's count UTF-16 code units. */
function characterOffset(sql: string, bytes: number): number {
  if (!Number.isFinite(bytes) || bytes <= 0) return 0;
  return Buffer.from(sql, "utf8").subarray(0, bytes).toString("utf8").length;
}
