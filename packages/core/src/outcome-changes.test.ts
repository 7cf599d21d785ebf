import { describe, expect, it } from "vitest";
import type { Actor } from "./gate.machine";
import { diffSpecs, isSensitivePath, mayReviseOutcome } from "./outcome-changes";

describe("diffSpecs", () => {
  it("lists each changed leaf with its JSON path, in sorted order, and nothing for equal specs", () => {
    const before = {
      owner: "maya.pm@acme.example",
      constraints: { kill: { max_harm: 0.02, relative: true }, scope: { forbidden_paths: ["services/billing/**"] } },
      name: "Checkout",
    };
    const after = {
      name: "Checkout",
      owner: "mallory@acme.example",
      constraints: { kill: { relative: true, max_harm: 0.99 }, scope: { forbidden_paths: [] } },
    };
    expect(diffSpecs(before, after)).toEqual([
      { path: "constraints.kill.max_harm", before: 0.02, after: 0.99 },
      { path: "constraints.scope.forbidden_paths", before: ["services/billing/**"], after: [] },
      { path: "owner", before: "maya.pm@acme.example", after: "mallory@acme.example" },
    ]);
    // Key order does not make a change.
    expect(diffSpecs(after, { ...after })).toEqual([]);
    expect(diffSpecs({ a: { b: 1, c: 2 } }, { a: { c: 2, b: 1 } })).toEqual([]);
  });

  it("lists the fields of an added or removed section, with null for the absent side", () => {
    expect(diffSpecs({ gates: {} }, { gates: { launch_approval: { assignees: ["m@x.example"], sla: 60 } } })).toEqual([
      { path: "gates.launch_approval.assignees", before: null, after: ["m@x.example"] },
      { path: "gates.launch_approval.sla", before: null, after: 60 },
    ]);
    expect(diffSpecs({ scope: { allowed_paths: ["a/**"] } }, {})).toEqual([
      { path: "scope.allowed_paths", before: ["a/**"], after: null },
    ]);
  });

  it("compares lists of objects of the same length item by item, others as one value", () => {
    const g = (max: number) => ({ metric: "payment_error_rate", max_regression: max });
    expect(diffSpecs({ guardrails: [g(0.005)] }, { guardrails: [g(0.5)] })).toEqual([
      { path: "guardrails[0].max_regression", before: 0.005, after: 0.5 },
    ]);
    expect(diffSpecs({ guardrails: [g(0.005)] }, { guardrails: [] })).toEqual([
      { path: "guardrails", before: [g(0.005)], after: [] },
    ]);
    expect(diffSpecs({ assignees: ["a@x.example"] }, { assignees: ["b@x.example"] })).toEqual([
      { path: "assignees", before: ["a@x.example"], after: ["b@x.example"] },
    ]);
  });
});

describe("isSensitivePath", () => {
  it("flags who decides, scope, kill, guardrails and sources, below or above the listed fields", () => {
    for (const path of [
      "owner",
      "gates.launch_approval.assignees",
      "gates.portfolio_review.backup",
      "gates.analysis_review.sla",
      "gates",
      "constraints.scope.forbidden_paths",
      "constraints.scope.allowed_paths",
      "constraints.kill.max_harm",
      "constraints.guardrails",
      "constraints.guardrails[0].max_regression",
      "constraints.guardrails[1].connector.database_url_env",
      "signal.connector.query",
      "signal.connector.secret_env",
      "target.direction",
      "experiment_defaults.min_sample_per_arm",
      "experiment_defaults.decision_rules.consecutive_error_limit",
      "constraints",
    ]) {
      expect(isSensitivePath(path), path).toBe(true);
    }
  });

  it("leaves wording, horizon and statistics defaults alone", () => {
    for (const path of [
      "name",
      "description",
      "objective",
      "horizon.seconds",
      "target.value",
      "signal.poll_interval",
      "signal.description",
      "experiment_defaults.alpha",
      "constraints.max_concurrent_experiments",
      "ownership",
    ]) {
      expect(isSensitivePath(path), path).toBe(false);
    }
  });
});

describe("mayReviseOutcome", () => {
  const outcome = { slug: "checkout", owner: "Maya.PM@acme.example" };
  const actor = (name: string, role: Actor["role"]): Actor => ({ id: "k", name, role });

  it("lets the owner (any case) and admins revise", () => {
    expect(mayReviseOutcome(actor("maya.pm@acme.example", "member"), outcome)).toBeNull();
    expect(mayReviseOutcome(actor(" MAYA.PM@ACME.EXAMPLE ", "approver"), outcome)).toBeNull();
    expect(mayReviseOutcome(actor("bootstrap-admin", "admin"), outcome)).toBeNull();
  });

  it("refuses anyone else with not_outcome_owner naming the owner and the fix", () => {
    const verdict = mayReviseOutcome(actor("mallory@acme.example", "member"), outcome);
    expect(verdict).toMatchObject({
      code: "not_outcome_owner",
      details: { field: "owner", owner: "Maya.PM@acme.example", outcome: "checkout", actor: "mallory@acme.example" },
    });
    expect(verdict?.message).toContain("Ask Maya.PM@acme.example or an admin");
    expect(mayReviseOutcome(actor("maya.pm@acme.example.evil", "approver"), outcome)?.code).toBe("not_outcome_owner");
  });
});
