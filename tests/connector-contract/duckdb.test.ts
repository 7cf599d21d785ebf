/**
 * The connector contract on the `duckdb` connector: each case's table is
 * written as a Parquet file (by DuckDB itself, with the case's column types)
 * and read by the real embedded engine through the connector's sandbox.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { createConnector } from "@outcome-runtime/connectors";
import { type ContractHarness, describeConnectorContract } from "./contract";
import { createTableSql } from "./sql-tables";

const TYPES = { text: "VARCHAR", integer: "BIGINT", float: "DOUBLE", decimal: "DECIMAL(38,0)" } as const;
const quote = (id: string) => `"${id}"`;

/** A cell as a DuckDB literal. */
function literal(cell: string | number | bigint | null): string {
  if (cell === null) return "NULL";
  if (typeof cell === "string") return `'${cell.replaceAll("'", "''")}'`;
  return String(cell);
}

describeConnectorContract("duckdb", ["batched", "single"], async (): Promise<ContractHarness> => {
  const dir = mkdtempSync(join(tmpdir(), "ort-duckdb-contract-"));
  const instance = await DuckDBInstance.create(":memory:");
  const writer = await instance.connect();
  let n = 0;
  return {
    async open(table, form, kind) {
      const name = `contract_${++n}`;
      await writer.run(createTableSql(name, table, TYPES, quote));
      if (table.rows.length > 0) {
        await writer.run(
          `INSERT INTO ${name} VALUES ${table.rows.map((r) => `(${r.map(literal).join(", ")})`).join(", ")}`,
        );
      }
      await writer.run(`COPY ${name} TO '${join(dir, `${name}.parquet`)}' (FORMAT parquet)`);
      const query =
        form === "batched"
          ? "SELECT experiment, arm, units, sum, sum_sq FROM contract WHERE experiment = ANY(:experiments) AND list_contains(:arms, arm) AND :from <= :to"
          : "SELECT arm, units, sum, sum_sq FROM contract WHERE experiment = :experiment AND list_contains(:arms, arm) AND :from <= :to";
      return createConnector(
        { type: "duckdb", base_dir: ".", tables: { contract: `${name}.parquet` }, query },
        { metricKind: kind, baseDir: dir },
      );
    },
    async close() {
      writer.closeSync();
      instance.closeSync();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
