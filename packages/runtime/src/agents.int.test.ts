/**
 * What coding agents work with, at the runtime level on the real Postgres:
 * the active outcomes and their progress, the brief, claiming, questions to
 * people (agent_request gates), the learnings, and the audit of tool calls.
 */
import { audit, gateMail, learnings, signals } from "@outcome-runtime/db";
import {
  codeOf,
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  activeOutcomes,
  argumentsDigest,
  claimExperiment,
  experimentBrief,
  queryLearnings,
  recordToolCall,
  renderBriefMarkdown,
  requestHumanGate,
} from "./agents";
import { applyOutcome } from "./apply-outcome";
import type { Caller } from "./context";
import { decideGate, getGate } from "./decide-gate";
import { proposeExperiment, transitionExperiment } from "./experiments";
import { transitionOutcome } from "./outcomes";

let t: TestDatabase;
let seed: Seeded;
let claude: Caller;
let cursor: Caller;
let maya: Caller;
const deps = () => ({ db: t.db });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  claude = (await seed.key("claude-code", "agent")).caller;
  cursor = (await seed.key("cursor", "agent")).caller;
  maya = (await seed.key("maya.pm@acme.example", "approver")).caller;
});
afterAll(async () => {
  await t.drop();
});

async function approvedExperiment(slug: string, title: string) {
  await applyOutcome(deps(), seed.admin, { source: outcomeVariant(slug) });
  await transitionOutcome(deps(), seed.admin, slug, "activate", null);
  const p = await proposeExperiment(deps(), seed.admin, slug, {
    title,
    statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout.`,
    mechanism: "less effort at the last step",
    touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
    measurementPlan: "checkout_abandonment_rate per arm, daily",
  });
  await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
  return p.experiment;
}

describe("active outcomes", () => {
  it("lists only active outcomes with the signal, the target in words, progress and experiment counts", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("agents-draft") });
    const experiment = await approvedExperiment("agents-active", "Shorter form");
    const outcomeId = experiment.outcomeId;
    // The outcome's own signal, as the worker's outcome poll stores it.
    const series = await signals.ensureSeries(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId,
      experimentId: null,
      metric: "checkout_abandonment_rate",
      role: "outcome",
      kind: "proportion",
    });
    await signals.upsertPoints(
      t.db,
      series,
      [
        { arm: "all", ts: new Date(Date.now() - 86_400_000), units: 1, sum: 0.7, sum_sq: 0.49 },
        { arm: "all", ts: new Date(Date.now() + 60_000), units: 1, sum: 0.68, sum_sq: 0.4624 },
      ],
      new Date(),
    );
    const { items } = await activeOutcomes(deps(), claude, {});
    expect(items.map((o) => o.slug)).toContain("agents-active");
    expect(items.map((o) => o.slug)).not.toContain("agents-draft");
    const active = items.find((o) => o.slug === "agents-active")!;
    expect(active).toMatchObject({
      metric: "checkout_abandonment_rate",
      metricKind: "proportion",
      experiments: { approved: 1 },
      // outcome.example.yaml declares its baseline (0.68); the level at activation (0.7) does not replace it.
      progress: { current: 0.68, baseline: 0.68 },
    });
    expect(active.target).toContain("decrease by 10 %");
    // A relative 10 % decrease from the baseline.
    expect(active.progress.goal).toBeCloseTo(0.612, 10);
    expect(active.progress.horizonEnd).not.toBeNull();
  });
});

describe("the brief", () => {
  it("gives the arms, instrumentation, paths, checklist and the next step, also as Markdown", async () => {
    const experiment = await approvedExperiment("agents-brief", "Express pay");
    const brief = await experimentBrief(deps(), claude, experiment.key);
    expect(brief.experiment).toMatchObject({ key: experiment.key, state: "approved", claimedBy: null });
    expect(brief.arms.map((a) => a.name)).toEqual(["control", "treatment"]);
    expect(brief.allowedPaths).toContain("apps/web/src/checkout/**");
    expect(brief.forbiddenPaths).toContain("apps/web/src/payments/**");
    expect(brief.instrumentation.join(" ")).toContain(experiment.key);
    expect(brief.next).toContain("claim_experiment");
    const markdown = renderBriefMarkdown(brief);
    for (const part of ["# Express pay", "## Assignment and exposure", "`apps/web/src/payments/**`", "- [ ] "]) {
      expect(markdown).toContain(part);
    }
    expect(await codeOf(experimentBrief(deps(), claude, "no-such-experiment"))).toBe("not_found");
  });
});

describe("claiming", () => {
  it("lets one agent claim; the same agent again is a no-op; another agent is told who holds it", async () => {
    const experiment = await approvedExperiment("agents-claim", "One page");
    const claimed = await claimExperiment(deps(), claude, experiment.id, "claude-code");
    expect(claimed).toMatchObject({ state: "building", claimedBy: "claude-code" });
    expect(await claimExperiment(deps(), claude, experiment.id, "claude-code")).toMatchObject({
      state: "building",
      claimedBy: "claude-code",
    });
    const refused = await claimExperiment(deps(), cursor, experiment.id, "cursor").catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "already_claimed", details: { claimedBy: "claude-code" } });
    expect((refused as Error).message).toContain("claude-code");
    // The REST API's use case answers a repeated claim the same way: the experiment, unchanged.
    const again = await transitionExperiment(deps(), claude, experiment.key, {
      action: "claim",
      claimedBy: "claude-code",
    });
    expect(again).toMatchObject({ experiment: { state: "building", claimedBy: "claude-code" }, openedGates: [] });
    expect(
      await codeOf(transitionExperiment(deps(), cursor, experiment.key, { action: "claim", claimedBy: "cursor" })),
    ).toBe("already_claimed");
    const claims = await audit.listAuditEvents(t.db, seed.workspaceId, {
      subjectId: experiment.id,
      action: "experiment.claimed",
    });
    expect(claims).toHaveLength(1);
  });

  it("refuses a claim, repeated or not, once the outcome is closed, through both use cases", async () => {
    const experiment = await approvedExperiment("agents-claim-closed", "Guest checkout");
    await claimExperiment(deps(), claude, experiment.id, "claude-code");
    await transitionOutcome(deps(), seed.admin, "agents-claim-closed", "abandon", null);
    expect(await codeOf(claimExperiment(deps(), claude, experiment.id, "claude-code"))).toBe("outcome_closed");
    expect(
      await codeOf(transitionExperiment(deps(), claude, experiment.id, { action: "claim", claimedBy: "claude-code" })),
    ).toBe("outcome_closed");
  });
});

describe("questions to people", () => {
  it("opens an agent_request gate at once, answers the same question with it, refuses a second question", async () => {
    const experiment = await approvedExperiment("agents-ask", "Saved cards");
    const asked = await requestHumanGate(deps(), claude, experiment.key, "May I change the button copy too?");
    expect(asked.opened).toBe(true);
    expect(asked.gate).toMatchObject({
      kind: "agent_request",
      status: "pending",
      experimentId: experiment.id,
      // Assigned as the launch approval is (outcome.example.yaml).
      assignees: ["maya.pm@acme.example", "eng.lead@acme.example"],
      context: { question: "May I change the button copy too?", askedBy: "claude-code" },
    });
    const again = await requestHumanGate(deps(), claude, experiment.key, "May I change the button copy too?");
    expect(again).toMatchObject({ opened: false, gate: { id: asked.gate.id } });
    expect(await codeOf(requestHumanGate(deps(), claude, experiment.key, "And the colour?"))).toBe("question_pending");
    expect(await codeOf(requestHumanGate(deps(), claude, experiment.key, "   "))).toBe("validation_failed");
    // The assignees are emailed, as for any gate.
    const emails = await gateMail.listNotificationsOfGate(t.db, asked.gate.id);
    expect(emails.map((n) => n.recipient).sort()).toEqual(["eng.lead@acme.example", "maya.pm@acme.example"]);

    const detail = await getGate(deps(), maya, asked.gate.id);
    expect(detail.contextPackage).toMatchObject({
      kind: "agent_request",
      question: "May I change the button copy too?",
    });
    expect(detail.options.map((o) => [o.decision, o.label])).toEqual([
      ["approve", "Yes"],
      ["reject", "No"],
    ]);
    expect(await codeOf(decideGate(deps(), claude, asked.gate.id, { decision: "approve" }))).toBe(
      "agents_cannot_decide",
    );
    const answered = await decideGate(deps(), maya, asked.gate.id, { decision: "reject", reason: "copy is frozen" });
    expect(answered.gate).toMatchObject({ status: "rejected", decision: { reason: "copy is frozen" } });
    // An answer moves nothing: the experiment stays approved.
    expect(answered.experiments).toEqual([]);
    const next = await requestHumanGate(deps(), claude, experiment.key, "And the colour?");
    expect(next.opened).toBe(true);
  });
});

describe("learnings and the audit of tool calls", () => {
  it("ranks learnings by relevance and audits a tool call with the digest of its arguments", async () => {
    const experiment = await approvedExperiment("agents-learn", "Delivery date");
    await learnings.insertLearning(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: experiment.outcomeId,
      experimentId: experiment.id,
      statement: "Showing the delivery date early cut abandonment by 2 pp.",
      decision: "ship",
      effect: -0.02,
      ciLow: -0.03,
      ciHigh: -0.01,
      tags: ["delivery"],
    });
    const { learnings: hits, search } = await queryLearnings(deps(), claude, { query: "delivery date" });
    expect(hits[0]).toMatchObject({ decision: "ship", effect: -0.02, experimentId: experiment.id });
    expect(hits[0]!.rank).toBeGreaterThan(0);
    // No gateway in these deps: full text, and the answer says why.
    expect(search.search).toBe("full_text");
    expect(search.fallbackReason).not.toBeNull();
    expect((await queryLearnings(deps(), claude, { query: "zzzzunrelated" })).learnings).toEqual([]);

    const args = { query: "delivery date", limit: 5 };
    await recordToolCall(deps(), claude, { tool: "query_learnings", arguments: args, result: "ok" });
    await recordToolCall(deps(), claude, {
      tool: "claim_experiment",
      arguments: { experiment: "x" },
      result: "error",
      code: "not_found",
    });
    const calls = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "mcp.tool_called" });
    expect(calls.map((c) => c.after)).toEqual(
      expect.arrayContaining([
        {
          tool: "query_learnings",
          argumentsDigest: argumentsDigest({ limit: 5, query: "delivery date" }),
          result: "ok",
        },
        expect.objectContaining({ tool: "claim_experiment", result: "error", code: "not_found" }),
      ]),
    );
    expect(calls[0]).toMatchObject({ channel: "mcp", actor: { name: "claude-code", role: "agent" } });
    // The digest does not depend on key order.
    expect(argumentsDigest({ a: 1, b: [2, { c: 3, d: 4 }] })).toBe(argumentsDigest({ b: [2, { d: 4, c: 3 }], a: 1 }));
  });

  it("keeps a report_built build report on the experiment", async () => {
    const experiment = await approvedExperiment("agents-report", "Autofill");
    await claimExperiment(deps(), claude, experiment.id, "claude-code");
    const built = await transitionExperiment(deps(), claude, experiment.id, {
      action: "report_built",
      changedPaths: ["apps/web/src/checkout/Address.tsx"],
      build: { summary: "Autofill behind a flag", pullRequestUrl: "https://git.example/pr/9", flagKey: "autofill" },
    });
    expect(built.experiment.build).toMatchObject({
      summary: "Autofill behind a flag",
      pullRequestUrl: "https://git.example/pr/9",
      flagKey: "autofill",
      changedPaths: ["apps/web/src/checkout/Address.tsx"],
      reportedBy: "claude-code",
    });
  });
});
