/**
 * Prometheus metrics of the worker and the API (prom-client), listed with
 * their meaning in docs/operations.md.
 *
 * - Process counters and histograms, fed as work happens: the worker's polls
 *   and analyses ({@link signalMetrics}), the API's requests
 *   ({@link httpMetrics}), and prom-client's default process metrics.
 * - Gauges of the installation (queues, pending gates, outboxes, LLM spend),
 *   read from Redis and Postgres when Prometheus scrapes
 *   ({@link installationCollectors}). Each collector runs under a timeout, at
 *   most once at a time, and a failing one clears its gauges and counts an
 *   error without failing the scrape ({@link metricsScraper}).
 *
 * Names follow Prometheus' conventions: the `outcome_runtime_` prefix, base
 * units (seconds, dollars), `_total` for counters. Labels take values from
 * short fixed lists only (connector type, metric role, error code, decision
 * action and reason, gate kind and SLA stage, queue and job state, outbox
 * kind, HTTP method, route pattern, status class, collector): every label
 * value is a new time series kept for weeks, so experiment, outcome and
 * workspace ids, which grow without bound, are never labels; the logs carry
 * them.
 */
import { GATE_KINDS } from "@outcome-runtime/core";
import { gateMail, gates, llm, signals } from "@outcome-runtime/db";
import type { Job, JobType, Queue } from "bullmq";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RuntimeDeps } from "./context";
import type { AnalysisOutcome } from "./signals/analyse";
import type { SignalObserver, SourceRead } from "./signals/poll";

/** The registry a process exposes on `/metrics` (prom-client's `Registry`). */
export type MetricsRegistry = Registry;

/** The content type of the Prometheus text format, version 0.0.4, as `/metrics` answers it. */
export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** The prefix of every metric of ours. */
const METRIC_PREFIX = "outcome_runtime_";

/**
 * A registry for one process, with prom-client's default process metrics
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, `nodejs_heap_size_used_bytes`, …) unless
 * `processMetrics` is false.
 */
export function createMetricsRegistry(options: { readonly processMetrics?: boolean } = {}): MetricsRegistry {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

// ---------------------------------------------------------------------------
// The worker's polls and analyses.

/** What the worker reports: every connector call and applied pause (as a {@link SignalObserver}), and every analysis job. */
export interface SignalMetrics extends SignalObserver {
  /** After an analysis job: one count per analysis written, and the kill-switch when it paused the experiment. */
  analysisDone(outcome: Pick<AnalysisOutcome, "looks" | "decision">, durationSeconds: number): void;
}

/** Why the runtime pauses an experiment on its own: the kill threshold, a guardrail, or failing polls. */
const PAUSE_REASONS = ["kill", "guardrail", "errors"] as const;

/**
 * Seconds. A connector call is bounded by POLL_TIMEOUT_MS (60 s by default);
 * the buckets go past it so a raised timeout still shows.
 */
const POLL_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Seconds. An analysis is one transaction of a few queries and the statistics. */
const ANALYSIS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The worker's counters and histograms of polls and analyses, registered on
 * `registry`:
 *
 * - `outcome_runtime_polls_total{connector,role,result}`: connector calls (one
 *   per metric read: the primary, each guardrail, an outcome's signal),
 *   `result` `ok` or `error`;
 * - `outcome_runtime_poll_errors_total{connector,code}`: failed calls by error code;
 * - `outcome_runtime_poll_duration_seconds{connector}`: time of each call;
 * - `outcome_runtime_poll_rows_total{connector}`: rows the connectors returned;
 * - `outcome_runtime_analyses_total{action,reason}`: analyses written, by the
 *   decision policy's answer (`continue`/`running` for most);
 * - `outcome_runtime_analysis_duration_seconds`: time of each analysis job;
 * - `outcome_runtime_kill_switch_firings_total{reason}`: experiments paused by
 *   the runtime itself (`kill`, `guardrail`, `errors`), each reason at 0 from the start
 *   so `increase()` sees the first one.
 */
export function signalMetrics(registry: MetricsRegistry): SignalMetrics {
  const registers = [registry];
  const polls = new Counter({
    name: `${METRIC_PREFIX}polls_total`,
    help: "Connector calls of polls (one per metric read: primary, guardrail, outcome signal), by result.",
    labelNames: ["connector", "role", "result"] as const,
    registers,
  });
  const pollErrors = new Counter({
    name: `${METRIC_PREFIX}poll_errors_total`,
    help: "Failed connector calls of polls, by connector type and error code.",
    labelNames: ["connector", "code"] as const,
    registers,
  });
  const pollDuration = new Histogram({
    name: `${METRIC_PREFIX}poll_duration_seconds`,
    help: "Duration of one connector call of a poll, seconds (failures included).",
    labelNames: ["connector"] as const,
    buckets: POLL_BUCKETS,
    registers,
  });
  const pollRows = new Counter({
    name: `${METRIC_PREFIX}poll_rows_total`,
    help: "Rows returned by the connectors' calls.",
    labelNames: ["connector"] as const,
    registers,
  });
  const analyses = new Counter({
    name: `${METRIC_PREFIX}analyses_total`,
    help: "Analyses written (one per new snapshot of an experiment), by the decision policy's action and reason.",
    labelNames: ["action", "reason"] as const,
    registers,
  });
  const analysisDuration = new Histogram({
    name: `${METRIC_PREFIX}analysis_duration_seconds`,
    help: "Duration of one analysis job (every new snapshot of one experiment), seconds.",
    buckets: ANALYSIS_BUCKETS,
    registers,
  });
  const killSwitch = new Counter({
    name: `${METRIC_PREFIX}kill_switch_firings_total`,
    help: "Experiments paused by the runtime itself: kill threshold (kill), guardrail, or failing polls (errors).",
    labelNames: ["reason"] as const,
    registers,
  });
  for (const reason of PAUSE_REASONS) killSwitch.inc({ reason }, 0);

  const decided = (decision: { readonly action: string; readonly reason: string }) => {
    if (decision.action === "pause") killSwitch.inc({ reason: decision.reason });
  };
  return {
    sourceRead(read: SourceRead) {
      polls.inc({ connector: read.connector, role: read.role, result: read.result });
      pollDuration.observe({ connector: read.connector }, read.durationSeconds);
      if (read.rows > 0) pollRows.inc({ connector: read.connector }, read.rows);
      if (read.result === "error") pollErrors.inc({ connector: read.connector, code: read.errorCode ?? "unknown" });
    },
    decisionApplied: decided,
    analysisDone(outcome, durationSeconds) {
      for (const look of outcome.looks) analyses.inc({ action: look.action, reason: look.reason });
      analysisDuration.observe(durationSeconds);
      if (outcome.decision !== null) decided(outcome.decision);
    },
  };
}

// ---------------------------------------------------------------------------
// The API's requests.

/** One answered HTTP request. */
export interface HttpObservation {
  readonly method: string;
  /** The matched route pattern (`/v1/experiments/:id`), or undefined when no route matched. */
  readonly route: string | undefined;
  readonly statusCode: number;
  /** From the request's arrival to the end of the response, seconds. */
  readonly durationSeconds: number;
}

export interface HttpMetrics {
  /** Count one answered request and its duration. */
  observe(request: HttpObservation): void;
}

const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * `outcome_runtime_http_request_duration_seconds{method,route,status_class}`
 * (a histogram: its `_count` counts requests), registered on `registry`.
 * `route` is the route pattern, never the URL (ids would make a series per
 * resource); requests no route matched share `route="unmatched"`; a method
 * outside the usual seven is `OTHER`; `status_class` is `2xx` … `5xx`.
 */
export function httpMetrics(registry: MetricsRegistry): HttpMetrics {
  const duration = new Histogram({
    name: `${METRIC_PREFIX}http_request_duration_seconds`,
    help: "Duration of the API's HTTP requests, seconds, by method, route pattern and status class.",
    labelNames: ["method", "route", "status_class"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    observe(request) {
      duration.observe(
        {
          method: HTTP_METHODS.has(request.method) ? request.method : "OTHER",
          route: request.route ?? "unmatched",
          status_class: `${Math.floor(request.statusCode / 100)}xx`,
        },
        request.durationSeconds,
      );
    },
  };
}

// ---------------------------------------------------------------------------
// Gauges collected on scrape.

/** One value a collector read, for one of its gauges. */
export interface GaugeSample {
  readonly gauge: Gauge<string>;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Reads gauges when Prometheus scrapes. */
export interface ScrapeCollector {
  /** Its name in `outcome_runtime_scrape_errors_total{collector}` and in the logs. */
  readonly name: string;
  /** The gauges it sets: cleared before its new values are set, and left empty when it fails. */
  readonly gauges: readonly Gauge<string>[];
  /** Read the current values (a few cheap queries). */
  collect(): Promise<readonly GaugeSample[]>;
}

export interface MetricsScraper {
  /** `text/plain; version=0.0.4; charset=utf-8` */
  readonly contentType: string;
  /** Run every collector (each bounded by the timeout), then render the registry in the text format. */
  render(): Promise<string>;
}

export interface ScraperOptions {
  /** The longest a collector may take in one scrape, ms (default 3 000); Prometheus' own scrape timeout is 10 s by default. */
  readonly collectorTimeoutMs?: number;
  /** Told of each collector that failed or timed out (the worker logs it). */
  readonly onError?: (collector: string, error: unknown) => void;
}

/**
 * Renders `registry` for `/metrics`, running `collectors` first, all at once.
 * A collector that fails or takes longer than `collectorTimeoutMs` leaves its
 * gauges empty for that scrape and adds one to
 * `outcome_runtime_scrape_errors_total{collector}`; the other metrics are
 * rendered as usual. A collector still running from an earlier scrape is
 * awaited, not started again, so a slow database never piles up queries.
 * `outcome_runtime_scrape_collector_duration_seconds{collector}` is how long
 * each took in the last scrape.
 */
export function metricsScraper(
  registry: MetricsRegistry,
  collectors: readonly ScrapeCollector[],
  options: ScraperOptions = {},
): MetricsScraper {
  const timeoutMs = options.collectorTimeoutMs ?? 3000;
  const errors = new Counter({
    name: `${METRIC_PREFIX}scrape_errors_total`,
    help: "Collectors of scrape-time gauges that failed or timed out; their gauges are absent from that scrape.",
    labelNames: ["collector"] as const,
    registers: [registry],
  });
  const durations = new Gauge({
    name: `${METRIC_PREFIX}scrape_collector_duration_seconds`,
    help: "How long each collector of scrape-time gauges took in the last scrape, seconds (at most its timeout).",
    labelNames: ["collector"] as const,
    registers: [registry],
  });
  for (const c of collectors) errors.inc({ collector: c.name }, 0);
  const running = new Map<string, Promise<readonly GaugeSample[]>>();

  async function run(collector: ScrapeCollector): Promise<void> {
    const start = performance.now();
    let pending = running.get(collector.name);
    if (pending === undefined) {
      pending = collector.collect().finally(() => running.delete(collector.name));
      running.set(collector.name, pending);
    }
    try {
      const samples = await withTimeout(pending, timeoutMs, `collector ${collector.name}`);
      for (const gauge of collector.gauges) clear(gauge);
      for (const s of samples) s.gauge.set(s.labels, s.value);
    } catch (error) {
      for (const gauge of collector.gauges) clear(gauge);
      errors.inc({ collector: collector.name });
      options.onError?.(collector.name, error);
    } finally {
      durations.set({ collector: collector.name }, (performance.now() - start) / 1000);
    }
  }

  return {
    contentType: METRICS_CONTENT_TYPE,
    async render() {
      await Promise.all(collectors.map(run));
      return registry.metrics();
    },
  };
}

/** No sample at all: `reset()` alone leaves a gauge without labels at 0, which would pass for a reading. */
function clear(gauge: Gauge<string>): void {
  gauge.reset();
  gauge.remove({});
}

/** `promise`, or a rejection after `ms` milliseconds (the work itself goes on). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The queue states counted by `outcome_runtime_queue_jobs`. */
const QUEUE_STATES = ["waiting", "active", "delayed", "prioritized", "failed"] as const satisfies JobType[];

/**
 * Seconds the job next in line has waited: since it was due (its creation plus
 * its delay) or since its last attempt started, whichever is later. BullMQ
 * records no time of entering the waiting list, so a job waiting after a
 * retry's backoff counts from that attempt's start (its backoff included).
 */
export function waitingSeconds(job: Pick<Job, "timestamp" | "opts" | "processedOn">, nowMs: number): number {
  const since = Math.max(job.timestamp + (job.opts.delay ?? 0), job.processedOn ?? 0);
  return Math.max(0, (nowMs - since) / 1000);
}

/**
 * `outcome_runtime_queue_jobs{queue,state}` (BullMQ's job counts) and
 * `outcome_runtime_queue_oldest_job_age_seconds{queue}` (how long the job next
 * in line has waited; 0 when none waits): two Redis round trips per queue.
 */
function queueCollector(
  registry: MetricsRegistry,
  queues: readonly Queue[],
  now: () => number = Date.now,
): ScrapeCollector {
  const jobs = new Gauge({
    name: `${METRIC_PREFIX}queue_jobs`,
    help: "Jobs in each BullMQ queue by state (waiting, active, delayed, prioritized, failed).",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
  });
  const oldest = new Gauge({
    name: `${METRIC_PREFIX}queue_oldest_job_age_seconds`,
    help: "How long the job next in line in each queue has waited to be taken, seconds (0: none waiting).",
    labelNames: ["queue"] as const,
    registers: [registry],
  });
  return {
    name: "queues",
    gauges: [jobs, oldest],
    async collect() {
      const perQueue = await Promise.all(
        queues.map(async (queue) => {
          const [counts, next] = await Promise.all([
            queue.getJobCounts(...QUEUE_STATES),
            queue.getJobs(["wait"], 0, 0, true),
          ]);
          const first = next[0];
          return [
            ...QUEUE_STATES.map((state) => ({
              gauge: jobs,
              labels: { queue: queue.name, state },
              value: counts[state] ?? 0,
            })),
            { gauge: oldest, labels: { queue: queue.name }, value: first ? waitingSeconds(first, now()) : 0 },
          ];
        }),
      );
      return perQueue.flat();
    },
  };
}

/**
 * `outcome_runtime_gates_pending{kind,sla}`: gates waiting for a person, by
 * kind, `sla="running"` within their SLA and `sla="escalated"` past it (with
 * the backup), every kind and both at 0 when none; and
 * `outcome_runtime_gate_sla_remaining_seconds{kind}`: seconds until the
 * nearest end of SLA among the gates of that kind still within theirs
 * (negative once it has passed and the escalation or expiry is still to run;
 * absent when none). One aggregate query over the pending gates.
 */
function gateCollector(registry: MetricsRegistry, deps: Pick<RuntimeDeps, "db" | "now">): ScrapeCollector {
  const pending = new Gauge({
    name: `${METRIC_PREFIX}gates_pending`,
    help: "Gates waiting for a person's decision, all workspaces, by kind; sla: running (within it) or escalated.",
    labelNames: ["kind", "sla"] as const,
    registers: [registry],
  });
  const remaining = new Gauge({
    name: `${METRIC_PREFIX}gate_sla_remaining_seconds`,
    help: "Seconds until the nearest end of SLA among pending gates of a kind within their SLA (negative: escalation due).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  return {
    name: "gates",
    gauges: [pending, remaining],
    async collect() {
      const rows = await gates.summarizePendingGates(deps.db);
      const nowMs = (deps.now?.() ?? new Date()).getTime();
      const byKind = new Map(rows.map((r) => [r.kind, r]));
      return [
        ...GATE_KINDS.flatMap((kind) => [
          { gauge: pending, labels: { kind, sla: "running" }, value: byKind.get(kind)?.running ?? 0 },
          { gauge: pending, labels: { kind, sla: "escalated" }, value: byKind.get(kind)?.escalated ?? 0 },
        ]),
        ...rows.flatMap((r) =>
          r.earliestDueAt === null
            ? []
            : [{ gauge: remaining, labels: { kind: r.kind }, value: (r.earliestDueAt.getTime() - nowMs) / 1000 }],
        ),
      ];
    },
  };
}

/** Whether this worker sends what each outbox holds: gate emails (a mailer), webhooks (a URL). */
export interface OutboxDelivery {
  readonly gateEmails: boolean;
  readonly webhooks: boolean;
}

/**
 * `outcome_runtime_outbox_backlog{kind}` and
 * `outcome_runtime_outbox_oldest_age_seconds{kind}` for the two outboxes:
 * `gate_email` (gate emails waiting or being sent) and `webhook` (webhooks not
 * delivered yet), two counts over partial indexes; and
 * `outcome_runtime_outbox_delivery_enabled{kind}` (1 or 0), so an alert on a
 * growing backlog can leave out webhooks waiting, by design, for a URL.
 */
function outboxCollector(
  registry: MetricsRegistry,
  deps: Pick<RuntimeDeps, "db" | "now">,
  delivery: OutboxDelivery,
): ScrapeCollector {
  const backlog = new Gauge({
    name: `${METRIC_PREFIX}outbox_backlog`,
    help: "Outbox rows not yet handled: gate emails not sent (gate_email), webhooks not delivered (webhook).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const oldest = new Gauge({
    name: `${METRIC_PREFIX}outbox_oldest_age_seconds`,
    help: "Age of the oldest outbox row not yet handled, seconds (0: none).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const enabled = new Gauge({
    name: `${METRIC_PREFIX}outbox_delivery_enabled`,
    help: "1 when this worker delivers the outbox's rows (gate_email: a mailer; webhook: OUTCOME_RUNTIME_WEBHOOK_URL set).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  enabled.set({ kind: "gate_email" }, delivery.gateEmails ? 1 : 0);
  enabled.set({ kind: "webhook" }, delivery.webhooks ? 1 : 0);
  return {
    name: "outbox",
    gauges: [backlog, oldest],
    async collect() {
      const [emails, webhooks] = await Promise.all([
        gateMail.notificationBacklog(deps.db),
        signals.webhookBacklog(deps.db),
      ]);
      const nowMs = (deps.now?.() ?? new Date()).getTime();
      return (
        [
          ["gate_email", emails],
          ["webhook", webhooks],
        ] as const
      ).flatMap(([kind, b]) => [
        { gauge: backlog, labels: { kind }, value: b.count },
        {
          gauge: oldest,
          labels: { kind },
          value: b.oldestAt === null ? 0 : Math.max(0, (nowMs - b.oldestAt.getTime()) / 1000),
        },
      ]);
    },
  };
}

/**
 * `outcome_runtime_llm_spend_month_to_date_usd`: US dollars the LLM gateway
 * spent since the start of the UTC calendar month (the window of the monthly
 * budget), every workspace together. A gauge read from the metering ledger
 * (`llm_calls`), so the API's and the worker's calls both count and a restart
 * loses nothing; it falls to 0 when a month begins. No label: the spend by
 * workspace and operation is in the dashboard (`GET /v1/usage/llm`).
 */
function llmSpendCollector(registry: MetricsRegistry, deps: Pick<RuntimeDeps, "db" | "now">): ScrapeCollector {
  const spend = new Gauge({
    name: `${METRIC_PREFIX}llm_spend_month_to_date_usd`,
    help: "US dollars spent on LLM calls since the start of the UTC month, all workspaces together.",
    registers: [registry],
  });
  return {
    name: "llm_spend",
    gauges: [spend],
    async collect() {
      const now = deps.now?.() ?? new Date();
      const since = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
      const until = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
      return [{ gauge: spend, labels: {}, value: await llm.spentUsdAllWorkspaces(deps.db, { since, until }) }];
    },
  };
}

/**
 * The collectors of the installation's gauges: queues (Redis), pending gates,
 * outboxes and LLM spend (Postgres). Their values are the same from every
 * process that serves them; the worker does.
 */
export function installationCollectors(
  registry: MetricsRegistry,
  deps: Pick<RuntimeDeps, "db" | "now">,
  options: { readonly queues: readonly Queue[]; readonly delivery: OutboxDelivery },
): ScrapeCollector[] {
  return [
    queueCollector(registry, options.queues),
    gateCollector(registry, deps),
    outboxCollector(registry, deps, options.delivery),
    llmSpendCollector(registry, deps),
  ];
}
