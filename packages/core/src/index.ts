export type {
  GuardrailVerdictInput,
  PolicyAction,
  PolicyDecision,
  PolicyInput,
  PolicyReason,
  RulesInput,
} from "./decision-policy";
export { decide, harmLowerBound, POLICY_REASONS } from "./decision-policy";
export type { RuleCounts } from "./decision-rules";
export {
  assessErrors,
  combineMeasurements,
  countMeasurement,
  countsFrom,
  DEFAULT_CONSECUTIVE_ERROR_LIMIT,
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  measurementOf,
  NO_COUNTS,
} from "./decision-rules";
export { formatSeconds } from "./durations";
export type {
  AnalysisArm,
  AnalysisCarry,
  AnalysisComparison,
  AnalysisRecord,
  AnalysisSecondary,
  Arm,
  AuditEvent,
  Experiment,
  Gate,
  GateDecision,
  GateExpiryPolicy,
  NewAnalysis,
  Outcome,
  OutcomeRevision,
  PollStatus,
  Prediction,
  Principal,
  SignalRetention,
  SourceHealth,
  StatsPlan,
  StoredSpec,
  Workspace,
  WorkspaceSettings,
} from "./entities";
export { DEFAULT_WORKSPACE_SETTINGS, EXPERIMENT_SOURCES } from "./entities";
export type { ErrorCode } from "./error-codes";
export { ERROR_CODES } from "./error-codes";
export { assertNever, DomainError, GuardRejectedError, IllegalTransitionError } from "./errors";
export type { ExperimentAction, ExperimentContext, ExperimentState } from "./experiment.machine";
export {
  DIRECT_EXPERIMENT_ACTIONS,
  EXPERIMENT_ACTIONS,
  EXPERIMENT_STATES,
  experimentMachine,
} from "./experiment.machine";
export type { ExportRowTable, ExportTable } from "./export-tables";
export {
  EXCLUDED_FROM_EXPORT,
  EXPORT_FORMAT,
  EXPORT_ROW_TABLES,
  EXPORT_TABLES,
  EXPORT_VERSION,
  IMPORT_ORDER,
  NOT_EXPORTED,
  READABLE_EXPORT_VERSIONS,
} from "./export-tables";
export type { FlagSplit, FlagSplitReason } from "./flag-split";
export { flagSplitFor } from "./flag-split";
export type {
  Actor,
  ActorRole,
  DecisionChannel,
  GateAction,
  GateContext,
  GateKind,
  GateState,
  Role,
} from "./gate.machine";
export {
  DECISION_CHANNELS,
  GATE_ACTIONS,
  GATE_KINDS,
  GATE_STATES,
  gateMachine,
  mayDecideGate,
  ROLES,
} from "./gate.machine";
export type {
  AchievementEvidence,
  AchievementReviewContext,
  AgentRequestContext,
  AnalysisReviewContext,
  AnalysisSummary,
  ArmSummary,
  BuildReport,
  DecisionOption,
  ExperimentBrief,
  GateContextPackage,
  GuardrailSummary,
  HypothesisBrief,
  LaunchApprovalContext,
  OutcomeBrief,
  PortfolioReviewContext,
  ShippedExperimentBrief,
} from "./gate-context";
export type { GuardVerdict, MachineDef, TransitionDef, TransitionResult } from "./machine";
export { applyTransition, availableActions, isFinal } from "./machine";
export type { OutcomeAction, OutcomeContext, OutcomeState } from "./outcome.machine";
export {
  CLOSED_OUTCOME_STATES,
  isOutcomeClosed,
  OUTCOME_ACTIONS,
  OUTCOME_STATES,
  outcomeMachine,
} from "./outcome.machine";
export type { SpecChange } from "./outcome-changes";
export { diffSpecs, isSensitivePath, mayReviseOutcome } from "./outcome-changes";
export { matchPaths } from "./paths";
export type { ApiKeyScope, Operation, Permission, ScopedActor } from "./permissions";
export {
  ACTOR_ROLES,
  API_KEY_SCOPES,
  authorize,
  isRole,
  knownScopes,
  memberSessionScopes,
  missingScope,
  newKeyScopes,
  OPERATIONS,
  PERMISSIONS,
  permissionOf,
  refusalOf,
  roleMay,
  roleRefusal,
  roleScopes,
  rolesFor,
  scopesOf,
} from "./permissions";
export type { DutiesConflict, RevisionAuthor } from "./separation-of-duties";
export { dutiesWindowSeconds, dutiesWindowStart, separationOfDutiesConflict } from "./separation-of-duties";
export {
  MAX_SIGNAL_RETENTION_DAYS,
  parseSignalRetention,
  RETENTION_EXPERIMENT_STATES,
  RETENTION_OUTCOME_STATES,
  retentionCutoff,
} from "./signal-retention";
