/**
 * Counts every answered request of the API, with its duration, by method,
 * route pattern and status class (`outcome_runtime_http_request_duration_seconds`;
 * docs/operations.md). WebSocket upgrades are left out: their "duration" is
 * the life of the connection.
 */
import type { HttpMetrics } from "@outcome-runtime/runtime";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

async function httpMetricsPlugin(app: FastifyInstance, options: { metrics: HttpMetrics }): Promise<void> {
  app.addHook("onResponse", async (request, reply) => {
    if (request.ws) return;
    options.metrics.observe({
      method: request.method,
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      durationSeconds: reply.elapsedTime / 1000,
    });
  });
}

export default fp(httpMetricsPlugin, { name: "http-metrics" });
