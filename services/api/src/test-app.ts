/**
 * An API on a database of its own, for integration tests: a cloned test
 * database, the bootstrap admin key, the real local Redis and the app.
 */
import { randomBytes } from "node:crypto";
import { DEFAULT_PRINCIPAL_CACHE_TTL_MS } from "@outcome-runtime/runtime";
import { createTestDatabase, type Seeded, seedWorkspace, type TestDatabase } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { type AppOptions, buildApp } from "./app";

export interface TestApi {
  readonly t: TestDatabase;
  readonly seed: Seeded;
  readonly redis: Redis;
  readonly app: Awaited<ReturnType<typeof buildApp>>;
  /** `Authorization` header of the bootstrap admin key. */
  readonly auth: { authorization: string };
  /** Close the app and Redis, and drop the database. */
  readonly close: () => Promise<void>;
}

/**
 * The app on an existing database and Redis, with test defaults that `overrides` may change;
 * `server` passes Fastify options (e.g. `trustProxy`). Each app counts its rate limits (the global one,
 * the AI routes' and failed authentications per address) under a namespace of its own, so test files
 * running at once from 127.0.0.1 never share a counter.
 */
export function buildTestApp(
  db: TestDatabase["db"],
  redis: Redis,
  overrides: Partial<AppOptions> = {},
  server: Parameters<typeof buildApp>[1] = { logger: false },
) {
  return buildApp(
    {
      deps: { db },
      redis,
      version: "test",
      signalStorage: "plain",
      rateLimitPerMinute: 10_000,
      aiRateLimitPerMinute: 10_000,
      rateLimitNamespace: `test-rate-limit:${randomBytes(6).toString("hex")}:`,
      ...overrides,
    },
    server,
  );
}

/**
 * `app` overrides the app's options (e.g. `webRoot`, `streamIntervalMs`). The app caches principals as the
 * API does by default (`authCache`, 30 s, listening on the test database).
 */
export async function createTestApi(options: { poolSize?: number; app?: Partial<AppOptions> } = {}): Promise<TestApi> {
  const t = await createTestDatabase({ max: options.poolSize ?? 20 });
  const seed = await seedWorkspace(t.db);
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  const app = await buildTestApp(t.db, redis, {
    authCache: { databaseUrl: t.url, ttlMs: DEFAULT_PRINCIPAL_CACHE_TTL_MS },
    ...options.app,
  });
  return {
    t,
    seed,
    redis,
    app,
    auth: { authorization: `Bearer ${seed.adminKey}` },
    close: async () => {
      await app.close();
      redis.disconnect();
      await t.drop();
    },
  };
}
