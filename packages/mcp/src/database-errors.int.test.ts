/**
 * A database that refuses a write or cannot be reached: MCP tools report it
 * with the codes REST answers with (packages/db `databaseError`: `conflict`
 * for 409, `service_unavailable` for 503), and a hint to call again, never
 * `internal_error`. The faults are Postgres' own: a trigger raising the
 * SQLSTATE of a losing concurrent write, and a port where nothing listens.
 */
import { createDb } from "@outcome-runtime/db";
import {
  applyOutcome,
  type Caller,
  decideGate,
  getExperiment,
  proposeExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  type ConflictSqlstate,
  createTestDatabase,
  outcomeVariant,
  refuseWrites,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
  unreachableDatabaseUrl,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMcpServer } from "./server";
import { type Client, connectInMemory, toolErrorOf } from "./test-support";

const PUBLIC_URL = "https://outcomes.acme.example";

let t: TestDatabase;
let seed: Seeded;
let agent: Caller;
let client: Client;

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  agent = { ...(await seed.key("claude-code", "agent")).caller, channel: "mcp" };
  client = await connectInMemory(
    createMcpServer({
      deps: { db: t.db },
      caller: agent,
      publicUrl: PUBLIC_URL,
    }),
  );
});

afterAll(async () => {
  await client?.close();
  await t?.drop();
});

/** An approved experiment of a fresh active outcome, ready to be claimed. */
async function approvedExperiment(slug: string): Promise<string> {
  const deps = { db: t.db };
  await applyOutcome(deps, seed.admin, { source: outcomeVariant(slug) });
  await transitionOutcome(deps, seed.admin, slug, "activate", null);
  const proposed = await proposeExperiment(deps, seed.admin, slug, {
    title: "Shorter form",
    statement: "If we shorten the form, fewer shoppers abandon the checkout.",
    mechanism: "less effort at the last step",
    touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
    measurementPlan: "checkout_abandonment_rate per arm, daily",
    rolloutPlan: "50/50 for two weeks",
  });
  await decideGate(deps, seed.admin, proposed.gate.id, { decision: "approve" });
  return proposed.experiment.id;
}

async function callTool(c: Client, name: string, args: Record<string, unknown>) {
  return (await c.callTool({ name, arguments: args })) as {
    isError?: boolean;
    content: { type: string; text?: string }[];
    _meta?: Record<string, unknown>;
  };
}

describe("a write that loses to a concurrent change", () => {
  it.each<[string, ConflictSqlstate]>([
    ["a serialization failure (40001)", "40001"],
    ["a unique violation (23505)", "23505"],
    ["a deadlock (40P01)", "40P01"],
  ])(
    "%s is refused as conflict, as REST answers 409; the same call succeeds once the conflict is gone",
    async (_, sqlstate) => {
      const experimentId = await approvedExperiment(`mcp-conflict-${sqlstate.toLowerCase()}`);
      const restore = await refuseWrites(t, "experiments", sqlstate);
      let result: Awaited<ReturnType<typeof callTool>>;
      try {
        result = await callTool(client, "claim_experiment", { experiment_id: experimentId });
      } finally {
        await restore();
      }
      expect(result.isError).toBe(true);
      const error = toolErrorOf(result);
      expect(error).toEqual({
        code: "conflict",
        message: "the request collided with a concurrent change; retry it",
        hint: "A temporary problem: call the tool again in a few seconds.",
      });
      expect(result.content[0]?.text).not.toMatch(/test fault|serializ|duplicate|deadlock/);
      // Nothing was claimed: the refused transaction rolled back.
      expect((await getExperiment({ db: t.db }, seed.admin, experimentId)).experiment.state).toBe("approved");

      const again = await callTool(client, "claim_experiment", { experiment_id: experimentId });
      expect(again.isError).not.toBe(true);
      expect((await getExperiment({ db: t.db }, seed.admin, experimentId)).experiment.state).toBe("building");
    },
  );
});

describe("a database that cannot be reached", () => {
  it("answers service_unavailable, as REST answers 503, and tells the operator's log why", async () => {
    const down = createDb({ url: await unreachableDatabaseUrl(), applicationName: "mcp-lost-connection-test" });
    const seen: { error: unknown; message: string }[] = [];
    const lost = await connectInMemory(
      createMcpServer({
        deps: { db: down },
        caller: agent,
        publicUrl: PUBLIC_URL,
        onError: (error, message) => seen.push({ error, message }),
      }),
    );
    try {
      for (const [tool, args] of [
        ["get_active_outcomes", {}],
        ["claim_experiment", { experiment_id: "00000000-0000-4000-8000-000000000000" }],
      ] as const) {
        const result = await callTool(lost, tool, args);
        expect(result.isError, tool).toBe(true);
        expect(toolErrorOf(result), tool).toEqual({
          code: "service_unavailable",
          message: "the database is unavailable or too slow right now; retry shortly",
          hint: "A temporary problem: call the tool again in a few seconds.",
        });
        expect(result.content[0]?.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      }
      // The driver's error reaches the log (the audit row of the call could not be written either).
      expect(seen.some((s) => /ECONNREFUSED/.test(String((s.error as Error).message ?? s.error)))).toBe(true);
      expect(seen.map((s) => s.message)).toContain(
        "MCP tool get_active_outcomes: the database is unavailable or too slow right now; retry shortly",
      );
    } finally {
      await lost.close();
      await down.destroy();
    }
  });
});
