/**
 * The connector contract on the `bigquery` connector, through the official
 * client (`@google-cloud/bigquery`), against the local stand-in of BigQuery's
 * REST API v2 and Google's token endpoint
 * (@outcome-runtime/testing/fake-bigquery): a service-account key, a dry run,
 * the job, its results. The fake plays BigQuery running the harness's query
 * over the case's table: it answers the rows the query's WHERE keeps, given
 * the named parameters bound to `@experiments` (ARRAY<STRING>) or
 * `@experiment` (STRING) and `@arms` (ARRAY<STRING>), with the schema
 * `jobs.getQueryResults` gives such a table and every cell as text, as the
 * REST API writes it: an INT64 and a NUMERIC as their digits, a FLOAT64 as
 * Java's `Double.toString` writes it (`13.0`, `4.0E11`), as BigQuery's JSON
 * does.
 */
import { createConnector } from "@outcome-runtime/connectors";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import {
  type FakeBigQueryQuery,
  type FakeBigQueryResult,
  startFakeBigQuery,
} from "@outcome-runtime/testing/fake-bigquery";
import { type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

/**
 * BigQuery's type of each logical type, as a result's `schema.fields[].type`
 * names it: the REST API reports INT64 as `INTEGER` and FLOAT64 as `FLOAT`
 * (their legacy names); a count past 2^53 in a decimal column is a NUMERIC
 * (29 integer digits), as `SUM` of a NUMERIC column gives.
 */
const TYPES = { text: "STRING", integer: "INTEGER", float: "FLOAT", decimal: "NUMERIC" } as const;
const COLUMNS = ["experiment", "arm", "units", "sum", "sum_sq"] as const;

const BATCHED =
  "SELECT experiment, arm, units, sum, sum_sq FROM contract WHERE experiment IN UNNEST(:experiments) AND arm IN UNNEST(:arms) AND :from <= :to";
const SINGLE =
  "SELECT arm, units, sum, sum_sq FROM contract WHERE experiment = :experiment AND arm IN UNNEST(:arms) AND :from <= :to";

/** A FLOAT64 cell as BigQuery writes it: `13.0`, `5012.5`, and `4.0E11` or `1.0E-4` outside [10^-3, 10^7). */
function float64Text(value: number): string {
  const magnitude = Math.abs(value);
  if (value === 0 || (magnitude >= 1e-3 && magnitude < 1e7)) {
    return Number.isInteger(value) ? value.toFixed(1) : String(value);
  }
  const [mantissa = "", exponent = ""] = value.toExponential().split("e");
  return `${mantissa.includes(".") ? mantissa : `${mantissa}.0`}E${exponent.replace("+", "")}`;
}

/** A row's cells as the fake sends them: FLOAT64 ones formatted as BigQuery does, the others as they are. */
function cellsOf(table: ContractTable, row: ContractTable["rows"][number]): unknown[] {
  return row.map((value, i) => {
    const column = COLUMNS[i];
    return column !== undefined && table.types[column] === "float" && typeof value === "number"
      ? float64Text(value)
      : value;
  });
}

/**
 * What the query keeps of `table`: the rows of the bound experiment(s) and
 * arms (the batched form binds @experiments, the other @experiment); the
 * one-experiment query does not select the experiment column. The fake
 * writes each cell as BigQuery's REST API does: text, a NULL as null.
 */
function answer(table: ContractTable, query: FakeBigQueryQuery): FakeBigQueryResult {
  const { experiments, experiment, arms } = query.params as {
    experiments?: string[];
    experiment?: string;
    arms: string[];
  };
  const kept = table.rows
    .filter(
      ([e, arm]) =>
        (experiments === undefined ? e === experiment : experiments.includes(e as string)) &&
        arms.includes(arm as string),
    )
    .map((row) => cellsOf(table, row));
  const columns = COLUMNS.map((name) => ({ name, type: TYPES[table.types[name]] }));
  return experiments === undefined
    ? { columns: columns.slice(1), rows: kept.map((row) => row.slice(1)) }
    : { columns, rows: kept };
}

describeConnectorContract("bigquery", ["batched", "single"], async (): Promise<ContractHarness> => {
  const fake = await startFakeBigQuery({ projectId: "acme-analytics" });
  return {
    async open(table, form, kind) {
      fake.answer = (query) => answer(table, query);
      return createConnector(
        {
          type: "bigquery",
          project_id: "acme-analytics",
          location: "EU",
          credentials_json_env: "OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY",
          api_endpoint: fake.apiEndpoint,
          query: form === "batched" ? BATCHED : SINGLE,
        },
        {
          metricKind: kind,
          credentials: { credentials_json: fake.serviceAccountKey() },
          // The fake stands in for BigQuery and Google's token endpoint: SOURCE_API_URLS allows both (the
          // key's token_uri is the fake's), OUTBOUND_ALLOW lets loopback through.
          allowedApiUrls: { bigquery: [fake.apiEndpoint, fake.tokenUrl] },
          outboundPolicy: parseOutboundPolicy("127.0.0.1"),
        },
      );
    },
    async close() {
      await fake.close();
    },
  };
});
