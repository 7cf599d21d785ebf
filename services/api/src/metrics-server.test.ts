import { createMetricsRegistry, httpMetrics, metricsScraper } from "@outcome-runtime/runtime";
// biome-ignore lint/style/noRestrictedImports: a bare app to count requests of, without the database buildApp needs
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { buildMetricsServer } from "./metrics-server";
import httpMetricsPlugin from "./plugins/http-metrics";

const closing: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const server of closing.splice(0)) await server.close();
});

describe("the API's metrics server", () => {
  it("answers GET /metrics in the Prometheus text format, with the process metrics, and nothing else", async () => {
    const registry = createMetricsRegistry();
    const server = await buildMetricsServer(metricsScraper(registry, []));
    closing.push(server);
    const response = await server.inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(response.body).toMatch(/^# HELP /);
    expect(response.body).toContain("# TYPE process_resident_memory_bytes gauge");
    expect((await server.inject({ method: "GET", url: "/" })).statusCode).toBe(404);
    expect((await server.inject({ method: "GET", url: "/v1/outcomes" })).statusCode).toBe(404);
  });

  it("counts the requests of an app by route pattern and status class, never by URL", async () => {
    const registry = createMetricsRegistry({ processMetrics: false });
    const app = Fastify({ logger: false });
    closing.push(app);
    await app.register(httpMetricsPlugin, { metrics: httpMetrics(registry) });
    app.get("/v1/experiments/:id", async (request, reply) =>
      (request.params as { id: string }).id === "missing" ? reply.code(404).send({}) : { ok: true },
    );
    await app.ready();
    for (const id of ["a", "b", "missing"]) await app.inject({ method: "GET", url: `/v1/experiments/${id}` });
    await app.inject({ method: "DELETE", url: "/nowhere" });

    const metrics = await buildMetricsServer(metricsScraper(registry, []));
    closing.push(metrics);
    const body = (await metrics.inject({ method: "GET", url: "/metrics" })).body;
    const counts = body
      .split("\n")
      .filter((line) => line.startsWith("outcome_runtime_http_request_duration_seconds_count"));
    expect(counts.sort()).toEqual([
      'outcome_runtime_http_request_duration_seconds_count{method="DELETE",route="unmatched",status_class="4xx"} 1',
      'outcome_runtime_http_request_duration_seconds_count{method="GET",route="/v1/experiments/:id",status_class="2xx"} 2',
      'outcome_runtime_http_request_duration_seconds_count{method="GET",route="/v1/experiments/:id",status_class="4xx"} 1',
    ]);
  });
});
