import { describe, expect, it } from "vitest";
import { cupedEstimate, type PairedTotals, pooledSlope, ratioArm, ratioEstimate } from "./paired-totals";

/**
 * Reference values: unit-level data drawn with numpy 1.24.2 (default_rng(20261206)), the estimates computed
 * from the units with np.cov (ddof=1) and np.mean, independently of the totals-based formulas under test
 * (script: θ = pooled within-arm covariance / pooled within-arm variance of x; Var = Σ (s²y − 2θ sxy + θ² s²x)/n;
 * ratio R = Σnum/Σden, Var(R) = (s²num − 2R snum,den + R² s²den)/(n d̄²)).
 */
const cupedControl: PairedTotals = {
  units: 500,
  sum: 4946.782467792487,
  sumSq: 52746.510287219164,
  pairSum: 5039.206682392538,
  pairSumSq: 55344.25824347837,
  crossSum: 52815.04962654992,
};
const cupedTreatment: PairedTotals = {
  units: 520,
  sum: 5391.405205495287,
  sumSq: 60355.26959690856,
  pairSum: 5211.7523937318765,
  pairSumSq: 57117.152417824385,
  crossSum: 57296.19346626744,
};
const ratioControl: PairedTotals = {
  units: 400,
  sum: 7805.19540162882,
  sumSq: 279272.2822509636,
  pairSum: 1641,
  pairSumSq: 7813,
  crossSum: 37001.72036364065,
};
const ratioTreatment: PairedTotals = {
  units: 410,
  sum: 9014.224362414203,
  sumSq: 326747.40215961915,
  pairSum: 1640,
  pairSumSq: 7814,
  crossSum: 41624.96632178018,
};

describe("CUPED from totals (Deng et al. 2013)", () => {
  it("agrees with the estimate computed from the units (ρ = 0.7: about half the variance)", () => {
    const theta = pooledSlope([cupedControl, cupedTreatment]);
    expect(theta).toBeCloseTo(0.658935869620579, 10);
    const estimate = cupedEstimate(cupedControl, cupedTreatment, theta!);
    expect(estimate?.effect).toBeCloseTo(0.5112989271900348, 10);
    expect(estimate?.variance).toBeCloseTo(0.01599767976100889, 12);
    expect(estimate?.unadjustedVariance).toBeCloseTo(0.031764968618993444, 12);
    expect(estimate?.varianceReduction).toBeCloseTo(0.4963735065224246, 9);
  });

  it("gives null for an arm of one unit and for a covariate that does not vary", () => {
    expect(pooledSlope([{ ...cupedControl, units: 1 }, cupedTreatment])).toBeNull();
    const flat: PairedTotals = { units: 3, sum: 3, sumSq: 5, pairSum: 6, pairSumSq: 12, crossSum: 6 };
    expect(pooledSlope([flat, flat])).toBeNull();
    expect(cupedEstimate({ ...cupedControl, units: 1 }, cupedTreatment, 0.5)).toBeNull();
  });

  it("with θ = 0 is the plain difference of means", () => {
    const plain = cupedEstimate(cupedControl, cupedTreatment, 0)!;
    expect(plain.effect).toBeCloseTo(cupedTreatment.sum / 520 - cupedControl.sum / 500, 12);
    expect(plain.varianceReduction).toBeCloseTo(0, 12);
  });
});

describe("ratio metrics by the delta method (Deng, Knoblich & Lu 2018)", () => {
  it("agrees with the per-arm ratio and variance computed from the units", () => {
    const c = ratioArm(ratioControl)!;
    expect(c.ratio).toBeCloseTo(4.7563652660748446, 12);
    expect(c.variance).toBeCloseTo(0.0387314614459632, 12);
    const t = ratioArm(ratioTreatment)!;
    expect(t.ratio).toBeCloseTo(5.496478269764758, 12);
    expect(t.variance).toBeCloseTo(0.03922298830358849, 12);
    const estimate = ratioEstimate(ratioControl, ratioTreatment)!;
    expect(estimate.effect).toBeCloseTo(0.7401130036899133, 12);
    expect(estimate.variance).toBeCloseTo(0.07795444974955168, 12);
    expect(estimate.controlLevel).toBeCloseTo(4.7563652660748446, 12);
  });

  it("gives null for a zero denominator and for a single unit", () => {
    expect(ratioArm({ ...ratioControl, pairSum: 0, pairSumSq: 0, crossSum: 0 })).toBeNull();
    expect(ratioArm({ ...ratioControl, units: 1 })).toBeNull();
    expect(ratioEstimate({ ...ratioControl, units: 1 }, ratioTreatment)).toBeNull();
  });
});
