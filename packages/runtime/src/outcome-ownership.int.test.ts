/**
 * Who may change an outcome, on the real Postgres: only its owner or an admin
 * revises it, each revision is audited with a field-by-field diff, gates
 * already open keep their assignees, and whoever revised an outcome may not
 * alone approve a launch of it within the launch gate's SLA (separation of
 * duties), on the API and email channels alike, unless the workspace turns it off.
 */
import { audit, gateMail } from "@outcome-runtime/db";
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
import type { Caller, RuntimeDeps } from "./context";
import { decideGate, getGate } from "./decide-gate";
import { decideByEmailLink } from "./email-links";
import { getExperiment, proposeExperiment, transitionExperiment } from "./experiments";
import { sendGateNotification } from "./gate-mail";
import { getOutcome, transitionOutcome } from "./outcomes";
import { getWorkspaceSettings, updateWorkspaceSettings } from "./workspace-settings";

let t: TestDatabase;
let seed: Seeded;
/** The example outcome's owner, and an assignee of every gate (launch approval with eng.lead). */
let maya: Caller;
let engLead: Caller;
/** A member who owns none of these outcomes: the attacker. */
let mallory: Caller;
let agent: Caller;
let otherAdmin: Caller;

/** The clock of the use cases; tests move it to place revisions and gates in time. */
let clock = new Date("2026-12-09T08:00:00Z");
const deps = (): RuntimeDeps => ({ db: t.db, now: () => clock });
const HOUR = 3_600_000;

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  // Key names differ in case from the outcome file: owners and assignees match case-insensitively.
  maya = (await seed.key("Maya.PM@acme.example", "member")).caller;
  engLead = (await seed.key("eng.lead@acme.example", "approver")).caller;
  mallory = (await seed.key("mallory@acme.example", "member")).caller;
  agent = (await seed.key("claude-code", "agent")).caller;
  otherAdmin = (await seed.key("ops@acme.example", "admin")).caller;
});
afterAll(async () => {
  await t.drop();
});

/** The attacker's file: themselves as owner and launch approver, billing no longer forbidden, max_harm 99 %. */
const takeover = (id: string) =>
  outcomeVariant(id, [
    ["owner: maya.pm@acme.example", "owner: mallory@acme.example"],
    [
      "assignees: [maya.pm@acme.example, eng.lead@acme.example]",
      "assignees: [mallory@acme.example]\n    backup: mallory@acme.example",
    ],
    ["    backup: lead@acme.example\n    sla: 24h", "    sla: 24h"],
    ['      - "services/billing/**"\n', ""],
    ["max_harm: 3%", "max_harm: 99%"],
  ]);

/** Created by an admin for maya (the file's owner) and activated. */
async function mayasOutcome(id: string, replacements: [string, string][] = []) {
  const created = await applyOutcome(deps(), seed.admin, { source: outcomeVariant(id, replacements) });
  await transitionOutcome(deps(), seed.admin, id, "activate", null);
  return created.outcome;
}

/** Propose a hypothesis, approve the portfolio (maya), and let the agent claim it: it waits to be reported built. */
async function claimedExperiment(slug: string, title = "Show the delivery date early") {
  const p = await proposeExperiment(deps(), seed.admin, slug, {
    title,
    statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout, because they know when it arrives.`,
  });
  await decideGate(deps(), maya, p.gate.id, { decision: "approve" });
  await transitionExperiment(deps(), agent, p.experiment.id, { action: "claim" });
  return p.experiment;
}

/** Report the agent's build of a claimed experiment; returns its launch approval gate. */
async function reportBuilt(experimentId: string, changedPaths = ["apps/web/src/checkout/Summary.tsx"]) {
  const built = await transitionExperiment(deps(), agent, experimentId, { action: "report_built", changedPaths });
  const gate = built.openedGates[0];
  if (gate?.kind !== "launch_approval") throw new Error("report_built opened no launch approval");
  return gate;
}

async function outcomeEvents(outcomeId: string) {
  return audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: outcomeId });
}

describe("who may revise an outcome", () => {
  it("regression: a member re-applying someone else's outcome as owner and approver, billing unforbidden and max_harm 99 %, is refused and changes nothing", async () => {
    const outcome = await mayasOutcome("takeover");
    const experiment = await claimedExperiment("takeover");

    const refused = await applyOutcome(deps(), mallory, { source: takeover("takeover") }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: "not_outcome_owner",
      details: { field: "owner", owner: "maya.pm@acme.example", outcome: "takeover", actor: "mallory@acme.example" },
    });
    expect((refused as Error).message).toContain("Ask maya.pm@acme.example or an admin");

    // Nothing changed: still revision 1 with maya's rules, no revision audited.
    const detail = await getOutcome(deps(), mallory, "takeover");
    expect(detail.outcome).toMatchObject({
      revision: 1,
      owner: "maya.pm@acme.example",
      contentHash: outcome.contentHash,
    });
    expect(detail.latestRevisions.map((r) => r.revision)).toEqual([1]);
    expect(detail.outcome.spec).toEqual(outcome.spec);
    const actions = (await outcomeEvents(outcome.id)).map((e) => e.action);
    expect(actions).toEqual(["outcome.activated", "outcome.created"]);

    // The rest of the attack fails too: the agent's build touching billing is refused, and the launch
    // approval it then opens is maya's and eng.lead's to decide, not mallory's.
    expect(
      await codeOf(
        transitionExperiment(deps(), agent, experiment.id, {
          action: "report_built",
          changedPaths: ["services/billing/invoice.ts"],
        }),
      ),
    ).toBe("forbidden_paths_touched");
    const launch = await reportBuilt(experiment.id);
    expect(launch.assignees).toEqual(["maya.pm@acme.example", "eng.lead@acme.example"]);
    expect(await codeOf(decideGate(deps(), mallory, launch.id, { decision: "approve" }))).toBe("gate_not_assignee");
    expect((await getExperiment(deps(), mallory, experiment.id)).experiment.state).toBe("built");
  });

  it("an unchanged file is `unchanged` for anyone, and anyone who may apply creates a new outcome", async () => {
    const source = outcomeVariant("anyone-creates");
    const created = await applyOutcome(deps(), mallory, { source });
    expect(created).toMatchObject({ status: "created", outcome: { revision: 1, owner: "maya.pm@acme.example" } });
    expect(await applyOutcome(deps(), mallory, { source })).toMatchObject({ status: "unchanged" });
    // Mallory created it, but maya owns it: mallory's change is refused, maya's goes through.
    const changed = outcomeVariant("anyone-creates", [["max_harm: 3%", "max_harm: 2%"]]);
    expect(await codeOf(applyOutcome(deps(), mallory, { source: changed }))).toBe("not_outcome_owner");
    expect(await applyOutcome(deps(), maya, { source: changed })).toMatchObject({ status: "revised" });
    expect(await codeOf(applyOutcome(deps(), agent, { source: outcomeVariant("agent-creates") }))).toBe("forbidden");
  });

  it("the owner revises with every changed field audited, sensitive ones also as outcome.sensitive_change", async () => {
    const outcome = await mayasOutcome("owner-revises");
    const revised = await applyOutcome(deps(), maya, {
      source: outcomeVariant("owner-revises", [
        ["max_harm: 3%", "max_harm: 2%"],
        ['      - "**/*.sql"\n', ""],
        ["Reduce checkout abandonment", "Cut checkout abandonment"],
      ]),
    });
    expect(revised).toMatchObject({ status: "revised", outcome: { revision: 2 } });
    const events = await outcomeEvents(outcome.id);
    expect(events.map((e) => e.action)).toEqual([
      "outcome.sensitive_change",
      "outcome.revised",
      "outcome.activated",
      "outcome.created",
    ]);
    const [sensitive, revision] = events;
    expect(revision).toMatchObject({
      actor: { name: "Maya.PM@acme.example", role: "member" },
      before: { revision: 1, contentHash: outcome.contentHash, owner: "maya.pm@acme.example" },
      after: {
        revision: 2,
        contentHash: revised.outcome.contentHash,
        owner: "maya.pm@acme.example",
        changes: [
          { path: "constraints.kill.max_harm", before: 0.03, after: 0.02 },
          {
            path: "constraints.scope.forbidden_paths",
            before: ["apps/web/src/payments/**", "services/billing/**", "**/*.sql"],
            after: ["apps/web/src/payments/**", "services/billing/**"],
          },
          { path: "name", before: "Reduce checkout abandonment", after: "Cut checkout abandonment" },
        ],
      },
    });
    expect(sensitive).toMatchObject({
      actor: { name: "Maya.PM@acme.example" },
      before: { revision: 1, owner: "maya.pm@acme.example" },
      after: {
        revision: 2,
        changes: [
          { path: "constraints.kill.max_harm", before: 0.03, after: 0.02 },
          {
            path: "constraints.scope.forbidden_paths",
            before: ["apps/web/src/payments/**", "services/billing/**", "**/*.sql"],
            after: ["apps/web/src/payments/**", "services/billing/**"],
          },
        ],
      },
    });

    // Wording alone is audited as a revision, and is not sensitive.
    await applyOutcome(deps(), maya, {
      source: outcomeVariant("owner-revises", [
        ["max_harm: 3%", "max_harm: 2%"],
        ['      - "**/*.sql"\n', ""],
        ["Reduce checkout abandonment", "Cut checkout abandonment further"],
      ]),
    });
    const after = await outcomeEvents(outcome.id);
    expect(after.map((e) => e.action).slice(0, 2)).toEqual(["outcome.revised", "outcome.sensitive_change"]);
    expect(after[0]?.after).toMatchObject({
      changes: [{ path: "name", before: "Cut checkout abandonment", after: "Cut checkout abandonment further" }],
    });
  });

  it("an admin revises anyone's outcome; handing it over makes the new owner the one who revises", async () => {
    const outcome = await mayasOutcome("handover");
    const handedOver = outcomeVariant("handover", [["owner: maya.pm@acme.example", "owner: mallory@acme.example"]]);
    const byAdmin = await applyOutcome(deps(), seed.admin, { source: handedOver });
    expect(byAdmin).toMatchObject({ status: "revised", outcome: { revision: 2, owner: "mallory@acme.example" } });
    const [sensitive] = await audit.listAuditEvents(t.db, seed.workspaceId, {
      subjectId: outcome.id,
      action: "outcome.sensitive_change",
    });
    expect(sensitive).toMatchObject({
      actor: { role: "admin" },
      before: { owner: "maya.pm@acme.example" },
      after: {
        owner: "mallory@acme.example",
        changes: [{ path: "owner", before: "maya.pm@acme.example", after: "mallory@acme.example" }],
      },
    });

    const next = outcomeVariant("handover", [
      ["owner: maya.pm@acme.example", "owner: mallory@acme.example"],
      ["max_harm: 3%", "max_harm: 2%"],
    ]);
    const refusal = await applyOutcome(deps(), maya, { source: next }).catch((e: unknown) => e);
    expect(refusal).toMatchObject({ code: "not_outcome_owner", details: { owner: "mallory@acme.example" } });
    expect(await applyOutcome(deps(), mallory, { source: next })).toMatchObject({
      status: "revised",
      outcome: { revision: 3 },
    });
  });

  it("a gate already open keeps its assignees and backup after a revision; gates opened later take the new ones", async () => {
    const outcome = await mayasOutcome("open-gate-keeps");
    const p = await proposeExperiment(deps(), seed.admin, "open-gate-keeps", {
      title: "Trust badges",
      statement: "If we show trust badges, fewer shoppers abandon the checkout, because they feel safe.",
    });
    expect(p.gate).toMatchObject({ assignees: ["maya.pm@acme.example"], backup: "lead@acme.example" });
    await applyOutcome(deps(), maya, {
      source: outcomeVariant("open-gate-keeps", [
        [
          "portfolio_review:\n    assignees: [maya.pm@acme.example]\n    backup: lead@acme.example",
          "portfolio_review:\n    assignees: [mallory@acme.example]\n    backup: mallory@acme.example",
        ],
      ]),
    });
    expect((await getOutcome(deps(), maya, outcome.id)).outcome.revision).toBe(2);

    const open = await getGate(deps(), maya, p.gate.id);
    expect(open.gate).toMatchObject({
      status: "pending",
      assignees: ["maya.pm@acme.example"],
      backup: "lead@acme.example",
    });
    expect(await codeOf(decideGate(deps(), mallory, p.gate.id, { decision: "reject" }))).toBe("gate_not_assignee");
    expect((await decideGate(deps(), maya, p.gate.id, { decision: "approve" })).gate.status).toBe("approved");

    const nextRound = await proposeExperiment(deps(), seed.admin, "open-gate-keeps", {
      title: "Fewer form fields",
      statement: "If we ask for fewer fields, fewer shoppers abandon the checkout, because it is quicker.",
    });
    expect(nextRound.gate.id).not.toBe(p.gate.id);
    expect(nextRound.gate).toMatchObject({ assignees: ["mallory@acme.example"], backup: "mallory@acme.example" });
  });
});

describe("separation of duties at a launch", () => {
  /** Maya's outcome, revised by `reviser` at the current clock, with an experiment the agent claimed. */
  async function revisedBy(slug: string, reviser: Caller) {
    const outcome = await mayasOutcome(slug);
    const experiment = await claimedExperiment(slug);
    const revised = await applyOutcome(deps(), reviser, {
      source: outcomeVariant(slug, [["max_harm: 3%", "max_harm: 2%"]]),
    });
    expect(revised.outcome.revision).toBe(2);
    return { outcome, experiment, revisedAt: clock };
  }

  it("refuses the reviser's approval of the launch, naming who revised and when; another assignee approves", async () => {
    const { experiment, revisedAt } = await revisedBy("sod-use-case", maya);
    clock = new Date(clock.getTime() + 2 * HOUR);
    const launch = await reportBuilt(experiment.id);
    clock = new Date(clock.getTime() + HOUR);

    const refusal = await decideGate(deps(), maya, launch.id, { decision: "approve" }).catch((e: unknown) => e);
    expect(refusal).toMatchObject({
      code: "separation_of_duties",
      details: {
        field: "decision",
        revisedBy: "Maya.PM@acme.example",
        revision: 2,
        revisedAt: revisedAt.toISOString(),
        windowSeconds: 48 * 3600,
        otherApprovers: ["eng.lead@acme.example", "lead@acme.example"],
        setting: "separationOfDuties",
      },
    });
    const message = (refusal as Error).message;
    expect(message).toContain("Maya.PM@acme.example revised outcome sod-use-case (revision 2)");
    expect(message).toContain("2026-12-09 08:00 UTC, less than 2 d before this launch gate opened or since");
    expect(message).toContain("Another assignee (eng.lead@acme.example, lead@acme.example) or an admin must approve");
    // Nothing moved.
    expect((await getGate(deps(), maya, launch.id)).gate.status).toBe("pending");
    expect((await getExperiment(deps(), maya, experiment.id)).experiment.state).toBe("built");

    const approved = await decideGate(deps(), engLead, launch.id, { decision: "approve" });
    expect(approved.gate.decision).toMatchObject({ decision: "approve", decidedBy: "eng.lead@acme.example" });
    expect(approved.experiments.map((e) => e.state)).toEqual(["running"]);
  });

  it("the reviser may still reject (send the build back)", async () => {
    const { experiment } = await revisedBy("sod-reject", maya);
    const launch = await reportBuilt(experiment.id);
    const rejected = await decideGate(deps(), maya, launch.id, { decision: "reject", reason: "flag not dark" });
    expect(rejected.gate).toMatchObject({ status: "rejected", decision: { decidedBy: "Maya.PM@acme.example" } });
    expect(rejected.experiments.map((e) => e.state)).toEqual(["building"]);
  });

  it("binds admins too; another admin approves", async () => {
    const { experiment } = await revisedBy("sod-admin", seed.admin);
    const launch = await reportBuilt(experiment.id);
    const refusal = await decideGate(deps(), seed.admin, launch.id, { decision: "approve" }).catch((e: unknown) => e);
    expect(refusal).toMatchObject({ code: "separation_of_duties", details: { revisedBy: "bootstrap-admin" } });
    // Another admin did not revise it.
    const approved = await decideGate(deps(), otherAdmin, launch.id, { decision: "approve" });
    expect(approved.gate.status).toBe("approved");
  });

  it("a revision made longer before the launch gate opened than its SLA (at least 48 h) no longer bars the reviser", async () => {
    const { experiment, revisedAt } = await revisedBy("sod-window", maya);
    // The launch SLA is 24 h, but the window is at least 48 h: a gate opened 25 h after the revision is barred.
    clock = new Date(revisedAt.getTime() + 25 * HOUR);
    const early = await reportBuilt(experiment.id);
    expect(await codeOf(decideGate(deps(), maya, early.id, { decision: "approve" }))).toBe("separation_of_duties");
    await decideGate(deps(), maya, early.id, { decision: "reject", reason: "rebuild later" });
    // Rebuilt, its new launch gate opens 49 h after the revision: maya approves alone.
    clock = new Date(revisedAt.getTime() + 49 * HOUR);
    const launch = await reportBuilt(experiment.id);
    const approved = await decideGate(deps(), maya, launch.id, { decision: "approve" });
    expect(approved.gate).toMatchObject({ status: "approved", decision: { decidedBy: "Maya.PM@acme.example" } });
  });

  it("a revision made while the launch gate waits bars its author too", async () => {
    await mayasOutcome("sod-while-pending");
    const experiment = await claimedExperiment("sod-while-pending");
    const launch = await reportBuilt(experiment.id);
    clock = new Date(clock.getTime() + 30 * HOUR);
    await applyOutcome(deps(), maya, {
      source: outcomeVariant("sod-while-pending", [["max_harm: 3%", "max_harm: 2%"]]),
    });
    expect(await codeOf(decideGate(deps(), maya, launch.id, { decision: "approve" }))).toBe("separation_of_duties");
  });

  it("applies to an email link: the reviser's approve link is refused as not allowed, and nothing is decided", async () => {
    const logged: { to: string; links: { label: string; url: string }[] }[] = [];
    const log: MailLog = (fields) => logged.push(fields as (typeof logged)[number]);
    const mailer = createMailer(mailConfigFromEnv({ MAIL_LOG_LINKS: "true" }), log);
    const links = { publicUrl: "https://outcomes.test.example" };

    const { experiment } = await revisedBy("sod-email", maya);
    const launch = await reportBuilt(experiment.id);
    const toMaya = (await gateMail.listNotificationsOfGate(t.db, launch.id)).find(
      (n) => n.recipient === "maya.pm@acme.example",
    );
    expect(await sendGateNotification({ db: t.db, mailer, links }, toMaya!.id)).toEqual({ status: "logged" });
    const approveLink = new URL(logged.at(-1)!.links.find((l) => l.label === "Launch")!.url);

    const page = await decideByEmailLink(
      deps(),
      links,
      {
        gateId: launch.id,
        decision: "approve",
        recipient: approveLink.searchParams.get("to")!,
        token: approveLink.searchParams.get("token")!,
      },
      {},
    );
    expect(page.httpStatus).toBe(403);
    expect(page.page).toMatchObject({ page: "refused", code: "not_allowed" });
    expect((page.page as { message: string }).message).toContain("revised outcome sod-email (revision 2)");
    expect((await getGate(deps(), maya, launch.id)).gate.status).toBe("pending");
  });

  it("with separationOfDuties off the reviser approves alone; the setting is validated and audited", async () => {
    expect(await getWorkspaceSettings(deps(), maya)).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
    expect(await codeOf(updateWorkspaceSettings(deps(), maya, { separationOfDuties: false }))).toBe("forbidden");
    const invalid = await updateWorkspaceSettings(deps(), seed.admin, {
      separationOfDuties: "no" as unknown as boolean,
    }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: "validation_failed", details: { field: "separationOfDuties" } });

    const { experiment } = await revisedBy("sod-off", maya);
    const launch = await reportBuilt(experiment.id);
    expect(await codeOf(decideGate(deps(), maya, launch.id, { decision: "approve" }))).toBe("separation_of_duties");

    expect(await updateWorkspaceSettings(deps(), seed.admin, { separationOfDuties: false })).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: false,
      signalRetention: { days: null },
    });
    const [changed] = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "workspace.settings_changed" });
    expect(changed).toMatchObject({ before: { separationOfDuties: true }, after: { separationOfDuties: false } });
    try {
      const approved = await decideGate(deps(), maya, launch.id, { decision: "approve" });
      expect(approved.experiments.map((e) => e.state)).toEqual(["running"]);
    } finally {
      await updateWorkspaceSettings(deps(), seed.admin, { separationOfDuties: true });
    }
  });
});
