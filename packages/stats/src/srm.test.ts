// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { describe, expect, it } from "vitest";
import { sequentialSrm, srmChiSquare } from "./srm";

function expectClose(actual: number | null | undefined, expected: number, relative = 1e-12): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

describe("srmChiSquare", () => {
  it("two arms: χ² with 1 df, p = erfc(sqrt(χ²/2))", () => {
    // [1000, 1100] at 50/50: e = 1050, χ² = 2·50²/1050 = 4.76190476190476; p = erfc(sqrt(χ²/2)) = 0.0290963317412522 (mpmath).
    const r = srmChiSquare([1000, 1100], [0.5, 0.5]);
    expectClose(r.statistic, 100 / 21, 1e-15);
    expectClose(r.pValue, 0.0290963317412522158007251860936, 1e-12);
    expect(r.alarm).toBe(false);
  });

  it("three arms: χ² with 2 df, p = exp(−χ²/2) exactly", () => {
    // [100, 120, 80] at equal weights: χ² = (0 + 400 + 400)/100 = 8, p = e⁻⁴.
    const r = srmChiSquare([100, 120, 80], [1, 1, 1]);
    expect(r.statistic).toBe(8);
    expectClose(r.pValue, Math.exp(-4), 1e-13);
  });

  it("unequal weights are normalised", () => {
    // [230, 770] against 20/80: χ² = 30²/200 + 30²/800 = 5.625, p = erfc(sqrt(2.8125)) = 0.0177060658073666.
    const r = srmChiSquare([230, 770], [2, 8]);
    expectClose(r.statistic, 5.625, 1e-15);
    expectClose(r.pValue, 0.0177060658073666242229835592456, 1e-12);
  });

  it("alarms below 0.001 and keeps tiny p-values", () => {
    // [5000, 6000]: χ² = 90.9090909090909, p = erfc(sqrt(45.4545…)) = 1.50426950526129e-21 (mpmath).
    const r = srmChiSquare([5000, 6000], [1, 1]);
    expectClose(r.pValue, 1.50426950526129002603647027593e-21, 1e-9);
    expect(r.alarm).toBe(true);
    expect(r.warnings.join()).toContain("sample ratio mismatch");
  });

  it("raises no alarm before every arm has 8 units", () => {
    // [2, 30]: χ² = 24.5, p = 7.43098372341413e-7 < 0.001, but the control arm has 2 units.
    const r = srmChiSquare([2, 30], [1, 1]);
    expectClose(r.pValue, 7.43098372341412745523683756096e-7, 1e-10);
    expect(r.alarm).toBe(false);
    expect(r.warnings.join()).toContain("no SRM alarm is raised before every arm has 8 units");
    expect(srmChiSquare([2, 30], [1, 1], { minUnitsPerArm: 2 }).alarm).toBe(true);
  });

  it("is null with a warning for unusable input", () => {
    expect(srmChiSquare([0, 0], [1, 1])).toMatchObject({ statistic: null, pValue: null, alarm: false });
    expect(srmChiSquare([1, 2], [1]).warnings.join()).toContain("same length");
    expect(srmChiSquare([1, 2], [1, 0]).warnings.join()).toContain("weight must be a finite number > 0");
    expect(srmChiSquare([1, Number.NaN], [1, 1]).pValue).toBeNull();
    // Units are counts: a fraction (a sub-normal one gave 0/0 = NaN) is refused.
    expect(srmChiSquare([0, 5e-324], [5e-324, 5e-324]).warnings.join()).toContain("whole number");
    expect(srmChiSquare([10.5, 11], [1, 1]).pValue).toBeNull();
    expect(srmChiSquare([Number.MAX_VALUE, Number.MAX_VALUE], [1, 1]).warnings.join()).toContain("add up to more");
  });

  it("stays defined at the edges of the doubles", () => {
    // Equal weights near the largest double (their sum overflows) are still equal weights.
    expect(srmChiSquare([1000, 1100], [Number.MAX_VALUE, Number.MAX_VALUE]).pValue).toBe(
      srmChiSquare([1000, 1100], [1, 1]).pValue,
    );
    // An arm whose share underflows to 0 beside the other: empty is no evidence, any unit is a certain mismatch.
    expect(srmChiSquare([0, 100], [5e-324, 1e308]).pValue).toBe(1);
    expect(srmChiSquare([100, 100], [5e-324, 1e308])).toMatchObject({ pValue: 0, alarm: true });
  });
});

describe("sequentialSrm (Lindon & Malek)", () => {
  // ln BF = ln Γ(k) − ln Γ(k + N) + Σ [ln Γ(k·wᵢ + xᵢ) − ln Γ(k·wᵢ)] − Σ xᵢ ln wᵢ, with mpmath.loggamma at
  // 50 digits; k = 10 000.
  it("matches the Dirichlet-multinomial Bayes factor", () => {
    expectClose(sequentialSrm([1000, 1100], [1, 1], null).pValue, 0.727641003373176579497044222224, 1e-9);
    expectClose(sequentialSrm([50_000, 51_000], [1, 1], null).pValue, 0.0368422232649930219327564320008, 1e-8);
    expectClose(sequentialSrm([5000, 6000], [1, 1], null).pValue, 6.55188235427970773641068045448e-11, 1e-8);
    expectClose(sequentialSrm([100, 120, 80], [1, 1, 1], null).pValue, 0.916712170246898190043673943421, 1e-9);
  });

  it("with k = 2 and two arms is the uniform-prior beta-binomial factor, by hand", () => {
    // Dirichlet(1, 1) = uniform p: BF = B(x+1, y+1)/0.5ⁿ = (3!·7!/11!)·2¹⁰ = 1024/1320 for [3, 7], so p = 1320/1024 → 1.
    // ln BF = ln(1024/1320) = −0.253915209980963 < 0.
    const r = sequentialSrm([3, 7], [1, 1], null, { concentration: 2 });
    expect(r.pValue).toBe(1);
    // [0, 12]: BF = (0!·12!/13!)·2¹² = 4096/13, p = 13/4096.
    expectClose(sequentialSrm([0, 12], [1, 1], null, { concentration: 2 }).pValue, 13 / 4096, 1e-12);
  });

  it("is a running minimum and alarms below 0.001", () => {
    const first = sequentialSrm([5000, 6000], [1, 1], null);
    expect(first.alarm).toBe(true);
    const later = sequentialSrm([10_000, 10_100], [1, 1], first.carry);
    expect(later.pValue).toBe(first.pValue);
    expect(later.alarm).toBe(true);
  });

  it("stays finite at 10⁸ units (ln BF = −2.70231865535966, p = 1, mpmath)", () => {
    const r = sequentialSrm([1e8, 1e8 + 30_000], [1, 1], null);
    expect(r.pValue).toBe(1);
  });

  it("carries the previous value through unusable input", () => {
    const r = sequentialSrm([1, 2], [0, 1], 0.2);
    expect(r.pValue).toBe(0.2);
    expect(r.warnings.join()).toContain("weight must be a finite number > 0");
    expect(sequentialSrm([0, 0], [1, 1], null).pValue).toBe(1);
  });
});
