/**
 * @outcome-runtime/stats: the statistics of Outcome Runtime as pure functions
 * over plain numbers (DESIGN §5). Fractions, never percents. Every function
 * documents its formula and its source; docs/statistics.md gathers them.
 */
export type { ArmSummary, ArmTotals, MetricKind } from "./arm-summary";
export { summarizeArm } from "./arm-summary";
export { COUNT_TOLERANCE, equalWithinCountTolerance, wholeCount } from "./counts";
export type { FixedHorizonResult } from "./fixed-horizon-test";
export { fixedHorizonTest } from "./fixed-horizon-test";
export type { GuardrailOptions, GuardrailResult } from "./guardrail-test";
export { guardrailTest } from "./guardrail-test";
export type { LevelBound } from "./level-bound";
export { levelBound } from "./level-bound";
export { holmAdjust } from "./multiple-testing";
export type { CupedSequentialResult, EstimateFixedHorizonResult, RatioSequentialResult } from "./paired-sequential";
export { cupedSequentialTest, fixedHorizonTestOfEstimate, ratioSequentialTest } from "./paired-sequential";
export type { CupedEstimate, PairedEstimate, PairedTotals, RatioArm } from "./paired-totals";
export { adjustedUnitVariance, cupedEstimate, pooledSlope, ratioArm, ratioEstimate } from "./paired-totals";
export type { SamplePlan } from "./sample-size";
export { minimumDetectableEffect, planSample } from "./sample-size";
export type {
  EffectEstimate,
  EstimateSequentialOptions,
  EstimateSequentialResult,
  SequentialCarry,
  SequentialOptions,
  SequentialResult,
} from "./sequential-test";
export {
  mixtureVarianceForEffect,
  mixtureVarianceForSample,
  optimalMixtureRatio,
  sequentialTest,
  sequentialTestOfEstimate,
} from "./sequential-test";
export type { SequentialSrmResult, SrmResult } from "./srm";
export { SRM_DIRICHLET_CONCENTRATION, SRM_THRESHOLD, sequentialSrm, srmChiSquare } from "./srm";
