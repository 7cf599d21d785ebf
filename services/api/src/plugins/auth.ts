/**
 * Authentication of `/v1` routes (and the WebSocket stream under it): a
 * bearer API key (channel `api`), or the dashboard's session cookie (channel
 * `web`), which holds a server-side session's token (routes/session.ts). Health checks, the OpenAPI document and the app's pages need none.
 * The authenticated caller is `request.caller`.
 *
 * A cookie is sent by the browser whoever made the page, so a state change
 * authenticated by the cookie must also carry the CSRF token (the `or_csrf`
 * cookie, which only a page of our origin can read) in `x-csrf-token`.
 *
 * Then the key's scopes, from one table (`requiredScopes`): `read` for GET
 * and HEAD, `write` for any other method, `admin` for the admin routes, and
 * both `admin` and `write` for settings and import; a key without one gets a
 * 403 naming it. (The use cases check the role: a key may do what both allow.)
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  type ApiKeyPrincipal,
  type ApiKeyScope,
  authenticate,
  type Caller,
  missingScope,
  type RuntimeDeps,
  sessionPrincipal,
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

/** The session cookie: a server-side session's random token (never the API key), HttpOnly, so page scripts never see it. */
export const SESSION_COOKIE = "or_session";
/** The CSRF cookie: readable by the page, echoed in {@link CSRF_HEADER} on state changes. */
export const CSRF_COOKIE = "or_csrf";
export const CSRF_HEADER = "x-csrf-token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The scopes of the routes that need more than the default (method and route
 * pattern → every scope the key must have). The admin routes need `admin`
 * whatever the method; those that change the workspace's data or its security
 * settings, keys and secrets (settings, import, creating and revoking keys,
 * setting and deleting secrets) need `write` as well, so a `read,admin` key
 * can inspect and export but changes nothing there.
 */
const ROUTE_SCOPES: ReadonlyMap<string, readonly ApiKeyScope[]> = new Map([
  ["GET /v1/keys", ["admin"]],
  ["POST /v1/keys", ["admin", "write"]],
  ["DELETE /v1/keys/:id", ["admin", "write"]],
  ["PATCH /v1/workspace/settings", ["admin", "write"]],
  ["PUT /v1/secrets/:name", ["admin", "write"]],
  ["DELETE /v1/secrets/:name", ["admin", "write"]],
  ["GET /v1/export/manifest", ["admin"]],
  ["GET /v1/export/:table", ["admin"]],
  ["POST /v1/import/begin", ["admin", "write"]],
  ["POST /v1/import/:table", ["admin", "write"]],
  ["POST /v1/import/finish", ["admin", "write"]],
]);

/**
 * Every scope a request to `route` (the matched pattern, e.g. `/v1/keys/:id`)
 * with `method` needs: the route's entry in `ROUTE_SCOPES`, else `read` for
 * GET, HEAD and OPTIONS and `write` for any other method.
 */
export function requiredScopes(method: string, route: string): readonly ApiKeyScope[] {
  return ROUTE_SCOPES.get(`${method} ${route}`) ?? [SAFE_METHODS.has(method) ? "read" : "write"];
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
      const scopes = requiredScopes(request.method, route);
      const refusal = scopes.map((scope) => missingScope(principal, scope)).find((r) => r !== null) ?? null;
      if (refusal !== null) {
        reply.header(
          "www-authenticate",
          `Bearer realm="outcome-runtime", error="insufficient_scope", scope="${scopes.join(" ")}"`,
        );
        return sendProblem(reply, problem(request, "forbidden", refusal.message, { details: refusal.details }));
      }
      request.caller = { principal, channel, requestId: request.id };
      return undefined;
    };
    const header = request.headers.authorization;
    const session = request.cookies[SESSION_COOKIE];
    if (header === undefined && typeof session === "string" && session !== "") {
      const principal = await sessionPrincipal(options.deps, session, {
        onTouchError: (error: unknown) => request.log.warn({ err: error }, "session last use not recorded"),
      });
      if (principal === null) {
        return sendProblem(
          reply,
          problem(
            request,
            "unauthenticated",
            "the session has ended (signed out, expired, or its API key revoked); sign in again",
          ),
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
