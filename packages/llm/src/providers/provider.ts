/**
 * The interface every LLM provider implements, and the errors the gateway's
 * retry loop understands.
 */

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
