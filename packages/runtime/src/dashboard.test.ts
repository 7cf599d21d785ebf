import { describe, expect, it } from "vitest";
import { parseOutcomeChecked } from "./check-outcome";
import { downsampleEvenly } from "./dashboard";

describe("downsampleEvenly", () => {
  it("keeps a short list as it is", () => {
    expect(downsampleEvenly([1, 2, 3], 5)).toEqual([1, 2, 3]);
  });

  it("keeps `max` items, evenly spaced, with the first and the last", () => {
    const items = Array.from({ length: 10_001 }, (_, i) => i);
    const kept = downsampleEvenly(items, 2000);
    expect(kept).toHaveLength(2000);
    expect(kept[0]).toBe(0);
    expect(kept.at(-1)).toBe(10_000);
    const gaps = kept.slice(1).map((v, i) => v - (kept[i] as number));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(5);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(6);
  });

  it("keeps the newest when only one may stay", () => {
    expect(downsampleEvenly([1, 2, 3], 1)).toEqual([3]);
  });
});

describe("parseOutcomeChecked (what validateOutcomeSource checks before the sources)", () => {
  it("reports a YAML syntax error with its position", () => {
    const result = parseOutcomeChecked("id: [unclosed\n", "x.yaml");
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.errors[0]).toMatchObject({
      file: "x.yaml",
      code: "yaml_syntax",
      line: expect.any(Number),
    });
  });
});
