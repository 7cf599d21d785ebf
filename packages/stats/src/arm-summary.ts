/**
 * Per-arm sufficient statistics and what can be derived from them.
 */

/** `proportion`: each unit converts or not (values 0/1); `mean`: a continuous value per unit. */
export type MetricKind = "proportion" | "mean";

/**
 * Cumulative per-arm sufficient statistics: the number of units, the sum of
 * their values and the sum of the squares of their values. For a proportion,
 * sum = sum_sq = conversions (a 0/1 value squared is itself).
 */
export interface ArmTotals {
  units: number;
  sum: number;
  sumSq: number;
}

/**
 * One arm described: its units, its mean (a fraction for a proportion) and the
 * per-unit variance (p(1−p) for a proportion, the unbiased n−1 sample variance
 * for a mean). `null` where undefined: no units, or one unit of a mean metric.
 */
export interface ArmSummary {
  units: number;
  mean: number | null;
  variance: number | null;
}

/**
 * Why an arm's totals cannot be used, as a sentence fragment, or `null` when
 * they can. Checks: finite numbers, units a whole number ≥ 0 (a count;
 * a fraction such as 5e-324 would make sum/units overflow), for a proportion
 * 0 ≤ conversions ≤ units, for a mean sum_sq ≥ 0.
 */
function armTotalsProblem(kind: MetricKind, arm: ArmTotals): string | null {
  const { units, sum, sumSq: sum_sq } = arm;
  if (typeof units !== "number" || !Number.isInteger(units) || units < 0) {
    return `units must be a whole number ≥ 0 (got ${String(units)})`;
  }
  if (typeof sum !== "number" || !Number.isFinite(sum)) return `sum must be a finite number (got ${String(sum)})`;
  if (kind === "proportion") {
    if (sum < 0 || sum > units) {
      return `conversions (sum) must be between 0 and units (got sum ${sum}, units ${units})`;
    }
    return null;
  }
  if (typeof sum_sq !== "number" || !Number.isFinite(sum_sq) || sum_sq < 0) {
    return `sum_sq must be a finite number ≥ 0 (got ${String(sum_sq)})`;
  }
  if (units === 0 && (sum !== 0 || sum_sq !== 0)) return `an arm with 0 units must have sum 0 and sum_sq 0`;
  return null;
}

/**
 * Mean and per-unit variance of one arm from its totals.
 *
 * - proportion: mean p = sum/units (a fraction, not a percent), variance p(1−p)
 *   (the Bernoulli variance, as in Johari et al. 2017 for conversion metrics);
 * - mean: mean = sum/units, variance = (sum_sq − sum²/units)/(units − 1), the
 *   unbiased sample variance, clamped at 0 against rounding.
 *
 * Never throws and never returns NaN: invalid totals (see
 * {@link armTotalsProblem}) or 0 units give `mean: null, variance: null`; one
 * unit of a mean metric gives `variance: null`.
 *
 * @example summarizeArm("proportion", { units: 200, sum: 30, sum_sq: 30 })
 *   // → { units: 200, mean: 0.15, variance: 0.1275 }
 */
export function summarizeArm(kind: MetricKind, arm: ArmTotals): ArmSummary {
  if (armTotalsProblem(kind, arm) !== null) {
    const units = typeof arm.units === "number" && Number.isInteger(arm.units) && arm.units >= 0 ? arm.units : 0;
    return { units, mean: null, variance: null };
  }
  const { units, sum, sumSq: sum_sq } = arm;
  if (units === 0) return { units, mean: null, variance: null };
  const mean = sum / units;
  if (kind === "proportion") {
    const p = Math.min(1, Math.max(0, mean));
    return { units, mean: p, variance: p * (1 - p) };
  }
  if (units < 2) return { units, mean, variance: null };
  const variance = Math.max(0, (sum_sq - sum * mean) / (units - 1));
  return { units, mean, variance: Number.isFinite(variance) ? variance : null };
}

/** Both arms summarised, with one warning per arm that cannot be fully used. */
export interface ArmPair {
  control: ArmSummary;
  treatment: ArmSummary;
  warnings: string[];
}

/**
 * Summarises the control and treatment arms and words what is missing, in the
 * same sentences for every test (so a report can de-duplicate them):
 * "control arm: <problem>", "control arm is empty", "control arm has a single
 * unit; its variance is undefined".
 */
export function summarizeArms(kind: MetricKind, control: ArmTotals, treatment: ArmTotals): ArmPair {
  const warnings: string[] = [];
  const entries = [
    ["control", control],
    ["treatment", treatment],
  ] as const;
  for (const [name, arm] of entries) {
    const problem = armTotalsProblem(kind, arm);
    if (problem !== null) warnings.push(`${name} arm: ${problem}`);
    else if (arm.units === 0) warnings.push(`${name} arm is empty`);
    else if (kind === "mean" && arm.units < 2)
      warnings.push(`${name} arm has a single unit; its variance is undefined`);
  }
  return { control: summarizeArm(kind, control), treatment: summarizeArm(kind, treatment), warnings };
}
