/**
 * Stored analyses for tests that need one without running the analysis:
 * complete rows, in the shapes the runtime's analysis writes.
 */
import type { AnalysisArm, NewAnalysis } from "@outcome-runtime/core";

/** A proportion arm's totals and summary: `units` units, `rate` of them converting. */
export function proportionArm(units: number, rate: number): AnalysisArm {
  const sum = Math.round(units * rate);
  const mean = units === 0 ? null : sum / units;
  return { units, sum, sum_sq: sum, mean, variance: mean === null ? null : mean * (1 - mean) };
}

/**
 * An analysis of a proportion with arms `control` (68 % of 1000) and
 * `treatment` (66 % of 1000), no guardrails and the policy's `continue`
 * (`running`); `overrides` replace whole fields.
 */
export function analysisFixture(
  at: Pick<NewAnalysis, "workspaceId" | "experimentId" | "ts">,
  overrides: Partial<Omit<NewAnalysis, "workspaceId" | "experimentId" | "ts">> = {},
): NewAnalysis {
  const effect = -0.02;
  const ci: [number, number] = [-0.065, 0.025];
  return {
    ...at,
    arms: { control: proportionArm(1000, 0.68), treatment: proportionArm(1000, 0.66) },
    effect,
    ciLow: ci[0],
    ciHigh: ci[1],
    relativeEffect: effect / 0.68,
    pValue: 0.41,
    srmPValue: 1,
    guardrails: [],
    decision: { action: "continue", reason: "running", detail: "no conclusion yet; the test keeps running" },
    details: {
      comparisons: [
        {
          arm: "treatment",
          effect,
          ci,
          relative_lift: effect / 0.68,
          relative_ci: [ci[0] / 0.68, ci[1] / 0.68],
          p_value: 0.41,
          log_lambda: -0.9,
          fixed_p_value: 0.35,
          warnings: [],
        },
      ],
      srm: { p_value: 1, alarm: false, sequential_p_value: 1, sequential_alarm: false },
      elapsed_seconds: 3 * 86_400,
      tau2: 0.0004,
      tau2_source: "tuned to 10000 units per arm (ten times min_sample_per_arm; no expected_effect given)",
      planned_per_arm: null,
      fixed_per_arm: null,
      rules: { counts: { kill: 0, guardrails: {}, inconclusive: 0 }, kill_failure_limit: 0, inconclusive_limit: -1 },
      carry: {
        arms: { treatment: { p_value: 0.41, ci, relative_ci: [ci[0] / 0.68, ci[1] / 0.68] } },
        srm: 1,
        guardrails: {},
        rules: { kill: 0, guardrails: {}, inconclusive: 0 },
      },
    },
    ...overrides,
  };
}
