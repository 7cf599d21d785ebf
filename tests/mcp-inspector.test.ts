/**
 * The official MCP Inspector CLI against our MCP server, over stdio and over
 * Streamable HTTP, through scripts/mcp-inspector-check.sh (so CI runs the
 * script): the API listening on a port with a test database, an agent key,
 * and one active outcome that get_active_outcomes must list.
 *
 * The Inspector needs Node 22; the script installs it into .tmp/node22 on its
 * first run (npm's `node` package), hence the long timeout.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { applyOutcome, transitionOutcome } from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  outcomeVariant,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SCRIPT = "scripts/mcp-inspector-check.sh";
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `test-mcp-inspector-${randomBytes(6).toString("hex")}`;
const TOOLS =
  "get_active_outcomes get_experiment_brief claim_experiment report_experiment_built get_experiment_status query_learnings request_human_gate get_gate_status";

let t: TestDatabase;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let url: string;
let agentKey: string;

beforeAll(async () => {
  t = await createTestDatabase();
  const seed = await seedWorkspace(t.db);
  agentKey = (await seed.key("inspector", "agent")).key;
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("mcp-inspector") });
  await transitionOutcome({ db: t.db }, seed.admin, "mcp-inspector", "activate", null);
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  app = await buildTestApp(t.db, redis, {
    publicUrl: url,
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
  });
  await app.listen({ port, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  await t?.drop();
});

function check(apiKey: string) {
  return run("bash", [SCRIPT], {
    cwd: ROOT,
    env: {
      ...process.env,
      MCP_CHECK_URL: url,
      MCP_CHECK_API_KEY: apiKey,
      MCP_CHECK_OUTCOME: "mcp-inspector",
    },
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
}

describe("the MCP Inspector CLI", () => {
  it("lists the tools and calls get_active_outcomes over stdio and over HTTP", { timeout: 300_000 }, async () => {
    const { stdout } = await check(agentKey);
    expect(stdout).toContain(`stdio tools/list: ${TOOLS}`);
    expect(stdout).toContain(`http tools/list: ${TOOLS}`);
    expect(stdout).toContain("stdio tools/call get_active_outcomes: 1 active outcome(s): mcp-inspector");
    expect(stdout).toContain("http tools/call get_active_outcomes: 1 active outcome(s): mcp-inspector");
    expect(stdout).toMatch(/mcp-inspector-check: ok \(Inspector \d+\.\d+\.\d+ on Node v2\d\./);
  });

  it("fails when the server refuses the key", { timeout: 300_000 }, async () => {
    const failed = await check("ork_not_a_real_key_0000000000000000").then(
      () => null,
      (error: { code?: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain("refused the API key (401)");
  });
});
