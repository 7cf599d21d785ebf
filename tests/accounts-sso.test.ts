/**
 * Single sign-on by OpenID Connect, end to end in headless Chromium: the API
 * listening on a port with single sign-on configured, a real certified OpenID
 * provider (`oidc-provider`) started here with a client, and a person signing
 * in at the provider's own page. The authorization-code flow with PKCE, state
 * and nonce is better-auth's; the hand-off to the runtime's own session, the
 * just-in-time membership with the default role, and the refusals are ours.
 *
 * Cases: a new person of an allowed domain lands as a member with the default
 * role; a domain not allowed; an address the provider did not verify; a
 * disabled member; a tampered state; a replayed callback (code); an expired
 * session. Real Postgres and Redis.
 */
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { audit, members as memberRows, workspaces } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import {
  createTestDatabase,
  freePort,
  type Seeded,
  seedWorkspace,
  signInAtOidcProvider,
  startOidcProvider,
  type TestDatabase,
  type TestOidcProvider,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CLIENT = { clientId: "outcome-runtime", clientSecret: "a-client-secret-for-the-test-provider" };

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let idp: TestOidcProvider;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startOidcProvider({
    clients: [{ ...CLIENT, redirectUris: [`${baseUrl}/api/auth/callback/oidc`] }],
    accounts: [
      { sub: "u-maya", email: "maya.pm@acme.example", emailVerified: true, name: "Maya" },
      { sub: "u-eve", email: "eve@elsewhere.example", emailVerified: true, name: "Eve" },
      { sub: "u-sam", email: "sam@acme.example", emailVerified: false, name: "Sam" },
      { sub: "u-dan", email: "dan@acme.example", emailVerified: true, name: "Dan" },
    ],
  });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(t.db, redis, {
    publicUrl: baseUrl,
    webRoot: null,
    accounts: {
      secret: "a-test-secret-that-is-32-characters-or-more",
      mailer: createMailer(mailConfigFromEnv({}), () => {}),
      oidc: { issuer: idp.issuer, ...CLIENT, displayName: "Acme SSO" },
      policy: {
        installationAdmins: [],
        sso: { allowedDomains: ["acme.example"], defaultRole: "member", workspaceSlug: "default" },
      },
    },
  });
  await app.listen({ port, host: "127.0.0.1" });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await idp?.close();
  redis?.disconnect();
  await t?.drop();
});

/** A fresh browser whose requests go nowhere but to 127.0.0.1 (the provider's page asks for a web font). */
async function freshContext(): Promise<BrowserContext> {
  const context = await browser.newContext();
  await context.route(
    (url) => url.hostname !== "127.0.0.1",
    (route) => route.abort(),
  );
  return context;
}

/** Start at the runtime's sign-in, sign in at the provider's page; returns where the browser ended. */
async function signInWithSso(page: Page, login: string): Promise<void> {
  await page.goto(`${baseUrl}/auth/sso`);
  expect(new URL(page.url()).origin).toBe(idp.issuer);
  await signInAtOidcProvider(page, login);
  await page.waitForURL((url) => url.origin === baseUrl && !url.pathname.startsWith("/api/auth/"));
}

async function sessionOf(context: BrowserContext) {
  const res = await context.request.get(`${baseUrl}/session`);
  return { status: res.status(), body: res.status() === 200 ? await res.json() : null };
}

describe("single sign-on by OpenID Connect", () => {
  it("advertises itself on the sign-in page's configuration", async () => {
    const res = await app.inject({ method: "GET", url: "/auth/config" });
    expect(res.json()).toEqual({ emailLink: true, sso: { name: "Acme SSO", url: "/auth/sso" }, apiKey: true });
  });

  it("a new person of an allowed domain signs in at the provider and lands as a member with the default role", async () => {
    const context = await freshContext();
    const page = await context.newPage();
    // Record the provider's redirect back to us (code, state), to replay it below.
    const callbacks: string[] = [];
    page.on("request", (request) => {
      if (request.url().startsWith(`${baseUrl}/api/auth/callback/oidc`)) callbacks.push(request.url());
    });
    await signInWithSso(page, "maya.pm@acme.example");
    // The hand-off page sends the browser on to the dashboard, with the runtime's own session only.
    await page.waitForURL(`${baseUrl}/`);
    const cookies = await context.cookies(baseUrl);
    expect(cookies.find((c) => c.name === "or_session")).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookies.filter((c) => c.name.startsWith("or_auth") && c.name.includes("session"))).toEqual([]);

    const session = await sessionOf(context);
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({
      principal: { name: "maya.pm@acme.example", role: "member" },
      member: { email: "maya.pm@acme.example", name: "Maya", installationAdmin: false },
      workspace: { id: seed.workspaceId, slug: "default", role: "member" },
    });
    const joined = await audit.listAuditEvents(t.db, seed.workspaceId, { limit: 10 });
    expect(joined.map((e) => `${e.action}:${e.actor?.name}`)).toContain("member.joined:maya.pm@acme.example");

    // The callback the provider sent (its code, its state) replayed: refused, and no second session appears.
    expect(callbacks).toHaveLength(1);
    const before = await countSessions();
    const replay = await context.newPage();
    await replay.goto(callbacks[0] ?? "");
    expect(replay.url()).toContain("/auth/sso/error");
    expect(await replay.textContent("h1")).toBe("Single sign-on failed");
    const elsewhere = await (await freshContext()).newPage();
    await elsewhere.goto(callbacks[0] ?? "");
    expect(elsewhere.url()).toContain("/auth/sso/error");
    expect(await countSessions()).toBe(before);
    // The provider never honours a code twice either.
    expect(idp.issuedCodes().length).toBeGreaterThanOrEqual(1);
    await context.close();
  });

  it("a callback whose state is not the one this browser started with is refused and signs nobody in", async () => {
    // This browser starts single sign-on: better-auth sets its state cookie and sends it to the provider.
    const started = await app.inject({ method: "GET", url: "/auth/sso" });
    expect(started.statusCode).toBe(302);
    const authorize = new URL(String(started.headers.location));
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorize.searchParams.get("nonce")).toMatch(/.{16,}/);
    const state = authorize.searchParams.get("state") ?? "";
    expect(state).toMatch(/.{16,}/);
    const raw = started.headers["set-cookie"];
    const cookie = (Array.isArray(raw) ? raw : [String(raw)]).map((c) => c.split(";")[0]).join("; ");

    const before = await countSessions();
    for (const forged of [`${state.slice(0, -4)}abcd`, "", "a".repeat(300)]) {
      const back = await app.inject({
        method: "GET",
        url: `/api/auth/callback/oidc?code=some-code&state=${encodeURIComponent(forged)}`,
        headers: { cookie },
      });
      expect(back.statusCode, back.body).toBe(302);
      expect(String(back.headers.location)).toContain("/auth/sso/error");
      const cookies = back.headers["set-cookie"];
      expect(String(cookies ?? "")).not.toContain("session_token=");
    }
    // The right state without this browser's cookie (another browser) is refused too.
    const stranger = await app.inject({
      method: "GET",
      url: `/api/auth/callback/oidc?code=some-code&state=${encodeURIComponent(state)}`,
    });
    expect(String(stranger.headers.location)).toContain("/auth/sso/error");
    expect(await countSessions()).toBe(before);
  });

  it("another account at the provider claiming a member's address without verifying it does not sign in as the member", async () => {
    // Maya signed in above (her address verified by the provider). Mallory's account claims the same address,
    // unverified (providers where people type their own address allow that).
    idp.accounts.set("mallory", { sub: "u-mallory", email: "maya.pm@acme.example", emailVerified: false, name: "M" });
    const context = await freshContext();
    const page = await context.newPage();
    await signInWithSso(page, "mallory");
    expect((await sessionOf(context)).status).toBe(401);
    expect(page.url()).toContain("/auth/sso/error");
    expect(await page.textContent("main")).toContain("did not confirm this email address");
    idp.accounts.delete("mallory");
    await context.close();
  });

  it("only the provider's callback of better-auth is reachable, whatever the path says", async () => {
    for (const url of [
      "/api/auth/callback/google?code=x&state=y",
      "/api/auth/callback/..%5Cmagic-link%5Cverify?token=x",
      "/api/auth/callback/..%2Fget-session",
    ]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(404);
    }
    for (const url of [
      "/api/auth/get-session",
      "/api/auth/magic-link/verify?token=x",
      "/api/auth/sign-in/magic-link",
    ]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers["set-cookie"], url).toBeUndefined();
    }
  });

  it("an address of a domain not allowed is refused with a page that says why", async () => {
    const context = await freshContext();
    const page = await context.newPage();
    await signInWithSso(page, "eve@elsewhere.example");
    expect(await page.textContent("main")).toContain("addresses of elsewhere.example may not sign in here");
    expect((await sessionOf(context)).status).toBe(401);
    expect(await memberRows.findMemberByEmail(t.db, "eve@elsewhere.example")).toBeNull();
    await context.close();
  });

  it("an address the provider did not verify is refused", async () => {
    const context = await freshContext();
    const page = await context.newPage();
    await signInWithSso(page, "sam@acme.example");
    expect(await page.textContent("main")).toContain("did not confirm this email address");
    expect((await sessionOf(context)).status).toBe(401);
    await context.close();
  });

  it("a disabled member is refused, and their open sessions end", async () => {
    const first = await freshContext();
    await signInWithSso(await first.newPage(), "dan@acme.example");
    expect((await sessionOf(first)).status).toBe(200);
    const dan = await memberRows.findMemberByEmail(t.db, "dan@acme.example");
    if (dan === null) throw new Error("dan was not created just in time");
    await memberRows.setDisabled(t.db, dan.id, new Date());
    expect((await sessionOf(first)).status).toBe(401);

    const again = await freshContext();
    const page = await again.newPage();
    await signInWithSso(page, "dan@acme.example");
    expect(await page.textContent("main")).toContain("this account is disabled");
    expect((await sessionOf(again)).status).toBe(401);
    await first.close();
    await again.close();
  });

  it("an expired session is refused at the next request", async () => {
    const context = await freshContext();
    await signInWithSso(await context.newPage(), "maya.pm@acme.example");
    const read = await context.request.get(`${baseUrl}/v1/outcomes`);
    expect(read.status()).toBe(200);
    const maya = await memberRows.findMemberByEmail(t.db, "maya.pm@acme.example");
    await t.db
      .updateTable("sessions")
      .set({ expires_at: new Date(Date.now() - 1000), created_at: new Date(Date.now() - 8 * 86_400_000) })
      .where("member_id", "=", maya?.id ?? "")
      .execute();
    const after = await context.request.get(`${baseUrl}/v1/outcomes`);
    expect(after.status()).toBe(401);
    expect((await sessionOf(context)).status).toBe(401);
    expect(await workspaces.findWorkspace(t.db, seed.workspaceId)).not.toBeNull();
    await context.close();
  });
});

async function countSessions(): Promise<number> {
  const row = await t.db
    .selectFrom("sessions")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
