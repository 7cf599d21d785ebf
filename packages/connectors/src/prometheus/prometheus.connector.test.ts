/**
 * The `prometheus` connector's settings, the PromQL it writes, and what it
 * does with answers a real Prometheus does not give in the integration test
 * (tests/prometheus-connector.test.ts): a proxy's 429 and 503 with
 * Retry-After, a matrix or a string where a vector belongs, an oversized
 * body, partial-data warnings, infinite and extrapolated counts, and a server
 * that never answers. Answers are written in the API's envelope
 * (docs/querying/api.md of github.com/prometheus/prometheus, "Format overview").
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { PROMETHEUS_BATCH_MAX_KEYS, prometheusPollCost } from "./prometheus.connector";
import { parseSeriesSelector, promqlExactRegex, promqlString } from "./promql";

const ERROR_RATE = {
  type: "prometheus",
  url: "http://prometheus.internal:9090",
  requests: 'http_requests_total{job="checkout"}',
  errors: 'http_requests_total{job="checkout", code=~"5.."}',
} as const;
const WINDOW = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date("2026-11-01T00:00:00Z"),
  to: new Date("2026-11-08T00:00:00Z"),
};

interface Sent {
  readonly url: string;
  readonly query: string;
  readonly time: string | null;
  readonly authorization: string | null;
}

/** A transport answering each request with `answer(query)`; records what was sent. */
function transport(answer: (sent: Sent) => Response | Promise<Response>): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const body = new URLSearchParams(String(init?.body ?? ""));
    const headers = new Headers(init?.headers);
    const request: Sent = {
      url: String(input),
      query: body.get("query") ?? "",
      time: body.get("time"),
      authorization: headers.get("authorization"),
    };
    sent.push(request);
    return answer(request);
  }) as typeof fetch;
  return { fetch: fetchImpl, sent };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

/** A vector answer: one sample per [labels, value]. */
const vector = (samples: readonly (readonly [Record<string, string>, string])[]) =>
  json({
    status: "success",
    data: { resultType: "vector", result: samples.map(([metric, value]) => ({ metric, value: [1794096000, value] })) },
  });

function connector(
  settings: Record<string, unknown>,
  fetchImpl: typeof fetch,
  context: Partial<ConnectorContext> = {},
): SignalConnector {
  return createConnector({ ...ERROR_RATE, ...settings } as ConnectorConfig, {
    metricKind: "proportion",
    fetch: fetchImpl,
    ...context,
  });
}

function failure(call: () => unknown): ConnectorError {
  try {
    call();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
}

async function rejected(promise: Promise<unknown>): Promise<ConnectorError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectorError);
  return error as ConnectorError;
}

const never = (() => Promise.reject(new Error("no request expected"))) as unknown as typeof fetch;

describe("promql", () => {
  it("writes keys as literals: a regular expression of escaped keys matches them and nothing else", () => {
    expect(promqlExactRegex(["checkout-v2", 'a"|.*', "b\\d"])).toBe('checkout-v2|a"\\|\\.\\*|b\\\\d');
    expect(promqlString('a"|.*')).toBe('"a\\"|.*"');
    const re = new RegExp(`^(?:${promqlExactRegex(['a"|.*', "x.y", "(z)"])})$`, "u");
    for (const key of ['a"|.*', "x.y", "(z)"]) expect(re.test(key)).toBe(true);
    for (const other of ["a", "anything", "xzy", "z", 'a"']) expect(re.test(other)).toBe(false);
  });

  it("parses a series selector and nothing more", () => {
    expect(parseSeriesSelector('http_requests_total{job="checkout", code=~"5.."}')).toEqual({
      metric: "http_requests_total",
      matchers: [
        { name: "job", op: "=", literal: '"checkout"' },
        { name: "code", op: "=~", literal: '"5.."' },
      ],
    });
    expect(parseSeriesSelector('a{b="}"}')).toMatchObject({ matchers: [{ literal: '"}"' }] });
    for (const bad of [
      "sum(http_requests_total)",
      "http_requests_total[5m]",
      "http_requests_total) or vector(1",
      'http_requests_total{job="a"} or vector(1)',
      "http_requests_total{job=checkout}",
      'http_requests_total{job="a"',
    ]) {
      expect(typeof parseSeriesSelector(bad), bad).toBe("string");
    }
  });
});

describe("prometheus connector settings", () => {
  it("refuses a mean and a ratio: Prometheus gives no Σx²", () => {
    for (const kind of ["mean", "ratio"] as const) {
      const error = failure(() => createConnector(ERROR_RATE, { metricKind: kind }));
      expect(error.code).toBe("invalid_config");
      expect(error.message).toContain(`the metric is a ${kind}`);
      expect(error.message).toContain("no Σx²");
    }
  });

  it("names the field, the value and the fix", () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ url: undefined }, "url", "is missing"],
      [{ url: "http://user:pw@prometheus.internal:9090" }, "url", "without credentials"],
      [{ url: "ftp://prometheus.internal" }, "url", "not an http(s) URL"],
      [{ errors: undefined }, "errors", "is missing"],
      [{ requests: "sum(http_requests_total)" }, "requests", "is not a series selector"],
      [{ errors: 'http_requests_total{code="500"} or vector(1)' }, "errors", "is not a series selector"],
      [{ requests: 'http_requests_total{experiment="x"}' }, "requests", "matches on experiment"],
      [{ latency: "http_request_duration_seconds", threshold: 0.3 }, "latency", "together with requests/errors"],
      [{ experiment_label: "arm" }, "arm_label", "the same label as experiment_label"],
      [{ arm_label: "__name__" }, "arm_label", "is not a label name"],
      [{ username_env: "OUTCOME_RUNTIME_SOURCE_PROM_USER" }, "password_secret", "is missing"],
    ];
    for (const [settings, field, problem] of cases) {
      const error = failure(() =>
        createConnector({ ...ERROR_RATE, ...settings } as ConnectorConfig, {
          metricKind: "proportion",
          credentials: { username: "u" },
        }),
      );
      expect(error.code, JSON.stringify(settings)).toBe("invalid_config");
      expect(error.details.field, JSON.stringify(settings)).toBe(field);
      expect(error.message, JSON.stringify(settings)).toContain(problem);
    }
    const latency = { type: "prometheus", url: ERROR_RATE.url };
    for (const [settings, field, problem] of [
      [{ latency: "http_request_duration_seconds" }, "threshold", "is missing"],
      [{ latency: "http_request_duration_seconds_bucket", threshold: 0.3 }, "latency", "histogram's base name"],
      [{ latency: "http_request_duration_seconds", threshold: 0.3, quantile: 99 }, "quantile", "between 0 and 1"],
      [{ latency: 'http_request_duration_seconds{le="0.3"}', threshold: 0.3 }, "latency", "matches on le"],
    ] as const) {
      const error = failure(() => createConnector({ ...latency, ...settings }, { metricKind: "proportion" }));
      expect(error.details.field).toBe(field);
      expect(error.message).toContain(problem);
    }
  });

  it("refuses a url at a cloud metadata address as source_refused, whatever OUTBOUND_ALLOW says", () => {
    for (const url of ["http://169.254.169.254/", "http://metadata.google.internal", "http://[fd00:ec2::254]:80"]) {
      const error = failure(() =>
        createConnector(
          { ...ERROR_RATE, url },
          { metricKind: "proportion", outboundPolicy: parseOutboundPolicy("0.0.0.0/0") },
        ),
      );
      expect(error.code, url).toBe("source_refused");
      expect(error.details.field).toBe("url");
    }
  });

  it("has no request budget of its own", () => {
    expect(prometheusPollCost(ERROR_RATE)).toBeNull();
  });
});

describe("prometheus connector reads", () => {
  it("sends one instant query per counter at the window end, over the range since launch, with the key as a literal", async () => {
    const t = transport(() => vector([]));
    await connector({ bearer_token_env: "OUTCOME_RUNTIME_SOURCE_PROM_TOKEN" }, t.fetch, {
      credentials: { bearer_token: "tok" },
    }).fetchArmAggregates({ ...WINDOW, experimentKey: 'a"|.*', startedAt: new Date("2026-10-31T00:00:00Z") });
    expect(t.sent.map((s) => s.query).sort()).toEqual([
      'sum by (experiment, arm) (increase(http_requests_total{job="checkout", code=~"5..", experiment="a\\"|.*"}[691200s]))',
      'sum by (experiment, arm) (increase(http_requests_total{job="checkout", experiment="a\\"|.*"}[691200s]))',
    ]);
    expect(t.sent.every((s) => s.url === "http://prometheus.internal:9090/api/v1/query")).toBe(true);
    expect(t.sent.every((s) => s.time === "1794096000.000")).toBe(true);
    expect(t.sent.every((s) => s.authorization === "Bearer tok")).toBe(true);
  });

  it("batches experiments with an escaped regular expression, and sends basic auth", async () => {
    const t = transport(() => vector([]));
    await connector(
      {
        username_secret: "prom-user",
        password_secret: "prom-password",
        experiment_label: "exp",
        arm_label: "variant",
      },
      t.fetch,
      { credentials: { username: "reader", password: "pw" } },
    ).fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-v2", arms: ["control", "treatment"], from: WINDOW.from },
        { experimentKey: "x.y|z", arms: ["control", "treatment"], from: WINDOW.from },
      ],
      to: WINDOW.to,
    });
    expect(t.sent).toHaveLength(2);
    expect(t.sent[0]?.query).toContain('exp=~"checkout-v2|x\\\\.y\\\\|z"');
    expect(t.sent[0]?.query).toMatch(/^sum by \(exp, variant\)/u);
    expect(t.sent[0]?.authorization).toBe(`Basic ${Buffer.from("reader:pw").toString("base64")}`);
  });

  it("splits a batch into requests of at most 100 keys, and by launch second (the range differs)", async () => {
    const t = transport(() => vector([]));
    const experiments = Array.from({ length: PROMETHEUS_BATCH_MAX_KEYS + 1 }, (_, i) => ({
      experimentKey: `exp-${i}`,
      arms: ["control", "treatment"],
      from: WINDOW.from,
    }));
    const answer = await connector({}, t.fetch).fetchBatchAggregates?.({
      experiments: [
        ...experiments,
        { experimentKey: "later", arms: ["control"], from: new Date("2026-11-05T00:00:00Z") },
      ],
      to: WINDOW.to,
    });
    expect(answer?.size).toBe(PROMETHEUS_BATCH_MAX_KEYS + 2);
    // Two counters per group: 100 keys, 1 key, and the experiment launched later.
    expect(t.sent).toHaveLength(6);
    expect(t.sent.filter((s) => s.query.includes("[604800s]"))).toHaveLength(4);
    expect(t.sent.filter((s) => s.query.includes('experiment="later"}[259200s]'))).toHaveLength(2);
  });

  it("rounds extrapolated counts to whole requests and clamps failures into [0, units]", async () => {
    const t = transport((sent) =>
      sent.query.includes("code=~")
        ? vector([
            [{ experiment: "checkout-v2", arm: "control" }, "1003.2"],
            [{ experiment: "checkout-v2", arm: "treatment" }, "-0.4"],
          ])
        : vector([
            [{ experiment: "checkout-v2", arm: "control" }, "1000.6"],
            [{ experiment: "checkout-v2", arm: "treatment" }, "99.49"],
          ]),
    );
    const rows = await connector({}, t.fetch).fetchArmAggregates(WINDOW);
    expect(rows.map((r) => [r.arm, r.units, r.sum, r.sum_sq])).toEqual([
      ["control", 1001, 1001, 1001],
      ["treatment", 99, 0, 0],
    ]);
  });

  it("reads a proxy's 429 and 503 with Retry-After as rate_limited / unavailable with retryAfterMs", async () => {
    const limited = await rejected(
      connector(
        {},
        transport(() => new Response("slow down", { status: 429, headers: { "retry-after": "120" } })).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(limited).toMatchObject({ code: "rate_limited", retryAfterMs: 120_000, retryable: true });
    const down = await rejected(
      connector(
        {},
        transport(() => new Response("<html>maintenance</html>", { status: 503, headers: { "retry-after": "30" } }))
          .fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(down).toMatchObject({ code: "unavailable", retryAfterMs: 30_000, retryable: true });
  });

  it("maps Prometheus's own errors: a query timeout, refused credentials, an execution error", async () => {
    const timeout = await rejected(
      connector(
        {},
        transport(() =>
          json({ status: "error", errorType: "timeout", error: "query timed out in expression evaluation" }, 503),
        ).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(timeout.code).toBe("timeout");
    const auth = await rejected(
      connector({}, transport(() => new Response("Unauthorized", { status: 401 })).fetch).fetchArmAggregates(WINDOW),
    );
    expect(auth.code).toBe("auth_failed");
    const execution = await rejected(
      connector(
        {},
        transport(() =>
          json({ status: "error", errorType: "execution", error: "query processing would load too many samples" }, 422),
        ).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(execution.code).toBe("query_failed");
    expect(execution.message).toContain(
      "Prometheus refused the expression (execution: query processing would load too many samples)",
    );
  });

  it("refuses a matrix or a string where a vector belongs, and a vector where the series' matrix belongs", async () => {
    for (const data of [
      { resultType: "matrix", result: [] },
      { resultType: "string", result: [1794096000, "x"] },
      { resultType: "scalar", result: [1794096000, "1"] },
    ]) {
      const error = await rejected(
        connector({}, transport(() => json({ status: "success", data })).fetch).fetchArmAggregates(WINDOW),
      );
      expect(error.code).toBe("bad_response");
      expect(error.message).toContain(`gave a ${data.resultType}, where a vector belongs`);
    }
    const series = await rejected(
      connector({ series_query: "sum(up)" }, transport(() => vector([])).fetch).fetchOutcomeSeries(WINDOW),
    );
    expect(series.message).toContain("series_query gave a vector, where a matrix belongs");
  });

  it("stops reading an oversized body, and refuses a body that is not Prometheus's envelope", async () => {
    const huge = `{"status":"success","data":{"resultType":"vector","result":[${'{"metric":{},"value":[1,"1"]},'.repeat(400_000)}]}}`;
    const big = await rejected(connector({}, transport(() => new Response(huge)).fetch).fetchArmAggregates(WINDOW));
    expect(big.code).toBe("bad_response");
    expect(big.message).toContain("larger than 8 MiB");
    const html = await rejected(
      connector({}, transport(() => new Response("<html>login</html>")).fetch).fetchArmAggregates(WINDOW),
    );
    expect(html.code).toBe("bad_response");
  });

  it("refuses a partial answer (warnings) for a retry, and ignores PromQL info annotations", async () => {
    const partial = await rejected(
      connector(
        {},
        transport(() =>
          json({
            status: "success",
            data: { resultType: "vector", result: [] },
            warnings: ["remote store unavailable"],
          }),
        ).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(partial).toMatchObject({ code: "unavailable", retryable: true });
    expect(partial.message).toContain("partial");
    const info = connector(
      {},
      transport(() =>
        json({
          status: "success",
          data: { resultType: "vector", result: [] },
          warnings: ['PromQL info: metric might not be a counter, name does not end in _total: "x"'],
        }),
      ).fetch,
    );
    expect(await info.fetchArmAggregates(WINDOW)).toEqual([]);
  });

  it("refuses an infinite count for its experiment, and a series of an experiment not asked for in the whole batch", async () => {
    const inf = await rejected(
      connector(
        {},
        transport(() => vector([[{ experiment: "checkout-v2", arm: "control" }, "+Inf"]])).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(inf.code).toBe("bad_response");
    expect(inf.message).toContain("the count is Infinity");
    const stray = await rejected(
      connector(
        {},
        transport(() => vector([[{ experiment: "search-v1", arm: "control" }, "1"]])).fetch,
      ).fetchArmAggregates(WINDOW),
    );
    expect(stray.message).toContain('names experiment "search-v1", not one of the 1 asked for');
  });

  it("refuses a latency read of a summary (a _count without buckets), and one whose threshold is no bucket bound", async () => {
    const latency = { type: "prometheus", url: ERROR_RATE.url, latency: "rpc_duration_seconds", threshold: 0.3 };
    const summary = transport((sent) =>
      sent.query.includes("_count") ? vector([[{ experiment: "checkout-v2", arm: "control" }, "10"]]) : vector([]),
    );
    const error = await rejected(
      createConnector(latency, { metricKind: "proportion", fetch: summary.fetch }).fetchArmAggregates(WINDOW),
    );
    expect(error.message).toContain("has a _count series but no _bucket series");
    expect(summary.sent.map((s) => s.query).sort()).toEqual([
      'sum by (experiment, arm) (increase(rpc_duration_seconds_count{experiment="checkout-v2"}[604800s]))',
      'sum by (experiment, arm, le) (increase(rpc_duration_seconds_bucket{experiment="checkout-v2"}[604800s]))',
    ]);
    const histogram = transport((sent) =>
      sent.query.includes("_count")
        ? vector([[{ experiment: "checkout-v2", arm: "control" }, "10"]])
        : vector([
            [{ experiment: "checkout-v2", arm: "control", le: "0.25" }, "9"],
            [{ experiment: "checkout-v2", arm: "control", le: "+Inf" }, "10"],
          ]),
    );
    const bounds = await rejected(
      createConnector(latency, { metricKind: "proportion", fetch: histogram.fetch }).fetchArmAggregates(WINDOW),
    );
    expect(bounds.code).toBe("query_failed");
    expect(bounds.message).toContain("threshold: 0.3 is not one of the histogram's le bounds (found 0.25, +Inf)");
  });

  it("times out on a server that never answers", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer(() => {});
    silent.on("connection", (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const slow = createConnector(
        { ...ERROR_RATE, url, timeout: 0.2 },
        { metricKind: "proportion", outboundPolicy: parseOutboundPolicy("127.0.0.1") },
      );
      const error = await rejected(slow.fetchArmAggregates(WINDOW));
      expect(error.code).toBe("timeout");
      expect(error.message).toContain("no answer from 127.0.0.1");
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("refuses a private address the operator did not allow, before connecting", async () => {
    const error = await rejected(
      createConnector(
        { ...ERROR_RATE, url: "http://10.0.0.7:9090" },
        { metricKind: "proportion", outboundPolicy: parseOutboundPolicy("") },
      ).fetchArmAggregates(WINDOW),
    );
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("OUTBOUND_ALLOW");
  });

  it("says why there is no series without series_query", async () => {
    const error = await rejected(connector({}, never).fetchOutcomeSeries(WINDOW));
    expect(error).toMatchObject({ code: "unsupported", details: { field: "series_query" } });
  });
});
