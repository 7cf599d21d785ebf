// biome-ignore-all lint/correctness/noPrecisionLoss: reference values are quoted with every digit they were computed to.
import { readFileSync } from "node:fs";
import { holmAdjust, optimalMixtureRatio, type SequentialCarry, sequentialTest } from "@outcome-runtime/stats";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PLANNED_UNITS_PER_ARM,
  type MultiArmReportRow,
  multiArmSequentialReport,
  type ReportInputError,
  runSequentialReport,
  type SequentialReport,
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

/*
 * CUPED and ratio totals: the output of packages/stats/references/paired.py
 * (`/usr/bin/python3 packages/stats/references/paired.py`; statsmodels OLS with arm indicators, numpy sample
 * variances of the unit residuals, the mSPRT by quadrature). Covariate x, metric y.
 */
const cupedArm = (t: {
  units: number;
  sum: number;
  sumSq: number;
  pairSum: number;
  pairSumSq: number;
  crossSum: number;
}) => ({
  units: t.units,
  sum: t.sum,
  sum_sq: t.sumSq,
  covariate: { sum: t.pairSum, sum_sq: t.pairSumSq, sum_product: t.crossSum },
});
const cupedControl = cupedArm({
  units: 600,
  sum: 6032.306919714802,
  sumSq: 63369.76148277557,
  pairSum: 6015.671887039488,
  pairSumSq: 62598.65792609625,
  crossSum: 62243.87637535624,
});
const cupedB = cupedArm({
  units: 620,
  sum: 6335.373095736188,
  sumSq: 67668.22081223252,
  pairSum: 6131.951072183863,
  pairSumSq: 63074.76428791895,
  crossSum: 64488.330440052734,
});
const cupedC = cupedArm({
  units: 580,
  sum: 5817.6104501680165,
  sumSq: 61180.97726089555,
  pairSum: 5825.790727496316,
  pairSumSq: 60554.195509176614,
  crossSum: 60072.33792553187,
});
const ratioControl = {
  units: 400,
  numerator: { sum: 3998.0018435187503, sum_sq: 76074.8671579552 },
  denominator: { sum: 1606, sum_sq: 7630 },
  sum_product: 19098.605540492943,
};
const ratioTreatment = {
  units: 410,
  numerator: { sum: 4408.6232226241755, sum_sq: 82846.57862522159 },
  denominator: { sum: 1616, sum_sq: 7520 },
  sum_product: 20430.411841166817,
};

function validated(value: unknown): SequentialReportInput {
  const r = validateSequentialReportInput(value);
  if (!r.ok) throw new Error(`expected the input to be accepted: ${JSON.stringify(r.errors)}`);
  return r.input;
}

describe("several treatments", () => {
  const snapshots = [
    { control: prop(2000, 200), b: prop(2000, 260), c: prop(2000, 205) },
    { control: prop(4000, 400), b: prop(4000, 520), c: prop(4000, 395) },
  ];

  it("gives each treatment its own p-value, Holm's adjustment and a confidence sequence at α/k", () => {
    const report = multiArmSequentialReport(validated({ metric: "proportion", tau2: 1e-4, snapshots }));
    let carryB: SequentialCarry | null = null;
    let carryC: SequentialCarry | null = null;
    for (const [i, row] of report.results.entries()) {
      const look = snapshots[i]!;
      const totals = (a: { units: number; sum: number }) => ({ units: a.units, sum: a.sum, sumSq: a.sum });
      const b = sequentialTest(
        totals(look.control),
        totals(look.b),
        { kind: "proportion", alpha: 0.025, tau2: 1e-4 },
        carryB,
      );
      const c = sequentialTest(
        totals(look.control),
        totals(look.c),
        { kind: "proportion", alpha: 0.025, tau2: 1e-4 },
        carryC,
      );
      carryB = b.carry;
      carryC = c.carry;
      expect(Object.keys(row).filter((k) => k !== "warnings")).toEqual([
        "arms",
        "srm_p_value",
        "srm_sequential_p_value",
      ]);
      expect(Object.keys(row.arms)).toEqual(["b", "c"]);
      expect(Object.keys(row.arms.b!)).toEqual([
        "effect",
        "ci",
        "relative_lift",
        "relative_ci",
        "p_value",
        "adjusted_p_value",
        "fixed_p_value",
        "decision",
      ]);
      expect(row.arms.b?.ci).toEqual(b.ci);
      expect(row.arms.b?.p_value).toBe(b.pValue);
      expect(row.arms.c?.p_value).toBe(c.pValue);
      const adjusted = holmAdjust([b.pValue, c.pValue]);
      expect(row.arms.b?.adjusted_p_value).toBe(adjusted[0]);
      expect(row.arms.c?.adjusted_p_value).toBe(adjusted[1]);
    }
    expect(report.results[1]?.arms.b?.decision).toBe("treatment_better");
    expect(report.results[1]?.arms.c?.decision).toBe("continue");
    // Three equal arms: the SRM tests see all three.
    expect(report.results[0]?.srm_p_value).toBe(1);
  });

  it("is what the CLI prints for more than one treatment, and accepts weights by arm name", () => {
    const input = validated({ metric: "proportion", tau2: 1e-4, weights: { control: 2, b: 1, c: 1 }, snapshots });
    const report = runSequentialReport(input) as SequentialReport<MultiArmReportRow>;
    expect(report.results[0]?.arms.b).toBeDefined();
    // 2000 units in each arm against weights 2:1:1: a mismatch the sequential test sees.
    expect(report.results[1]?.srm_sequential_p_value).toBeLessThan(0.001);
    expect(report.results[1]?.arms.b?.decision).toBe("continue");
    expect(report.results[1]?.warnings?.join("\n")).toContain(
      "b: the effect is significant, but no decision is declared while the SRM alarm is raised",
    );
  });
});

describe("SRM: only the sequential test blocks a decision", () => {
  it("warns, without blocking, when the chi-square p-value alone is below 0.001", () => {
    // [10000, 10500]: χ² p = 0.000479 (< 0.001), sequential p = 0.0290 (not alarmed).
    const report = sequentialReport({
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [{ control: prop(10_000, 1000), treatment: prop(10_500, 1400) }],
    });
    const row = report.results[0]!;
    expectClose(row.srm_p_value, 0.00047914643458729997, 1e-6);
    expect(row.srm_sequential_p_value).toBeGreaterThan(0.001);
    expect(row.decision).toBe("treatment_better");
    expect(row.warnings?.join("\n")).toContain("the chi-square SRM p-value is below 0.001 but the sequential SRM test");
  });
});

describe("CUPED (a covariate on every arm)", () => {
  it("two arms: the adjusted effect, its variance in the mSPRT, θ and the variance reduction", () => {
    const report = sequentialReport(
      validated({ metric: "mean", tau2: 0.01, snapshots: [{ control: cupedControl, treatment: cupedB }] }),
    );
    const row = report.results[0]!;
    expectClose(row.effect, 0.26808894744726885, 1e-9);
    expectClose(row.cuped?.theta, 0.7623862847646466, 1e-9);
    expectClose(row.cuped?.variance_reduction, 0.4850678437056921, 1e-9);
    // The z-test of the adjusted estimate: 2·scipy.stats.norm.sf(0.26808894744726885 / sqrt(0.007832695708925702)).
    expectClose(row.fixed_p_value, 0.002452287154452275, 1e-9);
    expect(Object.keys(row)).toContain("cuped");
  });

  it("three arms: θ pooled over every arm, the interval at α/2 (paired.py's quadrature)", () => {
    const report = multiArmSequentialReport(
      validated({ metric: "mean", tau2: 0.01, snapshots: [{ control: cupedControl, b: cupedB, c: cupedC }] }),
    );
    const b = report.results[0]!.arms.b!;
    expectClose(b.cuped?.theta, 0.774886984389426, 1e-9);
    expectClose(b.effect, 0.26978749434612287, 1e-9);
    expectClose(b.p_value, 0.11155178351428593, 1e-9);
    expectClose(b.ci![1] - b.effect!, 0.3384976503474763, 1e-9);
    const c = report.results[0]!.arms.c!;
    expectClose(c.ci![1] - c.effect!, 0.35208004206817384, 1e-9);
    expect(c.p_value).toBe(1);
  });

  it("a covariate that does not vary gives nulls and a warning, not an exception", () => {
    const flat = (units: number, sum: number) => ({
      units,
      sum,
      sum_sq: sum,
      covariate: { sum: units, sum_sq: units, sum_product: sum },
    });
    const report = sequentialReport(
      validated({
        metric: "proportion",
        tau2: 1e-4,
        snapshots: [{ control: flat(100, 10), treatment: flat(100, 12) }],
      }),
    );
    expect(report.results[0]).toMatchObject({ effect: null, p_value: null, cuped: { theta: null } });
    expect(report.results[0]?.warnings?.join("\n")).toContain("the CUPED slope θ is undefined");
  });

  it("refuses a covariate on some arms only, naming the arm", () => {
    const errors = errorsOf({
      metric: "mean",
      snapshots: [{ control: cupedControl, treatment: { units: 620, sum: 6335.4, sum_sq: 67668.3 } }],
    });
    expect(errors[0]).toMatchObject({
      path: "/snapshots/0/treatment/covariate",
      code: "missing_field",
      message: "snapshots[0].treatment.covariate is missing, but snapshots[0].control has one",
    });
    expect(errors[0]?.hint).toContain("on every arm of every snapshot, or on none");
    const impossible = errorsOf({
      metric: "mean",
      snapshots: [
        { control: cupedControl, treatment: { ...cupedB, covariate: { ...cupedB.covariate, sum_product: 1e9 } } },
      ],
    });
    expect(impossible[0]).toMatchObject({ path: "/snapshots/0/treatment/covariate/sum_product", code: "out_of_range" });
  });
});

describe("ratio metrics", () => {
  it("the difference of ratios in the mSPRT (paired.py's quadrature)", () => {
    const report = sequentialReport(
      validated({ metric: "ratio", tau2: 0.05, snapshots: [{ control: ratioControl, treatment: ratioTreatment }] }),
    );
    const row = report.results[0]!;
    expectClose(row.effect, 2.7281084298416927 - 2.489415842788761, 1e-9);
    expectClose(row.p_value, 0.7215338662512402, 1e-9);
    expectClose(row.ci![1] - row.effect!, 0.4700571071525992, 1e-9);
    expect(row.warnings).toBeUndefined();
  });

  it("a zero denominator gives nulls and a warning", () => {
    const empty = {
      units: 3,
      numerator: { sum: 0, sum_sq: 0 },
      denominator: { sum: 0, sum_sq: 0 },
      sum_product: 0,
    };
    const report = sequentialReport(
      validated({ metric: "ratio", tau2: 0.05, snapshots: [{ control: empty, treatment: ratioTreatment }] }),
    );
    expect(report.results[0]).toMatchObject({ effect: null, p_value: null, decision: "continue" });
    expect(report.results[0]?.warnings).toContain("control arm: the denominator sums to 0, so its ratio is undefined");
  });

  it("names the field and the fix for a malformed ratio arm", () => {
    const errors = errorsOf({
      metric: "ratio",
      snapshots: [
        {
          control: { ...ratioControl, numerator: { sum: 3998 } },
          treatment: { ...ratioTreatment, covariate: { sum: 1, sum_sq: 1, sum_product: 1 } },
        },
      ],
    });
    expect(errors.map((e) => [e.path, e.code])).toEqual([
      ["/snapshots/0/control/numerator/sum_sq", "missing_field"],
      ["/snapshots/0/treatment/covariate", "unknown_key"],
    ]);
    expect(errors[1]?.hint).toContain("a ratio takes no covariate");
  });
});

describe("counts in floating point and the arms of each snapshot", () => {
  it("rounds counts within COUNT_TOLERANCE·max(1, units) of a whole number", () => {
    const input = validated({
      metric: "proportion",
      snapshots: [
        {
          control: { units: 200000.00000000003, sum: 25840.999999999996 },
          treatment: { units: 200000, sum: 26000, sum_sq: 25999.99999999999 },
        },
      ],
    });
    expect(input.snapshots[0]?.control).toEqual({ units: 200000, sum: 25841, sum_sq: 25841 });
    expect(input.snapshots[0]?.treatment).toEqual({ units: 200000, sum: 26000, sum_sq: 26000 });
    expect(
      errorsOf({ metric: "proportion", snapshots: [{ control: prop(100, 10.5), treatment: prop(100, 1) }] })[0],
    ).toMatchObject({
      path: "/snapshots/0/control/sum",
    });
  });

  it("wants control, a treatment and the same arms in every snapshot", () => {
    expect(errorsOf({ metric: "proportion", snapshots: [{ b: prop(10, 1), c: prop(10, 1) }] })[0]).toMatchObject({
      path: "/snapshots/0/control",
      code: "missing_field",
    });
    expect(errorsOf({ metric: "proportion", snapshots: [{ control: prop(10, 1) }] })[0]).toMatchObject({
      path: "/snapshots/0",
      code: "too_few_items",
    });
    const mismatch = errorsOf({
      metric: "proportion",
      snapshots: [
        { control: prop(10, 1), b: prop(10, 1), c: prop(10, 1) },
        { control: prop(20, 1), b: prop(20, 1), d: prop(20, 1) },
      ],
    });
    expect(mismatch.map((e) => [e.path, e.code])).toEqual([
      ["/snapshots/1/d", "unknown_key"],
      ["/snapshots/1/c", "missing_field"],
    ]);
  });

  it("checks weights against the arms", () => {
    const snapshots = [{ control: prop(10, 1), b: prop(10, 1), c: prop(10, 1) }];
    expect(errorsOf({ metric: "proportion", weights: [1, 1], snapshots })[0]).toMatchObject({
      path: "/weights",
      message: "weights is a list, but the snapshots have 3 arms (control, b, c)",
    });
    expect(
      errorsOf({ metric: "proportion", weights: { control: 1, b: 0, x: 1 }, snapshots }).map((e) => [e.path, e.code]),
    ).toEqual([
      ["/weights/b", "out_of_range"],
      ["/weights/x", "unknown_key"],
      ["/weights/c", "missing_field"],
    ]);
  });
});
