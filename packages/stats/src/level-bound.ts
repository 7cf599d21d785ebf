/**
 * Whether a level has held: a one-sided confidence bound on the mean of a
 * series' recent points, used to judge an outcome's target sustained.
 */
import { tQuantileUpper } from "./distributions";

export interface LevelBound {
  /** Points the bound is computed from. */
  readonly n: number;
  /** Mean of the points, in their units. */
  readonly mean: number;
  /** Sample standard deviation of the points (n − 1 denominator). */
  readonly sd: number;
  /**
   * One-sided bound of the mean at `confidence`: `mean − t·sd/√n` for the
   * lower side (the level stays high), `mean + t·sd/√n` for the upper.
   */
  readonly bound: number;
}

/**
 * One-sided Student-t confidence bound on the mean level of `values` (e.g. the
 * daily values of an outcome's signal over the last `target.sustain`):
 * `x̄ ∓ t_{confidence, n−1} · s / √n`, with `s` the sample standard deviation.
 * The points are treated as independent draws around a level; their spread
 * measures the bucket-to-bucket noise, so one high bucket among low ones does
 * not make the bound pass. Source: the one-sample t interval (Student 1908;
 * e.g. NIST/SEMATECH e-Handbook §7.2.2); checked against scipy.stats.t.
 *
 * @param values the points, finite numbers in the signal's units.
 * @param side `lower` for a bound the level stays above, `upper` for below.
 * @param confidence a fraction in (0.5, 1), e.g. 0.95.
 * @returns null with fewer than 2 points or a non-finite value (no bound exists).
 * @throws RangeError when `confidence` is outside (0.5, 1).
 */
export function levelBound(values: readonly number[], side: "lower" | "upper", confidence: number): LevelBound | null {
  if (!(confidence > 0.5 && confidence < 1)) {
    throw new RangeError(`confidence must be a fraction in (0.5, 1), got ${confidence}`);
  }
  const n = values.length;
  if (n < 2 || values.some((v) => !Number.isFinite(v))) return null;
  const mean = values.reduce((a, v) => a + v, 0) / n;
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) * (v - mean), 0) / (n - 1));
  const half = (tQuantileUpper(confidence, n - 1) * sd) / Math.sqrt(n);
  return { n, mean, sd, bound: side === "lower" ? mean - half : mean + half };
}
