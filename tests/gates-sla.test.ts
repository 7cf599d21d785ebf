/**
 * The SLA of a gate, end to end with a controllable clock: the worker (in
 * process, on real Postgres and Redis) sends the gate's emails through a real
 * SMTP server (smtp-server, in this process, parsed back with mailparser),
 * reminds the assignees at half the SLA and escalates to the backup (or the
 * owner) at its end, or expires the gate when its policy says so. Workers are
 * restarted between the steps and jobs are duplicated: every email goes out
 * exactly once.
 *
 * The clock (`now`) is shared by the use cases and the worker; BullMQ's own
 * delays run on real time, so a step that comes due "by the clock" is run by
 * the worker's sweep (`dispatch()`), or by promoting its delayed job as the
 * delay elapsing would.
 */
import { randomBytes } from "node:crypto";
import { audit, gateMail, signals } from "@outcome-runtime/db";
import { createMailer, type Mailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type CaughtMail, type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import {
  applyOutcome,
  type Caller,
  connectorProvider,
  decideGate,
  type Gate,
  gateEmailJobId,
  gateSlaJobId,
  getGate,
  hashDecisionToken,
  JOB,
  proposeExperiment,
  remindGate,
  sourceAccessFromEnv,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  codeOf,
  createTestDatabase,
  deleteRedisKeys,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
  waitFor,
} from "@outcome-runtime/testing";
import { type RunningWorker, startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import { Redis } from "ioredis";
import type { ParsedMail } from "mailparser";
import { afterEach, describe, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const PUBLIC_URL = "https://outcomes.test.example";
const MAYA = "maya.pm@acme.example";
const LEAD = "lead@acme.example";
const HOUR = 3600 * 1000;
const MINUTE = 60 * 1000;
/** A Monday morning; the SLA of the portfolio review is 48 h (outcome.example.yaml). */
const T0 = new Date("2027-01-04T09:00:00Z");
const at = (ms: number) => new Date(T0.getTime() + ms);

// Subjects as packages/notify/templates/gate-email.subject.hbs writes them.
const OPENED_SUBJECT = '[Outcome Runtime] Decision needed: portfolio review for "Reduce checkout abandonment"';
const REMINDER_SUBJECT = `[Outcome Runtime] Reminder: ${OPENED_SUBJECT.slice("[Outcome Runtime] ".length)}`;
const ESCALATED_SUBJECT = `[Outcome Runtime] Escalated: ${OPENED_SUBJECT.slice("[Outcome Runtime] ".length)}`;

// ---------------------------------------------------------------------------
// Per-test resources, released in afterEach whatever happened.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

// ---------------------------------------------------------------------------
// The SMTP server the gate emails arrive at.

type Received = CaughtMail;

interface TestSmtp extends MailCatcher {
  /** While true, reminders are refused with 451 (a mail server having a bad minute). */
  refuseReminders: boolean;
}

async function startSmtp(): Promise<TestSmtp> {
  const state = { refuseReminders: false };
  const catcher = await startMailCatcher({
    refuse: ({ mail }) => state.refuseReminders && mail.subject === REMINDER_SUBJECT,
  });
  cleanups.push(() => catcher.close());
  return Object.assign(state, catcher);
}

function subjects(smtp: TestSmtp): string[] {
  return smtp.received.map((r) => r.mail.subject ?? "");
}

function mailsWith(smtp: TestSmtp, subject: string): Received[] {
  return smtp.received.filter((r) => r.mail.subject === subject);
}

/** The decision links of an email's text part, by decision. */
function linksOf(mail: ParsedMail): Map<string, URL> {
  const urls = (mail.text ?? "").match(/https:\/\/outcomes\.test\.example\/email\/gates\/\S+/g) ?? [];
  return new Map(urls.map((u) => [new URL(u).pathname.split("/").at(-1) ?? "", new URL(u)]));
}

// ---------------------------------------------------------------------------
// The world of one test: database, workspace, clock, SMTP server, queue prefix.

interface World {
  readonly t: TestDatabase;
  readonly seed: Seeded;
  readonly deps: { db: TestDatabase["db"]; now: () => Date };
  readonly clock: { now: Date };
  readonly smtp: TestSmtp;
  readonly mailer: Mailer;
  readonly redis: Redis;
  readonly prefix: string;
  readonly warnings: string[];
}

/** A pino-shaped logger that keeps the worker's warnings for diagnostics (pino is the worker's dependency, not the root's). */
function collectingLogger(warnings: string[]): WorkerOptions["logger"] {
  const keep = (level: string) => (obj: unknown, msg?: string) => {
    warnings.push(`${level}: ${msg ?? ""} ${JSON.stringify(obj)}`);
  };
  const logger = {
    level: "warn",
    info: () => {},
    debug: () => {},
    trace: () => {},
    warn: keep("warn"),
    error: keep("error"),
    fatal: keep("fatal"),
    child: () => logger,
  };
  return logger as unknown as WorkerOptions["logger"];
}

async function createWorld(): Promise<World> {
  const t = await createTestDatabase({ max: 10 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `test-gates-${randomBytes(6).toString("hex")}`;
  cleanups.push(async () => {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
    await t.drop();
  });
  const smtp = await startSmtp();
  const mailer = createMailer(mailConfigFromEnv({ SMTP_URL: smtp.url, MAIL_FROM: "Acme Gates <gates@acme.example>" }));
  cleanups.push(async () => mailer.close());
  const clock = { now: T0 };
  return {
    t,
    seed: await seedWorkspace(t.db),
    deps: { db: t.db, now: () => clock.now },
    clock,
    smtp,
    mailer,
    redis,
    prefix,
    warnings: [],
  };
}

interface StartedWorker {
  readonly worker: RunningWorker;
  /** Close it (a restart's first half); safe to call twice. */
  close(): Promise<void>;
}

/** The worker as main.ts starts it, in process, on the world's clock; only explicit `dispatch()` calls sweep. */
async function startGateWorker(world: World): Promise<StartedWorker> {
  const connectors = connectorProvider({ db: world.t.db, access: sourceAccessFromEnv({}) });
  const worker = await startWorker({
    db: world.t.db,
    redis: world.redis,
    connectors,
    logger: collectingLogger(world.warnings),
    prefix: world.prefix,
    mailer: world.mailer,
    links: { publicUrl: PUBLIC_URL },
    now: world.deps.now,
    outboxIntervalMs: 0,
    reconcileIntervalMs: 3_600_000,
  });
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= worker.close().then(() => connectors.close());
    return closing;
  };
  cleanups.push(close);
  return { worker, close };
}

async function activeOutcome(world: World, slug: string, replacements: [string, string][] = []): Promise<void> {
  await applyOutcome(world.deps, world.seed.admin, { source: outcomeVariant(slug, replacements) });
  await transitionOutcome(world.deps, world.seed.admin, slug, "activate", null);
}

/** Propose a hypothesis at the current clock time: it opens the outcome's portfolio review. */
async function openPortfolioReview(world: World, slug: string): Promise<Gate> {
  const proposed = await proposeExperiment(world.deps, world.seed.admin, slug, {
    title: "Show the delivery date before payment",
    statement: "If we show the delivery date before payment, fewer shoppers abandon the checkout.",
  });
  expect(proposed.gateOpened).toBe(true);
  return proposed.gate;
}

function diagnostics(world: World): () => string {
  return () =>
    `received: ${JSON.stringify(subjects(world.smtp))}\nrefused: ${JSON.stringify(world.smtp.refused.map((r) => r.mail.subject))}\n` +
    `worker warnings:\n${world.warnings.slice(-20).join("\n")}`;
}

async function waitForMails(world: World, subject: string, count: number): Promise<Received[]> {
  return waitFor(
    `${count} email(s) "${subject}"`,
    async () => {
      const found = mailsWith(world.smtp, subject);
      return found.length >= count ? found : false;
    },
    { diagnostics: diagnostics(world) },
  );
}

/** Wait until no notify job waits or runs and no gate email is pending or being sent: nothing more can arrive. */
async function settle(world: World, worker: RunningWorker): Promise<void> {
  await waitFor(
    "the notify queue and the email outbox to settle",
    async () => {
      const counts = await worker.notifyQueue.getJobCounts("active", "waiting", "prioritized");
      if (Object.values(counts).some((n) => n > 0)) return false;
      // A far-future "stale before" lists every claim too: nothing pending, nothing mid-send.
      return (await gateMail.listOpenNotificationIds(world.t.db, new Date(8.64e15))).length === 0;
    },
    { diagnostics: diagnostics(world) },
  );
}

/** Wait until these notify jobs completed; returns their return values, in order. */
async function completedJobs(worker: RunningWorker, ids: readonly string[]): Promise<unknown[]> {
  return waitFor(`jobs ${ids.join(", ")} to complete`, async () => {
    const jobs = await Promise.all(ids.map((id) => worker.notifyQueue.getJob(id)));
    const states = await Promise.all(jobs.map((j) => j?.getState()));
    return states.every((s) => s === "completed") ? jobs.map((j) => j?.returnvalue) : false;
  });
}

/** Promote a delayed SLA job, as its delay elapsing would. */
async function promoteSlaJob(worker: RunningWorker, step: "reminder" | "expiry", gateId: string): Promise<unknown> {
  const job = await worker.notifyQueue.getJob(gateSlaJobId(step, gateId));
  expect(await job?.getState()).toBe("delayed");
  await job?.promote();
  const [result] = await completedJobs(worker, [gateSlaJobId(step, gateId)]);
  return result;
}

async function gateOf(world: World, gateId: string): Promise<Gate> {
  return (await getGate(world.deps, world.seed.admin, gateId)).gate;
}

async function notifications(world: World, gateId: string) {
  return gateMail.listNotificationsOfGate(world.t.db, gateId);
}

async function auditOf(world: World, gateId: string, action: string) {
  return audit.listAuditEvents(world.t.db, world.seed.workspaceId, { subjectId: gateId, action });
}

/** Gate webhooks in the outbox (no receiver is configured, so every one stays pending). */
async function webhooksOf(world: World, gateId: string, eventType: string) {
  const ids = await signals.listPendingWebhookIds(world.t.db, new Date(8.64e15), 10_000);
  const rows = await Promise.all(ids.map((id) => signals.findWebhook(world.t.db, id)));
  return rows.filter(
    (w): w is signals.WebhookRecord =>
      w !== null &&
      w.eventType === eventType &&
      (w.payload as { data: { gate: { id: string } } }).data.gate.id === gateId,
  );
}

async function callerNamed(world: World, name: string): Promise<Caller> {
  return (await world.seed.key(name, "approver")).caller;
}

/** The token of each decision link of an email, with its stored row. */
async function tokensOfMail(world: World, mail: ParsedMail) {
  const links = linksOf(mail);
  return Promise.all(
    [...links].map(async ([decision, url]) => ({
      decision,
      to: url.searchParams.get("to"),
      row: await gateMail.findTokenByHash(world.t.db, hashDecisionToken(url.searchParams.get("token") ?? "")),
    })),
  );
}

// ---------------------------------------------------------------------------

describe("the SLA of a gate", () => {
  it("reminds at half the SLA and escalates at its end, once each, across worker restarts and duplicate jobs", async () => {
    const world = await createWorld();
    await activeOutcome(world, "sla-escalate");
    const gate = await openPortfolioReview(world, "sla-escalate");
    expect(gate).toMatchObject({
      kind: "portfolio_review",
      status: "pending",
      assignees: [MAYA],
      backup: LEAD,
      slaSeconds: 48 * 3600,
      onExpiry: "escalate",
      createdAt: T0,
      remindAt: at(24 * HOUR),
      dueAt: at(48 * HOUR),
      remindedAt: null,
      escalatedAt: null,
      escalatedTo: null,
    });

    // Worker #1: the gate's email to its assignee, and its SLA steps as delayed jobs.
    const first = await startGateWorker(world);
    expect(await first.worker.dispatch()).toEqual({
      emails: 1,
      webhooks: 0,
      scheduled: 1,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    const [opened] = await waitForMails(world, OPENED_SUBJECT, 1);
    await settle(world, first.worker);
    expect(opened?.to).toEqual([MAYA]);
    expect(opened?.mail.from?.value).toEqual([{ address: "gates@acme.example", name: "Acme Gates" }]);
    expect(opened?.mail.headers.get("x-outcome-runtime-gate")).toBe(gate.id);
    expect(opened?.mail.text).toContain("DECISION NEEDED: portfolio review");
    expect(opened?.mail.text).toContain(`${PUBLIC_URL}/gates/${gate.id}`);
    const openedLinks = linksOf(opened!.mail);
    expect([...openedLinks.keys()]).toEqual(["approve", "reject"]);
    for (const [decision, url] of openedLinks) {
      expect(`${url.origin}${url.pathname}`).toBe(`${PUBLIC_URL}/email/gates/${gate.id}/${decision}`);
      expect(url.searchParams.get("to")).toBe(MAYA);
    }
    for (const token of await tokensOfMail(world, opened!.mail)) {
      expect(token.row).toMatchObject({ gateId: gate.id, recipient: MAYA, revokedAt: null, expiresAt: gate.dueAt });
    }

    for (const [step, delay, name] of [
      ["reminder", 24 * HOUR, JOB.gateReminder],
      ["expiry", 48 * HOUR, JOB.gateExpiry],
    ] as const) {
      const job = await first.worker.notifyQueue.getJob(gateSlaJobId(step, gate.id));
      expect(job?.id).toBe(`gate-${step}-${gate.id}`);
      expect(job?.name).toBe(name);
      expect(job?.data).toEqual({ gateId: gate.id });
      expect(await job?.getState()).toBe("delayed");
      expect(job?.delay).toBe(delay);
    }
    // A second sweep at the same time adds nothing.
    expect(await first.worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    expect((await gateOf(world, gate.id)).remindedAt).toBeNull();

    // Half the SLA has passed. The sweep runs the reminder now; a duplicate job of it runs alongside.
    // The mail server refuses the reminder for now, so worker #1 stops with the reminder recorded but unsent.
    world.clock.now = at(24 * HOUR + MINUTE);
    world.smtp.refuseReminders = true;
    expect(await first.worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 1,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    await first.worker.notifyQueue.add(JOB.gateReminder, { gateId: gate.id }, { jobId: "dup-1" });
    const reminderRuns = await completedJobs(first.worker, [gateSlaJobId("reminder", gate.id), "dup-1"]);
    const reminderRow = await waitFor(
      "the reminder's first delivery attempt to be refused",
      async () => {
        const row = (await notifications(world, gate.id)).find((n) => n.reason === "reminder");
        return row?.status === "pending" && row.attempts >= 1 && row.lastError !== null ? row : false;
      },
      { diagnostics: diagnostics(world) },
    );
    expect(reminderRuns).toEqual(
      expect.arrayContaining([
        { status: "done", step: "reminded", notifications: [reminderRow.id] },
        { status: "skipped", reason: "already reminded" },
      ]),
    );
    expect(reminderRow.lastError).toMatch(/451/);
    expect(world.smtp.refused.length).toBeGreaterThanOrEqual(1);
    expect(mailsWith(world.smtp, REMINDER_SUBJECT)).toEqual([]);

    // Restart: worker #1 goes away mid-retry; worker #2 takes over on the same queues, the mail server is back.
    await first.close();
    world.smtp.refuseReminders = false;
    const second = await startGateWorker(world);
    expect(await second.worker.dispatch()).toMatchObject({ scheduled: 0, due: 0 });
    // A duplicate job of the reminder's email, too: of the two, exactly one sends.
    await second.worker.notifyQueue.add(JOB.sendGateEmail, { notificationId: reminderRow.id }, { jobId: "dup-email" });
    const sends = await completedJobs(second.worker, [gateEmailJobId(reminderRow.id), "dup-email"]);
    expect(sends).toEqual(expect.arrayContaining([{ status: "already_done" }]));
    expect(sends.filter((s) => (s as { status: string }).status === "sent")).toHaveLength(1);
    await waitForMails(world, REMINDER_SUBJECT, 1);
    await settle(world, second.worker);
    // Once more, now that it is sent: nothing is due any more.
    expect(await second.worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    await settle(world, second.worker);

    const reminders = mailsWith(world.smtp, REMINDER_SUBJECT);
    expect(reminders).toHaveLength(1);
    const reminder = reminders[0]!;
    expect(reminder.to).toEqual([MAYA]);
    expect(reminder.mail.text).toContain("REMINDER: the portfolio review");
    expect(subjects(world.smtp)).toEqual([OPENED_SUBJECT, REMINDER_SUBJECT]);
    const afterReminder = await notifications(world, gate.id);
    expect(afterReminder.map((n) => [n.reason, n.recipient, n.status])).toEqual([
      ["opened", MAYA, "sent"],
      ["reminder", MAYA, "sent"],
    ]);
    const sentReminder = afterReminder[1]!;
    expect(sentReminder.attempts).toBeGreaterThanOrEqual(2);
    expect(sentReminder.messageId).toBe(`<${sentReminder.id}.${sentReminder.attempts}@outcome-runtime>`);
    expect(reminder.mail.messageId).toBe(sentReminder.messageId);
    expect(await gateOf(world, gate.id)).toMatchObject({
      status: "pending",
      remindedAt: at(24 * HOUR + MINUTE),
      escalatedAt: null,
    });
    const reminded = await auditOf(world, gate.id, "gate.reminded");
    expect(reminded).toHaveLength(1);
    expect(reminded[0]).toMatchObject({ channel: "system", after: { recipients: [MAYA] } });
    // The reminder's links supersede the first email's; only the reminder's work.
    for (const token of await tokensOfMail(world, opened!.mail)) {
      expect(token.row?.revokedReason).toBe("superseded");
    }
    const reminderTokens = await tokensOfMail(world, reminder.mail);
    expect(reminderTokens.map((k) => k.decision)).toEqual(["approve", "reject"]);
    for (const token of reminderTokens) {
      expect(token.row).toMatchObject({ notificationId: sentReminder.id, revokedAt: null, expiresAt: gate.dueAt });
    }
    const live = (await gateMail.listTokensOfGate(world.t.db, gate.id)).filter((k) => k.revokedAt === null);
    expect(live.map((k) => k.id).sort()).toEqual(reminderTokens.map((k) => k.row?.id).sort());

    // The SLA has run out: escalation to the backup, once, whatever duplicates and restarts come.
    world.clock.now = at(48 * HOUR + MINUTE);
    expect(await second.worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 1,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    await second.worker.notifyQueue.add(JOB.gateExpiry, { gateId: gate.id }, { jobId: "dup-2" });
    const expiryRuns = await completedJobs(second.worker, [gateSlaJobId("expiry", gate.id), "dup-2"]);
    const [escalation] = await waitForMails(world, ESCALATED_SUBJECT, 1);
    await settle(world, second.worker);
    const escalationRow = (await notifications(world, gate.id)).find((n) => n.reason === "escalation");
    expect(expiryRuns).toEqual(
      expect.arrayContaining([
        { status: "done", step: "escalated", notifications: [escalationRow?.id] },
        { status: "skipped", reason: "already escalated" },
      ]),
    );
    expect(escalation?.to).toEqual([LEAD]);
    expect(escalation?.mail.text).toMatch(
      /Not decided in time by maya\.pm@acme\.example; you are asked as the backup\./,
    );
    const escalated = await gateOf(world, gate.id);
    expect(escalated).toMatchObject({
      status: "pending",
      decision: null,
      escalatedAt: at(48 * HOUR + MINUTE),
      escalatedTo: LEAD,
    });
    const escalatedEvents = await auditOf(world, gate.id, "gate.escalated");
    expect(escalatedEvents).toHaveLength(1);
    expect(escalatedEvents[0]).toMatchObject({
      channel: "system",
      before: { escalatedTo: null },
      after: { escalatedTo: LEAD, from: [MAYA], backup: true },
    });
    const hooks = await webhooksOf(world, gate.id, "gate.escalated");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]?.payload).toMatchObject({
      type: "gate.escalated",
      data: { gate: { id: gate.id, status: "pending", escalated_to: LEAD, backup: LEAD }, decision: null },
    });
    // The backup's links last an SLA from the escalation.
    for (const token of await tokensOfMail(world, escalation!.mail)) {
      expect(token.to).toBe(LEAD);
      expect(token.row).toMatchObject({ recipient: LEAD, revokedAt: null, expiresAt: at(96 * HOUR + MINUTE) });
    }

    // Another restart, another sweep, another duplicate: still one escalation.
    await second.close();
    const third = await startGateWorker(world);
    expect(await third.worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    await third.worker.notifyQueue.add(JOB.gateExpiry, { gateId: gate.id }, { jobId: "dup-3" });
    expect(await completedJobs(third.worker, ["dup-3"])).toEqual([{ status: "skipped", reason: "already escalated" }]);
    await settle(world, third.worker);
    expect(subjects(world.smtp)).toEqual([OPENED_SUBJECT, REMINDER_SUBJECT, ESCALATED_SUBJECT]);
    expect((await notifications(world, gate.id)).map((n) => [n.reason, n.recipient, n.status])).toEqual([
      ["opened", MAYA, "sent"],
      ["reminder", MAYA, "sent"],
      ["escalation", LEAD, "sent"],
    ]);
    expect(await auditOf(world, gate.id, "gate.reminded")).toHaveLength(1);
    expect(await auditOf(world, gate.id, "gate.escalated")).toHaveLength(1);
    expect(await webhooksOf(world, gate.id, "gate.escalated")).toHaveLength(1);
  });

  it("expires the gate at the end of its SLA when its policy is `on_expiry: expire`", async () => {
    const world = await createWorld();
    await activeOutcome(world, "sla-expire", [
      [
        "    backup: lead@acme.example\n    sla: 48h",
        "    backup: lead@acme.example\n    sla: 48h\n    on_expiry: expire",
      ],
    ]);
    const gate = await openPortfolioReview(world, "sla-expire");
    expect(gate).toMatchObject({ onExpiry: "expire", backup: LEAD, dueAt: at(48 * HOUR) });

    const worker = (await startGateWorker(world)).worker;
    expect(await worker.dispatch()).toEqual({
      emails: 1,
      webhooks: 0,
      scheduled: 1,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    const [opened] = await waitForMails(world, OPENED_SUBJECT, 1);
    await settle(world, worker);

    // At half the SLA the reminder is recorded; its email is still in the outbox when the SLA runs out.
    world.clock.now = at(24 * HOUR + MINUTE);
    const reminded = await remindGate(world.deps, gate.id);
    expect(reminded).toMatchObject({ status: "done", step: "reminded" });
    world.clock.now = at(48 * HOUR + MINUTE);
    expect(await promoteSlaJob(worker, "expiry", gate.id)).toEqual({
      status: "done",
      step: "expired",
      notifications: [],
    });

    const expired = await gateOf(world, gate.id);
    expect(expired).toMatchObject({
      status: "expired",
      decision: { decision: "expire", decidedBy: "system", channel: "system", decidedAt: at(48 * HOUR + MINUTE) },
      escalatedAt: null,
      escalatedTo: null,
    });
    expect((await getGate(world.deps, world.seed.admin, gate.id)).options).toEqual([]);
    // Every link is dead, as `closed`; the unsent reminder is cancelled; no escalation.
    const tokens = await gateMail.listTokensOfGate(world.t.db, gate.id);
    expect(tokens).toHaveLength(2);
    for (const token of tokens) expect(token.revokedReason).toBe("closed");
    for (const token of await tokensOfMail(world, opened!.mail)) expect(token.row?.revokedReason).toBe("closed");
    expect((await notifications(world, gate.id)).map((n) => [n.reason, n.status, n.lastError])).toEqual([
      ["opened", "sent", null],
      ["reminder", "cancelled", "gate expired"],
    ]);
    const hooks = await webhooksOf(world, gate.id, "gate.expired");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]?.payload).toMatchObject({
      type: "gate.expired",
      data: { gate: { id: gate.id, status: "expired" }, decision: { decision: "expire", channel: "system" } },
    });
    expect(await webhooksOf(world, gate.id, "gate.escalated")).toEqual([]);
    expect(await auditOf(world, gate.id, "gate.expired")).toHaveLength(1);
    expect(await auditOf(world, gate.id, "gate.escalated")).toEqual([]);

    // Later sweeps and the leftover reminder job change nothing, and send nothing.
    expect(await worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    expect(await promoteSlaJob(worker, "reminder", gate.id)).toEqual({ status: "skipped", reason: "gate is expired" });
    await settle(world, worker);
    expect(subjects(world.smtp)).toEqual([OPENED_SUBJECT]);
    expect(await codeOf(decideGate(world.deps, await callerNamed(world, MAYA), gate.id, { decision: "approve" }))).toBe(
      "gate_already_decided",
    );
  });

  it("escalates to the outcome's owner when the gate has no backup", async () => {
    const world = await createWorld();
    const owner = "head.of.product@acme.example";
    await activeOutcome(world, "sla-owner", [
      [`owner: ${MAYA}`, `owner: ${owner}`],
      ["    backup: lead@acme.example\n    sla: 48h", "    sla: 48h"],
    ]);
    const gate = await openPortfolioReview(world, "sla-owner");
    expect(gate).toMatchObject({ assignees: [MAYA], backup: null });
    const ownerCaller = await callerNamed(world, owner);
    // Before the escalation the owner is nobody at this gate.
    expect(await codeOf(decideGate(world.deps, ownerCaller, gate.id, { decision: "approve" }))).toBe(
      "gate_not_assignee",
    );

    const worker = (await startGateWorker(world)).worker;
    expect(await worker.dispatch()).toEqual({
      emails: 1,
      webhooks: 0,
      scheduled: 1,
      due: 0,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    await waitForMails(world, OPENED_SUBJECT, 1);
    await settle(world, worker);

    // The clock jumps past the whole SLA (the worker was down): the late reminder is not sent, the expiry runs.
    world.clock.now = at(48 * HOUR + MINUTE);
    expect(await remindGate(world.deps, gate.id)).toMatchObject({ status: "skipped" });
    expect((await gateOf(world, gate.id)).remindedAt).toBeNull();
    expect(await worker.dispatch()).toEqual({
      emails: 0,
      webhooks: 0,
      scheduled: 0,
      due: 1,
      polls: 0,
      summaries: 0,
      embeddings: 0,
      flags: 0,
    });
    const [escalation] = await waitForMails(world, ESCALATED_SUBJECT, 1);
    await settle(world, worker);
    expect(escalation?.to).toEqual([owner]);
    expect(escalation?.mail.text).toMatch(
      /Not decided in time by maya\.pm@acme\.example; you are asked as the .*owner\./,
    );
    expect(await gateOf(world, gate.id)).toMatchObject({
      status: "pending",
      escalatedTo: owner,
      escalatedAt: at(48 * HOUR + MINUTE),
      remindedAt: null,
    });
    const events = await auditOf(world, gate.id, "gate.escalated");
    expect(events).toHaveLength(1);
    expect(events[0]?.after).toMatchObject({ escalatedTo: owner, backup: false });
    const hooks = await webhooksOf(world, gate.id, "gate.escalated");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]?.payload).toMatchObject({ data: { gate: { escalated_to: owner, backup: null } } });

    // The reminder's delayed job, should it fire now, sends nothing.
    expect(await promoteSlaJob(worker, "reminder", gate.id)).toEqual({
      status: "skipped",
      reason: "already escalated",
    });
    await settle(world, worker);
    expect(subjects(world.smtp)).toEqual([OPENED_SUBJECT, ESCALATED_SUBJECT]);
    expect((await notifications(world, gate.id)).map((n) => [n.reason, n.recipient, n.status])).toEqual([
      ["opened", MAYA, "sent"],
      ["escalation", owner, "sent"],
    ]);

    // Escalated to them, the owner may decide now; their links die with the decision.
    const decided = await decideGate(world.deps, ownerCaller, gate.id, { decision: "approve" });
    expect(decided.gate).toMatchObject({ status: "approved", decision: { decidedBy: owner } });
    for (const token of await tokensOfMail(world, escalation!.mail)) {
      expect(token.row?.revokedReason).toBe("decided");
    }
  });
});
