/** The connector contract on the `mysql` connector, against the real local MariaDB read as an account granted SELECT only. */
import { createConnector } from "@outcome-runtime/connectors";
import { createMysqlSourceDatabase } from "@outcome-runtime/testing/mysql";
import { type ContractHarness, describeConnectorContract } from "./contract";
import { createTableSql, insertSql } from "./sql-tables";

const TYPES = { text: "VARCHAR(200)", integer: "BIGINT", float: "DOUBLE", decimal: "DECIMAL(40,0)" } as const;
const quote = (id: string) => `\`${id}\``;

describeConnectorContract("mysql", ["batched", "single"], async (): Promise<ContractHarness> => {
  const source = await createMysqlSourceDatabase();
  let n = 0;
  return {
    async open(table, form, kind) {
      const name = `contract_${++n}`;
      await source.admin(createTableSql(name, table, TYPES, quote));
      const insert = insertSql(name, table, quote, () => "?");
      if (insert !== null) await source.admin(insert.sql, insert.values);
      const query =
        form === "batched"
          ? `SELECT experiment, arm, units, \`sum\`, sum_sq FROM ${name} WHERE experiment IN (:experiments) AND arm IN (:arms) AND :from <= :to`
          : `SELECT arm, units, \`sum\`, sum_sq FROM ${name} WHERE experiment = :experiment AND arm IN (:arms) AND :from <= :to`;
      return createConnector(
        { type: "mysql", query, database_url_env: "OUTCOME_RUNTIME_SOURCE_CONTRACT_URL" },
        { metricKind: kind, credentials: { database_url: source.readerUrl } },
      );
    },
    async close() {
      await source.drop();
    },
  };
});
