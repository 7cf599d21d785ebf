/**
 * `outcome-runtime export --out <dir>` and `outcome-runtime import --from <dir>`:
 * backup and leaving. An export is a directory: `manifest.json`, one JSON
 * array per table and `signal_points.csv` (docs/export.md). Both stream the
 * tables to and from the API, so no table is held in memory whole.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import {
  EXPORT_FORMAT,
  EXPORT_TABLES,
  type ExportTable,
  IMPORT_ORDER,
  READABLE_EXPORT_VERSIONS,
} from "@outcome-runtime/core";
import type { Command } from "commander";
import { ApiError, ConnectionError, type Problem } from "../api-client";
import type { ResponseJson } from "../api-types";
import { CliFailure, clientOf, type GlobalOptions, out, outJson } from "../output";

/** Large tables take a while each way. */
const TABLE_TIMEOUT_MS = 30 * 60_000;

type Manifest = ResponseJson<"/v1/export/manifest", "get">;

function fileOf(table: ExportTable): string {
  return table === "signal_points" ? "signal_points.csv" : `${table}.json`;
}

/** A request whose body is streamed: the raw response on 2xx; `ApiError` / `ConnectionError` otherwise. */
async function send(
  options: GlobalOptions,
  method: string,
  path: string,
  body?: { stream: Readable; contentType: string },
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  if (body) headers["content-type"] = body.contentType;
  let response: Response;
  try {
    response = await fetch(new URL(path, options.url), {
      method,
      headers,
      ...(body ? { body: Readable.toWeb(body.stream) as ReadableStream, duplex: "half" } : {}),
      signal: AbortSignal.timeout(TABLE_TIMEOUT_MS),
    } as RequestInit);
  } catch (error) {
    throw new ConnectionError(options.url, error);
  }
  if (!response.ok) {
    const text = await response.text();
    let p: Partial<Problem> = {};
    try {
      p = JSON.parse(text) as Partial<Problem>;
    } catch {}
    throw new ApiError({
      status: response.status,
      code: p.code ?? `http_${response.status}`,
      title: p.title ?? response.statusText,
      detail: p.detail ?? text.slice(0, 500),
      ...(p.details ? { details: p.details } : {}),
    });
  }
  return response;
}

async function exportTo(options: GlobalOptions, dir: string): Promise<{ manifest: Manifest }> {
  const existing = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw new CliFailure(`${dir}: cannot read (${error.code ?? String(error)})`);
  });
  if (existing.length > 0) throw new CliFailure(`${dir}: not empty; export into a new or empty directory`);
  const manifest = await clientOf(options).request<Manifest>("GET", "/v1/export/manifest");
  await mkdir(dir, { recursive: true });
  for (const table of EXPORT_TABLES) {
    const response = await send(options, "GET", `/v1/export/${table}`);
    if (response.body === null) throw new CliFailure(`the API sent no body for ${table}`);
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      createWriteStream(join(dir, fileOf(table))),
    );
  }
  // Last: a directory with a manifest is a complete export.
  await pipeline(
    Readable.from([`${JSON.stringify(manifest, null, 2)}\n`]),
    createWriteStream(join(dir, "manifest.json")),
  );
  return { manifest };
}

/** Read and check `<dir>/manifest.json` and that every table file is there. */
async function readExport(dir: string): Promise<Manifest> {
  const path = join(dir, "manifest.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliFailure(
      code === "ENOENT"
        ? `${dir}: not an export (no manifest.json); give a directory written by \`outcome-runtime export\``
        : `${path}: cannot read (${code ?? String(error)})`,
    );
  }
  let manifest: Partial<Manifest>;
  try {
    manifest = JSON.parse(text) as Partial<Manifest>;
  } catch (error) {
    throw new CliFailure(`${path}: not JSON (${(error as Error).message})`);
  }
  if (manifest?.format !== EXPORT_FORMAT) {
    throw new CliFailure(`${path}: not an Outcome Runtime export (format is not "${EXPORT_FORMAT}")`);
  }
  if (!READABLE_EXPORT_VERSIONS.includes(manifest.version as number)) {
    throw new CliFailure(
      `${path}: export format version ${JSON.stringify(manifest.version)} cannot be read; this CLI reads versions ${READABLE_EXPORT_VERSIONS.join(" and ")} (upgrade the CLI and the API)`,
    );
  }
  for (const table of EXPORT_TABLES) {
    const file = join(dir, fileOf(table));
    if (!(await stat(file).catch(() => null))?.isFile()) throw new CliFailure(`${file}: missing from the export`);
  }
  return manifest as Manifest;
}

/**
 * Import an export directory: open the import (`begin`; skipped with
 * `resume`, which continues an import that stopped before `finish`), send
 * every table in the import order, then `finish`.
 */
async function importFrom(options: GlobalOptions, dir: string, resume = false) {
  const manifest = await readExport(dir);
  const client = clientOf(options);
  if (!resume) await client.request("POST", "/v1/import/begin", { json: manifest });
  const written: { table: ExportTable; received: number; inserted: number }[] = [];
  for (const table of IMPORT_ORDER) {
    const response = await send(options, "POST", `/v1/import/${table}`, {
      stream: createReadStream(join(dir, fileOf(table))),
      contentType: table === "signal_points" ? "text/csv" : "application/json",
    });
    written.push((await response.json()) as ResponseJson<"/v1/import/{table}", "post"> & { table: ExportTable });
  }
  const report = await client.request<ResponseJson<"/v1/import/finish", "post">>("POST", "/v1/import/finish", {
    json: manifest,
  });
  return { manifest, written, report };
}

/** Register `export` and `import` on the program. */
export function transferCommands(program: Command): void {
  program
    .command("export")
    .description("write the workspace (outcomes, experiments, gates, analyses, learnings, audit log) to a directory")
    .requiredOption("--out <dir>", "a new or empty directory")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime export --out backup-2026-12-01",
        "",
        "Needs an admin key. API keys, email tokens and caches are not exported (docs/export.md).",
      ].join("\n"),
    )
    .action(async (opts: { out: string }) => {
      const options = program.opts<GlobalOptions>();
      const { manifest } = await exportTo(options, opts.out);
      if (options.json) {
        outJson({ ok: true, out: opts.out, manifest });
        return;
      }
      out(`exported workspace ${manifest.workspace.slug} to ${opts.out}:`);
      for (const table of EXPORT_TABLES) out(`  ${fileOf(table)}: ${manifest.counts[table] ?? 0}`);
    });

  program
    .command("import")
    .description("restore an export into this instance's workspace, which must have no outcome yet")
    .requiredOption("--from <dir>", "a directory written by `outcome-runtime export`")
    .option("--resume", "continue an import that stopped before it finished (the import is still open)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime --url https://new.example --api-key $KEY import --from backup-2026-12-01",
        "  $ outcome-runtime import --from backup-2026-12-01 --resume     # after an interrupted import",
        "",
        "Needs an admin key with the write and admin scopes. Ids are kept; --resume skips what is already there.",
      ].join("\n"),
    )
    .action(async (opts: { from: string; resume?: boolean }) => {
      const options = program.opts<GlobalOptions>();
      const result = await importFrom(options, opts.from, opts.resume === true);
      if (options.json) {
        outJson({ ok: result.report.ok, from: opts.from, tables: result.report.tables });
        return;
      }
      out(
        `imported ${opts.from} (workspace ${result.manifest.workspace.slug}, exported ${result.manifest.exportedAt}):`,
      );
      for (const t of result.report.tables) out(`  ${t.table}: ${t.actual} rows (manifest: ${t.expected})`);
    });
}
