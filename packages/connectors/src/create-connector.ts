/**
 * The connector factory: one entry point from a connector's settings in
 * outcome.yaml to a {@link SignalConnector}.
 */

import type { ConnectorConfig, ConnectorContext, SignalConnector } from "./connector";
import { ConnectorError } from "./connector-error";
import { createCsvConnector } from "./csv/csv.connector";
import { createMixpanelConnector } from "./mixpanel/mixpanel.connector";
import { createPostgresConnector } from "./postgres/postgres.connector";

/** The connector types `createConnector` accepts (`replay` is another name for `csv`). */
export const CONNECTOR_TYPES: readonly string[] = Object.freeze(["postgres", "mixpanel", "csv", "replay"]);

/** Other names of connector types: `replay` → `csv`. */
export const CONNECTOR_ALIASES: Readonly<Record<string, string>> = Object.freeze({ replay: "csv" });

/**
 * Creates the connector `config.type` names. Settings are checked now
 * (fields, SQL parameters, environment variables named by the settings);
 * nothing is connected or read until the first poll.
 *
 * `config` may be the connector as written in outcome.yaml or as
 * normalised by @outcome-runtime/spec (durations in seconds).
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix
 * @example
 * const connector = createConnector(spec.signal.connector, { env: process.env, metricKind: spec.signal.kind });
 * const rows = await connector.fetchArmAggregates({ experimentKey: "exp-1", arms: ["control", "treatment"], from, to });
 */
export function createConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (config === null || typeof config !== "object" || typeof config.type !== "string") {
    throw new ConnectorError("invalid_config", "connector: type is missing; write type: postgres, mixpanel or csv", {
      details: { field: "type" },
    });
  }
  if (context.metricKind !== "proportion" && context.metricKind !== "mean") {
    throw new ConnectorError(
      "invalid_config",
      `connector: metric kind ${JSON.stringify(context.metricKind)} is not proportion or mean`,
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
    default:
      throw new ConnectorError(
        "invalid_config",
        `connector: type: unknown connector type ${JSON.stringify(config.type)}; known types: ${CONNECTOR_TYPES.join(", ")}`,
        { details: { field: "type", value: config.type } },
      );
  }
}
