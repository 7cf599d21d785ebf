/**
 * The connectors accept exactly what schemas/outcome.schema.json lets a
 * user write: every type, and every field of every connector.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONNECTOR_TYPES, createConnector } from "./create-connector";
import { credentialChoices } from "./credentials";

type Node = Record<string, unknown>;
const schema = JSON.parse(
  readFileSync(fileURLToPath(new URL("../../../schemas/outcome.schema.json", import.meta.url)), "utf8"),
) as { $defs: Record<string, Node> };

/** A valid value for each connector field, as written in outcome.yaml. */
const SAMPLES: Record<string, unknown> = {
  query: "SELECT arm, units, sum, sum_sq FROM t WHERE k = :experiment AND ts <= :to",
  series_query: "SELECT ts, value FROM s WHERE ts > :from AND ts <= :to",
  database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL",
  database_url_secret: "analytics-db",
  timeout: "45s",
  max_rows: 100,
  project_id: 2741933,
  workspace_id: 3301,
  username_env: "OUTCOME_RUNTIME_SOURCE_MP_USER",
  secret_env: "OUTCOME_RUNTIME_SOURCE_MP_SECRET",
  username_secret: "mixpanel-username",
  secret_secret: "mixpanel-secret",
  event: "Order completed",
  exposure_event: "$experiment_started",
  variant_property: "Variant name",
  experiment_property: "Experiment name",
  value_property: "amount",
  filter: 'properties["platform"] == "web"',
  region: "eu",
  api_url: "https://eu.mixpanel.com/api/query",
  path: "data/signal.csv",
  series_path: "data/series.csv",
  columns: { ts: "day", arm: "variant", value: "v", units: "n", sum: "s", sum_sq: "ss", experiment: "exp" },
  speed: 60,
  snapshot_every: "1h",
  location: "EU",
  dataset: "product",
  maximum_bytes_billed: "50 GB",
  labels: { team: "growth" },
  max_concurrency: 2,
  retries: 1,
  base_dir: "exports",
  tables: { t: "t/*.parquet", s: "s.csv" },
  database: "analytics.duckdb",
  threads: 2,
  memory_limit: "1GB",
  remote_urls: ["s3://analytics-exports/events/"],
  url_env: "OUTCOME_RUNTIME_SOURCE_CLICKHOUSE_URL",
  url_secret: "analytics-clickhouse",
  account: "myorg-myaccount",
  user: "OUTCOME_RUNTIME",
  warehouse: "OUTCOME_XS_WH",
  role: "OUTCOME_READER",
  schema: "PUBLIC",
  query_tag: "outcome-runtime/test",
  private_key_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY",
  private_key_secret: "snowflake-key",
  private_key_passphrase_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_PASSPHRASE",
  private_key_passphrase_secret: "snowflake-key-passphrase",
  credentials_json_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY",
  credentials_json_secret: "bigquery-key",
  credentials_file_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE",
  property_id: 287465190,
  experiment_dimension: "customUser:experiment_key",
  arm_dimension: "customUser:experiment_arm",
  units_metric: "activeUsers",
  value_metric: "customEvent:amount",
  value_squared_metric: "customEvent:amount_squared",
};

/** Samples of a type whose field has another shape than the same field of another type. */
const TYPE_SAMPLES: Record<string, Record<string, unknown>> = {
  bigquery: { project_id: "acme-analytics", api_endpoint: "https://bigquery.googleapis.com" },
  snowflake: { api_url: "https://myorg-myaccount.snowflakecomputing.com", database: "ANALYTICS" },
  ga4: { api_url: "https://analyticsdata.googleapis.com" },
  datadog: {
    api_key_env: "OUTCOME_RUNTIME_SOURCE_DD_API_KEY",
    api_key_secret: "datadog-api-key",
    application_key_env: "OUTCOME_RUNTIME_SOURCE_DD_APP_KEY",
    application_key_secret: "datadog-application-key",
    site: "datadoghq.eu",
    api_url: "https://api.datadoghq.eu",
    requests: "sum:trace.http.request.hits{service:checkout}",
    errors: "sum:trace.http.request.errors{service:checkout}",
    slow_requests: "sum:checkout.requests.slow{service:checkout}",
    experiment_tag: "experiment",
    arm_tag: "arm",
    series_query: "sum:checkout.orders{env:prod}.as_count()",
    requests_per_hour: 300,
  },
};

/** Fields of a type of which exactly one is given, each in turn, as a credential's forms are. */
const ALTERNATIVES: Record<string, string[][]> = { datadog: [["errors", "slow_requests"]] };

/** The metric kind a type is checked with: a mean, unless the type reads proportions only. */
const KINDS: Record<string, "proportion"> = { datadog: "proportion" };

const credentials = {
  database_url: "postgres://localhost/analytics",
  username: "u",
  secret: "s",
  url: "https://reader:pw@clickhouse.internal:8443",
  private_key: "(read at the first request)",
  private_key_passphrase: "p",
  credentials_json: "{}",
  credentials_file: "/run/secrets/bigquery-key.json",
  api_key: "dd-api-key",
  application_key: "dd-application-key",
};

describe("connectors and the outcome schema", () => {
  const connector = schema.$defs.Connector as { allOf: { if: Node; then: { $ref: string } }[] };
  const branches = connector.allOf.map((branch) => {
    const type = (branch.if.properties as Record<string, Node>).type as Node;
    const types = (type.const === undefined ? type.enum : [type.const]) as string[];
    const def = schema.$defs[branch.then.$ref.replace("#/$defs/", "")] as { properties: Record<string, Node> };
    return { types, fields: Object.keys(def.properties).filter((key) => key !== "type") };
  });

  it("know the same connector types", () => {
    expect(branches.flatMap((b) => b.types).sort()).toEqual([...CONNECTOR_TYPES].sort());
  });

  it("accept every field the schema declares (each credential's forms one at a time)", () => {
    for (const { types, fields } of branches) {
      for (const type of types) {
        // Each credential is named one way: the first of its settings, then the second, ...
        const choices = [...credentialChoices(type), ...(ALTERNATIVES[type] ?? [])];
        const ways = Math.max(1, ...choices.map((c) => c.length));
        for (let way = 0; way < ways; way++) {
          const unused = choices.flatMap((choice) => choice.filter((_, i) => i !== way % choice.length));
          const used = fields.filter((f) => !unused.includes(f));
          const samples = { ...SAMPLES, ...TYPE_SAMPLES[type] };
          const config = Object.fromEntries(used.map((field) => [field, samples[field]]));
          expect(Object.values(config), `a sample for every field of ${type}`).not.toContain(undefined);
          const created = createConnector({ type, ...config }, { credentials, metricKind: KINDS[type] ?? "mean" });
          expect(created.describe().length).toBeGreaterThan(0);
        }
      }
    }
  });
});
