import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ASOS_COLUMNS,
  ASOS_CSV,
  AsosCsvError,
  type AsosLoad,
  armTotals,
  connectorSql,
  declaredWeights,
  loadAsos,
  parseAsos,
  SIM_EPOCH,
  SKIP_MISSING_VARIANCE,
  SKIP_ZERO_COUNT,
  simTime,
} from "./asos";

const HEADER = ASOS_COLUMNS.join(",");

function errorOf(fn: () => unknown): AsosCsvError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AsosCsvError) return error;
    throw error;
  }
  throw new Error("expected an AsosCsvError");
}

describe("the copied dataset", () => {
  it("is byte-for-byte the published file (SHA-256 from the dataset's SOURCES)", () => {
    const digest = createHash("sha256").update(readFileSync(ASOS_CSV)).digest("hex");
    expect(digest).toBe("aa0cc3f8304fac545f232ec0bc363373f932919f6e72e28908958bc10651ce22");
  });
});

describe("loadAsos on the full dataset", () => {
  let data: AsosLoad;
  beforeAll(async () => {
    data = await loadAsos();
  });

  it("reads every row and finds 99 comparisons with metric 1 in 78 experiments", () => {
    expect(data.rows).toBe(24_153);
    expect(data.comparisons.filter((c) => (c.metrics[1]?.length ?? 0) > 0)).toHaveLength(99);
    expect(data.comparisons).toHaveLength(99);
    expect(new Set(data.comparisons.map((c) => c.experimentId)).size).toBe(78);
  });

  it("gives 54a85a one comparison per treatment: variant 0 is a treatment, not the control", () => {
    // The dataset has no rows for a control; its statistics sit on every treatment's rows.
    const keys = data.comparisons.filter((c) => c.experimentId === "54a85a").map((c) => c.key);
    expect(keys).toEqual(["asos-54a85a-v0", "asos-54a85a-v1", "asos-54a85a-v2"]);
  });

  it("makes unique keys of the runtime's form", () => {
    const keys = data.comparisons.map((c) => c.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of keys) expect(key).toMatch(/^[a-z0-9]+(?:-[a-z0-9]+)*$/);
    expect(keys).toContain("asos-036afc-v2");
  });

  it("counts the skipped rows by reason", () => {
    expect(data.skipped).toEqual([
      // 64dc88, treatments 1 and 2, all four metrics, day 3.0.
      { reason: SKIP_ZERO_COUNT, count: 8 },
      // 778 rows lack variance_c and 779 variance_t, all metrics 2–4; one row lacks only variance_t.
      { reason: SKIP_MISSING_VARIANCE, count: 779 },
    ]);
    const kept = data.comparisons.reduce(
      (n, c) => n + Object.values(c.metrics).reduce((m, series) => m + series.length, 0),
      0,
    );
    expect(kept).toBe(24_153 - 8 - 779);
  });

  it("has sum_sq = sum, a whole number of successes, for metric 1", () => {
    for (const comparison of data.comparisons) {
      for (const checkpoint of comparison.metrics[1] ?? []) {
        for (const arm of [checkpoint.control, checkpoint.treatment]) {
          expect(arm.sum_sq).toBe(arm.sum);
          expect(Number.isInteger(arm.sum)).toBe(true);
          expect(arm.sum).toBeLessThanOrEqual(arm.units);
        }
      }
    }
  });

  it("converts line 134 of the CSV (036afc, variant 2, metric 2, day 1.5) as checked by hand", () => {
    // 036afc,2,2,1.5000000000000002,188065.0,186686.0,0.12092639863858753,0.12131618281269253,0.13745688193064834,0.1394074522672592
    // Expected values computed in exact rational arithmetic (Python fractions), then rounded to double:
    //   control   sum = 0.12092639863858753·188065 = 22742.023159965964
    //             sum_sq = 0.13745688193064834·188065 + 188065·0.12092639863858753² = 28600.939458777415
    //   treatment sum = 0.12131618281269253·186686 = 22648.03290457032
    //             sum_sq = 0.1394074522672592·186686 + 186686·0.12131618281269253² = 28772.99253416428
    // (Roughly: 0.12093·188065 ≈ 22742.0; 0.13746·188065 ≈ 25850.8 plus 188065·0.014623 ≈ 2750.1.)
    const comparison = data.comparisons.find((c) => c.key === "asos-036afc-v2")!;
    const first = comparison.metrics[2]![0]!;
    expect(first.day).toBe(1.5);
    expect(first.control.units).toBe(188_065);
    expect(first.treatment.units).toBe(186_686);
    expect(first.control.sum).toBeCloseTo(22742.023159965964, 8);
    expect(first.control.sum_sq).toBeCloseTo(28600.939458777415, 8);
    expect(first.treatment.sum).toBeCloseTo(22648.03290457032, 8);
    expect(first.treatment.sum_sq).toBeCloseTo(28772.99253416428, 8);
  });

  it("keeps checkpoints in day order, on the 12-hour grid, within [firstDay, lastDay]", () => {
    for (const comparison of data.comparisons) {
      for (const series of Object.values(comparison.metrics)) {
        for (let i = 0; i < series.length; i++) {
          const day = series[i]!.day;
          expect(day * 2).toBe(Math.round(day * 2));
          expect(day).toBeGreaterThanOrEqual(comparison.firstDay);
          expect(day).toBeLessThanOrEqual(comparison.lastDay);
          if (i > 0) expect(day).toBeGreaterThan(series[i - 1]!.day);
        }
      }
      expect(comparison.metrics[1]!.at(-1)!.day).toBe(comparison.lastDay);
    }
    const longest = Math.max(...data.comparisons.map((c) => c.lastDay));
    expect(longest).toBe(131);
  });

  it("declares the split seen at the last checkpoint, in whole percent: 91 comparisons at 50/50", () => {
    const splits = new Map<string, number>();
    for (const { weights } of data.comparisons) {
      expect(weights.control + weights.treatment).toBe(1);
      const split = `${weights.control}/${weights.treatment}`;
      splits.set(split, (splits.get(split) ?? 0) + 1);
    }
    expect(Object.fromEntries(splits)).toEqual({
      "0.5/0.5": 91,
      "0.51/0.49": 4,
      "0.54/0.46": 1,
      "0.33/0.67": 1,
      "0.11/0.89": 1,
      "0.97/0.03": 1,
    });
    expect(data.comparisons.find((c) => c.key === "asos-54a85a-v0")!.weights).toEqual({
      control: 0.97,
      treatment: 0.03,
    });
  });
});

describe("armTotals", () => {
  it("uses the population variance: sum_sq = variance·n + n·mean²", () => {
    // Three responses 1, 2, 6: mean 3, population variance 14/3, Σx² = 41.
    const totals = armTotals(2, 3, 3, 14 / 3);
    expect(totals.units).toBe(3);
    expect(totals.sum).toBe(9);
    expect(totals.sum_sq).toBeCloseTo(41, 12);
  });

  it("rounds metric 1 to whole successes and ignores its variance", () => {
    expect(armTotals(1, 188_065, 0.10780847047563343, 0.09618580416933789)).toEqual({
      units: 188_065,
      sum: 20_275,
      sum_sq: 20_275,
    });
    expect(armTotals(1, 10, 0.3, null)).toEqual({ units: 10, sum: 3, sum_sq: 3 });
  });
});

describe("declaredWeights", () => {
  it("rounds the observed split to whole percent", () => {
    const arm = (units: number) => ({ units, sum: 0, sum_sq: 0 });
    expect(declaredWeights({ day: 1, control: arm(5_049), treatment: arm(4_951) })).toEqual({
      control: 0.5,
      treatment: 0.5,
    });
    expect(declaredWeights({ day: 1, control: arm(3_320_536), treatment: arm(102_316) })).toEqual({
      control: 0.97,
      treatment: 0.03,
    });
  });
});

describe("parseAsos on malformed input", () => {
  const good = "036afc,2,1,1.5000000000000002,188065.0,186686.0,0.1078,0.1078,0.0962,0.0962";

  it("parses a minimal valid file", () => {
    const parsed = parseAsos(`${HEADER}\n${good}\n`);
    expect(parsed.rows).toBe(1);
    expect(parsed.comparisons[0]!.metrics[1]![0]!.day).toBe(1.5);
  });

  it("names the line, column and value of text in a number column", () => {
    const error = errorOf(() =>
      parseAsos(`${HEADER}\n${good}\n036afc,2,1,2.0,abc,186686.0,0.1,0.1,0.09,0.09\n`, "x.csv"),
    );
    expect(error.line).toBe(3);
    expect(error.column).toBe("count_c");
    expect(error.value).toBe("abc");
    expect(error.message).toBe('x.csv:3: column count_c: "abc": not a number');
  });

  it("names a column missing from the header", () => {
    const header = ASOS_COLUMNS.filter((c) => c !== "mean_t").join(",");
    const error = errorOf(() => parseAsos(`${header}\n036afc,2,1,1.5,1,1,0.1,0.09,0.09\n`, "x.csv"));
    expect(error.line).toBe(1);
    expect(error.column).toBe("mean_t");
    expect(error.message).toBe("x.csv:1: column mean_t: column missing from the header");
  });

  it("names the line of a row with a field missing", () => {
    const error = errorOf(() => parseAsos(`${HEADER}\n${good}\n036afc,2,1,2.0,1,1,0.1,0.1,0.09\n`, "x.csv"));
    expect(error.line).toBe(3);
    expect(error.message).toBe("x.csv:3: 9 fields where the header has 10");
  });

  it("rejects an empty required number, a fractional count, an off-grid day, an unknown metric and a duplicate", () => {
    const row = (fields: Partial<Record<(typeof ASOS_COLUMNS)[number], string>>) => {
      const values = good.split(",");
      return ASOS_COLUMNS.map((column, i) => fields[column] ?? values[i]).join(",");
    };
    const cases: [string, string, string][] = [
      [row({ mean_c: "" }), "mean_c", "missing; expected a number"],
      [row({ count_t: "10.5" }), "count_t", "expected a whole number ≥ 0"],
      [row({ time_since_start: "1.25" }), "time_since_start", "expected a multiple of 0.5 days ≥ 0"],
      [row({ metric_id: "5" }), "metric_id", "expected a whole number in 1..4"],
      [row({ mean_t: "1.5" }), "mean_t", "metric 1 is binary: expected a proportion in [0, 1]"],
      [row({ variance_c: "-1" }), "variance_c", "a variance cannot be negative"],
      [row({ experiment_id: "03-6afc" }), "experiment_id", "expected letters and digits"],
    ];
    for (const [text, column, detail] of cases) {
      const error = errorOf(() => parseAsos(`${HEADER}\n${text}\n`));
      expect(error.line).toBe(2);
      expect(error.column).toBe(column);
      expect(error.message).toContain(detail);
    }
    const duplicate = errorOf(() => parseAsos(`${HEADER}\n${good}\n${row({ time_since_start: "1.5" })}\n`));
    expect(duplicate.line).toBe(3);
    expect(duplicate.message).toContain("duplicates line 2");
  });

  it("reports an unclosed quote with its line", () => {
    const error = errorOf(() => parseAsos(`${HEADER}\n${good}\n"036afc,2,1,2.0,1,1,0.1,0.1,0.09,0.09\n`, "x.csv"));
    expect(error.message).toMatch(/^x\.csv:3: /);
  });

  it("skips a checkpoint with a zero count or, for metrics 2–4, a missing variance", () => {
    const text = [
      HEADER,
      "aa,1,1,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
      "aa,1,1,1.5,10,10,0.5,0.4,0.25,0.24",
      "aa,1,2,1.5,10,10,1.5,1.4,,0.3",
      "aa,1,2,2.0,12,12,1.5,1.4,0.2,0.3",
    ].join("\n");
    const parsed = parseAsos(text);
    expect(parsed.skipped).toEqual([
      { reason: SKIP_ZERO_COUNT, count: 1 },
      { reason: SKIP_MISSING_VARIANCE, count: 1 },
    ]);
    const [comparison] = parsed.comparisons;
    expect(comparison!.key).toBe("asos-aa-v1");
    expect(comparison!.firstDay).toBe(1.5);
    expect(comparison!.lastDay).toBe(2);
    expect(comparison!.metrics[1]!.map((c) => c.day)).toEqual([1.5]);
    expect(comparison!.metrics[2]!.map((c) => c.day)).toEqual([2]);
  });
});

describe("connectorSql", () => {
  it("reads one metric with the named parameters :experiment and :from, up to the simulated clock", () => {
    const sql = connectorSql(1);
    expect(sql).toContain(":experiment");
    expect(sql).toContain(":from");
    expect(sql).toContain("c.metric_id = 1");
    expect(sql).toContain("demo_clock");
    // No `::` casts: a named-parameter rewrite cannot mistake one for a parameter.
    expect(sql).not.toContain("::");
    expect(connectorSql(4)).toContain("c.metric_id = 4");
  });

  it("refuses a metric the dataset does not have", () => {
    expect(() => connectorSql(0)).toThrow(/metric_id/);
    expect(() => connectorSql(1.5)).toThrow(/metric_id/);
  });
});

describe("the simulated calendar", () => {
  it("puts day 0 at 2026-01-05T00:00Z and half days 12 h apart", () => {
    expect(SIM_EPOCH.toISOString()).toBe("2026-01-05T00:00:00.000Z");
    expect(simTime(1.5).toISOString()).toBe("2026-01-06T12:00:00.000Z");
  });
});
