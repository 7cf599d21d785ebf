/**
 * The interface every LLM provider implements, and the errors the gateway's
 * retry loop understands.
 */
import { OutboundBlockedError } from "@outcome-runtime/netguard";

export interface ProviderRequest {
  readonly model: string;
  /** The operation's prompt file. */
  readonly system: string;
  /** The operation's input, rendered for the model. */
  readonly user: string;
  /** Name of the structured output (a tool name or a json_schema name): `[a-zA-Z0-9_-]{1,64}`. */
  readonly outputName: string;
  readonly outputSchema: Record<string, unknown>;
  readonly maxOutputTokens: number;
  readonly timeoutMs: number;
}

export interface ProviderResponse {
  /** The structured output when the provider returned parseable JSON, else `undefined`. */
  readonly output: unknown;
  /** Why `output` is missing (malformed JSON, no tool call, truncated), or `null`. */
  readonly malformed: string | null;
  /** The raw text, for a repair prompt. */
  readonly raw: string;
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
}

export interface LlmProvider {
  readonly name: "anthropic" | "openai-compatible";
  complete(request: ProviderRequest): Promise<ProviderResponse>;
}

export type ProviderErrorKind = "rate_limited" | "server_error" | "timeout" | "connection" | "client_error";

/** A failed provider request. `retryable` ones are retried with backoff. */
export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status: number | null = null,
    /** The server's `retry-after`, ms, when it sent one. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = "ProviderError";
  }

  get retryable(): boolean {
    return this.kind !== "client_error";
  }
}

/**
 * Parse a `retry-after` header (RFC 9110 §10.2.3): delay-seconds or an
 * HTTP-date. Also reads `retry-after-ms` when present. Returns ms, or `null`.
 */
export function retryAfterMs(headers: { get(name: string): string | null } | undefined, now: number): number | null {
  if (headers === undefined) return null;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const raw = headers.get("retry-after")?.trim();
  if (raw === undefined || raw === "") return null;
  if (/^\d+(\.\d+)?$/.test(raw)) return Number(raw) * 1000;
  const date = Date.parse(raw);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now);
}

/** Map an HTTP status to an error kind. */
export function kindOfStatus(status: number): ProviderErrorKind {
  if (status === 429) return "rate_limited";
  if (status === 408) return "timeout";
  if (status >= 500) return "server_error";
  return "client_error";
}

/** Parse model text as JSON, tolerating a fenced ```json block around it. */
export function parseJsonText(text: string): { output: unknown; malformed: string | null } {
  const trimmed = text.trim();
  const fenced = /^```(?:json)?\s*([\s\S]*?)\s*```$/.exec(trimmed);
  const body = fenced ? (fenced[1] ?? "") : trimmed;
  if (body === "") return { output: undefined, malformed: "empty response" };
  try {
    return { output: JSON.parse(body), malformed: null };
  } catch (error) {
    return { output: undefined, malformed: `malformed JSON: ${(error as Error).message}` };
  }
}

/**
 * POST a JSON body to an OpenAI-compatible endpoint through the caller's guarded fetch and return the parsed
 * JSON answer (not yet checked: the caller validates its shape).
 *
 * @param label prefixes every error message (`openai-compatible`, `embeddings`).
 * @throws ProviderError: `rate_limited`/`server_error`/`client_error` by HTTP status (with its Retry-After, ms),
 *   `timeout` after `timeoutMs`, `client_error` for a host the outbound policy refuses, `server_error` for a body
 *   that is not JSON, `connection` otherwise.
 */
export async function postJson(
  send: (url: string, init: RequestInit) => Promise<Response>,
  endpoint: string,
  request: { readonly apiKey?: string; readonly body: unknown; readonly timeoutMs: number; readonly label: string },
): Promise<unknown> {
  const { label, timeoutMs } = request;
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (request.apiKey !== undefined) headers.authorization = `Bearer ${request.apiKey}`;
  try {
    const response = await send(endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify(request.body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) {
      const detail = (await response.text().catch(() => "")).slice(0, 500);
      throw new ProviderError(
        kindOfStatus(response.status),
        `${label}: HTTP ${response.status}: ${detail}`,
        response.status,
        retryAfterMs(response.headers, Date.now()),
      );
    }
    return await response.json();
  } catch (error) {
    if (error instanceof ProviderError) throw error;
    if (error instanceof OutboundBlockedError) throw new ProviderError("client_error", `${label}: ${error.message}`);
    const name = (error as Error)?.name;
    if (name === "TimeoutError" || name === "AbortError") {
      throw new ProviderError("timeout", `${label}: no answer within ${timeoutMs} ms`);
    }
    if (error instanceof SyntaxError) throw new ProviderError("server_error", `${label}: response body is not JSON`);
    throw new ProviderError("connection", `${label}: ${(error as Error)?.message ?? String(error)}`);
  }
}
