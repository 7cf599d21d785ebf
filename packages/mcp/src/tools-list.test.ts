/**
 * The tool surface, as agents see it in `tools/list`: names, descriptions,
 * input and output schemas, annotations. A change here changes what every
 * agent reads; the snapshot makes it deliberate (update it with
 * `pnpm vitest run --project unit packages/mcp -u` and review the diff).
 */
import type { RuntimeDeps } from "@outcome-runtime/runtime";
import { describe, expect, it } from "vitest";
import { createMcpServer } from "./server";
import { connectInMemory } from "./test-support";

/** Listing tools, resources and prompts reads no storage: any use of it fails the test. */
const noStorage = new Proxy(
  {},
  {
    get: () => {
      throw new Error("tools/list must not touch the database");
    },
  },
) as RuntimeDeps["db"];

const caller = {
  principal: { id: "key-1", name: "claude-code", role: "agent" as const, workspaceId: "ws-1" },
  channel: "mcp" as const,
  requestId: null,
};

describe("tools/list", () => {
  it("matches the reviewed snapshot", async () => {
    const client = await connectInMemory(
      createMcpServer({ deps: { db: noStorage }, caller, publicUrl: "https://outcomes.example" }),
    );
    const { tools } = await client.listTools();
    const { resourceTemplates } = await client.listResourceTemplates();
    const { prompts } = await client.listPrompts();
    await client.close();
    await expect(`${JSON.stringify({ tools, resourceTemplates, prompts }, null, 2)}\n`).toMatchFileSnapshot(
      "__snapshots__/tools-list.json",
    );
  });

  it("offers no tool that applies or revises an outcome, or decides a gate: those stay with people", async () => {
    const client = await connectInMemory(
      createMcpServer({ deps: { db: noStorage }, caller, publicUrl: "https://outcomes.example" }),
    );
    const { tools } = await client.listTools();
    await client.close();
    const names = tools.map((t) => t.name);
    expect(names).toContain("request_human_gate");
    expect(names.filter((n) => /apply|revise|outcome_yaml|decide|approve|reject|settings/.test(n))).toEqual([]);
  });
});
