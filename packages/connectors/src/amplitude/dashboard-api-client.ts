/**
 * A small client of Amplitude's Dashboard REST API
 * (https://amplitude.com/docs/apis/analytics/dashboard-rest): HTTP Basic auth
 * with the project's API key and secret key, the project's shared request
 * budget (`request-budget.ts`, counted in Amplitude's query cost, see
 * {@link amplitudeQueryCost}), a pause after a 429, and errors mapped to
 * {@link ConnectorError} codes.
 */
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { ConnectorError } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";
import { type RequestBudget, type RequestBudgetLimits, requestBudget } from "../request-budget";

/** The Dashboard REST API page, which documents the limits below. */
const AMPLITUDE_LIMITS_DOCS = "https://amplitude.com/docs/apis/analytics/dashboard-rest#rate-limits";

/**
 * The documented cost limits, per project: "Up to 1000 cost within a five
 * minute period" and "Up to 108,000 cost per hour". Sustained, the first is
 * the stricter: 1000 × 12 = 12,000 cost an hour, the budget's hourly limit.
 */
export const AMPLITUDE_COST_PER_FIVE_MINUTES = 1000;
export const AMPLITUDE_COST_PER_HOUR = 108_000;
export const AMPLITUDE_BUDGET_COST_PER_HOUR = Math.min(AMPLITUDE_COST_PER_HOUR, AMPLITUDE_COST_PER_FIVE_MINUTES * 12);

/** "You can run up to 5 concurrent requests across all Amplitude REST API endpoints." */
export const AMPLITUDE_MAX_CONCURRENT = 5;

/**
 * How long to pause a project after a 429 that gave no `Retry-After`: the
 * documented cost window is five minutes, after which the spent cost has aged out.
 */
export const AMPLITUDE_DEFAULT_RETRY_AFTER_MS = 5 * 60_000;

/**
 * The largest answer read, in bytes. The connector asks for one group per
 * (experiment, arm) (`limit`, at most 1000) over one window, a few kilobytes to
 * a few hundred; a server that ignores it (or is not Amplitude) could send far
 * more, which would be held in memory twice (text, then parsed).
 */
export const AMPLITUDE_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The Dashboard REST API's base URL of each data residency region (the page's "Regions" table). */
export const AMPLITUDE_REGION_URLS: Readonly<Record<"us" | "eu", string>> = Object.freeze({
  us: "https://amplitude.com",
  eu: "https://analytics.eu.amplitude.com",
});

/** What a query costs, by the page's "Endpoint costs" formula. */
export interface QueryCostInput {
  /** Days in the query (start to end, both included). */
  readonly days: number;
  /** Filters in the one segment (`s`); a query without a segment counts one condition. */
  readonly segmentFilters: number;
  /** Group-bys of the chart (`g`, `g2`): "Each group by counts as 4 segments." */
  readonly groupBys: number;
  /** `segmentation`: events in the query; `funnel`: steps of the funnel. */
  readonly events: number;
  /** Group-bys inside the events (`e.group_by`, which `m=sums` needs for its property): 4 per group-by and event. */
  readonly eventGroupBys: number;
  readonly chart: "segmentation" | "funnel";
}

/**
 * A query's cost, in Amplitude's units, by the documented formula
 * `cost = (# of days) × (# of conditions) × (cost for the query type)`:
 * conditions = 1 segment + its filters + 4 per chart group-by; query type =
 * events (segmentation) or 2 × steps (funnel), plus 4 per group-by inside an
 * event. Where the page says the same thing twice (a group-by "counts as 4
 * segments" and "add a cost of 4 per group by and event"), a chart group-by
 * is counted once, as conditions, and a group-by inside an event once, in the
 * query type.
 *
 * @example
 * // 14 days, one experiment: segment experiment = key and arm in arms, grouped by arm, one event:
 * amplitudeQueryCost({ days: 14, segmentFilters: 2, groupBys: 1, events: 1, eventGroupBys: 0, chart: "segmentation" }); // 14 × 7 × 1 = 98
 */
export function amplitudeQueryCost(q: QueryCostInput): number {
  const conditions = 1 + q.segmentFilters + 4 * q.groupBys;
  const typeCost = (q.chart === "funnel" ? 2 * q.events : q.events) + 4 * q.eventGroupBys;
  return Math.max(1, q.days) * conditions * typeCost;
}

export interface DashboardApiSettings {
  /** The region's base URL (`https://amplitude.com`) or one the operator allows; `/api/2/...` is added. */
  baseUrl: string;
  /** The project id, naming the budget and for messages (the API itself knows the project by its key). */
  projectId: string;
  apiKey: string;
  secretKey: string;
  timeoutMs: number;
  fetch: typeof fetch;
}

/** The budget every connector reading the project shares: counted in Amplitude's query cost. */
export function amplitudeBudgetLimits(baseUrl: string, projectId: string): RequestBudgetLimits {
  return {
    vendor: "amplitude",
    scope: `project ${projectId} (counted in Amplitude query cost)`,
    key: `${baseUrl}|${projectId}`,
    perHour: AMPLITUDE_BUDGET_COST_PER_HOUR,
    maxConcurrent: AMPLITUDE_MAX_CONCURRENT,
    docs: AMPLITUDE_LIMITS_DOCS,
    unit: "query-cost units",
  };
}

function budgetOf(settings: Pick<DashboardApiSettings, "baseUrl" | "projectId">): RequestBudget {
  return requestBudget(amplitudeBudgetLimits(settings.baseUrl, settings.projectId));
}

/**
 * Spends `cost` of the project's hourly budget before a read sends anything,
 * all or none. A read that costs more than the whole hour's budget is
 * counted as the whole budget, so it goes alone once the hour is free
 * (Amplitude has the last word, with a 429).
 *
 * @throws ConnectorError `rate_limited` with `retryAfterMs`; nothing is counted then
 */
export function spendCost(settings: Pick<DashboardApiSettings, "baseUrl" | "projectId">, cost: number): void {
  budgetOf(settings).spend(Math.min(AMPLITUDE_BUDGET_COST_PER_HOUR, Math.max(1, Math.ceil(cost))));
}

/**
 * GETs `path` (e.g. `/api/2/events/segmentation`) with `params` (a name may
 * repeat: a funnel's `e` per step) within the project's concurrency limit, and
 * returns the parsed JSON body. The read's cost must have been spent with
 * {@link spendCost}.
 *
 * @throws ConnectorError `auth_failed` (401, 403), `rate_limited` (429, with
 *   `retryAfterMs` from `Retry-After`, else five minutes; the project's budget is
 *   paused as long), `unavailable` (5xx, network), `timeout`, `query_failed`
 *   (other 4xx, with Amplitude's message), `bad_response` (a body that is not
 *   JSON or is larger than {@link AMPLITUDE_MAX_RESPONSE_BYTES})
 */
export async function dashboardGet(
  settings: DashboardApiSettings,
  path: string,
  params: readonly (readonly [string, string])[],
  signal?: AbortSignal,
): Promise<unknown> {
  const budget = budgetOf(settings);
  try {
    return await budget.run(() => send(settings, budget, path, params, signal), signal);
  } catch (error) {
    if (error instanceof ConnectorError) throw error;
    throw abortedError(path, signal);
  }
}

async function send(
  settings: DashboardApiSettings,
  budget: RequestBudget,
  path: string,
  params: readonly (readonly [string, string])[],
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const url = `${settings.baseUrl}${path}?${new URLSearchParams(params.map(([k, v]): [string, string] => [k, v])).toString()}`;
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  const authorization = `Basic ${Buffer.from(`${settings.apiKey}:${settings.secretKey}`, "utf8").toString("base64")}`;

  let response: Response;
  let body: string | null;
  try {
    response = await settings.fetch(url, {
      method: "GET",
      headers: { Authorization: authorization, Accept: "application/json" },
      signal: combined,
    });
    body = await readCapped(response, AMPLITUDE_MAX_RESPONSE_BYTES);
  } catch (error) {
    if (signal?.aborted) throw abortedError(path, signal);
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError("invalid_config", `amplitude ${path}: ${error.message}`, {
        details: { path, url: error.url, address: error.address },
        cause: error,
      });
    }
    if (timeout.aborted) {
      throw new ConnectorError(
        "timeout",
        `amplitude ${path}: no answer within ${settings.timeoutMs / 1000}s; the poll will be retried (raise timeout for long windows)`,
        { details: { path, timeoutMs: settings.timeoutMs }, cause: error },
      );
    }
    throw new ConnectorError(
      "unavailable",
      `amplitude ${path}: cannot reach ${new URL(settings.baseUrl).host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { details: { path }, cause: error },
    );
  }

  const status = response.status;
  if (body === null) {
    throw new ConnectorError(
      "bad_response",
      `amplitude ${path}: the answer is larger than ${AMPLITUDE_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (HTTP ${status}), far more than one value per arm; reading stopped. Check api_url: it should be Amplitude's Dashboard REST API`,
      { details: { path, status, maxBytes: AMPLITUDE_MAX_RESPONSE_BYTES } },
    );
  }
  const message = errorText(body);
  const said = message === "" ? "" : `: ${message}`;
  const details = { path, status, projectId: settings.projectId };
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after")) ?? AMPLITUDE_DEFAULT_RETRY_AFTER_MS;
    budget.pause(retryAfterMs);
    throw new ConnectorError(
      "rate_limited",
      `amplitude ${path}: rate limited (429${said}); Amplitude allows ${AMPLITUDE_MAX_CONCURRENT} concurrent requests and ${AMPLITUDE_COST_PER_FIVE_MINUTES} query cost per five minutes per project: retry in ${Math.ceil(retryAfterMs / 1000)}s, or poll less often`,
      { retryAfterMs, details },
    );
  }
  if (status === 401 || status === 403) {
    throw new ConnectorError(
      "auth_failed",
      `amplitude ${path}: ${status === 401 ? "the API key and secret key were refused (a wrong, rotated or deleted key)" : "the key may not read this project's data"} (${status}${said}); check api_key_env/api_key_secret and secret_key_env/secret_key_secret, and that they are project ${settings.projectId}'s keys`,
      { details },
    );
  }
  if (status >= 500) {
    throw new ConnectorError(
      "unavailable",
      `amplitude ${path}: Amplitude failed (${status}${said}); the poll will be retried`,
      {
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
        details,
      },
    );
  }
  if (status < 200 || status >= 300) {
    throw new ConnectorError(
      "query_failed",
      `amplitude ${path}: Amplitude refused the query (${status}${said}); check the event names, experiment_property, arm_property and value_property in outcome.yaml against the project's taxonomy`,
      { details },
    );
  }
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw new ConnectorError(
      "bad_response",
      `amplitude ${path}: the answer is not JSON (starts with ${JSON.stringify(body.slice(0, 60))}); check api_url`,
      { details },
    );
  }
}

function abortedError(path: string, signal: AbortSignal | undefined): ConnectorError {
  // The worker aborts a poll that outlasts its timeout (POLL_TIMEOUT_MS) with a TimeoutError: say so.
  const timedOut = (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return new ConnectorError(
    "timeout",
    timedOut
      ? `amplitude ${path}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the poll will be retried`
      : `amplitude ${path}: the poll was aborted`,
    { details: { path, aborted: true } },
  );
}

/** Amplitude's error text (`{ "error": ... }` or `{ "message": ... }`), or the start of a non-JSON body. */
function errorText(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed)) {
      for (const key of ["error", "message"]) {
        const value = parsed[key];
        if (typeof value === "string") return value.slice(0, 300);
        if (isRecord(value) && typeof value.message === "string") return value.message.slice(0, 300);
      }
    }
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200);
}
