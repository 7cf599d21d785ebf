/**
 * The `clickhouse` connector, through the official client
 * (@clickhouse/client), against the local stand-in of ClickHouse's HTTP
 * interface (packages/testing/src/fake-clickhouse.ts): what it sends (the
 * typed placeholders, their values, the read-only settings), how it reads the
 * answer, and each failure the server or what is in front of it can give.
 */
import { rejectionOf, waitFor } from "@outcome-runtime/testing";
import {
  clickHouseSyntaxError,
  type FakeClickHouse,
  type FakeClickHouseHandler,
  type FakeClickHouseQuery,
  type FakeClickHouseRequest,
  startClickHouseFake,
} from "@outcome-runtime/testing/fake-clickhouse";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorConfig, ExperimentWindow, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector } from "../create-connector";
import { connectorCredentials } from "../credentials";

const PASSWORD = "reader-password";
let fake: FakeClickHouse;
let url: string;
const open: SignalConnector[] = [];

const BATCHED = `SELECT experiment_key AS experiment, arm, uniqExact(user_id) AS units,
       sum(load_ms) AS sum, sum(load_ms * load_ms) AS sum_sq
FROM analytics.page_loads
WHERE has(:experiments, experiment_key) AND has(:arms, arm)
  AND loaded_at >= :from AND loaded_at <= :to
GROUP BY experiment, arm`;

const SINGLE = `SELECT arm, toDateTime64(toStartOfDay(loaded_at), 3, 'UTC') AS ts, count() AS units,
       sum(load_ms) AS sum, sum(load_ms * load_ms) AS sum_sq
FROM analytics.page_loads
WHERE experiment_key = :experiment AND loaded_at <= :to
GROUP BY arm, ts ORDER BY ts`;

const FROM = new Date("2024-05-01T00:00:00.000Z");
const TO = new Date("2024-05-08T12:30:00.250Z");
const WINDOW: ExperimentWindow = { experimentKey: "checkout-v2", arms: ["control", "treatment"], from: FROM, to: TO };

const AGGREGATE_COLUMNS = [
  { name: "arm", type: "String" },
  { name: "units", type: "UInt64" },
  { name: "sum", type: "Float64" },
  { name: "sum_sq", type: "Float64" },
];

const GRANT_COLUMNS = [
  { name: "access_type", type: "Enum16('SELECT' = 1)" },
  { name: "database", type: "Nullable(String)" },
  { name: "table", type: "Nullable(String)" },
  { name: "column", type: "Nullable(String)" },
  { name: "is_partial_revoke", type: "UInt8" },
  { name: "grant_option", type: "UInt8" },
  { name: "user_name", type: "Nullable(String)" },
  { name: "role_name", type: "Nullable(String)" },
];

/** Answers the connector's grants check with a read-only user's grants, every other query with `handler`. */
function respond(server: FakeClickHouse, handler: FakeClickHouseHandler): void {
  server.respondWith((query) =>
    query.sql.includes("system.grants")
      ? { columns: GRANT_COLUMNS, rows: [["SELECT", "analytics", null, null, 0, 0, "reader", null]] }
      : handler(query),
  );
}

/** The requests of signal queries (not of the grants check). */
function reads(server: FakeClickHouse = fake): FakeClickHouseRequest[] {
  return server.requests.filter((r) => !r.body.includes("system.grants"));
}

/** The connector's check(), which a SQL source always has. */
function checkOf(read: SignalConnector): Promise<void> {
  if (read.check === undefined) throw new Error("the clickhouse connector has no check()");
  return read.check();
}

function connector(settings: Partial<ConnectorConfig> = {}, credential = url): SignalConnector {
  const created = createConnector(
    { type: "clickhouse", query: SINGLE, url_secret: "analytics-clickhouse", database: "analytics", ...settings },
    { credentials: { url: credential }, metricKind: "mean" },
  );
  open.push(created);
  return created;
}

beforeAll(async () => {
  fake = await startClickHouseFake({ rowsPerChunk: 1 });
  url = `${fake.url.replace("http://", `http://reader:${PASSWORD}@`)}`;
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await fake.close();
});

beforeEach(() => {
  fake.requests.length = 0;
});

describe("clickhouse: reads", () => {
  it("reads the batched form with typed placeholders and its values as query parameters", async () => {
    let seen: FakeClickHouseQuery | undefined;
    respond(fake, (query) => {
      seen = query;
      return {
        columns: [{ name: "experiment", type: "String" }, ...AGGREGATE_COLUMNS],
        rows: [
          ["checkout-v2", "control", "1200", 2_400_000, 5.1e9],
          ["checkout-v2", "treatment", "1180", 2_300_000, 4.9e9],
          ["search-rank", "a", "800", 1_000_000, 1.4e9],
          ["search-rank", "b", "790", 990_000, 1.3e9],
        ],
      };
    });
    const read = connector({ query: BATCHED });
    expect(read.fetchBatchAggregates).toBeDefined();
    const result = await read.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-v2", arms: ["control", "treatment"], from: FROM },
        { experimentKey: "search-rank", arms: ["a", "b"], from: new Date("2024-04-20T00:00:00Z") },
      ],
      to: TO,
    });
    expect(seen?.sql).toContain(
      "WHERE has({experiments:Array(String)}, experiment_key) AND has({arms:Array(String)}, arm)",
    );
    expect(seen?.sql).toContain("loaded_at >= {from:DateTime64(3, 'UTC')} AND loaded_at <= {to:DateTime64(3, 'UTC')}");
    expect(seen?.parameters).toEqual({
      experiments: ["checkout-v2", "search-rank"],
      arms: ["control", "treatment", "a", "b"],
      from: new Date("2024-04-20T00:00:00Z"),
      to: TO,
    });
    expect(seen?.format).toBe("JSONCompactEachRowWithNamesAndTypes");
    expect(seen?.user).toBe("reader");
    expect(seen?.database).toBe("analytics");
    expect(result?.get("checkout-v2")).toEqual([
      { arm: "control", ts: null, units: 1200, sum: 2_400_000, sum_sq: 5.1e9 },
      { arm: "treatment", ts: null, units: 1180, sum: 2_300_000, sum_sq: 4.9e9 },
    ]);
    expect(result?.get("search-rank")).toHaveLength(2);
  });

  it("reads the one-experiment form, rows split across chunks, 64-bit integers as text and DateTime64 as UTC", async () => {
    let seen: FakeClickHouseQuery | undefined;
    respond(fake, (query) => {
      seen = query;
      const days = ["2024-05-06", "2024-05-07", "2024-05-08"];
      return {
        columns: [
          { name: "arm", type: "LowCardinality(String)" },
          { name: "ts", type: "DateTime64(3, 'UTC')" },
          { name: "units", type: "UInt64" },
          { name: "sum", type: "Decimal(38, 2)" },
          { name: "sum_sq", type: "Float64" },
        ],
        rows: days.flatMap((day, i) => [
          ["control", `${day} 00:00:00.000`, String(100 * (i + 1)), `${20_000 * (i + 1)}.50`, 5e6 * (i + 1)],
          ["treatment", new Date(`${day}T00:00:00Z`), BigInt(98 * (i + 1)), 19_000 * (i + 1), 4.8e6 * (i + 1)],
        ]),
      };
    });
    const rows = await connector().fetchArmAggregates(WINDOW);
    expect(seen?.sql).toContain(
      "WHERE experiment_key = {experiment:String} AND loaded_at <= {to:DateTime64(3, 'UTC')}",
    );
    expect(seen?.parameters).toEqual({ experiment: "checkout-v2", to: TO });
    expect(rows).toHaveLength(6);
    expect(rows[0]).toEqual({
      arm: "control",
      ts: new Date("2024-05-06T00:00:00Z"),
      units: 100,
      sum: 20_000.5,
      sum_sq: 5e6,
    });
    expect(rows[5]).toMatchObject({ arm: "treatment", ts: new Date("2024-05-08T00:00:00Z"), units: 294 });
    expect(reads()).toHaveLength(1);
  });

  it("sends the read-only settings and the limits on every query, as URL parameters", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [["control", "10", 5, 30]] }));
    const read = connector({ timeout: "45s", max_rows: 500 });
    await read.fetchArmAggregates(WINDOW);
    await read.fetchArmAggregates({ ...WINDOW, experimentKey: "other" });
    // The grants check, once before the first read, then the two reads: every one read-only and bounded.
    expect(fake.requests.map((r) => r.body.includes("system.grants"))).toEqual([true, false, false]);
    for (const request of fake.requests) {
      const check = request.body.includes("system.grants");
      expect(request.method).toBe("POST");
      expect(request.query?.settings).toMatchObject({
        readonly: "1",
        max_execution_time: "45",
        timeout_overflow_mode: "throw",
        max_result_rows: check ? "10001" : "501",
        result_overflow_mode: "throw",
        cancel_http_readonly_queries_on_client_close: "1",
      });
      expect(request.params.get("wait_end_of_query")).toBe("1");
      // Nothing in the query text itself changes a setting.
      expect(request.body).not.toMatch(/SETTINGS/u);
    }
  });

  it("waits for a slow query that ends within max_execution_time", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [["control", "10", 5, 30]], delayMs: 400 }));
    const rows = await connector({ timeout: "5s" }).fetchArmAggregates(WINDOW);
    expect(rows).toEqual([{ arm: "control", ts: null, units: 10, sum: 5, sum_sq: 30 }]);
  });
});

describe("clickhouse: failures", () => {
  it("retries a load balancer's 429 and ClickHouse's TOO_MANY_SIMULTANEOUS_QUERIES, then reads", async () => {
    let calls = 0;
    respond(fake, () => {
      calls++;
      if (calls === 1) return { httpStatus: 429, body: "Too Many Requests", retryAfterSeconds: 1 };
      if (calls === 2) {
        return { exception: { code: 202, message: "Too many simultaneous queries. Maximum: 100" } };
      }
      return { columns: AGGREGATE_COLUMNS, rows: [["control", "10", 5, 30]] };
    });
    const rows = await connector().fetchArmAggregates(WINDOW);
    expect(rows).toHaveLength(1);
    expect(reads().map((r) => r.status)).toEqual([429, 500, 200]);
  });

  it("gives up on a source that stays unavailable (503) after its retries", async () => {
    respond(fake, () => ({ httpStatus: 503, body: "" }));
    const error = await rejectionOf(connector({ retries: 1 }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("unavailable");
    expect(error.retryable).toBe(true);
    expect(reads()).toHaveLength(2);
  });

  it("reports refused credentials as auth_failed, without retrying and without the password", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [] }));
    const wrong = url.replace(PASSWORD, "not-the-password");
    const error = await rejectionOf(connector({}, wrong).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("auth_failed");
    expect(error.message).toContain("Authentication failed");
    expect(error.message).not.toContain("not-the-password");
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.exceptionCode).toBe(516);
    expect(fake.requests[0]?.status).toBe(403);
  });

  it("takes a syntax error's position back to the line and column of the query as written", async () => {
    // Leading blank lines and placeholders longer than :experiment and :to before the mistake.
    const query = `
  SELECT arm, count() AS units, sum(load_ms) AS sum, sum(load_ms * load_ms) AS sum_sq
  FROM analytics.page_loads
  WHERE experiment_key = :experiment AND loaded_at <= :to
  GROUP BY arm ORDR BY arm`;
    respond(fake, (q) => clickHouseSyntaxError(q.sql, "ORDR"));
    const error = await rejectionOf(connector({ query }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("query_failed");
    expect(error.details).toMatchObject({ line: 5, column: 16, clickhouseCode: 62 });
    expect(error.message).toContain("(line 5, column 16)");
    expect(error.message).toContain("Syntax error: failed at line 5, column 16 ('ORDR')");
  });

  it("points a syntax error inside a placeholder at the parameter", async () => {
    const query = "SELECT arm, count() AS units, 0 AS sum, 0 AS sum_sq FROM t WHERE k = :experiment AND ts <= :to";
    respond(fake, (q) => clickHouseSyntaxError(q.sql, "String}"));
    const error = await rejectionOf(connector({ query }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.details).toMatchObject({ line: 1, column: query.indexOf(":experiment") + 1 });
  });

  it("reports an unknown table as query_failed with ClickHouse's own message", async () => {
    respond(fake, () => ({
      exception: { code: 60, message: "Table analytics.page_loads does not exist" },
    }));
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("Table analytics.page_loads does not exist");
    expect(reads()[0]?.status).toBe(404);
  });

  it("refuses a result over the row cap: the server's max_result_rows, and the client's own count", async () => {
    const rows = (n: number) => Array.from({ length: n }, (_, i) => [`arm-${i}`, "1", 1, 1]);
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: rows(50) }));
    const server = await rejectionOf(connector({ max_rows: 3 }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(server.code).toBe("too_many_rows");
    expect(reads()[0]?.exceptionCode).toBe(396);
    // Exactly max_rows + 1 rows pass the server's limit; the connector stops at the extra one.
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: rows(4) }));
    const client = await rejectionOf(connector({ max_rows: 3 }).fetchArmAggregates(WINDOW), ConnectorError);
    expect(client.code).toBe("too_many_rows");
    expect(client.message).toContain("more than 3 rows");
  });

  it("times out on the server (max_execution_time) and reports timeout", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [], delayMs: 10_000 }));
    const error = await rejectionOf(
      connector({ timeout: "1s", retries: 0 }).fetchArmAggregates(WINDOW),
      ConnectorError,
    );
    expect(error.code).toBe("timeout");
    expect(reads()[0]?.query?.settings.max_execution_time).toBe("1");
    expect(reads()[0]?.exceptionCode).toBe(159);
  });

  it("aborts on the caller's signal, and the server cancels the read-only query", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [], delayMs: 10_000 }));
    const controller = new AbortController();
    const pending = connector().fetchArmAggregates(WINDOW, controller.signal);
    await waitFor("the query to reach the server", () => reads().length === 1, { timeoutMs: 2000 });
    controller.abort();
    const error = await rejectionOf(pending, ConnectorError);
    expect(error.code).toBe("timeout");
    expect(error.details).toMatchObject({ aborted: true });
    await waitFor("the server to cancel the query", () => reads()[0]?.ended === "cancelled", { timeoutMs: 2000 });
  });

  it("refuses a DateTime column outside UTC instead of misreading it", async () => {
    respond(fake, () => ({
      columns: [
        AGGREGATE_COLUMNS[0],
        { name: "ts", type: "DateTime('Europe/Berlin')" },
        ...AGGREGATE_COLUMNS.slice(1),
      ] as {
        name: string;
        type: string;
      }[],
      rows: [["control", "2024-05-06 02:00:00", "10", 5, 30]],
    }));
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("toTimeZone(ts, 'UTC')");
  });
});

describe("clickhouse: a user whose profile is readonly = 1", () => {
  let strict: FakeClickHouse;
  let loose: FakeClickHouse;
  beforeAll(async () => {
    const settings = {
      readonly: "1",
      timeout_overflow_mode: "throw",
      result_overflow_mode: "throw",
      cancel_http_readonly_queries_on_client_close: "1",
    };
    strict = await startClickHouseFake({
      profile: { settings, changeableInReadonly: ["max_execution_time", "max_result_rows"] },
    });
    loose = await startClickHouseFake({ profile: { settings: { readonly: "1" } } });
    for (const f of [strict, loose]) {
      respond(f, () => ({ columns: AGGREGATE_COLUMNS, rows: [["control", "10", 5, 30]] }));
    }
  });
  afterAll(async () => {
    await strict.close();
    await loose.close();
  });

  it("reads with the documented profile (the limits CHANGEABLE_IN_READONLY)", async () => {
    const rows = await connector({}, strict.url.replace("http://", `http://reader:${PASSWORD}@`)).fetchArmAggregates(
      WINDOW,
    );
    expect(rows).toHaveLength(1);
  });

  it("says what to change when the profile does not let the connector set its limits", async () => {
    const read = connector({}, loose.url.replace("http://", `http://reader:${PASSWORD}@`));
    const error = await rejectionOf(read.fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("read_only_violation");
    expect(error.message).toContain("CHANGEABLE_IN_READONLY");
    expect(loose.requests.at(-1)?.exceptionCode).toBe(164);
  });

  it("refuses a query that writes (readonly=1 on the server) as read_only_violation", async () => {
    // The static checks refuse writes first; this is the server's wall behind them.
    respond(strict, () => ({ exception: { code: 164, message: "Cannot execute query in readonly mode" } }));
    const read = connector({}, strict.url.replace("http://", `http://reader:${PASSWORD}@`));
    const error = await rejectionOf(read.fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("read_only_violation");
    expect(error.message).toContain("only reads");
  });
});

describe("clickhouse: check()", () => {
  it("passes a user granted only SELECT and SHOW, reading system.grants with its roles", async () => {
    let seen: FakeClickHouseQuery | undefined;
    fake.respondWith((query) => {
      seen = query;
      return {
        columns: GRANT_COLUMNS,
        rows: [
          ["SELECT", "analytics", null, null, 0, 0, "reader", null],
          ["SHOW TABLES", "analytics", null, null, 0, 0, "reader", null],
          ["INSERT", "analytics", "secret", null, 1, 0, "reader", null],
        ],
      };
    });
    await checkOf(connector());
    expect(seen?.sql).toContain("FROM system.grants");
    expect(seen?.sql).toContain("has(enabledRoles(), role_name)");
    expect(seen?.settings.readonly).toBe("1");
  });

  it("checks the grants before the first read, and runs no query for a user that may write", async () => {
    fake.respondWith((query) =>
      query.sql.includes("system.grants")
        ? { columns: GRANT_COLUMNS, rows: [["ALTER UPDATE", "analytics", "page_loads", null, 0, 0, "reader", null]] }
        : { columns: AGGREGATE_COLUMNS, rows: [] },
    );
    const error = await rejectionOf(connector().fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("source_refused");
    expect(error.details.grants).toEqual(["ALTER UPDATE ON analytics.page_loads"]);
    expect(fake.requests).toHaveLength(1);
    expect(reads()).toHaveLength(0);
  });

  it("checks once for reads running together, and not again within 10 minutes", async () => {
    respond(fake, () => ({ columns: AGGREGATE_COLUMNS, rows: [["control", "10", 5, 30]] }));
    const read = connector();
    await Promise.all([read.fetchArmAggregates(WINDOW), read.fetchArmAggregates(WINDOW)]);
    await read.fetchArmAggregates(WINDOW);
    expect(fake.requests.length - reads().length).toBe(1);
    expect(reads()).toHaveLength(3);
  });

  it("refuses a user that may write, directly or through a role, or pass a grant on", async () => {
    fake.respondWith(() => ({
      columns: GRANT_COLUMNS,
      rows: [
        ["SELECT", "analytics", null, null, 0, 1, "reader", null],
        ["INSERT", "analytics", "events", null, 0, 0, "reader", null],
        ["ALL", null, null, null, 0, 0, null, "etl"],
      ],
    }));
    const error = await rejectionOf(checkOf(connector()), ConnectorError);
    expect(error.code).toBe("source_refused");
    expect(error.details.grants).toEqual([
      "SELECT ON analytics.* WITH GRANT OPTION",
      "INSERT ON analytics.events",
      "ALL ON *.* (role etl)",
    ]);
    expect(error.message).toContain("url_secret: analytics-clickhouse");
    expect(error.message).toContain("docs/connectors.md#a-read-only-clickhouse-user");
  });
});

describe("clickhouse: settings", () => {
  const base = { type: "clickhouse", query: SINGLE, url_secret: "analytics-clickhouse" };

  it("takes the URL only as a credential reference, never from outcome.yaml", () => {
    const inline = checkConnectorSettings({ ...base, url: "https://reader:pw@evil.example:8443" }, "mean");
    expect(inline).toMatchObject({ code: "invalid_connector", field: "url" });
    expect(inline?.problem).toContain('unknown field "url"');
    const missing = checkConnectorSettings({ type: "clickhouse", query: SINGLE }, "mean");
    expect(missing).toMatchObject({ field: "url_secret" });
    expect(missing?.fix).toContain("url_env: OUTCOME_RUNTIME_SOURCE_");
    const notSource = checkConnectorSettings({ type: "clickhouse", query: SINGLE, url_env: "DATABASE_URL" }, "mean");
    expect(notSource).toMatchObject({ field: "url_env" });
    expect(notSource?.problem).toContain("only names starting with OUTCOME_RUNTIME_SOURCE_");
    expect(
      connectorCredentials({ type: "clickhouse", query: SINGLE, url_env: "OUTCOME_RUNTIME_SOURCE_CH_URL" }),
    ).toEqual([{ credential: "url", field: "url_env", ref: { via: "env", name: "OUTCOME_RUNTIME_SOURCE_CH_URL" } }]);
  });

  it("checks database, and the query's ClickHouse clauses with their line and column", () => {
    expect(checkConnectorSettings({ ...base, database: "analytics; DROP" }, "mean")).toMatchObject({
      field: "database",
      problem: '"analytics; DROP" is not a database name',
    });
    const format = checkConnectorSettings({ ...base, query: `${SINGLE}\nFORMAT CSV` }, "mean");
    expect(format).toMatchObject({ code: "sql_refused", field: "query", offset: SINGLE.length + 1 });
    expect(format?.problem).toContain("FORMAT clause");
    const settings = checkConnectorSettings(
      { ...base, query: `${SINGLE}\nSETTINGS max_execution_time = 3600` },
      "mean",
    );
    expect(settings).toMatchObject({ code: "sql_refused", field: "query" });
    expect(settings?.fix).toContain("sends the query's limits itself");
    // format() the function, a column named settings, and the words inside strings are fine.
    const fine = SINGLE.replace("count() AS units", "count() AS units, format('{}', arm) AS f, 'FORMAT CSV' AS s");
    expect(checkConnectorSettings({ ...base, query: fine }, "mean")).toBeNull();
    const write = checkConnectorSettings({ ...base, query: `${SINGLE};\nDROP TABLE analytics.page_loads` }, "mean");
    expect(write).toMatchObject({ code: "sql_refused", field: "query" });
  });

  it("refuses a URL credential without a user, or with a path, naming the setting but not the URL", async () => {
    const noUser = connector({}, fake.url);
    const error = await rejectionOf(noUser.fetchArmAggregates(WINDOW), ConnectorError);
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("url_secret: analytics-clickhouse: the URL names no user");
    const withPath = connector({}, `${url}/analytics?ch_readonly=0`);
    const path = await rejectionOf(withPath.fetchArmAggregates(WINDOW), ConnectorError);
    expect(path.message).toContain("has a path, query or fragment");
    expect(path.message).not.toContain(PASSWORD);
    expect(fake.requests).toHaveLength(0);
  });

  it("describes itself by host and database, never with the password", () => {
    const text = connector({ query: BATCHED }).describe();
    expect(text).toContain(`clickhouse ${new URL(fake.url).host}/analytics`);
    expect(text).toContain("batched");
    expect(text).not.toContain(PASSWORD);
  });
});
