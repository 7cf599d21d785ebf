/**
 * The Mixpanel connector against a local HTTP server that answers like
 * Mixpanel's Query API, following its documented request and response
 * shapes (https://docs.mixpanel.com/reference/segmentation-query and the
 * /segmentation/sum, /segmentation/average pages): service-account Basic
 * auth, `project_id` in the query string, `{ data: { series, values } }`
 * from /segmentation, `{ status, computed_at, results }` from
 * /segmentation/sum, `{ error, status: "error" }` on errors.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { rejectionOf } from "@outcome-runtime/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorContext, ExperimentWindow } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { MIXPANEL_MAX_CONCURRENT, resetRateLimitState } from "./query-api-client";

interface Recorded {
  path: string;
  params: URLSearchParams;
  authorization: string | undefined;
}

type Handler = (request: Recorded, res: ServerResponse) => void | Promise<void>;

let server: Server;
let baseUrl: string;
let handler: Handler;
let requests: Recorded[] = [];

const USERNAME = "outcome-runtime.2a1b3c.mp-service-account";
const SECRET = "Zq9kLr0tW7xYv2";
const EXPECTED_AUTH = `Basic ${Buffer.from(`${USERNAME}:${SECRET}`).toString("base64")}`;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const recorded = {
      path: url.pathname.replace(/^\/api\/query/u, ""),
      params: url.searchParams,
      authorization: req.headers.authorization,
    };
    requests.push(recorded);
    if (req.method !== "GET") return json(res, 405, { error: "method not allowed", status: "error" });
    if (recorded.authorization !== EXPECTED_AUTH) return json(res, 401, { error: "Unauthorized", status: "error" });
    if (recorded.params.get("project_id") !== "2741933") {
      return json(res, 400, { error: "project_id is required with service account auth", status: "error" });
    }
    void handler(recorded, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/query`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests = [];
  resetRateLimitState();
  handler = (_request, res) => json(res, 500, { error: "no handler", status: "error" });
});

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A /segmentation answer: one period (from_date) per variant, as the documented example shape. */
function segmentation(request: Recorded, counts: Record<string, number>): unknown {
  const from = request.params.get("from_date") ?? "";
  return {
    data: {
      series: [from],
      values: Object.fromEntries(Object.entries(counts).map(([variant, n]) => [variant, { [from]: n }])),
    },
    legend_size: Object.keys(counts).length,
  };
}

const credentials = { username: USERNAME, secret: SECRET };
/** The local server stands in for Mixpanel: the operator's SOURCE_API_URLS allows it. */
const proportion: ConnectorContext = {
  credentials,
  metricKind: "proportion",
  get allowedApiUrls() {
    return { mixpanel: [baseUrl, "http://127.0.0.1:9/api/query"] };
  },
};
const config = (extra: Record<string, unknown> = {}) => ({
  type: "mixpanel",
  project_id: 2741933,
  username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_USERNAME",
  secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_SECRET",
  event: "Order completed",
  api_url: baseUrl,
  ...extra,
});

const window: ExperimentWindow = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date("2026-03-01T10:00:00Z"),
  to: new Date("2026-03-07T18:30:00Z"),
};

/** The ConnectorError a call rejects with. */
const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

describe("mixpanel connector: proportion", () => {
  it("counts unique exposed users and unique converters per variant, with the documented auth and parameters", async () => {
    handler = (request, res) => {
      const exposure = request.params.get("event") === "$experiment_started";
      json(
        res,
        200,
        segmentation(request, exposure ? { control: 5120, treatment: 5087 } : { control: 410, treatment: 468 }),
      );
    };
    const connector = createConnector(
      config({ filter: 'properties["platform"] == "web"', workspace_id: 3301 }),
      proportion,
    );
    const rows = await connector.fetchArmAggregates(window);
    expect(rows).toEqual([
      { arm: "control", units: 5120, sum: 410, sum_sq: 410, ts: null },
      { arm: "treatment", units: 5087, sum: 468, sum_sq: 468, ts: null },
    ]);

    expect(requests).toHaveLength(2);
    const byEvent = new Map(requests.map((r) => [r.params.get("event"), r]));
    const exposure = byEvent.get("$experiment_started");
    const conversion = byEvent.get("Order completed");
    for (const request of [exposure, conversion]) {
      expect(request?.path).toBe("/segmentation");
      expect(request?.authorization).toBe(EXPECTED_AUTH);
      expect(request?.params.get("project_id")).toBe("2741933");
      expect(request?.params.get("workspace_id")).toBe("3301");
      expect(request?.params.get("from_date")).toBe("2026-03-01");
      expect(request?.params.get("to_date")).toBe("2026-03-07");
      expect(request?.params.get("type")).toBe("unique");
      // One period covering the window, so each user counts once.
      expect(request?.params.get("interval")).toBe("7");
      expect(request?.params.get("on")).toBe('properties["Variant name"]');
    }
    expect(exposure?.params.get("where")).toBe(
      'properties["Experiment name"] == "checkout-v2" and properties["Variant name"] in ["control", "treatment"]',
    );
    expect(conversion?.params.get("where")).toBe(
      'properties["Experiment name"] == "checkout-v2" and properties["Variant name"] in ["control", "treatment"] and (properties["platform"] == "web")',
    );
  });

  it("uses the configured exposure event and property names, escaped as expression strings", async () => {
    handler = (request, res) => json(res, 200, segmentation(request, { control: 10 }));
    const connector = createConnector(
      config({ exposure_event: "Saw checkout", variant_property: 'arm "name"', experiment_property: "exp" }),
      proportion,
    );
    await connector.fetchArmAggregates({ ...window, experimentKey: 'a"b' });
    const exposure = requests.find((r) => r.params.get("event") === "Saw checkout");
    expect(exposure?.params.get("on")).toBe('properties["arm \\"name\\""]');
    expect(exposure?.params.get("where")).toContain('properties["exp"] == "a\\"b"');
  });

  it("gives an arm with exposures but no conversions sum 0", async () => {
    handler = (request, res) =>
      json(
        res,
        200,
        segmentation(
          request,
          request.params.get("event") === "$experiment_started" ? { control: 7, treatment: 9 } : { treatment: 2 },
        ),
      );
    const rows = await createConnector(config(), proportion).fetchArmAggregates(window);
    expect(rows.map((r) => [r.arm, r.units, r.sum])).toEqual([
      ["control", 7, 0],
      ["treatment", 9, 2],
    ]);
  });

  it("refuses variants nobody asked for, more converters than exposed users, and counts split over periods", async () => {
    handler = (request, res) => json(res, 200, segmentation(request, { control: 10, "variant-c": 3 }));
    const unknown = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
    expect(unknown.code).toBe("bad_response");
    expect(unknown.message).toContain('arm "variant-c" is not an arm of experiment "checkout-v2"');

    handler = (request, res) =>
      json(
        res,
        200,
        segmentation(
          request,
          request.params.get("event") === "$experiment_started" ? { control: 10 } : { control: 11 },
        ),
      );
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).message).toContain(
      "0 ≤ sum ≤ units",
    );

    handler = (_request, res) =>
      json(res, 200, {
        data: { series: ["2026-03-01", "2026-03-02"], values: { control: { "2026-03-01": 4, "2026-03-02": 5 } } },
      });
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).message).toContain(
      "unique counts cannot be added across periods",
    );
  });
});

describe("mixpanel connector: mean", () => {
  it("sums value_property and its square per arm with /segmentation/sum, over every day of the window", async () => {
    handler = (request, res) => {
      if (request.path === "/segmentation")
        return json(res, 200, segmentation(request, { control: 100, treatment: 100 }));
      const where = request.params.get("where") ?? "";
      const arm = /properties\["Variant name"\] == "([^"]+)"$/u.exec(where)?.[1];
      const squared = request.params.get("on") === 'properties["amount"] * properties["amount"]';
      const perDay = arm === "control" ? (squared ? [3000, 3500] : [300, 350]) : squared ? [4000, 4500] : [400, 420];
      json(res, 200, {
        status: "ok",
        computed_at: "2026-03-07T18:30:02.000000+00:00",
        results: { "2026-03-01": perDay[0], "2026-03-02": perDay[1] },
      });
    };
    const connector = createConnector(config({ value_property: "amount" }), { ...proportion, metricKind: "mean" });
    const rows = await connector.fetchArmAggregates(window);
    expect(rows).toEqual([
      { arm: "control", units: 100, sum: 650, sum_sq: 6500, ts: null },
      { arm: "treatment", units: 100, sum: 820, sum_sq: 8500, ts: null },
    ]);
    // Units once, then Σ and Σ² for each of the two arms.
    expect(requests.map((r) => r.path).sort()).toEqual([
      "/segmentation",
      "/segmentation/sum",
      "/segmentation/sum",
      "/segmentation/sum",
      "/segmentation/sum",
    ]);
    const sum = requests.find((r) => r.path === "/segmentation/sum");
    expect(sum?.params.get("unit")).toBe("day");
    expect(sum?.params.get("event")).toBe("Order completed");
  });

  it("refuses a /segmentation/sum answer that names one date twice, rather than keep one of the sums", async () => {
    handler = (request, res) => {
      if (request.path === "/segmentation") return json(res, 200, segmentation(request, { control: 100 }));
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        '{"status":"ok","computed_at":"2026-03-07T18:30:02.000000+00:00","results":{"2026-03-01":300,"2026-03-01":350}}',
      );
    };
    const connector = createConnector(config({ value_property: "amount" }), { ...proportion, metricKind: "mean" });
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain(
      'mixpanel /segmentation/sum: the answer names "2026-03-01" twice in one object (at ["results"]["2026-03-01"])',
    );
  });

  it("reads the outcome series of a mean with /segmentation/average, one point per completed day, dated at its end", async () => {
    handler = (_request, res) => json(res, 200, { status: "ok", results: { "2026-03-01": 8.25, "2026-02-28": 8.5 } });
    const connector = createConnector(config({ value_property: "amount" }), { ...proportion, metricKind: "mean" });
    const points = await connector.fetchOutcomeSeries({
      from: new Date("2026-02-28T00:00:00Z"),
      to: new Date("2026-03-02T12:00:00Z"),
    });
    // 2026-03-02 is not over at 12:00: it is not asked for.
    expect(points).toEqual([
      { ts: new Date("2026-03-01T00:00:00Z"), value: 8.5 },
      { ts: new Date("2026-03-02T00:00:00Z"), value: 8.25 },
    ]);
    expect(requests[0]?.path).toBe("/segmentation/average");
    expect(requests[0]?.params.get("on")).toBe('properties["amount"]');
    expect(requests[0]?.params.get("from_date")).toBe("2026-02-28");
    expect(requests[0]?.params.get("to_date")).toBe("2026-03-01");
  });
});

describe("mixpanel connector: ratio", () => {
  it("refuses a ratio metric when it is created, naming the columns it cannot give and the fix", () => {
    let error: unknown;
    try {
      createConnector(config({ value_property: "amount" }), { ...proportion, metricKind: "ratio" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("invalid_config");
    expect((error as ConnectorError).message).toContain("mixpanel connector: the metric is a ratio");
    expect((error as ConnectorError).message).toContain("den_sum, den_sum_sq, num_den_sum");
    expect((error as ConnectorError).message).toContain("read it with a postgres or csv connector");
    expect((error as ConnectorError).details).toMatchObject({ field: "type", value: "mixpanel", kind: "ratio" });
  });
});

describe("mixpanel connector: errors", () => {
  it("maps 429 to rate_limited with Retry-After, and pauses the project without calling again", async () => {
    handler = (_request, res) =>
      json(
        res,
        429,
        { error: "Too many requests: query rate limit exceeded", status: "error" },
        { "Retry-After": "120" },
      );
    const connector = createConnector(config(), proportion);
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error).toMatchObject({ code: "rate_limited", retryable: true, retryAfterMs: 120_000 });
    expect(error.message).toContain("about 60 queries an hour and 5 at a time per project");
    const sent = requests.length;
    const again = await failure(connector.fetchArmAggregates(window));
    expect(again.code).toBe("rate_limited");
    expect(again.retryAfterMs).toBeGreaterThan(110_000);
    expect(requests).toHaveLength(sent);
  });

  it("reads a Retry-After given as an HTTP date", async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    handler = (_request, res) => json(res, 429, { error: "rate limited", status: "error" }, { "Retry-After": at });
    const error = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
    expect(error.retryAfterMs).toBeGreaterThan(25_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it("maps 5xx to unavailable (retryable)", async () => {
    for (const status of [500, 502, 503]) {
      handler = (_request, res) => json(res, status, { error: "internal error", status: "error" });
      const error = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
      expect(error, String(status)).toMatchObject({ code: "unavailable", retryable: true });
      expect(error.details.status).toBe(status);
    }
  });

  it("maps 401 and 403 to auth_failed (not retryable), without showing the secret", async () => {
    const wrong = createConnector(config(), { ...proportion, credentials: { ...credentials, secret: "wrong-secret" } });
    const error = await failure(wrong.fetchArmAggregates(window));
    expect(error).toMatchObject({ code: "auth_failed", retryable: false });
    expect(error.message).toContain("check username_env and secret_env");
    expect(error.message).not.toContain("wrong-secret");

    handler = (_request, res) => json(res, 403, { error: "service account has no access to project", status: "error" });
    expect(await failure(createConnector(config(), proportion).fetchArmAggregates(window))).toMatchObject({
      code: "auth_failed",
      retryable: false,
    });
  });

  it("maps a refused query to query_failed with Mixpanel's message", async () => {
    handler = (_request, res) =>
      json(res, 400, { error: "invalid where expression: unexpected token", status: "error" });
    const error = await failure(
      createConnector(config({ filter: "properties[" }), proportion).fetchArmAggregates(window),
    );
    expect(error).toMatchObject({ code: "query_failed", retryable: false });
    expect(error.message).toContain("invalid where expression: unexpected token");
  });

  it("maps a malformed body to bad_response", async () => {
    handler = (_request, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<html>proxy error</html>");
    };
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).code).toBe("bad_response");
    handler = (_request, res) => json(res, 200, { data: { series: [] } });
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).message).toContain(
      "no data.values object",
    );
    handler = (request, res) =>
      json(res, 200, {
        data: { series: [], values: { control: { [request.params.get("from_date") ?? ""]: "12 users" } } },
      });
    const text = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
    expect(text.code).toBe("bad_response");
    expect(text.message).toContain(
      'the count of "control" on 2026-03-01 (data.values["control"]) is "12 users", not a count',
    );
  });

  it("reads a count sent as numeric text as its number, as every source's (the connector contract)", async () => {
    handler = (request, res) =>
      json(res, 200, { data: { series: [], values: { control: { [request.params.get("from_date") ?? ""]: "12" } } } });
    expect(await createConnector(config(), proportion).fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 12, sum: 12, sum_sq: 12, ts: null },
    ]);
  });

  it("refuses a segment the answer names twice (JSON.parse would keep the last), and only that segment", async () => {
    // Raw bodies: a repeated key is legal JSON text, and JSON.stringify cannot write one.
    const answer = (request: Recorded, values: string): string => {
      const from = JSON.stringify(request.params.get("from_date") ?? "");
      return `{"data":{"series":[${from}],"values":${values.replaceAll("DAY", from)}},"legend_size":2}`;
    };
    const raw =
      (body: (request: Recorded) => string): Handler =>
      (request, res) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(body(request));
      };
    handler = raw((request) => answer(request, '{"control":{DAY:10},"treatment":{DAY:9},"control":{DAY:12}}'));
    const twice = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
    expect(twice.code).toBe("bad_response");
    expect(twice.message).toContain('the segment "control" appears twice in data.values');
    expect(twice.details).toMatchObject({ segment: "control", field: 'data.values["control"]' });

    // One date twice within a segment (written as an escape, still the same key once parsed).
    handler = raw((request) => answer(request, '{"control":{DAY:10,DAY:12},"treatment":{DAY:9}}'));
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).message).toMatch(
      /data\.values\["control"\] names "2026-03-01" twice/u,
    );
    handler = raw((request) => answer(request, '{"control":{DAY:10},"\\u0063ontrol":{DAY:12}}'));
    expect((await failure(createConnector(config(), proportion).fetchArmAggregates(window))).message).toContain(
      'the segment "control" appears twice',
    );

    // Outside the segments, a repeated key fails the whole answer.
    handler = raw((request) => {
      const day = JSON.stringify(request.params.get("from_date") ?? "");
      return `{"data":{"series":[],"values":{}},"data":{"series":[${day}],"values":{"control":{${day}:10}}}}`;
    });
    const outside = await failure(createConnector(config(), proportion).fetchArmAggregates(window));
    expect(outside.code).toBe("bad_response");
    expect(outside.message).toContain('the answer names "data" twice in one object (at ["data"])');
  });

  it("times out a request that gets no answer", async () => {
    handler = () => {}; // never answers
    const error = await failure(createConnector(config({ timeout: "1s" }), proportion).fetchArmAggregates(window));
    expect(error).toMatchObject({ code: "timeout", retryable: true });
  });

  it("maps an unreachable server to unavailable", async () => {
    const error = await failure(
      createConnector(config({ api_url: "http://127.0.0.1:9/api/query" }), proportion).fetchArmAggregates(window),
    );
    expect(error).toMatchObject({ code: "unavailable", retryable: true });
  });
});

describe("mixpanel connector: limits", () => {
  it("keeps at most 5 requests in flight per project, across connectors", async () => {
    let active = 0;
    let peak = 0;
    handler = async (request, res) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((resolve) => setTimeout(resolve, 100));
      active--;
      json(res, 200, segmentation(request, { control: 10, treatment: 10 }));
    };
    const connectors = Array.from({ length: 8 }, () => createConnector(config(), proportion));
    const results = await Promise.all(connectors.map((c) => c.fetchArmAggregates(window)));
    expect(results).toHaveLength(8);
    expect(requests).toHaveLength(16);
    expect(peak).toBeLessThanOrEqual(MIXPANEL_MAX_CONCURRENT);
    expect(peak).toBeGreaterThan(1);
  });

  it("uses the region's Query API URL when api_url is left out", async () => {
    const urls: string[] = [];
    const fakeFetch = (async (input: string | URL | Request) => {
      urls.push(String(input));
      return new Response(JSON.stringify({ data: { series: [], values: {} } }), { status: 200 });
    }) as typeof fetch;
    const { api_url: _, ...withoutUrl } = config({ region: "eu" });
    const connector = createConnector(withoutUrl, { ...proportion, fetch: fakeFetch });
    expect(await connector.fetchArmAggregates(window)).toEqual([]);
    expect(urls[0]).toMatch(/^https:\/\/eu\.mixpanel\.com\/api\/query\/segmentation\?project_id=2741933&/u);
    expect(connector.describe()).toContain("mixpanel project 2741933 (eu)");
  });

  it("refuses an api_url on a metadata, private or (in production) loopback address before sending anything", async () => {
    const production = parseOutboundPolicy("");
    const hostile = ["http://169.254.169.254/api/query", "http://0x0a.1/api/query"];
    // Not Mixpanel's: refused when the connector is made, whatever the network policy.
    for (const apiUrl of hostile) {
      expect(() => createConnector(config({ api_url: apiUrl }), proportion)).toThrow(
        /not one of mixpanel's documented API hosts/,
      );
    }
    // Even an operator's consent does not get past the outbound guard.
    const consented = {
      ...proportion,
      allowedApiUrls: { mixpanel: [...hostile, baseUrl] },
      outboundPolicy: production,
    };
    for (const apiUrl of [...hostile, baseUrl]) {
      const connector = createConnector(config({ api_url: apiUrl }), consented);
      const error = await failure(connector.fetchArmAggregates(window));
      expect(error.code).toBe("invalid_config");
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/not a public address; .*OUTBOUND_ALLOW/u);
    }
    expect(requests).toEqual([]);
    const allowed = createConnector(config(), { ...proportion, outboundPolicy: parseOutboundPolicy("127.0.0.1") });
    // A redirect away from the API's origin is refused, so the credentials never leave it.
    handler = (_request, res) => {
      res.writeHead(302, { location: "http://localhost:1/steal" });
      res.end();
    };
    const redirected = await failure(allowed.fetchArmAggregates(window));
    expect(redirected.message).toMatch(
      /only http:\/\/127\.0\.0\.1:\d+ may be reached from here \(a redirect pointed elsewhere\)/u,
    );
    handler = (request, res) => json(res, 200, segmentation(request, { control: 1, treatment: 1 }));
    await expect(allowed.fetchArmAggregates(window)).resolves.toHaveLength(2);
  });
});
