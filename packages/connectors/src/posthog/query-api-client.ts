/**
 * A small client of PostHog's query API (posthog.com/docs/api/queries):
 * `POST /api/projects/:project_id/query/` with
 * `{"query": {"kind": "HogQLQuery", "query": "...", "values": {...}}}`, a
 * personal API key as a Bearer token, the project's request budget (documented
 * limits, shared by every connector of this process reading the project), a
 * pause after a 429, and errors mapped to {@link ConnectorError} codes. The
 * answer (`results`, `columns`, `types`, `hasMore`, `limit`) is checked here:
 * a truncated answer (`hasMore: true`) is refused, never used in part.
 *
 * PostHog has no official client library for the query API (its SDKs capture
 * events and evaluate flags), so this is plain `fetch`.
 */
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { show } from "../config-reader";
import { ConnectorError } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";
import type { RequestBudget, RequestBudgetLimits } from "../request-budget";

/**
 * PostHog's documented query API limits, per project (posthog.com/docs/api/queries,
 * "Rate limits": 2400 requests an hour, 240 a minute, 3 queries running at once,
 * 10 seconds of execution; some projects are still on an older 120 an hour).
 */
export const POSTHOG_QUERIES_PER_HOUR = 2400;
export const POSTHOG_MAX_CONCURRENT = 3;
/** The older limit some projects still have; polls are planned within it, so they fit either. */
export const POSTHOG_LEGACY_QUERIES_PER_HOUR = 120;
const POSTHOG_RATE_LIMIT_DOCS = "https://posthog.com/docs/api/queries#rate-limits";

/** The API base of each PostHog Cloud region. */
export const POSTHOG_REGION_URLS: Readonly<Record<"us" | "eu", string>> = Object.freeze({
  us: "https://us.posthog.com",
  eu: "https://eu.posthog.com",
});

/**
 * The largest answer read, in bytes. A built query returns one row per
 * (experiment, arm); a server that is not PostHog, or a user query without a
 * GROUP BY, could send millions of rows, held in memory twice (text, then
 * parsed). Reading stops at this size.
 */
export const POSTHOG_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** How long to pause a project after a 429 that gave no `Retry-After`. */
const DEFAULT_RETRY_AFTER_MS = 60_000;

export interface QueryApiSettings {
  /** e.g. `https://eu.posthog.com` (no trailing slash). */
  readonly baseUrl: string;
  readonly projectId: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  readonly budget: RequestBudget;
}

/** The limits of a project's budget: the documented ones, keyed by API base and project. */
export function posthogBudgetLimits(baseUrl: string, projectId: string): RequestBudgetLimits {
  return {
    vendor: "posthog",
    scope: `project ${projectId}`,
    key: `${baseUrl}|${projectId}`,
    perHour: POSTHOG_QUERIES_PER_HOUR,
    maxConcurrent: POSTHOG_MAX_CONCURRENT,
    docs: POSTHOG_RATE_LIMIT_DOCS,
  };
}

/** A HogQL query's checked answer: column names and rows, `hasMore` false. */
export interface HogQLRows {
  readonly columns: readonly string[];
  /** Each column's ClickHouse type as PostHog reports it (`String`, `UInt64`, `Float64`), when given. */
  readonly types: readonly (string | null)[];
  readonly rows: readonly (readonly unknown[])[];
}

/**
 * Runs one HogQL query. The request must have been counted with
 * `budget.spend` by the caller; it runs within the budget's concurrency.
 *
 * @param values the placeholders' values (`HogQLQuery.values`)
 * @param field the setting a refused query is about (`query` for the user's own), in `details.field`
 * @throws ConnectorError `auth_failed` (401, 403, with PostHog's `detail`),
 *   `rate_limited` (429, with `retryAfterMs` from `Retry-After`; the project's
 *   budget is paused until then), `query_failed` (400 and other 4xx, with
 *   PostHog's `detail`, e.g. a property or table HogQL cannot resolve),
 *   `unavailable` (5xx, network), `timeout` (no answer within `timeoutMs`, or the
 *   poll aborted), `too_many_rows` (`hasMore: true`), `bad_response` (a body that
 *   is too large, not JSON, or not a HogQL answer), `invalid_config` (the
 *   outbound policy refused the address)
 */
export async function runHogQL(
  settings: QueryApiSettings,
  query: string,
  values: Readonly<Record<string, unknown>>,
  signal?: AbortSignal,
  field?: string,
): Promise<HogQLRows> {
  let body: unknown;
  try {
    body = await settings.budget.run(() => send(settings, query, values, signal, field), signal);
  } catch (error) {
    // Aborted while waiting for a concurrency slot: the budget rejects with the signal's reason.
    if (!(error instanceof ConnectorError) && signal?.aborted) throw abortedError(signal);
    throw error;
  }
  return checkAnswer(body);
}

const PATH = "query";

async function send(
  settings: QueryApiSettings,
  query: string,
  values: Readonly<Record<string, unknown>>,
  signal: AbortSignal | undefined,
  field: string | undefined,
): Promise<unknown> {
  const url = `${settings.baseUrl}/api/projects/${encodeURIComponent(settings.projectId)}/query/`;
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  let response: Response;
  let text: string | null;
  try {
    response = await settings.fetch(url, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${settings.apiKey}`,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      // force_blocking: computed now, never a cached answer of an earlier poll.
      body: JSON.stringify({ query: { kind: "HogQLQuery", query, values }, refresh: "force_blocking" }),
      signal: combined,
    });
    text = await readCapped(response, POSTHOG_MAX_RESPONSE_BYTES);
  } catch (error) {
    if (signal?.aborted) throw abortedError(signal);
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError("invalid_config", `posthog ${PATH}: ${error.message}`, {
        details: { url: error.url, address: error.address },
        cause: error,
      });
    }
    if (timeout.aborted) {
      throw new ConnectorError(
        "timeout",
        `posthog ${PATH}: no answer within ${settings.timeoutMs / 1000}s; the poll will be retried (raise timeout, or narrow the query: PostHog stops a query after about 10 s)`,
        { details: { timeoutMs: settings.timeoutMs }, cause: error },
      );
    }
    throw new ConnectorError(
      "unavailable",
      `posthog ${PATH}: cannot reach ${new URL(settings.baseUrl).host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { cause: error },
    );
  }

  const status = response.status;
  if (text === null) {
    throw new ConnectorError(
      "bad_response",
      `posthog ${PATH}: the answer is larger than ${POSTHOG_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (HTTP ${status}), far more than one row per experiment and arm; reading stopped. Group the query by experiment and arm, and check api_url`,
      { details: { status, maxBytes: POSTHOG_MAX_RESPONSE_BYTES } },
    );
  }
  const detail = errorDetail(text);
  const said = detail === "" ? "" : `: ${detail}`;
  const details = { status, projectId: settings.projectId, ...(detail === "" ? {} : { detail }) };
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after")) ?? DEFAULT_RETRY_AFTER_MS;
    settings.budget.pause(retryAfterMs);
    throw new ConnectorError(
      "rate_limited",
      `posthog ${PATH}: rate limited (429${said}); PostHog allows project ${settings.projectId} about ${POSTHOG_QUERIES_PER_HOUR} queries an hour (${POSTHOG_LEGACY_QUERIES_PER_HOUR} on older projects) and ${POSTHOG_MAX_CONCURRENT} at a time: retry in ${Math.ceil(retryAfterMs / 1000)}s, or poll less often`,
      { retryAfterMs, details },
    );
  }
  if (status === 401 || status === 403) {
    throw new ConnectorError(
      "auth_failed",
      `posthog ${PATH}: ${status === 401 ? "the personal API key was refused (expired, revoked or mistyped)" : "the personal API key may not query this project"} (${status}${said}); check personal_api_key_env or personal_api_key_secret, and that the key has the query:read scope on project ${settings.projectId}`,
      { details },
    );
  }
  if (status >= 500) {
    throw new ConnectorError(
      "unavailable",
      `posthog ${PATH}: PostHog failed (${status}${said}); the poll will be retried`,
      {
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
        details,
      },
    );
  }
  if (status < 200 || status >= 300) {
    throw new ConnectorError(
      "query_failed",
      `posthog ${PATH}: PostHog refused the query (${status}${said}); ${field === "query" ? "check the tables, fields and functions of query in outcome.yaml" : "check the event and property names (exposure_event, event, experiment_property, variant_property, value_property) in outcome.yaml"}`,
      { details: field === undefined ? details : { ...details, field } },
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ConnectorError(
      "bad_response",
      `posthog ${PATH}: the answer is not JSON (starts with ${JSON.stringify(text.slice(0, 60))}); check api_url`,
      { details: { status } },
    );
  }
}

/**
 * The rows of a `HogQLQueryResponse` (PostHog's query schema): `results` an
 * array of rows, `columns` their names, `types` their `[name, type]` pairs,
 * `hasMore` whether rows were cut off at `limit`.
 *
 * @throws ConnectorError `too_many_rows` when `hasMore` is true; `bad_response` for any other shape
 */
function checkAnswer(body: unknown): HogQLRows {
  const bad = (problem: string, field: string): ConnectorError =>
    new ConnectorError("bad_response", `posthog ${PATH}: ${problem}; check api_url`, { details: { field } });
  if (!isRecord(body)) throw bad(`the answer is ${show(body)}, not a HogQL query response object`, "body");
  if (body.hasMore === true) {
    const limit = typeof body.limit === "number" ? body.limit : null;
    throw new ConnectorError(
      "too_many_rows",
      `posthog ${PATH}: PostHog cut the answer off${limit === null ? "" : ` at ${limit} rows`} (hasMore: true); a partial answer is never used. Group the query by experiment and arm (one row each), or raise its LIMIT`,
      { details: { field: "hasMore", limit } },
    );
  }
  if (body.hasMore !== undefined && body.hasMore !== false && body.hasMore !== null) {
    throw bad(`hasMore is ${show(body.hasMore)}, not true or false`, "hasMore");
  }
  const { columns, results } = body;
  if (!Array.isArray(columns) || !columns.every((c) => typeof c === "string")) {
    throw bad(`columns is ${show(columns)}, not a list of column names`, "columns");
  }
  if (!Array.isArray(results)) throw bad(`results is ${show(results)}, not a list of rows`, "results");
  for (const [i, row] of results.entries()) {
    if (!Array.isArray(row) || row.length !== columns.length) {
      throw bad(
        `results[${i}] is ${show(row)}, not a row of ${columns.length} values (${columns.join(", ")})`,
        "results",
      );
    }
  }
  const types: (string | null)[] = columns.map(() => null);
  if (Array.isArray(body.types)) {
    for (const [i, t] of body.types.entries()) {
      if (i < types.length && Array.isArray(t) && typeof t[1] === "string") types[i] = t[1];
    }
  }
  return { columns: columns as string[], types, rows: results as unknown[][] };
}

function abortedError(signal: AbortSignal | undefined): ConnectorError {
  // The worker aborts a poll that outlasts its timeout (POLL_TIMEOUT_MS) with a TimeoutError: say so.
  const timedOut = (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return new ConnectorError(
    "timeout",
    timedOut
      ? `posthog ${PATH}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the poll will be retried`
      : `posthog ${PATH}: the poll was aborted`,
    { details: { aborted: true } },
  );
}

/** PostHog's error `detail` (its API errors are `{ type, code, detail, attr }`), or the start of a non-JSON body. */
function errorDetail(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed) && typeof parsed.detail === "string") return parsed.detail.slice(0, 500);
    if (isRecord(parsed) && typeof parsed.error === "string") return parsed.error.slice(0, 500);
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 200);
}
