/**
 * People's accounts through the HTTP API, with mail through a real SMTP
 * server (`smtp-server`, parsed back with `mailparser`): the installation's
 * first admin signs in by an email link and creates a workspace, invites a
 * PM who accepts and signs in; links are single use, bound to their address,
 * and a scanner opening them changes nothing; unknown addresses get no mail
 * and the same answer; the per-address limit; roles of sessions; removing a
 * member ends their sessions and revokes their keys; the switcher never
 * reaches a workspace the member is not in. Real Postgres and Redis.
 */
import { members as memberRows } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import type { Diagnostic } from "@outcome-runtime/spec";
import { outcomeVariant, waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

const PUBLIC_URL = "http://runtime.test";
const ADMIN = "ada.admin@acme.example";
const PM = "maya.pm@acme.example";
const SECRET = "test-secret-of-at-least-32-characters-long";

let api: TestApi;
let smtp: MailCatcher;
let app: TestApi["app"];

beforeAll(async () => {
  api = await createTestApi();
  smtp = await startMailCatcher();
  const mailer = createMailer(
    mailConfigFromEnv({
      SMTP_URL: smtp.url,
      MAIL_FROM: "Outcome Runtime <runtime@acme.example>",
      OUTCOME_RUNTIME_PUBLIC_URL: PUBLIC_URL,
    }),
    () => {},
  );
  app = await buildTestApp(api.t.db, api.redis, {
    publicUrl: PUBLIC_URL,
    accounts: { secret: SECRET, mailer, policy: { installationAdmins: [ADMIN] }, emailLinksPerAddress: 5 },
  });
});

afterAll(async () => {
  await app?.close();
  await smtp?.close();
  await api?.close();
});

/** A browser's cookie jar, enough for these routes. */
class Browser {
  readonly cookies = new Map<string, string>();
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  take(raw: string | string[] | undefined): void {
    for (const line of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
      const [pair] = line.split(";");
      const eq = pair?.indexOf("=") ?? -1;
      if (pair === undefined || eq < 0) continue;
      const name = pair.slice(0, eq);
      const value = decodeURIComponent(pair.slice(eq + 1));
      if (value === "" || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  async request(method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", url: string, body?: unknown, form = false) {
    const headers: Record<string, string> = { cookie: this.header() };
    const csrf = this.cookies.get("or_csrf");
    if (csrf) headers["x-csrf-token"] = csrf;
    let payload: string | undefined;
    if (body !== undefined) {
      headers["content-type"] = form ? "application/x-www-form-urlencoded" : "application/json";
      payload = form ? new URLSearchParams(body as Record<string, string>).toString() : JSON.stringify(body);
    }
    const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
    this.take(res.headers["set-cookie"]);
    return res;
  }
}

/** The link of the newest mail to `to` (its first URL on our public address). */
async function linkMailedTo(to: string, before: number): Promise<URL> {
  const mail = await waitFor(`a mail to ${to}`, () => smtp.received.slice(before).find((m) => m.to.includes(to)), {
    timeoutMs: 10_000,
  });
  const text = mail.mail.text ?? "";
  const match = new RegExp(`${PUBLIC_URL}/auth/[a-z-]+\\?token=[A-Za-z0-9_%.-]+`).exec(text);
  if (match === null) throw new Error(`no link in the mail to ${to}: ${text}`);
  return new URL(match[0]);
}

async function signInByEmail(browser: Browser, email: string): Promise<void> {
  const before = smtp.received.length;
  const asked = await browser.request("POST", "/auth/email-link", { email });
  expect(asked.statusCode, asked.body).toBe(202);
  const link = await linkMailedTo(email, before);
  const confirmed = await browser.request(
    "POST",
    "/auth/email-link/confirm",
    { token: link.searchParams.get("token") ?? "" },
    true,
  );
  expect(confirmed.statusCode, confirmed.body).toBe(200);
}

const admin = new Browser();
const pm = new Browser();
let workspaceId = "";
let pmId = "";

describe("the first admin, a workspace and an invited PM", () => {
  it("the first admin signs in by an email link; opening the link (as a scanner does) changes nothing", async () => {
    const before = smtp.received.length;
    const asked = await admin.request("POST", "/auth/email-link", { email: " Ada.Admin@ACME.example " });
    expect(asked.statusCode).toBe(202);
    const link = await linkMailedTo(ADMIN, before);
    const mail = smtp.received.at(-1);
    expect(mail?.mail.subject).toBe("Sign in to Outcome Runtime");
    expect(mail?.mail.html).toContain(link.href.replace(PUBLIC_URL, "").split("?")[0]);

    // The scanner's GET: a page with a button, no session.
    const scanner = new Browser();
    const page = await scanner.request("GET", `${link.pathname}${link.search}`);
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(page.headers["cache-control"]).toBe("no-store");
    expect(page.body).toContain('action="/auth/email-link/confirm"');
    expect(scanner.cookies.has("or_session")).toBe(false);

    // A form posted from another site is refused (login CSRF).
    const foreign = await app.inject({
      method: "POST",
      url: "/auth/email-link/confirm",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
      payload: `token=${link.searchParams.get("token")}`,
    });
    expect(foreign.statusCode).toBe(403);
    // A sandboxed page of another site sends `Origin: null`, as our own no-referrer pages do: the browser's
    // Sec-Fetch-Site tells them apart.
    const sandboxed = await app.inject({
      method: "POST",
      url: "/auth/email-link/confirm",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: "null",
        "sec-fetch-site": "cross-site",
      },
      payload: `token=${link.searchParams.get("token")}`,
    });
    expect(sandboxed.statusCode).toBe(403);

    const token = link.searchParams.get("token") ?? "";
    const confirmed = await admin.request("POST", "/auth/email-link/confirm", { token }, true);
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    expect(confirmed.headers.refresh).toBe("0; url=/");
    expect(admin.cookies.get("or_session")).toMatch(/^ors_/);
    // better-auth's own session is gone: only the runtime's remains.
    expect([...admin.cookies.keys()].filter((k) => k.startsWith("or_auth"))).toEqual([]);

    // Single use: the same link again is refused, and signs nobody in.
    const again = new Browser();
    const replay = await again.request("POST", "/auth/email-link/confirm", { token }, true);
    expect(replay.statusCode).toBe(410);
    expect(again.cookies.has("or_session")).toBe(false);

    const session = await admin.request("GET", "/session");
    expect(session.statusCode).toBe(200);
    expect(session.json()).toMatchObject({
      principal: null,
      member: { email: ADMIN, installationAdmin: true },
      workspace: null,
      workspaces: [],
    });
    // No workspace yet: /v1 is refused.
    expect((await admin.request("GET", "/v1/outcomes")).statusCode).toBe(401);
  });

  it("the admin creates a workspace and the session moves into it, as its admin", async () => {
    const refused = await admin.request("POST", "/workspaces", { slug: "Growth Team", name: "Growth" });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail).toContain('slug "Growth Team"');
    const created = await admin.request("POST", "/workspaces", { slug: "growth", name: "Growth" });
    expect(created.statusCode, created.body).toBe(201);
    workspaceId = created.json().id;
    const session = (await admin.request("GET", "/session")).json();
    expect(session).toMatchObject({
      principal: { name: ADMIN, role: "admin" },
      workspace: { id: workspaceId, slug: "growth", role: "admin" },
    });
    expect((await admin.request("GET", "/v1/outcomes")).statusCode).toBe(200);
    const taken = await admin.request("POST", "/workspaces", { slug: "growth", name: "Again" });
    expect(taken.statusCode).toBe(409);
  });

  it("the admin invites the PM; the invitation mail's link shows a page, and accepting signs her in as approver", async () => {
    const before = smtp.received.length;
    const invited = await admin.request("POST", "/v1/members/invitations", { email: PM, role: "approver" });
    expect(invited.statusCode, invited.body).toBe(201);
    expect(invited.json()).toMatchObject({
      mailed: true,
      invitation: { email: PM, role: "approver", invitedBy: ADMIN },
    });
    expect(invited.json().inviteUrl).toBeUndefined();
    const link = await linkMailedTo(PM, before);
    expect(smtp.received.at(-1)?.mail.subject).toBe(`${ADMIN} invited you to Growth on Outcome Runtime`);

    const shown = await pm.request("GET", `${link.pathname}${link.search}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.body).toContain("Join Growth");
    expect(pm.cookies.has("or_session")).toBe(false);

    const token = link.searchParams.get("token") ?? "";
    const accepted = await pm.request("POST", "/auth/invitation/accept", { token }, true);
    expect(accepted.statusCode, accepted.body).toBe(200);
    const session = (await pm.request("GET", "/session")).json();
    expect(session).toMatchObject({
      principal: { name: PM, role: "approver" },
      member: { email: PM, installationAdmin: false },
      workspace: { id: workspaceId, role: "approver" },
    });
    pmId = session.member.id;

    // Used once: the link shows it, and a second accept (another tab) signs nobody in.
    expect((await new Browser().request("GET", `${link.pathname}${link.search}`)).statusCode).toBe(410);
    const other = new Browser();
    expect((await other.request("POST", "/auth/invitation/accept", { token }, true)).statusCode).toBe(410);
    expect(other.cookies.has("or_session")).toBe(false);

    const audit = await admin.request("GET", "/v1/audit?limit=20");
    const events = (audit.json().items as { action: string; actor: { name: string } | null }[]).map(
      (e) => `${e.action} by ${e.actor?.name}`,
    );
    expect(events).toEqual(
      expect.arrayContaining([`member.invited by ${ADMIN}`, `member.joined by ${PM}`, `workspace.created by ${ADMIN}`]),
    );
  });

  it("gate assignees and backups must be members who may decide: an unknown address is an error with the fix", async () => {
    const validate = async () => {
      const res = await app.inject({
        method: "POST",
        url: "/v1/outcomes/validate",
        headers: {
          cookie: admin.header(),
          "x-csrf-token": admin.cookies.get("or_csrf") ?? "",
          "content-type": "text/plain",
        },
        payload: outcomeVariant("people-check"),
      });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json() as { errors: Diagnostic[]; warnings: Diagnostic[] };
      const people = (list: Diagnostic[]) =>
        list.filter((d) => d.code.includes("person")).map((d) => `${d.pointer} ${d.code}`);
      return { errors: people(body.errors), warnings: people(body.warnings), all: body.errors };
    };
    const first = await validate();
    // maya.pm is a member (approver); eng.lead and lead are nobody here.
    expect(first.errors).toEqual([
      "/gates/portfolio_review/backup unknown_person",
      "/gates/launch_approval/assignees/1 unknown_person",
      "/gates/launch_approval/backup unknown_person",
      "/gates/analysis_review/backup unknown_person",
    ]);
    const unknown = first.all.find((d) => d.code === "unknown_person");
    expect(unknown?.message).toBe("gates.portfolio_review.backup: lead@acme.example is not a member of this workspace");
    expect(unknown?.hint).toContain("outcome-runtime members invite lead@acme.example");
    expect(unknown?.line).toBeGreaterThan(1);

    // Invited: a warning until they join.
    await admin.request("POST", "/v1/members/invitations", { email: "lead@acme.example", role: "approver" });
    const second = await validate();
    expect(second.errors).toEqual(["/gates/launch_approval/assignees/1 unknown_person"]);
    expect(second.warnings).toContain("/gates/portfolio_review/backup person_invited");
  });

  it("the PM, now a member, signs in later by an email link into her workspace", async () => {
    const later = new Browser();
    await signInByEmail(later, PM);
    expect((await later.request("GET", "/session")).json()).toMatchObject({
      principal: { name: PM, role: "approver" },
      workspace: { id: workspaceId },
    });
  });
});

describe("links and limits", () => {
  it("an address that may not sign in gets the same answer and no mail", async () => {
    const before = smtp.received.length;
    const res = await new Browser().request("POST", "/auth/email-link", { email: "stranger@else.example" });
    expect(res.statusCode).toBe(202);
    expect(res.json().message).toContain("if stranger@else.example may sign in here");
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.received.slice(before).filter((m) => m.to.includes("stranger@else.example"))).toEqual([]);
  });

  it("a malformed address is a validation error naming the field", async () => {
    const res = await new Browser().request("POST", "/auth/email-link", { email: "not an address" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "validation_failed" });
    expect(res.json().detail).toContain("email");
  });

  it("an address gets at most 5 links a quarter hour from one IP (429 with Retry-After); another IP is not locked out by it", async () => {
    const address = "limited@acme.example";
    const ask = (ip: string) =>
      app.inject({ method: "POST", url: "/auth/email-link", payload: { email: address }, remoteAddress: ip });
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await ask("10.0.0.1");
      codes.push(res.statusCode);
      if (res.statusCode === 429) expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
    }
    expect(codes).toEqual([202, 202, 202, 202, 202, 429]);
    expect((await ask("10.0.0.2")).statusCode).toBe(202);
    // From many IPs together an address is asked for 30 times a quarter hour at most (7 so far).
    const spread: number[] = [];
    for (let i = 0; i < 26; i++) spread.push((await ask(`10.0.1.${i + 1}`)).statusCode);
    expect(spread.slice(0, 23).every((c) => c === 202)).toBe(true);
    expect(spread.slice(23)).toEqual([429, 429, 429]);
  });

  it("a link is bound to its token: a made-up or tampered token signs nobody in", async () => {
    for (const token of ["x".repeat(32), "", "' OR 1=1 --"]) {
      const b = new Browser();
      const res = await b.request("POST", "/auth/email-link/confirm", { token }, true);
      expect(res.statusCode).toBe(410);
      expect(b.cookies.has("or_session")).toBe(false);
    }
    const unknownInvite = await new Browser().request("GET", `/auth/invitation?token=${"a".repeat(43)}`);
    expect(unknownInvite.statusCode).toBe(404);
  });

  it("an invitation past its 7 days, or revoked, shows why and signs nobody in", async () => {
    const before = smtp.received.length;
    const invited = await admin.request("POST", "/v1/members/invitations", {
      email: "late@acme.example",
      role: "member",
    });
    const link = await linkMailedTo("late@acme.example", before);
    const token = link.searchParams.get("token") ?? "";
    await api.t.db
      .updateTable("invitations")
      .set({ created_at: new Date(Date.now() - 8 * 86_400_000), expires_at: new Date(Date.now() - 86_400_000) })
      .where("id", "=", invited.json().invitation.id)
      .execute();
    const late = new Browser();
    const shown = await late.request("GET", `${link.pathname}${link.search}`);
    expect(shown.statusCode).toBe(410);
    expect(shown.body).toContain("This invitation expired");
    const accepted = await late.request("POST", "/auth/invitation/accept", { token }, true);
    expect(accepted.statusCode).toBe(410);
    expect(late.cookies.has("or_session")).toBe(false);

    // Invited again, then revoked: the new link stops working too.
    const again = smtp.received.length;
    const second = await admin.request("POST", "/v1/members/invitations", {
      email: "late@acme.example",
      role: "member",
    });
    const secondLink = await linkMailedTo("late@acme.example", again);
    const revoked = await admin.request("DELETE", `/v1/members/invitations/${second.json().invitation.id}`);
    expect(revoked.json()).toEqual({ revoked: true });
    const page = await late.request("GET", `${secondLink.pathname}${secondLink.search}`);
    expect(page.body).toContain("This invitation was withdrawn");
    expect((await admin.request("DELETE", `/v1/members/invitations/${second.json().invitation.id}`)).json()).toEqual({
      revoked: false,
    });
  });

  it("a disabled member is refused at sign-in with a page that says so", async () => {
    const { member } = await memberRows.ensureMember(api.t.db, { email: "gone@acme.example", createdBy: "test" });
    await memberRows.insertMembership(api.t.db, {
      workspaceId,
      memberId: member.id,
      role: "member",
      addedBy: "test",
      at: new Date(),
    });
    await memberRows.setDisabled(api.t.db, member.id, new Date());
    const before = smtp.received.length;
    await new Browser().request("POST", "/auth/email-link", { email: "gone@acme.example" });
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.received.slice(before).filter((m) => m.to.includes("gone@acme.example"))).toEqual([]);
  });
});

describe("roles, removal and workspaces", () => {
  it("a viewer's session reads and changes nothing; an approver may not invite", async () => {
    const before = smtp.received.length;
    await admin.request("POST", "/v1/members/invitations", { email: "vic.viewer@acme.example", role: "viewer" });
    const link = await linkMailedTo("vic.viewer@acme.example", before);
    const viewer = new Browser();
    await viewer.request("POST", "/auth/invitation/accept", { token: link.searchParams.get("token") ?? "" }, true);
    expect((await viewer.request("GET", "/v1/outcomes")).statusCode).toBe(200);
    expect((await viewer.request("GET", "/v1/members")).statusCode).toBe(200);
    const write = await viewer.request("POST", "/v1/outcomes/validate", { yaml: "x: 1" });
    expect(write.statusCode).toBe(403);
    expect(write.json().detail).toContain("a viewer reads only");
    const invite = await pm.request("POST", "/v1/members/invitations", { email: "x@acme.example", role: "admin" });
    expect(invite.statusCode).toBe(403);
    expect(invite.json().detail).toBe("only an admin can invite people");
    // Without the CSRF header, a session changes nothing.
    const noCsrf = await app.inject({
      method: "POST",
      url: "/v1/members/invitations",
      headers: { cookie: admin.header(), "content-type": "application/json" },
      payload: { email: "x@acme.example", role: "member" },
    });
    expect(noCsrf.statusCode).toBe(403);
  });

  it("a role change reaches the member's open session at its next request", async () => {
    const changed = await admin.request("PATCH", `/v1/members/${pmId}`, { role: "member" });
    expect(changed.json()).toEqual({ changed: true, role: "member", keysRevoked: 0 });
    await waitFor(
      "the PM's session to have the member role",
      async () => (await pm.request("GET", "/session")).json().principal.role === "member",
      { timeoutMs: 5000 },
    );
    await admin.request("PATCH", `/v1/members/${pmId}`, { role: "approver" });
  });

  it("the last admin can be neither demoted nor removed", async () => {
    const me = (await admin.request("GET", "/session")).json().member.id;
    const demote = await admin.request("PATCH", `/v1/members/${me}`, { role: "member" });
    expect(demote.statusCode).toBe(409);
    expect(demote.json().detail).toContain("without an admin");
    expect((await admin.request("DELETE", `/v1/members/${me}`)).statusCode).toBe(409);
  });

  it("a key made by a member belongs to them: a lower role revokes it, and removing the member ends their sessions", async () => {
    const key = await pm.request("POST", "/v1/keys", { name: "maya-laptop", role: "member" });
    expect(key.statusCode).toBe(403); // an approver makes no keys
    await admin.request("PATCH", `/v1/members/${pmId}`, { role: "admin" });
    await waitFor(
      "the PM's session to be admin",
      async () => (await pm.request("GET", "/session")).json().principal.role === "admin",
      { timeoutMs: 5000 },
    );
    const made = await pm.request("POST", "/v1/keys", { name: "maya-laptop", role: "admin" });
    expect(made.statusCode, made.body).toBe(201);
    const withKey = { authorization: `Bearer ${made.json().key as string}` };
    expect((await app.inject({ method: "GET", url: "/v1/outcomes", headers: withKey })).statusCode).toBe(200);

    // Demoted, her admin key must not let her make herself admin again: it is revoked with the role.
    const demoted = await admin.request("PATCH", `/v1/members/${pmId}`, { role: "approver" });
    expect(demoted.json()).toEqual({ changed: true, role: "approver", keysRevoked: 1 });
    const comeback = await app.inject({
      method: "PATCH",
      url: `/v1/members/${pmId}`,
      headers: { ...withKey, "content-type": "application/json" },
      payload: { role: "admin" },
    });
    expect(comeback.statusCode).toBe(401);

    const removed = await admin.request("DELETE", `/v1/members/${pmId}`);
    expect(removed.json()).toEqual({ removed: true, keysRevoked: 0 });
    expect((await pm.request("GET", "/v1/outcomes")).statusCode).toBe(401);
    const listed = (await admin.request("GET", "/v1/members")).json();
    expect(listed.members.map((m: { email: string }) => m.email)).not.toContain(PM);
    const events = (await admin.request("GET", "/v1/audit?limit=5")).json().items as { action: string }[];
    expect(events.map((e) => e.action)).toContain("member.removed");
  });

  it("the switcher moves only into the member's own workspaces; other workspaces stay out of reach", async () => {
    // The seeded default workspace: the admin is no member there.
    const refused = await admin.request("PUT", "/session/workspace", { workspaceId: api.seed.workspaceId });
    expect(refused.statusCode).toBe(404);
    const outcomes = await admin.request("GET", "/v1/outcomes");
    expect(outcomes.statusCode).toBe(200);
    // The session is still in its own workspace.
    expect((await admin.request("GET", "/session")).json().workspace.id).toBe(workspaceId);

    // A second workspace: the switcher moves there and back, and requests follow it.
    const second = await admin.request("POST", "/workspaces", { slug: "checkout", name: "Checkout" });
    expect(second.statusCode).toBe(201);
    expect((await admin.request("GET", "/session")).json().workspaces.map((w: { slug: string }) => w.slug)).toEqual([
      "checkout",
      "growth",
    ]);
    expect((await admin.request("GET", "/v1/members")).json().members).toHaveLength(1);

    // An existing member (the viewer of growth) invited to checkout: the link adds the membership and signs
    // nobody in (a session of hers would carry her other workspaces to whoever holds the link).
    const before = smtp.received.length;
    await admin.request("POST", "/v1/members/invitations", { email: "vic.viewer@acme.example", role: "member" });
    const link = await linkMailedTo("vic.viewer@acme.example", before);
    const holder = new Browser();
    const joined = await holder.request(
      "POST",
      "/auth/invitation/accept",
      { token: link.searchParams.get("token") ?? "" },
      true,
    );
    expect(joined.statusCode).toBe(200);
    expect(joined.body).toContain("You joined the workspace");
    expect(holder.cookies.has("or_session")).toBe(false);
    expect((await admin.request("GET", "/v1/members")).json().members).toHaveLength(2);

    expect((await admin.request("PUT", "/session/workspace", { workspaceId })).statusCode).toBe(204);
    expect((await admin.request("GET", "/v1/members")).json().members.length).toBeGreaterThan(1);
  });

  it("sign out everywhere ends every session of the member", async () => {
    const second = new Browser();
    await signInByEmail(second, ADMIN);
    expect((await second.request("GET", "/session")).statusCode).toBe(200);
    const out = await admin.request("DELETE", "/session/all");
    expect(out.statusCode).toBe(200);
    expect(out.json().ended).toBeGreaterThanOrEqual(2);
    expect((await second.request("GET", "/session")).statusCode).toBe(401);
    expect((await admin.request("GET", "/session")).statusCode).toBe(401);
  });
});
