/**
 * DuckDB's values (as `@duckdb/node-api` gives them) to what the boundary
 * checks read (`parseNumber`, `parseTimestamp` in boundary-checks.ts),
 * without losing precision silently.
 */
import {
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBValue,
} from "@duckdb/node-api";

/**
 * One cell: text, numbers, booleans and NULL as they are; a BIGINT or
 * HUGEINT as a number when it is a safe integer (|n| < 2^53), else kept as a
 * bigint, so `units` beyond 2^53 is refused by the boundary check rather
 * than rounded (a sum that large becomes the nearest double, as any sum of
 * doubles would); a DECIMAL as its exact decimal text; a TIMESTAMP or
 * TIMESTAMPTZ as an ISO 8601 UTC string (to the millisecond: the runtime's
 * times are milliseconds); a DATE as `YYYY-MM-DD`. Anything else (lists,
 * structs, blobs, infinite timestamps) as its text, which the boundary
 * check names in its refusal.
 */
export function duckdbCell(value: DuckDBValue): unknown {
  if (value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    return value;
  }
  if (typeof value === "bigint") {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value;
  }
  if (value instanceof DuckDBDecimalValue) return value.toString();
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) {
    const date = new Date(Number(value.micros / 1000n));
    return Number.isNaN(date.getTime()) ? value.toString() : date.toISOString();
  }
  if (value instanceof DuckDBDateValue) return value.toString();
  return String(value);
}
