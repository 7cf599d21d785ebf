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
  type ApiKeyPrincipal,
  endSession,
  memberProfile,
  memberSessionOf,
  OPERATIONS,
  refusalOf,
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

const WorkspaceDto = Type.Object({
  id: Type.String(),
  slug: Type.String(),
  name: Type.String(),
  role: Type.String({ description: "the member's role there: admin, approver, member or viewer" }),
});

const SessionDto = Type.Object({
  principal: Type.Union([Type.Object({ name: Type.String(), role: Type.String() }), Type.Null()], {
    description: "who requests act as; null for a member who belongs to no workspace yet (they may create one)",
  }),
  csrfToken: Type.String({ description: "send it as `x-csrf-token` on POST, PUT, PATCH and DELETE" }),
  allowed: Type.Array(Type.String(), {
    description:
      "the operations of the permissions table (docs/security.md) the session may run, e.g. member.invite: for showing controls; every request is still checked",
  }),
  member: Type.Optional(
    Type.Object(
      {
        id: Type.String(),
        email: Type.String(),
        name: Type.String(),
        installationAdmin: Type.Boolean({ description: "may create workspaces (OUTCOME_RUNTIME_ADMIN_EMAILS)" }),
      },
      { description: "set for a member's session (email link, invitation, single sign-on), absent for an API key's" },
    ),
  ),
  workspace: Type.Optional(
    Type.Union([WorkspaceDto, Type.Null()], { description: "the workspace requests are scoped to" }),
  ),
  workspaces: Type.Optional(
    Type.Array(WorkspaceDto, { description: "every workspace the member belongs to (the switcher)" }),
  ),
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

/**
 * The operations of the permissions table the session's principal may run
 * (role and scopes), so the dashboard shows only the controls that will work;
 * the API still decides each request.
 */
function allowedOperations(principal: ApiKeyPrincipal | null): string[] {
  return principal === null ? [] : OPERATIONS.filter((operation) => refusalOf(principal, operation) === null);
}

function sessionJson(principal: ApiKeyPrincipal, csrfToken: string) {
  return {
    principal: { name: principal.name, role: principal.role },
    csrfToken,
    allowed: allowedOperations(principal),
  };
}

/** A member's session as GET /session answers it: the member, the current workspace and all of theirs. */
async function memberSessionJson(
  deps: RouteOptions["deps"],
  memberId: string,
  principal: ApiKeyPrincipal | null,
  workspaceId: string | null,
  csrfToken: string,
) {
  const profile = await memberProfile(deps, memberId);
  const workspaces = profile.workspaces.map((w) => ({ id: w.workspaceId, slug: w.slug, name: w.name, role: w.role }));
  return {
    principal: principal === null ? null : { name: principal.name, role: principal.role },
    csrfToken,
    allowed: allowedOperations(principal),
    member: {
      id: profile.member.id,
      email: profile.member.email,
      name: profile.member.name,
      installationAdmin: profile.member.installationAdmin,
    },
    workspace: workspaces.find((w) => w.id === workspaceId) ?? null,
    workspaces,
  };
}

/**
 * Set the cookies of a new session: `or_session` (the token, HttpOnly) and a
 * fresh `or_csrf`; returns the CSRF token.
 */
export function setSessionCookies(request: FastifyRequest, reply: FastifyReply, token: string): string {
  const csrfToken = newCsrfToken();
  reply.setCookie(SESSION_COOKIE, token, cookieOptions(request, true));
  reply.setCookie(CSRF_COOKIE, csrfToken, cookieOptions(request, false));
  return csrfToken;
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
      return sessionJson(session.principal, setSessionCookies(request, reply, session.token));
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
      // A member with no workspace yet has no principal, but a session all the same.
      const memberSession =
        token && (principal === null || principal.memberId) ? await memberSessionOf(deps, token) : null;
      if (principal === null && memberSession === null) {
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
      if (memberSession !== null) {
        return memberSessionJson(deps, memberSession.memberId, principal, memberSession.workspaceId, csrfToken);
      }
      if (principal === null) throw new Error("unreachable: a session without principal is a member's");
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
