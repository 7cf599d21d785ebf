/**
 * Backup and leaving: a rich workspace exported through the CLI (a real
 * process against a real API) and imported into a fresh database behind a
 * second API answers every outcome, experiment and gate request exactly as
 * the first one does.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import { EXPORT_ROW_TABLES, EXPORT_TABLES } from "@outcome-runtime/core";
import { downgradeAnalysisJson, signals, transfer, workspaces } from "@outcome-runtime/db";
import {
  applyOutcome,
  type Caller,
  createApiKey,
  decideGate,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
  updateWorkspaceSettings,
} from "@outcome-runtime/runtime";
import { analysisFixture, outcomeVariant, proportionArm } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

let source: TestApi;
let target: TestApi;
let dir: string;
const urls = { source: "", target: "" };

async function listen(api: TestApi): Promise<string> {
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
}

async function cli(args: string[], api: TestApi, url: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: api.seed.adminKey },
      maxBuffer: 50 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function get(api: TestApi, url: string): Promise<unknown> {
  const response = await api.app.inject({ method: "GET", url, headers: api.auth });
  expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
  return response.json();
}

const hypothesis = (title: string) => ({
  title,
  statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout, because the flow is shorter.`,
  touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
});

/** Outcomes, revisions, experiments in several states, every gate kind, signals, an analysis, a learning. */
async function buildWorkspace(api: TestApi): Promise<void> {
  const deps = { db: api.t.db };
  const admin = api.seed.admin;
  await applyOutcome(deps, admin, { source: outcomeVariant("transfer-flow") });
  await applyOutcome(deps, admin, { source: outcomeVariant("transfer-flow", [["max_harm: 3%", "max_harm: 2%"]]) });
  await applyOutcome(deps, admin, { source: outcomeVariant("transfer-draft") });
  await transitionOutcome(deps, admin, "transfer-flow", "activate", null);
  await updateWorkspaceSettings(deps, admin, { sessionRequiredDecisions: ["resume", "ship"] });

  const maya = await api.seed.key("maya.pm@acme.example", "approver");
  const agent = await api.seed.key("claude-code", "agent");
  const shipped = await proposeExperiment(deps, admin, "transfer-flow", hypothesis("Show delivery date early"));
  await proposeExperiment(deps, admin, "transfer-flow", hypothesis("Guest checkout first"));
  await decideGate(deps, maya.caller, shipped.gate.id, { decision: "approve", reason: "worth a try" });
  // A second portfolio, still pending.
  await proposeExperiment(deps, admin, "transfer-flow", hypothesis("Trust badges"));

  const id = shipped.experiment.id;
  await transitionExperiment(deps, agent.caller, id, { action: "claim" });
  const built = await transitionExperiment(deps, agent.caller, id, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  await decideGate(deps, maya.caller, built.openedGates[0]!.id, { decision: "approve" });

  // Signal points over two pages of the export (1 000 per page), and an analysis of them.
  const series = await signals.ensureSeries(api.t.db, {
    workspaceId: api.seed.workspaceId,
    outcomeId: shipped.experiment.outcomeId,
    experimentId: id,
    metric: "checkout_completed",
    role: "primary",
    kind: "proportion",
  });
  const start = Date.parse("2026-11-01T00:00:00.123Z");
  const points = Array.from({ length: 650 }, (_, i) => i).flatMap((i) =>
    ["control", "treatment"].map((arm) => ({
      arm,
      ts: new Date(start + i * 3_600_000),
      units: 100 + i,
      sum: 31 + i / 3,
      sum_sq: 31 + i / 3,
      // The control arm's points carry a covariate (CUPED), the treatment's none: both kinds round-trip.
      ...(arm === "control" ? { covariate: { sum: 80 + i / 7, sumSq: 90 + i, sumProduct: 20 + i / 9 } } : {}),
    })),
  );
  await signals.upsertPoints(api.t.db, series, points, new Date());
  // A ratio metric's series (revenue per session): its points carry the denominator, which round-trips.
  const ratioSeries = await signals.ensureSeries(api.t.db, {
    workspaceId: api.seed.workspaceId,
    outcomeId: shipped.experiment.outcomeId,
    experimentId: id,
    metric: "revenue_per_session",
    role: "secondary",
    kind: "ratio",
  });
  await signals.upsertPoints(
    api.t.db,
    ratioSeries,
    ["control", "treatment"].map((arm) => ({
      arm,
      // A day before the other series' points, so no line of one is taken for a line of the other.
      ts: new Date(start - 86_400_000),
      units: 100,
      sum: 480.5,
      sum_sq: 4_000,
      denominator: { sum: 250, sumSq: 900, sumProduct: 1_200.25 },
    })),
    new Date(),
  );
  await signals.insertAnalysis(
    api.t.db,
    analysisFixture(
      { workspaceId: api.seed.workspaceId, experimentId: id, ts: new Date(start + 649 * 3_600_000) },
      {
        arms: { control: proportionArm(749, 0.31), treatment: proportionArm(749, 0.34) },
        effect: 0.03,
        ciLow: 0.004,
        ciHigh: 0.056,
        relativeLift: 0.0967741935483871,
        pValue: 0.012,
        srmPValue: 0.93,
        decision: { action: "analyse", reason: "win", detail: "the effect is significant at alpha 0.05" },
      },
    ),
  );

  const paused = await transitionExperiment(deps, admin, id, { action: "pause", reason: "incident" });
  await decideGate(deps, maya.caller, paused.openedGates[0]!.id, { decision: "resume" });
  const analysing = await transitionExperiment(deps, admin, id, { action: "analyse" });
  const decided = await decideGate(deps, maya.caller, analysing.openedGates[0]!.id, { decision: "ship" });
  expect(decided.learningId).not.toBeNull();
}

/** Every response the comparison covers, keyed by request. */
async function snapshot(api: TestApi): Promise<Record<string, unknown>> {
  const responses: Record<string, unknown> = {};
  const read = async (url: string) => {
    responses[url] = await get(api, url);
    return responses[url];
  };
  const list = (await read("/v1/outcomes?limit=200")) as { items: { outcome: { id: string } }[] };
  const gateIds = new Set<string>();
  for (const { outcome } of list.items) {
    await read(`/v1/outcomes/${outcome.id}`);
    await read(`/v1/outcomes/${outcome.id}/revisions?limit=200`);
    const gates = (await read(`/v1/gates?outcomeId=${outcome.id}&limit=200`)) as {
      items: { id: string }[];
      nextCursor: string | null;
    };
    expect(gates.nextCursor).toBeNull();
    for (const g of gates.items) gateIds.add(g.id);
    const experiments = (await read(`/v1/outcomes/${outcome.id}/experiments?limit=200`)) as {
      items: { id: string }[];
    };
    for (const e of experiments.items) {
      const one = (await read(`/v1/experiments/${e.id}`)) as { gates: { id: string }[] };
      for (const g of one.gates) gateIds.add(g.id);
      await read(`/v1/experiments/${e.id}/analyses`);
    }
  }
  for (const id of gateIds) await read(`/v1/gates/${id}`);
  await read("/v1/workspace/settings");
  await read("/v1/learnings");
  return responses;
}

beforeAll(async () => {
  [source, target] = await Promise.all([createTestApi(), createTestApi()]);
  urls.source = await listen(source);
  urls.target = await listen(target);
  await buildWorkspace(source);
  dir = await mkdtemp(join(tmpdir(), "outcome-runtime-export-"));
});
afterAll(async () => {
  await Promise.all([source?.close(), target?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("export then import", () => {
  it("reproduces every outcome, experiment and gate response in a fresh database", async () => {
    const out = join(dir, "backup");
    const exported = await cli(["--json", "export", "--out", out], source, urls.source);
    expect(exported.stderr).toBe("");
    expect(exported.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(out, "manifest.json"), "utf8"));
    expect(manifest).toMatchObject({
      format: "outcome-runtime-export",
      version: 2,
      workspace: { slug: "default", settings: { sessionRequiredDecisions: ["resume", "ship"] } },
      counts: {
        outcomes: 2,
        outcome_revisions: 3,
        experiments: 3,
        signal_series: 2,
        signal_points: 1302,
        analyses: 1,
        learnings: 1,
      },
      runtimeVersion: "test",
    });
    expect(manifest.counts.gates).toBeGreaterThanOrEqual(5);
    expect(manifest.excluded.join(" ")).toMatch(/api_keys.*webhook.*gate_tokens.*idempotency.*llm_cache/s);
    // Every column, ISO timestamps with their microseconds, and the CSV of points.
    const outcomes = JSON.parse(await readFile(join(out, "outcomes.json"), "utf8"));
    expect(outcomes[0].created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
    expect(Object.keys(outcomes[0])).toEqual(expect.arrayContaining(["id", "workspace_id", "spec", "content_hash"]));
    const csv = (await readFile(join(out, "signal_points.csv"), "utf8")).trim().split("\n");
    expect(csv[0]).toBe(
      "series_id,arm,ts,units,sum,sum_sq,cov_sum,cov_sum_sq,cov_sum_product,den_sum,den_sum_sq,num_den_sum",
    );
    expect(csv).toHaveLength(1303);
    expect(csv.find((l) => l.includes(",control,2026-11-01T00:00:00.123"))).toMatch(/,100,31,31,80,90,20,,,$/);
    expect(csv.find((l) => l.includes(",treatment,2026-11-01T00:00:00.123"))).toMatch(/,100,31,31,,,,,,$/);
    expect(csv.filter((l) => l.endsWith(",100,480.5,4000,,,,250,900,1200.25"))).toHaveLength(2);

    const before = await snapshot(source);
    const imported = await cli(["--json", "import", "--from", out], target, urls.target);
    expect(imported.stderr).toBe("");
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ ok: true });

    const after = await snapshot(target);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    expect(Object.keys(before).filter((k) => k.startsWith("/v1/gates/")).length).toBe(manifest.counts.gates);
    for (const key of Object.keys(before)) expect(after[key], key).toEqual(before[key]);

    expect(Object.keys(before).length).toBeGreaterThan(15);

    // Row for row, every column is the same but the workspace (audit events get new ids).
    const workspaceOf = (api: TestApi) => api.seed.workspaceId;
    for (const table of EXPORT_ROW_TABLES.filter((t) => t !== "audit_events")) {
      const rows = (api: TestApi) =>
        api.app
          .inject({ method: "GET", url: `/v1/export/${table}`, headers: api.auth })
          .then((r) => JSON.stringify(r.json()).replaceAll(workspaceOf(api), "<workspace>"));
      expect(await rows(target), table).toBe(await rows(source));
    }
    const events = async (api: TestApi) =>
      (
        (await (await api.app.inject({ method: "GET", url: "/v1/export/audit_events", headers: api.auth })).json()) as {
          id: string;
          workspace_id: string;
        }[]
      ).map(({ id: _id, workspace_id: _ws, ...rest }) => rest);
    const sourceEvents = await events(source);
    const targetEvents = await events(target);
    expect(sourceEvents.length).toBe(manifest.counts.audit_events);
    expect(targetEvents.filter((e) => sourceEvents.some((s) => JSON.stringify(s) === JSON.stringify(e)))).toEqual(
      sourceEvents,
    );

    // The signal points and the audit log came along too.
    const again = await target.app.inject({ method: "GET", url: "/v1/export/signal_points", headers: target.auth });
    expect(again.body.trim().split("\n").sort()).toEqual([...csv].sort());
    const audit = (await get(target, "/v1/audit?limit=1000")) as { items: { action: string }[] };
    const actions = audit.items.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["outcome.created", "experiment.launched", "workspace.imported"]));
  });

  it("imports an export of version 1 (relative_effect, snake_case analysis JSON) as version 2 stores it", async () => {
    const out = join(dir, "backup");
    const v1 = join(dir, "backup-v1");
    await cp(out, v1, { recursive: true });
    const manifest = JSON.parse(await readFile(join(v1, "manifest.json"), "utf8"));
    await writeFile(join(v1, "manifest.json"), JSON.stringify({ ...manifest, version: 1 }));
    const rows = JSON.parse(await readFile(join(v1, "analyses.json"), "utf8")) as Record<string, unknown>[];
    expect(rows.length).toBeGreaterThan(0);
    const former = rows.map(({ relative_lift, arms, guardrails, details, ...rest }) => ({
      ...rest,
      relative_effect: relative_lift,
      ...downgradeAnalysisJson({ arms, guardrails, details }),
    }));
    // What version 1 looked like: the former keys, and none of today's.
    expect(JSON.stringify(former)).toContain('"p_value"');
    expect(JSON.stringify(former)).not.toContain('"pValue"');
    await writeFile(join(v1, "analyses.json"), JSON.stringify(former));
    // Nor had its signal_points.csv the covariate or denominator columns (arms here hold no comma).
    const points = await readFile(join(v1, "signal_points.csv"), "utf8");
    const sixColumns = points
      .split("\n")
      .map((line) => line.split(",").slice(0, 6).join(","))
      .join("\n");
    expect(sixColumns.split("\n")[0]).toBe("series_id,arm,ts,units,sum,sum_sq");
    await writeFile(join(v1, "signal_points.csv"), sixColumns);

    const third = await createTestApi();
    try {
      const url = await listen(third);
      const imported = await cli(["--json", "import", "--from", v1], third, url);
      expect(imported.stderr).toBe("");
      expect(imported.code).toBe(0);
      const exported = async (api: TestApi) =>
        JSON.stringify(
          (await api.app.inject({ method: "GET", url: "/v1/export/analyses", headers: api.auth })).json(),
        ).replaceAll(api.seed.workspaceId, "<workspace>");
      expect(await exported(third)).toBe(await exported(source));
      // The points came in without a covariate or a denominator.
      const csv = (await third.app.inject({ method: "GET", url: "/v1/export/signal_points", headers: third.auth })).body
        .trim()
        .split("\n");
      expect(csv).toHaveLength(1303);
      expect(csv.slice(1).every((line) => line.endsWith(",,,,,,"))).toBe(true);
    } finally {
      await third.close();
    }
  });

  it("refuses a workspace that already has outcomes, and a manifest version it cannot read", async () => {
    const out = join(dir, "backup");
    // The target now holds the import.
    const twice = await cli(["import", "--from", out], target, urls.target);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("error[conflict]: import needs an empty workspace");

    const tampered = join(dir, "tampered");
    await cp(out, tampered, { recursive: true });
    const manifest = JSON.parse(await readFile(join(tampered, "manifest.json"), "utf8"));
    await writeFile(join(tampered, "manifest.json"), JSON.stringify({ ...manifest, version: 3 }));
    const refused = await cli(["import", "--from", tampered], target, urls.target);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("export format version 3 cannot be read; this CLI reads versions 1 and 2");
    // The API refuses it too, whatever the client.
    const api = await target.app.inject({
      method: "POST",
      url: "/v1/import/begin",
      headers: target.auth,
      payload: { ...manifest, version: 3 },
    });
    expect(api.statusCode).toBe(400);
    expect(api.json()).toMatchObject({ code: "validation_failed" });
    expect(api.json().detail).toContain("version 3 cannot be read");

    const notExport = await cli(["import", "--from", dir], target, urls.target);
    expect(notExport.code).toBe(1);
    expect(notExport.stderr).toContain("not an export (no manifest.json)");
  });

  it("is for admins only", async () => {
    const member = await source.seed.key("someone@acme.example", "member");
    for (const [method, url] of [
      ["GET", "/v1/export/manifest"],
      ["GET", "/v1/export/outcomes"],
      ["GET", "/v1/export/signal_points"],
    ] as const) {
      const response = await source.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${member.key}` },
      });
      expect(response.statusCode, url).toBe(403);
      expect(response.json(), url).toMatchObject({ code: "forbidden" });
    }
    const begin = await source.app.inject({
      method: "POST",
      url: "/v1/import/outcomes",
      headers: { authorization: `Bearer ${member.key}` },
      payload: [],
    });
    expect(begin.json()).toMatchObject({ code: "forbidden" });
  });
});

// ---------------------------------------------------------------------------
// Imports that try to write where they should not.

const MANIFEST_BASE = {
  format: "outcome-runtime-export",
  version: 1,
  exportedAt: "2026-12-01T00:00:00.000Z",
  workspace: { slug: "copy", name: "Copy", settings: {} },
  runtimeVersion: "test",
  excluded: [],
};

function manifestWith(counts: Partial<Record<string, number>>) {
  const zero = Object.fromEntries(EXPORT_TABLES.map((t) => [t, 0]));
  return { ...MANIFEST_BASE, counts: { ...zero, ...counts } };
}

/** A new, empty workspace in the source's database with an admin key (read, write, admin) of its own. */
async function emptyWorkspace(slug: string): Promise<{ id: string; auth: { authorization: string } }> {
  const ws = await workspaces.ensureWorkspace(source.t.db, slug, `Workspace ${slug}`);
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: ws.id },
    channel: "system",
    requestId: null,
  };
  const created = await createApiKey({ db: source.t.db }, operator, { name: `${slug}-admin`, role: "admin" });
  return { id: ws.id, auth: { authorization: `Bearer ${created.key}` } };
}

function post(auth: { authorization: string }, url: string, payload: unknown, contentType = "application/json") {
  return source.app.inject({
    method: "POST",
    url,
    headers: { ...auth, "content-type": contentType },
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
}

/** The rows of one exported table of the source's default workspace. */
async function sourceRows(table: string): Promise<Record<string, unknown>[]> {
  const response = await source.app.inject({ method: "GET", url: `/v1/export/${table}`, headers: source.auth });
  expect(response.statusCode).toBe(200);
  return response.json() as Record<string, unknown>[];
}

/** Every field of a refusal but the refused value, to compare two refusals. */
function refusalShape(response: Awaited<ReturnType<typeof post>>, value: string) {
  const body = response.json() as Record<string, unknown> & { errors?: { field: string; message: string }[] };
  const strip = (text: unknown) => String(text).replaceAll(value, "<id>");
  return {
    status: response.statusCode,
    keys: Object.keys(body).sort(),
    code: body.code,
    detail: strip(body.detail),
    details: strip(JSON.stringify(body.details)),
    errors: (body.errors ?? []).map((e) => ({ field: e.field, message: strip(e.message) })),
  };
}

async function countOf(workspaceId: string): Promise<Record<string, number>> {
  return transfer.countRows(source.t.db, workspaceId);
}

describe("import writes only into an empty workspace, inside an open import", () => {
  it("a key with write and admin cannot plant a back-dated gate.decided event or a running experiment in a live workspace", async () => {
    const [outcome] = await sourceRows("outcomes");
    const [experiment] = await sourceRows("experiments");
    const [gate] = await sourceRows("gates");
    const eventsBefore = (await sourceRows("audit_events")).length;
    const planted = {
      ...experiment,
      id: randomUUID(),
      key: "planted-running",
      title: "Planted",
      state: "running",
      outcome_id: outcome!.id,
      portfolio_gate_id: null,
      launched_at: "2020-01-01T00:00:00+00:00",
    };
    const backdated = {
      id: 1,
      workspace_id: source.seed.workspaceId,
      at: "2020-01-01T00:00:00+00:00",
      actor_id: "maya",
      actor_name: "maya.pm@acme.example",
      actor_role: "approver",
      channel: "email",
      action: "gate.decided",
      subject_type: "gate",
      subject_id: gate!.id,
      before: { status: "pending" },
      after: { status: "approved" },
      request_id: null,
    };
    // The attack as reported: no begin (which refuses a workspace with data), straight to the tables.
    for (const [table, rows] of [
      ["audit_events", [backdated]],
      ["experiments", [planted]],
    ] as const) {
      const refused = await post(source.auth, `/v1/import/${table}`, rows);
      expect(refused.statusCode, refused.body).toBe(409);
      expect(refused.json()).toMatchObject({ code: "conflict", details: { import: "not_open" } });
      expect(refused.json().detail).toContain("no import is open in this workspace");
    }
    const begin = await post(source.auth, "/v1/import/begin", manifestWith({}));
    expect(begin.statusCode).toBe(409);
    expect(begin.json().detail).toBe("import needs an empty workspace");
    // A refused begin opens nothing.
    expect((await post(source.auth, "/v1/import/experiments", [planted])).statusCode).toBe(409);
    // A key with read and admin but no write is stopped before all that.
    const auditor = await source.seed.key("auditor@acme.example", "admin");
    const readAdmin = await source.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: source.auth,
      payload: { name: "read-admin", role: "admin", scopes: ["read", "admin"] },
    });
    expect(auditor.key).toBeDefined();
    const noWrite = await post({ authorization: `Bearer ${readAdmin.json().key}` }, "/v1/import/audit_events", [
      backdated,
    ]);
    expect(noWrite.statusCode).toBe(403);
    expect(noWrite.json()).toMatchObject({ code: "forbidden", details: { missingScope: "write" } });

    expect(
      (await sourceRows("audit_events")).filter((e) => e.action === "gate.decided" && String(e.at).startsWith("2020")),
    ).toEqual([]);
    expect((await sourceRows("audit_events")).length).toBeGreaterThanOrEqual(eventsBefore);
    const lookup = await source.app.inject({
      method: "GET",
      url: `/v1/experiments/${planted.id}`,
      headers: source.auth,
    });
    expect(lookup.statusCode).toBe(404);
  });

  it("opens one import at a time, writes only while it is open, and closes it at finish", async () => {
    const ws = await emptyWorkspace("import-lifecycle");
    const [outcome] = await sourceRows("outcomes");
    const row = { ...outcome, id: randomUUID(), slug: "lifecycle" };
    expect((await post(ws.auth, "/v1/import/outcomes", [row])).statusCode).toBe(409);
    const manifest = manifestWith({ outcomes: 1 });
    expect((await post(ws.auth, "/v1/import/begin", manifest)).statusCode).toBe(200);
    const again = await post(ws.auth, "/v1/import/begin", manifest);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: "conflict", details: { import: "open" } });
    expect(again.json().detail).toContain("already open");
    const written = await post(ws.auth, "/v1/import/outcomes", [row]);
    expect(written.json()).toEqual({ table: "outcomes", received: 1, inserted: 1 });
    // Re-sending a table is harmless.
    expect((await post(ws.auth, "/v1/import/outcomes", [row])).json()).toEqual({
      table: "outcomes",
      received: 1,
      inserted: 0,
    });
    // Counts that do not match keep the import open...
    const short = await post(ws.auth, "/v1/import/finish", manifestWith({ outcomes: 2 }));
    expect(short.statusCode).toBe(409);
    expect(short.json().detail).toContain("outcomes has 1 rows, expected 2");
    // ...matching ones close it: nothing more can be written, and no new import can start.
    const finished = await post(ws.auth, "/v1/import/finish", manifest);
    expect(finished.statusCode, finished.body).toBe(200);
    expect(finished.json()).toMatchObject({ ok: true });
    const late = await post(ws.auth, "/v1/import/outcomes", [{ ...row, id: randomUUID(), slug: "late" }]);
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ code: "conflict", details: { import: "not_open" } });
    expect((await post(ws.auth, "/v1/import/finish", manifest)).statusCode).toBe(409);
    expect((await post(ws.auth, "/v1/import/begin", manifest)).json().detail).toBe("import needs an empty workspace");
    expect((await countOf(ws.id)).outcomes).toBe(1);
  });

  it("refuses another workspace's ids exactly as ids that exist nowhere, and writes nothing", async () => {
    const ws = await emptyWorkspace("import-foreign");
    expect((await post(ws.auth, "/v1/import/begin", manifestWith({}))).statusCode).toBe(200);
    const [outcome] = await sourceRows("outcomes");
    const [revision] = await sourceRows("outcome_revisions");
    const experiments = await sourceRows("experiments");
    const gates = await sourceRows("gates");
    const [series] = await sourceRows("signal_series");
    const [analysis] = await sourceRows("analyses");
    const [learning] = await sourceRows("learnings");
    // The workspace's own outcome, imported with a new id: rows may point at it.
    const own = { ...outcome, id: randomUUID(), slug: "foreign-own" };
    expect((await post(ws.auth, "/v1/import/outcomes", [own])).json()).toMatchObject({ inserted: 1 });

    const sourceExperiment = experiments.find((e) => e.id === learning!.experiment_id) ?? experiments[0]!;
    const sourceGate = gates.find((g) => g.id === learning!.gate_id) ?? gates[0]!;
    const cases: [table: string, field: string, make: (id: string) => Record<string, unknown>, foreign: string][] = [
      // A row's own id that is another workspace's row.
      ["outcomes", "id", (id) => ({ ...outcome, id, slug: `own-id-${id.slice(0, 8)}` }), String(outcome!.id)],
      [
        "outcome_revisions",
        "outcome_id",
        (id) => ({ ...revision, id: randomUUID(), outcome_id: id }),
        String(outcome!.id),
      ],
      [
        "experiments",
        "outcome_id",
        (id) => ({
          ...sourceExperiment,
          id: randomUUID(),
          key: `x-${randomUUID()}`,
          outcome_id: id,
          portfolio_gate_id: null,
        }),
        String(outcome!.id),
      ],
      [
        "gates",
        "experiment_id",
        (id) => ({ ...sourceGate, id: randomUUID(), outcome_id: own.id, experiment_id: id }),
        String(sourceExperiment.id),
      ],
      [
        "signal_series",
        "experiment_id",
        (id) => ({ ...series, id: randomUUID(), outcome_id: own.id, experiment_id: id }),
        String(series!.experiment_id),
      ],
      [
        "analyses",
        "experiment_id",
        (id) => ({ ...analysis, id: randomUUID(), experiment_id: id }),
        String(analysis!.experiment_id),
      ],
      [
        "learnings",
        "gate_id",
        (id) => ({ ...learning, id: randomUUID(), outcome_id: own.id, experiment_id: null, gate_id: id }),
        String(learning!.gate_id),
      ],
    ];
    for (const [table, field, make, foreign] of cases) {
      const nowhere = randomUUID();
      const toForeign = await post(ws.auth, `/v1/import/${table}`, [make(foreign)]);
      const toNowhere = await post(ws.auth, `/v1/import/${table}`, [make(nowhere)]);
      expect(toForeign.statusCode, `${table}.${field}: ${toForeign.body}`).toBe(400);
      expect(toForeign.json()).toMatchObject({
        code: "validation_failed",
        details: { table },
        errors: [{ field: `${table}[0].${field}` }],
      });
      if (field === "id") {
        // A fresh id is simply written; the refusal of a taken one reads like every other refused id.
        expect(toNowhere.statusCode).toBe(200);
        expect(toForeign.json().errors[0].message).toContain("cannot be imported into this workspace");
      } else {
        expect(refusalShape(toForeign, foreign), `${table}.${field}`).toEqual(refusalShape(toNowhere, nowhere));
      }
    }
    // The signal points of another workspace's series: the same, by CSV line.
    const csv = (seriesId: string) =>
      `series_id,arm,ts,units,sum,sum_sq\n${seriesId},control,2026-11-01T00:00:00.123+00:00,10,3,3\n`;
    const foreignSeries = String(series!.id);
    const nowhereSeries = randomUUID();
    const points = await post(ws.auth, "/v1/import/signal_points", csv(foreignSeries), "text/csv");
    const nowherePoints = await post(ws.auth, "/v1/import/signal_points", csv(nowhereSeries), "text/csv");
    expect(points.statusCode).toBe(400);
    expect(points.json().detail).toContain("signal_points.csv:2: series_id");
    expect(refusalShape(points, foreignSeries)).toEqual(refusalShape(nowherePoints, nowhereSeries));

    // Nothing of the refused requests was written: the own outcome and the fresh-id outcome only.
    const counts = await countOf(ws.id);
    expect(counts).toMatchObject({
      outcomes: 2,
      outcome_revisions: 0,
      experiments: 0,
      gates: 0,
      signal_series: 0,
      signal_points: 0,
      analyses: 0,
      learnings: 0,
    });
    // And the source's rows are untouched.
    expect((await countOf(source.seed.workspaceId)).outcomes).toBe(2);
  });

  it("answers a malformed row with 400 naming the table, the row and the column, and writes nothing", async () => {
    const ws = await emptyWorkspace("import-malformed");
    expect((await post(ws.auth, "/v1/import/begin", manifestWith({}))).statusCode).toBe(200);
    const [outcome] = await sourceRows("outcomes");
    const good = (slug: string) => ({ ...outcome, id: randomUUID(), slug });
    const { name: _name, ...nameless } = good("nameless") as Record<string, unknown>;
    const cases: [rows: unknown[], field: string, says: string][] = [
      [[good("a"), { ...good("b"), created_at: "yesterday" }], "outcomes[1].created_at", "ISO 8601"],
      [[{ ...good("c"), colour: "red" }], "outcomes[0].colour", "is not a column of outcomes"],
      [[nameless], "outcomes[0].name", "is required"],
      [[good("d"), 42], "outcomes[1]", "must be an object"],
      [[{ ...good("e"), id: "not-a-uuid" }], "outcomes[0].id", "must be a UUID"],
      [[{ ...good("f"), revision: "two" }], "outcomes[0].revision", "must be a 32-bit integer"],
      // Found by Postgres, then traced to the row and the column.
      [[good("g"), { ...good("h"), state: "exploded" }], "outcomes[1].state", "outcomes_state_check"],
      [[good("same"), good("same")], "outcomes[1].slug", "outcomes_workspace_slug_key"],
    ];
    for (const [rows, field, says] of cases) {
      const response = await post(ws.auth, "/v1/import/outcomes", rows);
      expect(response.statusCode, `${field}: ${response.body}`).toBe(400);
      const body = response.json();
      expect(body).toMatchObject({ code: "validation_failed", details: { table: "outcomes" } });
      expect(body.errors[0].field).toBe(field);
      expect(body.errors[0].message).toContain(says);
      expect(body.detail).toContain(field);
      expect(body.detail).toContain("nothing of outcomes was imported");
    }
    // Not an array; a NUL in a value (refused at the door, with its JSON path).
    const notArray = await post(ws.auth, "/v1/import/outcomes", { rows: [] });
    expect(notArray.statusCode).toBe(400);
    const nul = await post(ws.auth, "/v1/import/outcomes", [{ ...good("nul"), name: "a\u0000b" }]);
    expect(nul.statusCode).toBe(400);
    expect(nul.json().errors).toEqual([{ field: "body.0.name", message: expect.stringContaining("NUL") }]);
    // Malformed CSV lines name the line and the column.
    for (const [line, column] of [
      ["not-a-uuid,control,2026-11-01T00:00:00+00:00,1,1,1", "series_id"],
      [`${randomUUID()},control,yesterday,1,1,1`, "ts"],
      [`${randomUUID()},control,2026-11-01T00:00:00+00:00,-1,1,1`, "units"],
      [`${randomUUID()},a\u0000b,2026-11-01T00:00:00+00:00,1,1,1`, "arm"],
    ] as const) {
      const response = await post(
        ws.auth,
        "/v1/import/signal_points",
        `series_id,arm,ts,units,sum,sum_sq\n${line}\n`,
        "text/csv",
      );
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json()).toMatchObject({
        code: "validation_failed",
        errors: [{ field: `signal_points.csv:2.${column}` }],
      });
    }
    // The covariate columns are all filled or all empty.
    const partial = await post(
      ws.auth,
      "/v1/import/signal_points",
      `series_id,arm,ts,units,sum,sum_sq,cov_sum,cov_sum_sq,cov_sum_product\n${randomUUID()},control,2026-11-01T00:00:00+00:00,1,1,1,1,1,\n`,
      "text/csv",
    );
    expect(partial.statusCode, partial.body).toBe(400);
    expect(partial.json().errors).toEqual([
      { field: "signal_points.csv:2.cov_sum_product", message: expect.stringContaining("fill all of") },
    ]);
    // So are a ratio's denominator columns, whose den_sum_sq is ≥ 0.
    for (const [cells, field, message] of [
      ["1,1,", "num_den_sum", "fill all of den_sum, den_sum_sq, num_den_sum"],
      ["1,-1,1", "den_sum_sq", "must be a number ≥ 0"],
    ] as const) {
      const refused = await post(
        ws.auth,
        "/v1/import/signal_points",
        `series_id,arm,ts,units,sum,sum_sq,den_sum,den_sum_sq,num_den_sum\n${randomUUID()},control,2026-11-01T00:00:00+00:00,1,1,1,${cells}\n`,
        "text/csv",
      );
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json().errors).toEqual([
        { field: `signal_points.csv:2.${field}`, message: expect.stringContaining(message) },
      ]);
    }
    expect((await countOf(ws.id)).outcomes).toBe(0);
  });
});

describe("an interrupted import", () => {
  it("is refused a second begin and continued with --resume", async () => {
    const fresh = await createTestApi();
    try {
      const url = await listen(fresh);
      const out = join(dir, "backup");
      const manifest = JSON.parse(await readFile(join(out, "manifest.json"), "utf8"));
      const begin = await fresh.app.inject({
        method: "POST",
        url: "/v1/import/begin",
        headers: fresh.auth,
        payload: manifest,
      });
      expect(begin.statusCode).toBe(200);
      // The first table went in, then the client stopped.
      const outcomes = await fresh.app.inject({
        method: "POST",
        url: "/v1/import/outcomes",
        headers: { ...fresh.auth, "content-type": "application/json" },
        payload: await readFile(join(out, "outcomes.json"), "utf8"),
      });
      expect(outcomes.json()).toMatchObject({ table: "outcomes", inserted: manifest.counts.outcomes });

      const again = await cli(["import", "--from", out], fresh, url);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("error[conflict]: an import into this workspace is already open");
      const resumed = await cli(["--json", "import", "--from", out, "--resume"], fresh, url);
      expect(resumed.stderr).toBe("");
      expect(resumed.code).toBe(0);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ ok: true });
      const audit = (await get(fresh, "/v1/audit?limit=1000")) as { items: { action: string }[] };
      expect(audit.items.filter((e) => e.action === "workspace.imported")).toHaveLength(1);
    } finally {
      await fresh.close();
    }
  });
});
