/**
 * `datadog`: production health per arm from Datadog's metrics query API
 * (`GET /api/v1/query`, through the official client), for guardrails and the
 * kill-switch: an error rate, or the share of requests slower than a
 * threshold, each a proportion.
 *
 * Per arm, over the experiment's range (from its launch, `startedAt`, else
 * `from`, to the window end `to`):
 * - units = the total of `requests` (a count metric, e.g.
 *   `sum:trace.http.request.hits{service:checkout}`),
 * - sum = sum_sq = the total of `errors` (an error rate) or of
 *   `slow_requests` (a count of requests slower than a threshold T the service
 *   emits: the share slower than T; "p99 under T" holds exactly when that
 *   share is under 1 %),
 * each read as `sum:<metric>{<filter> AND <experiment_tag>:<key> AND <arm_tag>
 * IN (<arms>)} by {<experiment_tag>,<arm_tag>}.as_count().rollup(sum, <range
 * seconds>)`: one series per arm, its points summed. Totals are floats; they
 * are rounded to whole counts, and errors above requests by one after rounding
 * are clamped to them (more is refused: `wholeCounts`).
 *
 * Datadog lowercases tag values at intake: keys and arms are matched without
 * case (the query asks for the lowercased value); a key or arm that is not a
 * possible tag value (a blank, `,`, `:`, a brace or parenthesis, a quote) is
 * refused, so it can never widen the filter. Two arms (or two keys of a batch)
 * equal but for case are refused, as Datadog cannot tell them apart.
 *
 * A mean or a ratio is refused: the API gives per-arm totals, never the sum of
 * squares of per-unit values a mean's variance needs. A percentile (`p99:`) is
 * refused as a count: a latency guardrail is a share of slow requests.
 *
 * Batches (`fetchBatchAggregates`): the same two queries for many experiments,
 * `<experiment_tag> IN (k1, k2, ...)`, grouped by experiment and arm; one pair
 * of requests per group of experiments starting at the same second, at most
 * {@link DATADOG_BATCH_MAX_KEYS} keys.
 *
 * An empty `series` (a metric with no points for these tags, including a
 * metric that does not exist: Datadog answers both alike) is "no data yet":
 * no row; `outcome-runtime signals test` shows it as no rows, so a misspelt
 * metric is caught there (docs/connectors.md).
 *
 * Each read spends its requests of the organisation's hourly budget first
 * (`request-budget.ts`), and a 429 pauses it for `X-RateLimit-Reset`.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, checkArmAggregates, checkSeries, type RawArmRow } from "../boundary-checks";
import { ConfigReader } from "../config-reader";
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
import { credentialFields, credentialValue, readCredentialRef } from "../credentials";
import { linked } from "../http-response";
import { type PollCost, type RequestBudgetLimits, requestBudget } from "../request-budget";
import { normalizeApiUrl, vendorApiUrl } from "../vendor-hosts";
import {
  checkTagValue,
  type MetricQuery,
  parseMetricQuery,
  seriesTotal,
  TAG_KEY,
  tagOf,
  totalsQuery,
  wholeCounts,
} from "./metrics-query";
import { type QueryAnswer, type QueryCallSettings, queryMetrics } from "./query-client";

const FIELDS = [
  ...credentialFields("datadog"),
  "site",
  "api_url",
  "requests",
  "errors",
  "slow_requests",
  "experiment_tag",
  "arm_tag",
  "series_query",
  "requests_per_hour",
  "timeout",
] as const;

/**
 * Datadog's sites (the `site` server variable of the published API
 * description, `.generator/schemas/v1/openapi.yaml`): US1, US3, US5, EU, AP1,
 * AP2, UK1, US1-FED and US2-FED. The API host is `api.<site>`.
 */
const DATADOG_SITES = [
  "datadoghq.com",
  "us3.datadoghq.com",
  "us5.datadoghq.com",
  "datadoghq.eu",
  "ap1.datadoghq.com",
  "ap2.datadoghq.com",
  "uk1.datadoghq.com",
  "ddog-gov.com",
  "us2.ddog-gov.com",
] as const;

/** The API base URL of a site. */
function datadogApiUrl(site: (typeof DATADOG_SITES)[number]): string {
  return `https://api.${site}`;
}

/** Datadog's rate-limit page: the limits and the `X-RateLimit-*` headers. */
const RATE_LIMIT_DOCS = "https://docs.datadoghq.com/api/latest/rate-limits/";

/**
 * Requests an hour of the metrics query API per organisation: Datadog's
 * documented default for metric retrieval, 100 per hour per organisation
 * (docs.datadoghq.com/api/latest/rate-limits/; the page now says limits vary
 * by endpoint and are given in the `X-RateLimit-*` headers, and can be raised
 * by Datadog's support: `requests_per_hour` then says the organisation's own).
 */
export const DATADOG_QUERIES_PER_HOUR = 100;

/**
 * Concurrent requests per organisation. Datadog documents no concurrency
 * limit for the metrics query API; a few at a time keeps a batch's requests
 * from bursting through the hourly limit's period.
 */
const DATADOG_MAX_CONCURRENT = 4;

/** Share of the hourly budget planned for polling; the rest is for retries and people (`signals test`, check). */
const PLANNED_SHARE = 0.8;

/** Experiment keys per batched request: the filter stays a few kilobytes, well inside a request line. */
export const DATADOG_BATCH_MAX_KEYS = 50;

/** Datadog keeps metrics for 15 months: a range starting earlier is read from then. */
const RETENTION_MS = 15 * 30 * 86_400_000;

const DEFAULTS = Object.freeze({
  site: "datadoghq.com" as const,
  experimentTag: "experiment",
  armTag: "arm",
  timeoutSeconds: 30,
});

interface DatadogSettings {
  readonly call: QueryCallSettings;
  readonly site: string;
  readonly requests: MetricQuery;
  readonly numerator: MetricQuery;
  readonly experimentTag: string;
  readonly armTag: string;
  readonly seriesQuery: string | undefined;
}

/**
 * The pieces of the settings the connector and {@link datadogPollCost} both
 * read. `allowed` are the operator's other API bases; `"unchecked"` reads
 * `api_url` without the host policy (the poll cost only names the budget).
 */
function readLimits(
  reader: ConfigReader,
  allowed: readonly string[] | "unchecked" | undefined,
): { baseUrl: string; limits: RequestBudgetLimits } {
  const site = reader.oneOf("site", DATADOG_SITES, DEFAULTS.site);
  const apiUrl = reader.optionalString(
    "api_url",
    "write a URL such as https://api.datadoghq.eu, or leave it out and set site",
  );
  const baseUrl =
    apiUrl === undefined
      ? datadogApiUrl(site)
      : allowed === "unchecked"
        ? (normalizeApiUrl(apiUrl) ?? apiUrl)
        : vendorApiUrl(reader, "api_url", apiUrl, DATADOG_SITES.map(datadogApiUrl), allowed);
  const apiKeyRef = readCredentialRef(reader, "api_key", "the organisation's Datadog API key");
  const perHour = reader.integer("requests_per_hour", DATADOG_QUERIES_PER_HOUR, 1, 100_000);
  return {
    baseUrl,
    limits: {
      vendor: "datadog",
      scope: `the organisation of ${apiKeyRef.field} ${apiKeyRef.ref.name} on ${new URL(baseUrl).host}`,
      key: `${baseUrl}|${apiKeyRef.ref.via}:${apiKeyRef.ref.name}`,
      perHour,
      maxConcurrent: DATADOG_MAX_CONCURRENT,
      docs: RATE_LIMIT_DOCS,
    },
  };
}

/**
 * Creates a `datadog` connector from its settings; the keys come resolved in
 * `context.credentials` (`api_key`, `application_key`).
 *
 * @throws ConnectorError `invalid_config` naming the setting (a mean or a ratio, a query that is not
 *   `sum:<metric>{<filter>}`, neither or both of `errors` and `slow_requests`); `source_refused` for an
 *   `api_url` that is neither a Datadog site nor allowed by `SOURCE_API_URLS`
 */
export function createDatadogConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  const reader = new ConfigReader(config, FIELDS);
  if (context.metricKind !== "proportion") {
    throw reader.invalid(
      "type",
      `the metric is a ${context.metricKind}, whose variance needs each unit's values (a sum of squares), which Datadog's metric totals do not give`,
      "read a proportion from Datadog (an error rate: errors out of requests, or the share of requests slower than a threshold: slow_requests out of requests), or read the metric from a source with per-unit rows",
      { value: "datadog", kind: context.metricKind },
    );
  }
  const { baseUrl, limits } = readLimits(reader, context.allowedApiUrls?.datadog);
  const apiKey = credentialValue(
    context.credentials,
    readCredentialRef(reader, "api_key", "the organisation's Datadog API key"),
    "datadog",
  );
  const applicationKey = credentialValue(
    context.credentials,
    readCredentialRef(reader, "application_key", "a Datadog application key with the timeseries_query scope"),
    "datadog",
  );
  const requests = parseMetricQuery(
    "requests",
    reader.string(
      "requests",
      "write the query of the requests' count metric, e.g. sum:trace.http.request.hits{service:checkout}",
    ),
  );
  const errors = reader.optionalString("errors", "write the query of the errors' count metric");
  const slow = reader.optionalString("slow_requests", "write the query of the slow requests' count metric");
  if ((errors === undefined) === (slow === undefined)) {
    throw reader.invalid(
      errors === undefined ? "errors" : "slow_requests",
      errors === undefined ? "is missing (so is slow_requests)" : "is set together with slow_requests",
      "give one numerator: errors (an error rate, e.g. sum:trace.http.request.errors{service:checkout}) or slow_requests (the share of requests slower than a threshold, a count metric the service emits)",
    );
  }
  const numerator =
    errors === undefined ? parseMetricQuery("slow_requests", slow ?? "") : parseMetricQuery("errors", errors);
  const tagKey = (field: "experiment_tag" | "arm_tag", fallback: string): string => {
    const value = reader.optionalString(field, `write a tag key such as ${fallback}`) ?? fallback;
    if (!TAG_KEY.test(value)) {
      throw reader.invalid(
        field,
        `${JSON.stringify(value)} is not a Datadog tag key as Datadog stores it`,
        `write a lowercase tag key (letters, digits, _, -, . and /, starting with a letter), e.g. ${fallback}`,
        { value },
      );
    }
    return value;
  };
  const experimentTag = tagKey("experiment_tag", DEFAULTS.experimentTag);
  const armTag = tagKey("arm_tag", DEFAULTS.armTag);
  if (experimentTag === armTag) {
    throw reader.invalid(
      "arm_tag",
      `is the same tag as experiment_tag (${armTag})`,
      "name the arm's own tag, e.g. arm",
    );
  }
  const timeoutSeconds = reader.durationSeconds("timeout", DEFAULTS.timeoutSeconds);
  const timeoutMs = Math.min(timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY);
  return new DatadogConnector({
    call: {
      baseUrl,
      apiKey,
      applicationKey,
      timeoutMs,
      // Held to the outbound policy and to the API's origin: a redirect elsewhere is refused, so the keys stay with Datadog.
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
      budget: requestBudget(limits),
    },
    site: new URL(baseUrl).host,
    requests,
    numerator,
    experimentTag,
    armTag,
    seriesQuery: reader.optionalString(
      "series_query",
      "write a Datadog metric query, e.g. sum:checkout.orders{env:prod}.as_count()",
    ),
  });
}

/** Requests one read of `groups` groups of experiments costs: the requests' and the numerator's query per group. */
const REQUESTS_PER_GROUP = 2;

/**
 * What polling a `datadog` connector costs its organisation's budget: two
 * requests (requests, numerator) per round of up to
 * {@link DATADOG_BATCH_MAX_KEYS} experiments, whatever their arms, out of
 * {@link DATADOG_QUERIES_PER_HOUR} an hour (or `requests_per_hour`), 80 % of
 * it planned for polling. Null when the settings cannot be read (their error
 * is reported where the connector is created).
 */
export function datadogPollCost(config: ConnectorConfig): PollCost | null {
  let limits: RequestBudgetLimits;
  try {
    limits = readLimits(new ConfigReader(config, FIELDS), "unchecked").limits;
  } catch {
    return null;
  }
  return {
    limits,
    plannedPerHour: Math.max(1, Math.floor(limits.perHour * PLANNED_SHARE)),
    requestsPerRound: (experiments) =>
      REQUESTS_PER_GROUP * Math.max(1, Math.ceil(experiments / DATADOG_BATCH_MAX_KEYS)),
  };
}

/** One batched request pair: experiments read over the same range. */
interface Group {
  readonly experiments: { readonly key: string; readonly tag: string; readonly arms: readonly string[] }[];
  readonly fromMs: number;
}

class DatadogConnector implements SignalConnector {
  readonly type = "datadog";

  constructor(private readonly s: DatadogSettings) {}

  describe(): string {
    const s = this.s;
    const what = s.numerator.field === "errors" ? "error rate" : "share of slow requests";
    return `datadog ${s.site}: ${what}, ${s.numerator.metric} out of ${s.requests.metric} by ${s.experimentTag}/${s.armTag}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const experiment = this.tagged(window.experimentKey, window.arms);
    if (experiment instanceof ConnectorError) throw experiment;
    const fromMs = this.rangeStart(window.startedAt ?? window.from, window.to);
    this.s.call.budget.spend(REQUESTS_PER_GROUP);
    const answer = await this.readGroup({ experiments: [experiment], fromMs }, window.to, signal);
    const result = answer.get(window.experimentKey);
    if (result instanceof ConnectorError) throw result;
    return result ?? [];
  }

  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    return (window, signal) => this.batchRead(window, signal);
  }

  /**
   * The experiments of `window` in groups sharing a range start, each two
   * queries; an experiment whose key or arms cannot be tag values gets its
   * own `invalid_config`, the others are read.
   *
   * @throws ConnectorError when a request fails, or when the budget cannot pay for the batch (nothing sent)
   */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    const answer: BatchAggregates = new Map();
    const byStart = new Map<number, Group["experiments"]>();
    for (const e of window.experiments) {
      const tagged = this.tagged(e.experimentKey, e.arms);
      if (tagged instanceof ConnectorError) {
        answer.set(e.experimentKey, tagged);
        continue;
      }
      const fromMs = this.rangeStart(e.startedAt ?? e.from, window.to);
      byStart.set(fromMs, [...(byStart.get(fromMs) ?? []), tagged]);
    }
    const groups: Group[] = [];
    for (const [fromMs, experiments] of byStart) {
      let current: Group["experiments"] = [];
      const seen = new Set<string>();
      for (const e of experiments) {
        // Two keys equal but for case are one tag value to Datadog: they go to separate requests.
        if (current.length >= DATADOG_BATCH_MAX_KEYS || seen.has(e.tag)) {
          groups.push({ experiments: current, fromMs });
          current = [];
          seen.clear();
        }
        current.push(e);
        seen.add(e.tag);
      }
      if (current.length > 0) groups.push({ experiments: current, fromMs });
    }
    if (groups.length === 0) return answer;
    this.s.call.budget.spend(REQUESTS_PER_GROUP * groups.length);
    const read = await linked(signal, (poll) => Promise.all(groups.map((g) => this.readGroup(g, window.to, poll))));
    for (const part of read) for (const [key, value] of part) answer.set(key, value);
    return answer;
  }

  /** The experiment's key and arms as tag values, or its `invalid_config`. */
  private tagged(key: string, arms: readonly string[]): Group["experiments"][number] | ConnectorError {
    const refuse = (what: string, problem: string): ConnectorError =>
      new ConnectorError(
        "invalid_config",
        `datadog connector: the ${what} ${problem}; Datadog tags hold letters, digits, _, -, . and / only, lowercased: use such keys and arm names for experiments read from Datadog`,
        { details: { connector: "datadog", experimentKey: key, problem } },
      );
    const tag = checkTagValue(this.s.experimentTag, key);
    if ("problem" in tag) return refuse(`experiment key`, tag.problem);
    const lowered = new Map<string, string>();
    for (const arm of arms) {
      const value = checkTagValue(this.s.armTag, arm);
      if ("problem" in value) return refuse(`arm of ${JSON.stringify(key)}`, value.problem);
      const other = lowered.get(value.ok);
      if (other !== undefined) {
        return refuse(
          `arms of ${JSON.stringify(key)}`,
          `${JSON.stringify(other)} and ${JSON.stringify(arm)} are one tag value once lowercased, as Datadog stores tags`,
        );
      }
      lowered.set(value.ok, arm);
    }
    return { key, tag: tag.ok, arms };
  }

  /** The range's start: `from`, no earlier than Datadog's retention before `to`, on a whole second. */
  private rangeStart(from: Date, to: Date): number {
    const start = Math.max(from.getTime(), to.getTime() - RETENTION_MS);
    return Math.floor(start / 1000) * 1000;
  }

  /** The two queries of one group, split by experiment and checked. */
  private async readGroup(group: Group, to: Date, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    const s = this.s;
    const fromSeconds = group.fromMs / 1000;
    const toSeconds = Math.max(fromSeconds + 1, Math.floor(to.getTime() / 1000));
    const range = toSeconds - fromSeconds;
    const keys = group.experiments.map((e) => e.tag);
    const arms = [...new Set(group.experiments.flatMap((e) => e.arms.map((a) => a.toLowerCase())))];
    const tags = { experimentTag: s.experimentTag, armTag: s.armTag };
    const read = (q: MetricQuery, poll: AbortSignal): Promise<QueryAnswer> =>
      queryMetrics(s.call, q.field, totalsQuery(q, tags, keys, arms, range), fromSeconds, toSeconds, poll);
    const [requests, numerator] = await linked(signal, (poll) =>
      Promise.all([read(s.requests, poll), read(s.numerator, poll)]),
    );
    const window = { fromMs: fromSeconds * 1000, toMs: toSeconds * 1000 };
    const byTag = new Map(group.experiments.map((e) => [e.tag, e]));
    /** Experiment tag → arm (as asked) → totals; or the experiment's error. */
    const totals = new Map<
      string,
      Map<string, { requests: number; numerator: number; seen: Set<string> }> | ConnectorError
    >();
    for (const [field, answer] of [
      [s.requests.field, requests],
      [s.numerator.field, numerator],
    ] as const) {
      const answerWindow = { ...window, answerFromMs: answer.fromDate };
      for (const series of answer.series) {
        const tag = tagOf(series, s.experimentTag);
        const experiment = tag === undefined ? undefined : byTag.get(tag);
        if (experiment === undefined) {
          throw new ConnectorError(
            "bad_response",
            `datadog /api/v1/query: the ${field} series ${JSON.stringify(series.scope)} names no experiment this request asked for (${s.experimentTag} of ${keys.join(", ")}); check experiment_tag and api_url`,
            { details: { field, scope: series.scope } },
          );
        }
        const byArm = totals.get(experiment.tag) ?? new Map();
        if (byArm instanceof ConnectorError) continue;
        totals.set(experiment.tag, byArm);
        const armTag = tagOf(series, s.armTag);
        const arm = experiment.arms.find((a) => a.toLowerCase() === armTag) ?? armTag ?? "";
        const where = `the ${field} series ${JSON.stringify(series.scope)}`;
        try {
          if (armTag === undefined) {
            throw new ConnectorError("bad_response", `datadog: ${where} has no ${s.armTag} tag; check arm_tag`, {
              details: { field, scope: series.scope },
            });
          }
          const entry = byArm.get(arm) ?? { requests: 0, numerator: 0, seen: new Set<string>() };
          if (entry.seen.has(field)) {
            throw new ConnectorError(
              "bad_response",
              `datadog: two ${field} series for ${s.experimentTag}:${experiment.tag} ${s.armTag}:${armTag} (${where}), two totals where there is one; check that the filter of ${field} does not split the arm`,
              { details: { field, scope: series.scope } },
            );
          }
          entry.seen.add(field);
          const { total } = seriesTotal(series, answerWindow, where);
          if (field === s.requests.field) entry.requests = total;
          else entry.numerator = total;
          byArm.set(arm, entry);
        } catch (error) {
          if (!(error instanceof ConnectorError)) throw error;
          totals.set(experiment.tag, error);
        }
      }
    }
    const answer: BatchAggregates = new Map();
    for (const e of group.experiments) {
      const found = totals.get(e.tag);
      if (found instanceof ConnectorError) {
        answer.set(e.key, found);
        continue;
      }
      try {
        const rows: RawArmRow[] = [];
        for (const [arm, t] of found ?? new Map()) {
          const counts = wholeCounts(t.requests, t.numerator);
          if ("problem" in counts) {
            throw new ConnectorError(
              "bad_response",
              `datadog: arm ${JSON.stringify(arm)} of ${JSON.stringify(e.key)} ${counts.problem} (${s.numerator.field}: ${s.numerator.metric}, requests: ${s.requests.metric})`,
              { details: { arm, requests: t.requests, [s.numerator.field]: t.numerator } },
            );
          }
          rows.push({
            arm,
            units: counts.units,
            sum: counts.sum,
            sum_sq: counts.sum,
            ts: null,
            location: `arm ${JSON.stringify(arm)}`,
          });
        }
        answer.set(
          e.key,
          checkArmAggregates(
            rows,
            { experimentKey: e.key, arms: e.arms, from: new Date(group.fromMs), to },
            "proportion",
            "datadog",
          ),
        );
      } catch (error) {
        if (!(error instanceof ConnectorError)) throw error;
        answer.set(e.key, error);
      }
    }
    return answer;
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.s;
    if (s.seriesQuery === undefined) {
      throw new ConnectorError(
        "unsupported",
        "datadog connector: no series_query to read the outcome's series from; add series_query: <a Datadog metric query>, e.g. sum:checkout.orders{env:prod}.as_count()",
        { details: { field: "series_query" } },
      );
    }
    const fromSeconds = Math.floor(window.from.getTime() / 1000);
    const toSeconds = Math.max(fromSeconds + 1, Math.ceil(window.to.getTime() / 1000));
    s.call.budget.spend(1);
    const answer = await queryMetrics(s.call, "series_query", s.seriesQuery, fromSeconds, toSeconds, signal);
    if (answer.series.length > 1) {
      throw new ConnectorError(
        "bad_response",
        `datadog /api/v1/query: series_query gave ${answer.series.length} series (${answer.series.map((x) => JSON.stringify(x.scope)).join(", ")}), not one; aggregate it to one series (sum:<metric>{...} without "by")`,
        { details: { field: "series_query", series: answer.series.length } },
      );
    }
    const rows = (answer.series[0]?.pointlist ?? [])
      .filter((point) => point[1] !== null)
      .map((point, index) => {
        const at = point[0];
        return {
          ts: typeof at === "number" && Number.isFinite(at) ? new Date(at).toISOString() : at,
          value: point[1],
          location: `point ${index}`,
        };
      })
      // Points in (from, to]: Datadog stamps a point with its interval's start, and the range is inclusive.
      .filter(
        (row) =>
          typeof row.ts !== "string" ||
          (Date.parse(row.ts) > window.from.getTime() && Date.parse(row.ts) <= window.to.getTime()),
      );
    return checkSeries(rows, window, "datadog series_query");
  }

  async close(): Promise<void> {}
}
