/**
 * `/metrics` scraped by a real Prometheus (Debian's `prometheus` package, see
 * `ensure_prometheus` in scripts/lib/setup.sh): the worker and the API run as
 * processes against a test world, Prometheus of the test's own (a free port, a
 * temporary TSDB, every 1 s, with deploy/prometheus/alerts.yml loaded) scrapes
 * both, and the test reads what it stored through its HTTP API while an
 * experiment is polled, analysed and paused by the kill-switch. It also checks
 * the deploy/ files with promtool and the dashboard's queries against the
 * stored metrics.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { llm } from "@outcome-runtime/db";
import { freePort, waitFor } from "@outcome-runtime/testing";
import { afterEach, describe, expect, it } from "vitest";
import { root, spawnProcess, terminate } from "./support/compose";
import { startApiProcess, startWorkerProcess } from "./support/processes";
import {
  activeOutcome,
  type Cleanups,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  type SourceRow,
} from "./support/world";

const PROMETHEUS = process.env.PROMETHEUS_PATH ?? "/usr/bin/prometheus";
const PROMTOOL = process.env.PROMTOOL_PATH ?? "/usr/bin/promtool";
const DEPLOY = join(root, "deploy");
const WORKER_JOB = "outcome-runtime-worker";
const API_JOB = "outcome-runtime-api";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups));

function requireBinary(path: string): void {
  if (!existsSync(path)) {
    throw new Error(
      `${path} not found: install Debian's prometheus package (apt-get install prometheus; scripts/test.sh does it), or set PROMETHEUS_PATH and PROMTOOL_PATH`,
    );
  }
}

/** Run promtool; returns its exit status and output. */
function promtool(args: readonly string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd: DEPLOY, input, encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Sample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

/** A Prometheus of the test's own, scraping `targets` every second. */
async function startPrometheus(targets: { worker: string; api: string }) {
  requireBinary(PROMETHEUS);
  const dir = mkdtempSync(join(tmpdir(), "ort-prometheus-"));
  const port = await freePort();
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - ${JSON.stringify(join(DEPLOY, "prometheus/alerts.yml"))}
scrape_configs:
  - job_name: ${WORKER_JOB}
    static_configs:
      - targets: [${JSON.stringify(targets.worker)}]
  - job_name: ${API_JOB}
    static_configs:
      - targets: [${JSON.stringify(targets.api)}]
`,
  );
  const proc = spawnProcess(
    [
      PROMETHEUS,
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    {},
    (cleanup) => cleanups.push(cleanup),
  );
  cleanups.push(async () => {
    if (!proc.isGone()) await terminate(proc).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    "Prometheus to be ready",
    async () => {
      if (proc.isGone()) throw new Error(`prometheus exited:\n${proc.output()}`);
      return (await fetch(`${base}/-/ready`).catch(() => null))?.status === 200;
    },
    { timeoutMs: 60_000, intervalMs: 100, diagnostics: proc.output },
  );

  /** GET an API path of Prometheus; throws unless it answers `status: success`. */
  async function api<T>(path: string): Promise<T> {
    const response = await fetch(`${base}${path}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path}: ${body.error ?? response.status}`);
    return body.data;
  }
  return {
    base,
    output: proc.output,
    api,
    /** An instant query's samples. */
    async query(expr: string): Promise<Sample[]> {
      const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}`,
      );
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}

type Prometheus = Awaited<ReturnType<typeof startPrometheus>>;

/** Wait until `expr` has one sample at least and `accept` holds for its samples; returns them. */
async function waitForQuery(
  prometheus: Prometheus,
  expr: string,
  accept: (samples: Sample[]) => boolean = () => true,
  timeoutMs = 60_000,
): Promise<Sample[]> {
  let last: Sample[] | null = null;
  return waitFor(
    `Prometheus to answer ${expr} as expected`,
    async () => {
      last = await prometheus.query(expr);
      return last.length > 0 && accept(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 250, diagnostics: () => `last answer: ${JSON.stringify(last)}\n${prometheus.output()}` },
  );
}

/**
 * The samples of `expr` once it has some (`count` of them, when given). A scrape that timed out on a busy
 * machine marks its series stale until the next one, so even a counter known to exist may be briefly absent.
 */
function present(prometheus: Prometheus, expr: string, count?: number): Promise<Sample[]> {
  return waitForQuery(prometheus, expr, (s) => count === undefined || s.length === count);
}

/** The sum of the samples' values. */
const total = (samples: Sample[]) => samples.reduce((sum, s) => sum + s.value, 0);

/** The families of `text` (Prometheus text format) whose name starts with `prefix`, HELP and TYPE included. */
function familiesOf(text: string, prefix: string): string {
  return `${text
    .split("\n")
    .filter((line) => line.replace(/^# (HELP|TYPE) /, "").startsWith(prefix))
    .join("\n")}\n`;
}

describe("Prometheus metrics", () => {
  it("a real Prometheus scrapes the worker's and the API's /metrics: polls, analyses, the kill-switch, queues, gates, outboxes, LLM spend, requests", async () => {
    requireBinary(PROMETHEUS);
    requireBinary(PROMTOOL);
    const started = Date.now();
    const world = await createWorld(cleanups);
    await activeOutcome(world, "metrics");
    const [harmful] = await launchExperiments(world, "metrics", ["harmful", "healthy"]);
    // One metered LLM call this month, through the gateway's ledger.
    await llm.insertCall(world.t.db, {
      workspaceId: world.seed.workspaceId,
      outcomeId: null,
      actorId: "metrics-test",
      operation: "propose_hypotheses",
      promptVersion: "1",
      provider: "anthropic",
      model: "claude-test",
      source: "llm:claude-test",
      inputTokens: 1200,
      outputTokens: 400,
      costUsd: 0.25,
      latencyMs: 900,
      cacheHit: false,
      repaired: false,
      fallbackReason: null,
    });

    // The worker logs at info: one line per poll and per analysis, kept whole here.
    const worker = await startWorkerProcess(world, cleanups, { LOG_LEVEL: "info" });
    const logLines: Record<string, unknown>[] = [];
    let partial = "";
    worker.proc.child.stdout?.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        try {
          logLines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a pino line
        }
      }
    });
    const metricsPort = await freePort();
    const api = await startApiProcess(
      {
        DATABASE_URL: world.t.url,
        REDIS_URL: world.redisUrl,
        QUEUE_PREFIX: world.prefix,
        OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
        METRICS_PORT: String(metricsPort),
      },
      cleanups,
    );
    await worker.ready;
    const processesUp = Date.now();

    // Anonymous requests never read metrics on the public port; neither does an admin key.
    expect((await fetch(`${api.base}/metrics`)).status).toBe(404);
    expect((await fetch(`${api.base}/v1/metrics`)).status).toBe(404);
    expect(
      (await fetch(`${api.base}/metrics`, { headers: { authorization: `Bearer ${world.seed.adminKey}` } })).status,
    ).toBe(404);
    // Requests for the API's histogram: one answered, one refused.
    const outcomes = await fetch(`${api.base}/v1/outcomes`, {
      headers: { authorization: `Bearer ${world.seed.adminKey}` },
    });
    expect(outcomes.status).toBe(200);
    expect((await fetch(`${api.base}/v1/outcomes`)).status).toBe(401);

    const prometheus = await startPrometheus({ worker: `127.0.0.1:${worker.port}`, api: `127.0.0.1:${metricsPort}` });
    const targets = await waitFor(
      "both targets to be up",
      async () => {
        const data = await prometheus.api<{
          activeTargets: { labels: { job: string }; health: string; lastError: string }[];
        }>("/api/v1/targets");
        return data.activeTargets.length === 2 && data.activeTargets.every((t) => t.health === "up")
          ? data.activeTargets
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, diagnostics: prometheus.output },
    );
    expect(targets.map((t) => t.labels.job).sort()).toEqual([API_JOB, WORKER_JOB]);
    const targetsUp = Date.now();

    // Before any data: polls already ran (nothing to read), and the kill-switch counter is stored at 0, so
    // the alert's increase() sees its first firing.
    await waitForQuery(
      prometheus,
      `outcome_runtime_kill_switch_firings_total{job="${WORKER_JOB}",reason="kill"}`,
      (s) => s.every((x) => x.value === 0),
    );
    await waitForQuery(prometheus, 'outcome_runtime_polls_total{connector="postgres",role="primary",result="ok"}');

    // Five cumulative snapshots over two days: the harmful treatment converts at 10 % against 20 %.
    const now = Date.now();
    const rows: SourceRow[] = [];
    [48, 36, 24, 12, 0.05].forEach((hours, i) => {
      const ts = new Date(now - hours * 3600_000);
      const units = 1000 * (i + 1);
      rows.push(
        { key: "harmful", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "harmful", arm: "treatment", ts, units, conversions: units * 0.1 },
        { key: "healthy", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "healthy", arm: "treatment", ts, units, conversions: units * 0.2 },
      );
    });
    await insertSource(world, rows);
    const inserted = Date.now();

    const kills = await waitForQuery(
      prometheus,
      `sum(outcome_runtime_kill_switch_firings_total{reason="kill"})`,
      (s) => total(s) >= 1,
    );
    expect(total(kills)).toBe(1);
    const killSeen = Date.now();

    // Polls: by connector, role and result; rows read; a duration histogram.
    const polls = await present(prometheus, "sum by (connector, role, result) (outcome_runtime_polls_total)");
    expect(polls.find((s) => s.metric.role === "primary" && s.metric.result === "ok")?.value).toBeGreaterThanOrEqual(2);
    expect(polls.every((s) => s.metric.connector === "postgres")).toBe(true);
    expect(
      total(await present(prometheus, 'outcome_runtime_poll_rows_total{connector="postgres"}')),
    ).toBeGreaterThanOrEqual(20);
    expect(
      total(await present(prometheus, 'outcome_runtime_poll_duration_seconds_count{connector="postgres"}')),
    ).toBeGreaterThanOrEqual(2);
    expect(await prometheus.query("outcome_runtime_poll_errors_total")).toEqual([]);

    // Analyses by the policy's answer: the kill once, and the healthy experiment's looks.
    const analyses = await present(prometheus, "sum by (action, reason) (outcome_runtime_analyses_total)");
    expect(analyses.find((s) => s.metric.action === "pause" && s.metric.reason === "kill")?.value).toBe(1);
    expect(total(analyses)).toBeGreaterThanOrEqual(2);
    expect(total(await present(prometheus, "outcome_runtime_analysis_duration_seconds_count"))).toBeGreaterThanOrEqual(
      2,
    );

    // The gauges read on scrape: the analysis gate the pause opened, with its SLA ahead.
    await waitForQuery(
      prometheus,
      'outcome_runtime_gates_pending{kind="analysis_review",sla="running"}',
      (s) => total(s) >= 1,
    );
    const remaining = await waitForQuery(
      prometheus,
      'outcome_runtime_gate_sla_remaining_seconds{kind="analysis_review"}',
    );
    expect(remaining[0]!.value).toBeGreaterThan(0);
    // Every gate kind × SLA state, zeros included.
    expect((await present(prometheus, "outcome_runtime_gates_pending", 10)).length).toBe(10);
    // The pause's webhook waits in the outbox: no URL is configured, which the worker says too.
    await waitForQuery(prometheus, 'outcome_runtime_outbox_backlog{kind="webhook"}', (s) => total(s) >= 1);
    const webhookAge = await present(prometheus, 'outcome_runtime_outbox_oldest_age_seconds{kind="webhook"}');
    expect(webhookAge[0]!.value).toBeGreaterThanOrEqual(0);
    expect((await present(prometheus, 'outcome_runtime_outbox_delivery_enabled{kind="webhook"}'))[0]!.value).toBe(0);
    expect(await present(prometheus, 'outcome_runtime_outbox_backlog{kind="gate_email"}')).toHaveLength(1);
    // Queues: every queue and state, and how long the next job waited.
    const queueJobs = await present(prometheus, "outcome_runtime_queue_jobs", 15);
    expect(new Set(queueJobs.map((s) => s.metric.queue))).toEqual(new Set(["signals", "control", "notify"]));
    expect(queueJobs).toHaveLength(15);
    // The healthy experiment keeps polling: its next poll is a delayed job; the reconciliation's too.
    expect(total(queueJobs.filter((s) => s.metric.state === "delayed"))).toBeGreaterThanOrEqual(2);
    const oldest = await present(prometheus, "outcome_runtime_queue_oldest_job_age_seconds", 3);
    expect(oldest).toHaveLength(3);
    expect(oldest.every((s) => s.value >= 0)).toBe(true);
    const spend = await present(prometheus, "outcome_runtime_llm_spend_month_to_date_usd");
    expect(spend.map((s) => s.value)).toEqual([0.25]);
    expect(await present(prometheus, "outcome_runtime_scrape_errors_total", 4)).toHaveLength(4);

    // The API: requests by route pattern and status class, and the process metrics of both.
    const requests = await waitForQuery(
      prometheus,
      `outcome_runtime_http_request_duration_seconds_count{job="${API_JOB}",route="/v1/outcomes"}`,
      (s) => s.length === 2,
    );
    expect(Object.fromEntries(requests.map((s) => [s.metric.status_class, s.value]))).toEqual({ "2xx": 1, "4xx": 1 });
    // The three 404s to /metrics and /v1/metrics share one series, whatever the URL.
    const unmatched = await present(
      prometheus,
      `outcome_runtime_http_request_duration_seconds_count{job="${API_JOB}",route="unmatched"}`,
    );
    expect(unmatched.map((s) => [s.metric.method, s.metric.status_class, s.value])).toEqual([["GET", "4xx", 3]]);
    const memory = await present(prometheus, "process_resident_memory_bytes", 2);
    expect(memory.map((s) => s.metric.job).sort()).toEqual([API_JOB, WORKER_JOB]);
    expect(memory.every((s) => s.value > 0)).toBe(true);

    // The alert rules of deploy/prometheus, evaluated on these scrapes: the kill-switch fired.
    const alert = await waitFor(
      "OutcomeRuntimeKillSwitchFired to fire",
      async () => {
        const data = await prometheus.api<{ alerts: { labels: Record<string, string>; state: string }[] }>(
          "/api/v1/alerts",
        );
        return data.alerts.find((a) => a.labels.alertname === "OutcomeRuntimeKillSwitchFired" && a.state === "firing");
      },
      { timeoutMs: 30_000, intervalMs: 250, diagnostics: prometheus.output },
    );
    expect(alert.labels).toMatchObject({ reason: "kill", severity: "warning" });
    const alertSeen = Date.now();

    // Every metric the dashboard and the alerts name is one the processes expose, and every dashboard query runs.
    const metadata = await prometheus.api<Record<string, unknown>>("/api/v1/metadata");
    const dashboard = JSON.parse(readFileSync(join(DEPLOY, "grafana/outcome-runtime.json"), "utf8")) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    const alertsText = readFileSync(join(DEPLOY, "prometheus/alerts.yml"), "utf8");
    const named = new Set(
      [...exprs.map((e) => e.expr), alertsText].flatMap((text) => text.match(/outcome_runtime_[a-z_]+/g) ?? []),
    );
    for (const name of named) {
      const family = name.replace(/_(bucket|count|sum)$/, "");
      expect(Object.keys(metadata), name).toContain(metadata[name] === undefined ? family : name);
    }
    for (const { panel, expr } of exprs) {
      const runnable = expr.replaceAll("$__rate_interval", "1m");
      await expect(prometheus.query(runnable), `${panel}: ${expr}`).resolves.toBeInstanceOf(Array);
    }

    // Our metric families pass promtool's lint (names, units, suffixes); so do the deploy files.
    for (const target of [`127.0.0.1:${worker.port}`, `127.0.0.1:${metricsPort}`]) {
      const text = await (await fetch(`http://${target}/metrics`)).text();
      const lint = promtool(["check", "metrics"], familiesOf(text, "outcome_runtime_"));
      expect(lint.output, target).toBe("");
      expect(lint.status, target).toBe(0);
    }
    for (const args of [
      ["check", "rules", "prometheus/alerts.yml"],
      ["test", "rules", "prometheus/alerts.test.yml"],
      ["check", "config", "prometheus/prometheus.yml"],
    ]) {
      const result = promtool(args);
      expect(result.status, `promtool ${args.join(" ")}:\n${result.output}`).toBe(0);
    }

    // One info line per poll and per analysis, with the fields an operator greps for.
    const polled = logLines.find(
      (l) => l.msg === "experiment polled" && l.experimentKey === "harmful" && Number(l.rowsRead) > 0,
    );
    expect(polled).toMatchObject({
      level: 30,
      experimentId: harmful!.id,
      status: "polled",
      connectors: ["postgres"],
      inserted: 10,
    });
    expect(typeof polled?.durationMs).toBe("number");
    const analysed = logLines.find((l) => l.msg === "experiment analysed" && l.action === "pause");
    expect(analysed).toMatchObject({
      level: 30,
      experimentId: harmful!.id,
      experimentKey: "harmful",
      reason: "kill",
      state: "paused",
    });
    expect(
      logLines.filter((l) => l.msg === "experiment analysed" && l.experimentKey === "healthy").length,
    ).toBeGreaterThan(0);

    console.log(
      `Prometheus metrics: processes ready ${processesUp - started} ms after the start, both targets up ${
        targetsUp - processesUp
      } ms after Prometheus was asked, kill-switch firing visible in Prometheus ${killSeen - inserted} ms after ` +
        `the source rows, alert firing ${alertSeen - killSeen} ms later; whole test ${Date.now() - started} ms`,
    );
  }, 240_000);
});
