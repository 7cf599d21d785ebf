import { clearCache, configureCache, GrowthBook } from "@growthbook/growthbook";
import { type FakeGrowthBook, startFakeGrowthBook } from "@outcome-runtime/testing/fake-growthbook";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { FlagProvider, FlagProviderContext, FlagTarget } from "../provider";
import { FlagProviderError } from "../provider";
import { growthbookProvider, toGrowthBookWeights } from "./growthbook.provider";

const SECRET = "secret_admin_T0pS3cretValue42";
const READ_ONLY = "secret_readonly_R3adOnlyValue7";
const PROJECT = "prj_web";
const CLIENT_KEY = "sdk-web-production";
const USERS = 2000;

let fake: FakeGrowthBook;

function context(apiKey: string = SECRET, allowed: readonly string[] = [fake.url]): FlagProviderContext {
  return { credentials: { api_key: apiKey }, allowedApiUrls: allowed, fetch };
}

function settings(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { api_url: fake.url, project: PROJECT, environment: "production", owner: "owner@example.com", ...extra };
}

function provider(apiKey: string = SECRET): FlagProvider {
  return growthbookProvider.create(settings(), context(apiKey));
}

function target(key: string, weights: readonly number[] = [0.5, 0.5], names = ["control", "treatment"]): FlagTarget {
  return {
    key,
    experimentKey: key.replace(/^outcome-runtime-/u, ""),
    description: `Split of ${key}`,
    arms: names.map((name, i) => ({ name, weight: weights[i] ?? 0 })),
  };
}

const signal = () => AbortSignal.timeout(5000);

/** The value the official SDK serves each of 2000 user ids, fetching the payload from the fake as an app would. */
async function sdkValues(key: string): Promise<string[]> {
  await clearCache();
  const gb = new GrowthBook({ apiHost: fake.url, clientKey: CLIENT_KEY, attributes: {}, backgroundSync: false });
  try {
    const result = await gb.init({ timeout: 5000 });
    expect(result.success).toBe(true);
    const values: string[] = [];
    for (let i = 0; i < USERS; i++) {
      await gb.setAttributes({ id: `user-${i}` });
      values.push(gb.getFeatureValue(key, "fallback"));
    }
    return values;
  } finally {
    gb.destroy();
  }
}

/** The SDK's values over 2000 user ids as shares by value. */
async function sdkSplit(key: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const value of await sdkValues(key)) counts[value] = (counts[value] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).map(([v, n]) => [v, n / USERS]));
}

function expectSplit(actual: Record<string, number>, wanted: Record<string, number>): void {
  for (const [arm, weight] of Object.entries(wanted)) {
    expect(Math.abs((actual[arm] ?? 0) - weight), `${arm}: ${actual[arm]} vs ${weight}`).toBeLessThanOrEqual(0.04);
  }
  expect(Object.keys(actual).every((k) => k in wanted)).toBe(true);
}

async function failure(promise: Promise<unknown>): Promise<FlagProviderError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof FlagProviderError) return error;
    throw error;
  }
  throw new Error("expected a FlagProviderError");
}

const seen: FlagProviderError[] = [];
async function failed(promise: Promise<unknown>): Promise<FlagProviderError> {
  const error = await failure(promise);
  seen.push(error);
  return error;
}

beforeAll(async () => {
  configureCache({ disableCache: true, backgroundSync: false });
  fake = await startFakeGrowthBook({
    apiKeys: [SECRET],
    readOnlyKeys: [READ_ONLY],
    environments: ["production", "dev"],
    projects: [PROJECT, "prj_other"],
    sdkConnections: [{ clientKey: CLIENT_KEY, environment: "production", projects: [PROJECT] }],
  });
});

afterAll(async () => {
  await clearCache();
  await fake.close();
  // The token never appears in any error this file provoked.
  for (const error of seen) {
    expect(error.message).not.toContain(SECRET);
    expect(JSON.stringify(error.details)).not.toContain(SECRET);
  }
});

beforeEach(() => {
  fake.clearFailures();
  fake.resetCounters();
});

afterEach(() => {
  fake.clearFailures();
});

describe("toGrowthBookWeights", () => {
  it("sums to exactly 1 in ten-thousandths (largest remainder)", () => {
    const w = toGrowthBookWeights(["a", "b", "c"], { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    expect(w).toEqual({ a: 0.3334, b: 0.3333, c: 0.3333 });
    expect(Object.values(w).reduce((x, y) => x + y, 0) * 10000).toBeCloseTo(10000, 9);
    expect(toGrowthBookWeights(["a", "b"], { b: 1 })).toEqual({ a: 0, b: 1 });
    expect(toGrowthBookWeights(["a", "b", "c"], { a: 0.29, b: 0.29, c: 0.42 })).toEqual({ a: 0.29, b: 0.29, c: 0.42 });
  });

  it("refuses weights that are not fractions of the arms summing to 1", () => {
    expect(() => toGrowthBookWeights(["a", "b"], { a: 0.5, b: 0.6 })).toThrow(/sum to 1.1/u);
    expect(() => toGrowthBookWeights(["a", "b"], { a: 0.5, z: 0.5 })).toThrow(/"z" is not an arm/u);
    expect(() => toGrowthBookWeights(["a", "b"], { a: -0.5, b: 1.5 })).toThrow(/not a fraction/u);
  });
});

describe("the split served through the official SDK", () => {
  const flag = target("outcome-runtime-checkout", [0.5, 0.5]);

  it("ensure creates the feature and the SDK serves the split", async () => {
    const change = await provider().ensureFlag(flag, signal());
    expect(change.status).toBe("applied");
    expect(fake.writes).toBe(1);
    const stored = fake.feature(flag.key);
    expect(stored?.valueType).toBe("string");
    expect(stored?.defaultValue).toBe("control");
    expect(stored?.project).toBe(PROJECT);
    expect(stored?.environments.production?.enabled).toBe(true);
    expect(stored?.environments.production?.rules).toHaveLength(1);
    expect(stored?.environments.production?.rules[0]).toMatchObject({
      type: "experiment",
      enabled: true,
      hashAttribute: "id",
      coverage: 1,
      trackingKey: "checkout",
      value: [
        { value: "control", weight: 0.5, name: "control" },
        { value: "treatment", weight: 0.5, name: "treatment" },
      ],
    });
    expect(stored?.environments.dev?.enabled).toBe(false);
    expectSplit(await sdkSplit(flag.key), { control: 0.5, treatment: 0.5 });
  });

  it("ensure again makes no write", async () => {
    const change = await provider().ensureFlag(flag, signal());
    expect(change).toMatchObject({ status: "applied", answer: { unchanged: true } });
    expect(fake.writes).toBe(0);
    expect(fake.restRequests).toBe(1);
  });

  let assigned: string[] = [];

  it("setWeights changes the split", async () => {
    await provider().setWeights(flag, { control: 0.2, treatment: 0.8 }, signal());
    expect(fake.writes).toBe(1);
    expectSplit(await sdkSplit(flag.key), { control: 0.2, treatment: 0.8 });
    assigned = await sdkValues(flag.key);
    const read = (await provider().read([flag.key], signal())).get(flag.key);
    expect(read).toMatchObject({ exists: true, enabled: true, variations: ["control", "treatment"] });
    expect(read?.weights).toEqual({ control: 0.2, treatment: 0.8 });
  });

  it("disable sends every unit to control and read reports it", async () => {
    const change = await provider().disable(flag, signal());
    expect(change.status).toBe("applied");
    expect(fake.writes).toBe(1);
    const rule = fake.feature(flag.key)?.environments.production?.rules[0];
    expect(rule?.enabled).toBe(false);
    expect(fake.feature(flag.key)?.environments.production?.enabled).toBe(true);
    expect(await sdkSplit(flag.key)).toEqual({ control: 1 });
    const read = (await provider().read([flag.key], signal())).get(flag.key);
    expect(read?.weights).toEqual({ control: 1, treatment: 0 });
    fake.resetCounters();
    expect(await provider().disable(flag, signal())).toMatchObject({ answer: { unchanged: true } });
    expect(fake.writes).toBe(0);
  });

  it("setWeights after the kill brings the split back, units to their former arms", async () => {
    const before = fake.feature(flag.key)?.environments.production?.rules[0];
    await provider().setWeights(flag, { control: 0.2, treatment: 0.8 }, signal());
    const after = fake.feature(flag.key)?.environments.production?.rules[0];
    expect(after?.id).toBe(before?.id);
    expect(after?.trackingKey).toBe(before?.trackingKey);
    expect(after?.enabled).toBe(true);
    expectSplit(await sdkSplit(flag.key), { control: 0.2, treatment: 0.8 });
    expect(await sdkValues(flag.key)).toEqual(assigned);
  });

  it("the winner at 1 is served to everyone", async () => {
    await provider().setWeights(flag, { treatment: 1 }, signal());
    expect(await sdkSplit(flag.key)).toEqual({ treatment: 1 });
    const read = (await provider().read([flag.key], signal())).get(flag.key);
    expect(read?.weights).toEqual({ control: 0, treatment: 1 });
  });

  it("three arms at uneven weights", async () => {
    const three = target("outcome-runtime-three", [0.5, 0.3, 0.2], ["control", "blue", "green"]);
    await provider().ensureFlag(three, signal());
    expectSplit(await sdkSplit(three.key), { control: 0.5, blue: 0.3, green: 0.2 });
  });

  it("ensure repairs a feature turned off by hand with one toggle", async () => {
    const key = "outcome-runtime-checkout";
    await provider().ensureFlag(flag, signal());
    fake.editFeature(key, (f) => {
      if (f.environments.production) f.environments.production.enabled = false;
    });
    expect((await provider().read([key], signal())).get(key)).toMatchObject({ enabled: false, weights: null });
    fake.resetCounters();
    await provider().ensureFlag(flag, signal());
    expect(fake.writes).toBe(1);
    expect(fake.requests.at(-1)?.route).toBe("toggleFeature");
    expectSplit(await sdkSplit(key), { control: 0.5, treatment: 0.5 });
  });
});

describe("read", () => {
  const keys = ["outcome-runtime-r1", "outcome-runtime-r2", "outcome-runtime-r3", "outcome-runtime-r4"];

  beforeAll(async () => {
    for (const key of keys) await provider().ensureFlag(target(key, [0.6, 0.4]), signal());
  });

  it("reads 5 keys in one request, a missing key as exists:false", async () => {
    fake.resetCounters();
    const served = await provider().read([...keys, "outcome-runtime-nope"], signal());
    expect(fake.restRequests).toBe(1);
    expect(fake.requests[0]).toMatchObject({ route: "listFeatures", query: { limit: "100", projectId: PROJECT } });
    for (const key of keys) {
      expect(served.get(key)).toMatchObject({
        exists: true,
        enabled: true,
        variations: ["control", "treatment"],
        weights: { control: 0.6, treatment: 0.4 },
      });
      expect(served.get(key)?.version).toMatch(/^\d+$/u);
    }
    expect(served.get("outcome-runtime-nope")).toEqual({
      exists: false,
      enabled: false,
      variations: [],
      weights: null,
      version: null,
    });
  });

  it("no keys, no request", async () => {
    expect((await provider().read([], signal())).size).toBe(0);
    expect(fake.restRequests).toBe(0);
  });

  it("shows a hand edit of the weights, and ensure puts them back", async () => {
    const key = keys[0] ?? "";
    const before = (await provider().read([key], signal())).get(key)?.version;
    fake.editFeature(key, (f) => {
      const rule = f.environments.production?.rules[0];
      if (rule && Array.isArray(rule.value)) {
        rule.value[0] = { value: "control", weight: 0.9, name: "control" };
        rule.value[1] = { value: "treatment", weight: 0.1, name: "treatment" };
      }
    });
    const after = (await provider().read([key], signal())).get(key);
    expect(after?.weights).toEqual({ control: 0.9, treatment: 0.1 });
    expect(after?.version).not.toBe(before);
    fake.resetCounters();
    await provider().ensureFlag(target(key, [0.6, 0.4]), signal());
    expect(fake.writes).toBe(1);
    expect((await provider().read([key], signal())).get(key)?.weights).toEqual({ control: 0.6, treatment: 0.4 });
  });

  it("a rule added by hand that the runtime cannot express reads as null weights", async () => {
    const key = keys[1] ?? "";
    fake.editFeature(key, (f) => {
      f.environments.production?.rules.unshift({
        id: "fr_hand",
        type: "force",
        description: "",
        condition: '{"country":"FR"}',
        enabled: true,
        savedGroupTargeting: [],
        prerequisites: [],
        value: "treatment",
      });
    });
    expect((await provider().read([key], signal())).get(key)).toMatchObject({ exists: true, weights: null });
  });

  it("a deleted feature reads as exists:false", async () => {
    const key = keys[2] ?? "";
    fake.deleteFeature(key);
    expect((await provider().read([key], signal())).get(key)?.exists).toBe(false);
    expect(await failed(provider().setWeights(target(key), { control: 1 }, signal()))).toMatchObject({
      code: "not_found",
    });
  });

  it("pages through a large project, then fetches the few keys left one by one", async () => {
    const many = growthbookProvider.create(settings({ project: "prj_other" }), context());
    const bulk = Array.from({ length: 205 }, (_, i) => `outcome-runtime-bulk-${String(i).padStart(3, "0")}`);
    for (const key of bulk) await many.ensureFlag(target(key), signal());
    fake.resetCounters();
    const served = await many.read([bulk[0] ?? "", bulk[204] ?? ""], signal());
    expect(served.get(bulk[0] ?? "")?.exists).toBe(true);
    expect(served.get(bulk[204] ?? "")?.weights).toEqual({ control: 0.5, treatment: 0.5 });
    // page 1 (0..99) has bulk-000; 105 features left in 2 pages but 1 key: one GET instead.
    expect(fake.requests.map((r) => r.route)).toEqual(["listFeatures", "getFeature"]);
    fake.resetCounters();
    const gone = await many.read([bulk[0] ?? "", "outcome-runtime-bulk-none"], signal());
    expect(gone.get("outcome-runtime-bulk-none")?.exists).toBe(false);
    expect(fake.requests.map((r) => r.route)).toEqual(["listFeatures", "getFeature"]);
    fake.resetCounters();
    const all = await many.read(
      bulk.filter((_, i) => i % 10 === 0),
      signal(),
    );
    expect(all.size).toBe(21);
    expect(fake.requests.map((r) => r.route)).toEqual(["listFeatures", "listFeatures", "listFeatures"]);
  }, 30_000);
});

describe("failures", () => {
  const flag = target("outcome-runtime-failing");

  beforeAll(async () => {
    await provider().ensureFlag(flag, signal());
  });

  it("401 → auth_failed", async () => {
    const error = await failed(provider("secret_admin_wrongWrongWrong").read([flag.key], signal()));
    expect(error.code).toBe("auth_failed");
    expect(error.message).not.toContain("secret_admin_wrongWrongWrong");
  });

  it("403 → forbidden (a read-only key writes)", async () => {
    const error = await failed(provider(READ_ONLY).setWeights(flag, { control: 0.3, treatment: 0.7 }, signal()));
    expect(error.code).toBe("forbidden");
    expect(error.message).toContain("POST /api/v1/features/outcome-runtime-failing");
    expect(error.message).not.toContain(READ_ONLY);
  });

  it("404 → not_found", async () => {
    fake.fail("listFeatures", { status: 404, body: { message: "Unknown API route" } });
    expect((await failed(provider().read([flag.key], signal()))).code).toBe("not_found");
  });

  it("a 404 for the feature reads as missing: ensure creates, and one created meanwhile is a conflict", async () => {
    fake.fail("getFeature", { status: 404, body: { message: "Could not find a feature with that key" }, times: 1 });
    const change = failed(provider().ensureFlag(flag, signal()));
    // the feature does exist, so the create is refused as a conflict (read again)
    expect((await change).code).toBe("conflict");
  });

  it("409 → conflict", async () => {
    fake.fail("updateFeature", { status: 409, body: { message: "The feature changed meanwhile" } });
    const error = await failed(provider().setWeights(flag, { control: 0.1, treatment: 0.9 }, signal()));
    expect(error).toMatchObject({ code: "conflict", retryable: true });
  });

  it("429 → rate_limited with Retry-After", async () => {
    fake.fail("listFeatures", {
      status: 429,
      headers: { "Retry-After": "17" },
      body: { message: "Too many requests, limit to 60 per minute" },
    });
    const error = await failed(provider().read([flag.key], signal()));
    expect(error).toMatchObject({ code: "rate_limited", retryAfterMs: 17_000, retryable: true });
  });

  it("429 from the fake's own per-key limit", async () => {
    const limited = await startFakeGrowthBook({ apiKeys: [SECRET], projects: [PROJECT], rateLimitPerMinute: 2 });
    try {
      const p = growthbookProvider.create(
        { api_url: limited.url, project: PROJECT, environment: "production" },
        { credentials: { api_key: SECRET }, allowedApiUrls: [limited.url], fetch },
      );
      await p.read(["a"], signal());
      await p.read(["a"], signal());
      const error = await failed(p.read(["a"], signal()));
      expect(error.code).toBe("rate_limited");
      expect(error.retryAfterMs).toBeGreaterThan(0);
      expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    } finally {
      await limited.close();
    }
  });

  it("5xx → unavailable", async () => {
    fake.fail("getFeature", { status: 503, body: "upstream unavailable" });
    expect((await failed(provider().disable(flag, signal()))).code).toBe("unavailable");
  });

  it("a slow server → timeout", async () => {
    fake.fail("listFeatures", { status: 200, delayMs: 2000, body: { features: [] } });
    const error = await failed(provider().read([flag.key], AbortSignal.timeout(200)));
    expect(error.code).toBe("timeout");
  });

  it("non-JSON → bad_response", async () => {
    fake.fail("listFeatures", { status: 200, body: "<html>Maintenance</html>" });
    const error = await failed(provider().read([flag.key], signal()));
    expect(error.code).toBe("bad_response");
    expect(error.message).toMatch(/not JSON/u);
  });

  it("wrong shape → bad_response naming what is wrong", async () => {
    fake.fail("listFeatures", { status: 200, body: { features: "none", hasMore: false } });
    const list = await failed(provider().read([flag.key], signal()));
    expect(list.code).toBe("bad_response");
    expect(list.message).toContain("features is not an array");
    fake.fail("listFeatures", {
      status: 200,
      body: {
        features: [{ id: flag.key, valueType: "string", defaultValue: "control", environments: { production: {} } }],
        hasMore: false,
        nextOffset: null,
        total: 1,
        limit: 100,
        offset: 0,
        count: 1,
      },
    });
    const env = await failed(provider().read([flag.key], signal()));
    expect(env.code).toBe("bad_response");
    expect(env.message).toContain("features[0].environments.production.enabled is not a boolean");
    fake.fail("getFeature", { status: 200, body: { feature: { id: flag.key } } });
    const one = await failed(provider().ensureFlag(flag, signal()));
    expect(one.code).toBe("bad_response");
    expect(one.message).toContain("feature.valueType is not a string");
  });

  it("an answer over 5 MB → bad_response", async () => {
    const huge = JSON.stringify({ features: [], filler: "x".repeat(6 * 1024 * 1024) });
    fake.fail("listFeatures", { status: 200, body: huge });
    const error = await failed(provider().read([flag.key], signal()));
    expect(error.code).toBe("bad_response");
    expect(error.message).toMatch(/larger than/u);
  });

  it("a write the answer does not confirm → bad_response", async () => {
    const current = { feature: { ...(fake.feature(flag.key) ?? {}) } };
    fake.fail("updateFeature", { status: 200, body: current });
    const error = await failed(provider().setWeights(flag, { control: 0.05, treatment: 0.95 }, signal()));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("does not show the change");
  });
});

describe("settings", () => {
  it("an api_url neither documented nor allowed → provider_refused", () => {
    const error = (() => {
      try {
        growthbookProvider.create(settings({ api_url: "https://evil.example.com" }), context());
      } catch (e) {
        return e as FlagProviderError;
      }
      throw new Error("expected a refusal");
    })();
    seen.push(error);
    expect(error.code).toBe("provider_refused");
    expect(error.message).toContain("flags.api_url");
  });

  it("GrowthBook Cloud's URL is accepted with or without /api, and is the default", () => {
    for (const api_url of [undefined, "https://api.growthbook.io", "https://api.growthbook.io/api/"]) {
      const p = growthbookProvider.create(settings({ api_url }), context(SECRET, []));
      expect(p.describe).toBe(`growthbook ${PROJECT}/production`);
    }
  });

  it.each([
    [{ environment: undefined }, "flags.environment"],
    [{ environment: "prod env" }, "flags.environment"],
    [{ project: "" }, "flags.project"],
    [{ hash_attribute: "9 lives" }, "flags.hash_attribute"],
    [{ owner: "two words" }, "flags.owner"],
    [{ api_url: "ftp://api.growthbook.io" }, "flags.api_url"],
  ])("bad settings %j → invalid_config naming %s", (extra, field) => {
    let error: FlagProviderError | undefined;
    try {
      growthbookProvider.create(settings(extra), context());
    } catch (e) {
      error = e as FlagProviderError;
    }
    expect(error).toBeInstanceOf(FlagProviderError);
    seen.push(error as FlagProviderError);
    expect(error?.code).toBe("invalid_config");
    expect(error?.message).toContain(field);
  });

  it("a missing or SDK key → invalid_config naming the credential", () => {
    for (const key of ["", "sdk-abc123"]) {
      let error: FlagProviderError | undefined;
      try {
        growthbookProvider.create(settings(), context(key));
      } catch (e) {
        error = e as FlagProviderError;
      }
      expect(error?.code).toBe("invalid_config");
      expect(error?.message).toContain("flags.api_key_env");
    }
  });

  it("a Secret Key without flags.owner → invalid_config naming flags.owner at create", async () => {
    const p = growthbookProvider.create(settings({ owner: undefined }), context());
    const error = await failed(p.ensureFlag(target("outcome-runtime-ownerless"), signal()));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("flags.owner");
  });

  it("an environment or project GrowthBook does not have → invalid_config naming it", async () => {
    const env = growthbookProvider.create(settings({ environment: "staging" }), context());
    const noEnv = await failed(env.ensureFlag(target("outcome-runtime-staging"), signal()));
    expect(noEnv.code).toBe("invalid_config");
    expect(noEnv.message).toContain("flags.environment");
    const project = growthbookProvider.create(settings({ project: "prj_missing" }), context());
    const noProject = await failed(project.ensureFlag(target("outcome-runtime-nowhere"), signal()));
    expect(noProject.code).toBe("invalid_config");
    expect(noProject.message).toContain("flags.project");
  });

  it("a feature deleted between the read and the write → conflict", async () => {
    const key = "outcome-runtime-vanishing";
    await provider().ensureFlag(target(key), signal());
    fake.fail("updateFeature", { status: 400, body: { message: `Feature id '${key}' not found.` } });
    const error = await failed(provider().setWeights(target(key), { control: 0.1, treatment: 0.9 }, signal()));
    expect(error).toMatchObject({ code: "conflict", retryable: true });
  });

  it("bad flag key or weights → invalid_config before any request", async () => {
    fake.resetCounters();
    expect((await failed(provider().ensureFlag(target("has space"), signal()))).code).toBe("invalid_config");
    expect((await failed(provider().ensureFlag(target("outcome-runtime-w", [0.7, 0.7]), signal()))).code).toBe(
      "invalid_config",
    );
    expect(fake.restRequests).toBe(0);
  });

  it("a feature of another value type → invalid_config, no write", async () => {
    await fetch(`${fake.url}/api/v1/features`, {
      method: "POST",
      headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "outcome-runtime-bool", valueType: "boolean", defaultValue: "false", owner: "x" }),
    });
    fake.resetCounters();
    const error = await failed(provider().ensureFlag(target("outcome-runtime-bool"), signal()));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("value type boolean");
    expect(fake.writes).toBe(0);
  });
});

describe("snippet", () => {
  const flag = target("outcome-runtime-checkout", [0.5, 0.5], ["control", "one-click"]);

  it("uses the official server SDKs and branches by arm name", () => {
    const ts = growthbookProvider.snippet("typescript", flag);
    expect(ts).toContain('from "@growthbook/growthbook"');
    expect(ts).toContain('gb.getFeatureValue("outcome-runtime-checkout", "control")');
    expect(ts).toContain('case "one-click":');
    const py = growthbookProvider.snippet("python", flag);
    expect(py).toContain("from growthbook import GrowthBook");
    expect(py).toContain('gb.get_feature_value("outcome-runtime-checkout", "control")');
    expect(py).toContain('elif arm == "one-click":');
    const go = growthbookProvider.snippet("go", flag);
    expect(go).toContain('gb "github.com/growthbook/growthbook-golang"');
    expect(go).toContain('child.EvalFeature(ctx, "outcome-runtime-checkout")');
    expect(go).toContain('case "one-click":');
  });
});
