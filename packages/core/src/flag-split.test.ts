import { describe, expect, it } from "vitest";
import { flagSplitFor } from "./flag-split";

const arms = [
  { name: "control", weight: 0.5 },
  { name: "treatment", weight: 0.3 },
  { name: "treatment_b", weight: 0.2 },
];

describe("flagSplitFor", () => {
  it("serves the arms' weights when the experiment runs, naming why", () => {
    expect(flagSplitFor("built", "running", arms)).toEqual({
      weights: { control: 0.5, treatment: 0.3, treatment_b: 0.2 },
      reason: "launch",
      rollback: false,
    });
    expect(flagSplitFor("paused", "running", arms)?.reason).toBe("resume");
    expect(flagSplitFor("analysing", "running", arms)?.reason).toBe("extend");
  });

  it("creates the flag serving control only when the hypothesis is approved, for the build to wire", () => {
    expect(flagSplitFor("proposed", "approved", arms)).toEqual({
      weights: { control: 1, treatment: 0, treatment_b: 0 },
      reason: "prepare",
      rollback: false,
    });
  });

  it("sends everyone to control on a pause, a roll back and an iterate", () => {
    for (const [to, reason] of [
      ["paused", "pause"],
      ["rolled_back", "roll_back"],
      ["iterated", "iterate"],
    ] as const) {
      expect(flagSplitFor("running", to, arms)).toEqual({
        weights: { control: 1, treatment: 0, treatment_b: 0 },
        reason,
        rollback: true,
      });
    }
  });

  it("sends everyone to the first treatment on a ship", () => {
    expect(flagSplitFor("analysing", "shipped", arms)?.weights).toEqual({ control: 0, treatment: 1, treatment_b: 0 });
  });

  it("changes nothing for analysing, the states before launch and a move to the same state", () => {
    expect(flagSplitFor("running", "analysing", arms)).toBeNull();
    expect(flagSplitFor("paused", "analysing", arms)).toBeNull();
    expect(flagSplitFor("approved", "building", arms)).toBeNull();
    expect(flagSplitFor("running", "running", arms)).toBeNull();
    expect(flagSplitFor("built", "running", [])).toBeNull();
  });
});
