import { readFileSync } from "node:fs";
import { parseOutcome } from "@outcome-runtime/spec";
import Ajv2020 from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { draftOutcomeByRules } from "./draft-outcome";
import { RulesError } from "./rules-error";

const schema = JSON.parse(
  readFileSync(new URL("../../../../schemas/llm/draft_outcome.output.schema.json", import.meta.url), "utf8"),
);
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
const TODAY = "2026-05-10";

function draftAndParse(sentence: string) {
  const draft = draftOutcomeByRules({ sentence, today: TODAY });
  expect(validate(draft), JSON.stringify(validate.errors)).toBe(true);
  const parsed = parseOutcome(stringify(draft.outcome), { file: "drafted.yaml" });
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.code}: ${e.message}`).join("\n"));
  return { draft, spec: parsed.spec };
}

describe("draftOutcomeByRules", () => {
  it.each([
    // sentence, metric, kind, baseline, target value (normalised), relative, direction, horizon
    [
      "Cut checkout abandonment from 68% to 60% in 6 weeks",
      "checkout_abandonment_rate",
      "proportion",
      0.68,
      0.6,
      false,
      "decrease",
      { seconds: 42 * 86400 },
    ],
    [
      "Increase trial-to-paid conversion by 10% by 2027-03-31",
      "trial_to_paid_conversion_rate",
      "proportion",
      undefined,
      0.1,
      true,
      "increase",
      { end_date: "2027-03-31" },
    ],
    [
      "Reduce p95 page load time from 2.4s to 1.8s this quarter",
      "p95_page_load_time_seconds",
      "mean",
      2.4,
      1.8,
      false,
      "decrease",
      { end_date: "2026-06-30" },
    ],
    [
      "Raise signup conversion from 12% to 15% by end of Q3",
      "signup_conversion_rate",
      "proportion",
      0.12,
      0.15,
      false,
      "increase",
      { end_date: "2026-09-30" },
    ],
    [
      "Grow average order value from €54 to €60 in 8 weeks",
      "average_order_value_eur",
      "mean",
      54,
      60,
      false,
      "increase",
      { seconds: 56 * 86400 },
    ],
    [
      "Reduce monthly churn by 15% in 90 days",
      "monthly_churn_rate",
      "proportion",
      undefined,
      0.15,
      true,
      "decrease",
      { seconds: 90 * 86400 },
    ],
    [
      "Improve API latency from 800ms to 500ms next quarter",
      "api_latency_ms",
      "mean",
      800,
      500,
      false,
      "decrease",
      { end_date: "2026-09-30" },
    ],
    [
      "Increase week-4 retention to 35% by 2026-12-31",
      "week_4_retention_rate",
      "proportion",
      undefined,
      0.35,
      false,
      "increase",
      { end_date: "2026-12-31" },
    ],
    [
      "Double feature adoption this year",
      "feature_adoption_rate",
      "proportion",
      undefined,
      1,
      true,
      "increase",
      { end_date: "2026-12-31" },
    ],
    [
      "Lower support tickets per account by 20% within 3 months",
      "support_tickets_per_account",
      "mean",
      undefined,
      0.2,
      true,
      "decrease",
      { seconds: 90 * 86400 },
    ],
    [
      "Boost activation rate from 40% by 5 percentage points in 30 days",
      "activation_rate",
      "proportion",
      0.4,
      0.45,
      false,
      "increase",
      { seconds: 30 * 86400 },
    ],
    [
      "Increase upgrades to the pro plan by 25% in 2 quarters",
      "upgrades_to_pro_plan_rate",
      "proportion",
      undefined,
      0.25,
      true,
      "increase",
      { seconds: 26 * 7 * 86400 },
    ],
    [
      "Cut time to first value from 12 minutes to 5 minutes in 6 weeks.",
      "time_to_first_value_minutes",
      "mean",
      12,
      5,
      false,
      "decrease",
      { seconds: 42 * 86400 },
    ],
  ] as const)("%s", (sentence, metric, kind, baseline, value, relative, direction, horizon) => {
    const { spec, draft } = draftAndParse(sentence);
    expect(spec.signal.metric).toBe(metric);
    expect(spec.signal.kind).toBe(kind);
    expect(spec.signal.baseline).toBe(baseline);
    expect(spec.target.value).toBeCloseTo(value, 10);
    expect(spec.target).toMatchObject({ relative, direction });
    expect(spec.horizon).toEqual(horizon);
    expect(spec.signal.connector).toMatchObject({
      type: "postgres",
      database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL",
    });
    expect(spec.owner).toBe("owner@example.com");
    expect(spec.gates?.portfolio_review?.assignees).toEqual(["owner@example.com"]);
    const paths = draft.todos.map((t) => t.path);
    expect(paths).toEqual(expect.arrayContaining(["owner", "signal.connector.query", "gates", "signal.unit"]));
    if (baseline === undefined) expect(paths).toContain("signal.baseline");
  });

  it("gives the outcome a slug id and a readable name", () => {
    const { draft } = draftAndParse("Cut checkout abandonment from 68% to 60% in 6 weeks");
    expect(draft.outcome).toMatchObject({ id: "reduce-checkout-abandonment", name: "Reduce checkout abandonment" });
    expect((draft.outcome.signal as { unit: string }).unit).toBe("session");
  });

  it("defaults a missing deadline to 90 days and says so", () => {
    const { draft, spec } = draftAndParse("Increase signup rate by 5%");
    expect(spec.horizon).toEqual({ seconds: 90 * 86400 });
    expect(draft.todos).toContainEqual(expect.objectContaining({ path: "horizon" }));
  });

  it("is deterministic", () => {
    const a = draftOutcomeByRules({
      sentence: "Reduce p95 page load time from 2.4s to 1.8s this quarter",
      today: TODAY,
    });
    const b = draftOutcomeByRules({
      sentence: "Reduce p95 page load time from 2.4s to 1.8s this quarter",
      today: TODAY,
    });
    expect(b).toEqual(a);
  });

  it.each([
    ["", /the sentence is empty/],
    ["Checkout abandonment should be lower", /does not start with a change verb/],
    ["Reduce checkout abandonment", /no target was found for "checkout abandonment"/],
    ["Increase by 10% in 6 weeks", /no metric was named/],
    [
      "Reduce checkout abandonment from 60% to 68% in 6 weeks",
      /"reduce" asks for a decrease, but 60% → 68% is an increase/,
    ],
    ["Increase conversion from 90% by 20% in 6 weeks", /raised by|not a possible rate/],
    ["Reduce load time by 200ms in 4 weeks", /the current value is needed/],
    ["Increase signup rate by 5% by 2026-02-30", /"2026-02-30" is not a calendar date/],
  ])("explains what it did not understand in %j", (sentence, message) => {
    let error: unknown;
    try {
      draftOutcomeByRules({ sentence, today: TODAY });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RulesError);
    expect((error as RulesError).code).toBe("sentence_not_understood");
    expect((error as RulesError).message).toMatch(message);
    expect((error as RulesError).message).toContain(
      'for example: "Cut checkout abandonment from 68% to 60% in 6 weeks"',
    );
  });
});
