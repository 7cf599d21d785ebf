// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { describe, expect, it } from "vitest";
import { chiSquareUpperTail, logNormalCdf, normalTwoSidedP, tQuantileUpper } from "./distributions";

function expectClose(actual: number, expected: number, relative: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

describe("distributions", () => {
  it("t quantiles match textbook and mpmath values", () => {
    // t₀.₉₇₅ with 1 df = tan(0.475π) = 12.7062047361747 (Cauchy, exact); others by mpmath.findroot on the
    // regularised incomplete beta (40 digits).
    expectClose(tQuantileUpper(0.975, 1), Math.tan(0.475 * Math.PI), 1e-12);
    expectClose(tQuantileUpper(0.975, 2.5), 3.57465484200368321845181439259, 1e-11);
    expectClose(tQuantileUpper(0.975, 30), 2.04227245630123830995804223203, 1e-12);
    expectClose(tQuantileUpper(0.9995, 3), 12.9239786366874830654955794151, 1e-11);
    // Large df: the normal quantile 1.95996398454005.
    expectClose(tQuantileUpper(0.975, 1e9), 1.95996398454005423552459443052, 1e-8);
    expect(tQuantileUpper(0.5, 7)).toBe(0);
  });

  it("ln Φ stays finite far in the tail (mpmath: ln Φ(−40) = −804.608442013754)", () => {
    expectClose(logNormalCdf(-40), -804.608442013753788166606832919, 1e-12);
    expectClose(logNormalCdf(-37.5), -707.668989317507191066113173457, 1e-12);
    expectClose(logNormalCdf(-10), -53.2312851505124705783470273541, 1e-13);
    expectClose(logNormalCdf(0), -Math.LN2, 1e-15);
    expectClose(logNormalCdf(3), -0.00135080996474819379884111049052, 1e-12);
  });

  it("upper tails keep tiny probabilities", () => {
    // P(|Z| > 10) = erfc(10/√2) = 1.52397060483211e-23 (mpmath).
    expectClose(normalTwoSidedP(10), 1.52397060483210521319466865033e-23, 1e-12);
    // χ²₂ upper tail is exp(−x/2): at x = 200, e⁻¹⁰⁰.
    expectClose(chiSquareUpperTail(200, 2), Math.exp(-100), 1e-12);
    expect(chiSquareUpperTail(0, 3)).toBe(1);
  });
});
