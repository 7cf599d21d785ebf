import { describe, expect, it } from "vitest";
import { decide } from "./decision-policy";
import {
  assessErrors,
  combineMeasurements,
  countMeasurement,
  countsFrom,
  exceedsLimit,
  measurementOf,
  NO_COUNTS,
  sanitizeInput,
} from "./decision-rules";
import { RULE_CASES, runCase, stepInput } from "./decision-rules.cases";

describe("the R14 decision-rules table (Argo Rollouts semantics)", () => {
  for (const c of RULE_CASES) {
    it(c.name, () => {
      const run = runCase(c);
      if (c.expected === null) {
        expect(run.decision).toBeNull();
        expect(run.stops).toBe(0);
      } else {
        expect(run.decision).toMatchObject(c.expected);
        expect(run.stops).toBe(1);
      }
    });
  }
});

describe("exceedsLimit", () => {
  it("trips when the count is above the limit; −1 never trips", () => {
    expect([0, 1].map((n) => exceedsLimit(n, 0))).toEqual([false, true]);
    expect([1, 2].map((n) => exceedsLimit(n, 1))).toEqual([false, true]);
    expect([3, 4].map((n) => exceedsLimit(n, 3))).toEqual([false, true]);
    expect(exceedsLimit(1_000_000, -1)).toBe(false);
  });
});

describe("undefined statistics", () => {
  const guardrailCase = RULE_CASES.find(
    (c) => c.rule === "guardrail" && c.expected === null && c.limits.failureLimit === undefined,
  )!;
  const killCase = RULE_CASES.find((c) => c.rule === "kill")!;

  it("reads NaN and ±∞ as null before anything is compared", () => {
    const s = sanitizeInput(stepInput(killCase, "Inf"));
    expect(s).toMatchObject({ effect: null, ci: null, relativeCi: null, pValue: null });
    expect(sanitizeInput(stepInput(guardrailCase, "NaN"))).toMatchObject({ effect: null, ci: null, pValue: null });
  });

  it("never pauses or ships on NaN, ±∞, an empty arm or zero variance alone", () => {
    for (const step of ["NaN", "Inf", "empty", "zero_var"] as const) {
      for (const c of [guardrailCase, killCase]) {
        expect(decide(stepInput(c, step)).action, `${c.rule} ${step}`).toBe("continue");
      }
    }
  });

  it("counts an empty arm as inconclusive only past min_duration", () => {
    const empty = stepInput(guardrailCase, "empty");
    expect(measurementOf(empty).inconclusive).toBe(true);
    expect(measurementOf({ ...empty, elapsedSeconds: 10 }).inconclusive).toBe(false);
  });
});

describe("counting", () => {
  it("counts a metric once per analysis, whichever arms failed it", () => {
    const c = RULE_CASES[0]!;
    const failed = measurementOf(stepInput(c, "F"));
    const counts = countMeasurement(NO_COUNTS, combineMeasurements([failed, failed]));
    expect(counts).toEqual({ kill: 0, guardrails: { payment_error_rate: 1 }, inconclusive: 0 });
  });

  it("counts nothing while warming up", () => {
    const c = RULE_CASES[0]!;
    const warming = { ...stepInput(c, "F"), units: { control: 10, treatment: 10 } };
    expect(measurementOf(warming)).toEqual({ killFailed: false, guardrailsFailed: [], inconclusive: false });
  });

  it("reads counts back from a stored carry, malformed fields as 0", () => {
    expect(countsFrom(undefined)).toEqual(NO_COUNTS);
    expect(countsFrom({ kill: 2, guardrails: { a: 1, b: "x" }, inconclusive: -1 })).toEqual({
      kill: 2,
      guardrails: { a: 1, b: 0 },
      inconclusive: 0,
    });
  });
});

describe("a failure within its limit", () => {
  it("holds the experiment: no significant loss is declared during the kill's grace", () => {
    const c = RULE_CASES.find((x) => x.rule === "kill")!;
    const input = stepInput(c, "F");
    const counts = countMeasurement(NO_COUNTS, measurementOf(input));
    expect(decide({ ...input, rules: { counts, inconclusiveLimit: -1 } })).toMatchObject({
      action: "continue",
      reason: "failure_tolerated",
    });
  });

  it("does not mask another guardrail beyond its own limit", () => {
    const c = RULE_CASES.find((x) => x.limits.failureLimit === 1 && x.rule === "guardrail")!;
    const input = stepInput(c, "F");
    const second = { ...input.guardrails[0]!, metric: "latency", failureLimit: 0 };
    const both = { ...input, guardrails: [...input.guardrails, second] };
    const counts = countMeasurement(NO_COUNTS, measurementOf(both));
    expect(decide({ ...both, rules: { counts, inconclusiveLimit: -1 } })).toMatchObject({
      action: "pause",
      reason: "guardrail",
      detail: expect.stringContaining("latency"),
    });
  });
});

describe("assessErrors", () => {
  it("pauses at the 5th consecutive error by default, never with −1", () => {
    expect(assessErrors(4)).toBeNull();
    expect(assessErrors(5, 4, "query_failed: boom")).toMatchObject({
      action: "pause",
      reason: "errors",
      detail: expect.stringContaining("query_failed: boom"),
    });
    expect(assessErrors(1, 0)).toMatchObject({ reason: "errors" });
    expect(assessErrors(10_000, -1)).toBeNull();
  });
});
