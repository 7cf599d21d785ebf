/**
 * Backup and leaving: a rich workspace exported through the CLI (a real
 * process against a real API) and imported into a fresh database behind a
 * second API answers every outcome, experiment and gate request exactly as
 * the first one does.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import { signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  decideGate,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
  updateWorkspaceSettings,
} from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
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
    })),
  );
  await signals.upsertPoints(api.t.db, series, points, new Date());
  await signals.insertAnalysis(api.t.db, {
    workspaceId: api.seed.workspaceId,
    experimentId: id,
    ts: new Date(start + 649 * 3_600_000),
    arms: { control: { units: 749, mean: 0.31 }, treatment: { units: 749, mean: 0.34 } },
    effect: 0.03,
    ciLow: 0.004,
    ciHigh: 0.056,
    relativeEffect: 0.0967741935483871,
    pValue: 0.012,
    srmPValue: 0.93,
    guardrails: [],
    decision: { action: "ship", reason: "significant", detail: "the effect is significant at alpha 0.05" },
    details: { method: "msprt" },
  });

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
    const detail = (await read(`/v1/outcomes/${outcome.id}`)) as { gates: { id: string }[] };
    for (const g of detail.gates) gateIds.add(g.id);
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
      version: 1,
      workspace: { slug: "default", settings: { sessionRequiredDecisions: ["resume", "ship"] } },
      counts: {
        outcomes: 2,
        outcome_revisions: 3,
        experiments: 3,
        signal_series: 1,
        signal_points: 1300,
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
    expect(csv[0]).toBe("series_id,arm,ts,units,sum,sum_sq");
    expect(csv).toHaveLength(1301);

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
    for (const table of [
      "outcomes",
      "outcome_revisions",
      "experiments",
      "gates",
      "signal_series",
      "analyses",
      "learnings",
    ]) {
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

  it("refuses a workspace that already has outcomes, and a manifest version it cannot read", async () => {
    const out = join(dir, "backup");
    // The target now holds the import.
    const twice = await cli(["import", "--from", out], target, urls.target);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("error[conflict]: import needs an empty workspace");

    const tampered = join(dir, "tampered");
    await cp(out, tampered, { recursive: true });
    const manifest = JSON.parse(await readFile(join(tampered, "manifest.json"), "utf8"));
    await writeFile(join(tampered, "manifest.json"), JSON.stringify({ ...manifest, version: 2 }));
    const refused = await cli(["import", "--from", tampered], target, urls.target);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("export format version 2 cannot be read; this CLI reads version 1");
    // The API refuses it too, whatever the client.
    const api = await target.app.inject({
      method: "POST",
      url: "/v1/import/begin",
      headers: target.auth,
      payload: { ...manifest, version: 2 },
    });
    expect(api.statusCode).toBe(400);
    expect(api.json()).toMatchObject({ code: "validation_failed" });
    expect(api.json().detail).toContain("version 2 cannot be read");

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
