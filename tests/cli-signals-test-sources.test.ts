/**
 * `outcome-runtime signals test` on every connector type, as a user runs it:
 * a real CLI process reading each source through the same connector code as
 * the worker. mysql reads a scratch database on the local MariaDB through a
 * SELECT-only account; duckdb reads Parquet and CSV files written next to the
 * outcome file; prometheus reads a real Prometheus (Debian's package) that
 * scraped the exposures as counters with their timestamps; clickhouse,
 * snowflake, bigquery and mixpanel read the local
 * stand-ins of their HTTP APIs (packages/testing), started in this process,
 * which the CLI reaches through the operator's `SOURCE_API_URLS` (snowflake,
 * bigquery and its key's token endpoint, mixpanel) or the `url` credential
 * (clickhouse). Every source holds the same exposures;
 * the printed rows per experiment and arm, and the `--json` report, are what
 * it holds in the window (amplitude: its stand-in, allowed per test through
 * `SOURCE_API_URLS`). Each type also fails once with the source's own
 * error, printed with the setting, the line in the file and the message; a
 * source that estimates its cost (bigquery's dry run) prints it, and refuses
 * a read past its guard.
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DuckDBInstance } from "@duckdb/node-api";
import { type FakeAmplitude, startFakeAmplitude } from "@outcome-runtime/testing/fake-amplitude";
import { type FakeBigQuery, type FakeBigQueryQuery, startFakeBigQuery } from "@outcome-runtime/testing/fake-bigquery";
import {
  clickHouseSyntaxError,
  type FakeClickHouse,
  type FakeClickHouseQuery,
  startClickHouseFake,
} from "@outcome-runtime/testing/fake-clickhouse";
import { type FakeDatadog, startFakeDatadog } from "@outcome-runtime/testing/fake-datadog";
import { type FakeGa4, type FakeGa4Report, matchesFilter, startFakeGa4 } from "@outcome-runtime/testing/fake-ga4";
import { type FakeMixpanel, startFakeMixpanel } from "@outcome-runtime/testing/fake-mixpanel";
import { type FakePosthog, startFakePosthog } from "@outcome-runtime/testing/fake-posthog";
import {
  type SnowflakeFake,
  type SnowflakeFakeQuery,
  startSnowflakeFake,
} from "@outcome-runtime/testing/fake-snowflake";
import { createMysqlSourceDatabase, type MysqlSourceDatabase } from "@outcome-runtime/testing/mysql";
import { type RunningPrometheus, startPrometheus } from "@outcome-runtime/testing/prometheus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** What every source holds: experiment, arm, the day's end (UTC), units, conversions. */
const EXPOSURES: readonly (readonly [string, string, string, number, number])[] = [
  ["checkout-v2", "control", "2025-01-03T00:00:00.000Z", 1000, 200],
  ["checkout-v2", "treatment", "2025-01-03T00:00:00.000Z", 1010, 232],
  ["checkout-v2", "control", "2025-01-06T00:00:00.000Z", 2000, 410],
  ["checkout-v2", "treatment", "2025-01-06T00:00:00.000Z", 1990, 470],
  ["search-v1", "control", "2025-01-06T00:00:00.000Z", 500, 50],
  ["search-v1", "treatment", "2025-01-06T00:00:00.000Z", 480, 60],
  // Before the window: never read.
  ["checkout-v2", "control", "2024-12-01T00:00:00.000Z", 9, 9],
];

const FROM = "2025-01-01T00:00:00.000Z";
const TO = "2025-01-07T00:00:00.000Z";
const WINDOW = ["--from", "2025-01-01", "--to", "2025-01-07T00:00:00Z"];
const EXPERIMENTS = ["--experiment", "checkout-v2", "--experiment", "search-v1"];

/** The rows of `experiments` in (`from`, `to`], as the dry run reports them (mean = sum / units). */
function held(experiments: readonly string[], from = FROM, to = TO) {
  return EXPOSURES.filter(([e, , ts]) => experiments.includes(e) && ts > from && ts <= to).map(
    ([experiment, arm, ts, units, conversions]) => ({
      experiment,
      arm,
      ts,
      units,
      sum: conversions,
      sum_sq: conversions,
      mean: conversions / units,
    }),
  );
}

/** The report's experiments for `experiments`, each with the rows the source holds for it. */
function expectedExperiments(experiments: readonly string[]) {
  return experiments.map((experiment) => ({
    experiment,
    error: null,
    rows: held([experiment]).map(({ experiment: _, ...row }) => row),
  }));
}

/** The table the CLI prints for checkout-v2 and search-v1 in the window. */
const PRINTED = [
  "  checkout-v2:",
  "    arm        ts                        units  sum  sum_sq  mean",
  "    control    2025-01-03T00:00:00.000Z  1000   200  200     0.2",
  "    treatment  2025-01-03T00:00:00.000Z  1010   232  232     0.229703",
  "    control    2025-01-06T00:00:00.000Z  2000   410  410     0.205",
  "    treatment  2025-01-06T00:00:00.000Z  1990   470  470     0.236181",
  "  search-v1:",
  "    arm        ts                        units  sum  sum_sq  mean",
  "    control    2025-01-06T00:00:00.000Z  500    50   50      0.1",
  "    treatment  2025-01-06T00:00:00.000Z  480    60   60      0.125",
].join("\n");

let dir: string;
let mysqlSource: MysqlSourceDatabase;
let clickhouse: FakeClickHouse;
let snowflake: SnowflakeFake;
let mixpanel: FakeMixpanel;
let bigquery: FakeBigQuery;
/** The bigquery service account's key file, for `credentials_file_env`. */
let bigqueryKeyFile: string;

const MIXPANEL = { username: "outcome-runtime.cli.mp-service-account", secret: "cli-s3cret", projectId: "2741936" };
const CLICKHOUSE_PASSWORD = "reader-password";

/** The environment of the shell the user runs the CLI in: the source variables and the operator's allowed API URLs. */
function environment(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    OUTCOME_RUNTIME_SOURCE_MYSQL_URL: mysqlSource.readerUrl,
    OUTCOME_RUNTIME_SOURCE_CLICKHOUSE_URL: clickhouse.url.replace("http://", `http://reader:${CLICKHOUSE_PASSWORD}@`),
    OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY: snowflake.privateKey,
    OUTCOME_RUNTIME_SOURCE_MP_USERNAME: MIXPANEL.username,
    OUTCOME_RUNTIME_SOURCE_MP_SECRET: MIXPANEL.secret,
    OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY: bigquery.serviceAccountKey(),
    OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY_FILE: bigqueryKeyFile,
    SOURCE_API_URLS: `snowflake=${snowflake.url} mixpanel=${mixpanel.baseUrl} bigquery=${bigquery.apiEndpoint} bigquery=${bigquery.tokenUrl}`,
  };
}

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: { ...environment(), ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A query as a YAML block under `connector:` (indented 6 in the file). */
function queryBlock(sql: string): string {
  return `    query: |\n${sql
    .split("\n")
    .map((line) => `      ${line}`)
    .join("\n")}`;
}

/** Writes an outcome whose signal reads through `connector` (YAML lines indented 4); returns its path and text. */
function outcome(type: string, connector: string): { file: string; text: string } {
  const file = join(dir, `${type}-${Math.random().toString(36).slice(2)}.yaml`);
  const text = `version: 1
id: dry-run-${type}
name: Dry run ${type}
owner: owner@acme.example
signal:
  metric: checkout_conversion
  kind: proportion
  unit: user
  connector:
    type: ${type}
${connector}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
`;
  writeFileSync(file, text);
  return { file, text };
}

/** The 1-based line of the file where `needle` is. */
function fileLine(text: string, needle: string): number {
  const at = text.indexOf(needle);
  if (at === -1) throw new Error(`${needle} is not in the file`);
  return text.slice(0, at).split("\n").length;
}

/** Where `token` of the query line `queryLine` is in the file: its line, and its column (the query is indented 6). */
function inFile(text: string, queryLine: string, token: string): { fileLine: number; column: number } {
  return { fileLine: fileLine(text, `      ${queryLine}\n`), column: 6 + queryLine.indexOf(token) + 1 };
}

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&");

/** The cost estimate a source that gives one reports: the bytes its dry run would scan and its guard. */
interface ExpectedCost {
  readonly bytesProcessed: number;
  readonly maximumBytesBilled: number;
  /** The line the CLI prints for it. */
  readonly printed: string;
}

/** Runs the dry run as text and as `--json`, and checks both against what the source holds (and its cost, if any). */
async function expectRowsOfTheSource(
  file: string,
  type: string,
  form: "single" | "batched",
  cost: ExpectedCost | null = null,
) {
  const text = await cli(["signals", "test", file, ...EXPERIMENTS, ...WINDOW]);
  expect(text.stderr).toBe("");
  expect(text.code).toBe(0);
  expect(text.stdout.split("\n")[0]).toBe(`${file}: read ${FROM} to ${TO}, arms control, treatment`);
  expect(text.stdout).toMatch(new RegExp(`^signal \\(${type}, ${form}, \\d+ ms\\): ${type} `, "m"));
  expect(text.stdout).toContain(PRINTED);
  if (cost === null) expect(text.stdout).not.toContain("  cost: ");
  else expect(text.stdout).toContain(`\n${cost.printed}\n`);

  const json = await cli(["--json", "signals", "test", file, ...EXPERIMENTS, ...WINDOW]);
  expect(json.code).toBe(0);
  const report = JSON.parse(json.stdout);
  expect(report).toMatchObject({
    ok: true,
    from: FROM,
    to: TO,
    experiments: ["checkout-v2", "search-v1"],
    placeholder: false,
  });
  expect(report.metrics).toHaveLength(1);
  expect(report.metrics[0]).toMatchObject({
    path: "signal",
    type,
    form,
    error: null,
    cost:
      cost === null
        ? null
        : {
            bytesProcessed: cost.bytesProcessed,
            maximumBytesBilled: cost.maximumBytesBilled,
            summary: expect.any(String),
          },
  });
  expect(report.metrics[0].queryMs).toEqual(expect.any(Number));
  expect(report.metrics[0].experiments).toEqual(expectedExperiments(["checkout-v2", "search-v1"]));
}

/** Runs the dry run of a query the source refuses, and checks the compiler-style line and the report's error. */
async function expectSourceError(
  outcomeFile: { file: string; text: string },
  expected: { code: string; field: string; line: number; fileLine: number; column: number; message: RegExp },
) {
  const { file } = outcomeFile;
  const text = await cli(["signals", "test", file, "--experiment", "checkout-v2", ...WINDOW]);
  expect(text.code).toBe(1);
  expect(text.stdout).toContain(`  failed: ${expected.code}`);
  const printed = text.stderr.split("\n").find((l) => l.startsWith(`${file}:`)) ?? text.stderr;
  expect(printed).toMatch(
    new RegExp(
      `^${literal(file)}:${expected.fileLine}:${expected.column}: error: ${literal(expected.field)}: .*${expected.message.source}.* \\[${expected.code}\\]$`,
    ),
  );
  const json = await cli(["--json", "signals", "test", file, "--experiment", "checkout-v2", ...WINDOW]);
  expect(json.code).toBe(1);
  const report = JSON.parse(json.stdout);
  expect(report.ok).toBe(false);
  expect(report.metrics[0].error).toMatchObject({
    code: expected.code,
    field: expected.field,
    line: expected.line,
    message: expect.stringMatching(expected.message),
    location: { line: expected.fileLine, column: expected.column },
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "signals-test-sources-"));

  mysqlSource = await createMysqlSourceDatabase();
  await mysqlSource.admin(
    "CREATE TABLE exposures (experiment_key VARCHAR(100), arm VARCHAR(100), ts DATETIME(3), units BIGINT, conversions BIGINT)",
  );
  await mysqlSource.admin(
    `INSERT INTO exposures VALUES ${EXPOSURES.map(() => "(?, ?, ?, ?, ?)").join(", ")}`,
    EXPOSURES.flatMap(([e, a, ts, u, c]) => [e, a, ts.replace("T", " ").replace("Z", ""), u, c]),
  );

  // DuckDB writes the team's exports: a Parquet file and a CSV file, next to the outcome files.
  const instance = await DuckDBInstance.create(":memory:");
  const writer = await instance.connect();
  await writer.run(
    "CREATE TABLE exposures (experiment_key VARCHAR, arm VARCHAR, ts TIMESTAMPTZ, units BIGINT, conversions BIGINT)",
  );
  await writer.run("SET TimeZone = 'UTC'");
  await writer.run(
    `INSERT INTO exposures VALUES ${EXPOSURES.map(([e, a, ts, u, c]) => `('${e}', '${a}', '${ts}', ${u}, ${c})`).join(", ")}`,
  );
  await writer.run(`COPY exposures TO '${join(dir, "exposures.parquet")}' (FORMAT parquet)`);
  writer.closeSync();
  instance.closeSync();
  writeFileSync(
    join(dir, "exposures.csv"),
    `experiment_key,arm,ts,units,conversions\n${EXPOSURES.map((r) => r.join(",")).join("\n")}\n`,
  );

  clickhouse = await startClickHouseFake({ users: { reader: CLICKHOUSE_PASSWORD } });
  snowflake = await startSnowflakeFake({ account: "MYORG-MYACCOUNT", user: "OUTCOME_READER" });
  mixpanel = await startFakeMixpanel(MIXPANEL);
  bigquery = await startFakeBigQuery({ projectId: "acme-analytics" });
  bigqueryKeyFile = join(dir, "bigquery-key.json");
  writeFileSync(bigqueryKeyFile, bigquery.serviceAccountKey(), { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await Promise.all([
    clickhouse?.close(),
    snowflake?.close(),
    mixpanel?.close(),
    bigquery?.close(),
    mysqlSource?.drop(),
  ]);
  rmSync(dir, { recursive: true, force: true });
});

const SINGLE_WHERE = "experiment_key = :experiment AND ts > :from AND ts <= :to";

describe("signals test: mysql (MariaDB)", () => {
  const connector = (sql: string) => `    database_url_env: OUTCOME_RUNTIME_SOURCE_MYSQL_URL\n${queryBlock(sql)}`;

  it("reads one experiment at a time, then all at once, and prints what the database holds", async () => {
    const single = outcome(
      "mysql",
      connector(
        `SELECT arm, units, conversions AS \`sum\`, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDER BY ts, arm`,
      ),
    );
    await expectRowsOfTheSource(single.file, "mysql", "single");
    const batched = outcome(
      "mysql",
      connector(
        "SELECT experiment_key AS experiment, arm, units, conversions AS `sum`, conversions AS sum_sq, ts\n  FROM exposures\n WHERE experiment_key IN (:experiments) AND ts > :from AND ts <= :to\n ORDER BY ts, arm",
      ),
    );
    await expectRowsOfTheSource(batched.file, "mysql", "batched");
  });

  it("prints MariaDB's own syntax error with the query field and its line", async () => {
    const file = outcome(
      "mysql",
      connector(
        `SELECT arm, units, conversions AS \`sum\`, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDR BY ts`,
      ),
    );
    await expectSourceError(file, {
      code: "query_failed",
      field: "signal.connector.query",
      line: 4,
      ...inFile(file.text, " ORDR BY ts", "ORDR"),
      message: /You have an error in your SQL syntax.*near 'ORDR BY ts/,
    });
  });
});

describe("signals test: duckdb", () => {
  const tables = "    tables:\n      exposures: exposures.parquet\n      exported: exposures.csv";

  it("reads the Parquet file one experiment at a time and the CSV file all at once, from the outcome's directory", async () => {
    const single = outcome(
      "duckdb",
      `${tables}\n${queryBlock(`SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDER BY ts, arm`)}`,
    );
    await expectRowsOfTheSource(single.file, "duckdb", "single");
    const batched = outcome(
      "duckdb",
      `${tables}\n${queryBlock(
        "SELECT experiment_key AS experiment, arm, units, conversions AS sum, conversions AS sum_sq, ts::TIMESTAMPTZ AS ts\n  FROM exported\n WHERE experiment_key = ANY(:experiments) AND ts::TIMESTAMPTZ > :from AND ts::TIMESTAMPTZ <= :to\n ORDER BY ts, arm",
      )}`,
    );
    await expectRowsOfTheSource(batched.file, "duckdb", "batched");
  });

  it("a base_dir outside the outcome's directory is refused with the settings' check, before anything is read", async () => {
    const file = outcome(
      "duckdb",
      `    base_dir: ..\n${queryBlock(`SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM t WHERE ${SINGLE_WHERE}`)}`,
    );
    const result = await cli(["signals", "test", file.file, ...WINDOW]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    base_dir: ..")}:\\d+: error\\[invalid_connector\\]: .*base_dir`,
        "m",
      ),
    );
  });

  it("prints DuckDB's own error with the query field and its line", async () => {
    const file = outcome(
      "duckdb",
      `${tables}\n${queryBlock(`SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n   AND no_such_column > 0`)}`,
    );
    await expectSourceError(file, {
      code: "query_failed",
      field: "signal.connector.query",
      line: 4,
      ...inFile(file.text, "   AND no_such_column > 0", "no_such_column"),
      message: /no_such_column/,
    });
  });
});

/** The grants of a ClickHouse user that may only read (system.grants), for the connector's check. */
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

/** ClickHouse's answer: the rows of the experiments and the window its placeholders carry. */
function clickhouseRows(query: FakeClickHouseQuery) {
  const p = query.parameters;
  const experiments = (p.experiments as string[] | undefined) ?? [p.experiment as string];
  const rows = held(experiments, (p.from as Date).toISOString(), (p.to as Date).toISOString());
  const batched = p.experiments !== undefined;
  return {
    columns: [
      ...(batched ? [{ name: "experiment", type: "String" }] : []),
      { name: "arm", type: "LowCardinality(String)" },
      { name: "units", type: "UInt64" },
      { name: "sum", type: "UInt64" },
      { name: "sum_sq", type: "UInt64" },
      { name: "ts", type: "DateTime64(3, 'UTC')" },
    ],
    rows: rows.map((r) => [
      ...(batched ? [r.experiment] : []),
      r.arm,
      String(r.units),
      String(r.sum),
      String(r.sum_sq),
      new Date(r.ts),
    ]),
  };
}

describe("signals test: clickhouse", () => {
  const connector = (sql: string) =>
    `    url_env: OUTCOME_RUNTIME_SOURCE_CLICKHOUSE_URL\n    database: analytics\n${queryBlock(sql)}`;

  it("reads one experiment at a time, then all at once, with the url credential from the shell", async () => {
    const asked: FakeClickHouseQuery[] = [];
    clickhouse.respondWith((query) => {
      if (query.sql.includes("system.grants")) {
        return { columns: GRANT_COLUMNS, rows: [["SELECT", "analytics", null, null, 0, 0, "reader", null]] };
      }
      asked.push(query);
      return clickhouseRows(query);
    });
    const single = outcome(
      "clickhouse",
      connector(
        `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDER BY ts, arm`,
      ),
    );
    await expectRowsOfTheSource(single.file, "clickhouse", "single");
    const batched = outcome(
      "clickhouse",
      connector(
        "SELECT experiment_key AS experiment, arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE has(:experiments, experiment_key) AND ts > :from AND ts <= :to\n ORDER BY ts, arm",
      ),
    );
    await expectRowsOfTheSource(batched.file, "clickhouse", "batched");
    // What the CLI sent: typed placeholders, read-only, as the reader.
    expect(asked.at(-1)?.sql).toContain("has({experiments:Array(String)}, experiment_key)");
    expect(asked.at(-1)).toMatchObject({ user: "reader", database: "analytics" });
    expect(asked.at(-1)?.settings.readonly).toBe("1");
  });

  it("prints ClickHouse's own syntax error with the query field and its line; a wrong password is auth_failed", async () => {
    clickhouse.respondWith((query) =>
      query.sql.includes("system.grants")
        ? { columns: GRANT_COLUMNS, rows: [["SELECT", "analytics", null, null, 0, 0, "reader", null]] }
        : clickHouseSyntaxError(query.sql, "ORDR"),
    );
    const file = outcome(
      "clickhouse",
      connector(
        `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDR BY ts`,
      ),
    );
    await expectSourceError(file, {
      code: "query_failed",
      field: "signal.connector.query",
      line: 4,
      ...inFile(file.text, " ORDR BY ts", "ORDR"),
      message: /Syntax error: failed at line 4, column 2 \('ORDR'\)/,
    });
    const wrong = await cli(["--json", "signals", "test", file.file, ...WINDOW], {
      OUTCOME_RUNTIME_SOURCE_CLICKHOUSE_URL: clickhouse.url.replace("http://", "http://reader:not-the-password@"),
    });
    expect(wrong.code).toBe(1);
    // The account check meets the refusal first; the error points at the setting that names the credential.
    expect(JSON.parse(wrong.stdout).metrics[0].error).toMatchObject({
      code: "auth_failed",
      field: "signal.connector.url_env",
      message: expect.stringMatching(/refused the credentials \(reader: Authentication failed/),
      location: { line: fileLine(file.text, "    url_env:"), column: 14 },
    });
    expect(wrong.stdout).not.toContain("not-the-password");
  });
});

/** Snowflake's answer: the rows of the experiment(s) and the window bound to the statement's `?`s, in order. */
function snowflakeRows(query: SnowflakeFakeQuery, batched: boolean) {
  const values = query.parameters as string[];
  const [to] = values.slice(-1);
  const [from] = values.slice(-2, -1);
  const experiments = values.slice(0, -2);
  const rows = held(experiments, new Date(from ?? "").toISOString(), new Date(to ?? "").toISOString());
  return {
    columns: [
      ...(batched ? [{ name: "EXPERIMENT", type: "TEXT" }] : []),
      { name: "ARM", type: "TEXT" },
      { name: "UNITS", type: "FIXED" },
      { name: "SUM", type: "FIXED" },
      { name: "SUM_SQ", type: "FIXED" },
      { name: "TS", type: "TIMESTAMP_TZ", scale: 3 },
    ],
    rows: rows.map((r) => [...(batched ? [r.experiment] : []), r.arm, r.units, r.sum, r.sum_sq, r.ts]),
  };
}

describe("signals test: snowflake", () => {
  const connector = (sql: string) =>
    [
      "    account: myorg-myaccount",
      "    user: outcome_reader",
      "    warehouse: ANALYTICS_WH",
      "    role: OUTCOME_READER",
      "    database: ANALYTICS",
      "    schema: PUBLIC",
      "    private_key_env: OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY",
      `    api_url: ${snowflake.url}`,
      queryBlock(sql),
    ].join("\n");

  it("reads one experiment at a time, then all at once, with the key from the shell and the API URL the operator allows", async () => {
    const single = outcome(
      "snowflake",
      connector(
        `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDER BY ts, arm`,
      ),
    );
    snowflake.respondWith((query) => snowflakeRows(query, false));
    await expectRowsOfTheSource(single.file, "snowflake", "single");
    const batched = outcome(
      "snowflake",
      connector(
        "SELECT experiment_key AS experiment, arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE experiment_key IN (:experiments) AND ts > :from AND ts <= :to\n ORDER BY ts, arm",
      ),
    );
    snowflake.respondWith((query) => snowflakeRows(query, true));
    await expectRowsOfTheSource(batched.file, "snowflake", "batched");
  });

  it("without the operator's SOURCE_API_URLS, the fake's api_url is refused as not the account's", async () => {
    const file = outcome(
      "snowflake",
      connector(`SELECT arm, units, 0 AS sum, 0 AS sum_sq FROM t WHERE ${SINGLE_WHERE}`),
    );
    const result = await cli(["--json", "signals", "test", file.file, ...WINDOW], { SOURCE_API_URLS: "" });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).metrics[0].error).toMatchObject({
      code: "source_refused",
      field: "signal.connector.api_url",
      location: { line: fileLine(file.text, "    api_url:"), column: 14 },
    });
  });

  it("prints Snowflake's own syntax error with the query field and its line; another key is auth_failed", async () => {
    snowflake.respondWith(({ sql }) => {
      const lines = sql.split("\n");
      const line = lines.findIndex((l) => l.includes("ORDR"));
      return { fail: "syntax", line: line + 1, position: lines[line]?.indexOf("ORDR") ?? 0, near: "ORDR" };
    });
    const file = outcome(
      "snowflake",
      connector(
        `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDR BY ts`,
      ),
    );
    await expectSourceError(file, {
      code: "query_failed",
      field: "signal.connector.query",
      line: 4,
      ...inFile(file.text, " ORDR BY ts", "ORDR"),
      message: /syntax error line 4 at position \d+ unexpected 'ORDR'/,
    });
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    const wrong = await cli(["--json", "signals", "test", file.file, ...WINDOW], {
      OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY: other,
    });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout).metrics[0].error).toMatchObject({
      code: "auth_failed",
      field: "signal.connector.private_key_env",
      message: expect.stringContaining("Snowflake refused the key-pair JWT (401: JWT token is invalid."),
      location: { line: fileLine(file.text, "    private_key_env:"), column: 22 },
    });
    expect(wrong.stdout).not.toContain("PRIVATE KEY");
  });
});

describe("signals test: mixpanel", () => {
  const connector = [
    `    project_id: ${MIXPANEL.projectId}`,
    "    event: Order completed",
    "    username_env: OUTCOME_RUNTIME_SOURCE_MP_USERNAME",
    "    secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET",
    "    api_url: API_URL",
  ].join("\n");

  beforeAll(() => {
    // Each exposure row is that many users exposed on the day before its end, of whom `conversions` converted.
    for (const [experiment, arm, ts, units, conversions] of EXPOSURES) {
      const date = new Date(Date.parse(ts) - 86_400_000).toISOString().slice(0, 10);
      const properties = { "Experiment name": experiment, "Variant name": arm };
      for (let u = 0; u < units; u++) {
        const distinctId = `${experiment}/${arm}/${date}/${u}`;
        mixpanel.events.push({ event: "$experiment_started", distinctId, date, properties });
        if (u < conversions) mixpanel.events.push({ event: "Order completed", distinctId, date, properties });
      }
    }
  });

  it("reads every experiment with one pair of /segmentation requests and prints the unique users per arm", async () => {
    const file = outcome("mixpanel", connector.replace("API_URL", mixpanel.baseUrl));
    mixpanel.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "mixpanel", form: "batched", error: null });
    // Mixpanel counts unique users over the window: one row per arm, as of the window's end.
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    expect(mixpanel.requests.map((r) => r.path)).toEqual(["/segmentation", "/segmentation"]);

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^signal \(mixpanel, batched, \d+ ms\): mixpanel /m);
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
        "  search-v1:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  500    50   50      0.1",
        "    treatment  (window end)  480    60   60      0.125",
      ].join("\n"),
    );
  });

  it("prints Mixpanel's refusal of the service account with the credential's setting and its line", async () => {
    const file = outcome("mixpanel", connector.replace("API_URL", mixpanel.baseUrl));
    const result = await cli(["signals", "test", file.file, ...WINDOW], {
      OUTCOME_RUNTIME_SOURCE_MP_SECRET: "not-the-secret",
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: auth_failed");
    expect(result.stderr).not.toContain("not-the-secret");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    username_env:")}:19: error: signal\\.connector\\.username_env: mixpanel /segmentation: the service account credentials were refused \\(401: Unauthorized\\); check username_env and secret_env.* \\[auth_failed\\]$`,
        "m",
      ),
    );
  });
});

describe("signals test: amplitude", () => {
  const AMPLITUDE = { apiKey: "c1i0api0key00000000000000000000a", secretKey: "c1i0secret0key000000000000000000" };
  let amplitude: FakeAmplitude;
  const connector = (event = "Order completed") =>
    [
      "    project_id: 318204",
      "    api_key_env: OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
      "    secret_key_env: OUTCOME_RUNTIME_SOURCE_AMPLITUDE_SECRET_KEY",
      '    exposure_event: "[Experiment] Exposure"',
      `    event: ${event}`,
      "    api_url: API_URL",
    ].join("\n");
  /** The keys in the user's shell, and the operator's consent to the stand-in's URL. */
  const env = (secretKey = AMPLITUDE.secretKey) => ({
    OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY: AMPLITUDE.apiKey,
    OUTCOME_RUNTIME_SOURCE_AMPLITUDE_SECRET_KEY: secretKey,
    SOURCE_API_URLS: `${environment().SOURCE_API_URLS} amplitude=${amplitude.baseUrl}`,
  });

  beforeAll(async () => {
    amplitude = await startFakeAmplitude(AMPLITUDE);
    // Each exposure row is that many users exposed at noon the day before its end, of whom `conversions` converted;
    // the app set the user properties experiment and arm at exposure.
    for (const [experiment, arm, ts, units, conversions] of EXPOSURES) {
      const time = new Date(Date.parse(ts) - 12 * 3_600_000).toISOString();
      const userProperties = { experiment, arm };
      for (let u = 0; u < units; u++) {
        const userId = `${experiment}/${arm}/${ts}/${u}`;
        amplitude.events.push({ eventType: "[Experiment] Exposure", userId, time, userProperties });
        if (u < conversions) amplitude.events.push({ eventType: "Order completed", userId, time, userProperties });
      }
    }
  });

  afterAll(async () => {
    await amplitude?.close();
  });

  it("reads every experiment with one pair of segmentation requests and prints the unique users per arm", async () => {
    const file = outcome("amplitude", connector().replace("API_URL", amplitude.baseUrl));
    amplitude.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "amplitude", form: "batched", error: null });
    // Amplitude counts unique users over the window's days: one row per arm, as of the window's end.
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    // The event check, then the exposed users and the converters of both experiments, over the UTC days Jan 1 to 6.
    expect(amplitude.requests.map((r) => r.path)).toEqual([
      "/api/2/events/list",
      "/api/2/events/segmentation",
      "/api/2/events/segmentation",
    ]);
    expect(amplitude.requests.slice(1).map((r) => [r.params.get("start"), r.params.get("end")])).toEqual([
      ["20250101", "20250106"],
      ["20250101", "20250106"],
    ]);

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^signal \(amplitude, batched, \d+ ms\): amplitude project 318204 /m);
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
        "  search-v1:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  500    50   50      0.1",
        "    treatment  (window end)  480    60   60      0.125",
      ].join("\n"),
    );
  });

  it("prints an event the project does not have with the event setting and its line", async () => {
    const file = outcome("amplitude", connector("Order complete").replace("API_URL", amplitude.baseUrl));
    const result = await cli(["signals", "test", file.file, ...WINDOW], env());
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: query_failed");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    event:")}:\\d+: error: signal\\.connector\\.event: amplitude: event "Order complete" is not among project 318204's events.* \\[query_failed\\]$`,
        "m",
      ),
    );
  });

  it("prints Amplitude's refusal of the keys with the credential's setting and its line, never the key", async () => {
    const file = outcome("amplitude", connector().replace("API_URL", amplitude.baseUrl));
    const result = await cli(["signals", "test", file.file, ...WINDOW], env("not-the-secret-key"));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: auth_failed");
    expect(result.stderr).not.toContain("not-the-secret-key");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    api_key_env:")}:\\d+: error: signal\\.connector\\.api_key_env: amplitude /api/2/events/list: the API key and secret key were refused .*\\(401: Invalid API key or secret key\\).* \\[auth_failed\\]$`,
        "m",
      ),
    );
  });
});

describe("signals test: mixpanel saved funnel (examples/outcomes/mixpanel-checkout-funnel.yaml)", () => {
  const FUNNEL_ID = 7509;

  /**
   * The example outcome as a team writes it, pointed at the local stand-in:
   * its project, and `api_url` after each `type: mixpanel` (the operator
   * allows it in SOURCE_API_URLS).
   */
  function example(): { file: string; text: string } {
    const text = readFileSync(join(root, "examples/outcomes/mixpanel-checkout-funnel.yaml"), "utf8")
      .replaceAll("project_id: 2741936", `project_id: ${MIXPANEL.projectId}`)
      .replace(/^( +)type: mixpanel$/gmu, `$1type: mixpanel\n$1api_url: ${mixpanel.baseUrl}`);
    const file = join(dir, `mixpanel-checkout-funnel-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    return { file, text };
  }

  const env = () => ({
    OUTCOME_RUNTIME_SOURCE_MIXPANEL_USERNAME: MIXPANEL.username,
    OUTCOME_RUNTIME_SOURCE_MIXPANEL_SECRET: MIXPANEL.secret,
  });

  beforeAll(() => {
    mixpanel.funnels.set(FUNNEL_ID, {
      name: "Checkout",
      steps: ["$experiment_started", "Checkout started", "Order completed"],
      windowDays: 7,
    });
    // Every converter started the checkout first (so the funnel's completions are the converters); a
    // tenth of the others started it and stopped there. The exposures and orders are those of the
    // other mixpanel cases.
    const events = [...mixpanel.events];
    mixpanel.events.length = 0;
    for (const e of events) {
      const index = Number(e.distinctId.split("/").at(-1));
      if (e.event === "Order completed" || (e.event === "$experiment_started" && index % 10 === 9)) {
        if (e.event === "Order completed") {
          mixpanel.events.push({ ...e, event: "Checkout started" });
        } else {
          mixpanel.events.push(e, { ...e, event: "Checkout started" });
          continue;
        }
      }
      mixpanel.events.push(e);
    }
  });

  it("reads every experiment with one /funnels request: users who entered and completed the funnel per arm", async () => {
    const file = example();
    mixpanel.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "mixpanel", form: "batched", error: null });
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    const funnelRequests = mixpanel.requests.filter((r) => r.path === "/funnels");
    expect(funnelRequests).toHaveLength(1);
    expect(funnelRequests[0]?.params.get("funnel_id")).toBe(String(FUNNEL_ID));
    expect(funnelRequests[0]?.params.get("on")).toBe(
      'properties["Experiment name"] + " | " + properties["Variant name"]',
    );

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^signal \(mixpanel, batched, \d+ ms\): mixpanel project \d+ \([^)]+\): funnel 7509, /m,
    );
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
      ].join("\n"),
    );
  });

  it("prints Mixpanel's refusal of a funnel id the project does not have, with funnel_id and its line", async () => {
    const file = example();
    const missing = {
      file: file.file.replace(".yaml", "-missing.yaml"),
      text: file.text.replace("funnel_id: 7509", "funnel_id: 9999"),
    };
    writeFileSync(missing.file, missing.text);
    const result = await cli(["--json", "signals", "test", missing.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).metrics[0].error).toMatchObject({
      code: "query_failed",
      field: "signal.connector.funnel_id",
      message: expect.stringContaining("funnel_id 9999 is not a funnel of this project"),
      location: { line: fileLine(missing.text, "    funnel_id:"), column: 16 },
    });
    expect(JSON.parse(result.stdout).metrics[0].error.message).toContain(
      "check funnel_id 9999: it must be a funnel saved in project",
    );
  });
});

/** What the dry run of every bigquery query here scans, bytes (the fake's `totalBytesProcessed`). */
const BIGQUERY_SCAN = 123_456_789;

/**
 * BigQuery's answer: the rows of the experiment(s) and the window bound to
 * the named parameters, with the schema `jobs.getQueryResults` gives them
 * (INT64 as `INTEGER`, every cell text, a TIMESTAMP in microseconds).
 */
function bigqueryRows(query: FakeBigQueryQuery) {
  const p = query.params;
  const experiments = (p.experiments as string[] | undefined) ?? [p.experiment as string];
  const rows = held(experiments, (p.from as Date).toISOString(), (p.to as Date).toISOString());
  const batched = p.experiments !== undefined;
  return {
    columns: [
      ...(batched ? [{ name: "experiment", type: "STRING" }] : []),
      { name: "arm", type: "STRING" },
      { name: "units", type: "INTEGER" },
      { name: "sum", type: "INTEGER" },
      { name: "sum_sq", type: "INTEGER" },
      { name: "ts", type: "TIMESTAMP" },
    ],
    rows: rows.map((r) => [...(batched ? [r.experiment] : []), r.arm, r.units, r.sum, r.sum_sq, new Date(r.ts)]),
    bytesProcessed: BIGQUERY_SCAN,
  };
}

/** BigQuery's syntax error for an unexpected `token`, at its [line:column] in the query as sent. */
function bigquerySyntaxError(sql: string, token: string) {
  const lines = sql.split("\n");
  const line = lines.findIndex((l) => l.includes(token));
  const column = (lines[line]?.indexOf(token) ?? 0) + 1;
  return {
    error: {
      reason: "invalidQuery",
      message: `Syntax error: Unexpected identifier "${token}" at [${line + 1}:${column}]`,
      location: "query",
    },
  };
}

describe("signals test: bigquery", () => {
  const connector = (sql: string, credential = "credentials_json_env: OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY") =>
    [
      "    project_id: acme-analytics",
      "    location: EU",
      "    dataset: product",
      `    ${credential}`,
      `    api_endpoint: ${bigquery.apiEndpoint}`,
      "    maximum_bytes_billed: 1 GB",
      queryBlock(sql),
    ].join("\n");
  const SINGLE = `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDER BY ts, arm`;
  const COST: ExpectedCost = {
    bytesProcessed: BIGQUERY_SCAN,
    maximumBytesBilled: 1_000_000_000,
    printed: `  cost: scans 123 MB (limit 1 GB) (${BIGQUERY_SCAN} bytes)`,
  };

  it("reads one experiment at a time with the key from the shell, then all at once with the key file, and prints the dry run's cost", async () => {
    const asked: FakeBigQueryQuery[] = [];
    bigquery.answer = (query) => {
      asked.push(query);
      return bigqueryRows(query);
    };
    const single = outcome("bigquery", connector(SINGLE));
    await expectRowsOfTheSource(single.file, "bigquery", "single", COST);
    const batched = outcome(
      "bigquery",
      connector(
        "SELECT experiment_key AS experiment, arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE experiment_key IN UNNEST(:experiments) AND ts > :from AND ts <= :to\n ORDER BY ts, arm",
        "credentials_file_env: OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY_FILE",
      ),
    );
    await expectRowsOfTheSource(batched.file, "bigquery", "batched", COST);
    // What the CLI sent: named parameters of BigQuery's types, the guard on every job, the default dataset.
    const job = asked.at(-1);
    expect(job?.sql).toContain("experiment_key IN UNNEST(@experiments) AND ts > @from AND ts <= @to");
    expect(job?.types).toEqual({ experiments: "ARRAY<STRING>", from: "TIMESTAMP", to: "TIMESTAMP" });
    expect(job).toMatchObject({
      dryRun: false,
      maximumBytesBilled: 1_000_000_000,
      location: "EU",
      defaultDataset: { projectId: "acme-analytics", datasetId: "product" },
    });
    expect(asked.some((q) => q.dryRun)).toBe(true);
  });

  it("prints BigQuery's own syntax error with the query field and its line; another account's key is auth_failed", async () => {
    bigquery.answer = (query) => bigquerySyntaxError(query.sql, "ORDR");
    const file = outcome(
      "bigquery",
      connector(
        `SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts\n  FROM exposures\n WHERE ${SINGLE_WHERE}\n ORDR BY ts`,
      ),
    );
    await expectSourceError(file, {
      code: "query_failed",
      field: "signal.connector.query",
      line: 4,
      ...inFile(file.text, " ORDR BY ts", "ORDR"),
      message: /Syntax error: Unexpected identifier "ORDR" at \[4:2\]/,
    });
    // A key of another service account (its own private key): the token endpoint refuses the signed JWT.
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    const wrong = await cli(["--json", "signals", "test", file.file, ...WINDOW], {
      OUTCOME_RUNTIME_SOURCE_BIGQUERY_KEY: bigquery.serviceAccountKey({ private_key: other }),
    });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout).metrics[0].error).toMatchObject({
      code: "auth_failed",
      field: "signal.connector.credentials_json_env",
      message: expect.stringContaining(
        `the token endpoint refused the service account key of ${bigquery.clientEmail} (invalid_grant: Invalid JWT Signature.)`,
      ),
      location: { line: fileLine(file.text, "    credentials_json_env:"), column: 27 },
    });
    expect(wrong.stdout).not.toContain("PRIVATE KEY");
  });

  it("refuses a read whose dry run scans more than maximum_bytes_billed (cost_exceeded), and runs no job", async () => {
    bigquery.answer = (query) => ({ ...bigqueryRows(query), bytesProcessed: 5_000_000_000 });
    bigquery.jobs.clear();
    const file = outcome("bigquery", connector(SINGLE));
    const text = await cli(["signals", "test", file.file, "--experiment", "checkout-v2", ...WINDOW]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("  failed: cost_exceeded");
    expect(text.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    query: |")}:12: error: signal\\.connector\\.query: bigquery query: the query would scan 5 GB, more than maximum_bytes_billed \\(1 GB\\); nothing was run.* \\[cost_exceeded\\]$`,
        "m",
      ),
    );
    const json = await cli(["--json", "signals", "test", file.file, "--experiment", "checkout-v2", ...WINDOW]);
    expect(json.code).toBe(1);
    // The error points at the query, whose scan is too large (its hint: read less, or raise the guard).
    expect(JSON.parse(json.stdout).metrics[0]).toMatchObject({
      cost: null,
      error: {
        code: "cost_exceeded",
        field: "signal.connector.query",
        location: { line: fileLine(file.text, "    query: |"), column: 12 },
      },
    });
    // Only dry runs reached BigQuery: no job was created, nothing billed.
    expect(bigquery.jobs.size).toBe(0);
  });
});

/**
 * GA4's answer to a report over the exposures: the users of each (experiment,
 * arm) on the days of the report's date range (each exposure row is that many
 * users exposed on the day before its end, `conversions` of whom fired the
 * conversion event), the rows the report's filter keeps.
 */
function ga4Rows(report: FakeGa4Report) {
  const range = report.dateRanges[0] ?? { startDate: "", endDate: "" };
  const outcome = JSON.stringify(report.dimensionFilter ?? {}).includes('"value":"purchase"');
  const totals = new Map<string, [string, string, number]>();
  for (const [experiment, arm, ts, units, conversions] of EXPOSURES) {
    const day = new Date(Date.parse(ts) - 86_400_000).toISOString().slice(0, 10);
    if (day < range.startDate || day > range.endDate) continue;
    const values = { "customUser:experiment_key": experiment, "customUser:experiment_arm": arm, eventName: "purchase" };
    if (!matchesFilter(report.dimensionFilter, values)) continue;
    const key = `${experiment}|${arm}`;
    const [, , n] = totals.get(key) ?? [experiment, arm, 0];
    totals.set(key, [experiment, arm, n + (outcome ? conversions : units)]);
  }
  return {
    rows: [...totals.values()].map(([experiment, arm, n]) => ({
      dimensionValues: [experiment, arm],
      metricValues: [String(n)],
    })),
  };
}

describe("signals test: ga4", () => {
  let ga4: FakeGa4;
  const connector = (apiUrl: string, extra: readonly string[] = []) =>
    [
      "    property_id: 287465190",
      "    credentials_json_env: OUTCOME_RUNTIME_SOURCE_GA4_KEY",
      "    event: purchase",
      ...extra,
      `    api_url: ${apiUrl}`,
    ].join("\n");
  /** The shell: the key, and the operator's consent to the fake's API and token endpoint. */
  const shell = (): Record<string, string> => ({
    OUTCOME_RUNTIME_SOURCE_GA4_KEY: ga4.serviceAccountKey(),
    SOURCE_API_URLS: `${environment().SOURCE_API_URLS} ga4=${ga4.apiUrl} ga4=${ga4.tokenUrl}`,
  });

  beforeAll(async () => {
    ga4 = await startFakeGa4({ propertyId: "287465190" });
    ga4.answer = ga4Rows;
  });

  afterAll(async () => {
    await ga4?.close();
  });

  it("reads every experiment with one pair of runReports and prints the users per arm", async () => {
    const file = outcome("ga4", connector(ga4.apiUrl));
    ga4.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], shell());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "ga4", form: "batched", error: null });
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    // First the connector's check (one row over the last day: the key, the property, the names), then the two
    // reports: the window (2025-01-01, 2025-01-07T00:00Z] is the days 2025-01-01 to 2025-01-06 of the property (UTC).
    const [check, ...reads] = ga4.reports();
    expect(check?.limit).toBe(1);
    expect(reads.map((r) => r.dateRanges)).toEqual([
      [{ startDate: "2025-01-01", endDate: "2025-01-06" }],
      [{ startDate: "2025-01-01", endDate: "2025-01-06" }],
    ]);

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], shell());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^signal \(ga4, batched, \d+ ms\): ga4 property 287465190 /m);
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
      ].join("\n"),
    );
  });

  it("prints GA4's refusal of a dimension the property has not registered, at the setting's line", async () => {
    const file = outcome("ga4", connector(ga4.apiUrl, ["    arm_dimension: customUser:variant"]));
    const text = await cli(["signals", "test", file.file, "--experiment", "checkout-v2", ...WINDOW], shell());
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("  failed: query_failed");
    expect(text.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    arm_dimension:")}:\\d+: error: signal\\.connector\\.arm_dimension: .*Field customUser:variant is not a valid dimension.* \\[query_failed\\]$`,
        "m",
      ),
    );
  });

  it("a key GA4's token endpoint refuses is auth_failed at the credential's setting", async () => {
    const file = outcome("ga4", connector(ga4.apiUrl));
    const other = ga4.serviceAccountKey({ client_email: "deleted@acme-analytics.iam.gserviceaccount.com" });
    const text = await cli(["--json", "signals", "test", file.file, ...WINDOW], {
      ...shell(),
      OUTCOME_RUNTIME_SOURCE_GA4_KEY: other,
    });
    expect(text.code).toBe(1);
    expect(JSON.parse(text.stdout).metrics[0].error).toMatchObject({
      code: "auth_failed",
      field: "signal.connector.credentials_json_env",
      location: { line: fileLine(file.text, "    credentials_json_env:") },
    });
    expect(text.stdout).not.toContain("PRIVATE KEY");
  });
});

describe("signals test: posthog", () => {
  const POSTHOG = { apiKey: "phx_cliR34d3rK3y", projectId: "81236" };
  let posthog: FakePosthog;
  const connector = () =>
    [
      `    project_id: ${POSTHOG.projectId}`,
      "    event: Order completed",
      "    personal_api_key_env: OUTCOME_RUNTIME_SOURCE_POSTHOG_KEY",
      `    api_url: ${posthog.baseUrl}`,
    ].join("\n");
  /** The shell's environment with the key and the operator's consent to the local stand-in. */
  const env = (key = POSTHOG.apiKey) => ({
    OUTCOME_RUNTIME_SOURCE_POSTHOG_KEY: key,
    SOURCE_API_URLS: `${environment().SOURCE_API_URLS} posthog=${posthog.baseUrl}`,
  });

  beforeAll(async () => {
    posthog = await startFakePosthog(POSTHOG);
    // Each exposure row is that many persons exposed on the day before its end (PostHog's own
    // `$feature_flag_called`, the flag key and the variant), of whom `conversions` fired the event after.
    for (const [experiment, arm, ts, units, conversions] of EXPOSURES) {
      const exposedAt = new Date(Date.parse(ts) - 86_400_000).toISOString();
      const convertedAt = new Date(Date.parse(ts) - 3_600_000).toISOString();
      for (let u = 0; u < units; u++) {
        const personId = `${experiment}/${arm}/${ts}/${u}`;
        posthog.events.push({
          event: "$feature_flag_called",
          personId,
          timestamp: exposedAt,
          properties: { $feature_flag: experiment, $feature_flag_response: arm },
        });
        if (u < conversions)
          posthog.events.push({ event: "Order completed", personId, timestamp: convertedAt, properties: {} });
      }
    }
  });
  afterAll(async () => {
    await posthog?.close();
  });

  it("reads every experiment with one HogQL query and prints the persons per arm, cumulative up to the window's end", async () => {
    const file = outcome("posthog", connector());
    posthog.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "posthog", form: "batched", error: null });
    // Cumulative: every person exposed up to the window's end, those before its start too (the 2024 row).
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = EXPOSURES.filter(([e, a, ts]) => e === experiment && a === arm && ts <= TO);
        const units = rows.reduce((n, r) => n + r[3], 0);
        const sum = rows.reduce((n, r) => n + r[4], 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    expect(posthog.requests).toHaveLength(1);
    expect(posthog.requests[0]?.values).toEqual({
      experiments: ["checkout-v2", "search-v1"],
      arms: ["control", "treatment"],
      to: TO,
    });

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^signal \(posthog, batched, \d+ ms\): posthog project 81236 /m);
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3009   619  619     0.205716",
        "    treatment  (window end)  3000   702  702     0.234",
      ].join("\n"),
    );
  });

  it("prints PostHog's refusal of an expired key with the credential's setting and its line", async () => {
    const file = outcome("posthog", connector());
    const result = await cli(["signals", "test", file.file, ...WINDOW], env("phx_expired"));
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: auth_failed");
    expect(result.stderr).not.toContain("phx_expired");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    personal_api_key_env:")}:27: error: signal\\.connector\\.personal_api_key_env: posthog query: the personal API key was refused .*Personal API key found in request Authorization header is invalid\\..* \\[auth_failed\\]$`,
        "m",
      ),
    );
  });

  it("prints HogQL's error on the user's query with the query's setting", async () => {
    const query = [
      "    query: >-",
      "      SELECT properties.$feature_flag_response AS arm, count() AS units, 0 AS sum, 0 AS sum_sq",
      "      FROM evnts WHERE properties.$feature_flag = {experiment}",
      "      AND timestamp <= toDateTime({to}) GROUP BY arm",
    ].join("\n");
    const file = outcome("posthog", connector().replace("    event: Order completed", query));
    const result = await cli(["--json", "signals", "test", file.file, ...WINDOW], env());
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).metrics[0]).toMatchObject({
      form: "single",
      error: {
        code: "query_failed",
        field: "signal.connector.query",
        message: expect.stringContaining("Unknown table `evnts`."),
      },
    });
  });
});

describe("signals test: prometheus", () => {
  /**
   * Each (experiment, arm) is a pair of counters the service exposes: requests (the exposures) and failed
   * requests (the conversions), scraped with the timestamps of the rows: 0 (or the count before the window)
   * just after the window start, the running total at each row's time, and the total again at the window
   * end, so increase() over the window extrapolates nothing.
   */
  const series = new Map<string, { experiment: string; arm: string; samples: [number, number, number][] }>();
  let prometheus: RunningPrometheus;
  const connector = (url: string, errors = "checkout_errors_total") =>
    [`    url: ${url}`, "    requests: checkout_requests_total", `    errors: ${errors}`].join("\n");

  beforeAll(async () => {
    const start = Date.parse(FROM) + 1000;
    for (const [experiment, arm, ts, units, conversions] of [...EXPOSURES].sort((a, b) => a[2].localeCompare(b[2]))) {
      const key = `${experiment}|${arm}`;
      const entry = series.get(key) ?? { experiment, arm, samples: [] };
      const [, u, c] = entry.samples.at(-1) ?? [0, 0, 0];
      const at = Date.parse(ts);
      if (at > start && !entry.samples.some(([t]) => t === start)) entry.samples.push([start, u, c]);
      entry.samples.push([at, u + units, c + conversions]);
      series.set(key, entry);
    }
    for (const entry of series.values()) {
      const [, u, c] = entry.samples.at(-1) ?? [0, 0, 0];
      entry.samples.push([Date.parse(TO), u, c]);
    }
    const exposition = (name: string, column: 1 | 2) =>
      [
        `# TYPE ${name} counter`,
        ...[...series.values()].flatMap(({ experiment, arm, samples }) =>
          samples.map((sample) => `${name}{experiment="${experiment}",arm="${arm}"} ${sample[column]} ${sample[0]}`),
        ),
      ].join("\n");
    const text = `${exposition("checkout_requests_total", 1)}\n${exposition("checkout_errors_total", 2)}\n`;
    prometheus = await startPrometheus({ targets: [{ metrics: () => text }] });
    // Both counters of every series hold all their samples of the window.
    const inWindow = (experiment: string, arm: string) =>
      series.get(`${experiment}|${arm}`)?.samples.filter(([t]) => t >= Date.parse(FROM)).length;
    for (const name of ["checkout_requests_total", "checkout_errors_total"]) {
      await prometheus.waitForSamples(
        `count_over_time(${name}[7d])`,
        (samples) =>
          samples.length === series.size &&
          samples.every((x) => Number(x.value) === inWindow(x.metric.experiment ?? "", x.metric.arm ?? "")),
        { time: new Date(TO) },
      );
    }
  }, 60_000);

  afterAll(async () => {
    await prometheus?.close();
  });

  it("reads every experiment with one query per counter and prints the requests and failed requests per arm", async () => {
    const file = outcome("prometheus", connector(prometheus.url));
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "prometheus", form: "batched", error: null });
    // Cumulative over the window, as of its end: one row per arm.
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^signal \(prometheus, batched, \d+ ms\): prometheus http:\/\/127\.0\.0\.1:\d+: error rate /m,
    );
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
        "  search-v1:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  500    50   50      0.1",
        "    treatment  (window end)  480    60   60      0.125",
      ].join("\n"),
    );
  });

  it("prints Prometheus's own bad_data error with the setting and its line", async () => {
    const file = outcome("prometheus", connector(prometheus.url, 'checkout_errors_total{code=~"(("}'));
    const result = await cli(["signals", "test", file.file, "--experiment", "checkout-v2", ...WINDOW]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: query_failed");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    errors:")}:13: error: signal\\.connector\\.errors: prometheus connector: errors: Prometheus refused the expression \\(bad_data: .*\\[query_failed\\]$`,
        "m",
      ),
    );
  });

  it("refuses a latency quantile as the outcome's signal before reading anything, and says to make it a guardrail", async () => {
    const file = outcome(
      "prometheus",
      [`    url: ${prometheus.url}`, "    latency: http_request_duration_seconds", "    threshold: 0.3"].join("\n"),
    );
    const result = await cli(["signals", "test", file.file, "--experiment", "checkout-v2", ...WINDOW]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `${file.file}:${fileLine(file.text, "    latency:")}:5: error[invalid_connector]: signal.connector.latency: a latency quantile cannot be the outcome's signal`,
    );
    expect(result.stderr).toContain("use it as a guardrail");
  });
});

describe("signals test: datadog", () => {
  const DATADOG = { apiKey: "cli-datadog-api-key", applicationKey: "cli-datadog-application-key" };
  let datadog: FakeDatadog;
  const connector = [
    "    api_key_env: OUTCOME_RUNTIME_SOURCE_DATADOG_API_KEY",
    "    application_key_env: OUTCOME_RUNTIME_SOURCE_DATADOG_APPLICATION_KEY",
    "    requests: sum:trace.http.request.hits{service:checkout}",
    "    errors: sum:trace.http.request.errors{service:checkout}",
    "    api_url: API_URL",
  ].join("\n");
  /** The shell's variables: the keys, and the operator's consent to the fake's URL besides the others. */
  const env = (extra: Record<string, string> = {}) => ({
    OUTCOME_RUNTIME_SOURCE_DATADOG_API_KEY: DATADOG.apiKey,
    OUTCOME_RUNTIME_SOURCE_DATADOG_APPLICATION_KEY: DATADOG.applicationKey,
    SOURCE_API_URLS: `${environment().SOURCE_API_URLS} datadog=${datadog.baseUrl}`,
    ...extra,
  });

  beforeAll(async () => {
    datadog = await startFakeDatadog(DATADOG);
    // Each exposure row is that many requests of the arm on the day before its end, of which `conversions` failed.
    for (const [experiment, arm, ts, units, conversions] of EXPOSURES) {
      const timestamp = Date.parse(ts) / 1000 - 86_400;
      const tags = ["service:checkout", `experiment:${experiment}`, `arm:${arm}`];
      datadog.points.push({ metric: "trace.http.request.hits", tags, timestamp, value: units });
      datadog.points.push({ metric: "trace.http.request.errors", tags, timestamp, value: conversions });
    }
  });

  afterAll(async () => {
    await datadog?.close();
  });

  it("reads every experiment with one pair of metric queries and prints the requests and errors per arm", async () => {
    const file = outcome("datadog", connector.replace("API_URL", datadog.baseUrl));
    datadog.requests.length = 0;
    const result = await cli(["--json", "signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0]).toMatchObject({ path: "signal", type: "datadog", form: "batched", error: null });
    // Datadog sums each arm's counts over the window: one row per arm, as of the window's end.
    const perArm = (experiment: string) =>
      ["control", "treatment"].map((arm) => {
        const rows = held([experiment]).filter((r) => r.arm === arm);
        const units = rows.reduce((n, r) => n + r.units, 0);
        const sum = rows.reduce((n, r) => n + r.sum, 0);
        return { arm, ts: null, units, sum, sum_sq: sum, mean: sum / units };
      });
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "checkout-v2", error: null, rows: perArm("checkout-v2") },
      { experiment: "search-v1", error: null, rows: perArm("search-v1") },
    ]);
    expect(datadog.requests.map((r) => r.params.get("query"))).toEqual([
      "sum:trace.http.request.hits{service:checkout AND experiment IN (checkout-v2, search-v1) AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 518400)",
      "sum:trace.http.request.errors{service:checkout AND experiment IN (checkout-v2, search-v1) AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 518400)",
    ]);

    const text = await cli(["signals", "test", file.file, ...EXPERIMENTS, ...WINDOW], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^signal \(datadog, batched, \d+ ms\): datadog /m);
    expect(text.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  3000   610  610     0.203333",
        "    treatment  (window end)  3000   702  702     0.234",
        "  search-v1:",
        "    arm        ts            units  sum  sum_sq  mean",
        "    control    (window end)  500    50   50      0.1",
        "    treatment  (window end)  480    60   60      0.125",
      ].join("\n"),
    );
  });

  it("prints Datadog's refusal of the keys with the credential's setting and its line, never the key", async () => {
    const file = outcome("datadog", connector.replace("API_URL", datadog.baseUrl));
    const result = await cli(
      ["signals", "test", file.file, ...WINDOW],
      env({ OUTCOME_RUNTIME_SOURCE_DATADOG_APPLICATION_KEY: "not-the-application-key" }),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: auth_failed");
    expect(result.stderr).not.toContain("not-the-application-key");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    api_key_env:")}:\\d+: error: signal\\.connector\\.api_key_env: datadog /api/v1/query: Datadog refused the keys \\(403: Forbidden\\).* \\[auth_failed\\]$`,
        "m",
      ),
    );
  });

  it("prints Datadog's refusal of a query with the setting it came from and its line", async () => {
    const file = outcome(
      "datadog",
      connector
        .replace("API_URL", datadog.baseUrl)
        .replace(
          "sum:trace.http.request.errors{service:checkout}",
          "sum:trace.http.request.errors{service:checkout OR}",
        ),
    );
    const result = await cli(["signals", "test", file.file, ...WINDOW], env());
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: query_failed");
    expect(result.stderr).toMatch(
      new RegExp(
        `^${literal(file.file)}:${fileLine(file.text, "    errors:")}:\\d+: error: signal\\.connector\\.errors: datadog /api/v1/query: Datadog refused the query of errors \\(400: Error parsing query: .* \\[query_failed\\]$`,
        "m",
      ),
    );
  });
});
