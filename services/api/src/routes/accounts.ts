/**
 * Signing in as a person, outside `/v1` (see docs/auth.md):
 *
 * - `POST /auth/email-link` asks for an email link (always 202: whether the
 *   address may sign in is never revealed). Limited per address and per IP.
 * - `GET /auth/email-link?token=…` is a confirmation page that changes
 *   nothing (mail scanners open links); its form's POST to
 *   `/auth/email-link/confirm` spends the link (single use, 15 minutes) and
 *   starts the session.
 * - `GET /auth/sso` starts OpenID Connect single sign-on (better-auth: state,
 *   PKCE, nonce); the provider returns to `/api/auth/callback/oidc`, then
 *   `/auth/sso/complete` admits the member and starts the session.
 * - `GET /auth/invitation?token=…` shows an invitation; its form's POST to
 *   `/auth/invitation/accept` accepts it (single use, 7 days) and starts the
 *   session in the invited workspace.
 * - `POST /workspaces` creates a workspace (installation admins);
 *   `PUT /session/workspace` switches the session's workspace;
 *   `DELETE /session/all` signs out everywhere.
 *
 * The pages run no script, are never cached or indexed, send no referrer (the
 * token is in the URL), and their forms post only to this origin. A form POST
 * from another origin is refused (login CSRF). After the session starts, the
 * browser is sent on by a page of ours (a same-site navigation), so the
 * SameSite=Strict session cookie goes with the first request to the dashboard.
 */
import formbody from "@fastify/formbody";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { type AccountPageModel, type Mailer, renderAccountEmail, renderAccountPage } from "@outcome-runtime/notify";
import {
  AUTH_BASE_PATH,
  acceptInvitation,
  admitMember,
  createSignInProofs,
  createWorkspace,
  EMAIL_LINK_TTL_S,
  endAllSessions,
  mayRequestEmailLink,
  memberSessionOf,
  normalizeEmail,
  type OidcConfig,
  type SignInPolicy,
  SignInRefused,
  SSO_PROVIDER_ID,
  startMemberSession,
  switchSessionWorkspace,
  viewInvitation,
} from "@outcome-runtime/runtime";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../dto";
import { CSRF_COOKIE, csrfHeaderMatches, SESSION_COOKIE } from "../plugins/auth";
import { problem, sendProblem } from "../plugins/problem-details";
import type { RouteOptions } from "./route-options";
import { setSessionCookies } from "./session";

/** How people sign in, as the operator configured it (absent: API keys only). */
export interface AccountsOptions {
  /** `OUTCOME_RUNTIME_AUTH_SECRET`: at least 32 characters. */
  readonly secret: string;
  readonly policy: SignInPolicy;
  readonly oidc?: OidcConfig | undefined;
  /** Sends sign-in links and invitations. */
  readonly mailer: Mailer;
  /** Email links per address per 15 minutes (default 5). */
  readonly emailLinksPerAddress?: number;
}

const PAGE_CSP = (origin: string) =>
  `default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self' ${origin}; frame-ancestors 'none'; base-uri 'none'`;

const TokenQuery = Type.Object({ token: Type.Optional(Type.String({ maxLength: 256 })) });
const TokenForm = Type.Object({ token: Type.String({ maxLength: 256 }) });
const FIFTEEN_MINUTES = 15 * 60_000;

const accountRoutes: FastifyPluginAsyncTypebox<RouteOptions & { accounts?: AccountsOptions | undefined }> = async (
  app,
  { deps, publicUrl, accounts },
) => {
  await app.register(formbody, { bodyLimit: 16 * 1024 });
  const origin = new URL(publicUrl).origin;
  const proofs =
    accounts === undefined
      ? null
      : createSignInProofs(deps, {
          publicUrl,
          secret: accounts.secret,
          oidc: accounts.oidc,
          sendEmailLink: async (email, token) => {
            const url = `${publicUrl}/auth/email-link?token=${encodeURIComponent(token)}`;
            const mail = renderAccountEmail({
              subject: "Sign in to Outcome Runtime",
              intro: `Someone (we hope you) asked to sign in to Outcome Runtime at ${origin} as ${email}.`,
              button: "Sign in",
              url,
              expiresAt: new Date(Date.now() + EMAIL_LINK_TTL_S * 1000),
            });
            // Not awaited: the answer must take as long for an address that gets no mail (no membership oracle).
            accounts.mailer
              .send({ to: email, ...mail, links: [{ label: "sign in", url }] })
              .catch((error: unknown) => app.log.warn({ err: error }, "sign-in link not sent"));
          },
        });
  const policy = accounts?.policy;

  function page(reply: FastifyReply, status: number, model: AccountPageModel): FastifyReply {
    return reply
      .code(status)
      .header("content-type", "text/html; charset=utf-8")
      .header("content-security-policy", PAGE_CSP(origin))
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-store")
      .header("x-robots-tag", "noindex, nofollow")
      .send(renderAccountPage(model));
  }

  /** The session started: go on to the dashboard by a page of ours (see the file's comment). */
  function signedIn(request: FastifyRequest, reply: FastifyReply, token: string, email: string): FastifyReply {
    setSessionCookies(request, reply, token);
    return reply
      .code(200)
      .header("content-type", "text/html; charset=utf-8")
      .header("content-security-policy", PAGE_CSP(origin))
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-store")
      .header("refresh", "0; url=/")
      .send(
        renderAccountPage({
          eyebrow: "Signed in",
          title: "You are signed in",
          message: `Signed in as ${email}. Taking you to the dashboard…`,
          link: { url: "/", label: "Open the dashboard" },
        }),
      );
  }

  const notConfigured = (reply: FastifyReply) =>
    page(reply, 404, {
      eyebrow: "Sign in",
      title: "Sign-in by email is not set up",
      message:
        "This installation signs in with API keys only. An operator enables accounts with OUTCOME_RUNTIME_AUTH_SECRET (see docs/auth.md).",
      link: { url: "/", label: "Back to the dashboard" },
    });

  /**
   * A form POST not sent from one of our pages is refused: it could sign the browser in as someone else
   * (login CSRF). Browsers say where a request comes from in `Sec-Fetch-Site`; our pages send no referrer, so
   * their `Origin` is `null`, like a sandboxed attacker's: only `same-origin` passes. A client without the
   * header (not a browser) passes only without an `Origin` or with ours.
   */
  function foreignOrigin(request: FastifyRequest): boolean {
    const site = request.headers["sec-fetch-site"];
    if (typeof site === "string") return site !== "same-origin";
    const from = request.headers.origin;
    return typeof from === "string" && from !== origin;
  }

  function refusedPage(reply: FastifyReply, error: unknown): FastifyReply {
    if (error instanceof SignInRefused) {
      return page(reply, 403, {
        eyebrow: "Sign in",
        title: "You cannot sign in here",
        message: error.message,
        link: { url: "/", label: "Back to sign-in" },
      });
    }
    throw error;
  }

  app.get(
    "/auth/config",
    {
      schema: {
        tags: ["session"],
        summary: "How people may sign in here",
        security: [],
        response: {
          200: Type.Object({
            emailLink: Type.Boolean({ description: "sign-in by an email link is set up" }),
            sso: Type.Union([Type.Object({ name: Type.String(), url: Type.String() }), Type.Null()]),
            apiKey: Type.Boolean({ description: "always true: an API key signs in too" }),
          }),
        },
      },
    },
    async () => ({
      emailLink: proofs !== null,
      sso: proofs?.ssoEnabled ? { name: proofs.ssoName, url: "/auth/sso" } : null,
      apiKey: true,
    }),
  );

  // An address gets a few links per quarter hour from one IP, and a few times that from all IPs together (so
  // that nobody can use up a person's links from elsewhere); an IP a few more addresses' worth.
  const addressOf = (request: FastifyRequest) => (request.body as { email?: string } | undefined)?.email ?? "";
  const perAddressAndIp = app.createRateLimit({
    max: accounts?.emailLinksPerAddress ?? 5,
    timeWindow: FIFTEEN_MINUTES,
    keyGenerator: (request) => `sign-in:address-ip:${addressOf(request)}:${request.ip}`,
  });
  const perAddress = app.createRateLimit({
    max: 6 * (accounts?.emailLinksPerAddress ?? 5),
    timeWindow: FIFTEEN_MINUTES,
    keyGenerator: (request) => `sign-in:address:${addressOf(request)}`,
  });

  app.post(
    "/auth/email-link",
    {
      config: { rateLimit: { max: 20, timeWindow: FIFTEEN_MINUTES, keyGenerator: (r) => `sign-in:ip:${r.ip}` } },
      schema: {
        tags: ["session"],
        summary: "Ask for a sign-in link by email",
        description:
          "Always answers 202, whether or not the address may sign in (nothing reveals who is a member). " +
          `The link is single use and valid ${EMAIL_LINK_TTL_S / 60} minutes. Limited per address and per IP (429 with Retry-After).`,
        security: [],
        body: Type.Object(
          { email: Type.String({ minLength: 3, maxLength: 254, description: "the address to send the link to" }) },
          { additionalProperties: false },
        ),
        response: { 202: Type.Object({ message: Type.String() }), ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      if (proofs === null || policy === undefined) {
        return sendProblem(
          reply,
          problem(request, "not_found", "sign-in by email is not set up here; sign in with an API key (docs/auth.md)"),
        );
      }
      const email = normalizeEmail(request.body.email);
      request.body.email = email;
      const mine = await perAddressAndIp(request);
      const all = await perAddress(request);
      const limit = !mine.isAllowed && mine.isExceeded ? mine : all;
      if (!limit.isAllowed && limit.isExceeded) {
        reply.header("retry-after", String(limit.ttlInSeconds));
        return sendProblem(
          reply,
          problem(request, "rate_limited", `too many sign-in links for this address; retry in ${limit.ttlInSeconds} s`),
        );
      }
      if (await mayRequestEmailLink(deps, policy, email)) {
        await proofs.requestEmailLink(email, new Headers({ "user-agent": request.headers["user-agent"] ?? "" }));
        request.log.info({ event: "sign_in.link_sent" }, "sign-in link sent");
      } else {
        request.log.info({ event: "sign_in.link_not_sent" }, "sign-in link asked for an address that may not sign in");
      }
      return reply.code(202).send({
        message: `if ${email} may sign in here, a link is on its way; it works once, for ${EMAIL_LINK_TTL_S / 60} minutes`,
      });
    },
  );

  app.get("/auth/email-link", { schema: { hide: true, querystring: TokenQuery } }, async (request, reply) => {
    if (proofs === null) return notConfigured(reply);
    const token = request.query.token ?? "";
    return page(reply, 200, {
      eyebrow: "Sign in",
      title: "Sign in to Outcome Runtime",
      message: "Press the button to finish signing in on this device.",
      form: { action: "/auth/email-link/confirm", button: "Sign in", fields: [{ name: "token", value: token }] },
    });
  });

  app.post(
    "/auth/email-link/confirm",
    {
      config: { rateLimit: { max: 30, timeWindow: 60_000 } },
      schema: { hide: true, body: TokenForm },
    },
    async (request, reply) => {
      if (proofs === null || policy === undefined) return notConfigured(reply);
      if (foreignOrigin(request)) {
        return page(reply, 403, {
          eyebrow: "Sign in",
          title: "Refused",
          message: "This form was sent from another site. Open the link from your email again.",
        });
      }
      const identity = await proofs.verifyEmailLink(request.body.token, new Headers());
      if (identity === null) {
        return page(reply, 410, {
          eyebrow: "Sign in",
          title: "This link no longer works",
          message: `Sign-in links work once and for ${EMAIL_LINK_TTL_S / 60} minutes. Ask for a new one.`,
          link: { url: "/", label: "Back to sign-in" },
        });
      }
      try {
        const admitted = await admitMember(deps, policy, { email: identity.email, via: "email_link" });
        const session = await startMemberSession(deps, admitted.member.id, admitted.workspaceId);
        request.log.info({ event: "sign_in", via: "email_link", memberId: admitted.member.id }, "signed in");
        return signedIn(request, reply, session.token, admitted.member.email);
      } catch (error) {
        return refusedPage(reply, error);
      }
    },
  );

  app.get(
    "/auth/sso",
    { config: { rateLimit: { max: 30, timeWindow: 60_000 } }, schema: { hide: true } },
    async (request, reply) => {
      if (proofs === null || !proofs.ssoEnabled) return notConfigured(reply);
      const started = await proofs.startSso(
        new Headers({ "user-agent": request.headers["user-agent"] ?? "" }),
        "/auth/sso/complete",
        "/auth/sso/error",
      );
      reply.header("set-cookie", started.setCookie);
      return reply.redirect(started.url, 302);
    },
  );

  app.get("/auth/sso/complete", { schema: { hide: true } }, async (request, reply) => {
    if (proofs === null || policy === undefined) return notConfigured(reply);
    const identity = await proofs.completeSso(new Headers({ cookie: request.headers.cookie ?? "" }));
    for (const name of proofs.cookieNames) reply.clearCookie(name, { path: "/" });
    if (identity === null) {
      return page(reply, 401, {
        eyebrow: "Single sign-on",
        title: "Single sign-on did not finish",
        message: "The sign-in expired or was already used. Start again.",
        link: { url: "/auth/sso", label: "Sign in again" },
      });
    }
    try {
      const admitted = await admitMember(deps, policy, {
        email: identity.email,
        name: identity.name,
        via: "sso",
        emailVerified: identity.emailVerified,
      });
      const session = await startMemberSession(deps, admitted.member.id, admitted.workspaceId);
      request.log.info({ event: "sign_in", via: "sso", memberId: admitted.member.id }, "signed in");
      return signedIn(request, reply, session.token, admitted.member.email);
    } catch (error) {
      return refusedPage(reply, error);
    }
  });

  app.get(
    "/auth/sso/error",
    { schema: { hide: true, querystring: Type.Object({ error: Type.Optional(Type.String({ maxLength: 200 })) }) } },
    async (request, reply) =>
      page(reply, 400, {
        eyebrow: "Single sign-on",
        title: "Single sign-on failed",
        message:
          request.query.error === "account_not_linked"
            ? "Your identity provider did not confirm this email address, which another sign-in already uses; ask its administrator."
            : `The identity provider's answer was refused (${(request.query.error ?? "unknown_error").replace(/[^a-z0-9_]/gi, "")}). Start again; if it happens again, tell your admin.`,
        link: { url: "/auth/sso", label: "Sign in again" },
      }),
  );

  // better-auth's callback from the identity provider (and nothing else of better-auth is exposed).
  app.get(
    `${AUTH_BASE_PATH}/callback/:providerId`,
    { schema: { hide: true, params: Type.Object({ providerId: Type.String({ maxLength: 64 }) }) } },
    async (request, reply) => {
      if (proofs === null || !proofs.ssoEnabled || request.params.providerId !== SSO_PROVIDER_ID) {
        return notConfigured(reply);
      }
      // Only the callback, whatever the raw path said (`..\` or encoded slashes must not reach another endpoint).
      const query = request.url.includes("?") ? request.url.slice(request.url.indexOf("?")) : "";
      const response = await proofs.handler(
        new Request(`${origin}${AUTH_BASE_PATH}/callback/${SSO_PROVIDER_ID}${query}`, {
          method: "GET",
          headers: new Headers({ cookie: request.headers.cookie ?? "" }),
        }),
      );
      reply.code(response.status);
      const cookies = response.headers.getSetCookie();
      if (cookies.length > 0) reply.header("set-cookie", cookies);
      const location = response.headers.get("location");
      if (location !== null) reply.header("location", location);
      reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer");
      return reply.send(Buffer.from(await response.arrayBuffer()));
    },
  );

  app.get("/auth/invitation", { schema: { hide: true, querystring: TokenQuery } }, async (request, reply) => {
    const token = request.query.token ?? "";
    const view = await viewInvitation(deps, token);
    if (view.status !== "open") {
      const why = {
        unknown: "This invitation link is not valid.",
        used: "This invitation was accepted already. Sign in instead.",
        expired: "This invitation expired. Ask an admin to invite you again.",
        revoked: "This invitation was withdrawn. Ask an admin to invite you again.",
      }[view.status];
      return page(reply, view.status === "unknown" ? 404 : 410, {
        eyebrow: "Invitation",
        title: "This invitation cannot be used",
        message: why,
        link: { url: "/", label: "Go to sign-in" },
      });
    }
    return page(reply, 200, {
      eyebrow: "Invitation",
      title: `Join ${view.workspaceName}`,
      message: `${view.invitedBy} invited ${view.email} to the workspace ${view.workspaceName} as ${view.role}. Press the button to accept and sign in on this device.`,
      form: {
        action: "/auth/invitation/accept",
        button: "Accept and sign in",
        fields: [{ name: "token", value: token }],
      },
    });
  });

  app.post(
    "/auth/invitation/accept",
    { config: { rateLimit: { max: 30, timeWindow: 60_000 } }, schema: { hide: true, body: TokenForm } },
    async (request, reply) => {
      if (foreignOrigin(request)) {
        return page(reply, 403, {
          eyebrow: "Invitation",
          title: "Refused",
          message: "This form was sent from another site. Open the invitation from your email again.",
        });
      }
      let accepted: Awaited<ReturnType<typeof acceptInvitation>>;
      try {
        accepted = await acceptInvitation(deps, request.body.token);
      } catch (error) {
        const message = error instanceof Error ? error.message : "the invitation could not be accepted";
        return page(reply, 410, {
          eyebrow: "Invitation",
          title: "This invitation cannot be used",
          message,
          link: { url: "/", label: "Go to sign-in" },
        });
      }
      if (!accepted.startSession) {
        request.log.info({ event: "invitation_accepted", memberId: accepted.memberId }, "invitation accepted");
        return page(reply, 200, {
          eyebrow: "Invitation",
          title: "You joined the workspace",
          message: `${accepted.email} is now a member, as ${accepted.role}. Sign in to continue (by email link or single sign-on).`,
          link: { url: "/signin", label: "Sign in" },
        });
      }
      const session = await startMemberSession(deps, accepted.memberId, accepted.workspaceId);
      request.log.info({ event: "sign_in", via: "invitation", memberId: accepted.memberId }, "invitation accepted");
      return signedIn(request, reply, session.token, accepted.email);
    },
  );

  /** A member's session from the cookie, with the CSRF check of a state change; or the problem sent. */
  async function memberSession(request: FastifyRequest, reply: FastifyReply) {
    const token = request.cookies[SESSION_COOKIE];
    const session = token ? await memberSessionOf(deps, token) : null;
    if (!token || session === null) {
      sendProblem(
        reply,
        problem(request, "unauthenticated", "sign in as a person (email link or single sign-on) first"),
      );
      return null;
    }
    if (!csrfHeaderMatches(request)) {
      sendProblem(
        reply,
        problem(request, "forbidden", `missing or wrong CSRF token (the ${CSRF_COOKIE} cookie, as x-csrf-token)`),
      );
      return null;
    }
    return { token, session };
  }

  const WorkspaceOut = Type.Object({ id: Type.String(), slug: Type.String(), name: Type.String() });

  app.post(
    "/workspaces",
    {
      schema: {
        tags: ["session"],
        summary: "Create a workspace (installation admins); the session switches to it",
        description: "The creator becomes its admin. Needs a member's session and `x-csrf-token`.",
        security: [],
        body: Type.Object(
          {
            slug: Type.String({ minLength: 1, maxLength: 50, description: "lowercase letters, digits, dashes" }),
            name: Type.String({ minLength: 1, maxLength: 120 }),
          },
          { additionalProperties: false },
        ),
        response: { 201: WorkspaceOut, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const found = await memberSession(request, reply);
      if (found === null) return reply;
      if (policy === undefined) {
        return sendProblem(reply, problem(request, "forbidden", "accounts are not set up here (docs/auth.md)"));
      }
      const created = await createWorkspace(deps, policy, found.session.memberId, request.body);
      await switchSessionWorkspace(deps, found.token, created.id);
      return reply.code(201).send(created);
    },
  );

  app.put(
    "/session/workspace",
    {
      schema: {
        tags: ["session"],
        summary: "Switch the session to another of the member's workspaces",
        description: "Every later request is scoped to it. Needs a member's session and `x-csrf-token`.",
        security: [],
        body: Type.Object({ workspaceId: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const found = await memberSession(request, reply);
      if (found === null) return reply;
      await switchSessionWorkspace(deps, found.token, request.body.workspaceId);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    "/session/all",
    {
      schema: {
        tags: ["session"],
        summary: "Sign out everywhere",
        description:
          "Ends every session of the signed-in member (or of the API key the session was signed in with), on every device, and clears this browser's cookies. Needs `x-csrf-token`.",
        security: [],
        response: { 200: Type.Object({ ended: Type.Integer() }), ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const token = request.cookies[SESSION_COOKIE];
      if (!token) return sendProblem(reply, problem(request, "unauthenticated", "not signed in"));
      if (!csrfHeaderMatches(request)) {
        return sendProblem(reply, problem(request, "forbidden", "missing or wrong CSRF token"));
      }
      const ended = await endAllSessions(deps, token);
      reply.clearCookie(SESSION_COOKIE, { path: "/" });
      reply.clearCookie(CSRF_COOKIE, { path: "/" });
      return { ended };
    },
  );
};

export default accountRoutes;
