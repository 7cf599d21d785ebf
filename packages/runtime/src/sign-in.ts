/**
 * Proving who someone is, with better-auth: an email link (its `magic-link`
 * plugin) and OpenID Connect single sign-on (its `genericOAuth` plugin:
 * discovery, authorization code with PKCE, `state`, and the `nonce` bound to
 * the ID token, verified against the provider's JWKS).
 *
 * better-auth is used for the proof only. Its session (its tokens are stored
 * as they are) lives for the hand-off: once it proves an address, the
 * runtime admits the member (members.ts), starts its own session (sessions.ts:
 * token stored as SHA-256, idle and absolute limits, revocation announced to
 * every process) and deletes better-auth's session. Its tables live in the
 * `auth` schema (migration `2026-12-19T01-00-members`); its telemetry is off;
 * its password sign-in is not enabled.
 */

import { members } from "@outcome-runtime/db";
import { betterAuth } from "better-auth";
import { genericOAuth } from "better-auth/plugins/generic-oauth";
import { magicLink } from "better-auth/plugins/magic-link";
import type { RuntimeDeps } from "./context";

/** An email link is valid this long: 15 minutes (in seconds, as better-auth takes it). */
export const EMAIL_LINK_TTL_S = 15 * 60;

/** Where better-auth's own endpoints are mounted (the OIDC callback is `<basePath>/callback/oidc`). */
export const AUTH_BASE_PATH = "/api/auth";

/** The id of the single sign-on provider in better-auth (and in the callback URL). */
export const SSO_PROVIDER_ID = "oidc";

/** Single sign-on by OpenID Connect, from the environment (`OUTCOME_RUNTIME_OIDC_*`). */
export interface OidcConfig {
  /** The issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The name on the sign-in button, e.g. "Okta" (default "single sign-on"). */
  readonly displayName?: string | undefined;
}

export interface SignInConfig {
  /** The dashboard's public URL (`PUBLIC_URL`): links and the OIDC redirect URI are built on it. */
  readonly publicUrl: string;
  /** At least 32 characters (`OUTCOME_RUNTIME_AUTH_SECRET`): signs better-auth's cookies and encrypts its stored tokens. */
  readonly secret: string;
  readonly oidc?: OidcConfig | undefined;
  /**
   * Sends the email link (the confirmation page's URL, built by the caller
   * from `token`). Called only for an address the caller decided may sign in.
   */
  readonly sendEmailLink: (email: string, token: string) => Promise<void>;
}

/** An address better-auth proved, and how. */
export interface ProvedIdentity {
  readonly email: string;
  readonly name: string;
  readonly emailVerified: boolean;
}

/** Requests as the web framework hands them over: a WHATWG `Request`. */
export interface SignInProofs {
  /** better-auth's own endpoints under {@link AUTH_BASE_PATH} (the OIDC callback). */
  handler(request: Request): Promise<Response>;
  /** Whether single sign-on is configured. */
  readonly ssoEnabled: boolean;
  readonly ssoName: string;
  /** Ask better-auth for an email link for `email` (its `sendMagicLink` calls `sendEmailLink`). */
  requestEmailLink(email: string, headers: Headers): Promise<void>;
  /**
   * Verify an email link's token (single use: consumed atomically); the
   * address it proves, or null for an unknown, used or expired token.
   */
  verifyEmailLink(token: string, headers: Headers): Promise<ProvedIdentity | null>;
  /**
   * Start single sign-on: the provider's authorization URL to redirect to,
   * and the cookies (state) to set on the way.
   *
   * @throws Error when single sign-on is not configured.
   */
  startSso(headers: Headers, callbackPath: string, errorPath: string): Promise<{ url: string; setCookie: string[] }>;
  /**
   * After the provider's callback: the address better-auth's session (from the
   * request's cookies) proves, or null without one. The session is deleted:
   * it served its purpose.
   */
  completeSso(headers: Headers): Promise<ProvedIdentity | null>;
  /** The names of better-auth's cookies, to clear after the hand-off. */
  readonly cookieNames: readonly string[];
}

const COOKIE_PREFIX = "or_auth";

/**
 * Configure better-auth on the runtime's database.
 *
 * @throws Error when the secret is shorter than 32 characters or the public URL is not http(s).
 */
export function createSignInProofs(deps: RuntimeDeps, config: SignInConfig): SignInProofs {
  if (config.secret.length < 32) {
    throw new Error("OUTCOME_RUNTIME_AUTH_SECRET must be at least 32 characters (e.g. `openssl rand -base64 32`)");
  }
  const base = new URL(config.publicUrl);
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new Error(`PUBLIC_URL "${config.publicUrl}" must be an http(s) URL`);
  }
  const origin = base.origin;
  const plugins = [
    magicLink({
      expiresIn: EMAIL_LINK_TTL_S,
      storeToken: "hashed",
      // Members are the runtime's: better-auth's user is only the proof's holder.
      disableSignUp: false,
      sendMagicLink: async ({ email, token }) => {
        await config.sendEmailLink(email, token);
      },
    }),
    ...(config.oidc
      ? [
          genericOAuth({
            config: [
              {
                providerId: SSO_PROVIDER_ID,
                name: config.oidc.displayName ?? "single sign-on",
                discoveryUrl: `${config.oidc.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`,
                clientId: config.oidc.clientId,
                clientSecret: config.oidc.clientSecret,
                scopes: ["openid", "email", "profile"],
                pkce: true,
                requireIdTokenVerification: true,
                authentication: "basic" as const,
              },
            ],
          }),
        ]
      : []),
  ];
  const auth = betterAuth({
    appName: "Outcome Runtime",
    baseURL: origin,
    basePath: AUTH_BASE_PATH,
    secret: config.secret,
    // biome-ignore lint/suspicious/noExplicitAny: better-auth's adapter takes an untyped Kysely for its own tables
    database: { db: deps.db as any, type: "postgres", schemaName: "auth" },
    telemetry: { enabled: false },
    trustedOrigins: [origin],
    emailAndPassword: { enabled: false },
    // Only the hand-off: the runtime's own session follows at once.
    session: { expiresIn: 600, updateAge: 600 },
    account: {
      encryptOAuthTokens: true,
      // No trusted providers: a sign-in links to an existing user of the same address only when the provider
      // says the address is verified (a trusted provider would link an unverified claim too, and the user's
      // own flag, set by an email link, would then stand for the provider's).
      accountLinking: { enabled: true },
    },
    // The runtime's own limits (per address and per IP, in Redis) apply before better-auth is called.
    rateLimit: { enabled: false },
    advanced: { cookiePrefix: COOKIE_PREFIX, useSecureCookies: base.protocol === "https:" },
    // A callback it refuses before it knows where to send errors (a tampered or replayed state) lands on our page.
    onAPIError: { errorURL: `${origin}/auth/sso/error` },
    plugins,
  });
  const sessionCookie = `${base.protocol === "https:" ? "__Secure-" : ""}${COOKIE_PREFIX}.session_token`;

  async function identityOf(headers: Headers): Promise<ProvedIdentity | null> {
    const session = await auth.api.getSession({ headers, query: { disableCookieCache: true } });
    if (session === null) return null;
    await members.deleteAuthSession(deps.db, session.session.id);
    return { email: session.user.email, name: session.user.name, emailVerified: session.user.emailVerified };
  }

  return {
    handler: (request) => auth.handler(request),
    ssoEnabled: config.oidc !== undefined,
    ssoName: config.oidc?.displayName ?? "single sign-on",
    cookieNames: [
      sessionCookie,
      `${base.protocol === "https:" ? "__Secure-" : ""}${COOKIE_PREFIX}.session_data`,
      `${base.protocol === "https:" ? "__Secure-" : ""}${COOKIE_PREFIX}.state`,
    ],
    async requestEmailLink(email, headers) {
      await auth.api.signInMagicLink({ body: { email, callbackURL: "/" }, headers });
    },
    async verifyEmailLink(token, headers) {
      let response: Response;
      try {
        response = await auth.api.magicLinkVerify({ query: { token, callbackURL: "/" }, headers, asResponse: true });
      } catch {
        return null;
      }
      const cookies = response.headers.getSetCookie();
      const session = cookies.find((c) => c.startsWith(`${sessionCookie}=`));
      if (session === undefined) return null;
      return identityOf(new Headers({ cookie: session.split(";")[0] ?? "" }));
    },
    async startSso(headers, callbackPath, errorPath) {
      if (config.oidc === undefined) throw new Error("single sign-on is not configured (OUTCOME_RUNTIME_OIDC_ISSUER)");
      const response = await auth.api.signInSocial({
        body: {
          provider: SSO_PROVIDER_ID,
          callbackURL: `${origin}${callbackPath}`,
          errorCallbackURL: `${origin}${errorPath}`,
          disableRedirect: true,
        },
        headers,
        asResponse: true,
      });
      const body = (await response.json()) as { url?: string };
      if (typeof body.url !== "string") throw new Error(`single sign-on could not start (HTTP ${response.status})`);
      return { url: body.url, setCookie: response.headers.getSetCookie() };
    },
    completeSso: identityOf,
  };
}
