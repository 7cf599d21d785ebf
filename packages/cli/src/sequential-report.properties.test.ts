/**
 * Properties of the `stats sequential` report (the CLI's JSON format): the
 * validator never throws on any JSON, and on valid cumulative input every
 * p-value is in [0, 1] and the always-valid p-value never increases.
 * FC_SEED and FC_RUNS set the seed and the number of runs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type MultiArmReportRow,
  runSequentialReport,
  type SequentialReportRow,
  sequentialReport,
  validateSequentialReportInput,
} from "./sequential-report";

// biome-ignore lint/style/noProcessEnv: the test's own knobs (seed and run count), read once here
const seed = Number(process.env.FC_SEED ?? 20261201);
// biome-ignore lint/style/noProcessEnv: as above
const numRuns = Number(process.env.FC_RUNS ?? 200);
const params = { seed, numRuns };
const timeout = Math.max(30_000, numRuns * 50);

type Kind = "proportion" | "mean";
type Arm = { units: number; sum: number; sum_sq: number };
const kind: fc.Arbitrary<Kind> = fc.constantFrom("proportion", "mean");
const alpha = fc.double({ min: 1e-6, max: 0.5, noNaN: true });

/** One arm's increment: units, and values consistent with them. */
function increment(k: Kind): fc.Arbitrary<Arm> {
  if (k === "proportion") {
    return fc.tuple(fc.nat({ max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true })).map(([units, rate]) => {
      const sum = Math.round(units * rate);
      return { units, sum, sum_sq: sum };
    });
  }
  return fc
    .tuple(
      fc.nat({ max: 100_000 }),
      fc.double({ min: -1e4, max: 1e4, noNaN: true }),
      fc.double({ min: 0, max: 1e4, noNaN: true }),
    )
    .map(([units, mean, variance]) => ({ units, sum: units * mean, sum_sq: units * (variance + mean * mean) }));
}

const add = (a: Arm, b: Arm): Arm => ({ units: a.units + b.units, sum: a.sum + b.sum, sum_sq: a.sum_sq + b.sum_sq });

/** Cumulative snapshots (units and sums never decrease) of a two-arm experiment. */
const experiment = kind.chain((k) =>
  fc.array(fc.tuple(increment(k), increment(k)), { minLength: 1, maxLength: 12 }).map((steps) => {
    let control: Arm = { units: 0, sum: 0, sum_sq: 0 };
    let treatment: Arm = { units: 0, sum: 0, sum_sq: 0 };
    const snapshots = steps.map(([dc, dt]) => {
      control = add(control, dc);
      treatment = add(treatment, dt);
      return { control, treatment };
    });
    return { kind: k, snapshots };
  }),
);

function expectP(p: number | null, label: string): void {
  if (p === null) return;
  expect(Number.isNaN(p), `${label} is NaN`).toBe(false);
  expect(p >= 0 && p <= 1, `${label} = ${p} outside [0, 1]`).toBe(true);
}

function expectInterval(ci: [number, number] | null, label: string): void {
  if (ci === null) return;
  const [lo, hi] = ci;
  expect(Number.isNaN(lo) || Number.isNaN(hi), `${label} has NaN: [${lo}, ${hi}]`).toBe(false);
  expect(lo <= hi, `${label} unordered: [${lo}, ${hi}]`).toBe(true);
}

describe("sequentialReport and its input validation", () => {
  it("validateSequentialReportInput never throws on any JSON value", { timeout }, () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
        const r = validateSequentialReportInput(value);
        if (!r.ok) for (const e of r.errors) expect(typeof e.code === "string" && e.path !== undefined).toBe(true);
      }),
      params,
    );
  });

  it("on validated cumulative input: every row's p-values in [0, 1], p non-increasing", { timeout }, () => {
    fc.assert(
      fc.property(experiment, alpha, ({ kind: k, snapshots }, a) => {
        const checked = validateSequentialReportInput({ metric: k, alpha: a, snapshots });
        if (!checked.ok) return; // rounding in sum_sq can trip Cauchy–Schwarz; not what is under test here
        const { results } = sequentialReport(checked.input);
        let previous: number | null = null;
        for (const row of results) {
          for (const key of ["p_value", "fixed_p_value", "srm_p_value", "srm_sequential_p_value"] as const) {
            expectP(row[key], key);
          }
          expectInterval(row.ci, "ci");
          if (previous !== null && row.p_value !== null) expect(row.p_value <= previous).toBe(true);
          previous = row.p_value ?? previous;
        }
      }),
      params,
    );
  });

  it("on validated input with several treatments, a covariate or a ratio: p-values in [0, 1], adjusted ≥ own, p non-increasing", {
    timeout,
  }, () => {
    fc.assert(
      fc.property(
        fc.constantFrom("cuped-proportion", "cuped-mean", "ratio", "plain-mean"),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.array(paired, { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        alpha,
        (shape, treatments, steps, a) => {
          const names = ["control", "b", "c", "d"].slice(0, treatments + 1);
          const totals = names.map(() => zeroPaired());
          const snapshots = steps.map((step) => {
            const snapshot: Record<string, unknown> = {};
            names.forEach((name, i) => {
              const t = accumulate(totals[i] as Paired, step[i] as Paired, shape === "cuped-proportion");
              totals[i] = t;
              snapshot[name] = armOf(shape, t);
            });
            return snapshot;
          });
          const metric = shape === "ratio" ? "ratio" : shape === "cuped-proportion" ? "proportion" : "mean";
          const checked = validateSequentialReportInput({ metric, alpha: a, snapshots });
          if (!checked.ok) return; // rounding can trip the Cauchy–Schwarz checks; not what is under test here
          const { results } = runSequentialReport(checked.input);
          const previous = new Map<string, number>();
          for (const row of results) {
            expect(JSON.stringify(row)).not.toMatch(/NaN|Infinity/);
            expectP(row.srm_p_value, "srm_p_value");
            expectP(row.srm_sequential_p_value, "srm_sequential_p_value");
            const entries: [string, SequentialReportRow | MultiArmReportRow["arms"][string]][] =
              "arms" in row ? Object.entries(row.arms) : [["treatment", row]];
            for (const [name, arm] of entries) {
              expectP(arm.p_value, "p_value");
              expectP(arm.fixed_p_value, "fixed_p_value");
              expectInterval(arm.ci, "ci");
              if ("adjusted_p_value" in arm && arm.adjusted_p_value !== null && arm.p_value !== null) {
                expect(arm.adjusted_p_value).toBeGreaterThanOrEqual(arm.p_value);
                expectP(arm.adjusted_p_value, "adjusted_p_value");
              }
              const before = previous.get(name);
              if (before !== undefined && arm.p_value !== null) expect(arm.p_value <= before).toBe(true);
              if (arm.p_value !== null) previous.set(name, arm.p_value);
            }
          }
        },
      ),
      params,
    );
  });

  it("the two-arm report of a multi-arm input is the report of control and its first treatment", () => {
    const prop = (units: number, sum: number) => ({ units, sum, sum_sq: sum });
    const multi = {
      metric: "proportion" as const,
      tau2: 1e-4,
      snapshots: [{ control: prop(1000, 100), b: prop(1000, 130), c: prop(1000, 90) }],
    };
    const two = { ...multi, snapshots: [{ control: prop(1000, 100), b: prop(1000, 130) }] };
    expect(sequentialReport(multi)).toEqual(sequentialReport(two));
  });
});

/** Paired per-unit moments of one increment: units, and the sums of y, y², x, x², xy. */
interface Paired {
  units: number;
  sy: number;
  syy: number;
  sx: number;
  sxx: number;
  sxy: number;
}

const zeroPaired = (): Paired => ({ units: 0, sy: 0, syy: 0, sx: 0, sxx: 0, sxy: 0 });

/** An increment consistent with some data: means, variances and a correlation in [−1, 1]. */
const paired: fc.Arbitrary<Paired> = fc
  .tuple(
    fc.nat({ max: 5000 }),
    fc.double({ min: -100, max: 100, noNaN: true }),
    fc.double({ min: 0, max: 100, noNaN: true }),
    fc.double({ min: -100, max: 100, noNaN: true }),
    fc.double({ min: 0, max: 100, noNaN: true }),
    fc.double({ min: -1, max: 1, noNaN: true }),
  )
  .map(([units, my, vy, mx, vx, rho]) => ({
    units,
    sy: units * my,
    syy: units * (vy + my * my),
    sx: units * mx,
    sxx: units * (vx + mx * mx),
    sxy: units * (rho * Math.sqrt(vx * vy) + mx * my),
  }));

function accumulate(total: Paired, step: Paired, proportion: boolean): Paired {
  if (proportion) {
    // y is 0/1: conversions between 0 and units, x paired with it.
    const conversions = Math.min(step.units, Math.round(Math.abs(step.sy) % (step.units + 1)));
    const sxy = Math.max(0, Math.min(conversions, step.units) * (step.units > 0 ? step.sx / step.units : 0));
    return {
      units: total.units + step.units,
      sy: total.sy + conversions,
      syy: total.syy + conversions,
      sx: total.sx + step.sx,
      sxx: total.sxx + step.sxx,
      sxy: total.sxy + sxy,
    };
  }
  return {
    units: total.units + step.units,
    sy: total.sy + step.sy,
    syy: total.syy + step.syy,
    sx: total.sx + step.sx,
    sxx: total.sxx + step.sxx,
    sxy: total.sxy + step.sxy,
  };
}

function armOf(shape: string, t: Paired): unknown {
  if (shape === "ratio") {
    return {
      units: t.units,
      numerator: { sum: t.sy, sum_sq: t.syy },
      denominator: { sum: t.sx, sum_sq: t.sxx },
      sum_product: t.sxy,
    };
  }
  const arm = { units: t.units, sum: t.sy, sum_sq: t.syy };
  return shape === "plain-mean" ? arm : { ...arm, covariate: { sum: t.sx, sum_sq: t.sxx, sum_product: t.sxy } };
}
