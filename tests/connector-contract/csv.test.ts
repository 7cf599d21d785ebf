/**
 * The connector contract on the `csv` connector: each case's table is written
 * as a CSV file of cumulative aggregates (`ts, experiment, arm, units, sum,
 * sum_sq`) in the connector's directory, the cells as a file holds them: NULL
 * an empty field, text as text, a whole number past 2^53 as its digits. The
 * connector requires a `ts` on every row; each row is the aggregate as of the
 * window's end. It reads one experiment at a time (its `experiment` column
 * keeps the polled one's rows) and has no batched form.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnector } from "@outcome-runtime/connectors";
import { CONTRACT_TO, type ContractCell, type ContractHarness, describeConnectorContract } from "./contract";

/** A cell as a CSV field (RFC 4180): NULL empty, a field with a comma, quote or line break quoted. */
function field(cell: ContractCell): string {
  if (cell === null) return "";
  const text = String(cell);
  return /[",\r\n]/u.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

describeConnectorContract("csv", ["single"], async (): Promise<ContractHarness> => {
  const dir = mkdtempSync(join(tmpdir(), "ort-csv-contract-"));
  const ts = CONTRACT_TO.toISOString();
  let n = 0;
  return {
    async open(table, form, kind) {
      if (form !== "single") throw new Error("the csv connector has no batched form");
      const path = `contract_${++n}.csv`;
      const lines = [
        "ts,experiment,arm,units,sum,sum_sq",
        ...table.rows.map((row) => [ts, ...row].map(field).join(",")),
      ];
      writeFileSync(join(dir, path), `${lines.join("\n")}\n`, "utf8");
      return createConnector({ type: "csv", path }, { metricKind: kind, baseDir: dir });
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
