/**
 * The test OpenID provider, driven as a relying party drives it: first over
 * plain HTTP (manual redirects, a cookie jar of its own), through discovery,
 * the authorization request with PKCE, state and nonce, the provider's sign-in
 * form, the redirect with the code, the token exchange and the ID token's
 * signature; with the refusals a relying party relies on (a replayed code, a
 * wrong verifier, no PKCE, an unknown login, a wrong client secret, a redirect
 * URI not registered). Then in Debian's Chromium through
 * `signInAtOidcProvider`, landing on a small local redirect URI server.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from "jose";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OidcClientConfig, signInAtOidcProvider, startOidcProvider, type TestOidcProvider } from "./oidc-provider";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ALICE = { sub: "user-alice-0001", email: "alice@example.com", name: "Alice Example" };
const BOB = { sub: "user-bob-0002", email: "bob@example.com", emailVerified: false };

// Redirect URIs never contacted in the HTTP tests: the flow stops at the redirect the provider answers with.
const DASHBOARD: OidcClientConfig = {
  clientId: "dashboard",
  clientSecret: "dashboard-secret",
  redirectUris: ["http://127.0.0.1:3999/api/auth/oauth2/callback/test-idp"],
};
const OTHER: OidcClientConfig = {
  clientId: "other-client",
  clientSecret: "other-secret",
  redirectUris: ["http://127.0.0.1:3999/callback"],
};

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint: string;
  jwks_uri: string;
  code_challenge_methods_supported: string[];
  response_types_supported: string[];
  scopes_supported: string[];
  claims_supported: string[];
  token_endpoint_auth_methods_supported: string[];
}

/** A cookie jar for one host: cookies by name and path, sent where the path matches. */
class CookieJar {
  private readonly cookies = new Map<string, { name: string; value: string; path: string }>();

  store(response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = "", ...attributes] = header.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = "/";
      let expired = value === "";
      for (const attribute of attributes) {
        const [key = "", val = ""] = attribute.trim().split("=");
        if (key.toLowerCase() === "path") path = val;
        if (key.toLowerCase() === "expires" && Date.parse(val) <= Date.now()) expired = true;
        if (key.toLowerCase() === "max-age" && Number(val) <= 0) expired = true;
      }
      if (expired) this.cookies.delete(`${name};${path}`);
      else this.cookies.set(`${name};${path}`, { name, value, path });
    }
  }

  header(url: URL): string {
    return [...this.cookies.values()]
      .filter(({ path }) => url.pathname === path || url.pathname.startsWith(path.endsWith("/") ? path : `${path}/`))
      .map(({ name, value }) => `${name}=${value}`)
      .join("; ");
  }
}

async function send(jar: CookieJar, url: URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const cookie = jar.header(url);
  if (cookie) headers.set("cookie", cookie);
  const response = await fetch(url, { ...init, headers, redirect: "manual" });
  jar.store(response);
  return response;
}

function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

interface Request {
  client: OidcClientConfig;
  state: string;
  nonce: string;
  verifier: string;
  url: URL;
}

function authorizationRequest(
  discovery: Discovery,
  client: OidcClientConfig,
  extra: Record<string, string | undefined> = {},
): Request {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString("base64url");
  const nonce = randomBytes(12).toString("base64url");
  const url = new URL(discovery.authorization_endpoint);
  const params: Record<string, string | undefined> = {
    client_id: client.clientId,
    response_type: "code",
    scope: "openid email profile",
    redirect_uri: client.redirectUris[0],
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
    ...extra,
  };
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  return { client, state, nonce, verifier, url };
}

/**
 * Follow the provider's redirects from the authorization request, submitting its forms (login with `login`,
 * consent) until it redirects to the client. Returns that redirect and the prompts of the pages shown.
 */
async function runAuthorization(
  jar: CookieJar,
  request: Request,
  login: string,
): Promise<{ redirect: URL; prompts: string[] }> {
  const prompts: string[] = [];
  let url = request.url;
  let response = await send(jar, url);
  for (let step = 0; step < 20; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const location = new URL(response.headers.get("location") ?? "", url);
      if (request.client.redirectUris.some((uri) => location.href.startsWith(uri))) {
        return { redirect: location, prompts };
      }
      url = location;
      response = await send(jar, url);
      continue;
    }
    const html = await response.text();
    expect(response.status, html).toBe(200);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`no form on ${url.href}: ${html.slice(0, 500)}`);
    prompts.push(prompt);
    const form = new URLSearchParams({ prompt });
    if (prompt === "login") {
      form.set("login", login);
      form.set("password", "whatever");
    }
    url = new URL(action.replaceAll("&amp;", "&"), url);
    response = await send(jar, url, { method: "POST", body: form });
  }
  throw new Error("the provider did not redirect to the client within 20 steps");
}

interface TokenResponse {
  status: number;
  body: { id_token?: string; access_token?: string; token_type?: string; error?: string; error_description?: string };
}

async function redeem(
  discovery: Discovery,
  client: OidcClientConfig,
  code: string,
  verifier: string,
  options: { method?: "client_secret_basic" | "client_secret_post"; secret?: string } = {},
): Promise<TokenResponse> {
  const method = options.method ?? "client_secret_basic";
  const secret = options.secret ?? client.clientSecret;
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: client.redirectUris[0] ?? "",
    code_verifier: verifier,
  });
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (method === "client_secret_basic") {
    const credentials = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(secret)}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString("base64")}`;
  } else {
    form.set("client_id", client.clientId);
    form.set("client_secret", secret);
  }
  const response = await fetch(discovery.token_endpoint, { method: "POST", headers, body: form });
  return { status: response.status, body: (await response.json()) as TokenResponse["body"] };
}

describe("test OpenID provider over HTTP", () => {
  let provider: TestOidcProvider;
  let discovery: Discovery;
  let verifyIdToken: (token: string, client: OidcClientConfig) => Promise<JWTPayload>;

  beforeAll(async () => {
    provider = await startOidcProvider({ clients: [DASHBOARD, OTHER], accounts: [ALICE, BOB] });
    const response = await fetch(`${provider.issuer}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    discovery = (await response.json()) as Discovery;
    const keys = createRemoteJWKSet(new URL(discovery.jwks_uri));
    verifyIdToken = async (token, client) =>
      (await jwtVerify(token, keys, { issuer: provider.issuer, audience: client.clientId })).payload;
  });

  afterAll(async () => {
    await provider?.close();
  });

  it("serves a discovery document naming its endpoints, S256 PKCE, the code flow and the claims", () => {
    expect(provider.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(discovery.issuer).toBe(provider.issuer);
    for (const endpoint of ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"] as const) {
      expect(discovery[endpoint].startsWith(`${provider.issuer}/`), endpoint).toBe(true);
    }
    expect(discovery.code_challenge_methods_supported).toContain("S256");
    expect(discovery.response_types_supported).toContain("code");
    expect(discovery.scopes_supported).toEqual(expect.arrayContaining(["openid", "email", "profile"]));
    expect(discovery.claims_supported).toEqual(expect.arrayContaining(["sub", "email", "email_verified", "name"]));
    expect(discovery.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(["client_secret_basic", "client_secret_post"]),
    );
  });

  it("signs a person in on its own sign-in page and returns a code whose ID token carries the nonce and the email", async () => {
    const jar = new CookieJar();
    const request = authorizationRequest(discovery, DASHBOARD);
    const { redirect, prompts } = await runAuthorization(jar, request, ALICE.email);

    // One page, the sign-in form; consent is granted to the test clients without a page.
    expect(prompts).toEqual(["login"]);
    expect(`${redirect.origin}${redirect.pathname}`).toBe(DASHBOARD.redirectUris[0]);
    expect(redirect.searchParams.get("state")).toBe(request.state);
    expect(redirect.searchParams.get("iss")).toBe(provider.issuer);
    const code = redirect.searchParams.get("code");
    expect(code).toBeTruthy();
    expect(provider.issuedCodes().at(-1)).toBe(code);

    const tokens = await redeem(discovery, DASHBOARD, code ?? "", request.verifier);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.token_type).toBe("Bearer");
    const claims = await verifyIdToken(tokens.body.id_token ?? "", DASHBOARD);
    expect(claims).toMatchObject({
      sub: ALICE.sub,
      nonce: request.nonce,
      email: ALICE.email,
      email_verified: true,
      name: ALICE.name,
    });

    const userinfo = await fetch(discovery.userinfo_endpoint, {
      headers: { authorization: `Bearer ${tokens.body.access_token}` },
    });
    expect(userinfo.status).toBe(200);
    expect(await userinfo.json()).toMatchObject({ sub: ALICE.sub, email: ALICE.email, name: ALICE.name });
  });

  it("refuses a replayed code with invalid_grant", async () => {
    const request = authorizationRequest(discovery, DASHBOARD);
    const { redirect } = await runAuthorization(new CookieJar(), request, ALICE.email);
    const code = redirect.searchParams.get("code") ?? "";
    expect((await redeem(discovery, DASHBOARD, code, request.verifier)).status).toBe(200);

    const replay = await redeem(discovery, DASHBOARD, code, request.verifier);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe("invalid_grant");
  });

  it("refuses a code redeemed with a wrong code_verifier with invalid_grant", async () => {
    const request = authorizationRequest(discovery, DASHBOARD);
    const { redirect } = await runAuthorization(new CookieJar(), request, ALICE.email);
    const code = redirect.searchParams.get("code") ?? "";

    const wrong = await redeem(discovery, DASHBOARD, code, pkcePair().verifier);
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe("invalid_grant");
  });

  it("refuses an authorization request without PKCE, at the redirect URI with invalid_request", async () => {
    const request = authorizationRequest(discovery, DASHBOARD, {
      code_challenge: undefined,
      code_challenge_method: undefined,
    });
    const { redirect, prompts } = await runAuthorization(new CookieJar(), request, ALICE.email);
    expect(prompts).toEqual([]);
    expect(redirect.searchParams.get("error")).toBe("invalid_request");
    expect(redirect.searchParams.get("error_description")).toMatch(/PKCE/);
    expect(redirect.searchParams.get("state")).toBe(request.state);
    expect(redirect.searchParams.has("code")).toBe(false);
  });

  it("refuses a login that names no account, at the redirect URI with access_denied", async () => {
    const request = authorizationRequest(discovery, DASHBOARD);
    const codesBefore = provider.issuedCodes().length;
    const { redirect, prompts } = await runAuthorization(new CookieJar(), request, "mallory@example.com");
    expect(prompts).toEqual(["login"]);
    expect(redirect.searchParams.get("error")).toBe("access_denied");
    expect(redirect.searchParams.get("state")).toBe(request.state);
    expect(redirect.searchParams.has("code")).toBe(false);
    expect(provider.issuedCodes()).toHaveLength(codesBefore);
  });

  it("refuses a redirect URI the client did not register on its own error page, without redirecting", async () => {
    const request = authorizationRequest(discovery, DASHBOARD, { redirect_uri: "http://127.0.0.1:4000/steal" });
    const response = await send(new CookieJar(), request.url);
    expect(response.status).toBe(400);
    expect(response.headers.get("location")).toBeNull();
    expect(await response.text()).toContain("invalid_redirect_uri");
  });

  it("takes the client secret in the form body too, and refuses a wrong secret or another client's code with the right error", async () => {
    const request = authorizationRequest(discovery, OTHER);
    const { redirect } = await runAuthorization(new CookieJar(), request, BOB.email);
    const code = redirect.searchParams.get("code") ?? "";

    const wrongSecret = await redeem(discovery, OTHER, code, request.verifier, {
      method: "client_secret_post",
      secret: "not-the-secret",
    });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe("invalid_client");
    const byAnotherClient = await redeem(discovery, DASHBOARD, code, request.verifier);
    expect(byAnotherClient.status).toBe(400);
    expect(byAnotherClient.body.error).toBe("invalid_grant");

    const tokens = await redeem(discovery, OTHER, code, request.verifier, { method: "client_secret_post" });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const claims = await verifyIdToken(tokens.body.id_token ?? "", OTHER);
    expect(claims).toMatchObject({ sub: BOB.sub, email: BOB.email, email_verified: false, nonce: request.nonce });
    expect(claims.name).toBeUndefined();
  });

  it("reads the accounts map at each sign-in: a changed email is in the next ID token, under the same sub", async () => {
    const login = "carol";
    provider.accounts.set(login, { sub: "user-carol-0003", email: "carol@old.example.com" });
    const first = authorizationRequest(discovery, DASHBOARD);
    const firstCode = (await runAuthorization(new CookieJar(), first, login)).redirect.searchParams.get("code") ?? "";
    const firstTokens = await redeem(discovery, DASHBOARD, firstCode, first.verifier);
    expect(await verifyIdToken(firstTokens.body.id_token ?? "", DASHBOARD)).toMatchObject({
      sub: "user-carol-0003",
      email: "carol@old.example.com",
    });

    provider.accounts.set(login, { sub: "user-carol-0003", email: "carol@new.example.com", emailVerified: false });
    const second = authorizationRequest(discovery, DASHBOARD);
    const secondCode = (await runAuthorization(new CookieJar(), second, login)).redirect.searchParams.get("code") ?? "";
    const secondTokens = await redeem(discovery, DASHBOARD, secondCode, second.verifier);
    expect(await verifyIdToken(secondTokens.body.id_token ?? "", DASHBOARD)).toMatchObject({
      sub: "user-carol-0003",
      email: "carol@new.example.com",
      email_verified: false,
    });
  });
});

describe("starting the test OpenID provider", () => {
  it("fails, naming the client, when a client's metadata is refused", async () => {
    const start = startOidcProvider({
      clients: [{ clientId: "broken", clientSecret: "s", redirectUris: ["not a url"] }],
      accounts: [ALICE],
    });
    await expect(start).rejects.toThrow(/client broken: redirect_uris must only contain valid uris/);
  });
});

describe("test OpenID provider in a browser", () => {
  let provider: TestOidcProvider;
  let discovery: Discovery;
  let callbackServer: Server;
  let browser: Browser;
  const callbacks: URLSearchParams[] = [];
  let client: OidcClientConfig;

  beforeAll(async () => {
    callbackServer = createServer((req, res) => {
      callbacks.push(new URL(req.url ?? "/", "http://127.0.0.1").searchParams);
      res.setHeader("content-type", "text/html");
      res.end("<!DOCTYPE html><title>signed in</title><p>back at the client</p>");
    });
    await new Promise<void>((resolve) => callbackServer.listen(0, "127.0.0.1", resolve));
    const { port } = callbackServer.address() as AddressInfo;
    client = {
      clientId: "browser-client",
      clientSecret: "browser-secret",
      redirectUris: [`http://127.0.0.1:${port}/cb`],
    };
    provider = await startOidcProvider({ clients: [client], accounts: [ALICE] });
    discovery = (await (await fetch(`${provider.issuer}/.well-known/openid-configuration`)).json()) as Discovery;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
    await provider?.close();
    await new Promise<void>((resolve) => (callbackServer ? callbackServer.close(() => resolve()) : resolve()));
  });

  async function signInInBrowser(request: Request): Promise<{ landedAt: string; query: URLSearchParams }> {
    const context = await browser.newContext();
    try {
      // The provider's page imports a web font; nothing leaves the machine.
      await context.route(
        (url) => url.hostname !== "127.0.0.1",
        (route) => route.abort(),
      );
      const page = await context.newPage();
      await page.goto(request.url.href);
      const before = callbacks.length;
      await signInAtOidcProvider(page, ALICE.email);
      const query = callbacks[before];
      if (!query) throw new Error(`the redirect URI server got no request; the page is at ${page.url()}`);
      return { landedAt: page.url(), query };
    } finally {
      await context.close();
    }
  }

  it("signs in on the provider's page and lands at the redirect URI with a code and the state", async () => {
    const request = authorizationRequest(discovery, client);
    const { landedAt, query } = await signInInBrowser(request);

    expect(landedAt.startsWith(`${client.redirectUris[0]}?`)).toBe(true);
    expect(query.get("state")).toBe(request.state);
    const code = query.get("code") ?? "";
    expect(provider.issuedCodes()).toContain(code);
    const tokens = await redeem(discovery, client, code, request.verifier);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
  });

  it("clicks through the consent page when the request asks for one", async () => {
    const request = authorizationRequest(discovery, client, { prompt: "consent" });
    const { landedAt, query } = await signInInBrowser(request);

    expect(landedAt.startsWith(`${client.redirectUris[0]}?`)).toBe(true);
    expect(query.get("state")).toBe(request.state);
    expect(query.get("code")).toBeTruthy();
  });
});
