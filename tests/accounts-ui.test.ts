/**
 * People's accounts in a real browser (playwright-core driving Debian's
 * Chromium, headless) on a new installation: the API serves the built
 * dashboard, mail goes through a real SMTP server, single sign-on through a
 * real OpenID provider started here.
 *
 * 1. The installation's first admin signs in by an email link, creates a
 *    workspace, invites a PM; the PM accepts, signs in, finds the gate
 *    assigned to her in her inbox and decides it; the audit log names both.
 *    On the way: the links' confirmation pages (a scanner opening them signs
 *    nobody in), a replayed and an expired link, an invitation opened in a
 *    browser signed in as someone else.
 * 2. The same team signs in through single sign-on: the PM lands as herself,
 *    a new colleague joins with the default role.
 * axe-core checks the accounts pages. Real Postgres and Redis.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { audit, members } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import { applyOutcome, type Caller, proposeExperiment, transitionOutcome } from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  outcomeVariant,
  seedWorkspace,
  signInAtOidcProvider,
  startOidcProvider,
  type TestDatabase,
  type TestOidcProvider,
  waitFor,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the test ages a row of better-auth's own table, which no repository of ours reads
import pg from "pg";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const WEB_ROOT = `${root}services/web/dist/`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const ADA = "ada.admin@acme.example";
const MAYA = "maya.pm@acme.example";
const DEV = "dev@acme.example";
const CLIENT = { clientId: "outcome-runtime", clientSecret: "a-client-secret-for-the-test-provider" };

let t: TestDatabase;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let smtp: MailCatcher;
let idp: TestOidcProvider;
let browser: Browser;
let baseUrl: string;
let bootstrapKey: string;
const prefix = `test-accounts-ui-${process.pid}`;

beforeAll(async () => {
  if (!existsSync(`${WEB_ROOT}index.html`)) {
    throw new Error(`the dashboard is not built (${WEB_ROOT}index.html is missing): run \`pnpm build\` first`);
  }
  t = await createTestDatabase();
  // A new installation: the default workspace and the bootstrap key, nobody else.
  bootstrapKey = (await seedWorkspace(t.db)).adminKey;
  smtp = await startMailCatcher();
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startOidcProvider({
    clients: [{ ...CLIENT, redirectUris: [`${baseUrl}/api/auth/callback/oidc`] }],
    accounts: [
      { sub: "u-maya", email: MAYA, emailVerified: true, name: "Maya" },
      { sub: "u-dev", email: DEV, emailVerified: true, name: "Dev" },
    ],
  });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(t.db, redis, {
    publicUrl: baseUrl,
    webRoot: WEB_ROOT,
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
    accounts: {
      secret: "a-browser-test-secret-of-32-characters!",
      mailer: createMailer(
        mailConfigFromEnv({
          SMTP_URL: smtp.url,
          MAIL_FROM: "runtime@acme.example",
          OUTCOME_RUNTIME_PUBLIC_URL: baseUrl,
        }),
        () => {},
      ),
      oidc: { issuer: idp.issuer, ...CLIENT, displayName: "Acme SSO" },
      policy: {
        installationAdmins: [ADA],
        sso: { allowedDomains: ["acme.example"], defaultRole: "member", workspaceSlug: "growth" },
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
  await smtp?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  await t?.drop();
});

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
}

async function axe(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  const violations = (await page.evaluate("axe.run(document).then((r) => r.violations)")) as AxeViolation[];
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** A browser of its own (bypassCSP only to inject axe-core); nothing leaves 127.0.0.1. */
async function person(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  await context.route(
    (url) => url.hostname !== "127.0.0.1",
    (route) => route.abort(),
  );
  return { context, page: await context.newPage() };
}

/** The newest mail to `to` after `before` mails, and the link in it to our `/auth/…` pages. */
async function linkMailedTo(to: string, before: number): Promise<string> {
  const mail = await waitFor(`a mail to ${to}`, () => smtp.received.slice(before).find((m) => m.to.includes(to)), {
    timeoutMs: 15_000,
  });
  const link = new RegExp(`${baseUrl}/auth/[a-z-]+\\?token=[A-Za-z0-9_%.-]+`).exec(mail.mail.text ?? "")?.[0];
  if (link === undefined) throw new Error(`no link in the mail to ${to}`);
  return link;
}

/** Ask for an email link on the sign-in page; returns the link mailed. */
async function askForLink(page: Page, email: string): Promise<string> {
  const before = smtp.received.length;
  await page.goto(`${baseUrl}/signin`);
  await page.getByLabel("Email", { exact: false }).first().fill(email);
  await page.getByRole("button", { name: "Email me a sign-in link" }).click();
  await page.getByText(`if ${email} may sign in here`).waitFor();
  return linkMailedTo(email, before);
}

/** Open an account link and press its button; the hand-off page then sends the browser to the dashboard. */
async function follow(page: Page, link: string, button: string): Promise<void> {
  await page.goto(link);
  await page.getByRole("button", { name: button }).click();
  await page.waitForURL(`${baseUrl}/`);
}

let growthId = "";
let gateId = "";

describe("accounts in the dashboard", () => {
  it("the first admin signs in by email link, creates a workspace and invites a PM, who accepts, signs in and decides the gate assigned to her", async () => {
    const violations: Record<string, AxeViolation[]> = {};
    const ada = await person();
    const signInPage = ada.page;
    await signInPage.goto(`${baseUrl}/signin`);
    await signInPage.getByRole("button", { name: "Email me a sign-in link" }).waitFor();
    expect(await signInPage.getByRole("link", { name: "Sign in with Acme SSO" }).count()).toBe(1);
    violations.signIn = await axe(signInPage);

    const link = await askForLink(signInPage, ADA);
    // A scanner opening the link: a page with a button, and no session.
    const scanner = await person();
    await scanner.page.goto(link);
    expect(await scanner.page.getByRole("button", { name: "Sign in" }).count()).toBe(1);
    expect((await scanner.context.cookies(baseUrl)).find((c) => c.name === "or_session")).toBeUndefined();
    violations.confirm = await axe(scanner.page);

    await follow(ada.page, link, "Sign in");
    // No workspace yet: Ada creates the first one.
    await ada.page.getByRole("button", { name: "Create workspace" }).waitFor();
    violations.firstWorkspace = await axe(ada.page);
    await ada.page.getByLabel("Slug", { exact: false }).fill("growth");
    await ada.page.getByLabel("Name", { exact: false }).fill("Growth");
    await ada.page.getByRole("button", { name: "Create workspace" }).click();
    await ada.page.getByText("Growth").first().waitFor();
    const adaMember = await members.findMemberByEmail(t.db, ADA);
    const memberships = await members.listMemberships(t.db, adaMember?.id ?? "");
    expect(memberships.map((m) => [m.slug, m.role])).toEqual([["growth", "admin"]]);
    growthId = memberships[0]?.workspaceId ?? "";

    // The replayed link signs nobody in.
    await scanner.page.goto(link);
    await scanner.page.getByRole("button", { name: "Sign in" }).click();
    await scanner.page.getByText("This link no longer works").waitFor();
    expect((await scanner.context.cookies(baseUrl)).find((c) => c.name === "or_session")).toBeUndefined();

    // Ada invites Maya as approver from the Members page.
    const before = smtp.received.length;
    await ada.page.goto(`${baseUrl}/members`);
    await ada.page.getByRole("heading", { name: "Members" }).waitFor();
    await ada.page.getByLabel("Email", { exact: false }).fill(MAYA);
    await ada.page.getByLabel("Role", { exact: false }).last().selectOption("approver");
    await ada.page.getByRole("button", { name: "Invite" }).click();
    await ada.page.getByText(MAYA).first().waitFor();
    violations.members = await axe(ada.page);
    const invitation = await linkMailedTo(MAYA, before);

    // An outcome whose gates Maya decides, with a portfolio review waiting for her.
    const adaCaller: Caller = {
      principal: {
        id: adaMember?.id ?? "",
        name: ADA,
        role: "admin",
        workspaceId: growthId,
        memberId: adaMember?.id ?? null,
      },
      channel: "web",
      requestId: null,
    };
    const yaml = outcomeVariant("growth-checkout")
      .replaceAll("maya.pm@acme.example, eng.lead@acme.example", MAYA)
      .replaceAll("backup: lead@acme.example", `backup: ${ADA}`);
    await applyOutcome({ db: t.db }, adaCaller, { source: yaml });
    await transitionOutcome({ db: t.db }, adaCaller, "growth-checkout", "activate", null);
    const proposed = await proposeExperiment({ db: t.db }, adaCaller, "growth-checkout", {
      title: "Express pay",
      statement: "Express pay lowers checkout abandonment",
      touchedPaths: ["apps/web/src/checkout/pay.ts"],
    });
    gateId = proposed.gate.id;

    // Maya opens her invitation in a browser where Ada is signed in: the link signs in its own address.
    const shared = await ada.context.newPage();
    await shared.goto(invitation);
    await shared.getByRole("heading", { name: "Join Growth" }).waitFor();
    await shared.close();
    const maya = await person();
    await follow(maya.page, invitation, "Accept and sign in");
    await maya.page.getByText(MAYA).first().waitFor();

    // Her inbox has the gate; she decides it.
    await maya.page.goto(`${baseUrl}/gates`);
    const item = maya.page.getByTestId("gate-item").first();
    await item.waitFor();
    violations.inbox = await axe(maya.page);
    await item.getByRole("link").first().click();
    await maya.page.waitForURL(/\/gates\//);
    await maya.page.getByTestId("gate-reason").fill("worth a try");
    await maya.page.getByTestId("gate-decision-approve").click();
    await maya.page.getByTestId("decision-confirmation").waitFor();

    // The audit log names both people.
    await ada.page.goto(`${baseUrl}/audit`);
    await ada.page.getByText("gate.decided").first().waitFor();
    const text = (await ada.page.textContent("main")) ?? "";
    expect(text).toContain(ADA);
    expect(text).toContain(MAYA);
    const events = await audit.listAuditEvents(t.db, growthId, { limit: 50 });
    const by = events.map((e) => `${e.action} by ${e.actor?.name}`);
    expect(by).toEqual(
      expect.arrayContaining([
        `workspace.created by ${ADA}`,
        `member.invited by ${ADA}`,
        `member.joined by ${MAYA}`,
        `gate.decided by ${MAYA}`,
      ]),
    );
    expect(events.find((e) => e.action === "gate.decided")?.channel).toBe("web");

    // The invitation cannot be used twice; the bootstrap key keeps working for automation.
    const again = await person();
    await again.page.goto(invitation);
    await again.page.getByText("This invitation cannot be used").waitFor();
    const automation = await fetch(`${baseUrl}/v1/outcomes`, { headers: { authorization: `Bearer ${bootstrapKey}` } });
    expect(automation.status).toBe(200);

    for (const [name, found] of Object.entries(violations))
      expect(found, `${name}: ${JSON.stringify(found)}`).toEqual([]);
    for (const b of [ada, scanner, maya, again]) await b.context.close();
  });

  it("an email link past its 15 minutes no longer signs in", async () => {
    const ada = await person();
    const link = await askForLink(ada.page, ADA);
    // Fifteen minutes pass: the link's record in better-auth's table is past its end.
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    await client.query(`UPDATE auth.verification SET "expiresAt" = now() - interval '1 minute'`);
    await client.end();
    await ada.page.goto(link);
    await ada.page.getByRole("button", { name: "Sign in" }).click();
    await ada.page.getByText("This link no longer works").waitFor();
    expect((await ada.context.cookies(baseUrl)).find((c) => c.name === "or_session")).toBeUndefined();
    await ada.context.close();
  });

  it("the same team signs in through single sign-on: the PM as herself, a new colleague with the default role", async () => {
    const maya = await person();
    await maya.page.goto(`${baseUrl}/signin`);
    await maya.page.getByRole("link", { name: "Sign in with Acme SSO" }).click();
    await maya.page.waitForURL((url) => url.origin === idp.issuer);
    await signInAtOidcProvider(maya.page, MAYA);
    await maya.page.waitForURL(`${baseUrl}/`);
    const mine = await maya.context.request.get(`${baseUrl}/session`);
    expect(await mine.json()).toMatchObject({
      principal: { name: MAYA, role: "approver" },
      workspace: { id: growthId, slug: "growth" },
    });
    await maya.page.getByText(MAYA).first().waitFor();

    const dev = await person();
    await dev.page.goto(`${baseUrl}/signin`);
    await dev.page.getByRole("link", { name: "Sign in with Acme SSO" }).click();
    await signInAtOidcProvider(dev.page, DEV);
    await dev.page.waitForURL(`${baseUrl}/`);
    const theirs = await dev.context.request.get(`${baseUrl}/session`);
    expect(await theirs.json()).toMatchObject({
      principal: { name: DEV, role: "member" },
      member: { name: "Dev" },
      workspace: { id: growthId },
    });
    // The PM's inbox is hers: the decided gate is gone from it, and the new member's is empty.
    await dev.page.goto(`${baseUrl}/gates`);
    await dev.page.getByRole("heading", { level: 1 }).waitFor();
    expect(await dev.page.getByTestId("gate-item").count()).toBe(0);
    expect(gateId).not.toBe("");
    await maya.context.close();
    await dev.context.close();
  });
});
