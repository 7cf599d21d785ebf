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

/** Counts permits per project; waiters queue in order and leave on abort. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(signal: AbortSignal | undefined): Promise<() => void> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiting.indexOf(wake);
          if (i !== -1) this.waiting.splice(i, 1);
          reject(signal?.reason);
        };
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        signal?.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(wake);
      });
    }
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }
}

const semaphores = new Map<string, Semaphore>();
/** Project key → epoch ms before which no request is sent (after a 429). */
const pausedUntil = new Map<string, number>();
/** Project key → epoch ms of each request spent in the last hour, oldest first. */
const spentAt = new Map<string, number[]>();

const HOUR_MS = 3_600_000;

function projectKey(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">): string {
  return `${settings.baseUrl}#${settings.projectId}`;
}

/** Forgets pauses after 429s and the requests spent this hour (tests). */
export function resetRateLimitState(): void {
  pausedUntil.clear();
  spentAt.clear();
}

/** The requests of a project spent in the last hour, pruned of older ones. */
function spentThisHour(key: string, now: number): number[] {
  const spent = (spentAt.get(key) ?? []).filter((at) => at > now - HOUR_MS);
  spentAt.set(key, spent);
  return spent;
}

/**
 * Requests sent to a project's Query API in the last hour by this process, out
 * of {@link MIXPANEL_QUERIES_PER_HOUR}.
 */
export function queriesSpentThisHour(settings: Pick<QueryApiSettings, "baseUrl" | "projectId">): number {
  return spentThisHour(projectKey(settings), Date.now()).length;
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
  const key = projectKey(settings);
  const now = Date.now();
  const paused = pausedUntil.get(key);
  if (paused !== undefined && paused > now) throw pausedError(settings, paused - now);
  const spent = spentThisHour(key, now);
  if (spent.length + count > MIXPANEL_QUERIES_PER_HOUR) {
    // The request that must age out before `count` fit; a read larger than the whole budget waits an hour.
    const oldest = spent[Math.max(0, spent.length + count - MIXPANEL_QUERIES_PER_HOUR - 1)] ?? now;
    const retryAfterMs = Math.max(1000, oldest + HOUR_MS - now);
    throw new ConnectorError(
      "rate_limited",
      `mixpanel: project ${settings.projectId} has spent ${spent.length} of its ${MIXPANEL_QUERIES_PER_HOUR} Query API requests this hour and this read needs ${count}; nothing was sent: retry in ${Math.ceil(retryAfterMs / 1000)}s, or poll less often`,
      {
        retryAfterMs,
        details: {
          projectId: settings.projectId,
          spent: spent.length,
          needed: count,
          perHour: MIXPANEL_QUERIES_PER_HOUR,
        },
      },
    );
  }
  for (let i = 0; i < count; i++) spent.push(now);
}

function pausedError(settings: Pick<QueryApiSettings, "projectId">, waitMs: number): ConnectorError {
  return new ConnectorError(
    "rate_limited",
    `mixpanel: project ${settings.projectId} hit the Query API rate limit; not querying again for ${Math.ceil(waitMs / 1000)}s`,
    { retryAfterMs: waitMs, details: { projectId: settings.projectId } },
  );
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
  const key = projectKey(settings);
  const paused = pausedUntil.get(key);
  if (paused !== undefined && paused > Date.now()) throw pausedError(settings, paused - Date.now());
  let semaphore = semaphores.get(key);
  if (semaphore === undefined) {
    semaphore = new Semaphore(MIXPANEL_MAX_CONCURRENT);
    semaphores.set(key, semaphore);
  }
  let release: () => void;
  try {
    release = await semaphore.acquire(signal);
  } catch {
    throw abortedError(path, signal);
  }
  try {
    const { body, text } = await send(settings, key, path, params, signal, refused);
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
  } finally {
    release();
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
  key: string,
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
    pausedUntil.set(key, Date.now() + retryAfterMs);
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
