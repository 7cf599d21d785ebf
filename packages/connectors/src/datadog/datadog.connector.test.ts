/**
 * The `datadog` connector through the official client against the local
 * stand-in of Datadog's metrics query API (@outcome-runtime/testing/fake-datadog,
 * which follows `GET /api/v1/query` of `.generator/schemas/v1/openapi.yaml` in
 * github.com/DataDog/datadog-api-client-typescript): what it asks, what it
 * makes of the answer, and each failure the API can answer with.
 */
import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeDatadog, startFakeDatadog } from "@outcome-runtime/testing/fake-datadog";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { resetRequestBudgets } from "../request-budget";
import { DATADOG_BATCH_MAX_KEYS, DATADOG_QUERIES_PER_HOUR, datadogPollCost } from "./datadog.connector";

const AUTH = { apiKey: "0123456789abcdef0123456789abcdef", applicationKey: "fedcba9876543210fedcba9876543210fedcba98" };
const REQUESTS = "trace.http.request.hits";
const ERRORS = "trace.http.request.errors";
const T0 = Date.parse("2026-11-01T00:00:00Z") / 1000;
const FROM = new Date(T0 * 1000);
const TO = new Date((T0 + 7 * 86_400) * 1000);
const WINDOW = { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM, to: TO };

let fake: FakeDatadog;

beforeEach(async () => {
  resetRequestBudgets();
  fake = await startFakeDatadog(AUTH);
});

afterEach(async () => {
  await fake.close();
});

function settings(extra: Record<string, unknown> = {}): ConnectorConfig {
  return {
    type: "datadog",
    api_key_env: "OUTCOME_RUNTIME_SOURCE_DATADOG_API_KEY",
    application_key_secret: "datadog-application-key",
    api_url: fake.baseUrl,
    requests: `sum:${REQUESTS}{service:checkout}`,
    errors: `sum:${ERRORS}{service:checkout}`,
    ...extra,
  };
}

function context(extra: Partial<ConnectorContext> = {}): ConnectorContext {
  return {
    metricKind: "proportion",
    credentials: { api_key: AUTH.apiKey, application_key: AUTH.applicationKey },
    allowedApiUrls: { datadog: [fake.baseUrl] },
    ...extra,
  };
}

function open(extra: Record<string, unknown> = {}, ctx: Partial<ConnectorContext> = {}): SignalConnector {
  return createConnector(settings(extra), context(ctx));
}

/** Submits `value` of `metric` with the tags, `offset` seconds after T0. */
function submit(metric: string, tags: readonly string[], value: number, offset = 3600): void {
  fake.points.push({ metric, tags: ["service:checkout", ...tags], timestamp: T0 + offset, value });
}

function traffic(experiment: string, arm: string, requests: number, errors: number): void {
  submit(REQUESTS, [`experiment:${experiment}`, `arm:${arm}`], requests);
  submit(ERRORS, [`experiment:${experiment}`, `arm:${arm}`], errors);
}

async function failure(promise: Promise<unknown>): Promise<ConnectorError> {
  return rejectionOf(promise, ConnectorError);
}

function creationFailure(create: () => unknown): ConnectorError {
  try {
    create();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
}

/** A 200 answer with the given series, as Datadog writes it. */
function answerWith(
  series: readonly { scope: string; pointlist: unknown[] }[],
  from = T0 * 1000,
  to = TO.getTime(),
): Record<string, unknown> {
  return {
    status: "ok",
    res_type: "time_series",
    query: "q",
    from_date: from,
    to_date: to,
    group_by: ["experiment", "arm"],
    series: series.map((s) => ({
      metric: REQUESTS,
      scope: s.scope,
      tag_set: s.scope.split(","),
      pointlist: s.pointlist,
      interval: 604_800_000,
      length: s.pointlist.length,
    })),
  };
}

describe("datadog: what it asks and what it reads", () => {
  it("reads requests and errors per arm, summed over the range, tags matched without case", async () => {
    traffic("Checkout-Copy", "Control", 1000, 20);
    traffic("checkout-copy", "treatment", 600, 9);
    submit(REQUESTS, ["experiment:checkout-copy", "arm:treatment"], 400, 86_400);
    submit(ERRORS, ["experiment:checkout-copy", "arm:treatment"], 31, 86_400);
    traffic("other-experiment", "control", 5000, 500);
    const rows = await open().fetchArmAggregates(WINDOW);
    expect(rows).toEqual([
      { arm: "control", units: 1000, sum: 20, sum_sq: 20, ts: null },
      { arm: "treatment", units: 1000, sum: 40, sum_sq: 40, ts: null },
    ]);
    expect(fake.requests.map((r) => r.params.get("query"))).toEqual([
      `sum:${REQUESTS}{service:checkout AND experiment:checkout-copy AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 604800)`,
      `sum:${ERRORS}{service:checkout AND experiment:checkout-copy AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 604800)`,
    ]);
    expect(fake.requests[0]?.params.get("from")).toBe(String(T0));
    expect(fake.requests[0]?.params.get("to")).toBe(String(T0 + 7 * 86_400));
    expect(fake.requests[0]?.headers["dd-api-key"]).toBe(AUTH.apiKey);
    expect(fake.requests[0]?.headers["dd-application-key"]).toBe(AUTH.applicationKey);
  });

  it("reads from the launch (startedAt), not from the poll's window start", async () => {
    traffic("checkout-copy", "control", 100, 1);
    const rows = await open().fetchArmAggregates({
      ...WINDOW,
      from: new Date((T0 + 6 * 86_400) * 1000),
      startedAt: FROM,
    });
    expect(rows).toEqual([{ arm: "control", units: 100, sum: 1, sum_sq: 1, ts: null }]);
    expect(fake.requests[0]?.params.get("from")).toBe(String(T0));
  });

  it("reads the share of slow requests from slow_requests, and keeps a boolean filter whole", async () => {
    submit(REQUESTS, ["experiment:checkout-copy", "arm:control", "env:prod"], 1000);
    submit("checkout.requests.slow", ["experiment:checkout-copy", "arm:control", "env:prod"], 12);
    const rows = await open({
      requests: `sum:${REQUESTS}{service:checkout AND (env:prod OR env:canary)}`,
      errors: undefined,
      slow_requests: "sum:checkout.requests.slow{service:checkout,env:prod}",
    }).fetchArmAggregates(WINDOW);
    expect(rows).toEqual([{ arm: "control", units: 1000, sum: 12, sum_sq: 12, ts: null }]);
    expect(fake.requests.map((r) => r.params.get("query")?.split("}")[0])).toEqual([
      `sum:${REQUESTS}{(service:checkout AND (env:prod OR env:canary)) AND experiment:checkout-copy AND arm IN (control, treatment)`,
      "sum:checkout.requests.slow{service:checkout AND env:prod AND experiment:checkout-copy AND arm IN (control, treatment)",
    ]);
  });

  it("answers no rows for a metric without points (Datadog answers an unknown metric alike)", async () => {
    expect(
      await open({ requests: "sum:trace.http.request.hitz{service:checkout}" }).fetchArmAggregates(WINDOW),
    ).toEqual([]);
    expect(fake.requests).toHaveLength(2);
  });

  it("skips null points (intervals without data) and sums the others", async () => {
    fake.override = () => ({
      body: answerWith([
        {
          scope: "experiment:checkout-copy,arm:control",
          pointlist: [
            [T0 * 1000, null],
            [(T0 + 86_400) * 1000, 70],
          ],
        },
      ]),
    });
    expect(await open().fetchArmAggregates(WINDOW)).toEqual([
      { arm: "control", units: 70, sum: 70, sum_sq: 70, ts: null },
    ]);
  });

  it("does not count data outside the window when the answer's from_date or to_date differ from the request", async () => {
    const scope = "experiment:checkout-copy,arm:control";
    // An answer widened to the previous day (another time zone's midnight): its bucket before `from` may hold
    // data from before the window; the bucket stamped at `to` holds data after it.
    fake.override = (request) => ({
      body: answerWith(
        [
          {
            scope,
            pointlist: [
              [(T0 - 3600) * 1000, 500],
              [T0 * 1000, request.params.get("query")?.includes(REQUESTS) ? 100 : 4],
              [TO.getTime(), 900],
            ],
          },
        ],
        (T0 - 3600) * 1000,
        TO.getTime() + 3600_000,
      ),
    });
    expect(await open().fetchArmAggregates(WINDOW)).toEqual([
      { arm: "control", units: 100, sum: 4, sum_sq: 4, ts: null },
    ]);
    // The same bucket before `from` in an answer that covers exactly the window holds only data of the window.
    fake.override = () => ({ body: answerWith([{ scope, pointlist: [[(T0 - 3600) * 1000, 50]] }]) });
    expect(await open().fetchArmAggregates(WINDOW)).toEqual([
      { arm: "control", units: 50, sum: 50, sum_sq: 50, ts: null },
    ]);
  });

  it("makes whole counts: totals rounded, errors above requests by one clamped, by more refused", async () => {
    const scope = "experiment:checkout-copy,arm:control";
    const counts = (requests: number, errors: number) => (request: { params: URLSearchParams }) => ({
      body: answerWith([
        { scope, pointlist: [[T0 * 1000, request.params.get("query")?.includes(REQUESTS) ? requests : errors]] },
      ]),
    });
    fake.override = counts(99.6, 3.4);
    expect(await open().fetchArmAggregates(WINDOW)).toEqual([
      { arm: "control", units: 100, sum: 3, sum_sq: 3, ts: null },
    ]);
    fake.override = counts(100.2, 100.7);
    expect(await open().fetchArmAggregates(WINDOW)).toEqual([
      { arm: "control", units: 100, sum: 100, sum_sq: 100, ts: null },
    ]);
    fake.override = counts(100, 105);
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("105 errors (or slow requests) out of 100 requests");
  });

  it("refuses two series for one arm (a filter that splits it)", async () => {
    fake.override = () => ({
      body: answerWith([
        { scope: "experiment:checkout-copy,arm:control", pointlist: [[T0 * 1000, 10]] },
        { scope: "experiment:checkout-copy,arm:control", pointlist: [[T0 * 1000, 12]] },
      ]),
    });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("two requests series for experiment:checkout-copy arm:control");
  });

  it("refuses a series of an experiment it did not ask for", async () => {
    fake.override = () => ({
      body: answerWith([{ scope: "experiment:other,arm:control", pointlist: [[T0 * 1000, 1]] }]),
    });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("names no experiment this request asked for");
  });
});

describe("datadog: batches", () => {
  it("reads many experiments in one pair of requests, each with its own arms", async () => {
    traffic("checkout-copy", "control", 100, 1);
    traffic("checkout-copy", "treatment", 110, 2);
    traffic("search-ranking", "baseline", 300, 3);
    const answer = await open().fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM },
        { experimentKey: "search-ranking", arms: ["baseline", "ranked"], from: FROM },
      ],
      to: TO,
    });
    expect(answer?.get("checkout-copy")).toEqual([
      { arm: "control", units: 100, sum: 1, sum_sq: 1, ts: null },
      { arm: "treatment", units: 110, sum: 2, sum_sq: 2, ts: null },
    ]);
    expect(answer?.get("search-ranking")).toEqual([{ arm: "baseline", units: 300, sum: 3, sum_sq: 3, ts: null }]);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[0]?.params.get("query")).toContain(
      "experiment IN (checkout-copy, search-ranking) AND arm IN (control, treatment, baseline, ranked)",
    );
  });

  it(`splits a batch into requests of at most ${DATADOG_BATCH_MAX_KEYS} keys, and by range start`, async () => {
    const experiments = Array.from({ length: DATADOG_BATCH_MAX_KEYS + 1 }, (_, i) => ({
      experimentKey: `exp-${i}`,
      arms: ["control"],
      from: FROM,
    }));
    const later = { experimentKey: "later", arms: ["control"], from: new Date(FROM.getTime() + 3600_000) };
    const answer = await open().fetchBatchAggregates?.({ experiments: [...experiments, later], to: TO });
    expect(answer?.size).toBe(DATADOG_BATCH_MAX_KEYS + 2);
    expect(fake.requests).toHaveLength(6);
  });

  it("refuses a key that could widen the filter, alone, and reads the others; the key never reaches Datadog", async () => {
    traffic("checkout-copy", "control", 100, 1);
    const hostile = ["checkout,arm:control", "x} OR {*", "a b", "exp:1", "x)", '"quoted"', "ünïcode-ok"];
    const answer = await open().fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-copy", arms: ["control"], from: FROM },
        ...hostile.map((experimentKey) => ({ experimentKey, arms: ["control"], from: FROM })),
      ],
      to: TO,
    });
    expect(answer?.get("checkout-copy")).toEqual([{ arm: "control", units: 100, sum: 1, sum_sq: 1, ts: null }]);
    for (const key of hostile.slice(0, -1)) {
      const error = answer?.get(key);
      expect(error, key).toBeInstanceOf(ConnectorError);
      expect((error as ConnectorError).code).toBe("invalid_config");
      expect((error as ConnectorError).message).toContain("cannot be a Datadog tag value");
    }
    expect(answer?.get("ünïcode-ok")).toEqual([]);
    for (const request of fake.requests) {
      expect(request.params.get("query")).toContain("experiment IN (checkout-copy, ünïcode-ok) AND arm:control}");
    }
  });

  it("refuses a hostile arm and two arms equal but for case, without a request", async () => {
    const connector = open();
    const hostile = await failure(
      connector.fetchArmAggregates({ ...WINDOW, arms: ["control", "treatment,experiment:*"] }),
    );
    expect(hostile.code).toBe("invalid_config");
    const cased = await failure(connector.fetchArmAggregates({ ...WINDOW, arms: ["Control", "control"] }));
    expect(cased.code).toBe("invalid_config");
    expect(cased.message).toContain("one tag value once lowercased");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("datadog: failures", () => {
  it("a forged API key or application key: auth_failed (403), and 401 alike", async () => {
    const forged = await failure(
      open({}, { credentials: { api_key: AUTH.apiKey, application_key: "not-the-key" } }).fetchArmAggregates(WINDOW),
    );
    expect(forged.code).toBe("auth_failed");
    expect(forged.message).toContain("403: Forbidden");
    expect(forged.message).toContain("application_key_env/application_key_secret");
    fake.override = () => ({ status: 401, body: { errors: ["Unauthorized"] } });
    expect((await failure(open().fetchArmAggregates(WINDOW))).code).toBe("auth_failed");
  });

  it("a 429 with the rate-limit headers: rate_limited after X-RateLimit-Reset, and nothing sent until then", async () => {
    fake.override = () => ({
      status: 429,
      body: { errors: ["Too many requests"] },
      headers: {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Period": "3600",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1234",
        "X-RateLimit-Name": "metrics_query",
      },
    });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(1_234_000);
    expect(error.message).toContain('limit 100 requests per 3600s, "metrics_query"');
    const sent = fake.requests.length;
    fake.override = null;
    const paused = await failure(open().fetchArmAggregates(WINDOW));
    expect(paused.code).toBe("rate_limited");
    expect(paused.retryAfterMs).toBeGreaterThan(1_200_000);
    expect(fake.requests).toHaveLength(sent);
  });

  it("Datadog's own limit, lower than the budget: its 429 and reset header pause the organisation", async () => {
    await fake.close();
    fake = await startFakeDatadog(AUTH, { limit: 3, periodSeconds: 3600 });
    const connector = open({ requests_per_hour: 50 });
    await connector.fetchArmAggregates(WINDOW);
    const error = await failure(connector.fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    const limits = error.details.rateLimit as Record<string, string>;
    expect(limits).toMatchObject({ limit: "3", period: "3600", remaining: "0", name: "metrics_query" });
    // X-RateLimit-Reset: the seconds left of the fake's hour.
    expect(error.retryAfterMs).toBe(Number(limits.reset) * 1000);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(fake.requests).toHaveLength(4);
  });

  it("the organisation's hourly budget: a read that does not fit is refused whole, before sending", async () => {
    const connector = open({ requests_per_hour: 3 });
    await connector.fetchArmAggregates(WINDOW);
    const error = await failure(connector.fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.message).toContain("has spent 2 of its 3 API requests this hour and this read needs 2");
    expect(fake.requests).toHaveLength(2);
  });

  it("a query Datadog refuses (400 {errors}): query_failed naming the setting and Datadog's message", async () => {
    fake.override = (request) =>
      request.params.get("query")?.includes(ERRORS)
        ? { status: 400, body: { errors: ["Error parsing query: unable to parse sum:trace.http.request.errors{...}"] } }
        : null;
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("the query of errors");
    expect(error.message).toContain("Error parsing query");
    expect(error.details.field).toBe("errors");
  });

  it("an answer with status error: query_failed", async () => {
    fake.override = () => ({ body: { status: "error", error: "Metric not found in query" } });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("Metric not found in query");
  });

  it("a slow answer: timeout", async () => {
    fake.override = () => ({ delayMs: 5000, body: answerWith([]) });
    const error = await failure(open({ timeout: "1s" }).fetchArmAggregates(WINDOW));
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("no answer within 1s");
  });

  it("an oversized body: bad_response, reading stopped", async () => {
    fake.override = () => ({ body: `{"status":"ok","series":[],"pad":"${"x".repeat(9 * 1024 * 1024)}"}` });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("larger than 8 MiB");
  });

  it("a body that is not the documented JSON: bad_response", async () => {
    fake.override = () => ({
      body: answerWith([{ scope: "experiment:checkout-copy,arm:control", pointlist: [[T0 * 1000, "12"]] }]),
    });
    expect((await failure(open().fetchArmAggregates(WINDOW))).code).toBe("bad_response");
    fake.override = () => ({ status: 200, body: "<html>maintenance</html>" });
    expect((await failure(open().fetchArmAggregates(WINDOW))).code).toBe("bad_response");
  });

  it("Datadog failing: unavailable", async () => {
    fake.override = () => ({ status: 503, body: { errors: ["Service Unavailable"] } });
    expect((await failure(open().fetchArmAggregates(WINDOW))).code).toBe("unavailable");
  });
});

describe("datadog: settings", () => {
  it("refuses a mean and a ratio: no sum of squares", () => {
    for (const kind of ["mean", "ratio"] as const) {
      const error = creationFailure(() => createConnector(settings(), context({ metricKind: kind })));
      expect(error.code).toBe("invalid_config");
      expect(error.message).toContain(`the metric is a ${kind}`);
    }
  });

  it("refuses a percentile as a count, pointing at slow_requests", () => {
    const error = creationFailure(() => open({ errors: `p99:${ERRORS}{service:checkout}` }));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("errors: ");
    expect(error.message).toContain("is a percentile");
    expect(error.message).toContain("slow_requests");
  });

  it("refuses a query with its own grouping or functions, neither or both numerators, and a bad tag key", () => {
    expect(creationFailure(() => open({ requests: `sum:${REQUESTS}{*} by {arm}` })).message).toContain(
      "groups the query",
    );
    expect(creationFailure(() => open({ requests: `sum:${REQUESTS}{*}.as_count()` })).message).toContain(
      "applies functions",
    );
    expect(creationFailure(() => open({ errors: undefined })).message).toContain(
      "errors: is missing (so is slow_requests)",
    );
    expect(creationFailure(() => open({ slow_requests: `sum:x{*}` })).message).toContain(
      "is set together with slow_requests",
    );
    expect(creationFailure(() => open({ arm_tag: "Arm" })).details.field).toBe("arm_tag");
    expect(creationFailure(() => open({ arm_tag: "experiment" })).message).toContain("same tag as experiment_tag");
  });

  it("selects the site's API host, and refuses any other host unless the operator allows it", async () => {
    const urls: string[] = [];
    const recording: typeof fetch = async (input) => {
      urls.push(String(input));
      return new Response(JSON.stringify(answerWith([])), {
        status: 200,
        headers: { "Content-Type": "application/json" },
      });
    };
    const previous = process.env.DD_SITE;
    process.env.DD_SITE = "datadoghq.com";
    try {
      for (const [site, host] of [
        ["datadoghq.eu", "api.datadoghq.eu"],
        ["us3.datadoghq.com", "api.us3.datadoghq.com"],
        ["us5.datadoghq.com", "api.us5.datadoghq.com"],
        ["ap1.datadoghq.com", "api.ap1.datadoghq.com"],
        ["ddog-gov.com", "api.ddog-gov.com"],
      ] as const) {
        await open({ api_url: undefined, site }, { fetch: recording }).fetchArmAggregates(WINDOW);
        expect(new URL(urls.at(-1) ?? "").host, site).toBe(host);
      }
      await open({ api_url: undefined }, { fetch: recording }).fetchArmAggregates(WINDOW);
      expect(urls.at(-1)).toMatch(/^https:\/\/api\.datadoghq\.com\/api\/v1\/query\?/u);
    } finally {
      if (previous === undefined) delete process.env.DD_SITE;
      else process.env.DD_SITE = previous;
    }
    const refused = creationFailure(() => open({ api_url: "https://metrics.example.net" }, { allowedApiUrls: {} }));
    expect(refused.code).toBe("source_refused");
    expect(refused.message).toContain("SOURCE_API_URLS=datadog=https://metrics.example.net");
    expect(creationFailure(() => open({ site: "datadoghq.cn" })).details.field).toBe("site");
  });
});

describe("datadog: the outcome's series", () => {
  it("reads series_query's points in (from, to], skipping nulls", async () => {
    fake.override = () => ({
      body: answerWith([
        {
          scope: "*",
          pointlist: [
            [T0 * 1000, 1],
            [(T0 + 60) * 1000, 2],
            [(T0 + 120) * 1000, null],
            [TO.getTime(), 4],
          ],
        },
      ]),
    });
    const points = await open({ series_query: "sum:checkout.orders{env:prod}.as_count()" }).fetchOutcomeSeries({
      from: FROM,
      to: TO,
    });
    expect(points).toEqual([
      { ts: new Date((T0 + 60) * 1000), value: 2 },
      { ts: TO, value: 4 },
    ]);
    expect(fake.requests[0]?.params.get("query")).toBe("sum:checkout.orders{env:prod}.as_count()");
  });

  it("refuses several series, and says when there is no series_query", async () => {
    fake.override = () => ({
      body: answerWith([
        { scope: "env:a", pointlist: [] },
        { scope: "env:b", pointlist: [] },
      ]),
    });
    const several = await failure(
      open({ series_query: "sum:x{*} by {env}" }).fetchOutcomeSeries({ from: FROM, to: TO }),
    );
    expect(several.code).toBe("bad_response");
    expect((await failure(open().fetchOutcomeSeries({ from: FROM, to: TO }))).code).toBe("unsupported");
  });
});

describe("datadog: the poll's cost", () => {
  it("two requests per round of up to 50 experiments, 80 of the documented 100 an hour planned", () => {
    const cost = datadogPollCost(settings({ api_url: undefined, site: "datadoghq.eu" }));
    expect(cost?.limits).toMatchObject({
      vendor: "datadog",
      perHour: DATADOG_QUERIES_PER_HOUR,
      key: "https://api.datadoghq.eu|env:OUTCOME_RUNTIME_SOURCE_DATADOG_API_KEY",
      docs: "https://docs.datadoghq.com/api/latest/rate-limits/",
    });
    expect(DATADOG_QUERIES_PER_HOUR).toBe(100);
    expect(cost?.plannedPerHour).toBe(80);
    expect(cost?.requestsPerRound(1, 2)).toBe(2);
    expect(cost?.requestsPerRound(50, 5)).toBe(2);
    expect(cost?.requestsPerRound(51, 2)).toBe(4);
    expect(datadogPollCost(settings({ requests_per_hour: 1600 }))?.plannedPerHour).toBe(1280);
    expect(datadogPollCost({ type: "datadog" })).toBeNull();
  });
});
