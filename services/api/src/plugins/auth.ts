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
 * Who may do what is not decided here: every `/v1` route names the
 * operations of the permissions table (packages/core) it runs in its config
 * (`config.operations`; a route without one fails at registration). A route
 * that runs one operation refuses a caller the table refuses here, before the
 * body is read; a route whose body picks the operation (the experiment
 * transitions) leaves it to the use case. Either way the use case authorizes
 * first thing. A refusal for a missing scope carries `WWW-Authenticate: Bearer
 * error="insufficient_scope"` (set by the error handler).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  type ApiKeyPrincipal,
  authenticate,
  type Caller,
  type Operation,
  type RuntimeDeps,
  refusalOf,
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
  interface FastifyContextConfig {
    /**
     * The operations of the permissions table a `/v1` route runs: one, or
     * each its body may pick (the experiment transitions). Required on `/v1`;
     * one is checked before the body is read.
     */
    operations?: readonly Operation[];
  }
}

/** The session cookie: a server-side session's random token (never the API key), HttpOnly, so page scripts never see it. */
export const SESSION_COOKIE = "or_session";
/** The CSRF cookie: readable by the page, echoed in {@link CSRF_HEADER} on state changes. */
export const CSRF_COOKIE = "or_csrf";
const CSRF_HEADER = "x-csrf-token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Compare two secrets in constant time (of their digests, so lengths leak nothing either). */
function sameSecret(a: string, b: string): boolean {
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
  // Fail closed: a `/v1` route that names no operation would let any authenticated caller in.
  app.addHook("onRoute", (route) => {
    if (route.url.startsWith("/v1/") && (route.config?.operations ?? []).length === 0) {
      throw new Error(`route ${String(route.method)} ${route.url} names no operation (config.operations)`);
    }
  });
  // preParsing: after the rate limit (onRequest), before the body is read.
  app.addHook("preParsing", async (request, reply) => {
    // The matched route, not the raw URL: `/%761/…` routes to `/v1/…` too.
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith("/v1/")) return;
    const lastUsed = {
      onLastUsedError: (error: unknown) => request.log.warn({ err: error }, "API key last use not recorded"),
    };
    /** The caller, or (thrown to the error handler) the table's refusal of the route's one operation. */
    const admit = (principal: ApiKeyPrincipal, channel: Caller["channel"]) => {
      const operations = request.routeOptions.config.operations ?? [];
      const refusal = operations.length === 1 && operations[0] ? refusalOf(principal, operations[0]) : null;
      if (refusal !== null) throw refusal;
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
