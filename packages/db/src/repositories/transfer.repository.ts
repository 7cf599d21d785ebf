/**
 * Export and import of a workspace's rows (backup and leaving). Rows travel
 * as Postgres renders them with `row_to_json`: every column, timestamps as ISO
 * 8601 with their microseconds, jsonb as JSON, arrays as arrays. Import reads
 * them back with `jsonb_populate_recordset` against the table's own row type,
 * so Postgres (not this file) converts every column; the only change is
 * `workspace_id`, which becomes the importing workspace. A row whose id is
 * another workspace's, or that points at a row outside the importing
 * workspace, is refused (not skipped), and so is a row Postgres cannot store:
 * the refusal names the row and the column.
 */
import { EXPORT_TABLES, type ExportRowTable, type ExportTable } from "@outcome-runtime/core";
import { sql } from "kysely";
import type { DbOrTrx } from "../database";

/** Key type of each table's `id`, for the keyset cursor. */
const ID_TYPE: Record<ExportRowTable, "uuid" | "bigint"> = {
  outcomes: "uuid",
  outcome_revisions: "uuid",
  experiments: "uuid",
  gates: "uuid",
  signal_series: "uuid",
  analyses: "uuid",
  learnings: "uuid",
  audit_events: "bigint",
};

/**
 * The ids each table's rows point at, by column: the row a column names must
 * be one of the importing workspace's. (An experiment's `portfolio_gate_id` is
 * not here: it is linked only once its gate is imported, see `importRows`.)
 */
export const REFERENCES: Readonly<Record<ExportRowTable, Readonly<Record<string, ExportRowTable>>>> = {
  outcomes: {},
  outcome_revisions: { outcome_id: "outcomes" },
  experiments: { outcome_id: "outcomes" },
  gates: { outcome_id: "outcomes", experiment_id: "experiments" },
  signal_series: { outcome_id: "outcomes", experiment_id: "experiments" },
  analyses: { experiment_id: "experiments" },
  learnings: { outcome_id: "outcomes", experiment_id: "experiments", gate_id: "gates" },
  audit_events: {},
};

/** One column of a table, as this database defines it. */
export interface ColumnInfo {
  readonly name: string;
  /** Postgres type name (`udt_name`): `uuid`, `text`, `timestamptz`, `int4`, `int8`, `float8`, `jsonb`, `_text`, … */
  readonly type: string;
  readonly nullable: boolean;
  /** A generated column: exported, never written. */
  readonly generated: boolean;
}

/** Why an import refused a row: its index in the batch, the column at fault (when known) and the reason. */
export interface RowRefusal {
  readonly index: number;
  readonly column: string | null;
  /**
   * `id_unavailable`: the row's id belongs to a row of another workspace;
   * `unknown_reference`: a column names no row of the importing workspace (see {@link REFERENCES});
   * `not_stored`: Postgres refused the row (a CHECK, a NOT NULL, a duplicate, a malformed value).
   */
  readonly reason: "id_unavailable" | "unknown_reference" | "not_stored";
  /** For `unknown_reference`: the table the column points into. */
  readonly target?: ExportRowTable;
  /** For `not_stored`: Postgres' message (without the row's contents) and the constraint, if any. */
  readonly message?: string;
  readonly constraint?: string;
}

/** What writing a batch did: rows written, or the first row refused (and then nothing of the batch is kept). */
export type ImportResult = { readonly inserted: number } | { readonly refused: RowRefusal };

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
  /** The covariate (CUPED): all three numbers or all three null. */
  readonly cov_sum: number | null;
  readonly cov_sum_sq: number | null;
  readonly cov_sum_product: number | null;
  /** A ratio's denominator: all three numbers on a ratio series' points, all three null on any other. */
  readonly den_sum: number | null;
  readonly den_sum_sq: number | null;
  readonly num_den_sum: number | null;
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
  table: ExportRowTable,
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
      SELECT p.series_id, p.arm, to_json(p.ts) #>> '{}' AS ts, p.units, p.sum, p.sum_sq,
             p.cov_sum, p.cov_sum_sq, p.cov_sum_product, p.den_sum, p.den_sum_sq, p.num_den_sum
      FROM signal_points p
      WHERE p.workspace_id = ${workspaceId}
        ${after === null ? sql`` : sql`AND (p.series_id, p.arm, p.ts) > (${after.series_id}::uuid, ${after.arm}, ${after.ts}::timestamptz)`}
      ORDER BY p.series_id, p.arm, p.ts LIMIT ${limit}`.execute(trx),
  );
  return result.rows;
}

/** Rows per table of the workspace (signal points included). */
export async function countRows(db: DbOrTrx, workspaceId: string): Promise<Record<ExportTable, number>> {
  const counts = {} as Record<ExportTable, number>;
  for (const table of EXPORT_TABLES) {
    const result = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM ${sql.table(table)} WHERE workspace_id = ${workspaceId}`.execute(db);
    counts[table] = result.rows[0]?.n ?? 0;
  }
  return counts;
}

/**
 * Whether the workspace holds any data an import could collide with. Every
 * exported row but audit events hangs off an outcome (NOT NULL foreign keys),
 * so a workspace without outcomes is empty.
 */
export async function hasOutcomes(db: DbOrTrx, workspaceId: string): Promise<boolean> {
  const row = await db.selectFrom("outcomes").select("id").where("workspace_id", "=", workspaceId).executeTakeFirst();
  return row !== undefined;
}

/**
 * Open an import into the workspace, or null when one is open already (at
 * most one: a partial unique index).
 */
export async function openImport(
  db: DbOrTrx,
  input: { workspaceId: string; startedBy: string; manifest: Record<string, unknown>; at: Date },
): Promise<{ id: string } | null> {
  const row = await db
    .insertInto("imports")
    .values({
      workspace_id: input.workspaceId,
      started_by: input.startedBy,
      started_at: input.at,
      manifest: JSON.stringify(input.manifest),
    })
    .onConflict((oc) => oc.column("workspace_id").where("finished_at", "is", null).doNothing())
    .returning("id")
    .executeTakeFirst();
  return row ?? null;
}

/**
 * The workspace's open import, locked until the transaction ends (the
 * per-table imports and `finish` of one import run one at a time), or null.
 */
export async function lockOpenImport(
  db: DbOrTrx,
  workspaceId: string,
): Promise<{ id: string; startedBy: string; startedAt: Date; version: number | null } | null> {
  const row = await db
    .selectFrom("imports")
    .select(["id", "started_by", "started_at", "manifest"])
    .where("workspace_id", "=", workspaceId)
    .where("finished_at", "is", null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) return null;
  const version = row.manifest.version;
  return {
    id: row.id,
    startedBy: row.started_by,
    startedAt: row.started_at,
    version: typeof version === "number" ? version : null,
  };
}

/** Close an import. */
export async function closeImport(db: DbOrTrx, id: string, at: Date): Promise<void> {
  await db.updateTable("imports").set({ finished_at: at }).where("id", "=", id).execute();
}

/** Every column of `table` in this database, in table order (generated ones flagged). */
export async function tableColumns(db: DbOrTrx, table: ExportRowTable): Promise<ColumnInfo[]> {
  const result = await sql<{ column_name: string; udt_name: string; is_nullable: string; is_generated: string }>`
    SELECT column_name, udt_name, is_nullable, is_generated FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ${table}
    ORDER BY ordinal_position`.execute(db);
  return result.rows.map((r) => ({
    name: r.column_name,
    type: r.udt_name,
    nullable: r.is_nullable === "YES",
    generated: r.is_generated !== "NEVER",
  }));
}

/** A Postgres error of class 22 (data exception) or 23 (integrity constraint violation): the row's fault. */
function rowFault(error: unknown): { code: string; column?: string; constraint?: string; message: string } | null {
  const e = error as { code?: unknown; column?: unknown; constraint?: unknown; message?: unknown } | null;
  if (typeof e?.code !== "string" || !/^2[23]/.test(e.code)) return null;
  return {
    code: e.code,
    ...(typeof e.column === "string" ? { column: e.column } : {}),
    ...(typeof e.constraint === "string" ? { constraint: e.constraint } : {}),
    message: typeof e.message === "string" ? e.message : e.code,
  };
}

/** The columns a constraint or a unique index covers, `workspace_id` left out (every row has it). */
async function constraintColumns(db: DbOrTrx, name: string): Promise<string[]> {
  const result = await sql<{ attname: string }>`
    SELECT a.attname FROM pg_constraint c
      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
      WHERE c.conname = ${name}
    UNION
    SELECT a.attname FROM pg_class i
      JOIN pg_index x ON x.indexrelid = i.oid
      JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
      WHERE i.relname = ${name}`.execute(db);
  return result.rows.map((r) => r.attname).filter((c) => c !== "workspace_id");
}

/**
 * Run `write` under a savepoint of the current transaction. When Postgres
 * refuses the batch for a row's fault (class 22 or 23), roll it back and
 * write the rows one at a time to find the first one it refuses (two rows
 * that collide with each other: the second); its refusal is returned and
 * nothing of the batch is kept (the caller rolls the transaction back).
 */
async function withRowDiagnosis(
  trx: DbOrTrx,
  rows: readonly ExportRow[],
  write: (payload: string) => Promise<number>,
  payloadOf: (rows: readonly ExportRow[]) => string,
): Promise<ImportResult> {
  await sql`SAVEPOINT import_batch`.execute(trx);
  try {
    const inserted = await write(payloadOf(rows));
    await sql`RELEASE SAVEPOINT import_batch`.execute(trx);
    return { inserted };
  } catch (error) {
    if (rowFault(error) === null) throw error;
    await sql`ROLLBACK TO SAVEPOINT import_batch`.execute(trx);
  }
  for (let index = 0; index < rows.length; index++) {
    await sql`SAVEPOINT import_row`.execute(trx);
    try {
      await write(payloadOf([rows[index] as ExportRow]));
      await sql`RELEASE SAVEPOINT import_row`.execute(trx);
    } catch (error) {
      const fault = rowFault(error);
      if (fault === null) throw error;
      await sql`ROLLBACK TO SAVEPOINT import_row`.execute(trx);
      await sql`ROLLBACK TO SAVEPOINT import_batch`.execute(trx);
      const columns = fault.column
        ? [fault.column]
        : fault.constraint
          ? await constraintColumns(trx, fault.constraint)
          : [];
      return {
        refused: {
          index,
          column: columns[0] ?? null,
          reason: "not_stored",
          // The first line only: the DETAIL of a refused row repeats its values.
          message: fault.message.split("\n")[0] ?? fault.code,
          ...(fault.constraint ? { constraint: fault.constraint } : {}),
        },
      };
    }
  }
  // Refused as a batch, accepted row by row: cannot happen with these tables; say so rather than guess.
  await sql`ROLLBACK TO SAVEPOINT import_batch`.execute(trx);
  throw new Error("import batch refused by Postgres but no single row was");
}

/**
 * The first row of the batch whose id is another workspace's row of `table`,
 * or that names (in a {@link REFERENCES} column) no row of the workspace.
 * Another workspace's row and no row at all are the same refusal: an import
 * learns nothing about other workspaces from it.
 */
async function firstForeignRow(
  db: DbOrTrx,
  table: ExportRowTable,
  workspaceId: string,
  payload: string,
): Promise<RowRefusal | null> {
  const t = sql.table(table);
  const checks = [
    ...(table === "audit_events"
      ? []
      : [
          sql`('id', NULL::text, EXISTS (SELECT 1 FROM ${t} x WHERE x.id = r.id AND x.workspace_id <> ${workspaceId}))`,
        ]),
    ...Object.entries(REFERENCES[table]).map(
      ([column, target]) =>
        sql`(${column}::text, ${target}::text, r.${sql.ref(column)} IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM ${sql.table(target)} y WHERE y.id = r.${sql.ref(column)} AND y.workspace_id = ${workspaceId}))`,
    ),
  ];
  if (checks.length === 0) return null;
  const result = await sql<{ i: number; col: string; target: ExportRowTable | null }>`
    SELECT (r.ordinality - 1)::int AS i, c.col, c.target
    FROM jsonb_populate_recordset(NULL::${t}, ${payload}::jsonb) WITH ORDINALITY r
    CROSS JOIN LATERAL (VALUES ${sql.join(checks)}) AS c(col, target, bad)
    WHERE c.bad
    ORDER BY r.ordinality LIMIT 1`.execute(db);
  const row = result.rows[0];
  if (row === undefined) return null;
  return row.col === "id"
    ? { index: row.i, column: "id", reason: "id_unavailable" }
    : { index: row.i, column: row.col, reason: "unknown_reference", target: row.target as ExportRowTable };
}

/**
 * Insert exported rows of `table` into the workspace, keeping their ids.
 * Rows the workspace has already (same id; for audit events the same event)
 * are left alone, so a table can be imported again after a failure. Runs
 * inside the caller's transaction (savepoints); a refused row leaves nothing
 * of the batch written.
 *
 * Refused, with the row and the column (see {@link RowRefusal}): an id of
 * another workspace's row; a reference to no row of this workspace; a row
 * Postgres cannot store (a duplicate slug or key, an unknown state, …).
 *
 * Two tables differ:
 * - `experiments` and `gates` reference each other (an experiment's portfolio
 *   gate; a launch gate's experiment). Experiments are written first with the
 *   link only when that gate is already the workspace's; importing the
 *   experiments again after the gates fills the links that were left empty
 *   (and changes nothing else).
 * - `audit_events` ids come from one sequence shared by every workspace, so
 *   events get new ids, in their original order; an event already present
 *   (same time, action, subject, actor, channel and request) is skipped.
 */
export async function importRows(
  db: DbOrTrx,
  table: ExportRowTable,
  workspaceId: string,
  rows: readonly ExportRow[],
): Promise<ImportResult> {
  if (rows.length === 0) return { inserted: 0 };
  const payloadOf = (batch: readonly ExportRow[]) =>
    JSON.stringify(batch.map((r) => ({ ...r, workspace_id: workspaceId })));
  const run = async (trx: DbOrTrx): Promise<ImportResult> => {
    const foreign = await firstForeignRow(trx, table, workspaceId, payloadOf(rows));
    if (foreign !== null) return { refused: foreign };
    const t = sql.table(table);
    let columns = (await tableColumns(trx, table)).filter((c) => !c.generated).map((c) => c.name);
    if (table === "audit_events") columns = columns.filter((c) => c !== "id");
    const list = sql.join(columns.map((c) => sql.ref(c)));
    const source = (payload: string) => sql`jsonb_populate_recordset(NULL::${t}, ${payload}::jsonb) r`;
    const plain = sql.join(columns.map((c) => sql`r.${sql.ref(c)}`));

    const write = async (payload: string): Promise<number> => {
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
          INSERT INTO experiments (${list}) SELECT ${selected} FROM ${source(payload)}
          ON CONFLICT (id) DO UPDATE SET portfolio_gate_id = EXCLUDED.portfolio_gate_id
            WHERE experiments.portfolio_gate_id IS NULL AND EXCLUDED.portfolio_gate_id IS NOT NULL
              AND experiments.workspace_id = EXCLUDED.workspace_id`.execute(trx);
        return Number(result.numAffectedRows ?? 0);
      }
      if (table === "audit_events") {
        const result = await sql`
          INSERT INTO audit_events (${list})
          SELECT ${plain} FROM ${source(payload)}
          WHERE NOT EXISTS (
            SELECT 1 FROM audit_events e
            WHERE e.workspace_id = r.workspace_id AND e.at = r.at AND e.action = r.action
              AND e.subject_type = r.subject_type AND e.subject_id = r.subject_id AND e.channel = r.channel
              AND e.actor_id IS NOT DISTINCT FROM r.actor_id AND e.request_id IS NOT DISTINCT FROM r.request_id)
          ORDER BY r.id`.execute(trx);
        return Number(result.numAffectedRows ?? 0);
      }
      const result = await sql`
        INSERT INTO ${t} (${list}) SELECT ${plain} FROM ${source(payload)}
        ON CONFLICT (id) DO NOTHING`.execute(trx);
      return Number(result.numAffectedRows ?? 0);
    };
    return withRowDiagnosis(trx, rows, write, payloadOf);
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/**
 * Insert signal points into the workspace; a point already stored is left
 * alone. Refused (nothing of the batch written): a point whose series is not
 * one of the workspace's (`index` in the batch), whichever workspace it may be.
 */
export async function importSignalPoints(
  db: DbOrTrx,
  workspaceId: string,
  points: readonly SignalPointRow[],
): Promise<{ inserted: number } | { refused: { index: number } }> {
  if (points.length === 0) return { inserted: 0 };
  const unnested = sql`unnest(${points.map((p) => p.series_id)}::uuid[], ${points.map((p) => p.arm)}::text[],
                ${points.map((p) => p.ts)}::timestamptz[], ${points.map((p) => p.units)}::bigint[],
                ${points.map((p) => p.sum)}::float8[], ${points.map((p) => p.sum_sq)}::float8[],
                ${points.map((p) => p.cov_sum)}::float8[], ${points.map((p) => p.cov_sum_sq)}::float8[],
                ${points.map((p) => p.cov_sum_product)}::float8[], ${points.map((p) => p.den_sum)}::float8[],
                ${points.map((p) => p.den_sum_sq)}::float8[], ${points.map((p) => p.num_den_sum)}::float8[])`;
  const columns = sql`(series_id, arm, ts, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product, den_sum, den_sum_sq,
                       num_den_sum)`;
  const foreign = await sql<{ i: number }>`
    SELECT (p.ord - 1)::int AS i
    FROM ${unnested} WITH ORDINALITY
         AS p(series_id, arm, ts, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product, den_sum, den_sum_sq,
              num_den_sum, ord)
    WHERE NOT EXISTS (SELECT 1 FROM signal_series s WHERE s.id = p.series_id AND s.workspace_id = ${workspaceId})
    ORDER BY p.ord LIMIT 1`.execute(db);
  const refused = foreign.rows[0];
  if (refused !== undefined) return { refused: { index: refused.i } };
  const result = await sql`
    INSERT INTO signal_points (series_id, arm, ts, workspace_id, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product,
                               den_sum, den_sum_sq, num_den_sum)
    SELECT p.series_id, p.arm, p.ts, ${workspaceId}::uuid, p.units, p.sum, p.sum_sq,
           p.cov_sum, p.cov_sum_sq, p.cov_sum_product, p.den_sum, p.den_sum_sq, p.num_den_sum
    FROM ${unnested} AS p${columns}
    ON CONFLICT DO NOTHING`.execute(db);
  return { inserted: Number(result.numAffectedRows ?? 0) };
}
