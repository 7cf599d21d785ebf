/**
 * A BigQuery source end to end, against `@outcome-runtime/testing/fake-bigquery`:
 * the key stored as a workspace secret, the outcome applied through the REST
 * API (which dry-runs its queries), and the worker's poll reading the
 * batched aggregates. And the abuse case: a key whose `token_uri` points at
 * an attacker's host is refused at apply and at the poll, and its signed JWT
 * (as good as the key for an hour) is sent nowhere.
 */

import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import {
  connectorProvider,
  decideGate,
  pollExperiment,
  proposeExperiment,
  type SourceAccess,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { createTestDatabase, type Seeded, seedWorkspace, type TestDatabase } from "@outcome-runtime/testing";
import { type FakeBigQuery, startFakeBigQuery } from "@outcome-runtime/testing/fake-bigquery";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let sources: SourceAccess;
let fake: FakeBigQuery;
/** The attacker's token endpoint, and what it received. */
let sink: Server;
let sinkUrl: string;
const stolen: string[] = [];

async function request(method: string, url: string, body?: string | object) {
  const response = await app.inject({
    method: method as "POST",
    url,
    headers: {
      authorization: `Bearer ${seed.adminKey}`,
      ...(typeof body === "string" ? { "content-type": "application/yaml" } : {}),
    },
    ...(body === undefined ? {} : { payload: body }),
  });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

type Diagnostic = { pointer: string; code: string; message: string; hint?: string };
const diagnostics = (body: Record<string, unknown>) => (body.errors ?? []) as Diagnostic[];

function outcome(slug: string, secret: string): string {
  return `version: 1
id: ${slug}
name: ${slug}
owner: maya.pm@acme.example
signal:
  metric: checkout_conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1m
  connector:
    type: bigquery
    project_id: acme-analytics
    location: EU
    dataset: product
    credentials_json_secret: ${secret}
    api_endpoint: ${fake.apiEndpoint}
    labels: { team: checkout }
    query: |
      SELECT experiment_key AS experiment, arm,
             COUNT(DISTINCT user_id) AS units,
             COUNTIF(converted) AS sum,
             COUNTIF(converted) AS sum_sq
        FROM exposures
       WHERE experiment_key IN UNNEST(:experiments)
         AND arm IN UNNEST(:arms)
         AND exposed_at <= :to
       GROUP BY 1, 2
target:
  direction: increase
  value: 5%
  relative: true
horizon: 30d
experiment_defaults:
  min_sample_per_arm: 100
  min_duration: 1s
  max_duration: 30d
  arms:
    - name: control
      weight: 50%
    - name: treatment
      weight: 50%
`;
}

/** The outcome activated, with one experiment running (approved, built, launched). */
async function running(slug: string): Promise<string> {
  const deps = { db: t.db, sources };
  await transitionOutcome(deps, seed.admin, slug, "activate", null);
  const proposed = await proposeExperiment(deps, seed.admin, slug, {
    key: `${slug}-x`,
    title: "One-page checkout",
    statement: "If the checkout fits on one page, more shoppers buy, because fewer of them leave between steps.",
  });
  await decideGate(deps, seed.admin, proposed.gate.id, { decision: "approve" });
  const id = proposed.experiment.id;
  await transitionExperiment(deps, seed.admin, id, { action: "claim", claimedBy: "agent" });
  const built = await transitionExperiment(deps, seed.admin, id, { action: "report_built", changedPaths: [] });
  await decideGate(deps, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
  return id;
}

beforeAll(async () => {
  fake = await startFakeBigQuery({ projectId: "acme-analytics" });
  sink = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      stolen.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end('{"access_token":"x","expires_in":3600}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/token`;
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  // The operator allows the fake (a stand-in for BigQuery and Google's token endpoint), not the sink.
  sources = sourceAccessFromEnv({
    OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("base64"),
    SOURCE_API_URLS: `bigquery=${fake.apiEndpoint},bigquery=${fake.tokenUrl}`,
  });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(t.db, redis, { deps: { db: t.db, sources } });
});

afterAll(async () => {
  await app?.close();
  redis?.disconnect();
  sink?.closeAllConnections();
  await new Promise((resolve) => sink?.close(resolve));
  await fake?.close();
  await t?.drop();
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.jobs.clear();
});

describe("a bigquery source", () => {
  it("refuses a key whose token_uri is an attacker's, at apply and at the poll, sending its JWT nowhere", async () => {
    const hostile = fake.serviceAccountKey({ token_uri: sinkUrl });
    expect((await request("PUT", "/v1/secrets/bq-hostile", { value: hostile })).status).toBe(201);
    const { status, body } = await request("POST", "/v1/outcomes", outcome("bq-hostile", "bq-hostile"));
    expect(status).toBe(422);
    const found = diagnostics(body).find((d) => d.code === "source_refused");
    expect(found?.pointer).toBe("/signal/connector");
    expect(found?.message).toContain(`has the token_uri "${sinkUrl}", not Google's token endpoint`);
    expect(JSON.stringify(body)).not.toContain("PRIVATE KEY");

    expect(stolen).toEqual([]);
    expect(fake.requests).toEqual([]);

    // A key rotated after the outcome was applied: the worker checks the key it reads, before any request.
    expect((await request("PUT", "/v1/secrets/bq-rotated", { value: fake.serviceAccountKey() })).status).toBe(201);
    expect((await request("POST", "/v1/outcomes", outcome("bq-rotated", "bq-rotated"))).status).toBeLessThan(300);
    const id = await running("bq-rotated");
    expect((await request("PUT", "/v1/secrets/bq-rotated", { value: hostile })).status).toBeLessThan(300);
    fake.requests.length = 0;
    const connectors = connectorProvider({ db: t.db, access: sources, maxTimeoutMs: 5000 });
    try {
      const error = await pollExperiment({ db: t.db, connectors }, id).then(
        () => undefined,
        (e: unknown) => e as { code?: string; message: string },
      );
      expect(error?.code).toBe("source_refused");
      expect(error?.message).toContain("not Google's token endpoint");
    } finally {
      await connectors.close();
    }
    expect(stolen).toEqual([]);
    expect(fake.requests).toEqual([]);
  });

  it("dry-runs the queries at apply (no job), and the worker's poll reads the batched aggregates", async () => {
    expect((await request("PUT", "/v1/secrets/bq-key", { value: fake.serviceAccountKey() })).status).toBe(201);
    fake.answer = (query) => ({
      columns: ["experiment", "arm", "units", "sum", "sum_sq"],
      rows: ((query.params.experiments as string[] | undefined) ?? []).flatMap((key) => [
        [key, "control", 1200, 300, 300],
        [key, "treatment", 1180, 340, 340],
      ]),
    });
    const applied = await request("POST", "/v1/outcomes", outcome("bq-checkout", "bq-key"));
    expect(applied.status).toBeLessThan(300);
    expect(fake.requests.filter((r) => r.path.endsWith("/jobs")).length).toBeGreaterThan(0);
    expect(fake.jobs.size).toBe(0);

    const id = await running("bq-checkout");
    fake.requests.length = 0;
    const connectors = connectorProvider({ db: t.db, access: sources, maxTimeoutMs: 5000 });
    try {
      const polled = await pollExperiment({ db: t.db, connectors }, id);
      expect(polled.status).toBe("polled");
    } finally {
      await connectors.close();
    }
    const [job] = [...fake.jobs.values()];
    expect(job?.query.params.experiments).toEqual(["bq-checkout-x"]);
    expect(job?.query.labels).toEqual({ app: "outcome-runtime", team: "checkout", outcome_runtime_read: "signal" });
    expect(job?.query.maximumBytesBilled).toBe(10_000_000_000);
    expect(stolen).toEqual([]);
  });
});
