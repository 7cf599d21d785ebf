/**
 * HTTP for the providers that speak plain JSON over fetch (Unleash's Admin
 * API, GrowthBook's REST API): one place that caps the answer's size, maps
 * the status to a {@link FlagProviderError} code and reads how long the
 * provider asked to wait. LaunchDarkly's official client maps its own
 * answers with {@link errorForStatus}.
 */
import { FlagProviderError } from "./provider";

/** The largest answer body read, in bytes (a project's flag list is far smaller). */
export const MAX_ANSWER_BYTES = 5 * 1024 * 1024;

/**
 * How long the provider asked to wait, in ms: `Retry-After` (seconds or an
 * HTTP date), else `X-RateLimit-Reset` (LaunchDarkly: epoch milliseconds;
 * a value below 10¹¹ is read as epoch seconds, or as seconds from now when
 * below 10⁹). Null when neither says. Never negative.
 */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | null {
  const after = headers.get("retry-after");
  if (after !== null && after.trim() !== "") {
    const seconds = Number(after);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(after);
    if (Number.isFinite(date)) return Math.max(0, date - now);
  }
  const reset = Number(headers.get("x-ratelimit-reset") ?? Number.NaN);
  if (Number.isFinite(reset) && reset > 0) {
    if (reset < 1e9) return reset * 1000;
    return Math.max(0, (reset < 1e11 ? reset * 1000 : reset) - now);
  }
  return null;
}

/**
 * The error for a non-2xx answer. `what` names the call (`unleash PUT
 * /api/admin/projects/default/features/x`); the body's first 300 characters
 * are quoted, since providers explain refusals there.
 */
export function errorForStatus(status: number, headers: Headers, body: string, what: string): FlagProviderError {
  const said = body.trim().slice(0, 300).replace(/\s+/gu, " ");
  const quote = said === "" ? "" : `: ${said}`;
  const details = { status, call: what };
  switch (status) {
    case 401:
      return new FlagProviderError("auth_failed", `${what}: the provider refused the token (401)${quote}`, { details });
    case 403:
      return new FlagProviderError(
        "forbidden",
        `${what}: the token may not do this (403)${quote}; grant it the permissions docs/flags.md lists`,
        { details },
      );
    case 404:
      return new FlagProviderError("not_found", `${what}: not found (404)${quote}`, { details });
    case 409:
      return new FlagProviderError("conflict", `${what}: the flag changed meanwhile (409)${quote}`, { details });
    case 429:
      return new FlagProviderError("rate_limited", `${what}: rate limited (429)${quote}`, {
        details,
        retryAfterMs: retryAfterMs(headers),
      });
    default:
      if (status >= 500) {
        // Only Retry-After: a rate limit's reset (sent on every LaunchDarkly answer) says nothing of an outage.
        const after = headers.get("retry-after");
        return new FlagProviderError("unavailable", `${what}: the provider failed (${status})${quote}`, {
          details,
          retryAfterMs: after === null ? null : retryAfterMs(new Headers({ "retry-after": after })),
        });
      }
      return new FlagProviderError("bad_response", `${what}: the provider refused the request (${status})${quote}`, {
        details,
        retryable: false,
      });
  }
}

/** Read at most `maxBytes` of a body as text; more is a `bad_response` (the stream is cancelled). */
async function cappedText(response: Response, maxBytes: number, what: string): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new FlagProviderError("bad_response", `${what}: the answer is larger than ${maxBytes} bytes`, {
        details: { call: what, maxBytes },
      });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** A fetch failure (network, abort, policy refusal) as a provider error. */
export function transportError(cause: unknown, what: string, signal: AbortSignal): FlagProviderError {
  if (cause instanceof FlagProviderError) return cause;
  const name = cause instanceof Error ? cause.name : "";
  if (signal.aborted || name === "TimeoutError" || name === "AbortError") {
    return new FlagProviderError("timeout", `${what}: no answer in time`, { details: { call: what }, cause });
  }
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("outbound_")) {
    return new FlagProviderError("provider_refused", `${what}: ${(cause as Error).message}`, {
      details: { call: what, reason: code },
      cause,
    });
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return new FlagProviderError("unavailable", `${what}: ${message}`, { details: { call: what }, cause });
}

/** A JSON request: method, URL, headers (the token among them) and an optional JSON body. */
export interface JsonRequest {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** Names the call in errors, without the host or the token (`PUT /api/admin/...`). */
  readonly what: string;
}

/**
 * Send a JSON request and parse a JSON answer (an empty body is `null`).
 *
 * @throws FlagProviderError: the status's code ({@link errorForStatus}), `timeout` when `signal` fired,
 *   `unavailable` for a network failure, `provider_refused` when the outbound policy refused the host,
 *   `bad_response` for a body over {@link MAX_ANSWER_BYTES} or one that is not JSON
 */
export async function requestJson(
  fetchFn: typeof fetch,
  request: JsonRequest,
  signal: AbortSignal,
  maxBytes: number = MAX_ANSWER_BYTES,
): Promise<{ readonly status: number; readonly headers: Headers; readonly body: unknown }> {
  let response: Response;
  let text: string;
  try {
    response = await fetchFn(request.url, {
      method: request.method,
      headers: {
        accept: "application/json",
        ...(request.body === undefined ? {} : { "content-type": "application/json" }),
        ...request.headers,
      },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      redirect: "manual",
      signal,
    });
    text = await cappedText(response, maxBytes, request.what);
  } catch (cause) {
    throw transportError(cause, request.what, signal);
  }
  if (response.status < 200 || response.status > 299) {
    throw errorForStatus(response.status, response.headers, text, request.what);
  }
  if (text.trim() === "") return { status: response.status, headers: response.headers, body: null };
  try {
    return { status: response.status, headers: response.headers, body: JSON.parse(text) as unknown };
  } catch {
    throw new FlagProviderError(
      "bad_response",
      `${request.what}: the answer is not JSON (starts ${JSON.stringify(text.slice(0, 60))})`,
      { details: { call: request.what } },
    );
  }
}
