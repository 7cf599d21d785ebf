/**
 * API reads under load: the API in a process of its own on the demo's data
 * (`demo-world.ts`), driven by autocannon over HTTP with keep-alive
 * connections. For each route, a saturation run (as many requests as the
 * connections can send: requests/s, p50, p99), then a run at half that rate
 * (autocannon's `overallRate`), where the latency is the one a user sees on an
 * API that is busy but not overloaded.
 */
import autocannon from "autocannon";
import type { ApiProcess } from "./api-process";

export interface ReadRoute {
  /** The route as documented (`GET /v1/experiments/:id`). */
  readonly name: string;
  /** The path requested, with its query. */
  readonly path: string;
}

export interface LoadRun {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  /** Answers other than 2xx, and connection errors and timeouts: a run with any is reported, not trusted. */
  readonly failures: number;
}

export interface ApiReadFigure {
  readonly route: string;
  /** Size of one answer's body, in bytes. */
  readonly bytes: number;
  readonly connections: number;
  readonly saturation: LoadRun;
  /** The run at half the saturation rate (`targetRate` requests/s offered). */
  readonly half: LoadRun & { readonly targetRate: number };
}

function summary(result: autocannon.Result): LoadRun {
  const ok = result["2xx"];
  return {
    requestsPerSecond: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

async function run(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

/**
 * Measure `routes` on a running API with `key` (bearer): per route, a warm-up
 * of `warmupSeconds`, the saturation run and the half-rate run of `seconds`
 * each, all with `connections` connections.
 */
export async function benchApiReads(
  api: ApiProcess,
  key: string,
  routes: readonly ReadRoute[],
  options: { connections: number; seconds: number; warmupSeconds: number; progress?: (text: string) => void },
): Promise<ApiReadFigure[]> {
  const headers = { authorization: `Bearer ${key}`, accept: "application/json" };
  const figures: ApiReadFigure[] = [];
  for (const route of routes) {
    const url = `${api.base}${route.path}`;
    const probe = await fetch(url, { headers });
    const body = await probe.arrayBuffer();
    if (probe.status !== 200) {
      throw new Error(`${route.name}: ${url} answered ${probe.status}: ${Buffer.from(body).toString("utf8")}`);
    }
    const base = { url, headers, connections: options.connections };
    await run({ ...base, duration: options.warmupSeconds });
    const saturation = summary(await run({ ...base, duration: options.seconds }));
    const targetRate = Math.max(1, Math.round(saturation.requestsPerSecond / 2));
    const half = summary(await run({ ...base, duration: options.seconds, overallRate: targetRate }));
    figures.push({
      route: route.name,
      bytes: body.byteLength,
      connections: options.connections,
      saturation,
      half: { ...half, targetRate },
    });
    options.progress?.(
      `   ${route.name}: ${Math.round(saturation.requestsPerSecond)} req/s (p99 ${saturation.p99Ms} ms); at ${targetRate}/s p50 ${half.p50Ms} ms, p99 ${half.p99Ms} ms`,
    );
  }
  return figures;
}
