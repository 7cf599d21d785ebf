/**
 * @outcome-runtime/connectors: signal connectors behind one interface
 * (postgres SQL, Mixpanel, CSV replay). See docs/connectors.md.
 */

export type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  DatabaseIdentity,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "./connector";
export type { ConnectorErrorCode, ConnectorErrorOptions } from "./connector-error";
export { CONNECTOR_ERROR_CODES, ConnectorError } from "./connector-error";
export type { ConnectorSettingsProblem, SettingsCheckOptions } from "./create-connector";
export {
  CONNECTOR_ALIASES,
  CONNECTOR_TYPES,
  checkConnectorSettings,
  createConnector,
  readsInBatches,
} from "./create-connector";
export type { CredentialRef, CredentialRequirement } from "./credentials";
export { connectorCredentials, SECRET_NAME, SOURCE_ENV_NAME, SOURCE_ENV_PREFIX } from "./credentials";
export { MIXPANEL_MAX_CONCURRENT, MIXPANEL_QUERIES_PER_HOUR } from "./mixpanel/query-api-client";
export type { PollBudgetOptions } from "./poll-budget";
export { effectivePollInterval, MIXPANEL_PLANNED_QUERIES_PER_HOUR, requestsPerPoll } from "./poll-budget";
export { sameDatabase } from "./postgres/source-check";
export { normalizeApiUrl, parseAllowedApiUrls } from "./vendor-hosts";
