/**
 * The `bigquery` connector against `@outcome-runtime/testing/fake-bigquery`,
 * a local server that answers BigQuery's REST API v2 (jobs.insert, jobs.query,
 * jobs.get, jobs.getQueryResults, jobs.cancel) and Google's token endpoint as
 * the reference documents them, through the real client
 * (`@google-cloud/bigquery` 8.3.1).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BigQuery } from "@google-cloud/bigquery";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { rejectionOf } from "@outcome-runtime/testing";
import { type FakeBigQuery, type FakeBigQueryQuery, startFakeBigQuery } from "@outcome-runtime/testing/fake-bigquery";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector, readsInBatches } from "../create-connector";
import { connectorCredentials } from "../credentials";
import { formatBytes } from "./bigquery-errors";
import { fetchAccessToken, parseServiceAccountKey, tokenAuthClient } from "./service-account";

let fake: FakeBigQuery;

beforeAll(async () => {
  fake = await startFakeBigQuery({ projectId: "acme-analytics" });
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.jobs.clear();
  fake.override = null;
  fake.maxPageRows = Number.POSITIVE_INFINITY;
  fake.tokenLifetimeSeconds = 3599;
  fake.answer = () => ({ columns: ["arm", "units", "sum", "sum_sq"], rows: [] });
});

const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);
const thrown = (fn: () => unknown): ConnectorError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
};

const ONE = `SELECT arm,
       COUNT(DISTINCT user_id) AS units,
       COUNTIF(converted) AS sum,
       COUNTIF(converted) AS sum_sq
  FROM \`acme-analytics.product.exposures\`
 WHERE experiment_key = :experiment
   AND arm IN UNNEST(:arms)
   AND exposed_at <= :to
 GROUP BY arm`;

const BATCHED = `SELECT e.experiment_key AS experiment, e.arm,
       COUNT(DISTINCT e.user_id) AS units,
       COUNT(DISTINCT c.user_id) AS sum,
       COUNT(DISTINCT c.user_id) AS sum_sq
  FROM exposures e
  LEFT JOIN conversions c ON c.user_id = e.user_id AND c.converted_at BETWEEN e.exposed_at AND :to
 WHERE e.experiment_key IN UNNEST(:experiments) -- the batch
   AND e.arm IN UNNEST(:arms)
   AND e.exposed_at > TIMESTAMP_SUB(:from, INTERVAL 1 DAY) AND e.exposed_at <= :to
 GROUP BY 1, 2`;

const config = (extra: Record<string, unknown> = {}): ConnectorConfig => ({
  type: "bigquery",
  project_id: "acme-analytics",
  location: "EU",
  credentials_json_secret: "bigquery-key",
  api_endpoint: fake.apiEndpoint,
  query: ONE,
  ...extra,
});

/** The operator allows the fake as the API endpoint and as the token endpoint. */
const context = (extra: Partial<ConnectorContext> = {}): ConnectorContext => ({
  metricKind: "proportion",
  credentials: { credentials_json: fake.serviceAccountKey() },
  allowedApiUrls: { bigquery: [fake.apiEndpoint, fake.tokenUrl] },
  ...extra,
});

const window = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date("2026-03-01T00:00:00Z"),
  to: new Date("2026-03-07T18:30:00Z"),
};

/** `checkConnectorSettings` as the API calls it, with the operator's SOURCE_API_URLS allowing the fake. */
const offline = () => ({ allowedApiUrls: { bigquery: [fake.apiEndpoint] } });

const dryRuns = () =>
  fake
    .calls("POST", /\/jobs$/u)
    .filter((r) => (r.body as { configuration?: { dryRun?: boolean } }).configuration?.dryRun);
const realJobs = () =>
  fake
    .calls("POST", /\/jobs$/u)
    .filter((r) => !(r.body as { configuration?: { dryRun?: boolean } }).configuration?.dryRun);
const resultCalls = () => fake.calls("GET", /\/queries\//u);

async function waitFor(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("bigquery connector: settings", () => {
  it("checks project_id, location, dataset, maximum_bytes_billed and labels, naming the field and the fix", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ project_id: "Acme Analytics" }, /project_id: "Acme Analytics" is not a Google Cloud project id/u],
      [{ project_id: undefined }, /project_id: is missing/u],
      [{ location: "europe west" }, /location: "europe west" is not a BigQuery location/u],
      [{ location: undefined }, /location: is missing; write where the datasets are/u],
      [{ dataset: "a.b.c" }, /dataset: "a\.b\.c" is not a dataset/u],
      [{ maximum_bytes_billed: "lots" }, /maximum_bytes_billed: "lots" is not a size; write a size such as 10 GB/u],
      [{ maximum_bytes_billed: "1 MB" }, /less than the 10 MiB BigQuery bills at least per query/u],
      [
        { labels: { Team: "growth" } },
        /labels\.Team: "Team" is not a label key; keys and values are at most 63 lowercase/u,
      ],
      [{ labels: { team: "Growth Team" } }, /labels\.team: "Growth Team" is not a label value/u],
      [{ labels: { team: "x".repeat(64) } }, /is not a label value/u],
      [{ labels: ["team"] }, /labels: \["team"\] is not a mapping/u],
      [
        { labels: Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`k${i}`, "v"])) },
        /65 labels, with app and outcome_runtime_read, are more than a job may have \(64\)/u,
      ],
    ];
    for (const [extra, message] of cases) {
      const error = thrown(() => createConnector(config(extra), context()));
      expect(error.code).toBe("invalid_config");
      expect(error.message).toMatch(message);
    }
    const ok = createConnector(
      config({
        dataset: "acme-data.product",
        maximum_bytes_billed: "1 TiB",
        labels: { team: "growth", cost_center: 4200, équipe: "croissance" },
      }),
      context(),
    );
    expect(ok.describe()).toBe(
      "bigquery project acme-analytics (EU), timeout 30s, at most 10000 rows, 4 queries at once",
    );
    expect(createConnector(config({ maximum_bytes_billed: 50_000_000 }), context()).type).toBe("bigquery");
  });

  it("names where the key is kept: exactly one of credentials_json_secret, credentials_json_env, credentials_file_env", () => {
    const { credentials_json_secret: _, ...none } = config();
    const missing = thrown(() => createConnector(none, context()));
    expect(missing.message).toContain(
      "bigquery connector: credentials_json_secret: is missing (so are credentials_json_env and credentials_file_env)",
    );
    expect(missing.message).toContain(
      "credentials_file_env: OUTCOME_RUNTIME_SOURCE_<NAME> for a variable of the API and the worker holding the path of the service account's JSON key file",
    );
    const both = thrown(() =>
      createConnector(config({ credentials_file_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE" }), context()),
    );
    expect(both.message).toMatch(/credentials_json_secret and credentials_file_env are set; keep one of/u);
    expect(thrown(() => createConnector(config({ credentials_file_secret: "x" }), context())).message).toContain(
      'unknown field "credentials_file_secret"',
    );
    const badVariable = thrown(() =>
      createConnector(
        { ...none, credentials_file_env: "GOOGLE_APPLICATION_CREDENTIALS" },
        context({ credentials: { credentials_file: "/x" } }),
      ),
    );
    expect(badVariable.message).toContain(
      'credentials_file_env: "GOOGLE_APPLICATION_CREDENTIALS" is not a source variable: only names starting with OUTCOME_RUNTIME_SOURCE_ may be used',
    );
    expect(badVariable.message).not.toContain("credentials_file_secret");
    // The runtime resolves what the settings name, and hints at the secret that can hold the key instead.
    expect(connectorCredentials({ ...none, credentials_file_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE" })).toEqual([
      {
        credential: "credentials_file",
        field: "credentials_file_env",
        ref: { via: "env", name: "OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE" },
        secretSetting: "credentials_json_secret",
      },
    ]);
    expect(connectorCredentials(config())).toEqual([
      {
        credential: "credentials_json",
        field: "credentials_json_secret",
        ref: { via: "secret", name: "bigquery-key" },
      },
    ]);
  });

  it("sends the key only to BigQuery's documented endpoint, or one the operator allows", () => {
    const refused = thrown(() =>
      createConnector(config({ api_endpoint: "https://bigquery.evil.example" }), context({ allowedApiUrls: {} })),
    );
    expect(refused.code).toBe("source_refused");
    expect(refused.message).toContain(
      "api_endpoint: \"https://bigquery.evil.example\" is not one of bigquery's documented API hosts (https://bigquery.googleapis.com); another host needs the operator's consent: SOURCE_API_URLS=bigquery=https://bigquery.evil.example",
    );
    expect(createConnector(config({ api_endpoint: "https://bigquery.googleapis.com/" }), context()).type).toBe(
      "bigquery",
    );
    expect(checkConnectorSettings(config({ api_endpoint: undefined }), "proportion")).toBeNull();
  });

  it("checks the query statically, with GoogleSQL's strings, backquoted names and # comments", () => {
    const lexical = `SELECT arm, COUNT(*) AS units, 0 AS sum, 0 AS sum_sq
  FROM \`p.d.update\` -- :nothing here
 WHERE k = :experiment AND note != ':not' # nor :here
   AND ts <= :to GROUP BY arm`;
    expect(checkConnectorSettings(config({ query: lexical }), "proportion", offline())).toBeNull();
    const write = checkConnectorSettings(
      config({ query: "SELECT 1 FROM t WHERE k = :experiment AND t <= :to;\nDELETE FROM t WHERE true" }),
      "proportion",
      offline(),
    );
    expect(write).toMatchObject({
      code: "sql_refused",
      field: "query",
      problem: "the query holds more than one statement",
    });
    expect(readsInBatches(config({ query: BATCHED }))).toBe(true);
    expect(readsInBatches(config())).toBe(false);
  });
});

describe("bigquery connector: reads", () => {
  it("runs a dry run, then a job with the named parameters as @name and their types, the guard and the labels", async () => {
    const seen: FakeBigQueryQuery[] = [];
    fake.answer = (query) => {
      seen.push(query);
      return {
        columns: ["arm", "units", "sum", "sum_sq"],
        rows: [
          ["control", 5120, 410, 410],
          ["treatment", 5087, 468, 468],
        ],
      };
    };
    const connector = createConnector(
      config({ dataset: "product", labels: { team: "growth" }, timeout: "45s" }),
      context(),
    );
    expect(await connector.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 5120, sum: 410, sum_sq: 410, ts: null },
      { arm: "treatment", units: 5087, sum: 468, sum_sq: 468, ts: null },
    ]);
    expect(seen.map((q) => q.dryRun)).toEqual([true, false]);
    for (const query of seen) {
      expect(query.sql).toContain(
        "WHERE experiment_key = @experiment\n   AND arm IN UNNEST(@arms)\n   AND exposed_at <= @to",
      );
      expect(query.params).toEqual({ experiment: "checkout-v2", arms: ["control", "treatment"], to: window.to });
      expect(query.types).toEqual({ experiment: "STRING", arms: "ARRAY<STRING>", to: "TIMESTAMP" });
      expect(query.maximumBytesBilled).toBe(10_000_000_000);
      expect(query.labels).toEqual({ app: "outcome-runtime", team: "growth", outcome_runtime_read: "signal" });
      expect(query.location).toBe("EU");
      expect(query.defaultDataset).toEqual({ projectId: "acme-analytics", datasetId: "product" });
      expect(query.method).toBe("jobs.insert");
    }
    const [job] = [...fake.jobs.values()];
    expect(job?.jobId).toMatch(/^outcome_runtime_[0-9a-f]{32}$/u);
    expect(job?.query.jobTimeoutMs).toBe(45_000);
    const [results] = resultCalls();
    expect(Object.fromEntries(results?.query ?? [])).toMatchObject({
      location: "EU",
      maxResults: "10000",
      timeoutMs: "10000",
      "formatOptions.useInt64Timestamp": "true",
    });
    // One token, one dry run per query for the connector's life, one job and one page per read.
    await connector.fetchArmAggregates(window);
    expect(fake.requests.filter((r) => r.path === "/token")).toHaveLength(1);
    expect(dryRuns()).toHaveLength(1);
    expect(realJobs()).toHaveLength(2);
    expect(resultCalls()).toHaveLength(2);
  });

  it("reads many experiments with one query (IN UNNEST(:experiments)), split by the experiment column", async () => {
    fake.answer = (query) => ({
      columns: ["experiment", "arm", "units", "sum", "sum_sq"],
      rows: (query.params.experiments as string[]).flatMap((key, i) => [
        [key, "control", 1000 + i, 100, 100],
        [key, "treatment", 1000 + i, 120, 120],
      ]),
    });
    const connector = createConnector(config({ query: BATCHED }), context());
    const read = connector.fetchBatchAggregates;
    if (read === undefined) throw new Error("expected the batched form");
    const keys = ["exp-a", "exp-b", "exp-c"];
    const answer = await read({
      experiments: keys.map((experimentKey, i) => ({
        experimentKey,
        arms: ["control", "treatment"],
        from: new Date(Date.UTC(2026, 2, 1 + i)),
      })),
      to: window.to,
    });
    expect([...answer.keys()]).toEqual(keys);
    expect(answer.get("exp-b")).toEqual([
      { arm: "control", units: 1001, sum: 100, sum_sq: 100, ts: null },
      { arm: "treatment", units: 1001, sum: 120, sum_sq: 120, ts: null },
    ]);
    const job = [...fake.jobs.values()][0];
    expect(job?.query.types).toEqual({
      experiments: "ARRAY<STRING>",
      arms: "ARRAY<STRING>",
      from: "TIMESTAMP",
      to: "TIMESTAMP",
    });
    expect(job?.query.params.from).toEqual(new Date("2026-03-01T00:00:00Z"));
    expect(realJobs()).toHaveLength(1);
  });

  it("reads the outcome series: TIMESTAMP cells (microseconds) become times, FLOAT64 text a number", async () => {
    fake.answer = (query) =>
      query.labels.outcome_runtime_read === "series"
        ? {
            columns: ["ts", { name: "value", type: "FLOAT" }],
            rows: [
              [new Date("2026-03-02T00:00:00Z"), 0.125],
              [new Date("2026-03-03T00:00:00Z"), 0.25],
            ],
          }
        : { columns: [], rows: [] };
    const connector = createConnector(
      config({
        series_query:
          "SELECT TIMESTAMP_TRUNC(ts, DAY) AS ts, AVG(v) AS value FROM s WHERE ts > :from AND ts <= :to GROUP BY 1 ORDER BY 1",
      }),
      context(),
    );
    expect(await connector.fetchOutcomeSeries({ from: window.from, to: window.to })).toEqual([
      { ts: new Date("2026-03-02T00:00:00Z"), value: 0.125 },
      { ts: new Date("2026-03-03T00:00:00Z"), value: 0.25 },
    ]);
    expect(dryRuns()).toHaveLength(1);
  });

  it("pages through the results with pageToken and maxResults, and never asks for more than max_rows + 1 rows", async () => {
    const points = Array.from({ length: 30 }, (_, i) => [new Date(Date.UTC(2026, 1, 1 + i)), i / 100]);
    fake.answer = () => ({ columns: ["ts", "value"], rows: points });
    fake.maxPageRows = 7;
    const series = `SELECT ts, value FROM s WHERE ts > :from AND ts <= :to`;
    const connector = createConnector(config({ series_query: series }), context());
    const read = await connector.fetchOutcomeSeries({ from: new Date(0), to: new Date("2026-04-01T00:00:00Z") });
    expect(read).toHaveLength(30);
    const calls = resultCalls();
    expect(calls).toHaveLength(5);
    expect(calls.map((c) => c.query.has("pageToken"))).toEqual([false, true, true, true, true]);
    expect(calls.map((c) => Number(c.query.get("maxResults")))).toEqual([10_000, 9994, 9987, 9980, 9973]);

    // The cap: a result over max_rows is refused from its totalRows, before its rows are read.
    const capped = createConnector(config({ series_query: series, max_rows: 5 }), context());
    fake.requests.length = 0;
    const error = await failure(capped.fetchOutcomeSeries({ from: new Date(0), to: new Date("2026-04-01T00:00:00Z") }));
    expect(error.code).toBe("too_many_rows");
    expect(error.message).toContain("bigquery series_query: the query returns 30 rows, more than max_rows (5)");
    expect(resultCalls().map((c) => c.query.get("maxResults"))).toEqual(["6"]);
  });

  it("stops at max_rows + 1 rows while paging when the answer gives no totalRows", async () => {
    fake.answer = () => ({
      columns: ["ts", "value"],
      rows: Array.from({ length: 40 }, (_, i) => [new Date(i * 1000), i]),
    });
    fake.maxPageRows = 4;
    // A server that leaves totalRows out: a proxy strips it from every page.
    const stripping = await startStrippingProxy(fake.apiEndpoint);
    try {
      const connector = createConnector(
        config({ api_endpoint: stripping.url, max_rows: 9, series_query: "SELECT ts, value FROM s WHERE ts <= :to" }),
        context({ allowedApiUrls: { bigquery: [stripping.url, fake.tokenUrl] } }),
      );
      const error = await failure(connector.fetchOutcomeSeries({ from: new Date(0), to: new Date(100_000) }));
      expect(error.code).toBe("too_many_rows");
      expect(error.message).toContain("more than 9 rows");
      // 4 + 4 + 2 (asked: 10, 6, 2): ten rows read, never the forty.
      expect(resultCalls().map((c) => c.query.get("maxResults"))).toEqual(["10", "6", "2"]);
    } finally {
      await stripping.close();
    }
  });

  it("polls a slow job until jobComplete", async () => {
    fake.answer = (query) => ({
      columns: ["arm", "units", "sum", "sum_sq"],
      rows: [["control", 10, 1, 1]],
      polls: query.dryRun ? 0 : 3,
    });
    const connector = createConnector(config(), context());
    expect(await connector.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 10, sum: 1, sum_sq: 1, ts: null },
    ]);
    expect(resultCalls()).toHaveLength(4);
    expect(fake.calls("POST", /\/cancel$/u)).toEqual([]);
  });

  it("cancels the job when the read runs past its timeout, or is aborted", async () => {
    fake.answer = (query) => ({
      columns: ["arm", "units", "sum", "sum_sq"],
      rows: [],
      polls: query.dryRun ? 0 : 10_000,
    });
    const connector = createConnector(config({ timeout: "1s" }), context());
    const timedOut = await failure(connector.fetchArmAggregates(window));
    expect(timedOut.code).toBe("timeout");
    expect(timedOut.retryable).toBe(true);
    expect(timedOut.message).toContain(
      "bigquery query: the read took longer than 1s (timeout) (a job it started is cancelled); raise timeout, or read less",
    );
    await waitFor(() => fake.calls("POST", /\/cancel$/u).length === 1);
    const [job] = [...fake.jobs.values()];
    expect(job?.cancelled).toBe(true);
    expect(fake.calls("POST", /\/cancel$/u)[0]?.query.get("location")).toBe("EU");

    fake.requests.length = 0;
    fake.jobs.clear();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const aborted = await failure(
      createConnector(config({ timeout: "1m" }), context()).fetchArmAggregates(window, controller.signal),
    );
    expect(aborted.code).toBe("timeout");
    expect(aborted.message).toContain("bigquery query: the read was aborted (a job it started is cancelled)");
    await waitFor(() => fake.calls("POST", /\/cancel$/u).length === 1);
  });

  it("cancels a job whose insert was still on its way when the read was aborted", async () => {
    fake.override = (request) =>
      request.method === "POST" &&
      request.path.endsWith("/jobs") &&
      !(request.body as { configuration: { dryRun?: boolean } }).configuration.dryRun
        ? { delayMs: 500 }
        : null;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const connector = createConnector(config(), context());
    expect((await failure(connector.fetchArmAggregates(window, controller.signal))).code).toBe("timeout");
    expect(fake.calls("POST", /\/cancel$/u)).toEqual([]);
    await waitFor(() => fake.calls("POST", /\/cancel$/u).length === 1);
    expect(fake.calls("POST", /\/cancel$/u)[0]?.path).toMatch(/\/jobs\/outcome_runtime_[0-9a-f]{32}\/cancel$/u);
  });
});

describe("bigquery connector: read-only and the cost guard", () => {
  it("refuses a statement BigQuery's dry run does not call a SELECT, before any job runs", async () => {
    fake.answer = () => ({ statementType: "SCRIPT" });
    const connector = createConnector(config(), context());
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("read_only_violation");
    expect(error.message).toContain(
      "bigquery query: BigQuery's dry run says the query is a SCRIPT statement, not a SELECT; nothing was run",
    );
    expect(error.details).toMatchObject({ field: "query", statementType: "SCRIPT" });
    expect(fake.jobs.size).toBe(0);
    expect(realJobs()).toEqual([]);
    // Not kept: the next read asks again (and is refused again).
    expect((await failure(connector.fetchArmAggregates(window))).code).toBe("read_only_violation");
    expect(dryRuns()).toHaveLength(2);
  });

  it("refuses a query whose dry run scans more than maximum_bytes_billed, before any job runs", async () => {
    fake.answer = () => ({ bytesProcessed: 1_200_000_000_000, columns: [], rows: [] });
    const connector = createConnector(config({ maximum_bytes_billed: "500 GB" }), context());
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("cost_exceeded");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(
      "bigquery query: the query would scan 1.2 TB, more than maximum_bytes_billed (500 GB); nothing was run",
    );
    expect(error.details).toMatchObject({ bytesProcessed: 1_200_000_000_000, maximumBytesBilled: 500_000_000_000 });
    expect(fake.jobs.size).toBe(0);
  });

  it("maps BigQuery's own refusal of a job over its maximumBytesBilled to cost_exceeded, without retrying", async () => {
    let bytes = 1_000_000;
    fake.answer = () => ({ bytesProcessed: bytes, columns: ["arm", "units", "sum", "sum_sq"], rows: [] });
    const connector = createConnector(config({ maximum_bytes_billed: "20 MB" }), context());
    expect(await connector.fetchArmAggregates(window)).toEqual([]);
    // The data grew since the dry run: the job itself carries the guard, and BigQuery refuses it before any charge.
    bytes = 30_000_000;
    fake.requests.length = 0;
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("cost_exceeded");
    expect(error.details).toMatchObject({ reason: "bytesBilledLimitExceeded", field: "query" });
    expect(error.message).toContain("Query exceeded limit for bytes billed: 20000000. 30408704 or higher required.");
    expect(error.message).toContain("maximum_bytes_billed (20 MB)");
    expect(realJobs()).toHaveLength(1);
    expect(fake.calls("POST", /\/cancel$/u)).toEqual([]);
  });

  it("estimates a read's cost with a dry run: bytes, the guard and one line for people", async () => {
    fake.answer = () => ({ bytesProcessed: 1_234_567_890 });
    const connector = createConnector(config({ query: BATCHED }), context());
    const estimate = connector.estimateCost;
    if (estimate === undefined) throw new Error("expected estimateCost");
    const batch = {
      experiments: [{ experimentKey: "exp-a", arms: ["control", "treatment"], from: window.from }],
      to: window.to,
    };
    expect(await estimate(batch)).toEqual({
      bytesProcessed: 1_234_567_890,
      maximumBytesBilled: 10_000_000_000,
      summary: "scans 1.2 GB (limit 10 GB)",
    });
    expect(fake.jobs.size).toBe(0);
    fake.answer = () => ({ bytesProcessed: 11_000_000_000 });
    expect((await failure(estimate(batch))).code).toBe("cost_exceeded");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(10_000_000_000)).toBe("10 GB");
  });
});

describe("bigquery connector: errors", () => {
  it("maps an invalid query to query_failed with the line and column BigQuery gives", async () => {
    fake.answer = () => ({
      error: {
        reason: "invalidQuery",
        message: 'Syntax error: Unexpected identifier "FORM" at [5:3]',
        location: "query",
      },
    });
    const error = await failure(createConnector(config(), context()).fetchArmAggregates(window));
    expect(error.code).toBe("query_failed");
    expect(error.details).toMatchObject({ line: 5, column: 3, reason: "invalidQuery", field: "query" });
    expect(error.message).toContain(
      'bigquery query (dry run): Syntax error: Unexpected identifier "FORM" at [5:3] (invalidQuery); fix the query at line 5, column 3',
    );
    // A parameter BigQuery cannot find (written @name instead of :name) points into the query as written.
    fake.answer = () => ({ columns: [], rows: [] });
    const raw = await failure(
      createConnector(
        config({
          query:
            "SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM t\nWHERE k = :experiment AND t <= :to AND v = @other",
        }),
        context(),
      ).fetchArmAggregates(window),
    );
    expect(raw.details).toMatchObject({ line: 2, column: 44 });
    expect(raw.message).toContain("Query parameter 'other' not found at [2:44]");
  });

  it("retries rateLimitExceeded once in the base (the client does not retry on its own)", async () => {
    let refused = 0;
    fake.override = (request) => {
      if (request.method === "POST" && request.path.endsWith("/jobs") && refused === 0) {
        refused++;
        return {
          status: 403,
          body: {
            error: {
              code: 403,
              message: "Exceeded rate limits: too many api requests per user per method for this user_method.",
              errors: [{ reason: "rateLimitExceeded", message: "Exceeded rate limits", domain: "usageLimits" }],
              status: "PERMISSION_DENIED",
            },
          },
        };
      }
      return null;
    };
    fake.answer = () => ({ columns: ["arm", "units", "sum", "sum_sq"], rows: [["control", 1, 0, 0]] });
    expect(await createConnector(config(), context()).fetchArmAggregates(window)).toHaveLength(1);
    expect(fake.calls("POST", /\/jobs$/u)).toHaveLength(3);
  });

  it("maps each documented reason and status to its code, one request each", async () => {
    const answers: [Record<string, unknown>, number, string, RegExp][] = [
      [
        { reason: "rateLimitExceeded", message: "Exceeded rate limits" },
        403,
        "rate_limited",
        /Exceeded rate limits \(rateLimitExceeded\)/u,
      ],
      [
        { reason: "quotaExceeded", message: "Quota exceeded: Your project exceeded quota for concurrent queries." },
        403,
        "rate_limited",
        /quota/u,
      ],
      [
        { reason: "backendError", message: "Backend error." },
        503,
        "unavailable",
        /Backend error\. \(backendError\); BigQuery failed on its side/u,
      ],
      [{ reason: "internalError", message: "Internal error." }, 500, "unavailable", /internalError/u],
      [
        {
          reason: "accessDenied",
          message:
            "Access Denied: Table acme-analytics:product.exposures: User does not have permission to query table",
        },
        403,
        "auth_failed",
        /grant the service account roles\/bigquery\.jobUser on project acme-analytics and roles\/bigquery\.dataViewer/u,
      ],
      [
        {
          reason: "accessDenied",
          message: "Request is prohibited by organization's policy. vpcServiceControlsUniqueIdentifier: x",
        },
        403,
        "source_refused",
        /organisation's policy/u,
      ],
      [
        { reason: "billingNotEnabled", message: "Billing has not been enabled for this project." },
        403,
        "source_refused",
        /enable billing on project acme-analytics/u,
      ],
      [
        {
          reason: "notFound",
          message: "Not found: Table acme-analytics:product.exposures was not found in location EU",
        },
        404,
        "query_failed",
        /was not found in location EU/u,
      ],
      [
        {
          reason: "bytesBilledLimitExceeded",
          message: "Query exceeded limit for bytes billed: 10. 10485760 or higher required.",
        },
        400,
        "cost_exceeded",
        /maximum_bytes_billed/u,
      ],
      [
        { reason: "timeout", message: "Job execution was cancelled: Job timed out after 30 sec" },
        400,
        "timeout",
        /raise timeout/u,
      ],
      [
        { reason: "responseTooLarge", message: "Response too large to return." },
        403,
        "query_failed",
        /Response too large/u,
      ],
      [{}, 502, "unavailable", /HTTP 502|Bad Gateway/u],
      [{}, 429, "rate_limited", /./u],
    ];
    for (const [proto, status, code, message] of answers) {
      fake.requests.length = 0;
      fake.override = (request) =>
        request.path === "/token"
          ? null
          : {
              status,
              headers: status === 429 ? { "retry-after": "7" } : ({} as Record<string, string>),
              body:
                "reason" in proto
                  ? {
                      error: {
                        code: status,
                        message: proto.message,
                        errors: [{ ...proto, domain: "global" }],
                        status: "X",
                      },
                    }
                  : "",
            };
      const error = await failure(createConnector(config({ retries: 0 }), context()).fetchArmAggregates(window));
      expect(error.code, `${JSON.stringify(proto)} ${status}`).toBe(code);
      expect(error.message).toMatch(message);
      if (status === 429) expect(error.retryAfterMs).toBe(7000);
      // The client's own retries are off: one request, however retryable the answer.
      expect(fake.requests.filter((r) => r.path !== "/token")).toHaveLength(1);
    }
  });

  it("maps a job that fails while it runs, and a 401 from the API", async () => {
    fake.answer = (query) => ({
      columns: [],
      rows: [],
      polls: query.dryRun ? 0 : 1,
      ...(query.dryRun
        ? {}
        : {
            error: {
              reason: "resourcesExceeded",
              message:
                "Resources exceeded during query execution: The query could not be executed in the allotted memory.",
            },
          }),
    });
    const failed = await failure(createConnector(config(), context()).fetchArmAggregates(window));
    expect(failed.code).toBe("query_failed");
    expect(failed.message).toContain("(resourcesExceeded)");
    expect(fake.calls("POST", /\/cancel$/u)).toEqual([]);

    fake.answer = () => ({ columns: [], rows: [] });
    fake.override = (request) =>
      request.path === "/token"
        ? null
        : {
            status: 401,
            body: {
              error: {
                code: 401,
                message: "Request had invalid authentication credentials.",
                errors: [
                  { message: "Invalid Credentials", domain: "global", reason: "authError", location: "Authorization" },
                ],
                status: "UNAUTHENTICATED",
              },
            },
          };
    const unauthenticated = await failure(createConnector(config(), context()).fetchArmAggregates(window));
    expect(unauthenticated.code).toBe("auth_failed");
    expect(unauthenticated.retryable).toBe(false);
  });

  it("is unavailable when BigQuery cannot be reached, and refuses a project the account may not use", async () => {
    const dead = "http://127.0.0.1:9";
    const unreachable = await failure(
      createConnector(
        config({ api_endpoint: dead, retries: 0 }),
        context({ allowedApiUrls: { bigquery: [dead, fake.tokenUrl] } }),
      ).fetchArmAggregates(window),
    );
    expect(unreachable.code).toBe("unavailable");
    expect(unreachable.message).toContain("bigquery query (dry run): cannot reach BigQuery");

    const other = await failure(
      createConnector(config({ project_id: "someone-else" }), context()).fetchArmAggregates(window),
    );
    expect(other.code).toBe("auth_failed");
    expect(other.message).toContain("User does not have bigquery.jobs.create permission in project someone-else");
    expect(other.message).toContain("roles/bigquery.jobUser on project someone-else");
  });
});

describe("bigquery connector: the service account key", () => {
  it("refuses a key whose token_uri is not Google's, before anything is sent anywhere", async () => {
    let stolen = 0;
    const evil = createServer((_req, res) => {
      stolen++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: "x", expires_in: 3600, token_type: "Bearer" }));
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/token`;
    try {
      const hostile = context({ credentials: { credentials_json: fake.serviceAccountKey({ token_uri: evilUrl }) } });
      const connector = createConnector(config(), hostile);
      for (const attempt of [connector.fetchArmAggregates(window), connector.check?.() ?? Promise.resolve()]) {
        const error = await failure(attempt);
        expect(error.code).toBe("source_refused");
        expect(error.message).toContain(
          `bigquery connector: credentials_json_secret: the key in credentials_json_secret: bigquery-key has the token_uri "${evilUrl}", not Google's token endpoint (https://oauth2.googleapis.com/token)`,
        );
        expect(error.message).toContain(`SOURCE_API_URLS=bigquery=${evilUrl}`);
        expect(error.message).not.toContain("PRIVATE KEY");
      }
      expect(stolen).toBe(0);
      expect(fake.requests).toEqual([]);
      // Google's own endpoint is always allowed; another only with the operator's consent.
      expect(
        parseServiceAccountKey(fake.serviceAccountKey({ token_uri: "https://oauth2.googleapis.com/token" }), {
          field: "credentials_json_secret",
          name: "k",
        }).tokenUrl,
      ).toBe("https://oauth2.googleapis.com/token");
      const consented = context({
        credentials: { credentials_json: fake.serviceAccountKey({ token_uri: evilUrl }) },
        allowedApiUrls: { bigquery: [fake.apiEndpoint, evilUrl] },
      });
      // The consented endpoint answers a token the API does not know: the key was sent where the operator said.
      expect((await failure(createConnector(config(), consented).fetchArmAggregates(window))).code).toBe("auth_failed");
      expect(stolen).toBe(1);
    } finally {
      evil.closeAllConnections();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });

  it("checks the key JSON, naming what is wrong and never echoing it", async () => {
    const origin = { field: "credentials_json_secret", name: "bigquery-key" };
    const key = JSON.parse(fake.serviceAccountKey()) as Record<string, unknown>;
    const cases: [string, string, RegExp][] = [
      [
        "not json at all",
        "invalid_config",
        /the key in credentials_json_secret: bigquery-key is not JSON; create a key/u,
      ],
      [
        "/var/run/secrets/bq.json",
        "invalid_config",
        /looks like a file path: name a variable holding the path with credentials_file_env/u,
      ],
      ["[1]", "invalid_config", /is not a JSON object/u],
      [
        JSON.stringify({ ...key, type: "authorized_user" }),
        "invalid_config",
        /is a "authorized_user" credential, not a service account key .*a user's gcloud login cannot be used/u,
      ],
      [JSON.stringify({ ...key, type: "external_account" }), "invalid_config", /not a service account key/u],
      [JSON.stringify({ ...key, client_email: "nobody" }), "invalid_config", /has no valid client_email/u],
      [
        JSON.stringify({ ...key, private_key: "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n" }),
        "invalid_config",
        /has no usable private_key/u,
      ],
      [JSON.stringify({ ...key, private_key: undefined }), "invalid_config", /has no usable private_key/u],
      [JSON.stringify({ ...key, token_uri: undefined }), "invalid_config", /has no token_uri/u],
      [
        JSON.stringify({ ...key, universe_domain: "example.com" }),
        "invalid_config",
        /belongs to the universe "example\.com"/u,
      ],
      [
        JSON.stringify({ ...key, token_uri: "ftp://oauth2.googleapis.com/token" }),
        "source_refused",
        /not Google's token endpoint/u,
      ],
    ];
    for (const [text, code, message] of cases) {
      const error = thrown(() => parseServiceAccountKey(text, origin, [fake.tokenUrl]));
      expect(error.code, text.slice(0, 40)).toBe(code);
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain("PRIVATE KEY");
      expect(JSON.stringify(error.details)).not.toContain("PRIVATE KEY");
    }
    // Through the connector: invalid_config at the first read, and nothing sent.
    const error = await failure(
      createConnector(config(), context({ credentials: { credentials_json: "{" } })).fetchArmAggregates(window),
    );
    expect(error.code).toBe("invalid_config");
    expect(fake.requests).toEqual([]);
  });

  it("reads the key from the file a variable names, again at each token request", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bq-key-"));
    const path = join(dir, "key.json");
    try {
      const fileConfig = config({
        credentials_json_secret: undefined,
        credentials_file_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE",
      });
      const missing = await failure(
        createConnector(fileConfig, context({ credentials: { credentials_file: path } })).fetchArmAggregates(window),
      );
      expect(missing.code).toBe("invalid_config");
      expect(missing.message).toContain(`credentials_file_env: the key file "${path}" cannot be read (ENOENT)`);
      writeFileSync(path, fake.serviceAccountKey());
      fake.answer = () => ({ columns: ["arm", "units", "sum", "sum_sq"], rows: [["control", 3, 1, 1]] });
      // Tokens that live a minute are asked for again at each request (google-auth-library refreshes five
      // minutes before expiry), and the file is read again each time: a rotated (here, broken) file is used.
      fake.tokenLifetimeSeconds = 60;
      const connector = createConnector(fileConfig, context({ credentials: { credentials_file: path } }));
      expect(await connector.fetchArmAggregates(window)).toHaveLength(1);
      expect(fake.requests.filter((r) => r.path === "/token").length).toBeGreaterThan(1);
      writeFileSync(path, "{ not a key");
      const broken = await failure(connector.fetchArmAggregates(window));
      expect(broken.code).toBe("invalid_config");
      expect(broken.message).toContain(
        `the key file "${path}" (credentials_file_env: OUTCOME_RUNTIME_SOURCE_BQ_KEY_FILE) is not JSON`,
      );
      writeFileSync(path, fake.serviceAccountKey());
      expect(await connector.fetchArmAggregates(window)).toHaveLength(1);
      expect(checkConnectorSettings(fileConfig, "proportion", offline())).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is auth_failed when the token endpoint refuses the key", async () => {
    const stranger = await startFakeBigQuery({
      projectId: "acme-analytics",
      clientEmail: "someone@else.iam.gserviceaccount.com",
    });
    try {
      // A key of another account, signed by another private key, sent to this fake's token endpoint.
      const key = stranger.serviceAccountKey({ token_uri: fake.tokenUrl });
      const error = await failure(
        createConnector(config(), context({ credentials: { credentials_json: key } })).fetchArmAggregates(window),
      );
      expect(error.code).toBe("auth_failed");
      expect(error.message).toContain(
        "bigquery: the token endpoint refused the service account key of someone@else.iam.gserviceaccount.com (invalid_grant: Invalid JWT Signature.)",
      );
      expect(realJobs()).toEqual([]);
    } finally {
      await stranger.close();
    }
  });

  it("signs a JWT bearer grant the token endpoint accepts, and hands it to the client as an OAuth2Client", async () => {
    const key = parseServiceAccountKey(fake.serviceAccountKey(), { field: "credentials_json_secret", name: "k" }, [
      fake.tokenUrl,
    ]);
    const token = await fetchAccessToken(key, fetch);
    expect(token.accessToken).toMatch(/^ya29\.fake-/u);
    expect(token.expiresAt).toBeGreaterThan(Date.now() + 3500_000);
    const grant = fake.requests.find((r) => r.path === "/token")?.body as Record<string, string>;
    expect(grant.grant_type).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    const [header, claims] = (grant.assertion ?? "")
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, "base64url").toString()));
    expect(header).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(claims).toMatchObject({
      iss: fake.clientEmail,
      aud: fake.tokenUrl,
      scope: "https://www.googleapis.com/auth/bigquery",
    });
    expect(claims.exp - claims.iat).toBe(3600);
    const client = tokenAuthClient(async () => token);
    expect((await client.getRequestHeaders()).get("authorization")).toBe(`Bearer ${token.accessToken}`);
  });
});

describe("bigquery connector: check, outbound guard, the fake", () => {
  it("check() dry-runs each query (a SELECT), creating no job", async () => {
    const connector = createConnector(
      config({ series_query: "SELECT ts, value FROM s WHERE ts > :from AND ts <= :to" }),
      context(),
    );
    await connector.check?.();
    expect(dryRuns()).toHaveLength(2);
    expect(fake.jobs.size).toBe(0);
    fake.answer = (query) => ({ statementType: query.sql.includes("FROM s") ? "CALL" : "SELECT" });
    const error = await failure(connector.check?.() ?? Promise.resolve());
    expect(error).toMatchObject({
      code: "read_only_violation",
      details: { field: "series_query", statementType: "CALL" },
    });
  });

  it("holds the endpoints to the outbound guard, and ignores BIGQUERY_EMULATOR_HOST", async () => {
    const metadata = "http://169.254.169.254";
    const guarded = createConnector(
      config({ api_endpoint: metadata }),
      context({ allowedApiUrls: { bigquery: [metadata, fake.tokenUrl] }, outboundPolicy: parseOutboundPolicy("") }),
    );
    const error = await failure(guarded.fetchArmAggregates(window));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toMatch(/not a public address; .*OUTBOUND_ALLOW/u);
    expect(fake.requests).toEqual([]);

    const previous = process.env.BIGQUERY_EMULATOR_HOST;
    process.env.BIGQUERY_EMULATOR_HOST = "http://127.0.0.1:9";
    try {
      fake.answer = () => ({ columns: ["arm", "units", "sum", "sum_sq"], rows: [["control", 1, 0, 0]] });
      expect(await createConnector(config(), context()).fetchArmAggregates(window)).toHaveLength(1);
    } finally {
      if (previous === undefined) delete process.env.BIGQUERY_EMULATOR_HOST;
      else process.env.BIGQUERY_EMULATOR_HOST = previous;
    }
  });

  it("runs at most max_concurrency jobs of a project at once", async () => {
    const own = await startFakeBigQuery({ projectId: "acme-concurrency" });
    try {
      let running = 0;
      let most = 0;
      own.override = (request) => {
        if (!request.path.includes("/queries/")) return null;
        running++;
        most = Math.max(most, running);
        setTimeout(() => running--, 100);
        return { delayMs: 100 };
      };
      own.answer = () => ({ columns: ["arm", "units", "sum", "sum_sq"], rows: [] });
      const connectors: SignalConnector[] = Array.from({ length: 3 }, () =>
        createConnector(
          config({ project_id: "acme-concurrency", api_endpoint: own.apiEndpoint, max_concurrency: 2 }),
          context({
            credentials: { credentials_json: own.serviceAccountKey() },
            allowedApiUrls: { bigquery: [own.apiEndpoint, own.tokenUrl] },
          }),
        ),
      );
      await Promise.all(connectors.flatMap((c) => [c.fetchArmAggregates(window), c.fetchArmAggregates(window)]));
      expect(most).toBe(2);
      // One token per connector, however many of its reads start together.
      expect(own.requests.filter((r) => r.path === "/token")).toHaveLength(3);
    } finally {
      await own.close();
    }
  });

  it("the fake answers the client's own query() (jobs.query, then getQueryResults) as BigQuery does", async () => {
    fake.answer = (query) => ({
      columns: ["n", "at"],
      rows: [[Number((query.params.xs as string[]).length), new Date("2026-03-01T00:00:00Z")]],
      polls: 2,
    });
    const key = parseServiceAccountKey(fake.serviceAccountKey(), { field: "f", name: "k" }, [fake.tokenUrl]);
    const client = new BigQuery({
      projectId: "acme-analytics",
      apiEndpoint: fake.apiEndpoint,
      authClient: tokenAuthClient(() => fetchAccessToken(key, fetch)),
    });
    const [rows] = await client.query({
      query: "SELECT ARRAY_LENGTH(@xs) AS n, CURRENT_TIMESTAMP() AS at",
      params: { xs: ["a", "b", "c"] },
      location: "EU",
    });
    expect(rows).toEqual([{ n: 3, at: expect.objectContaining({ value: "2026-03-01T00:00:00.000Z" }) }]);
    expect(fake.calls("POST", /\/queries$/u)).toHaveLength(1);
    expect(resultCalls().length).toBeGreaterThanOrEqual(1);
  });
});

/** A proxy in front of the fake that drops `totalRows` from getQueryResults answers. */
async function startStrippingProxy(target: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const answer = await fetch(`${target}${req.url ?? ""}`, {
        method: req.method ?? "GET",
        headers: Object.fromEntries(
          Object.entries(req.headers).filter((e): e is [string, string] => typeof e[1] === "string" && e[0] !== "host"),
        ),
        ...(chunks.length === 0 ? {} : { body: Buffer.concat(chunks) }),
      });
      const text = await answer.text();
      let body = text;
      if ((req.url ?? "").includes("/queries/")) {
        const parsed = JSON.parse(text) as Record<string, unknown>;
        delete parsed.totalRows;
        body = JSON.stringify(parsed);
      }
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
