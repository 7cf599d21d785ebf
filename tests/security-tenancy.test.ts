/**
 * Tenancy and forbidden paths (issue 9, security), through the public faces.
 *
 * Two workspaces, each with its own admin key, outcome, experiments, gates and
 * a learning. Workspace B's keys try every read and write on A's ids through
 * the REST API and MCP: each attempt is `not_found`, A's rows are unchanged,
 * and B's lists never show A's rows. Then hypotheses and build reports that
 * dress a forbidden path up (`..`, backslashes, case, `%2e%2e`) are refused.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import type { Principal } from "@outcome-runtime/core";
import { gateMail, members, workspaces } from "@outcome-runtime/db";
import { type Client, connectHttp } from "@outcome-runtime/mcp/test-support";
import {
  applyOutcome,
  type Caller,
  createApiKey,
  decideGate,
  hashDecisionToken,
  newDecisionToken,
  proposeExperiment,
  startMemberSession,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface World {
  outcomeId: string;
  slug: string;
  /** A pending portfolio gate, a decided one, an experiment in each of proposed, building and concluded. */
  proposedId: string;
  proposedKey: string;
  buildingId: string;
  concludedId: string;
  pendingGateId: string;
  decidedGateId: string;
}

let api: TestApi;
let endpoint: string;
const keys = { a: "", aAgent: "", b: "", bAgent: "" };
let a: World;
let b: World;
const clients: Client[] = [];

const hypothesis = (title: string, touchedPaths = ["apps/web/src/checkout/Summary.tsx"]) => ({
  title,
  statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout, because the flow is shorter.`,
  touchedPaths,
});

/** An outcome with experiments proposed, building and concluded (with a learning), and gates pending and decided. */
async function buildWorld(admin: Caller, slug: string, approver: Caller, agent: Caller): Promise<World> {
  const deps = { db: api.t.db };
  await applyOutcome(deps, admin, { source: outcomeVariant(slug) });
  const outcome = await transitionOutcome(deps, admin, slug, "activate", null);
  const concluded = await proposeExperiment(deps, admin, slug, hypothesis(`Show delivery date early ${slug}`));
  const building = await proposeExperiment(deps, admin, slug, hypothesis(`Guest checkout first ${slug}`));
  await decideGate(deps, approver, concluded.gate.id, { decision: "approve", reason: "worth a try" });
  const proposed = await proposeExperiment(deps, admin, slug, hypothesis(`Trust badges ${slug}`));
  const id = concluded.experiment.id;
  await transitionExperiment(deps, agent, id, { action: "claim" });
  const built = await transitionExperiment(deps, agent, id, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  await decideGate(deps, approver, built.openedGates[0]!.id, { decision: "approve" });
  const analysing = await transitionExperiment(deps, admin, id, { action: "analyse" });
  const decided = await decideGate(deps, approver, analysing.openedGates[0]!.id, { decision: "ship" });
  expect(decided.learningId).not.toBeNull();
  await transitionExperiment(deps, agent, building.experiment.id, { action: "claim" });
  return {
    outcomeId: outcome.id,
    slug,
    proposedId: proposed.experiment.id,
    proposedKey: proposed.experiment.key,
    buildingId: building.experiment.id,
    concludedId: id,
    pendingGateId: proposed.gate.id,
    decidedGateId: concluded.gate.id,
  };
}

/** A request with an API key, or (a token starting `ors_`) a member's dashboard session with its CSRF header. */
async function call(key: string, method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE", url: string, payload?: unknown) {
  const headers = key.startsWith("ors_")
    ? { cookie: `or_session=${key}; or_csrf=tenancy-csrf`, "x-csrf-token": "tenancy-csrf" }
    : { authorization: `Bearer ${key}` };
  const response = await api.app.inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return { status: response.statusCode, body: response.body, json: () => response.json() as Record<string, unknown> };
}

/** Everything A's admin can read about A, as text. */
async function snapshotOf(world: World, key: string): Promise<Record<string, string>> {
  const urls = [
    `/v1/outcomes/${world.outcomeId}`,
    `/v1/outcomes/${world.outcomeId}/experiments?limit=200`,
    `/v1/outcomes/${world.outcomeId}/revisions`,
    `/v1/gates?outcomeId=${world.outcomeId}&limit=200`,
    `/v1/experiments/${world.proposedId}`,
    `/v1/experiments/${world.buildingId}`,
    `/v1/experiments/${world.concludedId}`,
    `/v1/experiments/${world.concludedId}/analyses`,
    `/v1/gates/${world.pendingGateId}`,
    `/v1/gates/${world.decidedGateId}`,
    "/v1/gates?limit=200",
    "/v1/learnings",
    "/v1/workspace/settings",
    "/v1/audit?limit=500",
  ];
  const out: Record<string, string> = {};
  for (const url of urls) {
    const response = await call(key, "GET", url);
    expect(response.status, url).toBe(200);
    out[url] = response.body;
  }
  return out;
}

/** `text` with A's identifiers swapped for ones no workspace has (same shapes). */
function disguise(text: string): string {
  let out = text;
  for (const id of idsOf(a)) out = out.replaceAll(id, UNKNOWN_ID);
  return out.replaceAll(a.proposedKey, "trust-badges-nobody").replaceAll(a.slug, "tenancy-nobody");
}

/** A problem or tool-error text with the request id and every identifier (A's or the unknown ones) blanked. */
function comparable(text: string, asked: string): unknown {
  let out = text.replace(/"requestId":"[^"]*"/g, '"requestId":"-"');
  const words = [...idsOf(a), a.proposedKey, a.slug, UNKNOWN_ID, "trust-badges-nobody", "tenancy-nobody"];
  for (const word of words.sort((x, y) => y.length - x.length)) out = out.replaceAll(word, "<id>");
  return { asked: asked.length > 0, out };
}

const UNKNOWN_ID = randomUUID();

function idsOf(world: World): string[] {
  return [
    world.outcomeId,
    world.proposedId,
    world.buildingId,
    world.concludedId,
    world.pendingGateId,
    world.decidedGateId,
  ];
}

/** Every REST read and write on a world's ids and slug. */
function attemptsOn(a: World): [method: "GET" | "POST" | "PATCH", url: string, body?: unknown][] {
  return [
    ["GET", `/v1/outcomes/${a.outcomeId}`],
    ["GET", `/v1/outcomes/${a.slug}`],
    ["GET", `/v1/outcomes/${a.outcomeId}/series`],
    ["GET", `/v1/outcomes/${a.outcomeId}/experiments`],
    ["GET", `/v1/outcomes/${a.slug}/experiments?limit=1`],
    ["GET", `/v1/outcomes/${a.outcomeId}/revisions`],
    ["GET", `/v1/outcomes/${a.slug}/revisions`],
    ["POST", `/v1/outcomes/${a.outcomeId}/activate`, {}],
    ["POST", `/v1/outcomes/${a.slug}/abandon`, { reason: "cross-workspace" }],
    ["POST", `/v1/outcomes/${a.outcomeId}/experiments`, hypothesis("Cross workspace plant")],
    ["POST", `/v1/outcomes/${a.slug}/experiments`, hypothesis("Cross workspace plant")],
    ["GET", `/v1/experiments/${a.proposedId}`],
    ["GET", `/v1/experiments/${a.proposedKey}`],
    ["GET", `/v1/experiments/${a.concludedId}/brief`],
    ["GET", `/v1/experiments/${a.concludedId}/analyses`],
    ["POST", `/v1/experiments/${a.concludedId}/poll`, {}],
    ["POST", `/v1/experiments/${a.buildingId}/transitions`, { action: "release" }],
    ["POST", `/v1/experiments/${a.buildingId}/transitions`, { action: "pause", reason: "x" }],
    ["POST", `/v1/experiments/${a.proposedKey}/transitions`, { action: "claim" }],
    ["POST", `/v1/experiments/${a.concludedId}/transitions`, { action: "analyse" }],
    [
      "POST",
      `/v1/experiments/${a.buildingId}/transitions`,
      { action: "report_built", changedPaths: ["a.ts"], build: { summary: "x" } },
    ],
    ["GET", `/v1/gates/${a.pendingGateId}`],
    ["GET", `/v1/gates/${a.decidedGateId}`],
    ["POST", `/v1/gates/${a.pendingGateId}/decision`, { decision: "approve", reason: "cross-workspace" }],
    ["POST", `/v1/gates/${a.pendingGateId}/decision`, { decision: "reject" }],
  ];
}

beforeAll(async () => {
  api = await createTestApi();
  const deps = { db: api.t.db };
  // Workspace A: the default one, bootstrapped with its admin key.
  keys.a = api.seed.adminKey;
  const aApprover = await api.seed.key("maya.pm@acme.example", "approver");
  const aAgent = await api.seed.key("claude-code", "agent");
  keys.aAgent = aAgent.key;
  a = await buildWorld(api.seed.admin, "tenancy-alpha", aApprover.caller, aAgent.caller);

  // Workspace B: created by an operator, with an admin key of its own.
  const ws = await workspaces.ensureWorkspace(api.t.db, "beta", "Beta workspace");
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: ws.id } satisfies Principal,
    channel: "system",
    requestId: null,
  };
  const bAdmin = await createApiKey(deps, operator, { name: "beta-admin", role: "admin" });
  keys.b = bAdmin.key;
  const bCaller = (id: string, name: string, role: Principal["role"]): Caller => ({
    principal: { id, name, role, workspaceId: ws.id },
    channel: "api",
    requestId: null,
  });
  const admin = bCaller(bAdmin.id, "beta-admin", "admin");
  const approver = await createApiKey(deps, admin, { name: "lead@acme.example", role: "approver" });
  const agent = await createApiKey(deps, admin, { name: "claude-code", role: "agent" });
  keys.bAgent = agent.key;
  b = await buildWorld(
    admin,
    "tenancy-beta",
    bCaller(approver.id, "lead@acme.example", "approver"),
    bCaller(agent.id, "claude-code", "agent"),
  );

  await api.app.listen({ port: 0, host: "127.0.0.1" });
  endpoint = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
  await api?.close();
});

describe("tenancy: workspace B cannot reach workspace A", () => {
  it("every REST read and write on A's ids and slug is not_found, and A's rows do not change", async () => {
    const before = await snapshotOf(a, keys.a);
    const attempts = attemptsOn(a);
    for (const [method, url, body] of attempts) {
      const response = await call(keys.b, method, url, body);
      expect(`${method} ${url} → ${response.status}`).toBe(`${method} ${url} → 404`);
      expect(response.json().code, `${method} ${url}`).toBe("not_found");
      // No existence oracle: the answer is the one for an id nobody has.
      const unknown = await call(keys.b, method, disguise(url), body);
      expect(comparable(response.body, url), `${method} ${url}`).toEqual(comparable(unknown.body, disguise(url)));
    }
    // B changes its own settings: A's stay as they were.
    const patched = await call(keys.b, "PATCH", "/v1/workspace/settings", { sessionRequiredDecisions: ["ship"] });
    expect(patched.status).toBe(200);
    expect(await snapshotOf(a, keys.a)).toEqual(before);
  });

  it("B's lists, searches, audit and export never show A's rows", async () => {
    const aIds = idsOf(a);
    const urls = [
      "/v1/outcomes?limit=200",
      "/v1/gates?limit=200",
      "/v1/gates?state=pending&limit=200",
      `/v1/gates?outcomeId=${a.outcomeId}&limit=200`,
      "/v1/learnings",
      "/v1/learnings?q=delivery%20date",
      `/v1/learnings?q=${a.slug}`,
      "/v1/audit?limit=500",
      "/v1/workspace/settings",
      "/v1/export/manifest",
      "/v1/export/outcomes",
      "/v1/export/experiments",
      "/v1/export/gates",
      "/v1/export/learnings",
      "/v1/export/audit_events",
    ];
    for (const url of urls) {
      const response = await call(keys.b, "GET", url);
      if (response.status === 404 && url.startsWith("/v1/export/") && url !== "/v1/export/manifest") continue;
      expect(response.status, url).toBe(200);
      for (const id of aIds) expect(response.body, `${url} shows ${id}`).not.toContain(id);
      expect(response.body, url).not.toContain(a.slug);
    }
    // And B does see its own rows there (the lists are not simply empty).
    expect((await call(keys.b, "GET", "/v1/outcomes?limit=200")).body).toContain(b.outcomeId);
    expect((await call(keys.b, "GET", "/v1/learnings")).body).toContain(b.concludedId);
    // The same holds the other way round.
    expect((await call(keys.a, "GET", "/v1/outcomes?limit=200")).body).not.toContain(b.outcomeId);
    expect((await call(keys.a, "GET", `/v1/gates/${b.pendingGateId}`)).status).toBe(404);
  });

  it("through MCP with B's agent key, every tool and resource on A's ids is not_found, and A does not change", async () => {
    const before = await snapshotOf(a, keys.a);
    const client = await connectHttp(endpoint, keys.bAgent);
    clients.push(client);
    const tools: [string, Record<string, unknown>][] = [
      ["get_experiment_brief", { experiment_id: a.proposedId }],
      ["get_experiment_brief", { experiment_id: a.proposedKey }],
      ["get_experiment_status", { experiment_id: a.concludedId }],
      ["claim_experiment", { experiment_id: a.buildingId }],
      [
        "report_experiment_built",
        { experiment_id: a.buildingId, summary: "built elsewhere", changed_paths: ["apps/web/src/checkout/x.ts"] },
      ],
      ["request_human_gate", { experiment_id: a.buildingId, question: "May I touch payments?" }],
      ["get_gate_status", { gate_id: a.pendingGateId }],
      ["get_gate_status", { gate_id: a.decidedGateId }],
    ];
    for (const [name, args] of tools) {
      const result = await client.callTool({ name, arguments: args });
      expect(result.isError, name).toBe(true);
      const text = (result.content as { text: string }[])[0]!.text;
      expect(JSON.parse(text), name).toMatchObject({ error: { code: "not_found" } });
      const asked = JSON.stringify(args);
      const unknown = await client.callTool({ name, arguments: JSON.parse(disguise(asked)) });
      expect(comparable(text, asked), name).toEqual(
        comparable((unknown.content as { text: string }[])[0]!.text, disguise(asked)),
      );
    }
    const outcomes = await client.callTool({ name: "get_active_outcomes", arguments: {} });
    const listed = JSON.stringify(outcomes.structuredContent);
    expect(listed).toContain(b.slug);
    expect(listed).not.toContain(a.slug);
    const learned = await client.callTool({ name: "query_learnings", arguments: { query: "delivery date early" } });
    for (const id of idsOf(a)) expect(JSON.stringify(learned.structuredContent)).not.toContain(id);
    expect(JSON.stringify(learned.structuredContent)).not.toContain(a.slug);

    for (const uri of [`experiment://${a.proposedId}/brief`, `outcome://${a.outcomeId}`, `outcome://${a.slug}`]) {
      const read = await client.readResource({ uri }).then(
        (r) => JSON.stringify(r),
        (error: unknown) => `error: ${error instanceof Error ? error.message : String(error)}`,
      );
      expect(read, uri).toMatch(/^error: .*(not.found|no experiment|no outcome)/is);
    }
    const { resources } = await client.listResources();
    expect(JSON.stringify(resources)).not.toContain(a.outcomeId);
    expect(await snapshotOf(a, keys.a)).toEqual(before);
  });
  it("an email decision link issued for A's gate cannot decide B's gate (gate id swapped, token valid)", async () => {
    const recipient = "maya.pm@acme.example";
    const token = newDecisionToken();
    const now = new Date();
    await gateMail.insertTokens(api.t.db, [
      {
        workspaceId: api.seed.workspaceId,
        gateId: a.pendingGateId,
        notificationId: null,
        recipient,
        decision: "approve",
        tokenHash: hashDecisionToken(token),
        expiresAt: new Date(now.getTime() + 24 * 3600 * 1000),
        at: now,
      },
    ]);
    const query = new URLSearchParams({ to: recipient, token }).toString();
    const gateOf = async (key: string, id: string) => (await call(key, "GET", `/v1/gates/${id}`)).json();
    const bBefore = await gateOf(keys.b, b.pendingGateId);
    // The token is good: on A's gate it opens the confirmation page.
    const own = await api.app.inject({ method: "GET", url: `/email/gates/${a.pendingGateId}/approve?${query}` });
    expect(own.statusCode).toBe(200);

    const swapped = `/email/gates/${b.pendingGateId}/approve?${query}`;
    const shown = await api.app.inject({ method: "GET", url: swapped });
    const posted = await api.app.inject({
      method: "POST",
      url: swapped,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "reason=cross-workspace",
    });
    for (const response of [shown, posted]) {
      expect(response.statusCode).toBe(404);
      expect(response.body).toContain("This link is not valid");
      expect(response.body).not.toContain(b.slug);
    }
    // Nothing changed: B's gate is as it was, A's is still pending, and the token is unused.
    expect(await gateOf(keys.b, b.pendingGateId)).toEqual(bBefore);
    expect(await gateOf(keys.a, a.pendingGateId)).toMatchObject({ gate: { status: "pending" } });
    const tokens = await gateMail.listTokensOfGate(api.t.db, a.pendingGateId);
    expect(tokens.map((t) => [t.usedAt, t.revokedAt])).toEqual([[null, null]]);
    expect(await gateMail.listTokensOfGate(api.t.db, b.pendingGateId)).toEqual([]);
  });
});

describe("tenancy with members' sessions, across three workspaces", () => {
  /** A member's session in `workspaceId` (what signing in by email link or single sign-on starts). */
  async function sessionOf(email: string, memberships: [workspaceId: string, role: "admin" | "approver"][]) {
    const { member } = await members.ensureMember(api.t.db, { email, createdBy: "test" });
    for (const [workspaceId, role] of memberships) {
      await members.insertMembership(api.t.db, {
        workspaceId,
        memberId: member.id,
        role,
        addedBy: "test",
        at: new Date(),
      });
    }
    const first = memberships[0]?.[0] ?? null;
    return (await startMemberSession({ db: api.t.db }, member.id, first)).token;
  }

  it("a session in B, and the same member's session switched to a third workspace C, reach none of A; the switcher refuses A", async () => {
    const bId = (await workspaces.findWorkspaceBySlug(api.t.db, "beta"))?.id ?? "";
    const c = await workspaces.ensureWorkspace(api.t.db, "gamma", "Gamma workspace");
    const bob = await sessionOf("bob@beta.example", [
      [bId, "admin"],
      [c.id, "approver"],
    ]);
    const before = await snapshotOf(a, keys.a);
    for (const where of ["B", "C"] as const) {
      if (where === "C") expect((await call(bob, "PUT", "/session/workspace", { workspaceId: c.id })).status).toBe(204);
      for (const [method, url, body] of attemptsOn(a)) {
        const response = await call(bob, method, url, body);
        expect(`${where}: ${method} ${url} → ${response.status}`).toBe(`${where}: ${method} ${url} → 404`);
        const unknown = await call(bob, method, disguise(url), body);
        expect(comparable(response.body, url)).toEqual(comparable(unknown.body, disguise(url)));
      }
      const listed = await call(bob, "GET", "/v1/outcomes?limit=200");
      expect(listed.status).toBe(200);
      expect(listed.body).not.toContain(a.outcomeId);
    }
    // In C, B's own rows are out of reach too: a request is scoped to the session's one workspace.
    expect((await call(bob, "GET", `/v1/outcomes/${b.outcomeId}`)).status).toBe(404);
    expect((await call(bob, "GET", "/v1/outcomes?limit=200")).body).not.toContain(b.outcomeId);
    // Switching into A, where bob is no member, is refused, and the session stays in C.
    const refused = await call(bob, "PUT", "/session/workspace", { workspaceId: api.seed.workspaceId });
    expect(refused.status).toBe(404);
    expect((await call(bob, "GET", "/session")).json()).toMatchObject({ workspace: { id: c.id } });
    // Back in B, B's rows are there.
    expect((await call(bob, "PUT", "/session/workspace", { workspaceId: bId })).status).toBe(204);
    expect((await call(bob, "GET", "/v1/outcomes?limit=200")).body).toContain(b.outcomeId);
    expect(await snapshotOf(a, keys.a)).toEqual(before);
  });

  it("A's admin session cannot manage B's members or invite into B", async () => {
    const ada = await sessionOf("ada@alpha.example", [[api.seed.workspaceId, "admin"]]);
    const bId = (await workspaces.findWorkspaceBySlug(api.t.db, "beta"))?.id ?? "";
    const bob = await members.findMemberByEmail(api.t.db, "bob@beta.example");
    const removed = await call(ada, "DELETE", `/v1/members/${bob?.id}`);
    expect(removed.status).toBe(404);
    const listed = await call(ada, "GET", "/v1/members");
    expect(listed.body).not.toContain("bob@beta.example");
    expect(await members.findMembership(api.t.db, bId, bob?.id ?? "")).not.toBeNull();
  });
});

describe("forbidden paths through the API", () => {
  const tricks = [
    "apps/web/src/checkout/../payments/Charge.ts",
    "./apps/web/src/payments/Charge.ts",
    "apps//web/src/payments/Charge.ts",
    "apps\\web\\src\\payments\\Charge.ts",
    "Apps/Web/Src/Payments/Charge.ts",
    "apps/web/src/checkout/%2e%2e/payments/Charge.ts",
    "/apps/web/src/payments/Charge.ts",
    "services/billing/",
  ];

  it.each(tricks)("refuses a hypothesis touching %s with forbidden_paths_touched", async (path) => {
    const response = await call(
      keys.a,
      "POST",
      `/v1/outcomes/${a.outcomeId}/experiments`,
      hypothesis("Sneak into payments", ["apps/web/src/checkout/Cart.tsx", path]),
    );
    expect(response.status).toBe(422);
    expect(response.json()).toMatchObject({ code: "forbidden_paths_touched" });
    expect(response.json()).toMatchObject({ details: { paths: [path] } });
    const listed = await call(keys.a, "GET", `/v1/outcomes/${a.outcomeId}/experiments?limit=200`);
    expect(listed.body).not.toContain("Sneak into payments");
  });

  it("refuses a build report whose changed paths hide a forbidden path, through REST and MCP, and the experiment stays building", async () => {
    for (const path of tricks) {
      const response = await call(keys.a, "POST", `/v1/experiments/${a.buildingId}/transitions`, {
        action: "report_built",
        changedPaths: ["apps/web/src/checkout/Cart.tsx", path],
        build: { summary: "checkout tweak" },
      });
      expect(response.status, path).toBe(422);
      expect(response.json(), path).toMatchObject({ code: "forbidden_paths_touched" });
    }
    const client = await connectHttp(endpoint, keys.aAgent);
    clients.push(client);
    for (const path of tricks) {
      const result = await client.callTool({
        name: "report_experiment_built",
        arguments: {
          experiment_id: a.buildingId,
          summary: "checkout tweak",
          changed_paths: ["apps/web/src/checkout/Cart.tsx", path],
        },
      });
      expect(result.isError, path).toBe(true);
      expect(JSON.parse((result.content as { text: string }[])[0]!.text), path).toMatchObject({
        error: { code: "forbidden_paths_touched" },
      });
    }
    const experiment = await call(keys.a, "GET", `/v1/experiments/${a.buildingId}`);
    expect(experiment.json()).toMatchObject({ experiment: { state: "building" } });
  });
});
