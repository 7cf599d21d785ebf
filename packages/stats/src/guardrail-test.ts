/**
 * Guardrails: a one-sided, always-valid test that a metric has not degraded
 * by more than a tolerated margin.
 */
import { type ArmTotals, type MetricKind, summarizeArms } from "./arm-summary";
import { logNormalCdf } from "./distributions";
import {
  intersectRunning,
  mixtureLogLikelihoodRatio,
  relativeLiftVariance,
  type SequentialCarry,
  sanitizeCarry,
} from "./sequential-test";

/** Options of {@link guardrailTest}. */
export interface GuardrailOptions {
  kind: MetricKind;
  /** Level of each one-sided claim, in (0, 1). */
  alpha: number;
  /** Mixture variance τ² on the absolute scale (squared metric units), > 0. */
  tau2: number;
  /** The metric's desired direction; a move the other way is harm. */
  direction: "increase" | "decrease";
  /** Tolerated regression, > 0: a fraction of the control mean when `relative`, else metric units. */
  margin: number;
  relative: boolean;
}

/** Result of {@link guardrailTest}. Numbers are in the margin's units. */
export interface GuardrailResult {
  verdict: "violated" | "ok" | "inconclusive";
  /** Estimated harm: the move against the desired direction (negative when the metric improved). */
  harm: number | null;
  /** Running always-valid bounds on the harm: [lower, upper], each one-sided at level α. */
  harmCi: [number, number] | null;
  /** Always-valid p-value of H0: harm ≤ margin (running minimum). */
  pValue: number | null;
  /** Pass to the next look of the same guardrail (with the same options); `ci` holds the harm bounds. */
  carry: SequentialCarry | null;
  warnings: string[];
}

/**
 * ln Λ⁺ of the one-sided normal mixture: the Gaussian likelihood ratio of
 * N(θ₀ + u, v) against N(θ₀, v) for an estimate with d = estimate − θ₀, mixed
 * over u ≥ 0 with a half-normal of scale τ (density 2·φ(u; 0, τ²) on u ≥ 0).
 * Completing the square gives the closed form
 *
 *   Λ⁺ = 2 · Λ · Φ(z),   z = d·sqrt(τ²/(v(v+τ²))),
 *
 * with Λ the two-sided normal-mixture ratio. Mixing a likelihood ratio over a
 * proper prior keeps it a nonnegative martingale under θ = θ₀ (and a
 * supermartingale under θ < θ₀), so 1/Λ⁺ gives a one-sided always-valid
 * p-value by Ville's inequality. This is the one-sided normal mixture of
 * Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
 * nonasymptotic confidence sequences", Ann. Statist. 49(2), evaluated exactly
 * instead of through its closed-form upper bound.
 */
function oneSidedLogLambda(d: number, v: number, tau2: number): number {
  const z = d * Math.sqrt(tau2 / v) * (1 / Math.sqrt(v + tau2));
  return Math.LN2 + mixtureLogLikelihoodRatio(d, v, tau2) + logNormalCdf(z);
}

/**
 * The c with Λ⁺(d = c) = 1/α: the one-sided always-valid bounds are
 * estimate ∓ c. Solved by bisection on z ≥ 0 for
 * z²/2 + ln Φ(z) = ln(1/α) − ln 2 + ½ ln(1 + τ²/v); the upper bracket is the
 * closed-form conservative boundary GrowthBook uses for its one-sided
 * sequential tests, z = sqrt(2 ln(1 + sqrt((v+τ²)/v)/(2α))).
 */
function oneSidedHalfWidth(v: number, tau2: number, alpha: number): number {
  const target = -Math.log(alpha) - Math.LN2 + 0.5 * Math.log1p(tau2 / v);
  const g = (z: number) => 0.5 * z * z + logNormalCdf(z);
  let lo = 0;
  let hi = Math.sqrt(2 * Math.log1p(Math.sqrt(1 + tau2 / v) / (2 * alpha)));
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (g(mid) < target) lo = mid;
    else hi = mid;
  }
  return hi * Math.sqrt(v * (1 + v / tau2));
}

/**
 * One look of a guardrail: a one-sided sequential test of H0: harm ≤ margin.
 *
 * harm = control − treatment for a metric whose desired direction is
 * "increase", treatment − control for "decrease"; with `relative`, divided by
 * |control mean| (delta-method variance, τ² rescaled by 1/μc² as in
 * {@link sequentialTest}). Each look computes the one-sided normal-mixture
 * ratio Λ⁺ (see {@link oneSidedLogLambda}: Howard et al. 2021's one-sided
 * normal mixture, evaluated exactly) and the bounds estimate ∓ c at which
 * Λ⁺ = 1/α on either side. Across looks: p = running min of min(1, 1/Λ⁺(margin)),
 * lower bound = running max, upper bound = running min.
 *
 * Verdict:
 * - "violated" when p < α, equivalently when the lower bound has exceeded the
 *   margin: harm > margin, with error probability ≤ α under continuous monitoring;
 * - "ok" when the upper bound is below the margin: harm < margin, with error
 *   probability ≤ α (the mirror-image test);
 * - otherwise "inconclusive".
 * Each claim is one-sided at level α, so this is tighter than using a two-sided
 * level-α confidence sequence, and exact where "a two-sided sequence at level
 * 2α used one-sidedly" is only approximately level α.
 *
 * Degenerate input (empty arm, one unit, zero variance, control mean 0 for a
 * relative margin, invalid options) gives nulls and a warning and carries the
 * previous look's state; never throws, never NaN.
 */
export function guardrailTest(
  control: ArmTotals,
  treatment: ArmTotals,
  options: GuardrailOptions,
  previous: SequentialCarry | null,
): GuardrailResult {
  const pair = summarizeArms(options.kind, control, treatment);
  const warnings = [...pair.warnings];
  const prior = sanitizeCarry(previous, warnings);
  const { alpha, tau2, direction, margin, relative } = options;

  const verdictOf = (p: number, upper: number): GuardrailResult["verdict"] =>
    p < alpha ? "violated" : upper < margin ? "ok" : "inconclusive";
  const carried = (harm: number | null = null): GuardrailResult => {
    if (prior !== null) {
      warnings.push("no new evidence at this look; the p-value and bounds are carried from the previous look");
    }
    return {
      verdict: prior !== null && alpha > 0 && alpha < 1 ? verdictOf(prior.pValue, prior.ci[1]) : "inconclusive",
      harm,
      harmCi: prior?.ci ?? null,
      pValue: prior?.pValue ?? null,
      carry: prior,
      warnings,
    };
  };

  if (!(typeof alpha === "number" && alpha > 0 && alpha < 1)) {
    warnings.push(`alpha must be in (0, 1), such as 0.05; got ${String(alpha)}`);
    return carried();
  }
  if (!(typeof tau2 === "number" && Number.isFinite(tau2) && tau2 > 0)) {
    warnings.push(`tau2 (mixture variance) must be a finite number > 0; got ${String(tau2)}`);
    return carried();
  }
  if (direction !== "increase" && direction !== "decrease") {
    warnings.push(`direction must be "increase" or "decrease"; got ${String(direction)}`);
    return carried();
  }
  if (!(typeof margin === "number" && Number.isFinite(margin) && margin > 0)) {
    warnings.push(`margin (tolerated regression) must be a finite number > 0; got ${String(margin)}`);
    return carried();
  }

  const c = pair.control;
  const t = pair.treatment;
  if (c.mean === null || t.mean === null) return carried();
  const effect = t.mean - c.mean;
  const harmAbs = direction === "increase" ? -effect : effect;
  if (c.variance === null || t.variance === null) return carried(relative ? null : harmAbs);

  let estimate: number;
  let v: number | null;
  let tau: number;
  if (relative) {
    if (c.mean === 0) {
      warnings.push("control mean is 0: a margin relative to it is undefined");
      return carried();
    }
    estimate = harmAbs / Math.abs(c.mean);
    v = relativeLiftVariance(c, t);
    tau = tau2 / (c.mean * c.mean);
  } else {
    estimate = harmAbs;
    v = c.variance / c.units + t.variance / t.units;
    tau = tau2;
  }
  if (v === null || !(v > 0) || !Number.isFinite(v) || !Number.isFinite(tau) || !(tau > 0)) {
    warnings.push(
      c.variance === 0 && t.variance === 0
        ? "zero variance in both arms: the test is undefined until the values vary"
        : "the variance of the harm estimate is 0 or not representable at this look",
    );
    return carried(estimate);
  }

  const half = oneSidedHalfWidth(v, tau, alpha);
  if (!Number.isFinite(half)) {
    warnings.push("the guardrail bounds overflow a double; check tau2 and the totals");
    return carried(estimate);
  }
  const d = estimate - margin;
  const z = d * Math.sqrt(tau / v) * (1 / Math.sqrt(v + tau));
  // Below z = −20, Λ⁺ ≤ 2Φ(z)e^{z²/2} < 2/(|z|√(2π)) < 1, so the look's p is 1.
  const logL = z < -20 ? 0 : oneSidedLogLambda(d, v, tau);
  const lookP = !Number.isFinite(logL) ? (logL > 0 ? 0 : 1) : logL <= 0 ? 1 : Math.exp(-logL);
  const p = prior !== null ? Math.min(prior.pValue, lookP) : lookP;
  const ci = intersectRunning(prior?.ci, [estimate - half, estimate + half], "harm interval", warnings);
  return {
    verdict: verdictOf(p, ci[1]),
    harm: estimate,
    harmCi: ci,
    pValue: p,
    carry: { pValue: p, ci, relativeCi: null },
    warnings,
  };
}
