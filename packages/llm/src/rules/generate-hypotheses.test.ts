import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { detectArea } from "./area";
import { generateHypothesesByRules, planByRules } from "./generate-hypotheses";
import { defaultPlaybooks } from "./playbook";
import { RulesError } from "./rules-error";
import { findSimilarFailure } from "./similarity";
import type { RulesHypothesesInput, RulesOutcome } from "./types";

const schema = JSON.parse(
  readFileSync(new URL("../../../../schemas/llm/generate_hypotheses.output.schema.json", import.meta.url), "utf8"),
);
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

const checkout: RulesOutcome = {
  id: "checkout-abandonment",
  name: "Reduce checkout abandonment",
  description: "Too many shoppers who reach the checkout leave without paying.",
  signal: { metric: "checkout_abandonment_rate", kind: "proportion", unit: "session", baseline: 0.68 },
  target: { direction: "decrease", value: 0.1, relative: true },
  allowed_paths: ["apps/web/src/checkout/**", "apps/web/src/components/cart/**"],
  forbidden_paths: ["apps/web/src/payments/**", "services/billing/**", "**/*.sql"],
};

const outcomes: RulesOutcome[] = [
  checkout,
  {
    id: "signup-conversion",
    name: "Raise signup conversion",
    signal: { metric: "signup_rate", kind: "proportion", unit: "user" },
    target: { direction: "increase", value: 0.05, relative: true },
  },
  {
    id: "page-speed",
    name: "Faster product pages",
    signal: { metric: "p95_page_load_seconds", kind: "mean", unit: "session", baseline: 2.4 },
    target: { direction: "decrease", value: 1.8, relative: false },
  },
  {
    id: "order-value",
    name: "Raise the average order value",
    signal: { metric: "order_value_eur", kind: "mean", unit: "user" },
    target: { direction: "increase", value: 0.05, relative: true },
  },
  {
    id: "monthly-churn",
    name: "Reduce subscriber churn",
    signal: { metric: "monthly_churn_rate", kind: "proportion", unit: "account" },
    target: { direction: "decrease", value: 0.15, relative: true },
  },
  {
    id: "mystery",
    name: "Make things better",
    signal: { metric: "happiness_index", kind: "mean", unit: "user" },
    target: { direction: "increase", value: 0.05, relative: true },
  },
];

describe("detectArea", () => {
  it.each([
    ["checkout-abandonment", "checkout"],
    ["signup-conversion", "onboarding"],
    ["page-speed", "performance"],
    ["order-value", "checkout"],
    ["monthly-churn", "retention"],
    ["mystery", null],
  ])("reads %s as %s", (id, area) => {
    const outcome = outcomes.find((o) => o.id === id)!;
    expect(detectArea(outcome).area).toBe(area);
  });

  it("weighs the metric over the free text", () => {
    const outcome: RulesOutcome = {
      ...checkout,
      id: "trial-to-paid",
      name: "More paying customers",
      description: "People leave the checkout of the upgrade flow",
      signal: { metric: "trial_to_paid_rate", kind: "proportion", unit: "user" },
    };
    expect(detectArea(outcome).area).toBe("pricing");
  });
});

describe("generateHypothesesByRules", () => {
  it.each(outcomes.map((o) => [o.id, o] as const))(
    "gives %s three schema-valid hypotheses with distinct mechanisms",
    (_id, outcome) => {
      const out = generateHypothesesByRules({ outcome });
      expect(validate(out), JSON.stringify(validate.errors)).toBe(true);
      expect(out.hypotheses).toHaveLength(3);
      expect(new Set(out.hypotheses.map((h) => h.mechanism_key)).size).toBe(3);
      for (const h of out.hypotheses) {
        expect(h.rationale).toMatch(/^source: rules\. Template [a-z0-9-]+ \(playbooks\/[a-z]+\.yaml\)/);
        expect(h.prediction).toMatchObject({
          metric: outcome.signal.metric,
          direction: outcome.target.direction,
          relative: true,
        });
        expect(h.prediction.effect).toBeGreaterThan(0);
        expect(`${h.statement} ${h.measurement_plan} ${h.rollout_plan}`).not.toMatch(/\{\{/);
      }
    },
  );

  it("is deterministic: the same input gives the same output", () => {
    const input: RulesHypothesesInput = {
      outcome: checkout,
      learnings: [
        { id: "L1", statement: "Trust badges lifted completion", decision: "shipped", mechanism_key: "trust" },
      ],
      failed: [
        { title: "Guest checkout", statement: "If we allow guest checkout…", mechanism_key: "friction_reduction" },
      ],
    };
    const first = JSON.stringify(planByRules(input));
    for (let i = 0; i < 5; i++) expect(JSON.stringify(planByRules(structuredClone(input)))).toBe(first);
  });

  it("places paths inside allowed_paths and never in forbidden_paths", () => {
    const out = generateHypothesesByRules({ outcome: checkout });
    for (const h of out.hypotheses) {
      for (const p of h.touched_paths) {
        expect(p.startsWith("apps/web/src/checkout/") || p.startsWith("apps/web/src/components/cart/"), p).toBe(true);
        expect(p).not.toMatch(/payments|billing|\.sql$/);
      }
    }
  });

  it("prefixes paths with ** when the outcome gives no allowed_paths", () => {
    const out = generateHypothesesByRules({ outcome: outcomes[1]! });
    for (const h of out.hypotheses) for (const p of h.touched_paths) expect(p.startsWith("**/")).toBe(true);
  });

  it("returns count hypotheses, each mechanism once", () => {
    const out = generateHypothesesByRules({ outcome: checkout, count: 5 });
    expect(out.hypotheses).toHaveLength(5);
    expect(new Set(out.hypotheses.map((h) => h.mechanism_key)).size).toBe(5);
    expect(validate(out)).toBe(true);
    expect(generateHypothesesByRules({ outcome: checkout, count: 1 }).hypotheses).toHaveLength(1);
  });

  it("leaves out excluded mechanisms", () => {
    const before = generateHypothesesByRules({ outcome: checkout }).hypotheses.map((h) => h.mechanism_key);
    const plan = planByRules({ outcome: checkout, exclude_mechanisms: [before[0]!] });
    expect(plan.hypotheses.map((h) => h.mechanism_key)).not.toContain(before[0]);
    expect(plan.hypotheses).toHaveLength(3);
    expect(plan.dropped).toContainEqual(
      expect.objectContaining({ reason: "excluded_mechanism", mechanism_key: before[0] }),
    );
  });
});

describe("forbidden paths", () => {
  it("replaces a template whose paths fall in forbidden_paths and reports the drop", () => {
    const open = generateHypothesesByRules({ outcome: checkout }).hypotheses;
    const top = open[0]!;
    const plan = planByRules({
      outcome: { ...checkout, forbidden_paths: [...checkout.forbidden_paths!, ...top.touched_paths] },
    });
    expect(plan.hypotheses).toHaveLength(3);
    expect(plan.hypotheses.map((h) => h.title)).not.toContain(top.title);
    const drop = plan.dropped.find((d) => d.title === top.title);
    expect(drop).toMatchObject({ reason: "forbidden_paths", mechanism_key: top.mechanism_key });
    expect(drop?.paths).toEqual(top.touched_paths);
    for (const h of plan.hypotheses) {
      for (const p of h.touched_paths) expect(top.touched_paths).not.toContain(p);
    }
  });

  it("drops a template when forbidden globs cover its paths by wildcard", () => {
    const plan = planByRules({ outcome: { ...outcomes[1]!, forbidden_paths: ["**/signup/**"] } });
    for (const h of plan.hypotheses) expect(h.touched_paths.some((p) => p.includes("/signup/"))).toBe(false);
    expect(plan.dropped.some((d) => d.reason === "forbidden_paths" && d.detail.includes("signup"))).toBe(true);
  });

  it("keeps generateHypothesesByRules to the schema shape", () => {
    const out = generateHypothesesByRules({
      outcome: { ...checkout, forbidden_paths: ["apps/web/src/components/cart/**"] },
    });
    expect(Object.keys(out)).toEqual(["hypotheses"]);
    expect(validate(out)).toBe(true);
  });
});

describe("learnings", () => {
  it("a failed hypothesis removes its mechanism from the next portfolio", () => {
    const before = generateHypothesesByRules({ outcome: checkout }).hypotheses;
    const failedOne = before[0]!;
    const plan = planByRules({
      outcome: checkout,
      failed: [{ title: failedOne.title, statement: failedOne.statement, mechanism_key: failedOne.mechanism_key }],
    });
    expect(plan.hypotheses.map((h) => h.mechanism_key)).not.toContain(failedOne.mechanism_key);
    expect(plan.hypotheses.map((h) => h.title)).not.toEqual(before.map((h) => h.title));
    expect(plan.dropped[0]).toMatchObject({ reason: "failed_before", title: failedOne.title });
    expect(plan.hypotheses).toHaveLength(3);
  });

  it("a failed hypothesis without a mechanism_key is matched on its words", () => {
    const plan = planByRules({
      outcome: checkout,
      failed: [
        {
          title: "Let shoppers check out as a guest",
          statement: "We tried letting shoppers check out as a guest without an account; it did not help.",
        },
      ],
    });
    expect(plan.hypotheses.map((h) => h.title)).not.toContain("Let shoppers check out as a guest");
    expect(plan.dropped).toContainEqual(
      expect.objectContaining({ reason: "failed_before", detail: expect.stringMatching(/Jaccard/) }),
    );
  });

  it("a shipped learning boosts its mechanism into the portfolio and is cited", () => {
    const before = generateHypothesesByRules({ outcome: checkout }).hypotheses.map((h) => h.mechanism_key);
    const candidates = defaultPlaybooks().filter(
      (t) => t.kinds.includes("proportion") && !before.includes(t.mechanism_key) && t.area === "checkout",
    );
    const boosted = candidates[0]!.mechanism_key;
    const out = generateHypothesesByRules({
      outcome: checkout,
      learnings: [
        {
          id: "L-7",
          statement: "It worked on the product page",
          decision: "shipped",
          effect: 0.04,
          mechanism_key: boosted,
        },
      ],
    });
    const h = out.hypotheses.find((x) => x.mechanism_key === boosted);
    expect(h).toBeDefined();
    expect(h?.learnings_used).toEqual(["L-7"]);
    expect(h?.rationale).toContain("learning L-7 (shipped) supports");
    expect(validate(out)).toBe(true);
  });

  it("reads a learning's mechanism from its tags", () => {
    const out = generateHypothesesByRules({
      outcome: checkout,
      learnings: [{ id: "L-9", statement: "Reminders recovered carts", decision: "won", tags: ["email", "reminders"] }],
    });
    expect(out.hypotheses[0]?.mechanism_key).toBe("reminders");
  });

  it("a rolled-back learning pushes its mechanism down", () => {
    const before = generateHypothesesByRules({ outcome: checkout }).hypotheses;
    const out = generateHypothesesByRules({
      outcome: checkout,
      learnings: [
        { id: "L-2", statement: "No effect", decision: "rolled_back", mechanism_key: before[0]!.mechanism_key },
      ],
    });
    expect(out.hypotheses[0]?.mechanism_key).not.toBe(before[0]!.mechanism_key);
  });
});

describe("findSimilarFailure", () => {
  const failed = [
    { title: "Show trust badges at payment", statement: "If we show security badges near the card form…" },
  ];
  it("matches on the mechanism key", () => {
    expect(
      findSimilarFailure({ title: "Other", statement: "Other text entirely", mechanism_key: "trust" }, [
        { ...failed[0]!, mechanism_key: "trust" },
      ])?.why,
    ).toBe("same mechanism_key trust");
  });
  it("matches similar titles and ignores unrelated ones", () => {
    expect(
      findSimilarFailure({ title: "Trust badges at payment", statement: "x".repeat(30), mechanism_key: "a" }, failed),
    ).toBeDefined();
    expect(
      findSimilarFailure(
        { title: "Guest checkout", statement: "Let shoppers skip the account", mechanism_key: "a" },
        failed,
      ),
    ).toBeUndefined();
  });
});

describe("errors", () => {
  it("says so when no template is left", () => {
    const keys = [...new Set(defaultPlaybooks().map((t) => t.mechanism_key))];
    expect(() => planByRules({ outcome: checkout, exclude_mechanisms: keys })).toThrow(RulesError);
    try {
      planByRules({ outcome: checkout, exclude_mechanisms: keys });
    } catch (e) {
      expect((e as RulesError).code).toBe("no_hypotheses_available");
    }
  });
});
