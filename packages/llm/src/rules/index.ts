/**
 * The offline rules engine: hypotheses from the playbook library
 * (`playbooks/*.yaml`) and outcome drafts from a sentence, with no LLM.
 * Everything it produces is marked `source: rules`.
 */
export { detectArea } from "./area";
export type { DraftOutcomeInput } from "./draft-outcome";
export { draftOutcomeByRules } from "./draft-outcome";
export type { RulesDrop, RulesPlan } from "./generate-hypotheses";
export { generateHypothesesByRules, planByRules } from "./generate-hypotheses";
export { defaultPlaybooks } from "./playbook";
export { RulesError } from "./rules-error";
export { findSimilarFailure } from "./similarity";
export type {
  RulesFailedHypothesis,
  RulesHypothesesInput,
  RulesLearning,
} from "./types";
