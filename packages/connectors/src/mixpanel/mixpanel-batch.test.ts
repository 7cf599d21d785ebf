/**
 * Batched reads of the Mixpanel connector against the fake Query API of
 * `@outcome-runtime/testing/fake-mixpanel`, which answers every request from
 * one list of events (github.com/mixpanel/docs, openapi/query.openapi.yaml,
 * GET /segmentation): the batched form and the one-experiment form read the
 * same data, and every request is counted.
 */

import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeMixpanel, startFakeMixpanel } from "@outcome-runtime/testing/fake-mixpanel";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BatchWindow, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector, readsInBatches } from "../create-connector";
import { MIXPANEL_BATCH_MAX_KEYS, MIXPANEL_BATCH_MAX_WHERE_CHARS } from "./mixpanel.connector";
import { MIXPANEL_QUERIES_PER_HOUR, queriesSpentThisHour, resetRateLimitState } from "./query-api-client";

const AUTH = { username: "outcome-runtime.batch.mp-service-account", secret: "b4tch-s3cret", projectId: "2741933" };
const ARMS = ["control", "treatment"] as const;
const FROM = new Date("2026-03-01T10:00:00Z");
const TO = new Date("2026-03-07T18:30:00Z");

let fake: FakeMixpanel;

beforeAll(async () => {
  fake = await startFakeMixpanel(AUTH);
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.events.length = 0;
  fake.requests.length = 0;
  fake.override = null;
  resetRateLimitState();
});

const context = (): ConnectorContext => ({
  credentials: { username: AUTH.username, secret: AUTH.secret },
  metricKind: "proportion",
  allowedApiUrls: { mixpanel: [fake.baseUrl] },
});
const config = (extra: Record<string, unknown> = {}) => ({
  type: "mixpanel",
  project_id: Number(AUTH.projectId),
  username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_USERNAME",
  secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_SECRET",
  event: "Order completed",
  api_url: fake.baseUrl,
  ...extra,
});

/**
 * Exposures and conversions of experiment `key`, different per `i`: users
 * fire the exposure twice (unique counts count them once), some convert, a few
 * on web and the rest on ios; one user is exposed outside the window.
 */
function track(key: string, i: number, arms: readonly string[] = ARMS): void {
  for (const [a, arm] of arms.entries()) {
    const exposed = 3 + ((i + a * 2) % 7);
    for (let u = 0; u < exposed; u++) {
      const distinctId = `${key}/${arm}/${u}`;
      const properties = { "Experiment name": key, "Variant name": arm, platform: u % 3 === 0 ? "web" : "ios" };
      const day = `2026-03-0${1 + (u % 6)}`;
      fake.events.push({ event: "$experiment_started", distinctId, date: day, properties });
      fake.events.push({ event: "$experiment_started", distinctId, date: "2026-03-07", properties });
      if (u < 1 + ((i + a) % 3)) fake.events.push({ event: "Order completed", distinctId, date: day, properties });
    }
  }
  fake.events.push({
    event: "$experiment_started",
    distinctId: `${key}/early`,
    date: "2026-02-20",
    properties: { "Experiment name": key, "Variant name": arms[0] ?? "control" },
  });
}

const batchOf = (keys: readonly string[], from: Date = FROM): BatchWindow => ({
  experiments: keys.map((experimentKey) => ({ experimentKey, arms: ARMS, from })),
  to: TO,
});

function batched(connector: SignalConnector): NonNullable<SignalConnector["fetchBatchAggregates"]> {
  const read = connector.fetchBatchAggregates;
  if (read === undefined) throw new Error("expected a batched connector");
  return read;
}

/** The ConnectorError a call rejects with. */
const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

const keysOf = (n: number, prefix = "exp") =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);

describe("mixpanel connector: batched reads", () => {
  it("reads 100 experiments with one pair of /segmentation requests, answering what one-by-one reads answer", async () => {
    const keys = keysOf(100);
    for (const [i, k] of keys.entries()) track(k, i);
    // An experiment outside the batch, and arms the experiments do not have: neither is counted.
    track("not-asked", 5);
    track("exp-000", 0, ["holdout"]);
    const connector = createConnector(config({ filter: 'properties["platform"] == "web"' }), context());
    expect(readsInBatches(config())).toBe(true);

    const answer = await batched(connector)(batchOf(keys));
    expect(fake.requests).toHaveLength(2 * Math.ceil(100 / MIXPANEL_BATCH_MAX_KEYS));
    expect(queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId })).toBe(2);
    const [exposure, conversion] = [...fake.requests].sort((a, b) =>
      (a.params.get("event") ?? "").localeCompare(b.params.get("event") ?? ""),
    );
    expect(exposure?.params.get("event")).toBe("$experiment_started");
    expect(exposure?.params.get("on")).toBe('properties["Experiment name"] + " | " + properties["Variant name"]');
    expect(exposure?.params.get("where")).toBe(
      `(properties["Experiment name"] in [${keys.map((k) => JSON.stringify(k)).join(", ")}] and properties["Variant name"] in ["control", "treatment"])`,
    );
    expect(exposure?.params.get("limit")).toBe("200");
    expect(exposure?.params.get("type")).toBe("unique");
    expect(exposure?.params.get("interval")).toBe("7");
    expect(conversion?.params.get("where")).toBe(
      `(${exposure?.params.get("where")}) and (properties["platform"] == "web")`,
    );

    fake.requests.length = 0;
    for (const key of keys) {
      // 200 one-by-one requests are more than an hour's budget (the point of batching): forget each read's.
      resetRateLimitState();
      const single = await connector.fetchArmAggregates({ experimentKey: key, arms: ARMS, from: FROM, to: TO });
      expect(single.length).toBe(2);
      expect(answer.get(key), key).toEqual(single);
    }
    expect(fake.requests).toHaveLength(200);
    expect([...answer.keys()].sort()).toEqual(keys);
  });

  it("splits a batch into ⌈n / keys per request⌉ request pairs, by long keys' where size, and by window start", async () => {
    const keys = keysOf(250);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    const answer = await batched(connector)(batchOf(keys));
    expect(fake.requests).toHaveLength(2 * Math.ceil(250 / MIXPANEL_BATCH_MAX_KEYS));
    expect([...answer.values()].every((v) => Array.isArray(v) && v.length === 2)).toBe(true);

    // Keys of 80 characters: the where would pass MIXPANEL_BATCH_MAX_WHERE_CHARS before 100 keys.
    fake.requests.length = 0;
    const long = keysOf(100, "x".repeat(76));
    for (const [i, k] of long.entries()) track(k, i);
    const longAnswer = await batched(connector)(batchOf(long));
    const wheres = fake.requests.map((r) => r.params.get("where") ?? "");
    expect(fake.requests.length).toBeGreaterThan(2);
    expect(fake.requests.length).toBeLessThanOrEqual(
      2 * Math.ceil((100 * 84) / (MIXPANEL_BATCH_MAX_WHERE_CHARS - 200)),
    );
    expect(wheres.every((w) => w.length <= MIXPANEL_BATCH_MAX_WHERE_CHARS)).toBe(true);
    const [first] = long;
    expect(longAnswer.get(first ?? "")).toEqual(
      await connector.fetchArmAggregates({ experimentKey: first ?? "", arms: ARMS, from: FROM, to: TO }),
    );

    // Two window starts: unique counts depend on the date range, so each start gets its own request pair.
    fake.requests.length = 0;
    const later = new Date("2026-03-04T00:00:00Z");
    const mixed: BatchWindow = {
      experiments: [
        { experimentKey: "exp-000", arms: ARMS, from: FROM },
        { experimentKey: "exp-001", arms: ARMS, from: later },
      ],
      to: TO,
    };
    const mixedAnswer = await batched(connector)(mixed);
    expect(fake.requests.map((r) => r.params.get("from_date")).sort()).toEqual([
      "2026-03-01",
      "2026-03-01",
      "2026-03-04",
      "2026-03-04",
    ]);
    expect(mixedAnswer.get("exp-001")).toEqual(
      await connector.fetchArmAggregates({ experimentKey: "exp-001", arms: ARMS, from: later, to: TO }),
    );
  });

  it("gives an experiment with no data [], and each experiment its own arms", async () => {
    track("two-arms", 1);
    track("three-arms", 2, ["control", "a", "b"]);
    // Events of arm "a" under two-arms: not one of its arms, so not asked for.
    track("two-arms", 3, ["a"]);
    const connector = createConnector(config(), context());
    const answer = await batched(connector)({
      experiments: [
        { experimentKey: "two-arms", arms: ARMS, from: FROM },
        { experimentKey: "three-arms", arms: ["control", "a", "b"], from: FROM },
        { experimentKey: "silent", arms: ARMS, from: FROM },
      ],
      to: TO,
    });
    expect(fake.requests).toHaveLength(2);
    expect(answer.get("silent")).toEqual([]);
    expect((answer.get("three-arms") as { arm: string }[]).map((r) => r.arm)).toEqual(["control", "a", "b"]);
    expect(answer.get("two-arms")).toEqual(
      await connector.fetchArmAggregates({ experimentKey: "two-arms", arms: ARMS, from: FROM, to: TO }),
    );
  });

  it("does not batch a mean: /segmentation/sum has no breakdown", () => {
    const mean = createConnector(config({ value_property: "amount" }), { ...context(), metricKind: "mean" });
    expect(mean.fetchBatchAggregates).toBeUndefined();
    expect(readsInBatches(config({ value_property: "amount" }))).toBe(false);
  });
});

describe("mixpanel connector: batched reads, abuse cases", () => {
  it("fails the whole batch when the answer names an experiment the request did not ask for", async () => {
    const keys = keysOf(3);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    fake.override = (_request, computed) => {
      const body = computed() as { data: { values: Record<string, unknown> } };
      body.data.values["intruder | control"] = { "2026-03-01": 4 };
      return { body };
    };
    const error = await failure(batched(connector)(batchOf(keys)));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain(
      'the segment "intruder | control" names no experiment of the 3 this request asked for',
    );
    expect(error.details).toMatchObject({ field: "data.values", segment: "intruder | control" });
  });

  it("refuses a malformed or oversized answer, naming the field", async () => {
    const keys = keysOf(2);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    fake.override = () => ({ body: { data: { series: [] } } });
    const missing = await failure(batched(connector)(batchOf(keys)));
    expect(missing.code).toBe("bad_response");
    expect(missing.message).toContain("no data.values object");
    expect(missing.details.field).toBe("data.values");

    fake.override = () => ({ body: "<html>proxy error</html>" });
    expect((await failure(batched(connector)(batchOf(keys)))).message).toContain("is not JSON");

    fake.override = () => ({ body: `{"data":{"values":{"pad":"${"x".repeat(9 * 1024 * 1024)}"}}}` });
    const oversized = await failure(batched(connector)(batchOf(keys)));
    expect(oversized.code).toBe("bad_response");
    expect(oversized.message).toContain("larger than 8 MiB");
  });

  it("refuses a segment the answer names twice for its experiment only; the others read as one by one", async () => {
    const keys = keysOf(2);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    // Mixpanel's answer with one segment written a second time (legal JSON text; JSON.parse keeps the last).
    fake.override = (_request, computed) => ({
      body: JSON.stringify(computed()).replace('"values":{', '"values":{"exp-000 | control":{"2026-03-01":999},'),
    });
    const answer = await batched(connector)(batchOf(keys));
    const twice = answer.get("exp-000");
    expect(twice).toBeInstanceOf(ConnectorError);
    expect((twice as ConnectorError).code).toBe("bad_response");
    expect((twice as ConnectorError).message).toContain('the segment "exp-000 | control" appears twice in data.values');
    fake.override = null;
    expect(answer.get("exp-001")).toEqual(
      await connector.fetchArmAggregates({ experimentKey: "exp-001", arms: ARMS, from: FROM, to: TO }),
    );
  });

  it("escapes quotes and backslashes in keys: the where matches exactly the batch's keys", async () => {
    const hostile = ['a" or "1" == "1', "b\\", 'c\\" or properties["Experiment name"] == "victim', '"] or true or ["'];
    for (const [i, k] of hostile.entries()) track(k, i);
    // The experiment a widened filter would let in; its segment would fail the whole batch.
    track("victim", 9);
    const connector = createConnector(config(), context());
    const answer = await batched(connector)(batchOf(hostile));
    expect(fake.requests).toHaveLength(2);
    for (const key of hostile) {
      expect(answer.get(key), key).toEqual(
        await connector.fetchArmAggregates({ experimentKey: key, arms: ARMS, from: FROM, to: TO }),
      );
      expect((answer.get(key) as unknown[]).length).toBe(2);
    }
    expect(answer.has("victim")).toBe(false);
    // The filter the fake evaluated, read back: a list of exactly the four keys.
    const where = fake.requests[0]?.params.get("where") ?? "";
    const list = /in \[(.*)\] and properties\["Variant name"\]/u.exec(where)?.[1] ?? "";
    expect(JSON.parse(`[${list}]`)).toEqual(hostile);
  });

  it("times out a slow server, for the whole batch", async () => {
    track("exp-000", 0);
    const connector = createConnector(config({ timeout: "1s" }), context());
    fake.override = () => ({ delayMs: 3000 });
    const error = await failure(batched(connector)(batchOf(["exp-000", "exp-001"])));
    expect(error).toMatchObject({ code: "timeout", retryable: true });
  });

  it("marks only the experiment a per-experiment error concerns", async () => {
    const keys = keysOf(4);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    fake.override = (request, computed) => {
      const body = computed() as { data: { values: Record<string, Record<string, number>> } };
      const from = request.params.get("from_date") ?? "";
      // A negative count for exp-001, more converters than exposed users for exp-002.
      if (request.params.get("event") === "$experiment_started") body.data.values["exp-001 | control"] = { [from]: -3 };
      else body.data.values["exp-002 | treatment"] = { [from]: 1000 };
      return { body };
    };
    const answer = await batched(connector)(batchOf(keys));
    const negative = answer.get("exp-001");
    expect(negative).toBeInstanceOf(ConnectorError);
    expect((negative as ConnectorError).message).toContain('the count of "exp-001 | control"');
    expect((negative as ConnectorError).details.field).toBe('data.values["exp-001 | control"]');
    const over = answer.get("exp-002");
    expect(over).toBeInstanceOf(ConnectorError);
    expect((over as ConnectorError).message).toContain("0 ≤ sum ≤ units");
    fake.override = null;
    for (const key of ["exp-000", "exp-003"]) {
      expect(answer.get(key)).toEqual(
        await connector.fetchArmAggregates({ experimentKey: key, arms: ARMS, from: FROM, to: TO }),
      );
    }
  });
});

describe("mixpanel connector: the hourly budget counts requests", () => {
  it("spends 2 requests on a batch of 100, and refuses a batch the budget cannot pay for without sending anything", async () => {
    const keys = keysOf(100);
    for (const [i, k] of keys.entries()) track(k, i);
    const connector = createConnector(config(), context());
    const spent = () => queriesSpentThisHour({ baseUrl: fake.baseUrl, projectId: AUTH.projectId });
    await batched(connector)(batchOf(keys));
    expect(spent()).toBe(2);

    // One-by-one reads spend 2 each, until 2 requests of the hour are left: enough for 100 more experiments.
    const window = { experimentKey: "exp-000", arms: ARMS, from: FROM, to: TO };
    while (spent() + 2 < MIXPANEL_QUERIES_PER_HOUR) await connector.fetchArmAggregates(window);
    expect(spent()).toBe(MIXPANEL_QUERIES_PER_HOUR - 2);
    const last = await batched(connector)(batchOf(keys));
    expect([...last.values()].every(Array.isArray)).toBe(true);
    expect(spent()).toBe(MIXPANEL_QUERIES_PER_HOUR);
    // Exhausted: the next batch fails whole, and nothing is sent.
    const sent = fake.requests.length;
    const refused = await failure(batched(connector)(batchOf(keys)));
    expect(refused).toMatchObject({ code: "rate_limited", retryable: true });
    expect(refused.retryAfterMs).toBeGreaterThan(3_500_000);
    expect(refused.details).toMatchObject({ spent: MIXPANEL_QUERIES_PER_HOUR, needed: 2 });
    expect(refused.message).toContain("nothing was sent");
    expect(fake.requests).toHaveLength(sent);
    expect(spent()).toBe(MIXPANEL_QUERIES_PER_HOUR);
  });

  it("refuses the whole batch, sending nothing, while the project is paused after a 429", async () => {
    track("exp-000", 0);
    const connector = createConnector(config(), context());
    fake.override = () => ({ status: 429, body: { error: "rate limited", status: "error" } });
    expect(
      (await failure(connector.fetchArmAggregates({ experimentKey: "exp-000", arms: ARMS, from: FROM, to: TO }))).code,
    ).toBe("rate_limited");
    const sent = fake.requests.length;
    fake.override = null;
    const error = await failure(batched(connector)(batchOf(keysOf(100))));
    expect(error.code).toBe("rate_limited");
    expect(fake.requests).toHaveLength(sent);
  });
});
