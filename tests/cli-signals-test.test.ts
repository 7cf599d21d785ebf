/**
 * `outcome-runtime signals test` as a user runs it: a real CLI process reading
 * a real Postgres source (a scratch database, through its read-only role, as
 * the worker would) and a csv file, printing what the worker would store.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { setWorkspaceSecret, sourceAccessFromEnv } from "@outcome-runtime/runtime";
import {
  createSourceDatabase,
  createTestDatabase,
  type Seeded,
  type SourceDatabase,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the source table stands for the user's own database, read by the postgres connector
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const SOURCE_ENV = "OUTCOME_RUNTIME_SOURCE_DRY_RUN_URL";

let source: SourceDatabase;
let dir: string;
/** An API on a database of its own whose workspace holds the secret `analytics-db` (the source's reader URL). */
let api: { t: TestDatabase; seed: Seeded; redis: Redis; app: Awaited<ReturnType<typeof buildTestApp>>; url: string };

beforeAll(async () => {
  source = await createSourceDatabase();
  const admin = new pg.Client({ connectionString: source.adminUrl });
  await admin.connect();
  await admin.query(`
    CREATE TABLE exposures (experiment_key text, arm text, ts timestamptz, units bigint, conversions bigint);
    INSERT INTO exposures VALUES
      ('checkout-v2', 'control',   '2025-01-03T00:00:00Z', 1000, 200),
      ('checkout-v2', 'treatment', '2025-01-03T00:00:00Z', 1010, 232),
      ('checkout-v2', 'control',   '2025-01-06T00:00:00Z', 2000, 410),
      ('checkout-v2', 'treatment', '2025-01-06T00:00:00Z', 1990, 470),
      ('search-v1',   'control',   '2025-01-06T00:00:00Z', 500, 50),
      ('search-v1',   'treatment', '2025-01-06T00:00:00Z', 480, 60),
      ('checkout-v2', 'control',   '2024-12-01T00:00:00Z', 9, 9);`);
  await admin.end();
  const t = await createTestDatabase();
  const seed = await seedWorkspace(t.db);
  const deps = {
    db: t.db,
    sources: sourceAccessFromEnv({ OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("base64") }),
  };
  await setWorkspaceSecret(deps, seed.admin, { name: "analytics-db", value: source.readerUrl });
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  const app = await buildTestApp(t.db, redis, { deps });
  await app.listen({ port: 0, host: "127.0.0.1" });
  api = { t, seed, redis, app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
  dir = mkdtempSync(join(tmpdir(), "signals-test-"));
  writeFileSync(
    join(dir, "errors.csv"),
    "ts,arm,units,sum,sum_sq\n2025-01-04T00:00:00Z,control,100,2,2\n2025-01-04T00:00:00Z,treatment,100,3,3\n",
  );
});
afterAll(async () => {
  await api.app.close();
  api.redis.disconnect();
  await api.t.drop();
  rmSync(dir, { recursive: true, force: true });
  await source.drop();
});

const QUERY =
  "SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts FROM exposures WHERE experiment_key = :experiment AND ts > :from AND ts <= :to";
const BATCHED =
  "SELECT experiment_key AS experiment, arm, units, conversions AS sum, conversions AS sum_sq, ts FROM exposures WHERE experiment_key = ANY(:experiments) AND ts > :from AND ts <= :to";

/** An outcome whose signal reads `signalQuery` and whose one guardrail reads the csv file (or `guardrail`). */
function outcome(signalQuery: string, guardrail = "type: csv\n        path: errors.csv"): string {
  const file = join(dir, `outcome-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `version: 1
id: dry-run
name: Dry run
owner: owner@acme.example
signal:
  metric: checkout_conversion
  kind: proportion
  unit: user
  connector:
    type: postgres
    database_url_env: ${SOURCE_ENV}
    query: |
      SELECT arm, units, conversions AS sum, conversions AS sum_sq, ts
        FROM exposures
       WHERE ${signalQuery}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  guardrails:
    - metric: error_rate
      kind: proportion
      direction: decrease
      max_regression: 1%
      connector:
        ${guardrail}
`,
  );
  return file;
}

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", [SOURCE_ENV]: source.readerUrl, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const WINDOW = ["--from", "2025-01-01", "--to", "2025-01-07T00:00:00Z"];
const WHERE = "experiment_key = :experiment AND ts > :from AND ts <= :to";

describe("outcome-runtime signals test", () => {
  it("reads each metric once and prints the rows per experiment and arm, the time and the form", async () => {
    const file = outcome(WHERE);
    const result = await cli([
      "signals",
      "test",
      file,
      "--experiment",
      "checkout-v2",
      "--experiment",
      "search-v1",
      ...WINDOW,
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toBe(
      `${file}: read 2025-01-01T00:00:00.000Z to 2025-01-07T00:00:00.000Z, arms control, treatment`,
    );
    expect(result.stdout).toMatch(/^signal \(postgres, single, \d+ ms\): postgres /m);
    expect(result.stdout).toContain(
      [
        "  checkout-v2:",
        "    arm        ts                        units  sum  sum_sq  mean",
        "    control    2025-01-03T00:00:00.000Z  1000   200  200     0.2",
        "    treatment  2025-01-03T00:00:00.000Z  1010   232  232     0.229703",
        "    control    2025-01-06T00:00:00.000Z  2000   410  410     0.205",
        "    treatment  2025-01-06T00:00:00.000Z  1990   470  470     0.236181",
        "  search-v1:",
      ].join("\n"),
    );
    // The csv guardrail, read the same way (its file relative to the outcome's directory).
    expect(result.stdout).toMatch(/^constraints\.guardrails\[0\] \(csv, single, \d+ ms\): csv errors\.csv$/m);
    expect(result.stdout).toContain("    control    2025-01-04T00:00:00.000Z  100    2    2       0.02");
  });

  it("--json prints the whole report; a batched query reads every experiment in one request", async () => {
    const file = outcome(WHERE);
    writeFileSync(
      file,
      (await import("node:fs"))
        .readFileSync(file, "utf8")
        .replace(/query: \|[\s\S]*?target:/, `query: ${JSON.stringify(BATCHED)}\ntarget:`),
    );
    const result = await cli([
      "--json",
      "signals",
      "test",
      file,
      "--experiment",
      "checkout-v2",
      "--experiment",
      "search-v1",
      ...WINDOW,
    ]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      ok: true,
      from: "2025-01-01T00:00:00.000Z",
      to: "2025-01-07T00:00:00.000Z",
      experiments: ["checkout-v2", "search-v1"],
      placeholder: false,
      arms: ["control", "treatment"],
    });
    const [signal, guardrail] = report.metrics;
    expect(signal).toMatchObject({ path: "signal", type: "postgres", form: "batched", cost: null, error: null });
    expect(signal.queryMs).toEqual(expect.any(Number));
    expect(signal.experiments[1]).toEqual({
      experiment: "search-v1",
      error: null,
      rows: [
        { arm: "control", units: 500, sum: 50, sum_sq: 50, mean: 0.1, ts: "2025-01-06T00:00:00.000Z" },
        { arm: "treatment", units: 480, sum: 60, sum_sq: 60, mean: 0.125, ts: "2025-01-06T00:00:00.000Z" },
      ],
    });
    expect(guardrail).toMatchObject({ path: "constraints.guardrails[0]", type: "csv", form: "single" });
  });

  it("without --experiment, reads a placeholder key and says so; the window defaults to the last 7 days", async () => {
    const result = await cli(["--json", "signals", "test", outcome(WHERE)]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.placeholder).toBe(true);
    expect(report.experiments).toEqual(["outcome-runtime-signals-test"]);
    expect(Date.parse(report.to) - Date.parse(report.from)).toBe(7 * 86_400_000);
    expect(report.metrics[0].experiments).toEqual([
      { experiment: "outcome-runtime-signals-test", rows: [], error: null },
    ]);
    const text = await cli(["signals", "test", outcome(WHERE)]);
    expect(text.stdout).toContain('no --experiment given: read as experiment "outcome-runtime-signals-test"');
  });

  it("a query the source refuses: the field, the file's line and Postgres's message, exit 1; the other metrics still run", async () => {
    const file = outcome(`experiment_key = :experiment AND ts <= :to AND no_such_column > 0`);
    const result = await cli(["signals", "test", file, "--experiment", "checkout-v2", ...WINDOW]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("  failed: query_failed");
    // The query's third line (WHERE ...) is the file's 15th, indented 6.
    expect(result.stderr).toMatch(
      new RegExp(
        `^${file.replaceAll(".", "\\.")}:15:7: error: signal\\.connector\\.query: postgres query at line 3: column "no_such_column" does not exist`,
        "m",
      ),
    );
    expect(result.stdout).toMatch(/^constraints\.guardrails\[0\] \(csv, single, \d+ ms\)/m);
  });

  it("a workspace secret needs the API, an unset variable is named, a bad date is a usage error", async () => {
    const secret = outcome(
      WHERE,
      `type: postgres\n        database_url_secret: analytics-db\n        query: ${JSON.stringify(QUERY)}`,
    );
    const result = await cli(["--json", "signals", "test", secret, "--experiment", "checkout-v2", ...WINDOW]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).metrics[1].error).toMatchObject({
      code: "invalid_config",
      field: "constraints.guardrails[0].connector.database_url_secret",
      message: expect.stringContaining("analytics-db is a workspace secret, which only the API opens; run with --api"),
      location: { line: expect.any(Number), column: expect.any(Number) },
    });
    const unset = await cli(["signals", "test", outcome(WHERE), ...WINDOW], { [SOURCE_ENV]: "" });
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain(
      `signal.connector.database_url_env: the environment variable ${SOURCE_ENV} is not set in this shell`,
    );
    const bad = await cli(["signals", "test", outcome(WHERE), "--from", "last week"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from "last week" is not a date; write ISO 8601');
  });

  it("--api runs the dry run on the API, with the workspace's secret the CLI cannot open", async () => {
    const file = outcome(
      WHERE,
      `type: postgres\n        database_url_secret: analytics-db\n        query: ${JSON.stringify(QUERY)}`,
    );
    const env = { OUTCOME_RUNTIME_URL: api.url, OUTCOME_RUNTIME_API_KEY: api.seed.adminKey, [SOURCE_ENV]: "" };
    const result = await cli(["--json", "signals", "test", file, "--api", "--experiment", "search-v1", ...WINDOW], env);
    // The signal names a variable the API does not have: its error; the guardrail's secret is opened there.
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.metrics[0].error).toMatchObject({
      code: "invalid_config",
      field: "signal.connector.database_url_env",
    });
    expect(report.metrics[1]).toMatchObject({ path: "constraints.guardrails[0]", error: null });
    expect(report.metrics[1].experiments[0].rows.map((r: { arm: string; units: number }) => [r.arm, r.units])).toEqual([
      ["control", 500],
      ["treatment", 480],
    ]);
    const anonymous = await cli(["signals", "test", file, "--api"], { ...env, OUTCOME_RUNTIME_API_KEY: "" });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain("unauthenticated");
  });
});
