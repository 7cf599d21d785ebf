/**
 * Small deterministic generators for the benchmark's synthetic data: the same
 * seed gives the same numbers on every machine, so two runs measure the same work.
 */

/** 32-bit FNV-1a hash of a string, used to derive a seed from names. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a uniform generator on [0, 1) from a 32-bit seed. */
export function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw from two uniforms (Box–Muller). */
export function normal(next: () => number): number {
  const u = 1 - next(); // (0, 1]: the logarithm stays finite
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

/**
 * Conversions among `units` at rate `p`: the normal approximation of the
 * binomial, rounded and clamped to [0, units].
 */
export function conversions(next: () => number, units: number, p: number): number {
  const x = Math.round(units * p + normal(next) * Math.sqrt(units * p * (1 - p)));
  return Math.min(units, Math.max(0, x));
}
