/**
 * The `ga4` connector against `@outcome-runtime/testing/fake-ga4`, a local
 * server answering the Data API's `runReport` and Google's token endpoint as
 * the REST reference documents them, through the official client
 * (`@google-analytics/data`, REST transport): what it asks GA4, and each of
 * GA4's failure modes.
 */
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeGa4, type FakeGa4Report, matchesFilter, startFakeGa4 } from "@outcome-runtime/testing/fake-ga4";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector, readsInBatches } from "../create-connector";
import { connectorCredentials } from "../credentials";
import { resetRequestBudgets } from "../request-budget";
import { msToPacificMidnight, resetGa4QuotaState } from "./data-api-client";
import {
  GA4_BATCH_MAX_KEYS,
  GA4_MAX_CONCURRENT,
  GA4_REQUESTS_PER_HOUR,
  GA4_TOKENS_PER_DAY,
  GA4_TOKENS_PER_REQUEST,
  ga4PollCost,
} from "./ga4.connector";

const EXPERIMENT = "customUser:experiment_key";
const ARM = "customUser:experiment_arm";

let fake: FakeGa4;

beforeAll(async () => {
  fake = await startFakeGa4({ customMetrics: ["customEvent:amount", "customEvent:amount_squared"] });
});

afterAll(async () => {
  await fake.close();
});

/** Per (experiment, arm): users, converters, Σ amount, Σ amount². */
let data: Record<string, Record<string, [number, number, number, number]>> = {};

beforeEach(() => {
  resetRequestBudgets();
  resetGa4QuotaState();
  fake.requests.length = 0;
  fake.override = null;
  fake.timeZone = "UTC";
  fake.tokensPerReport = 5;
  Object.assign(fake.quota, { tokensPerDay: 200_000, tokensPerHour: 40_000, tokensPerProjectPerHour: 14_000 });
  data = {
    "checkout-copy": { control: [1000, 100, 5012.5, 190_000.25], treatment: [1010, 121, 5500.75, 210_000.5] },
    "pricing-page": { control: [300, 30, 0, 0], treatment: [310, 45, 0, 0] },
  };
  fake.answer = answerFrom(() => data);
});

/** The fake answers from `source`, as GA4 would: the rows the report's filter keeps, its metrics. */
function answerFrom(source: () => typeof data) {
  return (report: FakeGa4Report) => {
    // Users who fired the event the report filters on (every user for the exposure event, converters for purchase).
    const event = /"value":"([^"]+)"/u.exec(JSON.stringify(report.dimensionFilter ?? {}))?.[1];
    const outcome = event === "purchase";
    const rows = Object.entries(source()).flatMap(([key, arms]) =>
      Object.entries(arms)
        .filter(([arm]) =>
          matchesFilter(report.dimensionFilter, { [EXPERIMENT]: key, [ARM]: arm, eventName: event ?? "page_view" }),
        )
        .map(([arm, [users, converters, sum, sumSq]]) => ({
          dimensionValues: [key, arm],
          metricValues: report.metrics.map((metric) =>
            String(
              metric === "customEvent:amount"
                ? sum
                : metric === "customEvent:amount_squared"
                  ? sumSq
                  : outcome
                    ? converters
                    : users,
            ),
          ),
        })),
    );
    return { rows };
  };
}

const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);
const thrown = (fn: () => unknown): ConnectorError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
};

const config = (extra: Record<string, unknown> = {}): ConnectorConfig => ({
  type: "ga4",
  property_id: Number(fake.propertyId),
  credentials_json_secret: "ga4-reader-key",
  event: "purchase",
  api_url: fake.apiUrl,
  ...extra,
});

const context = (extra: Partial<ConnectorContext> = {}): ConnectorContext => ({
  metricKind: "proportion",
  credentials: { credentials_json: fake.serviceAccountKey() },
  allowedApiUrls: { ga4: [fake.apiUrl, fake.tokenUrl] },
  outboundPolicy: parseOutboundPolicy("127.0.0.1"),
  ...extra,
});

const open = (extra: Record<string, unknown> = {}, ctx: Partial<ConnectorContext> = {}): SignalConnector =>
  createConnector(config(extra), context(ctx));

const FROM = new Date("2026-11-01T00:00:00Z");
const TO = new Date("2026-11-08T12:00:00Z");
const WINDOW = { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM, to: TO };

const apiRequests = () => fake.requests.filter((r) => r.path !== "/token");

describe("ga4 connector: what it asks GA4", () => {
  it("reads a proportion with two runReports: converters of the event, then users, by the two custom dimensions", async () => {
    const connector = open();
    const rows = await connector.fetchArmAggregates(WINDOW);
    expect(rows.map((r) => [r.arm, r.units, r.sum, r.sum_sq, r.ts])).toEqual([
      ["control", 1000, 100, 100, null],
      ["treatment", 1010, 121, 121, null],
    ]);
    const [outcome, units] = fake.reports();
    expect(fake.reports()).toHaveLength(2);
    expect(outcome?.propertyId).toBe(fake.propertyId);
    expect(outcome?.dimensions).toEqual([EXPERIMENT, ARM]);
    expect(outcome?.metrics).toEqual(["totalUsers"]);
    expect(outcome?.dateRanges).toEqual([{ startDate: "2026-11-01", endDate: "2026-11-08" }]);
    expect(outcome?.returnPropertyQuota).toBe(true);
    expect(outcome?.dimensionFilter).toEqual({
      andGroup: {
        expressions: [
          { filter: { fieldName: EXPERIMENT, inListFilter: { values: ["checkout-copy"], caseSensitive: true } } },
          { filter: { fieldName: ARM, inListFilter: { values: ["control", "treatment"], caseSensitive: true } } },
          // The client's REST transport asks for enums as numbers: EXACT is 1 (data.proto, StringFilter.MatchType).
          {
            filter: { fieldName: "eventName", stringFilter: { matchType: 1, value: "purchase", caseSensitive: true } },
          },
        ],
      },
    });
    expect(units?.metrics).toEqual(["totalUsers"]);
    expect(JSON.stringify(units?.dimensionFilter)).not.toContain("eventName");
    // A bearer token from the key's token_uri, on every report.
    expect(fake.requests[0]?.path).toBe("/token");
    for (const r of apiRequests()) expect(r.authorization).toMatch(/^Bearer ya29\.fake-/u);
    expect(connector.describe()).toBe(
      `ga4 property ${fake.propertyId} (${new URL(fake.apiUrl).host}): totalUsers of "purchase" by ${EXPERIMENT} and ${ARM}, units = totalUsers`,
    );
  });

  it("counts units among users who fired exposure_event when it is set, with activeUsers when asked", async () => {
    await open({ exposure_event: "experiment_exposure", units_metric: "activeUsers" }).fetchArmAggregates(WINDOW);
    const units = fake.reports()[1];
    expect(units?.metrics).toEqual(["activeUsers"]);
    expect(JSON.stringify(units?.dimensionFilter)).toContain('"value":"experiment_exposure"');
  });

  it("reads many experiments in the same two reports, from the earliest start (inListFilter on the experiment)", async () => {
    const connector = open();
    expect(readsInBatches(config())).toBe(true);
    const answer = await connector.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-copy", arms: ["control", "treatment"], from: FROM },
        { experimentKey: "pricing-page", arms: ["control", "treatment"], from: new Date("2026-11-04T09:00:00Z") },
        { experimentKey: "not-started", arms: ["control", "treatment"], from: new Date("2026-11-07T00:00:00Z") },
      ],
      to: TO,
    });
    expect(fake.reports()).toHaveLength(2);
    const filter = JSON.stringify(fake.reports()[0]?.dimensionFilter);
    expect(filter).toContain('"values":["checkout-copy","pricing-page","not-started"]');
    expect(fake.reports()[0]?.dateRanges).toEqual([{ startDate: "2026-11-01", endDate: "2026-11-08" }]);
    expect(answer?.get("pricing-page")).toEqual([
      { arm: "control", units: 300, sum: 30, sum_sq: 30, ts: null },
      { arm: "treatment", units: 310, sum: 45, sum_sq: 45, ts: null },
    ]);
    expect(answer?.get("not-started")).toEqual([]);
  });

  it("splits a batch larger than GA4_BATCH_MAX_KEYS experiments into pairs of reports", async () => {
    const experiments = Array.from({ length: GA4_BATCH_MAX_KEYS + 1 }, (_, i) => ({
      experimentKey: `exp-${i}`,
      arms: ["control", "treatment"],
      from: FROM,
    }));
    const answer = await open().fetchBatchAggregates?.({ experiments, to: TO });
    expect(answer?.size).toBe(GA4_BATCH_MAX_KEYS + 1);
    expect(fake.reports()).toHaveLength(4);
  });

  it("reads a mean's Σ and Σ² from the value metric and the squared-value custom metric", async () => {
    const connector = open(
      { value_metric: "customEvent:amount", value_squared_metric: "customEvent:amount_squared" },
      { metricKind: "mean" },
    );
    const rows = await connector.fetchArmAggregates(WINDOW);
    expect(rows.map((r) => [r.arm, r.units, r.sum, r.sum_sq])).toEqual([
      ["control", 1000, 5012.5, 190_000.25],
      ["treatment", 1010, 5500.75, 210_000.5],
    ]);
    expect(fake.reports()[0]?.metrics).toEqual(["customEvent:amount", "customEvent:amount_squared"]);
  });

  it("refuses a mean without value_squared_metric (GA4 gives no sum of squares), and a ratio", () => {
    const mean = thrown(() => createConnector(config({ value_metric: "eventValue" }), context({ metricKind: "mean" })));
    expect(mean.code).toBe("invalid_config");
    expect(mean.details.field).toBe("value_squared_metric");
    expect(mean.message).toContain("GA4 sums a metric per arm but gives no sum of squares");
    const ratio = thrown(() => createConnector(config(), context({ metricKind: "ratio" })));
    expect(ratio.code).toBe("invalid_config");
    expect(ratio.message).toContain("ratio");
    expect(thrown(() => open({ value_metric: "eventValue" })).details.field).toBe("value_metric");
  });

  it("checks the settings: the property id, the dimensions' API names, the same dimension twice", () => {
    expect(thrown(() => open({ property_id: "G-ABC123" })).details.field).toBe("property_id");
    expect(thrown(() => open({ property_id: "G-ABC123" })).message).toContain("not the measurement id");
    expect(open({ property_id: `properties/${fake.propertyId}` }).describe()).toContain(`property ${fake.propertyId}`);
    expect(thrown(() => open({ experiment_dimension: "experiment key" })).details.field).toBe("experiment_dimension");
    expect(thrown(() => open({ arm_dimension: EXPERIMENT })).details.field).toBe("arm_dimension");
    expect(connectorCredentials(config()).map((c) => c.field)).toEqual(["credentials_json_secret"]);
    expect(checkConnectorSettings(config(), "proportion", { allowedApiUrls: { ga4: [fake.apiUrl] } })).toBeNull();
  });

  it("has no outcome series (unsupported)", async () => {
    expect((await failure(open().fetchOutcomeSeries({ from: FROM, to: TO }))).code).toBe("unsupported");
  });
});

describe("ga4 connector: GA4's failure modes", () => {
  it('refuses a report with rows folded into "(other)" (metadata.dataLossFromOtherRow), never undercounting', async () => {
    fake.answer = (report) => ({ ...answerFrom(() => data)(report), metadata: { dataLossFromOtherRow: true } });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.details.flag).toBe("dataLossFromOtherRow");
    expect(error.message).toContain('"(other)"');
    expect(error.message).toContain("the report is not used");
  });

  it("refuses a sampled report (metadata.samplingMetadatas): a decision must not rest on estimates", async () => {
    fake.answer = (report) => ({
      ...answerFrom(() => data)(report),
      metadata: { samplingMetadatas: [{ samplesReadCount: "1000000", samplingSpaceSize: "25000000" }] },
    });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.details.flag).toBe("samplingMetadatas");
    expect(error.message).toContain("the report is sampled");
    expect(error.message).toContain("1000000 of 25000000");
  });

  it("refuses a thresholded report (metadata.subjectToThresholding)", async () => {
    fake.answer = (report) => ({ ...answerFrom(() => data)(report), metadata: { subjectToThresholding: true } });
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.details.flag).toBe("subjectToThresholding");
  });

  it("names a custom dimension the property has not registered (400 INVALID_ARGUMENT), on a read and on check", async () => {
    const connector = open({ arm_dimension: "customUser:variant" });
    const error = await failure(connector.fetchArmAggregates(WINDOW));
    expect(error.code).toBe("query_failed");
    expect(error.details).toMatchObject({
      field: "arm_dimension",
      name: "customUser:variant",
      kind: "dimension",
      grpcStatus: "INVALID_ARGUMENT",
    });
    expect(error.message).toContain("Field customUser:variant is not a valid dimension");
    expect(error.message).toContain("GA4 Admin → Custom definitions");
    const checked = await failure(connector.check?.() ?? Promise.resolve());
    expect(checked.code).toBe("query_failed");
    const metric = await failure(
      open(
        { value_metric: "customEvent:price", value_squared_metric: "customEvent:price_sq" },
        { metricKind: "mean" },
      ).fetchArmAggregates(WINDOW),
    );
    expect(metric.details).toMatchObject({ field: "value_metric", name: "customEvent:price", kind: "metric" });
  });

  it("check() proves the key, the property and the names with one small report", async () => {
    await open().check?.();
    expect(fake.reports()).toHaveLength(1);
    expect(fake.reports()[0]?.limit).toBe(1);
  });

  it("429 RESOURCE_EXHAUSTED with RetryInfo: rate_limited for that long, and the property's budget pauses", async () => {
    fake.override = (request) =>
      request.path.endsWith(":runReport")
        ? {
            status: 429,
            body: {
              error: {
                code: 429,
                message: "Exhausted concurrent requests quota.",
                status: "RESOURCE_EXHAUSTED",
                details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "30s" }],
              },
            },
          }
        : null;
    const connector = open();
    const error = await failure(connector.fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(30_000);
    expect(error.message).toContain("Exhausted concurrent requests quota.");
    fake.override = null;
    const sent = apiRequests().length;
    const paused = await failure(connector.fetchArmAggregates(WINDOW));
    expect(paused.code).toBe("rate_limited");
    expect(paused.retryAfterMs).toBeGreaterThan(0);
    expect(apiRequests()).toHaveLength(sent);
  });

  it("429 with Retry-After: rate_limited for the header's seconds", async () => {
    fake.override = (request) =>
      request.path.endsWith(":runReport")
        ? {
            status: 429,
            headers: { "Retry-After": "120" },
            body: { error: { code: 429, message: "Too many requests.", status: "RESOURCE_EXHAUSTED" } },
          }
        : null;
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(120_000);
  });

  it("a read the caller aborts stops at once (timeout, aborted), without waiting for GA4", async () => {
    fake.override = (request) => (request.path.endsWith(":runReport") ? { delayMs: 5_000 } : null);
    const controller = new AbortController();
    const read = open().fetchArmAggregates(WINDOW, controller.signal);
    setTimeout(() => controller.abort(), 200);
    const error = await failure(read);
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("the read was aborted");
  });

  it("429 naming the daily token quota, without RetryInfo: waits until midnight Pacific time", async () => {
    fake.quota.tokensPerDay = 0;
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.message).toContain("Exhausted property tokens per day");
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(msToPacificMidnight(Date.now()) + 1000);
  });

  it("stops querying when propertyQuota says a token quota has nothing left, naming it", async () => {
    fake.quota.tokensPerHour = 10; // two reports of 5 tokens: the second answer says 0 remaining
    const connector = open();
    expect(await connector.fetchArmAggregates(WINDOW)).toHaveLength(2);
    const sent = apiRequests().length;
    const error = await failure(connector.fetchArmAggregates(WINDOW));
    expect(error.code).toBe("rate_limited");
    expect(error.message).toContain("has no tokens per hour left");
    expect(error.message).toContain("0 remaining");
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(apiRequests()).toHaveLength(sent);
  });

  it("a key the token endpoint refuses is auth_failed; so is a token GA4 refuses (401)", async () => {
    const otherAccount = fake.serviceAccountKey({ client_email: "deleted@acme-analytics.iam.gserviceaccount.com" });
    const refused = await failure(
      open({}, { credentials: { credentials_json: otherAccount } }).fetchArmAggregates(WINDOW),
    );
    expect(refused.code).toBe("auth_failed");
    expect(refused.message).toContain("ga4: the token endpoint refused the service account key");
    expect(apiRequests()).toHaveLength(0);
    fake.override = (request) =>
      request.path.endsWith(":runReport")
        ? {
            status: 401,
            body: {
              error: {
                code: 401,
                message: "Request had invalid authentication credentials.",
                status: "UNAUTHENTICATED",
              },
            },
          }
        : null;
    const expired = await failure(open().fetchArmAggregates(WINDOW));
    expect(expired.code).toBe("auth_failed");
    expect(expired.message).toContain("GA4 refused the access token");
  });

  it("a property the service account may not read is auth_failed (403), telling how to grant access", async () => {
    const error = await failure(open({ property_id: 999_999_999 }).fetchArmAggregates(WINDOW));
    expect(error.code).toBe("auth_failed");
    expect(error.message).toContain("User does not have sufficient permissions for this property");
    expect(error.message).toContain("as a Viewer of property 999999999");
  });

  it("a slow answer is a timeout", async () => {
    fake.override = (request) => (request.path.endsWith(":runReport") ? { delayMs: 5_000 } : null);
    const error = await failure(open({}, { maxTimeoutMs: 300 }).fetchArmAggregates(WINDOW));
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("no answer within 0.3s");
  });

  it("an oversized answer is refused (bad_response), not read into memory", async () => {
    const huge = `{"rows":[${'{"dimensionValues":[{"value":"x"}]},'.repeat(300_000)}{}]}`;
    fake.override = (request) => (request.path.endsWith(":runReport") ? { status: 200, body: huge } : null);
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("larger than 8 MiB");
  });

  it("an answer that is not a report, or names other columns, is bad_response", async () => {
    fake.override = (request) =>
      request.path.endsWith(":runReport") ? { status: 200, body: "<html>proxy</html>" } : null;
    expect((await failure(open().fetchArmAggregates(WINDOW))).code).toBe("bad_response");
    fake.override = (request) =>
      request.path.endsWith(":runReport")
        ? { status: 200, body: { dimensionHeaders: [{ name: "country" }], metricHeaders: [{ name: "totalUsers" }] } }
        : null;
    const columns = await failure(open().fetchArmAggregates(WINDOW));
    expect(columns.code).toBe("bad_response");
    expect(columns.message).toContain("not the dimensions and metrics asked for");
  });

  it("refuses an api_url Google does not own, and a key whose token_uri is not allowed (source_refused)", async () => {
    const host = thrown(() =>
      open({ api_url: "https://analyticsdata.googleapis.com.attacker.example" }, { allowedApiUrls: {} }),
    );
    expect(host.code).toBe("source_refused");
    const key = fake.serviceAccountKey({ token_uri: "https://tokens.attacker.example/token" });
    const error = await failure(open({}, { credentials: { credentials_json: key } }).fetchArmAggregates(WINDOW));
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("ga4 connector: credentials_json_secret");
    expect(fake.requests).toHaveLength(0);
  });
});

describe("ga4 connector: the property's time zone", () => {
  it("reads the days of the window in the property's zone (metadata.timeZone), learnt from the first answer", async () => {
    fake.timeZone = "America/Los_Angeles";
    const window = { ...WINDOW, from: new Date("2026-11-01T07:00:00Z"), to: new Date("2026-11-08T03:00:00Z") };
    const connector = open();
    const rows = await connector.fetchArmAggregates(window);
    expect(rows.map((r) => r.units)).toEqual([1000, 1010]);
    // First in UTC (2026-11-01 .. 2026-11-08); the answer names Los Angeles, where the window is
    // 2026-11-01 00:00 .. 2026-11-07 19:00: read again with those days.
    expect(fake.reports().map((r) => r.dateRanges[0])).toEqual([
      { startDate: "2026-11-01", endDate: "2026-11-08" },
      { startDate: "2026-11-01", endDate: "2026-11-07" },
      { startDate: "2026-11-01", endDate: "2026-11-07" },
    ]);
    fake.requests.length = 0;
    await connector.fetchArmAggregates(window);
    expect(fake.reports().map((r) => r.dateRanges[0])).toEqual([
      { startDate: "2026-11-01", endDate: "2026-11-07" },
      { startDate: "2026-11-01", endDate: "2026-11-07" },
    ]);
  });

  it("does not read again when the property's zone gives the same days", async () => {
    fake.timeZone = "Europe/Berlin";
    await open().fetchArmAggregates(WINDOW);
    expect(fake.reports()).toHaveLength(2);
  });

  it("refuses an answer naming a time zone that is not one", async () => {
    fake.timeZone = "Mars/Olympus_Mons";
    const error = await failure(open().fetchArmAggregates(WINDOW));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("not an IANA time zone");
  });
});

describe("ga4PollCost", () => {
  it("plans within the documented quotas: 200,000 tokens a day at 10 a request, 10 at once", () => {
    expect(GA4_REQUESTS_PER_HOUR).toBe(Math.floor(GA4_TOKENS_PER_DAY / 24 / GA4_TOKENS_PER_REQUEST));
    expect(GA4_REQUESTS_PER_HOUR).toBe(833);
    const cost = ga4PollCost({ type: "ga4", property_id: 287465190 });
    expect(cost?.limits).toEqual({
      vendor: "ga4",
      scope: "property 287465190",
      key: "https://analyticsdata.googleapis.com|287465190",
      perHour: 833,
      maxConcurrent: GA4_MAX_CONCURRENT,
      docs: "https://developers.google.com/analytics/devguides/reporting/data/v1/quotas",
    });
    expect(GA4_MAX_CONCURRENT).toBe(10);
    expect(cost?.plannedPerHour).toBe(416);
    expect(cost?.plannedPerHour).toBeLessThanOrEqual(cost?.limits.perHour ?? 0);
    // Two reports per 100 experiments, whatever the arms.
    expect(cost?.requestsPerRound(1, 2)).toBe(2);
    expect(cost?.requestsPerRound(100, 5)).toBe(2);
    expect(cost?.requestsPerRound(101, 2)).toBe(4);
    expect(ga4PollCost({ type: "ga4", property_id: "G-ABC123" })).toBeNull();
  });

  it("is the budget a connector spends: the same key", async () => {
    const cost = ga4PollCost(config());
    expect(cost?.limits.key).toBe(`${fake.apiUrl}|${fake.propertyId}`);
  });
});
