/**
 * Thin, numerically careful wrappers over the @stdlib distribution functions.
 * Tail probabilities come from upper-tail functions (erfc, the regularised
 * upper incomplete gamma, the t lower tail) rather than 1 − cdf, so p-values
 * as small as ~1e-300 keep their digits.
 */
import erfc from "@stdlib/math-base-special-erfc";
import gammainc from "@stdlib/math-base-special-gammainc";
import gammaln from "@stdlib/math-base-special-gammaln";
import normalQuantile from "@stdlib/stats-base-dists-normal-quantile";
import tCdf from "@stdlib/stats-base-dists-t-cdf";

/** Two-sided p-value of a standard normal statistic: P(|Z| ≥ |z|) = erfc(|z|/√2), at most 1. */
export function normalTwoSidedP(z: number): number {
  return Math.min(1, erfc(Math.abs(z) / Math.SQRT2));
}

/** The standard normal quantile Φ⁻¹(p), p in (0, 1). */
export function normalQuantileStd(p: number): number {
  return normalQuantile(p, 0, 1);
}

/**
 * ln Φ(z) for a standard normal. Uses erfc down to z = −37 (where Φ ≈ 1e-300)
 * and the asymptotic series of the Mills ratio beyond, so it never returns −∞
 * for a finite z.
 */
export function logNormalCdf(z: number): number {
  if (z > -37) return Math.log(0.5 * erfc(-z / Math.SQRT2));
  // Φ(z) = φ(z)/|z| · (1 − 1/z² + 3/z⁴ − 15/z⁶ …), Abramowitz & Stegun 26.2.12.
  const z2 = z * z;
  const series = 1 - 1 / z2 + 3 / (z2 * z2) - 15 / (z2 * z2 * z2);
  return -0.5 * z2 - 0.5 * Math.log(2 * Math.PI) - Math.log(-z) + Math.log(series);
}

/** Two-sided p-value of a Student t statistic with `df` degrees of freedom: 2·P(T ≤ −|t|), at most 1. */
export function tTwoSidedP(t: number, df: number): number {
  return Math.min(1, 2 * tCdf(-Math.abs(t), df));
}

/**
 * Quantile of Student's t: the x with P(T ≤ x) = p, for p in [0.5, 1). Solved
 * on the lower tail P(T ≤ −x) = 1 − p (accurate for small tails) by Newton's
 * method, safeguarded by bisection, from the Cornish–Fisher expansion of
 * Abramowitz & Stegun 26.7.5 (usually within 1e-6, so two or three steps
 * suffice); relative accuracy ~1e-13.
 */
export function tQuantileUpper(p: number, df: number): number {
  const q = 1 - p;
  if (q === 0.5) return 0;
  const z = normalQuantileStd(p);
  const z2 = z * z;
  const cornishFisher =
    z +
    (z * (z2 + 1)) / (4 * df) +
    (z * (5 * z2 * z2 + 16 * z2 + 3)) / (96 * df * df) +
    (z * (3 * z2 * z2 * z2 + 19 * z2 * z2 + 17 * z2 - 15)) / (384 * df * df * df);
  // log of the density's constant Γ((ν+1)/2) / (Γ(ν/2) sqrt(νπ)), hoisted out of the loop.
  const logC = gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * Math.log(df * Math.PI);
  const density = (x: number) => Math.exp(logC - ((df + 1) / 2) * Math.log1p((x * x) / df));
  // t tails are heavier than the normal's, so the normal quantile is a lower bound.
  let lo = Math.max(0, z);
  let hi = Number.POSITIVE_INFINITY;
  let x = Number.isFinite(cornishFisher) && cornishFisher > lo ? cornishFisher : lo;
  for (let i = 0; i < 300; i++) {
    const fx = tCdf(-x, df) - q; // decreasing in x
    if (fx > 0) lo = x;
    else hi = x;
    let next = x + fx / density(x);
    if (!(next > lo && next < hi)) next = Number.isFinite(hi) ? 0.5 * (lo + hi) : 2 * Math.max(1, x);
    if (Math.abs(next - x) <= 1e-13 * Math.max(1, Math.abs(next))) return next;
    x = next;
  }
  return x;
}

/** Upper tail of the chi-square distribution with k degrees of freedom: Q(k/2, x/2). */
export function chiSquareUpperTail(x: number, k: number): number {
  if (x <= 0) return 1;
  return gammainc(x / 2, k / 2, true, true);
}

/** ln Γ(x), re-exported so callers import every special function from one place. */
export function logGamma(x: number): number {
  return gammaln(x);
}
