/**
 * MCP over stdio: the stdio server spawned as an agent host spawns it (its
 * own small entry, and `outcome-runtime mcp` of the CLI), forwarding to the
 * API listening on a port. The spawned process gets no database settings:
 * it reaches everything through the API. Real Postgres and Redis behind it.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { type Client, connectStdio, toolErrorOf } from "@outcome-runtime/mcp/test-support";
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

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const STDIO_MAIN = "packages/mcp/src/stdio-main.ts";
const CLI = "packages/cli/bin/outcome-runtime.mjs";
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `test-mcp-stdio-${randomBytes(6).toString("hex")}`;

/** What an agent host passes: a PATH to find node, and nothing about databases. */
const ENV = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" };

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let baseUrl: string;
let agentKey: string;
const clients: Client[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  agentKey = (await seed.key("cursor", "agent")).key;
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("mcp-stdio") });
  await transitionOutcome({ db: t.db }, seed.admin, "mcp-stdio", "activate", null);
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  app = await buildTestApp(t.db, redis, {
    publicUrl: baseUrl,
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
  });
  await app.listen({ port, host: "127.0.0.1" });
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

/** The two ways to start the stdio server: its own entry, and the CLI command. */
const COMMANDS: [string, (url: string, key: string) => string[]][] = [
  ["stdio-main.ts", (url, key) => ["--import", "tsx", STDIO_MAIN, "--url", url, "--api-key", key]],
  ["outcome-runtime mcp", (url, key) => [CLI, "mcp", "--url", url, "--api-key", key]],
];

describe.each(COMMANDS)("MCP over stdio (%s)", (_name, argsFor) => {
  it("lists the API's tools, calls one, reads a resource and gets the prompt", async () => {
    const { client, stderr } = await connectStdio({
      command: process.execPath,
      args: argsFor(baseUrl, agentKey),
      env: ENV,
      cwd: ROOT,
    });
    clients.push(client);
    expect(client.getInstructions()).toContain("claim_experiment");
    const { tools } = await client.listTools();
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
    expect(tools[0]?.annotations).toEqual({
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: false,
    });

    const result = await client.callTool({ name: "get_active_outcomes", arguments: { limit: 5 } });
    expect(result.isError).not.toBe(true);
    const outcomes = (result.structuredContent as { outcomes: { id: string; slug: string }[] }).outcomes;
    expect(outcomes.map((o) => o.slug)).toEqual(["mcp-stdio"]);

    // Refusals pass through as tool results with their structured error.
    const refused = await client.callTool({ name: "claim_experiment", arguments: { experiment_id: "nope" } });
    expect(toolErrorOf(refused as { isError?: boolean; _meta?: Record<string, unknown> })).toMatchObject({
      code: "not_found",
    });
    // Protocol errors keep their JSON-RPC error code.
    await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toMatchObject({ code: -32602 });

    const outcome = await client.readResource({ uri: `outcome://${outcomes[0]!.id}` });
    expect(JSON.parse((outcome.contents[0] as { text: string }).text)).toMatchObject({ slug: "mcp-stdio" });
    expect((await client.listResourceTemplates()).resourceTemplates).toHaveLength(2);
    const prompt = await client.getPrompt({ name: "build-experiment", arguments: { experiment_id: "x" } });
    expect(JSON.stringify(prompt.messages)).toContain("report_experiment_built");
    expect(stderr()).toBe("");
  });

  it("exits with a clear message on stderr when the API refuses the key", async () => {
    const failed = await run(process.execPath, argsFor(baseUrl, "ork_not_a_real_key_000000000000000000"), {
      cwd: ROOT,
      env: ENV,
      timeout: 20_000,
    }).then(
      () => null,
      (error: { code?: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).not.toBeNull();
    expect(failed!.code).not.toBe(0);
    expect(failed!.stdout).toBe(""); // stdout is the protocol's, even on failure
    expect(failed!.stderr).toContain("refused the API key (401)");
    expect(failed!.stderr).toContain("--api-key");
  });
});

describe("the stdio entry's exit statuses", () => {
  it("exits 77 for a refused key and 69 when the API cannot be reached", async () => {
    const status = (url: string) =>
      run(process.execPath, ["--import", "tsx", STDIO_MAIN, "--url", url, "--api-key", "ork_bad_bad_bad_bad_bad_bad"], {
        cwd: ROOT,
        env: ENV,
        timeout: 20_000,
      }).then(
        () => ({ code: 0, stderr: "" }),
        (error: { code: number; stderr: string }) => error,
      );
    expect((await status(baseUrl)).code).toBe(77);
    const down = await status(`http://127.0.0.1:${await freePort()}`);
    expect(down.code).toBe(69);
    expect(down.stderr).toContain("cannot reach the API");
  });
});
