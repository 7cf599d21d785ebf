/**
 * A table of records whose exact fields may grow: known columns first, any
 * other scalar fields after them. Numbers named like money are dollars.
 */
import { formatDateTime, formatNumber, formatUsd, humanize } from "../format";

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (/usd|cost|spent|budget/i.test(key)) return formatUsd(value);
    return formatNumber(value);
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") {
    if (/(^at$|At$|^ts$|time)/.test(key) && !Number.isNaN(Date.parse(value))) return formatDateTime(value);
    return value;
  }
  return JSON.stringify(value);
}

export function GenericTable({
  rows,
  preferred,
  caption,
  testId,
}: {
  rows: Record<string, unknown>[];
  preferred: string[];
  caption: string;
  testId?: string;
}) {
  const keys: string[] = [];
  for (const k of preferred) if (rows.some((r) => k in r)) keys.push(k);
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (!keys.includes(k) && (v === null || typeof v !== "object")) keys.push(k);
    }
  }
  return (
    <div className="table-wrap">
      <table data-testid={testId}>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {keys.map((k) => (
              <th scope="col" key={k}>
                {humanize(k.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase())}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows have no id of their own
            <tr key={i}>
              {keys.map((k) => (
                <td key={k} className={typeof r[k] === "number" ? "num" : undefined}>
                  {cell(k, r[k])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
