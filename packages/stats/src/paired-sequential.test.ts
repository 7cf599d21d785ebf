// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were printed to.
import { describe, expect, it } from "vitest";
import { COUNT_TOLERANCE, equalWithinCountTolerance, wholeCount } from "./counts";
import { holmAdjust } from "./multiple-testing";
import { cupedSequentialTest, fixedHorizonTestOfEstimate, ratioSequentialTest } from "./paired-sequential";
import { cupedEstimate, type PairedTotals, pooledSlope, ratioArm, ratioEstimate } from "./paired-totals";
import { sequentialTest, sequentialTestOfEstimate } from "./sequential-test";

/*
 * Reference values: the output of packages/stats/references/paired.py, run as
 *   /usr/bin/python3 packages/stats/references/paired.py
 * (numpy 1.24.2, scipy 1.10.1, statsmodels 0.13.5; seed 20261207). Each is computed from the simulated units,
 * independently of the totals-based formulas under test: θ and the CUPED effects are statsmodels OLS
 * coefficients of y ~ 1 + arm indicators + x; variances are numpy sample variances (ddof = 1) of the unit
 * residuals y − θx (CUPED) or num − R·den (ratio, by linearisation); Λ is a scipy quadrature of the likelihood
 * ratio over the N(0, τ²) mixture and the confidence-sequence half-width the brentq root of Λ(θ₀) = 1/α.
 */
const control: PairedTotals = {
  units: 600,
  sum: 6032.306919714802,
  sumSq: 63369.76148277557,
  pairSum: 6015.671887039488,
  pairSumSq: 62598.65792609625,
  crossSum: 62243.87637535624,
};
const b: PairedTotals = {
  units: 620,
  sum: 6335.373095736188,
  sumSq: 67668.22081223252,
  pairSum: 6131.951072183863,
  pairSumSq: 63074.76428791895,
  crossSum: 64488.330440052734,
};
const c: PairedTotals = {
  units: 580,
  sum: 5817.6104501680165,
  sumSq: 61180.97726089555,
  pairSum: 5825.790727496316,
  pairSumSq: 60554.195509176614,
  crossSum: 60072.33792553187,
};
const ratioControl: PairedTotals = {
  units: 400,
  sum: 3998.0018435187503,
  sumSq: 76074.8671579552,
  pairSum: 1606.0,
  pairSumSq: 7630.0,
  crossSum: 19098.605540492943,
};
const ratioTreatment: PairedTotals = {
  units: 410,
  sum: 4408.6232226241755,
  sumSq: 82846.57862522159,
  pairSum: 1616.0,
  pairSumSq: 7520.0,
  crossSum: 20430.411841166817,
};

/** |actual − expected| ≤ 1e-9·|expected|: the reference computes the same quantity another way. */
function expectClose(actual: number | null | undefined, expected: number, relative = 1e-9): void {
  expect(actual).not.toBeNull();
  expect(actual).toBeDefined();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

describe("CUPED against OLS with arm indicators (paired.py)", () => {
  it("three arms: θ pooled over every arm, each treatment's adjusted effect and variance", () => {
    const theta = pooledSlope([control, b, c]);
    expectClose(theta, 0.774886984389426);
    const eb = cupedEstimate(control, b, theta!)!;
    expectClose(eb.effect, 0.26978749434612287);
    expectClose(eb.variance, 0.007834583604566629);
    expectClose(eb.unadjustedVariance, 0.015211121723866374);
    expectClose(eb.varianceReduction, 0.4849437308575275);
    expectClose(eb.controlLevel, 10.053844866191335);
    expectClose(eb.relativeVariance, 7.87450392518915e-5);
    const ec = cupedEstimate(control, c, theta!)!;
    expectClose(ec.effect, -0.037698841436262356);
    expectClose(ec.variance, 0.00829471440440465);
    expectClose(ec.unadjustedVariance, 0.01599528341035439);
    expectClose(ec.varianceReduction, 0.48142748136396574);
    expectClose(ec.relativeVariance, 8.188623006234248e-5);
  });

  it("two arms: θ pooled over control and treatment", () => {
    const theta = pooledSlope([control, b]);
    expectClose(theta, 0.7623862847646466);
    const e = cupedEstimate(control, b, theta!)!;
    expectClose(e.effect, 0.26808894744726885);
    expectClose(e.variance, 0.007832695708925702);
    expectClose(e.varianceReduction, 0.4850678437056921);
    expectClose(e.relativeVariance, 7.872652215895775e-5);
    const r = cupedSequentialTest(control, b, { alpha: 0.05, tau2: 0.01 }, null);
    expectClose(r.theta, 0.7623862847646466);
    expectClose(r.effect, 0.26808894744726885);
    expectClose(r.variance, 0.007832695708925702);
  });

  it("the mSPRT on the adjusted estimate: Λ by quadrature, the half-width at α and at α/k", () => {
    const options = { alpha: 0.05, tau2: 0.01 };
    const rb = cupedSequentialTest(control, b, options, null, [control, b, c]);
    expect(rb.warnings).toEqual([]);
    expectClose(rb.logLambda, 2.193266369757309);
    expectClose(rb.pValue, 0.11155178351428593);
    expectClose(rb.ci![1] - rb.effect!, 0.30856190359999097);
    expectClose(rb.effect! - rb.ci![0], 0.30856190359999097);
    const rbk = cupedSequentialTest(control, b, { ...options, alpha: 0.025 }, null, [control, b, c]);
    expectClose(rbk.ci![1] - rbk.effect!, 0.3384976503474763);
    expect(rbk.pValue).toBe(rb.pValue);
    const rc = cupedSequentialTest(control, c, options, null, [control, b, c]);
    expectClose(rc.logLambda, -0.3486695664366575);
    expect(rc.pValue).toBe(1);
    expectClose(rc.ci![1] - rc.effect!, 0.32081679812590225);
    const rck = cupedSequentialTest(control, c, { ...options, alpha: 0.025 }, null, [control, b, c]);
    expectClose(rck.ci![1] - rck.effect!, 0.35208004206817384);
    expectClose(rc.varianceReduction, 0.48142748136396574);
  });

  it("degenerate input gives nulls and a warning, never an exception", () => {
    const options = { alpha: 0.05, tau2: 0.01 };
    const flat = (n: number): PairedTotals => ({
      units: n,
      sum: 2 * n,
      sumSq: 5 * n,
      pairSum: 3 * n,
      pairSumSq: 9 * n,
      crossSum: 6 * n,
    });
    const constantCovariate = cupedSequentialTest(flat(10), flat(12), options, null);
    expect(constantCovariate).toMatchObject({ effect: null, ci: null, pValue: null, theta: null });
    expect(constantCovariate.warnings.join("\n")).toContain("the CUPED slope θ is undefined");
    const one = cupedSequentialTest({ ...control, units: 1 }, b, options, null);
    expect(one).toMatchObject({ effect: null, pValue: null, varianceReduction: null });
    expect(one.warnings).toContain("control arm has a single unit; its variance is undefined");
    const empty = cupedSequentialTest(
      { units: 0, sum: 0, sumSq: 0, pairSum: 0, pairSumSq: 0, crossSum: 0 },
      b,
      options,
      null,
    );
    expect(empty.warnings).toContain("control arm is empty");
    // A degenerate look after a defined one carries the previous p-value and interval.
    const first = cupedSequentialTest(control, b, options, null);
    const after = cupedSequentialTest(flat(10), flat(12), options, first.carry);
    expect(after.pValue).toBe(first.pValue);
    expect(after.ci).toEqual(first.ci);
  });
});

describe("ratio metrics by the delta method (Deng, Knoblich & Lu 2018; paired.py)", () => {
  it("per-arm ratio and variance by linearisation, and the mSPRT on the difference", () => {
    const rc = ratioArm(ratioControl)!;
    expectClose(rc.ratio, 2.489415842788761);
    expectClose(rc.variance, 0.010988349945659804);
    const rt = ratioArm(ratioTreatment)!;
    expectClose(rt.ratio, 2.7281084298416927);
    expectClose(rt.variance, 0.010495616417423324);
    const estimate = ratioEstimate(ratioControl, ratioTreatment)!;
    expectClose(estimate.effect, 2.7281084298416927 - 2.489415842788761);
    expectClose(estimate.variance, 0.010988349945659804 + 0.010495616417423324);
    const r = ratioSequentialTest(ratioControl, ratioTreatment, { alpha: 0.05, tau2: 0.05 }, null);
    expect(r.warnings).toEqual([]);
    expectClose(r.logLambda, 0.32637596319863893);
    expectClose(r.pValue, 0.7215338662512402);
    expectClose(r.ci![1] - r.effect!, 0.4700571071525992);
    expectClose(r.control?.ratio, 2.489415842788761);
  });

  it("a zero denominator or a single unit gives nulls and a warning", () => {
    const options = { alpha: 0.05, tau2: 0.05 };
    const zero = ratioSequentialTest(
      { units: 5, sum: 0, sumSq: 0, pairSum: 0, pairSumSq: 0, crossSum: 0 },
      ratioTreatment,
      options,
      null,
    );
    expect(zero).toMatchObject({ effect: null, ci: null, pValue: null, control: null });
    expect(zero.warnings).toEqual(["control arm: the denominator sums to 0, so its ratio is undefined"]);
    const one = ratioSequentialTest(ratioControl, { ...ratioTreatment, units: 1 }, options, null);
    expect(one.warnings).toEqual(["treatment arm has a single unit; its variance is undefined"]);
    expect(one.pValue).toBeNull();
  });
});

describe("sequentialTestOfEstimate", () => {
  it("on the difference of means is sequentialTest, to the bit", () => {
    const ctl = { units: 1000, sum: 100, sumSq: 100 };
    const trt = { units: 1000, sum: 130, sumSq: 130 };
    const direct = sequentialTest(ctl, trt, { kind: "proportion", alpha: 0.05, tau2: 1e-4 }, null);
    const pc = 0.1;
    const pt = 0.13;
    const viaEstimate = sequentialTestOfEstimate(
      {
        effect: direct.effect!,
        variance: direct.variance!,
        controlLevel: pc,
        relativeVariance: (pt * (1 - pt)) / (1000 * pc * pc) + (pt * pt * pc * (1 - pc)) / (1000 * pc ** 4),
      },
      { alpha: 0.05, tau2: 1e-4 },
      null,
    );
    expect(viaEstimate.pValue).toBe(direct.pValue);
    expect(viaEstimate.ci).toEqual(direct.ci);
    expect(viaEstimate.logLambda).toBe(direct.logLambda);
    expectClose(viaEstimate.relativeCi![0], direct.relativeCi![0], 1e-14);
  });

  it("a null estimate or a zero variance carries the previous look, with the reason", () => {
    const first = sequentialTestOfEstimate(
      { effect: 0.5, variance: 0.01, controlLevel: 2 },
      { alpha: 0.05, tau2: 0.1 },
      null,
    );
    expect(first.relativeCi).toBeNull();
    const none = sequentialTestOfEstimate(null, { alpha: 0.05, tau2: 0.1 }, first.carry, "no data");
    expect(none.warnings[0]).toBe("no data");
    expect(none.pValue).toBe(first.pValue);
    const flat = sequentialTestOfEstimate(
      { effect: 0, variance: 0, controlLevel: 1 },
      { alpha: 0.05, tau2: 0.1 },
      null,
    );
    expect(flat.pValue).toBeNull();
    expect(flat.warnings.join()).toContain("the variance of the estimate is 0");
    const bad = sequentialTestOfEstimate(
      { effect: Number.NaN, variance: 1, controlLevel: 1 },
      { alpha: 0.05, tau2: 0.1 },
      null,
    );
    expect(bad.effect).toBeNull();
  });

  it("the fixed-horizon z-test of an estimate", () => {
    // z = 0.5/0.1 = 5: p = erfc(5/√2) = 5.733031437583878e-7 (scipy.stats.norm.sf(5)·2).
    const f = fixedHorizonTestOfEstimate({ effect: 0.5, variance: 0.01, controlLevel: 1 }, 0.05);
    expectClose(f.pValue, 5.733031437583878e-7);
    expectClose(f.ci![0], 0.5 - 1.959963984540054 * 0.1);
    expect(fixedHorizonTestOfEstimate({ effect: 0, variance: 0, controlLevel: 1 }).pValue).toBeNull();
  });
});

describe("holmAdjust against statsmodels multipletests(method='holm') (paired.py)", () => {
  it.each([
    [
      [0.012, 0.04, 0.3],
      [0.036000000000000004, 0.08, 0.3],
    ],
    [
      [0.001, 0.02, 0.019, 0.5],
      [0.004, 0.056999999999999995, 0.056999999999999995, 0.5],
    ],
    [
      [0.2, 0.01],
      [0.2, 0.02],
    ],
  ])("%j", (p, expected) => {
    const adjusted = holmAdjust(p);
    for (const [i, e] of expected.entries()) expectClose(adjusted[i], e, 1e-15);
  });
});

describe("counts in floating point", () => {
  it("rounds a count within COUNT_TOLERANCE·max(1, scale) of a whole number, and only then", () => {
    expect(COUNT_TOLERANCE).toBe(1e-9);
    expect(wholeCount(25840.999999999996, 25841)).toBe(25841);
    expect(wholeCount(3.0000000001)).toBe(3);
    expect(wholeCount(-1e-12, 10)).toBe(0);
    expect(Object.is(wholeCount(-1e-12, 10), -0)).toBe(false);
    expect(wholeCount(10.5, 20)).toBeNull();
    expect(wholeCount(0.001, 1)).toBeNull();
    expect(wholeCount(Number.NaN)).toBeNull();
    expect(equalWithinCountTolerance(120.00000001, 120)).toBe(true);
    expect(equalWithinCountTolerance(121, 120)).toBe(false);
  });
});
