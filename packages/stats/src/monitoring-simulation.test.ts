/**
 * Monte Carlo checks of the SRM rule, of Holm across treatments and of CUPED
 * under continuous monitoring (scenarios in test-support/monte-carlo.ts;
 * fixed seeds, so the figures are reproducible; a few seconds each). Each
 * rate comes with its Clopper–Pearson 95 % interval, and the claims are
 * checked on the interval's far end. Larger runs: `pnpm tsx bench/stats-simulations.ts`.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  cupedNullRate,
  cupedPower,
  multiArmFamilyWiseErrors,
  type Rate,
  srmFalseAlarms,
} from "./test-support/monte-carlo";

const ALPHA = 0.05;
const measured: string[] = [];
const pct = (x: number) => `${(100 * x).toFixed(3)} %`;
const show = (r: Rate) => `${pct(r.rate)} (${r.hits}/${r.runs}, 95 % CI ${pct(r.interval[0])}–${pct(r.interval[1])})`;

describe("SRM under continuous monitoring: A/A with correct 50/50 weights", () => {
  it("20 000 experiments × 100 polls: the sequential SRM alone stops ≤ 0.1 %; chi-square at every poll does not", () => {
    const r = srmFalseAlarms({ runs: 20_000, polls: 100, batch: 200, seed: 20261201 });
    measured.push(
      `SRM A/A (20 000 × 100 polls of 200 units): sequential ${show(r.sequential)}; ` +
        `chi-square OR sequential ${show(r.chiSquareOrSequential)}`,
    );
    expect(r.sequential.interval[1]).toBeLessThanOrEqual(0.001);
    // The former rule: the chi-square test, valid at one look only, alarms on a few % of sound experiments.
    expect(r.chiSquareOrSequential.interval[0]).toBeGreaterThan(0.001);
  }, 60_000);
});

describe("three treatments under the null: Holm across treatments, intervals at α/k", () => {
  it("4 000 experiments × 100 looks: family-wise false positives ≤ α", () => {
    const r = multiArmFamilyWiseErrors({
      runs: 4000,
      polls: 100,
      batch: 100,
      treatments: 3,
      alpha: ALPHA,
      seed: 20261202,
    });
    measured.push(
      `3 treatments, null (4 000 × 100 looks): Holm ${show(r.holm)}; intervals at α/3 exclude 0 ${show(r.intervals)}; ` +
        `unadjusted ${show(r.unadjusted)}`,
    );
    expect(r.holm.interval[1]).toBeLessThanOrEqual(ALPHA);
    expect(r.intervals.interval[1]).toBeLessThanOrEqual(ALPHA);
  }, 60_000);
});

describe("CUPED with a covariate correlated at ρ = 0.7", () => {
  it("reaches 80 % power with about 1 − ρ² = 0.51 of the unadjusted sample (2 000 runs)", () => {
    const r = cupedPower({
      runs: 2000,
      looks: 100,
      horizon: 1.3,
      effect: 0.1,
      rho: 0.7,
      alpha: ALPHA,
      power: 0.8,
      seed: 20261203,
    });
    measured.push(
      `CUPED power (effect 0.1, σ = 2, ρ = 0.7, 2 000 runs): 80 % reached at ${r.sampleAdjusted} per arm adjusted, ` +
        `${r.sampleUnadjusted} unadjusted (ratio ${r.ratio?.toFixed(3)}; plans ${r.plannedAdjusted} and ` +
        `${r.plannedUnadjusted}); power at the adjusted plan ${show(r.powerAdjustedAtPlan)} adjusted, ` +
        `${show(r.powerUnadjustedAtAdjustedPlan)} unadjusted`,
    );
    expect(r.ratio).not.toBeNull();
    expect(r.ratio as number).toBeGreaterThan(0.42);
    expect(r.ratio as number).toBeLessThan(0.6);
    expect(r.powerAdjustedAtPlan.rate).toBeGreaterThanOrEqual(0.8);
    expect(r.powerUnadjustedAtAdjustedPlan.interval[1]).toBeLessThan(0.6);
  }, 60_000);

  it("keeps the A/A false-positive rate ≤ α (4 000 experiments × 100 polls)", () => {
    const r = cupedNullRate({ runs: 4000, polls: 100, batch: 100, rho: 0.7, alpha: ALPHA, seed: 20261204 });
    measured.push(`CUPED A/A (4 000 × 100 polls): adjusted ${show(r.adjusted)}, unadjusted ${show(r.unadjusted)}`);
    expect(r.adjusted.interval[1]).toBeLessThanOrEqual(ALPHA);
  }, 60_000);
});

afterAll(() => {
  console.log(`Monitoring simulations (α = ${ALPHA}):\n  ${measured.join("\n  ")}`);
});
