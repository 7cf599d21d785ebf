/**
 * The connectors accept exactly what schemas/outcome.schema.json lets a
 * user write: every type, and every field of every connector.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONNECTOR_TYPES, createConnector } from "./create-connector";

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
};

/** Samples that differ by connector type (an api_url is the vendor's own). */
const TYPE_SAMPLES: Record<string, Record<string, unknown>> = {
  snowflake: { api_url: "https://myorg-myaccount.snowflakecomputing.com", database: "ANALYTICS" },
};

const credentials = {
  database_url: "postgres://localhost/analytics",
  username: "u",
  secret: "s",
  url: "https://reader:pw@clickhouse.internal:8443",
  private_key: "(read at the first request)",
  private_key_passphrase: "p",
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

  it("accept every field the schema declares (a credential's two forms one at a time)", () => {
    for (const { types, fields } of branches) {
      for (const type of types) {
        // Each credential is named one way: the `_env` forms, then the `_secret` forms.
        for (const form of ["_env", "_secret"]) {
          const other = form === "_env" ? "_secret" : "_env";
          const used = fields.filter((f) => !(f.endsWith(other) && fields.includes(f.slice(0, -other.length) + form)));
          const config = Object.fromEntries(
            used.map((field) => [field, TYPE_SAMPLES[type]?.[field] ?? SAMPLES[field]]),
          );
          expect(Object.values(config), `a sample for every field of ${type}`).not.toContain(undefined);
          const created = createConnector({ type, ...config }, { credentials, metricKind: "mean" });
          expect(created.describe().length).toBeGreaterThan(0);
        }
      }
    }
  });
});
