/**
 * Dashboard sign-in: the API key is entered once and exchanged for a
 * server-side session (packages/runtime/src/sessions.ts), whose random token
 * the HttpOnly, SameSite=Strict cookie holds (Secure over HTTPS); the key
 * itself is never stored in the browser. A second, readable cookie holds the
 * CSRF token the page echoes on state changes (see plugins/auth.ts). Sign-out
 * revokes the session at once: a copied cookie stops working.
 */
import { randomBytes } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  endSession,
  type Principal,
  SESSION_IDLE_MS,
  SESSION_MAX_AGE_MS,
  sessionPrincipal,
  startSession,
} from "@outcome-runtime/runtime";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../dto";
import { CSRF_COOKIE, csrfHeaderMatches, SESSION_COOKIE } from "../plugins/auth";
import { problem, sendProblem } from "../plugins/problem-details";
import type { RouteOptions } from "./route-options";

const SessionDto = Type.Object({
  principal: Type.Object({ name: Type.String(), role: Type.String() }),
  csrfToken: Type.String({ description: "send it as `x-csrf-token` on POST, PUT, PATCH and DELETE" }),
});

function cookieOptions(request: FastifyRequest, httpOnly: boolean) {
  return {
    path: "/",
    httpOnly,
    sameSite: "strict" as const,
    secure: request.protocol === "https",
  };
}

function newCsrfToken(): string {
  return randomBytes(32).toString("base64url");
}

function sessionJson(principal: Principal, csrfToken: string) {
  return { principal: { name: principal.name, role: principal.role }, csrfToken };
}

function clearCookies(request: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, cookieOptions(request, true));
  reply.clearCookie(CSRF_COOKIE, cookieOptions(request, false));
}

const sessionRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.post(
    "/session",
    {
      schema: {
        tags: ["session"],
        summary: "Sign in to the dashboard with an API key",
        description:
          "Starts a session of the key and sets the `or_session` cookie to its random token (HttpOnly, " +
          "SameSite=Strict, Secure over HTTPS; never the key) and the `or_csrf` cookie (readable by the page); " +
          "requests to /v1 then authenticate by the cookie, and state changes must send the CSRF token as " +
          `\`x-csrf-token\`. A session ends at sign-out, when its key is revoked, after ${SESSION_IDLE_MS / 3600_000} h ` +
          `without a request, or ${SESSION_MAX_AGE_MS / 86_400_000} days after sign-in.`,
        security: [],
        body: Type.Object({ apiKey: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
        response: { 200: SessionDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const session = await startSession(deps, request.body.apiKey);
      if (session === null) {
        return sendProblem(reply, problem(request, "unauthenticated", "the API key is unknown or revoked"));
      }
      const csrfToken = newCsrfToken();
      reply.setCookie(SESSION_COOKIE, session.token, cookieOptions(request, true));
      reply.setCookie(CSRF_COOKIE, csrfToken, cookieOptions(request, false));
      return sessionJson(session.principal, csrfToken);
    },
  );

  app.get(
    "/session",
    {
      schema: {
        tags: ["session"],
        summary: "The signed-in principal and the CSRF token, from the cookies",
        security: [],
        response: { 200: SessionDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const token = request.cookies[SESSION_COOKIE];
      const principal = token ? await sessionPrincipal(deps, token) : null;
      if (principal === null) {
        return sendProblem(
          reply,
          problem(
            request,
            "unauthenticated",
            token
              ? "the session has ended (signed out, expired, or its API key revoked); sign in again"
              : "not signed in",
          ),
        );
      }
      let csrfToken = request.cookies[CSRF_COOKIE];
      if (!csrfToken) {
        // The CSRF cookie was lost (cleared by hand): a session needs one to change anything.
        csrfToken = newCsrfToken();
        reply.setCookie(CSRF_COOKIE, csrfToken, cookieOptions(request, false));
      }
      return sessionJson(principal, csrfToken);
    },
  );

  app.delete(
    "/session",
    {
      schema: {
        tags: ["session"],
        summary: "Sign out: end the session and clear the cookies",
        description:
          "Revokes the session at once (its cookie authenticates nothing afterwards, wherever it was copied to). " +
          "Needs `x-csrf-token` when a session cookie is sent.",
        security: [],
        response: { 204: Type.Null(), ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const token = request.cookies[SESSION_COOKIE];
      if (token && !csrfHeaderMatches(request)) {
        return sendProblem(reply, problem(request, "forbidden", "missing or wrong CSRF token"));
      }
      if (token) await endSession(deps, token);
      clearCookies(request, reply);
      return reply.code(204).send(null);
    },
  );
};

export default sessionRoutes;
