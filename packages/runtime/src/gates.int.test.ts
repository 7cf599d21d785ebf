/**
 * Human gates at the runtime level, on the real Postgres: portfolio reviews
 * decided item by item, the inbox of a person, the context package, the death
 * of a gate's email links and unsent emails when it is decided, workspace
 * settings, the learning a concluding analysis decision writes, and stale
 * decisions refused and audited once.
 */
import { randomUUID } from "node:crypto";
import { DomainError } from "@outcome-runtime/core";
import { audit, gateMail, learnings, signals } from "@outcome-runtime/db";
import { createMailer, type MailLog, mailConfigFromEnv } from "@outcome-runtime/notify";
import {
  codeOf,
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "./apply-outcome";
import type { Caller } from "./context";
import { decideGate, getGate, listGates, STALE_DECISION_ACTION } from "./decide-gate";
import { proposeExperiment, transitionExperiment } from "./experiments";
import { hashDecisionToken, sendGateNotification } from "./gate-mail";
import { handleGateExpiry } from "./gate-sla";
import { transitionOutcome } from "./outcomes";
import { getWorkspaceSettings, updateWorkspaceSettings } from "./workspace-settings";

let t: TestDatabase;
let seed: Seeded;
let maya: Caller;
const deps = () => ({ db: t.db });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  maya = (await seed.key("maya.pm@acme.example", "approver")).caller;
});
afterAll(async () => {
  await t.drop();
});

const PUBLIC_URL = "https://outcomes.test.example";

async function activeOutcome(db: TestDatabase, s: Seeded, id: string, replacements: [string, string][] = []) {
  const applied = await applyOutcome({ db: db.db }, s.admin, { source: outcomeVariant(id, replacements) });
  await transitionOutcome({ db: db.db }, s.admin, id, "activate", null);
  return applied.outcome;
}

const hypothesis = (title: string) => ({
  title,
  statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout, because the flow is shorter.`,
});

/** Propose, approve the portfolio, claim and report built: the experiment waits at its launch approval. */
async function builtExperiment(slug: string, title: string) {
  await activeOutcome(t, seed, slug);
  const p = await proposeExperiment(deps(), seed.admin, slug, hypothesis(title));
  await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
  await transitionExperiment(deps(), seed.admin, p.experiment.id, { action: "claim", claimedBy: "claude-code" });
  const built = await transitionExperiment(deps(), seed.admin, p.experiment.id, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  const launchGate = built.openedGates[0]!;
  expect(launchGate.kind).toBe("launch_approval");
  return { experiment: p.experiment, portfolioGate: p.gate, launchGate };
}

/** The webhooks of a gate in the outbox (no receiver is configured here, so every one stays pending). */
async function gateWebhooks(gateId: string, eventType: string) {
  const ids = await signals.listPendingWebhookIds(t.db, new Date("2100-01-01T00:00:00Z"), 100_000);
  const rows = await Promise.all(ids.map((id) => signals.findWebhook(t.db, id)));
  return rows.filter(
    (w): w is signals.WebhookRecord =>
      w !== null &&
      w.eventType === eventType &&
      (w.payload as { data: { gate: { id: string } } }).data.gate.id === gateId,
  );
}

async function domainErrorOf(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the call to fail with a DomainError");
}

describe("a portfolio review decided item by item", () => {
  it("approves some hypotheses and rejects the others in one decision, audited per experiment", async () => {
    await activeOutcome(t, seed, "items");
    const h1 = await proposeExperiment(deps(), seed.admin, "items", hypothesis("Show delivery date early"));
    const h2 = await proposeExperiment(deps(), seed.admin, "items", hypothesis("Guest checkout first"));
    const h3 = await proposeExperiment(deps(), seed.admin, "items", hypothesis("Trust badges"));
    const gateId = h1.gate.id;
    expect([h2.gate.id, h3.gate.id]).toEqual([gateId, gateId]);
    const [id1, id2, id3] = [h1.experiment.id, h2.experiment.id, h3.experiment.id];

    const decided = await decideGate(deps(), maya, gateId, {
      decision: "approve",
      reason: "two of three",
      hypotheses: { [id3]: "reject" },
    });
    expect(decided.gate.status).toBe("approved");
    expect(decided.gate.decision).toMatchObject({
      decision: "approve",
      reason: "two of three",
      decidedBy: "maya.pm@acme.example",
      channel: "api",
      detail: { approved: [id1, id2], rejected: [id3] },
    });
    expect(Object.fromEntries(decided.experiments.map((e) => [e.id, e.state]))).toEqual({
      [id1]: "approved",
      [id2]: "approved",
      [id3]: "rejected",
    });
    // Stored, not just returned.
    const stored = await getGate(deps(), seed.admin, gateId);
    expect(stored.gate.decision?.detail).toEqual({ approved: [id1, id2], rejected: [id3] });
    expect(stored.experiments.map((e) => [e.id, e.state])).toEqual([
      [id1, "approved"],
      [id2, "approved"],
      [id3, "rejected"],
    ]);
    expect(stored.options).toEqual([]);

    for (const [id, action, decision] of [
      [id1, "experiment.approved", "approve"],
      [id2, "experiment.approved", "approve"],
      [id3, "experiment.rejected", "reject"],
    ] as const) {
      const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: id });
      expect(events.map((e) => e.action)).toEqual([action, "experiment.proposed"]);
      expect(events[0]).toMatchObject({
        actor: { name: "maya.pm@acme.example" },
        channel: "api",
        before: { state: "proposed" },
        after: { state: decision === "approve" ? "approved" : "rejected", gateId, decision },
      });
    }
    const gateEvents = await audit.listAuditEvents(t.db, seed.workspaceId, {
      subjectId: gateId,
      action: "gate.decided",
    });
    expect(gateEvents).toHaveLength(1);
    expect(gateEvents[0]?.after).toMatchObject({
      status: "approved",
      decision: "approve",
      detail: { approved: [id1, id2], rejected: [id3] },
    });
    // Receivers of the webhook see the split too.
    const hooks = await gateWebhooks(gateId, "gate.decided");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]?.payload).toMatchObject({
      type: "gate.decided",
      data: { decision: { decision: "approve", detail: { approved: [id1, id2], rejected: [id3] } } },
    });
  });

  it("refuses per-item decisions that do not fit, and a refusal changes nothing", async () => {
    await activeOutcome(t, seed, "items-refused");
    const h1 = await proposeExperiment(deps(), seed.admin, "items-refused", hypothesis("Bigger pay button"));
    const h2 = await proposeExperiment(deps(), seed.admin, "items-refused", hypothesis("Fewer form fields"));
    const gateId = h1.gate.id;
    const [id1, id2] = [h1.experiment.id, h2.experiment.id];
    // An experiment of another outcome's review is as unknown here as a made-up id.
    const elsewhere = await builtExperiment("items-elsewhere", "Sticky summary");

    const withReject = await domainErrorOf(
      decideGate(deps(), maya, gateId, { decision: "reject", hypotheses: { [id1]: "approve" } }),
    );
    expect(withReject.code).toBe("invalid_decision");
    expect(withReject.details).toMatchObject({ field: "hypotheses" });

    const madeUp = randomUUID();
    const unknown = await domainErrorOf(
      decideGate(deps(), maya, gateId, { decision: "approve", hypotheses: { [madeUp]: "reject" } }),
    );
    expect(unknown.code).toBe("invalid_decision");
    expect(unknown.details).toMatchObject({ field: "hypotheses", unknown: [madeUp] });
    expect(unknown.message).toContain(madeUp);
    expect(
      await codeOf(
        decideGate(deps(), maya, gateId, {
          decision: "approve",
          hypotheses: { [id1]: "reject", [elsewhere.experiment.id]: "approve" },
        }),
      ),
    ).toBe("invalid_decision");

    const allRejected = await domainErrorOf(
      decideGate(deps(), maya, gateId, { decision: "approve", hypotheses: { [id1]: "reject", [id2]: "reject" } }),
    );
    expect(allRejected.code).toBe("invalid_decision");
    expect(allRejected.message).toMatch(/every hypothesis is rejected/);

    const onLaunch = await domainErrorOf(
      decideGate(deps(), maya, elsewhere.launchGate.id, {
        decision: "approve",
        hypotheses: { [elsewhere.experiment.id]: "approve" },
      }),
    );
    expect(onLaunch.code).toBe("invalid_decision");
    expect(onLaunch.message).toMatch(/only a portfolio_review/);

    // Nothing moved: both gates pending, both hypotheses proposed, no decision audited.
    const review = await getGate(deps(), seed.admin, gateId);
    expect(review.gate.status).toBe("pending");
    expect(review.experiments.map((e) => e.state)).toEqual(["proposed", "proposed"]);
    expect((await getGate(deps(), seed.admin, elsewhere.launchGate.id)).gate.status).toBe("pending");
    for (const id of [gateId, elsewhere.launchGate.id]) {
      expect(await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: id, action: "gate.decided" })).toEqual(
        [],
      );
    }
    // The gate still takes a plain decision afterwards.
    const decided = await decideGate(deps(), maya, gateId, { decision: "approve", hypotheses: { [id2]: "reject" } });
    expect(decided.experiments.map((e) => e.state)).toEqual(["approved", "rejected"]);
  });
});

describe("the inbox of a person", () => {
  // A database of its own: the inbox is the whole workspace's, not one outcome's.
  let own: TestDatabase;
  let s: Seeded;
  beforeAll(async () => {
    own = await createTestDatabase({ max: 5 });
    s = await seedWorkspace(own.db);
  });
  afterAll(async () => {
    await own.drop();
  });

  it("lists the pending gates a person may decide: assignee, backup or escalation target, case-insensitively", async () => {
    const d = { db: own.db };
    const ids = (page: { items: readonly { id: string }[] }) => page.items.map((g) => g.id);
    const otherReview: [string, string] = [
      "assignees: [maya.pm@acme.example]\n    backup: lead@acme.example\n    sla: 48h",
      // Stored as written: the match ignores case on both sides.
      "assignees: [Other.PM@acme.example]\n    backup: Lead@ACME.example\n    sla: 48h",
    ];
    const noBackupReview: [string, string] = [
      "assignees: [maya.pm@acme.example]\n    backup: lead@acme.example\n    sla: 48h",
      "assignees: [other.pm@acme.example]\n    sla: 48h",
    ];
    // Maya assigned, lead backup.
    await activeOutcome(own, s, "inbox-mine");
    const mine = (await proposeExperiment(d, s.admin, "inbox-mine", hypothesis("One-page checkout"))).gate;
    // Someone else assigned, lead backup.
    await activeOutcome(own, s, "inbox-lead", [otherReview]);
    const leads = (await proposeExperiment(d, s.admin, "inbox-lead", hypothesis("Saved carts"))).gate;
    expect(leads).toMatchObject({ assignees: ["Other.PM@acme.example"], backup: "Lead@ACME.example" });
    // Someone else assigned, no backup: the owner (maya) is the escalation target once the SLA ran out.
    await activeOutcome(own, s, "inbox-other", [noBackupReview]);
    const others = (await proposeExperiment(d, s.admin, "inbox-other", hypothesis("Express pay"))).gate;
    // Maya's, but decided.
    await activeOutcome(own, s, "inbox-done");
    const done = (await proposeExperiment(d, s.admin, "inbox-done", hypothesis("Coupon field"))).gate;
    await decideGate(d, s.admin, done.id, { decision: "reject" });

    const lead = (await s.key("lead@acme.example", "member")).caller;
    const leadShouting = (await s.key("Lead@ACME.example", "member")).caller;
    const stranger = (await s.key("stranger@acme.example", "approver")).caller;

    expect(ids(await listGates(d, stranger, { assignee: "maya.pm@acme.example", status: "pending" }))).toEqual([
      mine.id,
    ]);
    expect(ids(await listGates(d, stranger, { assignee: "MAYA.PM@Acme.Example", status: "pending" }))).toEqual([
      mine.id,
    ]);
    // Without the status filter her decided gate shows too (newest first).
    expect(ids(await listGates(d, stranger, { assignee: "maya.pm@acme.example" }))).toEqual([done.id, mine.id]);
    expect(ids(await listGates(d, lead, { assignee: "me", status: "pending" }))).toEqual([leads.id, mine.id]);
    expect(ids(await listGates(d, leadShouting, { assignee: "me", status: "pending" }))).toEqual([leads.id, mine.id]);
    expect(ids(await listGates(d, stranger, { assignee: "me", status: "pending" }))).toEqual([]);
    expect(ids(await listGates(d, stranger, { assignee: "other.pm@acme.example", status: "pending" }))).toEqual([
      others.id,
      leads.id,
    ]);
    // Every pending gate, unfiltered, for contrast.
    expect(ids(await listGates(d, stranger, { status: "pending" }))).toEqual([others.id, leads.id, mine.id]);

    // The SLA of the gate without a backup runs out: it escalates to the owner, whose inbox now holds it.
    const afterSla = new Date(others.dueAt.getTime() + 60_000);
    const escalated = await handleGateExpiry({ db: own.db, now: () => afterSla }, others.id);
    expect(escalated).toMatchObject({ status: "done", step: "escalated" });
    expect(ids(await listGates(d, stranger, { assignee: "maya.pm@acme.example", status: "pending" }))).toEqual([
      others.id,
      mine.id,
    ]);
  });
});

describe("the context package of a gate", () => {
  it("shows every hypothesis of a portfolio review, then the build report and arms at the launch approval", async () => {
    const outcome = await activeOutcome(t, seed, "ctx");
    const first = await proposeExperiment(deps(), seed.admin, "ctx", {
      ...hypothesis("Show delivery date early"),
      prediction: { direction: "decrease", effect: 0.04, relative: true },
      effort: "low",
      risk: "medium",
      touchedPaths: ["apps/web/src/checkout/Summary.tsx", "apps/web/src/components/cart/Total.tsx"],
    });
    const second = await proposeExperiment(deps(), seed.admin, "ctx", {
      ...hypothesis("Guest checkout first"),
      effort: "high",
      risk: "low",
    });

    const review = await getGate(deps(), maya, first.gate.id);
    expect(review.contextPackage).toEqual({
      kind: "portfolio_review",
      outcome: {
        id: outcome.id,
        slug: "ctx",
        name: "Reduce checkout abandonment",
        owner: "maya.pm@acme.example",
        target: expect.stringMatching(/^checkout_abandonment_rate\b.*\bdecrease\b/),
      },
      hypotheses: [
        {
          id: first.experiment.id,
          key: first.experiment.key,
          title: "Show delivery date early",
          statement: first.experiment.statement,
          prediction: { direction: "decrease", effect: 0.04, relative: true },
          effort: "low",
          risk: "medium",
          touchedPaths: ["apps/web/src/checkout/Summary.tsx", "apps/web/src/components/cart/Total.tsx"],
          state: "proposed",
          source: "human",
        },
        {
          id: second.experiment.id,
          key: second.experiment.key,
          title: "Guest checkout first",
          statement: second.experiment.statement,
          prediction: null,
          effort: "high",
          risk: "low",
          touchedPaths: [],
          state: "proposed",
          source: "human",
        },
      ],
    });
    expect(review.options.map((o) => [o.decision, o.label, o.tone])).toEqual([
      ["approve", "Approve", "primary"],
      ["reject", "Reject all", "danger"],
    ]);
    expect(review.experiments.map((e) => e.id)).toEqual([first.experiment.id, second.experiment.id]);

    await decideGate(deps(), maya, first.gate.id, {
      decision: "approve",
      hypotheses: { [second.experiment.id]: "reject" },
    });
    const decidedReview = await getGate(deps(), maya, first.gate.id);
    expect(decidedReview.options).toEqual([]);
    if (decidedReview.contextPackage.kind !== "portfolio_review") throw new Error("expected a portfolio review");
    expect(decidedReview.contextPackage.hypotheses.map((h) => h.state)).toEqual(["approved", "rejected"]);

    const agent = (await seed.key("claude-code", "agent")).caller;
    await transitionExperiment(deps(), agent, first.experiment.id, { action: "claim" });
    const built = await transitionExperiment(deps(), agent, first.experiment.id, {
      action: "report_built",
      changedPaths: ["apps/web/src/checkout/Summary.tsx"],
      build: {
        summary: "Delivery date under the basket total",
        pullRequestUrl: "https://git.acme.example/web/pull/812",
        flagKey: "checkout-delivery-date",
      },
    });
    const launchGate = built.openedGates[0]!;
    const launch = await getGate(deps(), maya, launchGate.id, { publicUrl: PUBLIC_URL });
    expect(launch.contextPackage).toEqual({
      kind: "launch_approval",
      outcome: expect.objectContaining({ id: outcome.id, slug: "ctx" }),
      experiment: {
        id: first.experiment.id,
        key: first.experiment.key,
        title: "Show delivery date early",
        statement: first.experiment.statement,
        state: "built",
      },
      build: {
        summary: "Delivery date under the basket total",
        pullRequestUrl: "https://git.acme.example/web/pull/812",
        changedPaths: ["apps/web/src/checkout/Summary.tsx"],
        flagKey: "checkout-delivery-date",
        reportedBy: "claude-code",
        reportedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
      arms: [
        { name: "control", weight: 0.5 },
        { name: "treatment", weight: 0.5 },
      ],
    });
    expect(launch.options.map((o) => [o.decision, o.label])).toEqual([
      ["approve", "Launch"],
      ["reject", "Send back"],
    ]);
    expect(launch.experiments.map((e) => e.state)).toEqual(["built"]);

    expect(await codeOf(getGate(deps(), maya, randomUUID()))).toBe("not_found");
    expect(await codeOf(getGate(deps(), maya, "not-a-uuid"))).toBe("not_found");
  });
});

describe("deciding a gate kills its email links and unsent emails", () => {
  /** A mailer in log mode (MAIL_LOG_LINKS): real tokens are issued, the links land in `logged`. */
  function logMailer() {
    const logged: { to: string; subject: string; links: { label: string; url: string }[] }[] = [];
    const log: MailLog = (fields) => logged.push(fields as (typeof logged)[number]);
    return { mailer: createMailer(mailConfigFromEnv({ MAIL_LOG_LINKS: "true" }), log), logged };
  }

  it("revokes every token as `decided`, cancels the pending emails and records the gate.decided webhook", async () => {
    const { mailer, logged } = logMailer();
    const mailDeps = { db: t.db, mailer, links: { publicUrl: PUBLIC_URL } };

    // The portfolio review: its email to maya goes out (logged), with one link per decision.
    await activeOutcome(t, seed, "tokens");
    const p = await proposeExperiment(deps(), seed.admin, "tokens", hypothesis("Address autocomplete"));
    const [opened] = await gateMail.listNotificationsOfGate(t.db, p.gate.id);
    expect(opened).toMatchObject({ reason: "opened", recipient: "maya.pm@acme.example", status: "pending" });
    expect(await sendGateNotification(mailDeps, opened!.id)).toEqual({ status: "logged" });
    expect(logged).toHaveLength(1);
    expect(logged[0]?.to).toBe("maya.pm@acme.example");
    expect(logged[0]?.subject).toBe(
      '[Outcome Runtime] Decision needed: portfolio review for "Reduce checkout abandonment"',
    );
    expect(logged[0]?.links.map((l) => l.label)).toEqual(["Approve", "Reject all"]);
    const linkTokens = logged[0]!.links.map((l) => {
      const url = new URL(l.url);
      expect(`${url.origin}${url.pathname}`).toMatch(
        new RegExp(`^${PUBLIC_URL}/email/gates/${p.gate.id}/(approve|reject)$`),
      );
      expect(url.searchParams.get("to")).toBe("maya.pm@acme.example");
      return url.searchParams.get("token") ?? "";
    });
    // Only the hashes are stored; each link's token finds its live row.
    for (const token of linkTokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(await gateMail.findTokenByHash(t.db, hashDecisionToken(token))).toMatchObject({
        gateId: p.gate.id,
        notificationId: opened!.id,
        revokedAt: null,
        usedAt: null,
        expiresAt: p.gate.dueAt,
      });
    }
    expect((await gateMail.listTokensOfGate(t.db, p.gate.id)).map((k) => k.decision)).toEqual(["approve", "reject"]);

    await decideGate(deps(), maya, p.gate.id, { decision: "approve" });
    const portfolioTokens = await gateMail.listTokensOfGate(t.db, p.gate.id);
    expect(portfolioTokens).toHaveLength(2);
    for (const token of portfolioTokens) {
      expect(token).toMatchObject({ revokedReason: "decided", usedAt: null });
      expect(token.revokedAt).toBeInstanceOf(Date);
    }

    // The launch approval has two assignees: maya's email goes out, eng.lead's is still unsent when maya decides.
    await transitionExperiment(deps(), seed.admin, p.experiment.id, { action: "claim", claimedBy: "cursor" });
    const built = await transitionExperiment(deps(), seed.admin, p.experiment.id, {
      action: "report_built",
      changedPaths: [],
    });
    const launchGate = built.openedGates[0]!;
    const launchMails = await gateMail.listNotificationsOfGate(t.db, launchGate.id);
    expect(launchMails.map((n) => [n.recipient, n.status])).toEqual([
      ["eng.lead@acme.example", "pending"],
      ["maya.pm@acme.example", "pending"],
    ]);
    const mayaMail = launchMails.find((n) => n.recipient === "maya.pm@acme.example")!;
    const engMail = launchMails.find((n) => n.recipient === "eng.lead@acme.example")!;
    expect(await sendGateNotification(mailDeps, mayaMail.id)).toEqual({ status: "logged" });
    expect((await gateMail.listTokensOfGate(t.db, launchGate.id)).map((k) => [k.decision, k.revokedAt])).toEqual([
      ["approve", null],
      ["reject", null],
    ]);

    const decided = await decideGate(deps(), maya, launchGate.id, { decision: "reject", reason: "copy is wrong" });
    expect(decided.gate.status).toBe("rejected");
    for (const token of await gateMail.listTokensOfGate(t.db, launchGate.id)) {
      expect(token.revokedReason).toBe("decided");
    }
    const after = await gateMail.listNotificationsOfGate(t.db, launchGate.id);
    expect(after.map((n) => [n.recipient, n.status, n.lastError])).toEqual([
      ["eng.lead@acme.example", "cancelled", "gate rejected"],
      ["maya.pm@acme.example", "sent", null],
    ]);
    // A job for the cancelled email that runs late sends nothing.
    expect(await sendGateNotification(mailDeps, engMail.id)).toEqual({ status: "already_done" });
    expect(logged).toHaveLength(2);

    const hooks = await gateWebhooks(launchGate.id, "gate.decided");
    expect(hooks).toHaveLength(1);
    expect(hooks[0]?.payload).toMatchObject({
      type: "gate.decided",
      data: {
        gate: { id: launchGate.id, kind: "launch_approval", status: "rejected", outcome: "tokens" },
        decision: {
          decision: "reject",
          reason: "copy is wrong",
          decided_by: "maya.pm@acme.example",
          channel: "api",
          detail: null,
        },
      },
    });
    expect(await gateWebhooks(p.gate.id, "gate.decided")).toHaveLength(1);
    // The second decider loses, and kills nothing more.
    expect(await codeOf(decideGate(deps(), seed.admin, launchGate.id, { decision: "approve" }))).toBe(
      "gate_already_decided",
    );
    expect(await gateWebhooks(launchGate.id, "gate.decided")).toHaveLength(1);
  });
});

describe("sending one gate email", () => {
  it("of many concurrent sends of one email exactly one goes out, with one set of links", async () => {
    const logged: unknown[] = [];
    const mailer = createMailer(mailConfigFromEnv({ MAIL_LOG_LINKS: "true" }), (fields) => logged.push(fields));
    await activeOutcome(t, seed, "send-race");
    const p = await proposeExperiment(deps(), seed.admin, "send-race", hypothesis("Pay with one tap"));
    const [opened] = await gateMail.listNotificationsOfGate(t.db, p.gate.id);
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        sendGateNotification({ db: t.db, mailer, links: { publicUrl: PUBLIC_URL } }, opened!.id),
      ),
    );
    expect(results.filter((r) => r.status === "logged")).toHaveLength(1);
    expect(results.filter((r) => r.status === "already_done")).toHaveLength(11);
    expect(logged).toHaveLength(1);
    expect(await gateMail.listNotificationsOfGate(t.db, p.gate.id)).toEqual([
      expect.objectContaining({ id: opened!.id, status: "sent", attempts: 1 }),
    ]);
    const tokens = await gateMail.listTokensOfGate(t.db, p.gate.id);
    expect(tokens.map((k) => [k.decision, k.revokedAt])).toEqual([
      ["approve", null],
      ["reject", null],
    ]);
  });
});

describe("workspace settings", () => {
  it("default to a session for `resume`; only an admin changes them, with known decisions, audited", async () => {
    expect(await getWorkspaceSettings(deps(), maya)).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });

    const member = (await seed.key("member@acme.example", "member")).caller;
    expect(await codeOf(updateWorkspaceSettings(deps(), member, { sessionRequiredDecisions: [] }))).toBe("forbidden");
    expect(await codeOf(updateWorkspaceSettings(deps(), maya, { sessionRequiredDecisions: [] }))).toBe("forbidden");

    const unknown = await domainErrorOf(
      updateWorkspaceSettings(deps(), seed.admin, { sessionRequiredDecisions: ["resume", "yolo"] }),
    );
    expect(unknown.code).toBe("validation_failed");
    expect(unknown.message).toContain('"yolo"');
    expect(unknown.message).not.toContain('"resume"');
    expect(unknown.details).toMatchObject({ field: "sessionRequiredDecisions" });
    // Refusals stored nothing.
    expect(await getWorkspaceSettings(deps(), seed.admin)).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
    expect(await audit.listAuditEvents(t.db, seed.workspaceId, { action: "workspace.settings_changed" })).toHaveLength(
      0,
    );

    const updated = await updateWorkspaceSettings(deps(), seed.admin, {
      sessionRequiredDecisions: ["resume", "roll_back", "roll_back"],
    });
    expect(updated).toEqual({
      sessionRequiredDecisions: ["resume", "roll_back"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
    expect(await getWorkspaceSettings(deps(), member)).toEqual({
      sessionRequiredDecisions: ["resume", "roll_back"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "workspace.settings_changed" });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      subjectType: "workspace",
      subjectId: seed.workspaceId,
      actor: { id: seed.admin.principal.id, role: "admin" },
      before: { sessionRequiredDecisions: ["resume"], separationOfDuties: true },
      after: { sessionRequiredDecisions: ["resume", "roll_back"], separationOfDuties: true },
    });

    // Back to the default, so the rest of this file sees it.
    expect(await updateWorkspaceSettings(deps(), seed.admin, { sessionRequiredDecisions: ["resume"] })).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
  });
});

describe("learnings of analysis decisions", () => {
  it("a concluding decision (ship) writes exactly one learning; extend writes none", async () => {
    const { experiment, launchGate } = await builtExperiment("learn", "One-click reorder");
    const learningsOf = async () =>
      (
        await learnings.searchLearnings(t.db, seed.workspaceId, [], { outcomeId: experiment.outcomeId, limit: 100 })
      ).filter((l) => l.experimentId === experiment.id);
    await decideGate(deps(), maya, launchGate.id, { decision: "approve" });

    const firstLook = await transitionExperiment(deps(), seed.admin, experiment.id, { action: "analyse" });
    const firstReview = firstLook.openedGates[0]!;
    expect((await getGate(deps(), maya, firstReview.id)).options.map((o) => o.decision)).toEqual([
      "ship",
      "iterate",
      "extend",
      "roll_back",
    ]);
    const extended = await decideGate(deps(), maya, firstReview.id, { decision: "extend", reason: "too early" });
    expect(extended.experiments.map((e) => e.state)).toEqual(["running"]);
    expect(extended.learningId).toBeNull();
    expect(await learningsOf()).toEqual([]);

    const secondLook = await transitionExperiment(deps(), seed.admin, experiment.id, { action: "analyse" });
    const secondReview = secondLook.openedGates[0]!;
    expect(secondReview.id).not.toBe(firstReview.id);
    const shipped = await decideGate(deps(), maya, secondReview.id, { decision: "ship", reason: "clear win" });
    expect(shipped.experiments.map((e) => e.state)).toEqual(["shipped"]);
    expect(shipped.learningId).not.toBeNull();
    // A late second decision of the same gate writes nothing.
    expect(await codeOf(decideGate(deps(), seed.admin, secondReview.id, { decision: "ship" }))).toBe(
      "gate_already_decided",
    );

    const written = await learningsOf();
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ id: shipped.learningId, decision: "ship", experimentId: experiment.id });
    expect(written[0]?.statement).toContain("Reason: clear win");
    expect(await learnings.findLearningForSummary(t.db, shipped.learningId!)).toMatchObject({
      source: "rules",
      outcomeId: experiment.outcomeId,
    });
  });
});

describe("a stale decision is refused, changes nothing and is audited once", () => {
  const staleRows = async (gateId: string) =>
    (await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: gateId, action: STALE_DECISION_ACTION })).map(
      (e) => ({ actor: e.actor?.name, channel: e.channel, before: e.before, after: e.after }),
    );
  const decidedRows = async (gateId: string) =>
    audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: gateId, action: "gate.decided" });

  it("of a gate already decided: 409 with the winner, one row per (actor, channel, attempted decision)", async () => {
    const { experiment, launchGate } = await builtExperiment("stale-decided", "Shorter address form");
    await decideGate(deps(), seed.admin, launchGate.id, { decision: "reject", reason: "needs copy review" });

    const refused = await domainErrorOf(decideGate(deps(), maya, launchGate.id, { decision: "approve" }));
    expect(refused.code).toBe("gate_already_decided");
    expect(refused.details).toMatchObject({ status: "rejected", decision: { decision: "reject" } });
    // A storm of the same late approval, and a late rejection, by the same person.
    const storm = await Promise.all(
      Array.from({ length: 12 }, () => codeOf(decideGate(deps(), maya, launchGate.id, { decision: "approve" }))),
    );
    expect(new Set(storm)).toEqual(new Set(["gate_already_decided"]));
    expect(await codeOf(decideGate(deps(), maya, launchGate.id, { decision: "reject" }))).toBe("gate_already_decided");

    const rows = await staleRows(launchGate.id);
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => (r.after as { attemptedDecision: string }).attemptedDecision === "approve")).toEqual({
      actor: "maya.pm@acme.example",
      channel: maya.channel,
      before: { status: "rejected" },
      after: {
        attemptedDecision: "approve",
        reason: "decided",
        gateStatus: "rejected",
        experimentState: "building",
        winningDecision: {
          decision: "reject",
          decidedBy: seed.admin.principal.name,
          channel: seed.admin.channel,
          decidedAt: expect.any(String),
        },
        detail: expect.stringContaining("was already decided: reject"),
      },
    });
    // Nothing moved: one decision, the experiment back to building as the rejection left it.
    expect(await decidedRows(launchGate.id)).toHaveLength(1);
    expect((await getGate(deps(), seed.admin, launchGate.id)).experiments.map((e) => e.state)).toEqual(["building"]);
    expect(experiment.id).toBeDefined();
  });

  it("of a gate that expired at its SLA or with its abandoned outcome", async () => {
    const sla = await activeOutcome(t, seed, "stale-sla", [
      [
        "    backup: lead@acme.example\n    sla: 48h",
        "    backup: lead@acme.example\n    sla: 48h\n    on_expiry: expire",
      ],
    ]);
    const review = await proposeExperiment(deps(), seed.admin, sla.slug, hypothesis("Saved carts"));
    const later = new Date(review.gate.dueAt.getTime() + 60_000);
    expect(await handleGateExpiry({ db: t.db, now: () => later }, review.gate.id)).toMatchObject({ status: "done" });
    const onExpired = await domainErrorOf(decideGate(deps(), maya, review.gate.id, { decision: "approve" }));
    expect(onExpired.code).toBe("gate_already_decided");
    expect(await staleRows(review.gate.id)).toEqual([
      expect.objectContaining({
        actor: "maya.pm@acme.example",
        after: expect.objectContaining({ attemptedDecision: "approve", reason: "expired", gateStatus: "expired" }),
      }),
    ]);
    expect((await getGate(deps(), seed.admin, review.gate.id)).experiments.map((e) => e.state)).toEqual(["proposed"]);

    const { launchGate } = await builtExperiment("stale-abandoned", "Guest checkout first");
    await transitionOutcome(deps(), seed.admin, "stale-abandoned", "abandon", "priorities changed");
    expect(await codeOf(decideGate(deps(), maya, launchGate.id, { decision: "approve" }))).toBe("gate_already_decided");
    expect((await staleRows(launchGate.id)).map((r) => (r.after as { reason: string }).reason)).toEqual(["expired"]);
    expect(await decidedRows(launchGate.id)).toHaveLength(0);
    expect((await getGate(deps(), seed.admin, launchGate.id)).experiments.map((e) => e.state)).toEqual(["built"]);
  });

  it("of a review whose experiment moved on: 409 illegal_transition; a decision never valid stays 422", async () => {
    const { experiment, launchGate } = await builtExperiment("stale-moved", "Express pay first");
    await decideGate(deps(), maya, launchGate.id, { decision: "approve" });
    const paused = await transitionExperiment(deps(), seed.admin, experiment.id, { action: "pause", reason: "alert" });
    const review = paused.openedGates[0]!;
    // Ship was never a decision of a pause's review: malformed, not stale, not audited.
    expect(await codeOf(decideGate(deps(), maya, review.id, { decision: "ship" }))).toBe("invalid_decision");
    // The experiment goes to analysis: the same review now asks ship / iterate / extend / roll back.
    const analysing = await transitionExperiment(deps(), seed.admin, experiment.id, { action: "analyse" });
    expect(analysing.openedGates.map((g) => g.id)).toEqual([review.id]);
    const late = await domainErrorOf(decideGate(deps(), maya, review.id, { decision: "resume" }));
    expect(late.code).toBe("illegal_transition");
    expect(late.details).toMatchObject({ state: "analysing", allowed: ["ship", "iterate", "extend", "roll_back"] });
    expect(await codeOf(decideGate(deps(), maya, review.id, { decision: "resume" }))).toBe("illegal_transition");
    expect(await staleRows(review.id)).toEqual([
      expect.objectContaining({
        actor: "maya.pm@acme.example",
        before: { status: "pending" },
        after: expect.objectContaining({
          attemptedDecision: "resume",
          reason: "experiment_moved_on",
          gateStatus: "pending",
          experimentState: "analysing",
          winningDecision: null,
        }),
      }),
    ]);
    expect((await getGate(deps(), seed.admin, review.id)).gate.status).toBe("pending");
    expect(await decidedRows(review.id)).toHaveLength(0);
    // The review still takes the decisions that fit now.
    const shipped = await decideGate(deps(), maya, review.id, { decision: "ship" });
    expect(shipped.experiments.map((e) => e.state)).toEqual(["shipped"]);
  });
});
