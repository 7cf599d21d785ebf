/**
 * The connector contract on the `snowflake` connector against the local
 * stand-in of Snowflake's SQL API v2 (@outcome-runtime/testing/fake-snowflake):
 * key-pair JWT, statements submitted and fetched. The fake plays the
 * warehouse running the harness's query over the case's table: it answers the
 * rows the query's WHERE keeps, given the values bound to its `?` in order,
 * with the column types Snowflake reports for such a table (TEXT, FIXED of
 * scale 0 for NUMBER(38,0), REAL for FLOAT) and unquoted identifiers in upper
 * case, as Snowflake names them.
 */
import { createConnector } from "@outcome-runtime/connectors";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import {
  type SnowflakeFakeColumn,
  type SnowflakeFakeQuery,
  type SnowflakeFakeRows,
  startSnowflakeFake,
} from "@outcome-runtime/testing/fake-snowflake";
import { type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const TYPES: Readonly<Record<ContractTable["types"]["units"], SnowflakeFakeColumn["type"]>> = {
  text: "TEXT",
  integer: "FIXED",
  float: "REAL",
  decimal: "FIXED",
};
const COLUMNS = ["experiment", "arm", "units", "sum", "sum_sq"] as const;

const BATCHED =
  "SELECT experiment, arm, units, sum, sum_sq FROM contract WHERE experiment IN (:experiments) AND arm IN (:arms) AND :from <= :to";
const SINGLE =
  "SELECT arm, units, sum, sum_sq FROM contract WHERE experiment = :experiment AND arm IN (:arms) AND :from <= :to";

/** How many `?` the connector wrote in `<column> IN (?, ?, ...)`: the length of the list bound there. */
function listLength(sql: string, column: string): number {
  const list = new RegExp(`\\b${column} IN \\(([?,\\s]*)\\)`, "u").exec(sql)?.[1];
  if (list === undefined) throw new Error(`no "${column} IN (...)" in ${sql}`);
  return list.split("?").length - 1;
}

/**
 * What the query keeps of `table`: the rows of the bound experiment(s) and
 * arms. The bindings come in the order of the `?`: the experiments (or the
 * one experiment), then the arms, then :from and :to.
 */
function answer(table: ContractTable, query: SnowflakeFakeQuery): SnowflakeFakeRows {
  const values = query.parameters as string[];
  const batched = /\bexperiment IN \(/u.test(query.sql);
  const experiments = batched ? values.slice(0, listLength(query.sql, "experiment")) : values.slice(0, 1);
  const arms = values.slice(experiments.length, experiments.length + listLength(query.sql, "arm"));
  const kept = table.rows.filter(([e, arm]) => experiments.includes(e as string) && arms.includes(arm as string));
  const columns = COLUMNS.map((name): SnowflakeFakeColumn => {
    const type = TYPES[table.types[name]];
    return { name: name.toUpperCase(), type, ...(type === "FIXED" ? { scale: 0 } : {}) };
  });
  return batched ? { columns, rows: kept } : { columns: columns.slice(1), rows: kept.map((row) => row.slice(1)) };
}

describeConnectorContract("snowflake", ["batched", "single"], async (): Promise<ContractHarness> => {
  const fake = await startSnowflakeFake({ account: "MYORG-MYACCOUNT", user: "OUTCOME_READER" });
  return {
    async open(table, form, kind) {
      fake.respondWith((query) => answer(table, query));
      return createConnector(
        {
          type: "snowflake",
          account: "myorg-myaccount",
          user: "outcome_reader",
          warehouse: "ANALYTICS_WH",
          role: "OUTCOME_READER",
          database: "ANALYTICS",
          schema: "PUBLIC",
          private_key_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY",
          api_url: fake.url,
          query: form === "batched" ? BATCHED : SINGLE,
        },
        {
          metricKind: kind,
          credentials: { private_key: fake.privateKey },
          // The fake stands in for the account: SOURCE_API_URLS allows it, OUTBOUND_ALLOW lets loopback through.
          allowedApiUrls: { snowflake: [fake.url] },
          outboundPolicy: parseOutboundPolicy("127.0.0.1"),
        },
      );
    },
    async close() {
      await fake.close();
    },
  };
});
