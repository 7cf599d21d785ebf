/**
 * The `snowflake` connector against `@outcome-runtime/testing/fake-snowflake`,
 * a local server that follows Snowflake's SQL API v2 description
 * (snowflakedb/snowflake-rest-api-specs `specifications/sqlapi.yaml`, and the
 * SQL API guide): key-pair JWT checked against the user's public key,
 * statements submitted, polled (202) and fetched by partition, 408/422/429/401
 * answers in Snowflake's shapes, cancel.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { rejectionOf } from "@outcome-runtime/testing";
import {
  type SnowflakeFake,
  type SnowflakeFakeQuery,
  type SnowflakeFakeRequest,
  startSnowflakeFake,
} from "@outcome-runtime/testing/fake-snowflake";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectorContext, ExperimentWindow } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector } from "../create-connector";
import { connectorCredentials, credentialFields } from "../credentials";
import { SQL_COMMON_FIELDS, SQL_QUERY_PARAMETERS, SQL_SERIES_PARAMETERS } from "../sql/sql-source";
import { SNOWFLAKE_SOURCE } from "./snowflake.source";

let fake: SnowflakeFake;

beforeAll(async () => {
  fake = await startSnowflakeFake({ account: "MYORG-MYACCOUNT", user: "OUTCOME_READER" });
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.cancelled.length = 0;
  fake.setGrants("OUTCOME_READER", [
    { privilege: "USAGE", granted_on: "WAREHOUSE", name: "ANALYTICS_WH" },
    { privilege: "USAGE", granted_on: "DATABASE", name: "ANALYTICS" },
    { privilege: "USAGE", granted_on: "SCHEMA", name: "ANALYTICS.PUBLIC" },
    { privilege: "SELECT", granted_on: "TABLE", name: "ANALYTICS.PUBLIC.EXPOSURES" },
  ]);
});

const BATCHED = `SELECT e.experiment_key AS experiment,
       e.arm,
       COUNT(DISTINCT e.user_id) AS units,
       COUNT(DISTINCT o.user_id) AS sum,
       COUNT(DISTINCT o.user_id) AS sum_sq
  FROM exposures e
  LEFT JOIN orders o ON o.user_id = e.user_id AND o.created_at BETWEEN e.exposed_at AND :to
 WHERE e.experiment_key IN (:experiments) AND e.arm IN (:arms)
   AND e.exposed_at <= :to
 GROUP BY 1, 2`;

const SINGLE = `SELECT arm, COUNT(*) AS units, SUM(revenue) AS sum, SUM(revenue * revenue) AS sum_sq, MAX(:to) AS ts
  FROM user_revenue
 WHERE experiment_key = :experiment AND arm IN (:arms) AND exposed_at > :from AND exposed_at <= :to
 GROUP BY arm`;

const config = (extra: Record<string, unknown> = {}): Record<string, unknown> & { type: string } => ({
  type: "snowflake",
  account: "myorg-myaccount",
  user: "outcome_reader",
  warehouse: "ANALYTICS_WH",
  role: "OUTCOME_READER",
  database: "ANALYTICS",
  schema: "PUBLIC",
  private_key_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY",
  api_url: fake.url,
  query: BATCHED,
  ...extra,
});

/** The fake stands in for the account: the operator's SOURCE_API_URLS allows it, OUTBOUND_ALLOW lets loopback through. */
const context = (extra: Partial<ConnectorContext> = {}): ConnectorContext => ({
  credentials: { private_key: fake.privateKey },
  metricKind: "proportion",
  allowedApiUrls: { snowflake: [fake.url] },
  outboundPolicy: parseOutboundPolicy("127.0.0.1"),
  ...extra,
});

const to = new Date("2026-03-07T18:30:00Z");
const from = new Date("2026-03-01T10:00:00Z");
const window: ExperimentWindow = { experimentKey: "checkout-v2", arms: ["control", "treatment"], from, to };

const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

/** The statements submitted (POST /api/v2/statements), with their bodies. */
const submitted = (): (SnowflakeFakeRequest & { body: Record<string, unknown> })[] =>
  fake.requests.filter((r) => r.method === "POST" && r.path === "/api/v2/statements") as (SnowflakeFakeRequest & {
    body: Record<string, unknown>;
  })[];
const signalStatements = () => submitted().filter((r) => !String(r.body.statement).startsWith("SHOW GRANTS"));

const proportionColumns = [
  { name: "EXPERIMENT", type: "TEXT" },
  { name: "ARM", type: "TEXT" },
  { name: "UNITS", type: "FIXED" },
  { name: "SUM", type: "FIXED" },
  { name: "SUM_SQ", type: "FIXED" },
];

describe("snowflake connector: the batched form", () => {
  it("binds :experiments and :arms as positional lists, sends the context and session parameters, and splits the rows", async () => {
    let asked: SnowflakeFakeQuery | undefined;
    fake.respondWith((query) => {
      asked = query;
      return {
        columns: proportionColumns,
        rows: [
          ["checkout-v2", "control", 5120, 410, 410],
          ["checkout-v2", "treatment", 5087, 468, 468],
          ["pricing-page", "control", 900, 81, 81],
          ["pricing-page", "variant", 880, 97, 97],
        ],
      };
    });
    const connector = createConnector(config(), context());
    expect(connector.fetchBatchAggregates).toBeDefined();
    const result = await connector.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "checkout-v2", arms: ["control", "treatment"], from },
        { experimentKey: "pricing-page", arms: ["control", "variant"], from },
      ],
      to,
    });
    expect(result?.get("checkout-v2")).toEqual([
      { arm: "control", units: 5120, sum: 410, sum_sq: 410, ts: null },
      { arm: "treatment", units: 5087, sum: 468, sum_sq: 468, ts: null },
    ]);
    expect(result?.get("pricing-page")).toEqual([
      { arm: "control", units: 900, sum: 81, sum_sq: 81, ts: null },
      { arm: "variant", units: 880, sum: 97, sum_sq: 97, ts: null },
    ]);

    expect(asked?.sql).toContain("e.experiment_key IN (?, ?) AND e.arm IN (?, ?, ?)");
    expect(asked?.sql).toContain(`e.exposed_at <= TO_TIMESTAMP_TZ(?, 'YYYY-MM-DD"T"HH24:MI:SS.FF3TZH:TZM')`);
    expect(asked?.sql).not.toContain(":experiments");
    expect(asked?.parameters).toEqual([
      "2026-03-07T18:30:00.000+00:00",
      "checkout-v2",
      "pricing-page",
      "control",
      "treatment",
      "variant",
      "2026-03-07T18:30:00.000+00:00",
    ]);
    const [statement] = signalStatements();
    expect(statement?.query.get("async")).toBe("true");
    expect(statement?.query.get("nullable")).toBe("true");
    expect(statement?.body).toMatchObject({
      timeout: 30,
      warehouse: "ANALYTICS_WH",
      role: "OUTCOME_READER",
      database: "ANALYTICS",
      schema: "PUBLIC",
      parameters: {
        QUERY_TAG: "outcome-runtime",
        MULTI_STATEMENT_COUNT: "1",
        TIMEZONE: "UTC",
        ROWS_PER_RESULTSET: "10001",
      },
    });
    expect(Object.values(statement?.body.bindings as Record<string, { type: string }>).map((b) => b.type)).toEqual(
      Array(7).fill("TEXT"),
    );
  });

  it("signs a key-pair JWT with the documented claims on every request", async () => {
    fake.respondWith(() => ({ columns: proportionColumns, rows: [] }));
    await createConnector(config(), context()).fetchArmAggregates(window);
    expect(fake.requests.length).toBeGreaterThan(0);
    for (const request of fake.requests) {
      expect(request.headers["x-snowflake-authorization-token-type"]).toBe("KEYPAIR_JWT");
      const claims = decodeJwt(String(request.headers.authorization).replace(/^Bearer /u, ""));
      expect(claims.sub).toBe("MYORG-MYACCOUNT.OUTCOME_READER");
      expect(claims.iss).toMatch(/^MYORG-MYACCOUNT\.OUTCOME_READER\.SHA256:[A-Za-z0-9+/]{43}=$/u);
      expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBeLessThanOrEqual(3600);
    }
  });

  it("sends the read-only settings with every statement, the role check's too, and maps Snowflake's statement-count refusal", async () => {
    fake.respondWith(() => ({
      fail: "statement",
      code: "000008",
      sqlState: "0A000",
      message: "Actual statement count 2 did not match the desired statement count 1.",
    }));
    const error = await failure(createConnector(config(), context()).fetchArmAggregates(window));
    expect(error.code).toBe("read_only_violation");
    expect(error.message).toContain("Actual statement count 2");
    expect(submitted().length).toBeGreaterThanOrEqual(2);
    for (const request of submitted()) {
      expect(request.body.parameters).toMatchObject({ MULTI_STATEMENT_COUNT: "1", TIMEZONE: "UTC" });
      expect(request.body.role).toBe("OUTCOME_READER");
    }
  });
});

describe("snowflake connector: the one-experiment form and types", () => {
  it("reads a mean with REAL sums and a TIMESTAMP_LTZ ts", async () => {
    let asked: SnowflakeFakeQuery | undefined;
    fake.respondWith((query) => {
      asked = query;
      return {
        columns: [
          { name: "ARM", type: "TEXT" },
          { name: "UNITS", type: "FIXED" },
          { name: "SUM", type: "REAL" },
          { name: "SUM_SQ", type: "REAL" },
          { name: "TS", type: "TIMESTAMP_LTZ", scale: 9 },
        ],
        rows: [
          ["control", 1200, 58_320.5, 4_101_337.25, to],
          ["treatment", 1188, 60_101.75, 4_390_002.5, to],
        ],
      };
    });
    const connector = createConnector(config({ query: SINGLE }), context({ metricKind: "mean" }));
    expect(connector.fetchBatchAggregates).toBeUndefined();
    const rows = await connector.fetchArmAggregates(window);
    expect(rows).toEqual([
      { arm: "control", units: 1200, sum: 58_320.5, sum_sq: 4_101_337.25, ts: to },
      { arm: "treatment", units: 1188, sum: 60_101.75, sum_sq: 4_390_002.5, ts: to },
    ]);
    expect(asked?.parameters).toEqual([
      "2026-03-07T18:30:00.000+00:00",
      "checkout-v2",
      "control",
      "treatment",
      "2026-03-01T10:00:00.000+00:00",
      "2026-03-07T18:30:00.000+00:00",
    ]);
  });

  it("reads a result spread over partitions, fetching each one by handle", async () => {
    const days = [2, 3, 4, 5, 6].map((d) => new Date(`2026-03-0${d}T00:00:00Z`));
    fake.respondWith(() => ({
      columns: [
        { name: "TS", type: "TIMESTAMP_NTZ", scale: 9 },
        { name: "VALUE", type: "FIXED", scale: 4 },
      ],
      rows: days.map((day, i) => [day, 0.1 + i / 100]),
      partitionRows: 2,
    }));
    const connector = createConnector(
      config({ series_query: "SELECT day AS ts, rate AS value FROM daily_rate WHERE day > :from AND day <= :to" }),
      context(),
    );
    const points = await connector.fetchOutcomeSeries({ from, to });
    expect(points).toEqual(days.map((ts, i) => ({ ts, value: Number((0.1 + i / 100).toFixed(4)) })));
    const partitions = fake.requests
      .filter((r) => r.method === "GET" && r.query.has("partition"))
      .map((r) => r.query.get("partition"));
    expect(partitions).toEqual(["1", "2"]);
  });

  it("polls a slow statement until it is done", async () => {
    fake.respondWith(() => ({
      columns: proportionColumns,
      rows: [["checkout-v2", "control", 10, 1, 1]],
      delayMs: 600,
    }));
    const rows = await createConnector(config(), context()).fetchArmAggregates(window);
    expect(rows).toEqual([{ arm: "control", units: 10, sum: 1, sum_sq: 1, ts: null }]);
    const [statement] = signalStatements();
    expect(statement).toBeDefined();
    const polls = fake.requests.filter((r) => r.method === "GET" && !r.query.has("partition"));
    // The polls of the signal statement (after the role check's one): 202s, then the 200.
    expect(polls.length).toBeGreaterThanOrEqual(4);
  });
});

describe("snowflake connector: failures", () => {
  it("retries a throttled statement (429, Retry-After) and succeeds", async () => {
    let calls = 0;
    fake.respondWith(() => {
      calls++;
      return calls === 1
        ? { fail: "throttled", retryAfterSeconds: 1 }
        : { columns: proportionColumns, rows: [["checkout-v2", "control", 10, 1, 1]] };
    });
    const started = Date.now();
    const rows = await createConnector(config(), context()).fetchArmAggregates(window);
    expect(rows).toHaveLength(1);
    expect(calls).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("says rate_limited, with the wait Snowflake asked for, when no retry is left", async () => {
    fake.respondWith(() => ({ fail: "throttled", retryAfterSeconds: 7 }));
    const error = await failure(createConnector(config({ retries: 0 }), context()).fetchArmAggregates(window));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(7000);
  });

  it("is auth_failed when the key is not the user's", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    fake.respondWith(() => ({ columns: proportionColumns, rows: [] }));
    const error = await failure(
      createConnector(config(), context({ credentials: { private_key: other } })).fetchArmAggregates(window),
    );
    expect(error.code).toBe("auth_failed");
    expect(error.message).toContain("RSA_PUBLIC_KEY");
    expect(error.message).not.toContain("PRIVATE KEY");
  });

  it("reports a syntax error's position as the line and column of the query as written", async () => {
    const query = `SELECT experiment_key AS experiment, arm, COUNT(*) AS units, 0 AS sum, 0 AS sum_sq
  FROM exposures
 WHERE experiment_key IN (:experiments) AND arm IN (:arms) AND exposed_at <= :to GROUP BYE 1, 2`;
    fake.respondWith(({ sql }) => {
      // As Snowflake does: the line (1-based) and position (0-based) in the statement it received.
      const lines = sql.split("\n");
      const line = lines.findIndex((l) => l.includes("BYE"));
      return { fail: "syntax", line: line + 1, position: lines[line]?.indexOf("BYE") ?? 0, near: "BYE" };
    });
    const error = await failure(createConnector(config({ query }), context()).fetchArmAggregates(window));
    expect(error.code).toBe("query_failed");
    const written = query.split("\n")[2] ?? "";
    expect(error.details).toMatchObject({ line: 3, column: written.indexOf("BYE") + 1, snowflakeCode: "001003" });
    expect(error.message).toContain("syntax error line 3 at position");
    expect(error.message).toContain(`(line 3, column ${written.indexOf("BYE") + 1})`);
  });

  it("refuses a result over the row cap from numRows, without fetching another partition", async () => {
    fake.respondWith(() => ({
      columns: proportionColumns,
      rows: Array.from({ length: 40 }, (_, i) => ["checkout-v2", `arm-${i}`, 10, 1, 1]),
      partitionRows: 2,
    }));
    const error = await failure(createConnector(config({ max_rows: 3 }), context()).fetchArmAggregates(window));
    expect(error.code).toBe("too_many_rows");
    expect(error.details).toMatchObject({ maxRows: 3, numRows: 4 });
    expect(signalStatements()[0]?.body.parameters).toMatchObject({ ROWS_PER_RESULTSET: "4" });
    expect(fake.requests.some((r) => r.query.has("partition"))).toBe(false);
  });

  it("sends the statement timeout and maps Snowflake's 408 to timeout", async () => {
    fake.respondWith(() => ({ columns: proportionColumns, rows: [], delayMs: 10_000 }));
    const error = await failure(createConnector(config({ timeout: "1s" }), context()).fetchArmAggregates(window));
    expect(error.code).toBe("timeout");
    expect(error.details).toMatchObject({ snowflakeCode: "000630", timeoutSeconds: 1 });
    expect(signalStatements()[0]?.body.timeout).toBe(1);
  });

  it("cancels the statement on Snowflake when the caller aborts", async () => {
    fake.respondWith(() => ({ columns: proportionColumns, rows: [], delayMs: 10_000 }));
    const controller = new AbortController();
    const read = createConnector(config(), context()).fetchArmAggregates(window, controller.signal);
    setTimeout(() => controller.abort(), 400);
    const error = await failure(read);
    expect(error.code).toBe("timeout");
    expect(fake.cancelled).toHaveLength(1);
    const handle = fake.cancelled[0];
    expect(fake.requests.some((r) => r.method === "POST" && r.path === `/api/v2/statements/${handle}/cancel`)).toBe(
      true,
    );
  });

  it("gives up on a statement whose polls keep failing (503), and cancels it", async () => {
    fake.respondWith(() => ({ columns: proportionColumns, rows: [], delayMs: 10_000 }));
    let failPolls = false;
    // Snowflake's side failing: the polls of the statement answer 503 (the cancel still gets through).
    const flaky: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      if (failPolls && (init?.method ?? "GET") === "GET" && /^\/api\/v2\/statements\/[^/]+$/u.test(url.pathname)) {
        return new Response(JSON.stringify({ message: "Service Unavailable" }), { status: 503 });
      }
      return fetch(input, init);
    };
    const connector = createConnector(config({ retries: 0 }), context({ fetch: flaky }));
    await connector.check?.();
    failPolls = true;
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("unavailable");
    expect(fake.cancelled).toHaveLength(1);
  });

  it("is unavailable when Snowflake answers 503 and no retry is left", async () => {
    fake.respondWith(() => ({ fail: "unavailable" }));
    const error = await failure(createConnector(config({ retries: 0 }), context()).fetchArmAggregates(window));
    expect(error.code).toBe("unavailable");
  });
});

describe("snowflake connector: the role", () => {
  it("checks the role with SHOW GRANTS before the first read, once", async () => {
    fake.respondWith(() => ({ columns: proportionColumns, rows: [] }));
    const connector = createConnector(config(), context());
    await connector.check?.();
    await connector.fetchArmAggregates(window);
    await connector.fetchArmAggregates(window);
    const statements = submitted().map((r) => r.body.statement);
    expect(statements.filter((s) => s === 'SHOW GRANTS TO ROLE "OUTCOME_READER"')).toHaveLength(1);
    expect(statements).toHaveLength(3);
  });

  it("refuses a role that may write, naming the privilege", async () => {
    fake.setGrants("OUTCOME_READER", [
      { privilege: "USAGE", granted_on: "WAREHOUSE", name: "ANALYTICS_WH" },
      { privilege: "INSERT", granted_on: "TABLE", name: "ANALYTICS.PUBLIC.EXPOSURES" },
      { privilege: "CREATE TABLE", granted_on: "SCHEMA", name: "ANALYTICS.PUBLIC" },
    ]);
    fake.respondWith(() => ({ columns: proportionColumns, rows: [] }));
    const connector = createConnector(config(), context());
    const error = await failure(connector.check?.() ?? Promise.resolve());
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("INSERT ON TABLE ANALYTICS.PUBLIC.EXPOSURES");
    expect(error.message).toContain("CREATE TABLE ON SCHEMA ANALYTICS.PUBLIC");
    // The first read checks too, and runs nothing else.
    expect((await failure(connector.fetchArmAggregates(window))).code).toBe("source_refused");
    expect(signalStatements()).toHaveLength(0);
  });

  it("follows granted roles: an inherited OWNERSHIP or an administrative role is refused", async () => {
    fake.setGrants("OUTCOME_READER", [{ privilege: "USAGE", granted_on: "ROLE", name: "ANALYST" }]);
    fake.setGrants("ANALYST", [{ privilege: "OWNERSHIP", granted_on: "TABLE", name: "ANALYTICS.PUBLIC.ORDERS" }]);
    const inherited = await failure(createConnector(config(), context()).check?.() ?? Promise.resolve());
    expect(inherited.code).toBe("source_refused");
    expect(inherited.message).toContain("OWNERSHIP ON TABLE ANALYTICS.PUBLIC.ORDERS (through role ANALYST)");

    fake.setGrants("ANALYST", [{ privilege: "USAGE", granted_on: "ROLE", name: "SYSADMIN" }]);
    const admin = await failure(createConnector(config(), context()).check?.() ?? Promise.resolve());
    expect(admin.code).toBe("source_refused");
    expect(admin.message).toContain('is granted "SYSADMIN"');
  });

  it("refuses an administrative role in the settings, before any request", () => {
    const error = (() => {
      try {
        createConnector(config({ role: "ACCOUNTADMIN" }), context());
      } catch (e) {
        return e as ConnectorError;
      }
      throw new Error("expected a refusal");
    })();
    expect(error.code).toBe("source_refused");
    expect(error.details).toMatchObject({ field: "role", value: "ACCOUNTADMIN" });
    expect(fake.requests).toHaveLength(0);
  });
});

/** The ConnectorError `createConnector` throws for `settings`. */
function refusal(
  settings: Record<string, unknown> & { type: string },
  ctx: ConnectorContext = context(),
): ConnectorError {
  try {
    createConnector(settings, ctx);
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected createConnector to refuse the settings");
}

describe("snowflake connector: settings", () => {
  it("talks to the account's own host unless the operator allows another api_url", () => {
    const own = createConnector(config({ api_url: undefined }), context());
    expect(own.describe?.()).toContain("myorg-myaccount.snowflakecomputing.com ANALYTICS.PUBLIC as OUTCOME_READER");
    const refused = refusal(config({ api_url: "https://attacker.example" }));
    expect(refused.code).toBe("source_refused");
    expect(refused.message).toContain("SOURCE_API_URLS=snowflake=https://attacker.example");
    const notAllowed = refusal(config(), context({ allowedApiUrls: {} }));
    expect(notAllowed.code).toBe("source_refused");
  });

  it("takes the key only through a source variable or a workspace secret", () => {
    const pasted = refusal(config({ private_key_env: undefined, private_key: fake.privateKey }));
    expect(pasted.code).toBe("invalid_config");
    expect(pasted.details.field).toBe("private_key");
    const other = refusal(config({ private_key_env: "HOME" }));
    expect(other.code).toBe("invalid_config");
    expect(other.details.field).toBe("private_key_env");
    expect(connectorCredentials(config()).map((c) => c.credential)).toEqual(["private_key"]);
    expect(
      connectorCredentials(config({ private_key_passphrase_secret: "snowflake-key-passphrase" })).map(
        (c) => [c.credential, c.ref.via, c.ref.name] as const,
      ),
    ).toEqual([
      ["private_key", "env", "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY"],
      ["private_key_passphrase", "secret", "snowflake-key-passphrase"],
    ]);
  });

  it("names a key that does not load at its first use, and never shows it; validate reads no key", async () => {
    const keyProblem = async (
      settings: Record<string, unknown> & { type: string },
      credentials: Record<string, string>,
    ) => {
      // Created without reading the key: outcome-runtime validate checks settings with placeholder credentials.
      const connector = createConnector(settings, context({ credentials }));
      return failure(connector.check?.() ?? Promise.resolve());
    };
    const damaged = await keyProblem(config(), { private_key: "not a key at all" });
    expect(damaged.code).toBe("invalid_config");
    expect(damaged.details.field).toBe("private_key_env");
    expect(damaged.message).toContain("OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY");
    expect(damaged.message).toContain("openssl");
    const pkcs1 = createPrivateKey(fake.privateKey).export({ type: "pkcs1", format: "pem" }).toString();
    const legacy = await keyProblem(config(), { private_key: pkcs1 });
    expect(legacy.message).toContain("PKCS#1");
    expect(legacy.message).not.toContain(pkcs1.split("\n")[1] ?? "-");
    const encrypted = createPrivateKey(fake.privateKey)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "correct horse" })
      .toString();
    expect((await keyProblem(config(), { private_key: encrypted })).message).toContain("no passphrase is given");
    const wrong = await keyProblem(
      config({ private_key_passphrase_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_PASSPHRASE" }),
      {
        private_key: encrypted,
        private_key_passphrase: "wrong",
      },
    );
    expect(wrong.message).toContain("cannot be decrypted");
    expect(fake.requests).toHaveLength(0);
    expect(checkConnectorSettings(config(), "proportion", { allowedApiUrls: { snowflake: [fake.url] } })).toBeNull();
  });

  it("reads with an encrypted key and its passphrase", async () => {
    const encrypted = createPrivateKey(fake.privateKey)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "correct horse" })
      .toString();
    fake.respondWith(() => ({ columns: proportionColumns, rows: [["checkout-v2", "control", 10, 1, 1]] }));
    const connector = createConnector(
      config({ private_key_passphrase_secret: "snowflake-key-passphrase" }),
      context({ credentials: { private_key: encrypted, private_key_passphrase: "correct horse" } }),
    );
    expect(await connector.fetchArmAggregates(window)).toHaveLength(1);
  });

  it("names the field, the value and the fix of a wrong setting", () => {
    const url = refusal(config({ account: "https://myorg-myaccount.snowflakecomputing.com" }));
    expect(url.details).toMatchObject({ field: "account", value: "https://myorg-myaccount.snowflakecomputing.com" });
    expect(url.message).toContain("not a URL");
    const missing = refusal(config({ warehouse: undefined }));
    expect(missing.details.field).toBe("warehouse");
    expect(missing.message).toContain("ANALYTICS_WH");
    const typo = "SELECT :experiment AS experiment, :nope FROM t WHERE t.ts <= :to";
    const unknown = refusal(config({ query: typo }));
    expect(unknown.code).toBe("invalid_config");
    expect(unknown.details).toMatchObject({ line: 1, column: typo.indexOf(":nope") + 1 });
    expect(unknown.message).toContain(":nope is not a parameter");
    const write = refusal(config({ query: "DELETE FROM exposures WHERE experiment_key = :experiment AND ts <= :to" }));
    expect(write.code).toBe("invalid_config");
    expect(write.details.field).toBe("query (line 1, column 1)");
  });
});

describe("snowflake connector: parameters, account forms and the schema", () => {
  it("binds every parameter a query or a series query may use, leaving no :name in the statement", async () => {
    const asked: SnowflakeFakeQuery[] = [];
    fake.respondWith((query) => {
      asked.push(query);
      return { columns: proportionColumns, rows: [] };
    });
    for (const form of ["experiment", "experiments"]) {
      const names = SQL_QUERY_PARAMETERS.filter((n) => n !== (form === "experiment" ? "experiments" : "experiment"));
      const query = `SELECT arm, units, sum, sum_sq ${form === "experiments" ? ", k AS experiment" : ""} FROM t WHERE ${names
        .map((n) => `c_${n} IN (:${n})`)
        .join(" AND ")}`;
      await createConnector(config({ query }), context()).fetchArmAggregates(window);
    }
    fake.respondWith((query) => {
      asked.push(query);
      return {
        columns: [
          { name: "TS", type: "TIMESTAMP_TZ" },
          { name: "VALUE", type: "REAL" },
        ],
        rows: [],
      };
    });
    const series = `SELECT ts, value FROM s WHERE ${SQL_SERIES_PARAMETERS.map((n) => `c_${n} = :${n}`).join(" AND ")}`;
    await createConnector(config({ series_query: series }), context()).fetchOutcomeSeries({ from, to });
    expect(asked).toHaveLength(3);
    for (const { sql, parameters } of asked) {
      expect(sql).not.toMatch(/:[a-z]/u);
      expect(parameters.length).toBe((sql.match(/\?/gu) ?? []).length);
    }
    // experiment, arms (2), from, to; experiments (1), arms (2), from, to; from, to.
    expect(asked.map((q) => q.parameters.length)).toEqual([5, 5, 2]);
  });

  it("names a locator account without its region in the JWT", async () => {
    const locator = await startSnowflakeFake({
      account: "XY12345",
      user: "OUTCOME_READER",
      privateKey: fake.privateKey,
    });
    try {
      locator.respondWith(() => ({ columns: proportionColumns, rows: [["checkout-v2", "control", 3, 1, 1]] }));
      const connector = createConnector(
        config({ account: "xy12345.us-east-1", api_url: locator.url }),
        context({ allowedApiUrls: { snowflake: [locator.url] } }),
      );
      expect(await connector.fetchArmAggregates(window)).toHaveLength(1);
      expect(decodeJwt(String(locator.requests[0]?.headers.authorization).slice(7)).sub).toBe("XY12345.OUTCOME_READER");
    } finally {
      await locator.close();
    }
  });

  it("declares in the outcome schema exactly the settings the connector takes", () => {
    const schema = JSON.parse(
      readFileSync(new URL("../../../../schemas/outcome.schema.json", import.meta.url), "utf8"),
    ) as { $defs: { SnowflakeConnector: { properties: Record<string, unknown> } } };
    expect(Object.keys(schema.$defs.SnowflakeConnector.properties).sort()).toEqual(
      ["type", ...SQL_COMMON_FIELDS, ...SNOWFLAKE_SOURCE.fields, ...credentialFields("snowflake")].sort(),
    );
  });
});
