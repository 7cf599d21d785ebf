/**
 * Counts that arrive as floating-point numbers. A count exported through a
 * float column or summed in floating point can come back as
 * 25840.999999999996; within a relative 1e-9 of a whole number it is that
 * whole number. The same tolerance is the connectors' rule for
 * sum_sq = sum on a proportion, so the runtime and the CLI read counts alike.
 */

/**
 * Relative tolerance for a count: a value within COUNT_TOLERANCE · max(1, scale)
 * of a whole number is that whole number (1e-9: far above double rounding,
 * about 1e-16 per operation, and far below one unit at any realistic count).
 */
export const COUNT_TOLERANCE = 1e-9;

/**
 * Whether two totals that should be equal are equal up to floating-point
 * rounding: |a − b| ≤ COUNT_TOLERANCE · max(1, |scale|).
 *
 * @param scale the magnitude the tolerance is relative to (default |b|)
 */
export function equalWithinCountTolerance(a: number, b: number, scale: number = Math.abs(b)): boolean {
  return Math.abs(a - b) <= COUNT_TOLERANCE * Math.max(1, Math.abs(scale));
}

/**
 * The whole number a count stands for: `value` rounded when it is within
 * COUNT_TOLERANCE · max(1, |scale|) of a whole number, otherwise `null` (a
 * fraction such as 0.5 or 1e-3 is not a count). `scale` is the magnitude the
 * tolerance is relative to: the units of the arm for units and conversions.
 *
 * @example wholeCount(25840.999999999996, 25841) // → 25841
 * @example wholeCount(10.5, 20) // → null
 */
export function wholeCount(value: number, scale: number = value): number | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  const whole = Math.round(value);
  if (!Number.isFinite(scale)) return value === whole ? whole : null;
  return equalWithinCountTolerance(value, whole, scale) ? whole + 0 : null;
}
