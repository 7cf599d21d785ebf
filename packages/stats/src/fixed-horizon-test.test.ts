// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { describe, expect, it } from "vitest";
import type { ArmTotals } from "./arm-summary";
import { fixedHorizonTest } from "./fixed-horizon-test";

const prop = (units: number, conversions: number): ArmTotals => ({ units, sum: conversions, sumSq: conversions });

function expectClose(actual: number | null | undefined, expected: number, relative = 1e-12): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

describe("fixedHorizonTest: two-proportion z", () => {
  it("100/1000 against 130/1000", () => {
    // By hand: pooled p̄ = 230/2000 = 0.115, se₀ = sqrt(0.115·0.885·(2/1000)),
    // z = 0.03/se₀; p = erfc(|z|/√2); Wald interval 0.03 ± z₀.₉₇₅·sqrt(0.09/1000 + 0.1131/1000).
    // Evaluated with mpmath at 50 digits; these are the quantities R's
    // prop.test(c(130, 100), c(1000, 1000), correct = FALSE) reports (X-squared = z² = 4.42151805453206).
    const r = fixedHorizonTest("proportion", prop(1000, 100), prop(1000, 130));
    expect(r.test).toBe("two_proportion_z");
    expectClose(r.statistic, 2.10274060562211429557387826476);
    expectClose(r.pValue, 0.0354884504664746922694693659868, 1e-11);
    expectClose(r.ci?.[0], 0.00206793443937636426371744435722, 1e-10);
    expectClose(r.ci?.[1], 0.0579320655606236357362825556428, 1e-12);
    expect(r.df).toBeNull();
  });

  it("keeps tiny p-values (upper tail, not 1 − cdf)", () => {
    // 1000/100000 against 2000/100000: z = 18.3959092046388 (mpmath), p = erfc(z/√2) = 1.41664456584270e-75.
    const r = fixedHorizonTest("proportion", prop(100_000, 1000), prop(100_000, 2000));
    expectClose(r.statistic, 18.3959092046387592721779504915, 1e-12);
    expectClose(r.pValue, 1.41664456584269697024993532455e-75, 1e-9);
  });

  it("is null with a warning when nothing varies", () => {
    const none = fixedHorizonTest("proportion", prop(100, 0), prop(100, 0));
    expect(none).toMatchObject({ statistic: null, pValue: null, ci: null });
    expect(none.warnings.join()).toContain("zero variance in both arms");
    const empty = fixedHorizonTest("proportion", prop(0, 0), prop(100, 5));
    expect(empty.pValue).toBeNull();
    expect(empty.warnings).toContain("control arm is empty");
  });
});

describe("fixedHorizonTest: Welch t", () => {
  it("unequal variances: n 10 and 12 (R's t.test(var.equal = FALSE) quantities)", () => {
    // control: n 10, Σx 50, Σx² 270 → mean 5, s² = (270 − 250)/9 = 20/9;
    // treatment: n 12, Σx 72, Σx² 460 → mean 6, s² = (460 − 432)/11 = 28/11.
    // t = 1/sqrt(20/90 + 28/132) = 1.51734161657662, Welch–Satterthwaite df = 19.6977294737975,
    // p = I_{df/(df+t²)}(df/2, ½) (regularised incomplete beta) = 0.145066622309615,
    // 95 % interval 1 ∓ t₀.₉₇₅,df·se = [−0.376102391698422, 2.37610239169842]; mpmath, 50 digits.
    const r = fixedHorizonTest("mean", { units: 10, sum: 50, sumSq: 270 }, { units: 12, sum: 72, sumSq: 460 });
    expect(r.test).toBe("welch_t");
    expectClose(r.statistic, 1.51734161657661945155428081717, 1e-13);
    expectClose(r.df, 19.6977294737974819756806198214, 1e-13);
    expectClose(r.pValue, 0.145066622309614890208155222647, 1e-11);
    expectClose(r.ci?.[0], -0.376102391698421619551455661665, 1e-11);
    expectClose(r.ci?.[1], 2.37610239169842161955145566167, 1e-12);
  });

  it("integer df = 8, checked by Abramowitz & Stegun 26.7.3", () => {
    // Both arms n = 5 and s² = 2 (control mean 2, treatment mean 4): t = 2/sqrt(0.8) = √5, df = 2(n − 1) = 8.
    // A&S 26.7.3 for even ν: P(|T| < t) = sin θ·(1 + ½cos²θ + (1·3)/(2·4)cos⁴θ + (1·3·5)/(2·4·6)cos⁶θ),
    // θ = atan(t/√ν), so cos²θ = 8/13, sin θ = sqrt(5/13), and the bracket is 3345/2197.
    // p = 1 − sqrt(5/13)·3345/2197 = 0.0557665289009961630486915284701.
    const arm = (mean: number) => ({ units: 5, sum: 5 * mean, sumSq: 5 * mean * mean + 4 * 2 });
    const r = fixedHorizonTest("mean", arm(2), arm(4));
    expectClose(r.statistic, Math.sqrt(5), 1e-15);
    expectClose(r.df, 8, 1e-14);
    expectClose(r.pValue, 0.0557665289009961630486915284701, 1e-12);
  });

  it("keeps tiny p-values: t = −40 with 50 df (mpmath: 1.24124237843727e-39)", () => {
    // Equal arms n = 26, s² = 1: df = 2·25 = 50; difference chosen so that t = −40.
    const se = Math.sqrt(2 / 26);
    const arm = (mean: number) => ({ units: 26, sum: 26 * mean, sumSq: 26 * mean * mean + 25 });
    const r = fixedHorizonTest("mean", arm(40 * se), arm(0));
    expectClose(r.statistic, -40, 1e-12);
    expectClose(r.pValue, 1.24124237843727055862946035264e-39, 1e-9);
  });

  it("is null with a warning for one unit or zero variance", () => {
    const one = fixedHorizonTest("mean", { units: 1, sum: 3, sumSq: 9 }, { units: 5, sum: 10, sumSq: 28 });
    expect(one.pValue).toBeNull();
    expect(one.warnings).toContain("control arm has a single unit; its variance is undefined");
    const flat = fixedHorizonTest("mean", { units: 5, sum: 10, sumSq: 20 }, { units: 5, sum: 15, sumSq: 45 });
    expect(flat.pValue).toBeNull();
    expect(flat.warnings.join()).toContain("zero variance in both arms");
  });
});
