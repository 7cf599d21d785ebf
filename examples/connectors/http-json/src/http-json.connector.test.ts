/**
 * The example connector as the runtime uses it: loaded by its package name
 * (as `CONNECTOR_MODULES` names it), created through `createConnector` (the
 * runtime's guarded transport), reading from a real HTTP server on loopback
 * that answers as README.md describes the endpoint.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type ConnectorContext,
  ConnectorError,
  checkConnectorSettings,
  connectorCredentials,
  createConnector,
  loadConnectorModules,
} from "@outcome-runtime/connectors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "endpoint-token-0123";
const requests: { url: URL; authorization: string | undefined }[] = [];
/** What the endpoint answers next: status and body. */
let answer: { status: number; body: string; headers?: Record<string, string> } = { status: 200, body: "{}" };

const server = createServer((request: IncomingMessage, response) => {
  const url = new URL(request.url ?? "/", "http://127.0.0.1");
  requests.push({ url, authorization: request.headers.authorization });
  if (request.headers.authorization !== `Bearer ${TOKEN}`) {
    response.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}');
    return;
  }
  response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers }).end(answer.body);
});
let base = "";

beforeAll(async () => {
  await loadConnectorModules(["@outcome-runtime-examples/connector-http-json"]);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const context = (extra: Partial<ConnectorContext> = {}): ConnectorContext => ({
  metricKind: "proportion",
  credentials: { token: TOKEN },
  ...extra,
});
const config = () => ({ type: "http-json", url: `${base}/arms?team=growth`, token_secret: "metrics-token" });
const window = {
  experimentKey: "checkout-1",
  arms: ["control", "treatment"],
  from: new Date("2025-01-01T00:00:00Z"),
  to: new Date("2025-01-08T00:00:00Z"),
};

async function failure(promise: Promise<unknown>): Promise<ConnectorError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (error instanceof ConnectorError) return error;
  throw new Error(`expected a ConnectorError, got ${String(error)}`);
}

describe("the http-json example connector", () => {
  it("asks the endpoint for one experiment's arms and window, with the token, and returns its checked rows", async () => {
    answer = {
      status: 200,
      body: JSON.stringify({
        rows: [
          { arm: "treatment", units: 1210, sum: 110, sum_sq: 110, ts: "2025-01-07T00:00:00Z" },
          { arm: "control", units: 1200, sum: "96", sum_sq: 96, ts: "2025-01-07T00:00:00Z" },
        ],
      }),
    };
    const connector = createConnector(config(), context());
    expect(connector.describe()).toBe(`http-json ${base}/arms (timeout 30s)`);
    requests.length = 0;
    const rows = await connector.fetchArmAggregates(window);
    expect(rows).toEqual([
      { arm: "control", units: 1200, sum: 96, sum_sq: 96, ts: new Date("2025-01-07T00:00:00Z") },
      { arm: "treatment", units: 1210, sum: 110, sum_sq: 110, ts: new Date("2025-01-07T00:00:00Z") },
    ]);
    expect(requests).toHaveLength(1);
    expect(requests[0]?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(Object.fromEntries(requests[0]?.url.searchParams ?? [])).toEqual({
      team: "growth",
      experiment: "checkout-1",
      arms: "control,treatment",
      from: "2025-01-01T00:00:00.000Z",
      to: "2025-01-08T00:00:00.000Z",
    });
  });

  it("names its token setting as a built-in connector names its credentials", () => {
    expect(connectorCredentials(config())).toEqual([
      { credential: "token", field: "token_secret", ref: { via: "secret", name: "metrics-token" } },
    ]);
    expect(checkConnectorSettings({ type: "http-json", url: `${base}/arms` }, "proportion")).toMatchObject({
      field: "token_secret",
      fix: expect.stringContaining("the endpoint's bearer token"),
    });
  });

  it("refuses bad settings, naming the field, the value and the fix", () => {
    const problem = (settings: Record<string, unknown>) =>
      checkConnectorSettings({ type: "http-json", token_env: "OUTCOME_RUNTIME_SOURCE_T", ...settings }, "mean");
    expect(problem({ url: "metrics.internal/arms" })).toMatchObject({
      field: "url",
      problem: '"metrics.internal/arms" is not a URL',
    });
    expect(problem({ url: "ftp://metrics.internal/arms" })).toMatchObject({
      field: "url",
      problem: "ftp: is not http or https",
    });
    expect(problem({ url: "https://u:p@metrics.internal/arms" })?.fix).toContain("token_secret");
    expect(problem({ url: "https://metrics.internal/arms", verb: "POST" })).toMatchObject({
      field: "verb",
      problem: 'unknown field "verb"',
    });
    expect(problem({ url: "https://metrics.internal/arms", timeout: "soon" })?.field).toBe("timeout");
  });

  it("maps the endpoint's failures to the connector error codes", async () => {
    const connector = createConnector(config(), context());
    answer = { status: 200, body: JSON.stringify({ rows: [{ arm: "control", units: 10, sum: 11, sum_sq: 11 }] }) };
    expect(await failure(connector.fetchArmAggregates(window))).toMatchObject({
      code: "bad_response",
      details: { field: "sum" },
    });
    answer = { status: 200, body: JSON.stringify({ rows: [{ arm: "variant-b", units: 1, sum: 0, sum_sq: 0 }] }) };
    expect((await failure(connector.fetchArmAggregates(window))).message).toContain('arm "variant-b" is not an arm');
    answer = { status: 200, body: JSON.stringify({ data: [] }) };
    expect((await failure(connector.fetchArmAggregates(window))).message).toContain('the answer has no "rows" list');
    answer = { status: 200, body: "<html>" };
    expect((await failure(connector.fetchArmAggregates(window))).code).toBe("bad_response");
    answer = { status: 429, body: "{}", headers: { "retry-after": "30" } };
    expect(await failure(connector.fetchArmAggregates(window))).toMatchObject({
      code: "rate_limited",
      retryAfterMs: 30_000,
    });
    answer = { status: 503, body: "maintenance" };
    expect(await failure(connector.fetchArmAggregates(window))).toMatchObject({ code: "unavailable", retryable: true });
    answer = { status: 400, body: "unknown experiment" };
    expect((await failure(connector.fetchArmAggregates(window))).message).toContain("answered 400: unknown experiment");
    const wrongToken = createConnector(config(), context({ credentials: { token: "stale" } }));
    expect((await failure(wrongToken.fetchArmAggregates(window))).code).toBe("auth_failed");
    expect((await failure(connector.fetchOutcomeSeries(window))).code).toBe("unsupported");
  });

  it("reads the outcome's series from series_url", async () => {
    const connector = createConnector({ ...config(), series_url: `${base}/series` }, context());
    answer = { status: 200, body: JSON.stringify({ points: [{ ts: "2025-01-02T00:00:00Z", value: 0.081 }] }) };
    expect(await connector.fetchOutcomeSeries(window)).toEqual([
      { ts: new Date("2025-01-02T00:00:00Z"), value: 0.081 },
    ]);
  });

  it("is held to the SSRF guard: an address the operator has not allowed is refused before anything is sent", async () => {
    const connector = createConnector(config(), context({ outboundPolicy: { hosts: [], cidrs: [], source: "" } }));
    requests.length = 0;
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("OUTBOUND_ALLOW");
    expect(requests).toHaveLength(0);
  });
});
