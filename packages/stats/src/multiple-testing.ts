/**
 * Multiplicity: several treatments compared with one control share the type
 * I error level.
 */

/**
 * Holm's step-down adjusted p-values (S. Holm 1979, "A simple sequentially
 * rejective multiple test procedure", Scand. J. Statist. 6(2):65–70): with
 * the k p-values sorted p₍₁₎ ≤ … ≤ p₍ₖ₎,
 *
 *   adj₍ᵢ₎ = max_{j ≤ i} min(1, (k − j + 1) · p₍ⱼ₎),
 *
 * returned in the input's order. Rejecting where adj < α controls the
 * family-wise error rate at α under any dependence between the tests. Applied
 * at each look to always-valid p-values (each valid at any stopping time),
 * the adjusted values are valid at any stopping time too.
 *
 * A `null` (a p-value not defined yet) counts in k as a p-value of 1 (the
 * conservative choice) and stays `null`.
 *
 * @param pValues fractions in [0, 1]
 * @returns adjusted p-values in [0, 1], same order and length
 * @example holmAdjust([0.01, 0.04, 0.03]) // → [0.03, 0.06, 0.06]
 */
export function holmAdjust(pValues: readonly (number | null)[]): (number | null)[] {
  const k = pValues.length;
  const order = pValues
    .map((p, index) => ({ p: p === null || !Number.isFinite(p) ? 1 : Math.min(1, Math.max(0, p)), index }))
    .sort((a, b) => a.p - b.p || a.index - b.index);
  const adjusted: (number | null)[] = new Array<number | null>(k).fill(null);
  let running = 0;
  order.forEach(({ p, index }, rank) => {
    running = Math.max(running, Math.min(1, (k - rank) * p));
    adjusted[index] = pValues[index] === null || !Number.isFinite(pValues[index] as number) ? null : running;
  });
  return adjusted;
}
