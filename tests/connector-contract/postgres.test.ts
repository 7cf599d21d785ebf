/** The connector contract on the `postgres` connector, against a real Postgres database read as the read-only role. */
import { createConnector } from "@outcome-runtime/connectors";
import { createSourceDatabase } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test builds the team's analytics tables the connector reads
import pg from "pg";
import { type ContractHarness, describeConnectorContract } from "./contract";
import { createTableSql, insertSql } from "./sql-tables";

const TYPES = { text: "text", integer: "bigint", float: "double precision", decimal: "numeric" } as const;
const quote = (id: string) => `"${id}"`;

describeConnectorContract("postgres", ["batched", "single"], async (): Promise<ContractHarness> => {
  const source = await createSourceDatabase();
  const admin = new pg.Client({ connectionString: source.adminUrl });
  await admin.connect();
  let n = 0;
  return {
    async open(table, form, kind) {
      const name = `contract_${++n}`;
      await admin.query(createTableSql(name, table, TYPES, quote));
      const insert = insertSql(name, table, quote, (i) => `$${i}`);
      if (insert !== null) await admin.query(insert.sql, insert.values);
      const query =
        form === "batched"
          ? `SELECT experiment, arm, units, sum, sum_sq FROM ${name} WHERE experiment = ANY(:experiments) AND arm = ANY(:arms) AND :from <= :to`
          : `SELECT arm, units, sum, sum_sq FROM ${name} WHERE experiment = :experiment AND arm = ANY(:arms) AND :from <= :to`;
      return createConnector(
        { type: "postgres", query, database_url_env: "OUTCOME_RUNTIME_SOURCE_CONTRACT_URL" },
        { metricKind: kind, credentials: { database_url: source.readerUrl } },
      );
    },
    async close() {
      await admin.end();
      await source.drop();
    },
  };
});
