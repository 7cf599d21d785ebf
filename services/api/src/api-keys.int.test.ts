/**
 * API keys through the HTTP API: scopes (read, write, admin) on REST and MCP,
 * listing without secrets, revocation that takes effect at the next request,
 * the last-used time, and the per-IP limit on failed authentications.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { audit } from "@outcome-runtime/db";
import { type Client, connectHttp, toolErrorOf } from "@outcome-runtime/mcp/test-support";
import { deleteRedisKeys, exampleOutcome, outcomeVariant, sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rateLimitNamespace } from "./app";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

const prefix = `test-api-keys-${randomBytes(6).toString("hex")}`;
let api: TestApi;
let endpoint: string;
const clients: Client[] = [];

beforeAll(async () => {
  api = await createTestApi({ app: { rateLimitNamespace: `${prefix}:rate-limit:` } });
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  endpoint = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}/mcp`;
});
afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
  await deleteRedisKeys(api.redis, prefix);
  await api?.close();
});

interface CreatedKey {
  key: string;
  id: string;
  name: string;
  role: string;
  scopes: string[];
  prefix: string;
}

async function createKey(body: { name: string; role: string; scopes?: string[] }): Promise<CreatedKey> {
  const response = await api.app.inject({ method: "POST", url: "/v1/keys", headers: api.auth, payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as CreatedKey;
}

function as(key: string, method: "GET" | "POST" | "PATCH" | "DELETE", url: string, payload?: unknown) {
  return api.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

function applyYaml(key: string, slug: string) {
  return api.app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/yaml" },
    body: exampleOutcome().replace(/^slug: .*$/m, `slug: ${slug}`),
  });
}

describe("scopes", () => {
  it("default to what the role allows, and a scope beyond the role is refused", async () => {
    expect((await createKey({ name: "sam@acme.example", role: "member" })).scopes).toEqual(["read", "write"]);
    expect((await createKey({ name: "root@acme.example", role: "admin" })).scopes).toEqual(["read", "write", "admin"]);
    expect((await createKey({ name: "tv", role: "member", scopes: ["read"] })).scopes).toEqual(["read"]);
    const refused = await api.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: api.auth,
      payload: { name: "sneaky", role: "member", scopes: ["read", "admin"] },
    });
    expect(refused.json()).toMatchObject({ code: "validation_failed", errors: [{ field: "scopes" }] });
    const unknown = await api.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: api.auth,
      payload: { name: "x", role: "member", scopes: ["delete"] },
    });
    expect(unknown.json()).toMatchObject({ code: "validation_failed" });
  });

  it("a read key reads, and is refused every change with a 403 naming the write scope; nothing changes", async () => {
    const reader = await createKey({ name: "dashboard-tv", role: "admin", scopes: ["read"] });
    expect((await as(reader.key, "GET", "/v1/outcomes")).statusCode).toBe(200);
    expect((await as(reader.key, "GET", "/v1/gates")).statusCode).toBe(200);

    const applied = await applyYaml(reader.key, "read-only-plant");
    expect(applied.statusCode).toBe(403);
    expect(applied.headers["content-type"]).toContain("application/problem+json");
    expect(applied.headers["www-authenticate"]).toContain('error="insufficient_scope", scope="write"');
    const problem = applied.json();
    expect(problem).toMatchObject({ code: "forbidden", status: 403, details: { missingScope: "write" } });
    expect(problem.detail).toContain('lacks the "write" scope');
    expect(problem.detail).toContain("outcome-runtime keys create");
    expect((await as(reader.key, "POST", "/v1/outcomes/read-only-plant/activate", {})).statusCode).toBe(403);
    expect((await as(api.seed.adminKey, "GET", "/v1/outcomes/read-only-plant")).statusCode).toBe(404);
    // Reading an admin route needs the admin scope, not read.
    expect((await as(reader.key, "GET", "/v1/keys")).json()).toMatchObject({ details: { missingScope: "admin" } });
  });

  it("a write key without admin cannot use the admin routes, even on an admin's key", async () => {
    const writer = await createKey({ name: "ci@acme.example", role: "admin", scopes: ["read", "write"] });
    expect((await applyYaml(writer.key, "written-by-ci")).statusCode).toBe(201);
    for (const [method, url, body] of [
      ["GET", "/v1/keys", undefined],
      ["POST", "/v1/keys", { name: "escalate", role: "admin" }],
      ["DELETE", `/v1/keys/${api.seed.admin.principal.id}`, undefined],
      ["PATCH", "/v1/workspace/settings", { sessionRequiredDecisions: [] }],
      ["GET", "/v1/export/manifest", undefined],
    ] as const) {
      const response = await as(writer.key, method, url, body);
      expect(`${method} ${url} → ${response.statusCode}`).toBe(`${method} ${url} → 403`);
      expect(response.json()).toMatchObject({ code: "forbidden", details: { missingScope: "admin" } });
    }
    // The admin key is not revoked by the refused DELETE.
    expect((await as(api.seed.adminKey, "GET", "/v1/keys")).statusCode).toBe(200);
  });

  it("a read,admin key inspects and exports, but changes no security setting and starts no import (write + admin)", async () => {
    const auditor = await createKey({ name: "auditor@acme.example", role: "admin", scopes: ["read", "admin"] });
    const settings = await as(api.seed.adminKey, "PATCH", "/v1/workspace/settings", {
      sessionRequiredDecisions: ["ship"],
    });
    expect(settings.statusCode, settings.body).toBe(200);
    // The attack as reported: clearing sessionRequiredDecisions with a key that has no write scope.
    const cleared = await as(auditor.key, "PATCH", "/v1/workspace/settings", { sessionRequiredDecisions: [] });
    expect(cleared.statusCode).toBe(403);
    expect(cleared.json()).toMatchObject({ code: "forbidden", details: { missingScope: "write" } });
    expect(cleared.json().detail).toContain('lacks the "write" scope');
    expect(cleared.headers["www-authenticate"]).toContain('error="insufficient_scope", scope="admin write"');
    for (const [url, body] of [
      ["/v1/import/begin", { format: "outcome-runtime-export", version: 1 }],
      ["/v1/import/outcomes", []],
      ["/v1/import/finish", { format: "outcome-runtime-export", version: 1 }],
    ] as const) {
      const refused = await as(auditor.key, "POST", url, body);
      expect(`${url} → ${refused.statusCode}`).toBe(`${url} → 403`);
      expect(refused.json()).toMatchObject({ code: "forbidden", details: { missingScope: "write" } });
    }
    // Nothing changed; reading and exporting still work for it.
    const now = await as(auditor.key, "GET", "/v1/workspace/settings");
    expect(now.json()).toMatchObject({ sessionRequiredDecisions: ["ship"] });
    expect((await as(auditor.key, "GET", "/v1/export/manifest")).statusCode).toBe(200);
    expect((await as(auditor.key, "GET", "/v1/keys")).statusCode).toBe(200);
    // A key with both scopes may.
    const restored = await as(api.seed.adminKey, "PATCH", "/v1/workspace/settings", { sessionRequiredDecisions: [] });
    expect(restored.statusCode).toBe(200);
  });

  it("a key may do what both its role and its scopes allow: a member key with every scope it can have is no admin", async () => {
    const member = await createKey({ name: "lee@acme.example", role: "member" });
    const listed = await as(member.key, "GET", "/v1/keys");
    expect(listed.statusCode).toBe(403);
    expect(listed.json()).toMatchObject({ code: "forbidden" });
  });

  it("a viewer key gets read only, reads what a member reads, and is told on any change that a viewer reads only", async () => {
    const viewer = await createKey({ name: "cfo@acme.example", role: "viewer" });
    expect(viewer).toMatchObject({ role: "viewer", scopes: ["read"] });
    const apply = (key: string, id: string) =>
      api.app.inject({
        method: "POST",
        url: "/v1/outcomes",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/yaml" },
        body: outcomeVariant(id),
      });
    const seen = await apply(api.seed.adminKey, "seen-by-viewer");
    expect(seen.statusCode, seen.body).toBe(201);
    for (const url of ["/v1/outcomes", "/v1/outcomes/seen-by-viewer", "/v1/gates", "/v1/audit", "/v1/secrets"]) {
      const read = await as(viewer.key, "GET", url);
      expect(`GET ${url} → ${read.statusCode}`).toBe(`GET ${url} → 200`);
    }

    const applied = await apply(viewer.key, "written-by-viewer");
    expect(applied.statusCode).toBe(403);
    // Refused by its role, not for a missing scope: no key it could be given would write.
    expect(applied.headers["www-authenticate"]).toBeUndefined();
    expect(applied.json()).toMatchObject({
      code: "forbidden",
      detail:
        "a viewer reads only; ask an admin for the member role to create an outcome from outcome.yaml, or revise one you own",
      details: { role: "viewer", operation: "outcome.apply" },
    });
    const listed = await as(viewer.key, "GET", "/v1/keys");
    expect(listed.json()).toMatchObject({
      code: "forbidden",
      detail:
        "a viewer reads only; ask an admin for the admin role to list the workspace's API keys (never a key or its hash)",
    });
    expect((await as(api.seed.adminKey, "GET", "/v1/outcomes/written-by-viewer")).statusCode).toBe(404);

    const writer = await api.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: api.auth,
      payload: { name: "cfo@acme.example", role: "viewer", scopes: ["read", "write"] },
    });
    expect(writer.statusCode).toBe(400);
    expect(writer.json()).toMatchObject({ code: "validation_failed", errors: [{ field: "scopes" }] });
    expect(writer.json().detail).toMatch(/^a viewer key cannot have the write scope/);
  });

  it("through MCP, a read key calls the read tools and is refused the write tools", async () => {
    const reader = await createKey({ name: "claude-readonly", role: "agent", scopes: ["read"] });
    const client = await connectHttp(endpoint, reader.key);
    clients.push(client);
    const outcomes = await client.callTool({ name: "get_active_outcomes", arguments: {} });
    expect(outcomes.isError).toBeFalsy();
    for (const [name, args] of [
      ["claim_experiment", { experiment_id: "express-pay" }],
      ["request_human_gate", { experiment_id: "express-pay", question: "May I touch payments?" }],
      [
        "report_experiment_built",
        { experiment_id: "express-pay", summary: "done", changed_paths: ["apps/web/src/checkout/x.ts"] },
      ],
    ] as const) {
      const result = await client.callTool({ name, arguments: args });
      expect(result.isError, name).toBe(true);
      const error = toolErrorOf(result);
      expect(error, name).toMatchObject({ code: "forbidden", details: { missingScope: "write" } });
      expect(error?.message).toContain('lacks the "write" scope');
    }
    const refusals = await audit.listAuditEvents(api.t.db, api.seed.workspaceId, {
      action: "mcp.tool_called",
      limit: 50,
    });
    expect(refusals.filter((e) => e.actor?.name === "claude-readonly").map((e) => e.after)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ tool: "claim_experiment", result: "error", code: "forbidden" }),
        expect.objectContaining({ tool: "get_active_outcomes", result: "ok" }),
      ]),
    );

    // The same agent with a write scope gets past the scope check (to the use case's own answer).
    const writer = await createKey({ name: "claude-writer", role: "agent" });
    const writing = await connectHttp(endpoint, writer.key);
    clients.push(writing);
    const claimed = await writing.callTool({ name: "claim_experiment", arguments: { experiment_id: "no-such-one" } });
    expect(toolErrorOf(claimed)).toMatchObject({ code: "not_found" });
  });
});

describe("listing and revoking keys", () => {
  it("lists every key with its scopes and times, never a key or a hash", async () => {
    const created = await createKey({ name: "listed@acme.example", role: "approver" });
    const response = await as(api.seed.adminKey, "GET", "/v1/keys");
    expect(response.statusCode).toBe(200);
    const { keys } = response.json() as { keys: Record<string, unknown>[] };
    expect(keys.find((k) => k.id === created.id)).toEqual({
      id: created.id,
      name: "listed@acme.example",
      role: "approver",
      scopes: ["read", "write"],
      prefix: created.prefix,
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
    });
    const hashes = await api.t.db.selectFrom("api_keys").select("key_hash").execute();
    for (const { key_hash } of hashes) expect(response.body).not.toContain(key_hash);
    expect(response.body).not.toContain(created.key);
    expect(response.body).not.toContain(api.seed.adminKey);
    expect(response.body).not.toMatch(/hash/i);
  });

  it("a revoked key is refused at its next request; revoking again answers the same and audits once", async () => {
    const victim = await createKey({ name: "leaver@acme.example", role: "member" });
    expect((await as(victim.key, "GET", "/v1/outcomes")).statusCode).toBe(200);

    const revoked = await as(api.seed.adminKey, "DELETE", `/v1/keys/${victim.id}`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ revoked: true, key: { id: victim.id, revokedAt: expect.any(String) } });

    const refused = await as(victim.key, "GET", "/v1/outcomes");
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ code: "unauthenticated" });
    // MCP too.
    await expect(connectHttp(endpoint, victim.key)).rejects.toThrow(/401|unknown or revoked/);

    const again = await as(api.seed.adminKey, "DELETE", `/v1/keys/${victim.id}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ revoked: false, key: { revokedAt: revoked.json().key.revokedAt } });
    const events = await audit.listAuditEvents(api.t.db, api.seed.workspaceId, {
      action: "api_key.revoked",
      subjectId: victim.id,
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ channel: "api", actor: { name: api.seed.admin.principal.name } });

    const unknown = await as(api.seed.adminKey, "DELETE", "/v1/keys/00000000-0000-4000-8000-000000000000");
    expect(unknown.json()).toMatchObject({ status: 404, code: "not_found" });
    expect((await as(api.seed.adminKey, "DELETE", "/v1/keys/not-an-id")).statusCode).toBe(404);
  });

  it("records a key's last use at most once a minute", async () => {
    const used = await createKey({ name: "busy@acme.example", role: "member" });
    const lastUsed = async () => {
      const { keys } = (await as(api.seed.adminKey, "GET", "/v1/keys")).json() as {
        keys: { id: string; lastUsedAt: string | null }[];
      };
      return keys.find((k) => k.id === used.id)?.lastUsedAt ?? null;
    };
    expect(await lastUsed()).toBeNull();
    const before = Date.now();
    expect((await as(used.key, "GET", "/v1/outcomes")).statusCode).toBe(200);
    const first = await waitFor("the first use recorded", async () => (await lastUsed()) ?? undefined);
    expect(Date.parse(first)).toBeGreaterThanOrEqual(before - 1000);
    // More uses within the minute write nothing.
    for (let i = 0; i < 3; i++) expect((await as(used.key, "GET", "/v1/gates")).statusCode).toBe(200);
    await sleep(200);
    expect(await lastUsed()).toBe(first);
  });
});

describe("failed authentications", () => {
  it("a storm of 401s from one address turns into 429s with Retry-After, and the address recovers after the window", async () => {
    const namespace = `${prefix}:storm:`;
    const app = await buildTestApp(api.t.db, api.redis, {
      rateLimitNamespace: namespace,
      authFailureLimit: { max: 5, timeWindowMs: 5_000 },
    });
    try {
      const bad = (i: number) => `ork_${"x".repeat(40)}${i}`;
      // Successful requests count nothing.
      for (let i = 0; i < 8; i++) {
        expect((await app.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth })).statusCode).toBe(200);
      }
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push((await app.inject({ method: "GET", url: "/v1/outcomes", headers: auth(bad(i)) })).statusCode);
      }
      // A wrong key on MCP counts as well.
      statuses.push((await app.inject({ method: "POST", url: "/mcp", headers: auth(bad(4)), payload: {} })).statusCode);
      expect(statuses).toEqual([401, 401, 401, 401, 401]);

      const limited = await app.inject({ method: "GET", url: "/v1/outcomes", headers: auth(bad(5)) });
      expect(limited.statusCode).toBe(429);
      expect(limited.headers["content-type"]).toContain("application/problem+json");
      expect(limited.json()).toMatchObject({ code: "rate_limited", status: 429 });
      expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
      // Before any key is looked at: a valid key from this address waits too, on REST, MCP and sign-in.
      expect((await app.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth })).statusCode).toBe(429);
      expect((await app.inject({ method: "POST", url: "/mcp", headers: api.auth, payload: {} })).statusCode).toBe(429);
      expect((await app.inject({ method: "POST", url: "/session", payload: { apiKey: bad(6) } })).statusCode).toBe(429);
      // Health checks are not behind it.
      expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);

      // After the window: the valid key works, and wrong keys are plain 401s again.
      await waitFor(
        "the window to end",
        async () => (await app.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth })).statusCode === 200,
        { timeoutMs: 15_000, intervalMs: 250 },
      );
      expect((await app.inject({ method: "GET", url: "/v1/outcomes", headers: auth(bad(7)) })).statusCode).toBe(401);
    } finally {
      await app.close();
      await deleteRedisKeys(api.redis, namespace);
    }
  });

  it("two installations sharing a Redis under different QUEUE_PREFIXes count failed sign-ins apart", async () => {
    // As server.ts builds them: the queue prefix given, no namespace of the app's own.
    const installation = (queuePrefix: string) =>
      buildTestApp(api.t.db, api.redis, {
        queuePrefix,
        rateLimitNamespace: undefined,
        authFailureLimit: { max: 3, timeWindowMs: 60_000 },
      });
    const [a, b] = [`${prefix}-install-a`, `${prefix}-install-b`];
    const first = await installation(a);
    const second = await installation(b);
    const firstAgain = await installation(a);
    try {
      const signIn = (app: typeof first, i: number) =>
        app.inject({ method: "POST", url: "/session", payload: { apiKey: `ork_${"y".repeat(40)}${i}` } });
      for (let i = 0; i < 3; i++) expect((await signIn(first, i)).statusCode).toBe(401);
      const limited = await signIn(first, 3);
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toMatchObject({ code: "rate_limited" });
      // The other installation, on the same Redis from the same address, has counted nothing.
      expect((await signIn(second, 4)).statusCode).toBe(401);
      expect((await second.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth })).statusCode).toBe(200);
      // A second replica of the first installation (same prefix) shares its counters.
      expect((await signIn(firstAgain, 5)).statusCode).toBe(429);
      // The counters live under each installation's prefix.
      expect(await api.redis.keys(`${a}:rate-limit:*auth-failures*`)).toHaveLength(1);
      expect(await api.redis.keys(`${b}:rate-limit:*auth-failures*`)).toHaveLength(1);
      expect(rateLimitNamespace({ queuePrefix: "acme-prod" })).toBe("acme-prod:rate-limit:");
      expect(rateLimitNamespace({})).toBe("outcome-runtime:rate-limit:");
    } finally {
      await Promise.all([first.close(), second.close(), firstAgain.close()]);
      await deleteRedisKeys(api.redis, a);
      await deleteRedisKeys(api.redis, b);
    }
  });

  it("the routes that may call an LLM have a stricter limit per key than the others", async () => {
    const namespace = `${prefix}:ai:`;
    const app = await buildTestApp(api.t.db, api.redis, { rateLimitNamespace: namespace, aiRateLimitPerMinute: 2 });
    try {
      const draft = () =>
        app.inject({
          method: "POST",
          url: "/v1/outcomes/draft",
          headers: api.auth,
          payload: { sentence: "Cut checkout abandonment from 68% to 60% in 6 weeks" },
        });
      expect((await draft()).statusCode).toBe(200);
      expect((await draft()).statusCode).toBe(200);
      const limited = await draft();
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toMatchObject({ code: "rate_limited" });
      // The other routes keep the global limit.
      expect((await app.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth })).statusCode).toBe(200);
    } finally {
      await app.close();
      await deleteRedisKeys(api.redis, namespace);
    }
  });
});

function auth(key: string): { authorization: string } {
  return { authorization: `Bearer ${key}` };
}
