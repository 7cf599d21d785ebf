/**
 * Backup and leaving: export a workspace as versioned JSON (and its signal
 * points as CSV), and import such an export into an empty workspace. The
 * format is documented in docs/export.md; what it leaves out (secrets and
 * transient state) is listed in `EXCLUDED_FROM_EXPORT` and in every manifest.
 */
import { Readable } from "node:stream";
import { DEFAULT_WORKSPACE_SETTINGS, DomainError, type WorkspaceSettings } from "@outcome-runtime/core";
import { audit, transfer, workspaces } from "@outcome-runtime/db";
import { parse } from "csv-parse";
import { auditActor, type Caller, inTransaction, type RuntimeDeps } from "./context";
import { ALL_GATE_DECISIONS } from "./decide-gate";

export const EXPORT_FORMAT = "outcome-runtime-export";
/** The version this runtime writes and the only one it reads. */
export const EXPORT_VERSION = 1;

/** Tables exported as JSON arrays (`<table>.json`), in import order. */
export const EXPORT_ROW_TABLES = transfer.ROW_TABLES;
export type ExportRowTable = transfer.RowTable;
/** Every exported table: the JSON ones and `signal_points` (`signal_points.csv`). */
export type ExportTable = transfer.TransferTable;
export const EXPORT_TABLES: readonly ExportTable[] = [...transfer.ROW_TABLES, "signal_points"];

/**
 * The order an import writes the tables in. `experiments` comes twice: the
 * second pass, after `gates`, fills the experiments' portfolio-gate links
 * (the two tables reference each other).
 */
export const IMPORT_ORDER: readonly ExportTable[] = [
  "outcomes",
  "outcome_revisions",
  "experiments",
  "gates",
  "experiments",
  "signal_series",
  "signal_points",
  "analyses",
  "learnings",
  "audit_events",
];

/** What an export leaves out, and why (also written into every manifest). */
export const EXCLUDED_FROM_EXPORT = [
  "api_keys (secrets: create new keys on the new instance)",
  "webhook_deliveries (transient outbox)",
  "gate_notifications and gate_tokens (emails sent and decision-link secrets)",
  "idempotency_keys (transient)",
  "llm_cache and llm_calls (cache and usage metering)",
  "workspace_secrets (sealed with this installation's key: an admin sets them again on the new instance)",
] as const;

/** The CSV columns of `signal_points.csv`, in order. */
export const SIGNAL_POINT_COLUMNS = ["series_id", "arm", "ts", "units", "sum", "sum_sq"] as const;

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

function requireAdmin(caller: Caller, what: string): void {
  if (caller.principal.role !== "admin") throw new DomainError("forbidden", `only an admin can ${what}`);
}

/**
 * The manifest of an export of the caller's workspace.
 *
 * @throws DomainError `forbidden` for a non-admin.
 */
export async function exportManifest(
  deps: RuntimeDeps,
  caller: Caller,
  runtimeVersion: string,
): Promise<ExportManifest> {
  requireAdmin(caller, "export a workspace");
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
 * @throws DomainError `forbidden` for a non-admin (on the first read).
 */
export async function* exportRows(deps: RuntimeDeps, caller: Caller, table: ExportRowTable): AsyncGenerator<object> {
  requireAdmin(caller, "export a workspace");
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
 * @throws DomainError `forbidden` for a non-admin (on the first read).
 */
export async function* exportSignalPointsCsv(deps: RuntimeDeps, caller: Caller): AsyncGenerator<string> {
  requireAdmin(caller, "export a workspace");
  yield `${SIGNAL_POINT_COLUMNS.join(",")}\n`;
  let after: transfer.SignalPointCursor | null = null;
  for (;;) {
    const rows = await transfer.exportSignalPointsPage(deps.db, caller.principal.workspaceId, after, PAGE);
    if (rows.length > 0) {
      yield rows.map((p) => `${p.series_id},${csvField(p.arm)},${p.ts},${p.units},${p.sum},${p.sum_sq}\n`).join("");
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
  if (m.version !== EXPORT_VERSION) {
    throw new DomainError(
      "validation_failed",
      `export format version ${JSON.stringify(m.version)} cannot be read; this runtime reads version ${EXPORT_VERSION}`,
      { field: "version", supported: [EXPORT_VERSION] },
    );
  }
  if (typeof m.counts !== "object" || m.counts === null || typeof m.workspace !== "object" || m.workspace === null) {
    throw new DomainError("validation_failed", "the manifest has no counts or workspace", { field: "counts" });
  }
  return m as ExportManifest;
}

/**
 * Start an import into the caller's workspace: check the manifest, check the
 * workspace is empty (no outcome), and restore the exported workspace settings.
 *
 * @throws DomainError `forbidden` for a non-admin; `validation_failed` for a
 *   manifest of another format or version; `conflict` when the workspace has outcomes.
 */
export async function beginImport(deps: RuntimeDeps, caller: Caller, manifest: unknown): Promise<{ ok: true }> {
  requireAdmin(caller, "import into a workspace");
  const m = checkManifest(manifest);
  const decisions = m.workspace.settings?.sessionRequiredDecisions;
  const duties = m.workspace.settings?.separationOfDuties;
  // An export made before a setting existed restores that setting's default.
  const settings: WorkspaceSettings | null = Array.isArray(decisions)
    ? {
        sessionRequiredDecisions: decisions.filter((d) => (ALL_GATE_DECISIONS as readonly string[]).includes(d)),
        separationOfDuties: typeof duties === "boolean" ? duties : DEFAULT_WORKSPACE_SETTINGS.separationOfDuties,
      }
    : null;
  return inTransaction(deps.db, async (trx) => {
    const workspaceId = caller.principal.workspaceId;
    if (await transfer.hasOutcomes(trx, workspaceId)) {
      throw new DomainError("conflict", "import needs an empty workspace", { workspace: workspaceId });
    }
    const current = await workspaces.findWorkspace(trx, workspaceId);
    if (current === null) throw new DomainError("not_found", "this workspace no longer exists");
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
        from: { slug: m.workspace.slug, exportedAt: m.exportedAt, runtimeVersion: m.runtimeVersion },
      },
      requestId: caller.requestId,
    });
    return { ok: true as const };
  });
}

/**
 * Import the rows of one table (as exported) into the caller's workspace, in
 * one transaction, keeping their ids (audit events get new ones: see
 * `transfer.importRows`). Re-running is harmless. Returns the rows written.
 *
 * @throws DomainError `forbidden` for a non-admin; `validation_failed` when a row is not an object.
 */
export async function importTable(
  deps: RuntimeDeps,
  caller: Caller,
  table: ExportRowTable,
  rows: readonly unknown[],
): Promise<{ table: ExportRowTable; received: number; inserted: number }> {
  requireAdmin(caller, "import into a workspace");
  const bad = rows.findIndex((r) => typeof r !== "object" || r === null || Array.isArray(r));
  if (bad >= 0) {
    throw new DomainError("validation_failed", `${table}[${bad}] is not an object`, { field: `${table}[${bad}]` });
  }
  const inserted = await inTransaction(deps.db, async (trx) => {
    let n = 0;
    for (let i = 0; i < rows.length; i += PAGE) {
      n += await transfer.importRows(
        trx,
        table,
        caller.principal.workspaceId,
        rows.slice(i, i + PAGE) as transfer.ExportRow[],
      );
    }
    return n;
  });
  return { table, received: rows.length, inserted };
}

/**
 * Import `signal_points.csv` (a stream of its bytes or text) into the caller's
 * workspace in one transaction, parsing as it reads: the file is never held in
 * memory whole. Points of series outside the workspace are skipped.
 *
 * @throws DomainError `forbidden` for a non-admin; `validation_failed` for a
 *   malformed line or a header other than `SIGNAL_POINT_COLUMNS`.
 */
export async function importSignalPointsCsv(
  deps: RuntimeDeps,
  caller: Caller,
  source: AsyncIterable<string | Uint8Array>,
): Promise<{ table: "signal_points"; received: number; inserted: number }> {
  requireAdmin(caller, "import into a workspace");
  const parser = parse({ columns: true, skip_empty_lines: true });
  const input = Readable.from(source);
  // `pipe` keeps the backpressure: the request is read only as fast as points are written.
  input.on("error", (error) => parser.destroy(error));
  input.pipe(parser);
  return inTransaction(deps.db, async (trx) => {
    let received = 0;
    let inserted = 0;
    let batch: transfer.SignalPointRow[] = [];
    try {
      for await (const record of parser as AsyncIterable<Record<string, string>>) {
        received += 1;
        batch.push(toPoint(record, received + 1));
        if (batch.length >= POINT_BATCH) {
          inserted += await transfer.importSignalPoints(trx, caller.principal.workspaceId, batch);
          batch = [];
        }
      }
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw new DomainError("validation_failed", `signal_points.csv: ${(error as Error).message}`, {
        field: "signal_points",
      });
    }
    inserted += await transfer.importSignalPoints(trx, caller.principal.workspaceId, batch);
    return { table: "signal_points" as const, received, inserted };
  });
}

function toPoint(record: Record<string, string>, line: number): transfer.SignalPointRow {
  const missing = SIGNAL_POINT_COLUMNS.filter((c) => record[c] === undefined || record[c] === "");
  const units = Number(record.units);
  const sum = Number(record.sum);
  const sumSq = Number(record.sum_sq);
  if (missing.length > 0 || !Number.isInteger(units) || !Number.isFinite(sum) || !Number.isFinite(sumSq)) {
    throw new DomainError(
      "validation_failed",
      `signal_points.csv:${line}: expected ${SIGNAL_POINT_COLUMNS.join(",")} with numeric units, sum, sum_sq`,
      { field: "signal_points", line },
    );
  }
  return {
    series_id: record.series_id as string,
    arm: record.arm as string,
    ts: record.ts as string,
    units,
    sum,
    sum_sq: sumSq,
  };
}

export interface ImportReport {
  readonly ok: boolean;
  /** Per table: rows the manifest lists and rows now in the workspace. */
  readonly tables: { table: ExportTable; expected: number; actual: number }[];
}

/**
 * Finish an import: compare the workspace's rows with the manifest's counts
 * (audit events may be more: the import itself and anything the workspace had
 * before are logged too) and audit the import.
 *
 * @throws DomainError `forbidden`; `validation_failed` for a bad manifest;
 *   `conflict` with the per-table counts when a table is short.
 */
export async function finishImport(deps: RuntimeDeps, caller: Caller, manifest: unknown): Promise<ImportReport> {
  requireAdmin(caller, "import into a workspace");
  const m = checkManifest(manifest);
  const workspaceId = caller.principal.workspaceId;
  const counts = await transfer.countRows(deps.db, workspaceId);
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
  await audit.insertAuditEvent(deps.db, {
    workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: "workspace.imported",
    subjectType: "workspace",
    subjectId: workspaceId,
    before: null,
    after: { from: { slug: m.workspace.slug, exportedAt: m.exportedAt }, counts: m.counts },
    requestId: caller.requestId,
  });
  return { ok: true, tables };
}
