import { NO_COUNTS } from "@outcome-runtime/core";
import { parseOutcome } from "@outcome-runtime/spec";
import {
  type ArmTotals,
  fixedHorizonTestOfEstimate,
  holmAdjust,
  ratioArm,
  ratioEstimate,
  ratioSequentialTest,
} from "@outcome-runtime/stats";
import { outcomeVariant } from "@outcome-runtime/testing";
import { describe, expect, it } from "vitest";
import {
  analyseSnapshot,
  completeControl,
  EMPTY_CARRY,
  harmEvidence,
  makeStatsPlan,
  type Snapshot,
  type SnapshotTotals,
} from "./snapshot-analysis";

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

  it("pauses a harmful treatment within the first hour of a min_duration: 1d experiment", () => {
    // 6 000 units per arm in 30 minutes, past min_sample_per_arm (5 000); abandonment 0.68 → 0.80.
    const result = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(0.5 / 24, rate(6_000, 0.68), rate(6_000, 0.8)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    expect(result.decision, result.decision.detail).toMatchObject({ action: "pause", reason: "kill" });
    // A win that early is held back until min_duration.
    const win = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(0.5 / 24, rate(6_000, 0.68), rate(6_000, 0.55)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    expect(win.head.pValue).toBeLessThan(0.05);
    expect(win.decision).toMatchObject({ action: "continue", reason: "warming_up" });
  });

  it("with three treatments: Holm-adjusted p-values decide, each confidence sequence at α/3, the kill at α", () => {
    const three = [
      { name: "control", weight: 0.25 },
      { name: "b", weight: 0.25 },
      { name: "c", weight: 0.25 },
      { name: "d", weight: 0.25 },
    ];
    const snapshot: Snapshot = {
      ts: new Date(startedAt.getTime() + 3 * 86_400_000),
      arms: new Map([
        ["control", rate(20_000, 0.68)],
        ["b", rate(20_000, 0.67)],
        ["c", rate(20_000, 0.675)],
        ["d", rate(20_000, 0.68)],
      ]),
    };
    const result = analyseSnapshot({
      spec: spec(),
      arms: three,
      snapshot,
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const comparisons = result.row.details.comparisons;
    expect(comparisons.map((c) => c.arm)).toEqual(["b", "c", "d"]);
    const p = comparisons.map((c) => c.pValue as number);
    const sorted = [...p].sort((x, y) => x - y);
    // Holm: the smallest × 3, the next max(previous, × 2), the largest max(previous, × 1).
    const expected = new Map<number, number>();
    let running = 0;
    sorted.forEach((x, rank) => {
      running = Math.max(running, Math.min(1, (3 - rank) * x));
      expected.set(x, running);
    });
    for (const c of comparisons) expect(c.adjustedPValue).toBeCloseTo(expected.get(c.pValue as number) as number, 12);
    // The analysis's headline p-value (REST, the dashboard, the webhook) is the one the decision uses.
    expect(result.row.pValue).toBe(comparisons[0]?.adjustedPValue);
    expect(result.head.pValue).toBe(comparisons[0]?.adjustedPValue);
    // The displayed sequence is at α/3: wider than the one at α the kill-switch reads.
    const b = result.carry.arms.b;
    const bKill = result.carry.killArms?.b;
    expect(b && bKill).toBeTruthy();
    expect(b!.ci[0]).toBeLessThan(bKill!.ci[0]);
    expect(b!.ci[1]).toBeGreaterThan(bKill!.ci[1]);
    // Two arms keep the former record: no adjusted p-value, no kill sequence of their own.
    const two = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(3, rate(20_000, 0.68), rate(20_000, 0.67)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    expect(two.row.details.comparisons[0]?.adjustedPValue).toBeUndefined();
    expect(two.carry.killArms).toBeUndefined();
  });

  it("does not stop on a chi-square SRM alarm alone, and says so in the comparison", () => {
    // 10 600 against 10 000 units: chi-square p ≈ 4e-5 at this single look; the sequential test needs more.
    const result = analyseSnapshot({
      spec: spec(),
      arms,
      snapshot: look(3, rate(10_600, 0.68), rate(10_000, 0.68)),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const srm = result.row.details.srm;
    expect(srm.alarm).toBe(true);
    expect(srm.sequentialAlarm).toBe(false);
    expect(result.decision.reason).not.toBe("srm");
    expect(result.row.details.comparisons[0]?.warnings.join(" ")).toContain("information only");
  });

  it("reports secondary metrics with their always-valid intervals and never decides on them", () => {
    const withSecondary = {
      ...spec(),
      secondary_metrics: [
        {
          metric: "pages_per_session",
          kind: "mean" as const,
          connector: { type: "postgres", database_url_env: "OUTCOME_RUNTIME_SOURCE_X", query: "SELECT 1" },
        },
      ],
    } as ReturnType<typeof spec>;
    // Pages per session: control mean 3 (variance 4), treatment mean 2 (much worse) over 20 000 units each.
    const meanArm = (units: number, mean: number): ArmTotals => ({
      units,
      sum: units * mean,
      sumSq: units * (4 + mean * mean),
    });
    const secondaryTotals = new Map([
      [
        "pages_per_session",
        new Map([
          ["control", meanArm(20_000, 3)],
          ["treatment", meanArm(20_000, 2)],
        ]),
      ],
    ]);
    const first = analyseSnapshot({
      spec: withSecondary,
      arms,
      snapshot: look(3, rate(20_000, 0.68), rate(20_000, 0.68)),
      guardrailTotals: new Map(),
      secondaryTotals,
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const reported = first.row.details.secondary;
    expect(reported).toHaveLength(1);
    expect(reported?.[0]).toMatchObject({ metric: "pages_per_session", arm: "treatment", direction: "increase" });
    expect(reported?.[0]?.effect).toBeCloseTo(-1, 9);
    expect(reported?.[0]?.pValue).toBeLessThan(1e-9);
    expect(reported?.[0]?.ci?.[1]).toBeLessThan(0);
    // A far worse secondary metric decides nothing: the primary metric is flat.
    expect(first.decision.reason, first.decision.detail).not.toMatch(/kill|guardrail|win|loss/);
    expect(first.decision.detail).not.toContain("pages_per_session");
    // τ² is fixed at the first look and carried.
    const tau2 = first.carry.secondary?.pages_per_session?.tau2;
    expect(tau2).toBeGreaterThan(0);
    const second = analyseSnapshot({
      spec: withSecondary,
      arms,
      snapshot: look(4, rate(30_000, 0.68), rate(30_000, 0.68)),
      guardrailTotals: new Map(),
      secondaryTotals: new Map([
        [
          "pages_per_session",
          new Map([
            ["control", meanArm(30_000, 3)],
            ["treatment", meanArm(30_000, 2.9)],
          ]),
        ],
      ]),
      plan,
      carry: first.carry,
      startedAt,
    });
    expect(second.carry.secondary?.pages_per_session?.tau2).toBe(tau2);
    // The always-valid p-value is a running minimum across looks.
    expect(second.row.details.secondary?.[0]?.pValue).toBeLessThanOrEqual(reported?.[0]?.pValue ?? 1);
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
    expect(first.decision.reason, first.decision.detail).not.toMatch(/kill|guardrail|win|loss/);
    expect(first.decision.detail).not.toContain("pages_per_session");
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

  describe("with a pre-exposure covariate (CUPED)", () => {
    /** A deterministic uniform draw in [0, 1) (mulberry32). */
    function uniform(seed: number): () => number {
      let a = seed;
      return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
    }
    /** An arm's totals whose units convert more often the higher their covariate x (their pre-period rate). */
    function correlated(units: number, lift: number, seed: number): SnapshotTotals {
      const draw = uniform(seed);
      let sum = 0;
      let covSum = 0;
      let covSumSq = 0;
      let covSumProduct = 0;
      for (let i = 0; i < units; i += 1) {
        const x = draw();
        const y = draw() < 0.2 + 0.6 * x + lift ? 1 : 0;
        sum += y;
        covSum += x;
        covSumSq += x * x;
        covSumProduct += x * y;
      }
      return { units, sum, sumSq: sum, covariate: { sum: covSum, sumSq: covSumSq, sumProduct: covSumProduct } };
    }
    const withoutCovariate = ({ covariate: _covariate, ...totals }: SnapshotTotals): ArmTotals => totals;
    const analyse = (c: SnapshotTotals, t: SnapshotTotals) =>
      analyseSnapshot({
        spec: spec(),
        arms,
        snapshot: look(3, c, t),
        guardrailTotals: new Map(),
        plan,
        carry: EMPTY_CARRY,
        startedAt,
      });
    const c = correlated(4_000, 0, 1);
    const t = correlated(4_000, 0.02, 2);
    const width = (ci: readonly [number, number] | null | undefined) => (ci ? ci[1] - ci[0] : Number.NaN);

    it("adjusts the comparison when every arm has the covariate, recording θ and the variance reduction", () => {
      const adjusted = analyse(c, t);
      const comparison = adjusted.row.details.comparisons[0];
      expect(comparison?.cuped?.theta).toBeGreaterThan(0);
      expect(comparison?.cuped?.varianceReduction).toBeGreaterThan(0.1);
      // The same units without the covariate: the unadjusted test, no `cuped`, a wider interval.
      const plain = analyse(withoutCovariate(c), withoutCovariate(t));
      const unadjusted = plain.row.details.comparisons[0];
      expect(unadjusted).not.toHaveProperty("cuped");
      expect(width(comparison?.ci)).toBeLessThan(width(unadjusted?.ci));
      // The adjusted effect estimates the same difference: close to the unadjusted one.
      expect(comparison?.effect).toBeCloseTo(unadjusted?.effect ?? Number.NaN, 1);
      expect(adjusted.row.ciLow).toBe(comparison?.ci?.[0]);
      // The row's arms keep the metric's totals only.
      expect(Object.keys((adjusted.row.arms as Record<string, object>).control ?? {})).not.toContain("covariate");
      expect(adjusted.carry.arms.treatment).toBeDefined();
    });

    it("stays unadjusted when an arm lacks the covariate", () => {
      const mixed = analyse(c, withoutCovariate(t));
      const comparison = mixed.row.details.comparisons[0];
      expect(comparison).not.toHaveProperty("cuped");
      const plain = analyse(withoutCovariate(c), withoutCovariate(t));
      expect(mixed.row).toEqual(plain.row);
    });

    it("adjusts every treatment's look, the kill-switch's at the full α included, θ pooled over all arms", () => {
      const three = [...arms, { name: "treatment_b", weight: 0.5 }];
      const b = correlated(4_000, -0.01, 3);
      const snapshot: Snapshot = {
        ts: look(3, c, t).ts,
        arms: new Map([
          ["control", c],
          ["treatment", t],
          ["treatment_b", b],
        ]),
      };
      const result = analyseSnapshot({
        spec: spec(),
        arms: three,
        snapshot,
        guardrailTotals: new Map(),
        plan,
        carry: EMPTY_CARRY,
        startedAt,
      });
      const comparisons = result.row.details.comparisons;
      expect(comparisons.map((x) => x.arm)).toEqual(["treatment", "treatment_b"]);
      // One θ for the experiment.
      expect(comparisons[0]?.cuped?.theta).toBe(comparisons[1]?.cuped?.theta);
      expect(comparisons.every((x) => (x.cuped?.varianceReduction ?? 0) > 0)).toBe(true);
      // The kill-switch's sequence at α is narrower than the α/2 one, and adjusted too: narrower than unadjusted.
      const killCi = result.carry.killArms?.treatment?.ci;
      expect(width(killCi)).toBeLessThan(width(comparisons[0]?.ci));
      const plainSnapshot: Snapshot = {
        ts: snapshot.ts,
        arms: new Map([...snapshot.arms].map(([name, totals]) => [name, withoutCovariate(totals)])),
      };
      const plain = analyseSnapshot({
        spec: spec(),
        arms: three,
        snapshot: plainSnapshot,
        guardrailTotals: new Map(),
        plan,
        carry: EMPTY_CARRY,
        startedAt,
      });
      expect(width(killCi)).toBeLessThan(width(plain.carry.killArms?.treatment?.ci));
    });
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

describe("a ratio metric (the delta method)", () => {
  const arms = [
    { name: "control", weight: 0.5 },
    { name: "treatment", weight: 0.5 },
  ];
  const startedAt = new Date("2026-12-01T00:00:00Z");
  /** Revenue per session, the target an increase; no declared baseline (the control's ratio is the baseline). */
  function ratioSpec() {
    const base = spec();
    const { baseline: _baseline, ...signal } = base.signal;
    return {
      ...base,
      signal: { ...signal, kind: "ratio" as const },
      target: { direction: "increase" as const, value: 0.05, relative: true, sustain: 604_800 },
      constraints: { ...base.constraints, kill: undefined, guardrails: [] },
    } as ReturnType<typeof spec>;
  }
  /** A deterministic uniform draw in [0, 1) (mulberry32). */
  function uniform(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  /** Users with 1 to 5 sessions each, each session buying for `perSession` on average (numerator: revenue). */
  function users(units: number, perSession: number, seed: number): SnapshotTotals {
    const draw = uniform(seed);
    let sum = 0;
    let sumSq = 0;
    let den = 0;
    let denSq = 0;
    let product = 0;
    for (let i = 0; i < units; i += 1) {
      const sessions = 1 + Math.floor(draw() * 5);
      let revenue = 0;
      for (let s = 0; s < sessions; s += 1) revenue += draw() < 0.3 ? (perSession / 0.3) * 2 * draw() : 0;
      sum += revenue;
      sumSq += revenue * revenue;
      den += sessions;
      denSq += sessions * sessions;
      product += revenue * sessions;
    }
    return { units, sum, sumSq, denominator: { sum: den, sumSq: denSq, sumProduct: product } };
  }
  const paired = (t: SnapshotTotals) => ({
    units: t.units,
    sum: t.sum,
    sumSq: t.sumSq,
    pairSum: t.denominator?.sum ?? 0,
    pairSumSq: t.denominator?.sumSq ?? 0,
    crossSum: t.denominator?.sumProduct ?? 0,
  });
  const c = users(20_000, 10, 1);
  const t = users(20_000, 11, 2);
  const snapshotOf = (days: number, totals: [string, SnapshotTotals][]): Snapshot => ({
    ts: new Date(startedAt.getTime() + days * 86_400_000),
    arms: new Map(totals),
  });

  it("plans with the control's ratio and its linearised per-unit variance", () => {
    const plan = makeStatsPlan(ratioSpec(), c);
    const control = ratioArm(paired(c));
    expect(plan?.baseline).toBeCloseTo(control?.ratio ?? Number.NaN, 12);
    expect(plan?.variance).toBeCloseTo((control?.variance ?? Number.NaN) * c.units, 9);
    expect(plan?.sequentialPerArm).toBeGreaterThan(0);
  });

  it("compares the ratios with ratioSequentialTest and decides a win on it", () => {
    const spec = ratioSpec();
    const plan = makeStatsPlan(spec, c);
    if (plan === null) throw new Error("a plan");
    const result = analyseSnapshot({
      spec,
      arms,
      snapshot: snapshotOf(3, [
        ["control", c],
        ["treatment", t],
      ]),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const expected = ratioSequentialTest(paired(c), paired(t), { alpha: 0.05, tau2: plan.tau2 }, null);
    const comparison = result.row.details.comparisons[0];
    expect(comparison?.effect).toBeCloseTo(expected.effect ?? Number.NaN, 10);
    expect(comparison?.ci).toEqual(expected.ci);
    expect(comparison?.pValue).toBe(expected.pValue);
    expect(comparison?.relativeLift).toBeCloseTo(
      (expected.effect ?? Number.NaN) / (expected.control?.ratio ?? Number.NaN),
      10,
    );
    expect(comparison?.fixedPValue).toBe(fixedHorizonTestOfEstimate(ratioEstimate(paired(c), paired(t))).pValue);
    expect(comparison).not.toHaveProperty("cuped");
    expect(result.decision).toMatchObject({ action: "analyse", reason: "win" });
    // The arms keep the numerator's totals and the denominator's; the mean is the ratio.
    const control = result.row.arms.control;
    expect(control?.denominator).toEqual(c.denominator);
    expect(control?.mean).toBeCloseTo(c.sum / (c.denominator?.sum ?? Number.NaN), 12);
    expect(result.carry.arms.treatment).toEqual(expected.carry);
  });

  it("Holm-adjusts several treatments' ratio p-values, as for the other kinds", () => {
    const spec = ratioSpec();
    const plan = makeStatsPlan(spec, c);
    if (plan === null) throw new Error("a plan");
    const b = users(20_000, 10.05, 3);
    const result = analyseSnapshot({
      spec,
      arms: [...arms, { name: "treatment_b", weight: 0.5 }],
      snapshot: snapshotOf(3, [
        ["control", c],
        ["treatment", t],
        ["treatment_b", b],
      ]),
      guardrailTotals: new Map(),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const comparisons = result.row.details.comparisons;
    const p = [t, b].map(
      (arm) => ratioSequentialTest(paired(c), paired(arm), { alpha: 0.025, tau2: plan.tau2 }, null).pValue ?? 1,
    );
    expect(comparisons.map((x) => x.pValue)).toEqual(p);
    expect(comparisons.map((x) => x.adjustedPValue)).toEqual(holmAdjust(p));
  });

  it("gives nulls and a warning for a zero denominator and for a single unit, never an exception", () => {
    const spec = ratioSpec();
    const plan = makeStatsPlan(spec, c);
    if (plan === null) throw new Error("a plan");
    const zero: SnapshotTotals = { units: 500, sum: 0, sumSq: 0, denominator: { sum: 0, sumSq: 0, sumProduct: 0 } };
    const one: SnapshotTotals = { units: 1, sum: 3, sumSq: 9, denominator: { sum: 2, sumSq: 4, sumProduct: 6 } };
    for (const [treatment, warning] of [
      [zero, "treatment arm: the denominator sums to 0, so its ratio is undefined"],
      [one, "treatment arm has a single unit; its variance is undefined"],
    ] as const) {
      const result = analyseSnapshot({
        spec,
        arms,
        snapshot: snapshotOf(3, [
          ["control", c],
          ["treatment", treatment],
        ]),
        guardrailTotals: new Map(),
        plan,
        carry: EMPTY_CARRY,
        startedAt,
      });
      const comparison = result.row.details.comparisons[0];
      expect(comparison).toMatchObject({ effect: null, ci: null, pValue: null, fixedPValue: null });
      expect(comparison?.warnings).toContain(warning);
      expect(result.decision.action).toBe("continue");
    }
    // A control without any denominator yet: no plan, not an exception.
    expect(makeStatsPlan(spec, zero)).toBeNull();
  });

  it("reports a secondary ratio metric with the delta-method test", () => {
    const withSecondary = {
      ...spec(),
      secondary_metrics: [
        {
          metric: "revenue_per_session",
          kind: "ratio" as const,
          connector: { type: "postgres", database_url_env: "OUTCOME_RUNTIME_SOURCE_X", query: "SELECT 1" },
        },
      ],
    } as ReturnType<typeof spec>;
    const plan = makeStatsPlan(withSecondary, { units: 20_000, sum: 13_600, sumSq: 13_600 });
    if (plan === null) throw new Error("a plan");
    const result = analyseSnapshot({
      spec: withSecondary,
      arms,
      snapshot: snapshotOf(3, [
        ["control", { units: 20_000, sum: 13_600, sumSq: 13_600 }],
        ["treatment", { units: 20_000, sum: 13_600, sumSq: 13_600 }],
      ]),
      guardrailTotals: new Map(),
      secondaryTotals: new Map([
        [
          "revenue_per_session",
          new Map([
            ["control", c],
            ["treatment", t],
          ]),
        ],
      ]),
      plan,
      carry: EMPTY_CARRY,
      startedAt,
    });
    const reported = result.row.details.secondary?.[0];
    const tau2 = result.carry.secondary?.revenue_per_session?.tau2 ?? Number.NaN;
    const expected = ratioSequentialTest(paired(c), paired(t), { alpha: 0.05, tau2 }, null);
    expect(reported).toMatchObject({ metric: "revenue_per_session", kind: "ratio", arm: "treatment" });
    expect(reported?.effect).toBeCloseTo(expected.effect ?? Number.NaN, 10);
    expect(reported?.pValue).toBe(expected.pValue);
    expect(reported?.ci).toEqual(expected.ci);
  });
});

describe("harmEvidence (the order a batched poll stores experiments in)", () => {
  const arms = [
    { name: "control", weight: 0.5 },
    { name: "treatment", weight: 0.5 },
  ];
  const totals = (control: [number, number], treatment: [number, number]) =>
    new Map([
      ["control", { units: control[0], sum: control[1], sumSq: control[1] }],
      ["treatment", { units: treatment[0], sum: treatment[1], sumSq: treatment[1] }],
    ]);

  it("is Welch's z of the treatment's move in the harmful direction", () => {
    // Conversion 10 % → 8 % on 10,000 units each: harmful when the target is an increase.
    const t = totals([10_000, 1_000], [10_000, 800]);
    const se = Math.sqrt((0.08 * 0.92) / 10_000 + (0.1 * 0.9) / 10_000);
    expect(harmEvidence(arms, [{ harmful: "decrease", totals: t }])).toBeCloseTo(0.02 / se, 10);
    // The same move is good news when a decrease is wanted: no evidence of harm.
    expect(harmEvidence(arms, [{ harmful: "increase", totals: t }])).toBe(0);
  });

  it("takes the strongest metric and treatment, and 0 when nothing compares", () => {
    const mild = totals([10_000, 1_000], [10_000, 990]);
    const strong = totals([10_000, 100], [10_000, 300]);
    const both = harmEvidence(arms, [
      { harmful: "decrease", totals: mild },
      { harmful: "increase", totals: strong },
    ]);
    expect(both).toBe(harmEvidence(arms, [{ harmful: "increase", totals: strong }]));
    expect(both).toBeGreaterThan(10);
    expect(harmEvidence(arms, [])).toBe(0);
    expect(
      harmEvidence(arms, [{ harmful: "increase", totals: new Map([["control", { units: 5, sum: 1, sumSq: 1 }]]) }]),
    ).toBe(0);
    expect(harmEvidence(arms, [{ harmful: "increase", totals: totals([1, 1], [1, 1]) }])).toBe(0);
    expect(harmEvidence(arms, [{ harmful: "increase", totals: totals([100, 0], [100, 0]) }])).toBe(0);
  });
});
