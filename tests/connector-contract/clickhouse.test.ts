/**
 * The connector contract on the `clickhouse` connector, through the official
 * client, against the local stand-in of ClickHouse's HTTP interface
 * (@outcome-runtime/testing/fake-clickhouse). The fake plays the server
 * running the harness's query over the case's table: it answers the rows the
 * query's WHERE keeps, with the column types ClickHouse gives such a table
 * (String, Int64, Float64, Decimal(38, 0), Nullable(...) for a column with a
 * NULL), in the format the connector asks for (64-bit integers quoted,
 * decimals not, as ClickHouse writes them by default).
 */
import { createConnector } from "@outcome-runtime/connectors";
import {
  type FakeClickHouseColumn,
  type FakeClickHouseQuery,
  startClickHouseFake,
} from "@outcome-runtime/testing/fake-clickhouse";
import { type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

/**
 * ClickHouse's type of each logical type: a count is Int64 (signed, as a
 * table column or `sum()` of one: the negative-count case must be
 * expressible, which UInt64 is not), a decimal a Decimal(38, 0).
 */
const TYPES = { text: "String", integer: "Int64", float: "Float64", decimal: "Decimal(38, 0)" } as const;
const COLUMNS = ["experiment", "arm", "units", "sum", "sum_sq"] as const;

/** Each column with its ClickHouse type, Nullable when a row of the case holds NULL there. */
function columnsOf(table: ContractTable): FakeClickHouseColumn[] {
  return COLUMNS.map((name, i) => {
    const type = TYPES[table.types[name]];
    return { name, type: table.rows.some((row) => row[i] === null) ? `Nullable(${type})` : type };
  });
}

/** The grants of a user granted SELECT only: the connector reads them before its first query. */
const GRANT_ANSWER = {
  columns: [
    { name: "access_type", type: "Enum16('SELECT' = 1)" },
    { name: "database", type: "Nullable(String)" },
    { name: "table", type: "Nullable(String)" },
    { name: "column", type: "Nullable(String)" },
    { name: "is_partial_revoke", type: "UInt8" },
    { name: "grant_option", type: "UInt8" },
    { name: "user_name", type: "Nullable(String)" },
    { name: "role_name", type: "Nullable(String)" },
  ],
  rows: [["SELECT", "analytics", null, null, 0, 0, "reader", null]],
};

const BATCHED =
  "SELECT experiment, arm, units, sum, sum_sq FROM contract WHERE has(:experiments, experiment) AND has(:arms, arm) AND :from <= :to";
const SINGLE =
  "SELECT arm, units, sum, sum_sq FROM contract WHERE experiment = :experiment AND has(:arms, arm) AND :from <= :to";

/**
 * What the query keeps of `table`: the rows of the bound experiment(s) and
 * arms (the batched form binds :experiments, the other :experiment); the
 * one-experiment query does not select the experiment column.
 */
function answer(table: ContractTable, query: FakeClickHouseQuery) {
  const { experiments, experiment, arms } = query.parameters as {
    experiments?: string[];
    experiment?: string;
    arms: string[];
  };
  const kept = table.rows.filter(
    ([e, arm]) =>
      (experiments === undefined ? e === experiment : experiments.includes(e as string)) &&
      arms.includes(arm as string),
  );
  const columns = columnsOf(table);
  return experiments === undefined
    ? { columns: columns.slice(1), rows: kept.map((row) => row.slice(1)) }
    : { columns, rows: kept };
}

describeConnectorContract("clickhouse", ["batched", "single"], async (): Promise<ContractHarness> => {
  const fake = await startClickHouseFake();
  const url = fake.url.replace("http://", "http://reader:reader-password@");
  return {
    async open(table, form, kind) {
      fake.respondWith((query) => (query.sql.includes("system.grants") ? GRANT_ANSWER : answer(table, query)));
      return createConnector(
        { type: "clickhouse", query: form === "batched" ? BATCHED : SINGLE, url_secret: "contract-clickhouse" },
        { metricKind: kind, credentials: { url } },
      );
    },
    async close() {
      await fake.close();
    },
  };
});
