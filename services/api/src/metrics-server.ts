/**
 * The API's metrics server: `GET /metrics` in the Prometheus text format, on
 * a port of its own (`METRICS_PORT`), never on the public one. Metrics
 * describe the whole installation, not one workspace, so they are the
 * operator's: no API key (which belongs to a workspace) opens them, and the
 * port stays on the internal network where Prometheus runs
 * (docs/operations.md). `server.ts` listens; tests call `inject`.
 */
import type { MetricsScraper } from "@outcome-runtime/runtime";
import Fastify, { type FastifyInstance } from "fastify";

/** A Fastify instance serving `scraper` at `GET /metrics` (and nothing else), ready, not listening. */
export async function buildMetricsServer(scraper: MetricsScraper): Promise<FastifyInstance> {
  const server = Fastify({ logger: false });
  server.get("/metrics", async (_request, reply) => {
    reply.header("content-type", scraper.contentType);
    return scraper.render();
  });
  await server.ready();
  return server;
}
