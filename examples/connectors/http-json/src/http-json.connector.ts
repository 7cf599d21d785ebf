/**
 * `http-json`: arm aggregates from a team's own HTTP endpoint that answers
 * JSON — an internal metrics service, a warehouse proxy, a serverless
 * function. The runtime asks, per experiment and poll:
 *
 *   GET <url>?experiment=<key>&arms=control,treatment&from=<ISO 8601>&to=<ISO 8601>
 *   Authorization: Bearer <token>
 *
 * and the endpoint answers `{ "rows": [{ "arm": "control", "units": 1200,
 * "sum": 96, "sum_sq": 96, "ts": "2025-01-07T00:00:00Z" }, ...] }`: each arm's
 * cumulative aggregate as of `ts` (or as of `to` without it), optionally with
 * the covariate's `cov_sum`, `cov_sum_sq`, `cov_sum_product` and, for a ratio
 * metric, the denominator's `den_sum`, `den_sum_sq`, `num_den_sum`, exactly
 * as the built-in connectors' rows. With `series_url`, the outcome's own
 * series is read the same way: `GET <series_url>?from=...&to=...` answering
 * `{ "points": [{ "ts": "...", "value": 0.081 }] }`.
 *
 * Requests go through `context.fetch`: the runtime's transport, held to its
 * SSRF guard (`OUTBOUND_ALLOW`), so a private address is reached only when
 * the operator allows it.
 */
import {
  type ArmAggregate,
  ConfigReader,
  type ConnectorConfig,
  type ConnectorContext,
  ConnectorError,
  checkArmAggregates,
  checkSeries,
  type ExperimentWindow,
  type RawArmRow,
  type RawSeriesRow,
  type SeriesPoint,
  type SeriesWindow,
  type SignalConnector,
} from "@outcome-runtime/connectors";

/** The connector type outcome.yaml names. */
export const HTTP_JSON_TYPE = "http-json";

const FIELDS = ["url", "series_url", "token_env", "token_secret", "timeout"] as const;

/** The default time one request may take, seconds. */
const DEFAULT_TIMEOUT_SECONDS = 30;

/** The largest answer read, bytes: an endpoint answering more is a bug, not a signal. */
const MAX_BODY_BYTES = 5 * 1024 * 1024;

interface Settings {
  readonly url: URL;
  readonly seriesUrl: URL | undefined;
  readonly token: string;
  readonly timeoutMs: number;
  readonly metricKind: "proportion" | "mean" | "ratio";
  readonly fetch: typeof fetch;
}

/**
 * Creates the connector from its settings: `url` (http or https, no
 * credentials in it), `series_url` (optional), `token_env` or `token_secret`
 * (the bearer token, resolved by the runtime into `context.credentials.token`)
 * and `timeout` (default 30s, capped by the worker's `POLL_TIMEOUT_MS`).
 * Nothing is requested until the first poll.
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix
 */
export function createHttpJsonConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  const reader = new ConfigReader(config, FIELDS);
  const url = readUrl(
    reader,
    "url",
    reader.string("url", "give the endpoint's URL, e.g. https://metrics.acme.internal/arms"),
  );
  const seriesText = reader.optionalString("series_url", "give the series endpoint's URL, or leave series_url out");
  const token = context.credentials?.token;
  if (token === undefined || token === "") {
    // The runtime resolves token_env / token_secret before it creates the connector; without them the module's
    // credentials declaration has already named the missing setting.
    throw reader.invalid("token_secret", "was not resolved", "name the token with token_secret or token_env");
  }
  const timeoutSeconds = reader.durationSeconds("timeout", DEFAULT_TIMEOUT_SECONDS);
  const timeoutMs = Math.min(timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY);
  if (context.fetch === undefined) {
    throw new ConnectorError(
      "invalid_config",
      "http-json connector: the runtime gave no fetch; run it through createConnector",
      {
        details: { connector: HTTP_JSON_TYPE },
      },
    );
  }
  return new HttpJsonConnector({
    url,
    seriesUrl: seriesText === undefined ? undefined : readUrl(reader, "series_url", seriesText),
    token,
    timeoutMs,
    metricKind: context.metricKind,
    fetch: context.fetch,
  });
}

function readUrl(reader: ConfigReader, field: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw reader.invalid(
      field,
      `${JSON.stringify(text)} is not a URL`,
      "write an absolute URL, e.g. https://metrics.acme.internal/arms",
      {
        value: text,
      },
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw reader.invalid(field, `${url.protocol} is not http or https`, "write an http:// or https:// URL", {
      value: text,
    });
  }
  if (url.username !== "" || url.password !== "") {
    throw reader.invalid(
      field,
      "holds a user name or password",
      "take them out of the URL: the token goes in token_secret (a workspace secret) or token_env",
    );
  }
  return url;
}

class HttpJsonConnector implements SignalConnector {
  readonly type = HTTP_JSON_TYPE;

  constructor(private readonly settings: Settings) {}

  describe(): string {
    // The URL's query may carry an API key of the endpoint's own: only the origin and path are shown.
    const { url, timeoutMs } = this.settings;
    return `http-json ${url.origin}${url.pathname} (timeout ${timeoutMs / 1000}s)`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    const url = new URL(this.settings.url);
    url.searchParams.set("experiment", window.experimentKey);
    url.searchParams.set("arms", window.arms.join(","));
    url.searchParams.set("from", window.from.toISOString());
    url.searchParams.set("to", window.to.toISOString());
    const body = await this.get(url, "url", signal);
    const rows = (body as { rows?: unknown }).rows;
    if (!Array.isArray(rows)) {
      throw badResponse(
        `the answer has no "rows" list; answer { "rows": [{ "arm": ..., "units": ..., "sum": ..., "sum_sq": ... }] }`,
      );
    }
    const raw: RawArmRow[] = rows.map((row: unknown, i) => {
      if (row === null || typeof row !== "object") throw badResponse(`rows[${i}] is not an object`);
      return { ...(row as Record<string, unknown>), location: `rows[${i}]` } as RawArmRow;
    });
    return checkArmAggregates(raw, window, this.settings.metricKind, "http-json url");
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    if (this.settings.seriesUrl === undefined) {
      throw new ConnectorError(
        "unsupported",
        "http-json connector: no series_url; add one to read the outcome's own series",
        {
          details: { connector: HTTP_JSON_TYPE, field: "series_url" },
        },
      );
    }
    const url = new URL(this.settings.seriesUrl);
    url.searchParams.set("from", window.from.toISOString());
    url.searchParams.set("to", window.to.toISOString());
    const points = ((await this.get(url, "series_url", signal)) as { points?: unknown }).points;
    if (!Array.isArray(points))
      throw badResponse(`the series answer has no "points" list; answer { "points": [{ "ts": ..., "value": ... }] }`);
    const raw: RawSeriesRow[] = points.map(
      (p: unknown, i) => ({ ...((p ?? {}) as object), location: `points[${i}]` }) as RawSeriesRow,
    );
    return checkSeries(raw, window, "http-json series_url");
  }

  async close(): Promise<void> {}

  /** GET `url` as JSON, with the token, under the timeout; HTTP failures mapped to the connector error codes. */
  private async get(url: URL, field: string, signal?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.settings.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    let response: Response;
    try {
      response = await this.settings.fetch(url, {
        headers: { authorization: `Bearer ${this.settings.token}`, accept: "application/json" },
        signal: combined,
      });
    } catch (error) {
      if (combined.aborted) {
        throw new ConnectorError("timeout", `http-json ${field}: no answer within ${this.settings.timeoutMs / 1000}s`, {
          details: { connector: HTTP_JSON_TYPE, field },
          cause: error,
        });
      }
      // Not a ConnectorError: the runtime's guard reports a refused address as source_refused, the rest as unavailable.
      throw error;
    }
    const text = await readCapped(response);
    const where = `http-json ${field}: ${url.origin}${url.pathname} answered ${response.status}`;
    if (response.status === 401 || response.status === 403) {
      throw new ConnectorError("auth_failed", `${where}; check the token (token_secret or token_env)`, {
        details: { connector: HTTP_JSON_TYPE, field, status: response.status },
      });
    }
    if (response.status === 429) {
      const seconds = Number(response.headers.get("retry-after"));
      throw new ConnectorError("rate_limited", `${where}; the endpoint's rate limit was hit`, {
        retryAfterMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null,
        details: { connector: HTTP_JSON_TYPE, field, status: 429 },
      });
    }
    if (response.status >= 500) {
      throw new ConnectorError("unavailable", `${where}: ${text.slice(0, 200)}`, {
        details: { connector: HTTP_JSON_TYPE, field, status: response.status },
      });
    }
    if (!response.ok) {
      throw new ConnectorError(
        "query_failed",
        `${where}: ${text.slice(0, 200)}; fix the request the endpoint refused`,
        {
          details: { connector: HTTP_JSON_TYPE, field, status: response.status },
        },
      );
    }
    try {
      const body: unknown = JSON.parse(text);
      if (body === null || typeof body !== "object") throw new Error("not an object");
      return body;
    } catch {
      throw badResponse(`${where} with a body that is not a JSON object: ${JSON.stringify(text.slice(0, 80))}`);
    }
  }
}

async function readCapped(response: Response): Promise<string> {
  const text = await response.text();
  if (text.length > MAX_BODY_BYTES) throw badResponse(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
  return text;
}

function badResponse(problem: string): ConnectorError {
  return new ConnectorError("bad_response", `http-json connector: ${problem}`, {
    details: { connector: HTTP_JSON_TYPE, problem },
  });
}
