import { describe, expect, it } from "vitest";
import {
  type Actor,
  applyTransition,
  availableActions,
  DomainError,
  EXPERIMENT_ACTIONS,
  EXPERIMENT_STATES,
  experimentMachine,
  GATE_ACTIONS,
  GATE_STATES,
  GuardRejectedError,
  gateMachine,
  IllegalTransitionError,
  isFinal,
  OUTCOME_ACTIONS,
  OUTCOME_STATES,
  outcomeMachine,
} from "./index";

/*
 * The expected tables below are written out by hand from DESIGN §4, independently
 * of the machines' own tables, so a wrong row in a machine fails here.
 * Each entry: [from, action, to].
 */
const OUTCOME_LEGAL: readonly [string, string, string][] = [
  ["draft", "activate", "active"],
  ["draft", "abandon", "abandoned"],
  ["active", "achieve", "achieved"],
  ["active", "miss", "missed"],
  ["active", "abandon", "abandoned"],
  ["achieved", "reopen", "active"],
];

const EXPERIMENT_LEGAL: readonly [string, string, string][] = [
  ["proposed", "approve", "approved"],
  ["proposed", "reject", "rejected"],
  ["approved", "claim", "building"],
  ["building", "claim", "building"],
  ["building", "release", "approved"],
  ["building", "report_built", "built"],
  ["built", "launch", "running"],
  ["built", "rework", "building"],
  ["running", "pause", "paused"],
  ["paused", "resume", "running"],
  ["running", "analyse", "analysing"],
  ["paused", "analyse", "analysing"],
  ["analysing", "extend", "running"],
  ["analysing", "ship", "shipped"],
  ["analysing", "roll_back", "rolled_back"],
  ["paused", "roll_back", "rolled_back"],
  ["analysing", "iterate", "iterated"],
];

const GATE_LEGAL: readonly [string, string, string][] = [
  ["pending", "approve", "approved"],
  ["pending", "reject", "rejected"],
  ["pending", "expire", "expired"],
];

const admin: Actor = { id: "k1", name: "root@acme.example", role: "admin" };

/** Contexts under which every guard passes, so only the table decides. */
const permissive = {
  outcome: { targetMet: true, horizonPassed: true },
  experiment: { claimedBy: "claude-code", heldBy: "claude-code", forbiddenPathsTouched: [], launchGateApproved: true },
  gate: { actor: admin, assignees: [], backup: null },
};

function enumerate(
  states: readonly string[],
  actions: readonly string[],
  legal: readonly [string, string, string][],
): { from: string; action: string; to: string | null }[] {
  const cases: { from: string; action: string; to: string | null }[] = [];
  for (const from of states) {
    for (const action of actions) {
      const row = legal.find(([f, a]) => f === from && a === action);
      cases.push({ from, action, to: row ? row[2] : null });
    }
  }
  return cases;
}

describe.each([
  ["outcome", outcomeMachine, OUTCOME_STATES, OUTCOME_ACTIONS, OUTCOME_LEGAL, permissive.outcome],
  ["experiment", experimentMachine, EXPERIMENT_STATES, EXPERIMENT_ACTIONS, EXPERIMENT_LEGAL, permissive.experiment],
  ["gate", gateMachine, GATE_STATES, GATE_ACTIONS, GATE_LEGAL, permissive.gate],
] as const)("%s machine", (name, machine, states, actions, legal, context) => {
  const cases = enumerate(states, actions, legal);

  it(`covers all ${states.length}×${actions.length} (state, action) pairs`, () => {
    expect(cases).toHaveLength(states.length * actions.length);
    expect(cases.filter((c) => c.to !== null)).toHaveLength(legal.length);
  });

  it.each(cases.filter((c) => c.to !== null))("legal: $from --$action--> $to", ({ from, action, to }) => {
    // biome-ignore lint/suspicious/noExplicitAny: the table is typed per machine; the enumeration is generic
    const result = applyTransition(machine as any, from, action, context);
    expect(result).toMatchObject({ from, action, to });
    if (to === from) {
      // A row back to the same state (a builder claiming again) changes nothing and says nothing.
      expect(result.events).toEqual([]);
      return;
    }
    expect(result.events.length).toBeGreaterThan(0);
    expect(result.events[0]).toMatch(new RegExp(`^${name}\\.`));
  });

  it.each(cases.filter((c) => c.to === null))("illegal: $from --$action--> ✗", ({ from, action }) => {
    let caught: unknown;
    try {
      // biome-ignore lint/suspicious/noExplicitAny: generic enumeration over three machines
      applyTransition(machine as any, from, action, context);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(IllegalTransitionError);
    const err = caught as IllegalTransitionError;
    expect(err.code).toBe("illegal_transition");
    expect(err.details).toMatchObject({ machine: name, from, action });
    expect(err.message).toContain(from);
  });

  it("final states have no outgoing transition and every other state has one", () => {
    for (const state of states) {
      // biome-ignore lint/suspicious/noExplicitAny: generic over machines
      const m = machine as any;
      expect(isFinal(m, state)).toBe(availableActions(m, state).length === 0);
    }
  });
});

describe("guards", () => {
  function codeOf(fn: () => unknown): string | undefined {
    try {
      fn();
    } catch (error) {
      if (error instanceof DomainError) return error.code;
      throw error;
    }
    return undefined;
  }

  it("an outcome is achieved only when its target is met", () => {
    expect(codeOf(() => applyTransition(outcomeMachine, "active", "achieve", {}))).toBe("target_not_met");
    expect(codeOf(() => applyTransition(outcomeMachine, "active", "achieve", { targetMet: false }))).toBe(
      "target_not_met",
    );
  });

  it("an outcome is missed only after its horizon", () => {
    expect(codeOf(() => applyTransition(outcomeMachine, "active", "miss", { horizonPassed: false }))).toBe(
      "horizon_not_reached",
    );
  });

  it("claiming needs a name", () => {
    expect(codeOf(() => applyTransition(experimentMachine, "approved", "claim", { claimedBy: "  " }))).toBe(
      "claim_required",
    );
  });

  it("a builder claiming again what they hold changes nothing; another builder is refused, naming the holder", () => {
    const again = applyTransition(experimentMachine, "building", "claim", { claimedBy: "cursor", heldBy: "cursor" });
    expect(again).toMatchObject({ from: "building", to: "building", events: [] });
    let caught: unknown;
    try {
      applyTransition(experimentMachine, "building", "claim", {
        key: "one-page",
        claimedBy: "claude",
        heldBy: "cursor",
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GuardRejectedError);
    expect((caught as GuardRejectedError).code).toBe("already_claimed");
    expect((caught as GuardRejectedError).details).toMatchObject({ claimedBy: "cursor", state: "building" });
    expect((caught as GuardRejectedError).message).toContain("experiment one-page is already being built by cursor");
  });

  it("people and agents only pause the experiments of a closed outcome; the runtime's own moves go on", () => {
    const member: Actor = { id: "k11", name: "dev@acme.example", role: "member" };
    const worker: Actor = { id: "worker", name: "worker", role: "system" };
    for (const state of ["achieved", "missed", "abandoned"] as const) {
      const outcome = { slug: "checkout", state };
      // The closed outcome is named before the table is read: a move the table refuses is refused for the outcome.
      expect(codeOf(() => applyTransition(experimentMachine, "approved", "claim", { actor: member, outcome }))).toBe(
        "outcome_closed",
      );
      expect(codeOf(() => applyTransition(experimentMachine, "running", "ship", { actor: member, outcome }))).toBe(
        "outcome_closed",
      );
      expect(applyTransition(experimentMachine, "running", "pause", { actor: member, outcome }).to).toBe("paused");
      expect(applyTransition(experimentMachine, "running", "analyse", { actor: worker, outcome }).to).toBe("analysing");
    }
    const open = { slug: "checkout", state: "active" } as const;
    expect(applyTransition(experimentMachine, "running", "analyse", { actor: member, outcome: open }).to).toBe(
      "analysing",
    );
  });

  it("a build touching forbidden paths is refused, naming the paths", () => {
    let caught: unknown;
    try {
      applyTransition(experimentMachine, "building", "report_built", {
        forbiddenPathsTouched: ["services/billing/charge.ts"],
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GuardRejectedError);
    expect((caught as GuardRejectedError).code).toBe("forbidden_paths_touched");
    expect((caught as GuardRejectedError).details.paths).toEqual(["services/billing/charge.ts"]);
  });

  it("only the claimant (or an admin) reports a build", () => {
    const other: Actor = { id: "k7", name: "cursor", role: "agent" };
    const ctx = { claimedBy: "claude-code", forbiddenPathsTouched: [] };
    expect(codeOf(() => applyTransition(experimentMachine, "building", "report_built", { ...ctx, actor: other }))).toBe(
      "not_claimant",
    );
    const builder: Actor = { id: "k8", name: "claude-code", role: "agent" };
    expect(applyTransition(experimentMachine, "building", "report_built", { ...ctx, actor: builder }).to).toBe("built");
    expect(applyTransition(experimentMachine, "building", "report_built", { ...ctx, actor: admin }).to).toBe("built");
  });

  it("agents cannot resume a paused experiment; people can", () => {
    const agent: Actor = { id: "k9", name: "claude-code", role: "agent" };
    expect(codeOf(() => applyTransition(experimentMachine, "paused", "resume", { actor: agent }))).toBe("forbidden");
    const member: Actor = { id: "k10", name: "dev@acme.example", role: "member" };
    expect(applyTransition(experimentMachine, "paused", "resume", { actor: member }).to).toBe("running");
  });

  it("launch needs an approved launch gate", () => {
    expect(codeOf(() => applyTransition(experimentMachine, "built", "launch", {}))).toBe("launch_gate_not_approved");
  });

  it("agents never decide gates", () => {
    const agent: Actor = { id: "k2", name: "claude-code", role: "agent" };
    expect(
      codeOf(() => applyTransition(gateMachine, "pending", "approve", { actor: agent, assignees: ["claude-code"] })),
    ).toBe("agents_cannot_decide");
  });

  it("approvers decide only gates they are assigned to or back up", () => {
    const maya: Actor = { id: "k3", name: "Maya.PM@acme.example", role: "approver" };
    const ctx = { actor: maya, assignees: ["maya.pm@acme.example"], backup: "lead@acme.example" };
    expect(applyTransition(gateMachine, "pending", "approve", ctx).to).toBe("approved");
    expect(
      codeOf(() =>
        applyTransition(gateMachine, "pending", "reject", { ...ctx, assignees: ["other@acme.example"], backup: null }),
      ),
    ).toBe("gate_not_assignee");
    const backup: Actor = { id: "k4", name: "lead@acme.example", role: "member" };
    expect(applyTransition(gateMachine, "pending", "reject", { ...ctx, actor: backup }).to).toBe("rejected");
  });

  it("a gate with no assignees needs an approver or admin", () => {
    const member: Actor = { id: "k5", name: "dev@acme.example", role: "member" };
    expect(codeOf(() => applyTransition(gateMachine, "pending", "approve", { actor: member, assignees: [] }))).toBe(
      "gate_not_assignee",
    );
    const approver: Actor = { id: "k6", name: "a@acme.example", role: "approver" };
    expect(applyTransition(gateMachine, "pending", "approve", { actor: approver, assignees: [] }).to).toBe("approved");
  });

  it("expiry needs no actor", () => {
    expect(applyTransition(gateMachine, "pending", "expire", {}).to).toBe("expired");
  });
});
