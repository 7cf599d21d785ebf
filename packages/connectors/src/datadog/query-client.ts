/**
 * One call of Datadog's metrics query API, `GET /api/v1/query?from=&to=&query=`
 * (`v1.MetricsApi.queryMetrics` of the official client,
 * `@datadog/datadog-api-client`), held to the organisation's request budget,
 * with its answer and failures mapped to {@link ConnectorError} codes.
 *
 * The client is pointed at the site's API host (or an operator-allowed base)
 * by a `baseServer` of its own, so the process's `DD_SITE`, `DD_API_KEY` and
 * `DD_APP_KEY` never redirect it or add a key; its transport is ours: the
 * connector's fetch (held to the outbound policy), an abort signal per call,
 * the body read up to a cap, and the rate-limit headers kept for a 429.
 */
import type { client, v1 } from "@datadog/datadog-api-client";

/** The official client's module, loaded at the first query: only those who read Datadog pay for it. */
type DatadogClientModule = typeof import("@datadog/datadog-api-client");
let datadogClient: Promise<DatadogClientModule> | undefined;
const loadDatadogClient = (): Promise<DatadogClientModule> => (datadogClient ??= import("@datadog/datadog-api-client"));

import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { ConnectorError } from "../connector-error";
import { isRecord, readCapped } from "../http-response";
import type { RequestBudget } from "../request-budget";

/**
 * The largest answer read, in bytes. An answer holds one series per
 * (experiment, arm) with one point each; a server sending more (or not
 * Datadog) is cut off here rather than held in memory.
 */
const DATADOG_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** How long to pause after a 429 without a readable `X-RateLimit-Reset` (the limit's period is an hour). */
const DEFAULT_RETRY_AFTER_MS = 60_000;

/** What one call needs. */
export interface QueryCallSettings {
  /** `https://api.datadoghq.com`, or an operator-allowed base. */
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly applicationKey: string;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  readonly budget: RequestBudget;
}

/** A series of an answer, as the client deserialised it (`MetricsQueryMetadata`). */
interface QuerySeries {
  readonly scope?: string | undefined;
  readonly tagSet?: readonly string[] | undefined;
  readonly pointlist?: readonly (readonly unknown[])[] | undefined;
  readonly interval?: number | undefined;
}

/** An answer: its series and the window Datadog says it answered, in ms (`from_date`, `to_date`). */
export interface QueryAnswer {
  readonly series: readonly QuerySeries[];
  readonly fromDate: number | undefined;
  readonly toDate: number | undefined;
}

/** The rate-limit headers of Datadog's answers (docs.datadoghq.com/api/latest/rate-limits/). */
interface RateLimitHeaders {
  readonly limit: string | undefined;
  readonly period: string | undefined;
  readonly remaining: string | undefined;
  /** Seconds until the limit resets. */
  readonly reset: string | undefined;
  readonly name: string | undefined;
}

/** An answer larger than {@link DATADOG_MAX_RESPONSE_BYTES}. */
class OversizedAnswer extends Error {
  constructor(readonly status: number) {
    super("oversized answer");
  }
}

/** The request could not be sent or its answer not read (network, the outbound policy). */
class TransportFailure extends Error {
  constructor(override readonly cause: unknown) {
    super("transport failure");
  }
}

/**
 * The client's transport: the connector's fetch, the call's abort signal
 * (which the client passes in `httpConfig.signal`), the body read up to a
 * cap, and the last answer's headers kept for the caller.
 */
class CappedTransport implements client.HttpLibrary {
  headers: Record<string, string> = {};

  constructor(
    private readonly fetchFn: typeof fetch,
    private readonly dd: DatadogClientModule,
  ) {}

  async send(request: client.RequestContext): Promise<client.ResponseContext> {
    let response: Response;
    let text: string | null;
    const headers: Record<string, string> = {};
    try {
      response = await this.fetchFn(request.getUrl(), {
        method: request.getHttpMethod().toString(),
        headers: { ...request.getHeaders(), "Accept-Encoding": "identity" },
        signal: request.getHttpConfig().signal ?? null,
      });
      response.headers.forEach((value, name) => {
        headers[name] = value;
      });
      this.headers = headers;
      text = await readCapped(response, DATADOG_MAX_RESPONSE_BYTES);
    } catch (error) {
      throw new TransportFailure(error);
    }
    if (text === null) throw new OversizedAnswer(response.status);
    return new this.dd.client.ResponseContext(response.status, headers, {
      text: async () => text,
      binary: async () => Buffer.from(text, "utf8"),
    });
  }
}

/**
 * Runs one query over [fromSeconds, toSeconds] through the official client.
 * The request must have been counted with `budget.spend`; it runs within the
 * budget's concurrency, and a 429 pauses the budget for `X-RateLimit-Reset`.
 *
 * @param field the setting the query comes from, named in errors (`requests`, `errors`, `series_query`)
 * @throws ConnectorError `rate_limited` (429, `retryAfterMs` from `X-RateLimit-Reset`), `auth_failed` (401, 403),
 *   `query_failed` (400 or `status: "error"`, with Datadog's message and the setting), `unavailable` (5xx,
 *   network), `timeout` (no answer within `timeoutMs`, or `signal` aborted), `bad_response` (an answer that is
 *   not the documented JSON, or larger than the cap), `invalid_config` (the outbound policy refused the host)
 */
export async function queryMetrics(
  settings: QueryCallSettings,
  field: string,
  query: string,
  fromSeconds: number,
  toSeconds: number,
  signal?: AbortSignal,
): Promise<QueryAnswer> {
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  const dd = await loadDatadogClient();
  const transport = new CappedTransport(settings.fetch, dd);
  const configuration = dd.client.createConfiguration({
    baseServer: new dd.client.BaseServerConfiguration(settings.baseUrl, {}),
    authMethods: { apiKeyAuth: settings.apiKey, appKeyAuth: settings.applicationKey },
    httpApi: transport,
    httpConfig: { signal: combined, compress: false },
    enableRetry: false,
  });
  const api = new dd.v1.MetricsApi(configuration);
  const details = { setting: field, query };
  let response: v1.MetricsQueryResponse;
  try {
    response = await settings.budget.run(() => api.queryMetrics({ from: fromSeconds, to: toSeconds, query }), combined);
  } catch (error) {
    throw mapFailure(dd, error, settings, transport.headers, field, query, signal, timeout);
  }
  if (response.status === "error" || (typeof response.error === "string" && response.error !== "")) {
    throw new ConnectorError(
      "query_failed",
      `datadog /api/v1/query: Datadog refused the query of ${field} (${response.error ?? "status: error"}); check ${field} in outcome.yaml. Query: ${query}`,
      { details: { ...details, field } },
    );
  }
  if (!Array.isArray(response.series)) {
    // A body that is not JSON reaches here too: the client keeps unparsable text as additional properties.
    throw badAnswer(`the answer has no series list (series: ${JSON.stringify(response.series) ?? "absent"})`, details);
  }
  return {
    series: response.series.map((s) => {
      if (s === null || typeof s !== "object")
        throw badAnswer(`a series is ${JSON.stringify(s)}, not an object`, details);
      if (s.pointlist !== undefined && !(Array.isArray(s.pointlist) && s.pointlist.every(Array.isArray))) {
        throw badAnswer(`the pointlist of ${JSON.stringify(s.scope)} is not a list of points`, details);
      }
      return { scope: s.scope, tagSet: s.tagSet, pointlist: s.pointlist, interval: s.interval };
    }),
    fromDate: typeof response.fromDate === "number" ? response.fromDate : undefined,
    toDate: typeof response.toDate === "number" ? response.toDate : undefined,
  };
}

function badAnswer(problem: string, details: Record<string, unknown>): ConnectorError {
  return new ConnectorError(
    "bad_response",
    `datadog /api/v1/query: ${problem}; the answer does not follow Datadog's MetricsQueryResponse, check api_url`,
    { details },
  );
}

/** The rate-limit headers of an answer (names are lowercased by fetch). */
function rateLimitHeaders(headers: Readonly<Record<string, string>>): RateLimitHeaders {
  return {
    limit: headers["x-ratelimit-limit"],
    period: headers["x-ratelimit-period"],
    remaining: headers["x-ratelimit-remaining"],
    reset: headers["x-ratelimit-reset"],
    name: headers["x-ratelimit-name"],
  };
}

/** `X-RateLimit-Reset` (seconds until the limit resets, a whole number) in ms; null when absent or unreadable. */
function parseRateLimitReset(value: string | undefined): number | null {
  if (value === undefined || !/^\s*\d+\s*$/u.test(value)) return null;
  return Number(value.trim()) * 1000;
}

/** Datadog's `{"errors": [...]}` as one line, or the start of another body. */
function errorsOf(body: unknown): string {
  if (isRecord(body) && Array.isArray(body.errors)) return body.errors.map(String).join("; ");
  if (typeof body === "string") return body.trim().slice(0, 200);
  return JSON.stringify(body ?? "").slice(0, 200);
}

function mapFailure(
  dd: DatadogClientModule,
  error: unknown,
  settings: QueryCallSettings,
  headers: Readonly<Record<string, string>>,
  field: string,
  query: string,
  signal: AbortSignal | undefined,
  timeout: AbortSignal,
): ConnectorError {
  if (error instanceof ConnectorError) return error;
  const details: Record<string, unknown> = { setting: field, query };
  if (signal?.aborted) {
    // The worker aborts a poll that outlasts POLL_TIMEOUT_MS with a TimeoutError: say so.
    const timedOut = (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
    return new ConnectorError(
      "timeout",
      timedOut
        ? "datadog /api/v1/query: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the poll will be retried"
        : "datadog /api/v1/query: the poll was aborted",
      { details: { ...details, aborted: true }, cause: error },
    );
  }
  if (timeout.aborted) {
    return new ConnectorError(
      "timeout",
      `datadog /api/v1/query: no answer within ${settings.timeoutMs / 1000}s; the poll will be retried (raise timeout for slow queries)`,
      { details: { ...details, timeoutMs: settings.timeoutMs }, cause: error },
    );
  }
  if (error instanceof OversizedAnswer) {
    return new ConnectorError(
      "bad_response",
      `datadog /api/v1/query: the answer is larger than ${DATADOG_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (HTTP ${error.status}), far more than one series per arm; reading stopped. Check api_url and that the experiment and arm tags have few values`,
      { details: { ...details, status: error.status, maxBytes: DATADOG_MAX_RESPONSE_BYTES } },
    );
  }
  if (error instanceof dd.client.ApiException) {
    const status = Number(error.code);
    const message = errorsOf(error.body);
    const withStatus = { ...details, status };
    if (status === 429) {
      const limits = rateLimitHeaders(headers);
      const retryAfterMs = parseRateLimitReset(limits.reset) ?? DEFAULT_RETRY_AFTER_MS;
      settings.budget.pause(retryAfterMs);
      const limit =
        limits.limit === undefined
          ? ""
          : ` (limit ${limits.limit} requests per ${limits.period ?? "?"}s${limits.name === undefined ? "" : `, "${limits.name}"`})`;
      return new ConnectorError(
        "rate_limited",
        `datadog /api/v1/query: rate limited (429${message === "" ? "" : `: ${message}`})${limit}; not querying again for ${Math.ceil(retryAfterMs / 1000)}s (X-RateLimit-Reset), poll less often or ask Datadog support to raise the limit`,
        { retryAfterMs, details: { ...withStatus, rateLimit: limits } },
      );
    }
    if (status === 401 || status === 403) {
      return new ConnectorError(
        "auth_failed",
        `datadog /api/v1/query: Datadog refused the keys (${status}${message === "" ? "" : `: ${message}`}); check api_key_env/api_key_secret and application_key_env/application_key_secret, that both belong to the organisation of this site, and that the application key's scopes include timeseries_query`,
        { details: withStatus },
      );
    }
    if (status >= 500) {
      return new ConnectorError(
        "unavailable",
        `datadog /api/v1/query: Datadog failed (${status}${message === "" ? "" : `: ${message}`}); the poll will be retried`,
        { details: withStatus },
      );
    }
    if (status >= 400) {
      return new ConnectorError(
        "query_failed",
        `datadog /api/v1/query: Datadog refused the query of ${field} (${status}${message === "" ? "" : `: ${message}`}); check ${field} in outcome.yaml. Query: ${query}`,
        { details: { ...withStatus, field, errors: message } },
      );
    }
    return badAnswer(`HTTP ${status}`, withStatus);
  }
  if (error instanceof TransportFailure) {
    const cause = error.cause;
    if (cause instanceof OutboundBlockedError) {
      return new ConnectorError("invalid_config", `datadog /api/v1/query: ${cause.message}`, {
        details: { ...details, url: cause.url, address: cause.address },
        cause,
      });
    }
    return new ConnectorError(
      "unavailable",
      `datadog /api/v1/query: cannot reach ${new URL(settings.baseUrl).host} (${cause instanceof Error ? cause.message : String(cause)}); the poll will be retried`,
      { details, cause },
    );
  }
  // Anything else was thrown after the answer arrived: the client's deserialiser refused a body that breaks the
  // published schema (e.g. text where a point's value is a number).
  return badAnswer(
    `the client could not read the answer (${error instanceof Error ? error.message : String(error)})`,
    details,
  );
}
