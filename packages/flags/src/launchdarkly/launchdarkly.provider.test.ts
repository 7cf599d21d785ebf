/**
 * The `launchdarkly` provider through the official REST client against the
 * local stand-in of LaunchDarkly (@outcome-runtime/testing/fake-launchdarkly,
 * which follows the OpenAPI description generated into
 * launchdarkly-api-typescript and serves the server SDK's `/sdk/latest-all`),
 * with the split read back by the official server SDK
 * (`@launchdarkly/node-server-sdk`) as an application would.
 */

import { basicLogger, init } from "@launchdarkly/node-server-sdk";
import { guardedFetch, parseOutboundPolicy } from "@outcome-runtime/netguard";
import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeLaunchDarkly, startFakeLaunchDarkly } from "@outcome-runtime/testing/fake-launchdarkly";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_ANSWER_BYTES } from "../http";
import { type FlagProvider, FlagProviderError, type FlagTarget } from "../provider";
import { SNIPPET_LANGUAGES } from "../provider-module";
import { launchdarklyProvider, toThousandths } from "./launchdarkly.provider";

const USERS = 2000;
const TOLERANCE = 0.04;

let fake: FakeLaunchDarkly;
/** Every error message seen, to check that the token never appears in one. */
const messages: string[] = [];

beforeEach(async () => {
  fake = await startFakeLaunchDarkly({ projectKey: "shop", environments: ["production", "staging"] });
});

afterEach(async () => {
  await fake.close();
});

function signal(ms = 5000): AbortSignal {
  return AbortSignal.timeout(ms);
}

function open(settings: Record<string, unknown> = {}, fetchFn: typeof fetch = guardedFetch()): FlagProvider {
  return launchdarklyProvider.create(
    { project: "shop", environment: "production", api_url: fake.url, ...settings },
    { credentials: { access_token: fake.accessToken }, allowedApiUrls: [fake.url], fetch: fetchFn },
  );
}

function target(key: string, weights: Record<string, number>): FlagTarget {
  return {
    key,
    experimentKey: key.replace(/^outcome-runtime-/u, ""),
    description: `Split of ${key}`,
    arms: Object.entries(weights).map(([name, weight]) => ({ name, weight })),
  };
}

async function failure(promise: Promise<unknown>): Promise<FlagProviderError> {
  const error = await rejectionOf(promise, FlagProviderError);
  messages.push(error.message, JSON.stringify(error.details));
  return error;
}

function creationFailure(create: () => unknown): FlagProviderError {
  try {
    create();
  } catch (error) {
    if (error instanceof FlagProviderError) {
      messages.push(error.message, JSON.stringify(error.details));
      return error;
    }
    throw error;
  }
  throw new Error("expected create to fail");
}

/**
 * The share of each value the official server SDK serves for `key` over
 * `USERS` distinct user ids, polling the fake (`stream: false`) with the
 * environment's SDK key.
 */
async function sdkSplit(key: string, environment = "production"): Promise<Record<string, number>> {
  const client = init(fake.sdkKey(environment), {
    baseUri: fake.url,
    streamUri: fake.url,
    eventsUri: fake.url,
    stream: false,
    sendEvents: false,
    diagnosticOptOut: true,
    pollInterval: 30,
    logger: basicLogger({ level: "none" }),
  });
  try {
    await client.waitForInitialization({ timeout: 5 });
    const counts: Record<string, number> = {};
    for (let i = 0; i < USERS; i++) {
      const value = await client.variation(key, { kind: "user", key: `user-${i}` }, "fallback");
      counts[String(value)] = (counts[String(value)] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([value, n]) => [value, n / USERS]));
  } finally {
    client.close();
  }
}

function expectSplit(actual: Record<string, number>, expected: Record<string, number>): void {
  for (const [arm, weight] of Object.entries(expected)) {
    expect(Math.abs((actual[arm] ?? 0) - weight), `${arm}: ${actual[arm]} vs ${weight}`).toBeLessThanOrEqual(TOLERANCE);
  }
  expect(Object.keys(actual).every((value) => value in expected)).toBe(true);
}

describe("weights in thousandths of a percent", () => {
  it("sums to exactly 100000 by largest remainder", () => {
    expect(toThousandths([1 / 3, 1 / 3, 1 / 3])).toEqual([33334, 33333, 33333]);
    expect(toThousandths([0.29, 0.71])).toEqual([29000, 71000]);
    expect(toThousandths([0.123456, 0.876544])).toEqual([12346, 87654]);
    expect(toThousandths([1, 0])).toEqual([100000, 0]);
    for (const fractions of [
      [0.1, 0.2, 0.7],
      [1 / 7, 2 / 7, 4 / 7],
      [0.333, 0.333, 0.334],
      [0.5, 0.5],
    ]) {
      expect(toThousandths(fractions).reduce((a, b) => a + b, 0)).toBe(100000);
    }
  });
});

describe("ensure, set weights, disable — read back by the official SDK", () => {
  it("creates the flag with one variation per arm, on, serving the weights; a second ensure writes nothing", async () => {
    const provider = open();
    const flag = target("outcome-runtime-checkout", { control: 0.5, treatment: 0.3, bold: 0.2 });

    const change = await provider.ensureFlag(flag, signal());
    expect(change.status).toBe("applied");
    expect(change.status === "applied" && change.answer).toMatchObject({ created: true });
    expect(fake.count("postFeatureFlag")).toBe(1);
    expect(fake.count("patchFeatureFlag")).toBe(1);
    const stored = fake.flag(flag.key)!;
    expect(stored.variations.map((v) => [v.name, v.value])).toEqual([
      ["control", "control"],
      ["treatment", "treatment"],
      ["bold", "bold"],
    ]);
    const production = stored.environments.production!;
    expect(production.on).toBe(true);
    expect(production.offVariation).toBe(0);
    expect(production.fallthrough.rollout?.variations.map((v) => v.weight)).toEqual([50000, 30000, 20000]);
    // The semantic patch went to the configured environment only.
    expect(stored.environments.staging?.on).toBe(false);

    expectSplit(await sdkSplit(flag.key), { control: 0.5, treatment: 0.3, bold: 0.2 });

    const writes = fake.writes();
    const again = await provider.ensureFlag(flag, signal());
    expect(again).toMatchObject({ status: "applied", answer: { unchanged: true } });
    expect(fake.writes()).toBe(writes);

    const served = (await provider.read([flag.key], signal())).get(flag.key);
    expect(served).toMatchObject({
      exists: true,
      enabled: true,
      variations: ["control", "treatment", "bold"],
      weights: { control: 0.5, treatment: 0.3, bold: 0.2 },
    });
  });

  it("changes the split, kills to control, resumes, and ships the winner", async () => {
    const provider = open();
    const flag = target("outcome-runtime-pricing", { control: 0.5, treatment: 0.5 });
    await provider.ensureFlag(flag, signal());
    expectSplit(await sdkSplit(flag.key), { control: 0.5, treatment: 0.5 });

    const moved = await provider.setWeights(flag, { control: 0.2, treatment: 0.8 }, signal());
    expect(moved).toMatchObject({
      status: "applied",
      answer: { instructions: ["updateFallthroughVariationOrRollout"] },
    });
    expectSplit(await sdkSplit(flag.key), { control: 0.2, treatment: 0.8 });

    const killed = await provider.disable(flag, signal());
    expect(killed).toMatchObject({ status: "applied", answer: { instructions: ["turnFlagOff"] } });
    expect(await sdkSplit(flag.key)).toEqual({ control: 1 });
    expect((await provider.read([flag.key], signal())).get(flag.key)).toMatchObject({
      enabled: false,
      weights: { control: 1, treatment: 0 },
    });
    const writes = fake.writes();
    expect(await provider.disable(flag, signal())).toMatchObject({ answer: { unchanged: true } });
    expect(fake.writes()).toBe(writes);

    const resumed = await provider.setWeights(flag, { control: 0.5, treatment: 0.5 }, signal());
    expect(resumed.status === "applied" && resumed.answer.instructions).toEqual([
      "updateFallthroughVariationOrRollout",
      "turnFlagOn",
    ]);
    expectSplit(await sdkSplit(flag.key), { control: 0.5, treatment: 0.5 });

    await provider.setWeights(flag, { control: 0, treatment: 1 }, signal());
    expect(await sdkSplit(flag.key)).toEqual({ treatment: 1 });
    expect((await provider.read([flag.key], signal())).get(flag.key)?.weights).toEqual({ control: 0, treatment: 1 });
  });

  it("writes thirds as thousandths summing to 100000", async () => {
    const provider = open();
    const flag = target("outcome-runtime-thirds", { control: 1 / 3, a: 1 / 3, b: 1 / 3 });
    await provider.ensureFlag(flag, signal());
    const weights = fake.flag(flag.key)!.environments.production!.fallthrough.rollout!.variations.map((v) => v.weight);
    expect(weights).toEqual([33334, 33333, 33333]);
    expect(await provider.ensureFlag(flag, signal())).toMatchObject({ answer: { unchanged: true } });
  });

  it("adds a variation for an arm the existing flag lacks", async () => {
    const provider = open();
    await provider.ensureFlag(target("outcome-runtime-grow", { control: 0.5, treatment: 0.5 }), signal());
    const grown = target("outcome-runtime-grow", { control: 0.4, treatment: 0.3, extra: 0.3 });
    const change = await provider.ensureFlag(grown, signal());
    expect(change.status).toBe("applied");
    expect(fake.flag(grown.key)!.variations.map((v) => v.name)).toEqual(["control", "treatment", "extra"]);
    expectSplit(await sdkSplit(grown.key), { control: 0.4, treatment: 0.3, extra: 0.3 });
  });

  it("sends every request through context.fetch", async () => {
    let calls = 0;
    const inner = guardedFetch();
    const counting: typeof fetch = (input, init) => {
      calls++;
      return inner(input, init);
    };
    const provider = open({}, counting);
    const flag = target("outcome-runtime-fetch", { control: 0.5, treatment: 0.5 });
    await provider.ensureFlag(flag, signal());
    await provider.read([flag.key], signal());
    expect(calls).toBe(fake.count());
    expect(calls).toBe(4);
    // The documented semantic patch header and the pinned API version.
    const patch = fake.requests.find((r) => r.operation === "patchFeatureFlag")!;
    expect(patch.headers["content-type"]).toBe("application/json; domain-model=launchdarkly.semanticpatch");
    expect(patch.headers["ld-api-version"]).toBe("20240415");
    expect(patch.headers.authorization).toBe(fake.accessToken);
    expect(patch.body).toMatchObject({ environmentKey: "production" });
  });
});

describe("read", () => {
  it("reads five flags in one request, and a missing key as exists: false", async () => {
    const provider = open();
    const keys = ["a", "b", "c", "d", "e"].map((k) => `outcome-runtime-exp-${k}`);
    for (const key of keys) await provider.ensureFlag(target(key, { control: 0.5, treatment: 0.5 }), signal());
    const before = fake.count("getFeatureFlags");

    const served = await provider.read([...keys, "outcome-runtime-exp-missing"], signal());
    expect(fake.count("getFeatureFlags") - before).toBe(1);
    expect(fake.count()).toBe(fake.requests.length);
    for (const key of keys) expect(served.get(key)).toMatchObject({ exists: true, weights: { control: 0.5 } });
    expect(served.get("outcome-runtime-exp-missing")).toEqual({
      exists: false,
      enabled: false,
      variations: [],
      weights: null,
      version: null,
    });
    const listed = fake.requests.at(-1)!;
    expect(listed.query.get("summary")).toBe("false");
    expect(listed.query.get("env")).toBe("production");
    expect(listed.query.get("filter")).toBe("query:outcome-runtime-exp-,filterEnv:production");
  });

  it("pages through more flags than one page holds", async () => {
    const provider = open();
    const keys = Array.from({ length: 105 }, (_, i) => `outcome-runtime-many-${String(i).padStart(3, "0")}`);
    // Created straight through the REST API (as a person's script would), faster than 105 ensures.
    for (const key of keys) {
      const created = await fetch(`${fake.url}/api/v2/flags/shop`, {
        method: "POST",
        headers: { authorization: fake.accessToken, "content-type": "application/json" },
        body: JSON.stringify({ key, name: key, variations: [{ value: "control" }, { value: "treatment" }] }),
      });
      expect(created.status).toBe(201);
    }
    const before = fake.count("getFeatureFlags");
    const served = await provider.read([keys[0]!, keys[104]!], signal());
    expect(fake.count("getFeatureFlags") - before).toBe(2);
    expect(served.get(keys[104]!)?.exists).toBe(true);
    expect(served.get(keys[0]!)?.exists).toBe(true);
  });

  it("shows a hand edit of the weights, and ensure writes them back", async () => {
    const provider = open();
    const flag = target("outcome-runtime-hand", { control: 0.5, treatment: 0.5 });
    await provider.ensureFlag(flag, signal());
    fake.editFlag(flag.key, "production", (config) => {
      config.fallthrough = {
        rollout: {
          variations: [
            { variation: 0, weight: 70000 },
            { variation: 1, weight: 30000 },
          ],
        },
      };
    });
    expect((await provider.read([flag.key], signal())).get(flag.key)?.weights).toEqual({
      control: 0.7,
      treatment: 0.3,
    });

    const writes = fake.writes();
    const change = await provider.ensureFlag(flag, signal());
    expect(change).toMatchObject({ answer: { instructions: ["updateFallthroughVariationOrRollout"] } });
    expect(fake.writes()).toBe(writes + 1);
    expect((await provider.read([flag.key], signal())).get(flag.key)?.weights).toEqual({
      control: 0.5,
      treatment: 0.5,
    });

    fake.editFlag(flag.key, "production", (config) => {
      config.rules = [{ _id: "r1", variation: 1, clauses: [] }];
    });
    expect((await provider.read([flag.key], signal())).get(flag.key)).toMatchObject({ exists: true, weights: null });
  });

  it("reports a deleted flag as exists: false; writing to it is not_found", async () => {
    const provider = open();
    const flag = target("outcome-runtime-gone", { control: 0.5, treatment: 0.5 });
    await provider.ensureFlag(flag, signal());
    fake.deleteFlag(flag.key);
    expect((await provider.read([flag.key], signal())).get(flag.key)?.exists).toBe(false);
    expect((await failure(provider.setWeights(flag, { control: 1, treatment: 0 }, signal()))).code).toBe("not_found");
    expect((await failure(provider.disable(flag, signal()))).code).toBe("not_found");
  });
});

describe("approvals", () => {
  it("asks for an approval once, reuses the pending one, and reads the weights after it is applied", async () => {
    fake.requireApprovals("production");
    const provider = open();
    const flag = target("outcome-runtime-governed", { control: 0.6, treatment: 0.4 });

    const first = await provider.ensureFlag(flag, signal());
    expect(first.status).toBe("waiting_for_approval");
    if (first.status !== "waiting_for_approval") throw new Error("unreachable");
    expect(first.approval.id).toBe(fake.approvals[0]?._id);
    expect(first.approval.url).toBe(`${fake.url}/shop/production/features/${flag.key}`);
    expect(first.answer).toMatchObject({ created: true, reused: false });
    expect(fake.approvals).toHaveLength(1);
    expect(fake.approvals[0]?.instructions.map((i) => i.kind)).toEqual([
      "updateFallthroughVariationOrRollout",
      "turnFlagOn",
    ]);
    expect((await provider.read([flag.key], signal())).get(flag.key)).toMatchObject({
      enabled: false,
      weights: { control: 1, treatment: 0 },
    });

    const second = await provider.ensureFlag(flag, signal());
    expect(second).toMatchObject({
      status: "waiting_for_approval",
      approval: { id: first.approval.id },
      answer: { reused: true },
    });
    expect(fake.approvals).toHaveLength(1);
    expect(fake.count("postApprovalRequestForFlag")).toBe(1);

    fake.applyApproval(first.approval.id);
    expect((await provider.read([flag.key], signal())).get(flag.key)).toMatchObject({
      enabled: true,
      weights: { control: 0.6, treatment: 0.4 },
    });
    expectSplit(await sdkSplit(flag.key), { control: 0.6, treatment: 0.4 });
    expect(await provider.ensureFlag(flag, signal())).toMatchObject({ status: "applied", answer: { unchanged: true } });

    const kill = await provider.disable(flag, signal());
    expect(kill.status).toBe("waiting_for_approval");
    expect(fake.approvals.at(-1)?.instructions).toEqual([{ kind: "turnFlagOff" }]);
    expect(fake.approvals).toHaveLength(2);
  });
});

describe("failures", () => {
  const statuses: [number, string][] = [
    [401, "auth_failed"],
    [403, "forbidden"],
    [404, "not_found"],
    [500, "unavailable"],
    [503, "unavailable"],
  ];
  for (const [status, code] of statuses) {
    it(`answers ${status} as ${code}`, async () => {
      fake.fail("getFeatureFlags", {
        status,
        body: { code: "error", message: `status ${status}`, id: "9c1c8b6e" },
      });
      const error = await failure(open().read(["outcome-runtime-x"], signal()));
      expect(error.code).toBe(code);
      expect(error.message).toContain(`GET /api/v2/flags/shop`);
      expect(error.message).toContain(`status ${status}`);
    });
  }

  it("answers a 409 on the patch as a retryable conflict", async () => {
    const provider = open();
    const flag = target("outcome-runtime-race", { control: 0.5, treatment: 0.5 });
    await provider.ensureFlag(flag, signal());
    fake.fail("patchFeatureFlag", {
      status: 409,
      body: { code: "conflict", message: "The flag was changed by a concurrent request", id: "1" },
    });
    const error = await failure(provider.setWeights(flag, { control: 0.1, treatment: 0.9 }, signal()));
    expect(error.code).toBe("conflict");
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("PATCH /api/v2/flags/shop/outcome-runtime-race");

    // A key taken by a flag the list does not show (archived): 409 on the create, with the way out.
    fake.fail("postFeatureFlag", {
      status: 409,
      body: { code: "conflict", message: "A feature with that key already exists", id: "5" },
    });
    const taken = await failure(provider.ensureFlag(target("outcome-runtime-archived", { control: 1 }), signal()));
    expect(taken.code).toBe("conflict");
    expect(taken.message).toContain("archived");
  });

  it("reads how long to wait from X-Ratelimit-Reset (epoch ms) and from Retry-After", async () => {
    fake.fail("getFeatureFlags", {
      status: 429,
      headers: { "X-Ratelimit-Reset": String(Date.now() + 6000), "X-Ratelimit-Global-Remaining": "0" },
      body: { code: "rate_limited", message: "Rate limit exceeded", id: "2" },
    });
    const byReset = await failure(open().read(["outcome-runtime-x"], signal()));
    expect(byReset.code).toBe("rate_limited");
    expect(byReset.retryAfterMs).toBeGreaterThan(4000);
    expect(byReset.retryAfterMs).toBeLessThanOrEqual(6000);

    fake.fail("getFeatureFlags", {
      status: 429,
      headers: { "Retry-After": "7" },
      body: { code: "rate_limited", message: "Rate limit exceeded", id: "3" },
    });
    const byRetryAfter = await failure(open().read(["outcome-runtime-x"], signal()));
    expect(byRetryAfter.retryAfterMs).toBe(7000);
  });

  it("times out on a slow server", async () => {
    fake.fail("getFeatureFlags", { delayMs: 2000 });
    const error = await failure(open().read(["outcome-runtime-x"], AbortSignal.timeout(200)));
    expect(error.code).toBe("timeout");
  });

  it("answers unavailable when nothing listens", async () => {
    const provider = open();
    await fake.close();
    const error = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(error.code).toBe("unavailable");
    fake = await startFakeLaunchDarkly({ projectKey: "shop" });
  });

  it("refuses through the outbound policy of context.fetch", async () => {
    const provider = open({}, guardedFetch({ policy: parseOutboundPolicy("192.0.2.0/24") }));
    const error = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(error.code).toBe("provider_refused");
    expect(fake.count()).toBe(0);
  });

  it("answers bad_response for garbage, for the wrong shape and for an answer over 5 MB", async () => {
    const provider = open();
    fake.fail("getFeatureFlags", { status: 200, body: "<html>gateway</html>" });
    expect((await failure(provider.read(["outcome-runtime-x"], signal()))).code).toBe("bad_response");

    fake.fail("getFeatureFlags", { status: 200, body: { items: "none" } });
    const shape = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(shape.code).toBe("bad_response");
    expect(shape.message).toContain("items");

    fake.fail("getFeatureFlags", {
      status: 200,
      body: { items: [{ key: "outcome-runtime-x", _version: 1, variations: [{ value: "control" }] }], _links: {} },
    });
    const variation = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(variation.code).toBe("bad_response");
    expect(variation.message).toContain("items[0].variations[0]._id");

    fake.fail("getFeatureFlags", { status: 200, body: `{"items":[],"pad":"${"x".repeat(MAX_ANSWER_BYTES)}"}` });
    const large = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(large.code).toBe("bad_response");
    expect(large.message).toContain(`larger than ${MAX_ANSWER_BYTES} bytes`);

    // The same without a Content-Length: the cap holds while the body streams.
    fake.fail("getFeatureFlags", {
      status: 200,
      headers: { "Transfer-Encoding": "chunked" },
      body: `{"items":[],"pad":"${"x".repeat(MAX_ANSWER_BYTES)}"}`,
    });
    const streamed = await failure(provider.read(["outcome-runtime-x"], signal()));
    expect(streamed.code).toBe("bad_response");
    expect(streamed.message).toContain(`larger than ${MAX_ANSWER_BYTES} bytes`);
  });

  it("answers bad_response for a created flag without variations", async () => {
    fake.fail("postFeatureFlag", { status: 201, body: { key: "outcome-runtime-y", _version: 1 } });
    const error = await failure(open().ensureFlag(target("outcome-runtime-y", { control: 1 }), signal()));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("variations");
  });

  it("refuses an api_url that LaunchDarkly does not document and the operator did not allow", () => {
    const error = creationFailure(() =>
      launchdarklyProvider.create(
        { project: "shop", environment: "production", api_url: "https://flags.example.com" },
        { credentials: { access_token: fake.accessToken }, allowedApiUrls: [], fetch: guardedFetch() },
      ),
    );
    expect(error.code).toBe("provider_refused");
    expect(error.message).toContain("flags.api_url");
  });

  it("accepts the documented instances", () => {
    expect(launchdarklyProvider.documentedApiUrls).toEqual([
      "https://app.launchdarkly.com",
      "https://app.eu.launchdarkly.com",
      "https://app.launchdarkly.us",
    ]);
    for (const api_url of launchdarklyProvider.documentedApiUrls) {
      const provider = launchdarklyProvider.create(
        { project: "shop", environment: "production", api_url },
        { credentials: { access_token: "api-0000" }, allowedApiUrls: [], fetch: guardedFetch() },
      );
      expect(provider.describe).toBe("launchdarkly shop/production");
    }
  });

  it("names the wrong setting in invalid_config", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ environment: "production" }, "flags.project"],
      [{ project: "shop" }, "flags.environment"],
      [{ project: "has space", environment: "production" }, "flags.project"],
      [{ project: "shop", environment: 42 }, "flags.environment"],
      [{ project: "shop", environment: "production", api_url: "not a url" }, "flags.api_url"],
    ];
    for (const [settings, field] of cases) {
      const error = creationFailure(() =>
        launchdarklyProvider.create(settings, {
          credentials: { access_token: fake.accessToken },
          allowedApiUrls: [],
          fetch: guardedFetch(),
        }),
      );
      expect(error.code).toBe("invalid_config");
      expect(error.message).toContain(field);
    }
    const noToken = creationFailure(() =>
      launchdarklyProvider.create(
        { project: "shop", environment: "production" },
        { credentials: {}, allowedApiUrls: [], fetch: guardedFetch() },
      ),
    );
    expect(noToken.code).toBe("invalid_config");
    expect(noToken.message).toContain("flags.access_token_env");
  });

  it("refuses weights that are not fractions of the arms summing to 1", async () => {
    const provider = open();
    const flag = target("outcome-runtime-w", { control: 0.5, treatment: 0.5 });
    expect((await failure(provider.setWeights(flag, { control: 0.5, treatment: 0.6 }, signal()))).code).toBe(
      "invalid_config",
    );
    expect((await failure(provider.setWeights(flag, { control: 0.5, other: 0.5 }, signal()))).code).toBe(
      "invalid_config",
    );
    expect(fake.count()).toBe(0);
  });

  it("never puts the token in a message, even when the server echoes it", async () => {
    fake.fail("getFeatureFlags", {
      status: 401,
      body: { code: "unauthorized", message: `Invalid access token ${fake.accessToken}`, id: "4" },
    });
    const error = await failure(open().read(["outcome-runtime-x"], signal()));
    expect(error.code).toBe("auth_failed");
    expect(error.message).not.toContain(fake.accessToken);
    for (const message of messages) expect(message).not.toContain(fake.accessToken);
    expect(messages.length).toBeGreaterThan(10);
  });
});

describe("snippet", () => {
  const flag = target("outcome-runtime-checkout", { control: 0.5, treatment: 0.5 });
  it.each(SNIPPET_LANGUAGES)(
    "evaluates the flag for a user with the official %s SDK and branches by arm",
    (language) => {
      const code = launchdarklyProvider.snippet(language, flag);
      expect(code).toContain('"outcome-runtime-checkout"');
      expect(code).toContain('"treatment"');
      expect(code).toContain('"control"');
      const sdk = {
        typescript: "@launchdarkly/node-server-sdk",
        python: "import ldclient",
        go: "github.com/launchdarkly/go-server-sdk/v7",
      }[language];
      expect(code).toContain(sdk);
      expect(code).not.toContain(fake.accessToken);
    },
  );
});
