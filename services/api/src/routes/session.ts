/**
 * Dashboard sign-in: the API key is entered once and kept in an HttpOnly,
 * SameSite=Strict cookie (Secure over HTTPS); a second, readable cookie holds
 * the CSRF token the page echoes on state changes (see plugins/auth.ts).
 */
import { randomBytes } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { authenticate, type Principal } from "@outcome-runtime/runtime";
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
          "Sets the `or_session` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) and the `or_csrf` cookie " +
          "(readable by the page); requests to /v1 then authenticate by the cookie, and state changes must send " +
          "the CSRF token as `x-csrf-token`.",
        security: [],
        body: Type.Object({ apiKey: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
        response: { 200: SessionDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const principal = await authenticate(deps, request.body.apiKey);
      if (principal === null) {
        return sendProblem(reply, problem(request, "unauthenticated", "the API key is unknown or revoked"));
      }
      const csrfToken = newCsrfToken();
      reply.setCookie(SESSION_COOKIE, request.body.apiKey, cookieOptions(request, true));
      reply.setCookie(CSRF_COOKIE, csrfToken, cookieOptions(request, false));
      return sessionJson(principal, csrfToken);
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
      const key = request.cookies[SESSION_COOKIE];
      const principal = key ? await authenticate(deps, key) : null;
      if (principal === null) {
        return sendProblem(
          reply,
          problem(request, "unauthenticated", key ? "the session's API key is unknown or revoked" : "not signed in"),
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
        summary: "Sign out: clear the cookies",
        description: "Needs `x-csrf-token` when a session cookie is sent.",
        security: [],
        response: { 204: Type.Null(), ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      if (request.cookies[SESSION_COOKIE] && !csrfHeaderMatches(request)) {
        return sendProblem(reply, problem(request, "forbidden", "missing or wrong CSRF token"));
      }
      clearCookies(request, reply);
      return reply.code(204).send(null);
    },
  );
};

export default sessionRoutes;
