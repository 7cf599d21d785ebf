// The longest signalRetention.days, for the API's description.
export { MAX_SIGNAL_RETENTION_DAYS } from "@outcome-runtime/core";
export type { ActiveOutcome, ExperimentBriefDoc, LearningHit, OutcomeProgress } from "./agents";
export {
  activeOutcomes,
  argumentsDigest,
  claimExperiment,
  experimentBrief,
  outcomeProgress,
  queryLearnings,
  recordToolCall,
  renderBriefMarkdown,
  requestHumanGate,
} from "./agents";
export type { ApiKeyInfo, ApiKeyPrincipal, CreatedApiKey } from "./api-keys";
export {
  authenticate,
  bootstrap,
  createApiKey,
  DEFAULT_WORKSPACE,
  generateApiKey,
  hashApiKey,
  listApiKeys,
  revokeApiKey,
} from "./api-keys";
export type { ApplyResult, ApplyStatus } from "./apply-outcome";
export { applyOutcome, OutcomeInvalidError } from "./apply-outcome";
export type { BootConfig, BootGroup, BootGroups, RegisteredConnectorModule } from "./boot-config";
export {
  ConnectorModuleError,
  connectorTypes,
  loadConnectorModules,
  readBootConfig,
  registeredConnectorModules,
  setDefaultOutboundPolicy,
} from "./boot-config";
export type { OutcomeCheckDeps, SourceFindings } from "./check-outcome";
export { checkOutcomeSources, connectorCheck, parseOutcomeChecked } from "./check-outcome";
export type { Caller, RuntimeDeps } from "./context";
export { workerCaller } from "./context";
export type {
  AuditFilter,
  LearningListItem,
  LlmBudgets,
  LlmUsage,
  OutcomeSeries,
  StreamCursor,
  StreamEvent,
} from "./dashboard";
export {
  downsampleEvenly,
  listAuditPage,
  listLearnings,
  llmUsage,
  MAX_SERIES_POINTS,
  outcomeSeries,
  readStreamEvents,
  STREAM_OVERLAP_MS,
  startStreamCursor,
  validateOutcomeSource,
} from "./dashboard";
export type { DecideGateInput, DecideGateResult, GateDecisionValue, GateDetail } from "./decide-gate";
export {
  ALL_GATE_DECISIONS,
  decideGate,
  decisionOptions,
  GATE_DECISIONS,
  GateAlreadyDecidedError,
  getGate,
  listGates,
} from "./decide-gate";
export * from "./domain";
export {
  type DraftOutcomeResult,
  draftOutcome,
  type Gateway,
  type LlmConfig,
  llmConfigFromEnv,
  MAX_DRAFT_SENTENCE_LENGTH,
} from "./draft-outcome";
export type { EmailDecisionForm, EmailLinkPage, EmailLinkParams } from "./email-links";
export { decideByEmailLink, inspectEmailLink } from "./email-links";
export { ConfigError, SHARED_ENV } from "./env-config";
export type { ExperimentActionInput, ExperimentDetail, HypothesisInput, ProposeResult } from "./experiments";
export {
  getExperiment,
  listExperimentAnalyses,
  listExperimentsOfOutcome,
  proposeExperiment,
  proposeExperimentIdempotently,
  requestPoll,
  transitionExperiment,
} from "./experiments";
export type { DriftFinding, DriftKind, FlagDrift } from "./flags/drift";
export { checkFlagDrift, driftOf } from "./flags/drift";
export type { FlagAccess } from "./flags/flag-access";
export { flagAccessFromEnv, flagKeyOf, flagsOf, openFlagProvider } from "./flags/flag-access";
export type { FlagApplyResult, FlagDeps, FlagRolloutsHealth, FlagStatus } from "./flags/rollouts";
export {
  applyFlagRollout,
  dueFlagRollouts,
  flagRolloutDue,
  flagRolloutsHealth,
  flagStatusOf,
  requestFlagRollout,
} from "./flags/rollouts";
export type { GateLinks } from "./gate-context";
export { buildGateContext, experimentUrl, gateUrl } from "./gate-context";
export type { GateWebhookEvent } from "./gate-events";
export { GATE_WEBHOOK_EVENTS } from "./gate-events";
export type { GateMailDeps, SendNotificationResult } from "./gate-mail";
export {
  decisionLink,
  hashDecisionToken,
  linksExpireAt,
  newDecisionToken,
  openNotifications,
  sendGateNotification,
} from "./gate-mail";
export type { DueSlaStep, SlaStepResult } from "./gate-sla";
export { dueSlaSteps, handleGateExpiry, markGatesScheduled, remindGate, unscheduledGates } from "./gate-sla";
export { checkDatabase, checkRedisEvictionPolicy, type EvictionPolicyCheck } from "./health";
export type { DroppedHypothesis, HypothesisDeps, PortfolioResult } from "./hypotheses";
export {
  activateOutcome,
  generatePortfolio,
  hypothesisInput,
  PORTFOLIO_SIZE,
  priorityOf,
  screenHypotheses,
} from "./hypotheses";
export type { IdempotentResponse } from "./idempotency";
export { requestFingerprint, runIdempotent } from "./idempotency";
export type { JobKey, JobOptions, JobPayload, JobsOfQueue, QueueName } from "./jobs";
export {
  analyseJobId,
  batchSchedulerId,
  CONTROL_QUEUE,
  DEFAULT_QUEUE_PREFIX,
  embedLearningsJobId,
  experimentSchedulerId,
  flagJobId,
  gateEmailJobId,
  gateSlaJobId,
  InvalidJobPayloadError,
  JOB,
  JOBS,
  jobKeyOf,
  jobOptions,
  KEEP_COMPLETED,
  KEEP_FAILED,
  learningJobId,
  NOTIFY_QUEUE,
  outcomeSchedulerId,
  parseJobPayload,
  pollNowJobId,
  SIGNALS_QUEUE,
  webhookJobId,
} from "./jobs";
export {
  analysisJson,
  experimentJson,
  gateJson,
  outcomeJson,
  revisionJson,
  sourceHealthJson,
  summaryJson,
} from "./json";
export type { EmbeddingPass, LearningSearchInfo } from "./learning-search";
export { EMBEDDING_RETRY_AFTER_MS, embedPendingLearnings, nextEmbeddingPass } from "./learning-search";
export { pendingLearningSummaries, refineLearning, summarizeLearning, writeLearningForDecision } from "./learnings";
export { createGateway } from "./llm-store";
export type {
  AdmittedMember,
  InvitationInfo,
  InvitationView,
  MemberProfile,
  SignInPolicy,
  WorkspaceMemberInfo,
} from "./members";
export {
  acceptInvitation,
  admitMember,
  assertMembership,
  changeMemberRole,
  createWorkspace,
  emailDomain,
  hashInvitationToken,
  INVITATION_TTL_MS,
  invitationLinkShown,
  inviteMember,
  listMembers,
  MEMBER_ROLES,
  mayRequestEmailLink,
  memberProfile,
  normalizeEmail,
  removeMember,
  revokeInvitation,
  SignInRefused,
  viewInvitation,
} from "./members";
export type {
  GaugeSample,
  HttpMetrics,
  HttpObservation,
  MetricsRegistry,
  MetricsScraper,
  ScrapeCollector,
  SignalMetrics,
} from "./metrics";
export {
  createMetricsRegistry,
  httpMetrics,
  installationCollectors,
  METRICS_CONTENT_TYPE,
  metricsScraper,
  signalMetrics,
} from "./metrics";
export { DEFAULT_GATE_SLA_SECONDS, gatePolicy } from "./open-gate";
export type { DirectOutcomeAction, OutcomeDetail, OutcomeSummary } from "./outcomes";
export {
  DIRECT_OUTCOME_ACTIONS,
  getOutcome,
  LATEST_REVISIONS,
  listAudit,
  listOutcomes,
  listRevisionsOfOutcome,
  transitionOutcome,
} from "./outcomes";
export { DEFAULT_PRINCIPAL_CACHE_TTL_MS, type PrincipalCache, startPrincipalCache } from "./principal-cache";
export type { SecretsKeyring } from "./secret-box";
export { MAX_SECRET_BYTES, openSecret, sealSecret, secretsKeyringFromEnv } from "./secret-box";
export type { SecretSummary } from "./secrets";
export { deleteWorkspaceSecret, listWorkspaceSecrets, setWorkspaceSecret } from "./secrets";
export type { StartedSession } from "./sessions";
export {
  endAllSessions,
  endSession,
  hashSessionToken,
  memberSessionOf,
  SESSION_IDLE_MS,
  SESSION_MAX_AGE_MS,
  sessionPrincipal,
  startMemberSession,
  startSession,
  switchSessionWorkspace,
} from "./sessions";
export type { OidcConfig, ProvedIdentity, SignInConfig, SignInProofs } from "./sign-in";
export { AUTH_BASE_PATH, createSignInProofs, EMAIL_LINK_TTL_S, SSO_PROVIDER_ID } from "./sign-in";
export type { AnalysisOutcome } from "./signals/analyse";
export { analyseExperiment } from "./signals/analyse";
export {
  type BatchPollResult,
  DEFAULT_POLL_BATCH_SIZE,
  DEFAULT_STORE_SIZE,
  pollExperimentBatches,
} from "./signals/batch-poll";
export type { ConnectorProvider, ConnectorProviderOptions } from "./signals/connectors";
export { connectorProvider } from "./signals/connectors";
export type { OutcomePollResult } from "./signals/outcome-poll";
export { horizonEnd, pollOutcome, targetLevel } from "./signals/outcome-poll";
export type { MeasuredMetric, MetricFailure, PollResult, SignalDeps, SignalObserver, SourceRead } from "./signals/poll";
export { describePollError, measuredMetrics, pollExperiment } from "./signals/poll";
export type { DesiredSchedules, PollingPlan, PollRequest } from "./signals/schedules";
export {
  DEFAULT_POLL_INTERVAL_SECONDS,
  desiredSchedules,
  pendingPollRequests,
  pendingWebhooks,
  pollingPlan,
  pollRequestDone,
  primaryPolledUntil,
} from "./signals/schedules";
export type { RetentionReport } from "./signals/signal-retention";
export { applySignalRetention, runSignalRetention } from "./signals/signal-retention";
export type { SignalsTestInput } from "./signals/signals-test";
export { MAX_DRY_RUN_EXPERIMENTS, testOutcomeSignals } from "./signals/signals-test";
export type { AnalysisCarry } from "./signals/snapshot-analysis";
export { makeStatsPlan } from "./signals/snapshot-analysis";
export type { SourceAccess, SourceWorkspace } from "./signals/source-access";
export { parseEnvWorkspaces, resolveCredentials, sourceAccessFromEnv } from "./signals/source-access";
export type { SourcesStatus } from "./signals/source-reads";
export { sourcesStatus } from "./signals/source-reads";
export type { DeliveryResult, WebhookTarget } from "./signals/webhooks";
export {
  deliverWebhook,
  EVENT_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  verifyWebhookSignature,
  waitForWebhooks,
} from "./signals/webhooks";
export type { ExportManifest, ImportReport } from "./transfer";
export {
  beginImport,
  checkManifest,
  exportManifest,
  exportRows,
  exportSignalPointsCsv,
  finishImport,
  importSignalPointsCsv,
  importTable,
  isExportTable,
  SIGNAL_POINT_COLUMNS,
} from "./transfer";
export { getWorkspaceSettings, updateWorkspaceSettings } from "./workspace-settings";
