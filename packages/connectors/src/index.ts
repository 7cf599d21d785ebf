/**
 * @outcome-runtime/connectors: signal connectors behind one interface
 * (postgres SQL, Mixpanel, CSV replay). See docs/connectors.md.
 */

export type {
  ArmAggregate,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "./connector";
export type { ConnectorErrorCode, ConnectorErrorOptions } from "./connector-error";
export { CONNECTOR_ERROR_CODES, ConnectorError } from "./connector-error";
export { CONNECTOR_ALIASES, CONNECTOR_TYPES, createConnector } from "./create-connector";
export { MIXPANEL_MAX_CONCURRENT, MIXPANEL_QUERIES_PER_HOUR } from "./mixpanel/query-api-client";
export type { PollBudgetOptions } from "./poll-budget";
export { effectivePollInterval, MIXPANEL_PLANNED_QUERIES_PER_HOUR, requestsPerPoll } from "./poll-budget";
