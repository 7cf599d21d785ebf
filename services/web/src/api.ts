/**
 * The one way the dashboard talks to the API: same-origin fetch with the session
 * cookie, the CSRF token on every state-changing request, and RFC 9457 problems
 * turned into `ApiError`s whose `detail` the pages show.
 */
import type { AuthConfig, CreatedWorkspace, EmailLinkAnswer, Problem, SessionInfo, SignedOutEverywhere } from "./types";

/** A failed request: the problem document the API answered, or one made up for a network failure. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail || problem.title);
    this.name = "ApiError";
    this.status = problem.status;
    this.code = problem.code;
    this.problem = problem;
  }
}

let csrfToken: string | null = null;
let onUnauthenticated: (() => void) | null = null;

/** Keep the CSRF token of the session in memory (never in storage). */
function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request answers 401: the session has ended. */
export function setUnauthenticatedHandler(handler: (() => void) | null): void {
  onUnauthenticated = handler;
}

type Query = Record<string, string | number | undefined | null>;

/** A path with its query string; empty values are left out. */
export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** JSON body, or a string sent as is with `contentType`. */
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Do not treat 401 as the end of the session (the session probe itself). */
  quiet401?: boolean;
}

function isProblem(x: unknown): x is Problem {
  return typeof x === "object" && x !== null && "status" in x && ("detail" in x || "title" in x);
}

/** Send a request; resolve with the JSON body, or reject with an `ApiError`. */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { accept: "application/json" };
  let body: string | undefined;
  if (options.body !== undefined) {
    if (typeof options.body === "string") {
      body = options.body;
      headers["content-type"] = options.contentType ?? "text/plain";
    } else {
      body = JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
  }
  if (method !== "GET" && csrfToken !== null) headers["x-csrf-token"] = csrfToken;

  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin", signal: options.signal });
  } catch (error) {
    if (error instanceof Error && error.name === "AbortError") throw error;
    throw new ApiError({
      type: "about:blank",
      title: "Network error",
      status: 0,
      detail: "The server could not be reached. Check your connection and try again.",
      code: "network_error",
    });
  }

  const text = await response.text();
  let json: unknown = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !options.quiet401) onUnauthenticated?.();
    const problem: Problem = isProblem(json)
      ? { ...json, detail: json.detail || json.title, code: json.code ?? "error" }
      : {
          type: "about:blank",
          title: response.statusText || "Request failed",
          status: response.status,
          detail: `The server answered ${response.status} ${response.statusText}.`.trim(),
          code: "http_error",
        };
    throw new ApiError(problem);
  }
  return json as T;
}

/** The current session, or null when signed out. */
export async function fetchSession(): Promise<SessionInfo | null> {
  try {
    const session = await request<SessionInfo>("/session", { quiet401: true });
    setCsrfToken(session.csrfToken);
    return session;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setCsrfToken(null);
      return null;
    }
    throw error;
  }
}

/** Sign in with an API key; the API sets the HttpOnly session cookie. */
export async function signIn(apiKey: string): Promise<SessionInfo> {
  const session = await request<SessionInfo>("/session", { method: "POST", body: { apiKey }, quiet401: true });
  setCsrfToken(session.csrfToken);
  return session;
}

/** Sign out: the API clears the cookie. */
export async function signOut(): Promise<void> {
  try {
    await request<unknown>("/session", { method: "DELETE", quiet401: true });
  } finally {
    setCsrfToken(null);
  }
}

/** Sign out on every device: ends every session of the member (or of the API key signed in with). */
export async function signOutEverywhere(): Promise<SignedOutEverywhere> {
  try {
    return await request<SignedOutEverywhere>("/session/all", { method: "DELETE", quiet401: true });
  } finally {
    setCsrfToken(null);
  }
}

/** How people may sign in here; the sign-in page offers exactly these. */
export function fetchAuthConfig(): Promise<AuthConfig> {
  return request<AuthConfig>("/auth/config", { quiet401: true });
}

/**
 * Ask for a sign-in link by email. Resolves with the API's message, the same
 * whether or not the address may sign in; rejects with an `ApiError`: 400 for a
 * malformed address, 429 when too many links were asked for, 404 when email
 * sign-in is not set up.
 */
export function requestEmailLink(email: string): Promise<EmailLinkAnswer> {
  return request<EmailLinkAnswer>("/auth/email-link", { method: "POST", body: { email }, quiet401: true });
}

/**
 * Create a workspace (installation admins only; the creator becomes its admin)
 * and move the session into it. Rejects with an `ApiError`: 400 for a slug
 * that is not lowercase letters, digits and dashes, 403 for a member who is
 * no installation admin, 409 when the slug is taken.
 */
export function createWorkspace(input: { slug: string; name: string }): Promise<CreatedWorkspace> {
  return request<CreatedWorkspace>("/workspaces", { method: "POST", body: input });
}

/** Move the session to another of the member's workspaces; rejects with a 404 `ApiError` for any other. */
export async function switchWorkspace(workspaceId: string): Promise<void> {
  await request<null>("/session/workspace", { method: "PUT", body: { workspaceId } });
}

/** The message to show for any error. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.problem.detail || error.problem.title;
  if (error instanceof Error) return error.message;
  return String(error);
}
