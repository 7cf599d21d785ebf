/**
 * The domain vocabulary adapters need (states, kinds, error codes, records),
 * re-exported so that adapters depend on the application layer only.
 */
export type {
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
  GATE_KINDS,
  GATE_STATES,
  OUTCOME_STATES,
  ROLES,
  refusalOf,
} from "@outcome-runtime/core";
export { MAX_OUTCOME_BYTES } from "@outcome-runtime/spec";

import type { signals } from "@outcome-runtime/db";

/** One analysis row: a snapshot's effect, always-valid interval and p-value, SRM, guardrails and decision. */
export type AnalysisRecord = signals.AnalysisRecord;
