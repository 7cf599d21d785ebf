/**
 * The domain vocabulary adapters need (states, kinds, error codes, records),
 * re-exported so that adapters depend on the application layer only.
 */
export type {
  AnalysisRecord,
  ApiKeyScope,
  ErrorCode,
  Experiment,
  Gate,
  Operation,
  Outcome,
  OutcomeRevision,
  Principal,
  Role,
} from "@outcome-runtime/core";
export {
  API_KEY_SCOPES,
  DECISION_CHANNELS,
  DIRECT_EXPERIMENT_ACTIONS,
  DomainError,
  ERROR_CODES,
  EXPERIMENT_STATES,
  EXPORT_TABLES,
  GATE_KINDS,
  GATE_STATES,
  OPERATIONS,
  OUTCOME_STATES,
  ROLES,
  refusalOf,
} from "@outcome-runtime/core";
/** Postgres and driver errors as the DomainError every face reports (`conflict`, `service_unavailable`, …). */
export { DatabaseError, databaseError } from "@outcome-runtime/db";
export { MAX_OUTCOME_BYTES } from "@outcome-runtime/spec";
