import { describe, expect, it } from "vitest";
import { formatSeconds } from "./config-reader";
import { effectivePollInterval, MIXPANEL_PLANNED_QUERIES_PER_HOUR, requestsPerPoll } from "./poll-budget";

const mixpanel = { type: "mixpanel", project_id: 2741933, event: "order_completed" };

describe("requestsPerPoll", () => {
  it("counts Mixpanel requests per experiment poll, and nothing for other sources", () => {
    expect(requestsPerPoll(mixpanel)).toBe(2);
    expect(requestsPerPoll({ ...mixpanel, value_property: "amount" })).toBe(5);
    expect(requestsPerPoll({ ...mixpanel, value_property: "amount" }, { arms: 3 })).toBe(7);
    expect(requestsPerPoll({ type: "postgres", query: "SELECT 1" })).toBe(0);
    expect(requestsPerPoll({ type: "csv", path: "a.csv" })).toBe(0);
  });
});

describe("effectivePollInterval", () => {
  it("keeps the requested interval of sources without a query budget", () => {
    expect(effectivePollInterval({ type: "postgres", query: "SELECT 1" }, 60, 500)).toEqual({
      seconds: 60,
      note: null,
    });
  });

  it("keeps a Mixpanel interval that fits the budget", () => {
    // 4 series × 2 requests × 6 polls an hour = 48 ≤ 50.
    expect(effectivePollInterval(mixpanel, 600, 4)).toEqual({ seconds: 600, note: null });
  });

  it("stretches the interval when the series of one project would exceed the budget, and says so", () => {
    // 40 series × 2 requests every 15 minutes = 320 queries an hour; 40 × 2 × 3600 / 50 = 5760 s = 1h 36m.
    const result = effectivePollInterval(mixpanel, 900, 40);
    expect(result.seconds).toBe(5760);
    expect(result.note).toBe(
      `Mixpanel allows about 60 queries an hour per project; 40 series of project 2741933 at 2 queries per poll every 15m would need 320 an hour, so each is polled every 1h 36m instead (planned budget ${MIXPANEL_PLANNED_QUERIES_PER_HOUR} an hour)`,
    );
    // The stretched interval fits the budget.
    expect((40 * 2 * 3600) / result.seconds).toBeLessThanOrEqual(MIXPANEL_PLANNED_QUERIES_PER_HOUR);
  });

  it("rounds a stretched interval up to a whole minute and counts a mean's per-arm requests", () => {
    // 3 series × 5 requests every 5 minutes = 180 an hour; 3 × 5 × 3600 / 50 = 1080 s.
    expect(effectivePollInterval({ ...mixpanel, value_property: "amount" }, 300, 3).seconds).toBe(1080);
    // 7 × 2 × 3600 / 50 = 1008 s → 1020 s.
    expect(effectivePollInterval(mixpanel, 60, 7).seconds).toBe(1020);
  });

  it("refuses a nonsensical requested interval", () => {
    expect(() => effectivePollInterval(mixpanel, 0, 1)).toThrow(RangeError);
  });
});

describe("formatSeconds", () => {
  it("writes durations the way outcome.yaml does", () => {
    expect(formatSeconds(900)).toBe("15m");
    expect(formatSeconds(5400)).toBe("1h 30m");
    expect(formatSeconds(90)).toBe("1m 30s");
    expect(formatSeconds(90_000)).toBe("1d 1h");
  });
});
