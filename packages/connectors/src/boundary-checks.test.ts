import { describe, expect, it } from "vitest";
import { checkArmAggregates, checkSeries, parseNumber, parseTimestamp, type RawArmRow } from "./boundary-checks";
import { ConnectorError } from "./connector-error";

const window = {
  experimentKey: "exp-1",
  arms: ["control", "treatment"],
  from: new Date("2026-03-01T00:00:00Z"),
  to: new Date("2026-03-08T00:00:00Z"),
};

function failure(fn: () => unknown): ConnectorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
}

const row = (overrides: Partial<RawArmRow>): RawArmRow => ({
  arm: "control",
  units: 100,
  sum: 10,
  sum_sq: 10,
  ts: null,
  ...overrides,
});

describe("parseNumber", () => {
  it("reads numbers, bigints and decimal strings (Postgres bigint and numeric)", () => {
    expect(parseNumber(3)).toBe(3);
    expect(parseNumber(12n)).toBe(12);
    expect(parseNumber("9007199254740991")).toBe(9007199254740991);
    expect(parseNumber(" 12.500 ")).toBe(12.5);
    expect(parseNumber("-1e3")).toBe(-1000);
    expect(parseNumber(".5")).toBe(0.5);
  });

  it("refuses what is not a finite decimal number", () => {
    for (const value of [
      "NaN",
      "Infinity",
      "-Infinity",
      "1,5",
      "1 000",
      "0x10",
      "",
      "abc",
      null,
      undefined,
      true,
      {},
      NaN,
    ]) {
      expect(parseNumber(value), String(value)).toBeUndefined();
    }
    expect(parseNumber(Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(parseNumber("1e400")).toBeUndefined();
  });
});

describe("parseTimestamp", () => {
  it("reads Dates and ISO strings; a time without a zone is UTC", () => {
    expect(parseTimestamp("2026-03-01")?.toISOString()).toBe("2026-03-01T00:00:00.000Z");
    expect(parseTimestamp("2026-03-01 12:30:00")?.toISOString()).toBe("2026-03-01T12:30:00.000Z");
    expect(parseTimestamp("2026-03-01T12:30:00+02:00")?.toISOString()).toBe("2026-03-01T10:30:00.000Z");
    expect(parseTimestamp("2026-03-01 12:30:00+00")?.toISOString()).toBe("2026-03-01T12:30:00.000Z");
    expect(parseTimestamp(new Date("invalid"))).toBeUndefined();
    expect(parseTimestamp("yesterday")).toBeUndefined();
    expect(parseTimestamp(1_700_000_000)).toBeUndefined();
  });
});

describe("checkArmAggregates", () => {
  it("converts, and sorts by ts (null last) then by arm order", () => {
    const rows = checkArmAggregates(
      [
        row({ arm: "treatment", units: "120", sum: "12", sum_sq: "12.000", ts: null }),
        row({ arm: "treatment", ts: new Date("2026-03-02T00:00:00Z") }),
        row({ arm: "control", ts: "2026-03-02T00:00:00Z" }),
        row({ arm: "control", units: 7n, sum: 1, sum_sq: 1 }),
      ],
      window,
      "proportion",
      "test",
    );
    expect(rows).toEqual([
      { arm: "control", units: 100, sum: 10, sum_sq: 10, ts: new Date("2026-03-02T00:00:00Z") },
      { arm: "treatment", units: 100, sum: 10, sum_sq: 10, ts: new Date("2026-03-02T00:00:00Z") },
      { arm: "control", units: 7, sum: 1, sum_sq: 1, ts: null },
      { arm: "treatment", units: 120, sum: 12, sum_sq: 12, ts: null },
    ]);
  });

  it("names every arm that was not asked for", () => {
    const error = failure(() =>
      checkArmAggregates([row({ arm: "Treatment" }), row({ arm: "b" }), row({})], window, "proportion", "test"),
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain('arms "Treatment", "b" are not arms of experiment "exp-1"');
    expect(error.details.unknownArms).toEqual(["Treatment", "b"]);
  });

  it("names the row, the column and the value of a bad number", () => {
    const error = failure(() =>
      checkArmAggregates([row({}), row({ arm: "treatment", sum: "NaN" })], window, "mean", "test"),
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toBe(
      'test: row 2 (arm "treatment"), column sum: is "NaN", not a finite number; return a number (wrap a sum that may be NULL in coalesce(..., 0))',
    );
    expect(error.details).toMatchObject({ field: "sum", value: "NaN" });
    expect(failure(() => checkArmAggregates([row({ sum_sq: null })], window, "mean", "test")).message).toContain(
      "column sum_sq: is NULL or empty",
    );
  });

  it("wants whole, non-negative units", () => {
    for (const units of [-1, 2.5, "1e300", Number.MAX_SAFE_INTEGER + 2]) {
      const error = failure(() => checkArmAggregates([row({ units, sum: 0, sum_sq: 0 })], window, "mean", "test"));
      expect(error.details.field, String(units)).toBe("units");
    }
  });

  it("reads a count summed in floating point as the whole number it stands for (COUNT_TOLERANCE)", () => {
    const [arm] = checkArmAggregates(
      [row({ units: 25840.999999999996, sum: 120, sum_sq: 120 })],
      window,
      "proportion",
      "test",
    );
    expect(arm?.units).toBe(25841);
    expect(failure(() => checkArmAggregates([row({ units: 25841.001 })], window, "mean", "t")).details.field).toBe(
      "units",
    );
  });

  it("keeps a proportion between 0 and units, with sum_sq = sum", () => {
    expect(
      failure(() => checkArmAggregates([row({ sum: 101, sum_sq: 101 })], window, "proportion", "t")).message,
    ).toContain("0 ≤ sum ≤ units");
    expect(
      failure(() => checkArmAggregates([row({ sum: -1, sum_sq: -1 })], window, "proportion", "t")).details.field,
    ).toBe("sum");
    expect(failure(() => checkArmAggregates([row({ sum_sq: 11 })], window, "proportion", "t")).message).toContain(
      "sum_sq = sum = conversions",
    );
  });

  it("refuses a mean whose sum and sum_sq cannot come from the same units", () => {
    // Two units with values 1 and 3: Σ = 4, Σx² = 10; Σx² = 5 would mean a negative variance.
    expect(checkArmAggregates([row({ units: 2, sum: 4, sum_sq: 10 })], window, "mean", "t")).toHaveLength(1);
    expect(
      failure(() => checkArmAggregates([row({ units: 2, sum: 4, sum_sq: 5 })], window, "mean", "t")).message,
    ).toContain("negative variance");
    expect(
      failure(() => checkArmAggregates([row({ units: 0, sum: 1, sum_sq: 1 })], window, "mean", "t")).message,
    ).toContain("units is 0");
    expect(failure(() => checkArmAggregates([row({ sum: 0, sum_sq: -1 })], window, "mean", "t")).message).toContain(
      "negative",
    );
  });

  describe("the covariate columns (CUPED)", () => {
    // Two units with (x, y) = (1, 0) and (2, 1): Σx = 3, Σx² = 5, Σxy = 2; Σy = Σy² = 1.
    const covariate = { cov_sum: 3, cov_sum_sq: 5, cov_sum_product: 2 };
    const withCovariate = (overrides: Partial<RawArmRow>): RawArmRow =>
      row({ units: 2, sum: 1, sum_sq: 1, ...covariate, ...overrides });

    it("reads all three into the aggregate's covariate, from numbers or decimal strings", () => {
      const [control, treatment] = checkArmAggregates(
        [withCovariate({}), withCovariate({ arm: "treatment", cov_sum: "3", cov_sum_sq: "5.0", cov_sum_product: "2" })],
        window,
        "proportion",
        "t",
      );
      expect(control?.covariate).toEqual({ sum: 3, sumSq: 5, sumProduct: 2 });
      expect(treatment?.covariate).toEqual({ sum: 3, sumSq: 5, sumProduct: 2 });
      expect(checkArmAggregates([row({})], window, "proportion", "t")[0]).not.toHaveProperty("covariate");
    });

    it("wants all three columns or none, on every row or on none", () => {
      const partial = failure(() =>
        checkArmAggregates([withCovariate({ cov_sum_product: undefined })], window, "proportion", "postgres query"),
      );
      expect(partial.message).toContain(
        'postgres query: row 1 (arm "control"): the row has cov_sum, cov_sum_sq but no cov_sum_product',
      );
      expect(partial.message).toContain("return all of cov_sum, cov_sum_sq and cov_sum_product, or none of them");
      expect(partial.details.field).toBe("cov_sum_product");

      const mixed = failure(() =>
        checkArmAggregates(
          [withCovariate({}), row({ arm: "treatment", units: 2, sum: 1, sum_sq: 1 })],
          window,
          "proportion",
          "postgres query",
        ),
      );
      expect(mixed.message).toContain(
        "postgres query: row 2 has no cov_sum, cov_sum_sq, cov_sum_product but row 1 has them",
      );
      expect(mixed.details.row).toBe("row 2");

      const missing = failure(() => checkArmAggregates([withCovariate({ cov_sum: null })], window, "proportion", "t"));
      expect(missing.message).toContain("column cov_sum: is NULL or empty; return a number");
      expect(missing.message).toContain("coalesce(..., 0)");
      expect(
        failure(() => checkArmAggregates([withCovariate({ cov_sum_sq: "NaN" })], window, "proportion", "t")).details
          .field,
      ).toBe("cov_sum_sq");
    });

    it("refuses a negative cov_sum_sq and totals that break Cauchy–Schwarz", () => {
      expect(
        failure(() =>
          checkArmAggregates(
            [withCovariate({ cov_sum: 0, cov_sum_sq: -1, cov_sum_product: 0 })],
            window,
            "proportion",
            "t",
          ),
        ).message,
      ).toContain("column cov_sum_sq: -1 is negative");
      // (Σx)² = 16 > n·Σx² = 2·5.
      const variance = failure(() => checkArmAggregates([withCovariate({ cov_sum: 4 })], window, "proportion", "t"));
      expect(variance.message).toContain("cov_sum 4 and cov_sum_sq 5 over 2 units imply a negative variance");
      expect(variance.details).toMatchObject({ field: "cov_sum_sq", value: 5, cov_sum: 4, units: 2 });
      // (Σxy)² = 9 > Σx²·Σy² = 5·1.
      const cross = failure(() =>
        checkArmAggregates([withCovariate({ cov_sum_product: 3 })], window, "proportion", "t"),
      );
      expect(cross.message).toContain("column cov_sum_product: 3 is larger in size than");
      expect(cross.details.field).toBe("cov_sum_product");
      // Rounding in the sums is tolerated: (Σx)² = n·Σx² exactly when every unit has the same x.
      expect(
        checkArmAggregates(
          [withCovariate({ cov_sum: 4 + 1e-12, cov_sum_sq: 8, cov_sum_product: 2 })],
          window,
          "proportion",
          "t",
        ),
      ).toHaveLength(1);
      expect(
        failure(() =>
          checkArmAggregates([row({ units: 0, sum: 0, sum_sq: 0, ...covariate })], window, "proportion", "t"),
        ).message,
      ).toContain("units is 0 but cov_sum is 3");
    });
  });

  describe("the denominator columns (ratio metrics)", () => {
    // Two units with (numerator, denominator) = (3, 1) and (5, 2): Σn = 8, Σn² = 34, Σd = 3, Σd² = 5, Σn·d = 13.
    const denominator = { den_sum: 3, den_sum_sq: 5, num_den_sum: 13 };
    const ratioRow = (overrides: Partial<RawArmRow>): RawArmRow =>
      row({ units: 2, sum: 8, sum_sq: 34, ...denominator, ...overrides });

    it("reads all three into the aggregate's denominator, from numbers or decimal strings", () => {
      const [control, treatment] = checkArmAggregates(
        [ratioRow({}), ratioRow({ arm: "treatment", den_sum: "3", den_sum_sq: "5.0", num_den_sum: "13" })],
        window,
        "ratio",
        "t",
      );
      expect(control).toMatchObject({ units: 2, sum: 8, sum_sq: 34 });
      expect(control?.denominator).toEqual({ sum: 3, sumSq: 5, sumProduct: 13 });
      expect(treatment?.denominator).toEqual({ sum: 3, sumSq: 5, sumProduct: 13 });
      // The numerator's totals are a mean's, not a proportion's: sum may exceed units.
      expect(control).not.toHaveProperty("covariate");
    });

    it("names a missing or NULL denominator column and the fix", () => {
      const missing = failure(() =>
        checkArmAggregates([ratioRow({ num_den_sum: undefined })], window, "ratio", "postgres query"),
      );
      expect(missing.code).toBe("bad_response");
      expect(missing.message).toContain(
        'postgres query: row 1 (arm "control"): the row has no column num_den_sum, but the metric is a ratio',
      );
      expect(missing.message).toContain("return den_sum");
      expect(missing.details).toMatchObject({ field: "num_den_sum", value: null });
      const nulled = failure(() => checkArmAggregates([ratioRow({ den_sum: null })], window, "ratio", "t"));
      expect(nulled.message).toContain("column den_sum: is NULL or empty; return a number");
      expect(nulled.message).toContain("coalesce(..., 0)");
      expect(
        failure(() => checkArmAggregates([ratioRow({ den_sum_sq: "Infinity" })], window, "ratio", "t")).details.field,
      ).toBe("den_sum_sq");
      // Without any of the three columns, the first is named.
      expect(
        failure(() => checkArmAggregates([row({ units: 2, sum: 8, sum_sq: 34 })], window, "ratio", "t")).details.field,
      ).toBe("den_sum");
    });

    it("refuses a negative den_sum_sq, totals that break Cauchy–Schwarz, and nonzero totals of no units", () => {
      expect(
        failure(() =>
          checkArmAggregates([ratioRow({ den_sum: 0, den_sum_sq: -1, num_den_sum: 0 })], window, "ratio", "t"),
        ).message,
      ).toContain("column den_sum_sq: -1 is negative");
      // (Σd)² = 16 > n·Σd² = 2·5.
      const variance = failure(() => checkArmAggregates([ratioRow({ den_sum: 4 })], window, "ratio", "t"));
      expect(variance.message).toContain("den_sum 4 and den_sum_sq 5 over 2 units imply a negative variance");
      expect(variance.details).toMatchObject({ field: "den_sum_sq", value: 5, den_sum: 4, units: 2 });
      // (Σn·d)² = 196 > Σn²·Σd² = 34·5 = 170.
      const cross = failure(() => checkArmAggregates([ratioRow({ num_den_sum: 14 })], window, "ratio", "t"));
      expect(cross.message).toContain("column num_den_sum: 14 is larger in size than");
      expect(cross.details.field).toBe("num_den_sum");
      expect(
        failure(() => checkArmAggregates([row({ units: 0, sum: 0, sum_sq: 0, ...denominator })], window, "ratio", "t"))
          .message,
      ).toContain("units is 0 but den_sum is 3");
      // The numerator's totals are checked as a mean's: (Σn)² = 64 > n·Σn² = 2·30.
      expect(failure(() => checkArmAggregates([ratioRow({ sum_sq: 30 })], window, "ratio", "t")).details.field).toBe(
        "sum_sq",
      );
    });

    it("lets a zero denominator through: the analysis words the undefined ratio", () => {
      const [zero] = checkArmAggregates(
        [ratioRow({ sum: 0, sum_sq: 0, den_sum: 0, den_sum_sq: 0, num_den_sum: 0 })],
        window,
        "ratio",
        "t",
      );
      expect(zero?.denominator).toEqual({ sum: 0, sumSq: 0, sumProduct: 0 });
    });

    it("refuses a covariate on a ratio, and a denominator on a proportion or mean", () => {
      const covariate = failure(() =>
        checkArmAggregates([ratioRow({ cov_sum: 1, cov_sum_sq: 1, cov_sum_product: 1 })], window, "ratio", "t"),
      );
      expect(covariate.message).toContain("column cov_sum: a ratio metric takes no pre-exposure covariate");
      expect(covariate.message).toContain("remove cov_sum, cov_sum_sq and cov_sum_product from the query");
      expect(covariate.details.field).toBe("cov_sum");
      const mean = failure(() => checkArmAggregates([ratioRow({})], window, "mean", "t"));
      expect(mean.message).toContain("column den_sum: the metric is a mean, which has no denominator; set kind: ratio");
      expect(mean.details.field).toBe("den_sum");
    });
  });

  it("allows one row per (arm, ts), and no ts after the window end", () => {
    const ts = new Date("2026-03-02T00:00:00Z");
    expect(failure(() => checkArmAggregates([row({ ts }), row({ ts })], window, "proportion", "t")).message).toContain(
      'a second row for arm "control" at ts 2026-03-02T00:00:00.000Z',
    );
    expect(failure(() => checkArmAggregates([row({}), row({})], window, "proportion", "t")).message).toContain(
      "without ts",
    );
    expect(
      failure(() => checkArmAggregates([row({ ts: "2026-03-09T00:00:00Z" })], window, "proportion", "t")).message,
    ).toContain("after the window end");
    expect(failure(() => checkArmAggregates([row({ ts: "soon" })], window, "proportion", "t")).details.field).toBe(
      "ts",
    );
  });
});

describe("checkSeries", () => {
  it("sorts the points and refuses duplicates, bad values and points after the window", () => {
    const points = checkSeries(
      [
        { ts: "2026-03-03T00:00:00Z", value: "0.5" },
        { ts: new Date("2026-03-02T00:00:00Z"), value: 0.4 },
      ],
      window,
      "t",
    );
    expect(points.map((p) => p.value)).toEqual([0.4, 0.5]);
    expect(
      failure(() =>
        checkSeries(
          [
            { ts: "2026-03-02", value: 1 },
            { ts: "2026-03-02T00:00:00Z", value: 2 },
          ],
          window,
          "t",
        ),
      ).message,
    ).toContain("a second point");
    expect(failure(() => checkSeries([{ ts: "2026-03-02", value: null }], window, "t")).details.field).toBe("value");
    expect(failure(() => checkSeries([{ ts: null, value: 1 }], window, "t")).details.field).toBe("ts");
    expect(failure(() => checkSeries([{ ts: "2026-04-01", value: 1 }], window, "t")).message).toContain(
      "after the window end",
    );
  });
});
