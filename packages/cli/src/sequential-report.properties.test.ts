/**
 * Properties of the `stats sequential` report (the CLI's JSON format): the
 * validator never throws on any JSON, and on valid cumulative input every
 * p-value is in [0, 1] and the always-valid p-value never increases.
 * FC_SEED and FC_RUNS set the seed and the number of runs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { sequentialReport, validateSequentialReportInput } from "./sequential-report";

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
});
