/**
 * Learnings embedded by the worker (in process, on real Postgres with
 * pgvector and real Redis) through a local OpenAI-compatible embeddings server
 * (`@outcome-runtime/testing/fake-embeddings`): the outbox sweep queues an
 * `embed-learnings` pass when a learning waits for its embedding, the pass
 * embeds it, and a second sweep finds nothing to do. With the server failing,
 * the pass records the error on the learning and logs it; the learning is
 * searchable by its words all along.
 */
import { randomBytes } from "node:crypto";
import { learnings } from "@outcome-runtime/db";
import { llmConfigFromEnv } from "@outcome-runtime/llm";
import {
  applyOutcome,
  connectorProvider,
  createGateway,
  queryLearnings,
  sourceAccessFromEnv,
} from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  outcomeVariant,
  seedWorkspace,
  type TestDatabase,
  waitFor,
} from "@outcome-runtime/testing";
import {
  FAKE_EMBEDDING_DIMENSIONS,
  FAKE_EMBEDDING_MODEL,
  type FakeEmbeddings,
  startFakeEmbeddings,
} from "@outcome-runtime/testing/fake-embeddings";
import { type RunningWorker, startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A pino-shaped logger that keeps the worker's warnings. */
function collectingLogger(warnings: string[]): WorkerOptions["logger"] {
  const keep = (level: string) => (obj: unknown, msg?: string) => {
    warnings.push(`${level}: ${msg ?? ""} ${JSON.stringify(obj)}`);
  };
  const logger = {
    level: "warn",
    info: () => {},
    debug: () => {},
    trace: () => {},
    warn: keep("warn"),
    error: keep("error"),
    fatal: keep("fatal"),
    child: () => logger,
  };
  return logger as unknown as WorkerOptions["logger"];
}

let t: TestDatabase;
let redis: Redis;
let prefix: string;
let fake: FakeEmbeddings;
let worker: RunningWorker;
let closeConnectors: () => Promise<void>;
const warnings: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ max: 10 });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  prefix = `test-embed-${randomBytes(6).toString("hex")}`;
  fake = await startFakeEmbeddings();
  const gateway = createGateway({
    db: t.db,
    config: llmConfigFromEnv({
      OUTCOME_RUNTIME_EMBEDDING_MODEL: FAKE_EMBEDDING_MODEL,
      OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS: String(FAKE_EMBEDDING_DIMENSIONS),
      OUTCOME_RUNTIME_EMBEDDING_BASE_URL: fake.baseURL,
      OUTCOME_RUNTIME_LLM_MAX_RETRIES: "0",
    }),
  });
  const connectors = connectorProvider({ db: t.db, access: sourceAccessFromEnv({}) });
  closeConnectors = () => connectors.close();
  worker = await startWorker({
    db: t.db,
    redis,
    connectors,
    logger: collectingLogger(warnings),
    prefix,
    gateway,
    outboxIntervalMs: 0,
    reconcileIntervalMs: 3_600_000,
  });
});

afterAll(async () => {
  await worker?.close();
  await closeConnectors?.();
  await fake?.close();
  await deleteRedisKeys(redis, prefix);
  redis.disconnect();
  await t?.drop();
});

describe("the worker embeds learnings", () => {
  it("queues one pass for a learning waiting, embeds it, then finds nothing to do; a failure is recorded and logged", async () => {
    const seed = await seedWorkspace(t.db);
    const outcome = (await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("embed-worker") })).outcome;
    const write = (statement: string) =>
      learnings.insertLearning(t.db, {
        workspaceId: seed.workspaceId,
        outcomeId: outcome.id,
        experimentId: null,
        statement,
        decision: "ship",
      });
    const id = await write("Cutting the latency of the product page lifted add-to-basket.");

    expect((await worker.dispatch()).embeddings).toBe(1);
    const embedded = await waitFor("the learning's embedding", async () => {
      const row = await learnings.findLearningEmbedding(t.db, id);
      return row?.embedded ? row : undefined;
    });
    expect(embedded).toMatchObject({ model: FAKE_EMBEDDING_MODEL, dimensions: FAKE_EMBEDDING_DIMENSIONS, error: null });
    expect(fake.requests.at(-1)?.body.input).toEqual(["Cutting the latency of the product page lifted add-to-basket."]);
    // Nothing waits any more: the next sweep queues no pass.
    expect((await worker.dispatch()).embeddings).toBe(0);
    const byWord = await queryLearnings({ db: t.db }, seed.admin, { query: "latency" });
    expect(byWord.learnings.map((l) => l.id)).toEqual([id]);

    // The server fails: the pass records the error on the learning, logs it, and the learning is found by its words.
    fake.enqueue({ kind: "error", status: 503, message: "overloaded" });
    const failing = await write("A quieter checkout banner did nothing.");
    expect((await worker.dispatch()).embeddings).toBe(1);
    const failed = await waitFor("the failure on the learning", async () => {
      const row = await learnings.findLearningEmbedding(t.db, failing);
      return row?.error ? row : undefined;
    });
    expect(failed).toMatchObject({ embedded: false, attempts: 1 });
    expect(failed.error).toMatch(/^provider_error: embeddings: HTTP 503: .*overloaded/);
    await waitFor("the warning", () => warnings.some((w) => w.includes("learning embeddings failed")));
    // Not due again before 15 minutes: the sweep queues nothing.
    expect((await worker.dispatch()).embeddings).toBe(0);
    const byWords = await queryLearnings({ db: t.db }, seed.admin, { query: "banner" });
    expect(byWords.learnings.map((l) => l.id)).toEqual([failing]);
  });
});
