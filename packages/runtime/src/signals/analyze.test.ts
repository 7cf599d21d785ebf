import { parseOutcome } from "@outcome-runtime/spec";
import { outcomeVariant } from "@outcome-runtime/testing";
import { describe, expect, it } from "vitest";
import { makeStatsPlan } from "./analyze";

/** The normalised spec of a variant of the example outcome (proportion signal, baseline 0.68, expected effect 3 %). */
function spec(replacements: [string, string][] = []) {
  const parsed = parseOutcome(outcomeVariant("plan", replacements));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("\n"));
  return parsed.spec;
}

const control = { units: 5_000, sum: 3_400, sum_sq: 3_400 };

describe("makeStatsPlan", () => {
  it("tunes τ² to the planned sample of the expected effect", () => {
    const plan = makeStatsPlan(spec(), control);
    expect(plan?.tau2).toBeGreaterThan(0);
    expect(plan?.sequentialPerArm).toBeGreaterThan(plan?.fixedPerArm ?? Number.POSITIVE_INFINITY);
  });

  it("falls back to the default tuning for a design planSample does not size, instead of throwing", () => {
    // power 0.3 is valid in outcome.yaml; planSample takes power in [0.5, 1)
    const lowPower = makeStatsPlan(spec([["power: 0.8", "power: 0.3"]]), control);
    expect(lowPower).toMatchObject({
      sequentialPerArm: null,
      tau2Source: expect.stringContaining("min_sample_per_arm"),
    });
    expect(lowPower?.tau2).toBeGreaterThan(0);
    // a declared baseline of 1 (decrease target) has no variance, and planSample takes a baseline in (0, 1)
    const certain = makeStatsPlan(spec([["baseline: 0.68", "baseline: 1"]]), control);
    expect(certain?.tau2).toBeGreaterThan(0);
  });

  it("plans with the observed rate when the declared baseline is 0, so the experiment is analysed at all", () => {
    const plan = makeStatsPlan(
      spec([
        ["baseline: 0.68", "baseline: 0"],
        [
          "direction: decrease\n  value: 10%\n  relative: true",
          "direction: increase\n  value: 0.05\n  relative: false",
        ],
      ]),
      { units: 5_000, sum: 250, sum_sq: 250 },
    );
    expect(plan?.tau2).toBeGreaterThan(0);
    expect(plan?.variance).toBeCloseTo(0.05 * 0.95, 3);
  });

  it("does not fix the plan on an empty control arm when no baseline is declared", () => {
    const noBaseline = spec([["  baseline: 0.68\n", ""]]);
    expect(makeStatsPlan(noBaseline, { units: 0, sum: 0, sum_sq: 0 })).toBeNull();
    expect(makeStatsPlan(noBaseline, control)?.baseline).toBeCloseTo(3_400.5 / 5_001, 12);
  });
});
