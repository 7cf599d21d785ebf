import { describe, expect, it } from "vitest";
import {
  alignedTable,
  type Check,
  costCheck,
  forbiddenCheck,
  forbiddenTouches,
  type Hypothesis,
  judge,
  learningsCheck,
  learningUse,
  mechanismsCheck,
  type OutcomeRow,
  predictionsCheck,
  renderReport,
  replaceBetweenMarkers,
  rowPassed,
  schemaCheck,
} from "./score";

function hypothesis(overrides: Partial<Hypothesis> = {}): Hypothesis {
  return {
    title: "Let shoppers check out as a guest",
    statement: "If we let shoppers check out as guests, then abandonment will decrease by 5 %.",
    mechanism: "Every mandatory step before payment costs buyers.",
    mechanism_key: "friction_reduction",
    prediction: { metric: "checkout_abandonment_rate", direction: "decrease", effect: 0.05, relative: true },
    measurement_plan: "Primary: abandonment per session.",
    rollout_plan: "Behind a flag, 50/50 by session.",
    effort: "M",
    risk: "medium",
    touched_paths: ["apps/web/src/checkout/account/guest.tsx"],
    rationale: "source: rules. Template checkout-guest-checkout.",
    ...overrides,
  };
}

const three = [
  hypothesis(),
  hypothesis({ mechanism_key: "trust", touched_paths: ["apps/web/src/checkout/payment-summary/badges.tsx"] }),
  hypothesis({ mechanism_key: "clarity", touched_paths: [] }),
];

const allPass: Check[] = [
  { name: "schema_valid", passed: true, detail: "✓" },
  { name: "distinct_mechanisms", passed: true, detail: "✓ 3 of 3" },
  { name: "quantified_predictions", passed: true, detail: "✓ 3/3" },
  { name: "forbidden_paths_respected", passed: true, detail: "✓" },
  { name: "learnings_used", passed: true, detail: "✓" },
  { name: "cost", passed: true, detail: "✓ $0.0000" },
];

function withCheck(name: Check["name"], passed: boolean | null): Check[] {
  return allPass.map((c) => (c.name === name ? { ...c, passed } : c));
}

describe("schemaCheck", () => {
  it("passes with no issues and names the first issue otherwise", () => {
    expect(schemaCheck([]).passed).toBe(true);
    const failed = schemaCheck([
      { path: "/hypotheses/0/effort", message: "must be equal to one of the allowed values" },
      { path: "/hypotheses/1", message: "must have required property 'rationale'" },
    ]);
    expect(failed.passed).toBe(false);
    expect(failed.detail).toContain("2 issues");
    expect(failed.detail).toContain("/hypotheses/0/effort");
  });
});

describe("mechanismsCheck", () => {
  it("passes with three hypotheses of three mechanisms", () => {
    expect(mechanismsCheck(three, 3).passed).toBe(true);
  });

  it("fails with a repeated mechanism or too few hypotheses", () => {
    expect(mechanismsCheck([three[0]!, three[0]!, three[1]!], 3)).toMatchObject({ passed: false, detail: "✗ 2 of 3" });
    expect(mechanismsCheck(three.slice(0, 2), 3).passed).toBe(false);
  });
});

describe("predictionsCheck", () => {
  it("passes when every effect is positive and in the target direction", () => {
    expect(predictionsCheck(three, "decrease")).toMatchObject({ passed: true, detail: "✓ 3/3" });
  });

  it("fails on a wrong direction, a zero effect or an empty portfolio", () => {
    expect(predictionsCheck(three, "increase")).toMatchObject({ passed: false, detail: "✗ 0/3" });
    const zero = hypothesis({ prediction: { ...three[0]!.prediction, effect: 0 } });
    expect(predictionsCheck([three[1]!, zero], "decrease")).toMatchObject({ passed: false, detail: "✗ 1/2" });
    expect(predictionsCheck([], "decrease").passed).toBe(false);
  });
});

describe("forbidden paths", () => {
  const forbidden = ["apps/web/src/payments/**", "**/*.sql"];

  it("counts the hypotheses touching a forbidden glob", () => {
    const sql = hypothesis({ touched_paths: ["db/migrations/001.sql", "apps/web/src/checkout/x.ts"] });
    const pay = hypothesis({ touched_paths: ["./apps/web/src/payments/card.tsx"] });
    expect(forbiddenTouches([...three, sql, pay], forbidden)).toBe(2);
    expect(forbiddenTouches([sql], [])).toBe(0);
  });

  it("judges the kept portfolio and reports what the generator proposed", () => {
    expect(forbiddenCheck(three, forbidden, 2)).toMatchObject({
      passed: true,
      detail: "✓ 2 proposed inside, 0 kept",
    });
    const pay = hypothesis({ touched_paths: ["apps/web/src/payments/card.tsx"] });
    expect(forbiddenCheck([pay], forbidden, 1).passed).toBe(false);
    expect(forbiddenCheck(three, [], 0).detail).toBe("✓ no forbidden paths");
  });
});

describe("learnings", () => {
  const planted = { id: "learning-abc", mechanismKey: "error_prevention" };

  it("sees a citation and an adopted mechanism separately", () => {
    expect(learningUse(three, planted)).toEqual({ cited: false, adopted: false });
    const cites = hypothesis({ learnings_used: ["learning-abc"] });
    expect(learningUse([cites], planted)).toEqual({ cited: true, adopted: false });
    const adopts = hypothesis({ mechanism_key: "error_prevention" });
    expect(learningUse([adopts], planted)).toEqual({ cited: false, adopted: true });
  });

  it("passes on either, fails on neither, and does not apply without a planted learning", () => {
    expect(learningsCheck(planted, { cited: true, adopted: false }).passed).toBe(true);
    expect(learningsCheck(planted, { cited: false, adopted: true }).passed).toBe(true);
    expect(learningsCheck(planted, { cited: true, adopted: true }).detail).toBe("✓ cited + adopted `error_prevention`");
    expect(learningsCheck(planted, { cited: false, adopted: false })).toMatchObject({ passed: false });
    expect(learningsCheck(null, null)).toMatchObject({ passed: null, detail: "n/a" });
  });
});

describe("costCheck", () => {
  it("passes at or under the cap", () => {
    expect(costCheck(0.25, 0.25).passed).toBe(true);
    expect(costCheck(0.2501, 0.25)).toMatchObject({ passed: false, detail: "✗ $0.2501" });
  });
});

describe("judge (the pass mark)", () => {
  it("passes with every check", () => {
    expect(judge(allPass)).toEqual({ passed: true, score: "6/6", failed: [] });
  });

  it("tolerates one failed soft check, not two", () => {
    expect(judge(withCheck("learnings_used", false))).toMatchObject({ passed: true, score: "5/6" });
    const two = withCheck("learnings_used", false).map((c) => (c.name === "cost" ? { ...c, passed: false } : c));
    expect(judge(two)).toMatchObject({ passed: false, score: "4/6", failed: ["learnings_used", "cost"] });
  });

  it("fails on any required check", () => {
    expect(judge(withCheck("schema_valid", false)).passed).toBe(false);
    expect(judge(withCheck("forbidden_paths_respected", false)).passed).toBe(false);
  });

  it("leaves a check that does not apply out of the score", () => {
    expect(judge(withCheck("learnings_used", null))).toMatchObject({ passed: true, score: "5/5" });
    expect(judge([]).passed).toBe(false);
  });
});

describe("report", () => {
  const row: OutcomeRow = {
    outcome: "checkout-abandonment-mobile",
    source: "rules",
    checks: allPass,
    costUsd: 0.0123,
    inputTokens: 1200,
    outputTokens: 900,
    error: null,
  };
  const broken: OutcomeRow = { ...row, outcome: "broken", checks: [], error: "invalid outcome: 3:1 a | b" };

  it("renders one line per outcome with a score and totals", () => {
    const text = renderReport([row, broken], { provider: "`rules`", maxCostUsd: 0.25 });
    const lines = text.split("\n");
    const table = lines.filter((l) => l.startsWith("|"));
    expect(table).toHaveLength(4);
    const columns = (l: string) => l.replaceAll("\\|", "").split("|").length;
    expect(new Set(table.map(columns)).size).toBe(1);
    expect(table[2]).toMatch(/\| 6\/6 +\| pass +\|$/);
    expect(table[3]).toContain("a \\| b");
    expect(table[3]).toContain("**FAIL**");
    expect(text).toContain("**1 of 2 outcomes pass.** Total cost $0.0246 (2400 input, 1800 output tokens).");
    expect(rowPassed(row)).toBe(true);
    expect(rowPassed(broken)).toBe(false);
  });

  it("pads every column to its widest cell", () => {
    expect(alignedTable(["a", "long header"], [["✓ x", "y"]])).toEqual([
      "| a   | long header |",
      "| --- | ----------- |",
      "| ✓ x | y           |",
    ]);
  });

  it("replaces what lies between the markers and keeps the rest", () => {
    const doc = "# Title\n\nBefore.\n\n<!-- eval:begin -->\nold\n<!-- eval:end -->\n\nAfter.\n";
    const out = replaceBetweenMarkers(doc, "new table\n");
    expect(out).toBe("# Title\n\nBefore.\n\n<!-- eval:begin -->\n\nnew table\n\n<!-- eval:end -->\n\nAfter.\n");
    expect(replaceBetweenMarkers(out, "new table")).toBe(out);
    expect(() => replaceBetweenMarkers("# no markers", "x")).toThrow(/eval:begin/);
  });
});
