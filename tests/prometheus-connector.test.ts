/**
 * The `prometheus` connector against a real Prometheus (Debian's package,
 * started by @outcome-runtime/testing/prometheus), scraping a prom-client
 * registry this test serves: per-arm request counters (by status code) and a
 * latency histogram, labelled with the experiment and the arm as a service
 * would. The test moves the counters, waits until Prometheus has scraped
 * them (polling Prometheus, never sleeping), and reads through the connector:
 * the error rate and the share of slow requests per arm, many experiments in
 * one request, a counter reset, the outcome's series, and what Prometheus
 * itself refuses (a bad expression, a threshold that is no bucket bound), a
 * NaN count, a series without the arm label, a key built to widen the
 * experiment match, and the outbound policy refusing the server.
 */
import {
  type ConnectorConfig,
  ConnectorError,
  createConnector,
  type SignalConnector,
} from "@outcome-runtime/connectors";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { type RunningPrometheus, startPrometheus } from "@outcome-runtime/testing/prometheus";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const registry = new Registry();
const requests = new Counter({
  name: "checkout_requests_total",
  help: "Checkout requests by experiment, arm and status code.",
  labelNames: ["experiment", "arm", "code"],
  registers: [registry],
});
const latency = new Histogram({
  name: "checkout_request_duration_seconds",
  help: "Checkout request latency.",
  labelNames: ["experiment", "arm"],
  buckets: [0.1, 0.3, 1],
  registers: [registry],
});
/** A gauge misused as a counter that a bug set to NaN, and a counter that lost its arm label. */
const broken = new Gauge({
  name: "broken_requests_total",
  help: "Requests counted by a broken exporter.",
  labelNames: ["experiment", "arm"],
  registers: [registry],
});
const unlabelled = new Counter({
  name: "unlabelled_requests_total",
  help: "Requests counted without the arm label.",
  labelNames: ["experiment"],
  registers: [registry],
});

let prometheus: RunningPrometheus;
let startedAt: Date;
const ARMS = ["control", "treatment"] as const;
/** Keys built to widen a match if they reached PromQL unescaped, and the experiments they would catch. */
const HOSTILE = ['a"|.*', "checkout-v2|search", ".*"];

const ERROR_RATE = {
  type: "prometheus",
  requests: "checkout_requests_total",
  errors: 'checkout_requests_total{code=~"5.."}',
} as const;

function connector(settings: { type: string } & Record<string, unknown>): SignalConnector {
  return createConnector(
    { url: prometheus.url, ...settings },
    {
      metricKind: "proportion",
      outboundPolicy: parseOutboundPolicy("127.0.0.1"),
    },
  );
}

/** Every series of `experiment` at 0, as a service does at start: increase() counts from the first scrape. */
function initialise(experiment: string): void {
  for (const arm of ARMS) {
    requests.labels(experiment, arm, "200").inc(0);
    requests.labels(experiment, arm, "500").inc(0);
    latency.zero({ experiment, arm });
  }
}

function count(experiment: string, arm: string, ok: number, failed: number): void {
  requests.labels(experiment, arm, "200").inc(ok);
  requests.labels(experiment, arm, "500").inc(failed);
}

/** Waits until Prometheus has scraped `total` requests of `experiment`, and returns the scrape's time. */
async function scraped(experiment: string, total: number): Promise<Date> {
  const selector = `checkout_requests_total{experiment=${JSON.stringify(experiment)}}`;
  await prometheus.waitForSamples(`sum(${selector})`, (s) => Number(s[0]?.value) === total);
  // The evaluation time is the last scrape's own timestamp: increase() then extrapolates nothing at the end.
  const [last] = await prometheus.waitForSamples(`max(timestamp(${selector}))`, (s) => s.length === 1);
  return new Date(Math.round(Number(last?.value) * 1000));
}

async function codeOf(promise: Promise<unknown>): Promise<ConnectorError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectorError);
  return error as ConnectorError;
}

beforeAll(async () => {
  prometheus = await startPrometheus({ targets: [registry] });
  startedAt = new Date();
  initialise("checkout-v2");
  initialise("search-v1");
  initialise("a");
  for (const key of HOSTILE) initialise(key);
  // The zeros are scraped before any request is counted.
  await prometheus.waitForSamples(
    'count(checkout_requests_total{experiment="checkout-v2"})',
    (s) => Number(s[0]?.value) === 4,
  );
});

afterAll(async () => {
  await prometheus?.close();
});

describe("prometheus connector on a real Prometheus", () => {
  it("reads the error rate per arm: units = increase(requests), sum = sum_sq = increase(errors)", async () => {
    count("checkout-v2", "control", 990, 10);
    count("checkout-v2", "treatment", 950, 50);
    const to = await scraped("checkout-v2", 2000);
    const rows = await connector(ERROR_RATE).fetchArmAggregates({
      experimentKey: "checkout-v2",
      arms: [...ARMS],
      from: startedAt,
      to,
      startedAt,
    });
    expect(rows.map((r) => [r.arm, r.units, r.sum, r.sum_sq])).toEqual([
      ["control", 1000, 10, 10],
      ["treatment", 1000, 50, 50],
    ]);

    // Between scrapes increase() extrapolates to the window end: counts are rounded to whole requests, and
    // the failed ones never exceed them.
    const later = await connector(ERROR_RATE).fetchArmAggregates({
      experimentKey: "checkout-v2",
      arms: [...ARMS],
      from: startedAt,
      to: new Date(to.getTime() + 700),
    });
    for (const row of later) {
      expect(Number.isInteger(row.units) && Number.isInteger(row.sum)).toBe(true);
      expect(row.units).toBeGreaterThanOrEqual(1000);
      expect(row.sum).toBeLessThanOrEqual(row.units);
    }
  });

  it("reads many experiments in one request each for requests and errors; hostile keys match only themselves", async () => {
    count("search-v1", "control", 495, 5);
    count("search-v1", "treatment", 480, 20);
    count("a", "control", 100, 100);
    count(HOSTILE[0] ?? "", "treatment", 7, 1);
    const to = await scraped(HOSTILE[0] ?? "", 8);
    await scraped("search-v1", 1000);
    const answer = await connector(ERROR_RATE).fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "search-v1", arms: [...ARMS], from: startedAt },
        ...HOSTILE.map((experimentKey) => ({ experimentKey, arms: [...ARMS], from: startedAt })),
      ],
      to,
    });
    const rows = (key: string) => {
      const value = answer?.get(key);
      if (!Array.isArray(value)) throw value ?? new Error(`no answer for ${key}`);
      return value.map((r) => [r.arm, r.units, r.sum]);
    };
    expect(rows("search-v1")).toEqual([
      ["control", 500, 5],
      ["treatment", 500, 20],
    ]);
    // 'a"|.*' would match every experiment if it reached the regular expression unescaped; "checkout-v2|search"
    // would match checkout-v2; ".*" everything. Each reads its own (zero) series only.
    expect(rows(HOSTILE[0] ?? "")).toEqual([
      ["control", 0, 0],
      ["treatment", 8, 1],
    ]);
    expect(rows("checkout-v2|search")).toEqual([
      ["control", 0, 0],
      ["treatment", 0, 0],
    ]);
    expect(rows(".*")).toEqual([
      ["control", 0, 0],
      ["treatment", 0, 0],
    ]);
    const single = await connector(ERROR_RATE).fetchArmAggregates({
      experimentKey: ".*",
      arms: [...ARMS],
      from: startedAt,
      to,
    });
    expect(single.map((r) => r.units)).toEqual([0, 0]);
  });

  it("counts across a counter reset (a restarted process): increase() reads a drop as a restart from 0", async () => {
    const before = await connector(ERROR_RATE).fetchArmAggregates({
      experimentKey: "checkout-v2",
      arms: [...ARMS],
      from: startedAt,
      to: await scraped("checkout-v2", 2000),
    });
    expect(before.map((r) => r.units)).toEqual([1000, 1000]);
    // The process restarts: every counter starts again from 0, then counts 100 more requests per arm.
    const kept = ["search-v1", "a", ...HOSTILE];
    const snapshot = await registry.getMetricsAsJSON();
    requests.reset();
    for (const metric of snapshot.filter((m) => m.name === "checkout_requests_total")) {
      for (const v of (metric as { values: { labels: Record<string, string>; value: number }[] }).values) {
        if (kept.includes(v.labels.experiment ?? "")) requests.labels(v.labels).inc(v.value);
      }
    }
    initialise("checkout-v2");
    count("checkout-v2", "control", 99, 1);
    count("checkout-v2", "treatment", 100, 0);
    const to = await scraped("checkout-v2", 200);
    const after = await connector(ERROR_RATE).fetchArmAggregates({
      experimentKey: "checkout-v2",
      arms: [...ARMS],
      from: startedAt,
      to,
    });
    expect(after.map((r) => [r.arm, r.units, r.sum])).toEqual([
      ["control", 1100, 11],
      ["treatment", 1100, 50],
    ]);
  });

  it("reads a latency guardrail as the share of requests slower than the threshold (a bucket bound)", async () => {
    for (let i = 0; i < 100; i++) latency.labels("checkout-v2", "control").observe(0.05);
    latency.labels("checkout-v2", "control").observe(0.5);
    for (let i = 0; i < 100; i++) latency.labels("checkout-v2", "treatment").observe(0.2);
    for (let i = 0; i < 10; i++) latency.labels("checkout-v2", "treatment").observe(2);
    await prometheus.waitForSamples(
      'sum(checkout_request_duration_seconds_count{experiment="checkout-v2"})',
      (s) => Number(s[0]?.value) === 211,
    );
    const [last] = await prometheus.waitForSamples(
      'max(timestamp(checkout_request_duration_seconds_count{experiment="checkout-v2"}))',
      (s) => s.length === 1,
    );
    const to = new Date(Math.round(Number(last?.value) * 1000));
    const window = { experimentKey: "checkout-v2", arms: [...ARMS], from: startedAt, to };
    const slow = connector({ type: "prometheus", latency: "checkout_request_duration_seconds", threshold: 0.3 });
    expect(slow.describe()).toContain("p99 < 0.3s ⇔ share < 1%");
    expect((await slow.fetchArmAggregates(window)).map((r) => [r.arm, r.units, r.sum, r.sum_sq])).toEqual([
      ["control", 101, 1, 1],
      ["treatment", 110, 10, 10],
    ]);
    const tighter = connector({ type: "prometheus", latency: "checkout_request_duration_seconds", threshold: 0.1 });
    expect((await tighter.fetchArmAggregates(window)).map((r) => [r.arm, r.sum])).toEqual([
      ["control", 1],
      ["treatment", 110],
    ]);

    const notABound = await codeOf(
      connector({
        type: "prometheus",
        latency: "checkout_request_duration_seconds",
        threshold: 0.25,
      }).fetchArmAggregates(window),
    );
    expect(notABound.code).toBe("query_failed");
    expect(notABound.message).toContain(
      "threshold: 0.25 is not one of the histogram's le bounds (found 0.1, 0.3, 1, +Inf)",
    );
  });

  it("reads the outcome's series with query_range: one series, points in (from, to]", async () => {
    const to = await scraped("checkout-v2", 200);
    const from = new Date(to.getTime() - 5000);
    const points = await connector({
      ...ERROR_RATE,
      series_query: 'sum(checkout_requests_total{experiment="checkout-v2"})',
      step: 1,
    }).fetchOutcomeSeries({ from, to });
    expect(points.length).toBe(5);
    expect(points.every((p) => p.ts > from && p.ts <= to)).toBe(true);
    expect(points.at(-1)?.value).toBe(200);

    const many = await codeOf(
      connector({ ...ERROR_RATE, series_query: "checkout_requests_total", step: 1 }).fetchOutcomeSeries({ from, to }),
    );
    expect(many.code).toBe("bad_response");
    expect(many.message).toContain("series_query returned");
    expect(many.message).toContain("wrap it in sum(...)");
    expect(await codeOf(connector(ERROR_RATE).fetchOutcomeSeries({ from, to }))).toMatchObject({ code: "unsupported" });
  });

  it("passes on Prometheus's bad_data error naming the setting", async () => {
    const error = await codeOf(
      connector({ ...ERROR_RATE, errors: 'checkout_requests_total{code=~"5(("}' }).fetchArmAggregates({
        experimentKey: "checkout-v2",
        arms: [...ARMS],
        from: startedAt,
        to: new Date(),
      }),
    );
    expect(error.code).toBe("query_failed");
    expect(error.message).toMatch(
      /^prometheus connector: errors: Prometheus refused the expression \(bad_data: .*parse/u,
    );
    expect(error.details).toMatchObject({ field: "errors", errorType: "bad_data" });

    const series = await codeOf(
      connector({ ...ERROR_RATE, series_query: "sum(rate(checkout_requests_total[5m])", step: 1 }).fetchOutcomeSeries({
        from: startedAt,
        to: new Date(),
      }),
    );
    expect(series.code).toBe("query_failed");
    expect(series.message).toContain("series_query: Prometheus refused the expression (bad_data");
  });

  it("refuses a NaN count and a series without the arm label, for that experiment only", async () => {
    broken.labels("checkout-v2", "control").set(0);
    unlabelled.labels("search-v1").inc(0);
    await prometheus.waitForSamples("count(broken_requests_total) + count(unlabelled_requests_total)", (s) =>
      s.some((x) => x.value === "2"),
    );
    broken.labels("checkout-v2", "control").set(Number.NaN);
    broken.labels("search-v1", "control").set(0);
    unlabelled.labels("search-v1").inc(3);
    await prometheus.waitForSamples(
      'count(broken_requests_total{experiment="checkout-v2"} != broken_requests_total) + sum(unlabelled_requests_total)',
      (s) => s.some((x) => x.value === "4"),
    );
    const to = new Date();
    const nan = await codeOf(
      connector({ ...ERROR_RATE, requests: "broken_requests_total" }).fetchArmAggregates({
        experimentKey: "checkout-v2",
        arms: [...ARMS],
        from: startedAt,
        to,
      }),
    );
    expect(nan.code).toBe("bad_response");
    expect(nan.message).toContain('experiment "checkout-v2" arm "control": the count is NaN');

    const batch = await connector({ ...ERROR_RATE, requests: "unlabelled_requests_total" }).fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "search-v1", arms: [...ARMS], from: startedAt },
        { experimentKey: "checkout-v2", arms: [...ARMS], from: startedAt },
      ],
      to,
    });
    const unlabelledError = batch?.get("search-v1");
    expect(unlabelledError).toBeInstanceOf(ConnectorError);
    expect((unlabelledError as ConnectorError).message).toContain("without the arm label");
    expect((unlabelledError as ConnectorError).details).toMatchObject({ field: "arm_label" });
    // checkout-v2 has errors on requests without a requests series here: its own error, not the batch's.
    expect(batch?.get("checkout-v2")).toBeInstanceOf(ConnectorError);
  });

  it("is refused by the outbound policy when the server is on an address the operator did not allow", async () => {
    // In production (OUTBOUND_ALLOW unset) loopback, where the runtime's own services listen, is not a source.
    const refused = createConnector({ ...ERROR_RATE, url: prometheus.url } as ConnectorConfig, {
      metricKind: "proportion",
      outboundPolicy: parseOutboundPolicy(""),
    });
    const error = await codeOf(
      refused.fetchArmAggregates({ experimentKey: "checkout-v2", arms: [...ARMS], from: startedAt, to: new Date() }),
    );
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("OUTBOUND_ALLOW");
    expect(error.details).toMatchObject({ field: "url" });
  });
});
