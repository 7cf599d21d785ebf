import { describe, expect, it } from "vitest";
import { levelBound } from "./level-bound";

describe("levelBound", () => {
  // scipy: m = x.mean(); m ∓ stats.t.ppf(0.95, n - 1) * x.std(ddof=1) / sqrt(n)
  const week = [0.612, 0.615, 0.611, 0.618, 0.614, 0.613, 0.616];

  it("agrees with scipy's one-sided t bounds", () => {
    const lower = levelBound(week, "lower", 0.95);
    const upper = levelBound(week, "upper", 0.95);
    expect(lower?.mean).toBeCloseTo(0.6141428571428571, 14);
    expect(lower?.bound).toBeCloseTo(0.6123726082047627, 12);
    expect(upper?.bound).toBeCloseTo(0.6159131060809515, 12);
    expect(lower?.n).toBe(7);
  });

  it("one high point among low ones does not lift the bound past a level the others miss", () => {
    const bound = levelBound([0.6, 0.6, 0.6, 0.6, 0.7], "lower", 0.95);
    expect(bound?.mean).toBeCloseTo(0.62, 12);
    expect(bound?.bound).toBeLessThan(0.6);
  });

  it("has no bound with fewer than two points or a non-finite one; refuses a confidence outside (0.5, 1)", () => {
    expect(levelBound([0.61], "lower", 0.95)).toBeNull();
    expect(levelBound([0.61, Number.NaN], "lower", 0.95)).toBeNull();
    expect(() => levelBound(week, "lower", 95)).toThrow(/confidence must be a fraction in \(0.5, 1\), got 95/);
  });

  it("a constant level is its own bound", () => {
    expect(levelBound([0.5, 0.5, 0.5], "upper", 0.95)?.bound).toBe(0.5);
  });
});
