export type { AuthChange } from "./auth-changes";
export { listenForAuthChanges } from "./auth-changes";
export type { Db, DbOptions, DbOrTrx, Trx } from "./database";
export { createDb } from "./database";
export type { DatabaseErrorCode } from "./errors";
export { DatabaseError, databaseError } from "./errors";
export type { MigrationReport, SignalStorageNote } from "./migrate";
export {
  databaseIdentity,
  migrateTo,
  migrateToLatest,
  pingDb,
  signalStorageMode,
  signalStorageNote,
} from "./migrate";
export { downgradeAnalysisJson, upgradeAnalysisJson } from "./migrations/2026-12-11T00-00-analysis-names";
export * as apiKeys from "./repositories/api-key.repository";
export * as audit from "./repositories/audit.repository";
export * as experiments from "./repositories/experiment.repository";
export type { FlagRollout, FlagRolloutStatus } from "./repositories/flag-rollout.repository";
export * as flagRollouts from "./repositories/flag-rollout.repository";
export * as gates from "./repositories/gate.repository";
export * as gateMail from "./repositories/gate-mail.repository";
export * as idempotency from "./repositories/idempotency.repository";
export * as jobRequests from "./repositories/job-request.repository";
export * as learnings from "./repositories/learning.repository";
export type { LlmCall, NewLlmCall } from "./repositories/llm.repository";
export * as llm from "./repositories/llm.repository";
export type {
  InvitationRecord,
  MemberRecord,
  MemberRole,
  WorkspaceMemberRecord,
} from "./repositories/member.repository";
export * as members from "./repositories/member.repository";
export * as outcomes from "./repositories/outcome.repository";
export type { Page, PageRequest } from "./repositories/pagination";
export type { SealedSecret, SecretRecord } from "./repositories/secret.repository";
export * as secrets from "./repositories/secret.repository";
export * as sessions from "./repositories/session.repository";
export * as signals from "./repositories/signal.repository";
export * as signalRetention from "./repositories/signal-retention.repository";
export * as sourceHealth from "./repositories/source-health.repository";
export * as transfer from "./repositories/transfer.repository";
export * as workspaces from "./repositories/workspace.repository";
