/**
 * The hypothesis engine with no LLM configured: the gateway's rules engine
 * answers, against the real Postgres.
 */
import { audit, learnings } from "@outcome-runtime/db";
import { llmConfigFromEnv } from "@outcome-runtime/llm";
import { startFakeAnthropic } from "@outcome-runtime/llm/test-support";
import { parseOutcome } from "@outcome-runtime/spec";
import {
  createTestDatabase,
  exampleOutcome,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "./apply-outcome";
import { getExperiment } from "./experiments";
import { activateOutcome, generatePortfolio, screenHypotheses } from "./hypotheses";
import { createGateway } from "./llm-store";
import { getOutcome } from "./outcomes";

let t: TestDatabase;
let seed: Seeded;
const deps = () => ({ db: t.db, gateway: createGateway({ db: t.db, config: llmConfigFromEnv({}) }) });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
});
afterAll(async () => {
  await t.drop();
});

describe("activating an outcome with no LLM configured", () => {
  it("proposes three valid hypotheses with distinct mechanisms and opens the portfolio gate", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: exampleOutcome() });
    const { outcome, portfolio, portfolioError } = await activateOutcome(
      deps(),
      seed.admin,
      "checkout-abandonment",
      null,
    );
    expect(portfolioError).toBeNull();
    expect(outcome.state).toBe("active");
    expect(portfolio?.source).toBe("rules");
    expect(portfolio?.proposals).toHaveLength(3);
    const gateIds = new Set(portfolio?.proposals.map((p) => p.gate.id));
    expect(gateIds.size).toBe(1);
    const detail = await getOutcome({ db: t.db }, seed.admin, "checkout-abandonment");
    expect(detail.gateCounts).toEqual({ portfolio_review: { pending: 1 } });
    expect(detail.pendingGates).toBe(1);
    const spec = parseOutcome(exampleOutcome(), { file: "outcome.yaml" });
    if (!spec.ok) throw new Error("example outcome is invalid");
    const mechanisms = new Set<string>();
    for (const p of portfolio?.proposals ?? []) {
      const { experiment } = await getExperiment({ db: t.db }, seed.admin, p.experiment.key);
      expect(experiment).toMatchObject({ state: "proposed", source: "rules" });
      expect(experiment.statement.length).toBeGreaterThan(20);
      expect(experiment.prediction?.effect).toBeGreaterThan(0);
      expect(experiment.rolloutPlan).toMatch(/Minimum sample: \d+ units per arm for the always-valid test/);
      expect(experiment.measurementPlan).toMatch(/Priority: impact/);
      // Nothing inside the forbidden paths.
      for (const path of experiment.touchedPaths) {
        expect(path.startsWith("apps/web/src/payments/")).toBe(false);
        expect(path.endsWith(".sql")).toBe(false);
      }
      mechanisms.add(experiment.mechanism.replace(/^.*\[(\w+)\]$/s, "$1"));
    }
    expect(mechanisms.size).toBe(3);
    // The generator's call is metered and audited.
    const calls = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "llm.call" });
    expect(calls.length).toBeGreaterThanOrEqual(1);
  });

  it("a failed learning for the outcome changes the next portfolio", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("learn-from-failure") });
    const first = await activateOutcome(deps(), seed.admin, "learn-from-failure", null);
    const firstMechanisms = (first.portfolio?.proposals ?? []).map((p) => p.experiment.mechanism);
    const failedMechanism = /\[(\w+)\]$/.exec(firstMechanisms[0] ?? "")?.[1];
    expect(failedMechanism).toBeDefined();
    // The first hypothesis was tried and rolled back.
    await learnings.insertLearning(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: first.outcome.id,
      experimentId: first.portfolio?.proposals[0]?.experiment.id ?? null,
      statement: `${first.portfolio?.proposals[0]?.experiment.title}: rolled back, abandonment rose`,
      decision: "roll_back",
      effect: 0.02,
      tags: [failedMechanism as string],
    });
    const second = await generatePortfolio(deps(), seed.admin, "learn-from-failure");
    const secondMechanisms = second.proposals.map((p) => /\[(\w+)\]$/.exec(p.experiment.mechanism)?.[1]);
    expect(secondMechanisms).not.toContain(failedMechanism);
    expect(second.learningsConsidered.length).toBeGreaterThanOrEqual(1);
  });
});

describe("an LLM portfolio (the real Anthropic SDK against a local server)", () => {
  it("drops a hypothesis inside the forbidden paths, records the drop, and replaces it from the rules engine", async () => {
    const fake = await startFakeAnthropic();
    try {
      await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("llm-portfolio") });
      const hypothesis = (title: string, key: string, paths: string[]) => ({
        title,
        statement: `If we ${title.toLowerCase()}, then checkout abandonment will decrease, because it is easier.`,
        mechanism: "Shoppers have less to do before paying.",
        mechanism_key: key,
        prediction: { metric: "checkout_abandonment_rate", direction: "decrease", effect: 0.04, relative: true },
        measurement_plan: "Compare the abandonment rate between arms.",
        rollout_plan: "50/50 until the planned sample.",
        effort: "M",
        risk: "low",
        confidence: 0.6,
        touched_paths: paths,
        rationale: "Shorter checkouts usually convert better.",
      });
      fake.enqueue({
        kind: "output",
        output: {
          hypotheses: [
            hypothesis("Save the card on file", "friction_reduction", ["apps/web/src/payments/SavedCard.tsx"]),
            hypothesis("Show trust badges", "trust", ["apps/web/src/checkout/TrustBadges.tsx"]),
            hypothesis("Show delivery date early", "clarity", ["apps/web/src/checkout/DeliveryDate.tsx"]),
          ],
        },
      });
      const gateway = createGateway({
        db: t.db,
        config: llmConfigFromEnv({
          ANTHROPIC_API_KEY: "sk-ant-test",
          ANTHROPIC_BASE_URL: fake.baseURL,
          OUTCOME_RUNTIME_LLM_RETRY_BASE_MS: "10",
        }),
      });
      const { portfolio } = await activateOutcome({ db: t.db, gateway }, seed.admin, "llm-portfolio", null);
      expect(fake.requests).toHaveLength(1);
      expect(portfolio?.source).toMatch(/^llm:.+\+rules$/);
      expect(portfolio?.dropped).toEqual([
        expect.objectContaining({ title: "Save the card on file", reason: "forbidden_paths" }),
      ]);
      expect(portfolio?.dropped[0]?.detail).toContain("apps/web/src/payments/SavedCard.tsx");
      const sources = portfolio?.proposals.map((p) => p.experiment.source);
      expect(sources?.filter((s) => s.startsWith("llm:"))).toHaveLength(2);
      expect(sources?.filter((s) => s === "rules")).toHaveLength(1);
      const drops = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "hypothesis.dropped" });
      expect(drops.some((e) => (e.after as { title?: string }).title === "Save the card on file")).toBe(true);
      for (const p of portfolio?.proposals ?? []) {
        expect(p.experiment.touchedPaths.some((path) => path.startsWith("apps/web/src/payments/"))).toBe(false);
      }
    } finally {
      await fake.close();
    }
  });
});

describe("screening", () => {
  const spec = (() => {
    const parsed = parseOutcome(exampleOutcome(), { file: "outcome.yaml" });
    if (!parsed.ok) throw new Error("example outcome is invalid");
    return parsed.spec;
  })();
  const base = {
    statement: "If we change the checkout, then abandonment will decrease, because it is simpler.",
    mechanism: "Less work for the shopper.",
    prediction: { metric: "checkout_abandonment_rate", direction: "decrease" as const, effect: 0.03, relative: true },
    measurement_plan: "Compare abandonment between arms.",
    rollout_plan: "50/50 for two weeks.",
    effort: "M" as const,
    risk: "low" as const,
    rationale: "A common win in checkouts.",
  };

  it("drops forbidden paths, repeats of failures and duplicate mechanisms, saying why", () => {
    const result = screenHypotheses(
      spec,
      [
        {
          ...base,
          title: "Pay faster",
          mechanism_key: "friction_reduction",
          touched_paths: ["apps/web/src/payments/Pay.tsx"],
        },
        { ...base, title: "Trust badges", mechanism_key: "trust", touched_paths: ["apps/web/src/checkout/Badges.tsx"] },
        { ...base, title: "More badges", mechanism_key: "trust", touched_paths: ["apps/web/src/checkout/More.tsx"] },
        {
          ...base,
          title: "Countdown timer",
          mechanism_key: "urgency",
          touched_paths: ["apps/web/src/checkout/Timer.tsx"],
        },
      ],
      [{ title: "Countdown timer at payment", statement: "A timer.", mechanism_key: "urgency" }],
    );
    expect(result.kept.map((h) => h.title)).toEqual(["Trust badges"]);
    expect(result.dropped.map((d) => d.reason)).toEqual(["forbidden_paths", "duplicate_mechanism", "failed_before"]);
    expect(result.dropped[0]?.detail).toContain("apps/web/src/payments/Pay.tsx");
  });
});
