// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ArmTotals } from "./arm-summary";
import { summarizeArm } from "./arm-summary";
import {
  mixtureVarianceForEffect,
  mixtureVarianceForSample,
  optimalMixtureRatio,
  type SequentialCarry,
  sequentialTest,
  tunedBoundaryMultiplier,
} from "./sequential-test";

/*
 * Reference values: computed independently with Python's mpmath at 50 significant
 * digits, from the closed form of Johari, Pekelis & Walsh (2017)
 *   ln Λ = ½ ln(s²/(s²+τ²)) + τ²Δ²/(2s²(s²+τ²)),  p = min(1, 1/Λ),
 *   h = sqrt(s²(s²+τ²)/τ² · (2 ln(1/α) + ln((s²+τ²)/s²))),
 * and cross-checked by integrating the Gaussian likelihood ratio over the
 * N(0, τ²) mixture numerically (mpmath.quad), which agreed to all 50 digits.
 */

const prop = (units: number, conversions: number): ArmTotals => ({ units, sum: conversions, sumSq: conversions });
/** Totals of a mean arm with the given sample mean and unbiased variance. */
const meanArm = (units: number, mean: number, variance: number): ArmTotals => ({
  units,
  sum: units * mean,
  sumSq: units * mean * mean + (units - 1) * variance,
});

const PROPORTION = { kind: "proportion", alpha: 0.05, tau2: 1e-4 } as const;

function expectClose(actual: number | null | undefined, expected: number, relative = 1e-12): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.max(1e-300, Math.abs(expected)));
}

describe("summarizeArm", () => {
  it("gives p(1−p) for a proportion and the unbiased variance for a mean", () => {
    expect(summarizeArm("proportion", prop(200, 30))).toEqual({ units: 200, mean: 0.15, variance: 0.15 * 0.85 });
    // Values 1, 2, 3, 4: mean 2.5, Σ(x − x̄)² = 5, unbiased variance 5/3.
    const s = summarizeArm("mean", { units: 4, sum: 10, sumSq: 30 });
    expect(s.mean).toBe(2.5);
    expectClose(s.variance, 5 / 3, 1e-15);
  });

  it("is null where undefined: no units, one unit of a mean, invalid totals", () => {
    expect(summarizeArm("proportion", prop(0, 0))).toEqual({ units: 0, mean: null, variance: null });
    expect(summarizeArm("mean", { units: 1, sum: 3, sumSq: 9 })).toEqual({ units: 1, mean: 3, variance: null });
    expect(summarizeArm("proportion", prop(10, 11))).toEqual({ units: 10, mean: null, variance: null });
    expect(summarizeArm("mean", { units: -1, sum: 0, sumSq: 0 })).toEqual({ units: 0, mean: null, variance: null });
  });
});

describe("sequentialTest: golden values", () => {
  it("proportion, 100/1000 against 130/1000, τ² = 1e-4", () => {
    const r = sequentialTest(prop(1000, 100), prop(1000, 130), PROPORTION, null);
    expect(r.warnings).toEqual([]);
    expectClose(r.effect, 0.03);
    expectClose(r.variance, 0.0002031); // 0.1·0.9/1000 + 0.13·0.87/1000
    expectClose(r.logLambda, 0.530816625391983114845953889622);
    expectClose(r.pValue, 0.588124496124421956691004520595);
    expectClose(r.ci?.[0], -0.0327278639814477377717936434752);
    expectClose(r.ci?.[1], 0.0927278639814477377717936434752);
    expectClose(r.relativeLift, 0.3);
    // Delta method: s_r² = 0.1131/(1000·0.01) + 0.13²·0.09/(1000·0.1⁴) = 0.02652, τ_r² = 1e-4/0.1² = 0.01.
    expectClose(r.relativeCi?.[0], -0.481836375148908625790220580708);
    expectClose(r.relativeCi?.[1], 1.08183637514890862579022058071);
    expect(r.carry).toEqual({ pValue: r.pValue, ci: r.ci, relativeCi: r.relativeCi });
  });

  it("proportion, 1000/10000 against 1200/10000: significant at α = 0.05", () => {
    const r = sequentialTest(prop(10_000, 1000), prop(10_000, 1200), PROPORTION, null);
    expectClose(r.logLambda, 7.64698277120304798144358030952, 1e-11);
    expectClose(r.pValue, 0.000477482632132174694281558151147, 1e-10);
    expectClose(r.ci?.[0], 0.00649250922324867898130767079403, 1e-11);
    expectClose(r.ci?.[1], 0.033507490776751321018692329206, 1e-12);
  });

  it("mean, n = 500 per arm, means 10 and 10.3, variances 4 and 4.5, τ² = 0.01", () => {
    const r = sequentialTest(
      meanArm(500, 10, 4),
      meanArm(500, 10.3, 4.5),
      { kind: "mean", alpha: 0.05, tau2: 0.01 },
      null,
    );
    expectClose(r.variance, 0.017, 1e-11);
    expectClose(r.logLambda, 0.749080395888688601071115139827, 1e-10);
    expectClose(r.pValue, 0.472801142759718597508798933018, 1e-10);
    expectClose(r.ci?.[0], -0.244281767441896550269478890438, 1e-10);
    expectClose(r.ci?.[1], 0.844281767441896550269478890438, 1e-10);
  });

  it("carries the running minimum p-value and the running intersection to the next look", () => {
    const first = sequentialTest(prop(1000, 100), prop(1000, 130), PROPORTION, null);
    const second = sequentialTest(prop(2000, 210), prop(2000, 290), PROPORTION, first.carry);
    // Look 2 alone (mpmath): ln Λ = 3.18737610679791, p = 0.0412800433857535,
    // interval [0.00110637962761318, 0.0788936203723868]; the look-1 interval is
    // [−0.0327278639814477, 0.0927278639814477], so the intersection is look 2's.
    expectClose(second.logLambda, 3.18737610679791123112593109364, 1e-11);
    expectClose(second.pValue, 0.0412800433857535162412969289014, 1e-10);
    expectClose(second.ci?.[0], 0.00110637962761318192546480095496, 1e-9);
    expectClose(second.ci?.[1], 0.078893620372386818074535199045, 1e-11);
    // A third look with weaker evidence keeps the smaller p and the tighter bounds.
    const third = sequentialTest(prop(3000, 320), prop(3000, 360), PROPORTION, second.carry);
    expect(third.pValue).toBe(second.pValue);
    expect(third.ci?.[0]).toBeGreaterThanOrEqual(second.ci?.[0] as number);
    expect(third.ci?.[1]).toBeLessThanOrEqual(second.ci?.[1] as number);
  });

  it("tests against θ₀ when given (the interval does not depend on it)", () => {
    const at0 = sequentialTest(prop(10_000, 1000), prop(10_000, 1200), PROPORTION, null);
    const at2 = sequentialTest(prop(10_000, 1000), prop(10_000, 1200), { ...PROPORTION, theta0: 0.02 }, null);
    expect(at2.ci).toEqual(at0.ci);
    // Δ = θ₀: ln Λ = ½ ln(s²/(s²+τ²)) < 0, so p = 1.
    expect(at2.pValue).toBe(1);
  });
});

describe("sequentialTest: degenerate input gives nulls and warnings, never NaN", () => {
  const cases: [string, ArmTotals, ArmTotals, "proportion" | "mean", string][] = [
    ["empty control", prop(0, 0), prop(10, 3), "proportion", "control arm is empty"],
    ["empty treatment", prop(10, 3), prop(0, 0), "proportion", "treatment arm is empty"],
    ["zero conversions", prop(500, 0), prop(500, 0), "proportion", "zero variance in both arms"],
    ["all converted", prop(500, 500), prop(400, 400), "proportion", "zero variance in both arms"],
    ["zero variance", meanArm(50, 3, 0), meanArm(50, 3, 0), "mean", "zero variance in both arms"],
    ["one unit", { units: 1, sum: 4, sumSq: 16 }, meanArm(10, 3, 1), "mean", "control arm has a single unit"],
    ["conversions > units", prop(10, 11), prop(10, 3), "proportion", "control arm: conversions (sum) must be"],
    ["negative units", prop(-5, 0), prop(10, 3), "proportion", "control arm: units must be"],
  ];
  for (const [name, control, treatment, kind, warning] of cases) {
    it(name, () => {
      const r = sequentialTest(control, treatment, { kind, alpha: 0.05, tau2: 0.01 }, null);
      expect(r.pValue).toBeNull();
      expect(r.ci).toBeNull();
      expect(r.logLambda).toBeNull();
      expect(r.carry).toBeNull();
      expect(r.warnings.join("\n")).toContain(warning);
      expect(JSON.stringify(r)).not.toMatch(/NaN|Infinity/);
      noNonFinite(r);
    });
  }

  it("zero conversions in one arm only is fine (the other arm has variance)", () => {
    const r = sequentialTest(prop(1000, 0), prop(1000, 12), PROPORTION, null);
    expect(r.pValue).not.toBeNull();
    expect(r.relativeLift).toBeNull();
    expect(r.warnings).toContain("control mean is 0: the relative lift is undefined");
  });

  it("carries the previous look through a degenerate one", () => {
    const first = sequentialTest(prop(1000, 100), prop(1000, 130), PROPORTION, null);
    const bad = sequentialTest(prop(1000, 100), prop(0, 0), PROPORTION, first.carry);
    expect(bad.carry).toEqual(first.carry);
    expect(bad.pValue).toBe(first.pValue);
    expect(bad.ci).toEqual(first.ci);
    expect(bad.warnings.join("\n")).toContain("carried from the previous look");
  });

  it("rejects bad options with a warning instead of a throw", () => {
    const r = sequentialTest(prop(1000, 100), prop(1000, 130), { kind: "proportion", alpha: 5, tau2: 1e-4 }, null);
    expect(r.pValue).toBeNull();
    expect(r.warnings.join("\n")).toContain("alpha must be in (0, 1)");
    const t = sequentialTest(prop(1000, 100), prop(1000, 130), { kind: "proportion", alpha: 0.05, tau2: 0 }, null);
    expect(t.warnings.join("\n")).toContain("tau2 (mixture variance) must be a finite number > 0");
  });

  it("restarts a running intersection that would become empty, with a warning", () => {
    const previous: SequentialCarry = { pValue: 0.01, ci: [0.5, 0.6], relativeCi: null };
    const r = sequentialTest(prop(1000, 100), prop(1000, 130), PROPORTION, previous);
    expect(r.warnings.join("\n")).toContain("the running confidence interval became empty");
    expect(r.ci?.[0]).toBeLessThan(0.03);
    expect(r.ci?.[1]).toBeGreaterThan(0.03);
    expect(r.pValue).toBe(0.01);
  });

  it("handles 10⁸ units per arm without overflow", () => {
    const r = sequentialTest(prop(1e8, 1e7), prop(1e8, 1.002e7), { kind: "proportion", alpha: 0.05, tau2: 1e-6 }, null);
    noNonFinite(r);
    // mpmath (50 digits): s² = 1.8015996e-9, ln Λ = 7.92084161084523962867686255133,
    // p = 0.000363096611820322169556616392062, interval [5.09299543195388e-5, 3.49070045680461e-4].
    expectClose(r.logLambda, 7.92084161084523962867686255133, 1e-10);
    expectClose(r.pValue, 0.000363096611820322169556616392062, 1e-9);
    expectClose(r.ci?.[0], 0.0000509299543195387906756712451555, 1e-8);
    expectClose(r.ci?.[1], 0.000349070045680461209324328754844, 1e-9);
    // An overwhelming effect at 10⁸ units: ln Λ = 1995009.47184721652 (mpmath), so
    // p = e^(−ln Λ) ≈ 2.5e-866422 underflows to 0: still a number.
    const huge = sequentialTest(prop(1e8, 1e7), prop(1e8, 2e7), { kind: "proportion", alpha: 0.05, tau2: 1e-6 }, null);
    expect(huge.pValue).toBe(0);
    expectClose(huge.logLambda, 1995009.4718472165212789980971, 1e-10);
    const mean = sequentialTest(
      meanArm(1e8, 50, 400),
      meanArm(1e8, 50.01, 400),
      { kind: "mean", alpha: 0.05, tau2: 1 },
      null,
    );
    noNonFinite(mean);
  });
});

/** Fails when any number in the value is NaN or ±∞. */
function noNonFinite(value: unknown): void {
  const walk = (v: unknown): void => {
    if (typeof v === "number") expect(Number.isFinite(v)).toBe(true);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(value);
}

describe("sequentialTest: properties", () => {
  const armArb = fc
    .tuple(fc.integer({ min: 0, max: 1_000_000 }), fc.double({ min: 0, max: 1, noNaN: true }))
    .map(([units, rate]) => prop(units, Math.round(units * rate)));
  const growth = fc.array(
    fc.tuple(
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
    ),
    { minLength: 1, maxLength: 20 },
  );

  it("p ∈ [0, 1] and the first look's interval contains Δ, for any totals", () => {
    fc.assert(
      fc.property(armArb, armArb, fc.double({ min: 1e-8, max: 1, noNaN: true }), (c, t, tau2) => {
        const r = sequentialTest(c, t, { kind: "proportion", alpha: 0.05, tau2 }, null);
        noNonFinite(r);
        if (r.pValue !== null) {
          expect(r.pValue).toBeGreaterThanOrEqual(0);
          expect(r.pValue).toBeLessThanOrEqual(1);
        }
        if (r.ci !== null && r.effect !== null) {
          expect(r.ci[0]).toBeLessThanOrEqual(r.effect);
          expect(r.ci[1]).toBeGreaterThanOrEqual(r.effect);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("p never increases and the intervals are nested over cumulative looks", () => {
    fc.assert(
      fc.property(growth, fc.double({ min: 0, max: 0.9, noNaN: true }), (steps, base) => {
        let c = prop(0, 0);
        let t = prop(0, 0);
        let carry: SequentialCarry | null = null;
        let lastP = 1;
        let lastCi: [number, number] | null = null;
        for (const [nc, nt, lift] of steps) {
          c = prop(c.units + nc, c.sum + Math.round(nc * base));
          t = prop(t.units + nt, t.sum + Math.round(nt * Math.min(1, base * (1 + lift))));
          const r = sequentialTest(c, t, { kind: "proportion", alpha: 0.05, tau2: 1e-3 }, carry);
          noNonFinite(r);
          if (r.pValue !== null) {
            expect(r.pValue).toBeLessThanOrEqual(lastP);
            lastP = r.pValue;
          }
          const emptied = r.warnings.some((w) => w.includes("became empty"));
          if (r.ci !== null && lastCi !== null && !emptied) {
            expect(r.ci[0]).toBeGreaterThanOrEqual(lastCi[0]);
            expect(r.ci[1]).toBeLessThanOrEqual(lastCi[1]);
          }
          if (r.ci !== null) lastCi = r.ci;
          carry = r.carry ?? carry;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("p < α exactly when this look's interval excludes θ₀ = 0 (the duality of test and interval)", () => {
    fc.assert(
      fc.property(armArb, armArb, (c, t) => {
        const r = sequentialTest(c, t, { kind: "proportion", alpha: 0.05, tau2: 1e-3 }, null);
        if (r.pValue === null || r.ci === null) return;
        const excludes = r.ci[0] > 0 || r.ci[1] < 0;
        // Ties at the boundary are measure-zero; allow rounding within 1e-9 of α.
        if (Math.abs(r.pValue - 0.05) > 1e-9) expect(r.pValue < 0.05).toBe(excludes);
      }),
      { numRuns: 500 },
    );
  });
});

describe("mixture variance", () => {
  it("solves x = 2 ln(1/α) + ln(1 + x) (mpmath: x = 8.21196806206825 at α = 0.05)", () => {
    expectClose(optimalMixtureRatio(0.05), 8.21196806206825420700118765158, 1e-14);
    expectClose(tunedBoundaryMultiplier(0.05), 3.03512241302855101284515678137, 1e-14);
  });

  it("tunes τ² to a planned sample: τ² = x·2σ²/n", () => {
    // mpmath: 8.21196806206825420700118765158 · 2 · 0.09 / 10000.
    expectClose(
      mixtureVarianceForSample({ alpha: 0.05, sigma2: 0.09, plannedUnitsPerArm: 10_000 }),
      0.000147815425117228575726021377728,
      1e-14,
    );
    expect(() => mixtureVarianceForSample({ alpha: 0.05, sigma2: 0, plannedUnitsPerArm: 10 })).toThrow(RangeError);
  });

  it("makes the interval tightest at the planned sample", () => {
    const tau2 = mixtureVarianceForSample({ alpha: 0.05, sigma2: 4, plannedUnitsPerArm: 5000 });
    const width = (t2: number) => {
      const r = sequentialTest(
        meanArm(5000, 10, 4),
        meanArm(5000, 10, 4),
        { kind: "mean", alpha: 0.05, tau2: t2 },
        null,
      );
      return (r.ci?.[1] as number) - (r.ci?.[0] as number);
    };
    expect(width(tau2)).toBeLessThan(width(tau2 * 1.2));
    expect(width(tau2)).toBeLessThan(width(tau2 / 1.2));
  });

  it("matches τ to the expected effect", () => {
    expect(mixtureVarianceForEffect({ effect: 0.02 })).toBeCloseTo(0.0004, 15);
    expect(mixtureVarianceForEffect({ effect: -3 })).toBe(9);
    expect(() => mixtureVarianceForEffect({ effect: 0 })).toThrow(RangeError);
  });
});
