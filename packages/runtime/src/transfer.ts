/**
 * Backup and leaving: export a workspace as versioned JSON (and its signal
 * points as CSV), and import such an export into an empty workspace. The
 * format is documented in docs/export.md; its tables, and what it leaves out
 * (secrets and transient state) with why, are named once in core
 * (`export-tables.ts`) and listed in every manifest.
 *
 * An import is a state of the workspace: `beginImport` opens one (only into a
 * workspace without data, one at a time), the per-table imports write only
 * while it is open, `finishImport` closes it once the counts match. Every row
 * is checked before it is written: its columns and their types, that its id is
 * not another workspace's, and that what it points at is the workspace's own;
 * a refused row refuses its whole request (nothing written), naming the table,
 * the row and the column.
 */
import { Readable } from "node:stream";
import {
  authorize,
  DEFAULT_WORKSPACE_SETTINGS,
  DomainError,
  EXCLUDED_FROM_EXPORT,
  EXPORT_FORMAT,
  EXPORT_TABLES,
  EXPORT_VERSION,
  type ExportRowTable,
  type ExportTable,
  parseSignalRetention,
  READABLE_EXPORT_VERSIONS,
  type WorkspaceSettings,
} from "@outcome-runtime/core";
import type { Trx } from "@outcome-runtime/db";
import { audit, transfer, upgradeAnalysisJson, workspaces } from "@outcome-runtime/db";
import { parse } from "csv-parse";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { ALL_GATE_DECISIONS } from "./decide-gate";

/**
 * The CSV columns of `signal_points.csv`, in order. The covariate (CUPED)
 * columns are empty for a point without one, the denominator's for a point
 * of any metric but a ratio; a file without them (an older export) imports
 * as points without a covariate or denominator. Each group is trailing and
 * optional: a file with the covariate's but not the denominator's imports.
 */
export const SIGNAL_POINT_COLUMNS = [
  "series_id",
  "arm",
  "ts",
  "units",
  "sum",
  "sum_sq",
  "cov_sum",
  "cov_sum_sq",
  "cov_sum_product",
  "den_sum",
  "den_sum_sq",
  "num_den_sum",
] as const;

/** The columns every line of `signal_points.csv` holds. */
const REQUIRED_POINT_COLUMNS = SIGNAL_POINT_COLUMNS.slice(0, 6);
/** The covariate columns: all three filled, or all three empty or absent. */
const COVARIATE_POINT_COLUMNS = ["cov_sum", "cov_sum_sq", "cov_sum_product"] as const;
/** A ratio's denominator columns: likewise. */
const DENOMINATOR_POINT_COLUMNS = ["den_sum", "den_sum_sq", "num_den_sum"] as const;

export interface ExportManifest {
  readonly format: typeof EXPORT_FORMAT;
  readonly version: number;
  /** ISO 8601. */
  readonly exportedAt: string;
  readonly workspace: { readonly slug: string; readonly name: string; readonly settings: WorkspaceSettings };
  /** Rows per table at the time of the manifest. */
  readonly counts: Record<ExportTable, number>;
  readonly runtimeVersion: string;
  readonly excluded: readonly string[];
}

/** Rows read per query while streaming an export. */
const PAGE = 1000;
/** Signal points written per statement while importing the CSV. */
const POINT_BATCH = 5000;

/** The workspace's open import, locked for the transaction, or a `conflict` saying how to open one. */
async function requireOpenImport(trx: Trx, workspaceId: string): Promise<{ id: string; version: number | null }> {
  const open = await transfer.lockOpenImport(trx, workspaceId);
  if (open === null) {
    throw new DomainError(
      "conflict",
      "no import is open in this workspace: start one with POST /v1/import/begin (outcome-runtime import does it), " +
        "into a workspace without data",
      { import: "not_open" },
    );
  }
  return open;
}

/**
 * The manifest of an export of the caller's workspace.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.export`.
 */
export async function exportManifest(
  deps: RuntimeDeps,
  caller: Caller,
  runtimeVersion: string,
): Promise<ExportManifest> {
  authorize(caller, "workspace.export");
  const workspace = await workspaces.findWorkspace(deps.db, caller.principal.workspaceId);
  if (workspace === null) throw new DomainError("not_found", "this workspace no longer exists");
  return {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportedAt: (deps.now ? deps.now() : new Date()).toISOString(),
    workspace: { slug: workspace.slug, name: workspace.name, settings: workspace.settings },
    counts: await transfer.countRows(deps.db, workspace.id),
    runtimeVersion,
    excluded: EXCLUDED_FROM_EXPORT,
  };
}

/** Whether `table` names an exported table. */
export function isExportTable(table: string): table is ExportTable {
  return (EXPORT_TABLES as readonly string[]).includes(table);
}

/**
 * Every row of a table of the caller's workspace (every column, as Postgres
 * renders it in JSON), read page by page so the table is never held in memory.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.export` (on the first read).
 */
export async function* exportRows(deps: RuntimeDeps, caller: Caller, table: ExportRowTable): AsyncGenerator<object> {
  authorize(caller, "workspace.export");
  let after: string | null = null;
  for (;;) {
    const page = await transfer.exportRowsPage(deps.db, table, caller.principal.workspaceId, after, PAGE);
    yield* page.rows;
    if (page.rows.length < PAGE || page.last === null) return;
    after = page.last;
  }
}

/**
 * The workspace's signal points as CSV text chunks: a header line
 * (`SIGNAL_POINT_COLUMNS`), then one line per point, read by keyset pages.
 * Fields need no quoting except `arm`, which is quoted when it must be.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.export` (on the first read).
 */
export async function* exportSignalPointsCsv(deps: RuntimeDeps, caller: Caller): AsyncGenerator<string> {
  authorize(caller, "workspace.export");
  yield `${SIGNAL_POINT_COLUMNS.join(",")}\n`;
  let after: transfer.SignalPointCursor | null = null;
  for (;;) {
    const rows = await transfer.exportSignalPointsPage(deps.db, caller.principal.workspaceId, after, PAGE);
    if (rows.length > 0) {
      yield rows
        .map(
          (p) =>
            `${p.series_id},${csvField(p.arm)},${p.ts},${p.units},${p.sum},${p.sum_sq},` +
            `${p.cov_sum ?? ""},${p.cov_sum_sq ?? ""},${p.cov_sum_product ?? ""},` +
            `${p.den_sum ?? ""},${p.den_sum_sq ?? ""},${p.num_den_sum ?? ""}\n`,
        )
        .join("");
    }
    const last = rows.at(-1);
    if (rows.length < PAGE || last === undefined) return;
    after = last;
  }
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Check a manifest this runtime can read.
 *
 * @throws DomainError `validation_failed` for another format or version.
 */
export function checkManifest(manifest: unknown): ExportManifest {
  const m = manifest as Partial<ExportManifest> | null;
  if (typeof m !== "object" || m === null || m.format !== EXPORT_FORMAT) {
    throw new DomainError("validation_failed", `not an Outcome Runtime export (format is not "${EXPORT_FORMAT}")`, {
      field: "format",
    });
  }
  if (typeof m.version !== "number" || !READABLE_EXPORT_VERSIONS.includes(m.version)) {
    throw new DomainError(
      "validation_failed",
      `export format version ${JSON.stringify(m.version)} cannot be read; this runtime reads versions ${READABLE_EXPORT_VERSIONS.join(" and ")}`,
      { field: "version", supported: READABLE_EXPORT_VERSIONS },
    );
  }
  if (typeof m.counts !== "object" || m.counts === null || typeof m.workspace !== "object" || m.workspace === null) {
    throw new DomainError("validation_failed", "the manifest has no counts or workspace", { field: "counts" });
  }
  return m as ExportManifest;
}

/**
 * Open an import into the caller's workspace: check the manifest, that no
 * import is open and that the workspace has no data (no outcome: every other
 * row hangs off one), open the import and restore the exported workspace
 * settings. Audited as `workspace.import_started`.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.import`; `validation_failed` for a
 *   manifest of another format or version; `conflict` when an import is
 *   already open, or when the workspace has data.
 */
export async function beginImport(deps: RuntimeDeps, caller: Caller, manifest: unknown): Promise<{ ok: true }> {
  authorize(caller, "workspace.import");
  const m = checkManifest(manifest);
  const decisions = m.workspace.settings?.sessionRequiredDecisions;
  const duties = m.workspace.settings?.separationOfDuties;
  // An export made before a setting existed restores that setting's default.
  const settings: WorkspaceSettings | null = Array.isArray(decisions)
    ? {
        sessionRequiredDecisions: decisions.filter((d) => (ALL_GATE_DECISIONS as readonly string[]).includes(d)),
        separationOfDuties: typeof duties === "boolean" ? duties : DEFAULT_WORKSPACE_SETTINGS.separationOfDuties,
        signalRetention:
          m.workspace.settings?.signalRetention === undefined
            ? DEFAULT_WORKSPACE_SETTINGS.signalRetention
            : parseSignalRetention(m.workspace.settings.signalRetention),
      }
    : null;
  return inTransaction(deps.db, async (trx) => {
    const workspaceId = caller.principal.workspaceId;
    const alreadyOpen = () =>
      new DomainError(
        "conflict",
        "an import into this workspace is already open: continue it (outcome-runtime import --resume) and finish it " +
          "with POST /v1/import/finish",
        { import: "open" },
      );
    if ((await transfer.lockOpenImport(trx, workspaceId)) !== null) throw alreadyOpen();
    if (await transfer.hasOutcomes(trx, workspaceId)) {
      throw new DomainError("conflict", "import needs an empty workspace", { workspace: workspaceId });
    }
    const current = await workspaces.findWorkspace(trx, workspaceId);
    if (current === null) throw new DomainError("not_found", "this workspace no longer exists");
    const opened = await transfer.openImport(trx, {
      workspaceId,
      startedBy: caller.principal.name,
      manifest: { exportedAt: m.exportedAt, workspace: m.workspace.slug, counts: m.counts, version: m.version },
      at: nowOf(deps),
    });
    if (opened === null) throw alreadyOpen();
    if (settings !== null) await workspaces.updateWorkspaceSettings(trx, workspaceId, settings);
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "workspace.import_started",
      subjectType: "workspace",
      subjectId: workspaceId,
      before: { settings: current.settings },
      after: {
        settings: settings ?? current.settings,
        import: opened.id,
        from: { slug: m.workspace.slug, exportedAt: m.exportedAt, runtimeVersion: m.runtimeVersion },
      },
      requestId: caller.requestId,
    });
    return { ok: true as const };
  });
}

/** One refused field of an imported row: `<table>[<row>].<column>` and what is wrong and how to fix it. */
interface ImportFieldError {
  readonly field: string;
  readonly message: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)$/;
const INT4 = 2 ** 31;

/** `value` as a short JSON text for a message. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** What is wrong with `value` for a column of Postgres type `type`, or null when it fits. */
function typeProblem(type: string, value: unknown): string | null {
  switch (type) {
    case "uuid":
      return typeof value === "string" && UUID.test(value) ? null : "must be a UUID";
    case "text":
      return typeof value === "string" ? null : "must be a string";
    case "timestamptz":
      return typeof value === "string" && ISO_TIMESTAMP.test(value) && !Number.isNaN(Date.parse(value))
        ? null
        : "must be an ISO 8601 time with its offset, e.g. 2026-12-01T17:18:17.123456+00:00";
    case "int4":
      return Number.isInteger(value) && Math.abs(value as number) < INT4 ? null : "must be a 32-bit integer";
    case "int8":
      return Number.isSafeInteger(value) || (typeof value === "string" && /^-?\d{1,18}$/.test(value))
        ? null
        : "must be an integer";
    case "float8":
      return (typeof value === "number" && Number.isFinite(value)) ||
        value === "NaN" ||
        value === "Infinity" ||
        value === "-Infinity"
        ? null
        : "must be a number";
    case "bool":
      return typeof value === "boolean" ? null : "must be true or false";
    case "_text":
      return Array.isArray(value) && value.every((v) => v === null || typeof v === "string")
        ? null
        : "must be an array of strings";
    default:
      // jsonb takes any JSON value; other types are left to Postgres.
      return null;
  }
}

/**
 * The problems of one exported row of `table` against the table's columns, as
 * `<table>[<index>].<column>` field errors: not an object, a property that is
 * no column, a NOT NULL column missing or null, a value of the wrong type.
 * `workspace_id` is not checked (it becomes the importing workspace), nor are
 * generated columns and the audit events' ids (never written).
 */
function importRowErrors(
  table: ExportRowTable,
  columns: readonly transfer.ColumnInfo[],
  row: unknown,
  index: number,
): ImportFieldError[] {
  const at = `${table}[${index}]`;
  if (typeof row !== "object" || row === null || Array.isArray(row)) {
    return [{ field: at, message: `must be an object (one row of ${table}.json), not ${shown(row)}` }];
  }
  const record = row as Record<string, unknown>;
  const errors: ImportFieldError[] = [];
  const known = new Map(columns.map((c) => [c.name, c]));
  for (const name of Object.keys(record)) {
    if (!known.has(name)) {
      errors.push({
        field: `${at}.${name}`,
        message: `is not a column of ${table}; remove it (an export of another version? this runtime writes version ${EXPORT_VERSION})`,
      });
    }
  }
  for (const column of columns) {
    if (column.generated || column.name === "workspace_id" || (table === "audit_events" && column.name === "id")) {
      continue;
    }
    const value = record[column.name];
    if (value === undefined || value === null) {
      if (!column.nullable) errors.push({ field: `${at}.${column.name}`, message: "is required (NOT NULL); add it" });
      continue;
    }
    const problem = typeProblem(column.type, value);
    if (problem !== null) errors.push({ field: `${at}.${column.name}`, message: `${shown(value)} ${problem}` });
  }
  return errors;
}

/** Field errors found before a request is refused: enough to fix a file, not a wall of text. */
const MAX_FIELD_ERRORS = 20;

/** The refusal of rows that do not fit their table. */
function rowsRefused(table: ExportTable, errors: readonly ImportFieldError[]): DomainError {
  const first = errors[0] as ImportFieldError;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return new DomainError(
    "validation_failed",
    `${first.field} ${first.message}${more}; nothing of ${table} was imported`,
    { table, errors },
  );
}

/** The field error of a row the repository refused, in words that say nothing of other workspaces. */
function refusalError(
  table: ExportRowTable,
  index: number,
  refusal: transfer.RowRefusal,
  row: unknown,
): ImportFieldError {
  const field = `${table}[${index}]${refusal.column ? `.${refusal.column}` : ""}`;
  const value = refusal.column ? (row as Record<string, unknown>)[refusal.column] : undefined;
  switch (refusal.reason) {
    case "id_unavailable":
      return {
        field,
        message: `${shown(value)} cannot be imported into this workspace: an imported id must be new to this instance (or a row this import wrote already)`,
      };
    case "unknown_reference":
      return {
        field,
        message: `${shown(value)} names no row of ${refusal.target} in this workspace; import ${refusal.target} before ${table} (the order is in docs/export.md), and only rows of the same export`,
      };
    case "not_stored":
      return {
        field,
        message: `cannot be stored: ${refusal.message ?? "refused by the database"}; correct the row (is it from an export of this version?)`,
      };
  }
}

/**
 * Analyses rows of an export of version 1, as version 2 writes them:
 * `relative_effect` becomes `relative_lift`, and the JSON of `arms`,
 * `guardrails` and `details` gets today's camelCase keys. A row that is not
 * an object is left for the row checks to refuse.
 */
function upgradeAnalysisRows(rows: readonly unknown[]): unknown[] {
  return rows.map((row) => {
    if (typeof row !== "object" || row === null || Array.isArray(row)) return row;
    const { relative_effect, ...rest } = row as Record<string, unknown>;
    const json = upgradeAnalysisJson({ arms: rest.arms, guardrails: rest.guardrails, details: rest.details });
    return {
      ...rest,
      ...(relative_effect !== undefined && rest.relative_lift === undefined ? { relative_lift: relative_effect } : {}),
      ...(rest.arms !== undefined ? { arms: json.arms } : {}),
      ...(rest.guardrails !== undefined ? { guardrails: json.guardrails } : {}),
      ...(rest.details !== undefined ? { details: json.details } : {}),
    };
  });
}

/**
 * Import the rows of one table (as exported) into the caller's workspace,
 * during its open import, in one transaction, keeping their ids (audit events
 * get new ones: see `transfer.importRows`). Rows the workspace has already
 * are skipped, so re-sending a table is harmless. Returns the rows written.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.import`; `conflict` when no import
 *   is open; `validation_failed` naming `<table>[<row>].<column>` for a row
 *   that does not fit the table, whose id is not new to the instance, or that
 *   points at no row of the workspace (nothing of the request is written).
 */
export async function importTable(
  deps: RuntimeDeps,
  caller: Caller,
  table: ExportRowTable,
  rows: readonly unknown[],
): Promise<{ table: ExportRowTable; received: number; inserted: number }> {
  authorize(caller, "workspace.import");
  const workspaceId = caller.principal.workspaceId;
  const inserted = await inTransaction(deps.db, async (trx) => {
    const open = await requireOpenImport(trx, workspaceId);
    const input = table === "analyses" && open.version === 1 ? upgradeAnalysisRows(rows) : rows;
    const columns = await transfer.tableColumns(trx, table);
    const errors: ImportFieldError[] = [];
    for (let i = 0; i < input.length && errors.length < MAX_FIELD_ERRORS; i++) {
      errors.push(...importRowErrors(table, columns, input[i], i));
    }
    if (errors.length > 0) throw rowsRefused(table, errors.slice(0, MAX_FIELD_ERRORS));
    let n = 0;
    for (let i = 0; i < input.length; i += PAGE) {
      const page = input.slice(i, i + PAGE) as transfer.ExportRow[];
      const result = await transfer.importRows(trx, table, workspaceId, page);
      if ("refused" in result) {
        const index = i + result.refused.index;
        throw rowsRefused(table, [refusalError(table, index, result.refused, input[index])]);
      }
      n += result.inserted;
    }
    return n;
  });
  return { table, received: rows.length, inserted };
}

/**
 * Import `signal_points.csv` (a stream of its bytes or text) into the caller's
 * workspace during its open import, in one transaction, parsing as it reads:
 * the file is never held in memory whole. Points already stored are skipped.
 *
 * @throws DomainError `forbidden` unless the caller may `workspace.import`; `conflict` when no import
 *   is open; `validation_failed` naming `signal_points.csv:<line>.<column>`
 *   for a malformed line, a line without the columns of `SIGNAL_POINT_COLUMNS` (the covariate's and the
 *   denominator's may be left out: older exports have none), a partly filled covariate or denominator, or a
 *   point whose series is not one of the workspace's (nothing is written).
 */
export async function importSignalPointsCsv(
  deps: RuntimeDeps,
  caller: Caller,
  source: AsyncIterable<string | Uint8Array>,
): Promise<{ table: "signal_points"; received: number; inserted: number }> {
  authorize(caller, "workspace.import");
  const workspaceId = caller.principal.workspaceId;
  return inTransaction(deps.db, async (trx) => {
    await requireOpenImport(trx, workspaceId);
    const parser = parse({ columns: true, skip_empty_lines: true });
    const input = Readable.from(source);
    // `pipe` keeps the backpressure: the request is read only as fast as points are written.
    input.on("error", (error) => parser.destroy(error));
    input.pipe(parser);
    let received = 0;
    let inserted = 0;
    let batch: transfer.SignalPointRow[] = [];
    /** Write the batch whose first point is on CSV line `firstLine`. */
    const flush = async (firstLine: number) => {
      const result = await transfer.importSignalPoints(trx, workspaceId, batch);
      if ("refused" in result) {
        const line = firstLine + result.refused.index;
        const point = batch[result.refused.index] as transfer.SignalPointRow;
        throw new DomainError(
          "validation_failed",
          `signal_points.csv:${line}: series_id ${point.series_id} names no signal series of this workspace; ` +
            "import signal_series first, and only points of the same export; nothing of signal_points was imported",
          {
            table: "signal_points",
            line,
            errors: [
              { field: `signal_points.csv:${line}.series_id`, message: "names no signal series of this workspace" },
            ],
          },
        );
      }
      inserted += result.inserted;
      batch = [];
    };
    try {
      for await (const record of parser as AsyncIterable<Record<string, string>>) {
        received += 1;
        batch.push(toPoint(record, received + 1));
        // The header is line 1: the batch's first point is on line received - batch.length + 2.
        if (batch.length >= POINT_BATCH) await flush(received - batch.length + 2);
      }
    } catch (error) {
      if (error instanceof DomainError) throw error;
      parser.destroy();
      throw new DomainError("validation_failed", `signal_points.csv: ${(error as Error).message}`, {
        field: "signal_points",
      });
    }
    await flush(received - batch.length + 2);
    return { table: "signal_points" as const, received, inserted };
  });
}

/** One CSV record as a point, or a `validation_failed` naming the line and the column. */
function toPoint(record: Record<string, string>, line: number): transfer.SignalPointRow {
  const refuse = (column: string, message: string) =>
    new DomainError("validation_failed", `signal_points.csv:${line}: ${column} ${message}`, {
      field: `signal_points.csv:${line}.${column}`,
      table: "signal_points",
      line,
    });
  for (const column of REQUIRED_POINT_COLUMNS) {
    if (record[column] === undefined || record[column] === "") {
      throw refuse(column, `is missing; each line holds ${REQUIRED_POINT_COLUMNS.join(",")}`);
    }
    if ((record[column] as string).includes("\u0000"))
      throw refuse(column, "contains a NUL character (U+0000); remove it");
  }
  // An optional group of columns (the covariate's, the denominator's): all filled or all empty; its sum of
  // squares (the second column) ≥ 0.
  const group = (columns: readonly [string, string, string]): (number | null)[] => {
    const filled = columns.filter((c) => (record[c] ?? "") !== "");
    if (filled.length === 0) return columns.map(() => null);
    if (filled.length < columns.length) {
      const empty = columns.find((c) => (record[c] ?? "") === "") as string;
      throw refuse(empty, `is empty but ${filled.join(", ")} is not; fill all of ${columns.join(", ")} or none`);
    }
    return columns.map((column, i) => {
      const value = Number(record[column]);
      if (!Number.isFinite(value) || (i === 1 && value < 0)) {
        throw refuse(column, `${shown(record[column])} must be a number${i === 1 ? " ≥ 0" : ""}`);
      }
      return value;
    });
  };
  const [covSum = null, covSumSq = null, covSumProduct = null] = group(COVARIATE_POINT_COLUMNS);
  const [denSum = null, denSumSq = null, numDenSum = null] = group(DENOMINATOR_POINT_COLUMNS);
  if (!UUID.test(record.series_id as string)) throw refuse("series_id", `${shown(record.series_id)} must be a UUID`);
  if (!ISO_TIMESTAMP.test(record.ts as string) || Number.isNaN(Date.parse(record.ts as string))) {
    throw refuse("ts", `${shown(record.ts)} must be an ISO 8601 time with its offset`);
  }
  const units = Number(record.units);
  const sum = Number(record.sum);
  const sumSq = Number(record.sum_sq);
  if (!Number.isSafeInteger(units) || units < 0) throw refuse("units", `${shown(record.units)} must be an integer ≥ 0`);
  if (!Number.isFinite(sum)) throw refuse("sum", `${shown(record.sum)} must be a number`);
  if (!Number.isFinite(sumSq) || sumSq < 0) throw refuse("sum_sq", `${shown(record.sum_sq)} must be a number ≥ 0`);
  return {
    series_id: record.series_id as string,
    arm: record.arm as string,
    ts: record.ts as string,
    units,
    sum,
    sum_sq: sumSq,
    cov_sum: covSum,
    cov_sum_sq: covSumSq,
    cov_sum_product: covSumProduct,
    den_sum: denSum,
    den_sum_sq: denSumSq,
    num_den_sum: numDenSum,
  };
}

export interface ImportReport {
  readonly ok: boolean;
  /** Per table: rows the manifest lists and rows now in the workspace. */
  readonly tables: { table: ExportTable; expected: number; actual: number }[];
}

/**
 * Finish the open import: compare the workspace's rows with the manifest's
 * counts (audit events may be more: the import itself and anything the
 * workspace had before are logged too), close the import and audit it. When a
 * table differs the import stays open, to be completed and finished again.
 *
 * @throws DomainError `forbidden`; `validation_failed` for a bad manifest;
 *   `conflict` when no import is open, or with the per-table counts when a
 *   table differs.
 */
export async function finishImport(deps: RuntimeDeps, caller: Caller, manifest: unknown): Promise<ImportReport> {
  authorize(caller, "workspace.import");
  const m = checkManifest(manifest);
  const workspaceId = caller.principal.workspaceId;
  return inTransaction(deps.db, async (trx) => {
    const open = await requireOpenImport(trx, workspaceId);
    return finishOpenImport(deps, trx, caller, m, open.id);
  });
}

async function finishOpenImport(
  deps: RuntimeDeps,
  trx: Trx,
  caller: Caller,
  m: ExportManifest,
  importId: string,
): Promise<ImportReport> {
  const workspaceId = caller.principal.workspaceId;
  const counts = await transfer.countRows(trx, workspaceId);
  const tables = EXPORT_TABLES.map((table) => ({
    table,
    expected: Number(m.counts[table] ?? 0),
    actual: counts[table],
  }));
  const short = tables.filter((t) => (t.table === "audit_events" ? t.actual < t.expected : t.actual !== t.expected));
  if (short.length > 0) {
    throw new DomainError(
      "conflict",
      `the import does not match the manifest: ${short.map((t) => `${t.table} has ${t.actual} rows, expected ${t.expected}`).join("; ")}`,
      { tables: short },
    );
  }
  await transfer.closeImport(trx, importId, nowOf(deps));
  await audit.insertAuditEvent(trx, {
    workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: "workspace.imported",
    subjectType: "workspace",
    subjectId: workspaceId,
    before: null,
    after: { import: importId, from: { slug: m.workspace.slug, exportedAt: m.exportedAt }, counts: m.counts },
    requestId: caller.requestId,
  });
  return { ok: true, tables };
}
