/**
 * A real OpenID provider for tests of single sign-on: `oidc-provider` (the
 * certified OpenID Connect implementation for Node.js) started in the test
 * process on 127.0.0.1, plain HTTP.
 *
 * What a relying party meets there (the dashboard signs in through it with the
 * authorization code flow, PKCE, `state` and `nonce`):
 *
 * - Discovery at `${issuer}/.well-known/openid-configuration`; signing keys at its
 *   `jwks_uri` (one RSA key generated at each start, RS256 ID tokens).
 * - Clients registered from `OidcClientConfig`: `response_types: ["code"]`,
 *   `grant_types: ["authorization_code"]`, http redirect URIs on 127.0.0.1 (a
 *   `web` client may use http for the code flow; only the implicit flow is held to
 *   https). Clients are registered with `token_endpoint_auth_method:
 *   "client_secret_basic"`; oidc-provider takes the secret in the form body
 *   (`client_secret_post`, better-auth's default) from such a client too.
 * - PKCE (S256, the only method offered) is required of every client: an
 *   authorization request without `code_challenge` comes back to the redirect URI
 *   with `error=invalid_request`; a wrong `code_verifier` is `invalid_grant`.
 * - Scopes `openid email profile`; claims `email`, `email_verified` (from `email`)
 *   and `name` (from `profile`), in the ID token as well as from userinfo
 *   (`conformIdTokenClaims: false`).
 * - The sign-in page is oidc-provider's own development page (`devInteractions`):
 *   a form with `login` and `password`. The login names an entry of `accounts`;
 *   any password is accepted. An unknown login ends the request at the redirect URI
 *   with `error=access_denied`. Consent is granted without a page for what the
 *   request asks (these are first-party clients), unless the request says
 *   `prompt=consent`.
 * - An authorization code is single-use: redeeming it again is `invalid_grant`
 *   (and revokes what the first redemption issued).
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Configuration, InteractionResults, KoaContextWithOIDC } from "oidc-provider";
import type { Page } from "playwright-core";

/** A person the provider can sign in. `sub` is the subject the ID token names; `emailVerified` defaults to true. */
export interface OidcAccount {
  sub: string;
  email: string;
  emailVerified?: boolean;
  name?: string;
}

/** A relying party registered at the provider (a confidential `web` client; see the module's comment). */
export interface OidcClientConfig {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

/** A started provider. */
export interface TestOidcProvider {
  /** `http://127.0.0.1:<port>`; discovery at `issuer + "/.well-known/openid-configuration"`. */
  issuer: string;
  /**
   * The accounts by login name (what the sign-in form's `login` field takes): at start, each account under its
   * email. Read at every sign-in and token request, so a test may add, change or delete entries between runs.
   */
  accounts: Map<string, OidcAccount>;
  /** Every authorization code the provider issued, newest last (so a test can replay one). */
  issuedCodes(): string[];
  /** Stop listening and drop open connections. */
  close(): Promise<void>;
}

/** Lifetimes in seconds (set so that oidc-provider does not warn about defaults). */
const TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  IdToken: 3600,
  Interaction: 600,
  Session: 3600,
  Grant: 3600,
} as const;

/**
 * Start an OpenID provider on 127.0.0.1 (`port`, else a free one) with these clients and accounts.
 *
 * @throws Error naming the client when oidc-provider refuses its metadata (for example a redirect URI that is not
 *   a URL), or when `port` is taken.
 */
export async function startOidcProvider(options: {
  clients: OidcClientConfig[];
  accounts: OidcAccount[];
  port?: number;
}): Promise<TestOidcProvider> {
  const { Provider } = await withoutProviderNotices(() => import("oidc-provider"));
  const accounts = new Map(options.accounts.map((account) => [account.email, account]));
  const codes: string[] = [];

  // Listen before the provider exists: the issuer has to name the port, and port 0 leaves no race for it.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const configuration: Configuration = {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: client.redirectUris,
      application_type: "web",
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    })),
    jwks: { keys: [{ ...signingKey, kid: randomBytes(8).toString("hex"), use: "sig", alg: "RS256" }] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    pkce: { required: () => true },
    scopes: ["openid", "email", "profile"],
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    ttl: TTL,
    // The token endpoint is called by the relying party's server, never from a browser page.
    clientBasedCORS: () => false,
    async findAccount(_ctx, sub) {
      const account = [...accounts.values()].find((candidate) => candidate.sub === sub);
      if (!account) return undefined;
      return {
        accountId: account.sub,
        claims: () => ({
          sub: account.sub,
          email: account.email,
          email_verified: account.emailVerified ?? true,
          ...(account.name === undefined ? {} : { name: account.name }),
        }),
      };
    },
    async loadExistingGrant(ctx: KoaContextWithOIDC) {
      const { oidc } = ctx;
      const client = oidc.client;
      if (!client || !oidc.session) return undefined;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(client.clientId);
      if (grantId) return oidc.provider.Grant.find(grantId);
      if (!oidc.session.accountId) return undefined;
      const grant = new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: client.clientId });
      grant.addOIDCScope(oidc.requestParamOIDCScopes);
      grant.addOIDCClaims(oidc.requestParamClaims);
      await grant.save();
      return grant;
    },
    renderError(ctx, out) {
      ctx.type = "html";
      ctx.body = `<!DOCTYPE html><html><head><title>${escapeHtml(out.error)}</title></head><body><h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? "")}</p></body></html>`;
    },
  };
  let provider: InstanceType<typeof Provider>;
  try {
    provider = withoutProviderNoticesSync(() => new Provider(issuer, configuration));
    // oidc-provider checks a static client's metadata at the client's first use: check them all now.
    for (const client of options.clients) {
      await provider.Client.find(client.clientId).catch((error: { message: string; error_description?: string }) => {
        const reason = error.error_description ?? error.message;
        throw new Error(`oidc-provider refused client ${client.clientId}: ${reason}`, { cause: error });
      });
    }
  } catch (error) {
    server.close();
    throw error;
  }

  // The development sign-in page finishes its interaction with the typed login as the account id, and
  // oidc-provider puts the account id in the ID token as `sub`: map the login to its account's sub here.
  const finish = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, finishOptions) =>
    finish(req, res, withAccountSub(result, accounts), finishOptions);

  provider.on("authorization_code.saved", (code) => {
    if (!codes.includes(code.jti)) codes.push(code.jti);
  });
  handle = provider.callback();

  return {
    issuer,
    accounts,
    issuedCodes: () => [...codes],
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function withAccountSub(result: InteractionResults, accounts: Map<string, OidcAccount>): InteractionResults {
  const login = result.login?.accountId;
  if (login === undefined) return result;
  const account = accounts.get(login);
  if (!account) {
    return { error: "access_denied", error_description: `no account has the login ${JSON.stringify(login)}` };
  }
  return { ...result, login: { ...result.login, accountId: account.sub } };
}

/**
 * Fill in and submit the provider's own sign-in page (devInteractions: login, then consent if asked) in a
 * playwright-core Page that is on that page. Resolves once the browser has left the provider's pages, which is
 * at the client's redirect URI (with `code` and `state`, or `error=access_denied` for an unknown login).
 *
 * @param login the `accounts` key of the person signing in (an account's email, unless a test set other keys).
 * @throws Error when the page shows no sign-in form of this provider (for example because the browser context
 *   already has a session there, and the provider went straight back to the client).
 */
export async function signInAtOidcProvider(page: Page, login: string): Promise<void> {
  await page.waitForLoadState("domcontentloaded");
  const loginForm = page.locator('form:has(input[name="prompt"][value="login"])');
  if ((await loginForm.count()) === 0) {
    throw new Error(`${page.url()} shows no sign-in form of the test OpenID provider`);
  }
  await loginForm.locator('input[name="login"]').fill(login);
  await loginForm.locator('input[name="password"]').fill("any password");
  await submitAndLeave(page, loginForm);

  const consentForm = page.locator('form:has(input[name="prompt"][value="consent"])');
  if ((await consentForm.count()) > 0) await submitAndLeave(page, consentForm);
}

async function submitAndLeave(page: Page, form: ReturnType<Page["locator"]>): Promise<void> {
  // Every step ends on another URL: a new interaction's page, or the client's redirect URI.
  const from = page.url();
  await form.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.href !== from);
}

const NOTICE = /oidc-provider (WARNING|NOTICE):/;

/**
 * oidc-provider prints, through console.warn and console.info, notices meant for someone deploying it: the
 * development sign-in pages are on, grants and codes live in memory, the Node.js release is not one it lists
 * (22 LTS or later). A test provider means all of these; they are dropped while it loads and starts. Other
 * output passes.
 */
async function withoutProviderNotices<T>(start: () => Promise<T>): Promise<T> {
  const restore = muteNotices();
  try {
    return await start();
  } finally {
    restore();
  }
}

function withoutProviderNoticesSync<T>(start: () => T): T {
  const restore = muteNotices();
  try {
    return start();
  } finally {
    restore();
  }
}

function muteNotices(): () => void {
  const { warn, info } = console;
  const keep =
    (write: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      if (typeof args[0] === "string" && NOTICE.test(args[0])) return;
      write(...args);
    };
  console.warn = keep(warn);
  console.info = keep(info);
  return () => {
    console.warn = warn;
    console.info = info;
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
