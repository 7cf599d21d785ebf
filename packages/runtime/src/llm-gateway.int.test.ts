/**
 * The LLM gateway (packages/llm) over the runtime's Postgres store: providers
 * faked after their published APIs, every run cached, metered and audited in
 * the real database.
 */
import { readFileSync } from "node:fs";
import type { Actor } from "@outcome-runtime/core";
import { audit, type Db, llm as store, workspaces } from "@outcome-runtime/db";
import {
  type GenerateHypothesesInput,
  type GenerateHypothesesOutput,
  type LlmConfig,
  llmConfigFromEnv,
  validateOutput,
} from "@outcome-runtime/llm";
import { type FakeProvider, startFakeAnthropic, startFakeOpenAi } from "@outcome-runtime/llm/test-support";
import { createTestDatabase, type TestDatabase } from "@outcome-runtime/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createGateway } from "./llm-store";

/** An operation's output JSON Schema, from `schemas/llm` (the gateway validates against the same files). */
function outputSchema(operation: "generate_hypotheses" | "draft_outcome"): Record<string, unknown> {
  const file = new URL(`../../../schemas/llm/${operation}.output.schema.json`, import.meta.url);
  return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
}

const schema = outputSchema("generate_hypotheses");

const INPUT: GenerateHypothesesInput = {
  outcome: {
    id: "checkout-abandonment",
    name: "Cut checkout abandonment",
    objective: "Fewer shoppers abandon the checkout",
    signal: { metric: "checkout_abandonment_rate", kind: "proportion", unit: "session", baseline: 0.68 },
    target: { direction: "decrease", value: 0.6, relative: false },
    forbidden_paths: ["src/payments/**"],
  },
  learnings: [],
  failed: [],
  count: 3,
};

function hypothesis(key: string): GenerateHypothesesOutput["hypotheses"][number] {
  return {
    title: `Change ${key}`,
    statement: `If we change the checkout for ${key}, then abandonment will decrease, because of ${key}.`,
    mechanism: `The ${key} mechanism lowers the cost of finishing the purchase.`,
    mechanism_key: key,
    prediction: { metric: "checkout_abandonment_rate", direction: "decrease", effect: 0.03, relative: false },
    measurement_plan: "Abandonment per session, randomised by session.",
    rollout_plan: "Control 50 %, treatment 50 %, ramp after one day.",
    effort: "M",
    risk: "low",
    confidence: 0.5,
    touched_paths: ["src/checkout/page.tsx"],
    rationale: "Common friction in checkouts of this kind.",
  };
}

const VALID: GenerateHypothesesOutput = {
  hypotheses: [hypothesis("friction_reduction"), hypothesis("trust"), hypothesis("urgency")],
};
/** Violates the schema: effect must be > 0, and an unknown property. */
const INVALID = {
  hypotheses: [{ ...hypothesis("trust"), prediction: { ...hypothesis("trust").prediction, effect: -1 }, extra: 1 }],
};

const FAST = {
  OUTCOME_RUNTIME_LLM_RETRY_BASE_MS: "10",
  OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "2000",
  OUTCOME_RUNTIME_LLM_MAX_RETRIES: "2",
};

let tdb: TestDatabase;
let db: Db;
let workspaceId: string;
const actor: Actor = { id: "pm@example.com", name: "pm@example.com", role: "member" };
let anthropic: FakeProvider;
let openai: FakeProvider;

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = tdb.db;
  anthropic = await startFakeAnthropic();
  openai = await startFakeOpenAi();
});
afterAll(async () => {
  await anthropic.close();
  await openai.close();
  await tdb.drop();
});
afterEach(() => {
  anthropic.requests.length = 0;
  openai.requests.length = 0;
});

/** A fresh workspace per test, so caches and budgets do not leak between tests. */
async function freshWorkspace(): Promise<string> {
  const slug = `ws-${Math.random().toString(36).slice(2, 10)}`;
  return (await workspaces.ensureWorkspace(db, slug, slug)).id;
}

function anthropicConfig(extra: Record<string, string> = {}): LlmConfig {
  return llmConfigFromEnv({
    ANTHROPIC_API_KEY: "sk-ant-test",
    ANTHROPIC_BASE_URL: anthropic.baseURL,
    ...FAST,
    ...extra,
  });
}
function openaiConfig(extra: Record<string, string> = {}): LlmConfig {
  return llmConfigFromEnv({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: openai.baseURL, ...FAST, ...extra });
}

async function lastAudit(ws: string) {
  const events = await audit.listAuditEvents(db, ws, { action: "llm.call", limit: 1 });
  return events[0]!.after as Record<string, unknown>;
}

describe("gateway with the Anthropic SDK", () => {
  it("returns a valid tool-use output, metered, and sends the documented request", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "output", output: VALID, usage: { input: 1000, output: 500 } });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });

    expect(result.output).toEqual(VALID);
    expect(result).toMatchObject({
      source: "llm:claude-sonnet-4-5",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      usage: { inputTokens: 1000, outputTokens: 500 },
      cacheHit: false,
      fallbackReason: null,
    });
    // claude-sonnet-4-5 at $3 / $15 per million tokens.
    expect(result.costUsd).toBeCloseTo((1000 * 3 + 500 * 15) / 1e6, 10);

    const [req] = anthropic.requests;
    expect(req!.path).toBe("/v1/messages");
    // The key travels as `x-api-key` (the Messages API's documented header) or, as @anthropic-ai/sdk 1.x
    // sends it, as `Authorization: Bearer`.
    const credential = req!.headers["x-api-key"] ?? req!.headers.authorization?.replace(/^Bearer /, "");
    expect(credential).toBe("sk-ant-test");
    expect(req!.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(req!.body.model).toBe("claude-sonnet-4-5");
    expect(req!.body.max_tokens).toBe(4096);
    expect(req!.body.tools).toEqual([expect.objectContaining({ name: "generate_hypotheses", input_schema: schema })]);
    expect(req!.body.tool_choice).toEqual({ type: "tool", name: "generate_hypotheses" });
    expect(req!.body.system).toContain("hypothesis engine");
    expect(req!.body.messages[0].content).toContain("checkout_abandonment_rate");

    const [call] = await store.listCalls(db, workspaceId);
    expect(call).toMatchObject({
      operation: "generate_hypotheses",
      promptVersion: "v1",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      source: "llm:claude-sonnet-4-5",
      inputTokens: 1000,
      outputTokens: 500,
      cacheHit: false,
      fallbackReason: null,
      actorId: actor.id,
    });
    expect(call!.costUsd).toBeCloseTo(result.costUsd, 8);
    const after = await lastAudit(workspaceId);
    expect(after).toMatchObject({
      operation: "generate_hypotheses",
      promptVersion: "v1",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      inputTokens: 1000,
      outputTokens: 500,
      cacheHit: false,
      fallbackReason: null,
    });
    expect(typeof after.latencyMs).toBe("number");
  });

  it("serves an identical second call from the cache at zero cost", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "output", output: VALID });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const outcomeId = "00000000-0000-4000-8000-000000000001";
    const first = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor, outcomeId });
    // Same input with its keys in another order: the canonical JSON hashes the same.
    const reordered = { count: 3, failed: [], learnings: [], outcome: { ...INPUT.outcome } };
    const second = await gateway.run("generate_hypotheses", reordered, { workspaceId, actor, outcomeId });

    expect(anthropic.requests).toHaveLength(1);
    expect(first.cacheHit).toBe(false);
    expect(second).toMatchObject({
      output: VALID,
      cacheHit: true,
      costUsd: 0,
      usage: { inputTokens: 0, outputTokens: 0 },
      source: "llm:claude-sonnet-4-5",
    });
    const calls = await store.listCalls(db, workspaceId, { outcomeId });
    expect(calls.map((c) => [c.cacheHit, c.costUsd])).toEqual([
      [true, 0],
      [false, first.costUsd],
    ]);
    const events = await audit.listAuditEvents(db, workspaceId, { subjectType: "outcome", subjectId: outcomeId });
    expect(events.map((e) => (e.after as { cacheHit: boolean }).cacheHit)).toEqual([true, false]);
  });

  it("repairs a schema-violating output once, sending back the ajv errors", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue(
      { kind: "output", output: INVALID, usage: { input: 1000, output: 400 } },
      { kind: "output", output: VALID, usage: { input: 1500, output: 500 } },
    );
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });

    expect(anthropic.requests).toHaveLength(2);
    const repair = anthropic.requests[1]!.body;
    expect(repair.system).toContain("You repair the structured output");
    expect(repair.messages[0].content).toContain("/hypotheses/0/prediction/effect");
    expect(repair.messages[0].content).toContain("must NOT have additional properties (extra)");
    expect(repair.tool_choice).toEqual({ type: "tool", name: "generate_hypotheses" });
    expect(result.output).toEqual(VALID);
    expect(result.fallbackReason).toBeNull();
    expect(result.usage).toEqual({ inputTokens: 2500, outputTokens: 900 });
    expect(result.warnings.some((w) => w.startsWith("output repaired once"))).toBe(true);
    const [call] = await store.listCalls(db, workspaceId);
    expect(call).toMatchObject({ repaired: true, inputTokens: 2500, outputTokens: 900 });
  });

  it("falls back to rules when the repaired output is still invalid", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "output", output: INVALID }, { kind: "output", output: INVALID });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });

    expect(anthropic.requests).toHaveLength(2);
    expect(result).toMatchObject({ source: "rules", provider: "rules", fallbackReason: "invalid_output" });
    expect(validateOutput(schema, result.output)).toEqual([]);
    expect(result.costUsd).toBeGreaterThan(0); // the two attempts were billed
    // Nothing invalid is cached: the next call asks the model again.
    anthropic.enqueue({ kind: "output", output: VALID });
    const again = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(again).toMatchObject({ cacheHit: false, source: "llm:claude-sonnet-4-5" });
  });

  it("waits as long as a 429's retry-after says, then succeeds", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue(
      { kind: "error", status: 429, headers: { "retry-after": "1" } },
      { kind: "output", output: VALID },
    );
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });

    expect(anthropic.requests).toHaveLength(2);
    const gap = anthropic.requests[1]!.at - anthropic.requests[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(950);
    expect(result).toMatchObject({ source: "llm:claude-sonnet-4-5", fallbackReason: null });
  });

  it("falls back with rate_limited when retry-after exceeds the longest wait", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "error", status: 429, headers: { "retry-after": "3600" } });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(anthropic.requests).toHaveLength(1);
    expect(result).toMatchObject({ source: "rules", fallbackReason: "rate_limited" });
  });

  it("retries a 500 and succeeds", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "error", status: 500 }, { kind: "output", output: VALID });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(anthropic.requests).toHaveLength(2);
    expect(result).toMatchObject({ source: "llm:claude-sonnet-4-5", fallbackReason: null, output: VALID });
  });

  it("times out each attempt, retries, then falls back to rules with reason timeout", async () => {
    workspaceId = await freshWorkspace();
    anthropic.enqueue({ kind: "hang" }, { kind: "hang" });
    const gateway = createGateway({
      db,
      config: anthropicConfig({ OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "200", OUTCOME_RUNTIME_LLM_MAX_RETRIES: "1" }),
    });
    const started = Date.now();
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(anthropic.requests).toHaveLength(2);
    expect(result).toMatchObject({ source: "rules", fallbackReason: "timeout", costUsd: 0 });
    expect(validateOutput(schema, result.output)).toEqual([]);
    const [call] = await store.listCalls(db, workspaceId);
    expect(call).toMatchObject({ fallbackReason: "timeout", source: "rules", provider: "anthropic" });
  });
});

describe("budgets", () => {
  it("at the monthly workspace cap, rules answers and the fallback is recorded in llm_calls and the audit log", async () => {
    workspaceId = await freshWorkspace();
    const now = new Date("2026-12-15T12:00:00Z");
    // Spending already recorded this month: $0.95 of a $1 cap, then one call that crosses it.
    await store.insertCall(db, {
      workspaceId,
      outcomeId: null,
      actorId: "someone-else",
      operation: "generate_hypotheses",
      promptVersion: "v1",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      source: "llm:claude-sonnet-4-5",
      inputTokens: 100_000,
      outputTokens: 43_333,
      costUsd: 0.95,
      latencyMs: 10,
      cacheHit: false,
      repaired: false,
      fallbackReason: null,
      at: new Date("2026-12-01T00:00:00Z"),
    });
    const gateway = createGateway({
      db,
      config: anthropicConfig({ LLM_MONTHLY_BUDGET_USD: "1" }),
      now: () => now,
    });

    // 95 %: the LLM still serves, with a soft warning.
    anthropic.enqueue({ kind: "output", output: VALID, usage: { input: 10_000, output: 2_000 } });
    const warned = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(warned.source).toBe("llm:claude-sonnet-4-5");
    expect(warned.warnings).toEqual([expect.stringMatching(/monthly workspace LLM budget at 95 %/)]);

    // Now past the cap ($0.95 + $0.06): no request reaches the provider.
    const capped = await gateway.run(
      "summarize_learning",
      {
        experiment: { title: "One-page checkout", statement: "If we …", mechanism_key: "friction_reduction" },
        metric: "checkout_abandonment_rate",
        decision: "ship",
        effect: -0.021,
        ciLow: -0.035,
        ciHigh: -0.007,
      },
      { workspaceId, actor },
    );
    expect(anthropic.requests).toHaveLength(1);
    expect(capped).toMatchObject({
      source: "rules",
      provider: "rules",
      fallbackReason: "budget_exhausted",
      costUsd: 0,
    });
    expect(capped.warnings.some((w) => w.includes("monthly workspace LLM budget exhausted"))).toBe(true);
    expect(capped.output.statement).toContain("checkout_abandonment_rate");

    const [call] = await store.listCalls(db, workspaceId, { operation: "summarize_learning" });
    expect(call).toMatchObject({ fallbackReason: "budget_exhausted", source: "rules", costUsd: 0 });
    const after = await lastAudit(workspaceId);
    expect(after).toMatchObject({
      operation: "summarize_learning",
      fallbackReason: "budget_exhausted",
      provider: "rules",
    });

    // Next month the budget is fresh.
    const nextMonth = createGateway({
      db,
      config: anthropicConfig({ LLM_MONTHLY_BUDGET_USD: "1" }),
      now: () => new Date("2027-01-02T00:00:00Z"),
    });
    anthropic.enqueue({
      kind: "output",
      output: { statement: "One-page checkout cut abandonment.", tags: ["checkout"] },
    });
    const fresh = await nextMonth.run(
      "summarize_learning",
      {
        experiment: { title: "x", statement: "y" },
        metric: "m",
        decision: "ship",
        effect: null,
        ciLow: null,
        ciHigh: null,
      },
      { workspaceId, actor },
    );
    expect(fresh).toMatchObject({ source: "llm:claude-haiku-4-5", fallbackReason: null });
  });

  it("at a user's daily cap, rules answers for that user only", async () => {
    workspaceId = await freshWorkspace();
    const now = new Date("2026-12-15T12:00:00Z");
    const gateway = createGateway({
      db,
      config: anthropicConfig({ LLM_DAILY_USER_BUDGET_USD: "0.005" }),
      now: () => now,
    });
    anthropic.enqueue({ kind: "output", output: VALID, usage: { input: 1000, output: 500 } }); // $0.0105
    await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    const capped = await gateway.run("generate_hypotheses", { ...INPUT, count: 2 }, { workspaceId, actor });
    expect(capped.fallbackReason).toBe("budget_exhausted");
    expect(capped.warnings.some((w) => w.includes(`daily LLM budget of ${actor.name} exhausted`))).toBe(true);

    anthropic.enqueue({ kind: "output", output: VALID });
    const other = await gateway.run(
      "generate_hypotheses",
      { ...INPUT, count: 2 },
      {
        workspaceId,
        actor: { id: "eng@example.com", name: "eng@example.com", role: "member" },
      },
    );
    expect(other.fallbackReason).toBeNull();
  });
});

describe("gateway with an OpenAI-compatible server", () => {
  it("sends response_format json_schema with a bearer token and reads choices[0].message.content", async () => {
    workspaceId = await freshWorkspace();
    openai.enqueue({ kind: "output", output: VALID, usage: { input: 2000, output: 1000 } });
    const gateway = createGateway({ db, config: openaiConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });

    expect(result).toMatchObject({
      output: VALID,
      source: "llm:gpt-4o",
      provider: "openai-compatible",
      usage: { inputTokens: 2000, outputTokens: 1000 },
      fallbackReason: null,
    });
    expect(result.costUsd).toBeCloseTo((2000 * 2.5 + 1000 * 10) / 1e6, 10);
    const [req] = openai.requests;
    expect(req!.path).toBe("/v1/chat/completions");
    expect(req!.headers.authorization).toBe("Bearer sk-test");
    expect(req!.body.response_format).toEqual({
      type: "json_schema",
      json_schema: { name: "generate_hypotheses", schema, strict: false },
    });
    expect(req!.body.messages.map((m: { role: string }) => m.role)).toEqual(["system", "user"]);
  });

  it("repairs malformed JSON once", async () => {
    workspaceId = await freshWorkspace();
    openai.enqueue({ kind: "text", text: '{"hypotheses": [{"title": "Trunc' }, { kind: "output", output: VALID });
    const gateway = createGateway({ db, config: openaiConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(openai.requests).toHaveLength(2);
    expect(openai.requests[1]!.body.messages[1].content).toContain("malformed JSON");
    expect(openai.requests[1]!.body.messages[1].content).toContain('{"hypotheses": [{"title": "Trunc');
    expect(result).toMatchObject({ output: VALID, source: "llm:gpt-4o", fallbackReason: null });
  });

  it("honours a retry-after given as an HTTP date", async () => {
    workspaceId = await freshWorkspace();
    // HTTP dates have one-second resolution: two seconds ahead waits between one and two seconds.
    const date = new Date(Date.now() + 2000).toUTCString();
    openai.enqueue({ kind: "error", status: 429, headers: { "retry-after": date } }, { kind: "output", output: VALID });
    const gateway = createGateway({ db, config: openaiConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(openai.requests).toHaveLength(2);
    expect(openai.requests[1]!.at - openai.requests[0]!.at).toBeGreaterThanOrEqual(900);
    expect(result.fallbackReason).toBeNull();
  });

  it("retries 500 and 503, then succeeds", async () => {
    workspaceId = await freshWorkspace();
    openai.enqueue({ kind: "error", status: 500 }, { kind: "error", status: 503 }, { kind: "output", output: VALID });
    const gateway = createGateway({ db, config: openaiConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(openai.requests).toHaveLength(3);
    expect(result).toMatchObject({ source: "llm:gpt-4o", fallbackReason: null });
  });

  it("falls back with provider_error on a 401 without retrying", async () => {
    workspaceId = await freshWorkspace();
    openai.enqueue({ kind: "error", status: 401 });
    const gateway = createGateway({ db, config: openaiConfig() });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(openai.requests).toHaveLength(1);
    expect(result).toMatchObject({ source: "rules", fallbackReason: "provider_error" });
  });

  it("times out and falls back to rules", async () => {
    workspaceId = await freshWorkspace();
    openai.enqueue({ kind: "hang" });
    const gateway = createGateway({
      db,
      config: openaiConfig({ OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "200", OUTCOME_RUNTIME_LLM_MAX_RETRIES: "0" }),
    });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(result).toMatchObject({ source: "rules", fallbackReason: "timeout" });
  });
});

describe("with no LLM configured", () => {
  it("rules serves, without a fallback reason, and the call is still metered and audited", async () => {
    workspaceId = await freshWorkspace();
    const gateway = createGateway({ db, config: llmConfigFromEnv({}) });
    const result = await gateway.run("generate_hypotheses", INPUT, { workspaceId, actor });
    expect(result).toMatchObject({
      source: "rules",
      provider: "rules",
      model: "rules",
      fallbackReason: null,
      costUsd: 0,
    });
    expect(result.output.hypotheses).toHaveLength(3);
    expect(validateOutput(schema, result.output)).toEqual([]);
    const [call] = await store.listCalls(db, workspaceId);
    expect(call).toMatchObject({ provider: "rules", model: "rules", source: "rules" });
    expect(await lastAudit(workspaceId)).toMatchObject({ provider: "rules", operation: "generate_hypotheses" });
  });
});

describe("draft_outcome", () => {
  it("drafts offline through the rules engine with no LLM configured", async () => {
    workspaceId = await freshWorkspace();
    const gateway = createGateway({ db, config: llmConfigFromEnv({}) });
    const result = await gateway.run(
      "draft_outcome",
      { sentence: "Cut checkout abandonment from 68% to 60% in 6 weeks", today: "2026-12-15" },
      { workspaceId, actor },
    );
    expect(result.source).toBe("rules");
    expect(validateOutput(outputSchema("draft_outcome"), result.output)).toEqual([]);
    expect(result.output.todos.length).toBeGreaterThan(0);
  });

  it("uses the LLM's draft when it is valid", async () => {
    workspaceId = await freshWorkspace();
    const draft = {
      outcome: { name: "Cut checkout abandonment" },
      todos: [{ path: "signal.connector.query", note: "Write the SQL that counts abandoned checkouts." }],
    };
    anthropic.enqueue({ kind: "output", output: draft });
    const gateway = createGateway({ db, config: anthropicConfig() });
    const result = await gateway.run("draft_outcome", { sentence: "Cut checkout abandonment" }, { workspaceId, actor });
    expect(result).toMatchObject({ output: draft, source: "llm:claude-sonnet-4-5" });
    expect(anthropic.requests[0]!.body.tool_choice).toEqual({ type: "tool", name: "draft_outcome" });
  });
});
