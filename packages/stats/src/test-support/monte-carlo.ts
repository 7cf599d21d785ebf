/**
 * Seeded Monte Carlo scenarios of the statistics under continuous
 * monitoring, shared by the simulation tests (small, fast runs) and
 * `bench/stats-simulations.ts` (large runs, for the figures of
 * docs/statistics.md):
 *
 * - {@link srmFalseAlarms}: A/A with correct 50/50 weights, the share of
 *   experiments that an SRM rule ever stops;
 * - {@link multiArmFamilyWiseErrors}: k treatments under the null, Holm across
 *   them at each look with confidence sequences at α/k;
 * - {@link cupedPower}: a covariate correlated at ρ with the metric, the
 *   sample at which the adjusted and the unadjusted tests reach a power;
 * - {@link cupedNullRate}: A/A with a covariate, false positives of both.
 *
 * Data generation is exact for normal unit-level data, batch by batch: a
 * batch of m units from N(μ, Σ) has its sum ~ N(mμ, mΣ) and, independently,
 * its centred scatter matrix ~ Wishart(m − 1, Σ) (Cochran's theorem; for
 * one value σ²·χ²(m − 1)); the 2×2 Wishart is drawn by Bartlett's
 * decomposition (M. S. Bartlett 1933; e.g. Anderson, "An Introduction to
 * Multivariate Statistical Analysis", §7.2), χ²(k) as 2·Gamma(k/2) by
 * Marsaglia & Tsang (2000). Arm sizes under a 50/50 split are exact binomial
 * draws. Intervals on rates are Clopper–Pearson (1934), from beta quantiles.
 */
import binomialFactory from "@stdlib/random-base-binomial";
import mt19937 from "@stdlib/random-base-mt19937";
import randn from "@stdlib/random-base-randn";
import betaQuantile from "@stdlib/stats-base-dists-beta-quantile";
import type { ArmTotals } from "../arm-summary";
import { holmAdjust } from "../multiple-testing";
import { cupedSequentialTest } from "../paired-sequential";
import type { PairedTotals } from "../paired-totals";
import { planSample } from "../sample-size";
import { mixtureVarianceForSample, type SequentialCarry, sequentialTest } from "../sequential-test";
import { SRM_THRESHOLD, sequentialSrm, srmChiSquare } from "../srm";

/** The seeded generators of one scenario. */
export interface Random {
  normal: () => number;
  uniform: () => number;
  binomial: (n: number, p: number) => number;
}

/** Generators seeded from one number: improved ziggurat and MT19937 (@stdlib), binomial (@stdlib). */
export function seededRandom(seed: number): Random {
  const normal = randn.factory({ seed, name: "improved-ziggurat" });
  const bits = mt19937.factory({ seed: seed + 1 });
  const binomial = binomialFactory.factory({ seed: seed + 2 });
  return { normal, uniform: () => (bits() + 0.5) / 4294967296, binomial: (n, p) => binomial(n, p) };
}

/** Gamma(shape, 1) for shape ≥ 1, Marsaglia & Tsang (2000). */
function gamma(random: Random, shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = random.normal();
    let v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const u = random.uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** χ²(k), k ≥ 2. */
function chiSquare(random: Random, k: number): number {
  return 2 * gamma(random, k / 2);
}

/** Clopper–Pearson two-sided interval for a binomial rate: `successes` of `trials`, at `level` (default 0.95). */
export function clopperPearson(successes: number, trials: number, level = 0.95): [number, number] {
  const tail = (1 - level) / 2;
  const lower = successes === 0 ? 0 : betaQuantile(tail, successes, trials - successes + 1);
  const upper = successes === trials ? 1 : betaQuantile(1 - tail, successes + 1, trials - successes);
  return [lower, upper];
}

/** A rate with its Clopper–Pearson 95 % interval. */
export interface Rate {
  hits: number;
  runs: number;
  rate: number;
  interval: [number, number];
}

export function rate(hits: number, runs: number): Rate {
  return { hits, runs, rate: hits / runs, interval: clopperPearson(hits, runs) };
}

/** Adds m units from N(mean, sd²) to one arm's totals, exactly (m ≥ 3). */
function addNormalBatch(random: Random, arm: ArmTotals, m: number, mean: number, sd: number): void {
  const sum = m * mean + sd * Math.sqrt(m) * random.normal();
  arm.units += m;
  arm.sum += sum;
  arm.sumSq += sd * sd * chiSquare(random, m - 1) + (sum * sum) / m;
}

/**
 * Adds m units of (x, y) bivariate normal — x ~ N(μx, σx²), y ~ N(μy, σy²),
 * correlation ρ — to paired totals (y the metric, x the covariate), exactly
 * (m ≥ 4): sums from N(mμ, mΣ), scatter W = L·A·Aᵀ·Lᵀ with L the Cholesky
 * factor of Σ and A Bartlett's lower triangle (a₁₁² ~ χ²(m−1),
 * a₂₂² ~ χ²(m−2), a₂₁ ~ N(0, 1)).
 */
function addBivariateBatch(
  random: Random,
  arm: PairedTotals,
  m: number,
  p: { meanX: number; meanY: number; sdX: number; sdY: number; rho: number },
): void {
  // Σ = L Lᵀ with L = [[σx, 0], [ρσy, σy·sqrt(1 − ρ²)]] (first coordinate x, second y).
  const l11 = p.sdX;
  const l21 = p.rho * p.sdY;
  const l22 = p.sdY * Math.sqrt(1 - p.rho * p.rho);
  const z1 = random.normal();
  const z2 = random.normal();
  const sumX = m * p.meanX + Math.sqrt(m) * l11 * z1;
  const sumY = m * p.meanY + Math.sqrt(m) * (l21 * z1 + l22 * z2);
  const a11 = Math.sqrt(chiSquare(random, m - 1));
  const a22 = Math.sqrt(chiSquare(random, m - 2));
  const a21 = random.normal();
  // B = L·A: column vectors b₁ = L(a11, a21)ᵀ, b₂ = L(0, a22)ᵀ; W = b₁b₁ᵀ + b₂b₂ᵀ.
  const b1x = l11 * a11;
  const b1y = l21 * a11 + l22 * a21;
  const b2x = 0;
  const b2y = l22 * a22;
  const wxx = b1x * b1x + b2x * b2x;
  const wyy = b1y * b1y + b2y * b2y;
  const wxy = b1x * b1y + b2x * b2y;
  arm.units += m;
  arm.sum += sumY;
  arm.sumSq += wyy + (sumY * sumY) / m;
  arm.pairSum += sumX;
  arm.pairSumSq += wxx + (sumX * sumX) / m;
  arm.crossSum += wxy + (sumX * sumY) / m;
}

/** Result of {@link srmFalseAlarms}. */
export interface SrmFalseAlarms {
  /** Experiments the sequential SRM test (Lindon & Malek) ever alarms on. */
  sequential: Rate;
  /** Experiments the former rule — chi-square alarm OR sequential alarm — ever stops. */
  chiSquareOrSequential: Rate;
  /** Experiments the chi-square test alone ever alarms on. */
  chiSquare: Rate;
}

/**
 * A/A with correct 50/50 weights: at each of `polls` looks, `batch` more
 * units are split between two arms by a fair coin (an exact binomial draw),
 * and both SRM tests look at the cumulative sizes (threshold 0.001).
 */
export function srmFalseAlarms(options: { runs: number; polls: number; batch: number; seed: number }): SrmFalseAlarms {
  const random = seededRandom(options.seed);
  let sequentialHits = 0;
  let eitherHits = 0;
  let chiHits = 0;
  const weights = [0.5, 0.5];
  for (let run = 0; run < options.runs; run++) {
    const units = [0, 0];
    let carry: number | null = null;
    let sequentialAlarm = false;
    let chiAlarm = false;
    for (let poll = 0; poll < options.polls; poll++) {
      const toControl = random.binomial(options.batch, 0.5);
      units[0] = (units[0] as number) + toControl;
      units[1] = (units[1] as number) + options.batch - toControl;
      if (!sequentialAlarm) {
        const s = sequentialSrm(units, weights, carry, { threshold: SRM_THRESHOLD });
        carry = s.carry ?? carry;
        if (s.alarm) sequentialAlarm = true;
      }
      if (!chiAlarm && srmChiSquare(units, weights).alarm) chiAlarm = true;
      if (sequentialAlarm && chiAlarm) break;
    }
    if (sequentialAlarm) sequentialHits++;
    if (chiAlarm) chiHits++;
    if (sequentialAlarm || chiAlarm) eitherHits++;
  }
  return {
    sequential: rate(sequentialHits, options.runs),
    chiSquareOrSequential: rate(eitherHits, options.runs),
    chiSquare: rate(chiHits, options.runs),
  };
}

/** Result of {@link multiArmFamilyWiseErrors}. */
export interface FamilyWiseErrors {
  /** Experiments where Holm-adjusted p < α for some treatment at some look. */
  holm: Rate;
  /** Experiments where some treatment's confidence sequence at α/k excludes 0 at some look. */
  intervals: Rate;
  /** Experiments where some treatment's own (unadjusted) p < α at some look, for comparison. */
  unadjusted: Rate;
}

/**
 * k treatments and a control, all N(10, 2²) (no effect anywhere), `batch`
 * units per arm per look over `polls` looks, τ² tuned to the final sample.
 * Each treatment runs its own mSPRT against control with intervals at α/k;
 * Holm adjusts the k always-valid p-values at each look.
 */
export function multiArmFamilyWiseErrors(options: {
  runs: number;
  polls: number;
  batch: number;
  treatments: number;
  alpha: number;
  seed: number;
}): FamilyWiseErrors {
  const random = seededRandom(options.seed);
  const { alpha, treatments: k } = options;
  const tau2 = mixtureVarianceForSample({ alpha, sigma2: 4, plannedUnitsPerArm: options.batch * options.polls });
  let holmHits = 0;
  let intervalHits = 0;
  let rawHits = 0;
  const empty = (): ArmTotals => ({ units: 0, sum: 0, sumSq: 0 });
  for (let run = 0; run < options.runs; run++) {
    const control = empty();
    const arms = Array.from({ length: k }, empty);
    const carries: (SequentialCarry | null)[] = arms.map(() => null);
    let holm = false;
    let interval = false;
    let raw = false;
    for (let poll = 0; poll < options.polls && !(holm && interval && raw); poll++) {
      addNormalBatch(random, control, options.batch, 10, 2);
      for (const arm of arms) addNormalBatch(random, arm, options.batch, 10, 2);
      const looks = arms.map((arm, i) => {
        const r = sequentialTest(control, arm, { kind: "mean", alpha: alpha / k, tau2 }, carries[i] ?? null);
        carries[i] = r.carry ?? carries[i] ?? null;
        return r;
      });
      const adjusted = holmAdjust(looks.map((r) => r.pValue));
      if (adjusted.some((p) => p !== null && p < alpha)) holm = true;
      if (looks.some((r) => r.ci !== null && (r.ci[0] > 0 || r.ci[1] < 0))) interval = true;
      if (looks.some((r) => r.pValue !== null && r.pValue < alpha)) raw = true;
    }
    if (holm) holmHits++;
    if (interval) intervalHits++;
    if (raw) rawHits++;
  }
  return {
    holm: rate(holmHits, options.runs),
    intervals: rate(intervalHits, options.runs),
    unadjusted: rate(rawHits, options.runs),
  };
}

/** Result of {@link cupedPower}. */
export interface CupedPower {
  /** Planned per-arm samples of planSample for 80 % power, from σ² and from σ²(1 − ρ²). */
  plannedUnadjusted: number;
  plannedAdjusted: number;
  /** The smallest per-arm sample (a look) by which `power` of the runs had detected the effect, per test. */
  sampleUnadjusted: number | null;
  sampleAdjusted: number | null;
  /** sampleAdjusted / sampleUnadjusted; 1 − ρ² in theory. */
  ratio: number | null;
  /** Share of runs detecting by the adjusted test's planned sample, for each test. */
  powerAdjustedAtPlan: Rate;
  powerUnadjustedAtAdjustedPlan: Rate;
}

const CUPED_MEAN = 10;
const CUPED_SD = 2;

/**
 * A true lift of `effect` on a metric y ~ N(10, 2²) with a pre-exposure
 * covariate x ~ N(10, 2²) correlated at ρ. Per run, both the unadjusted
 * mSPRT on y and the CUPED-adjusted one (θ pooled over both arms) look at the
 * same cumulative data at `looks` evenly spaced samples up to `horizon` ×
 * the unadjusted plan; each test's τ² is tuned to its own planned sample
 * (planSample at 80 % power: σ² for the unadjusted, σ²(1 − ρ²) for the
 * adjusted). A detection is a confidence sequence above 0. The sample each
 * test needs for `power` is the `power` quantile of its detection samples.
 */
export function cupedPower(options: {
  runs: number;
  looks: number;
  horizon: number;
  effect: number;
  rho: number;
  alpha: number;
  power: number;
  seed: number;
}): CupedPower {
  const random = seededRandom(options.seed);
  const { alpha, rho, effect } = options;
  const variance = CUPED_SD * CUPED_SD;
  const plain = planSample({ kind: "mean", alpha, power: 0.8, baseline: CUPED_MEAN, variance, mde: effect });
  const adjustedPlan = planSample({
    kind: "mean",
    alpha,
    power: 0.8,
    baseline: CUPED_MEAN,
    variance: variance * (1 - rho * rho),
    mde: effect,
  });
  const total = Math.ceil(plain.sequentialPerArm * options.horizon);
  const detectUnadjusted: number[] = [];
  const detectAdjusted: number[] = [];
  let adjustedByPlan = 0;
  let unadjustedByAdjustedPlan = 0;
  for (let run = 0; run < options.runs; run++) {
    const control: PairedTotals = { units: 0, sum: 0, sumSq: 0, pairSum: 0, pairSumSq: 0, crossSum: 0 };
    const treatment: PairedTotals = { ...control };
    let carryU: SequentialCarry | null = null;
    let carryA: SequentialCarry | null = null;
    let seenU = Number.POSITIVE_INFINITY;
    let seenA = Number.POSITIVE_INFINITY;
    for (let look = 1; look <= options.looks && !(Number.isFinite(seenU) && Number.isFinite(seenA)); look++) {
      const m = Math.floor((total * look) / options.looks) - Math.floor((total * (look - 1)) / options.looks);
      const shape = { meanX: CUPED_MEAN, sdX: CUPED_SD, sdY: CUPED_SD, rho };
      addBivariateBatch(random, control, m, { ...shape, meanY: CUPED_MEAN });
      addBivariateBatch(random, treatment, m, { ...shape, meanY: CUPED_MEAN + effect });
      const n = control.units;
      if (!Number.isFinite(seenU)) {
        const u = sequentialTest(
          { units: n, sum: control.sum, sumSq: control.sumSq },
          { units: treatment.units, sum: treatment.sum, sumSq: treatment.sumSq },
          { kind: "mean", alpha, tau2: plain.tau2 },
          carryU,
        );
        carryU = u.carry ?? carryU;
        if (u.ci !== null && u.ci[0] > 0) seenU = n;
      }
      if (!Number.isFinite(seenA)) {
        const a = cupedSequentialTest(control, treatment, { alpha, tau2: adjustedPlan.tau2 }, carryA);
        carryA = a.carry ?? carryA;
        if (a.ci !== null && a.ci[0] > 0) seenA = n;
      }
    }
    detectUnadjusted.push(seenU);
    detectAdjusted.push(seenA);
    if (seenA <= adjustedPlan.sequentialPerArm) adjustedByPlan++;
    if (seenU <= adjustedPlan.sequentialPerArm) unadjustedByAdjustedPlan++;
  }
  const quantile = (values: number[]): number | null => {
    const sorted = [...values].sort((a, b) => a - b);
    const q = sorted[Math.ceil(options.power * sorted.length) - 1];
    return q === undefined || !Number.isFinite(q) ? null : q;
  };
  const sampleUnadjusted = quantile(detectUnadjusted);
  const sampleAdjusted = quantile(detectAdjusted);
  return {
    plannedUnadjusted: plain.sequentialPerArm,
    plannedAdjusted: adjustedPlan.sequentialPerArm,
    sampleUnadjusted,
    sampleAdjusted,
    ratio: sampleUnadjusted !== null && sampleAdjusted !== null ? sampleAdjusted / sampleUnadjusted : null,
    powerAdjustedAtPlan: rate(adjustedByPlan, options.runs),
    powerUnadjustedAtAdjustedPlan: rate(unadjustedByAdjustedPlan, options.runs),
  };
}

/** Result of {@link cupedNullRate}. */
export interface CupedNullRate {
  adjusted: Rate;
  unadjusted: Rate;
}

/**
 * A/A with a covariate correlated at ρ: `batch` units per arm per look over
 * `polls` looks, τ² tuned to the final sample (σ²(1 − ρ²) for the adjusted
 * test, σ² for the unadjusted); the share of experiments each test ever
 * declares (always-valid p < α).
 */
export function cupedNullRate(options: {
  runs: number;
  polls: number;
  batch: number;
  rho: number;
  alpha: number;
  seed: number;
}): CupedNullRate {
  const random = seededRandom(options.seed);
  const { alpha, rho } = options;
  const planned = options.batch * options.polls;
  const sigma2 = CUPED_SD * CUPED_SD;
  const tau2U = mixtureVarianceForSample({ alpha, sigma2, plannedUnitsPerArm: planned });
  const tau2A = mixtureVarianceForSample({ alpha, sigma2: sigma2 * (1 - rho * rho), plannedUnitsPerArm: planned });
  let adjustedHits = 0;
  let unadjustedHits = 0;
  const shape = { meanX: CUPED_MEAN, meanY: CUPED_MEAN, sdX: CUPED_SD, sdY: CUPED_SD, rho };
  for (let run = 0; run < options.runs; run++) {
    const control: PairedTotals = { units: 0, sum: 0, sumSq: 0, pairSum: 0, pairSumSq: 0, crossSum: 0 };
    const treatment: PairedTotals = { ...control };
    let carryU: SequentialCarry | null = null;
    let carryA: SequentialCarry | null = null;
    let hitU = false;
    let hitA = false;
    for (let poll = 0; poll < options.polls && !(hitU && hitA); poll++) {
      addBivariateBatch(random, control, options.batch, shape);
      addBivariateBatch(random, treatment, options.batch, shape);
      if (!hitU) {
        const u = sequentialTest(
          { units: control.units, sum: control.sum, sumSq: control.sumSq },
          { units: treatment.units, sum: treatment.sum, sumSq: treatment.sumSq },
          { kind: "mean", alpha, tau2: tau2U },
          carryU,
        );
        carryU = u.carry ?? carryU;
        if (u.pValue !== null && u.pValue < alpha) hitU = true;
      }
      if (!hitA) {
        const a = cupedSequentialTest(control, treatment, { alpha, tau2: tau2A }, carryA);
        carryA = a.carry ?? carryA;
        if (a.pValue !== null && a.pValue < alpha) hitA = true;
      }
    }
    if (hitA) adjustedHits++;
    if (hitU) unadjustedHits++;
  }
  return { adjusted: rate(adjustedHits, options.runs), unadjusted: rate(unadjustedHits, options.runs) };
}
