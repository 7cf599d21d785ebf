/**
 * A small client of Prometheus's HTTP API (docs/querying/api.md of
 * github.com/prometheus/prometheus, https://prometheus.io/docs/prometheus/latest/querying/api/):
 * `POST /api/v1/query` (an instant query, `query` and `time` form-encoded in
 * the body, as the API allows for long expressions) and
 * `POST /api/v1/query_range` (`start`, `end`, `step`). Every answer is the
 * envelope `{ "status": "success" | "error", "data", "errorType", "error",
 * "warnings" }`; errors are mapped to {@link ConnectorError} codes naming the
 * setting whose expression was sent.
 *
 * Prometheus has no rate limit of its own; a proxy in front of it may answer
 * 429 or 503 with `Retry-After`, which becomes `rate_limited` / `unavailable`
 * with `retryAfterMs`.
 */
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { ConnectorError } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";

/**
 * The largest answer read, in bytes. A poll asks for one sample per
 * (experiment, arm) (a latency read: per bucket too), a few kilobytes; a
 * series query of a week at a one-minute step is about 10,000 points, some
 * 300 KB. Reading stops at this size.
 */
const PROMETHEUS_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** How long to wait after a 429 that gave no `Retry-After`. */
const DEFAULT_RETRY_AFTER_MS = 30_000;

/** Where and how to reach one Prometheus server. */
export interface PrometheusApiSettings {
  /** The server's base URL, e.g. `http://prometheus.internal:9090` (paths `/api/v1/...` are added to it). */
  readonly baseUrl: string;
  /** The `Authorization` header value (`Bearer ...` or `Basic ...`), when the server needs one. */
  readonly authorization: string | undefined;
  /** The longest one request may take, in milliseconds; also sent as the query's `timeout`. */
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
}

/** A query's result as Prometheus returns it (`data.resultType`, `data.result`), checked to be an object. */
export interface PrometheusResult {
  readonly resultType: string;
  readonly result: unknown;
}

/**
 * POSTs `params` (form-encoded) to `path` (`/api/v1/query` or
 * `/api/v1/query_range`) and returns `data`.
 *
 * @param field the setting whose expression is sent (`requests`, `series_query`), named in error messages
 * @throws ConnectorError `source_refused` (the outbound policy refused the host), `auth_failed` (401, 403),
 *   `rate_limited` (429, with `retryAfterMs`), `timeout` (no answer in time, an aborted poll, or
 *   Prometheus's own `errorType: "timeout"`), `unavailable` (5xx, network, a partial answer flagged by
 *   `warnings`), `query_failed` (400 `bad_data`, 422 `execution`: Prometheus's message with the setting
 *   named), `bad_response` (a body that is not the envelope, or larger than {@link PROMETHEUS_MAX_RESPONSE_BYTES})
 */
export async function prometheusPost(
  settings: PrometheusApiSettings,
  path: "/api/v1/query" | "/api/v1/query_range",
  params: Readonly<Record<string, string>>,
  field: string,
  signal?: AbortSignal,
): Promise<PrometheusResult> {
  const body = new URLSearchParams({ ...params, timeout: `${Math.max(1, Math.floor(settings.timeoutMs / 1000))}s` });
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  const host = new URL(settings.baseUrl).host;
  const details = { path, field };
  let response: Response;
  let text: string | null;
  try {
    response = await settings.fetch(`${settings.baseUrl}${path}`, {
      method: "POST",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
        ...(settings.authorization === undefined ? {} : { Authorization: settings.authorization }),
      },
      body: body.toString(),
      signal: combined,
      redirect: "error",
    });
    text = await readCapped(response, PROMETHEUS_MAX_RESPONSE_BYTES);
  } catch (error) {
    if (signal?.aborted) {
      const timedOut = (signal.reason as { name?: string } | undefined)?.name === "TimeoutError";
      throw new ConnectorError(
        "timeout",
        timedOut
          ? `prometheus ${path}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the poll will be retried`
          : `prometheus ${path}: the poll was aborted`,
        { details: { ...details, aborted: true } },
      );
    }
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError(
        "source_refused",
        `prometheus connector: url: ${error.message}; a Prometheus server on a private or loopback address must be allowed by the operator (OUTBOUND_ALLOW), and the runtime's own services and cloud metadata addresses are never sources`,
        { details: { ...details, field: "url", url: error.url, address: error.address }, cause: error },
      );
    }
    if (timeout.aborted) {
      throw new ConnectorError(
        "timeout",
        `prometheus ${path}: no answer from ${host} within ${settings.timeoutMs / 1000}s (${field}); the poll will be retried (raise timeout, or make the expression cheaper)`,
        { details: { ...details, timeoutMs: settings.timeoutMs }, cause: error },
      );
    }
    throw new ConnectorError(
      "unavailable",
      `prometheus ${path}: cannot reach ${host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { details, cause: error },
    );
  }
  const status = response.status;
  if (text === null) {
    throw new ConnectorError(
      "bad_response",
      `prometheus ${path}: the answer to ${field} is larger than ${PROMETHEUS_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (HTTP ${status}); reading stopped. The expression returns far more series than one per experiment and arm: aggregate it, or check url`,
      { details: { ...details, status, maxBytes: PROMETHEUS_MAX_RESPONSE_BYTES } },
    );
  }
  const envelope = parseEnvelope(text);
  const message = envelope === undefined ? text.trim().slice(0, 200) : errorMessage(envelope);
  const said = message === "" ? "" : `: ${message}`;
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  if (status === 429) {
    throw new ConnectorError(
      "rate_limited",
      `prometheus ${path}: ${host} answered 429 (too many requests${said}); retry in ${Math.ceil((retryAfterMs ?? DEFAULT_RETRY_AFTER_MS) / 1000)}s, or poll less often`,
      { retryAfterMs: retryAfterMs ?? DEFAULT_RETRY_AFTER_MS, details: { ...details, status } },
    );
  }
  if (status === 401 || status === 403) {
    throw new ConnectorError(
      "auth_failed",
      `prometheus ${path}: ${host} refused the credentials (${status}${said}); check bearer_token_env/_secret or username and password`,
      { details: { ...details, status } },
    );
  }
  if (isRecord(envelope) && envelope.status === "error") {
    const errorType = typeof envelope.errorType === "string" ? envelope.errorType : "";
    if (errorType === "timeout" || errorType === "canceled") {
      throw new ConnectorError(
        "timeout",
        `prometheus ${path}: Prometheus stopped evaluating ${field} (${errorType}${said}); the poll will be retried (raise timeout, or make the expression cheaper)`,
        { retryAfterMs, details: { ...details, status, errorType } },
      );
    }
    if (status >= 500 || errorType === "unavailable" || errorType === "internal") {
      throw new ConnectorError(
        "unavailable",
        `prometheus ${path}: Prometheus failed (${status}, ${errorType}${said}); the poll will be retried`,
        { retryAfterMs, details: { ...details, status, errorType } },
      );
    }
    throw new ConnectorError(
      "query_failed",
      `prometheus connector: ${field}: Prometheus refused the expression (${errorType || status}${said}); fix ${field} in outcome.yaml`,
      { details: { ...details, status, errorType, sourceMessage: message } },
    );
  }
  if (status >= 500) {
    throw new ConnectorError(
      "unavailable",
      `prometheus ${path}: ${host} failed (${status}${said}); the poll will be retried`,
      { retryAfterMs, details: { ...details, status } },
    );
  }
  if (status < 200 || status >= 300) {
    throw new ConnectorError(
      "query_failed",
      `prometheus ${path}: ${host} refused the request for ${field} (${status}${said}); check url (the Prometheus server's base URL, without /api/v1) and ${field}`,
      { details: { ...details, status } },
    );
  }
  if (!isRecord(envelope) || envelope.status !== "success" || !isRecord(envelope.data)) {
    throw new ConnectorError(
      "bad_response",
      `prometheus ${path}: the answer to ${field} is not Prometheus's {"status":"success","data":{...}} (starts with ${JSON.stringify(text.slice(0, 60))}); check url`,
      { details: { ...details, status } },
    );
  }
  // Warnings come with data that is incomplete (a remote store or a shard that did not answer); the
  // informational "PromQL info:" annotations do not change the numbers.
  const warnings = Array.isArray(envelope.warnings)
    ? envelope.warnings.filter((w): w is string => typeof w === "string" && !w.startsWith("PromQL info:"))
    : [];
  if (warnings.length > 0) {
    throw new ConnectorError(
      "unavailable",
      `prometheus ${path}: the answer to ${field} is partial (warnings: ${warnings.slice(0, 3).join("; ").slice(0, 300)}); nothing was stored, the poll will be retried`,
      { details: { ...details, warnings: warnings.slice(0, 3) } },
    );
  }
  const data = envelope.data;
  if (typeof data.resultType !== "string") {
    throw new ConnectorError("bad_response", `prometheus ${path}: the answer to ${field} has no data.resultType`, {
      details,
    });
  }
  return { resultType: data.resultType, result: data.result };
}

function parseEnvelope(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function errorMessage(envelope: Record<string, unknown>): string {
  return typeof envelope.error === "string" ? envelope.error.slice(0, 500) : "";
}
