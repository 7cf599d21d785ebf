/**
 * `prometheus`: production health per arm, for guardrails and the
 * kill-switch, read by PromQL over a self-hosted Prometheus's HTTP API
 * (`POST /api/v1/query`, `POST /api/v1/query_range`; docs/querying/api.md of
 * github.com/prometheus/prometheus). The service labels its counters and
 * histograms with the experiment and the arm (`experiment_label`, default
 * `experiment`; `arm_label`, default `arm`).
 *
 * The mapping, per arm, cumulative from the experiment's launch
 * (`ExperimentWindow.startedAt`, else `from`) to the window end `to`, every
 * query evaluated at `to` (the API's `time` parameter) over the range
 * `[R s]`, R = to − launch in whole seconds (rounded up):
 *
 * - **Error rate** (`requests`, `errors`: series selectors of two counters):
 *   each request is a unit whose value is 1 when it failed, a proportion:
 *   `units = sum by (experiment, arm) (increase(requests{experiment="<key>"}[R s]))`
 *   and `sum = sum_sq = sum by (experiment, arm) (increase(errors{...}[R s]))`.
 * - **Latency** (`latency`: a histogram's base name, `threshold`: one of its
 *   `le` bounds in seconds, `quantile`, default 0.99): each request is a unit
 *   whose value is 1 when it took longer than `threshold`:
 *   `units = increase(<latency>_count[R s])`, `sum = sum_sq = units −
 *   increase(<latency>_bucket{le="<threshold>"}[R s])`. The stated test: the
 *   `quantile` stays under `threshold` exactly when the share of requests
 *   slower than `threshold` stays under `1 − quantile` (p99 < 300 ms ⇔ fewer
 *   than 1 % of requests slower than 300 ms); the guardrail compares that
 *   share between arms with the same sequential test as any proportion. A
 *   quantile is not a decision metric: `signal:` refuses it
 *   (@outcome-runtime/spec), and a `mean` or `ratio` metric is refused here
 *   (Prometheus keeps no per-request Σx²).
 *
 * `increase()` extrapolates to the range's ends and so returns non-integer
 * counts: each count is rounded to the nearest whole request, and a failed
 * (or slow) count is clamped into [0, units] (the two counters extrapolate a
 * little differently). A counter reset (a restarted process) is handled by
 * `increase()` itself: a drop is read as a restart from zero. A counter whose
 * per-arm series is first scraped after requests were counted misses those
 * requests (Prometheus's first sample is its baseline): initialise each
 * arm's series to 0 at start (docs/connectors.md).
 *
 * Many experiments are read in one request per counter: the experiment
 * label is matched with a regular expression of the keys, each escaped as
 * a literal (`promqlExactRegex`), at most {@link PROMETHEUS_BATCH_MAX_KEYS}
 * per request, experiments of the same launch second together.
 *
 * The outcome's own series: `series_query` through `query_range` (`step`,
 * default 60s), one series, points in (from, to].
 *
 * Prometheus has no rate limit of its own ({@link prometheusPollCost} is
 * null); a 429 or 503 from a proxy in front of it is `rate_limited` or
 * `unavailable` with `retryAfterMs`.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, checkArmAggregates, checkSeries, type RawArmRow } from "../boundary-checks";
import { ConfigReader, show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialFields, credentialRequirements, credentialValue } from "../credentials";
import { isRecord } from "../http-response";
import type { PollCost } from "../request-budget";
import { normalizeApiUrl } from "../vendor-hosts";
import { type PrometheusApiSettings, prometheusPost } from "./prometheus-api";
import {
  LABEL_NAME,
  type LabelMatcher,
  parseSeriesSelector,
  promqlExactRegex,
  promqlString,
  renderSelector,
  type SeriesSelector,
} from "./promql";

const FIELDS = [
  "url",
  ...credentialFields("prometheus"),
  "experiment_label",
  "arm_label",
  "requests",
  "errors",
  "latency",
  "threshold",
  "quantile",
  "series_query",
  "step",
  "timeout",
] as const;

const PROMETHEUS_DEFAULTS = Object.freeze({
  experimentLabel: "experiment",
  armLabel: "arm",
  quantile: 0.99,
  stepSeconds: 60,
  timeoutSeconds: 30,
});

/** Experiment keys per batched request: the regular expression of 100 keys of a few dozen characters is a few KB. */
export const PROMETHEUS_BATCH_MAX_KEYS = 100;

/** Points Prometheus returns per series at most (`exceeded maximum resolution of 11,000 points per timeseries`). */
const PROMETHEUS_MAX_POINTS = 11_000;

/** Host names of cloud metadata services, never a Prometheus server. */
const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"]);

/** What is read per arm. */
type PrometheusRead =
  | { readonly kind: "error_rate"; readonly requests: SeriesSelector; readonly errors: SeriesSelector }
  | {
      readonly kind: "latency";
      readonly histogram: SeriesSelector;
      readonly threshold: number;
      readonly quantile: number;
    };

interface PrometheusSettings {
  readonly api: PrometheusApiSettings;
  readonly experimentLabel: string;
  readonly armLabel: string;
  readonly read: PrometheusRead;
  readonly seriesQuery: string | undefined;
  readonly stepSeconds: number;
}

/**
 * Creates a `prometheus` connector (see the file's comment for the mapping).
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix (a `mean` or `ratio`
 *   metric, a selector that is not one, both or neither of `requests`/`errors` and `latency`, ...);
 *   `source_refused` for a `url` at a cloud metadata address
 */
export function createPrometheusConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (context.metricKind !== "proportion") {
    throw new ConnectorError(
      "invalid_config",
      `prometheus connector: the metric is a ${context.metricKind}, but Prometheus keeps counts and histogram buckets, not each unit's value: it gives no Σx² for a mean's variance, nor a ratio's per-unit products; read an error rate (requests, errors) or the share of requests slower than a latency threshold as kind: proportion`,
      { details: { field: "kind", value: context.metricKind, connector: "prometheus" } },
    );
  }
  const reader = new ConfigReader(config, FIELDS);
  const baseUrl = readUrl(reader);
  const credentials = credentialRequirements(reader);
  const named = (credential: string): string | undefined => {
    const requirement = credentials.find((c) => c.credential === credential);
    return requirement === undefined ? undefined : credentialValue(context.credentials, requirement, "prometheus");
  };
  const token = named("bearer_token");
  const username = named("username");
  const password = named("password");
  if ((username === undefined) !== (password === undefined)) {
    const missing = username === undefined ? "username" : "password";
    throw reader.invalid(
      `${missing}_secret`,
      `is missing, but ${missing === "username" ? "password" : "username"} is given`,
      `basic auth needs both: name the ${missing} with ${missing}_secret or ${missing}_env`,
    );
  }
  if (token !== undefined && username !== undefined) {
    throw reader.invalid(
      "bearer_token_secret",
      "is given together with username and password",
      "keep one way to authenticate: a bearer token, or basic auth",
    );
  }
  const authorization =
    token !== undefined
      ? `Bearer ${token}`
      : username !== undefined
        ? `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`
        : undefined;
  const experimentLabel = readLabel(reader, "experiment_label", PROMETHEUS_DEFAULTS.experimentLabel);
  const armLabel = readLabel(reader, "arm_label", PROMETHEUS_DEFAULTS.armLabel);
  if (experimentLabel === armLabel) {
    throw reader.invalid("arm_label", `is ${show(armLabel)}, the same label as experiment_label`, "name two labels");
  }
  const read = readMetric(reader, [experimentLabel, armLabel]);
  const timeoutSeconds = reader.durationSeconds("timeout", PROMETHEUS_DEFAULTS.timeoutSeconds);
  return new PrometheusConnector({
    api: {
      baseUrl,
      authorization,
      timeoutMs: Math.min(timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY),
      // The default transport is held to the outbound policy (OUTBOUND_ALLOW: a private or loopback server
      // must be allowed by the operator) and to the server's origin: a redirect elsewhere is refused, so the
      // credentials stay with the server.
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
    },
    experimentLabel,
    armLabel,
    read,
    seriesQuery: reader.optionalString("series_query", "write a PromQL expression giving one series"),
    stepSeconds: reader.durationSeconds("step", PROMETHEUS_DEFAULTS.stepSeconds),
  });
}

function readUrl(reader: ConfigReader): string {
  const value = reader.string("url", "write the Prometheus server's base URL, e.g. http://prometheus.internal:9090");
  const url = normalizeApiUrl(value);
  if (url === undefined) {
    throw reader.invalid(
      "url",
      `${show(value)} is not an http(s) URL without credentials, query or fragment`,
      "write the server's base URL, e.g. http://prometheus.internal:9090, and name credentials with bearer_token_secret or username_secret and password_secret",
      { value },
    );
  }
  const host = new URL(url).hostname.replace(/^\[|\]$/gu, "").toLowerCase();
  const linkLocal = /^169\.254\./u.test(host) || /^fe[89ab][0-9a-f]:/u.test(host) || host === "fd00:ec2::254";
  if (linkLocal || METADATA_HOSTS.has(host.replace(/\.$/u, ""))) {
    const problem = `${show(value)} is a cloud metadata or link-local address, never a Prometheus server`;
    const fix = "write the address of your Prometheus server";
    throw new ConnectorError("source_refused", `prometheus connector: url: ${problem}; ${fix}`, {
      details: { connector: "prometheus", field: "url", value, problem, fix },
    });
  }
  return url;
}

function readLabel(reader: ConfigReader, field: string, fallback: string): string {
  const value = reader.optionalString(field, `write a label name such as ${fallback}`) ?? fallback;
  if (!LABEL_NAME.test(value) || value.startsWith("__")) {
    throw reader.invalid(field, `${show(value)} is not a label name`, `write a label name such as ${fallback}`, {
      value,
    });
  }
  return value;
}

function readSelector(
  reader: ConfigReader,
  field: string,
  example: string,
  reserved: readonly string[],
): SeriesSelector {
  const text = reader.string(field, `write a series selector, e.g. ${example}`);
  const parsed = parseSeriesSelector(text);
  if (typeof parsed === "string") {
    throw reader.invalid(
      field,
      `${show(text)} is not a series selector: it ${parsed}`,
      `write a metric name with optional label matchers, e.g. ${example}; the connector adds increase() and the experiment and arm labels itself`,
      { value: text },
    );
  }
  const clash = parsed.matchers.find((m) => reserved.includes(m.name));
  if (clash !== undefined) {
    throw reader.invalid(
      field,
      `${show(text)} matches on ${clash.name}, the label the connector sets to each experiment and arm`,
      `remove the ${clash.name} matcher`,
      { value: text },
    );
  }
  return parsed;
}

function readMetric(reader: ConfigReader, reserved: readonly string[]): PrometheusRead {
  const rate = reader.has("requests") || reader.has("errors");
  const latency = reader.has("latency") || reader.has("threshold") || reader.has("quantile");
  if (rate && latency) {
    throw reader.invalid(
      reader.has("latency") ? "latency" : reader.has("threshold") ? "threshold" : "quantile",
      "is given together with requests/errors",
      "read either an error rate (requests and errors) or a latency threshold (latency and threshold), one per connector",
    );
  }
  if (!rate && !latency) {
    throw reader.invalid(
      "requests",
      "is missing (so are errors and latency)",
      'read an error rate with requests: http_requests_total and errors: http_requests_total{code=~"5.."}, or a latency threshold with latency: http_request_duration_seconds and threshold: 0.3',
    );
  }
  if (rate) {
    return {
      kind: "error_rate",
      requests: readSelector(reader, "requests", 'http_requests_total{job="checkout"}', reserved),
      errors: readSelector(reader, "errors", 'http_requests_total{job="checkout", code=~"5.."}', reserved),
    };
  }
  const histogram = readSelector(reader, "latency", 'http_request_duration_seconds{job="checkout"}', [
    ...reserved,
    "le",
  ]);
  if (/_(bucket|count|sum)$/u.test(histogram.metric)) {
    throw reader.invalid(
      "latency",
      `${show(histogram.metric)} names one of the histogram's series`,
      `write the histogram's base name (${histogram.metric.replace(/_(bucket|count|sum)$/u, "")}); the connector reads its _count and _bucket`,
      { value: histogram.metric },
    );
  }
  const threshold = reader.positiveNumber("threshold");
  if (threshold === undefined) {
    throw reader.invalid(
      "threshold",
      "is missing",
      "write the latency bound in seconds, one of the histogram's le buckets (e.g. threshold: 0.3)",
    );
  }
  const quantile = reader.has("quantile") ? reader.raw("quantile") : PROMETHEUS_DEFAULTS.quantile;
  if (typeof quantile !== "number" || !(quantile > 0 && quantile < 1)) {
    throw reader.invalid("quantile", `${show(quantile)} is not a fraction between 0 and 1`, "write e.g. 0.99", {
      value: quantile,
    });
  }
  return { kind: "latency", histogram, threshold, quantile };
}

/**
 * What a `prometheus` connector costs against a request budget: nothing.
 * Prometheus is the team's own server and documents no request rate limit,
 * so polls are not budgeted (a proxy's 429 still pauses the poll through
 * `retryAfterMs`).
 */
export function prometheusPollCost(_config: ConnectorConfig): PollCost | null {
  return null;
}

/** `prometheus` settings always read experiments in batches (one request per counter for many experiments). */
export function prometheusReadsInBatches(_config: ConnectorConfig): boolean {
  return true;
}

/** One request group: experiments sharing a launch second. */
interface Group {
  readonly keys: readonly string[];
  readonly start: Date;
}

/** Per experiment key, per arm: the cumulative count a query returned. */
type Counts = Map<string, Map<string, number>>;

class PrometheusConnector implements SignalConnector {
  readonly type = "prometheus";

  constructor(private readonly settings: PrometheusSettings) {}

  describe(): string {
    const s = this.settings;
    const by = `by ${s.experimentLabel}, ${s.armLabel}`;
    if (s.read.kind === "error_rate") {
      return `prometheus ${s.api.baseUrl}: error rate increase(${renderSelector(s.read.errors, [])}) / increase(${renderSelector(s.read.requests, [])}) ${by}`;
    }
    const q = s.read.quantile;
    return `prometheus ${s.api.baseUrl}: share of requests slower than ${s.read.threshold}s in ${renderSelector(s.read.histogram, [])} ${by} (p${Number((q * 100).toFixed(4))} < ${s.read.threshold}s ⇔ share < ${Number(((1 - q) * 100).toFixed(4))}%)`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const start = window.startedAt !== undefined && window.startedAt < window.to ? window.startedAt : window.from;
    const rows = await this.readGroup({ keys: [window.experimentKey], start }, window.to, signal);
    const mine = rows.get(window.experimentKey) ?? [];
    if (mine instanceof ConnectorError) throw mine;
    return checkArmAggregates(mine, window, "proportion", "prometheus");
  }

  /**
   * The experiments of `window` in request groups (the same launch second, at
   * most {@link PROMETHEUS_BATCH_MAX_KEYS} keys), each two queries. Each
   * experiment's rows are checked as `fetchArmAggregates` checks them; an error
   * there (a NaN count, a series without the arm label) is that experiment's.
   *
   * @throws ConnectorError when a request fails, or `bad_response` when a series names no experiment of its request
   */
  async fetchBatchAggregates(window: BatchWindow, signal?: AbortSignal): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    const byStart = new Map<number, string[]>();
    for (const e of window.experiments) {
      // Counted from the launch (a cumulative aggregate), not from the watermark.
      const start = e.startedAt !== undefined && e.startedAt < window.to ? e.startedAt : e.from;
      const second = Math.floor(start.getTime() / 1000) * 1000;
      byStart.set(second, [...(byStart.get(second) ?? []), e.experimentKey]);
    }
    const groups: Group[] = [];
    for (const [second, keys] of byStart) {
      for (let i = 0; i < keys.length; i += PROMETHEUS_BATCH_MAX_KEYS) {
        groups.push({ keys: keys.slice(i, i + PROMETHEUS_BATCH_MAX_KEYS), start: new Date(second) });
      }
    }
    const answers = await Promise.all(groups.map((g) => this.readGroup(g, window.to, signal)));
    const answer: BatchAggregates = new Map();
    for (const e of window.experiments) {
      const rows = answers.find((a) => a.has(e.experimentKey))?.get(e.experimentKey) ?? [];
      if (rows instanceof ConnectorError) {
        answer.set(e.experimentKey, rows);
        continue;
      }
      try {
        answer.set(e.experimentKey, checkArmAggregates(rows, { ...e, to: window.to }, "proportion", "prometheus"));
      } catch (error) {
        if (!(error instanceof ConnectorError)) throw error;
        answer.set(e.experimentKey, error);
      }
    }
    return answer;
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.settings;
    if (s.seriesQuery === undefined) {
      throw new ConnectorError(
        "unsupported",
        'prometheus connector: series_query is not set; write a PromQL expression giving the outcome\'s one series (e.g. sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])))',
        { details: { field: "series_query" } },
      );
    }
    const stepMs = s.stepSeconds * 1000;
    const points: { ts: number; value: number }[] = [];
    // Points at from + k·step, k ≥ 1, up to to; at most PROMETHEUS_MAX_POINTS per request.
    let start = window.from.getTime() + stepMs;
    while (start <= window.to.getTime()) {
      const end = Math.min(window.to.getTime(), start + (PROMETHEUS_MAX_POINTS - 1) * stepMs);
      const { resultType, result } = await prometheusPost(
        s.api,
        "/api/v1/query_range",
        { query: s.seriesQuery, start: seconds(start), end: seconds(end), step: `${s.stepSeconds}s` },
        "series_query",
        signal,
      );
      if (resultType !== "matrix" || !Array.isArray(result)) {
        throw resultTypeError("series_query", resultType, "matrix", "/api/v1/query_range");
      }
      if (result.length > 1) {
        throw new ConnectorError(
          "bad_response",
          `prometheus connector: series_query returned ${result.length} series, the outcome has one; aggregate it (e.g. wrap it in sum(...))`,
          { details: { field: "series_query", series: result.length } },
        );
      }
      const values = isRecord(result[0]) ? result[0].values : [];
      if (!Array.isArray(values)) throw shapeError("series_query", "a series without values");
      for (const pair of values) {
        const [ts, value] = samplePair(pair, "series_query");
        if (!Number.isFinite(value)) {
          throw new ConnectorError(
            "bad_response",
            `prometheus connector: series_query is ${show(String(value))} at ${new Date(ts).toISOString()}; return a finite number at every step (guard a division with clamp_min or > 0)`,
            { details: { field: "series_query", ts: new Date(ts).toISOString() } },
          );
        }
        if (ts > window.from.getTime()) points.push({ ts, value });
      }
      start = end + stepMs;
    }
    return checkSeries(
      points.map((p) => ({ ts: new Date(p.ts), value: p.value })),
      window,
      "prometheus series_query",
    );
  }

  async close(): Promise<void> {}

  /**
   * The raw rows of every experiment of `group` as of `to`: per experiment its
   * rows, or the error of that experiment alone.
   */
  private async readGroup(
    group: Group,
    to: Date,
    signal: AbortSignal | undefined,
  ): Promise<Map<string, RawArmRow[] | ConnectorError>> {
    const s = this.settings;
    const rangeSeconds = Math.max(1, Math.ceil((to.getTime() - group.start.getTime()) / 1000));
    const matcher: LabelMatcher =
      group.keys.length === 1
        ? { name: s.experimentLabel, op: "=", literal: promqlString(group.keys[0] ?? "") }
        : { name: s.experimentLabel, op: "=~", literal: promqlString(promqlExactRegex(group.keys)) };
    const by = `${s.experimentLabel}, ${s.armLabel}`;
    const query = (selector: SeriesSelector, extraBy = ""): string =>
      `sum by (${by}${extraBy}) (increase(${renderSelector(selector, [matcher])}[${rangeSeconds}s]))`;
    const failed = new Map<string, ConnectorError>();
    const time = seconds(to.getTime());
    const instant = async (expression: string, field: string, withLe = false) => {
      const { resultType, result } = await prometheusPost(
        s.api,
        "/api/v1/query",
        { query: expression, time },
        field,
        signal,
      );
      if (resultType !== "vector" || !Array.isArray(result)) {
        throw resultTypeError(field, resultType, "vector", "/api/v1/query");
      }
      return this.countsOf(result, group, field, failed, withLe);
    };

    const rows = new Map<string, RawArmRow[] | ConnectorError>(group.keys.map((k) => [k, []]));
    let units: Counts;
    let failures: Counts;
    let failureField: string;
    if (s.read.kind === "error_rate") {
      [units, failures] = await Promise.all([
        instant(query(s.read.requests), "requests"),
        instant(query(s.read.errors), "errors"),
      ]);
      failureField = "errors";
    } else {
      const h = s.read.histogram;
      const [count, buckets] = await Promise.all([
        instant(query({ metric: `${h.metric}_count`, matchers: h.matchers }), "latency"),
        instant(query({ metric: `${h.metric}_bucket`, matchers: h.matchers }, ", le"), "latency", true),
      ]);
      units = count;
      failures = slowCounts(count, buckets, s.read.threshold, failed);
      failureField = "threshold";
    }
    for (const key of group.keys) {
      const error = failed.get(key);
      if (error !== undefined) {
        rows.set(key, error);
        continue;
      }
      const armUnits = units.get(key) ?? new Map<string, number>();
      const armFailures = failures.get(key) ?? new Map<string, number>();
      const out: RawArmRow[] = [];
      for (const [arm, n] of armUnits) {
        const total = Math.round(n);
        const bad = Math.round(armFailures.get(arm) ?? 0);
        // Clamped into [0, units]: the two counters extrapolate to the range's ends a little differently.
        const sum = total >= 0 ? Math.min(Math.max(bad, 0), total) : bad;
        out.push({ arm, units: total, sum, sum_sq: sum, ts: null, location: `arm ${JSON.stringify(arm)}` });
      }
      const orphan = [...armFailures.keys()].find((arm) => !armUnits.has(arm));
      if (orphan !== undefined) {
        rows.set(
          key,
          new ConnectorError(
            "bad_response",
            `prometheus connector: ${failureField === "errors" ? "errors" : "latency"}: experiment ${JSON.stringify(key)} arm ${JSON.stringify(orphan)} has ${failureField === "errors" ? "failed requests" : "histogram buckets"} but no ${failureField === "errors" ? "requests" : "_count"} series; both must carry the same ${s.experimentLabel} and ${s.armLabel} labels (check the requests selector)`,
            { details: { field: failureField === "errors" ? "requests" : "latency", experiment: key, arm: orphan } },
          ),
        );
        continue;
      }
      rows.set(key, out);
    }
    return rows;
  }

  /**
   * A vector's samples by experiment and arm (and `le` when `withLe`, keyed
   * `arm\u0000le`). A series naming no experiment of the group is an error of
   * the whole read; a series without the arm label, or a NaN or infinite count,
   * is its experiment's error (put in `failed`).
   */
  private countsOf(
    result: readonly unknown[],
    group: Group,
    field: string,
    failed: Map<string, ConnectorError>,
    withLe: boolean,
  ): Counts {
    const s = this.settings;
    const counts: Counts = new Map();
    for (const item of result) {
      if (!isRecord(item) || !isRecord(item.metric)) throw shapeError(field, "a sample without a metric object");
      const key = item.metric[s.experimentLabel];
      if (typeof key !== "string" || !group.keys.includes(key)) {
        throw new ConnectorError(
          "bad_response",
          `prometheus connector: ${field}: a series ${typeof key === "string" ? `names experiment ${JSON.stringify(key.slice(0, 100))}, not one of the ${group.keys.length} asked for` : `has no ${s.experimentLabel} label`}; check experiment_label and url`,
          { details: { field, experimentLabel: s.experimentLabel } },
        );
      }
      const [, value] = samplePair(item.value, field);
      const arm = item.metric[s.armLabel];
      if (typeof arm !== "string") {
        if (!failed.has(key)) {
          failed.set(
            key,
            new ConnectorError(
              "bad_response",
              `prometheus connector: ${field}: experiment ${JSON.stringify(key)} has ${show(value)} counted on series without the ${s.armLabel} label; label every series of the experiment with its arm, or set arm_label to the label that holds it`,
              { details: { field: "arm_label", armLabel: s.armLabel, experiment: key } },
            ),
          );
        }
        continue;
      }
      if (!Number.isFinite(value)) {
        if (!failed.has(key)) {
          failed.set(
            key,
            new ConnectorError(
              "bad_response",
              `prometheus connector: ${field}: experiment ${JSON.stringify(key)} arm ${JSON.stringify(arm)}: the count is ${String(value)}, not a number of requests; a counter must hold finite values (a NaN or infinite sample was scraped)`,
              { details: { field, experiment: key, arm, value: String(value) } },
            ),
          );
        }
        continue;
      }
      const le = item.metric.le;
      const slot = withLe ? `${arm}\u0000${typeof le === "string" ? le : ""}` : arm;
      const byArm = counts.get(key) ?? new Map<string, number>();
      byArm.set(slot, (byArm.get(slot) ?? 0) + value);
      counts.set(key, byArm);
    }
    return counts;
  }
}

/**
 * The requests slower than `threshold` per experiment and arm: the arm's
 * count minus its bucket `le` = threshold. An experiment whose buckets have no
 * bound equal to the threshold fails, naming the bounds found.
 */
function slowCounts(count: Counts, buckets: Counts, threshold: number, failed: Map<string, ConnectorError>): Counts {
  const slow: Counts = new Map();
  for (const [key, arms] of count) {
    const bucketArms = new Set([...(buckets.get(key)?.keys() ?? [])].map((slot) => slot.split("\u0000")[0]));
    const bare = [...arms.keys()].find((arm) => !bucketArms.has(arm));
    if (bare !== undefined && !failed.has(key)) {
      failed.set(
        key,
        new ConnectorError(
          "bad_response",
          `prometheus connector: latency: experiment ${JSON.stringify(key)} arm ${JSON.stringify(bare)} has a _count series but no _bucket series; latency must name a histogram (a summary has no buckets)`,
          { details: { field: "latency", experiment: key, arm: bare } },
        ),
      );
    }
  }
  for (const [key, slots] of buckets) {
    const bounds = new Set<string>();
    const fast = new Map<string, number>();
    for (const [slot, value] of slots) {
      const [arm = "", le = ""] = slot.split("\u0000");
      bounds.add(le);
      if (leValue(le) === threshold) fast.set(arm, value);
    }
    const arms = new Set([...slots.keys()].map((slot) => slot.split("\u0000")[0] ?? ""));
    const missing = [...arms].filter((arm) => !fast.has(arm));
    if (missing.length > 0) {
      if (!failed.has(key)) {
        const found = [...bounds].sort((a, b) => leValue(a) - leValue(b)).join(", ");
        failed.set(
          key,
          new ConnectorError(
            "query_failed",
            `prometheus connector: threshold: ${threshold} is not one of the histogram's le bounds (found ${found}); write one of them as threshold, or add a bucket at ${threshold}s to the histogram`,
            { details: { field: "threshold", value: threshold, bounds: [...bounds], experiment: key } },
          ),
        );
      }
      continue;
    }
    const armsCount = count.get(key) ?? new Map<string, number>();
    const out = new Map<string, number>();
    for (const [arm, f] of fast) out.set(arm, Math.round(armsCount.get(arm) ?? f) - Math.round(f));
    slow.set(key, out);
  }
  return slow;
}

/** A bucket's `le` label as a number (`+Inf` as Prometheus writes it). */
function leValue(le: string): number {
  return le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
}

/** `[<unix seconds>, "<value>"]` as milliseconds and a number (NaN, ±Inf as Prometheus writes them). */
function samplePair(pair: unknown, field: string): [number, number] {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "number" || typeof pair[1] !== "string") {
    throw shapeError(field, `a sample ${show(pair)} that is not [<time>, "<value>"]`);
  }
  const text = pair[1];
  const value = text === "+Inf" ? Number.POSITIVE_INFINITY : text === "-Inf" ? Number.NEGATIVE_INFINITY : Number(text);
  if (Number.isNaN(value) && text !== "NaN") throw shapeError(field, `a sample value ${show(text)}`);
  return [Math.round(pair[0] * 1000), value];
}

function shapeError(field: string, what: string): ConnectorError {
  return new ConnectorError("bad_response", `prometheus connector: ${field}: the answer has ${what}; check url`, {
    details: { field },
  });
}

function resultTypeError(field: string, got: string, expected: string, path: string): ConnectorError {
  return new ConnectorError(
    "bad_response",
    `prometheus ${path}: ${field} gave a ${got}, where a ${expected} belongs${field === "series_query" ? "; write an expression giving one series (an instant vector)" : ""}; check url`,
    { details: { field, resultType: got, expected } },
  );
}

/** Unix seconds with milliseconds, as the API takes them. */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}
