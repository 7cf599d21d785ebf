/**
 * The MCP server driven by the SDK's Client over an in-memory transport, on
 * the real Postgres: every tool's answer and refusals, the resources, the
 * prompt, the audit of every call, and the size of the outputs.
 */
import { audit, learnings, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  argumentsDigest,
  type Caller,
  decideGate,
  type Experiment,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  analysisFixture,
  createTestDatabase,
  outcomeVariant,
  proportionArm,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMcpServer } from "./server";
import { type Client, connectInMemory, toolErrorOf } from "./test-support";

const PUBLIC_URL = "https://outcomes.acme.example";

let t: TestDatabase;
let seed: Seeded;
let claudeCaller: Caller;
let cursorCaller: Caller;
let claude: Client;
let cursor: Client;
const deps = () => ({ db: t.db });

/** Every tool call the tests made, with the caller's name, for the audit check at the end. */
const calls: { agent: string; tool: string; args: Record<string, unknown>; size: number; isError: boolean }[] = [];

interface CallResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content: { type: string; text?: string }[];
  _meta?: Record<string, unknown>;
}

async function call(client: Client, tool: string, args: Record<string, unknown>): Promise<CallResult> {
  const result = (await client.callTool({ name: tool, arguments: args })) as CallResult;
  calls.push({
    agent: client === claude ? "claude-code" : "cursor",
    tool,
    args,
    size: JSON.stringify(result).length,
    isError: result.isError === true,
  });
  return result;
}

/** The structured payload of a successful call (fails the test on a refusal, showing it). */
async function ok<T = Record<string, unknown>>(
  client: Client,
  tool: string,
  args: Record<string, unknown>,
): Promise<T> {
  const result = await call(client, tool, args);
  expect(result.isError, JSON.stringify(result.content)).not.toBe(true);
  expect(result.content[0]?.type).toBe("text");
  return result.structuredContent as T;
}

/** The refusal of a call that must fail, as `{ code, message, hint, details }`. */
async function refused(client: Client, tool: string, args: Record<string, unknown>) {
  const result = await call(client, tool, args);
  expect(result.isError).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  const error = toolErrorOf(result);
  expect(error).toBeDefined();
  // The text the model reads carries the same error.
  expect(JSON.parse(result.content[0]?.text ?? "{}")).toEqual({ error });
  return error!;
}

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  claudeCaller = { ...(await seed.key("claude-code", "agent")).caller, channel: "mcp" };
  cursorCaller = { ...(await seed.key("cursor", "agent")).caller, channel: "mcp" };
  claude = await connectInMemory(createMcpServer({ deps: deps(), caller: claudeCaller, publicUrl: PUBLIC_URL }));
  cursor = await connectInMemory(createMcpServer({ deps: deps(), caller: cursorCaller, publicUrl: `${PUBLIC_URL}/` }));
});

afterAll(async () => {
  await claude?.close();
  await cursor?.close();
  await t?.drop();
});

async function activeOutcome(slug: string): Promise<void> {
  await applyOutcome(deps(), seed.admin, { source: outcomeVariant(slug) });
  await transitionOutcome(deps(), seed.admin, slug, "activate", null);
}

async function propose(slug: string, title: string) {
  return proposeExperiment(deps(), seed.admin, slug, {
    title,
    statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout.`,
    mechanism: "less effort at the last step",
    touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
    measurementPlan: "checkout_abandonment_rate per arm, daily",
    rolloutPlan: "50/50 for two weeks",
  });
}

async function approvedExperiment(slug: string, title: string): Promise<Experiment> {
  await activeOutcome(slug);
  const p = await propose(slug, title);
  await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
  return p.experiment;
}

/** An experiment taken through claim, build and launch, with one analysis stored. */
async function runningExperiment(slug: string, title: string): Promise<Experiment> {
  const experiment = await approvedExperiment(slug, title);
  await transitionExperiment(deps(), seed.admin, experiment.id, { action: "claim", claimedBy: "claude-code" });
  const built = await transitionExperiment(deps(), seed.admin, experiment.id, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
    build: { summary: title, pullRequestUrl: "https://git.example/pr/1", flagKey: experiment.key },
  });
  await decideGate(deps(), seed.admin, built.openedGates[0]!.id, { decision: "approve" });
  await signals.insertAnalysis(
    t.db,
    analysisFixture(
      { workspaceId: seed.workspaceId, experimentId: experiment.id, ts: new Date() },
      {
        arms: { control: proportionArm(5200, 0.68), treatment: proportionArm(5150, 0.66) },
        effect: -0.02,
        ciLow: -0.035,
        ciHigh: -0.005,
        relativeLift: -0.0294,
        pValue: 0.012,
        srmPValue: 0.62,
        guardrails: [
          {
            metric: "payment_error_rate",
            arm: "treatment",
            verdict: "ok",
            harm: 0,
            harmCi: [0, 0],
            pValue: 1,
            margin: 0.1,
            relative: true,
          },
        ],
        decision: { action: "analyse", reason: "win", detail: "significant improvement" },
      },
    ),
  );
  return experiment;
}

describe("tools/list", () => {
  it("lists the eight tools, each with an output schema and all four annotations set", async () => {
    const { tools } = await claude.listTools();
    expect(tools.map((tool) => tool.name)).toEqual([
      "get_active_outcomes",
      "get_experiment_brief",
      "claim_experiment",
      "report_experiment_built",
      "get_experiment_status",
      "query_learnings",
      "request_human_gate",
      "get_gate_status",
    ]);
    for (const tool of tools) {
      expect(tool.outputSchema?.type).toBe("object");
      expect(tool.inputSchema.type).toBe("object");
      for (const hint of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const) {
        expect(typeof tool.annotations?.[hint], `${tool.name}.${hint}`).toBe("boolean");
      }
      expect(tool.annotations?.openWorldHint).toBe(false);
      expect(tool.annotations?.destructiveHint).toBe(false);
    }
    const readOnly = tools.filter((tool) => tool.annotations?.readOnlyHint).map((tool) => tool.name);
    expect(readOnly.sort()).toEqual([
      "get_active_outcomes",
      "get_experiment_brief",
      "get_experiment_status",
      "get_gate_status",
      "query_learnings",
    ]);
    const idempotent = tools.filter((tool) => tool.annotations?.idempotentHint).map((tool) => tool.name);
    expect(idempotent).not.toContain("report_experiment_built");
    expect(idempotent).toContain("claim_experiment");
    expect(idempotent).toContain("request_human_gate");
  });
});

describe("get_active_outcomes", () => {
  it("gives the signal, target, progress and experiment counts, paginated by cursor", async () => {
    await approvedExperiment("mcp-active-a", "Shorter form");
    await activeOutcome("mcp-active-b");
    await applyOutcome(deps(), seed.admin, { source: outcomeVariant("mcp-draft") });

    const first = await ok<{ outcomes: Record<string, unknown>[]; nextCursor: string | null }>(
      claude,
      "get_active_outcomes",
      { limit: 1 },
    );
    expect(first.outcomes).toHaveLength(1);
    expect(first.nextCursor).toEqual(expect.any(String));
    const all = await ok<{ outcomes: Record<string, unknown>[]; nextCursor: string | null }>(
      claude,
      "get_active_outcomes",
      {},
    );
    const slugs = all.outcomes.map((o) => o.slug);
    expect(slugs).toEqual(expect.arrayContaining(["mcp-active-a", "mcp-active-b"]));
    expect(slugs).not.toContain("mcp-draft");
    const a = all.outcomes.find((o) => o.slug === "mcp-active-a")!;
    expect(a).toMatchObject({
      metric: "checkout_abandonment_rate",
      metricKind: "proportion",
      experiments: { approved: 1 },
      pendingGates: 0,
      resource: `outcome://${a.id}`,
      progress: { baseline: 0.68 },
    });
    expect(a.target).toContain("decrease by 10 %");

    const next = await ok<{ outcomes: { id: string }[] }>(claude, "get_active_outcomes", {
      limit: 1,
      cursor: first.nextCursor,
    });
    expect(next.outcomes[0]?.id).not.toBe(first.outcomes[0]?.id);

    const bad = await refused(claude, "get_active_outcomes", { limit: 21 });
    expect(bad.code).toBe("validation_failed");
    expect(bad.message).toContain("limit");
  });
});

describe("get_experiment_brief", () => {
  it("gives the brief with paths, checklist and links, and refuses an unknown id", async () => {
    const experiment = await approvedExperiment("mcp-brief", "Express pay");
    const brief = await ok<Record<string, unknown>>(claude, "get_experiment_brief", { experiment_id: experiment.key });
    expect(brief).toMatchObject({
      experiment: {
        id: experiment.id,
        key: experiment.key,
        state: "approved",
        claimedBy: null,
        link: `${PUBLIC_URL}/experiments/${experiment.id}`,
      },
      outcome: { slug: "mcp-brief" },
      resource: `experiment://${experiment.id}/brief`,
    });
    expect(brief.forbiddenPaths).toContain("apps/web/src/payments/**");
    expect(brief.allowedPaths).toContain("apps/web/src/checkout/**");
    expect((brief.acceptance as string[]).length).toBeGreaterThan(0);
    expect(brief.next).toContain("claim_experiment");

    const missing = await refused(claude, "get_experiment_brief", { experiment_id: "no-such-experiment" });
    expect(missing.code).toBe("not_found");
    expect(missing.hint).toContain("get_active_outcomes");
  });
});

describe("claim_experiment and report_experiment_built", () => {
  it("claims once, names the holder to a second agent, refuses the wrong state and unknown ids", async () => {
    const experiment = await approvedExperiment("mcp-claim", "One page");
    const claimed = await ok<{ experiment: Record<string, unknown>; brief: string }>(claude, "claim_experiment", {
      experiment_id: experiment.id,
    });
    // The agent name defaults to the API key's name.
    expect(claimed.experiment).toMatchObject({ state: "building", claimedBy: "claude-code" });
    expect(claimed.brief).toBe(`experiment://${experiment.id}/brief`);
    // The same agent again: unchanged (idempotent).
    expect(await ok(claude, "claim_experiment", { experiment_id: experiment.key })).toMatchObject({
      experiment: { state: "building", claimedBy: "claude-code" },
    });

    const second = await refused(cursor, "claim_experiment", { experiment_id: experiment.id });
    expect(second.code).toBe("already_claimed");
    expect(second.message).toContain("claude-code");
    expect(second.details).toMatchObject({ claimedBy: "claude-code" });
    expect(second.hint).toContain("claude-code");

    const proposed = await propose("mcp-claim", "Not yet approved");
    const early = await refused(claude, "claim_experiment", { experiment_id: proposed.experiment.id });
    expect(early.code).toBe("illegal_transition");
    expect(early.hint).toContain("approved");

    expect((await refused(claude, "claim_experiment", { experiment_id: "nope" })).code).toBe("not_found");
    const invalid = await refused(claude, "claim_experiment", { experiment_id: "", extra: 1 });
    expect(invalid.code).toBe("validation_failed");
    expect(JSON.stringify(invalid.details)).toContain("experiment_id");
  });

  it("refuses forbidden paths with the paths listed and an audit event; then reports it built with a launch gate", async () => {
    const experiment = await approvedExperiment("mcp-report", "Autofill");
    // Not claimed yet: the wrong state.
    const unclaimed = await refused(claude, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "Autofill",
      changed_paths: ["apps/web/src/checkout/Address.tsx"],
    });
    expect(unclaimed.code).toBe("illegal_transition");

    await ok(claude, "claim_experiment", { experiment_id: experiment.id });
    const notMine = await refused(cursor, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "Autofill",
      changed_paths: ["apps/web/src/checkout/Address.tsx"],
    });
    expect(notMine.code).toBe("not_claimant");
    expect(notMine.message).toContain("claude-code");

    const forbidden = await refused(claude, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "Autofill, and a payments tweak",
      changed_paths: ["apps/web/src/checkout/Address.tsx", "apps/web/src/payments/Card.tsx", "db/migrate.sql"],
      pull_request_url: "https://git.example/pr/9",
      flag_key: experiment.key,
    });
    expect(forbidden.code).toBe("forbidden_paths_touched");
    expect(forbidden.details?.paths).toEqual(["apps/web/src/payments/Card.tsx", "db/migrate.sql"]);
    expect(forbidden.message).toContain("apps/web/src/payments/Card.tsx");
    expect(forbidden.hint).toContain("apps/web/src/payments/Card.tsx");
    const refusals = await audit.listAuditEvents(t.db, seed.workspaceId, {
      subjectId: experiment.id,
      action: "experiment.build_refused",
    });
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({
      channel: "mcp",
      actor: { name: "claude-code" },
      after: { forbiddenPaths: ["apps/web/src/payments/Card.tsx", "db/migrate.sql"] },
    });

    const built = await ok<{ experiment: Record<string, unknown>; launchGate: Record<string, unknown>; next: string }>(
      claude,
      "report_experiment_built",
      {
        experiment_id: experiment.id,
        summary: "Autofill of the address behind the flag",
        changed_paths: ["apps/web/src/checkout/Address.tsx"],
        pull_request_url: "https://git.example/pr/10",
        flag_key: experiment.key,
      },
    );
    expect(built.experiment).toMatchObject({ id: experiment.id, state: "built" });
    expect(built.launchGate).toMatchObject({
      kind: "launch_approval",
      status: "pending",
      experimentId: experiment.id,
      assignees: ["maya.pm@acme.example", "eng.lead@acme.example"],
      decision: null,
    });
    expect(built.launchGate.link).toBe(`${PUBLIC_URL}/gates/${built.launchGate.id}`);
    expect(built.next).toContain("get_experiment_status");

    // Not idempotent: a second report is refused, nothing changes.
    const again = await refused(claude, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "again",
      changed_paths: ["apps/web/src/checkout/Address.tsx"],
    });
    expect(again.code).toBe("illegal_transition");

    const status = await ok<Record<string, unknown>>(claude, "get_experiment_status", {
      experiment_id: experiment.key,
    });
    expect(status).toMatchObject({
      experiment: { state: "built", claimedBy: "claude-code", pullRequestUrl: "https://git.example/pr/10" },
      latestAnalysis: null,
      pendingGates: [{ id: built.launchGate.id, kind: "launch_approval", status: "pending" }],
    });
  });

  it("lets an agent that claimed under its own agent name report under it", async () => {
    const experiment = await approvedExperiment("mcp-agent-name", "Saved cards");
    await ok(cursor, "claim_experiment", { experiment_id: experiment.id, agent_name: "cursor-agent-2" });
    const withoutName = await refused(cursor, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "Saved cards",
      changed_paths: ["apps/web/src/checkout/Cards.tsx"],
    });
    expect(withoutName.code).toBe("not_claimant");
    expect(withoutName.hint).toContain("cursor-agent-2");
    const built = await ok<{ experiment: Record<string, unknown> }>(cursor, "report_experiment_built", {
      experiment_id: experiment.id,
      summary: "Saved cards",
      changed_paths: ["apps/web/src/checkout/Cards.tsx"],
      agent_name: "cursor-agent-2",
    });
    expect(built.experiment).toMatchObject({ state: "built", claimedBy: "cursor-agent-2" });
  });
});

describe("get_experiment_status", () => {
  it("shows the state, the latest analysis and the gates", async () => {
    const experiment = await runningExperiment("mcp-status", "Trust badges");
    const status = await ok<Record<string, unknown>>(claude, "get_experiment_status", { experiment_id: experiment.id });
    expect(status).toMatchObject({
      experiment: { id: experiment.id, state: "running", link: `${PUBLIC_URL}/experiments/${experiment.id}` },
      latestAnalysis: {
        effect: -0.02,
        ciLow: -0.035,
        ciHigh: -0.005,
        pValue: 0.012,
        srmPValue: 0.62,
        units: { control: 5200, treatment: 5150 },
        decision: { action: "analyse", reason: "win" },
        guardrails: [{ metric: "payment_error_rate", verdict: "ok" }],
      },
      pendingGates: [],
    });
    const decided = status.recentDecisions as { kind: string; status: string }[];
    expect(decided.map((g) => g.kind)).toContain("launch_approval");
    expect((await refused(claude, "get_experiment_status", { experiment_id: "nope" })).code).toBe("not_found");
  });
});

describe("query_learnings", () => {
  it("returns ranked learnings with effects and links, from an analysis review decided ship", async () => {
    const experiment = await runningExperiment("mcp-learn", "Delivery date early");
    const analysing = await transitionExperiment(deps(), seed.admin, experiment.id, { action: "analyse" });
    const review = analysing.openedGates.find((g) => g.kind === "analysis_review")!;
    await decideGate(deps(), seed.admin, review.id, { decision: "ship", reason: "clear win on delivery dates" });
    await learnings.insertLearning(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: experiment.outcomeId,
      experimentId: null,
      statement: "A countdown timer did not change abandonment.",
      decision: "roll_back",
      effect: 0.001,
      ciLow: -0.01,
      ciHigh: 0.012,
      tags: ["urgency"],
    });

    const found = await ok<{ learnings: Record<string, unknown>[] }>(claude, "query_learnings", {
      query: "delivery date",
      limit: 5,
    });
    expect(found.learnings.length).toBeGreaterThanOrEqual(1);
    expect(found.learnings[0]).toMatchObject({
      decision: "ship",
      effect: -0.02,
      ciLow: -0.035,
      ciHigh: -0.005,
      experimentId: experiment.id,
      link: `${PUBLIC_URL}/experiments/${experiment.id}`,
    });
    expect(found.learnings[0]!.statement).toContain("clear win on delivery dates");
    const ranks = found.learnings.map((l) => l.rank as number);
    expect([...ranks].sort((x, y) => y - x)).toEqual(ranks);

    const scoped = await ok<{ learnings: unknown[] }>(claude, "query_learnings", {
      query: "countdown timer",
      outcome: "mcp-learn",
    });
    expect(scoped.learnings[0]).toMatchObject({ decision: "roll_back", link: null, experimentId: null });
    // No embedding model in these tests: full text, and the answer says so (and why).
    expect(await ok(claude, "query_learnings", { query: "zzzzunrelated" })).toEqual({
      learnings: [],
      search: "full_text",
      searchFallbackReason: expect.any(String),
      searchNote: expect.stringMatching(/^full text: /),
    });
    expect((await refused(claude, "query_learnings", { query: "x", outcome: "no-such-outcome" })).code).toBe(
      "not_found",
    );
  });
});

describe("request_human_gate and get_gate_status", () => {
  it("returns at once with a pending gate, and shows the decision once a person decides", async () => {
    const experiment = await approvedExperiment("mcp-ask", "Button copy");
    const started = Date.now();
    const asked = await ok<{ gate: Record<string, unknown>; opened: boolean; next: string }>(
      claude,
      "request_human_gate",
      { experiment_id: experiment.id, question: "May I change the button copy too?" },
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(asked.opened).toBe(true);
    expect(asked.gate).toMatchObject({
      kind: "agent_request",
      status: "pending",
      experimentId: experiment.id,
      question: "May I change the button copy too?",
      decision: null,
    });
    expect(asked.next).toContain("get_gate_status");
    const gateId = asked.gate.id as string;

    // The same question again: the same gate (idempotent); another question waits.
    const again = await ok<{ gate: { id: string }; opened: boolean }>(claude, "request_human_gate", {
      experiment_id: experiment.key,
      question: "May I change the button copy too?",
    });
    expect(again).toMatchObject({ opened: false, gate: { id: gateId } });
    const other = await refused(claude, "request_human_gate", {
      experiment_id: experiment.id,
      question: "And the colour?",
    });
    expect(other.code).toBe("question_pending");
    expect(other.hint).toContain(gateId);

    expect(await ok(claude, "get_gate_status", { gate_id: gateId })).toMatchObject({
      gate: { id: gateId, status: "pending", decision: null },
      experiment: { id: experiment.id },
      options: ["approve", "reject"],
    });

    await decideGate(deps(), seed.admin, gateId, { decision: "reject", reason: "copy is frozen until Q3" });
    const decided = await ok<{ gate: Record<string, unknown>; options: string[]; next: string }>(
      claude,
      "get_gate_status",
      { gate_id: gateId },
    );
    expect(decided.gate).toMatchObject({
      status: "rejected",
      decision: {
        decision: "reject",
        reason: "copy is frozen until Q3",
        decidedBy: seed.admin.principal.name,
        channel: "api",
      },
    });
    expect(decided.options).toEqual([]);
    expect(decided.next).toContain("copy is frozen until Q3");

    expect((await refused(claude, "get_gate_status", { gate_id: "00000000-0000-4000-8000-000000000000" })).code).toBe(
      "not_found",
    );
    expect((await refused(claude, "get_gate_status", { gate_id: "not-a-uuid" })).code).toBe("not_found");
    expect((await refused(claude, "request_human_gate", { experiment_id: "nope", question: "?" })).code).toBe(
      "not_found",
    );
  });
});

describe("resources and the prompt", () => {
  it("serves outcome://{id} as JSON and experiment://{id}/brief as Markdown", async () => {
    const experiment = await approvedExperiment("mcp-resources", "Guest checkout");
    const templates = await claude.listResourceTemplates();
    expect(templates.resourceTemplates.map((r) => [r.uriTemplate, r.mimeType])).toEqual([
      ["outcome://{id}", "application/json"],
      ["experiment://{id}/brief", "text/markdown"],
    ]);
    const listed = await claude.listResources();
    expect(listed.resources.map((r) => r.uri)).toEqual(
      expect.arrayContaining([`outcome://${experiment.outcomeId}`, `experiment://${experiment.id}/brief`]),
    );

    const outcome = await claude.readResource({ uri: `outcome://${experiment.outcomeId}` });
    const content = outcome.contents[0] as { mimeType: string; text: string };
    expect(content.mimeType).toBe("application/json");
    expect(JSON.parse(content.text)).toMatchObject({
      id: experiment.outcomeId,
      slug: "mcp-resources",
      state: "active",
      experiments: { approved: 1 },
      progress: { baseline: 0.68 },
      spec: { signal: { metric: "checkout_abandonment_rate" } },
    });

    const brief = await claude.readResource({ uri: `experiment://${experiment.key}/brief` });
    const markdown = brief.contents[0] as { mimeType: string; text: string };
    expect(markdown.mimeType).toBe("text/markdown");
    expect(markdown.text).toContain("# Guest checkout");
    expect(markdown.text).toContain("`apps/web/src/payments/**`");

    await expect(claude.readResource({ uri: "experiment://nope/brief" })).rejects.toMatchObject({ code: -32002 });
  });

  // The read tools (and REST reads) refuse such a key too: tests/permissions-matrix.test.ts.
  it("a key without the read scope reads no resource, as it calls no read tool and gets no REST read", async () => {
    const experiment = await approvedExperiment("mcp-resources-scope", "Shorter address form");
    const admin = await seed.key("ops@acme.example", "admin");
    const noRead: Caller = {
      ...admin.caller,
      principal: { ...admin.caller.principal, scopes: ["write", "admin"] } as Caller["principal"],
      channel: "mcp",
    };
    const client = await connectInMemory(createMcpServer({ deps: deps(), caller: noRead, publicUrl: PUBLIC_URL }));
    try {
      for (const uri of [`outcome://${experiment.outcomeId}`, `experiment://${experiment.key}/brief`]) {
        await expect(client.readResource({ uri }), uri).rejects.toMatchObject({
          data: { code: "forbidden" },
          message: expect.stringContaining('lacks the "read" scope'),
        });
      }
      await expect(client.listResources()).rejects.toMatchObject({ data: { code: "forbidden" } });
    } finally {
      await client.close();
    }
  });

  it("offers the build-experiment prompt with the workflow", async () => {
    const { prompts } = await claude.listPrompts();
    expect(prompts).toEqual([
      expect.objectContaining({
        name: "build-experiment",
        arguments: [expect.objectContaining({ name: "experiment_id", required: true })],
      }),
    ]);
    const prompt = await claude.getPrompt({ name: "build-experiment", arguments: { experiment_id: "express-pay" } });
    const text = (prompt.messages[0]!.content as { text: string }).text;
    for (const step of [
      "experiment://express-pay/brief",
      "claim_experiment",
      "allowed paths",
      "report_experiment_built",
      "get_experiment_status",
      "request_human_gate",
    ]) {
      expect(text).toContain(step);
    }
  });
});

describe("output size", () => {
  it("keeps every tool's output well under 10k tokens on realistic data", async () => {
    // A busy workspace: full pages of active outcomes with experiments, learnings and gates.
    for (let i = 0; i < 20; i++) {
      const slug = `mcp-size-${i}`;
      await activeOutcome(slug);
      const p = await propose(slug, `Idea number ${i} for a calmer checkout`);
      await propose(slug, `Second idea ${i}`);
      await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
      await propose(slug, `Third idea ${i}`);
    }
    const experiment = await runningExperiment("mcp-size-run", "Fewer form fields");
    for (let i = 0; i < 30; i++) {
      await learnings.insertLearning(t.db, {
        workspaceId: seed.workspaceId,
        outcomeId: experiment.outcomeId,
        experimentId: experiment.id,
        statement:
          `Checkout learning ${i}: showing fewer form fields at checkout lowered abandonment by about ${i / 10} pp ` +
          "(CI -2 pp to -0.1 pp) for mobile shoppers; desktop shoppers did not change. Reason: ".padEnd(400, "x"),
        decision: "ship",
        effect: -0.01,
        ciLow: -0.02,
        ciHigh: -0.001,
        tags: ["checkout", "forms", "mobile", "checkout_abandonment_rate", "ship"],
      });
    }
    const page = await ok<{ outcomes: unknown[] }>(claude, "get_active_outcomes", { limit: 20 });
    expect(page.outcomes).toHaveLength(20);
    await ok(claude, "get_experiment_brief", { experiment_id: experiment.id });
    await ok(claude, "get_experiment_status", { experiment_id: experiment.id });
    const found = await ok<{ learnings: unknown[] }>(claude, "query_learnings", {
      query: "checkout form fields",
      limit: 20,
    });
    expect(found.learnings).toHaveLength(20);
    await ok(claude, "request_human_gate", { experiment_id: experiment.id, question: "x".repeat(2000) });

    for (const c of calls) {
      // ~4 characters a token: 20 000 characters is ~5k tokens, half of Claude Code's warning level.
      expect(c.size, `${c.tool} output size`).toBeLessThan(20_000);
    }
    const biggest = Math.max(...calls.filter((c) => c.tool === "get_active_outcomes").map((c) => c.size));
    expect(biggest).toBeGreaterThan(8_000); // the test did measure full pages
  });
});

describe("the audit of tool calls", () => {
  it("wrote one mcp.tool_called event per call, with the arguments digest and the result", async () => {
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "mcp.tool_called", limit: 1000 });
    expect(events).toHaveLength(calls.length);
    // Newest first in the audit; oldest first in `calls`.
    const ordered = [...events].reverse();
    calls.forEach((c, i) => {
      const event = ordered[i]!;
      expect(event, `call ${i} (${c.tool})`).toMatchObject({
        channel: "mcp",
        subjectType: "mcp_tool",
        subjectId: c.tool,
        actor: { name: c.agent, role: "agent" },
        after: {
          tool: c.tool,
          argumentsDigest: argumentsDigest(c.args),
          result: c.isError ? "error" : "ok",
        },
      });
      if (c.isError) expect((event.after as { code?: string }).code).toEqual(expect.any(String));
    });
    const claim = ordered.find((e) => {
      const after = e.after as { tool: string; result: string };
      return after.tool === "claim_experiment" && after.result === "ok";
    });
    expect(claim?.after).toMatchObject({ subject: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });
});
