import { afterEach, describe, expect, it, vi } from "vitest";
import { ConnectorError } from "./connector-error";
import { type RequestBudgetLimits, requestBudget, requestBudgetStates, resetRequestBudgets } from "./request-budget";

const LIMITS: RequestBudgetLimits = {
  vendor: "amplitude",
  scope: "project 42",
  key: "https://amplitude.com|42",
  perHour: 3,
  maxConcurrent: 2,
  docs: "https://amplitude.com/docs/apis/analytics/dashboard-rest",
};

afterEach(() => {
  resetRequestBudgets();
  vi.useRealTimers();
});

function rateLimited(fn: () => void): ConnectorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected rate_limited");
}

describe("requestBudget", () => {
  it("counts requests per hour, refuses a read that does not fit whole, and frees them an hour later", () => {
    vi.useFakeTimers({ now: new Date("2026-12-01T10:00:00Z"), toFake: ["Date"] });
    const budget = requestBudget(LIMITS);
    budget.spend(2);
    vi.setSystemTime(new Date("2026-12-01T10:20:00Z"));
    const refused = rateLimited(() => budget.spend(2));
    expect(refused.code).toBe("rate_limited");
    // The first two requests age out at 11:00, 40 minutes from now.
    expect(refused.retryAfterMs).toBe(40 * 60_000);
    expect(refused.message).toMatch(
      /^amplitude: project 42 has spent 2 of its 3 API requests this hour and this read needs 2; nothing was sent/,
    );
    expect(budget.state()).toMatchObject({ spent: 2, perHour: 3, pausedUntil: null });
    budget.spend(1);
    // Spent out: the state says until when.
    expect(budget.state().pausedUntil).toEqual(new Date("2026-12-01T11:00:00Z"));
    vi.setSystemTime(new Date("2026-12-01T11:00:01Z"));
    budget.spend(2);
    expect(budget.state().spent).toBe(3);
  });

  it("is shared by key: a second connector of the same project spends the same budget", () => {
    requestBudget(LIMITS).spend(3);
    expect(rateLimited(() => requestBudget({ ...LIMITS }).spend(1)).code).toBe("rate_limited");
    requestBudget({ ...LIMITS, key: "https://amplitude.com|43", scope: "project 43" }).spend(1);
    expect(requestBudgetStates().map((s) => [s.scope, s.spent])).toEqual([
      ["project 42", 3],
      ["project 43", 1],
    ]);
  });

  it("sends nothing during a pause after the vendor's 429, and keeps the longer pause", () => {
    vi.useFakeTimers({ now: new Date("2026-12-01T10:00:00Z"), toFake: ["Date"] });
    const budget = requestBudget(LIMITS);
    budget.pause(30_000);
    budget.pause(5_000);
    expect(budget.pauseRemainingMs()).toBe(30_000);
    const refused = rateLimited(() => budget.spend(1));
    expect(refused.retryAfterMs).toBe(30_000);
    expect(refused.message).toMatch(/not querying again for 30s/);
    expect(budget.state()).toMatchObject({ spent: 0, pausedUntil: new Date("2026-12-01T10:00:30Z") });
    vi.setSystemTime(new Date("2026-12-01T10:00:30.001Z"));
    expect(budget.pauseRemainingMs()).toBe(0);
    budget.spend(1);
  });

  it("holds the concurrency limit, and a request aborted while queued never runs", async () => {
    const budget = requestBudget(LIMITS);
    let active = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const request = () =>
      new Promise<string>((resolve) => {
        active++;
        peak = Math.max(peak, active);
        releases.push(() => {
          active--;
          resolve("ok");
        });
      });
    const first = budget.run(request);
    const second = budget.run(request);
    const controller = new AbortController();
    let ranThird = false;
    const third = budget.run(async () => {
      ranThird = true;
      return "third";
    }, controller.signal);
    controller.abort(new Error("poll timeout"));
    await expect(third).rejects.toThrow("poll timeout");
    await vi.waitFor(() => expect(releases).toHaveLength(2));
    for (const release of releases) release();
    await expect(Promise.all([first, second])).resolves.toEqual(["ok", "ok"]);
    expect(peak).toBe(2);
    expect(ranThird).toBe(false);
  });

  it("refuses limits that are not whole numbers ≥ 1, and a count below 1", () => {
    expect(() => requestBudget({ ...LIMITS, perHour: 0 })).toThrow(/perHour must be a whole number ≥ 1, got 0/);
    expect(() => requestBudget(LIMITS).spend(0)).toThrow(/count must be a whole number ≥ 1, got 0/);
  });
});
