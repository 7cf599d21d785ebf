/**
 * Signal sources as an attacker with a member's key would use them (security
 * findings 1 to 3): naming the worker's own environment variables as
 * credentials, sending a source's credentials to a host of theirs, reading
 * the runtime's database (every workspace's API keys) and the server's files,
 * and queries that outlive the worker. Each attack runs through the REST API
 * as reported, then through the worker's poll (the connector provider the
 * worker uses), and must do no harm: nothing stored, nothing sent, nothing
 * read.
 */

import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import type { Principal } from "@outcome-runtime/core";
import { workspaces } from "@outcome-runtime/db";
import {
  applyOutcome,
  type Caller,
  connectorProvider,
  createApiKey,
  decideGate,
  getExperiment,
  pollExperiment,
  proposeExperiment,
  type SourceAccess,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createSourceDatabase,
  createTestDatabase,
  readerOf,
  type Seeded,
  type SourceDatabase,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the test builds the team's analytics database the connector reads
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let t: TestDatabase;
let seed: Seeded;
let analytics: SourceDatabase;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let sources: SourceAccess;
/** The attacker's HTTP sink on loopback, and every request it received. */
let sink: Server;
let sinkUrl: string;
const received: { url: string; authorization: string | undefined }[] = [];
const keys = { member: "", betaMember: "", adminReadOnly: "" };
let beta: { id: string; slug: string; admin: Caller };
/** What the worker's process environment holds besides the source variables. */
const PROCESS_SECRETS = {
  DATABASE_URL: "",
  OUTCOME_RUNTIME_WEBHOOK_SECRET: `whsec-${randomBytes(12).toString("hex")}`,
  REDIS_URL: "redis://127.0.0.1:6379",
  ANTHROPIC_API_KEY: "sk-ant-secret",
};

async function request(method: string, url: string, key: string, body?: string | object) {
  const response = await app.inject({
    method: method as "POST",
    url,
    headers: {
      authorization: `Bearer ${key}`,
      ...(typeof body === "string" ? { "content-type": "application/yaml" } : {}),
    },
    ...(body === undefined ? {} : { payload: body }),
  });
  return { status: response.statusCode, body: response.json() as Record<string, unknown> };
}

type Diagnostic = { pointer: string; code: string; message: string; hint?: string; line: number; column: number };
const diagnostics = (body: Record<string, unknown>) => (body.errors ?? []) as Diagnostic[];

function mixpanelOutcome(slug: string, connector: string): string {
  return `version: 1
id: ${slug}
name: ${slug}
owner: mallory@acme.example
signal:
  metric: signup_rate
  kind: proportion
  unit: user
  connector:
    type: mixpanel
    project_id: 2741931
    event: Signed up
${connector}
target:
  direction: increase
  value: 5%
  relative: true
horizon: 30d
`;
}

function postgresOutcome(slug: string, connector: string, query = QUERY): string {
  return `version: 1
id: ${slug}
name: ${slug}
owner: mallory@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1m
  connector:
    type: postgres
${connector}
    query: |
${query
  .split("\n")
  .map((line) => `      ${line}`)
  .join("\n")}
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

const QUERY = `SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq
  FROM exposures
 WHERE experiment_key = :experiment AND exposed_at <= :to
 GROUP BY arm`;

/** An outcome applied and activated, with one experiment running (approved, built, launched). */
async function running(deps: { db: TestDatabase["db"]; sources: SourceAccess }, source: string, slug: string) {
  await applyOutcome(deps, seed.admin, { source });
  await transitionOutcome(deps, seed.admin, slug, "activate", null);
  const proposed = await proposeExperiment(deps, seed.admin, slug, {
    key: `${slug}-x`,
    title: "Shorter signup",
    statement: "If we shorten the signup, more users sign up, because there are fewer fields.",
  });
  await decideGate(deps, seed.admin, proposed.gate.id, { decision: "approve" });
  const id = proposed.experiment.id;
  await transitionExperiment(deps, seed.admin, id, { action: "claim", claimedBy: "agent" });
  const built = await transitionExperiment(deps, seed.admin, id, { action: "report_built", changedPaths: [] });
  await decideGate(deps, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
  return id;
}

async function pollError(access: SourceAccess, experimentId: string) {
  const connectors = connectorProvider({ db: t.db, access, maxTimeoutMs: 5000 });
  try {
    await pollExperiment({ db: t.db, connectors }, experimentId);
    throw new Error("expected the poll to fail");
  } catch (error) {
    return error as { code?: string; message: string; details?: Record<string, unknown> };
  } finally {
    await connectors.close();
  }
}

beforeAll(async () => {
  sink = createServer((req: IncomingMessage, res) => {
    received.push({ url: req.url ?? "", authorization: req.headers.authorization });
    res.writeHead(200, { "content-type": "application/json" }).end('{"data":{"series":[],"values":{}}}');
  });
  await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/mp`;

  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  PROCESS_SECRETS.DATABASE_URL = t.url;
  analytics = await createSourceDatabase();
  const admin = new pg.Client({ connectionString: analytics.adminUrl });
  await admin.connect();
  await admin.query(
    "CREATE TABLE exposures (unit_id text, experiment_key text, arm text, exposed_at timestamptz); INSERT INTO exposures VALUES ('u1', 'x', 'control', now())",
  );
  await admin.end();
  // The runtime's database readable by the reader: an operator's mistake the connector must still refuse.
  const runtimeAsReader = await readerOf(t.url);

  const ws = await workspaces.ensureWorkspace(t.db, "beta", "Beta workspace");
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: ws.id } satisfies Principal,
    channel: "system",
    requestId: null,
  };
  const betaAdmin = await createApiKey({ db: t.db }, operator, { name: "beta-admin", role: "admin" });
  beta = {
    id: ws.id,
    slug: ws.slug,
    admin: {
      principal: { id: betaAdmin.id, name: "beta-admin", role: "admin", workspaceId: ws.id },
      channel: "api",
      requestId: null,
    },
  };
  keys.betaMember = (await createApiKey({ db: t.db }, beta.admin, { name: "eve@beta.example", role: "member" })).key;
  keys.member = (await seed.key("mallory@acme.example", "member")).key;
  keys.adminReadOnly = (
    await createApiKey({ db: t.db }, seed.admin, { name: "auditor", role: "admin", scopes: ["read", "admin"] })
  ).key;

  sources = sourceAccessFromEnv({
    ...PROCESS_SECRETS,
    OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL: analytics.readerUrl,
    OUTCOME_RUNTIME_SOURCE_ANALYTICS_AS_SUPERUSER: analytics.adminUrl,
    OUTCOME_RUNTIME_SOURCE_RUNTIME_COPY: runtimeAsReader,
    OUTCOME_RUNTIME_SOURCE_MP_USER: "service-account",
    OUTCOME_RUNTIME_SOURCE_MP_SECRET: "service-secret",
    OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("base64"),
    SOURCE_ENV_WORKSPACES: [
      "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL=default",
      "OUTCOME_RUNTIME_SOURCE_ANALYTICS_AS_SUPERUSER=*",
      "OUTCOME_RUNTIME_SOURCE_RUNTIME_COPY=*",
      "OUTCOME_RUNTIME_SOURCE_MP_USER=*",
      "OUTCOME_RUNTIME_SOURCE_MP_SECRET=*",
    ].join(";"),
  });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(t.db, redis, { deps: { db: t.db, sources } });
});

afterAll(async () => {
  await app?.close();
  redis?.disconnect();
  await new Promise((resolve) => sink?.close(resolve));
  await t?.drop();
  await analytics?.drop();
});

describe("finding 1: a member names the worker's environment as a source's credentials", () => {
  it("refuses DATABASE_URL, the webhook secret and an attacker's api_url at apply; nothing is stored or sent", async () => {
    const attack = mixpanelOutcome(
      "exfiltrate",
      `    username_env: DATABASE_URL\n    secret_env: OUTCOME_RUNTIME_WEBHOOK_SECRET\n    api_url: ${sinkUrl}`,
    );
    const { status, body } = await request("POST", "/v1/outcomes", keys.member, attack);
    expect(status).toBe(422);
    expect(body.code).toBe("outcome_invalid");
    const errors = diagnostics(body);
    const byPointer = Object.fromEntries(errors.map((e) => [e.pointer, e]));
    expect(byPointer["/signal/connector/username_env"]).toMatchObject({ code: "bad_format", line: 13 });
    expect(byPointer["/signal/connector/username_env"]?.hint).toContain("OUTCOME_RUNTIME_SOURCE_DATABASE_URL");
    expect(byPointer["/signal/connector/secret_env"]?.code).toBe("bad_format");
    for (const other of ["REDIS_URL", "ANTHROPIC_API_KEY", "PATH"]) {
      const again = await request(
        "POST",
        "/v1/outcomes",
        keys.member,
        postgresOutcome(`env-${other.toLowerCase()}`, `    database_url_env: ${other}`),
      );
      expect(diagnostics(again.body).map((e) => e.pointer)).toContain("/signal/connector/database_url_env");
    }
    expect((await request("GET", "/v1/outcomes/exfiltrate", keys.member)).status).toBe(404);
    expect(received).toEqual([]);
  });

  it("refuses a host Mixpanel does not own even with source variables, at apply and at the worker's poll", async () => {
    const connector = `    username_env: OUTCOME_RUNTIME_SOURCE_MP_USER\n    secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET\n    api_url: ${sinkUrl}`;
    const { status, body } = await request("POST", "/v1/outcomes", keys.member, mixpanelOutcome("mp-sink", connector));
    expect(status).toBe(422);
    expect(diagnostics(body)).toContainEqual(
      expect.objectContaining({ pointer: "/signal/connector/api_url", code: "source_refused" }),
    );
    expect(diagnostics(body)[0]?.hint).toContain(`SOURCE_API_URLS=mixpanel=${sinkUrl}`);

    // An outcome applied while the operator allowed that host (say, a proxy since retired): the worker,
    // configured without it, refuses before sending anything.
    const permissive = sourceAccessFromEnv({
      OUTCOME_RUNTIME_SOURCE_MP_USER: "service-account",
      OUTCOME_RUNTIME_SOURCE_MP_SECRET: "service-secret",
      SOURCE_API_URLS: `mixpanel=${sinkUrl}`,
    });
    const id = await running(
      { db: t.db, sources: permissive },
      mixpanelOutcome("mp-retired-proxy", `${connector}`).replace(
        "horizon: 30d\n",
        "horizon: 30d\nexperiment_defaults:\n  arms:\n    - name: control\n      weight: 50%\n    - name: treatment\n      weight: 50%\n",
      ),
      "mp-retired-proxy",
    );
    const error = await pollError(sources, id);
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("is not one of mixpanel's documented API hosts");
    const { experiment } = await getExperiment({ db: t.db }, seed.admin, id);
    expect(experiment.polling.error?.code).toBe("source_refused");
    expect(received).toEqual([]);
  });

  it("keeps workspace secrets and restricted source variables to their workspace, at apply and at the poll", async () => {
    // Workspace default's admin stores its analytics connection; nobody reads it back.
    const set = await request("PUT", "/v1/secrets/analytics-db", seed.adminKey, {
      value: analytics.readerUrl,
      description: "analytics, read-only",
    });
    expect(set.status).toBe(201);
    expect(JSON.stringify(set.body)).not.toContain(analytics.readerUrl);
    const listed = await request("GET", "/v1/secrets", keys.member);
    expect(listed.body.secrets).toEqual([expect.objectContaining({ name: "analytics-db", version: 1 })]);
    expect(JSON.stringify(listed.body)).not.toContain("outcome_runtime_reader");
    // Only an admin key with write and admin sets secrets.
    expect((await request("PUT", "/v1/secrets/mine", keys.member, { value: "x" })).status).toBe(403);
    expect((await request("PUT", "/v1/secrets/mine", keys.adminReadOnly, { value: "x" })).status).toBe(403);

    // Workspace beta names default's secret, and a variable the operator kept for default.
    const stolenSecret = await request(
      "POST",
      "/v1/outcomes",
      keys.betaMember,
      postgresOutcome("beta-steals", "    database_url_secret: analytics-db"),
    );
    expect(stolenSecret.status).toBe(422);
    expect(diagnostics(stolenSecret.body)[0]).toMatchObject({
      pointer: "/signal/connector/database_url_secret",
      code: "unknown_secret",
    });
    const restricted = await request(
      "POST",
      "/v1/outcomes",
      keys.betaMember,
      postgresOutcome("beta-env", "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL"),
    );
    expect(restricted.status).toBe(422);
    expect(diagnostics(restricted.body)[0]).toMatchObject({
      pointer: "/signal/connector/database_url_env",
      code: "source_refused",
    });
    expect(diagnostics(restricted.body)[0]?.message).toContain(
      "the operator has not allowed workspace beta to use OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL",
    );

    // Default's own outcome reads through its secret, and the poll stores the source's numbers.
    const ok = await request(
      "POST",
      "/v1/outcomes",
      seed.adminKey,
      postgresOutcome("default-reads", "    database_url_secret: analytics-db"),
    );
    expect(ok.status).toBe(201);
    expect(ok.body.warnings).toEqual([]);

    // The worker refuses beta's use of the variable too (an outcome stored before the operator restricted it).
    const open = sourceAccessFromEnv({ OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL: analytics.readerUrl });
    const betaDeps = { db: t.db, sources: open };
    await applyOutcome(betaDeps, beta.admin, {
      source: postgresOutcome("beta-before", "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL"),
    });
    const connectors = connectorProvider({ db: t.db, access: sources });
    await expect(
      connectors.get(
        beta.id,
        { type: "postgres", database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL", query: QUERY },
        "proportion",
      ),
    ).rejects.toMatchObject({ code: "source_refused" });
    await expect(
      connectors.get(beta.id, { type: "postgres", database_url_secret: "analytics-db", query: QUERY }, "proportion"),
    ).rejects.toMatchObject({
      code: "invalid_config",
      message: expect.stringContaining("no secret named analytics-db"),
    });
    await connectors.close();
  });
});

describe("finding 2: a signal query reads the runtime's own database and the server", () => {
  it("has no default database: a postgres source without a connection is an error naming the field", async () => {
    const { status, body } = await request(
      "POST",
      "/v1/outcomes",
      keys.member,
      postgresOutcome("no-url", "    timeout: 30s"),
    );
    expect(status).toBe(422);
    expect(diagnostics(body)[0]).toMatchObject({ pointer: "/signal/connector", code: "invalid_connector" });
    expect(diagnostics(body)[0]?.message).toContain("database_url_secret: is missing (so is database_url_env)");
  });

  it("refuses the runtime's database (read as every workspace's API keys), at apply and at the poll; the query never runs", async () => {
    const query = `SELECT name AS arm, count(*) AS units, 0 AS sum, 0 AS sum_sq
  FROM api_keys
 WHERE :experiment IS NOT NULL AND created_at <= :to
 GROUP BY name`;
    const { status, body } = await request(
      "POST",
      "/v1/outcomes",
      keys.member,
      postgresOutcome("read-keys", "    database_url_env: OUTCOME_RUNTIME_SOURCE_RUNTIME_COPY", query),
    );
    expect(status).toBe(422);
    expect(diagnostics(body)[0]).toMatchObject({ pointer: "/signal/connector", code: "source_refused" });
    expect(diagnostics(body)[0]?.message).toContain("reaches the runtime's own database");

    // Stored while the API could not see the source: the worker refuses before the query.
    const blind = sourceAccessFromEnv({});
    const id = await running(
      { db: t.db, sources: blind },
      postgresOutcome("read-keys-later", "    database_url_env: OUTCOME_RUNTIME_SOURCE_RUNTIME_COPY", query),
      "read-keys-later",
    );
    const error = await pollError(sources, id);
    expect(error.code).toBe("source_refused");
    expect(error.details?.reason).toBe("runtime_database");
    const { experiment } = await getExperiment({ db: t.db }, seed.admin, id);
    expect(experiment.polling.error?.message).not.toContain("ork_");
  });

  it("refuses a superuser connection, and the server's files, dblink and backend signals in the SQL", async () => {
    const superuser = await request(
      "POST",
      "/v1/outcomes",
      keys.member,
      postgresOutcome("as-superuser", "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_AS_SUPERUSER"),
    );
    expect(superuser.status).toBe(422);
    expect(diagnostics(superuser.body)[0]?.message).toContain('the role "postgres" is a superuser');

    const hostile: [string, RegExp][] = [
      [
        "SELECT pg_read_file('/etc/passwd') AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq WHERE :experiment <> '' AND now() <= :to",
        /reads files of the server/,
      ],
      [
        "SELECT d AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM pg_ls_dir('/') d WHERE :experiment <> '' AND now() <= :to",
        /lists directories/,
      ],
      [
        "SELECT 'control' AS arm, pg_terminate_backend(pid)::int AS units, 0 AS sum, 0 AS sum_sq FROM pg_stat_activity WHERE :experiment <> '' AND now() <= :to",
        /pg_terminate_backend/,
      ],
      [
        "SELECT 'control' AS arm, dblink_exec('dbname=app', 'CREATE TABLE x (a int)')::int AS units, 0 AS sum, 0 AS sum_sq WHERE :experiment <> '' AND now() <= :to",
        /dblink_exec/,
      ],
      [
        "SELECT 1 AS units WHERE :experiment <> '' AND now() <= :to;\nCOMMIT;\nCREATE TABLE pwned (a int)",
        /more than one statement/,
      ],
    ];
    for (const [sql, reason] of hostile) {
      const { status, body } = await request(
        "POST",
        "/v1/outcomes",
        keys.member,
        postgresOutcome(
          `sql-${randomBytes(3).toString("hex")}`,
          "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL",
          sql,
        ),
      );
      expect(status, sql).toBe(422);
      const error = diagnostics(body)[0];
      expect(error, sql).toMatchObject({ pointer: "/signal/connector/query", code: "sql_refused" });
      expect(error?.message, sql).toMatch(reason);
      // The position is the offending text's, in the YAML (the query starts on line 14, indented 6).
      expect(error?.line, sql).toBeGreaterThanOrEqual(14);
      expect(error?.column, sql).toBeGreaterThanOrEqual(7);
    }
  });
});

describe("every metric's connector is checked, secondary metrics included", () => {
  it("refuses pg_read_file in a secondary metric's query at its own line, and the unknown connector of one", async () => {
    const withSecondary = (slug: string, secondary: string) =>
      postgresOutcome(slug, "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL").replace(
        "target:\n",
        `secondary_metrics:\n${secondary}\ntarget:\n`,
      );
    const hostile = withSecondary(
      `secondary-${randomBytes(3).toString("hex")}`,
      [
        "  - metric: pages",
        "    kind: mean",
        "    connector:",
        "      type: postgres",
        "      database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL",
        "      query: \"SELECT pg_read_file('/etc/passwd') AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq WHERE :experiment <> '' AND now() <= :to\"",
      ].join("\n"),
    );
    const refused = await request("POST", "/v1/outcomes", keys.member, hostile);
    expect(refused.status).toBe(422);
    const error = diagnostics(refused.body)[0];
    expect(error).toMatchObject({ pointer: "/secondary_metrics/0/connector/query", code: "sql_refused" });
    expect(error?.message).toMatch(/reads files of the server/);
    const line = hostile.split("\n").findIndex((l) => l.includes("pg_read_file")) + 1;
    expect(error?.line).toBe(line);

    const unknown = await request(
      "POST",
      "/v1/outcomes",
      keys.member,
      withSecondary(
        `secondary-${randomBytes(3).toString("hex")}`,
        ["  - metric: pages", "    kind: mean", "    connector:", "      type: snowflak"].join("\n"),
      ),
    );
    expect(unknown.status).toBe(422);
    expect(diagnostics(unknown.body).map((d) => d.pointer)).toContain("/secondary_metrics/0/connector/type");
  });
});

describe("finding 3: queries outlive the worker", () => {
  it("refuses a 30-day statement timeout with the field named", async () => {
    const { status, body } = await request(
      "POST",
      "/v1/outcomes",
      keys.member,
      postgresOutcome("month-timeout", "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL\n    timeout: 30d"),
    );
    expect(status).toBe(422);
    expect(diagnostics(body)[0]).toMatchObject({ pointer: "/signal/connector/timeout", code: "invalid_connector" });
    expect(diagnostics(body)[0]?.message).toContain("longer than the most a signal query may run (1h)");
  });
});

describe("POST /v1/outcomes/validate", () => {
  it("shows a multi-statement query at its line and column, and a source the API cannot reach as a warning", async () => {
    const multi = await request(
      "POST",
      "/v1/outcomes/validate",
      keys.member,
      postgresOutcome(
        "multi",
        "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL",
        `${QUERY};\nCOMMIT; CREATE TABLE pwned (a int)`,
      ),
    );
    expect(multi.status).toBe(200);
    expect(multi.body.valid).toBe(false);
    expect(diagnostics(multi.body)[0]).toMatchObject({ code: "sql_refused", line: 18, column: 7 });

    const unreachable = sourceAccessFromEnv({
      OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL: "postgres://reader@127.0.0.1:1/gone",
    });
    const offline = await buildTestApp(t.db, redis, { deps: { db: t.db, sources: unreachable } });
    try {
      const response = await offline.inject({
        method: "POST",
        url: "/v1/outcomes/validate",
        headers: { authorization: `Bearer ${keys.member}`, "content-type": "application/yaml" },
        payload: postgresOutcome("unreachable", "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL"),
      });
      const body = response.json() as { valid: boolean; warnings: Diagnostic[] };
      expect(body.valid).toBe(true);
      expect(body.warnings[0]).toMatchObject({ pointer: "/signal/connector", code: "source_unchecked" });
    } finally {
      await offline.close();
    }
  });
});
