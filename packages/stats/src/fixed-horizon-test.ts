/**
 * Classic fixed-horizon tests, for reports and for comparison with the
 * sequential test. Valid only when looked at once, at a sample size fixed in
 * advance: peeking at them repeatedly inflates the false-positive rate (see
 * the A/A simulation in simulation.test.ts).
 */
import { type ArmTotals, type MetricKind, summarizeArms } from "./arm-summary";
import { normalQuantileStd, normalTwoSidedP, tQuantileUpper, tTwoSidedP } from "./distributions";

/** Result of {@link fixedHorizonTest}. Every number is finite or `null`. */
export interface FixedHorizonResult {
  test: "two_proportion_z" | "welch_t";
  /** z for the two-proportion test, t for Welch's test. */
  statistic: number | null;
  /** Welch–Satterthwaite degrees of freedom; `null` for the z-test. */
  df: number | null;
  /** Two-sided p-value. */
  pValue: number | null;
  /** Two-sided 1−α interval for treatment − control (absolute, metric units). */
  ci: [number, number] | null;
  warnings: string[];
}

/**
 * Two-sided fixed-horizon test of treatment − control.
 *
 * - proportion: pooled two-proportion z-test, z = (p̂t − p̂c)/sqrt(p̄(1−p̄)(1/nc + 1/nt))
 *   with p̄ the pooled rate, p = erfc(|z|/√2); interval: the unpooled Wald
 *   interval (p̂t − p̂c) ± z_{1−α/2}·sqrt(p̂c(1−p̂c)/nc + p̂t(1−p̂t)/nt). Same
 *   p-value and interval as R's `prop.test(correct = FALSE)` (whose statistic
 *   is z²). Source: the standard large-sample test for two independent binomial
 *   proportions (e.g. A. Agresti, "Categorical Data Analysis").
 * - mean: Welch's t-test, t = Δ/sqrt(vc/nc + vt/nt) with unbiased variances,
 *   Welch–Satterthwaite df = (vc/nc + vt/nt)² / ((vc/nc)²/(nc−1) + (vt/nt)²/(nt−1)),
 *   p = 2·P(T_df ≤ −|t|); interval Δ ± t_{1−α/2, df}·se. Same as R's
 *   `t.test(var.equal = FALSE)`. Source: B. L. Welch (1947), Biometrika 34;
 *   F. E. Satterthwaite (1946), Biometrics Bulletin 2(6).
 *
 * Units: fractions for proportions (0.012, not 1.2 %). Degenerate input (empty
 * arm, one unit for a mean, zero variance, invalid totals) gives `null`s and a
 * warning; never throws, never NaN.
 *
 * @param alpha level of the interval, in (0, 1); default 0.05
 */
export function fixedHorizonTest(
  kind: MetricKind,
  control: ArmTotals,
  treatment: ArmTotals,
  alpha = 0.05,
): FixedHorizonResult {
  const test = kind === "proportion" ? "two_proportion_z" : "welch_t";
  const pair = summarizeArms(kind, control, treatment);
  const warnings = [...pair.warnings];
  const c = pair.control;
  const t = pair.treatment;
  const empty: FixedHorizonResult = { test, statistic: null, df: null, pValue: null, ci: null, warnings };
  if (c.mean === null || t.mean === null || c.variance === null || t.variance === null) return empty;
  const alphaOk = typeof alpha === "number" && alpha > 0 && alpha < 1;
  if (!alphaOk) warnings.push(`alpha must be in (0, 1), such as 0.05; got ${String(alpha)}; no interval is given`);
  const effect = t.mean - c.mean;

  if (kind === "proportion") {
    const pooled = (control.sum + treatment.sum) / (c.units + t.units);
    const se0 = Math.sqrt(pooled * (1 - pooled) * (1 / c.units + 1 / t.units));
    if (!(se0 > 0)) {
      warnings.push("zero variance in both arms: every unit converted, or none did");
      return empty;
    }
    const z = effect / se0;
    const se = Math.sqrt(c.variance / c.units + t.variance / t.units);
    let ci: [number, number] | null = null;
    if (alphaOk) {
      const half = normalQuantileStd(1 - alpha / 2) * se;
      ci = [effect - half, effect + half];
      if (se === 0) warnings.push("the unpooled standard error is 0: the Wald interval shrinks to a point");
    }
    return { test, statistic: z, df: null, pValue: normalTwoSidedP(z), ci, warnings };
  }

  const vc = c.variance / c.units;
  const vt = t.variance / t.units;
  const se2 = vc + vt;
  if (!(se2 > 0) || !Number.isFinite(se2)) {
    warnings.push("zero variance in both arms: the test is undefined until the values vary");
    return empty;
  }
  const se = Math.sqrt(se2);
  const statistic = effect / se;
  const df = (se2 * se2) / ((vc * vc) / (c.units - 1) + (vt * vt) / (t.units - 1));
  if (!Number.isFinite(statistic) || !Number.isFinite(df)) {
    warnings.push("the t statistic overflows a double; check the totals");
    return empty;
  }
  let ci: [number, number] | null = null;
  if (alphaOk) {
    const half = tQuantileUpper(1 - alpha / 2, df) * se;
    ci = [effect - half, effect + half];
  }
  return { test, statistic, df, pValue: tTwoSidedP(statistic, df), ci, warnings };
}
