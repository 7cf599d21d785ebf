/**
 * Saved funnels (`funnel_id`, `GET /funnels`), the outcome series of a
 * proportion (daily `/segmentation`), the project's time zone and the poll
 * cost of the Mixpanel connector, against the fake Query API of
 * `@outcome-runtime/testing/fake-mixpanel` (github.com/mixpanel/docs,
 * openapi/query.openapi.yaml, GET /funnels and GET /segmentation), which
 * counts funnels from a list of events as Mixpanel's Uniques counting does.
 */

import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeMixpanel, type FakeMixpanelEvent, startFakeMixpanel } from "@outcome-runtime/testing/fake-mixpanel";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { BatchWindow, ConnectorContext, ExperimentWindow, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector, readsInBatches } from "../create-connector";
import { MIXPANEL_BATCH_MAX_KEYS, mixpanelPollCost, mixpanelRequestsPerPoll } from "./mixpanel.connector";
import { MIXPANEL_QUERIES_PER_HOUR, queriesSpentThisHour, resetRateLimitState } from "./query-api-client";

const AUTH = { username: "outcome-runtime.funnel.mp-service-account", secret: "funn3l-s3cret", projectId: "2741933" };
const ARMS = ["control", "treatment"] as const;
const FUNNEL_ID = 7509;
const FROM = new Date("2026-03-01T00:00:00Z");
const TO = new Date("2026-03-07T18:30:00Z");

let fake: FakeMixpanel;

beforeAll(async () => {
  fake = await startFakeMixpanel(AUTH);
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.events.length = 0;
  fake.requests.length = 0;
  fake.override = null;
  fake.funnels.clear();
  fake.funnels.set(FUNNEL_ID, {
    name: "Checkout funnel",
    steps: ["$experiment_started", "Cart viewed", "Order completed"],
    windowDays: 2,
  });
  resetRateLimitState();
});
afterEach(() => {
  vi.useRealTimers();
});

const context = (metricKind: ConnectorContext["metricKind"] = "proportion"): ConnectorContext => ({
  credentials: { username: AUTH.username, secret: AUTH.secret },
  metricKind,
  allowedApiUrls: { mixpanel: [fake.baseUrl] },
});
const config = (extra: Record<string, unknown> = {}) => ({
  type: "mixpanel",
  project_id: Number(AUTH.projectId),
  username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_USERNAME",
  secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_SECRET",
  event: "Order completed",
  funnel_id: FUNNEL_ID,
  api_url: fake.baseUrl,
  ...extra,
});
const window = (experimentKey = "checkout-v2"): ExperimentWindow => ({
  experimentKey,
  arms: ARMS,
  from: FROM,
  to: TO,
});

/** The ConnectorError a call rejects with. */
const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

function push(
  distinctId: string,
  event: string,
  date: string,
  time: string,
  properties: FakeMixpanelEvent["properties"],
): void {
  fake.events.push({ event, distinctId, date, time, properties });
}

/**
 * The users of experiment `key`, arm by arm: `users[a]` users exposed, of whom
 * the first `completed[a]` go through the cart and order in order within the
 * window, one views the cart without ordering, one orders before the cart
 * (out of order: not completed), and one orders after the conversion window.
 */
function track(key: string, users: readonly number[], completed: readonly number[]): void {
  for (const [a, arm] of ARMS.entries()) {
    const properties = { "Experiment name": key, "Variant name": arm };
    for (let u = 0; u < (users[a] ?? 0); u++) {
      const id = `${key}/${arm}/${u}`;
      const day = `2026-03-0${1 + (u % 5)}`;
      push(id, "$experiment_started", day, "09:00:00", properties);
      const done = completed[a] ?? 0;
      if (u < done) {
        push(id, "Cart viewed", day, "09:05:00", properties);
        push(id, "Order completed", day, "09:10:00", properties);
      } else if (u === done) {
        push(id, "Cart viewed", day, "09:05:00", properties);
      } else if (u === done + 1) {
        push(id, "Order completed", day, "09:01:00", properties);
        push(id, "Cart viewed", day, "09:02:00", properties);
      } else if (u === done + 2) {
        push(id, "Cart viewed", day, "09:02:00", properties);
        push(id, "Order completed", "2026-03-09", "09:10:00", properties);
      }
    }
  }
}

describe("mixpanel connector: saved funnel (funnel_id)", () => {
  it("counts users who entered the funnel's first step and completed its last, per arm, with one /funnels request", async () => {
    track("checkout-v2", [12, 10], [4, 6]);
    track("other", [5, 5], [5, 5]);
    // Exposed before the window: not an entry of this window.
    push("early", "$experiment_started", "2026-02-27", "10:00:00", {
      "Experiment name": "checkout-v2",
      "Variant name": "control",
    });
    const connector = createConnector(config(), context());
    expect(connector.describe?.()).toContain("funnel 7509");

    const aggregates = await connector.fetchArmAggregates(window());
    expect(aggregates.map(({ arm, units, sum, sum_sq }) => ({ arm, units, sum, sum_sq }))).toEqual([
      { arm: "control", units: 12, sum: 4, sum_sq: 4 },
      { arm: "treatment", units: 10, sum: 6, sum_sq: 6 },
    ]);
    expect(fake.requests).toHaveLength(1);
    const params = fake.requests[0]?.params;
    expect(fake.requests[0]?.path).toBe("/funnels");
    expect(params?.get("funnel_id")).toBe("7509");
    expect(params?.get("from_date")).toBe("2026-03-01");
    expect(params?.get("to_date")).toBe("2026-03-07");
    expect(params?.get("interval")).toBe("7");
    expect(params?.get("on")).toBe('properties["Variant name"]');
    expect(params?.get("where")).toBe(
      'properties["Experiment name"] == "checkout-v2" and properties["Variant name"] in ["control", "treatment"]',
    );
    expect(params?.get("limit")).toBe("2");
    expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(1);
  });

  it("applies filter to every step of the funnel", async () => {
    for (const [u, platform] of ["web", "ios", "web"].entries()) {
      const properties = { "Experiment name": "checkout-v2", "Variant name": "control", platform };
      push(`u${u}`, "$experiment_started", "2026-03-02", "09:00:00", properties);
      push(`u${u}`, "Cart viewed", "2026-03-02", "09:01:00", properties);
      push(`u${u}`, "Order completed", "2026-03-02", "09:02:00", {
        ...properties,
        platform: u === 2 ? "ios" : platform,
      });
    }
    const connector = createConnector(config({ filter: 'properties["platform"] == "web"' }), context());
    const [control] = await connector.fetchArmAggregates({ ...window(), arms: ["control"] });
    // u0 completes on web; u1 is not on web; u2 entered on web but ordered on ios.
    expect(control).toMatchObject({ arm: "control", units: 2, sum: 1 });
    expect(fake.requests[0]?.params.get("where")).toContain('and (properties["platform"] == "web")');
  });

  it("reads a batch of experiments with one /funnels request per group, as one-by-one reads answer", async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `exp-${String(i).padStart(3, "0")}`);
    for (const [i, key] of keys.entries()) track(key, [3 + (i % 4), 4 + (i % 3)], [i % 3, (i + 1) % 4]);
    const connector = createConnector(config(), context());
    expect(readsInBatches(config())).toBe(true);
    const read = connector.fetchBatchAggregates;
    if (read === undefined) throw new Error("expected a batched connector");
    const batch: BatchWindow = {
      experiments: keys.map((experimentKey) => ({ experimentKey, arms: ARMS, from: FROM })),
      to: TO,
    };

    const answer = await read(batch);
    expect(fake.requests).toHaveLength(Math.ceil(120 / MIXPANEL_BATCH_MAX_KEYS));
    expect(fake.requests.every((r) => r.path === "/funnels")).toBe(true);
    expect(fake.requests[0]?.params.get("on")).toBe(
      'properties["Experiment name"] + " | " + properties["Variant name"]',
    );
    expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(2);
    for (const key of ["exp-000", "exp-057", "exp-119"]) {
      const single = await createConnector(config(), context()).fetchArmAggregates(window(key));
      expect(answer.get(key)).toEqual(single);
    }
  });

  it("accepts a segment's steps given as a bare list, as well as { steps, analysis }", async () => {
    fake.override = (request, computed) => {
      const body = computed() as { data: Record<string, Record<string, { steps: unknown[] }>> };
      for (const byDay of Object.values(body.data)) {
        for (const [segment, entry] of Object.entries(byDay)) byDay[segment] = entry.steps as never;
      }
      return request.path === "/funnels" ? { status: 200, body } : null;
    };
    track("checkout-v2", [6, 7], [2, 3]);
    const aggregates = await createConnector(config(), context()).fetchArmAggregates(window());
    expect(aggregates.map(({ arm, units, sum }) => ({ arm, units, sum }))).toEqual([
      { arm: "control", units: 6, sum: 2 },
      { arm: "treatment", units: 7, sum: 3 },
    ]);
  });

  it("passes on Mixpanel's error for a funnel id the project does not have, naming funnel_id", async () => {
    track("checkout-v2", [3, 3], [1, 1]);
    const error = await failure(createConnector(config({ funnel_id: 999 }), context()).fetchArmAggregates(window()));
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("funnel_id 999 is not a funnel of this project");
    expect(error.message).toContain("check funnel_id 999: it must be a funnel saved in project 2741933");
    expect(error.details).toMatchObject({ field: "funnel_id", status: 400 });
    expect(error.message).toContain("GET /funnels/list");
  });

  it("refuses a funnel whose first step is not the exposure event, or whose last is not the conversion, naming funnel_id", async () => {
    track("checkout-v2", [3, 3], [1, 1]);
    fake.funnels.set(8000, { name: "Cart first", steps: ["Cart viewed", "Order completed"], windowDays: 7 });
    push("c1", "Cart viewed", "2026-03-02", "09:00:00", {
      "Experiment name": "checkout-v2",
      "Variant name": "control",
    });
    const first = await failure(createConnector(config({ funnel_id: 8000 }), context()).fetchArmAggregates(window()));
    expect(first.code).toBe("invalid_config");
    expect(first.message).toContain(
      'field funnel_id: step 1 of funnel 8000 is "Cart viewed", not exposure_event "$experiment_started"',
    );
    expect(first.details).toMatchObject({ field: "funnel_id", value: 8000, step: 1, event: "Cart viewed" });

    fake.funnels.set(8001, { name: "Cart only", steps: ["$experiment_started", "Cart viewed"], windowDays: 7 });
    const last = await failure(createConnector(config({ funnel_id: 8001 }), context()).fetchArmAggregates(window()));
    expect(last.code).toBe("invalid_config");
    expect(last.message).toContain('step 2 of funnel 8001 is "Cart viewed", not event "Order completed"');
  });

  it("refuses funnel_id with a mean, and a funnel_id that is not a whole number", () => {
    expect(() => createConnector(config({ value_property: "amount" }), context("mean"))).toThrow(
      expect.objectContaining({ code: "invalid_config", message: expect.stringContaining("funnel_id") }),
    );
    for (const value of [0, -3, 1.5, "seven"]) {
      expect(() => createConnector(config({ funnel_id: value }), context())).toThrow(
        expect.objectContaining({ code: "invalid_config", details: expect.objectContaining({ field: "funnel_id" }) }),
      );
    }
    expect(() => createConnector(config({ funnel_id: "7509" }), context())).not.toThrow();
  });

  it("maps Mixpanel's 429 on /funnels to rate_limited with Retry-After, and pauses the project", async () => {
    fake.override = () => ({ status: 429, body: { error: "Too many requests", status: "error" } });
    const error = await failure(createConnector(config(), context()).fetchArmAggregates(window()));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(60_000);
    expect(error.message).toContain("mixpanel /funnels: rate limited (429: Too many requests)");
    fake.override = null;
    const paused = await failure(createConnector(config(), context()).fetchArmAggregates(window()));
    expect(paused.code).toBe("rate_limited");
    expect(fake.requests).toHaveLength(1);
  });

  it("refuses an answer that is not broken down by segment, and a segment's counts split over periods", async () => {
    fake.override = () => ({
      status: 200,
      body: { meta: { dates: ["2026-03-01"] }, data: { "2026-03-01": { steps: [], analysis: {} } } },
    });
    const flat = await failure(createConnector(config(), context()).fetchArmAggregates(window()));
    expect(flat.code).toBe("bad_response");
    expect(flat.message).toContain(`data["2026-03-01"] is one funnel's steps, not the steps of each segment`);

    const steps = (n: number) => ({
      steps: [
        { count: n, event: "$experiment_started", goal: "$experiment_started" },
        { count: 0, event: "Order completed", goal: "Order completed" },
      ],
    });
    fake.override = () => ({
      status: 200,
      body: { data: { "2026-03-01": { control: steps(3) }, "2026-03-04": { control: steps(2) } } },
    });
    const split = await failure(createConnector(config(), context()).fetchArmAggregates(window()));
    expect(split.code).toBe("bad_response");
    expect(split.message).toContain('users of "control" entered funnel 7509 in 2 periods');
  });

  it("costs one request a poll and one a batch group; the budget refuses a read that does not fit", async () => {
    expect(mixpanelRequestsPerPoll(false, 2, true)).toBe(1);
    const connector = createConnector(config(), context());
    const spent = () => queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId });
    while (spent() < MIXPANEL_QUERIES_PER_HOUR) await connector.fetchArmAggregates(window());
    const refused = await failure(connector.fetchArmAggregates(window()));
    expect(refused.code).toBe("rate_limited");
    expect(refused.details).toMatchObject({ spent: MIXPANEL_QUERIES_PER_HOUR, needed: 1 });
    expect(fake.requests).toHaveLength(MIXPANEL_QUERIES_PER_HOUR);
  });
});

describe("mixpanel connector: outcome series of a proportion", () => {
  /** Users exposed and converting on each day: `[exposed, converted]`. */
  function daily(days: Record<string, readonly [number, number]>, extra: FakeMixpanelEvent["properties"] = {}): void {
    for (const [date, [exposed, converted]] of Object.entries(days)) {
      for (let u = 0; u < exposed; u++) {
        const properties = { "Experiment name": "checkout-v2", "Variant name": "control", ...extra };
        push(`${date}/${u}`, "$experiment_started", date, "12:00:00", properties);
        push(`${date}/${u}`, "$experiment_started", date, "13:00:00", properties);
        if (u < converted) push(`${date}/${u}`, "Order completed", date, "12:30:00", properties);
      }
    }
  }

  it("divides each completed day's unique converters by its unique exposed users, dated at the day's end", async () => {
    daily({ "2026-03-01": [10, 2], "2026-03-02": [8, 4], "2026-03-03": [5, 5] });
    const connector = createConnector(config({ funnel_id: undefined }), context());
    const points = await connector.fetchOutcomeSeries({ from: FROM, to: new Date("2026-03-03T10:00:00Z") });
    // 2026-03-03 is not over at 10:00: it comes in a later read.
    expect(points).toEqual([
      { ts: new Date("2026-03-02T00:00:00Z"), value: 0.2 },
      { ts: new Date("2026-03-03T00:00:00Z"), value: 0.5 },
    ]);
    expect(
      fake.requests.map((r) => [r.path, r.params.get("event"), r.params.get("type"), r.params.get("unit")]),
    ).toEqual(
      expect.arrayContaining([
        ["/segmentation", "Order completed", "unique", "day"],
        ["/segmentation", "$experiment_started", "unique", "day"],
      ]),
    );
    expect(fake.requests.every((r) => r.params.get("to_date") === "2026-03-02")).toBe(true);
    expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(2);

    const later = await connector.fetchOutcomeSeries({ from: FROM, to: new Date("2026-03-04T00:00:00Z") });
    expect(later.at(-1)).toEqual({ ts: new Date("2026-03-04T00:00:00Z"), value: 1 });
  });

  it("returns no point for a day not over yet, without a request", async () => {
    vi.useFakeTimers({ now: new Date("2026-03-05T15:00:00Z"), toFake: ["Date"] });
    daily({ "2026-03-05": [4, 1] });
    const connector = createConnector(config(), context());
    // `to` past the present (a clock ahead of the source's): the day under way still has no point.
    const points = await connector.fetchOutcomeSeries({
      from: new Date("2026-03-05T00:00:00Z"),
      to: new Date("2026-03-06T12:00:00Z"),
    });
    expect(points).toEqual([]);
    expect(fake.requests).toHaveLength(0);
  });

  it("uses series_denominator_event when given, and leaves out a day without its users", async () => {
    daily({ "2026-03-01": [3, 1], "2026-03-02": [4, 2] });
    for (const [i, date] of ["2026-03-01", "2026-03-01", "2026-03-01", "2026-03-01"].entries()) {
      push(`session/${i}`, "App opened", date, "08:00:00", {});
    }
    const connector = createConnector(config({ series_denominator_event: "App opened" }), context());
    const points = await connector.fetchOutcomeSeries({ from: FROM, to: new Date("2026-03-03T00:00:00Z") });
    expect(points).toEqual([{ ts: new Date("2026-03-02T00:00:00Z"), value: 0.25 }]);
  });

  it("reads days in the project's time zone, dated at their end there, not in UTC", async () => {
    // The project counts days in New York (UTC-5 in March before the 8th); the outcome's window is in UTC.
    daily({ "2026-03-01": [4, 1], "2026-03-02": [5, 5] });
    const connector = createConnector(config({ timezone: "America/New_York" }), context());
    const points = await connector.fetchOutcomeSeries({
      from: new Date("2026-03-01T03:00:00Z"), // 2026-02-28 22:00 in New York
      to: new Date("2026-03-03T06:00:00Z"), // 2026-03-03 01:00 in New York
    });
    expect(fake.requests[0]?.params.get("from_date")).toBe("2026-02-28");
    expect(fake.requests[0]?.params.get("to_date")).toBe("2026-03-02");
    expect(points).toEqual([
      { ts: new Date("2026-03-02T05:00:00Z"), value: 0.25 },
      { ts: new Date("2026-03-03T05:00:00Z"), value: 1 },
    ]);

    // The experiment windows follow the same days.
    track("checkout-v2", [2, 2], [1, 1]);
    fake.requests.length = 0;
    await connector.fetchArmAggregates({ ...window(), from: new Date("2026-03-01T03:00:00Z") });
    expect(fake.requests[0]?.params.get("from_date")).toBe("2026-02-28");
    expect(fake.requests[0]?.params.get("to_date")).toBe("2026-03-07");
  });

  it("maps Mixpanel's 429 on a series read to rate_limited with its Retry-After, and spends the two requests first", async () => {
    fake.override = () => ({ status: 429, body: { error: "Too many requests", status: "error" } });
    const connector = createConnector(config(), context());
    const error = await failure(connector.fetchOutcomeSeries({ from: FROM, to: new Date("2026-03-03T00:00:00Z") }));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(60_000);
    expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(2);
  });

  it("refuses a timezone that is not one, naming the field", () => {
    expect(() => createConnector(config({ timezone: "Mars/Olympus_Mons" }), context())).toThrow(
      expect.objectContaining({
        code: "invalid_config",
        message: expect.stringContaining("timezone"),
        details: expect.objectContaining({ field: "timezone" }),
      }),
    );
  });

  it("refuses an answer with a day the request did not ask for", async () => {
    fake.override = (request) =>
      request.path === "/segmentation"
        ? {
            status: 200,
            body: { data: { series: [], values: { x: { "2026-03-01": 3, "2026-03-09": 5 } } }, legend_size: 1 },
          }
        : null;
    const error = await failure(
      createConnector(config(), context()).fetchOutcomeSeries({ from: FROM, to: new Date("2026-03-03T00:00:00Z") }),
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain('"2026-03-09", a day the request did not ask for (2026-03-01 to 2026-03-02)');
  });
});

describe("mixpanelPollCost", () => {
  it("gives Mixpanel's documented limits, keyed by API base and project", () => {
    const cost = mixpanelPollCost({ type: "mixpanel", project_id: 2741933, event: "paid", region: "eu" });
    expect(cost?.limits).toEqual({
      vendor: "mixpanel",
      scope: "project 2741933",
      key: "https://eu.mixpanel.com/api/query#2741933",
      perHour: 60,
      maxConcurrent: 5,
      docs: "https://docs.mixpanel.com/reference/rate-limits",
    });
    expect(cost?.plannedPerHour).toBe(50);
    expect(cost?.plannedPerHour).toBeLessThanOrEqual(cost?.limits.perHour ?? 0);
    expect(mixpanelPollCost({ type: "mixpanel", project_id: "12", event: "x" })?.limits.key).toBe(
      "https://mixpanel.com/api/query#12",
    );
    // The key the connector counts under: the API URL as it compares URLs (host in lower case, no trailing slash).
    expect(
      mixpanelPollCost({ type: "mixpanel", project_id: 7, event: "x", api_url: "https://EU.mixpanel.com/api/query/" })
        ?.limits.key,
    ).toBe("https://eu.mixpanel.com/api/query#7");
    expect(mixpanelPollCost({ type: "postgres", query: "select 1" })).toBeNull();
  });

  it("costs a proportion 2 requests per 100 experiments, a funnel 1, a mean 1 + 2 × arms per experiment", () => {
    const segmentation = mixpanelPollCost({ type: "mixpanel", project_id: 1, event: "paid" });
    expect(segmentation?.requestsPerRound(1, 2)).toBe(2);
    expect(segmentation?.requestsPerRound(100, 2)).toBe(2);
    expect(segmentation?.requestsPerRound(250, 3)).toBe(6);
    const funnel = mixpanelPollCost({ type: "mixpanel", project_id: 1, event: "paid", funnel_id: 7509 });
    expect(funnel?.requestsPerRound(1, 2)).toBe(1);
    expect(funnel?.requestsPerRound(250, 2)).toBe(3);
    const mean = mixpanelPollCost({ type: "mixpanel", project_id: 1, event: "paid", value_property: "amount" });
    expect(mean?.requestsPerRound(1, 2)).toBe(5);
    expect(mean?.requestsPerRound(4, 3)).toBe(28);
  });

  it("counts what the connector really sends in a round", async () => {
    const keys = Array.from({ length: 150 }, (_, i) => `k${i}`);
    for (const [extra, kind] of [
      [{}, "proportion"],
      [{ funnel_id: undefined }, "proportion"],
    ] as const) {
      resetRateLimitState();
      fake.requests.length = 0;
      const settings = config(extra);
      const connector: SignalConnector = createConnector(settings, context(kind));
      await connector.fetchBatchAggregates?.({
        experiments: keys.map((experimentKey) => ({ experimentKey, arms: ARMS, from: FROM })),
        to: TO,
      });
      const cost = mixpanelPollCost(settings);
      expect(fake.requests).toHaveLength(cost?.requestsPerRound(150, 2) ?? -1);
      expect(cost?.limits.key).toBe(`${fake.baseUrl}#${AUTH.projectId}`);
      expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(fake.requests.length);
    }
    resetRateLimitState();
    fake.requests.length = 0;
    const mean = config({ funnel_id: undefined, value_property: "amount" });
    await createConnector(mean, context("mean")).fetchArmAggregates(window());
    expect(fake.requests).toHaveLength(mixpanelPollCost(mean)?.requestsPerRound(1, 2) ?? -1);
  });
});
