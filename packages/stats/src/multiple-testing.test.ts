import { describe, expect, it } from "vitest";
import { holmAdjust } from "./multiple-testing";

describe("holmAdjust", () => {
  // Expected values: statsmodels 0.13.5, multipletests(p, method="holm")[1] (Debian's python3-statsmodels).
  it.each([
    [
      [0.01, 0.04, 0.03],
      [0.03, 0.06, 0.06],
    ],
    [
      [0.2, 0.001, 0.5, 0.03],
      [0.4, 0.004, 0.5, 0.09],
    ],
    [
      [0.0005, 0.0004, 0.9],
      [0.0012, 0.0012, 0.9],
    ],
  ])("agrees with statsmodels for %j", (p, expected) => {
    const adjusted = holmAdjust(p);
    for (const [i, e] of expected.entries()) expect(adjusted[i]).toBeCloseTo(e, 15);
  });

  it("leaves one p-value as it is, never exceeds 1, and keeps a null as null while counting it", () => {
    expect(holmAdjust([0.02])).toEqual([0.02]);
    expect(holmAdjust([0.6, 0.7])).toEqual([1, 1]);
    // The null counts as p = 1 among k = 2: the defined p-value is doubled.
    expect(holmAdjust([0.01, null])).toEqual([0.02, null]);
    expect(holmAdjust([])).toEqual([]);
  });

  it("is monotone in the sorted order and never below the raw p-value", () => {
    const p = [0.03, 0.001, 0.2, 0.04, 0.5];
    const adjusted = holmAdjust(p) as number[];
    for (const [i, raw] of p.entries()) expect(adjusted[i] ?? 0).toBeGreaterThanOrEqual(raw);
    const sorted = p.map((raw, i) => [raw, adjusted[i] ?? 0] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]![1]).toBeGreaterThanOrEqual(sorted[i - 1]![1]);
  });
});
