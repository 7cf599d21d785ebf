/**
 * The permissions table (packages/core/src/permissions.ts), walked through
 * every face: for every operation and every principal (the five roles with the
 * scopes their keys get by default, keys holding fewer scopes, and a member's
 * dashboard session of each person's role on the REST face), the REST
 * API, the MCP tools and resources, and the CLI (a real process, for every
 * operation it offers, with the five roles and a read-only key) give the
 * table's answer. That answer is either a refusal naming the operation that
 * refuses (`details.operation`: the operation itself, the one a qualifier
 * widens, or the qualifier), or no refusal at all: the call reaches the use
 * case, which may still answer `not_found`, a validation error, or succeed.
 *
 * Calls that the table lets through are made harmless where they can be (an
 * id nobody has, an invalid body the use case refuses after authorizing);
 * those that must succeed to show a qualifier (an admin deciding a gate
 * assigned to others) each take a fresh object from a pool built up front.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import {
  type ApiKeyScope,
  memberSessionScopes,
  OPERATIONS,
  type Operation,
  permissionOf,
  type Role,
  refusalOf,
  roleMay,
  type ScopedActor,
} from "@outcome-runtime/core";
import { gates, members } from "@outcome-runtime/db";
import { type Client, connectHttp, toolErrorOf } from "@outcome-runtime/mcp/test-support";
import {
  applyOutcome,
  createApiKey,
  decideGate,
  MEMBER_ROLES,
  proposeExperiment,
  requestHumanGate,
  startMemberSession,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "ort-permissions-"));

/** The answer of one face: the operation a refusal names, or null when the call got past the table. */
type Answer = string | null;

interface Who {
  readonly label: string;
  readonly key: string;
  readonly actor: ScopedActor;
  /** Also driven through the CLI (each call is a process: the roles, and one read-only key). */
  readonly cli: boolean;
}

interface Faces {
  readonly rest?: (who: Who) => Promise<Answer>;
  readonly mcp?: (who: Who) => Promise<Answer>;
  readonly cli?: (who: Who) => Promise<Answer>;
}

let api: TestApi;
let url: string;
let endpoint: string;
const principals: Who[] = [];
const clients = new Map<string, Client>();
/** Objects a successful call uses up, one per call. */
const pool = { building: [] as string[], assignedGates: [] as string[], unassignedGates: [] as string[] };
/** An experiment of an abandoned outcome. */
let closedExperiment = "";
let exportDir = "";
let counter = 0;
const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const WORLD = "perm-world";
const OWNED = "perm-owned";
const CLOSED = "perm-closed";
const CHANGED = ["apps/web/src/checkout/Summary.tsx"];

function take(list: string[], what: string): string {
  const next = list.shift();
  if (next === undefined) throw new Error(`the pool of ${what} ran dry: make it bigger`);
  return next;
}

/** The table's answer for `actor` and `operation` (see the file's comment). */
function expected(actor: ScopedActor, operation: Operation): Answer {
  const within = permissionOf(operation).within;
  if (within !== undefined) return expected(actor, within) ?? (roleMay(actor.role, operation) ? null : operation);
  return refusalOf(actor, operation) === null ? null : operation;
}

/** Codes a refusal by role, scope or a per-object rule comes with: each must name its operation. */
const REFUSAL_CODES = new Set([
  "forbidden",
  "agents_cannot_decide",
  "gate_not_assignee",
  "not_claimant",
  "not_outcome_owner",
  "outcome_closed",
]);

/**
 * The answer of a refusal or error: the operation it names; null for any other
 * answer a call the table let through may get; a failure of ours (a 5xx, an
 * internal error) shows as itself, so it never passes for "let through".
 */
function answerOf(code: string | undefined, details: Record<string, unknown> | undefined): Answer {
  if (code === "internal_error" || code === "service_unavailable") return code;
  if (code === undefined || !REFUSAL_CODES.has(code)) return null;
  const operation = details?.operation;
  return typeof operation === "string" ? operation : `${code} naming no operation`;
}

// ---------------------------------------------------------------------------
// The faces

async function rest(who: Who, method: string, path: string, body?: unknown, contentType?: string): Promise<Answer> {
  const response = await api.app.inject({
    method: method as "GET",
    url: path,
    headers: {
      // A member's dashboard session (a token `ors_…`) sends its cookies and the CSRF header; a key, itself.
      ...(who.key.startsWith("ors_")
        ? { cookie: `or_session=${who.key}; or_csrf=matrix-csrf`, "x-csrf-token": "matrix-csrf" }
        : { authorization: `Bearer ${who.key}` }),
      ...(contentType ? { "content-type": contentType } : {}),
    },
    ...(body === undefined ? {} : { payload: body as string }),
  });
  if (response.statusCode >= 500) return `HTTP ${response.statusCode}`;
  if (response.statusCode !== 403 && response.statusCode !== 409) return null;
  const problem = response.json() as { code?: string; details?: Record<string, unknown> };
  // A 409 is a refusal only when a rule of the table answers it (an outcome that is over); else a state conflict.
  if (response.statusCode === 409)
    return problem.code === "outcome_closed" ? answerOf(problem.code, problem.details) : null;
  if (problem.details?.missingScope !== undefined) {
    expect(response.headers["www-authenticate"], `${method} ${path}`).toContain('error="insufficient_scope"');
  }
  return answerOf(problem.code, problem.details) ?? `403 ${problem.code}`;
}

async function mcpClient(who: Who): Promise<Client> {
  let client = clients.get(who.label);
  if (client === undefined) {
    client = await connectHttp(endpoint, who.key);
    clients.set(who.label, client);
  }
  return client;
}

async function tool(who: Who, name: string, args: Record<string, unknown>): Promise<Answer> {
  const result = await (await mcpClient(who)).callTool({ name, arguments: args });
  const error = toolErrorOf(result);
  return answerOf(error?.code, error?.details);
}

async function resource(who: Who, uri: string): Promise<Answer> {
  try {
    await (await mcpClient(who)).readResource({ uri });
    return null;
  } catch (error) {
    const data = (error as { data?: { code?: string; details?: Record<string, unknown> } }).data;
    return answerOf(data?.code, data?.details);
  }
}

async function cli(who: Who, args: string[], env: Record<string, string> = {}): Promise<Answer> {
  let failed: { stdout?: string; stderr?: string };
  try {
    await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", "--json", ...args], {
      cwd: root,
      env: { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: who.key, ...env },
      maxBuffer: 20 * 1024 * 1024,
    });
    return null;
  } catch (error) {
    failed = error as { stdout?: string; stderr?: string };
  }
  // Every failure of these commands is the API's answer (`{ ok: false, problem }`); anything else is ours.
  let problem: { status?: number; code?: string; details?: Record<string, unknown> } | undefined;
  try {
    problem = (JSON.parse(failed.stdout ?? "") as { problem?: typeof problem }).problem;
  } catch {
    problem = undefined;
  }
  if (problem === undefined) return `CLI failed: ${(failed.stdout || failed.stderr || "").slice(0, 300)}`;
  if ((problem.status ?? 0) >= 500) return `HTTP ${problem.status}`;
  return answerOf(problem.code, problem.details);
}

// ---------------------------------------------------------------------------
// What each operation is on each face

/** A new outcome file on disk (for the CLI) and as text. */
function outcomeFile(source: string): string {
  const file = join(dir, `outcome-${++counter}.yaml`);
  writeFileSync(file, source);
  return file;
}
const newOutcome = () => outcomeVariant(`perm-apply-${++counter}`);
const ownedRevision = () =>
  outcomeVariant(OWNED, [["name: Reduce checkout abandonment", `name: Perm owned revision ${++counter}`]]);
const yaml = "application/yaml";
const transition = (action: string, extra: Record<string, unknown> = {}) => JSON.stringify({ action, ...extra });
const json = "application/json";

const FACES: Record<Operation, Faces> = {
  "outcome.read": {
    rest: (w) => rest(w, "GET", "/v1/outcomes"),
    mcp: async (w) => (await tool(w, "get_active_outcomes", {})) ?? resource(w, `outcome://${UNKNOWN}`),
    cli: (w) => cli(w, ["status"]),
  },
  "outcome.validate": {
    rest: (w) => rest(w, "POST", "/v1/outcomes/validate", "id: nothing-else", yaml),
  },
  "outcome.draft": {
    rest: (w) =>
      rest(
        w,
        "POST",
        "/v1/outcomes/draft",
        JSON.stringify({ sentence: "Cut checkout abandonment from 68% to 60% in 6 weeks" }),
        json,
      ),
  },
  "outcome.apply": {
    rest: (w) => rest(w, "POST", "/v1/outcomes", newOutcome(), yaml),
    cli: (w) => cli(w, ["apply", outcomeFile(newOutcome())]),
  },
  "outcome.revise_any": {
    rest: (w) => rest(w, "POST", "/v1/outcomes", ownedRevision(), yaml),
    cli: (w) => cli(w, ["apply", outcomeFile(ownedRevision())]),
  },
  "outcome.activate": {
    rest: (w) => rest(w, "POST", `/v1/outcomes/${UNKNOWN}/activate`, "{}", json),
    cli: (w) => cli(w, ["activate", UNKNOWN]),
  },
  "outcome.abandon": {
    rest: (w) => rest(w, "POST", `/v1/outcomes/${UNKNOWN}/abandon`, JSON.stringify({ reason: "matrix" }), json),
  },
  "outcome.reopen": {
    rest: (w) => rest(w, "POST", `/v1/outcomes/${UNKNOWN}/reopen`, JSON.stringify({ reason: "matrix" }), json),
    cli: (w) => cli(w, ["reopen", UNKNOWN]),
  },
  "portfolio.generate": {
    rest: (w) => rest(w, "POST", `/v1/outcomes/${UNKNOWN}/hypotheses`, "{}", json),
  },
  "experiment.read": {
    rest: (w) => rest(w, "GET", `/v1/experiments/${UNKNOWN}`),
    mcp: async (w) =>
      (await tool(w, "get_experiment_status", { experiment_id: UNKNOWN })) ??
      (await tool(w, "get_experiment_brief", { experiment_id: UNKNOWN })) ??
      resource(w, `experiment://${UNKNOWN}/brief`),
    cli: (w) => cli(w, ["experiments", "show", UNKNOWN]),
  },
  "experiment.propose": {
    rest: (w) =>
      rest(
        w,
        "POST",
        `/v1/outcomes/${UNKNOWN}/experiments`,
        JSON.stringify({ title: "Matrix", statement: "If we do it, it moves." }),
        json,
      ),
  },
  "experiment.claim": {
    rest: (w) => rest(w, "POST", `/v1/experiments/${UNKNOWN}/transitions`, transition("claim"), json),
    mcp: (w) => tool(w, "claim_experiment", { experiment_id: UNKNOWN }),
    cli: (w) => cli(w, ["experiments", "claim", UNKNOWN]),
  },
  "experiment.release": {
    rest: (w) => rest(w, "POST", `/v1/experiments/${UNKNOWN}/transitions`, transition("release"), json),
  },
  "experiment.report_built": {
    rest: (w) =>
      rest(
        w,
        "POST",
        `/v1/experiments/${UNKNOWN}/transitions`,
        transition("report_built", { changedPaths: CHANGED }),
        json,
      ),
    mcp: (w) =>
      tool(w, "report_experiment_built", { experiment_id: UNKNOWN, summary: "matrix", changed_paths: CHANGED }),
    cli: (w) => cli(w, ["experiments", "built", UNKNOWN, "--changed", ...CHANGED]),
  },
  "experiment.report_built_any": {
    rest: (w) =>
      rest(
        w,
        "POST",
        `/v1/experiments/${take(pool.building, "claimed experiments")}/transitions`,
        transition("report_built", { changedPaths: CHANGED }),
        json,
      ),
    mcp: (w) =>
      tool(w, "report_experiment_built", {
        experiment_id: take(pool.building, "claimed experiments"),
        summary: "matrix",
        changed_paths: CHANGED,
      }),
    cli: (w) => cli(w, ["experiments", "built", take(pool.building, "claimed experiments"), "--changed", ...CHANGED]),
  },
  "experiment.pause": {
    rest: (w) => rest(w, "POST", `/v1/experiments/${UNKNOWN}/transitions`, transition("pause"), json),
  },
  "experiment.analyse": {
    rest: (w) => rest(w, "POST", `/v1/experiments/${UNKNOWN}/transitions`, transition("analyse"), json),
  },
  "experiment.move_under_closed_outcome": {
    // Only the worker moves an experiment of an outcome that is over; every key is refused.
    rest: (w) => rest(w, "POST", `/v1/experiments/${closedExperiment}/transitions`, transition("analyse"), json),
  },
  "experiment.poll": {
    rest: (w) => rest(w, "POST", `/v1/experiments/${UNKNOWN}/poll`, "{}", json),
  },
  "gate.read": {
    rest: async (w) => (await rest(w, "GET", "/v1/gates")) ?? rest(w, "GET", `/v1/gates/${UNKNOWN}`),
    mcp: (w) => tool(w, "get_gate_status", { gate_id: UNKNOWN }),
    cli: (w) => cli(w, ["gates", "list"]),
  },
  "gate.request": {
    mcp: (w) => tool(w, "request_human_gate", { experiment_id: UNKNOWN, question: "May I?" }),
  },
  "gate.decide": {
    rest: (w) => rest(w, "POST", `/v1/gates/${UNKNOWN}/decision`, JSON.stringify({ decision: "approve" }), json),
    cli: (w) => cli(w, ["gates", "approve", UNKNOWN]),
  },
  "gate.decide_any": {
    rest: (w) =>
      rest(
        w,
        "POST",
        `/v1/gates/${take(pool.assignedGates, "assigned gates")}/decision`,
        JSON.stringify({ decision: "approve" }),
        json,
      ),
    cli: (w) => cli(w, ["gates", "approve", take(pool.assignedGates, "assigned gates")]),
  },
  "gate.decide_unassigned": {
    rest: (w) =>
      rest(
        w,
        "POST",
        `/v1/gates/${take(pool.unassignedGates, "unassigned gates")}/decision`,
        JSON.stringify({ decision: "approve" }),
        json,
      ),
    cli: (w) => cli(w, ["gates", "approve", take(pool.unassignedGates, "unassigned gates")]),
  },
  "learning.read": {
    rest: (w) => rest(w, "GET", "/v1/learnings"),
    mcp: (w) => tool(w, "query_learnings", { query: "checkout" }),
  },
  "audit.read": {
    // The live stream is the same feed: its route names the same operation.
    rest: async (w) => (await rest(w, "GET", "/v1/audit")) ?? rest(w, "GET", "/v1/stream"),
  },
  "usage.read": {
    rest: (w) => rest(w, "GET", "/v1/usage/llm"),
  },
  "settings.read": {
    rest: (w) => rest(w, "GET", "/v1/workspace/settings"),
  },
  "settings.update": {
    rest: (w) => rest(w, "PATCH", "/v1/workspace/settings", JSON.stringify({ separationOfDuties: true }), json),
  },
  "secret.list": {
    rest: (w) => rest(w, "GET", "/v1/secrets"),
    cli: (w) => cli(w, ["secrets", "list"]),
  },
  "secret.set": {
    rest: (w) => rest(w, "PUT", "/v1/secrets/perm-matrix", JSON.stringify({ value: "s3cret" }), json),
    cli: (w) => cli(w, ["secrets", "set", "perm-matrix", "--from-env", "PERM_SECRET"], { PERM_SECRET: "s3cret" }),
  },
  "secret.delete": {
    rest: (w) => rest(w, "DELETE", "/v1/secrets/no-such-secret"),
    cli: (w) => cli(w, ["secrets", "delete", "no-such-secret"]),
  },
  "key.list": {
    rest: (w) => rest(w, "GET", "/v1/keys"),
    cli: (w) => cli(w, ["keys", "list"]),
  },
  "key.create": {
    // A blank name: the use case refuses it after authorizing, so nothing is created.
    rest: (w) => rest(w, "POST", "/v1/keys", JSON.stringify({ name: " ", role: "member" }), json),
    cli: (w) => cli(w, ["keys", "create", "--name", " ", "--role", "member"]),
  },
  "key.revoke": {
    rest: (w) => rest(w, "DELETE", `/v1/keys/${UNKNOWN}`),
    cli: (w) => cli(w, ["keys", "revoke", UNKNOWN]),
  },
  "member.list": {
    rest: (w) => rest(w, "GET", "/v1/members"),
    cli: (w) => cli(w, ["members", "list"]),
  },
  "member.invite": {
    // A malformed address: the use case refuses it after authorizing, so nobody is invited.
    rest: (w) =>
      rest(w, "POST", "/v1/members/invitations", JSON.stringify({ email: "not-an-address", role: "member" }), json),
    cli: (w) => cli(w, ["members", "invite", "not-an-address"]),
  },
  "member.manage": {
    rest: (w) => rest(w, "DELETE", `/v1/members/${UNKNOWN}`),
    cli: (w) => cli(w, ["members", "remove", UNKNOWN]),
  },
  "workspace.export": {
    rest: async (w) => (await rest(w, "GET", "/v1/export/manifest")) ?? rest(w, "GET", "/v1/export/outcomes"),
    cli: (w) => cli(w, ["export", "--out", join(dir, `export-${++counter}`)]),
  },
  "workspace.import": {
    // The workspace has data: an import the table lets through is refused as a conflict, changing nothing.
    rest: (w) =>
      rest(w, "POST", "/v1/import/begin", JSON.stringify({ format: "outcome-runtime-export", version: 1 }), json),
    cli: (w) => cli(w, ["import", "--from", exportDir]),
  },
};

// ---------------------------------------------------------------------------

async function key(name: string, role: Role, scopes?: ApiKeyScope[], cliToo = false): Promise<void> {
  const created = await createApiKey({ db: api.t.db }, api.seed.admin, { name, role, scopes });
  principals.push({
    label: `${role}${scopes ? `[${scopes.join(",")}]` : ""}`,
    key: created.key,
    actor: { id: created.id, name, role, scopes: created.scopes },
    cli: cliToo,
  });
}

beforeAll(async () => {
  api = await createTestApi();
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  const port = (api.app.server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
  endpoint = `${url}/mcp`;
  const admin = api.seed.admin;
  principals.push({ label: "admin", key: api.seed.adminKey, actor: admin.principal, cli: true });
  await key("member@acme.example", "member", undefined, true);
  await key("approver@acme.example", "approver", undefined, true);
  await key("viewer@acme.example", "viewer", undefined, true);
  await key("agent-bot", "agent", undefined, true);
  await key("reader@acme.example", "admin", ["read"], true);
  await key("ci@acme.example", "admin", ["read", "write"]);
  await key("auditor@acme.example", "admin", ["read", "admin"]);
  await key("ops@acme.example", "admin", ["write", "admin"]);
  await key("tv@acme.example", "member", ["read"]);
  await key("agent-reader", "agent", ["read"]);
  // Outcomes owned by someone who is none of the principals, and a pool of experiments under one of them.
  const deps = { db: api.t.db };
  await applyOutcome(deps, admin, { source: outcomeVariant(OWNED) });
  await applyOutcome(deps, admin, { source: outcomeVariant(WORLD) });
  await applyOutcome(deps, admin, { source: outcomeVariant(CLOSED) });
  await transitionOutcome(deps, admin, CLOSED, "activate", null);
  closedExperiment = (
    await proposeExperiment(deps, admin, CLOSED, { title: "Under a closed outcome", statement: "If closed, less." })
  ).experiment.id;
  await transitionOutcome(deps, admin, CLOSED, "abandon", "the matrix needs an outcome that is over");
  const world = await transitionOutcome(deps, admin, WORLD, "activate", null);
  const proposed = [];
  for (let i = 0; i < 100; i++) {
    proposed.push(
      await proposeExperiment(deps, admin, WORLD, { title: `Pool ${i}`, statement: `If pool ${i}, less.` }),
    );
  }
  await decideGate(deps, admin, proposed[0]!.gate.id, { decision: "approve" });
  for (const [i, p] of proposed.entries()) {
    const id = p.experiment.id;
    if (i < 40) {
      await transitionExperiment(deps, admin, id, { action: "claim", claimedBy: "other-builder" });
      pool.building.push(id);
    } else if (i < 70) {
      // Assigned as its launch approval: to the outcome's people, none of the principals.
      pool.assignedGates.push((await requestHumanGate(deps, admin, id, `Question ${i}?`)).gate.id);
    } else {
      // Gates without assignees come only from imports or older data: written through the repository.
      const gate = await gates.insertPendingGate(api.t.db, {
        workspaceId: world.workspaceId,
        outcomeId: world.id,
        experimentId: id,
        kind: "agent_request",
        assignees: [],
        backup: null,
        slaSeconds: 48 * 3600,
        createdAt: new Date(),
        context: { question: `Unassigned ${i}?` },
      });
      pool.unassignedGates.push(gate!.id);
    }
  }
  // People signed in to the dashboard: a member's session of each role, with the scopes of that role (made
  // after the outcomes: a workspace with members checks that the outcomes' gate people are members).
  // The people the outcomes name at their gates are members too, as a workspace with members requires.
  for (const email of ["maya.pm@acme.example", "eng.lead@acme.example", "lead@acme.example"]) {
    const { member } = await members.ensureMember(api.t.db, { email, createdBy: "matrix" });
    await members.insertMembership(api.t.db, {
      workspaceId: api.seed.workspaceId,
      memberId: member.id,
      role: "approver",
      addedBy: "matrix",
      at: new Date(),
    });
  }
  for (const role of MEMBER_ROLES) {
    const email = `${role}-session@acme.example`;
    const { member } = await members.ensureMember(api.t.db, { email, createdBy: "matrix" });
    await members.insertMembership(api.t.db, {
      workspaceId: api.seed.workspaceId,
      memberId: member.id,
      role,
      addedBy: "matrix",
      at: new Date(),
    });
    const { token } = await startMemberSession({ db: api.t.db }, member.id, api.seed.workspaceId);
    principals.push({
      label: `${role} session`,
      key: token,
      actor: { id: member.id, name: email, role, scopes: memberSessionScopes(role) },
      cli: false,
    });
  }

  exportDir = join(dir, "export-for-import");
  const exported = await cli(principals[0]!, ["export", "--out", exportDir]);
  expect(exported).toBeNull();
}, 120_000);

afterAll(async () => {
  for (const client of clients.values()) await client.close().catch(() => {});
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("every role × operation gets the table's answer on REST, MCP and the CLI", () => {
  for (const operation of OPERATIONS) {
    it(operation, async () => {
      const faces = FACES[operation];
      expect(faces.rest ?? faces.mcp, `${operation} is reachable through REST or MCP`).toBeDefined();
      const got: string[] = [];
      const want: string[] = [];
      const line = (face: string, who: Who, answer: Answer) => `${face} ${who.label}: ${answer ?? "let through"}`;
      for (const who of principals) {
        const answer = expected(who.actor, operation);
        for (const [face, call] of [
          ["REST", faces.rest],
          ["MCP", faces.mcp],
        ] as const) {
          // MCP authenticates with keys only: a member's session has the REST face (the dashboard's).
          if (call === undefined || (face === "MCP" && who.key.startsWith("ors_"))) continue;
          want.push(line(face, who, answer));
          got.push(line(face, who, await call(who)));
        }
      }
      const cliFace = faces.cli;
      if (cliFace !== undefined) {
        const cliPrincipals = principals.filter((p) => p.cli);
        const answers = await Promise.all(cliPrincipals.map((who) => cliFace(who)));
        cliPrincipals.forEach((who, i) => {
          want.push(line("CLI", who, expected(who.actor, operation)));
          got.push(line("CLI", who, answers[i] ?? null));
        });
      }
      expect(got).toEqual(want);
    }, 120_000);
  }
});

describe("a viewer", () => {
  it("is told on every face that it reads only, and which role to ask an admin for", async () => {
    const viewer = principals.find((p) => p.actor.role === "viewer");
    if (viewer === undefined) throw new Error("the matrix has no viewer key");
    const message = "a viewer reads only; ask an admin for the member role to claim an approved experiment to build it";
    expect(refusalOf(viewer.actor, "experiment.claim")?.message).toBe(message);

    const response = await api.app.inject({
      method: "POST",
      url: `/v1/experiments/${UNKNOWN}/transitions`,
      headers: { authorization: `Bearer ${viewer.key}`, "content-type": json },
      payload: transition("claim"),
    });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({
      code: "forbidden",
      detail: message,
      details: { role: "viewer", operation: "experiment.claim" },
    });

    const result = await (await mcpClient(viewer)).callTool({
      name: "claim_experiment",
      arguments: { experiment_id: UNKNOWN },
    });
    expect(toolErrorOf(result)).toMatchObject({ code: "forbidden", message });

    const failed = await run(
      process.execPath,
      ["--import", "tsx", "packages/cli/src/main.ts", "--json", "experiments", "claim", UNKNOWN],
      { cwd: root, env: { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: viewer.key } },
    ).then(
      () => null,
      (error: { stdout?: string }) =>
        JSON.parse(error.stdout ?? "") as { problem?: { code?: string; detail?: string } },
    );
    expect(failed?.problem).toMatchObject({ code: "forbidden", detail: message });
  });

  it("cannot be given a key that writes: the refusal names the scope and the role", async () => {
    const response = await api.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: { authorization: `Bearer ${api.seed.adminKey}`, "content-type": json },
      payload: JSON.stringify({ name: "wall@acme.example", role: "viewer", scopes: ["read", "write"] }),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({
      code: "validation_failed",
      detail:
        "a viewer key cannot have the write scope (a viewer key holds read only); a key with it needs --role member",
    });
  });
});
