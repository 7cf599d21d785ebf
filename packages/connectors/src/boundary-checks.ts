/**
 * Validation of everything a source returns, before it reaches the runtime:
 * one set of rules for every connector, so a poll can never store a NaN, a
 * negative count, a conversion rate above 1, an arm nobody asked for or two
 * values for one (arm, ts).
 */

import { equalWithinCountTolerance, wholeCount } from "@outcome-runtime/stats";
import { show } from "./config-reader";
import type { ArmAggregate, Covariate, Denominator, ExperimentWindow, SeriesPoint, SeriesWindow } from "./connector";
import { ConnectorError } from "./connector-error";

/** A row as a source returned it, before checking. */
export interface RawArmRow {
  arm: unknown;
  units: unknown;
  sum: unknown;
  sum_sq: unknown;
  ts?: unknown;
  /**
   * The optional pre-exposure covariate x of the arm's units (CUPED): Σx,
   * Σx² and Σxy. All three or none; `undefined` means the source has no such
   * column.
   */
  cov_sum?: unknown;
  cov_sum_sq?: unknown;
  cov_sum_product?: unknown;
  /**
   * A ratio metric's denominator d over the arm's units: Σd, Σd² and Σn·d
   * (n the numerator, whose Σ and Σ² are `sum` and `sum_sq`). Required for a
   * ratio metric, refused for any other; `undefined` means the source has no
   * such column.
   */
  den_sum?: unknown;
  den_sum_sq?: unknown;
  num_den_sum?: unknown;
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

/** The covariate columns, all three or none. */
const COVARIATE_COLUMNS = ["cov_sum", "cov_sum_sq", "cov_sum_product"] as const;

/** Relative tolerance of the Cauchy–Schwarz checks (floating-point sums of squares). */
const SQUARES_TOLERANCE = 1e-9;

/** a² ≤ b·c up to floating-point rounding. */
function withinCauchySchwarz(a: number, b: number, c: number): boolean {
  return a * a <= b * c * (1 + SQUARES_TOLERANCE) + SQUARES_TOLERANCE;
}

/**
 * Checks the covariate columns of one row: all three or none; finite;
 * cov_sum_sq ≥ 0; (Σx)² ≤ n·Σx² and (Σxy)² ≤ Σx²·Σy² (Cauchy–Schwarz: the
 * three are sums over the same units as units and sum_sq).
 */
function checkCovariate(row: RawArmRow, at: string, totals: { units: number; sumSq: number }): Covariate | undefined {
  const present = COVARIATE_COLUMNS.filter((c) => row[c] !== undefined);
  if (present.length === 0) return undefined;
  if (present.length < COVARIATE_COLUMNS.length) {
    const missing = COVARIATE_COLUMNS.filter((c) => row[c] === undefined);
    throw bad(
      `${at}: the row has ${present.join(", ")} but no ${missing.join(", ")}; the covariate columns come together: return all of cov_sum, cov_sum_sq and cov_sum_product, or none of them`,
      { field: missing[0], value: null, present },
    );
  }
  const number = (field: (typeof COVARIATE_COLUMNS)[number]): number => {
    const raw = row[field];
    const n = parseNumber(raw);
    if (n === undefined) {
      throw bad(
        `${at}, column ${field}: ${describeMissing(raw)}; return a number (a unit without pre-exposure data counts with x = 0: wrap it in coalesce(..., 0))`,
        { field, value: raw ?? null },
      );
    }
    return n;
  };
  return checkPairedTotals(at, totals, COVARIATE_NAMES, {
    sum: number("cov_sum"),
    sumSq: number("cov_sum_sq"),
    sumProduct: number("cov_sum_product"),
  });
}

/** A ratio metric's denominator columns: all three, on every row of a ratio metric. */
const DENOMINATOR_COLUMNS = ["den_sum", "den_sum_sq", "num_den_sum"] as const;

/**
 * Checks the denominator columns of one row of a ratio metric: all three
 * present and finite; den_sum_sq ≥ 0; all three 0 when units is 0;
 * (Σd)² ≤ n·Σd² and (Σn·d)² ≤ Σn²·Σd² (Cauchy–Schwarz over the same units
 * as units and sum_sq). A den_sum of 0 passes: the analysis words the
 * undefined ratio.
 */
function checkDenominator(row: RawArmRow, at: string, totals: { units: number; sumSq: number }): Denominator {
  const number = (field: (typeof DENOMINATOR_COLUMNS)[number]): number => {
    const raw = row[field];
    const n = parseNumber(raw);
    if (n === undefined) {
      throw bad(
        raw === undefined
          ? `${at}: the row has no column ${field}, but the metric is a ratio; return den_sum (Σ of each unit's denominator), den_sum_sq (Σ of its square) and num_den_sum (Σ of numerator × denominator) beside units, sum and sum_sq, or set kind: proportion or mean`
          : `${at}, column ${field}: ${describeMissing(raw)}; return a number (a unit without a denominator counts with 0: wrap it in coalesce(..., 0))`,
        { field, value: raw ?? null },
      );
    }
    return n;
  };
  return checkPairedTotals(at, totals, DENOMINATOR_NAMES, {
    sum: number("den_sum"),
    sumSq: number("den_sum_sq"),
    sumProduct: number("num_den_sum"),
  });
}

/** How the errors of a paired-totals check name the columns and the per-unit quantity. */
interface PairedNames {
  readonly sum: string;
  readonly sumSq: string;
  readonly sumProduct: string;
  /** The per-unit quantity, e.g. `covariate`. */
  readonly noun: string;
  /** Its letter in the SQL examples, e.g. `x`. */
  readonly letter: string;
  /** What `sumProduct` sums per unit, and its SQL example. */
  readonly product: string;
  readonly productExample: string;
}

const COVARIATE_NAMES: PairedNames = {
  sum: "cov_sum",
  sumSq: "cov_sum_sq",
  sumProduct: "cov_sum_product",
  noun: "covariate",
  letter: "x",
  product: "covariate times its value",
  productExample: "x * v",
};

const DENOMINATOR_NAMES: PairedNames = {
  sum: "den_sum",
  sumSq: "den_sum_sq",
  sumProduct: "num_den_sum",
  noun: "denominator",
  letter: "d",
  product: "numerator times its denominator",
  productExample: "n * d",
};

/**
 * The consistency of a second per-unit quantity's totals (a CUPED covariate,
 * a ratio's denominator) with the row's: Σ² ≥ 0; all three 0 when units is 0;
 * (Σ)² ≤ n·Σ² and (Σ product)² ≤ Σ²·sum_sq (Cauchy–Schwarz over the same units).
 *
 * @throws ConnectorError `bad_response` naming the column, the value and the fix.
 */
function checkPairedTotals(
  at: string,
  totals: { units: number; sumSq: number },
  names: PairedNames,
  values: { sum: number; sumSq: number; sumProduct: number },
): { sum: number; sumSq: number; sumProduct: number } {
  const { sum, sumSq, sumProduct } = values;
  const l = names.letter;
  if (sumSq < 0) {
    throw bad(
      `${at}, column ${names.sumSq}: ${sumSq} is negative; ${names.sumSq} is the sum of the squares of each unit's ${names.noun} (e.g. sum(${l} * ${l}))`,
      { field: names.sumSq, value: sumSq },
    );
  }
  if (totals.units === 0 && (sum !== 0 || sumSq !== 0 || sumProduct !== 0)) {
    throw bad(
      `${at}: units is 0 but ${names.sum} is ${sum}, ${names.sumSq} ${sumSq} and ${names.sumProduct} ${sumProduct}; with no units all three are 0`,
      { field: names.sum, value: sum, units: 0 },
    );
  }
  if (!withinCauchySchwarz(sum, totals.units, sumSq)) {
    throw bad(
      `${at}: ${names.sum} ${sum} and ${names.sumSq} ${sumSq} over ${totals.units} units imply a negative variance; ${names.sumSq} must be the sum of each unit's ${names.noun} squared (e.g. sum(${l} * ${l})) over the same units as units`,
      { field: names.sumSq, value: sumSq, [names.sum]: sum, units: totals.units },
    );
  }
  if (!withinCauchySchwarz(sumProduct, sumSq, totals.sumSq)) {
    throw bad(
      `${at}, column ${names.sumProduct}: ${sumProduct} is larger in size than √(${names.sumSq} · sum_sq) = ${Math.sqrt(sumSq * totals.sumSq)}; ${names.sumProduct} must be the sum of each unit's ${names.product} (e.g. sum(${names.productExample})) over the same units`,
      { field: names.sumProduct, value: sumProduct, [names.sumSq]: sumSq, sum_sq: totals.sumSq },
    );
  }
  return values;
}

/** How many unknown arm names an error names before "and N more". */
const MAX_NAMED_ARMS = 10;

/**
 * Checks and converts the rows of an experiment poll: per row the arm, the
 * totals (for a proportion 0 ≤ sum = sum_sq ≤ units; otherwise sum_sq ≥ 0
 * and sum² ≤ units·sum_sq), the optional covariate (all three columns or
 * none, on every row or none), and for a ratio metric the denominator's
 * three columns (required, and refused on any other kind; a ratio takes no
 * covariate).
 *
 * @param source names the origin in messages (e.g. `postgres query`)
 * @throws ConnectorError `bad_response` naming the row, the column, the value and the fix
 */
export function checkArmAggregates(
  rows: readonly RawArmRow[],
  window: ExperimentWindow,
  metricKind: "proportion" | "mean" | "ratio",
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
  // The covariate is on every row of a poll or on none: the first row decides.
  let covariateRow: { location: string; has: boolean } | undefined;
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
    let denominator: Denominator | undefined;
    if (metricKind === "ratio") {
      // CUPED adjusts a difference of means; the runtime does not adjust a difference of ratios.
      const covariateColumn = COVARIATE_COLUMNS.find((c) => row[c] !== undefined);
      if (covariateColumn !== undefined) {
        throw bad(
          `${at}, column ${covariateColumn}: a ratio metric takes no pre-exposure covariate (CUPED adjusts proportions and means only); remove cov_sum, cov_sum_sq and cov_sum_product from the query`,
          { field: covariateColumn, value: row[covariateColumn] ?? null },
        );
      }
      denominator = checkDenominator(row, at, { units, sumSq });
    } else {
      const denominatorColumn = DENOMINATOR_COLUMNS.find((c) => row[c] !== undefined);
      if (denominatorColumn !== undefined) {
        throw bad(
          `${at}, column ${denominatorColumn}: the metric is a ${metricKind}, which has no denominator; set kind: ratio in outcome.yaml to analyse Σsum / Σden_sum, or remove den_sum, den_sum_sq and num_den_sum from the query`,
          { field: denominatorColumn, value: row[denominatorColumn] ?? null },
        );
      }
    }
    const covariate = checkCovariate(row, at, { units, sumSq });
    const location = row.location ?? `row ${i + 1}`;
    if (covariateRow === undefined) {
      covariateRow = { location, has: covariate !== undefined };
    } else if (covariateRow.has !== (covariate !== undefined)) {
      const [withIt, without] = covariateRow.has
        ? [covariateRow.location, location]
        : [location, covariateRow.location];
      throw bad(
        `${source}: ${without} has no cov_sum, cov_sum_sq, cov_sum_product but ${withIt} has them; the covariate columns are on every row of a poll or on none (a unit without pre-exposure data counts with x = 0: coalesce(..., 0))`,
        { field: "cov_sum", value: null, row: without },
      );
    }
    out.push({
      arm,
      units,
      sum,
      sum_sq: sumSq,
      ts,
      ...(covariate === undefined ? {} : { covariate }),
      ...(denominator === undefined ? {} : { denominator }),
    });
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
