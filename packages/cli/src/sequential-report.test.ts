// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { readFileSync } from "node:fs";
import { optimalMixtureRatio } from "@outcome-runtime/stats";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PLANNED_UNITS_PER_ARM,
  type ReportInputError,
  type SequentialReportInput,
  sequentialReport,
  validateSequentialReportInput,
} from "./sequential-report";

const prop = (units: number, conversions: number) => ({ units, sum: conversions, sum_sq: conversions });

function expectClose(actual: number | null | undefined, expected: number, relative = 1e-10): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(relative * Math.abs(expected));
}

function errorsOf(value: unknown): ReportInputError[] {
  const r = validateSequentialReportInput(value);
  if (r.ok) throw new Error("expected the input to be rejected");
  return r.errors;
}

describe("sequentialReport", () => {
  it("analyses each snapshot and decides once the sequence excludes 0", () => {
    const input: SequentialReportInput = {
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [
        { control: prop(1000, 100), treatment: prop(1000, 130) },
        { control: prop(2000, 210), treatment: prop(2000, 290) },
      ],
    };
    const report = sequentialReport(input);
    expect(report.tau2).toBe(1e-4);
    expect(report.tau2_source).toBe("tau2 given in the input");
    const [first, second] = report.results;
    // Sequential values as in sequential-test.test.ts (mpmath). Fixed-horizon: pooled z-test, mpmath:
    // look 1 p = 0.0354884504664747, look 2 z = 3.82473154987006, p = 0.000130914656046708.
    // SRM: equal arms, χ² = 0 so p = 1; Dirichlet-multinomial ln BF = −0.0912 and −0.168 < 0, so p = 1.
    expectClose(first?.p_value, 0.588124496124421956691004520595);
    expectClose(first?.fixed_p_value, 0.0354884504664746922694693659868);
    expect(first).toMatchObject({ srm_p_value: 1, srm_sequential_p_value: 1, decision: "continue" });
    expect(first?.warnings).toBeUndefined();
    expectClose(second?.p_value, 0.0412800433857535162412969289014);
    expectClose(second?.fixed_p_value, 0.000130914656046708414334414219607, 1e-9);
    expectClose(second?.ci?.[0], 0.00110637962761318192546480095496, 1e-9);
    expect(second?.decision).toBe("treatment_better");
    expect(Object.keys(second ?? {})).toEqual([
      "effect",
      "ci",
      "relative_lift",
      "relative_ci",
      "p_value",
      "fixed_p_value",
      "srm_p_value",
      "srm_sequential_p_value",
      "decision",
    ]);
  });

  it("names the harmful side by the metric's direction", () => {
    const snapshots = [{ control: prop(10_000, 1000), treatment: prop(10_000, 1200) }];
    expect(sequentialReport({ metric: "proportion", tau2: 1e-4, snapshots }).results[0]?.decision).toBe(
      "treatment_better",
    );
    const down = sequentialReport({ metric: "proportion", tau2: 1e-4, direction: "decrease", snapshots });
    expect(down.results[0]?.decision).toBe("treatment_worse");
  });

  it("declares nothing while the SRM alarm is raised", () => {
    // [10000, 11000]: χ² = 47.6190476190476, p = 5.17630905699017e-12 (mpmath); ln BF = 15.5666332706473.
    const report = sequentialReport({
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [{ control: prop(10_000, 1000), treatment: prop(11_000, 1500) }],
    });
    const row = report.results[0];
    expect(row?.p_value).toBeLessThan(0.05);
    expectClose(row?.srm_p_value, 5.1763090569901686258447047421e-12, 1e-8);
    expectClose(row?.srm_sequential_p_value, 1.73578954718796266612693059274e-7, 1e-8);
    expect(row?.decision).toBe("continue");
    expect(row?.warnings?.join("\n")).toContain("no decision is declared while the SRM alarm is raised");
  });

  it("gives nulls and warnings for a degenerate snapshot, then recovers", () => {
    const report = sequentialReport({
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [
        { control: prop(0, 0), treatment: prop(0, 0) },
        { control: prop(1000, 100), treatment: prop(1000, 130) },
      ],
    });
    expect(report.results[0]).toEqual({
      effect: null,
      ci: null,
      relative_lift: null,
      relative_ci: null,
      p_value: null,
      fixed_p_value: null,
      srm_p_value: null,
      srm_sequential_p_value: 1,
      decision: "continue",
      warnings: ["control arm is empty", "treatment arm is empty", "no units yet"],
    });
    expectClose(report.results[1]?.p_value, 0.588124496124421956691004520595);
  });

  it("tunes τ² to the planned sample from the first snapshot with a positive variance", () => {
    const report = sequentialReport({
      metric: "proportion",
      planned_units_per_arm: 5000,
      snapshots: [
        { control: prop(10, 0), treatment: prop(10, 0) },
        { control: prop(1000, 100), treatment: prop(1000, 130) },
      ],
    });
    // σ² = (0.09 + 0.1131)/2 = 0.10155 from snapshot 2; τ² = x·2σ²/n.
    expectClose(report.tau2, (optimalMixtureRatio(0.05) * 2 * 0.10155) / 5000, 1e-13);
    expect(report.tau2_source).toContain("snapshot 2");
    const byDefault = sequentialReport({
      metric: "proportion",
      snapshots: [{ control: prop(1000, 100), treatment: prop(1000, 130) }],
    });
    expectClose(byDefault.tau2, (optimalMixtureRatio(0.05) * 2 * 0.10155) / DEFAULT_PLANNED_UNITS_PER_ARM, 1e-13);
    expect(byDefault.tau2_source).toContain(
      "at 2500 units per arm (the default when planned_units_per_arm is not given",
    );
  });

  it("runs the documented example", () => {
    const raw: unknown = JSON.parse(
      readFileSync(new URL("../../../docs/examples/sequential-input.json", import.meta.url), "utf8"),
    );
    const checked = validateSequentialReportInput(raw);
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    const report = sequentialReport(checked.input);
    expect(report.results.map((r) => r.decision)).toEqual([
      "continue",
      "continue",
      "continue",
      "treatment_better",
      "treatment_better",
    ]);
    // Peeking at the fixed-horizon test would have declared at snapshot 2 already.
    expect(report.results[1]?.fixed_p_value).toBeLessThan(0.05);
  });
});

describe("validateSequentialReportInput", () => {
  const ok = { metric: "proportion", snapshots: [{ control: prop(10, 1), treatment: prop(10, 2) }] };

  it("accepts a valid input and fills sum_sq for proportions", () => {
    const r = validateSequentialReportInput({
      metric: "proportion",
      snapshots: [{ control: { units: 10, sum: 1 }, treatment: { units: 10, sum: 2 } }],
    });
    expect(r).toEqual({
      ok: true,
      input: { metric: "proportion", snapshots: [{ control: prop(10, 1), treatment: prop(10, 2) }] },
    });
  });

  it("rejects what is not an object", () => {
    expect(errorsOf("hello")[0]).toMatchObject({ path: "", code: "wrong_type" });
    expect(errorsOf([1])[0]?.message).toContain("got a list");
  });

  it("names the field, the value and the fix", () => {
    expect(errorsOf({ metric: "proportion" })).toEqual([
      expect.objectContaining({ path: "/snapshots", code: "missing_field", message: "snapshots is missing" }),
    ]);
    expect(errorsOf({ ...ok, metric: "median" })[0]).toMatchObject({
      path: "/metric",
      code: "invalid_value",
      message: 'metric is "median"; it must be "proportion", "mean" or "ratio"',
    });
    const negative = errorsOf({ ...ok, snapshots: [{ control: prop(-5, 0), treatment: prop(10, 2) }] });
    expect(negative[0]).toMatchObject({
      path: "/snapshots/0/control/units",
      code: "out_of_range",
      message: "snapshots[0].control.units is -5; it must be a whole number ≥ 0",
    });
    const over = errorsOf({ ...ok, snapshots: [{ control: prop(10, 1), treatment: { units: 10, sum: 12 } }] });
    expect(over[0]?.path).toBe("/snapshots/0/treatment/sum");
    expect(over[0]?.message).toContain(
      "snapshots[0].treatment.sum is 12; for a proportion it is the number of conversions",
    );
    expect(over[0]?.hint).toContain("rate or a percent");
    expect(errorsOf({ ...ok, alpha: 5 })[0]?.message).toBe("alpha is 5; it must be a number in (0, 1)");
    expect(errorsOf({ ...ok, snapshot: [] })[0]).toMatchObject({ path: "/snapshot", code: "unknown_key" });
    expect(errorsOf({ ...ok, tau2: 0.01, planned_units_per_arm: 100 })[0]?.code).toBe("conflicting_options");
    expect(errorsOf({ ...ok, weights: [1] })[0]?.path).toBe("/weights");
  });

  it("checks mean totals and that snapshots are cumulative", () => {
    const mean = (units: number, sum: number, sum_sq: number) => ({ units, sum, sum_sq });
    const impossible = errorsOf({
      metric: "mean",
      snapshots: [{ control: mean(10, 100, 10), treatment: mean(10, 1, 1) }],
    });
    expect(impossible[0]).toMatchObject({ path: "/snapshots/0/control/sum_sq", code: "out_of_range" });
    expect(impossible[0]?.message).toContain("less than sum²/units = 1000");
    const missing = errorsOf({
      metric: "mean",
      snapshots: [{ control: { units: 10, sum: 3 }, treatment: mean(10, 1, 1) }],
    });
    expect(missing[0]).toMatchObject({ path: "/snapshots/0/control/sum_sq", code: "missing_field" });
    const shrinking = errorsOf({
      metric: "proportion",
      snapshots: [
        { control: prop(100, 10), treatment: prop(100, 10) },
        { control: prop(90, 10), treatment: prop(200, 20) },
      ],
    });
    expect(shrinking[0]).toMatchObject({ path: "/snapshots/1/control/units" });
    expect(shrinking[0]?.message).toContain("less than 100 in the previous snapshot");
  });

  it("reports every mistake at once", () => {
    const errors = errorsOf({
      metric: "median",
      alpha: 0,
      snapshots: [{ control: prop(-1, 0), treatment: { units: 1.5, sum: "3" } }],
    });
    expect(errors.map((e) => e.path)).toEqual([
      "/metric",
      "/alpha",
      "/snapshots/0/control/units",
      "/snapshots/0/treatment/units",
      "/snapshots/0/treatment/sum",
    ]);
  });
});
