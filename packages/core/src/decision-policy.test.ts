import { describe, expect, it } from "vitest";
import { decide, harmLowerBound, type PolicyInput } from "./decision-policy";

const DAY = 86_400;

/** A running experiment past its warm-up with nothing to report. */
function base(overrides: Partial<PolicyInput> = {}): PolicyInput {
  return {
    units: { control: 10_000, treatment: 10_000 },
    elapsedSeconds: 10 * DAY,
    minSamplePerArm: 1_000,
    minDurationSeconds: 1 * DAY,
    maxDurationSeconds: 28 * DAY,
    plannedPerArm: 50_000,
    alpha: 0.05,
    targetDirection: "increase",
    effect: 0.001,
    ci: [-0.01, 0.012],
    relativeCi: [-0.1, 0.12],
    pValue: 0.6,
    kill: { maxHarm: 0.03, relative: true },
    srm: { alarm: false, sequentialAlarm: false },
    guardrails: [],
    ...overrides,
  };
}

describe("decide", () => {
  it("continues when nothing is decided", () => {
    expect(decide(base())).toMatchObject({ action: "continue", reason: "running" });
  });

  it("decides nothing, not even a kill, before the minimum sample", () => {
    const harmful = { effect: -0.05, ci: [-0.08, -0.04] as const, relativeCi: [-0.5, -0.4] as const, pValue: 1e-9 };
    expect(decide(base({ ...harmful, units: { control: 999, treatment: 5_000 } }))).toMatchObject({
      action: "continue",
      reason: "warming_up",
    });
    // Said in the units outcome.yaml uses, naming the settings that hold the decision back.
    expect(decide(base({ ...harmful, elapsedSeconds: 134, units: { control: 812, treatment: 820 } })).detail).toBe(
      "warming up: 812 of 1000 units in the smaller arm (min_sample_per_arm), 2m 14s of 1d (min_duration) since the launch",
    );
    expect(decide(base({ ...harmful, units: { control: 0, treatment: 10 } }))).toMatchObject({ reason: "no_data" });
    expect(decide(base(harmful))).toMatchObject({ action: "pause", reason: "kill" });
  });

  it("lets the kill-switch, guardrails and the sequential SRM act before min_duration, and holds back wins, losses and futility", () => {
    const early = { elapsedSeconds: 30 * 60 };
    const harmful = { effect: -0.05, ci: [-0.08, -0.04] as const, relativeCi: [-0.5, -0.4] as const, pValue: 1e-9 };
    expect(decide(base({ ...harmful, ...early }))).toMatchObject({ action: "pause", reason: "kill" });
    const guardrails = [
      { metric: "latency", verdict: "violated" as const, harmLow: 0.02, margin: 0.01, relative: true },
    ];
    expect(decide(base({ ...early, guardrails }))).toMatchObject({ action: "pause", reason: "guardrail" });
    expect(decide(base({ ...early, srm: { alarm: true, sequentialAlarm: true } }))).toMatchObject({
      action: "analyse",
      reason: "srm",
    });
    const win = { effect: 0.01, ci: [0.005, 0.015] as const, relativeCi: [0.05, 0.15] as const, pValue: 0.0001 };
    const held = decide(base({ ...win, ...early }));
    expect(held).toMatchObject({ action: "continue", reason: "warming_up" });
    expect(held.detail).toBe(
      "warming up: 30m of 1d (min_duration) since the launch before a win, a loss or futility is declared; the kill-switch and guardrails are watching",
    );
    const loss = {
      effect: -0.001,
      ci: [-0.002, -0.0005] as const,
      relativeCi: [-0.02, -0.005] as const,
      pValue: 0.001,
    };
    expect(decide(base({ ...loss, ...early }))).toMatchObject({ reason: "warming_up" });
    expect(decide(base({ ...early, units: { control: 60_000, treatment: 60_000 } }))).toMatchObject({
      reason: "warming_up",
    });
    expect(decide(base({ ...win, elapsedSeconds: DAY }))).toMatchObject({ reason: "win" });
  });

  it("stops on the sequential SRM test only: a chi-square alarm alone is information", () => {
    const win = { effect: 0.01, ci: [0.005, 0.015] as const, relativeCi: [0.05, 0.15] as const, pValue: 0.0001 };
    expect(decide(base({ srm: { alarm: true, sequentialAlarm: false } }))).toMatchObject({ reason: "running" });
    expect(decide(base({ ...win, srm: { alarm: true, sequentialAlarm: false } }))).toMatchObject({ reason: "win" });
    const d = decide(base({ srm: { alarm: false, sequentialAlarm: true } }));
    expect(d).toMatchObject({ action: "analyse", reason: "srm" });
    expect(d.detail).toContain("sequential test, always valid");
  });

  it("kills on harm beyond the relative threshold, in the outcome's direction", () => {
    // increase wanted: relative CI [-0.05, -0.031] → harm at least 0.031 > 0.03
    expect(decide(base({ relativeCi: [-0.05, -0.031], pValue: 0.001, effect: -0.004 }))).toMatchObject({
      action: "pause",
      reason: "kill",
    });
    // harm at least 0.029 is within the threshold: a significant loss, not a kill
    expect(decide(base({ relativeCi: [-0.05, -0.029], pValue: 0.001, effect: -0.004 }))).toMatchObject({
      action: "analyse",
      reason: "loss",
    });
    // decrease wanted: a rise is harm
    const decrease = base({ targetDirection: "decrease", relativeCi: [0.04, 0.06], effect: 0.005, pValue: 0.001 });
    expect(decide(decrease)).toMatchObject({ action: "pause", reason: "kill" });
    // an absolute threshold reads the absolute interval
    const absolute = base({
      kill: { maxHarm: 0.01, relative: false },
      ci: [-0.03, -0.011],
      pValue: 0.001,
      effect: -0.02,
    });
    expect(decide(absolute)).toMatchObject({ action: "pause", reason: "kill" });
  });

  it("pauses on a violated guardrail, and harm wins over a win, SRM and max duration", () => {
    const win = { effect: 0.01, ci: [0.005, 0.015] as const, relativeCi: [0.05, 0.15] as const, pValue: 0.0001 };
    const guardrails = [
      { metric: "errors", verdict: "ok" as const, margin: 0.01, relative: false },
      { metric: "latency", verdict: "violated" as const, harmLow: 0.02, margin: 0.01, relative: true },
    ];
    const d = decide(
      base({ ...win, guardrails, srm: { alarm: true, sequentialAlarm: true }, elapsedSeconds: 40 * DAY }),
    );
    expect(d).toMatchObject({ action: "pause", reason: "guardrail" });
    expect(d.detail).toContain("latency");
  });

  it("declares no effect while SRM is alarmed", () => {
    const win = { effect: 0.01, ci: [0.005, 0.015] as const, pValue: 0.0001 };
    expect(decide(base({ ...win, srm: { alarm: false, sequentialAlarm: true } }))).toMatchObject({
      action: "analyse",
      reason: "srm",
    });
  });

  it("opens the analysis review on a win, a loss, futility and max duration", () => {
    expect(decide(base({ effect: 0.01, ci: [0.002, 0.02], pValue: 0.01 }))).toMatchObject({ reason: "win" });
    expect(
      decide(
        base({ targetDirection: "decrease", effect: 0.01, ci: [0.002, 0.02], relativeCi: [0.001, 0.02], pValue: 0.01 }),
      ),
    ).toMatchObject({
      reason: "loss",
    });
    expect(decide(base({ units: { control: 50_000, treatment: 50_001 } }))).toMatchObject({ reason: "futility" });
    expect(decide(base({ plannedPerArm: null, units: { control: 10 ** 9, treatment: 10 ** 9 } }))).toMatchObject({
      reason: "running",
    });
    expect(decide(base({ elapsedSeconds: 28 * DAY }))).toMatchObject({ reason: "max_duration" });
  });

  it("names a win or a loss by the side of the confidence sequence, not by this look's estimate", () => {
    // The running p-value and interval come from earlier looks that showed a gain; this look's estimate
    // dipped below 0 but the always-valid interval still lies above it.
    const drifted = { effect: -0.001, ci: [0.002, 0.02] as const, relativeCi: [0.01, 0.1] as const, pValue: 0.01 };
    expect(decide(base(drifted))).toMatchObject({ action: "analyse", reason: "win" });
    expect(decide(base({ ...drifted, targetDirection: "decrease" }))).toMatchObject({ reason: "loss" });
    // An interval that straddles 0 (its running intersection restarted) leaves the estimate to tell.
    expect(decide(base({ ...drifted, ci: [-0.004, 0.002] }))).toMatchObject({ reason: "loss" });
  });

  it("never stops on undefined statistics", () => {
    expect(decide(base({ effect: null, ci: null, relativeCi: null, pValue: null }))).toMatchObject({
      action: "continue",
    });
  });

  it("reads harm off an interval by direction", () => {
    expect(harmLowerBound([-0.05, -0.02], "increase")).toBeCloseTo(0.02);
    expect(harmLowerBound([0.02, 0.05], "decrease")).toBeCloseTo(0.02);
  });
});
