/**
 * The Datadog query pieces as pure functions: the settings' metric queries
 * read, the per-arm query written, tag values checked, a series' points summed
 * over the window, and totals made whole counts.
 */
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../connector-error";
import { checkTagValue, parseMetricQuery, seriesTotal, tagOf, totalsQuery, wholeCounts } from "./metrics-query";

const TAGS = { experimentTag: "experiment", armTag: "arm" };

describe("parseMetricQuery", () => {
  it("reads sum:<metric>{<filter>}, a bare metric and an empty filter", () => {
    expect(parseMetricQuery("requests", "sum:trace.http.request.hits{service:checkout}")).toEqual({
      field: "requests",
      metric: "trace.http.request.hits",
      filter: "service:checkout",
    });
    expect(parseMetricQuery("requests", "checkout.requests")).toMatchObject({
      metric: "checkout.requests",
      filter: "",
    });
    expect(parseMetricQuery("requests", " sum:checkout.requests{*} ")).toMatchObject({ filter: "*" });
  });

  it("refuses another aggregator, a percentile, grouping, functions and two metrics, naming the setting", () => {
    for (const [text, problem] of [
      ["avg:checkout.requests{*}", 'the space aggregator "avg:"'],
      ["p99:checkout.latency{*}", "is a percentile"],
      ["sum:checkout.requests{*} by {arm}", "groups the query"],
      ["sum:checkout.requests{*}.as_count()", "applies functions"],
      ["sum:a{*} + sum:b{*}", "is not one metric"],
      ["sum:9lives{*}", "is not a metric name"],
    ] as const) {
      let error: unknown;
      try {
        parseMetricQuery("errors", text);
      } catch (e) {
        error = e;
      }
      expect(error, text).toBeInstanceOf(ConnectorError);
      expect((error as ConnectorError).code).toBe("invalid_config");
      expect((error as ConnectorError).message, text).toContain(problem);
      expect((error as ConnectorError).details.field).toBe("errors");
    }
  });
});

describe("totalsQuery", () => {
  it("joins a comma filter with AND, keeps a boolean one whole, and adds the experiment's terms", () => {
    const q = (filter: string) => parseMetricQuery("requests", `sum:checkout.requests{${filter}}`);
    expect(totalsQuery(q("env:prod,region:eu"), TAGS, ["checkout-copy"], ["control", "treatment"], 3600)).toBe(
      "sum:checkout.requests{env:prod AND region:eu AND experiment:checkout-copy AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 3600)",
    );
    expect(totalsQuery(q("env:prod OR env:canary"), TAGS, ["a", "b"], ["control"], 60)).toBe(
      "sum:checkout.requests{(env:prod OR env:canary) AND experiment IN (a, b) AND arm:control} by {experiment,arm}.as_count().rollup(sum, 60)",
    );
    expect(totalsQuery(q("*"), { experimentTag: "exp", armTag: "variant" }, ["a"], ["x"], 1)).toBe(
      "sum:checkout.requests{exp:a AND variant:x} by {exp,variant}.as_count().rollup(sum, 1)",
    );
  });
});

describe("checkTagValue", () => {
  it("lowercases a possible tag value, and refuses what could end a tag, a group or a list", () => {
    expect(checkTagValue("experiment", "Checkout-Copy_v2.1/eu")).toEqual({ ok: "checkout-copy_v2.1/eu" });
    expect(checkTagValue("arm", "処理")).toEqual({ ok: "処理" });
    for (const value of ["a,b", "a:b", "a}", "a)", "(a", "a b", '"a"', "*", "-a", "", "a\nb"]) {
      expect(checkTagValue("experiment", value), JSON.stringify(value)).toHaveProperty("problem");
    }
    expect(checkTagValue("experiment", "x".repeat(200))).toHaveProperty("problem");
  });
});

describe("tagOf", () => {
  it("reads a tag from tag_set, else from scope, lowercased; undefined when absent or repeated", () => {
    expect(tagOf({ tagSet: ["experiment:A", "arm:control"] }, "experiment")).toBe("a");
    expect(tagOf({ scope: "arm:control,experiment:b" }, "experiment")).toBe("b");
    expect(tagOf({ scope: "arm:control" }, "experiment")).toBeUndefined();
    expect(tagOf({ tagSet: ["arm:a", "arm:b"] }, "arm")).toBeUndefined();
  });
});

describe("seriesTotal", () => {
  const window = { fromMs: 1000_000, toMs: 2000_000, answerFromMs: 1000_000 };
  it("sums the points of the window, skips nulls, and leaves out data outside it", () => {
    const points = [
      [900_000, 1],
      [1000_000, 2],
      [1500_000, null],
      [1999_999, 4],
      [2000_000, 8],
    ];
    expect(seriesTotal({ pointlist: points }, window, "s")).toEqual({ total: 7, outside: 1, nulls: 1 });
    expect(seriesTotal({ pointlist: points }, { ...window, answerFromMs: 500_000 }, "s")).toEqual({
      total: 6,
      outside: 2,
      nulls: 1,
    });
  });

  it("refuses a point that is not [time, number | null]", () => {
    for (const point of [[1000_000, "3"], [1000_000], ["t", 1], [1000_000, Number.NaN]]) {
      expect(() => seriesTotal({ pointlist: [point] }, window, "s"), JSON.stringify(point)).toThrow(ConnectorError);
    }
  });
});

describe("wholeCounts", () => {
  it("rounds, clamps errors above requests by one, and refuses more", () => {
    expect(wholeCounts(99.5, 3.49)).toEqual({ units: 100, sum: 3 });
    expect(wholeCounts(10, 11)).toEqual({ units: 10, sum: 10 });
    expect(wholeCounts(0, 0.4)).toEqual({ units: 0, sum: 0 });
    expect(wholeCounts(10, 12)).toHaveProperty("problem");
    expect(wholeCounts(0, 3)).toHaveProperty("problem");
  });
});
