import { describe, expect, it } from "vitest";
import { formatSeconds } from "./config-reader";
import {
  effectivePollInterval,
  MIXPANEL_PLANNED_QUERIES_PER_HOUR,
  requestsPerPoll,
  requestsPerRound,
} from "./poll-budget";

const mixpanel = { type: "mixpanel", project_id: 2741933, event: "order_completed" };
const mean = { ...mixpanel, value_property: "amount" };

describe("requestsPerPoll", () => {
  it("counts Mixpanel requests per experiment poll, and nothing for other sources", () => {
    expect(requestsPerPoll(mixpanel)).toBe(2);
    expect(requestsPerPoll({ ...mixpanel, value_property: "amount" })).toBe(5);
    expect(requestsPerPoll({ ...mixpanel, value_property: "amount" }, { arms: 3 })).toBe(7);
    expect(requestsPerPoll({ type: "postgres", query: "SELECT 1" })).toBe(0);
    expect(requestsPerPoll({ type: "csv", path: "a.csv" })).toBe(0);
  });
});

describe("requestsPerRound", () => {
  it("counts requests, not experiments: a Mixpanel proportion reads 100 experiments per pair of requests", () => {
    expect(requestsPerRound(mixpanel, 1)).toBe(2);
    expect(requestsPerRound(mixpanel, 100)).toBe(2);
    expect(requestsPerRound(mixpanel, 101)).toBe(4);
    expect(requestsPerRound(mixpanel, 250)).toBe(6);
    // A mean is not batched: 1 + 2 × arms requests per experiment.
    expect(requestsPerRound(mean, 100)).toBe(500);
    expect(requestsPerRound({ type: "postgres", query: "SELECT 1" }, 100)).toBe(0);
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
    // A mean, one experiment per poll: 40 series × 5 requests every 15 minutes = 800 queries an hour;
    // 40 × 5 × 3600 / 50 = 14400 s = 4h.
    const result = effectivePollInterval(mean, 900, 40);
    expect(result.seconds).toBe(14_400);
    expect(result.note).toBe(
      `Mixpanel allows about 60 queries an hour per project; 40 series of project 2741933 at 5 queries per poll every 15m would need 800 an hour, so each is polled every 4h instead (planned budget ${MIXPANEL_PLANNED_QUERIES_PER_HOUR} an hour)`,
    );
    // The stretched interval fits the budget.
    expect((40 * 5 * 3600) / result.seconds).toBeLessThanOrEqual(MIXPANEL_PLANNED_QUERIES_PER_HOUR);
  });

  it("counts the requests of a batched read, not its experiments", () => {
    // 100 proportion experiments every 15 minutes: 2 requests a round, 8 an hour.
    expect(effectivePollInterval(mixpanel, 900, 100)).toEqual({ seconds: 900, note: null });
    // 250 every minute: 6 requests a round, 360 an hour; 6 × 3600 / 50 = 432 s → 480 s.
    const result = effectivePollInterval(mixpanel, 60, 250);
    expect(result.seconds).toBe(480);
    expect(result.note).toBe(
      `Mixpanel allows about 60 queries an hour per project; 250 series of project 2741933 read in batches (6 queries per round) every 1m would need 360 an hour, so each is polled every 8m instead (planned budget ${MIXPANEL_PLANNED_QUERIES_PER_HOUR} an hour)`,
    );
  });

  it("rounds a stretched interval up to a whole minute and counts a mean's per-arm requests", () => {
    // 3 series × 5 requests every 5 minutes = 180 an hour; 3 × 5 × 3600 / 50 = 1080 s.
    expect(effectivePollInterval(mean, 300, 3).seconds).toBe(1080);
    // 7 series × 5 × 3600 / 50 = 2520 s = 42m.
    expect(effectivePollInterval(mean, 60, 7).seconds).toBe(2520);
    // A batched round of 7 every minute: 2 × 3600 / 50 = 144 s → 180 s.
    expect(effectivePollInterval(mixpanel, 60, 7).seconds).toBe(180);
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

describe("effectivePollInterval of the other rate-limited sources", () => {
  it("stretches GA4 polls to the property's planned share of its daily token quota", () => {
    const ga4 = { type: "ga4", property_id: 123456789, event: "sign_up" };
    // 2 reports per 100 experiments; 1,000 experiments every minute need 20 × 60 = 1,200 an hour.
    const result = effectivePollInterval(ga4, 60, 1000);
    expect(result.note).toMatch(
      /^Google Analytics 4 allows about \d+ queries an hour per property; 1000 series of property 123456789 read in batches \(20 queries per round\) every 1m would need 1200 an hour/,
    );
    expect(result.seconds % 60).toBe(0);
    expect(result.seconds).toBeGreaterThan(60);
    // 10 experiments every 15 minutes: 2 requests a round, 8 an hour, well inside the budget.
    expect(effectivePollInterval(ga4, 900, 10)).toEqual({ seconds: 900, note: null });
  });
});
