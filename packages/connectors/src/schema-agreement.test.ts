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
  funnel_id: 7509,
  series_denominator_event: "App opened",
  timezone: "Europe/Berlin",
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
  personal_api_key_env: "OUTCOME_RUNTIME_SOURCE_POSTHOG_KEY",
  personal_api_key_secret: "posthog-key",
  api_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
  api_key_secret: "amplitude-api-key",
  secret_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_SECRET_KEY",
  secret_key_secret: "amplitude-secret-key",
  arm_property: "arm",
  value_squared_property: "amount_sq",
  funnel: ["Checkout started"],
  funnel_mode: "unordered",
  conversion_window: "7d",
  project_timezone: "America/Los_Angeles",
  batch: false,
  url: "http://prometheus.internal:9090",
  bearer_token_env: "OUTCOME_RUNTIME_SOURCE_PROMETHEUS_TOKEN",
  bearer_token_secret: "prometheus-token",
  password_env: "OUTCOME_RUNTIME_SOURCE_PROMETHEUS_PASSWORD",
  password_secret: "prometheus-password",
  experiment_label: "experiment",
  arm_label: "arm",
  requests: 'http_requests_total{job="checkout"}',
  errors: 'http_requests_total{job="checkout", code=~"5.."}',
  latency: "http_request_duration_seconds",
  threshold: 0.3,
  quantile: 0.99,
  step: "1m",
};

/** Samples of a type whose field has another shape than the same field of another type. */
const TYPE_SAMPLES: Record<string, Record<string, unknown>> = {
  bigquery: { project_id: "acme-analytics", api_endpoint: "https://bigquery.googleapis.com" },
  snowflake: { api_url: "https://myorg-myaccount.snowflakecomputing.com", database: "ANALYTICS" },
  ga4: { api_url: "https://analyticsdata.googleapis.com" },
  amplitude: { api_url: "https://analytics.eu.amplitude.com" },
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

  prometheus: { series_query: 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))' },
  posthog: {
    api_url: "https://eu.posthog.com",
    query:
      "SELECT arm, count() AS units, 0 AS sum, 0 AS sum_sq FROM events WHERE properties.exp = {experiment} AND timestamp <= {to} GROUP BY arm",
  },
};

/**
 * Fields of a type that exclude each other: each variant leaves some fields
 * out and is read with its metric kind (posthog: its own `query`, or the
 * fields of the query it builds; mixpanel: `funnel_id` for a proportion,
 * `value_property` for a mean).
 */
const EXCLUSIVE: Record<
  string,
  readonly { readonly leftOut: readonly string[]; readonly metricKind: "proportion" | "mean" }[]
> = {
  posthog: [
    { leftOut: ["query"], metricKind: "mean" },
    {
      leftOut: ["event", "exposure_event", "experiment_property", "variant_property", "value_property"],
      metricKind: "mean",
    },
  ],
  mixpanel: [
    { leftOut: ["funnel_id"], metricKind: "mean" },
    { leftOut: ["value_property"], metricKind: "proportion" },
  ],
  amplitude: [
    { leftOut: ["funnel", "funnel_mode", "conversion_window"], metricKind: "mean" },
    { leftOut: ["value_property", "value_squared_property"], metricKind: "proportion" },
  ],
  // Datadog reads proportions only (an error rate, or a share of slow requests).
  datadog: [{ leftOut: [], metricKind: "proportion" }],
  // An error rate or a latency threshold; a bearer token or basic auth. Prometheus reads proportions only.
  prometheus: [
    {
      leftOut: [
        "latency",
        "threshold",
        "quantile",
        "username_env",
        "username_secret",
        "password_env",
        "password_secret",
      ],
      metricKind: "proportion",
    },
    { leftOut: ["requests", "errors", "bearer_token_env", "bearer_token_secret"], metricKind: "proportion" },
  ],
};

/** Fields of a type of which exactly one is given, each in turn, as a credential's forms are. */
const ALTERNATIVES: Record<string, string[][]> = { datadog: [["errors", "slow_requests"]] };

const credentials = {
  database_url: "postgres://localhost/analytics",
  username: "u",
  secret: "s",
  url: "https://reader:pw@clickhouse.internal:8443",
  private_key: "(read at the first request)",
  private_key_passphrase: "p",
  credentials_json: "{}",
  credentials_file: "/run/secrets/bigquery-key.json",
  personal_api_key: "phx_sample",
  api_key: "k",
  secret_key: "s",
  bearer_token: "t",
  password: "p",
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
          for (const { leftOut, metricKind } of EXCLUSIVE[type] ?? [{ leftOut: [], metricKind: "mean" as const }]) {
            const unused = choices.flatMap((choice) => choice.filter((_, i) => i !== way % choice.length));
            const used = fields.filter((f) => !unused.includes(f) && !leftOut.includes(f));
            const samples = { ...SAMPLES, ...TYPE_SAMPLES[type] };
            const config = Object.fromEntries(used.map((field) => [field, samples[field]]));
            expect(Object.values(config), `a sample for every field of ${type}`).not.toContain(undefined);
            const created = createConnector({ type, ...config }, { credentials, metricKind });
            expect(created.describe().length).toBeGreaterThan(0);
          }
        }
      }
    }
  });
});
