/**
 * The `amplitude` connector against the local stand-in of Amplitude's
 * Dashboard REST API (@outcome-runtime/testing/fake-amplitude, which follows
 * https://amplitude.com/docs/apis/analytics/dashboard-rest): what it asks,
 * what it reads, and each failure a user meets (a rate limit with its
 * header, a refused or expired key, a property or event that does not
 * exist, a slow or oversized answer, a project in another time zone).
 */

import { rejectionOf } from "@outcome-runtime/testing";
import {
  type FakeAmplitude,
  type FakeAmplitudeEvent,
  startFakeAmplitude,
} from "@outcome-runtime/testing/fake-amplitude";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ExperimentWindow, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { requestBudgetStates, resetRequestBudgets } from "../request-budget";
import {
  AMPLITUDE_PLANNED_COST_PER_HOUR,
  AMPLITUDE_PLANNING_WINDOW_DAYS,
  amplitudeDateRange,
  amplitudePollCost,
} from "./amplitude.connector";
import {
  AMPLITUDE_BUDGET_COST_PER_HOUR,
  AMPLITUDE_COST_PER_FIVE_MINUTES,
  AMPLITUDE_COST_PER_HOUR,
  AMPLITUDE_DEFAULT_RETRY_AFTER_MS,
  AMPLITUDE_MAX_CONCURRENT,
  AMPLITUDE_MAX_RESPONSE_BYTES,
  amplitudeQueryCost,
} from "./dashboard-api-client";

const AUTH = { apiKey: "3f1c9a0b7d2e4f6a8b0c1d2e3f4a5b6c", secretKey: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b" };
const EXPOSURE = "[Experiment] Exposure";
const CONVERSION = "Order completed";
const FROM = new Date("2026-11-01T00:00:00.000Z");
const TO = new Date("2026-11-08T00:00:00.000Z");
const WINDOW: ExperimentWindow = { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM, to: TO };

let fake: FakeAmplitude;
const opened: SignalConnector[] = [];

beforeEach(async () => {
  resetRequestBudgets();
  fake = await startFakeAmplitude(AUTH);
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  await fake.close();
});

function connector(
  settings: Record<string, unknown> = {},
  kind: "proportion" | "mean" = "proportion",
  target: FakeAmplitude = fake,
): SignalConnector {
  const config: ConnectorConfig = {
    type: "amplitude",
    project_id: 318_204,
    api_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
    secret_key_secret: "amplitude-secret-key",
    event: CONVERSION,
    exposure_event: EXPOSURE,
    api_url: target.baseUrl,
    ...settings,
  };
  const created = createConnector(config, {
    metricKind: kind,
    credentials: { api_key: AUTH.apiKey, secret_key: AUTH.secretKey },
    allowedApiUrls: { amplitude: [target.baseUrl] },
  });
  opened.push(created);
  return created;
}

/** An event of `user` in experiment `experiment`'s arm `arm`, as the user properties set at exposure say. */
function event(
  eventType: string,
  user: string,
  time: string,
  experiment: string,
  arm: string,
  eventProperties?: Record<string, number>,
): FakeAmplitudeEvent {
  return {
    eventType,
    userId: user,
    time,
    userProperties: { experiment, arm },
    ...(eventProperties === undefined ? {} : { eventProperties }),
  };
}

/** Users u0..u(n-1) of `arm` exposed on Nov 2, the first `converted` of them converting on Nov 3. */
function arm(experiment: string, name: string, n: number, converted: number, prefix = name): FakeAmplitudeEvent[] {
  const out: FakeAmplitudeEvent[] = [];
  for (let i = 0; i < n; i++) {
    out.push(event(EXPOSURE, `${prefix}-${i}`, "2026-11-02T10:00:00Z", experiment, name));
    if (i < converted) {
      out.push(event(CONVERSION, `${prefix}-${i}`, "2026-11-03T10:00:00Z", experiment, name));
      // A second conversion of the same user counts once.
      out.push(event(CONVERSION, `${prefix}-${i}`, "2026-11-04T10:00:00Z", experiment, name));
    }
  }
  return out;
}

function rows(aggregates: { arm: string; units: number; sum: number; sum_sq: number }[]): unknown[] {
  return aggregates.map((a) => [a.arm, a.units, a.sum, a.sum_sq]);
}

describe("amplitude: reads", () => {
  it("counts unique exposed users and unique converters per arm, with the documented auth and parameters", async () => {
    fake.events.push(...arm("checkout-copy", "control", 10, 3), ...arm("checkout-copy", "treatment", 12, 5));
    fake.events.push(...arm("other-test", "control", 50, 50, "other"));
    const read = await connector().fetchArmAggregates(WINDOW);
    expect(rows(read)).toEqual([
      ["control", 10, 3, 3],
      ["treatment", 12, 5, 5],
    ]);
    expect(fake.requests.map((r) => r.path)).toEqual(["/api/2/events/segmentation", "/api/2/events/segmentation"]);
    const [units, conversions] = fake.requests.map((r) => Object.fromEntries(r.params));
    expect(units).toMatchObject({
      e: JSON.stringify({ event_type: EXPOSURE }),
      m: "uniques",
      start: "20261101",
      end: "20261107",
      g: "gp:arm",
      limit: "2",
      s: JSON.stringify([
        { prop: "gp:experiment", op: "is", values: ["checkout-copy"] },
        { prop: "gp:arm", op: "is", values: ["control", "treatment"] },
      ]),
    });
    expect(conversions?.e).toBe(JSON.stringify({ event_type: CONVERSION }));
    // 7 days × (1 segment + 2 filters + 4 for the group-by) × 1 event, twice.
    expect(requestBudgetStates()).toEqual([expect.objectContaining({ vendor: "amplitude", spent: 2 * 7 * 7 })]);
  });

  it("uses built-in user properties bare and custom ones as gp:<name>", async () => {
    fake.events.push({
      eventType: EXPOSURE,
      userId: "u1",
      time: "2026-11-02T10:00:00Z",
      userProperties: { platform: "Web", cohort: "control" },
    });
    const read = await connector({ experiment_property: "platform", arm_property: "cohort" }).fetchArmAggregates({
      ...WINDOW,
      experimentKey: "Web",
    });
    expect(rows(read)).toEqual([["control", 1, 0, 0]]);
    const params = fake.requests[0]?.params;
    expect(params?.get("g")).toBe("gp:cohort");
    expect(JSON.parse(params?.get("s") ?? "[]")[0]).toEqual({ prop: "platform", op: "is", values: ["Web"] });
  });

  it("reads many experiments in one request pair, grouped by experiment and arm", async () => {
    fake.events.push(...arm("checkout-copy", "control", 10, 3), ...arm("checkout-copy", "treatment", 12, 5));
    fake.events.push(...arm("pricing-page", "a", 4, 1, "pa"), ...arm("pricing-page", "b", 6, 6, "pb"));
    const c = connector();
    const answer = await c.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM },
        { experimentKey: "pricing-page", arms: ["a", "b"], from: FROM },
        { experimentKey: "not-started", arms: ["control", "treatment"], from: FROM },
      ],
      to: TO,
    });
    expect(rows(answer?.get("checkout-copy") as never)).toEqual([
      ["control", 10, 3, 3],
      ["treatment", 12, 5, 5],
    ]);
    expect(rows(answer?.get("pricing-page") as never)).toEqual([
      ["a", 4, 1, 1],
      ["b", 6, 6, 6],
    ]);
    expect(answer?.get("not-started")).toEqual([]);
    expect(fake.requests).toHaveLength(2);
    const params = fake.requests[0]?.params;
    expect([params?.get("g"), params?.get("g2"), params?.get("limit")]).toEqual(["gp:experiment", "gp:arm", "12"]);
    expect(JSON.parse(params?.get("s") ?? "[]")[0].values).toEqual(["checkout-copy", "pricing-page", "not-started"]);
  });

  it("reads a batched label given as [event index, experiment, arm] too", async () => {
    fake.override = (request) => {
      const exposure = request.params.get("e")?.includes(EXPOSURE);
      return {
        body: {
          data: {
            series: [[0]],
            seriesLabels: [[0, "checkout-copy", "control"]],
            seriesCollapsed: [[{ value: exposure ? 40 : 4 }]],
            xValues: ["2026-11-01"],
          },
        },
      };
    };
    const answer = await connector().fetchBatchAggregates?.({
      experiments: [{ experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM }],
      to: TO,
    });
    expect(rows(answer?.get("checkout-copy") as never)).toEqual([["control", 40, 4, 4]]);
  });

  it("fails the whole batch on a label that names no experiment it asked for; a repeated label fails its experiment", async () => {
    fake.override = () => ({
      body: {
        data: {
          series: [[1]],
          seriesLabels: ["someone-else; control"],
          seriesCollapsed: [[{ value: 1 }]],
          xValues: [],
        },
      },
    });
    const batch = {
      experiments: [
        { experimentKey: "checkout-copy", arms: ["control"], from: FROM },
        { experimentKey: "pricing-page", arms: ["a"], from: FROM },
      ],
      to: TO,
    };
    const stray = await rejectionOf(connector().fetchBatchAggregates?.(batch) ?? Promise.resolve(), ConnectorError);
    expect(stray.code).toBe("bad_response");
    expect(stray.message).toContain('labelled ["someone-else; control"], which names no experiment');
    expect(stray.message).toContain("batch: false");

    resetRequestBudgets();
    fake.override = () => ({
      body: {
        data: {
          series: [[1], [2], [3]],
          seriesLabels: ["checkout-copy; control", "checkout-copy; control", "pricing-page; a"],
          seriesCollapsed: [[{ value: 5 }], [{ value: 6 }], [{ value: 7 }]],
          xValues: [],
        },
      },
    });
    const answer = await connector().fetchBatchAggregates?.(batch);
    const repeated = answer?.get("checkout-copy");
    expect(repeated).toBeInstanceOf(ConnectorError);
    expect((repeated as ConnectorError).code).toBe("bad_response");
    expect((repeated as ConnectorError).message).toContain('"checkout-copy; control" appears twice');
    expect(rows(answer?.get("pricing-page") as never)).toEqual([["a", 7, 7, 7]]);
  });

  it("splits a batch by the window's first day, and where two (experiment, arm) pairs would share a label", async () => {
    fake.events.push(
      event(EXPOSURE, "u1", "2026-11-02T10:00:00Z", "a; b", "c"),
      event(EXPOSURE, "u2", "2026-11-02T10:00:00Z", "a", "b; c"),
      event(EXPOSURE, "u3", "2026-11-05T10:00:00Z", "late", "control"),
    );
    const answer = await connector().fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "a; b", arms: ["c"], from: FROM },
        { experimentKey: "a", arms: ["b; c"], from: FROM },
        { experimentKey: "late", arms: ["control"], from: new Date("2026-11-04T12:00:00.000Z") },
      ],
      to: TO,
    });
    expect(rows(answer?.get("a; b") as never)).toEqual([["c", 1, 0, 0]]);
    expect(rows(answer?.get("a") as never)).toEqual([["b; c", 1, 0, 0]]);
    expect(rows(answer?.get("late") as never)).toEqual([["control", 1, 0, 0]]);
    // Three groups of two requests: "a; b" and "a" would both be labelled "a; b; c"; "late" starts on Nov 4.
    expect(fake.requests).toHaveLength(6);
    expect(fake.requests.map((r) => r.params.get("start"))).toContain("20261104");
  });

  it("batch: false reads one experiment per request, grouped by arm alone", async () => {
    const c = connector({ batch: false });
    expect(c.fetchBatchAggregates).toBeUndefined();
  });

  it("sums value_property and value_squared_property per arm for a mean (m=sums, the property as e's group_by)", async () => {
    fake.events.push(
      event(EXPOSURE, "u1", "2026-11-02T10:00:00Z", "checkout-copy", "control"),
      event(EXPOSURE, "u2", "2026-11-02T10:00:00Z", "checkout-copy", "control"),
      event(CONVERSION, "u1", "2026-11-03T10:00:00Z", "checkout-copy", "control", { amount: 3, amount_sq: 9 }),
      event(CONVERSION, "u2", "2026-11-03T10:00:00Z", "checkout-copy", "control", { amount: 4.5, amount_sq: 20.25 }),
    );
    const c = connector({ value_property: "amount", value_squared_property: "amount_sq" }, "mean");
    expect(rows(await c.fetchArmAggregates(WINDOW))).toEqual([["control", 2, 7.5, 29.25]]);
    const sums = fake.requests.filter((r) => r.params.get("m") === "sums");
    expect(sums.map((r) => JSON.parse(r.params.get("e") ?? "{}"))).toEqual([
      { event_type: CONVERSION, group_by: [{ type: "event", value: "amount" }] },
      { event_type: CONVERSION, group_by: [{ type: "event", value: "amount_sq" }] },
    ]);
  });

  it("reads a funnel per arm: units entered the exposure step, the conversions completed the last", async () => {
    const checkout = "Checkout started";
    fake.events.push(
      // u1 goes through in order; u2 skips checkout; u3 pays before exposure (not in order); u4 in treatment completes.
      event(EXPOSURE, "u1", "2026-11-02T10:00:00Z", "checkout-copy", "control"),
      event(checkout, "u1", "2026-11-02T10:05:00Z", "checkout-copy", "control"),
      event(CONVERSION, "u1", "2026-11-02T10:10:00Z", "checkout-copy", "control"),
      event(EXPOSURE, "u2", "2026-11-02T11:00:00Z", "checkout-copy", "control"),
      event(CONVERSION, "u2", "2026-11-02T11:10:00Z", "checkout-copy", "control"),
      event(checkout, "u3", "2026-11-02T09:00:00Z", "checkout-copy", "control"),
      event(CONVERSION, "u3", "2026-11-02T09:10:00Z", "checkout-copy", "control"),
      event(EXPOSURE, "u3", "2026-11-02T12:00:00Z", "checkout-copy", "control"),
      event(EXPOSURE, "u4", "2026-11-03T10:00:00Z", "checkout-copy", "treatment"),
      event(checkout, "u4", "2026-11-03T10:05:00Z", "checkout-copy", "treatment"),
      event(CONVERSION, "u4", "2026-11-03T10:10:00Z", "checkout-copy", "treatment"),
    );
    const c = connector({ funnel: [checkout], conversion_window: "1d" });
    expect(rows(await c.fetchArmAggregates(WINDOW))).toEqual([
      ["control", 3, 1, 1],
      ["treatment", 1, 1, 1],
    ]);
    expect(fake.requests.map((r) => r.path)).toEqual(["/api/2/funnels", "/api/2/funnels"]);
    const params = fake.requests[0]?.params;
    expect(params?.getAll("e").map((e) => JSON.parse(e).event_type)).toEqual([EXPOSURE, checkout, CONVERSION]);
    expect([params?.get("mode"), params?.get("cs"), params?.has("g")]).toEqual(["ordered", "86400", false]);
    expect(JSON.parse(params?.get("s") ?? "[]")[1]).toEqual({ prop: "gp:arm", op: "is", values: ["control"] });
  });

  it("refuses a funnel answer whose steps do not match the funnel's", async () => {
    fake.override = () => ({ body: { data: [{ meta: { segmentIndex: 0 }, cumulativeRaw: [10, 4] }] } });
    const error = await rejectionOf(
      connector({ funnel: ["Checkout started"] }).fetchArmAggregates(WINDOW),
      ConnectorError,
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("is [10,4], not 3 counts (one per step)");
  });

  it("reads the outcome series: a mean's daily value_avg, a proportion's daily UNIQUES(B)/UNIQUES(A)", async () => {
    fake.events.push(...arm("checkout-copy", "control", 4, 1));
    fake.events.push(event(CONVERSION, "control-3", "2026-11-02T18:00:00Z", "checkout-copy", "control", { amount: 8 }));
    const series = await connector().fetchOutcomeSeries({ from: FROM, to: TO });
    // Nov 2: 1 of the 4 users exposed that day converted that day.
    expect(series.find((p) => p.ts.toISOString() === "2026-11-02T00:00:00.000Z")?.value).toBe(0.25);
    expect(series).toHaveLength(7);
    expect(fake.requests[0]?.params.get("formula")).toBe("UNIQUES(B)/UNIQUES(A)");
    const mean = connector({ value_property: "amount", value_squared_property: "amount_sq" }, "mean");
    const averages = await mean.fetchOutcomeSeries({ from: FROM, to: TO });
    expect(averages.find((p) => p.ts.toISOString() === "2026-11-02T00:00:00.000Z")?.value).toBe(8);
    expect(fake.requests.at(-1)?.params.get("m")).toBe("value_avg");
    await expect(connector({ funnel: [] }).fetchOutcomeSeries({ from: FROM, to: TO })).rejects.toMatchObject({
      code: "unsupported",
    });
  });
});

describe("amplitude: the project's time zone", () => {
  it("chooses the window's days in the project's time zone: from the date of from to the date of to − 1 ms", () => {
    expect(amplitudeDateRange(FROM, TO, "UTC")).toEqual({ start: "20261101", end: "20261107", days: 7 });
    // 2026-11-01T00:00Z is still Oct 31 in Los Angeles (17:00 PDT); the window's last instant is Nov 7, 15:59 PST.
    expect(amplitudeDateRange(FROM, TO, "America/Los_Angeles")).toEqual({
      start: "20261031",
      end: "20261107",
      days: 8,
    });
    // Tokyo is ahead: the window starts on Nov 1 (09:00) and its last instant is Nov 8 (08:59).
    expect(amplitudeDateRange(FROM, TO, "Asia/Tokyo")).toEqual({ start: "20261101", end: "20261108", days: 8 });
  });

  it("counts an event by the project's day, and places the series' points at the project's midnights (across DST)", async () => {
    const la = await startFakeAmplitude(AUTH, { timeZone: "America/Los_Angeles" });
    try {
      // 2026-11-01T03:00Z is Oct 31, 20:00 in Los Angeles: inside the window (from, to], on the project's Oct 31.
      la.events.push(event(EXPOSURE, "u1", "2026-11-01T03:00:00Z", "checkout-copy", "control"));
      const c = connector({ project_timezone: "America/Los_Angeles" }, "proportion", la);
      expect(rows(await c.fetchArmAggregates(WINDOW))).toEqual([["control", 1, 0, 0]]);
      expect([la.requests[0]?.params.get("start"), la.requests[0]?.params.get("end")]).toEqual([
        "20261031",
        "20261107",
      ]);
      const series = await c.fetchOutcomeSeries({ from: FROM, to: TO });
      // Oct 31 and Nov 1 start at 07:00Z (PDT); DST ends on Nov 1, so Nov 2 starts at 08:00Z (PST).
      expect(series.slice(0, 3).map((p) => p.ts.toISOString())).toEqual([
        "2026-10-31T07:00:00.000Z",
        "2026-11-01T07:00:00.000Z",
        "2026-11-02T08:00:00.000Z",
      ]);
      expect(series.at(-1)?.ts.toISOString()).toBe("2026-11-07T08:00:00.000Z");
    } finally {
      await la.close();
    }
  });
});

describe("amplitude: failures", () => {
  it("maps a 429 to rate_limited with Retry-After, and pauses the project without sending again", async () => {
    fake.override = () => ({
      status: 429,
      body: { error: "Exceeded rate limit: concurrent cost" },
      headers: { "Retry-After": "120" },
    });
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(120_000);
    expect(error.message).toContain("Exceeded rate limit: concurrent cost");
    const sent = fake.requests.length;
    const again = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(again.code).toBe("rate_limited");
    expect(again.retryAfterMs).toBeGreaterThan(100_000);
    expect(fake.requests).toHaveLength(sent);
    expect(requestBudgetStates()[0]?.pausedUntil).toBeInstanceOf(Date);
  });

  it("pauses five minutes (the documented cost window) after a 429 without Retry-After", async () => {
    fake.override = () => ({ status: 429, body: { error: "Too many requests" } });
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.retryAfterMs).toBe(AMPLITUDE_DEFAULT_RETRY_AFTER_MS);
  });

  it("maps a refused or expired key (401) and a key of another project (403) to auth_failed, never showing a key", async () => {
    const wrong = createConnector(
      {
        type: "amplitude",
        project_id: 318_204,
        api_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
        secret_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_SECRET_KEY",
        event: CONVERSION,
        exposure_event: EXPOSURE,
        api_url: fake.baseUrl,
      },
      {
        metricKind: "proportion",
        credentials: { api_key: AUTH.apiKey, secret_key: "expired-secret-key-0000000000000" },
        allowedApiUrls: { amplitude: [fake.baseUrl] },
      },
    );
    const expired = await rejectionOf(wrong.fetchArmAggregates(WINDOW), ConnectorError);
    expect(expired.code).toBe("auth_failed");
    expect(expired.retryable).toBe(false);
    expect(expired.message).toContain("the API key and secret key were refused");
    expect(expired.message).not.toContain("expired-secret-key");
    expect(expired.message).not.toContain(AUTH.apiKey);
    fake.override = () => ({ status: 403, body: { error: "Forbidden" } });
    const forbidden = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(forbidden.code).toBe("auth_failed");
    expect(forbidden.message).toContain("the key may not read this project's data (403: Forbidden)");
  });

  it("names a user property that does not exist (Amplitude's 400), and an event missing from the project's list", async () => {
    fake.events.push(...arm("checkout-copy", "control", 2, 1));
    const error = await rejectionOf(connector({ arm_property: "variant" }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain('no event of this project has the user property "gp:variant"');
    expect(error.message).toContain("arm_property");

    const check = await rejectionOf(
      connector({ event: "Order complete" }).check?.() ?? Promise.resolve(),
      ConnectorError,
    );
    expect(check.code).toBe("query_failed");
    expect(check.message).toContain('event "Order complete" is not among project 318204\'s events');
    await expect(connector().check?.()).resolves.toBeUndefined();
    expect(fake.requests.at(-1)?.path).toBe("/api/2/events/list");
  });

  it("times out a slow answer with code timeout", async () => {
    fake.override = () => ({ delayMs: 5000, status: 200, body: {} });
    const error = await rejectionOf(connector({ timeout: "1s" }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("timeout");
    expect(error.retryable).toBe(true);
  });

  it("stops reading an oversized answer: bad_response", async () => {
    fake.override = () => ({ body: `{"data":{"seriesLabels":["${"x".repeat(AMPLITUDE_MAX_RESPONSE_BYTES)}"]}}` });
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("the answer is larger than 4 MiB");
  });

  it("refuses an answer without seriesLabels and seriesCollapsed, a 5xx as unavailable, and a body that is not JSON", async () => {
    fake.override = () => ({ body: { data: { series: [] } } });
    expect((await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError)).code).toBe("bad_response");
    fake.override = () => ({ status: 503, body: "upstream unavailable" });
    expect((await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError)).code).toBe("unavailable");
    fake.override = () => ({ body: "<html>login</html>" });
    expect((await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError)).code).toBe("bad_response");
  });

  it("refuses an api_url on a host Amplitude does not own, before sending anything", () => {
    let error: unknown;
    try {
      connector({ api_url: "https://amplitude.com.attacker.example" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("source_refused");
  });

  it("refuses a read whose cost does not fit the hour's budget, sending nothing", async () => {
    // A year-long window grouped by arm: 365 × 7 per request, twice; the budget is 12,000 an hour.
    const year = { ...WINDOW, from: new Date("2025-11-08T00:00:00.000Z") };
    fake.events.push(...arm("checkout-copy", "control", 1, 1));
    await connector().fetchArmAggregates(year);
    await connector().fetchArmAggregates(year);
    const sent = fake.requests.length;
    const error = await rejectionOf(connector().fetchArmAggregates(year), ConnectorError);
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.message).toContain("project 318204 (counted in Amplitude query cost) has spent 10220 of its 12000");
    expect(fake.requests).toHaveLength(sent);
  });
});

describe("amplitude: limits and costs", () => {
  it("uses the documented limits: 5 concurrent requests, 1000 cost per five minutes (12,000 an hour), 108,000 an hour", () => {
    expect(AMPLITUDE_MAX_CONCURRENT).toBe(5);
    expect(AMPLITUDE_COST_PER_FIVE_MINUTES).toBe(1000);
    expect(AMPLITUDE_COST_PER_HOUR).toBe(108_000);
    expect(AMPLITUDE_BUDGET_COST_PER_HOUR).toBe(12_000);
  });

  it("costs a query by the documented formula, days × conditions × query type", () => {
    const base = { days: 30, segmentFilters: 0, groupBys: 0, events: 1, eventGroupBys: 0 } as const;
    // No segment, one event, no group-by: 30 × 1 × 1.
    expect(amplitudeQueryCost({ ...base, chart: "segmentation" })).toBe(30);
    // A group-by counts as 4 segments; the segment's two filters count one each: 30 × (1 + 2 + 4) × 1.
    expect(amplitudeQueryCost({ ...base, segmentFilters: 2, groupBys: 1, chart: "segmentation" })).toBe(210);
    // m=sums groups the event by its property: add 4 per group-by and event: 30 × 7 × 5.
    expect(
      amplitudeQueryCost({ ...base, segmentFilters: 2, groupBys: 1, eventGroupBys: 1, chart: "segmentation" }),
    ).toBe(1050);
    // A three-step funnel: the steps × 2: 30 × 3 × 6.
    expect(amplitudeQueryCost({ ...base, segmentFilters: 2, events: 3, chart: "funnel" })).toBe(540);
  });

  it("plans a poll round in query cost, for a window of four weeks, within the budget", () => {
    const base = { type: "amplitude", project_id: 318_204, event: CONVERSION, exposure_event: EXPOSURE };
    const cost = amplitudePollCost(base);
    expect(cost?.limits).toMatchObject({
      vendor: "amplitude",
      key: "https://amplitude.com|318204",
      perHour: 12_000,
      maxConcurrent: 5,
      docs: "https://amplitude.com/docs/apis/analytics/dashboard-rest#rate-limits",
    });
    expect(cost?.plannedPerHour).toBe(AMPLITUDE_PLANNED_COST_PER_HOUR);
    expect(AMPLITUDE_PLANNED_COST_PER_HOUR).toBeLessThanOrEqual(12_000);
    const days = AMPLITUDE_PLANNING_WINDOW_DAYS;
    // Batched proportion: 2 requests of 28 × (1 + 2 + 8) per 100 experiments.
    expect(cost?.requestsPerRound(250, 2)).toBe(3 * 2 * days * 11);
    // One experiment at a time: 2 requests of 28 × 7 each.
    expect(amplitudePollCost({ ...base, batch: false })?.requestsPerRound(3, 2)).toBe(3 * 2 * days * 7);
    // A mean, batched: units (28 × 11) and two sums (28 × 11 × 5).
    expect(amplitudePollCost({ ...base, value_property: "amount" })?.requestsPerRound(1, 2)).toBe(days * 11 * 11);
    // A funnel of three steps: one request per arm, 28 × 3 × 6.
    expect(amplitudePollCost({ ...base, funnel: ["Checkout started"] })?.requestsPerRound(1, 2)).toBe(2 * days * 3 * 6);
    expect(amplitudePollCost({ ...base, region: "eu" })?.limits.key).toBe("https://analytics.eu.amplitude.com|318204");
    expect(amplitudePollCost({ ...base, project_id: undefined })).toBeNull();
  });
});
