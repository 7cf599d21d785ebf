/**
 * Deciding gates by email, end to end: the API listening on a port, the worker
 * sending through nodemailer to a real SMTP server in this process
 * (`smtp-server`, in @outcome-runtime/notify/test-support), the messages
 * parsed back with `mailparser` as a mail client would, and the links followed
 * with an HTTP client. Real Postgres and Redis.
 */
import { randomBytes } from "node:crypto";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { audit, gateMail, gates as gateRows } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import {
  applyOutcome,
  connectorProvider,
  decideGate,
  getExperiment,
  proposeExperiment,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  sleep,
  type TestDatabase,
  waitFor,
} from "@outcome-runtime/testing";
import { startWorker } from "@outcome-runtime/worker";
import { Redis } from "ioredis";
import type { ParsedMail } from "mailparser";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const MAYA = "maya.pm@acme.example";
const LEAD = "lead@acme.example";

// ---------------------------------------------------------------------------
// One world for the file: database, SMTP server, API on a port, worker.

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let workerRedis: Redis;
let smtp: MailCatcher;
let baseUrl: string;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let worker: Awaited<ReturnType<typeof startWorker>>;
const prefix = `test-${randomBytes(6).toString("hex")}`;
/** Recipients the SMTP server refuses with a temporary error, and how many more times. */
const smtpOutage = new Map<string, number>();
/** The API's clock; moved forward to see a link expire without the worker escalating anything. */
let apiNow: Date | null = null;

beforeAll(async () => {
  t = await createTestDatabase({ max: 30 });
  seed = await seedWorkspace(t.db);
  smtp = await startMailCatcher({
    // A recipient listed in smtpOutage is refused with a temporary error that many times.
    refuse: ({ to }) =>
      to.some((address) => {
        const left = smtpOutage.get(address) ?? 0;
        if (left > 0) smtpOutage.set(address, left - 1);
        return left > 0;
      }),
  });

  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  workerRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  app = await buildTestApp(t.db, redis, {
    deps: { db: t.db, now: () => apiNow ?? new Date() },
    publicUrl: baseUrl,
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
  });
  await app.listen({ port, host: "127.0.0.1" });

  const mailConfig = mailConfigFromEnv({
    SMTP_URL: smtp.url,
    MAIL_FROM: "Outcome Runtime <gates@acme.example>",
    OUTCOME_RUNTIME_PUBLIC_URL: baseUrl,
  });
  worker = await startWorker({
    db: t.db,
    redis: workerRedis,
    connectors: connectorProvider({ db: t.db, access: sourceAccessFromEnv({}) }),
    logger: pino({ level: "silent" }),
    prefix,
    mailer: createMailer(mailConfig, () => {}),
    links: { publicUrl: mailConfig.publicUrl },
    outboxIntervalMs: 100,
    reconcileIntervalMs: 60_000,
  });
});

afterAll(async () => {
  await worker?.close();
  await app?.close();
  await smtp?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  workerRedis?.disconnect();
  await t?.drop();
});

// ---------------------------------------------------------------------------
// Helpers on the mail and the links.

interface Link {
  readonly url: string;
  readonly gateId: string;
  readonly decision: string;
  readonly to: string;
  readonly token: string;
}

/** Every decision link of a parsed message, read from its plain-text body. */
function linksOf(mail: ParsedMail): Link[] {
  const found = (mail.text ?? "").match(/https?:\/\/\S+\/email\/gates\/\S+/g) ?? [];
  return [...new Set(found)].map((raw) => {
    const url = new URL(raw);
    const [, , , gateId, decision] = url.pathname.split("/");
    return {
      url: raw,
      gateId: gateId ?? "",
      decision: decision ?? "",
      to: url.searchParams.get("to") ?? "",
      token: url.searchParams.get("token") ?? "",
    };
  });
}

function withParams(link: Link, change: { to?: string; token?: string }): string {
  const url = new URL(link.url);
  if (change.to !== undefined) url.searchParams.set("to", change.to);
  if (change.token !== undefined) url.searchParams.set("token", change.token);
  return url.toString();
}

function mailFor(recipient: string, gateId: string): ParsedMail | undefined {
  return smtp.received.find((m) => m.to.includes(recipient) && linksOf(m.mail).some((l) => l.gateId === gateId))?.mail;
}

async function post(
  url: string,
  form: Record<string, string | string[]> = {},
): Promise<{ status: number; html: string }> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const value of [v].flat()) body.append(k, value);
  const response = await fetch(url, { method: "POST", body, redirect: "manual" });
  return { status: response.status, html: await response.text() };
}

/** The fields a browser would submit from a confirmation page: hidden inputs and ticked checkboxes. */
function formFields(html: string): Record<string, string[]> {
  const fields: Record<string, string[]> = {};
  for (const tag of html.match(/<input\b[^>]*>/g) ?? []) {
    const name = /name="([^"]*)"/.exec(tag)?.[1];
    const value = /value="([^"]*)"/.exec(tag)?.[1];
    const kind = /type="([^"]*)"/.exec(tag)?.[1];
    if (name === undefined || value === undefined) continue;
    if (kind === "checkbox" && !/\bchecked\b/.test(tag)) continue;
    fields[name] = [...(fields[name] ?? []), value];
  }
  return fields;
}

/** Open the link as a browser does, then submit its form with `change` applied to the fields. */
async function openAndSubmit(
  url: string,
  change: Record<string, string | string[]> = {},
): Promise<{ status: number; html: string }> {
  const page = await get(url);
  if (page.status !== 200) return { status: page.status, html: page.html };
  return post(url, { ...formFields(page.html), ...change });
}

async function get(url: string): Promise<{ status: number; html: string; headers: Headers }> {
  const response = await fetch(url, { redirect: "manual" });
  return { status: response.status, html: await response.text(), headers: response.headers };
}

async function gateState(gateId: string) {
  const gate = await gateRows.findGateById(t.db, gateId);
  const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: gateId, action: "gate.decided" });
  return { gate, decisions: events.length };
}

async function activeOutcome(id: string, replacements: readonly [string, string][] = []): Promise<void> {
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant(id, replacements) });
  await transitionOutcome({ db: t.db }, seed.admin, id, "activate", null);
}

function hypothesis(title: string) {
  return { title, statement: `${title} lowers checkout abandonment`, touchedPaths: ["apps/web/src/checkout/x.ts"] };
}

// ---------------------------------------------------------------------------

describe("deciding a gate from an email", () => {
  it("approves through the confirmation page's POST, once, with channel email and an audit event", async () => {
    await activeOutcome("email-approve");
    const first = await proposeExperiment({ db: t.db }, seed.admin, "email-approve", hypothesis("Express pay"));
    const second = await proposeExperiment({ db: t.db }, seed.admin, "email-approve", hypothesis("Guest checkout"));
    const gateId = first.gate.id;
    expect(second.gate.id).toBe(gateId);

    const mail = await waitFor("the gate email to maya", () => mailFor(MAYA, gateId));
    expect(mail.subject).toContain("Decision needed");
    expect(mail.from?.text).toContain("gates@acme.example");
    expect(mail.headers.get("auto-submitted")).toBe("auto-generated");
    // The context package travels in the mail: both hypotheses, in HTML and text.
    for (const body of [mail.html || "", mail.text ?? ""]) {
      expect(body).toContain("Express pay");
      expect(body).toContain("Guest checkout");
    }
    const links = linksOf(mail);
    expect(links.map((l) => l.decision).sort()).toEqual(["approve", "reject"]);
    for (const l of links) {
      expect(l.to).toBe(MAYA);
      expect(l.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
      expect(mail.html).toContain(l.token);
    }
    // Only hashes are stored.
    const stored = await gateMail.listTokensOfGate(t.db, gateId);
    expect(stored).toHaveLength(2);
    const approve = links.find((l) => l.decision === "approve")!;
    const reject = links.find((l) => l.decision === "reject")!;
    const hashes = await t.db.selectFrom("gate_tokens").select("token_hash").where("gate_id", "=", gateId).execute();
    expect(hashes.map((h) => h.token_hash).join(" ")).not.toContain(approve.token);

    // A GET (what a mail scanner does) shows the confirmation page and changes nothing.
    for (let i = 0; i < 3; i += 1) {
      const page = await get(approve.url);
      expect(page.status).toBe(200);
      expect(page.html).toContain("<form");
      expect(page.html).toContain('method="post"');
      expect(page.html).not.toContain("<script");
      expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(page.headers.get("referrer-policy")).toBe("no-referrer");
      expect(page.headers.get("cache-control")).toBe("no-store");
    }
    await get(reject.url);
    expect(await gateState(gateId)).toMatchObject({ gate: { status: "pending" }, decisions: 0 });
    expect((await gateMail.listTokensOfGate(t.db, gateId)).every((tk) => tk.usedAt === null)).toBe(true);

    // A tampered token, the token of another recipient, a tampered decision: rejected, nothing changes.
    const flipped = approve.token.slice(0, -1) + (approve.token.endsWith("A") ? "B" : "A");
    for (const url of [withParams(approve, { token: flipped }), approve.url.replace("/approve?", "/reject?")]) {
      expect((await get(url)).status).toBe(404);
      const refused = await post(url, { reason: "tampered" });
      expect(refused.status).toBe(404);
      expect(refused.html).toContain("not valid");
    }
    const otherRecipient = withParams(approve, { to: LEAD });
    expect((await get(otherRecipient)).status).toBe(403);
    const wrong = await post(otherRecipient, { reason: "not mine" });
    expect(wrong.status).toBe(403);
    expect(wrong.html).toContain("someone else");
    // An expired token: the API's clock past the SLA (48 h).
    apiNow = new Date(Date.now() + 49 * 3600_000);
    try {
      const expired = await post(approve.url, { reason: "late" });
      expect(expired.status).toBe(410);
      expect(expired.html).toContain("expired");
    } finally {
      apiNow = null;
    }
    expect(await gateState(gateId)).toMatchObject({ gate: { status: "pending" }, decisions: 0 });

    // A hypothesis that joins the review after the page was opened is never decided unseen.
    const stalePage = await get(approve.url);
    const third = await proposeExperiment({ db: t.db }, seed.admin, "email-approve", hypothesis("Saved carts"));
    expect(third.gate.id).toBe(gateId);
    const stale = await post(approve.url, { ...formFields(stalePage.html), reason: "stale page" });
    expect(stale.status).toBe(409);
    expect(stale.html).toContain("Saved carts");
    expect(await gateState(gateId)).toMatchObject({ gate: { status: "pending" }, decisions: 0 });

    // The POST decides: approve the first hypothesis, untick the others (rejected).
    const decided = await openAndSubmit(approve.url, { reason: "express pay first", approve: [first.experiment.id] });
    expect(decided.status).toBe(200);
    expect(decided.html).toContain("Express pay");
    const after = await gateState(gateId);
    expect(after.decisions).toBe(1);
    expect(after.gate).toMatchObject({
      status: "approved",
      decision: {
        decision: "approve",
        decidedBy: MAYA,
        channel: "email",
        reason: "express pay first",
        detail: { approved: [first.experiment.id], rejected: [second.experiment.id, third.experiment.id] },
      },
    });
    const [event] = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: gateId, action: "gate.decided" });
    expect(event).toMatchObject({ channel: "email", actor: { name: MAYA, role: "approver" } });
    expect((await getExperiment({ db: t.db }, seed.admin, first.experiment.id)).experiment.state).toBe("approved");
    expect((await getExperiment({ db: t.db }, seed.admin, second.experiment.id)).experiment.state).toBe("rejected");
    const tokens = await gateMail.listTokensOfGate(t.db, gateId);
    expect(tokens.filter((tk) => tk.usedAt !== null)).toHaveLength(1);
    expect(tokens.find((tk) => tk.decision === "reject")?.revokedReason).toBe("decided");

    // A second click, and the other link: "already decided", and nothing changes.
    for (const url of [approve.url, reject.url]) {
      const again = await post(url, { reason: "again" });
      expect(again.status).toBe(409);
      expect(again.html).toContain("already decided");
      expect(again.html).toContain(MAYA);
      expect((await get(url)).status).toBe(409);
    }
    expect(await gateState(gateId)).toMatchObject({ gate: { status: "approved" }, decisions: 1 });
    // The webhook outbox says it too, once.
    const hooks = await t.db
      .selectFrom("webhook_deliveries")
      .select(["event_type", "payload"])
      .where("event_type", "in", ["gate.opened", "gate.decided"])
      .execute();
    const ofGate = hooks.filter((h) => (h.payload as { data: { gate: { id: string } } }).data.gate.id === gateId);
    expect(ofGate.map((h) => h.event_type).sort()).toEqual(["gate.decided", "gate.opened"]);
  });

  it("applies one of 20 concurrent POSTs of valid links for opposite decisions", async () => {
    const people = Array.from({ length: 10 }, (_, i) => `pm${i}@acme.example`);
    await activeOutcome("email-race", [
      [
        "assignees: [maya.pm@acme.example]\n    backup: lead@acme.example\n    sla: 48h",
        `assignees: [${people.join(", ")}]\n    sla: 48h`,
      ],
    ]);
    const proposed = await proposeExperiment({ db: t.db }, seed.admin, "email-race", hypothesis("One click"));
    const gateId = proposed.gate.id;
    const links = (
      await waitFor("ten emails", () => {
        const mails = people.map((p) => mailFor(p, gateId));
        return mails.every((m) => m !== undefined) ? mails : undefined;
      })
    ).flatMap((m) => linksOf(m!));
    expect(links).toHaveLength(20);
    expect(links.filter((l) => l.decision === "approve")).toHaveLength(10);

    const results = await Promise.all(
      // Every page opened first, then the 20 POSTs at once.
      (await Promise.all(links.map((l) => get(l.url)))).map((page, i) => {
        expect(page.status).toBe(200);
        const l = links[i]!;
        return post(l.url, { ...formFields(page.html), reason: `${l.to} says ${l.decision}` });
      }),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);

    const { gate, decisions } = await gateState(gateId);
    expect(decisions).toBe(1);
    const winner = links[results.findIndex((r) => r.status === 200)]!;
    expect(gate?.decision).toMatchObject({ decision: winner.decision, decidedBy: winner.to, channel: "email" });
    const experiment = (await getExperiment({ db: t.db }, seed.admin, proposed.experiment.id)).experiment;
    expect(experiment.state).toBe(winner.decision === "approve" ? "approved" : "rejected");
    const moves = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: proposed.experiment.id });
    expect(moves.filter((e) => e.action === "experiment.approved" || e.action === "experiment.rejected")).toHaveLength(
      1,
    );
    const tokens = await gateMail.listTokensOfGate(t.db, gateId);
    expect(tokens.filter((tk) => tk.usedAt !== null)).toHaveLength(1);
    expect(tokens.filter((tk) => tk.revokedReason === "decided")).toHaveLength(19);
  });

  it("retries an email the SMTP server refused for a while, sends it once, and only its links work", async () => {
    const person = "flaky.inbox@acme.example";
    await activeOutcome("email-retry", [
      [
        "assignees: [maya.pm@acme.example]\n    backup: lead@acme.example\n    sla: 48h",
        `assignees: [${person}]\n    sla: 48h`,
      ],
    ]);
    smtpOutage.set(person, 2);
    const proposed = await proposeExperiment({ db: t.db }, seed.admin, "email-retry", hypothesis("Retry me"));
    const mail = await waitFor("the email after two refusals", () => mailFor(person, proposed.gate.id), {
      timeoutMs: 30_000,
    });
    expect(smtpOutage.get(person)).toBe(0);
    // The worker marks it sent right after the SMTP server accepts it.
    const notification = await waitFor("the email marked sent", async () => {
      const [row] = await gateMail.listNotificationsOfGate(t.db, proposed.gate.id);
      return row?.status === "sent" ? row : undefined;
    });
    expect(notification).toMatchObject({ recipient: person, status: "sent", attempts: 3 });
    // Each attempt issued links; the ones that never arrived are superseded by the ones that did.
    const tokens = await gateMail.listTokensOfGate(t.db, proposed.gate.id);
    expect(tokens).toHaveLength(6);
    expect(tokens.filter((tk) => tk.revokedReason === "superseded")).toHaveLength(4);
    for (const link of linksOf(mail)) expect((await get(link.url)).status).toBe(200);
    await sleep(500); // the sweep runs every 100 ms: a second copy would have gone by now
    expect(smtp.received.filter((m) => linksOf(m.mail).some((l) => l.gateId === proposed.gate.id))).toHaveLength(1);
    expect(smtp.refused.filter((m) => m.to.includes(person))).toHaveLength(2);
  });

  it("asks for the dashboard before resuming a paused experiment, until the workspace allows it by email", async () => {
    await activeOutcome("email-resume");
    const proposed = await proposeExperiment({ db: t.db }, seed.admin, "email-resume", hypothesis("Resumable"));
    await decideGate({ db: t.db }, seed.admin, proposed.gate.id, { decision: "approve" });
    await transitionExperiment({ db: t.db }, seed.admin, proposed.experiment.id, {
      action: "claim",
      claimedBy: "cursor",
    });
    const built = await transitionExperiment({ db: t.db }, seed.admin, proposed.experiment.id, {
      action: "report_built",
      changedPaths: ["apps/web/src/checkout/x.ts"],
      build: { summary: "One-tap resume", pullRequestUrl: "https://git.example/pr/7", flagKey: "resumable" },
    });
    await decideGate({ db: t.db }, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
    const paused = await transitionExperiment({ db: t.db }, seed.admin, proposed.experiment.id, {
      action: "pause",
      reason: "error spike",
    });
    const review = paused.openedGates[0]!;
    expect(review.kind).toBe("analysis_review");

    const mail = await waitFor("the review email", () => mailFor(MAYA, review.id));
    const links = linksOf(mail);
    expect(links.map((l) => l.decision).sort()).toEqual(["resume", "roll_back"]);
    const resume = links.find((l) => l.decision === "resume")!;

    for (const page of [await get(resume.url), await post(resume.url, { reason: "fixed" })]) {
      expect(page.status).toBe(403);
      expect(page.html).toContain("dashboard");
      expect(page.html).not.toContain("<form");
    }
    expect(await gateState(review.id)).toMatchObject({ gate: { status: "pending" }, decisions: 0 });
    expect((await getExperiment({ db: t.db }, seed.admin, proposed.experiment.id)).experiment.state).toBe("paused");

    // An admin lifts the rule; the same link now decides.
    const patched = await app.inject({
      method: "PATCH",
      url: "/v1/workspace/settings",
      headers: { authorization: `Bearer ${seed.adminKey}` },
      payload: { sessionRequiredDecisions: [] },
    });
    expect(patched.statusCode).toBe(200);
    expect((await get(resume.url)).status).toBe(200);
    const decided = await post(resume.url, { reason: "fixed the spike" });
    expect(decided.status).toBe(200);
    expect((await getExperiment({ db: t.db }, seed.admin, proposed.experiment.id)).experiment.state).toBe("running");
    expect(await gateState(review.id)).toMatchObject({
      gate: { status: "approved", decision: { decision: "resume", channel: "email" } },
      decisions: 1,
    });
  });
});
