/**
 * Sample ratio mismatch (SRM): are the observed arm sizes consistent with the
 * configured traffic weights? A mismatch means the assignment or the logging
 * is broken, and no effect estimate can be trusted until it is explained.
 */
import { chiSquareUpperTail, logGamma } from "./distributions";

/** Result of {@link srmChiSquare}. */
export interface SrmResult {
  /** Pearson's χ² statistic with k − 1 degrees of freedom. */
  statistic: number | null;
  pValue: number | null;
  /** True when p < threshold and every arm has at least `minUnitsPerArm` units. */
  alarm: boolean;
  warnings: string[];
}

/** Result of {@link sequentialSrm}. */
export interface SequentialSrmResult {
  /** Always-valid p-value: running minimum of min(1, 1/BF). */
  pValue: number | null;
  /** True when p < threshold. */
  alarm: boolean;
  /** The running minimum p-value to pass to the next look (`null` while undefined). */
  carry: number | null;
  warnings: string[];
}

/** The default SRM alarm threshold (GrowthBook and most platforms use p < 0.001). */
export const SRM_THRESHOLD = 0.001;

/**
 * Default Dirichlet concentration k of the sequential SRM test: the prior is
 * Dirichlet(k·w), centred on the configured weights w. 10 000 is the default
 * of the authors' reference implementation (ssrm-test, Optimizely, 2020),
 * which concentrates the alternative on small imbalances (of order
 * 1/sqrt(k) = 1 %), the kind SRMs usually are.
 */
export const SRM_DIRICHLET_CONCENTRATION = 10_000;

/** Normalised weights, or a reason they cannot be used. */
function checkCounts(
  units: readonly number[],
  weights: readonly number[],
): { ok: true; w: number[]; n: number } | { ok: false; warning: string } {
  if (!Array.isArray(units) || !Array.isArray(weights) || units.length !== weights.length) {
    return { ok: false, warning: "units and weights must be lists of the same length (one entry per arm)" };
  }
  if (units.length < 2) return { ok: false, warning: "an SRM test needs at least two arms" };
  if (!units.every((u) => typeof u === "number" && Number.isFinite(u) && u >= 0)) {
    return { ok: false, warning: `every arm's units must be a finite number ≥ 0; got [${units.join(", ")}]` };
  }
  if (!weights.every((w) => typeof w === "number" && Number.isFinite(w) && w > 0)) {
    return { ok: false, warning: `every weight must be a finite number > 0; got [${weights.join(", ")}]` };
  }
  // Weights near the largest double overflow their sum to Infinity (every share 0): scale by the largest first.
  let scaled: readonly number[] = weights;
  if (!Number.isFinite(weights.reduce((a, b) => a + b, 0))) {
    const largest = Math.max(...weights);
    scaled = weights.map((x) => x / largest);
  }
  const total = scaled.reduce((a, b) => a + b, 0);
  return { ok: true, w: scaled.map((x) => x / total), n: units.reduce((a, b) => a + b, 0) };
}

/**
 * Pearson's chi-square goodness-of-fit test of the arm sizes against the
 * configured weights: χ² = Σ (oᵢ − eᵢ)²/eᵢ with eᵢ = N·wᵢ, p = Q((k−1)/2, χ²/2)
 * (upper regularised incomplete gamma, so tiny p-values keep their digits).
 * Source: K. Pearson (1900); its use for SRM: Fabijan et al. (2019),
 * "Diagnosing Sample Ratio Mismatch in Online Controlled
 * Experiments: A Taxonomy and Rules of Thumb for Practitioners", KDD.
 *
 * @param units observed units per arm (counts: whole numbers ≥ 0)
 * @param weights configured traffic weights per arm (> 0; normalised here, so [1, 1] = [0.5, 0.5])
 * @param options.threshold alarm when p < threshold (default 0.001)
 * @param options.minUnitsPerArm no alarm until every arm has this many units (default 8), as the χ² approximation needs expected counts that are not tiny
 * @returns `null` statistic and p with a warning for unusable input (length mismatch, units that are not whole
 *   numbers ≥ 0, non-positive weights, no units); otherwise p in [0, 1]; never throws
 */
export function srmChiSquare(
  units: readonly number[],
  weights: readonly number[],
  options: { threshold?: number; minUnitsPerArm?: number } = {},
): SrmResult {
  const threshold = options.threshold ?? SRM_THRESHOLD;
  const minUnits = options.minUnitsPerArm ?? 8;
  const checked = checkCounts(units, weights);
  if (!checked.ok) return { statistic: null, pValue: null, alarm: false, warnings: [checked.warning] };
  // Counts of units: a fraction (5e-324 included, whose expected count underflows to 0 and gave 0/0) is a
  // caller's bug, refused like any other unusable input.
  if (!units.every((u) => Number.isInteger(u))) {
    const warning = `every arm's units must be a whole number ≥ 0 (a count); got [${units.join(", ")}]`;
    return { statistic: null, pValue: null, alarm: false, warnings: [warning] };
  }
  if (checked.n === 0) return { statistic: null, pValue: null, alarm: false, warnings: ["no units yet"] };
  if (!Number.isFinite(checked.n)) {
    const warning = `the units add up to more than a double holds; got [${units.join(", ")}]`;
    return { statistic: null, pValue: null, alarm: false, warnings: [warning] };
  }
  let statistic = 0;
  for (let i = 0; i < units.length; i++) {
    const expected = checked.n * (checked.w[i] as number);
    const diff = (units[i] as number) - expected;
    // A weight so small beside the others that its expected count underflows to 0: no units there adds
    // nothing (not 0/0), any unit there is an infinite mismatch (p = 0).
    if (diff !== 0) statistic += (diff * diff) / expected;
  }
  // Q(·, ∞) = 0, where the incomplete gamma gives NaN.
  const p = statistic === Number.POSITIVE_INFINITY ? 0 : chiSquareUpperTail(statistic, units.length - 1);
  const warnings: string[] = [];
  const enough = units.every((u) => u >= minUnits);
  const alarm = p < threshold && enough;
  if (alarm) {
    const expected = checked.w.map((w) => Math.round(checked.n * w));
    warnings.push(
      `sample ratio mismatch: units [${units.join(", ")}] against expected [${expected.join(", ")}] ` +
        `(chi-square p = ${p.toPrecision(3)} < ${threshold})`,
    );
  } else if (p < threshold) {
    warnings.push(`the arm sizes look mismatched, but no SRM alarm is raised before every arm has ${minUnits} units`);
  }
  return { statistic, pValue: p, alarm, warnings };
}

/**
 * Sequential (always-valid) SRM test of Lindon & Malek, "Anytime-Valid
 * Inference for Multinomial Count Data" (arXiv:2011.03567, 2020; NeurIPS 2022):
 * the Bayes factor of a Dirichlet-multinomial alternative against the null
 * multinomial with the configured weights w, on cumulative counts x (N = Σx):
 *
 *   BF = Γ(Σa) / Γ(Σa + N) · Πᵢ Γ(aᵢ + xᵢ)/Γ(aᵢ) / Πᵢ wᵢ^xᵢ,   a = k·w
 *
 * (the multinomial coefficients cancel). BF is a nonnegative martingale under
 * the null, so p = min(previous p, min(1, 1/BF)) is an always-valid p-value.
 * Computed in logs with ln Γ (stdlib gammaln); no overflow at 10⁸ units.
 *
 * @param units cumulative observed units per arm
 * @param weights configured weights (> 0; normalised here)
 * @param previous the `carry` of the previous look, or null
 * @param options.threshold alarm when p < threshold (default 0.001)
 * @param options.concentration Dirichlet concentration k (default {@link SRM_DIRICHLET_CONCENTRATION})
 */
export function sequentialSrm(
  units: readonly number[],
  weights: readonly number[],
  previous: number | null,
  options: { threshold?: number; concentration?: number } = {},
): SequentialSrmResult {
  const threshold = options.threshold ?? SRM_THRESHOLD;
  const k = options.concentration ?? SRM_DIRICHLET_CONCENTRATION;
  const warnings: string[] = [];
  let prior: number | null = null;
  if (typeof previous === "number" && previous >= 0 && previous <= 1) prior = previous;
  else if (previous !== null && previous !== undefined) {
    warnings.push("the previous sequential SRM carry is not a p-value in [0, 1] and was ignored");
  }
  const carried = (): SequentialSrmResult => ({
    pValue: prior,
    alarm: prior !== null && prior < threshold,
    carry: prior,
    warnings,
  });
  const checked = checkCounts(units, weights);
  if (!checked.ok) {
    warnings.push(checked.warning);
    return carried();
  }
  if (!(typeof k === "number" && Number.isFinite(k) && k > 0)) {
    warnings.push(`the Dirichlet concentration must be a finite number > 0; got ${String(k)}`);
    return carried();
  }
  let logBf = logGamma(k) - logGamma(k + checked.n);
  for (let i = 0; i < units.length; i++) {
    const x = units[i] as number;
    const w = checked.w[i] as number;
    const a = k * w;
    logBf += logGamma(a + x) - logGamma(a) - (x === 0 ? 0 : x * Math.log(w));
  }
  if (!Number.isFinite(logBf)) {
    warnings.push("the SRM Bayes factor overflows a double; check the counts");
    return carried();
  }
  const lookP = logBf <= 0 ? 1 : Math.exp(-logBf);
  const p = prior === null ? lookP : Math.min(prior, lookP);
  return { pValue: p, alarm: p < threshold, carry: p, warnings };
}
