import { Gauge } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  createMetricsRegistry,
  httpMetrics,
  METRICS_CONTENT_TYPE,
  metricsScraper,
  type ScrapeCollector,
  signalMetrics,
  waitingSeconds,
} from "./metrics";

/** The sample lines of a text exposition (no comments), e.g. `name{a="b"} 1`. */
function samples(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

/** The value of one sample line, by its exact name and labels as rendered; undefined when absent. */
function sampleValue(text: string, series: string): number | undefined {
  const line = samples(text).find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function gaugeCollector(
  registry: ReturnType<typeof createMetricsRegistry>,
  name: string,
  collect: (gauge: Gauge<string>) => ScrapeCollector["collect"],
): ScrapeCollector {
  const gauge = new Gauge({ name: `test_${name}`, help: name, labelNames: ["k"], registers: [registry] });
  return { name, gauges: [gauge], collect: collect(gauge) };
}

describe("the Prometheus text format", () => {
  it("is served as text/plain version 0.0.4", () => {
    expect(METRICS_CONTENT_TYPE).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(metricsScraper(createMetricsRegistry({ processMetrics: false }), []).contentType).toBe(METRICS_CONTENT_TYPE);
  });

  it("has HELP and TYPE for each metric, and the process metrics by default", async () => {
    const registry = createMetricsRegistry();
    signalMetrics(registry);
    const text = await metricsScraper(registry, []).render();
    expect(text).toContain("# HELP outcome_runtime_polls_total ");
    expect(text).toContain("# TYPE outcome_runtime_polls_total counter");
    expect(text).toContain("# TYPE outcome_runtime_poll_duration_seconds histogram");
    expect(text).toContain("# TYPE process_cpu_user_seconds_total counter");
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
  });
});

describe("signalMetrics", () => {
  it("counts connector calls by connector, role and result, their rows, errors by code and durations", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const metrics = signalMetrics(registry);
    metrics.sourceRead({ connector: "postgres", role: "primary", result: "ok", rows: 4, durationSeconds: 0.02 });
    metrics.sourceRead({ connector: "postgres", role: "guardrail", result: "ok", rows: 2, durationSeconds: 0.3 });
    metrics.sourceRead({
      connector: "mixpanel",
      role: "primary",
      result: "error",
      rows: 0,
      durationSeconds: 7,
      errorCode: "timeout",
    });
    const text = await registry.metrics();
    expect(sampleValue(text, 'outcome_runtime_polls_total{connector="postgres",role="primary",result="ok"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_polls_total{connector="postgres",role="guardrail",result="ok"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_polls_total{connector="mixpanel",role="primary",result="error"}')).toBe(
      1,
    );
    expect(sampleValue(text, 'outcome_runtime_poll_errors_total{connector="mixpanel",code="timeout"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_poll_rows_total{connector="postgres"}')).toBe(6);
    expect(sampleValue(text, 'outcome_runtime_poll_duration_seconds_count{connector="postgres"}')).toBe(2);
    expect(sampleValue(text, 'outcome_runtime_poll_duration_seconds_sum{connector="postgres"}')).toBeCloseTo(0.32, 10);
    expect(sampleValue(text, 'outcome_runtime_poll_duration_seconds_bucket{le="0.25",connector="postgres"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_poll_duration_seconds_bucket{le="10",connector="mixpanel"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_poll_duration_seconds_bucket{le="5",connector="mixpanel"}')).toBe(0);
  });

  it("counts each analysis by action and reason, and a pause as a kill-switch firing; each reason starts at 0", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const metrics = signalMetrics(registry);
    let text = await registry.metrics();
    for (const reason of ["kill", "guardrail", "errors"]) {
      expect(sampleValue(text, `outcome_runtime_kill_switch_firings_total{reason="${reason}"}`)).toBe(0);
    }
    metrics.analysisDone(
      {
        looks: [
          { action: "continue", reason: "warming_up" },
          { action: "continue", reason: "running" },
          { action: "pause", reason: "kill" },
        ],
        decision: { action: "pause", reason: "kill", detail: "harm", ts: new Date() },
      },
      0.05,
    );
    metrics.analysisDone({ looks: [{ action: "continue", reason: "running" }], decision: null }, 0.01);
    metrics.decisionApplied({ action: "pause", reason: "errors" });
    text = await registry.metrics();
    expect(sampleValue(text, 'outcome_runtime_analyses_total{action="continue",reason="running"}')).toBe(2);
    expect(sampleValue(text, 'outcome_runtime_analyses_total{action="continue",reason="warming_up"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_analyses_total{action="pause",reason="kill"}')).toBe(1);
    expect(sampleValue(text, "outcome_runtime_analysis_duration_seconds_count")).toBe(2);
    expect(sampleValue(text, 'outcome_runtime_kill_switch_firings_total{reason="kill"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_kill_switch_firings_total{reason="errors"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_kill_switch_firings_total{reason="guardrail"}')).toBe(0);
  });
});

describe("httpMetrics", () => {
  it("labels by route pattern, method and status class; unmatched routes and odd methods share one series", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const http = httpMetrics(registry);
    http.observe({ method: "GET", route: "/v1/experiments/:id", statusCode: 200, durationSeconds: 0.01 });
    http.observe({ method: "GET", route: "/v1/experiments/:id", statusCode: 404, durationSeconds: 0.002 });
    http.observe({ method: "PROPFIND", route: undefined, statusCode: 404, durationSeconds: 0.001 });
    const text = await registry.metrics();
    expect(
      sampleValue(
        text,
        'outcome_runtime_http_request_duration_seconds_count{method="GET",route="/v1/experiments/:id",status_class="2xx"}',
      ),
    ).toBe(1);
    expect(
      sampleValue(
        text,
        'outcome_runtime_http_request_duration_seconds_count{method="GET",route="/v1/experiments/:id",status_class="4xx"}',
      ),
    ).toBe(1);
    expect(
      sampleValue(
        text,
        'outcome_runtime_http_request_duration_seconds_count{method="OTHER",route="unmatched",status_class="4xx"}',
      ),
    ).toBe(1);
  });
});

describe("metricsScraper", () => {
  it("renders the other metrics when a collector throws or hangs, counts their errors and leaves their gauges empty", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const failures: string[] = [];
    let broken = false;
    const healthy = gaugeCollector(registry, "healthy", (gauge) => async () => [
      { gauge, labels: { k: "a" }, value: 3 },
    ]);
    const flaky = gaugeCollector(registry, "flaky", (gauge) => async () => {
      if (broken) throw new Error("connection refused");
      return [{ gauge, labels: { k: "a" }, value: 7 }];
    });
    const hanging = gaugeCollector(registry, "hanging", () => () => new Promise(() => {}));
    // A gauge without labels is left without a sample too, not at a made-up 0.
    const total = new Gauge({ name: "test_total_gauge", help: "unlabelled", registers: [registry] });
    const unlabelled: ScrapeCollector = {
      name: "unlabelled",
      gauges: [total],
      collect: async () => {
        if (broken) throw new Error("statement timeout");
        return [{ gauge: total, labels: {}, value: 0.25 }];
      },
    };
    const scraper = metricsScraper(registry, [healthy, flaky, hanging, unlabelled], {
      collectorTimeoutMs: 50,
      onError: (name, error) => failures.push(`${name}: ${(error as Error).message}`),
    });

    let text = await scraper.render();
    expect(sampleValue(text, 'test_healthy{k="a"}')).toBe(3);
    expect(sampleValue(text, 'test_flaky{k="a"}')).toBe(7);
    expect(sampleValue(text, "test_total_gauge")).toBe(0.25);
    expect(samples(text).some((l) => l.startsWith("test_hanging"))).toBe(false);
    expect(sampleValue(text, 'outcome_runtime_scrape_errors_total{collector="hanging"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_scrape_errors_total{collector="healthy"}')).toBe(0);
    expect(sampleValue(text, 'outcome_runtime_scrape_collector_duration_seconds{collector="hanging"}')).toBeGreaterThan(
      0,
    );

    // A value read before a failure is not shown again as if it were current.
    broken = true;
    text = await scraper.render();
    expect(sampleValue(text, 'test_healthy{k="a"}')).toBe(3);
    expect(samples(text).some((l) => l.startsWith("test_flaky"))).toBe(false);
    expect(samples(text).some((l) => l.startsWith("test_total_gauge"))).toBe(false);
    expect(sampleValue(text, 'outcome_runtime_scrape_errors_total{collector="flaky"}')).toBe(1);
    expect(sampleValue(text, 'outcome_runtime_scrape_errors_total{collector="hanging"}')).toBe(2);
    expect(failures).toEqual([
      "hanging: collector hanging timed out after 50 ms",
      "flaky: connection refused",
      "unlabelled: statement timeout",
      "hanging: collector hanging timed out after 50 ms",
    ]);
  });

  it("waits for a collector still running from an earlier scrape instead of starting it again", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    let calls = 0;
    let finish: (() => void) | undefined;
    const slow = gaugeCollector(registry, "slow", (gauge) => () => {
      calls += 1;
      const sample = [{ gauge, labels: { k: "a" }, value: calls }];
      if (calls > 1) return Promise.resolve(sample);
      return new Promise((resolve) => {
        finish = () => resolve(sample);
      });
    });
    const scraper = metricsScraper(registry, [slow], { collectorTimeoutMs: 20 });
    await scraper.render();
    await scraper.render();
    expect(calls).toBe(1);
    finish?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const text = await scraper.render();
    expect(calls).toBe(2);
    expect(sampleValue(text, 'test_slow{k="a"}')).toBe(2);
    expect(sampleValue(text, 'outcome_runtime_scrape_errors_total{collector="slow"}')).toBe(2);
  });
});

describe("waitingSeconds", () => {
  it("counts from when the job was due, or from its last attempt when that is later", () => {
    const now = 1_000_000;
    expect(waitingSeconds({ timestamp: now - 5000, opts: {}, processedOn: undefined }, now)).toBe(5);
    // A delayed job waits from the end of its delay, not from its creation.
    expect(
      waitingSeconds({ timestamp: now - 3_600_000, opts: { delay: 3_598_000 }, processedOn: undefined }, now),
    ).toBe(2);
    expect(waitingSeconds({ timestamp: now - 60_000, opts: {}, processedOn: now - 1000 }, now)).toBe(1);
    // Not due yet (promoted early): no wait.
    expect(waitingSeconds({ timestamp: now, opts: { delay: 10_000 }, processedOn: undefined }, now)).toBe(0);
  });
});
