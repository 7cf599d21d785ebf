/**
 * Estimates that need a second value per unit, from per-arm totals alone:
 * the regression-adjusted (CUPED) difference of means, with a pre-exposure
 * covariate x per unit, and the ratio metric Σnum / Σden with its
 * delta-method variance. Both read the same sufficient statistics: n, Σy,
 * Σy², Σx, Σx², Σxy.
 *
 * Sources:
 * - CUPED: A. Deng, Y. Xu, R. Kohavi, T. Walker (2013), "Improving the
 *   Sensitivity of Online Controlled Experiments by Utilizing Pre-Experiment
 *   Data", WSDM '13, §3.2 (the adjusted estimator Ŷ − θ(X̄ − E X) and its
 *   variance Var(Y)(1 − ρ²)); θ here is the pooled within-arm slope, as in
 *   regression adjustment with arm indicators (Lin 2013, "Agnostic notes on
 *   regression adjustments to experimental data", Ann. Appl. Stat. 7(1)).
 * - Ratio metrics: A. Deng, U. Knoblich, J. Lu (2018), "Applying the Delta
 *   Method in Metric Analytics: A Practical Guide with Novel Ideas", KDD '18,
 *   §3 (the variance of a ratio of means by the delta method).
 */

/**
 * Per-arm totals of two values per unit: y (the metric, or a ratio's
 * numerator) and x (the covariate, or the ratio's denominator).
 */
export interface PairedTotals {
  /** Units n (a whole number ≥ 0). */
  units: number;
  /** Σy */
  sum: number;
  /** Σy² */
  sumSq: number;
  /** Σx */
  pairSum: number;
  /** Σx² */
  pairSumSq: number;
  /** Σxy */
  crossSum: number;
}

/** Sample (n − 1) moments of one arm. */
interface Moments {
  n: number;
  meanY: number;
  meanX: number;
  varY: number;
  varX: number;
  covXY: number;
}

/** Why an arm's paired totals cannot be used, or null. */
export function pairedTotalsProblem(arm: PairedTotals): string | null {
  const values = [arm.sum, arm.sumSq, arm.pairSum, arm.pairSumSq, arm.crossSum];
  if (typeof arm.units !== "number" || !Number.isInteger(arm.units) || arm.units < 0) {
    return `units must be a whole number ≥ 0 (got ${String(arm.units)})`;
  }
  if (!values.every((v) => typeof v === "number" && Number.isFinite(v))) return "every total must be a finite number";
  if (arm.sumSq < 0 || arm.pairSumSq < 0) return "sums of squares must be ≥ 0";
  return null;
}

function moments(arm: PairedTotals): Moments | null {
  if (pairedTotalsProblem(arm) !== null || arm.units < 2) return null;
  const n = arm.units;
  const meanY = arm.sum / n;
  const meanX = arm.pairSum / n;
  const varY = Math.max(0, (arm.sumSq - n * meanY * meanY) / (n - 1));
  const varX = Math.max(0, (arm.pairSumSq - n * meanX * meanX) / (n - 1));
  const covXY = (arm.crossSum - n * meanX * meanY) / (n - 1);
  return [meanY, meanX, varY, varX, covXY].every(Number.isFinite) ? { n, meanY, meanX, varY, varX, covXY } : null;
}

/**
 * The pooled within-arm slope of y on x:
 * θ = Σ_arms (Σxy − n·x̄·ȳ) / Σ_arms (Σx² − n·x̄²).
 *
 * @returns θ, or null when an arm has fewer than 2 units or x does not vary within the arms
 */
export function pooledSlope(arms: readonly PairedTotals[]): number | null {
  let numerator = 0;
  let denominator = 0;
  for (const arm of arms) {
    const m = moments(arm);
    if (m === null) return null;
    numerator += m.covXY * (m.n - 1);
    denominator += m.varX * (m.n - 1);
  }
  if (!(denominator > 0)) return null;
  const theta = numerator / denominator;
  return Number.isFinite(theta) ? theta : null;
}

/**
 * The per-unit variance of one arm after adjustment, s²_y − 2θ·s_xy + θ²·s²_x
 * (the sample variance of y − θx, n − 1 moments): what CUPED leaves of the
 * metric's variance, to tune τ² with. θ = 0 gives s²_y.
 *
 * @returns null when the arm has fewer than 2 units or invalid totals
 */
export function adjustedUnitVariance(arm: PairedTotals, theta: number): number | null {
  const m = moments(arm);
  if (m === null || !Number.isFinite(theta)) return null;
  const v = Math.max(0, m.varY - 2 * theta * m.covXY + theta * theta * m.varX);
  return Number.isFinite(v) ? v : null;
}

/** A difference of treatment and control, ready for the mSPRT. */
export interface PairedEstimate {
  /** Treatment − control, in metric units. */
  effect: number;
  /** Variance of `effect` (squared metric units). */
  variance: number;
  /** The control's level the relative lift divides by (the control mean, or its ratio). */
  controlLevel: number;
  /** Delta-method variance of effect / controlLevel, or null when undefined. */
  relativeVariance: number | null;
}

/** The CUPED result: the adjusted comparison and what the adjustment bought. */
export interface CupedEstimate extends PairedEstimate {
  /** θ, the pooled within-arm slope used. */
  theta: number;
  /** Variance of the unadjusted difference (sample variances), for the variance reduction. */
  unadjustedVariance: number;
  /** 1 − adjusted variance / unadjusted variance: 0.5 halves the sample needed. */
  varianceReduction: number;
}

/**
 * The regression-adjusted (CUPED) difference of means of one treatment
 * against control:
 *
 * - effect = (ȳₜ − ȳ꜀) − θ·(x̄ₜ − x̄꜀);
 * - Var(effect) = Σ_{a ∈ {t, c}} (s²_y − 2θ·s_xy + θ²·s²_x)ₐ / nₐ, with sample (n − 1) moments;
 * - the variance reduction 1 − Var(effect) / Σ s²_y/n.
 *
 * The relative lift divides by the control mean ȳ꜀; its variance by the
 * delta method treats ȳ꜀ as random with the adjusted variance of the control.
 *
 * @param theta from {@link pooledSlope} over every arm of the experiment
 * @returns the estimate, or null when an arm has fewer than 2 units or the variance is 0
 */
export function cupedEstimate(control: PairedTotals, treatment: PairedTotals, theta: number): CupedEstimate | null {
  const c = moments(control);
  const t = moments(treatment);
  if (c === null || t === null || !Number.isFinite(theta)) return null;
  const adjusted = (m: Moments) => Math.max(0, m.varY - 2 * theta * m.covXY + theta * theta * m.varX) / m.n;
  const vc = adjusted(c);
  const vt = adjusted(t);
  const variance = vc + vt;
  const unadjustedVariance = c.varY / c.n + t.varY / t.n;
  if (!(variance > 0) || !(unadjustedVariance > 0)) return null;
  const effect = t.meanY - c.meanY - theta * (t.meanX - c.meanX);
  const relativeVariance =
    c.meanY === 0
      ? null
      : vt / (c.meanY * c.meanY) + ((t.meanY * t.meanY) / (c.meanY * c.meanY * c.meanY * c.meanY)) * vc;
  return {
    effect,
    variance,
    controlLevel: c.meanY,
    relativeVariance: relativeVariance !== null && Number.isFinite(relativeVariance) ? relativeVariance : null,
    theta,
    unadjustedVariance,
    varianceReduction: 1 - variance / unadjustedVariance,
  };
}

/** One arm's ratio R = Σnum / Σden and its delta-method variance. */
export interface RatioArm {
  units: number;
  ratio: number;
  variance: number;
}

/**
 * One arm of a ratio metric (y = numerator, x = denominator per unit):
 * R = Σy/Σx and Var(R) = (s²_y − 2R·s_xy + R²·s²_x) / (n·x̄²), sample (n − 1)
 * (co)variances (Deng, Knoblich & Lu 2018, §3).
 *
 * @returns null when the arm has fewer than 2 units or Σx = 0
 */
export function ratioArm(arm: PairedTotals): RatioArm | null {
  const m = moments(arm);
  if (m === null || m.meanX === 0) return null;
  const ratio = m.meanY / m.meanX;
  const variance = Math.max(0, m.varY - 2 * ratio * m.covXY + ratio * ratio * m.varX) / (m.n * m.meanX * m.meanX);
  return Number.isFinite(ratio) && Number.isFinite(variance) ? { units: m.n, ratio, variance } : null;
}

/**
 * The difference of two ratios, treatment − control, with Var = Var(Rₜ) + Var(R꜀)
 * (independent arms), and the relative lift Rₜ/R꜀ − 1 by the delta method.
 *
 * @returns null when either arm's ratio is undefined or the variance is 0
 */
export function ratioEstimate(control: PairedTotals, treatment: PairedTotals): PairedEstimate | null {
  const c = ratioArm(control);
  const t = ratioArm(treatment);
  if (c === null || t === null) return null;
  const variance = c.variance + t.variance;
  if (!(variance > 0)) return null;
  const relativeVariance =
    c.ratio === 0 ? null : t.variance / (c.ratio * c.ratio) + ((t.ratio * t.ratio) / c.ratio ** 4) * c.variance;
  return {
    effect: t.ratio - c.ratio,
    variance,
    controlLevel: c.ratio,
    relativeVariance: relativeVariance !== null && Number.isFinite(relativeVariance) ? relativeVariance : null,
  };
}
