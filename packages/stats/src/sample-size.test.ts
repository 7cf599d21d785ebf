// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { describe, expect, it } from "vitest";
import { minimumDetectableEffect, planSample } from "./sample-size";

/*
 * Reference values (mpmath, 50 digits): z₀.₉₇₅ = 1.95996398454005, z₀.₈ = 0.841621233572914,
 * c₀.₀₅ = sqrt((1 + 1/x)(2 ln 20 + ln(1 + x))) = 3.03512241302855 with x = 8.21196806206825
 * the root of x = 2 ln 20 + ln(1 + x). n = K²(σc² + σt²)/mde², rounded up.
 */
describe("planSample", () => {
  it("proportion, baseline 10 %, mde 1 point", () => {
    // σc² + σt² = 0.1·0.9 + 0.11·0.89 = 0.1879 (0.11 varies more than 0.09).
    // fixed: (1.95996398454005 + 0.841621233572914)²·0.1879/0.0001 = 14748.045… → 14749;
    // sequential: (3.03512241302855 + 0.841621233572914)²·0.1879/0.0001 = 28239.757… → 28240.
    const plan = planSample({ kind: "proportion", alpha: 0.05, power: 0.8, baseline: 0.1, mde: 0.01 });
    expect(plan.fixedPerArm).toBe(14749);
    expect(plan.sequentialPerArm).toBe(28240);
    expect(plan.mde).toBe(0.01);
    // τ² = x·(σc² + σt²)/n = 8.21196806206825·0.1879/28240.
    expect(plan.tau2).toBeCloseTo((8.21196806206825420700118765158 * 0.1879) / 28240, 15);
  });

  it("mean, per-unit variance 4, mde 0.1 (Lehr's 16σ²/δ² rule of thumb gives 6400)", () => {
    // fixed: 7.84887…·8/0.01 = 6279.10 → 6280; sequential: 15.0290…·8/0.01 = 12023.31 → 12024.
    const plan = planSample({ kind: "mean", alpha: 0.05, power: 0.8, baseline: 10, variance: 4, mde: 0.1 });
    expect(plan.fixedPerArm).toBe(6280);
    expect(plan.sequentialPerArm).toBe(12024);
    expect(plan.sequentialPerArm).toBeGreaterThan(plan.fixedPerArm);
  });

  it("throws a RangeError naming the bad option", () => {
    expect(() => planSample({ kind: "proportion", alpha: 0.05, power: 0.8, baseline: 10, mde: 0.01 })).toThrow(
      /baseline must be a conversion rate in \(0, 1\)/,
    );
    expect(() => planSample({ kind: "mean", alpha: 0.05, power: 0.8, baseline: 1, mde: 0.01 })).toThrow(/variance/);
    expect(() => planSample({ kind: "mean", alpha: 0.05, power: 0.8, baseline: 1, variance: 1, mde: 0 })).toThrow(
      /mde/,
    );
    expect(() => planSample({ kind: "mean", alpha: 5, power: 0.8, baseline: 1, variance: 1, mde: 1 })).toThrow(/alpha/);
  });
});

describe("minimumDetectableEffect", () => {
  it("inverts planSample", () => {
    for (const n of [100, 14_749, 1_000_000]) {
      const m = minimumDetectableEffect({ kind: "proportion", alpha: 0.05, power: 0.8, baseline: 0.1, unitsPerArm: n });
      const fixed = planSample({ kind: "proportion", alpha: 0.05, power: 0.8, baseline: 0.1, mde: m.fixed });
      const seq = planSample({ kind: "proportion", alpha: 0.05, power: 0.8, baseline: 0.1, mde: m.sequential });
      expect(Math.abs(fixed.fixedPerArm - n)).toBeLessThanOrEqual(1);
      expect(Math.abs(seq.sequentialPerArm - n)).toBeLessThanOrEqual(1);
      expect(m.sequential).toBeGreaterThan(m.fixed);
    }
  });

  it("mean: mde = K·sqrt(2σ²/n)", () => {
    // (1.95996398454005 + 0.841621233572914)·sqrt(8/6280) = 0.0999928… (mpmath).
    const m = minimumDetectableEffect({
      kind: "mean",
      alpha: 0.05,
      power: 0.8,
      baseline: 0,
      variance: 4,
      unitsPerArm: 6280,
    });
    expect(m.fixed).toBeCloseTo(2.80158521811296628 * Math.sqrt(8 / 6280), 14);
    expect(m.sequential).toBeCloseTo((3.03512241302855101 + 0.841621233572914205) * Math.sqrt(8 / 6280), 14);
  });
});
