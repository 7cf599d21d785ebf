/**
 * The Unleash provider against a real Unleash server (unleash-server 7.5.1
 * in a child process on the local PostgreSQL, one per file), and the split
 * read back as an application would: Unleash's official Node SDK
 * (`unleash-client` 6.12.2) with a backend token, evaluating 2000 user ids.
 */
import {
  type RunningUnleash,
  startUnleash,
  startUnleashApplication,
  type UnleashApplication,
} from "@outcome-runtime/testing/unleash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FlagChange, FlagProviderError, type FlagTarget } from "../provider";
import { unleashProvider } from "./unleash.provider";

const TOLERANCE = 0.04;

let server: RunningUnleash;
let app: UnleashApplication;
const calls: { method: string; path: string }[] = [];

const countingFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  calls.push({ method: init?.method ?? "GET", path: url.pathname });
  return fetch(input, init);
};

function provider(settings: Record<string, unknown> = {}, token?: string) {
  return unleashProvider.create(
    { api_url: `${server.url}/api`, environment: server.environment, ...settings },
    {
      credentials: { api_token: token ?? server.adminToken },
      allowedApiUrls: [`${server.url}/api`],
      fetch: countingFetch,
    },
  );
}

function target(key: string, arms: [string, number][]): FlagTarget {
  return {
    key,
    experimentKey: key.replace(/^outcome-runtime-/u, ""),
    description: `Outcome Runtime experiment ${key}`,
    arms: arms.map(([name, weight]) => ({ name, weight })),
  };
}

const signal = () => AbortSignal.timeout(15_000);

/** The Admin API directly, as a person editing by hand would. */
async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${server.url}/api${path}`, {
    method,
    headers: {
      authorization: server.adminToken,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === "" ? null : JSON.parse(text);
}

/** The writes Unleash recorded for a flag (its event log). */
async function eventCount(key: string): Promise<number> {
  const answer = (await admin("GET", `/admin/search/events?feature=IS:${encodeURIComponent(key)}`)) as {
    total: number;
  };
  return answer.total;
}

/** Waits (bounded) until the SDK serves `weights`; returns the shares it served. */
async function sdkServes(key: string, weights: Record<string, number>, tolerance = TOLERANCE) {
  return (await app.serves(key, weights, { tolerance })).shares;
}

async function rejection(promise: Promise<unknown>): Promise<FlagProviderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(FlagProviderError);
    return error as FlagProviderError;
  }
  throw new Error("expected a FlagProviderError");
}

beforeAll(async () => {
  server = await startUnleash();
  app = await startUnleashApplication(server, 200);
}, 90_000);

afterAll(async () => {
  app?.close();
  await server?.stop();
});

describe("unleash provider against a real Unleash", () => {
  it("ensures the flag, the SDK serves its split, the kill and the ship; ensure again writes nothing", async () => {
    const flags = provider();
    const t = target("outcome-runtime-checkout", [
      ["control", 0.3],
      ["treatment", 0.7],
    ]);

    // Each write is confirmed while its call ran, to the millisecond (not the Date header's whole second).
    const confirmedWhileCalled = async (call: () => Promise<FlagChange>) => {
      const asked = Date.now();
      const change = await call();
      const answered = Date.now();
      const at = (change as { at: Date }).at.getTime();
      expect(at).toBeGreaterThanOrEqual(asked);
      expect(at).toBeLessThanOrEqual(answered);
      return change;
    };
    const created = await confirmedWhileCalled(() => flags.ensureFlag(t, signal()));
    expect(created.status).toBe("applied");
    expect(created).toMatchObject({
      answer: { unchanged: false, created: true, perMille: { control: 300, treatment: 700 } },
    });
    await sdkServes(t.key, { control: 0.3, treatment: 0.7 });
    expect(await flags.read([t.key], signal())).toEqual(
      new Map([
        [
          t.key,
          {
            exists: true,
            enabled: true,
            variations: ["control", "treatment"],
            weights: { control: 0.3, treatment: 0.7 },
            version: expect.any(String),
          },
        ],
      ]),
    );

    // Again: read, compare, no write (neither at our end nor in Unleash's event log).
    const events = await eventCount(t.key);
    calls.length = 0;
    const again = await flags.ensureFlag(t, signal());
    expect(again).toMatchObject({ status: "applied", answer: { unchanged: true } });
    expect(calls.filter((c) => c.method !== "GET")).toEqual([]);
    expect(await eventCount(t.key)).toBe(events);

    const moved = await confirmedWhileCalled(() => flags.setWeights(t, { control: 0.6, treatment: 0.4 }, signal()));
    expect(moved).toMatchObject({ answer: { unchanged: false, perMille: { control: 600, treatment: 400 } } });
    await sdkServes(t.key, { control: 0.6, treatment: 0.4 });

    // The kill: every one of the 2000 users gets control.
    await confirmedWhileCalled(() => flags.disable(t, signal()));
    await sdkServes(t.key, { control: 1, treatment: 0 }, 0);
    expect((await flags.read([t.key], signal())).get(t.key)).toMatchObject({
      exists: true,
      enabled: true,
      weights: { control: 1, treatment: 0 },
    });
    // Killing again writes nothing.
    expect(await flags.disable(t, signal())).toMatchObject({ answer: { unchanged: true } });

    await confirmedWhileCalled(() => flags.setWeights(t, { control: 0.3, treatment: 0.7 }, signal()));
    await sdkServes(t.key, { control: 0.3, treatment: 0.7 });

    // Ship: the winner to everyone.
    await flags.setWeights(t, { control: 0, treatment: 1 }, signal());
    await sdkServes(t.key, { control: 0, treatment: 1 }, 0);
    expect((await flags.read([t.key], signal())).get(t.key)?.weights).toEqual({ control: 0, treatment: 1 });
  });

  it("serves three arms with per-mille weights that sum to 1000", async () => {
    const flags = provider();
    const t = target("outcome-runtime-three", [
      ["control", 1 / 3],
      ["b", 1 / 3],
      ["c", 1 / 3],
    ]);
    const change = await flags.ensureFlag(t, signal());
    expect(change).toMatchObject({ answer: { perMille: { control: 334, b: 333, c: 333 } } });
    await sdkServes(t.key, { control: 1 / 3, b: 1 / 3, c: 1 / 3 });
    const served = (await flags.read([t.key], signal())).get(t.key);
    expect(served?.weights).toEqual({ control: 0.334, b: 0.333, c: 0.333 });
  });

  it("reads five keys in one list request plus one per existing flag; a missing key does not exist", async () => {
    const flags = provider();
    const keys = ["outcome-runtime-r1", "outcome-runtime-r2", "outcome-runtime-r3", "outcome-runtime-r4"];
    for (const key of keys) {
      await flags.ensureFlag(
        target(key, [
          ["control", 0.5],
          ["treatment", 0.5],
        ]),
        signal(),
      );
    }
    calls.length = 0;
    const read = await flags.read([...keys, "outcome-runtime-never-created"], signal());
    expect(calls.filter((c) => c.path === "/api/admin/projects/default/features")).toHaveLength(1);
    expect(calls).toHaveLength(1 + keys.length);
    expect(calls.every((c) => c.method === "GET")).toBe(true);
    expect(read.get("outcome-runtime-never-created")).toEqual({
      exists: false,
      enabled: false,
      variations: [],
      weights: null,
      version: null,
    });
    for (const key of keys) expect(read.get(key)?.weights).toEqual({ control: 0.5, treatment: 0.5 });

    // Keys none of which exist: the list alone.
    calls.length = 0;
    const none = await flags.read(["outcome-runtime-x", "outcome-runtime-y"], signal());
    expect(calls).toHaveLength(1);
    expect([...none.values()].every((f) => !f.exists)).toBe(true);
  });

  it("shows hand edits in read, and ensure puts the split back", async () => {
    const flags = provider();
    const t = target("outcome-runtime-hand", [
      ["control", 0.5],
      ["treatment", 0.5],
    ]);
    const created = await flags.ensureFlag(t, signal());
    const strategyId = (created.answer as { strategyId: string }).strategyId;
    const env = `/admin/projects/default/features/${t.key}/environments/${server.environment}`;
    const before = (await flags.read([t.key], signal())).get(t.key);

    // Someone changes the weights in Unleash.
    await admin("PUT", `${env}/strategies/${strategyId}`, {
      name: "flexibleRollout",
      title: "outcome-runtime split",
      constraints: [],
      parameters: { rollout: "100", stickiness: "default", groupId: t.key },
      variants: [
        { name: "control", weight: 200, weightType: "fix", stickiness: "default" },
        { name: "treatment", weight: 800, weightType: "variable", stickiness: "default" },
      ],
    });
    const edited = (await flags.read([t.key], signal())).get(t.key);
    expect(edited?.weights).toEqual({ control: 0.2, treatment: 0.8 });
    expect(edited?.version).not.toBe(before?.version);
    await sdkServes(t.key, { control: 0.2, treatment: 0.8 });
    const restored = await flags.ensureFlag(t, signal());
    expect(restored).toMatchObject({ answer: { unchanged: false, writes: [expect.stringMatching(/^PUT /u)] } });
    expect((await flags.read([t.key], signal())).get(t.key)?.weights).toEqual({ control: 0.5, treatment: 0.5 });

    // Someone adds a strategy for some users only, evaluated first: the split is no longer expressible.
    const added = (await admin("POST", `${env}/strategies`, {
      name: "flexibleRollout",
      title: "beta testers",
      sortOrder: -10,
      constraints: [{ contextName: "userId", operator: "IN", values: ["user-1", "user-2"] }],
      parameters: { rollout: "100", stickiness: "default", groupId: t.key },
      variants: [{ name: "treatment", weight: 1000, weightType: "variable", stickiness: "default" }],
    })) as { id: string };
    expect((await flags.read([t.key], signal())).get(t.key)?.weights).toBeNull();
    const reordered = await flags.ensureFlag(t, signal());
    expect(reordered).toMatchObject({ answer: { writes: [expect.stringMatching(/set-sort-order$/u)] } });
    const afterReorder = (await flags.read([t.key], signal())).get(t.key);
    expect(afterReorder?.weights).toEqual({ control: 0.5, treatment: 0.5 });
    // The person's strategy is still there, after the runtime's.
    const strategies = (await admin("GET", env)) as { strategies: { id: string }[] };
    expect(strategies.strategies.map((s) => s.id)).toEqual([strategyId, added.id]);

    // Someone turns the flag off: everyone gets control (the SDK's disabled variant).
    await admin("POST", `${env}/off`);
    expect((await flags.read([t.key], signal())).get(t.key)).toMatchObject({
      exists: true,
      enabled: false,
      weights: { control: 1, treatment: 0 },
    });
    await sdkServes(t.key, { control: 1, treatment: 0 }, 0);
    expect(await flags.ensureFlag(t, signal())).toMatchObject({
      answer: { writes: [expect.stringMatching(/\/on$/u)] },
    });
    expect((await flags.read([t.key], signal())).get(t.key)).toMatchObject({ enabled: true });
  });

  it("a deleted flag does not exist; setWeights refuses it, ensure needs the archive emptied", async () => {
    const flags = provider();
    const t = target("outcome-runtime-deleted", [
      ["control", 0.5],
      ["treatment", 0.5],
    ]);
    await flags.ensureFlag(t, signal());
    await admin("DELETE", `/admin/projects/default/features/${t.key}`); // archives it
    expect((await flags.read([t.key], signal())).get(t.key)).toMatchObject({ exists: false, weights: null });

    const refused = await rejection(flags.setWeights(t, { control: 1, treatment: 0 }, signal()));
    expect(refused.code).toBe("not_found");
    expect(refused.message).toContain(t.key);

    // 409: Unleash refuses a new flag whose name an archived one holds.
    const conflict = await rejection(flags.ensureFlag(t, signal()));
    expect(conflict.code).toBe("conflict");
    expect(conflict.message).toContain("archive");

    await admin("DELETE", `/admin/archive/${t.key}`); // deleted for good
    expect(await flags.ensureFlag(t, signal())).toMatchObject({ answer: { created: true } });
    expect((await flags.read([t.key], signal())).get(t.key)?.exists).toBe(true);
  });

  it("maps Unleash's refusals: 401, 403, 404 for the project and the environment", async () => {
    const t = target("outcome-runtime-refused", [
      ["control", 0.5],
      ["treatment", 0.5],
    ]);
    const bogus = "*:*.0000000000000000deadbeefdeadbeef";
    const unauthorized = await rejection(provider({}, bogus).read([t.key], signal()));
    expect(unauthorized.code).toBe("auth_failed");
    expect(unauthorized.message).not.toContain(bogus);

    // A backend (client) token may not use the Admin API.
    const forbidden = await rejection(provider({}, server.clientToken).ensureFlag(t, signal()));
    expect(forbidden.code).toBe("forbidden");
    expect(forbidden.message).not.toContain(server.clientToken);

    const noProject = await rejection(provider({ project: "no-such-project" }).ensureFlag(t, signal()));
    expect(noProject.code).toBe("not_found");
    expect(noProject.message).toContain("flags.project");

    await provider().ensureFlag(t, signal());
    const noEnvironment = provider({ environment: "no-such-env" });
    const envRead = await rejection(noEnvironment.read([t.key], signal()));
    expect(envRead.code).toBe("not_found");
    expect(envRead.message).toContain("flags.environment");
    const envWrite = await rejection(noEnvironment.setWeights(t, { control: 1, treatment: 0 }, signal()));
    expect(envWrite.code).toBe("not_found");
    expect(envWrite.message).toContain("flags.environment");
    for (const error of [unauthorized, forbidden, noProject, envRead, envWrite]) {
      expect(error.message).not.toContain(server.adminToken);
    }
  });
});
