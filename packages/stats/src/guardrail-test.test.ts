// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ArmTotals } from "./arm-summary";
import { type GuardrailOptions, guardrailTest } from "./guardrail-test";
import type { SequentialCarry } from "./sequential-test";

const prop = (units: number, conversions: number): ArmTotals => ({ units, sum: conversions, sumSq: conversions });

function expectClose(actual: number | null | undefined, expected: number, relative = 1e-12): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

/*
 * Reference values: mpmath at 40 digits, computing the one-sided mixture by
 * numerical integration, independently of the closed form in the code:
 *   Λ⁺(d) = ∫₀^∞ exp((u·d − u²/2)/v) · 2φ(u; 0, τ²) du   (mpmath.quad),
 * p = min(1, 1/Λ⁺(harm − margin)), and the half-width c solving Λ⁺(c) = 1/α
 * (mpmath.findroot). The quadrature agreed with 2Λ·Φ(z) to all 40 digits.
 */
describe("guardrailTest: golden values", () => {
  const base: GuardrailOptions = {
    kind: "proportion",
    alpha: 0.05,
    tau2: 1e-4,
    direction: "decrease",
    margin: 0.01,
    relative: false,
  };

  it("absolute margin: 100/1000 against 130/1000 for a metric that should decrease", () => {
    // harm = 0.03, v = 0.0002031, d = harm − margin = 0.02: Λ⁺ = 1.78963050522521, p = 0.558774561050610,
    // c = 0.0556490266668122.
    const r = guardrailTest(prop(1000, 100), prop(1000, 130), base, null);
    expectClose(r.harm, 0.03);
    expectClose(r.pValue, 0.558774561050610209034756856707, 1e-11);
    expectClose(r.harmCi?.[0], -0.025649026666812177663871190175, 1e-10);
    expectClose(r.harmCi?.[1], 0.085649026666812177663871190175, 1e-11);
    expect(r.verdict).toBe("inconclusive");
  });

  it("relative margin: 1000/10000 against 900/10000 for a metric that should increase", () => {
    // harm = 0.01/0.1 = 0.1 of the control mean; delta-method v = 0.0819·… = 0.001548, τ_r² = 1e-4/0.01 = 0.01,
    // d = 0.1 − 0.05: Λ⁺ = 1.29888543220546, p = 0.769890842722007, c = 0.108824149200610.
    const r = guardrailTest(
      prop(10_000, 1000),
      prop(10_000, 900),
      { ...base, direction: "increase", margin: 0.05, relative: true },
      null,
    );
    expectClose(r.harm, 0.1, 1e-12);
    expectClose(r.pValue, 0.769890842722006764653559024677, 1e-10);
    expectClose(r.harmCi?.[0], -0.00882414920061012337690547030624, 1e-8);
    expectClose(r.harmCi?.[1], 0.208824149200610123376905470306, 1e-10);
  });

  it("ok: the upper bound is below the margin", () => {
    // 10000/100000 against 10010/100000, increase, margin 0.005, τ² = 1e-5: harm = −0.0001,
    // c = 0.00371543544593634, upper bound 0.00361543544593634 < 0.005.
    const r = guardrailTest(
      prop(100_000, 10_000),
      prop(100_000, 10_010),
      { ...base, direction: "increase", margin: 0.005, tau2: 1e-5 },
      null,
    );
    expectClose(r.harmCi?.[1], 0.00361543544593633903804800612177, 1e-9);
    expect(r.pValue).toBe(1);
    expect(r.verdict).toBe("ok");
  });

  it("violated: the lower bound is above the margin, and stays so", () => {
    const r = guardrailTest(prop(10_000, 1000), prop(10_000, 1300), base, null);
    expect(r.verdict).toBe("violated");
    expect(r.pValue).toBeLessThan(0.05);
    expect(r.harmCi?.[0]).toBeGreaterThan(0.01);
    const later = guardrailTest(prop(20_000, 2000), prop(20_000, 2150), base, r.carry);
    expect(later.verdict).toBe("violated");
  });

  it("is tighter than the two-sided level-α sequence and looser than the level-2α one", () => {
    // Two-sided half-widths (mpmath) for v = 0.0002031, τ² = 1e-4: 0.0627278639814477 at α = 0.05 and
    // 0.0555102469596165 at 2α; the one-sided c = 0.0556490266668122 lies between.
    const r = guardrailTest(prop(1000, 100), prop(1000, 130), base, null);
    const c = (r.harmCi?.[1] as number) - 0.03;
    expect(c).toBeLessThan(0.0627278639814477);
    const v = 0.0002031;
    const tau2 = 1e-4;
    const h2a = Math.sqrt(v * (1 + v / tau2) * (-2 * Math.log(0.1) + Math.log1p(tau2 / v)));
    expect(c).toBeGreaterThan(h2a);
  });
});

describe("guardrailTest: degenerate input", () => {
  const options: GuardrailOptions = {
    kind: "proportion",
    alpha: 0.05,
    tau2: 1e-4,
    direction: "increase",
    margin: 0.01,
    relative: true,
  };
  it("empty arm, zero variance, control mean 0, bad options: inconclusive with a warning", () => {
    const cases: [ArmTotals, ArmTotals, Partial<GuardrailOptions>, string][] = [
      [prop(0, 0), prop(10, 1), {}, "control arm is empty"],
      [prop(10, 0), prop(10, 0), {}, "control mean is 0"],
      [prop(10, 0), prop(10, 0), { relative: false }, "zero variance in both arms"],
      [prop(10, 1), prop(10, 2), { margin: 0 }, "margin (tolerated regression) must be a finite number > 0"],
      [prop(10, 1), prop(10, 2), { alpha: 0 }, "alpha must be in (0, 1)"],
    ];
    for (const [c, t, o, warning] of cases) {
      const r = guardrailTest(c, t, { ...options, ...o }, null);
      expect(r.verdict).toBe("inconclusive");
      expect(r.pValue).toBeNull();
      expect(r.warnings.join("\n")).toContain(warning);
      expect(JSON.stringify(r)).not.toMatch(/NaN|Infinity/);
    }
  });

  it("keeps a previous violation through a degenerate look", () => {
    const carry: SequentialCarry = { pValue: 0.001, ci: [0.02, 0.05], relativeCi: null };
    const r = guardrailTest(prop(0, 0), prop(0, 0), options, carry);
    expect(r.verdict).toBe("violated");
    expect(r.carry).toEqual(carry);
  });
});

describe("guardrailTest: properties", () => {
  it("p ∈ [0, 1], p < α exactly when the lower bound exceeds the margin, bounds contain the estimate", () => {
    const arm = fc
      .tuple(fc.integer({ min: 1, max: 200_000 }), fc.double({ min: 0, max: 1, noNaN: true }))
      .map(([n, r]) => prop(n, Math.round(n * r)));
    fc.assert(
      fc.property(
        arm,
        arm,
        fc.double({ min: 0.001, max: 0.2, noNaN: true }),
        fc.boolean(),
        (c, t, margin, relative) => {
          const r = guardrailTest(
            c,
            t,
            { kind: "proportion", alpha: 0.05, tau2: 1e-3, direction: "increase", margin, relative },
            null,
          );
          expect(JSON.stringify(r)).not.toMatch(/NaN|Infinity/);
          if (r.pValue === null || r.harmCi === null || r.harm === null) return;
          expect(r.pValue).toBeGreaterThanOrEqual(0);
          expect(r.pValue).toBeLessThanOrEqual(1);
          expect(r.harmCi[0]).toBeLessThanOrEqual(r.harm);
          expect(r.harmCi[1]).toBeGreaterThanOrEqual(r.harm);
          const gap = Math.abs(r.harmCi[0] - margin);
          if (gap > 1e-9 * Math.max(1, Math.abs(margin))) expect(r.pValue < 0.05).toBe(r.harmCi[0] > margin);
        },
      ),
      { numRuns: 500 },
    );
  });
});
