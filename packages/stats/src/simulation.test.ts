/**
 * Monte Carlo checks of the always-valid guarantee and of the sample-size plan.
 *
 * A/A (no true effect): every simulated experiment is looked at on each of 100
 * polls, with cumulative data growing at every poll. The always-valid test
 * must keep its false-positive rate at or below α (within 3 standard errors
 * of the Monte Carlo estimate), while the fixed-horizon test peeked at the
 * same polls ("declare at the first poll where p < 0.05") must not.
 *
 * A/B (a true harm of one MDE): with the per-arm sample from planSample
 * (sequentialPerArm, 80 % power), the confidence sequence must exclude 0 on
 * the harmful side by the planned sample in at least 80 % of runs.
 *
 * Data generation, exact for normal unit-level data: a batch of m units from
 * N(μ, σ²) has sum ~ N(mμ, mσ²) and, independently, centred sum of squares
 * Σ(x − x̄)² ~ σ²·χ²(m − 1) (Cochran's theorem), so the batch adds sum and
 * SS + sum²/m to sumSq. χ²(k) = 2·Gamma(k/2) is drawn with Marsaglia & Tsang
 * (2000), "A simple method for generating gamma variables", ACM TOMS 26(3).
 * Proportions are drawn unit by unit (exact Bernoulli sums). Seeds are fixed,
 * so the rates below are reproducible: @stdlib/random-base-randn
 * (improved ziggurat over MT19937, seed 20240601) for normals and
 * @stdlib/random-base-mt19937 (seed 19937) for uniforms.
 */
import mt19937 from "@stdlib/random-base-mt19937";
import randn from "@stdlib/random-base-randn";
import { afterAll, describe, expect, it } from "vitest";
import type { ArmTotals } from "./arm-summary";
import { fixedHorizonTest } from "./fixed-horizon-test";
import { planSample } from "./sample-size";
import { mixtureVarianceForSample, type SequentialCarry, sequentialTest } from "./sequential-test";

const ALPHA = 0.05;
const POLLS = 100;

const normal = randn.factory({ seed: 20240601, name: "improved-ziggurat" });
const bits = mt19937.factory({ seed: 19937 });
/** Uniform on (0, 1) from 32 random bits. */
const uniform = () => (bits() + 0.5) / 4294967296;

/** Gamma(shape, 1) for shape ≥ 1, Marsaglia & Tsang (2000). */
function gamma(shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = normal();
    let v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const u = uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Adds a batch of m units drawn from N(mean, sd²) to an arm's totals, exactly. */
function addNormalBatch(arm: ArmTotals, m: number, mean: number, sd: number): void {
  const sum = m * mean + sd * Math.sqrt(m) * normal();
  const centred = m > 1 ? sd * sd * 2 * gamma((m - 1) / 2) : 0;
  arm.units += m;
  arm.sum += sum;
  arm.sumSq += centred + (sum * sum) / m;
}

/** Adds m Bernoulli(p) units to an arm's totals. */
function addBernoulliBatch(arm: ArmTotals, m: number, p: number): void {
  let conversions = 0;
  for (let i = 0; i < m; i++) if (uniform() < p) conversions++;
  arm.units += m;
  arm.sum += conversions;
  arm.sumSq += conversions;
}

const empty = (): ArmTotals => ({ units: 0, sum: 0, sumSq: 0 });
const measured: string[] = [];

interface AaRates {
  sequential: number;
  peeking: number;
}

/** Runs A/A experiments; returns the share that the sequential and the peeked fixed test ever declare. */
function runAa(options: {
  runs: number;
  kind: "mean" | "proportion";
  batch: number;
  tau2: number;
  addBatch: (arm: ArmTotals, m: number) => void;
}): AaRates {
  let sequentialHits = 0;
  let peekingHits = 0;
  for (let run = 0; run < options.runs; run++) {
    const control = empty();
    const treatment = empty();
    let carry: SequentialCarry | null = null;
    let sequentialDeclared = false;
    let peekingDeclared = false;
    for (let poll = 0; poll < POLLS && !(sequentialDeclared && peekingDeclared); poll++) {
      options.addBatch(control, options.batch);
      options.addBatch(treatment, options.batch);
      if (!sequentialDeclared) {
        const r = sequentialTest(control, treatment, { kind: options.kind, alpha: ALPHA, tau2: options.tau2 }, carry);
        carry = r.carry ?? carry;
        if (r.pValue !== null && r.pValue < ALPHA) sequentialDeclared = true;
      }
      if (!peekingDeclared) {
        const f = fixedHorizonTest(options.kind, control, treatment, ALPHA);
        if (f.pValue !== null && f.pValue < ALPHA) peekingDeclared = true;
      }
    }
    if (sequentialDeclared) sequentialHits++;
    if (peekingDeclared) peekingHits++;
  }
  return { sequential: sequentialHits / options.runs, peeking: peekingHits / options.runs };
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

describe("A/A simulation: false positives under continuous monitoring", () => {
  it("mean metric, 10 000 experiments × 100 polls: always-valid ≤ α + 3·SE, peeking > 15 %", () => {
    // Unit values N(10, 2²), 100 units per arm per poll (10 000 per arm at the end), τ² tuned to 10 000 per arm.
    const runs = 10_000;
    const tau2 = mixtureVarianceForSample({ alpha: ALPHA, sigma2: 4, plannedUnitsPerArm: 100 * POLLS });
    const rates = runAa({ runs, kind: "mean", batch: 100, tau2, addBatch: (arm, m) => addNormalBatch(arm, m, 10, 2) });
    const bound = ALPHA + 3 * Math.sqrt((ALPHA * (1 - ALPHA)) / runs); // 5.65 %
    measured.push(
      `A/A mean (${runs} runs × ${POLLS} polls): always-valid ${pct(rates.sequential)} (bound ${pct(bound)}), ` +
        `fixed-horizon peeked ${pct(rates.peeking)}`,
    );
    expect(rates.sequential).toBeLessThanOrEqual(bound);
    expect(rates.peeking).toBeGreaterThan(0.15);
  }, 120_000);

  it("proportion metric, 2 000 experiments × 100 polls (exact Bernoulli data)", () => {
    // Conversion rate 10 %, 100 units per arm per poll, τ² tuned to 10 000 per arm.
    const runs = 2000;
    const tau2 = mixtureVarianceForSample({ alpha: ALPHA, sigma2: 0.09, plannedUnitsPerArm: 100 * POLLS });
    const rates = runAa({
      runs,
      kind: "proportion",
      batch: 100,
      tau2,
      addBatch: (arm, m) => addBernoulliBatch(arm, m, 0.1),
    });
    const bound = ALPHA + 3 * Math.sqrt((ALPHA * (1 - ALPHA)) / runs); // 6.46 %
    measured.push(
      `A/A proportion (${runs} runs × ${POLLS} polls): always-valid ${pct(rates.sequential)} (bound ${pct(bound)}), ` +
        `fixed-horizon peeked ${pct(rates.peeking)}`,
    );
    expect(rates.sequential).toBeLessThanOrEqual(bound);
    expect(rates.peeking).toBeGreaterThan(0.15);
  }, 120_000);
});

describe("A/B simulation: power of the planned sample", () => {
  it("a true harm of one MDE is detected by the planned sample in ≥ 80 % of 2 000 runs", () => {
    // Mean metric, unit values N(10, 2²) in control and N(10 − 0.1, 2²) in treatment; the metric should increase.
    const mde = 0.1;
    const plan = planSample({ kind: "mean", alpha: ALPHA, power: 0.8, baseline: 10, variance: 4, mde });
    const n = plan.sequentialPerArm;
    const runs = 2000;
    let detected = 0;
    for (let run = 0; run < runs; run++) {
      const control = empty();
      const treatment = empty();
      let carry: SequentialCarry | null = null;
      for (let poll = 1; poll <= POLLS; poll++) {
        // Split the planned n over the polls exactly, so the last poll is at n units per arm.
        const m = Math.floor((n * poll) / POLLS) - Math.floor((n * (poll - 1)) / POLLS);
        addNormalBatch(control, m, 10, 2);
        addNormalBatch(treatment, m, 10 - mde, 2);
        const r = sequentialTest(control, treatment, { kind: "mean", alpha: ALPHA, tau2: plan.tau2 }, carry);
        carry = r.carry ?? carry;
        if (r.ci !== null && r.ci[1] < 0) {
          detected++;
          break;
        }
      }
    }
    const rate = detected / runs;
    measured.push(
      `A/B mean (harm of 1 MDE = ${mde}, σ² = 4, planned ${n} per arm, fixed-horizon would need ${plan.fixedPerArm}; ` +
        `${runs} runs × ${POLLS} polls): detected ${pct(rate)}`,
    );
    expect(rate).toBeGreaterThanOrEqual(0.8);
  }, 120_000);
});

afterAll(() => {
  console.log(`Simulation rates (α = ${ALPHA}):\n  ${measured.join("\n  ")}`);
});
