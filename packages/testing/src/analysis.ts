/**
 * Stored analyses for tests that need one without running the analysis:
 * complete rows, in the shapes the runtime's analysis writes.
 */
import type { AnalysisArm, NewAnalysis } from "@outcome-runtime/core";

/** A proportion arm's totals and summary: `units` units, `rate` of them converting. */
export function proportionArm(units: number, rate: number): AnalysisArm {
  const sum = Math.round(units * rate);
  const mean = units === 0 ? null : sum / units;
  return { units, sum, sumSq: sum, mean, variance: mean === null ? null : mean * (1 - mean) };
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
    relativeLift: effect / 0.68,
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
          relativeLift: effect / 0.68,
          relativeCi: [ci[0] / 0.68, ci[1] / 0.68],
          pValue: 0.41,
          logLambda: -0.9,
          fixedPValue: 0.35,
          warnings: [],
        },
      ],
      srm: { pValue: 1, alarm: false, sequentialPValue: 1, sequentialAlarm: false },
      elapsedSeconds: 3 * 86_400,
      tau2: 0.0004,
      tau2Source: "tuned to 10000 units per arm (ten times min_sample_per_arm; no expected_effect given)",
      plannedPerArm: null,
      fixedPerArm: null,
      rules: { counts: { kill: 0, guardrails: {}, inconclusive: 0 }, killFailureLimit: 0, inconclusiveLimit: -1 },
      carry: {
        arms: { treatment: { pValue: 0.41, ci, relativeCi: [ci[0] / 0.68, ci[1] / 0.68] } },
        srm: 1,
        guardrails: {},
        rules: { kill: 0, guardrails: {}, inconclusive: 0 },
      },
    },
    ...overrides,
  };
}
