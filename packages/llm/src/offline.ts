/**
 * The part of the gateway that needs no database or provider: the rules
 * drafter of `draft_outcome` and the YAML rendering of a draft. The CLI
 * imports this entry point (`@outcome-runtime/llm/offline`) to draft an
 * outcome when the API is not available.
 */
export type { DraftOrigin } from "./draft-outcome-yaml";
export { draftOutcomeYaml } from "./draft-outcome-yaml";
export type { DraftTodo } from "./rules/draft-outcome";
export { draftOutcomeByRules } from "./rules/draft-outcome";
export { RulesError } from "./rules/rules-error";
export { summarizeLearningOffline } from "./summarize-learning.offline";
