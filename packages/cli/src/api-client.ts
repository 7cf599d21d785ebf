/**
 * A small client of the REST API for the CLI. Errors from the API arrive as
 * RFC 9457 problem details and are thrown as `ApiError`.
 */
import type { components } from "@outcome-runtime/spec/api-types";

/**
 * The members of the API's problem details (`components["schemas"]["Problem"]`)
 * the CLI keeps; it fills them itself when an error's body is not one.
 */
export type Problem = Readonly<
  Pick<components["schemas"]["Problem"], "status" | "code" | "title" | "detail" | "errors" | "details">
>;

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
    this.name = "ApiError";
  }
}

/** Thrown when the API cannot be reached at all. */
export class ConnectionError extends Error {
  constructor(url: string, cause: unknown) {
    super(
      `cannot reach the API at ${url} (${cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause)}); ` +
        "start it with `pnpm start`, or point --url / OUTCOME_RUNTIME_URL at it",
    );
    this.name = "ConnectionError";
  }
}

export interface ClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly apiKey: string | undefined;
  /** Request timeout in ms (default 30 000). */
  readonly timeoutMs?: number;
}

export class ApiClient {
  constructor(private readonly options: ClientOptions) {}

  /**
   * Send a request; resolve with the parsed JSON body of a 2xx response.
   * @throws ApiError for a problem response, ConnectionError when unreachable.
   */
  async request<T>(
    method: string,
    path: string,
    body?: { json: unknown } | { text: string; contentType: string },
  ): Promise<T> {
    const url = new URL(path, this.options.url).toString();
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let payload: string | undefined;
    if (body && "json" in body) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers["content-type"] = body.contentType;
      payload = body.text;
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new ConnectionError(this.options.url, error);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const p = (parsed ?? {}) as Partial<Problem>;
      throw new ApiError({
        status: response.status,
        code: p.code ?? `http_${response.status}`,
        title: p.title ?? response.statusText,
        detail: p.detail ?? text.slice(0, 500),
        ...(p.errors ? { errors: p.errors } : {}),
        ...(p.details ? { details: p.details } : {}),
      });
    }
    return parsed as T;
  }

  /**
   * Every item of a paged list: GET `path` (it may carry a query of its own) with `limit=200`,
   * then again with each page's `nextCursor` until the last page.
   * @throws ApiError for a problem response, ConnectionError when unreachable.
   */
  async all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const url = new URL(path, "http://x");
      url.searchParams.set("limit", "200");
      if (cursor !== null) url.searchParams.set("cursor", cursor);
      const page: { items: T[]; nextCursor: string | null } = await this.request("GET", `${url.pathname}${url.search}`);
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return items;
  }
}
