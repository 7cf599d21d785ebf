/**
 * What the administration commands (`keys`, `members`, `secrets`) print the
 * same way: help examples, times, and tables of plain columns.
 */

/** A help text's "Examples:" block, one `$ command` per line. */
export function examples(...lines: string[]): string {
  return ["", "Examples:", ...lines.map((l) => `  $ ${l}`)].join("\n");
}

/** An ISO time as "2026-12-01 16:20 UTC" (to the minute), or "-" for null. */
export function when(iso: string | null): string {
  return iso === null ? "-" : `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

/** Rows (the first is the header) as columns padded to their widest cell, without trailing spaces. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
