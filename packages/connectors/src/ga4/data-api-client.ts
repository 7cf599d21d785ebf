/**
 * `runReport` of the Google Analytics Data API v1beta
 * (https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport)
 * through the official client, `@google-analytics/data` 6.1.0
 * (`BetaAnalyticsDataClient`), on its REST transport.
 *
 * How the client is pointed and what it sends (read from its source,
 * `build/src/v1beta/beta_analytics_data_client.js`, and google-gax 5.0.8's
 * `build/src/fallback.js`, `fallbackRest.js`, `fallbackServiceStub.js`):
 *
 * - `fallback: true` selects google-gax's REST transport: each call is
 *   `POST {protocol}://{apiEndpoint}:{port}/v1beta/properties/{id}:runReport?$alt=json%3Benum-encoding=int`
 *   with the request as proto3 JSON. `apiEndpoint` is a host name, `port` its
 *   port, and `protocol` (`https` unless told) its scheme: the `api_url`
 *   setting gives all three, so a local server (the tests' fake) can stand in.
 * - The REST stub sends every request through `authClient.fetch(url, init)`.
 *   The auth client given here is {@link DataApiTransport}: it adds the
 *   service account's bearer token (the key's own `token_uri`, checked, see
 *   `bigquery/service-account.ts`), sends through the outbound-guarded fetch
 *   with the read's abort signal and timeout, reads at most
 *   {@link MAX_RESPONSE_BYTES}, and turns an error answer into a
 *   {@link ConnectorError} itself (it sees the HTTP status and `Retry-After`,
 *   which the client's `GoogleError` drops). The client decodes successful
 *   answers (proto3 JSON → `IRunReportResponse`).
 * - The method's retry codes are empty (`beta_analytics_data_client_config.json`,
 *   `RunReport: non_idempotent`): the client sends each request once, and the
 *   runtime's poll schedule does the retrying.
 */
import { randomUUID } from "node:crypto";
import type { BetaAnalyticsDataClient, protos } from "@google-analytics/data";
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { type AccessToken, fetchAccessToken, type ServiceAccountKey } from "../bigquery/service-account";
import { ConnectorError, type ConnectorErrorCode } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";
import type { RequestBudget } from "../request-budget";

/** A runReport request as the client takes it. */
export type RunReportRequest = protos.google.analytics.data.v1beta.IRunReportRequest;
/** A runReport answer as the client decodes it. */
export type RunReportResponse = protos.google.analytics.data.v1beta.IRunReportResponse;

/** The scope the token is asked for: read-only Analytics reporting (the Data API's documented scope). */
const GA4_SCOPE = "https://www.googleapis.com/auth/analytics.readonly";

/**
 * The largest answer read, in bytes. A report here has one row per
 * (experiment, arm) asked for; a real one is a few kilobytes.
 */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** How long a property is left alone after a 429 that named no delay and no quota, ms. */
const DEFAULT_RETRY_AFTER_MS = 60_000;
const HOUR_MS = 3_600_000;

/** The header that ties a request of the client to the read that made it; removed before sending. */
const CALL_HEADER = "x-outcome-runtime-call";

/** Where and how to reach the Data API. */
export interface DataApiSettings {
  /** The API base, `https://analyticsdata.googleapis.com` or one the operator allows. */
  readonly apiUrl: string;
  /** The numeric GA4 property id. */
  readonly propertyId: string;
  /** Longest one request may take, ms. */
  readonly timeoutMs: number;
  /** The transport of API requests (outbound-guarded, redirects refused). */
  readonly fetch: typeof fetch;
  /** The transport of token requests. */
  readonly tokenFetch: (key: ServiceAccountKey) => typeof fetch;
  /** The checked service account key (read on first use). */
  readonly key: () => Promise<ServiceAccountKey>;
  /** The property's shared request budget. */
  readonly budget: RequestBudget;
}

/** One read's context, found by the transport through {@link CALL_HEADER}. */
interface CallContext {
  readonly signal: AbortSignal;
  readonly deadline: AbortSignal;
  readonly what: string;
}

/** A quota exhausted according to `propertyQuota`, shared by every connector of the budget. */
interface Exhausted {
  readonly untilMs: number;
  readonly message: string;
}
const exhaustedQuotas = new Map<string, Exhausted>();

/** Forgets quotas seen exhausted (tests). */
export function resetGa4QuotaState(): void {
  exhaustedQuotas.clear();
}

/**
 * The REST transport's auth client: google-gax's REST stub calls only
 * `fetch(url, init)` on it (and checks for `getRequestHeaders`). Both are
 * given here.
 */
class DataApiTransport {
  readonly universeDomain = "googleapis.com";
  private readonly calls = new Map<string, CallContext>();
  private token: AccessToken | undefined;
  private pendingToken: Promise<AccessToken> | undefined;

  constructor(private readonly settings: DataApiSettings) {}

  register(context: CallContext): { id: string; done: () => void } {
    const id = randomUUID();
    this.calls.set(id, context);
    return { id, done: () => this.calls.delete(id) };
  }

  async getRequestHeaders(): Promise<Headers> {
    return new Headers({ authorization: `Bearer ${(await this.accessToken()).accessToken}` });
  }

  /** Forgets the token (after a 401: the next request asks for a new one). */
  dropToken(): void {
    this.token = undefined;
  }

  private async accessToken(): Promise<AccessToken> {
    // Renewed five minutes before it expires, as google-auth-library does.
    if (this.token !== undefined && this.token.expiresAt - 300_000 > Date.now()) return this.token;
    if (this.pendingToken === undefined) {
      const pending = this.settings
        .key()
        .then((key) => fetchAccessToken(key, this.settings.tokenFetch(key), GA4_SCOPE))
        .then((token) => {
          this.token = token;
          return token;
        })
        .finally(() => {
          if (this.pendingToken === pending) this.pendingToken = undefined;
        });
      this.pendingToken = pending;
    }
    return this.pendingToken;
  }

  async fetch(url: string, init: { method?: string; headers?: Headers; body?: string | Buffer }): Promise<Response> {
    const headers = new Headers(init.headers);
    const id = headers.get(CALL_HEADER) ?? "";
    headers.delete(CALL_HEADER);
    const call = this.calls.get(id);
    if (call === undefined) throw new Error("ga4: a request of the Data API client outside a read");
    const token = await this.accessToken();
    headers.set("authorization", `Bearer ${token.accessToken}`);
    headers.set("accept", "application/json");
    let response: Response;
    try {
      response = await this.settings.fetch(url, {
        method: init.method ?? "POST",
        headers,
        body:
          typeof init.body === "string" ? init.body : init.body === undefined ? undefined : new Uint8Array(init.body),
        signal: call.signal,
        redirect: "error",
      });
    } catch (error) {
      throw this.transportError(error, call);
    }
    let text: string | null;
    try {
      text = await readCapped(response, MAX_RESPONSE_BYTES);
    } catch (error) {
      throw this.transportError(error, call);
    }
    if (text === null) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${this.settings.propertyId} (${call.what}): the answer is larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB, not a report of one row per experiment and arm; check api_url`,
        { details: { propertyId: this.settings.propertyId, limitBytes: MAX_RESPONSE_BYTES } },
      );
    }
    if (!response.ok) {
      if (response.status === 401) this.dropToken();
      throw errorAnswer(response.status, response.headers, text, this.settings, call.what);
    }
    return new Response(text, { status: response.status, headers: { "content-type": "application/json" } });
  }

  private transportError(error: unknown, call: CallContext): ConnectorError {
    if (error instanceof ConnectorError) return error;
    const p = this.settings.propertyId;
    if (error instanceof OutboundBlockedError) {
      return new ConnectorError("invalid_config", `ga4 connector: api_url: ${error.message}`, {
        details: { field: "api_url", url: error.url, address: error.address },
        cause: error,
      });
    }
    if (call.signal.aborted) {
      return call.deadline.aborted
        ? new ConnectorError(
            "timeout",
            `ga4 property ${p} (${call.what}): no answer within ${this.settings.timeoutMs / 1000}s (timeout); the poll will be retried, or raise timeout`,
            { details: { propertyId: p, timeoutMs: this.settings.timeoutMs }, cause: error },
          )
        : new ConnectorError("timeout", `ga4 property ${p} (${call.what}): the read was aborted`, {
            details: { propertyId: p },
            cause: error,
          });
    }
    return new ConnectorError(
      "unavailable",
      `ga4 property ${p} (${call.what}): cannot reach the Data API at ${new URL(this.settings.apiUrl).host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { details: { propertyId: p }, cause: error },
    );
  }
}

/**
 * A Data API client for one property: `runReport` within the property's
 * budget, its quota read from every answer (`returnPropertyQuota`).
 */
export class DataApiClient {
  private readonly transport: DataApiTransport;
  /** The official client, created at the first report: its module (google-gax) is loaded only by those who read GA4. */
  private client: Promise<BetaAnalyticsDataClient> | undefined;

  constructor(private readonly settings: DataApiSettings) {
    this.transport = new DataApiTransport(settings);
  }

  private officialClient(): Promise<BetaAnalyticsDataClient> {
    this.client ??= import("@google-analytics/data").then(({ BetaAnalyticsDataClient: Client }) => {
      const base = new URL(this.settings.apiUrl);
      return new Client({
        fallback: true,
        apiEndpoint: base.hostname,
        port: base.port === "" ? (base.protocol === "http:" ? 80 : 443) : Number(base.port),
        protocol: base.protocol.replace(":", ""),
        // The transport above is the only thing the REST stub uses of an auth client (see the header).
        authClient: this.transport as unknown as NonNullable<
          ConstructorParameters<typeof BetaAnalyticsDataClient>[0]
        >["authClient"],
      });
    });
    return this.client;
  }

  /**
   * Counts `count` requests of the property's budget before any is sent.
   *
   * @throws ConnectorError `rate_limited` (with `retryAfterMs`) while a quota
   *   GA4 reported exhausted has not reset, or when the hour's budget is spent
   */
  spend(count: number): void {
    const exhausted = exhaustedQuotas.get(this.settings.budget.limits.key);
    const now = Date.now();
    if (exhausted !== undefined && exhausted.untilMs > now) {
      throw new ConnectorError("rate_limited", exhausted.message, {
        retryAfterMs: exhausted.untilMs - now,
        details: { propertyId: this.settings.propertyId },
      });
    }
    this.settings.budget.spend(count);
  }

  /**
   * One `runReport` of the property (`property` and `returnPropertyQuota`
   * are filled in), within the budget's concurrency and `timeout`.
   *
   * @param what what the report is for, in messages (`units report`)
   * @throws ConnectorError `rate_limited` (429 RESOURCE_EXHAUSTED: the budget is
   *   paused for `retryAfterMs`), `query_failed` (400 INVALID_ARGUMENT, e.g. a
   *   dimension that does not exist), `auth_failed` (401, 403), `timeout`,
   *   `unavailable`, `bad_response` (an answer that is not a report, or larger
   *   than {@link MAX_RESPONSE_BYTES})
   */
  async runReport(request: RunReportRequest, what: string, signal?: AbortSignal): Promise<RunReportResponse> {
    const deadline = AbortSignal.timeout(this.settings.timeoutMs);
    const bounded = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    const call = this.transport.register({ signal: bounded, deadline, what });
    try {
      const official = await this.officialClient();
      const [response] = await this.settings.budget.run(
        () =>
          official.runReport(
            { ...request, property: `properties/${this.settings.propertyId}`, returnPropertyQuota: true },
            { otherArgs: { headers: { [CALL_HEADER]: call.id } } },
          ),
        bounded,
      );
      this.noteQuota(response.propertyQuota);
      return response;
    } catch (error) {
      if (error instanceof ConnectorError) {
        if (error.code === "rate_limited" && error.retryAfterMs !== null)
          this.settings.budget.pause(error.retryAfterMs);
        throw error;
      }
      if (bounded.aborted) {
        throw new ConnectorError(
          "timeout",
          deadline.aborted
            ? `ga4 property ${this.settings.propertyId} (${what}): no answer within ${this.settings.timeoutMs / 1000}s (timeout); the poll will be retried, or raise timeout`
            : `ga4 property ${this.settings.propertyId} (${what}): the read was aborted`,
          { details: { propertyId: this.settings.propertyId }, cause: error },
        );
      }
      // The client could not decode the answer: not a RunReportResponse.
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${this.settings.propertyId} (${what}): the answer is not a runReport response (${error instanceof Error ? error.message : String(error)}); check api_url`,
        { details: { propertyId: this.settings.propertyId }, cause: error },
      );
    } finally {
      call.done();
    }
  }

  /**
   * Reads `propertyQuota` (asked for with `returnPropertyQuota`): when a token
   * quota has nothing left, the budget is paused until it resets (hourly
   * quotas within the hour, the daily one at midnight Pacific time, as the
   * quota page says) and reads are refused with the quota's numbers.
   */
  private noteQuota(quota: RunReportResponse["propertyQuota"]): void {
    if (quota === null || quota === undefined) return;
    const now = Date.now();
    const checks = [
      { name: "tokens per day", status: quota.tokensPerDay, resetMs: msToPacificMidnight(now) },
      { name: "tokens per hour", status: quota.tokensPerHour, resetMs: HOUR_MS },
      { name: "tokens per project per hour", status: quota.tokensPerProjectPerHour, resetMs: HOUR_MS },
    ];
    for (const { name, status, resetMs } of checks) {
      const remaining = status?.remaining;
      if (remaining === null || remaining === undefined || remaining > 0) continue;
      const consumed = status?.consumed ?? 0;
      const until = now + resetMs;
      const message = `ga4: property ${this.settings.propertyId} has no ${name} left (GA4's propertyQuota: ${consumed} consumed, ${remaining} remaining); not querying until ${new Date(until).toISOString()} (quotas: https://developers.google.com/analytics/devguides/reporting/data/v1/quotas)`;
      const key = this.settings.budget.limits.key;
      const known = exhaustedQuotas.get(key);
      if (known === undefined || known.untilMs < until) exhaustedQuotas.set(key, { untilMs: until, message });
      this.settings.budget.pause(resetMs);
    }
  }
}

/** Milliseconds from `now` to the next midnight in America/Los_Angeles (when GA4's daily quotas refresh). */
export function msToPacificMidnight(now: number): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/Los_Angeles",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(new Date(now));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const elapsed = ((get("hour") * 60 + get("minute")) * 60 + get("second")) * 1000 + (now % 1000);
  return Math.max(1000, 86_400_000 - elapsed);
}

/** gRPC status names of the error answers, and the code each is. */
const STATUS_CODES: Readonly<Record<string, ConnectorErrorCode>> = {
  INVALID_ARGUMENT: "query_failed",
  FAILED_PRECONDITION: "query_failed",
  OUT_OF_RANGE: "query_failed",
  NOT_FOUND: "query_failed",
  UNAUTHENTICATED: "auth_failed",
  PERMISSION_DENIED: "auth_failed",
  RESOURCE_EXHAUSTED: "rate_limited",
  UNAVAILABLE: "unavailable",
  INTERNAL: "unavailable",
  UNKNOWN: "unavailable",
  ABORTED: "unavailable",
  DEADLINE_EXCEEDED: "timeout",
};

function codeOfStatus(status: number): ConnectorErrorCode {
  if (status === 401 || status === 403) return "auth_failed";
  if (status === 429) return "rate_limited";
  if (status === 504) return "timeout";
  if (status >= 500) return "unavailable";
  return "query_failed";
}

/**
 * The {@link ConnectorError} of an error answer, Google's shape
 * `{ error: { code, message, status, details: [{ "@type", ... }] } }`
 * (https://cloud.google.com/apis/design/errors#http_mapping).
 */
function errorAnswer(
  status: number,
  headers: Headers,
  text: string,
  settings: DataApiSettings,
  what: string,
): ConnectorError {
  let error: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed) && isRecord(parsed.error)) error = parsed.error;
  } catch {
    // Not JSON (a proxy's page): the HTTP status says what happened.
  }
  const statusName = typeof error.status === "string" ? error.status : "";
  const message =
    typeof error.message === "string" && error.message.trim() !== "" ? error.message.trim() : `HTTP ${status}`;
  const code = STATUS_CODES[statusName] ?? codeOfStatus(status);
  const p = settings.propertyId;
  const details: Record<string, unknown> = {
    propertyId: p,
    status,
    ...(statusName === "" ? {} : { grpcStatus: statusName }),
  };
  const where = `ga4 property ${p} (${what})`;
  switch (code) {
    case "rate_limited": {
      const retryAfterMs =
        parseRetryAfter(headers.get("retry-after")) ?? retryInfoMs(error.details) ?? quotaResetMs(message);
      return new ConnectorError(
        "rate_limited",
        `${where}: GA4 refused the request, a quota is exhausted (${message}); not querying the property for ${Math.ceil(retryAfterMs / 1000)}s (quotas: https://developers.google.com/analytics/devguides/reporting/data/v1/quotas)`,
        { retryAfterMs, details },
      );
    }
    case "auth_failed":
      return new ConnectorError(
        "auth_failed",
        status === 401 || statusName === "UNAUTHENTICATED"
          ? `${where}: GA4 refused the access token (${message}); check that the service account key is not deleted or disabled, or create a new key`
          : `${where}: GA4 refused access to the property (${message}); add the service account's email as a Viewer of property ${p} (GA4 Admin → Property access management), and enable the Google Analytics Data API in its Cloud project`,
        { details },
      );
    case "query_failed":
      return new ConnectorError(
        "query_failed",
        `${where}: GA4 refused the report (${message}); ${fixOfInvalid(message)}`,
        { details: { ...details, ...namedField(message) } },
      );
    case "timeout":
      return new ConnectorError(
        "timeout",
        `${where}: GA4 gave up on the report (${message}); the poll will be retried`,
        {
          details,
        },
      );
    default:
      return new ConnectorError(
        "unavailable",
        `${where}: GA4 failed on its side (${message}); the poll will be retried`,
        {
          details,
        },
      );
  }
}

/** `google.rpc.RetryInfo`'s `retryDelay` ("30s", or `{ seconds, nanos }`) in an error's `details`, ms. */
function retryInfoMs(details: unknown): number | null {
  if (!Array.isArray(details)) return null;
  for (const detail of details) {
    if (!isRecord(detail) || detail["@type"] !== "type.googleapis.com/google.rpc.RetryInfo") continue;
    const delay = detail.retryDelay;
    if (typeof delay === "string") {
      const match = /^(\d+(?:\.\d+)?)s$/u.exec(delay);
      if (match !== null) return Math.max(1000, Math.round(Number(match[1]) * 1000));
    }
    if (isRecord(delay)) {
      const ms = Number(delay.seconds ?? 0) * 1000 + Number(delay.nanos ?? 0) / 1e6;
      if (Number.isFinite(ms) && ms > 0) return Math.max(1000, Math.round(ms));
    }
  }
  return null;
}

/** How long until the quota a 429's message names resets: the day's at midnight Pacific, an hour's within the hour. */
function quotaResetMs(message: string): number {
  if (/per day/iu.test(message)) return msToPacificMidnight(Date.now());
  if (/per (?:project )?(?:per )?(?:property )?hour/iu.test(message)) return HOUR_MS;
  return DEFAULT_RETRY_AFTER_MS;
}

/** The configured name a 400's message is about (`Field customUser:x is not a valid dimension`). */
const NAME_IN_MESSAGE = /\b(?:Field|dimension|metric)\s+([A-Za-z][A-Za-z0-9_:]*)\s+is not a valid (dimension|metric)/iu;

function namedField(message: string): Record<string, unknown> {
  const match = NAME_IN_MESSAGE.exec(message);
  return match === null ? {} : { name: match[1], kind: match[2]?.toLowerCase() };
}

function fixOfInvalid(message: string): string {
  const match = NAME_IN_MESSAGE.exec(message);
  if (match === null) return "check the connector's dimensions, metrics and event names (docs/connectors.md, ga4)";
  const name = match[1] ?? "";
  if (/^custom(?:User|Event):/u.test(name)) {
    return `${name} is not registered in this property: create it in GA4 Admin → Custom definitions (scope ${name.startsWith("customUser:") ? "User" : "Event"}, the parameter or user property ${JSON.stringify(name.slice(name.indexOf(":") + 1))}), or fix the setting that names it`;
  }
  return `${name} is not a ${match[2]?.toLowerCase() ?? "field"} of the Data API schema (https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema); fix the setting that names it`;
}
