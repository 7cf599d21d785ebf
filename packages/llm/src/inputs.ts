/**
 * Inputs of the gateway's operations, as the callers (the hypothesis engine,
 * the learning library, `init --from`) pass them.
 */
import type {
  DraftOutcomeInput as RulesDraftOutcomeInput,
  RulesFailedHypothesis,
  RulesHypothesesInput,
  RulesLearning,
} from "./rules";

/**
 * The input of `generate_hypotheses` is the rules engine's input, so the LLM
 * and its offline fallback answer the very same question.
 */
export type GenerateHypothesesInput = RulesHypothesesInput;
export type LearningContext = RulesLearning;
export type FailedHypothesis = RulesFailedHypothesis;

/** `{ sentence, today? }`: one sentence such as "Cut checkout abandonment from 68% to 60% in 6 weeks". */
export type DraftOutcomeInput = RulesDraftOutcomeInput;

export interface SummarizeLearningInput {
  readonly experiment: { readonly title: string; readonly statement: string; readonly mechanism_key?: string };
  readonly metric: string;
  /** `ship`, `roll_back`, `iterate`. */
  readonly decision: string;
  /** Absolute effect (treatment − control) and its interval, fractions; null when not estimable. */
  readonly effect: number | null;
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
}
