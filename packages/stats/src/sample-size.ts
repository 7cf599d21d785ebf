/**
 * Sample size, power and minimum detectable effect (MDE), for the classic
 * fixed-horizon test and for the always-valid mSPRT of sequential-test.ts.
 */
import type { MetricKind } from "./arm-summary";
import { normalQuantileStd } from "./distributions";
import { mixtureVarianceForSample, tunedBoundaryMultiplier } from "./sequential-test";

/** Result of {@link planSample}. Unit counts are per arm (equal arms). */
export interface SamplePlan {
  /** Units per arm for a two-sided fixed-horizon test looked at once. */
  fixedPerArm: number;
  /** Units per arm for the always-valid test to reach the requested power. */
  sequentialPerArm: number;
  /** The τ² to run the sequential test with (tuned to `sequential_per_arm`). */
  tau2: number;
  /** The absolute difference planned for (echoed). */
  mde: number;
}

interface DesignOptions {
  kind: MetricKind;
  alpha: number;
  power: number;
  baseline: number;
  variance?: number;
}

function checkDesign(o: DesignOptions): void {
  const { kind, alpha, power, baseline, variance } = o;
  if (kind !== "proportion" && kind !== "mean") {
    throw new RangeError(`kind must be "proportion" or "mean"; got ${String(kind)}`);
  }
  if (!(typeof alpha === "number" && alpha > 0 && alpha < 1)) {
    throw new RangeError(`alpha must be a number in (0, 1), such as 0.05; got ${String(alpha)}`);
  }
  if (!(typeof power === "number" && power >= 0.5 && power < 1)) {
    throw new RangeError(`power must be a number in [0.5, 1), such as 0.8; got ${String(power)}`);
  }
  if (kind === "proportion") {
    if (!(typeof baseline === "number" && baseline > 0 && baseline < 1)) {
      throw new RangeError(`baseline must be a conversion rate in (0, 1), a fraction such as 0.12; got ${baseline}`);
    }
  } else if (!(typeof variance === "number" && Number.isFinite(variance) && variance > 0)) {
    throw new RangeError(`variance (per-unit variance of the metric) must be a finite number > 0; got ${variance}`);
  }
}

/** Bernoulli variance of a rate clamped into [0, 1]. */
function bernoulliVariance(p: number): number {
  const q = Math.min(1, Math.max(0, p));
  return q * (1 - q);
}

/**
 * σc² + σt² for a design: 2σ² for a mean; for a proportion p(1−p) plus the
 * variance at the alternative rate, baseline + mde or baseline − mde,
 * whichever has the larger variance (so the plan holds in either direction).
 */
function varianceSum(o: DesignOptions, mde: number): number {
  if (o.kind === "mean") return 2 * (o.variance as number);
  const p = o.baseline;
  return bernoulliVariance(p) + Math.max(bernoulliVariance(p + mde), bernoulliVariance(p - mde));
}

/**
 * Units per arm to detect an absolute difference `mde`, equal arms.
 *
 * - fixed: n = (z_{1−α/2} + z_{power})² (σc² + σt²) / mde², the classic
 *   normal-approximation sample size for a two-sided test with unpooled
 *   variances (e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical
 *   Research", two-sample comparison of means/proportions).
 * - sequential: the smallest n with mde ≥ h(n) + z_{power}·s(n), where
 *   s(n)² = (σc² + σt²)/n and h(n) is the confidence-sequence half-width with
 *   τ² tuned to n ({@link mixtureVarianceForSample}); since then h(n) = c_α·s(n)
 *   with c_α = {@link tunedBoundaryMultiplier} (≈ 3.04 at α = 0.05), n =
 *   (c_α + z_{power})² (σc² + σt²)/mde². At that n the CS at the last look
 *   alone excludes 0 with probability `power` (earlier looks only add to it),
 *   so the plan is conservative. It is always larger than `fixed_per_arm`
 *   (≈ 1.9× at α = 0.05, power 0.8): the price of looking at any time.
 *
 * Variances: for a proportion p(1−p) at the baseline and at the alternative
 * (baseline ± mde, whichever varies more); for a mean, `variance` in both arms.
 * Units: baseline and mde are fractions for a proportion (0.1 and 0.01, not 10
 * and 1), metric units for a mean.
 *
 * @throws RangeError for alpha outside (0, 1), power outside [0.5, 1), mde ≤ 0, a proportion
 *   baseline outside (0, 1), or a mean without a positive `variance`
 */
export function planSample(options: {
  kind: MetricKind;
  alpha: number;
  power: number;
  baseline: number;
  variance?: number;
  mde: number;
}): SamplePlan {
  checkDesign(options);
  const { alpha, power, mde } = options;
  if (!(typeof mde === "number" && Number.isFinite(mde) && mde > 0)) {
    throw new RangeError(`mde must be an absolute difference > 0 (a fraction for a proportion); got ${mde}`);
  }
  const vSum = varianceSum(options, mde);
  const zPower = normalQuantileStd(power);
  const fixed = Math.max(2, Math.ceil(((normalQuantileStd(1 - alpha / 2) + zPower) ** 2 * vSum) / (mde * mde)));
  const sequential = Math.max(2, Math.ceil(((tunedBoundaryMultiplier(alpha) + zPower) ** 2 * vSum) / (mde * mde)));
  const tau2 = mixtureVarianceForSample({ alpha, sigma2: vSum / 2, plannedUnitsPerArm: sequential });
  return { fixedPerArm: fixed, sequentialPerArm: sequential, tau2, mde };
}

/**
 * The smallest absolute difference detectable with `unitsPerArm` units per arm
 * at the given power: the inverse of {@link planSample},
 * mde = K·sqrt((σc² + σt²)/n) with K = z_{1−α/2} + z_{power} (fixed) or
 * K = c_α + z_{power} (sequential). For a proportion the alternative's
 * variance depends on the mde, so the equation is solved by fixed-point
 * iteration. `tau2` is τ² tuned to `unitsPerArm` for the sequential test.
 * Units as in {@link planSample}.
 *
 * @throws RangeError on invalid options (see planSample) or unitsPerArm ≤ 0
 */
export function minimumDetectableEffect(options: {
  kind: MetricKind;
  alpha: number;
  power: number;
  baseline: number;
  variance?: number;
  unitsPerArm: number;
}): { fixed: number; sequential: number; tau2: number } {
  checkDesign(options);
  const { alpha, power, unitsPerArm: n } = options;
  if (!(typeof n === "number" && Number.isFinite(n) && n > 0)) {
    throw new RangeError(`unitsPerArm must be a finite number > 0; got ${n}`);
  }
  const zPower = normalQuantileStd(power);
  const solve = (k: number): number => {
    let mde = k * Math.sqrt(varianceSum(options, 0) / n);
    for (let i = 0; i < 200; i++) {
      const next = k * Math.sqrt(varianceSum(options, mde) / n);
      if (Math.abs(next - mde) <= 1e-15 * next) return next;
      mde = next;
    }
    return mde;
  };
  const fixed = solve(normalQuantileStd(1 - alpha / 2) + zPower);
  const sequential = solve(tunedBoundaryMultiplier(alpha) + zPower);
  const tau2 = mixtureVarianceForSample({ alpha, sigma2: varianceSum(options, sequential) / 2, plannedUnitsPerArm: n });
  return { fixed, sequential, tau2 };
}
