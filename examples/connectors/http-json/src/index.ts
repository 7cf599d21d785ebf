/**
 * The `http-json` connector as a connector module: name this package in
 * `CONNECTOR_MODULES` and outcome files may use `connector: { type: http-json }`.
 * See README.md.
 */
import type { ConnectorModule } from "@outcome-runtime/connectors";
import { createHttpJsonConnector, HTTP_JSON_TYPE } from "./http-json.connector";

const connector: ConnectorModule = {
  type: HTTP_JSON_TYPE,
  description: "arm aggregates from an internal HTTP endpoint answering JSON",
  credentials: [{ credential: "token", what: "the endpoint's bearer token" }],
  create: createHttpJsonConnector,
};

export default connector;
