/**
 * The contract's tables as rows of a real SQL database: the DDL and the
 * literal values of each case, per dialect.
 */
import type { ContractCell, ContractTable, ContractType } from "./contract";

const COLUMNS = ["experiment", "arm", "units", "sum", "sum_sq"] as const;

/** The type names of a dialect. */
export type SqlTypes = Readonly<Record<ContractType, string>>;

/** `CREATE TABLE` of `table` named `name`, with each column quoted by `quote`. */
export function createTableSql(
  name: string,
  table: ContractTable,
  types: SqlTypes,
  quote: (id: string) => string,
): string {
  const columns = COLUMNS.map((c) => `${quote(c)} ${types[table.types[c]]}`);
  return `CREATE TABLE ${quote(name)} (${columns.join(", ")})`;
}

/** A multi-row `INSERT` of `table`'s rows (placeholders `?` or `$n`, and their values), or null without rows. */
export function insertSql(
  name: string,
  table: ContractTable,
  quote: (id: string) => string,
  placeholder: (index: number) => string,
): { sql: string; values: (string | number | null)[] } | null {
  if (table.rows.length === 0) return null;
  const values: (string | number | null)[] = [];
  const tuples = table.rows.map(
    (row) =>
      `(${row
        .map((cell: ContractCell) => {
          values.push(typeof cell === "bigint" ? cell.toString() : cell);
          return placeholder(values.length);
        })
        .join(", ")})`,
  );
  return {
    sql: `INSERT INTO ${quote(name)} (${COLUMNS.map(quote).join(", ")}) VALUES ${tuples.join(", ")}`,
    values,
  };
}
