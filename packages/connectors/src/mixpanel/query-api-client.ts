/**
 * A small client of Mixpanel's Query API (https://docs.mixpanel.com/reference/query-api):
 * service-account auth (HTTP Basic `username:secret`, `project_id` in the
 * query string), at most {@link MIXPANEL_MAX_CONCURRENT} requests in flight
 * per project across every connector of this process, a pause after a 429,
 * and errors mapped to {@link ConnectorError} codes.
 */
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { ConnectorError } from "../connector-error";
import { isRecord, parseRetryAfter, readCapped } from "../http-response";
import { type RequestBudget, requestBudget, resetRequestBudgets } from "../request-budget";

/** Mixpanel's documented Query API limits, per project. */
export const MIXPANEL_QUERIES_PER_HOUR = 60;
export const MIXPANEL_MAX_CONCURRENT = 5;

/**
 * The largest answer read, in bytes. The connector asks for one value per arm
 * (`limit`), so a real answer is a few kilobytes; a server that ignores it (or
 * is not Mixpanel) could send millions of rows, which would be held in memory
 * twice (text, then parsed). Reading stops at this size.
 */
const MIXPANEL_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** How long to pause a project after a 429 that gave no `Retry-After` (the limit is per hour). */
const DEFAULT_RETRY_AFTER_MS = 60_000;

/** The Query API base URL of each data residency region. */
export const MIXPANEL_REGION_URLS: Readonly<Record<"us" | "eu" | "in", string>> = Object.freeze({
  us: "https://mixpanel.com/api/query",
  eu: "https://eu.mixpanel.com/api/query",
  in: "https://in.mixpanel.com/api/query",
});

export interface QueryApiSettings {
  baseUrl: string;
  projectId: string;
  workspaceId: number | undefined;
  username: string;
  secret: string;
  timeoutMs: number;
  fetch: typeof fetch;
}

/** Mixpanel's page of the Query API's limits. */
const MIXPANEL_RATE_LIMITS_DOCS = "https://docs.mixpanel.com/reference/rate-limits";

function projectKey(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">): string {
  return `${settings.baseUrl}#${settings.projectId}`;
}

/**
 * The project's shared request budget (`request-budget.ts`): its hourly
 * {@link MIXPANEL_QUERIES_PER_HOUR} requests, {@link MIXPANEL_MAX_CONCURRENT}
 * at a time, paused after a 429; keyed as `mixpanelPollCost` keys it.
 */
function budgetOf(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">): RequestBudget {
  return requestBudget({
    vendor: "mixpanel",
    scope: `project ${settings.projectId}`,
    key: projectKey(settings),
    perHour: MIXPANEL_QUERIES_PER_HOUR,
    maxConcurrent: MIXPANEL_MAX_CONCURRENT,
    docs: MIXPANEL_RATE_LIMITS_DOCS,
    unit: "Query API requests",
  });
}

/** Forgets pauses after 429s and the requests spent this hour, of every budget (tests). */
export function resetRateLimitState(): void {
  resetRequestBudgets();
}

/**
 * Requests sent to a project's Query API in the last hour by this process, out
 * of {@link MIXPANEL_QUERIES_PER_HOUR}.
 */
export function queriesSpentThisHour(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">): number {
  return budgetOf(settings).state().spent;
}

/**
 * Spends `count` requests of the project's hourly budget
 * ({@link MIXPANEL_QUERIES_PER_HOUR}, counted per request sent by this process
 * over the last hour), all or none, before any of them is sent: a poll that
 * needs 2 requests when 1 is left is refused whole, so it never stops halfway
 * through its requests. Call it once per read with every request the read will
 * send, then send them with {@link queryApiGet}.
 *
 * @param count requests the read will send, a whole number ≥ 1.
 * @throws ConnectorError `rate_limited` (with `retryAfterMs`: when enough of the
 *   hour's requests will have aged out, or when a pause after a 429 ends); nothing
 *   is spent then.
 */
export function spendQueries(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">, count: number): void {
  budgetOf(settings).spend(count);
}

/** What to tell when Mixpanel refuses a query: the advice, and the setting it concerns. */
export interface RefusedAdvice {
  readonly hint: string;
  readonly field?: string;
}

/** A Query API answer: the parsed body, and the segments whose entries its text repeats (see {@link queryApiGet}). */
export interface QueryApiAnswer {
  readonly body: unknown;
  /** Segment (a key of the object at `segmentsAt`) → the path of the first key repeated in or at it. */
  readonly repeatedSegments: ReadonlyMap<string, readonly string[]>;
}

/**
 * GETs `path` (e.g. `/segmentation`) with `params`, and returns the parsed
 * JSON body. The request must have been counted with {@link spendQueries}.
 *
 * A key repeated within one object of the body (legal JSON text, which
 * `JSON.parse` reads by keeping the last value silently) is two values where
 * the answer has one: it is `bad_response`, unless it lies below
 * `segmentsAt` (e.g. `["data", "values"]`), where it concerns one segment
 * alone and is returned in `repeatedSegments` for the caller to refuse that
 * segment (a `*` in `segmentsAt` matches any key, e.g. `["data", "*"]` for the
 * segments of each date of `/funnels`).
 *
 * `refused` replaces the advice of a `query_failed` message (Mixpanel's own
 * text is kept) with what in the settings to check when Mixpanel refuses the
 * query, and names that setting in the error's `details.field`.
 *
 * @throws ConnectorError `auth_failed` (401, 403), `rate_limited` (429, with
 *   `retryAfterMs`), `unavailable` (5xx, network), `timeout`, `query_failed`
 *   (other 4xx, with Mixpanel's message), `bad_response` (a body that is not
 *   JSON, or repeats a key outside `segmentsAt`)
 */
export async function queryApiGet(
  settings: QueryApiSettings,
  path: string,
  params: Readonly<Record<string, string>>,
  signal?: AbortSignal,
  segmentsAt?: readonly string[],
  refused?: RefusedAdvice,
): Promise<QueryApiAnswer> {
  const budget = budgetOf(settings);
  // A 429 that came back while this read waited: nothing more is sent until the pause ends.
  const pausedMs = budget.pauseRemainingMs();
  if (pausedMs > 0) {
    throw new ConnectorError(
      "rate_limited",
      `mixpanel: project ${settings.projectId} hit the Query API rate limit; not querying again for ${Math.ceil(pausedMs / 1000)}s`,
      { retryAfterMs: pausedMs, details: { projectId: settings.projectId } },
    );
  }
  let sent: { body: unknown; text: string };
  try {
    sent = await budget.run(() => send(settings, budget, path, params, signal, refused), signal);
  } catch (error) {
    if (signal?.aborted && !(error instanceof ConnectorError)) throw abortedError(path, signal);
    throw error;
  }
  {
    const { body, text } = sent;
    const repeatedSegments = new Map<string, readonly string[]>();
    for (const keyPath of repeatedKeys(text)) {
      const segment =
        segmentsAt !== undefined &&
        keyPath.length > segmentsAt.length &&
        segmentsAt.every((k, i) => k === "*" || keyPath[i] === k)
          ? keyPath[segmentsAt.length]
          : undefined;
      if (segment === undefined) {
        const at = keyPath.map((k) => `[${JSON.stringify(k)}]`).join("");
        throw new ConnectorError(
          "bad_response",
          `mixpanel ${path}: the answer names ${JSON.stringify(keyPath.at(-1))} twice in one object (at ${at}), two values where there is one; check api_url`,
          { details: { path, field: at } },
        );
      }
      if (!repeatedSegments.has(segment)) repeatedSegments.set(segment, keyPath);
    }
    return { body, repeatedSegments };
  }
}

/**
 * The keys `text` (valid JSON) repeats within one object, each as the path of
 * keys from the root to the repeated one (array items by their index). RFC
 * 8259 §4 leaves repeated names to the parser; `JSON.parse` keeps the last.
 */
export function repeatedKeys(text: string): string[][] {
  /** An open object (its keys so far, the current key) or array (the current index). */
  interface Open {
    readonly keys: Set<string> | null;
    readonly path: readonly string[];
    key: string;
    index: number;
    expectsKey: boolean;
  }
  const found: string[][] = [];
  const open: Open[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const top = open.at(-1);
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (top?.keys != null && top.expectsKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) found.push([...top.path, key]);
        top.keys.add(key);
        top.key = key;
        top.expectsKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === "{" || c === "[") {
      const path = top === undefined ? [] : [...top.path, top.keys === null ? String(top.index) : top.key];
      open.push({ keys: c === "{" ? new Set() : null, path, key: "", index: 0, expectsKey: c === "{" });
    } else if (c === "}" || c === "]") {
      open.pop();
    } else if (c === "," && top !== undefined) {
      if (top.keys === null) top.index++;
      else top.expectsKey = true;
    }
    i++;
  }
  return found;
}

async function send(
  settings: QueryApiSettings,
  budget: RequestBudget,
  path: string,
  params: Readonly<Record<string, string>>,
  signal: AbortSignal | undefined,
  refused: RefusedAdvice = { hint: "check event, the property names and filter in outcome.yaml" },
): Promise<{ body: unknown; text: string }> {
  const query = new URLSearchParams({ project_id: settings.projectId });
  if (settings.workspaceId !== undefined) query.set("workspace_id", String(settings.workspaceId));
  for (const [name, value] of Object.entries(params)) query.set(name, value);
  const url = `${settings.baseUrl}${path}?${query.toString()}`;
  const timeout = AbortSignal.timeout(settings.timeoutMs);
  const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  const authorization = `Basic ${Buffer.from(`${settings.username}:${settings.secret}`, "utf8").toString("base64")}`;

  let response: Response;
  let body: string | null;
  try {
    response = await settings.fetch(url, {
      method: "GET",
      headers: { Authorization: authorization, Accept: "application/json" },
      signal: combined,
    });
    body = await readCapped(response, MIXPANEL_MAX_RESPONSE_BYTES);
  } catch (error) {
    if (signal?.aborted) throw abortedError(path, signal);
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError("invalid_config", `mixpanel ${path}: ${error.message}`, {
        details: { path, url: error.url, address: error.address },
        cause: error,
      });
    }
    if (timeout.aborted) {
      throw new ConnectorError(
        "timeout",
        `mixpanel ${path}: no answer within ${settings.timeoutMs / 1000}s; the poll will be retried (raise timeout for slow reports)`,
        { details: { path, timeoutMs: settings.timeoutMs }, cause: error },
      );
    }
    throw new ConnectorError(
      "unavailable",
      `mixpanel ${path}: cannot reach ${new URL(settings.baseUrl).host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { details: { path }, cause: error },
    );
  }

  const status = response.status;
  if (body === null) {
    throw new ConnectorError(
      "bad_response",
      `mixpanel ${path}: the answer is larger than ${MIXPANEL_MAX_RESPONSE_BYTES / 1024 / 1024} MiB (HTTP ${status}), far more than the one value per arm asked for; reading stopped. Check api_url: it should be Mixpanel's Query API`,
      { details: { path, status, maxBytes: MIXPANEL_MAX_RESPONSE_BYTES } },
    );
  }
  const message = errorText(body);
  const details = { path, status, projectId: settings.projectId };
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after")) ?? DEFAULT_RETRY_AFTER_MS;
    budget.pause(retryAfterMs);
    throw new ConnectorError(
      "rate_limited",
      `mixpanel ${path}: rate limited (429${message === "" ? "" : `: ${message}`}); Mixpanel allows about ${MIXPANEL_QUERIES_PER_HOUR} queries an hour and ${MIXPANEL_MAX_CONCURRENT} at a time per project: retry in ${Math.ceil(retryAfterMs / 1000)}s, or poll less often`,
      { retryAfterMs, details },
    );
  }
  if (status === 401 || status === 403) {
    throw new ConnectorError(
      "auth_failed",
      `mixpanel ${path}: ${status === 401 ? "the service account credentials were refused" : "the service account may not read this project"} (${status}${message === "" ? "" : `: ${message}`}); check username_env and secret_env, and that the service account has access to project ${settings.projectId}`,
      { details },
    );
  }
  if (status >= 500) {
    throw new ConnectorError(
      "unavailable",
      `mixpanel ${path}: Mixpanel failed (${status}${message === "" ? "" : `: ${message}`}); the poll will be retried`,
      { retryAfterMs: parseRetryAfter(response.headers.get("retry-after")), details },
    );
  }
  if (status < 200 || status >= 300) {
    throw new ConnectorError(
      "query_failed",
      `mixpanel ${path}: Mixpanel refused the query (${status}${message === "" ? "" : `: ${message}`}); ${refused.hint}`,
      { details: refused.field === undefined ? details : { ...details, field: refused.field } },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ConnectorError(
      "bad_response",
      `mixpanel ${path}: the answer is not JSON (starts with ${JSON.stringify(body.slice(0, 60))}); check api_url`,
      { details },
    );
  }
  if (isRecord(parsed) && parsed.status === "error") {
    throw new ConnectorError(
      "query_failed",
      `mixpanel ${path}: ${typeof parsed.error === "string" ? parsed.error : "the query failed"}; ${refused.hint}`,
      { details: refused.field === undefined ? details : { ...details, field: refused.field } },
    );
  }
  return { body: parsed, text: body };
}

function abortedError(path: string, signal: AbortSignal | undefined): ConnectorError {
  // The worker aborts a poll that outlasts its timeout (POLL_TIMEOUT_MS) with a TimeoutError: say so.
  const timedOut = (signal?.reason as { name?: string } | undefined)?.name === "TimeoutError";
  return new ConnectorError(
    "timeout",
    timedOut
      ? `mixpanel ${path}: no answer within the poll timeout (the worker's POLL_TIMEOUT_MS); the poll will be retried`
      : `mixpanel ${path}: the poll was aborted`,
    { details: { path, aborted: true } },
  );
}

/** Mixpanel's `{ "error": "..." }` text, or the start of a non-JSON body. */
function errorText(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed) && typeof parsed.error === "string") return parsed.error;
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200);
}
