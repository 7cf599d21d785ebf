/**
 * The mixture sequential probability ratio test (mSPRT) with a normal mixing
 * distribution on the difference of arm means, its always-valid p-value and
 * its confidence sequence.
 *
 * Source: R. Johari, L. Pekelis, D. Walsh (2017), "Always Valid Inference:
 * Bringing Sequential Analysis to A/B Testing", arXiv:1512.04922 (published in
 * Operations Research 70(3), 2022 as "Always Valid Inference: Continuous
 * Monitoring of A/B Tests"): the normal-mixture likelihood ratio for a
 * difference of means, the always-valid p-value as the running minimum of
 * 1/Λ, and the confidence sequence as the set of θ₀ not rejected, i.e. the
 * running intersection of the per-look intervals below. With estimated
 * variances the guarantee is asymptotic (Waudby-Smith, Arbour, Sinha, Kennedy
 * & Ramdas, "Time-uniform central limit theory and asymptotic confidence
 * sequences", arXiv:2103.06476).
 */
import { type ArmSummary, type ArmTotals, type MetricKind, summarizeArms } from "./arm-summary";

/** What one look hands to the next: the running minimum p-value and the running intersections. */
export interface SequentialCarry {
  pValue: number;
  ci: [number, number];
  relativeCi: [number, number] | null;
}

/** Options of {@link sequentialTest}. */
export interface SequentialOptions {
  kind: MetricKind;
  /** Type I error level, in (0, 1): 0.05, not 5. */
  alpha: number;
  /** Mixture variance τ² on the scale of the difference of means (squared metric units), > 0. */
  tau2: number;
  /** The difference under the null hypothesis (default 0). */
  theta0?: number;
}

/** One look of the mSPRT. Every number is finite or `null`. */
export interface SequentialResult {
  control: ArmSummary;
  treatment: ArmSummary;
  /** Treatment mean − control mean (absolute; a difference of fractions for a proportion). */
  effect: number | null;
  /** s² = σc²/nc + σt²/nt, the variance of `effect`. */
  variance: number | null;
  /** Always-valid confidence sequence for the effect, intersected with the previous look's. */
  ci: [number, number] | null;
  /** effect / control mean (a fraction: 0.05 is +5 %). */
  relativeLift: number | null;
  /** Always-valid interval for the relative lift (delta method), intersected with the previous look's. */
  relativeCi: [number, number] | null;
  /** Always-valid p-value: running minimum of min(1, 1/Λ). */
  pValue: number | null;
  /** ln Λ at this look. */
  logLambda: number | null;
  /** To pass to the next look; `null` only while nothing has been defined yet. */
  carry: SequentialCarry | null;
  warnings: string[];
}

/**
 * ln Λ of the normal-mixture SPRT for an observed difference whose sampling
 * distribution is N(θ, s²), mixing over θ ~ N(θ₀, τ²), with d = Δ − θ₀
 * (Johari et al. 2017, the normal-mixture likelihood ratio):
 *
 *   Λ = sqrt(s²/(s²+τ²)) · exp( τ² d² / (2 s² (s²+τ²)) )
 *
 * computed in logs: ln Λ = −½·ln(1 + τ²/s²) + (d²/(2s²)) · 1/(1 + s²/τ²).
 * Returns +∞ only if d²/s² overflows a double.
 */
export function mixtureLogLikelihoodRatio(d: number, s2: number, tau2: number): number {
  return -0.5 * Math.log1p(tau2 / s2) + ((d * d) / (2 * s2)) * (1 / (1 + s2 / tau2));
}

/**
 * Half-width of the confidence-sequence interval at one look, the set of θ₀
 * with Λ(θ₀) < 1/α (Johari et al. 2017; the same boundary as the two-sided
 * normal mixture of Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
 * nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)):
 *
 *   h = sqrt( s²(s²+τ²)/τ² · (2 ln(1/α) + ln((s²+τ²)/s²)) )
 */
function confidenceSequenceHalfWidth(s2: number, tau2: number, alpha: number): number {
  return Math.sqrt(s2 * (1 + s2 / tau2) * (-2 * Math.log(alpha) + Math.log1p(tau2 / s2)));
}

/**
 * The ratio x = τ²/s* ² minimising the half-width at a target variance s*²:
 * h²/s² = (1 + 1/x)(2 ln(1/α) + ln(1 + x)) is smallest where
 * x = 2 ln(1/α) + ln(1 + x), solved by fixed-point iteration (a contraction:
 * the derivative 1/(1+x) is < 1). GrowthBook's closed form (after Howard et
 * al. 2021) is one step of this iteration from x = 2 ln(1/α):
 * x ≈ 2 ln(1/α) + ln(1 + 2 ln(1/α)); the exact root gives a half-width
 * 0.003 % smaller at α = 0.05 (x = 8.2120 against 7.9362).
 */
export function optimalMixtureRatio(alpha: number): number {
  const twoL = -2 * Math.log(alpha);
  let x = twoL + Math.log1p(twoL);
  for (let i = 0; i < 200; i++) {
    const next = twoL + Math.log1p(x);
    if (Math.abs(next - x) <= 1e-15 * next) return next;
    x = next;
  }
  return x;
}

/**
 * The constant c_α with half-width = c_α · s at the look where τ² is tuned:
 * c_α = sqrt((1 + 1/x)(2 ln(1/α) + ln(1 + x))), x = {@link optimalMixtureRatio}.
 * About 3.04 at α = 0.05 (against 1.96 for a single fixed-horizon look).
 */
export function tunedBoundaryMultiplier(alpha: number): number {
  const x = optimalMixtureRatio(alpha);
  return Math.sqrt((1 + 1 / x) * (-2 * Math.log(alpha) + Math.log1p(x)));
}

function assertAlpha(alpha: number): void {
  if (!(typeof alpha === "number" && alpha > 0 && alpha < 1)) {
    throw new RangeError(`alpha must be a number in (0, 1), such as 0.05; got ${String(alpha)}`);
  }
}

/**
 * The mixture variance τ² that makes the confidence sequence tightest when
 * each arm has `plannedUnitsPerArm` units (GrowthBook's "N*" tuning: their
 * τ² = ρ²σ² with ρ chosen for the planned sample, after Howard et al. 2021's
 * normal-mixture boundary; see docs.growthbook.io/statistics/sequential).
 *
 * With equal arms of per-unit variance σ², the difference has variance
 * s*² = 2σ²/n at n units per arm, and τ² = x·s*² with x the exact minimiser
 * of the half-width ({@link optimalMixtureRatio}; x ≈ 8.21 at α = 0.05).
 *
 * @param options.alpha type I error level in (0, 1)
 * @param options.sigma2 per-unit variance (p(1−p) for a proportion, squared metric units for a mean), > 0
 * @param options.plannedUnitsPerArm planned units in each arm, > 0
 * @returns τ² in squared metric units (the scale of the difference of means)
 * @throws RangeError when an option is out of range
 */
export function mixtureVarianceForSample(options: {
  alpha: number;
  sigma2: number;
  plannedUnitsPerArm: number;
}): number {
  const { alpha, sigma2, plannedUnitsPerArm } = options;
  assertAlpha(alpha);
  if (!(typeof sigma2 === "number" && Number.isFinite(sigma2) && sigma2 > 0)) {
    throw new RangeError(`sigma2 (per-unit variance) must be a finite number > 0; got ${String(sigma2)}`);
  }
  if (!(typeof plannedUnitsPerArm === "number" && Number.isFinite(plannedUnitsPerArm) && plannedUnitsPerArm > 0)) {
    throw new RangeError(`plannedUnitsPerArm must be a finite number > 0; got ${String(plannedUnitsPerArm)}`);
  }
  return optimalMixtureRatio(alpha) * ((2 * sigma2) / plannedUnitsPerArm);
}

/**
 * τ² from the effect one expects: τ² = effect², i.e. the mixing distribution
 * N(0, τ²) has its standard deviation at the expected absolute difference.
 * Johari et al. (2017) recommend matching the mixing distribution to the
 * effect sizes anticipated (in practice, fitted to the effects of past
 * experiments); with a single anticipated effect δ the matching normal is
 * N(0, δ²).
 *
 * @param options.effect expected absolute difference of means (metric units; a fraction for a proportion), ≠ 0
 * @returns τ² in squared metric units
 * @throws RangeError when effect is 0 or not finite
 */
export function mixtureVarianceForEffect(options: { effect: number }): number {
  const { effect } = options;
  if (!(typeof effect === "number" && Number.isFinite(effect) && effect !== 0)) {
    throw new RangeError(`effect must be a finite, non-zero number (absolute difference); got ${String(effect)}`);
  }
  return effect * effect;
}

/** A usable previous carry, or null (with a warning) when it is malformed. */
export function sanitizeCarry(previous: SequentialCarry | null, warnings: string[]): SequentialCarry | null {
  if (previous === null || previous === undefined) return null;
  const finitePair = (v: unknown): v is [number, number] =>
    Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number" && Number.isFinite(x)) && v[0] <= v[1];
  const ok =
    typeof previous.pValue === "number" &&
    previous.pValue >= 0 &&
    previous.pValue <= 1 &&
    finitePair(previous.ci) &&
    (previous.relativeCi === null || finitePair(previous.relativeCi));
  if (!ok) {
    warnings.push("the previous look's carry is malformed and was ignored");
    return null;
  }
  return previous;
}

/**
 * Intersects an interval with the previous running interval. When the
 * intersection would be empty — possible only if coverage has already failed
 * or the effect drifts over time — the running interval restarts from this
 * look's interval, with a warning, so the answer stays defined.
 */
export function intersectRunning(
  previous: [number, number] | null | undefined,
  current: [number, number],
  label: string,
  warnings: string[],
): [number, number] {
  if (!previous) return current;
  const lo = Math.max(previous[0], current[0]);
  const hi = Math.min(previous[1], current[1]);
  if (lo <= hi) return [lo, hi];
  warnings.push(
    `the running ${label} became empty (this look's interval is disjoint from the previous ones: the effect ` +
      "may be drifting over time); it restarts from this look's interval",
  );
  return current;
}

/**
 * Variance of the relative lift r = (μt − μc)/μc by the delta method:
 * Var(r) ≈ σt²/(nt μc²) + μt² σc²/(nc μc⁴).
 */
export function relativeLiftVariance(control: ArmSummary, treatment: ArmSummary): number | null {
  if (
    control.mean === null ||
    treatment.mean === null ||
    control.variance === null ||
    treatment.variance === null ||
    control.mean === 0
  ) {
    return null;
  }
  const mc2 = control.mean * control.mean;
  const v =
    treatment.variance / (treatment.units * mc2) +
    (treatment.mean * treatment.mean * control.variance) / (control.units * mc2 * mc2);
  return Number.isFinite(v) ? v : null;
}

/**
 * An estimate of treatment − control ready for the mSPRT: any asymptotically
 * normal, unbiased estimate of a difference with a consistent variance
 * (a difference of means, the CUPED-adjusted difference, a difference of
 * ratios).
 */
export interface EffectEstimate {
  /** Treatment − control, in metric units. */
  effect: number;
  /** Variance of `effect`, s² (squared metric units), ≥ 0. */
  variance: number;
  /** The control's level the relative lift divides by (control mean, or control ratio); null when unknown. */
  controlLevel: number | null;
  /** Delta-method variance of effect / controlLevel; absent or null when undefined (no relative interval then). */
  relativeVariance?: number | null;
}

/** Options of {@link sequentialTestOfEstimate}: those of {@link sequentialTest} without the metric kind. */
export type EstimateSequentialOptions = Omit<SequentialOptions, "kind">;

/** One look of the mSPRT on an estimate: {@link SequentialResult} without the per-arm summaries. */
export type EstimateSequentialResult = Omit<SequentialResult, "control" | "treatment">;

/**
 * The look itself, shared by {@link sequentialTest} and
 * {@link sequentialTestOfEstimate}. `effect` and `s2` may be null (the
 * estimate is undefined at this look): the previous look is then carried.
 */
function mixtureLook(
  look: {
    effect: number | null;
    s2: number | null;
    controlLevel: number | null;
    relativeVariance: number | null | undefined;
    zeroVarianceWarning: string;
  },
  options: EstimateSequentialOptions,
  prior: SequentialCarry | null,
  warnings: string[],
): EstimateSequentialResult {
  const { effect, s2, controlLevel } = look;
  const relativeLift = effect !== null && controlLevel !== null && controlLevel !== 0 ? effect / controlLevel : null;

  const carried = (): EstimateSequentialResult => {
    if (prior !== null) {
      warnings.push("no new evidence at this look; the p-value and intervals are carried from the previous look");
    }
    return {
      effect,
      variance: s2 !== null && Number.isFinite(s2) ? s2 : null,
      ci: prior?.ci ?? null,
      relativeLift: relativeLift,
      relativeCi: prior?.relativeCi ?? null,
      pValue: prior?.pValue ?? null,
      logLambda: null,
      carry: prior,
      warnings,
    };
  };

  if (effect === null || s2 === null) return carried();
  if (s2 === 0) {
    warnings.push(look.zeroVarianceWarning);
    return carried();
  }
  const { alpha, tau2 } = options;
  const theta0 = options.theta0 ?? 0;
  if (!(typeof alpha === "number" && alpha > 0 && alpha < 1)) {
    warnings.push(`alpha must be in (0, 1), such as 0.05; got ${String(alpha)}`);
    return carried();
  }
  if (!(typeof tau2 === "number" && Number.isFinite(tau2) && tau2 > 0)) {
    warnings.push(`tau2 (mixture variance) must be a finite number > 0; got ${String(tau2)}`);
    return carried();
  }
  if (!(typeof theta0 === "number" && Number.isFinite(theta0))) {
    warnings.push(`theta0 must be a finite number; got ${String(theta0)}`);
    return carried();
  }
  if (!Number.isFinite(s2)) {
    warnings.push("the variance of the effect overflows a double; check the totals");
    return carried();
  }

  let logLambda: number | null = mixtureLogLikelihoodRatio(effect - theta0, s2, tau2);
  let lookP: number;
  if (Number.isFinite(logLambda)) {
    lookP = logLambda <= 0 ? 1 : Math.exp(-logLambda);
  } else {
    warnings.push("the likelihood ratio overflows a double; the p-value is reported as 0");
    logLambda = null;
    lookP = 0;
  }
  const pValue = prior !== null ? Math.min(prior.pValue, lookP) : lookP;

  const half = confidenceSequenceHalfWidth(s2, tau2, alpha);
  if (!Number.isFinite(half)) {
    warnings.push("the confidence-sequence width overflows a double; check tau2 and the totals");
    return { ...carried(), logLambda: logLambda };
  }
  const ci = intersectRunning(prior?.ci, [effect - half, effect + half], "confidence interval", warnings);

  let relativeCi: [number, number] | null = prior?.relativeCi ?? null;
  if (controlLevel === 0) {
    warnings.push("control mean is 0: the relative lift is undefined");
  } else if (relativeLift !== null && controlLevel !== null) {
    const vr = look.relativeVariance;
    const halfR =
      vr !== null && vr !== undefined && vr > 0
        ? confidenceSequenceHalfWidth(vr, tau2 / (controlLevel * controlLevel), alpha)
        : Number.NaN;
    if (Number.isFinite(halfR)) {
      relativeCi = intersectRunning(
        prior?.relativeCi,
        [relativeLift - halfR, relativeLift + halfR],
        "relative interval",
        warnings,
      );
    } else {
      warnings.push("the relative interval is undefined at this look (its delta-method variance is 0)");
    }
  }

  const carry: SequentialCarry = { pValue: pValue, ci, relativeCi: relativeCi };
  return {
    effect,
    variance: s2,
    ci,
    relativeLift: relativeLift,
    relativeCi: relativeCi,
    pValue: pValue,
    logLambda: logLambda,
    carry,
    warnings,
  };
}

/**
 * One look of the mSPRT on the difference of means (treatment − control).
 *
 * With Δ the observed difference, s² = σc²/nc + σt²/nt and τ² the mixture
 * variance (Johari, Pekelis & Walsh 2017, arXiv:1512.04922):
 *
 * - Λ = sqrt(s²/(s²+τ²)) · exp(τ²(Δ−θ₀)² / (2 s²(s²+τ²))), computed as ln Λ;
 * - p = min(previous p, min(1, 1/Λ)) — the always-valid p-value;
 * - CI = [Δ ± sqrt(s²(s²+τ²)/τ² · (2 ln(1/α) + ln((s²+τ²)/s²)))] ∩ previous CI;
 * - relative lift r = Δ/μc with the delta-method variance
 *   s_r² = σt²/(nt μc²) + μt² σc²/(nc μc⁴) and the same boundary with
 *   τ_r² = τ²/μc² (the mixture rescaled to the relative scale), ∩ previous.
 *
 * Per-arm variance: p(1−p) for proportions, the unbiased sample variance for
 * means. Units: effect and CI in metric units (fractions for proportions,
 * never percents); relative lift as a fraction. The look itself is
 * {@link sequentialTestOfEstimate}'s, on the estimate
 * { effect: Δ, variance: s², controlLevel: μc, relativeVariance: s_r² }.
 *
 * Degenerate input never throws and never yields NaN or ±∞: an empty arm, a
 * single unit of a mean metric, zero variance in both arms, invalid totals or
 * options give `null` for what cannot be computed and a warning; the previous
 * look's p-value and intervals are then carried through unchanged (they
 * remain valid: the running minimum and intersection over the looks so far).
 * A running intersection that would become empty restarts from this look's
 * interval, with a warning.
 *
 * @param previous the `carry` of the previous look of the same experiment, or null at the first look
 */
export function sequentialTest(
  control: ArmTotals,
  treatment: ArmTotals,
  options: SequentialOptions,
  previous: SequentialCarry | null,
): SequentialResult {
  const pair = summarizeArms(options.kind, control, treatment);
  const warnings = [...pair.warnings];
  const prior = sanitizeCarry(previous, warnings);
  const c = pair.control;
  const t = pair.treatment;

  const effect = c.mean !== null && t.mean !== null ? t.mean - c.mean : null;
  const s2 =
    effect !== null && c.variance !== null && t.variance !== null ? c.variance / c.units + t.variance / t.units : null;
  const look = mixtureLook(
    {
      effect,
      s2,
      controlLevel: c.mean,
      relativeVariance: c.mean !== null && c.mean !== 0 ? relativeLiftVariance(c, t) : null,
      zeroVarianceWarning: "zero variance in both arms: the test is undefined until the values vary",
    },
    options,
    prior,
    warnings,
  );
  return { control: c, treatment: t, ...look };
}

/**
 * One look of the same mSPRT ({@link sequentialTest}) on a given estimate of
 * treatment − control with its variance s² — the regression-adjusted (CUPED)
 * difference, a difference of ratios, or any asymptotically normal estimate:
 *
 * - Λ = sqrt(s²/(s²+τ²)) · exp(τ²(Δ−θ₀)² / (2 s²(s²+τ²))), p = min(previous p, min(1, 1/Λ));
 * - CI = [Δ ± sqrt(s²(s²+τ²)/τ² · (2 ln(1/α) + ln((s²+τ²)/s²)))] ∩ previous CI;
 * - relative lift Δ/controlLevel, with `relativeVariance` and τ_r² = τ²/controlLevel²,
 *   ∩ previous (none when `relativeVariance` is absent).
 *
 * Source: Johari, Pekelis & Walsh (2017), arXiv:1512.04922: the mSPRT needs
 * only an asymptotically normal estimate and its variance. With an estimated
 * variance (and, for CUPED, an estimated slope) the guarantee is asymptotic
 * (Waudby-Smith et al., arXiv:2103.06476).
 *
 * A `null` estimate (undefined at this look: a degenerate arm, a zero
 * denominator, a covariate that does not vary) carries the previous look's
 * p-value and intervals, with `null` for the rest; say why in `reason`
 * (added to the warnings). Never throws; never NaN or ±∞.
 *
 * @param estimate the estimate at this look, or null when it is undefined
 * @param previous the `carry` of the previous look of the same comparison, or null at the first look
 * @param reason why the estimate is null, for the warnings
 */
export function sequentialTestOfEstimate(
  estimate: EffectEstimate | null,
  options: EstimateSequentialOptions,
  previous: SequentialCarry | null,
  reason?: string,
): EstimateSequentialResult {
  const warnings: string[] = [];
  if (estimate === null && reason !== undefined) warnings.push(reason);
  const prior = sanitizeCarry(previous, warnings);
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  let effect: number | null = null;
  let s2: number | null = null;
  if (estimate !== null) {
    if (!finite(estimate.effect) || !(typeof estimate.variance === "number" && estimate.variance >= 0)) {
      warnings.push(
        `the estimate needs a finite effect and a variance ≥ 0; got effect ${String(estimate.effect)}, ` +
          `variance ${String(estimate.variance)}`,
      );
    } else {
      effect = estimate.effect;
      s2 = estimate.variance;
    }
  }
  const controlLevel = estimate !== null && finite(estimate.controlLevel) ? estimate.controlLevel : null;
  return mixtureLook(
    {
      effect,
      s2,
      controlLevel,
      relativeVariance: estimate?.relativeVariance,
      zeroVarianceWarning: "the variance of the estimate is 0: the test is undefined until the values vary",
    },
    options,
    prior,
    warnings,
  );
}
