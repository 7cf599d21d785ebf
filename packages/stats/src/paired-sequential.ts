/**
 * The mSPRT ({@link sequentialTestOfEstimate}) on the estimates that need a
 * second value per unit: the CUPED-adjusted difference of means and the
 * difference of two ratio metrics (paired-totals.ts), and the fixed-horizon
 * z-test on the same estimates, for comparison.
 */
import { normalQuantileStd, normalTwoSidedP } from "./distributions";
import {
  cupedEstimate,
  type PairedTotals,
  pairedTotalsProblem,
  pooledSlope,
  type RatioArm,
  ratioArm,
  ratioEstimate,
} from "./paired-totals";
import {
  type EffectEstimate,
  type EstimateSequentialOptions,
  type EstimateSequentialResult,
  type SequentialCarry,
  sequentialTestOfEstimate,
} from "./sequential-test";

/** One look of {@link cupedSequentialTest}. */
export interface CupedSequentialResult extends EstimateSequentialResult {
  /** θ, the pooled within-arm slope of the metric on the covariate; null when undefined. */
  theta: number | null;
  /** 1 − adjusted variance / unadjusted variance (a fraction); null when undefined. */
  varianceReduction: number | null;
}

/** One look of {@link ratioSequentialTest}. */
export interface RatioSequentialResult extends EstimateSequentialResult {
  /** The control's ratio Σnum/Σden and its delta-method variance; null when undefined. */
  control: RatioArm | null;
  /** The treatment's ratio and its variance; null when undefined. */
  treatment: RatioArm | null;
}

/**
 * Why an arm's paired totals give no moments, in the words of
 * `summarizeArms` ("control arm is empty", "… has a single unit; its
 * variance is undefined"), or null.
 */
function armWarning(name: string, arm: PairedTotals): string | null {
  const problem = pairedTotalsProblem(arm);
  if (problem !== null) return `${name} arm: ${problem}`;
  if (arm.units === 0) return `${name} arm is empty`;
  if (arm.units < 2) return `${name} arm has a single unit; its variance is undefined`;
  return null;
}

/**
 * One look of the mSPRT on the CUPED-adjusted difference of means (Deng, Xu,
 * Kohavi & Walker 2013): with θ the pooled within-arm slope
 * θ = Σ_arms (Σxy − n·x̄·ȳ) / Σ_arms (Σx² − n·x̄²) ({@link pooledSlope}),
 *
 * - effect = (ȳₜ − ȳ꜀) − θ·(x̄ₜ − x̄꜀);
 * - Var(effect) = Σ_{a ∈ {t, c}} (s²_y − 2θ·s_xy + θ²·s²_x)ₐ / nₐ (sample n − 1 moments);
 *
 * then {@link sequentialTestOfEstimate} with the given τ² (on the scale of the
 * difference of means, as for the unadjusted test). y is the metric (0/1 for
 * a proportion), x the pre-exposure covariate.
 *
 * Degenerate input (an arm with fewer than 2 units, invalid totals, a
 * covariate that does not vary within the arms, a zero variance) gives
 * `null`s and a warning and carries the previous look; never throws.
 *
 * @param pooledOver every arm of the experiment, to pool θ over (default: control and treatment)
 */
export function cupedSequentialTest(
  control: PairedTotals,
  treatment: PairedTotals,
  options: EstimateSequentialOptions,
  previous: SequentialCarry | null,
  pooledOver?: readonly PairedTotals[],
): CupedSequentialResult {
  const armProblems = [armWarning("control", control), armWarning("treatment", treatment)].filter(
    (w): w is string => w !== null,
  );
  let theta: number | null = null;
  let reason: string | undefined;
  let estimate: ReturnType<typeof cupedEstimate> = null;
  if (armProblems.length > 0) {
    reason = armProblems.join("; ");
  } else {
    theta = pooledSlope(pooledOver ?? [control, treatment]);
    if (theta === null) {
      reason =
        "the covariate does not vary within the arms (or an arm has fewer than 2 units): " +
        "the CUPED slope θ is undefined";
    } else {
      estimate = cupedEstimate(control, treatment, theta);
      if (estimate === null)
        reason = "the variance of the CUPED estimate is 0: the test is undefined until the values vary";
    }
  }
  const look = sequentialTestOfEstimate(estimate, options, previous, reason);
  return { ...look, theta, varianceReduction: estimate?.varianceReduction ?? null };
}

/**
 * One look of the mSPRT on the difference of two ratio metrics Rₜ − R꜀, each
 * R = Σnum/Σden with the delta-method variance
 * Var(R) = (s²_num − 2R·s_num,den + R²·s²_den) / (n·d̄²), d̄ = Σden/n, sample
 * (n − 1) (co)variances (Deng, Knoblich & Lu 2018, KDD, §3), and
 * Var(Rₜ − R꜀) = Var(Rₜ) + Var(R꜀). In {@link PairedTotals}, y is the
 * numerator and x the denominator per unit. The relative lift Rₜ/R꜀ − 1 has
 * its delta-method variance.
 *
 * Degenerate input (an arm with fewer than 2 units, invalid totals, a
 * denominator that sums to 0, a zero variance) gives `null`s and a warning
 * and carries the previous look; never throws.
 */
export function ratioSequentialTest(
  control: PairedTotals,
  treatment: PairedTotals,
  options: EstimateSequentialOptions,
  previous: SequentialCarry | null,
): RatioSequentialResult {
  const problems: string[] = [];
  for (const [name, arm] of [
    ["control", control],
    ["treatment", treatment],
  ] as const) {
    const warning = armWarning(name, arm);
    if (warning !== null) problems.push(warning);
    else if (arm.pairSum === 0) problems.push(`${name} arm: the denominator sums to 0, so its ratio is undefined`);
  }
  const c = problems.length === 0 ? ratioArm(control) : null;
  const t = problems.length === 0 ? ratioArm(treatment) : null;
  const estimate = problems.length === 0 ? ratioEstimate(control, treatment) : null;
  if (problems.length === 0 && estimate === null) {
    problems.push(
      c === null || t === null
        ? "a ratio is undefined (its totals overflow a double)"
        : "the variance of the difference of ratios is 0: the test is undefined until the values vary",
    );
  }
  const look = sequentialTestOfEstimate(
    estimate,
    options,
    previous,
    problems.length > 0 ? problems.join("; ") : undefined,
  );
  return { ...look, control: c, treatment: t };
}

/** Result of {@link fixedHorizonTestOfEstimate}. */
export interface EstimateFixedHorizonResult {
  /** z = effect / sqrt(variance). */
  statistic: number | null;
  /** Two-sided p-value. */
  pValue: number | null;
  /** Two-sided 1−α Wald interval for the effect. */
  ci: [number, number] | null;
  warnings: string[];
}

/**
 * The fixed-horizon two-sided z-test of an asymptotically normal estimate
 * (for comparison with the sequential test; valid at one look only):
 * z = Δ/s, p = erfc(|z|/√2), interval Δ ± z_{1−α/2}·s. The large-sample Wald
 * test (e.g. A. Agresti, "Categorical Data Analysis"); for CUPED it is the
 * test of Deng et al. (2013), for ratios that of Deng, Knoblich & Lu (2018).
 *
 * @returns `null`s with a warning for a null estimate, a variance that is not > 0, or α outside (0, 1) (interval only)
 */
export function fixedHorizonTestOfEstimate(estimate: EffectEstimate | null, alpha = 0.05): EstimateFixedHorizonResult {
  const warnings: string[] = [];
  const none: EstimateFixedHorizonResult = { statistic: null, pValue: null, ci: null, warnings };
  if (estimate === null) return none;
  const { effect, variance } = estimate;
  if (!(Number.isFinite(effect) && Number.isFinite(variance) && variance > 0)) {
    warnings.push("the variance of the estimate is 0: the test is undefined until the values vary");
    return none;
  }
  const se = Math.sqrt(variance);
  const z = effect / se;
  let ci: [number, number] | null = null;
  if (typeof alpha === "number" && alpha > 0 && alpha < 1) {
    const half = normalQuantileStd(1 - alpha / 2) * se;
    ci = [effect - half, effect + half];
  } else {
    warnings.push(`alpha must be in (0, 1), such as 0.05; got ${String(alpha)}; no interval is given`);
  }
  return { statistic: z, pValue: normalTwoSidedP(z), ci, warnings };
}
