import { describe, expect, it } from "vitest";
import { SUSTAIN_MIN_POINTS, sustainedTarget } from "./outcome-poll";

const DAY = 86_400_000;
const WEEK_S = 7 * 86_400;
const t0 = Date.parse("2026-10-01T00:00:00Z");
/** Daily points from day 0, one per value. */
const days = (values: readonly number[]) => values.map((value, d) => ({ ts: new Date(t0 + d * DAY), value }));

describe("sustainedTarget", () => {
  it("holds when a whole window of points stays past the goal, its bound included", () => {
    const check = sustainedTarget(
      days([0.5, 0.5, 0.62, 0.63, 0.62, 0.64, 0.63, 0.62, 0.63, 0.62]),
      0.6,
      "increase",
      WEEK_S,
    );
    expect(check).toMatchObject({
      sustained: true,
      evidence: { points: 7, latest: 0.62, goal: 0.6, confidence: 0.95, sustainSeconds: WEEK_S },
    });
    if (!check.sustained) throw new Error("not sustained");
    // Window (day 2, day 9]: days 3..9.
    expect(check.evidence.windowStart).toBe(new Date(t0 + 3 * DAY).toISOString());
    expect(check.evidence.mean).toBeCloseTo((0.63 + 0.62 + 0.64 + 0.63 + 0.62 + 0.63 + 0.62) / 7, 12);
    expect(check.evidence.bound).toBeGreaterThan(0.6);
    expect(check.evidence.bound).toBeLessThan(check.evidence.mean);
  });

  it("a single good point is not enough, nor is a series shorter than the window", () => {
    expect(sustainedTarget(days([0.5, 0.7]), 0.6, "increase", WEEK_S)).toMatchObject({
      sustained: false,
      reason: expect.stringMatching(/covers 86400 s of the 604800 s/),
    });
    expect(sustainedTarget(days([0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]), 0.6, "increase", WEEK_S)).toMatchObject({
      sustained: false,
    });
  });

  it("a noisy window whose mean is past the goal but whose bound is not does not hold", () => {
    const check = sustainedTarget(days([0.5, 0.55, 0.7, 0.52, 0.72, 0.5, 0.71, 0.53, 0.66]), 0.6, "increase", WEEK_S);
    expect(check).toMatchObject({
      sustained: false,
      reason: expect.stringMatching(/lower 95% bound .* is not past 0.6/),
    });
  });

  it("a latest point fallen back from the goal does not hold, even with a good window", () => {
    const check = sustainedTarget(days([0.5, 0.64, 0.65, 0.64, 0.65, 0.64, 0.65, 0.64, 0.59]), 0.6, "increase", WEEK_S);
    expect(check).toMatchObject({ sustained: false, reason: "the latest point 0.59 is not past 0.6" });
  });

  it("a decrease is judged on the upper bound", () => {
    const check = sustainedTarget(days([0.68, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]), 0.612, "decrease", WEEK_S);
    expect(check).toMatchObject({ sustained: true, evidence: { bound: 0.6, direction: "decrease" } });
  });

  it(`needs ${SUSTAIN_MIN_POINTS} points in the window, and a goal`, () => {
    const sparse = [
      { ts: new Date(t0), value: 0.7 },
      { ts: new Date(t0 + 6 * DAY), value: 0.7 },
      { ts: new Date(t0 + 8 * DAY), value: 0.7 },
    ];
    expect(sustainedTarget(sparse, 0.6, "increase", WEEK_S)).toMatchObject({
      sustained: false,
      reason: `2 point(s) in the target.sustain window; at least ${SUSTAIN_MIN_POINTS} are needed`,
    });
    expect(sustainedTarget(days([0.7, 0.7]), null, "increase", WEEK_S)).toMatchObject({ sustained: false });
    expect(sustainedTarget([], 0.6, "increase", WEEK_S)).toMatchObject({ sustained: false, reason: "no points yet" });
  });
});
