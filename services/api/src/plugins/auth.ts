/**
 * Authentication of `/v1` routes (and the WebSocket stream under it): a
 * bearer API key (channel `api`), or the dashboard's session cookie (channel
 * `web`). Health checks, the OpenAPI document and the app's pages need none.
 * The authenticated caller is `request.caller`.
 *
 * A cookie is sent by the browser whoever made the page, so a state change
 * authenticated by the cookie must also carry the CSRF token (the `or_csrf`
 * cookie, which only a page of our origin can read) in `x-csrf-token`.
 *
 * Then the key's scopes: `admin` for the admin routes, `read` for GET and
 * HEAD, `write` for any other method; a key without the scope gets a 403
 * naming it. (The use cases check the role: a key may do what both allow.)
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  type ApiKeyPrincipal,
  type ApiKeyScope,
  authenticate,
  type Caller,
  missingScope,
  type RuntimeDeps,
} from "@outcome-runtime/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { problem, sendProblem } from "./problem-details";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated caller; set on every `/v1` route. */
    caller: Caller;
  }
}

/** The session cookie: the API key itself, HttpOnly, so page scripts never see it. */
export const SESSION_COOKIE = "or_session";
/** The CSRF cookie: readable by the page, echoed in {@link CSRF_HEADER} on state changes. */
export const CSRF_COOKIE = "or_csrf";
export const CSRF_HEADER = "x-csrf-token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The admin routes (method and route pattern): those whose use cases only an
 * admin may call. They need the `admin` scope, whatever the method.
 */
const ADMIN_ROUTES: ReadonlySet<string> = new Set([
  "GET /v1/keys",
  "POST /v1/keys",
  "DELETE /v1/keys/:id",
  "PATCH /v1/workspace/settings",
  "PUT /v1/secrets/:name",
  "DELETE /v1/secrets/:name",
  "GET /v1/export/manifest",
  "GET /v1/export/:table",
  "POST /v1/import/begin",
  "POST /v1/import/:table",
  "POST /v1/import/finish",
]);

/** The scope a request to `route` with `method` needs. */
export function requiredScope(method: string, route: string): ApiKeyScope {
  if (ADMIN_ROUTES.has(`${method} ${route}`)) return "admin";
  return SAFE_METHODS.has(method) ? "read" : "write";
}

/** Compare two secrets in constant time (of their digests, so lengths leak nothing either). */
export function sameSecret(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

/** The CSRF header matches the CSRF cookie. */
export function csrfHeaderMatches(request: FastifyRequest): boolean {
  const cookie = request.cookies[CSRF_COOKIE];
  const header = request.headers[CSRF_HEADER];
  return typeof cookie === "string" && cookie !== "" && typeof header === "string" && sameSecret(header, cookie);
}

async function auth(app: FastifyInstance, options: { deps: RuntimeDeps }): Promise<void> {
  app.decorateRequest("caller", null as unknown as Caller);
  // preParsing: after the rate limit (onRequest), before the body is read.
  app.addHook("preParsing", async (request, reply) => {
    // The matched route, not the raw URL: `/%761/…` routes to `/v1/…` too.
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith("/v1/")) return;
    const lastUsed = {
      onLastUsedError: (error: unknown) => request.log.warn({ err: error }, "API key last use not recorded"),
    };
    /** The caller, or a 403 when the key lacks the scope this request needs. */
    const admit = (principal: ApiKeyPrincipal, channel: Caller["channel"]) => {
      const scope = requiredScope(request.method, route);
      const refusal = missingScope(principal, scope);
      if (refusal !== null) {
        reply.header(
          "www-authenticate",
          `Bearer realm="outcome-runtime", error="insufficient_scope", scope="${scope}"`,
        );
        return sendProblem(reply, problem(request, "forbidden", refusal.message, { details: refusal.details }));
      }
      request.caller = { principal, channel, requestId: request.id };
      return undefined;
    };
    const header = request.headers.authorization;
    const session = request.cookies[SESSION_COOKIE];
    if (header === undefined && typeof session === "string" && session !== "") {
      const principal = await authenticate(options.deps, session, lastUsed);
      if (principal === null) {
        return sendProblem(
          reply,
          problem(request, "unauthenticated", "the session's API key is unknown or revoked; sign in again"),
        );
      }
      if (!SAFE_METHODS.has(request.method) && !csrfHeaderMatches(request)) {
        return sendProblem(reply, problem(request, "forbidden", "missing or wrong CSRF token"));
      }
      return admit(principal, "web");
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    const principal = match?.[1] ? await authenticate(options.deps, match[1], lastUsed) : null;
    if (principal === null) {
      reply.header("www-authenticate", 'Bearer realm="outcome-runtime"');
      return sendProblem(
        reply,
        problem(
          request,
          "unauthenticated",
          match
            ? "the API key is unknown or revoked; create one with `outcome-runtime keys create`"
            : "send an API key as `Authorization: Bearer <key>`, or sign in to the dashboard",
        ),
      );
    }
    return admit(principal, "api");
  });
}

export default fp(auth, { name: "auth", dependencies: ["problem-details", "@fastify/cookie"] });
