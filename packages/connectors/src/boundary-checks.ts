/**
 * Validation of everything a source returns, before it reaches the runtime:
 * one set of rules for every connector, so a poll can never store a NaN, a
 * negative count, a conversion rate above 1, an arm nobody asked for or two
 * values for one (arm, ts).
 */

import { equalWithinCountTolerance, wholeCount } from "@outcome-runtime/stats";
import { show } from "./config-reader";
import type { ArmAggregate, ExperimentWindow, SeriesPoint, SeriesWindow } from "./connector";
import { ConnectorError } from "./connector-error";

/** A row as a source returned it, before checking. */
export interface RawArmRow {
  arm: unknown;
  units: unknown;
  sum: unknown;
  sum_sq: unknown;
  ts?: unknown;
  /** Where the row came from, for messages (e.g. `row 3`, `line 12`). */
  location?: string;
}

/** A series point as a source returned it, before checking. */
export interface RawSeriesRow {
  ts: unknown;
  value: unknown;
  location?: string;
}

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/u;

/**
 * A number from what a driver or a file gives: a number, a bigint, or a
 * decimal string (Postgres `bigint` and `numeric` arrive as strings).
 * `undefined` when it is not a finite number. Strings are parsed strictly:
 * no thousands separators, no `NaN`/`Infinity`, no hex.
 */
export function parseNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string") {
    const text = value.trim();
    if (!NUMERIC.test(text)) return undefined;
    const n = Number(text);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A timestamp from a Date or an ISO 8601 string with a date; `undefined` when it is neither. */
export function parseTimestamp(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value !== "string") return undefined;
  const text = value.trim().replace(" ", "T");
  if (/^\d{4}-\d{2}-\d{2}$/u.test(text)) return validDate(`${text}T00:00:00Z`);
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/iu.exec(text);
  if (match === null) return undefined;
  // A time without a zone is read as UTC; Postgres writes zones as +HH or +HHMM.
  const zone = match[2] ?? "Z";
  const normalizedZone = /^[+-]\d{2}$/u.test(zone)
    ? `${zone}:00`
    : /^[+-]\d{4}$/u.test(zone)
      ? `${zone.slice(0, 3)}:${zone.slice(3)}`
      : zone.toUpperCase();
  return validDate(`${match[1]}${normalizedZone}`);
}

function validDate(text: string): Date | undefined {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function where(source: string, row: { location?: string }, index: number, arm?: string): string {
  const at = row.location ?? `row ${index + 1}`;
  return `${source}: ${at}${arm === undefined ? "" : ` (arm ${JSON.stringify(arm)})`}`;
}

function describeMissing(value: unknown): string {
  return value === null || value === undefined ? "is NULL or empty" : `is ${show(value)}, not a finite number`;
}

function bad(message: string, details: Record<string, unknown>): ConnectorError {
  return new ConnectorError("bad_response", message, { details });
}

/** How many unknown arm names an error names before "and N more". */
const MAX_NAMED_ARMS = 10;

/**
 * Checks and converts the rows of an experiment poll.
 *
 * @param source names the origin in messages (e.g. `postgres query`)
 * @throws ConnectorError `bad_response` naming the row, the column, the value and the fix
 */
export function checkArmAggregates(
  rows: readonly RawArmRow[],
  window: ExperimentWindow,
  metricKind: "proportion" | "mean",
  source: string,
): ArmAggregate[] {
  const unknownArms = new Set<string>();
  for (const row of rows) {
    if (typeof row.arm === "string" && !window.arms.includes(row.arm)) unknownArms.add(row.arm);
  }
  if (unknownArms.size > 0) {
    const names = [...unknownArms].sort();
    // A source may return thousands of stray arms: the message (shown on the experiment) names a few.
    const shown = names.slice(0, MAX_NAMED_ARMS).map((a) => JSON.stringify(a.slice(0, 100)));
    const list =
      names.length > MAX_NAMED_ARMS
        ? `${shown.join(", ")} and ${names.length - MAX_NAMED_ARMS} more`
        : shown.join(", ");
    throw bad(
      `${source}: ${names.length === 1 ? "arm" : "arms"} ${list} ${names.length === 1 ? "is" : "are"} not ${names.length === 1 ? "an arm" : "arms"} of experiment ${JSON.stringify(window.experimentKey)} (its arms: ${window.arms.join(", ")}); return only the requested arms (e.g. filter on the :arms parameter) and check the spelling`,
      {
        field: "arm",
        unknownArms: names.slice(0, MAX_NAMED_ARMS),
        unknownArmCount: names.length,
        arms: [...window.arms],
      },
    );
  }

  const seen = new Set<string>();
  const out: ArmAggregate[] = [];
  rows.forEach((row, i) => {
    if (typeof row.arm !== "string") {
      throw bad(`${where(source, row, i)}, column arm: ${show(row.arm)} is not text; return the arm name as text`, {
        field: "arm",
        value: row.arm ?? null,
      });
    }
    const arm = row.arm;
    const at = where(source, row, i, arm);
    const number = (field: "units" | "sum" | "sum_sq"): number => {
      const raw = row[field];
      const n = parseNumber(raw);
      if (n === undefined) {
        throw bad(
          `${at}, column ${field}: ${describeMissing(raw)}; return a number (wrap a sum that may be NULL in coalesce(..., 0))`,
          { field, value: raw ?? null },
        );
      }
      return n;
    };
    // A count summed in floating point (25840.999999999996) is the whole number it stands for: the tolerance
    // (COUNT_TOLERANCE of the statistics) is the one `outcome-runtime stats sequential` applies to its input.
    const rawUnits = number("units");
    const units = wholeCount(rawUnits) ?? rawUnits;
    const sum = number("sum");
    const sumSq = number("sum_sq");
    if (units < 0 || !Number.isInteger(units) || !Number.isSafeInteger(units)) {
      throw bad(
        `${at}, column units: ${show(row.units)} is not a whole number of units ≥ 0; units counts the units exposed (e.g. count(DISTINCT unit_id))`,
        { field: "units", value: row.units },
      );
    }
    if (metricKind === "proportion") {
      if (sum < 0 || sum > units) {
        throw bad(
          `${at}, column sum: ${sum} conversions for ${units} units; for a proportion 0 ≤ sum ≤ units (sum counts the units that converted, each at most once)`,
          { field: "sum", value: sum, units },
        );
      }
      if (!equalWithinCountTolerance(sumSq, sum)) {
        throw bad(
          `${at}, column sum_sq: ${sumSq} differs from sum ${sum}; for a proportion each unit's value is 0 or 1, so sum_sq = sum = conversions`,
          { field: "sum_sq", value: sumSq, sum },
        );
      }
    } else {
      if (sumSq < 0) {
        throw bad(`${at}, column sum_sq: ${sumSq} is negative; sum_sq is the sum of the squares of the unit values`, {
          field: "sum_sq",
          value: sumSq,
        });
      }
      if (units === 0 && (sum !== 0 || sumSq !== 0)) {
        throw bad(`${at}: units is 0 but sum is ${sum} and sum_sq is ${sumSq}; with no units both are 0`, {
          field: "units",
          value: 0,
          sum,
          sum_sq: sumSq,
        });
      }
      // Cauchy–Schwarz: (Σx)² ≤ n·Σx². A violation means sum_sq is not Σx² over the same units.
      if (units > 0 && sum * sum > units * sumSq * (1 + 1e-9) + 1e-9) {
        throw bad(
          `${at}: sum ${sum} and sum_sq ${sumSq} over ${units} units imply a negative variance; sum_sq must be the sum of each unit's value squared (e.g. sum(v * v) over per-unit values v)`,
          { field: "sum_sq", value: sumSq, sum, units },
        );
      }
    }
    let ts: Date | null = null;
    if (row.ts !== null && row.ts !== undefined) {
      const parsed = parseTimestamp(row.ts);
      if (parsed === undefined) {
        throw bad(`${at}, column ts: ${show(row.ts)} is not a timestamp; return a timestamptz (or leave ts out)`, {
          field: "ts",
          value: row.ts,
        });
      }
      if (parsed.getTime() > window.to.getTime()) {
        throw bad(
          `${at}, column ts: ${parsed.toISOString()} is after the window end ${window.to.toISOString()}; an aggregate can only be as of a time up to :to (e.g. LEAST(max(exposed_at), :to))`,
          { field: "ts", value: parsed.toISOString(), to: window.to.toISOString() },
        );
      }
      ts = parsed;
    }
    const key = `${arm}\u0000${ts === null ? "" : ts.getTime()}`;
    if (seen.has(key)) {
      throw bad(
        `${at}: a second row for arm ${JSON.stringify(arm)} ${ts === null ? "without ts" : `at ts ${ts.toISOString()}`}; return at most one row per arm and ts (GROUP BY arm${ts === null ? "" : ", ts"})`,
        { field: "arm", value: arm, ts: ts?.toISOString() ?? null },
      );
    }
    seen.add(key);
    out.push({ arm, units, sum, sum_sq: sumSq, ts });
  });
  return sortAggregates(out, window.arms);
}

/** Sorted by ts (null last), then by the order of `arms`. */
function sortAggregates(rows: ArmAggregate[], arms: readonly string[]): ArmAggregate[] {
  const order = (ts: Date | null): number => (ts === null ? Number.POSITIVE_INFINITY : ts.getTime());
  return rows.sort((a, b) => order(a.ts) - order(b.ts) || arms.indexOf(a.arm) - arms.indexOf(b.arm));
}

/**
 * Checks and converts the points of an outcome series poll.
 *
 * @throws ConnectorError `bad_response`
 */
export function checkSeries(rows: readonly RawSeriesRow[], window: SeriesWindow, source: string): SeriesPoint[] {
  const seen = new Set<number>();
  const out: SeriesPoint[] = [];
  rows.forEach((row, i) => {
    const at = where(source, row, i);
    const ts = parseTimestamp(row.ts);
    if (ts === undefined) {
      throw bad(`${at}, column ts: ${show(row.ts)} is not a timestamp; return a timestamptz for every point`, {
        field: "ts",
        value: row.ts ?? null,
      });
    }
    const value = parseNumber(row.value);
    if (value === undefined) {
      throw bad(`${at}, column value: ${describeMissing(row.value)}; return a number for every point`, {
        field: "value",
        value: row.value ?? null,
      });
    }
    if (ts.getTime() > window.to.getTime()) {
      throw bad(
        `${at}, column ts: ${ts.toISOString()} is after the window end ${window.to.toISOString()}; filter with ts <= :to`,
        { field: "ts", value: ts.toISOString() },
      );
    }
    if (seen.has(ts.getTime())) {
      throw bad(`${at}: a second point at ts ${ts.toISOString()}; return one row per ts (GROUP BY ts)`, {
        field: "ts",
        value: ts.toISOString(),
      });
    }
    seen.add(ts.getTime());
    out.push({ ts, value });
  });
  return out.sort((a, b) => a.ts.getTime() - b.ts.getTime());
}

/** Throws a `RangeError` for a window a caller should never build. */
export function assertWindow(window: { from: Date; to: Date; arms?: readonly string[] }): void {
  if (!(window.from instanceof Date) || Number.isNaN(window.from.getTime())) {
    throw new RangeError("window.from must be a valid Date");
  }
  if (!(window.to instanceof Date) || Number.isNaN(window.to.getTime())) {
    throw new RangeError("window.to must be a valid Date");
  }
  if (window.from.getTime() > window.to.getTime()) {
    throw new RangeError(`window.from (${window.from.toISOString()}) is after window.to (${window.to.toISOString()})`);
  }
  if (window.arms !== undefined) {
    if (window.arms.length === 0) throw new RangeError("window.arms must name at least one arm");
    if (new Set(window.arms).size !== window.arms.length) throw new RangeError("window.arms has a repeated arm");
  }
}
