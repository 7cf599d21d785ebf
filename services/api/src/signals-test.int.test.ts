/**
 * `POST /v1/outcomes/signals-test`, the dry run of an outcome's reads: a real
 * Postgres source (a scratch database read through its read-only role) named
 * by a workspace secret, opened for the caller's workspace only.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Principal } from "@outcome-runtime/core";
import { workspaces } from "@outcome-runtime/db";
import { type Caller, createApiKey, setWorkspaceSecret, sourceAccessFromEnv } from "@outcome-runtime/runtime";
import {
  createSourceDatabase,
  createTestDatabase,
  type Seeded,
  type SourceDatabase,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the source table stands for the user's own database, read by the postgres connector
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp } from "./test-app";

let t: TestDatabase;
let seed: Seeded;
let source: SourceDatabase;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let otherKey: string;

const sources = sourceAccessFromEnv({ OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("base64") });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  source = await createSourceDatabase();
  const admin = new pg.Client({ connectionString: source.adminUrl });
  await admin.connect();
  await admin.query(`
    CREATE TABLE exposures (experiment_key text, arm text, ts timestamptz, units bigint, conversions bigint);
    INSERT INTO exposures VALUES
      ('checkout-v2', 'control',   '2025-01-06T00:00:00Z', 2000, 410),
      ('checkout-v2', 'treatment', '2025-01-06T00:00:00Z', 1990, 470);`);
  await admin.end();
  const deps = { db: t.db, sources };
  await setWorkspaceSecret(deps, seed.admin, { name: "analytics-db", value: source.readerUrl });
  // Another workspace, with an admin of its own and no secret.
  const other = await workspaces.ensureWorkspace(t.db, "beta", "Beta");
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: other.id } satisfies Principal,
    channel: "system",
    requestId: null,
  };
  otherKey = (await createApiKey(deps, operator, { name: "beta-admin", role: "admin" })).key;
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(t.db, redis, { deps });
});
afterAll(async () => {
  await app.close();
  redis.disconnect();
  await t.drop();
  await source.drop();
});

function outcome(where: string): string {
  return `version: 1
id: dry-run-api
name: Dry run through the API
owner: owner@acme.example
signal:
  metric: checkout_conversion
  kind: proportion
  unit: user
  connector:
    type: postgres
    database_url_secret: analytics-db
    query: |
      SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts
        FROM exposures
       WHERE ${where}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
`;
}

const WHERE = "experiment_key = :experiment AND ts > :from AND ts <= :to";
const WINDOW = { from: "2025-01-01T00:00:00Z", to: "2025-01-07T00:00:00Z" };

function post(body: unknown, key: string | null = seed.adminKey) {
  return app.inject({
    method: "POST",
    url: "/v1/outcomes/signals-test?file=checkout.yaml",
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
    payload: body as Record<string, unknown>,
  });
}

describe("POST /v1/outcomes/signals-test", () => {
  it("reads the signal with the workspace's secret and answers the rows the worker would store", async () => {
    const response = await post({ source: outcome(WHERE), experiments: ["checkout-v2"], ...WINDOW });
    expect(response.statusCode).toBe(200);
    const report = response.json();
    expect(report).toMatchObject({
      file: "checkout.yaml",
      from: "2025-01-01T00:00:00.000Z",
      to: "2025-01-07T00:00:00.000Z",
      experiments: ["checkout-v2"],
      placeholder: false,
      arms: ["control", "treatment"],
      ok: true,
    });
    expect(report.metrics).toHaveLength(1);
    expect(report.metrics[0]).toMatchObject({
      path: "signal",
      type: "postgres",
      form: "single",
      error: null,
      cost: null,
    });
    expect(report.metrics[0].source).not.toContain("outcome_runtime_reader:");
    expect(report.metrics[0].experiments).toEqual([
      {
        experiment: "checkout-v2",
        error: null,
        rows: [
          { arm: "control", units: 2000, sum: 410, sum_sq: 410, mean: 0.205, ts: "2025-01-06T00:00:00.000Z" },
          { arm: "treatment", units: 1990, sum: 470, sum_sq: 470, mean: 470 / 1990, ts: "2025-01-06T00:00:00.000Z" },
        ],
      },
    ]);
  });

  it("a query the source refuses: ok false, the field, the query's line, its place in the file and Postgres's message", async () => {
    const response = await post({
      source: outcome("experiment_key = :experiment AND ts <= :to AND no_such_column > 0"),
      experiments: ["checkout-v2"],
      ...WINDOW,
    });
    expect(response.statusCode).toBe(200);
    const report = response.json();
    expect(report.ok).toBe(false);
    expect(report.metrics[0].error).toEqual({
      code: "query_failed",
      field: "signal.connector.query",
      line: 3,
      offset: expect.any(Number),
      location: { line: 15, column: 7 },
      message: expect.stringContaining('postgres query at line 3: column "no_such_column" does not exist'),
    });
  });

  it("another workspace cannot use this workspace's secret", async () => {
    const response = await post({ source: outcome(WHERE), experiments: ["checkout-v2"], ...WINDOW }, otherKey);
    expect(response.statusCode).toBe(200);
    const report = response.json();
    expect(report.ok).toBe(false);
    expect(report.metrics[0].error).toMatchObject({
      code: "invalid_config",
      field: "signal.connector.database_url_secret",
      message: expect.stringContaining("this workspace has no secret named analytics-db"),
    });
    expect(JSON.stringify(report)).not.toContain("2000");
  });

  it("refuses an unauthenticated request, a file with errors and a window that ends before it starts", async () => {
    const anonymous = await post({ source: outcome(WHERE) }, null);
    expect(anonymous.statusCode).toBe(401);
    const invalid = await post({ source: "version: 1\nid: x\n" });
    expect(invalid.statusCode).toBe(422);
    expect(invalid.json().code).toBe("outcome_invalid");
    const backwards = await post({ source: outcome(WHERE), from: WINDOW.to, to: WINDOW.from });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json()).toMatchObject({
      code: "validation_failed",
      detail: expect.stringContaining("give a window that ends after it starts"),
    });
    const tooMany = await post({ source: outcome(WHERE), experiments: Array.from({ length: 21 }, (_, i) => `e${i}`) });
    expect(tooMany.statusCode).toBe(400);
  });

  it("without experiments, reads the placeholder key over the last 7 days", async () => {
    const report = (await post({ source: outcome(WHERE) })).json();
    expect(report).toMatchObject({ placeholder: true, experiments: ["outcome-runtime-signals-test"], ok: true });
    expect(Date.parse(report.to) - Date.parse(report.from)).toBe(7 * 86_400_000);
  });
});
