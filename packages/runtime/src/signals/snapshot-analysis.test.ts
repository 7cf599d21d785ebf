import { NO_COUNTS } from "@outcome-runtime/core";
import { parseOutcome } from "@outcome-runtime/spec";
import type { ArmTotals } from "@outcome-runtime/stats";
import { outcomeVariant } from "@outcome-runtime/testing";
import { describe, expect, it } from "vitest";
import { analyseSnapshot, completeControl, EMPTY_CARRY, makeStatsPlan, type Snapshot } from "./snapshot-analysis";

/** The normalised spec of a variant of the example outcome (proportion signal, baseline 0.68, expected effect 3 %). */
function spec(replacements: [string, string][] = []) {
  const parsed = parseOutcome(outcomeVariant("plan", replacements));
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.message).join("\n"));
  return parsed.spec;
}

const control = { units: 5_000, sum: 3_400, sumSq: 3_400 };

describe("makeStatsPlan", () => {
  it("tunes τ² to the planned sample of the expected effect", () => {
    const plan = makeStatsPlan(spec(), control);
    expect(plan?.tau2).toBeGreaterThan(0);
    expect(plan?.sequentialPerArm).toBeGreaterThan(plan?.fixedPerArm ?? Number.POSITIVE_INFINITY);
  });

  it("falls back to the default tuning for a design planSample does not size, instead of throwing", () => {
    // power 0.3 is valid in outcome.yaml; planSample takes power in [0.5, 1)
    const lowPower = makeStatsPlan(spec([["power: 0.8", "power: 0.3"]]), control);
    expect(lowPower).toMatchObject({
      sequentialPerArm: null,
      tau2Source: expect.stringContaining("min_sample_per_arm"),
    });
    expect(lowPower?.tau2).toBeGreaterThan(0);
    // a declared baseline of 1 (decrease target) has no variance, and planSample takes a baseline in (0, 1)
    const certain = makeStatsPlan(spec([["baseline: 0.68", "baseline: 1"]]), control);
    expect(certain?.tau2).toBeGreaterThan(0);
  });

  it("plans with the observed rate when the declared baseline is 0, so the experiment is analysed at all", () => {
    const plan = makeStatsPlan(
      spec([
        ["baseline: 0.68", "baseline: 0"],
        [
          "direction: decrease\n  value: 10%\n  relative: true",
          "direction: increase\n  value: 0.05\n  relative: false",
        ],
      ]),
      { units: 5_000, sum: 250, sumSq: 250 },
    );
    expect(plan?.tau2).toBeGreaterThan(0);
    expect(plan?.variance).toBeCloseTo(0.05 * 0.95, 3);
  });

  it("does not fix the plan on an empty control arm when no baseline is declared", () => {
    const noBaseline = spec([["  baseline: 0.68\n", ""]]);
    expect(makeStatsPlan(noBaseline, { units: 0, sum: 0, sumSq: 0 })).toBeNull();
    expect(makeStatsPlan(noBaseline, control)?.baseline).toBeCloseTo(3_400.5 / 5_001, 12);
  });
});

describe("analyseSnapshot", () => {
  const arms = [
    { name: "control", weight: 0.5 },
    { name: "treatment", weight: 0.5 },
  ];
  const startedAt = new Date("2026-12-01T00:00:00Z");
  const look = (days: number, c: ArmTotals, t: ArmTotals): Snapshot => ({
    ts: new Date(startedAt.getTime() + days * 86_400_000),
    arms: new Map([
      ["control", c],
      ["treatment", t],
    ]),
  });
  const rate = (units: number, p: number): ArmTotals => ({
    units,
    sum: Math.round(units * p),
    sumSq: Math.round(units * p),
  });
  const plan = makeStatsPlan(spec(), control);
  if (plan === null) throw new Error("the example outcome has a plan");

  it("pauses a treatment that raises abandonment past the kill threshold, after the warm-up", () => {
    // Abandonment 0.68 → 0.80 (the target is a decrease): 18 % worse than control, the kill threshold is 3 %.
    const result = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(2, rate(20_000, 0.68), rate(20_000, 0.8)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    expect(result.decision).toMatchObject({ action: "pause", reason: "kill" });
    expect(result.row.decision).toBe(result.decision);
    expect(result.head.effect).toBeCloseTo(0.12, 9);
    expect(result.row.effect).toBe(result.head.effect);
    // A decision starts the decision rules' counts afresh (a resumed experiment gets its limits again).
    expect(result.carry.rules).toEqual(NO_COUNTS);
  });

  it("decides nothing while warming up, and carries the running test state to the next look", () => {
    const first = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(0.5, rate(100, 0.68), rate(100, 0.9)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    expect(first.decision.action).toBe("continue");
    expect(first.carry.arms.treatment).toBeDefined();
    expect((first.row.details as { carry: unknown }).carry).toEqual(first.carry);
    const second = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(0.6, rate(200, 0.68), rate(200, 0.68)),
      guardrailTotals: new Map(),
      plan,
      carry: first.carry,
      startedAt,
    });
    // The always-valid p-value is a running minimum: it never rises from one look to the next.
    expect(second.head.pValue).toBeLessThanOrEqual(first.head.pValue ?? 1);
  });

  it("fixes a guardrail's τ² at its first look and keeps it at the next", () => {
    const guardrail = (p: number) =>
      new Map([
        [
          "payment_error_rate",
          new Map([
            ["control", rate(20_000, p)],
            ["treatment", rate(20_000, p)],
          ]),
        ],
      ]);
    const snapshot = look(2, rate(20_000, 0.68), rate(20_000, 0.68));
    const first = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot,
      guardrailTotals: guardrail(0.01),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const tau2 = first.carry.guardrails.payment_error_rate?.tau2;
    expect(tau2).toBeGreaterThan(0);
    const second = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot,
      guardrailTotals: guardrail(0.05),
      plan,
      carry: first.carry,
      startedAt,
    });
    expect(second.carry.guardrails.payment_error_rate?.tau2).toBe(tau2);
    expect(second.row.guardrails).toMatchObject([{ metric: "payment_error_rate", arm: "treatment" }]);
  });

  it("takes only a snapshot in which every arm has reported", () => {
    const partial: Snapshot = { ts: startedAt, arms: new Map([["control", rate(100, 0.68)]]) };
    expect(completeControl(arms, partial)).toBeNull();
    expect(() =>
      analyseSnapshot({
        spec: spec(),
        arms,
        snapshot: partial,
        guardrailTotals: new Map(),
        plan,
        carry: EMPTY_CARRY,
        startedAt,
      }),
    ).toThrow(/lacks an arm/);
  });
});
