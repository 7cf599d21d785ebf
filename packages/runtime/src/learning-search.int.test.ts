/**
 * Semantic search over learnings on the real Postgres with pgvector, and an
 * OpenAI-compatible embeddings server faked after OpenAI's published API
 * (`@outcome-runtime/testing/fake-embeddings`, whose synonym table makes
 * "speed" and "latency" one concept).
 *
 * Two ways to be without semantic search, named as such:
 * - no embedding model: pgvector is there, the installation configures no
 *   `OUTCOME_RUNTIME_EMBEDDING_MODEL` (deps without a gateway, or a gateway
 *   without the model);
 * - no pgvector: a database on which the learning-embeddings migration itself
 *   ran while `vector` was not in `pg_available_extensions` (a view shadowing
 *   the catalog's on that connection's search path), so it recorded the
 *   extension absent and created nothing; then pgvector "installed" (the
 *   shadow gone), the next start turns semantic search on.
 */
import {
  createDb,
  type Db,
  learnings,
  llm as llmRows,
  migrateTo,
  migrateToLatest,
  workspaces,
} from "@outcome-runtime/db";
import { type Gateway, llmConfigFromEnv } from "@outcome-runtime/llm";
import {
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import {
  FAKE_EMBEDDING_DIMENSIONS,
  FAKE_EMBEDDING_MODEL,
  type FakeEmbeddings,
  startFakeEmbeddings,
} from "@outcome-runtime/testing/fake-embeddings";
// biome-ignore lint/style/noRestrictedImports: the test undoes a migration to run it again without pgvector, and reads the ledger
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryLearnings } from "./agents";
import { applyOutcome } from "./apply-outcome";
import type { Caller } from "./context";
import { listLearnings } from "./dashboard";
import { generatePortfolio } from "./hypotheses";
import { EMBEDDING_RETRY_AFTER_MS, embedPendingLearnings } from "./learning-search";
import { createGateway } from "./llm-store";
import { transitionOutcome } from "./outcomes";

const MIGRATION = "2026-12-17T00-00-learning-embeddings";

/** Run SQL statements on a database directly, in order; returns the rows of the last. */
async function direct<R>(url: string, ...statements: [string, unknown[]?][]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rows: R[] = [];
    for (const [text, values] of statements) rows = (await client.query(text, values)).rows as R[];
    return rows;
  } finally {
    await client.end();
  }
}

function embeddingEnv(baseURL: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OUTCOME_RUNTIME_EMBEDDING_MODEL: FAKE_EMBEDDING_MODEL,
    OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS: String(FAKE_EMBEDDING_DIMENSIONS),
    OUTCOME_RUNTIME_EMBEDDING_BASE_URL: baseURL,
    OUTCOME_RUNTIME_LLM_PRICES: JSON.stringify({ [FAKE_EMBEDDING_MODEL]: { input: 0.02, output: 0 } }),
    // One attempt per call, so a scripted failure is the call's failure; a hang ends at the timeout.
    OUTCOME_RUNTIME_LLM_MAX_RETRIES: "0",
    OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "1000",
    ...extra,
  };
}

let t: TestDatabase;
let seed: Seeded;
let fake: FakeEmbeddings;
let gateway: Gateway;
let outcomeId: string;
const LATENCY = "Cutting the latency of the product page by 300 ms lifted add-to-basket by 1.2 pp.";
const PHOTOS = "Larger product page photos did not change conversion.";
const HEADLINE = "A shorter pricing headline did not move sign-ups.";
let latencyId: string;
let photosId: string;
let headlineId: string;

async function outcomeOf(db: Db, caller: Caller, slug: string): Promise<string> {
  return (await applyOutcome({ db }, caller, { source: outcomeVariant(slug) })).outcome.id;
}

async function learning(db: Db, workspaceId: string, outcome: string, statement: string): Promise<string> {
  return learnings.insertLearning(db, {
    workspaceId,
    outcomeId: outcome,
    experimentId: null,
    statement,
    decision: "ship",
    effect: 0.01,
    ciLow: 0.001,
    ciHigh: 0.02,
  });
}

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  fake = await startFakeEmbeddings();
  gateway = createGateway({ db: t.db, config: llmConfigFromEnv(embeddingEnv(fake.baseURL)) });
  outcomeId = await outcomeOf(t.db, seed.admin, "search-speed");
  latencyId = await learning(t.db, seed.workspaceId, outcomeId, LATENCY);
  photosId = await learning(t.db, seed.workspaceId, outcomeId, PHOTOS);
  headlineId = await learning(t.db, seed.workspaceId, outcomeId, HEADLINE);
  const pass = await embedPendingLearnings({ db: t.db, gateway });
  expect(pass).toEqual({ embedded: 3, failed: 0, skipped: null, error: null });
});

afterAll(async () => {
  await fake?.close();
  await t?.drop();
});

describe("hybrid search of learnings", () => {
  it('finds by meaning what full text misses: "site speed" finds the latency learning, and says hybrid', async () => {
    // Full text (no embedding model configured): not one word of the query is in the learning.
    const words = await queryLearnings({ db: t.db }, seed.admin, { query: "site speed" });
    expect(words.learnings).toEqual([]);
    expect(words.search).toMatchObject({ search: "full_text", fallbackReason: "no_embedding_model" });
    expect(words.search.note).toMatch(/OUTCOME_RUNTIME_EMBEDDING_MODEL/);

    const hybrid = await queryLearnings({ db: t.db, gateway }, seed.admin, { query: "site speed" });
    expect(hybrid.search).toEqual({
      search: "hybrid",
      fallbackReason: null,
      note: `hybrid: full text and vector similarity (${FAKE_EMBEDDING_MODEL}), fused by reciprocal rank`,
    });
    expect(hybrid.learnings.map((l) => l.id)).toEqual([latencyId]);
    expect(hybrid.learnings[0]!.rank).toBeGreaterThan(0);

    // The example: "page" matches two learnings by words; meaning puts the latency one first.
    const page = await queryLearnings({ db: t.db, gateway }, seed.admin, { query: "page speed" });
    expect(page.learnings[0]!.id).toBe(latencyId);
    expect(page.learnings.map((l) => l.id)).toContain(photosId);
    expect(page.learnings.map((l) => l.id)).not.toContain(headlineId);

    // The dashboard's search says the same.
    const listed = await listLearnings({ db: t.db, gateway }, seed.admin, { query: "site speed" });
    expect(listed.search?.search).toBe("hybrid");
    expect(listed.items.map((l) => l.id)).toEqual([latencyId]);
    expect((await listLearnings({ db: t.db, gateway }, seed.admin, {})).search).toBeNull();

    // The query's embedding went through the gateway: metered as the `embed` operation, then cached.
    const calls = await direct<{ operation: string; model: string; input_tokens: number; cache_hit: boolean }>(t.url, [
      "SELECT operation, model, input_tokens, cache_hit FROM llm_calls WHERE workspace_id = $1 AND operation = 'embed' ORDER BY at",
      [seed.workspaceId],
    ]);
    expect(calls.every((r) => r.model === FAKE_EMBEDDING_MODEL)).toBe(true);
    expect(calls.some((r) => r.input_tokens > 0 && !r.cache_hit)).toBe(true);
    expect(calls.at(-1)?.cache_hit).toBe(true); // "site speed" again (the dashboard): from the cache
    expect(
      await llmRows.spentUsd(t.db, { workspaceId: seed.workspaceId, since: new Date(0), until: new Date(8.64e15) }),
    ).toBeGreaterThan(0);
  });

  it("a query whose embedding fails (HTTP 500, budget exhausted) is answered by full text, saying why", async () => {
    fake.enqueue({ kind: "error", status: 500 });
    const answer = await queryLearnings({ db: t.db, gateway }, seed.admin, { query: "latency budget" });
    expect(answer.search.search).toBe("full_text");
    expect(answer.search.fallbackReason).toBe("embedding_failed");
    expect(answer.search.note).toMatch(/HTTP 500/);
    expect(answer.learnings.map((l) => l.id)).toEqual([latencyId]);

    // A workspace at its LLM budget: the query is not embedded (a cached one still is), the search says why.
    const broke = createGateway({
      db: t.db,
      config: llmConfigFromEnv(embeddingEnv(fake.baseURL, { LLM_MONTHLY_BUDGET_USD: "0" })),
    });
    const sent = fake.requests.length;
    const capped = await queryLearnings({ db: t.db, gateway: broke }, seed.admin, { query: "slow latency" });
    expect(capped.search).toMatchObject({ search: "full_text", fallbackReason: "embedding_failed" });
    expect(capped.search.note).toMatch(/budget_exhausted: monthly workspace LLM budget exhausted/);
    expect(capped.learnings.map((l) => l.id)).toEqual([latencyId]);
    expect(
      (await queryLearnings({ db: t.db, gateway: broke }, seed.admin, { query: "site speed" })).search.search,
    ).toBe("hybrid");
    expect(fake.requests.length).toBe(sent);
  });

  it("never compares another workspace's vectors: each workspace finds only its own learnings", async () => {
    const other = await workspaces.ensureWorkspace(t.db, "search-other", "Other team");
    const otherAdmin: Caller = {
      principal: { id: "other-admin", name: "other-admin", role: "admin", workspaceId: other.id },
      channel: "api",
      requestId: null,
    };
    const otherOutcome = await outcomeOf(t.db, otherAdmin, "search-speed");
    // Word for word the query: the best possible match, if vectors leaked across workspaces.
    const theirs = await learning(t.db, other.id, otherOutcome, "Site speed: faster pages, slower churn.");
    expect((await embedPendingLearnings({ db: t.db, gateway })).embedded).toBe(1);

    const ours = await queryLearnings({ db: t.db, gateway }, seed.admin, { query: "site speed" });
    expect(ours.search.search).toBe("hybrid");
    expect(ours.learnings.map((l) => l.id)).toEqual([latencyId]);
    const mine = await listLearnings({ db: t.db, gateway }, seed.admin, { query: "site speed", limit: 50 });
    expect(mine.items.map((l) => l.id)).not.toContain(theirs);

    const theirAnswer = await queryLearnings({ db: t.db, gateway }, otherAdmin, { query: "site speed" });
    expect(theirAnswer.learnings.map((l) => l.id)).toEqual([theirs]);
  });
});

describe("the hypothesis engine's retrieval", () => {
  it("brings a learning of another outcome that matches the outcome by meaning only, and says hybrid", async () => {
    const other = await outcomeOf(t.db, seed.admin, "hypo-elsewhere");
    // About paying, not a word of the checkout outcome's name, slug, metric, description or objective.
    const payment = await learning(t.db, seed.workspaceId, other, "A one-page payment form cut drop-off.");
    expect((await embedPendingLearnings({ db: t.db, gateway })).embedded).toBe(1);
    await outcomeOf(t.db, seed.admin, "hypo-basket");
    await transitionOutcome({ db: t.db }, seed.admin, "hypo-basket", "activate", null);

    const plain = createGateway({ db: t.db, config: llmConfigFromEnv({}) });
    const byWords = await generatePortfolio({ db: t.db, gateway: plain }, seed.admin, "hypo-basket");
    expect(byWords.learningSearch).toMatchObject({ search: "full_text", fallbackReason: "no_embedding_model" });
    expect(byWords.learningsConsidered).not.toContain(payment);

    const byMeaning = await generatePortfolio({ db: t.db, gateway }, seed.admin, "hypo-basket");
    expect(byMeaning.learningSearch.search).toBe("hybrid");
    expect(byMeaning.learningsConsidered).toContain(payment);
  });
});

describe("embedding learnings", () => {
  it("backfills idempotently: a second pass embeds nothing; a changed statement is embedded again", async () => {
    const a = await learning(t.db, seed.workspaceId, outcomeId, "Free shipping over 50 EUR raised the basket size.");
    const b = await learning(t.db, seed.workspaceId, outcomeId, "A welcome tutorial raised activation.");
    const before = fake.requests.length;
    expect(await embedPendingLearnings({ db: t.db, gateway })).toEqual({
      embedded: 2,
      failed: 0,
      skipped: null,
      error: null,
    });
    expect(fake.requests.length).toBe(before + 1); // one batch
    expect(fake.requests.at(-1)?.body).toMatchObject({
      model: FAKE_EMBEDDING_MODEL,
      dimensions: FAKE_EMBEDDING_DIMENSIONS,
      encoding_format: "float",
    });
    const stored = await learnings.findLearningEmbedding(t.db, a);
    expect(stored).toMatchObject({
      model: FAKE_EMBEDDING_MODEL,
      dimensions: FAKE_EMBEDDING_DIMENSIONS,
      embedded: true,
      error: null,
    });
    expect(stored?.contentHash).toMatch(/^[0-9a-f]{64}$/);

    expect(await embedPendingLearnings({ db: t.db, gateway })).toEqual({
      embedded: 0,
      failed: 0,
      skipped: null,
      error: null,
    });
    expect(fake.requests.length).toBe(before + 1);

    // The LLM summary replaces the rules' sentence: the text changed, so it is embedded again (and only it).
    await learnings.replaceLearningSummary(t.db, b, {
      statement: "An onboarding tutorial raised activation.",
      tags: ["onboarding"],
      source: "llm:test",
    });
    expect((await embedPendingLearnings({ db: t.db, gateway })).embedded).toBe(1);
    expect(fake.requests.at(-1)?.body.input).toEqual(["An onboarding tutorial raised activation.\nTags: onboarding"]);
    expect((await learnings.findLearningEmbedding(t.db, b))?.contentHash).not.toBe(stored?.contentHash);
  });

  it.each([
    {
      name: "an HTTP 500",
      reply: { kind: "error", status: 500 } as const,
      error: /provider_error: embeddings: HTTP 500/,
    },
    {
      name: "vectors of the wrong length",
      reply: { kind: "wrong_length", length: 8 } as const,
      error: /invalid_output: embeddings: data\[0\]\.embedding has 8 numbers, expected 32/,
    },
    {
      name: "a non-finite number",
      reply: { kind: "not_finite" } as const,
      error: /invalid_output: embeddings: data\[0\]\.embedding\[0\] is null, not a finite number/,
    },
    {
      name: "a server that hangs",
      reply: { kind: "hang" } as const,
      error: /timeout: embeddings: no answer within 1000 ms/,
    },
  ])(
    "keeps a learning searchable by full text when the embeddings server answers $name, recording the error",
    async ({ name, reply, error }) => {
      const word = `zebra${name.replace(/[^a-z]/g, "")}`;
      const id = await learning(t.db, seed.workspaceId, outcomeId, `The ${word} banner test was inconclusive.`);
      fake.enqueue(reply);
      const pass = await embedPendingLearnings({ db: t.db, gateway });
      expect(pass).toMatchObject({ embedded: 0, failed: 1, skipped: null });
      expect(pass.error).toMatch(error);
      const row = await learnings.findLearningEmbedding(t.db, id);
      expect(row).toMatchObject({ embedded: false, attempts: 1 });
      expect(row?.error).toMatch(error);

      // Stored and found by its words (the search itself is hybrid: the learning matches by full text).
      const found = await queryLearnings({ db: t.db, gateway }, seed.admin, { query: word });
      expect(found.learnings.map((l) => l.id)).toEqual([id]);

      // Not retried at once; tried again once the retry delay has passed, and then embedded.
      expect((await embedPendingLearnings({ db: t.db, gateway })).failed).toBe(0);
      const later = new Date(Date.now() + EMBEDDING_RETRY_AFTER_MS + 60_000);
      expect(await embedPendingLearnings({ db: t.db, gateway, now: () => later })).toMatchObject({
        embedded: 1,
        failed: 0,
      });
      expect(await learnings.findLearningEmbedding(t.db, id)).toMatchObject({
        embedded: true,
        error: null,
        attempts: 2,
      });
    },
  );
});

describe("without semantic search", () => {
  it("with pgvector but no embedding model configured: full text, and nothing is embedded", async () => {
    const plain = createGateway({ db: t.db, config: llmConfigFromEnv({}) });
    const answer = await queryLearnings({ db: t.db, gateway: plain }, seed.admin, { query: "site speed" });
    expect(answer).toMatchObject({
      learnings: [],
      search: { search: "full_text", fallbackReason: "no_embedding_model" },
    });
    await learning(t.db, seed.workspaceId, outcomeId, "Unembedded learning about payment retries.");
    expect(await embedPendingLearnings({ db: t.db, gateway: plain })).toEqual({
      embedded: 0,
      failed: 0,
      skipped: "no_embedding_model",
      error: null,
    });
  });

  it("on a database migrated without pgvector: the same query degrades to full text and says so", async () => {
    const bare = await createTestDatabase();
    let migrator: Db | undefined;
    try {
      // Undo what the migration did here (the migrations after it by their own `down`), then run it again
      // alone where `vector` is not an available extension (that connection's search path puts the view first,
      // so a table made there would land in its schema), and the migrations after it as usual.
      const rerun = (
        await direct<{ name: string }>(bare.url, [
          "SELECT name FROM kysely_migration WHERE name >= $1 ORDER BY name",
          [MIGRATION],
        ])
      ).map((r) => r.name);
      expect(rerun[0]).toBe(MIGRATION);
      await migrateTo(bare.db, MIGRATION);
      await direct(
        bare.url,
        ["DROP TABLE learning_embeddings"],
        ["DROP EXTENSION vector"],
        ["DELETE FROM settings WHERE key = 'semantic_search'"],
        ["DELETE FROM kysely_migration WHERE name >= $1", [MIGRATION]],
        ["CREATE SCHEMA no_pgvector"],
        [
          "CREATE VIEW no_pgvector.pg_available_extensions AS SELECT * FROM pg_catalog.pg_available_extensions WHERE name <> 'vector'",
        ],
      );
      const url = new URL(bare.url);
      url.searchParams.set("options", "-c search_path=no_pgvector,pg_catalog,public");
      migrator = createDb({ url: url.toString(), max: 1 });
      expect(await migrateTo(migrator, MIGRATION)).toEqual([MIGRATION]);
      const last = rerun.at(-1) ?? MIGRATION;
      expect([MIGRATION, ...(await migrateTo(bare.db, last))]).toEqual(rerun);
      // A start on that server: nothing left to apply, and semantic search stays off.
      expect((await migrateToLatest(migrator)).applied).toEqual([]);

      expect(await learnings.semanticSearchSupport(bare.db)).toEqual({
        available: false,
        version: null,
        reason: "the pgvector extension (vector) is not installed on this PostgreSQL server",
      });
      const tables = await direct<{ n: number }>(bare.url, [
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'learning_embeddings'",
      ]);
      expect(tables[0]?.n).toBe(0);

      const s = await seedWorkspace(bare.db);
      const outcome = await outcomeOf(bare.db, s.admin, "search-speed");
      const id = await learning(bare.db, s.workspaceId, outcome, LATENCY);
      const embedder = createGateway({ db: bare.db, config: llmConfigFromEnv(embeddingEnv(fake.baseURL)) });
      const before = fake.requests.length;

      expect(await embedPendingLearnings({ db: bare.db, gateway: embedder })).toMatchObject({
        embedded: 0,
        skipped: "pgvector_unavailable",
      });
      const answer = await queryLearnings({ db: bare.db, gateway: embedder }, s.admin, { query: "site speed" });
      expect(answer.learnings).toEqual([]);
      expect(answer.search).toMatchObject({ search: "full_text", fallbackReason: "pgvector_unavailable" });
      expect(answer.search.note).toMatch(/pgvector extension \(vector\) is not installed/);
      // Words still find it, and the dashboard's search says the same.
      const listed = await listLearnings({ db: bare.db, gateway: embedder }, s.admin, { query: "latency" });
      expect(listed.items.map((l) => l.id)).toEqual([id]);
      expect(listed.search).toMatchObject({ search: "full_text", fallbackReason: "pgvector_unavailable" });
      // Nothing asked the embeddings server.
      expect(fake.requests.length).toBe(before);

      // The operator installs pgvector: the next start turns semantic search on, the worker embeds, hybrid.
      await migrator.destroy();
      migrator = undefined;
      expect((await migrateToLatest(bare.db)).applied).toEqual([]);
      expect(await learnings.semanticSearchSupport(bare.db)).toMatchObject({ available: true, reason: null });
      expect((await embedPendingLearnings({ db: bare.db, gateway: embedder })).embedded).toBe(1);
      const now = await queryLearnings({ db: bare.db, gateway: embedder }, s.admin, { query: "site speed" });
      expect(now.search.search).toBe("hybrid");
      expect(now.learnings.map((l) => l.id)).toEqual([id]);
    } finally {
      await migrator?.destroy();
      await bare.drop();
    }
  });
});
