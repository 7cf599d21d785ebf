/**
 * The connector factory: one entry point from a connector's settings in
 * outcome.yaml to a {@link SignalConnector}.
 */

import { amplitudeReadsInBatches, createAmplitudeConnector } from "./amplitude/amplitude.connector";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "./connector";
import { ConnectorError } from "./connector-error";
import { createRegisteredConnector, registeredEntry, registeredReadsInBatches } from "./connector-registry";
import { connectorCredentials } from "./credentials";
import { createCsvConnector } from "./csv/csv.connector";
import { createDatadogConnector } from "./datadog/datadog.connector";
import { createGa4Connector } from "./ga4/ga4.connector";
import { createMixpanelConnector, mixpanelReadsInBatches } from "./mixpanel/mixpanel.connector";
import { createPostgresConnector, postgresReadsInBatches } from "./postgres/postgres.connector";
import { createPosthogConnector, posthogReadsInBatches } from "./posthog/posthog.connector";
import { createPrometheusConnector, prometheusReadsInBatches } from "./prometheus/prometheus.connector";
import { SQL_SOURCES } from "./sql/sources";
import { createSqlSourceConnector, sqlSourceReadsInBatches } from "./sql/sql-source";

/** The connector types `createConnector` accepts (`replay` is another name for `csv`). */
export const CONNECTOR_TYPES: readonly string[] = Object.freeze([
  "postgres",
  "mixpanel",
  "csv",
  "replay",
  ...Object.keys(SQL_SOURCES),
  "ga4",
  "posthog",
  "amplitude",
  "prometheus",
  "datadog",
]);

/** Other names of connector types: `replay` → `csv`. */
export const CONNECTOR_ALIASES: Readonly<Record<string, string>> = Object.freeze({ replay: "csv" });

/**
 * Creates the connector `config.type` names. Settings are checked now
 * (fields, the SQL policy, the credentials the settings name, which must be
 * in `context.credentials`); nothing is connected or read until the first poll.
 *
 * `config` may be the connector as written in outcome.yaml or as
 * normalised by @outcome-runtime/spec (durations in seconds).
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix
 * @example
 * const connector = createConnector(spec.signal.connector, { credentials: { database_url: url }, metricKind: spec.signal.kind });
 * const rows = await connector.fetchArmAggregates({ experimentKey: "exp-1", arms: ["control", "treatment"], from, to });
 */
export function createConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (config === null || typeof config !== "object" || typeof config.type !== "string") {
    throw new ConnectorError("invalid_config", "connector: type is missing; write type: postgres, mixpanel or csv", {
      details: { field: "type" },
    });
  }
  if (context.metricKind !== "proportion" && context.metricKind !== "mean" && context.metricKind !== "ratio") {
    throw new ConnectorError(
      "invalid_config",
      `connector: metric kind ${JSON.stringify(context.metricKind)} is not proportion, mean or ratio`,
      { details: { field: "kind", value: context.metricKind } },
    );
  }
  const type = CONNECTOR_ALIASES[config.type] ?? config.type;
  switch (type) {
    case "postgres":
      return createPostgresConnector(config, context);
    case "mixpanel":
      return createMixpanelConnector(config, context);
    case "csv":
      return createCsvConnector(config, context);
    case "datadog":
      return createDatadogConnector(config, context);
    case "ga4":
      return createGa4Connector(config, context);
    case "posthog":
      return createPosthogConnector(config, context);
    case "amplitude":
      return createAmplitudeConnector(config, context);
    case "prometheus":
      return createPrometheusConnector(config, context);
    default: {
      const source = SQL_SOURCES[type];
      if (source !== undefined) return createSqlSourceConnector(source, config, context);
      // A type an installed package added (CONNECTOR_MODULES, connector-modules.ts).
      const registered = registeredEntry(type);
      if (registered !== undefined) return createRegisteredConnector(registered, config, context);
      throw new ConnectorError(
        "invalid_config",
        `connector: type: unknown connector type ${JSON.stringify(config.type)}; known types: ${CONNECTOR_TYPES.join(", ")}`,
        { details: { field: "type", value: config.type } },
      );
    }
  }
}

/**
 * Whether a connector's settings read many experiments in one request, so the
 * worker polls the experiments that share them together (one request per
 * batch): a SQL source's query (`postgres`, `mysql`, `duckdb`, `clickhouse`,
 * `snowflake`, ...) that uses `:experiments`, a `mixpanel` proportion (no
 * `value_property`: segmented by experiment and arm together), an
 * `amplitude` segmentation (no `funnel`, `batch` not false: grouped by the
 * experiment and arm user properties), or a
 * registered module's type whose `readsInBatches` says so. Other connectors,
 * a Mixpanel mean and the SQL one-experiment form read one experiment per
 * request.
 */
export function readsInBatches(config: ConnectorConfig): boolean {
  const type = CONNECTOR_ALIASES[config.type] ?? config.type;
  if (type === "mixpanel") return mixpanelReadsInBatches(config);
  // Grouped by experiment and arm tags: every datadog read is batched.
  if (type === "datadog") return true;
  // Both kinds: the experiment dimension's inListFilter reads many experiments in one report.
  if (type === "ga4") return true;
  if (type === "posthog") return posthogReadsInBatches(config);
  if (type === "amplitude") return amplitudeReadsInBatches(config);
  if (type === "prometheus") return prometheusReadsInBatches(config);
  const source = SQL_SOURCES[type];
  if (source !== undefined) return sqlSourceReadsInBatches(source, config);
  const registered = registeredEntry(type);
  if (registered !== undefined) return registeredReadsInBatches(registered, config);
  return type === "postgres" && postgresReadsInBatches(config);
}

/**
 * How a connector type reads, for people (`outcome-runtime validate`):
 * `query` (a SQL source's query with named parameters: `postgres`, `mysql`,
 * `duckdb`, `clickhouse`, `snowflake`, ...), `mixpanel`, `amplitude`, `file` (`csv`,
 * `replay`), `datadog` (metric queries grouped by experiment and arm tags)
 * or `module` (a type a connector module registered); undefined
 * for a type nobody knows.
 */
export function connectorReadKind(
  type: string,
): "query" | "mixpanel" | "file" | "module" | "ga4" | "posthog" | "amplitude" | "prometheus" | "datadog" | undefined {
  const known = CONNECTOR_ALIASES[type] ?? type;
  if (known === "postgres" || SQL_SOURCES[known] !== undefined) return "query";
  if (known === "mixpanel") return "mixpanel";
  if (known === "posthog") return "posthog";
  if (known === "amplitude") return "amplitude";
  if (known === "prometheus") return "prometheus";
  if (known === "csv") return "file";
  if (known === "datadog") return "datadog";
  if (known === "ga4") return "ga4";
  return registeredEntry(known) === undefined ? undefined : "module";
}

/** Why a connector's settings cannot be used, for `outcome-runtime validate` and the API's validate and apply. */
export interface ConnectorSettingsProblem {
  /** `sql_refused` (a query the SQL policy refuses), `source_refused` (a host the vendor does not own), else `invalid_connector`. */
  readonly code: "invalid_connector" | "sql_refused" | "source_refused";
  /** The setting concerned (`query`, `database_url_secret`, ...), when there is one. */
  readonly field: string | undefined;
  readonly problem: string;
  readonly fix: string | undefined;
  /** For a query: the character offset of the problem in the setting's text. */
  readonly offset: number | undefined;
}

/** Options of {@link checkConnectorSettings}. */
export interface SettingsCheckOptions {
  /** The operator's `SOURCE_API_URLS`; leave out where it is not known (the CLI, offline). */
  readonly allowedApiUrls?: Readonly<Record<string, readonly string[]>>;
  /** Whether an `api_url` outside the vendor's documented hosts and `allowedApiUrls` is a problem (default true). */
  readonly hostPolicy?: boolean;
  /** The directory csv paths are relative to (default: the working directory). */
  readonly baseDir?: string;
}

/**
 * Checks a connector's settings without reading a credential or connecting:
 * fields, credential references, the SQL policy (PostgreSQL's parser) with
 * the query's offset, csv paths, the vendor's hosts.
 *
 * @returns the first problem, or null when the settings are usable
 */
export function checkConnectorSettings(
  config: ConnectorConfig,
  metricKind: "proportion" | "mean" | "ratio",
  options: SettingsCheckOptions = {},
): ConnectorSettingsProblem | null {
  try {
    const credentials = Object.fromEntries(
      connectorCredentials(config).map((c) => [c.credential, "(checked, not read)"]),
    );
    const connector = createConnector(config, {
      metricKind,
      credentials,
      ...(options.allowedApiUrls === undefined ? {} : { allowedApiUrls: options.allowedApiUrls }),
      ...(options.baseDir === undefined ? {} : { baseDir: options.baseDir }),
    });
    void connector.close();
    return null;
  } catch (error) {
    if (!(error instanceof ConnectorError)) throw error;
    if (error.code === "source_refused" && options.hostPolicy === false) return null;
    const details = error.details;
    const sqlField = typeof details.sqlField === "string" ? details.sqlField : undefined;
    const field = sqlField ?? (typeof details.field === "string" ? details.field : undefined);
    return {
      code:
        error.code === "source_refused"
          ? "source_refused"
          : sqlField !== undefined
            ? "sql_refused"
            : "invalid_connector",
      field,
      problem: typeof details.problem === "string" ? details.problem : error.message,
      fix: typeof details.fix === "string" ? details.fix : undefined,
      offset: typeof details.offset === "number" ? details.offset : undefined,
    };
  }
}
