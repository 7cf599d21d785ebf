import { audit, learnings } from "@outcome-runtime/db";
import {
  codeOf,
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome, OutcomeInvalidError } from "./apply-outcome";
import { decideGate, getGate } from "./decide-gate";
import { getExperiment, proposeExperiment, transitionExperiment } from "./experiments";
import { getOutcome, transitionOutcome } from "./outcomes";

let t: TestDatabase;
let seed: Seeded;
const deps = () => ({ db: t.db });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
});
afterAll(async () => {
  await t.drop();
});

const hypothesis = (title: string) => ({
  title,
  statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout, because the flow is shorter.`,
  touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
});

describe("applying an outcome", () => {
  it("creates it as a draft at revision 1, with an audit event", async () => {
    const result = await applyOutcome(deps(), seed.admin, { source: outcomeVariant("apply-create") });
    expect(result.status).toBe("created");
    expect(result.outcome).toMatchObject({ slug: "apply-create", state: "draft", revision: 1 });
    const detail = await getOutcome(deps(), seed.admin, "apply-create");
    expect(detail.latestRevisions.map((r) => r.revision)).toEqual([1]);
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: result.outcome.id });
    expect(events.map((e) => e.action)).toEqual(["outcome.created"]);
  });

  it("re-applying unchanged content creates no revision, even with other comments and key order", async () => {
    const source = outcomeVariant("apply-same");
    await applyOutcome(deps(), seed.admin, { source });
    const again = await applyOutcome(deps(), seed.admin, { source });
    expect(again.status).toBe("unchanged");
    const reformatted = await applyOutcome(deps(), seed.admin, {
      source: `# a new comment\n${source.replace("max_duration: 21d", "max_duration: 3w")}`,
    });
    expect(reformatted.status).toBe("unchanged");
    const detail = await getOutcome(deps(), seed.admin, "apply-same");
    expect(detail.latestRevisions).toHaveLength(1);
  });

  it("a changed file creates exactly one new revision and keeps the history", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("apply-changed") });
    const changed = outcomeVariant("apply-changed", [["max_harm: 3%", "max_harm: 2%"]]);
    const revised = await applyOutcome(deps(), seed.admin, { source: changed });
    expect(revised.status).toBe("revised");
    expect(revised.outcome.revision).toBe(2);
    expect(await applyOutcome(deps(), seed.admin, { source: changed })).toMatchObject({ status: "unchanged" });
    const detail = await getOutcome(deps(), seed.admin, "apply-changed");
    expect(detail.latestRevisions.map((r) => r.revision)).toEqual([2, 1]);
    expect(detail.latestRevisions[1]?.source).toContain("max_harm: 3%");
  });

  it("concurrent applies of the same new file create one outcome and one revision", async () => {
    const source = outcomeVariant("apply-race");
    const results = await Promise.all(Array.from({ length: 10 }, () => applyOutcome(deps(), seed.admin, { source })));
    expect(results.filter((r) => r.status === "created")).toHaveLength(1);
    expect(results.filter((r) => r.status === "unchanged")).toHaveLength(9);
    expect((await getOutcome(deps(), seed.admin, "apply-race")).latestRevisions).toHaveLength(1);
  });

  it("an invalid file is refused with every diagnostic and stores nothing", async () => {
    const bad = outcomeVariant("apply-bad", [
      ["alpha: 0.05", "alpha: lots"],
      [
        "weight: 50%\n    - name: treatment\n      weight: 50%",
        "weight: 50%\n    - name: treatment\n      weight: 60%",
      ],
    ]);
    let caught: unknown;
    try {
      await applyOutcome(deps(), seed.admin, { source: bad, file: "bad.yaml" });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(OutcomeInvalidError);
    const errors = (caught as OutcomeInvalidError).errors;
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((e) => e.file === "bad.yaml" && e.line > 0 && e.column > 0)).toBe(true);
    expect(await codeOf(getOutcome(deps(), seed.admin, "apply-bad"))).toBe("not_found");
  });
});

describe("outcome lifecycle", () => {
  it("activates once; a second activation is an illegal transition; abandon closes it", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("life-1") });
    const active = await transitionOutcome(deps(), seed.admin, "life-1", "activate", null);
    expect(active.state).toBe("active");
    expect(active.activatedAt).toBeInstanceOf(Date);
    expect(await codeOf(transitionOutcome(deps(), seed.admin, "life-1", "activate", null))).toBe("illegal_transition");
    const abandoned = await transitionOutcome(deps(), seed.admin, "life-1", "abandon", "priorities changed");
    expect(abandoned.state).toBe("abandoned");
    expect(abandoned.closedAt).toBeInstanceOf(Date);
    // A closed outcome does not take new revisions.
    expect(
      await codeOf(
        applyOutcome(deps(), seed.admin, { source: outcomeVariant("life-1", [["max_harm: 3%", "max_harm: 1%"]]) }),
      ),
    ).toBe("outcome_closed");
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: active.id });
    expect(events.map((e) => e.action)).toEqual(["outcome.abandoned", "outcome.activated", "outcome.created"]);
    expect(events[0]?.after).toMatchObject({ state: "abandoned", reason: "priorities changed" });
  });

  it("agents cannot activate outcomes", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("life-agent") });
    const agent = await seed.key("cursor-agent", "agent");
    expect(await codeOf(transitionOutcome(deps(), agent.caller, "life-agent", "activate", null))).toBe("forbidden");
  });
});

describe("hypotheses, gates and the experiment lifecycle", () => {
  it("hypotheses need an active outcome", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("exp-draft") });
    expect(await codeOf(proposeExperiment(deps(), seed.admin, "exp-draft", hypothesis("Shorter form")))).toBe(
      "outcome_not_active",
    );
  });

  it("runs proposed → approved → building → built → running through the gates", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("exp-flow") });
    await transitionOutcome(deps(), seed.admin, "exp-flow", "activate", null);

    const first = await proposeExperiment(deps(), seed.admin, "exp-flow", hypothesis("Show delivery date early"));
    const second = await proposeExperiment(deps(), seed.admin, "exp-flow", hypothesis("Guest checkout first"));
    expect(first.gateOpened).toBe(true);
    expect(second.gateOpened).toBe(false);
    expect(second.gate.id).toBe(first.gate.id);
    expect(first.gate).toMatchObject({
      kind: "portfolio_review",
      status: "pending",
      assignees: ["maya.pm@acme.example"],
      backup: "lead@acme.example",
      slaSeconds: 48 * 3600,
    });
    expect(first.experiment).toMatchObject({
      key: "show-delivery-date-early",
      state: "proposed",
      source: "human",
      arms: [
        { name: "control", weight: 0.5 },
        { name: "treatment", weight: 0.5 },
      ],
    });

    // Maya is the assignee: she approves the whole portfolio.
    const maya = await seed.key("maya.pm@acme.example", "approver");
    const decided = await decideGate(deps(), maya.caller, first.gate.id, {
      decision: "approve",
      reason: "worth a try",
    });
    expect(decided.gate.status).toBe("approved");
    expect(decided.gate.decision).toMatchObject({
      decision: "approve",
      decidedBy: "maya.pm@acme.example",
      channel: "api",
    });
    expect(decided.experiments.map((e) => e.state)).toEqual(["approved", "approved"]);

    // A new hypothesis opens a new portfolio review.
    const third = await proposeExperiment(deps(), seed.admin, "exp-flow", hypothesis("Trust badges"));
    expect(third.gateOpened).toBe(true);
    expect(third.gate.id).not.toBe(first.gate.id);

    // An agent builds it; a build inside forbidden paths is refused and audited.
    const agent = await seed.key("claude-code", "agent");
    const claimed = await transitionExperiment(deps(), agent.caller, first.experiment.id, { action: "claim" });
    expect(claimed.experiment).toMatchObject({ state: "building", claimedBy: "claude-code" });
    expect(
      await codeOf(
        transitionExperiment(deps(), agent.caller, first.experiment.id, {
          action: "report_built",
          changedPaths: ["apps/web/src/checkout/Summary.tsx", "services/billing/charge.ts"],
        }),
      ),
    ).toBe("forbidden_paths_touched");
    const refused = await audit.listAuditEvents(t.db, seed.workspaceId, {
      subjectId: first.experiment.id,
      action: "experiment.build_refused",
    });
    expect(refused).toHaveLength(1);
    expect(refused[0]?.after).toEqual({ forbiddenPaths: ["services/billing/charge.ts"] });

    const built = await transitionExperiment(deps(), agent.caller, first.experiment.id, {
      action: "report_built",
      changedPaths: ["apps/web/src/checkout/Summary.tsx"],
    });
    expect(built.experiment.state).toBe("built");
    expect(built.openedGates).toHaveLength(1);
    const launchGate = built.openedGates[0]!;
    expect(launchGate).toMatchObject({ kind: "launch_approval", experimentId: first.experiment.id, slaSeconds: 86400 });

    // Launching is the gate's job, not a direct action; agents never decide gates.
    expect(await codeOf(transitionExperiment(deps(), seed.admin, first.experiment.id, { action: "launch" }))).toBe(
      "forbidden",
    );
    expect(await codeOf(decideGate(deps(), agent.caller, launchGate.id, { decision: "approve" }))).toBe(
      "agents_cannot_decide",
    );
    expect(await codeOf(decideGate(deps(), maya.caller, launchGate.id, { decision: "ship" }))).toBe("invalid_decision");

    const launched = await decideGate(deps(), maya.caller, launchGate.id, { decision: "approve" });
    expect(launched.experiments.map((e) => e.state)).toEqual(["running"]);

    const paused = await transitionExperiment(deps(), seed.admin, first.experiment.id, {
      action: "pause",
      reason: "incident",
    });
    expect(paused.experiment.state).toBe("paused");
    // Resuming is not a direct action: the pause opened an analysis review that decides it.
    expect(await codeOf(transitionExperiment(deps(), seed.admin, first.experiment.id, { action: "resume" }))).toBe(
      "forbidden",
    );
    expect(paused.openedGates.map((g) => [g.kind, g.context.action])).toEqual([["analysis_review", "pause"]]);
    expect(await codeOf(decideGate(deps(), maya.caller, paused.openedGates[0]!.id, { decision: "ship" }))).toBe(
      "invalid_decision",
    );
    const resumed = await decideGate(deps(), maya.caller, paused.openedGates[0]!.id, { decision: "resume" });
    expect(resumed.experiments.map((e) => e.state)).toEqual(["running"]);
    expect(resumed.learningId).toBeNull();
    const analysing = await transitionExperiment(deps(), seed.admin, first.experiment.id, { action: "analyse" });
    expect(analysing.experiment.state).toBe("analysing");
    expect(analysing.openedGates.map((g) => g.kind)).toEqual(["analysis_review"]);
    const shipped = await decideGate(deps(), maya.caller, analysing.openedGates[0]!.id, { decision: "ship" });
    expect(shipped.gate.status).toBe("approved");
    expect(shipped.experiments.map((e) => e.state)).toEqual(["shipped"]);
    // Concluding writes the learning, in the decision's transaction.
    expect(shipped.learningId).not.toBeNull();
    const learned = await learnings.findLearningForSummary(t.db, shipped.learningId!);
    expect(learned).toMatchObject({ experimentId: first.experiment.id, decision: "ship", source: "rules" });
    expect(learned?.statement).toContain("decision: ship");

    const detail = await getExperiment(deps(), seed.admin, first.experiment.key);
    expect(detail.gates.map((g) => g.kind).sort()).toEqual([
      "analysis_review",
      "analysis_review",
      "launch_approval",
      "portfolio_review",
    ]);
    const history = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: first.experiment.id });
    expect(history.map((e) => e.action).reverse()).toEqual([
      "experiment.proposed",
      "experiment.approved",
      "experiment.claimed",
      "experiment.build_refused",
      "experiment.built",
      "experiment.launched",
      "experiment.paused",
      "experiment.resumed",
      "experiment.analysing",
      "experiment.shipped",
    ]);
  });

  it("rejecting a launch sends the experiment back to building", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("exp-rework") });
    await transitionOutcome(deps(), seed.admin, "exp-rework", "activate", null);
    const p = await proposeExperiment(deps(), seed.admin, "exp-rework", hypothesis("Autofill address"));
    await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
    await transitionExperiment(deps(), seed.admin, p.experiment.id, { action: "claim", claimedBy: "cursor" });
    const built = await transitionExperiment(deps(), seed.admin, p.experiment.id, {
      action: "report_built",
      changedPaths: [],
    });
    const rejected = await decideGate(deps(), seed.admin, built.openedGates[0]!.id, {
      decision: "reject",
      reason: "copy is wrong",
    });
    expect(rejected.gate.status).toBe("rejected");
    expect(rejected.experiments.map((e) => e.state)).toEqual(["building"]);
  });

  it("a portfolio rejection rejects every proposed hypothesis of the gate; people outside the gate cannot decide", async () => {
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("exp-reject") });
    await transitionOutcome(deps(), seed.admin, "exp-reject", "activate", null);
    const a = await proposeExperiment(deps(), seed.admin, "exp-reject", hypothesis("Bigger button"));
    await proposeExperiment(deps(), seed.admin, "exp-reject", hypothesis("Smaller button"));
    const outsider = await seed.key("someone@else.example", "approver");
    expect(await codeOf(decideGate(deps(), outsider.caller, a.gate.id, { decision: "approve" }))).toBe(
      "gate_not_assignee",
    );
    const backup = await seed.key("lead@acme.example", "member");
    const result = await decideGate(deps(), backup.caller, a.gate.id, { decision: "reject", reason: "not now" });
    expect(result.experiments.map((e) => e.state)).toEqual(["rejected", "rejected"]);
    const gate = await getGate(deps(), seed.admin, a.gate.id);
    expect(gate.gate.decision?.decidedBy).toBe("lead@acme.example");
    expect(await codeOf(decideGate(deps(), seed.admin, a.gate.id, { decision: "approve" }))).toBe(
      "gate_already_decided",
    );
  });
});
