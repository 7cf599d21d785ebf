/**
 * A real Prometheus server for tests (Debian's `prometheus` package,
 * `/usr/bin/prometheus`; scripts/lib/setup.sh installs it): started in a
 * temporary directory with its own config and TSDB, listening on a free
 * loopback port, scraping the targets the test serves (a prom-client
 * `Registry` is one) every second. Nothing is faked: the connector under
 * test talks to Prometheus's HTTP API (docs/querying/api.md of
 * github.com/prometheus/prometheus).
 *
 * The TSDB accepts out-of-order samples up to ten years old
 * (`storage.tsdb.out_of_order_time_window`) and keeps them for a century
 * (`--storage.tsdb.retention.time`), so a target may expose samples with
 * explicit timestamps in the past (the text format's optional timestamp),
 * e.g. a fixed window of the connector contract.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What Prometheus scrapes: a prom-client `Registry`, or anything that writes the text exposition format. */
export interface ScrapeTarget {
  metrics(): Promise<string> | string;
  readonly contentType?: string;
}

/** One sample of an instant query's vector: its labels and value (`"NaN"`, `"+Inf"` as Prometheus writes them). */
export interface PrometheusSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: string;
}

/** A running Prometheus. */
export interface RunningPrometheus {
  /** The server's base URL, `http://127.0.0.1:<port>` (the connector's `url`). */
  readonly url: string;
  /** The base URL of the targets' HTTP server (`<targetsUrl>/metrics/<index>`), for tests that need it. */
  readonly targetsUrl: string;
  /**
   * Polls the instant query `query` (any PromQL, at `options.time` or now)
   * every 200 ms until `predicate` holds for its vector, and returns that
   * vector. Waiting for scrapes this way replaces sleeping.
   *
   * @throws Error after `options.timeoutMs` (default 30 s), with the last answer
   */
  waitForSamples(
    query: string,
    predicate: (samples: readonly PrometheusSample[]) => boolean,
    options?: { readonly time?: Date; readonly timeoutMs?: number },
  ): Promise<PrometheusSample[]>;
  /** Stops Prometheus and the targets' server, and removes the temporary directory. */
  close(): Promise<void>;
}

/** Options of {@link startPrometheus}. */
export interface StartPrometheusOptions {
  /** Scraped at `/metrics/<index>` of one local HTTP server, each its own job `target-<index>`. */
  readonly targets: readonly ScrapeTarget[];
  /** Seconds between scrapes (default 1). */
  readonly scrapeIntervalSeconds?: number;
}

/** The Prometheus binary: `PROMETHEUS_PATH`, else Debian's. */
const PROMETHEUS_PATH = process.env.PROMETHEUS_PATH ?? "/usr/bin/prometheus";

/**
 * Starts Prometheus scraping `targets`, and resolves once it is ready
 * (`GET /-/ready`).
 *
 * @throws Error when the binary is missing or the server exits or is not ready within 30 s (its log attached)
 */
export async function startPrometheus(options: StartPrometheusOptions): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), "prometheus-test-"));
  const targetsServer = await serveTargets(options.targets);
  const targetsPort = (targetsServer.address() as AddressInfo).port;
  const interval = options.scrapeIntervalSeconds ?? 1;
  const jobs = options.targets.map(
    (_, i) =>
      `  - job_name: target-${i}\n    metrics_path: /metrics/${i}\n    static_configs:\n      - targets: ["127.0.0.1:${targetsPort}"]\n`,
  );
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: ${interval}s\n  scrape_timeout: ${interval}s\nstorage:\n  tsdb:\n    out_of_order_time_window: 10y\nscrape_configs:\n${jobs.join("")}`,
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  const child: ChildProcess = spawn(
    PROMETHEUS_PATH,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      "--storage.tsdb.retention.time=100y",
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-4000);
  });
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      resolve();
    });
    child.once("error", (error) => {
      exited = `could not start ${PROMETHEUS_PATH} (${error.message}); install it: apt-get install prometheus`;
      resolve();
    });
  });
  const close = async (): Promise<void> => {
    if (exited === null) {
      child.kill("SIGTERM");
      await exit;
    }
    await new Promise<void>((resolve) => targetsServer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited !== null) {
      await close();
      throw new Error(`prometheus ${exited}:\n${log}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await close();
      throw new Error(`prometheus was not ready at ${url} within 30s:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    targetsUrl: `http://127.0.0.1:${targetsPort}`,
    async waitForSamples(query, predicate, waitOptions = {}) {
      const until = Date.now() + (waitOptions.timeoutMs ?? 30_000);
      let last = "";
      for (;;) {
        const body = new URLSearchParams({ query });
        if (waitOptions.time !== undefined) body.set("time", (waitOptions.time.getTime() / 1000).toFixed(3));
        const response = await fetch(`${url}/api/v1/query`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body,
        });
        last = await response.text();
        const parsed = JSON.parse(last) as { status: string; data?: { resultType: string; result: unknown } };
        if (parsed.status !== "success") throw new Error(`prometheus refused ${query}: ${last}`);
        if (parsed.data?.resultType === "vector") {
          const samples = (parsed.data.result as { metric: Record<string, string>; value: [number, string] }[]).map(
            (s) => ({ metric: s.metric, value: s.value[1] }),
          );
          if (predicate(samples)) return samples;
        }
        if (Date.now() > until)
          throw new Error(`prometheus: ${query} did not reach the expected samples; last answer ${last}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    close,
  };
}

function serveTargets(targets: readonly ScrapeTarget[]): Promise<Server> {
  const server = createServer((request, response) => {
    const index = Number(/^\/metrics\/(\d+)$/u.exec(request.url ?? "")?.[1] ?? Number.NaN);
    const target = targets[index];
    if (target === undefined) {
      response.writeHead(404).end();
      return;
    }
    Promise.resolve(target.metrics()).then(
      (text) => {
        response.writeHead(200, { "content-type": target.contentType ?? "text/plain; version=0.0.4; charset=utf-8" });
        response.end(text);
      },
      (error: unknown) => {
        response.writeHead(500).end(String(error));
      },
    );
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
