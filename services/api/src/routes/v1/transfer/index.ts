/**
 * Backup and leaving (admin only): `GET /v1/export/…` streams a workspace's
 * manifest and tables; `POST /v1/import/…` takes the same bodies into an empty
 * workspace, inside an import opened by `begin` and closed by `finish` (the
 * scopes: `admin`, and `write` to import). The format is in docs/export.md;
 * `outcome-runtime export|import` drives these routes.
 */
import { Readable } from "node:stream";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  beginImport,
  EXPORT_TABLES,
  exportManifest,
  exportRows,
  exportSignalPointsCsv,
  finishImport,
  importSignalPointsCsv,
  importTable,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import { problem, sendProblem } from "../../../plugins/problem-details";
import type { RouteOptions } from "../../route-options";

/** Largest import body: a table's JSON array or the signal points CSV. */
const IMPORT_BODY_LIMIT = 512 * 1024 * 1024;

const TableParam = Type.Object({ table: Type.Enum([...EXPORT_TABLES]) });

const ManifestDto = Type.Object(
  {
    format: Type.String(),
    version: Type.Integer(),
    exportedAt: Type.String({ format: "date-time" }),
    workspace: Type.Object({
      slug: Type.String(),
      name: Type.String(),
      settings: Type.Record(Type.String(), Type.Unknown()),
    }),
    counts: Type.Record(Type.String(), Type.Integer()),
    runtimeVersion: Type.String(),
    excluded: Type.Array(Type.String()),
  },
  { description: "manifest.json of an export" },
);

// The manifest a client sends back is checked by the use case, which names what is wrong
// (a version it cannot read is a `validation_failed` with the supported versions).
const ManifestBody = Type.Record(Type.String(), Type.Unknown(), { description: "manifest.json of the export" });

const ImportResultDto = Type.Object({
  table: Type.String(),
  received: Type.Integer({ description: "rows in the body" }),
  inserted: Type.Integer({ description: "rows written (rows already there are skipped)" }),
});

/**
 * A stream of `chunks`, started before the reply: a refusal on the first
 * read (not an admin) still becomes a problem response, not a cut-off body.
 */
async function primed<T>(
  chunks: AsyncGenerator<T>,
  render: (value: T, index: number) => string,
  open = "",
  close = "",
) {
  const first = await chunks.next();
  async function* all() {
    yield open;
    let i = 0;
    if (!first.done) yield render(first.value, i++);
    for await (const value of chunks) yield render(value, i++);
    yield close;
  }
  return Readable.from(all());
}

const transferRoutes: FastifyPluginAsyncTypebox<RouteOptions & { version: string }> = async (app, options) => {
  const { deps } = options;
  // Encapsulated: a CSV body reaches only these routes, as a stream parsed while it arrives.
  app.addContentTypeParser("text/csv", (_request, payload, done) => done(null, payload));

  app.get(
    "/v1/export/manifest",
    {
      config: { operations: ["workspace.export"] },
      schema: {
        tags: ["export"],
        summary: "The manifest of an export of the workspace (admin)",
        description:
          "Format, version, workspace, row counts per table and what is not exported (secrets, transient state).",
        response: { 200: ManifestDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const manifest = await exportManifest(deps, request.caller, options.version);
      return { ...manifest, excluded: [...manifest.excluded] };
    },
  );

  app.get(
    "/v1/export/:table",
    {
      config: { operations: ["workspace.export"] },
      schema: {
        tags: ["export"],
        summary: "One table of the workspace, streamed (admin)",
        description:
          "A JSON array of every row (every column, ids kept, timestamps ISO 8601), or for `signal_points` " +
          "a CSV with the columns series_id,arm,ts,units,sum,sum_sq. Read page by page, never whole in memory.",
        params: TableParam,
        response: PROBLEM_RESPONSES,
      },
    },
    async (request, reply) => {
      const { table } = request.params;
      if (table === "signal_points") {
        const body = await primed(exportSignalPointsCsv(deps, request.caller), (chunk) => chunk);
        return reply.type("text/csv; charset=utf-8").send(body);
      }
      const body = await primed(
        exportRows(deps, request.caller, table),
        (row, i) => `${i === 0 ? "\n" : ",\n"}${JSON.stringify(row)}`,
        "[",
        "\n]\n",
      );
      return reply.type("application/json; charset=utf-8").send(body);
    },
  );

  app.post(
    "/v1/import/begin",
    {
      config: { operations: ["workspace.import"] },
      schema: {
        tags: ["export"],
        summary: "Open an import into this workspace (admin; scopes write and admin)",
        description:
          "Checks the manifest (format and version), that no import is open and that the workspace has no data " +
          "(409 `conflict` otherwise), opens the import and restores the exported workspace settings.",
        body: ManifestBody,
        response: { 200: Type.Object({ ok: Type.Literal(true) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => beginImport(deps, request.caller, request.body),
  );

  app.post(
    "/v1/import/finish",
    {
      config: { operations: ["workspace.import"] },
      schema: {
        tags: ["export"],
        summary:
          "Finish the open import: compare the workspace with the manifest's counts (admin; scopes write and admin)",
        description:
          "Closes the import. 409 `conflict` when no import is open, or naming each table whose rows do not match " +
          "the manifest (the import then stays open).",
        body: ManifestBody,
        response: {
          200: Type.Object({
            ok: Type.Boolean(),
            tables: Type.Array(Type.Object({ table: Type.String(), expected: Type.Integer(), actual: Type.Integer() })),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => finishImport(deps, request.caller, request.body),
  );

  app.post(
    "/v1/import/:table",
    {
      config: { operations: ["workspace.import"] },
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        tags: ["export"],
        summary: "Import one table into this workspace during its open import (admin; scopes write and admin)",
        description:
          "The body of `GET /v1/export/:table`: a JSON array, or `text/csv` for `signal_points`. Rows keep their " +
          "ids and move into this workspace; rows already there are skipped, so a retry is harmless. One " +
          "transaction per request: a row that does not fit its table, whose id is not new to the instance, or " +
          "that points at no row of this workspace refuses the request (400 `validation_failed` naming " +
          "`<table>[<row>].<column>`; nothing written). 409 `conflict` when no import is open. Import in the " +
          "order of docs/export.md (experiments again after gates).",
        params: TableParam,
        body: Type.Unknown({ description: "a JSON array of rows, or the signal points CSV" }),
        response: { 200: ImportResultDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const { table } = request.params;
      const body = request.body;
      if (table === "signal_points") {
        if (!(body instanceof Readable)) {
          return sendProblem(reply, problem(request, "unsupported_media_type", "send signal_points as text/csv"));
        }
        return importSignalPointsCsv(deps, request.caller, body);
      }
      if (!Array.isArray(body)) {
        return sendProblem(reply, problem(request, "validation_failed", `send ${table} as a JSON array of rows`));
      }
      return importTable(deps, request.caller, table, body);
    },
  );
};

export default transferRoutes;
