/**
 * The offline rules engine: hypotheses from the playbook library
 * (`playbooks/*.yaml`) and outcome drafts from a sentence, with no LLM.
 * Everything it produces is marked `source: rules`.
 */
export type { AreaJudgement } from "./area";
export { AREA_KEYWORDS, detectArea, FIELD_WEIGHTS } from "./area";
export type { DraftOutcomeInput, DraftOutcomeOutput, DraftTodo } from "./draft-outcome";
export { DATABASE_URL_ENV, DRAFT_EXAMPLES, draftOutcomeByRules, PLACEHOLDER_EMAIL } from "./draft-outcome";
export type { RulesDrop, RulesDropReason, RulesOptions, RulesPlan } from "./generate-hypotheses";
export { generateHypothesesByRules, planByRules, SCORE_WEIGHTS } from "./generate-hypotheses";
export type { Area, PlaybookTemplate } from "./playbook";
export { AREAS, DEFAULT_PLAYBOOKS_DIR, defaultPlaybooks, loadPlaybooks, PLACEHOLDERS } from "./playbook";
export type { RulesErrorCode } from "./rules-error";
export { RulesError } from "./rules-error";
export { findSimilarFailure, SIMILARITY_THRESHOLD } from "./similarity";
export type {
  GeneratedHypothesis,
  GenerateHypothesesOutput,
  RulesFailedHypothesis,
  RulesHypothesesInput,
  RulesLearning,
  RulesOutcome,
} from "./types";
