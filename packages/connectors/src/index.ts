/**
 * @outcome-runtime/connectors: signal connectors behind one interface
 * (postgres SQL, Mixpanel, CSV replay). See docs/connectors.md.
 */

export { amplitudePollCost } from "./amplitude/amplitude.connector";
export type { RawArmRow, RawSeriesRow } from "./boundary-checks";
export { checkArmAggregates, checkSeries, parseNumber, parseTimestamp } from "./boundary-checks";
export { ConfigReader } from "./config-reader";
export type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  CostEstimate,
  DatabaseIdentity,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "./connector";
export type { ConnectorErrorCode, ConnectorErrorOptions } from "./connector-error";
export { CONNECTOR_ERROR_CODES, ConnectorError } from "./connector-error";
export { ConnectorModuleError, connectorTypes, loadConnectorModules, parseConnectorModules } from "./connector-modules";
export type { ConnectorModule, RegisteredConnectorModule } from "./connector-registry";
export { registeredConnectorModules } from "./connector-registry";
export type { ConnectorSettingsProblem, SettingsCheckOptions } from "./create-connector";
export {
  CONNECTOR_ALIASES,
  CONNECTOR_TYPES,
  checkConnectorSettings,
  connectorReadKind,
  createConnector,
  readsInBatches,
} from "./create-connector";
export type { CredentialRef, CredentialRequirement } from "./credentials";
export { connectorCredentials, SECRET_NAME, SOURCE_ENV_NAME, SOURCE_ENV_PREFIX } from "./credentials";
export { DATADOG_QUERIES_PER_HOUR, datadogPollCost } from "./datadog/datadog.connector";
export type {
  DryRunError,
  DryRunMetric,
  DryRunOptions,
  DryRunResult,
  DryRunRow,
  SignalsTestReport,
} from "./dry-run";
export { DEFAULT_DRY_RUN_WINDOW_MS, dryRunConnector, dryRunOutcome, PLACEHOLDER_EXPERIMENT } from "./dry-run";
export { ga4PollCost } from "./ga4/ga4.connector";
export { mixpanelPollCost } from "./mixpanel/mixpanel.connector";
export { MIXPANEL_MAX_CONCURRENT, MIXPANEL_QUERIES_PER_HOUR } from "./mixpanel/query-api-client";
export type { PollBudgetOptions } from "./poll-budget";
export { effectivePollInterval, MIXPANEL_PLANNED_QUERIES_PER_HOUR, pollCostOf, requestsPerPoll } from "./poll-budget";
export { sameDatabase } from "./postgres/source-check";
export { posthogPollCost } from "./posthog/posthog.connector";
export type { PollCost, RequestBudget, RequestBudgetLimits, RequestBudgetState } from "./request-budget";
export { requestBudget, requestBudgetStates, resetRequestBudgets } from "./request-budget";
export { normalizeApiUrl, parseAllowedApiUrls } from "./vendor-hosts";
