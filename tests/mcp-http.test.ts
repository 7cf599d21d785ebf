/**
 * MCP over Streamable HTTP at `/mcp`: the API listening on a port, the SDK's
 * Client with an agent key as bearer, and the refusals at the HTTP level
 * (bad key, GET/DELETE, foreign Origin and Host, the rate limit). Real
 * Postgres and Redis.
 */
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { audit } from "@outcome-runtime/db";
import { type Client, connectHttp } from "@outcome-runtime/mcp/test-support";
import { applyOutcome, transitionOutcome } from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `test-mcp-http-${randomBytes(6).toString("hex")}`;

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let port: number;
let endpoint: string;
let agentKey: string;
const clients: Client[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  agentKey = (await seed.key("claude-code", "agent")).key;
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("mcp-http") });
  await transitionOutcome({ db: t.db }, seed.admin, "mcp-http", "activate", null);
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  port = await freePort();
  app = await buildTestApp(t.db, redis, {
    publicUrl: "https://outcomes.acme.example",
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
  });
  await app.listen({ port, host: "127.0.0.1" });
  endpoint = `http://127.0.0.1:${port}/mcp`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await app?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  await t?.drop();
});

/** A raw HTTP request, with full control of the headers (fetch does not let a caller set Host). */
function raw(
  method: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/mcp",
        method,
        headers: {
          accept: "application/json, text/event-stream",
          ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const listTools = { jsonrpc: "2.0", id: 1, method: "tools/list", params: {} };

describe("MCP over Streamable HTTP", () => {
  it("lists the tools and calls get_active_outcomes with an agent key; the call is audited with the request id", async () => {
    const client = await connectHttp(endpoint, agentKey);
    clients.push(client);
    const { tools } = await client.listTools();
    expect(tools).toHaveLength(8);
    expect(tools.map((tool) => tool.name)).toContain("get_active_outcomes");

    const result = await client.callTool({ name: "get_active_outcomes", arguments: {} });
    expect(result.isError).not.toBe(true);
    const structured = result.structuredContent as { outcomes: { slug: string }[]; nextCursor: string | null };
    expect(structured.outcomes.map((o) => o.slug)).toEqual(["mcp-http"]);
    expect(structured.nextCursor).toBeNull();

    const [event] = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "mcp.tool_called" });
    expect(event).toMatchObject({
      channel: "mcp",
      actor: { name: "claude-code", role: "agent" },
      after: { tool: "get_active_outcomes", result: "ok" },
    });
    expect(event?.requestId).toEqual(expect.any(String));

    // A refusal is a tool result, not an HTTP or protocol error.
    const missing = await client.callTool({ name: "get_experiment_brief", arguments: { experiment_id: "nope" } });
    expect(missing.isError).toBe(true);
    expect(JSON.parse((missing.content as { text: string }[])[0]!.text)).toMatchObject({
      error: { code: "not_found" },
    });
    // An unknown tool is a protocol error.
    await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toThrow(/unknown tool/);
  });

  it("answers JSON with the security headers and no session id", async () => {
    const response = await raw("POST", { authorization: `Bearer ${agentKey}` }, listTools);
    expect(response.status).toBe(200);
    expect(response.headers["content-type"]).toContain("application/json");
    expect(response.headers["mcp-session-id"]).toBeUndefined();
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.headers["x-request-id"]).toEqual(expect.any(String));
    expect(JSON.parse(response.body).result.tools).toHaveLength(8);
  });

  it("refuses a missing or unknown API key with 401, WWW-Authenticate and a JSON-RPC error", async () => {
    await expect(connectHttp(endpoint, "ork_not_a_real_key_0000000000000000")).rejects.toThrow(
      /401|unknown or revoked/,
    );
    await expect(connectHttp(endpoint, null)).rejects.toThrow(/401|Authorization/);
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer ork_nope_nope_nope_nope_nope" },
      { authorization: "Basic x" },
    ];
    for (const headers of attempts) {
      const response = await raw("POST", headers, listTools);
      expect(response.status).toBe(401);
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(JSON.parse(response.body)).toMatchObject({ jsonrpc: "2.0", error: { code: -32001 }, id: null });
    }
  });

  it("answers GET and DELETE with 405 and Allow: POST", async () => {
    for (const method of ["GET", "DELETE"]) {
      const response = await raw(method, { authorization: `Bearer ${agentKey}` });
      expect(response.status, method).toBe(405);
      expect(response.headers.allow).toBe("POST");
      expect(JSON.parse(response.body)).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
    }
  });

  it("refuses a foreign Origin and a foreign Host with 403, and accepts loopback and the public URL", async () => {
    const auth = { authorization: `Bearer ${agentKey}` };
    const foreignOrigin = await raw("POST", { ...auth, origin: "https://evil.example" }, listTools);
    expect(foreignOrigin.status).toBe(403);
    expect(JSON.parse(foreignOrigin.body).error.message).toContain("Origin");
    const foreignHost = await raw("POST", { ...auth, host: "evil.example" }, listTools);
    expect(foreignHost.status).toBe(403);
    expect(JSON.parse(foreignHost.body).error.message).toContain("Host");
    // Checked before the method and the key: a rebinding page learns nothing.
    expect((await raw("GET", { host: `evil.example:${port}` })).status).toBe(403);

    for (const headers of [
      { ...auth, origin: `http://localhost:${port}` },
      { ...auth, origin: "https://outcomes.acme.example", host: "outcomes.acme.example" },
      { ...auth, host: `localhost:${port}` },
    ]) {
      expect((await raw("POST", headers, listTools)).status, JSON.stringify(headers)).toBe(200);
    }
  });

  it("is under the rate limit of the API key", async () => {
    const limited = await buildTestApp(t.db, redis, {
      rateLimitPerMinute: 2,
      rateLimitNamespace: `${prefix}:rate-limit-low:`,
    });
    try {
      const inject = () =>
        limited.inject({
          method: "POST",
          url: "/mcp",
          headers: {
            authorization: `Bearer ${agentKey}`,
            accept: "application/json, text/event-stream",
            "content-type": "application/json",
          },
          payload: listTools,
        });
      expect((await inject()).statusCode).toBe(200);
      expect((await inject()).statusCode).toBe(200);
      const third = await inject();
      expect(third.statusCode).toBe(429);
      expect(third.json()).toMatchObject({ code: "rate_limited" });
    } finally {
      await limited.close();
    }
  });
});
