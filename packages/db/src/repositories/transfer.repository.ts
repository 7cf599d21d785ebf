/**
 * Export and import of a workspace's rows (backup and leaving). Rows travel
 * as Postgres renders them with `row_to_json`: every column, timestamps as ISO
 * 8601 with their microseconds, jsonb as JSON, arrays as arrays. Import reads
 * them back with `jsonb_populate_recordset` against the table's own row type,
 * so Postgres (not this file) converts every column; the only change is
 * `workspace_id`, which becomes the importing workspace.
 */
import { sql } from "kysely";
import type { DbOrTrx } from "../database";

/** Tables exported as JSON, in the order an import must write them (parents first). */
export const ROW_TABLES = [
  "outcomes",
  "outcome_revisions",
  "experiments",
  "gates",
  "signal_series",
  "analyses",
  "learnings",
  "audit_events",
] as const;
export type RowTable = (typeof ROW_TABLES)[number];

/** The table of a workspace's signal points (exported as CSV). */
export type TransferTable = RowTable | "signal_points";

/** Key type of each table's `id`, for the keyset cursor. */
const ID_TYPE: Record<RowTable, "uuid" | "bigint"> = {
  outcomes: "uuid",
  outcome_revisions: "uuid",
  experiments: "uuid",
  gates: "uuid",
  signal_series: "uuid",
  analyses: "uuid",
  learnings: "uuid",
  audit_events: "bigint",
};

/** One exported row: column name → JSON value. */
export type ExportRow = Record<string, unknown>;

/** One signal point as exported: `ts` is ISO 8601 text with microseconds. */
export interface SignalPointRow {
  readonly series_id: string;
  readonly arm: string;
  readonly ts: string;
  readonly units: number;
  readonly sum: number;
  readonly sum_sq: number;
}

/** Keyset cursor of signal points: the last (series, arm, ts) read. */
export type SignalPointCursor = Pick<SignalPointRow, "series_id" | "arm" | "ts">;

/**
 * Run `fn` with the session time zone at UTC (so every timestamp renders as
 * `…+00:00`), in a transaction of its own unless `db` already is one.
 */
async function inUtc<T>(db: DbOrTrx, fn: (db: DbOrTrx) => Promise<T>): Promise<T> {
  const run = async (trx: DbOrTrx) => {
    await sql`SET LOCAL TIME ZONE 'UTC'`.execute(trx);
    return fn(trx);
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/**
 * Up to `limit` rows of `table` in the workspace, ordered by `id`, after the
 * id `after` (null: from the start). An empty page is the end.
 */
export async function exportRowsPage(
  db: DbOrTrx,
  table: RowTable,
  workspaceId: string,
  after: string | null,
  limit: number,
): Promise<{ rows: ExportRow[]; last: string | null }> {
  const t = sql.table(table);
  const idType = sql.raw(ID_TYPE[table]);
  const result = await inUtc(db, (trx) =>
    sql<{ row: ExportRow; key: string }>`
      SELECT row_to_json(t) AS row, t.id::text AS key FROM ${t} t
      WHERE t.workspace_id = ${workspaceId}
        AND (${after}::text IS NULL OR t.id > CAST(${after}::text AS ${idType}))
      ORDER BY t.id LIMIT ${limit}`.execute(trx),
  );
  return { rows: result.rows.map((r) => r.row), last: result.rows.at(-1)?.key ?? null };
}

/** Up to `limit` signal points of the workspace after `after`, ordered by (series, arm, ts). */
export async function exportSignalPointsPage(
  db: DbOrTrx,
  workspaceId: string,
  after: SignalPointCursor | null,
  limit: number,
): Promise<SignalPointRow[]> {
  const result = await inUtc(db, (trx) =>
    sql<SignalPointRow>`
      SELECT p.series_id, p.arm, to_json(p.ts) #>> '{}' AS ts, p.units, p.sum, p.sum_sq
      FROM signal_points p
      WHERE p.workspace_id = ${workspaceId}
        ${after === null ? sql`` : sql`AND (p.series_id, p.arm, p.ts) > (${after.series_id}::uuid, ${after.arm}, ${after.ts}::timestamptz)`}
      ORDER BY p.series_id, p.arm, p.ts LIMIT ${limit}`.execute(trx),
  );
  return result.rows;
}

/** Rows per table of the workspace (signal points included). */
export async function countRows(db: DbOrTrx, workspaceId: string): Promise<Record<TransferTable, number>> {
  const counts = {} as Record<TransferTable, number>;
  for (const table of [...ROW_TABLES, "signal_points"] as const) {
    const result = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM ${sql.table(table)} WHERE workspace_id = ${workspaceId}`.execute(db);
    counts[table] = result.rows[0]?.n ?? 0;
  }
  return counts;
}

/** Whether the workspace has any outcome (everything else hangs off one). */
export async function hasOutcomes(db: DbOrTrx, workspaceId: string): Promise<boolean> {
  const row = await db.selectFrom("outcomes").select("id").where("workspace_id", "=", workspaceId).executeTakeFirst();
  return row !== undefined;
}

/** Writable columns of `table` in this database (generated columns excluded), in table order. */
async function writableColumns(db: DbOrTrx, table: RowTable): Promise<string[]> {
  const result = await sql<{ column_name: string }>`
    SELECT column_name FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ${table} AND is_generated = 'NEVER'
    ORDER BY ordinal_position`.execute(db);
  return result.rows.map((r) => r.column_name);
}

/**
 * Insert exported rows of `table` into the workspace, keeping their ids;
 * rows already there (same id or natural key) are left alone, so an import
 * can be re-run. Returns how many rows were written.
 *
 * Two tables differ:
 * - `experiments` and `gates` reference each other (an experiment's portfolio
 *   gate; a launch gate's experiment). Experiments are written first with the
 *   link only when that gate already exists; importing the experiments again
 *   after the gates fills the links that were left empty (and changes nothing else).
 * - `audit_events` ids come from one sequence shared by every workspace, so
 *   events get new ids, in their original order; an event already present
 *   (same time, action, subject, actor, channel and request) is skipped.
 */
export async function importRows(
  db: DbOrTrx,
  table: RowTable,
  workspaceId: string,
  rows: readonly ExportRow[],
): Promise<number> {
  if (rows.length === 0) return 0;
  const payload = JSON.stringify(rows.map((r) => ({ ...r, workspace_id: workspaceId })));
  const t = sql.table(table);
  let columns = await writableColumns(db, table);
  if (table === "audit_events") columns = columns.filter((c) => c !== "id");
  const list = sql.join(columns.map((c) => sql.ref(c)));
  const source = sql`jsonb_populate_recordset(NULL::${t}, ${payload}::jsonb) r`;
  // A row may only hang off the workspace's own outcomes and experiments, whatever the file says.
  const own = sql.join(
    [
      sql`TRUE`,
      ...(columns.includes("outcome_id")
        ? [sql`EXISTS (SELECT 1 FROM outcomes o WHERE o.id = r.outcome_id AND o.workspace_id = ${workspaceId})`]
        : []),
      ...(columns.includes("experiment_id")
        ? [
            sql`(r.experiment_id IS NULL OR EXISTS (SELECT 1 FROM experiments x WHERE x.id = r.experiment_id AND x.workspace_id = ${workspaceId}))`,
          ]
        : []),
    ],
    sql` AND `,
  );

  if (table === "experiments") {
    const selected = sql.join(
      columns.map((c) =>
        c === "portfolio_gate_id"
          ? sql`CASE WHEN EXISTS (SELECT 1 FROM gates g WHERE g.id = r.portfolio_gate_id AND g.workspace_id = ${workspaceId})
                     THEN r.portfolio_gate_id END`
          : sql`r.${sql.ref(c)}`,
      ),
    );
    const result = await sql`
      INSERT INTO experiments (${list}) SELECT ${selected} FROM ${source} WHERE ${own}
      ON CONFLICT (id) DO UPDATE SET portfolio_gate_id = EXCLUDED.portfolio_gate_id
        WHERE experiments.portfolio_gate_id IS NULL AND EXCLUDED.portfolio_gate_id IS NOT NULL
          AND experiments.workspace_id = EXCLUDED.workspace_id`.execute(db);
    return Number(result.numAffectedRows ?? 0);
  }

  if (table === "audit_events") {
    const result = await sql`
      INSERT INTO audit_events (${list})
      SELECT ${sql.join(columns.map((c) => sql`r.${sql.ref(c)}`))} FROM ${source}
      WHERE NOT EXISTS (
        SELECT 1 FROM audit_events e
        WHERE e.workspace_id = r.workspace_id AND e.at = r.at AND e.action = r.action
          AND e.subject_type = r.subject_type AND e.subject_id = r.subject_id AND e.channel = r.channel
          AND e.actor_id IS NOT DISTINCT FROM r.actor_id AND e.request_id IS NOT DISTINCT FROM r.request_id)
      ORDER BY r.id`.execute(db);
    return Number(result.numAffectedRows ?? 0);
  }

  const result = await sql`
    INSERT INTO ${t} (${list}) SELECT ${sql.join(columns.map((c) => sql`r.${sql.ref(c)}`))} FROM ${source}
    WHERE ${own}
    ON CONFLICT DO NOTHING`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Insert signal points into the workspace; a point whose series is not one of
 * the workspace's is skipped, and a point already stored is left alone.
 * Returns how many were written.
 */
export async function importSignalPoints(
  db: DbOrTrx,
  workspaceId: string,
  points: readonly SignalPointRow[],
): Promise<number> {
  if (points.length === 0) return 0;
  const result = await sql`
    INSERT INTO signal_points (series_id, arm, ts, workspace_id, units, sum, sum_sq)
    SELECT p.series_id, p.arm, p.ts, ${workspaceId}::uuid, p.units, p.sum, p.sum_sq
    FROM unnest(${points.map((p) => p.series_id)}::uuid[], ${points.map((p) => p.arm)}::text[],
                ${points.map((p) => p.ts)}::timestamptz[], ${points.map((p) => p.units)}::bigint[],
                ${points.map((p) => p.sum)}::float8[], ${points.map((p) => p.sum_sq)}::float8[])
         AS p(series_id, arm, ts, units, sum, sum_sq)
    WHERE EXISTS (SELECT 1 FROM signal_series s WHERE s.id = p.series_id AND s.workspace_id = ${workspaceId})
    ON CONFLICT DO NOTHING`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
