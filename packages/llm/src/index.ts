export type { EmbeddingConfig, LlmConfig, ModelPrice, ProviderName } from "./config";
export { DEFAULT_MODELS, DEFAULT_PRICES, LlmConfigError, llmConfigFromEnv } from "./config";
export type {
  EmbedFailure,
  EmbedResult,
  FallbackReason,
  Gateway,
  GatewayDeps,
  LlmResult,
  OperationTypes,
  PublicOperation,
  RunContext,
} from "./gateway";
export { cacheKey, canonicalJson, costOf, createGateway } from "./gateway";
export type {
  DraftOutcomeInput,
  FailedHypothesis,
  GenerateHypothesesInput,
  LearningContext,
  SummarizeLearningInput,
} from "./inputs";
export type { DraftOrigin, DraftTodo } from "./offline";
export { draftOutcomeYaml } from "./offline";
export type { OperationName } from "./operations";
export { OPERATIONS } from "./operations";
export type { DraftOutcomeOutput, GenerateHypothesesOutput, SummarizeLearningOutput } from "./output.types";
export type { RulesDrop, RulesFailedHypothesis, RulesHypothesesInput, RulesLearning, RulesPlan } from "./rules";
export {
  defaultPlaybooks,
  detectArea,
  draftOutcomeByRules,
  findSimilarFailure,
  generateHypothesesByRules,
  planByRules,
  RulesError,
} from "./rules";
export type { LlmCacheEntry, LlmCallRecord, LlmRunRecord, LlmStore, SpendQuery } from "./store";
export { validateOutput } from "./validate";
