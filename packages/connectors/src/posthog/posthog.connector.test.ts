/**
 * The `posthog` connector against the local stand-in of PostHog's query API
 * (@outcome-runtime/testing/fake-posthog, which follows
 * posthog.com/docs/api/queries and PostHog's query schema): the built HogQL
 * per metric kind evaluated over events, batches, and the failure modes a
 * user meets: a rate limit with Retry-After, an expired key, a HogQL error,
 * a slow answer, a write in a user query, a project in another time zone, a
 * host PostHog does not own, an oversized or truncated answer.
 */

import { rejectionOf } from "@outcome-runtime/testing";
import { apiError, type FakePosthog, hogqlResponse, startFakePosthog } from "@outcome-runtime/testing/fake-posthog";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector, readsInBatches } from "../create-connector";
import { requestBudget, resetRequestBudgets } from "../request-budget";
import { POSTHOG_MAX_ROWS, posthogPollCost } from "./posthog.connector";
import {
  POSTHOG_LEGACY_QUERIES_PER_HOUR,
  POSTHOG_MAX_CONCURRENT,
  POSTHOG_MAX_RESPONSE_BYTES,
  POSTHOG_QUERIES_PER_HOUR,
  posthogBudgetLimits,
} from "./query-api-client";

const API_KEY = "phx_k3yOfTh3Pr0j3ctR34d3r";
const PROJECT_ID = "81234";
const FROM = new Date("2026-11-01T00:00:00.000Z");
const TO = new Date("2026-11-08T00:00:00.000Z");
const ARMS = ["control", "test"];

let fake: FakePosthog;

beforeAll(async () => {
  fake = await startFakePosthog({ apiKey: API_KEY, projectId: PROJECT_ID });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.events.length = 0;
  fake.requests.length = 0;
  fake.override = null;
  resetRequestBudgets();
});

function settings(extra: Record<string, unknown> = {}): ConnectorConfig {
  return {
    type: "posthog",
    project_id: Number(PROJECT_ID),
    personal_api_key_env: "OUTCOME_RUNTIME_SOURCE_POSTHOG_KEY",
    api_url: fake.baseUrl,
    event: "purchase",
    ...extra,
  };
}

function context(kind: ConnectorContext["metricKind"] = "proportion", key = API_KEY): ConnectorContext {
  return { metricKind: kind, credentials: { personal_api_key: key }, allowedApiUrls: { posthog: [fake.baseUrl] } };
}

function exposure(person: string, flag: string, variant: string, timestamp: string): void {
  fake.events.push({
    event: "$feature_flag_called",
    personId: person,
    timestamp,
    properties: { $feature_flag: flag, $feature_flag_response: variant },
  });
}

function purchase(person: string, timestamp: string, amount?: number | string): void {
  fake.events.push({
    event: "purchase",
    personId: person,
    timestamp,
    properties: amount === undefined ? {} : { amount },
  });
}

function rows(aggregates: readonly { arm: string; units: number; sum: number; sum_sq: number }[]) {
  return aggregates.map((a) => [a.arm, a.units, a.sum, a.sum_sq]);
}

describe("the built HogQL query", () => {
  it("reads a proportion: persons exposed per arm, and those who fired the event at or after their first exposure", async () => {
    exposure("p1", "checkout-copy", "control", "2026-11-02T10:00:00Z");
    exposure("p1", "checkout-copy", "control", "2026-11-03T10:00:00Z");
    exposure("p2", "checkout-copy", "control", "2026-11-02T10:00:00Z");
    exposure("p3", "checkout-copy", "test", "2026-11-02T10:00:00Z");
    exposure("p4", "checkout-copy", "test", "2026-11-02T10:00:00Z");
    exposure("p5", "another-flag", "test", "2026-11-02T10:00:00Z");
    purchase("p1", "2026-11-04T00:00:00Z");
    purchase("p1", "2026-11-05T00:00:00Z");
    purchase("p2", "2026-11-01T09:00:00Z"); // before p2's exposure: not a conversion
    purchase("p3", "2026-11-06T00:00:00Z");
    purchase("p5", "2026-11-06T00:00:00Z");

    const connector = createConnector(settings(), context());
    const got = await connector.fetchArmAggregates({ experimentKey: "checkout-copy", arms: ARMS, from: FROM, to: TO });
    expect(rows(got)).toEqual([
      ["control", 2, 1, 1],
      ["test", 2, 1, 1],
    ]);

    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0];
    expect(request?.path).toBe(`/api/projects/${PROJECT_ID}/query/`);
    expect(request?.authorization).toBe(`Bearer ${API_KEY}`);
    expect(request?.body).toMatchObject({ query: { kind: "HogQLQuery" }, refresh: "force_blocking" });
    // Values travel as JSON, never pasted into the text; times in UTC with their zone.
    expect(request?.values).toEqual({ experiments: ["checkout-copy"], arms: ARMS, to: "2026-11-08T00:00:00.000Z" });
    expect(request?.hogql).not.toContain("checkout-copy");
    expect(request?.hogql).toContain("toDateTime({to})");
  });

  it("reads a mean with sum_sq squared per person, not per event", async () => {
    exposure("p1", "pricing", "control", "2026-11-02T10:00:00Z");
    exposure("p2", "pricing", "control", "2026-11-02T10:00:00Z");
    exposure("p3", "pricing", "test", "2026-11-02T10:00:00Z");
    purchase("p1", "2026-11-03T00:00:00Z", 3);
    purchase("p1", "2026-11-04T00:00:00Z", 4);
    purchase("p3", "2026-11-03T00:00:00Z", "10.5");
    purchase("p3", "2026-11-07T23:59:59Z", "not a number"); // HogQL's toFloat gives null: not summed

    const connector = createConnector(settings({ value_property: "amount" }), context("mean"));
    const got = await connector.fetchArmAggregates({ experimentKey: "pricing", arms: ARMS, from: FROM, to: TO });
    // control: p1 = 3 + 4 = 7 (7² = 49, not 3² + 4² = 25), p2 = 0; test: p3 = 10.5.
    expect(rows(got)).toEqual([
      ["control", 2, 7, 49],
      ["test", 1, 10.5, 110.25],
    ]);
    expect(fake.requests[0]?.hogql).toContain("sum(value * value) AS sum_sq");
    expect(fake.requests[0]?.hogql).toContain("toFloat(properties.`amount`)");
  });

  it("a value_property no event after exposure carries is query_failed naming it, not sums of 0", async () => {
    exposure("p1", "pricing", "control", "2026-11-02T10:00:00Z");
    purchase("p1", "2026-11-03T00:00:00Z", 3);
    const connector = createConnector(settings({ value_property: "amount_usd" }), context("mean"));
    const error = await rejectionOf(
      connector.fetchArmAggregates({ experimentKey: "pricing", arms: ARMS, from: FROM, to: TO }),
      ConnectorError,
    );
    expect(error.code).toBe("query_failed");
    expect(error.details).toMatchObject({ field: "value_property", value: "amount_usd", events: 1 });
    expect(error.message).toContain('value_property "amount_usd": none of the 1 "purchase" events');

    // No event after exposure yet: zeros are the truth, not a typo.
    fake.events.length = 1;
    expect(
      rows(await connector.fetchArmAggregates({ experimentKey: "pricing", arms: ARMS, from: FROM, to: TO })),
    ).toEqual([["control", 1, 0, 0]]);
  });

  it("reads many experiments in one request, grouped by experiment and arm", async () => {
    exposure("p1", "a-flag", "control", "2026-11-02T10:00:00Z");
    exposure("p2", "b-flag", "contrôle", "2026-11-02T10:00:00Z");
    exposure("p3", "b-flag", "処理", "2026-11-02T10:00:00Z");
    purchase("p3", "2026-11-03T00:00:00Z");

    const connector = createConnector(settings(), context());
    expect(connector.fetchBatchAggregates).toBeTypeOf("function");
    const answer = await connector.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "a-flag", arms: ARMS, from: FROM },
        { experimentKey: "b-flag", arms: ["contrôle", "処理"], from: new Date("2026-11-05T00:00:00Z") },
        { experimentKey: "c-flag", arms: ARMS, from: FROM },
      ],
      to: TO,
    });
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.values.experiments).toEqual(["a-flag", "b-flag", "c-flag"]);
    expect(rows(answer?.get("a-flag") as never)).toEqual([["control", 1, 0, 0]]);
    expect(rows(answer?.get("b-flag") as never)).toEqual([
      ["contrôle", 1, 0, 0],
      ["処理", 1, 1, 1],
    ]);
    expect(answer?.get("c-flag")).toEqual([]);
  });

  it("binds the window as a UTC instant whatever the project's time zone: a project in Los Angeles", async () => {
    // HogQL reads a date-time text without a zone in the project's time zone; the connector's carries `Z`.
    const la = await startFakePosthog({ apiKey: API_KEY, projectId: PROJECT_ID, timezone: "America/Los_Angeles" });
    try {
      // The window ends at 2026-11-08T00:00Z = 2026-11-07T16:00 in Los Angeles.
      la.events.push(
        {
          event: "$feature_flag_called",
          personId: "p1",
          timestamp: "2026-11-07T15:00:00-08:00",
          properties: { $feature_flag: "tz-flag", $feature_flag_response: "control" },
        },
        // 00:30Z on the 8th: after the window, though still the 7th in Los Angeles.
        {
          event: "$feature_flag_called",
          personId: "p2",
          timestamp: "2026-11-07T16:30:00-08:00",
          properties: { $feature_flag: "tz-flag", $feature_flag_response: "control" },
        },
        { event: "purchase", personId: "p1", timestamp: "2026-11-07T15:59:59-08:00", properties: {} },
      );
      const connector = createConnector(settings({ api_url: la.baseUrl }), {
        ...context(),
        allowedApiUrls: { posthog: [la.baseUrl] },
      });
      const got = await connector.fetchArmAggregates({ experimentKey: "tz-flag", arms: ARMS, from: FROM, to: TO });
      expect(rows(got)).toEqual([["control", 1, 1, 1]]);
      expect(la.requests[0]?.values.to).toBe("2026-11-08T00:00:00.000Z");
      expect(la.requests[0]?.hogql).toContain("timestamp <= toDateTime({to})");

      // The same query with a zone-less `to` is read in the project's zone: its window ends 8 hours later.
      const zoneless = await fetch(`${la.baseUrl}/api/projects/${PROJECT_ID}/query/`, {
        method: "POST",
        headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({
          query: {
            kind: "HogQLQuery",
            query: la.requests[0]?.hogql,
            values: { experiments: ["tz-flag"], arms: ARMS, to: "2026-11-08 00:00:00" },
          },
        }),
      });
      expect(((await zoneless.json()) as { results: unknown[] }).results).toEqual([["tz-flag", "control", 2, 1, 1]]);
    } finally {
      await la.close();
    }
  });

  it("uses PostHog's own exposure by default, and the settings' event and properties when given", async () => {
    fake.events.push(
      {
        event: "exposed",
        personId: "p1",
        timestamp: "2026-11-02T00:00:00Z",
        properties: { exp: "k", "$feature/k": "test" },
      },
      {
        event: "exposed",
        personId: "p2",
        timestamp: "2026-11-02T00:00:00Z",
        properties: { exp: "k", "$feature/k": "control" },
      },
    );
    const connector = createConnector(
      settings({ exposure_event: "exposed", experiment_property: "exp", variant_property: "$feature/k" }),
      context(),
    );
    const got = await connector.fetchArmAggregates({ experimentKey: "k", arms: ARMS, from: FROM, to: TO });
    expect(rows(got)).toEqual([
      ["control", 1, 0, 0],
      ["test", 1, 0, 0],
    ]);
    expect(fake.requests[0]?.hogql).toContain("properties.`$feature/k`");
  });

  it("splits a batch whose rows would pass the row limit into several requests", async () => {
    const experiments = Array.from({ length: POSTHOG_MAX_ROWS / 2 + 1 }, (_, i) => ({
      experimentKey: `flag-${i}`,
      arms: ARMS,
      from: FROM,
    }));
    const connector = createConnector(settings(), context());
    const answer = await connector.fetchBatchAggregates?.({ experiments, to: TO });
    expect(fake.requests).toHaveLength(2);
    expect(answer?.size).toBe(experiments.length);
  });
});

describe("a user's HogQL query", () => {
  const BATCHED = [
    "SELECT properties.exp AS experiment, properties.arm AS arm, count(DISTINCT person_id) AS units,",
    "       countDistinctIf(person_id, event = 'purchase') AS sum, countDistinctIf(person_id, event = 'purchase') AS sum_sq",
    "FROM events",
    "WHERE has({experiments}, properties.exp) AND has({arms}, properties.arm)",
    "  AND timestamp <= toDateTime({to})",
    "GROUP BY experiment, arm",
    "LIMIT 1000",
  ].join("\n");

  it("is sent as written with its placeholders' values, and read in batches", async () => {
    fake.override = (request) => ({
      body: hogqlResponse(
        request.hogql ?? "",
        ["experiment", "arm", "units", "sum", "sum_sq"],
        ["String", "String", "UInt64", "UInt64", "UInt64"],
        [
          ["a", "control", 10, 2, 2],
          ["a", "test", 12, 3, 3],
        ],
      ),
    });
    const config = { ...settings({ query: BATCHED }) };
    delete config.event;
    expect(readsInBatches(config)).toBe(true);
    const connector = createConnector(config, context());
    const answer = await connector.fetchBatchAggregates?.({
      experiments: [{ experimentKey: "a", arms: ARMS, from: FROM }],
      to: TO,
    });
    expect(rows(answer?.get("a") as never)).toEqual([
      ["control", 10, 2, 2],
      ["test", 12, 3, 3],
    ]);
    expect(fake.requests[0]?.hogql).toBe(BATCHED);
    expect(fake.requests[0]?.values).toEqual({ experiments: ["a"], arms: ARMS, to: "2026-11-08T00:00:00.000Z" });
  });

  it("with {experiment} reads one experiment at a time, without a batched read", async () => {
    const single = BATCHED.replace("has({experiments}, properties.exp)", "properties.exp = {experiment}").replace(
      "properties.exp AS experiment, ",
      "",
    );
    fake.override = (request) => ({
      body: hogqlResponse(request.hogql ?? "", ["arm", "units", "sum", "sum_sq"], [], [["control", 4, 1, 1]]),
    });
    const config = { ...settings({ query: single }) };
    delete config.event;
    expect(readsInBatches(config)).toBe(false);
    const connector = createConnector(config, context());
    expect(connector.fetchBatchAggregates).toBeUndefined();
    expect(rows(await connector.fetchArmAggregates({ experimentKey: "a", arms: ARMS, from: FROM, to: TO }))).toEqual([
      ["control", 4, 1, 1],
    ]);
    expect(fake.requests[0]?.values).toEqual({ experiment: "a", arms: ARMS, to: "2026-11-08T00:00:00.000Z" });
  });

  it.each([
    ["a write", "INSERT INTO events SELECT * FROM events WHERE {experiment} = '' AND {to} = ''", "read_only_violation"],
    ["two statements", `${BATCHED}; SELECT 1`, "read_only_violation"],
    [
      "a write after a SELECT",
      "SELECT 1 FROM events WHERE {experiment} = {to}; DROP TABLE events",
      "read_only_violation",
    ],
    ["ALTER inside", "WITH x AS (ALTER TABLE events DELETE WHERE 1) SELECT {experiment}, {to}", "read_only_violation"],
    ["an unknown placeholder", BATCHED.replace("{arms}", "{variants}"), "invalid_config"],
    ["no {to}", BATCHED.replace("toDateTime({to})", "now()"), "invalid_config"],
    [
      "neither {experiment} nor {experiments}",
      BATCHED.replace("has({experiments}, properties.exp)", "1"),
      "invalid_config",
    ],
  ])("is refused before sending when it holds %s", (_name, query, code) => {
    const config = { ...settings({ query }) };
    delete config.event;
    const error = (() => {
      try {
        createConnector(config, context());
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe(code);
    expect((error as ConnectorError).details.field).toBe("query");
    expect(fake.requests).toHaveLength(0);
  });

  it("keeps words inside strings, comments and property names: a read that mentions delete is still a read", () => {
    const query = `-- drop the bots\n${BATCHED.replace("FROM events", "FROM events /* insert */").replace("AS units,", "AS units, properties.delete AS d, 'update' AS u,")}`;
    const config = { ...settings({ query }) };
    delete config.event;
    expect(checkConnectorSettings(config, "proportion", { allowedApiUrls: { posthog: [fake.baseUrl] } })).toBeNull();
  });

  it("reads placeholders only outside strings and comments", () => {
    const refusedCode = (query: string): string | undefined => {
      const config = { ...settings({ query }) };
      delete config.event;
      try {
        createConnector(config, context());
      } catch (e) {
        return (e as ConnectorError).code;
      }
      return undefined;
    };
    // `{to}` only in a string and a comment: the query does not bound the events.
    expect(refusedCode(BATCHED.replace("toDateTime({to})", "toDateTime('{to}') -- {to}"))).toBe("invalid_config");
    // A ";" or a keyword inside a string is text, not a statement.
    expect(
      refusedCode(BATCHED.replace("event = 'purchase') AS sum,", "event = 'purchase; drop') AS sum,")),
    ).toBeUndefined();
    expect(refusedCode("SELECT 'unterminated {experiment} {to}")).toBe("invalid_config");
  });

  it("a write is an sql_refused problem at validate time, with its offset", () => {
    const config = { ...settings({ query: "SELECT {experiment}, {to}; DELETE FROM events WHERE 1" }) };
    delete config.event;
    const problem = checkConnectorSettings(config, "proportion", { allowedApiUrls: { posthog: [fake.baseUrl] } });
    expect(problem?.code).toBe("sql_refused");
    expect(problem?.field).toBe("query");
    expect(problem?.offset).toBe(25);
  });
});

describe("failure modes", () => {
  const window = { experimentKey: "checkout-copy", arms: ARMS, from: FROM, to: TO };

  it("429 with Retry-After is rate_limited with retryAfterMs, and the project's budget pauses: nothing more is sent", async () => {
    fake.override = () => ({
      status: 429,
      headers: { "Retry-After": "37" },
      body: apiError("throttled_error", "throttled", "Request was throttled. Expected available in 37 seconds."),
    });
    const connector = createConnector(settings(), context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(37_000);
    expect(error.message).toContain("Expected available in 37 seconds");

    const again = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(again.code).toBe("rate_limited");
    expect(again.retryAfterMs).toBeGreaterThan(30_000);
    expect(fake.requests).toHaveLength(1);
  });

  it("an expired or invalid key is auth_failed with PostHog's detail; a project the key may not read too", async () => {
    const expired = createConnector(settings(), context("proportion", "phx_expired"));
    const error = await rejectionOf(expired.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("auth_failed");
    expect(error.message).toContain("Personal API key found in request Authorization header is invalid.");
    expect(error.message).toContain("personal_api_key");
    expect(error.message).not.toContain("phx_expired");

    const other = createConnector(settings({ project_id: 999 }), context());
    const denied = await rejectionOf(other.fetchArmAggregates(window), ConnectorError);
    expect(denied.code).toBe("auth_failed");
    expect(denied.message).toContain("You don't have access to the project.");
  });

  it("a HogQL error (an unknown table or property) is query_failed with PostHog's message passed on", async () => {
    const config = {
      ...settings({
        query:
          "SELECT experiment, arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM evnts WHERE has({experiments}, experiment) AND timestamp <= {to}",
      }),
    };
    delete config.event;
    const connector = createConnector(config, context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("Unknown table `evnts`.");

    fake.override = () => ({
      status: 400,
      body: apiError("validation_error", "invalid_input", "Unable to resolve field: amount"),
    });
    const built = createConnector(settings(), context());
    const field = await rejectionOf(built.fetchArmAggregates(window), ConnectorError);
    expect(field.code).toBe("query_failed");
    expect(field.message).toContain("Unable to resolve field: amount");
  });

  it("a slow answer is a timeout", async () => {
    fake.override = () => ({ delayMs: 5_000, body: hogqlResponse("", [], [], []) });
    const connector = createConnector(settings({ timeout: "1s" }), context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("timeout");
    expect(error.retryable).toBe(true);
  });

  it("a poll aborted by the worker is a timeout", async () => {
    fake.override = () => ({ delayMs: 5_000, body: hogqlResponse("", [], [], []) });
    const connector = createConnector(settings(), context());
    const controller = new AbortController();
    const pending = rejectionOf(connector.fetchArmAggregates(window, controller.signal), ConnectorError);
    controller.abort(new DOMException("poll timeout", "TimeoutError"));
    const error = await pending;
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("POLL_TIMEOUT_MS");
  });

  it("a truncated answer (hasMore: true) is refused whole, never used in part", async () => {
    fake.override = (request) => ({
      body: {
        ...hogqlResponse(
          request.hogql ?? "",
          ["experiment", "arm", "units", "sum", "sum_sq"],
          [],
          [["checkout-copy", "control", 5, 1, 1]],
        ),
        hasMore: true,
      },
    });
    const connector = createConnector(settings(), context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("too_many_rows");
    expect(error.message).toContain("hasMore");
  });

  it("an oversized body is bad_response, and reading stops", async () => {
    fake.override = () => ({ body: `{"results":[${"[1],".repeat(POSTHOG_MAX_RESPONSE_BYTES / 4)}[1]]}` });
    const connector = createConnector(settings(), context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("MiB");
  });

  it.each([
    ["not JSON", "<html>proxy error</html>"],
    ["no columns", { results: [], hasMore: false }],
    ["a row of the wrong length", { columns: ["experiment", "arm"], results: [["a"]], hasMore: false }],
  ])("an answer that is %s is bad_response", async (_name, body) => {
    fake.override = () => ({ body });
    const connector = createConnector(settings(), context());
    expect((await rejectionOf(connector.fetchArmAggregates(window), ConnectorError)).code).toBe("bad_response");
  });

  it("a 5xx is unavailable and retryable", async () => {
    fake.override = () => ({ status: 502, body: "Bad gateway" });
    const connector = createConnector(settings(), context());
    const error = await rejectionOf(connector.fetchArmAggregates(window), ConnectorError);
    expect(error.code).toBe("unavailable");
    expect(error.retryable).toBe(true);
  });
});

describe("settings", () => {
  it("an api_url on a host PostHog does not own is source_refused; the regions' and the operator's hosts are not", () => {
    const foreign = () =>
      createConnector(settings({ api_url: "https://posthog.attacker.example" }), {
        metricKind: "proportion",
        credentials: { personal_api_key: API_KEY },
      });
    expect(foreign).toThrowError(expect.objectContaining({ code: "source_refused" }));
    for (const api_url of ["https://eu.posthog.com", "https://us.posthog.com/"]) {
      const connector = createConnector(settings({ api_url }), {
        metricKind: "proportion",
        credentials: { personal_api_key: API_KEY },
      });
      expect(connector.describe()).toContain(new URL(api_url).host);
    }
    const selfHosted = createConnector(settings({ api_url: "https://posthog.internal.example" }), {
      metricKind: "proportion",
      credentials: { personal_api_key: API_KEY },
      allowedApiUrls: { posthog: ["https://posthog.internal.example"] },
    });
    expect(selfHosted.describe()).toContain("posthog.internal.example");
  });

  it("region eu reads eu.posthog.com; the key never appears in describe()", () => {
    const config = settings({ region: "eu" });
    delete config.api_url;
    const connector = createConnector(config, context());
    expect(connector.describe()).toContain("eu.posthog.com");
    expect(connector.describe()).not.toContain(API_KEY);
  });

  it.each([
    [{ project_id: "abc" }, "project_id"],
    [{ event: undefined }, "event"],
    [{ region: "ap" }, "region"],
    [{ value_property: "amount" }, "value_property"],
    [{ query: "SELECT 1", event: "purchase" }, "event"],
  ])("%o is invalid_config naming %s", (extra, field) => {
    const error = (() => {
      try {
        createConnector(settings(extra), context());
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("invalid_config");
    expect((error as ConnectorError).details.field).toBe(field);
  });

  it("a mean without value_property and a ratio are refused", () => {
    expect(() => createConnector(settings(), context("mean"))).toThrowError(/value_property/u);
    expect(() => createConnector(settings(), context("ratio"))).toThrowError(/ratio/u);
  });

  it("the outcome series is unsupported", async () => {
    const connector = createConnector(settings(), context());
    const error = await rejectionOf(connector.fetchOutcomeSeries({ from: FROM, to: TO }), ConnectorError);
    expect(error.code).toBe("unsupported");
  });
});

describe("posthogPollCost", () => {
  it("uses the documented limits: 2400 queries an hour and 3 at a time per project, planned within the older 120", () => {
    const cost = posthogPollCost(settings());
    expect(cost?.limits).toMatchObject({
      vendor: "posthog",
      scope: `project ${PROJECT_ID}`,
      key: `${fake.baseUrl}|${PROJECT_ID}`,
      perHour: POSTHOG_QUERIES_PER_HOUR,
      maxConcurrent: POSTHOG_MAX_CONCURRENT,
    });
    expect(POSTHOG_QUERIES_PER_HOUR).toBe(2400);
    expect(POSTHOG_MAX_CONCURRENT).toBe(3);
    expect(cost?.plannedPerHour).toBe(100);
    expect(cost?.plannedPerHour).toBeLessThan(POSTHOG_LEGACY_QUERIES_PER_HOUR);
  });

  it("a batched read costs one request per 10,000 (experiment, arm) rows; a one-experiment query one per experiment", () => {
    const batched = posthogPollCost(settings());
    expect(batched?.requestsPerRound(1, 2)).toBe(1);
    expect(batched?.requestsPerRound(500, 2)).toBe(1);
    expect(batched?.requestsPerRound(5001, 2)).toBe(2);
    const config = settings({
      query: "SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM events WHERE {experiment} = '' AND {to} = ''",
    });
    delete config.event;
    expect(posthogPollCost(config)?.requestsPerRound(40, 2)).toBe(40);
    const eu = settings({ region: "eu" });
    delete eu.api_url;
    expect(posthogPollCost(eu)?.limits.key).toBe(`https://eu.posthog.com|${PROJECT_ID}`);
    // The same key as the connector's budget, however the URL is written.
    expect(posthogPollCost(settings({ api_url: "https://EU.posthog.com/" }))?.limits.key).toBe(
      `https://eu.posthog.com|${PROJECT_ID}`,
    );
    expect(posthogPollCost({ type: "mixpanel" })).toBeNull();
  });

  it("a read spends its requests first: a batch that does not fit the hour is refused before sending", async () => {
    fake.override = (request) => ({
      body: hogqlResponse(request.hogql ?? "", ["experiment", "arm", "units", "sum", "sum_sq"], [], []),
    });
    const connector = createConnector(settings(), context());
    await connector.fetchArmAggregates({ experimentKey: "x", arms: ARMS, from: FROM, to: TO });
    // Every connector of the process reading this project shares its budget: spend the rest of the hour.
    requestBudget(posthogBudgetLimits(fake.baseUrl, PROJECT_ID)).spend(POSTHOG_QUERIES_PER_HOUR - 1);
    const sent = fake.requests.length;
    const error = await rejectionOf(
      connector.fetchArmAggregates({ experimentKey: "x", arms: ARMS, from: FROM, to: TO }),
      ConnectorError,
    );
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(fake.requests).toHaveLength(sent);
  });
});
