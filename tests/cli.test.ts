/**
 * The CLI as a user runs it: a real process, talking to a real API on a
 * local port, backed by the real Postgres and Redis.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import type { Seeded } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const invalidDir = `${root}packages/spec/fixtures/invalid/`;
const run = promisify(execFile);

let api: TestApi;
let seed: Seeded;
let url: string;

beforeAll(async () => {
  api = await createTestApi();
  seed = api.seed;
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await api.close();
});

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: seed.adminKey, ...env },
      maxBuffer: 20 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A stack trace line as Node prints them. */
const STACK = /^\s+at .+[(:]\d+:\d+\)?$/m;

describe("outcome-runtime validate", () => {
  it("exits 0 on the example outcome", async () => {
    const result = await cli(["validate", "outcome.example.yaml"]);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout.trim().split("\n")).toEqual([
      "outcome.example.yaml: ok",
      "  signal: query reads one experiment at a time (:experiment); :experiments reads many at once",
      "  constraints.guardrails[0]: query reads one experiment at a time (:experiment); :experiments reads many at once",
    ]);
  });

  it("says a Mixpanel proportion reads in batches and a Mixpanel mean one experiment at a time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-mixpanel-"));
    try {
      writeFileSync(
        join(dir, "outcome.yaml"),
        `version: 1
id: mixpanel-forms
name: Mixpanel forms
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  connector:
    type: mixpanel
    project_id: 2741931
    event: Order completed
    username_env: OUTCOME_RUNTIME_SOURCE_MP_USERNAME
    secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET
target:
  direction: increase
  value: 5%
  relative: true
horizon: 30d
constraints:
  guardrails:
    - metric: order_value
      kind: mean
      direction: increase
      max_regression: 1
      relative: false
      connector:
        type: mixpanel
        project_id: 2741931
        event: Order completed
        value_property: amount
        username_env: OUTCOME_RUNTIME_SOURCE_MP_USERNAME
        secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET
`,
      );
      const result = await cli(["validate", join(dir, "outcome.yaml")]);
      expect(result).toMatchObject({ code: 0 });
      expect(result.stdout.trim().split("\n").slice(1)).toEqual([
        "  signal: mixpanel reads many experiments at once (segmented by experiment and arm), 2 requests per 100 experiments",
        "  constraints.guardrails[0]: mixpanel reads one experiment at a time (a mean's sums have no breakdown), 1 + 2 × arms requests each",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says a Mixpanel saved funnel reads in batches at one request per 100 experiments", async () => {
    const result = await cli(["validate", "examples/outcomes/mixpanel-checkout-funnel.yaml"]);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout.trim().split("\n").slice(1)).toEqual([
      "  signal: mixpanel reads many experiments at once from saved funnel 7509 (segmented by experiment and arm), 1 request per 100 experiments",
      "  constraints.guardrails[0]: mixpanel reads many experiments at once (segmented by experiment and arm), 2 requests per 100 experiments",
    ]);
  });

  it("says the form of every SQL source's query, of a csv file and of a connector module's type", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-forms-"));
    try {
      // A connector of one's own, loaded from an absolute path as CONNECTOR_MODULES allows: batched when asked.
      const module = join(dir, "warehouse-api.mjs");
      writeFileSync(
        module,
        `export default {
  type: "warehouse-api",
  description: "arm aggregates from the team's warehouse API",
  create: () => ({
    describe: () => "warehouse-api",
    fetchArmAggregates: async () => [],
    fetchBatchAggregates: async () => new Map(),
    fetchOutcomeSeries: async () => [],
    close: async () => {},
  }),
  readsInBatches: (config) => config.batch === true,
};
`,
      );
      const W = "ts > :from AND ts <= :to";
      const guardrail = (metric: string, connector: string) =>
        `    - metric: ${metric}\n      kind: proportion\n      direction: decrease\n      max_regression: 1%\n      connector:\n${connector
          .split("\n")
          .map((l) => `        ${l}`)
          .join("\n")}`;
      writeFileSync(
        join(dir, "outcome.yaml"),
        `version: 1
id: every-form
name: Every form
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  connector:
    type: mysql
    database_url_env: OUTCOME_RUNTIME_SOURCE_MYSQL_URL
    query: "SELECT arm, units, conversions AS \`sum\`, conversions AS sum_sq FROM exposures WHERE experiment_key = :experiment AND ${W}"
target:
  direction: increase
  value: 5%
  relative: true
horizon: 30d
constraints:
  guardrails:
${[
  guardrail(
    "mysql_batched",
    `type: mysql\ndatabase_url_env: OUTCOME_RUNTIME_SOURCE_MYSQL_URL\nquery: "SELECT experiment_key AS experiment, arm, units, 0 AS \`sum\`, 0 AS sum_sq FROM e WHERE experiment_key IN (:experiments) AND ${W}"`,
  ),
  guardrail(
    "duckdb_single",
    `type: duckdb\nquery: "SELECT arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE experiment_key = :experiment AND ${W}"`,
  ),
  guardrail(
    "duckdb_batched",
    `type: duckdb\nquery: "SELECT experiment_key AS experiment, arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE experiment_key = ANY(:experiments) AND ${W}"`,
  ),
  guardrail(
    "clickhouse_single",
    `type: clickhouse\nurl_env: OUTCOME_RUNTIME_SOURCE_CH_URL\nquery: "SELECT arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE experiment_key = :experiment AND ${W}"`,
  ),
  guardrail(
    "clickhouse_batched",
    `type: clickhouse\nurl_env: OUTCOME_RUNTIME_SOURCE_CH_URL\nquery: "SELECT experiment_key AS experiment, arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE has(:experiments, experiment_key) AND ${W}"`,
  ),
  guardrail(
    "snowflake_single",
    `type: snowflake\naccount: myorg-myaccount\nuser: reader\nwarehouse: WH\nrole: READER\ndatabase: DB\nprivate_key_env: OUTCOME_RUNTIME_SOURCE_SF_KEY\nquery: "SELECT arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE experiment_key = :experiment AND ${W}"`,
  ),
  guardrail(
    "snowflake_batched",
    `type: snowflake\naccount: myorg-myaccount\nuser: reader\nwarehouse: WH\nrole: READER\ndatabase: DB\nprivate_key_env: OUTCOME_RUNTIME_SOURCE_SF_KEY\nquery: "SELECT experiment_key AS experiment, arm, units, 0 AS sum, 0 AS sum_sq FROM e WHERE experiment_key IN (:experiments) AND ${W}"`,
  ),
  guardrail("module_batched", "type: warehouse-api\nbatch: true"),
  guardrail("module_single", "type: warehouse-api\nbatch: false"),
  guardrail("errors", "type: csv\npath: errors.csv"),
].join("\n")}
`,
      );
      writeFileSync(join(dir, "errors.csv"), "ts,arm,units,sum,sum_sq\n");
      const result = await cli(["validate", join(dir, "outcome.yaml")], { CONNECTOR_MODULES: module });
      expect(result.stderr).toBe("");
      expect(result).toMatchObject({ code: 0 });
      const single = ": query reads one experiment at a time (:experiment); :experiments reads many at once";
      const batched = ": query reads many experiments at once (:experiments), one query per batch";
      expect(result.stdout.trim().split("\n")).toEqual([
        `${join(dir, "outcome.yaml")}: ok`,
        `  signal${single}`,
        `  constraints.guardrails[0]${batched}`,
        `  constraints.guardrails[1]${single}`,
        `  constraints.guardrails[2]${batched}`,
        `  constraints.guardrails[3]${single}`,
        `  constraints.guardrails[4]${batched}`,
        `  constraints.guardrails[5]${single}`,
        `  constraints.guardrails[6]${batched}`,
        "  constraints.guardrails[7]: warehouse-api reads many experiments at once (its module's readsInBatches), one request per batch",
        "  constraints.guardrails[8]: warehouse-api reads one experiment at a time (its module's readsInBatches), one request each",
        "  constraints.guardrails[9]: csv reads one experiment at a time from its file",
      ]);
      const json = await cli(["--json", "validate", join(dir, "outcome.yaml")], { CONNECTOR_MODULES: module });
      expect(JSON.parse(json.stdout).files[0].queries).toEqual([
        { path: "signal", connector: "mysql", reads: "query", form: "single" },
        { path: "constraints.guardrails[0]", connector: "mysql", reads: "query", form: "batched" },
        { path: "constraints.guardrails[1]", connector: "duckdb", reads: "query", form: "single" },
        { path: "constraints.guardrails[2]", connector: "duckdb", reads: "query", form: "batched" },
        { path: "constraints.guardrails[3]", connector: "clickhouse", reads: "query", form: "single" },
        { path: "constraints.guardrails[4]", connector: "clickhouse", reads: "query", form: "batched" },
        { path: "constraints.guardrails[5]", connector: "snowflake", reads: "query", form: "single" },
        { path: "constraints.guardrails[6]", connector: "snowflake", reads: "query", form: "batched" },
        { path: "constraints.guardrails[7]", connector: "warehouse-api", reads: "module", form: "batched" },
        { path: "constraints.guardrails[8]", connector: "warehouse-api", reads: "module", form: "single" },
        { path: "constraints.guardrails[9]", connector: "csv", reads: "file", form: "single" },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports all three independent mistakes with line and column, and exits 1", async () => {
    const result = await cli(["validate", "packages/spec/fixtures/three-mistakes.yaml"]);
    expect(result.code).toBe(1);
    const positions = [
      ...result.stderr.matchAll(/^packages\/spec\/fixtures\/three-mistakes\.yaml:(\d+):(\d+): error\[(\w+)\]/gm),
    ];
    expect(positions.map((m) => Number(m[1]))).toEqual([11, 15, 19]);
    expect(positions.every((m) => Number(m[2]) > 0)).toBe(true);
    expect(result.stderr).toContain("hint:");
    expect(result.stderr).not.toMatch(STACK);
  });

  it("gives every malformed fixture a clear positioned error and no stack trace", async () => {
    const files = readdirSync(invalidDir).filter((f) => f !== "expected.json");
    expect(files.length).toBeGreaterThanOrEqual(25);
    const result = await cli(["validate", "--json", ...files.map((f) => `packages/spec/fixtures/invalid/${f}`)]);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toMatch(STACK);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      files: { file: string; ok: boolean; errors: { line: number; column: number; message: string; code: string }[] }[];
    };
    expect(report.ok).toBe(false);
    expect(report.files).toHaveLength(files.length);
    for (const f of report.files) {
      expect(f.ok, f.file).toBe(false);
      expect(f.errors.length, f.file).toBeGreaterThan(0);
      for (const e of f.errors) {
        expect(e.line, f.file).toBeGreaterThanOrEqual(1);
        expect(e.column, f.file).toBeGreaterThanOrEqual(1);
        expect(e.message.length, f.file).toBeGreaterThan(10);
        expect(e.code, f.file).not.toBe("internal_error");
      }
    }
  });

  it("refuses a multi-statement query (and a query reading the server's files) at its line and column in the YAML", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cli-validate-sql-"));
    try {
      const example = readFileSync(`${root}outcome.example.yaml`, "utf8");
      const multi = example.replace(
        "       GROUP BY e.arm\n",
        "       GROUP BY e.arm;\n      COMMIT; CREATE TABLE pwned (a int)\n",
      );
      expect(multi).not.toBe(example);
      writeFileSync(join(dir, "multi.yaml"), multi);
      const lines = multi.split("\n");
      const line = lines.findIndex((l) => l.includes("COMMIT; CREATE TABLE pwned")) + 1;
      const column = (lines[line - 1] ?? "").indexOf("COMMIT") + 1;
      const result = await cli(["validate", join(dir, "multi.yaml")]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `${join(dir, "multi.yaml")}:${line}:${column}: error[sql_refused]: signal.connector.query: the query holds more than one statement`,
      );
      const files = example.replace(
        "count(*)                          AS units",
        "count(pg_read_file('/etc/passwd')) AS units",
      );
      writeFileSync(join(dir, "files.yaml"), files);
      const read = await cli(["validate", join(dir, "files.yaml")]);
      expect(read.code).toBe(1);
      expect(read.stderr).toMatch(
        /files\.yaml:28:\d+: error\[sql_refused\]: signal\.connector\.query: the function pg_read_file\(\) reads files of the server/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("says plainly when a file does not exist", async () => {
    const result = await cli(["validate", "nope.yaml"]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe("error: nope.yaml: no such file");
  });
});

describe("outcome-runtime apply, activate, status, keys", () => {
  it("applies, re-applies without a revision, activates and shows status", async () => {
    const first = await cli(["apply", "outcome.example.yaml"]);
    expect(first.stdout.trim()).toBe("checkout-abandonment: created (revision 1, draft)");
    const second = await cli(["apply", "outcome.example.yaml"]);
    expect(second.stdout.trim()).toBe("checkout-abandonment: unchanged (revision 1, draft)");
    const activated = (await cli(["activate", "checkout-abandonment"])).stdout.trim().split("\n");
    expect(activated[0]).toBe("checkout-abandonment: active");
    // With no LLM configured the rules engine proposes the first portfolio.
    expect(activated[1]).toMatch(
      /^proposed 3 hypotheses \(source: rules\) awaiting portfolio_review by maya\.pm@acme\.example:$/,
    );
    expect(activated.slice(2)).toHaveLength(3);
    const status = await cli(["status"]);
    expect(status.stdout).toContain("checkout-abandonment  [active]  rev 1");
    expect(status.stdout).toContain("target: decrease checkout_abandonment_rate by 10%");
    // One outcome: its revisions, experiments and gates, each read from its own paged endpoint.
    const one = await cli(["status", "checkout-abandonment"]);
    expect(one.stdout).toContain("  revisions: #1 by ");
    expect(one.stdout).toContain("  experiments: 3 proposed");
    expect(one.stdout.match(/^ {4}- [a-z0-9-]+ \[proposed\] /gm)).toHaveLength(3);
    expect(one.stdout).toMatch(/^ {4}- portfolio_review \[pending\] assignees /m);
    const json = await cli(["--json", "status", "checkout-abandonment"]);
    const detail = JSON.parse(json.stdout);
    expect(detail).toMatchObject({
      outcome: { slug: "checkout-abandonment", state: "active" },
      gateCounts: { portfolio_review: { pending: 1 } },
      pendingGates: 1,
    });
    expect(detail.revisions).toHaveLength(1);
    expect(detail.experiments).toHaveLength(3);
    expect(detail.gates.map((g: { kind: string }) => g.kind)).toEqual(["portfolio_review"]);
  });

  it("prints API refusals as `error[code]: detail` and exits 1", async () => {
    const result = await cli(["activate", "checkout-abandonment"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error\[illegal_transition\]: cannot activate the outcome: it is active; from active you can: achieve, miss, abandon/m,
    );
  });

  it("refuses an invalid file locally, before any request", async () => {
    const result = await cli(["apply", "packages/spec/fixtures/three-mistakes.yaml"], {
      OUTCOME_RUNTIME_URL: "http://127.0.0.1:1",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("three-mistakes.yaml:11:");
  });

  it("explains an unreachable API, and exits 69", async () => {
    const result = await cli(["status"], { OUTCOME_RUNTIME_URL: "http://127.0.0.1:1" });
    expect(result.code).toBe(69);
    expect(result.stderr).toContain("cannot reach the API at http://127.0.0.1:1");
    expect(result.stderr).not.toMatch(STACK);
  });

  it("creates keys with an admin key; a wrong key is refused", async () => {
    const created = await cli(["--json", "keys", "create", "--name", "claude-code", "--role", "agent"]);
    expect(created.code).toBe(0);
    const { key, role } = JSON.parse(created.stdout);
    expect(role).toBe("agent");
    const refused = await cli(["keys", "create", "--name", "x", "--role", "admin"], { OUTCOME_RUNTIME_API_KEY: key });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error\[forbidden\]/m);
    const unknown = await cli(["status"], { OUTCOME_RUNTIME_API_KEY: "ork_not_a_real_key_at_all" });
    expect(unknown.stderr).toMatch(/^error\[unauthenticated\]/m);
  });
});

describe("validate: posthog", () => {
  it("says the form of each posthog connector, and refuses a HogQL query that writes with its line", async () => {
    const example = "examples/outcomes/posthog-onboarding-activation.yaml";
    const ok = await cli(["validate", example]);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout.trim().split("\n").slice(1)).toEqual([
      "  signal: posthog reads many experiments at once (HogQL grouped by experiment and arm), one request per batch",
      "  constraints.guardrails[0]: posthog reads many experiments at once (HogQL grouped by experiment and arm), one request per batch",
    ]);

    const dir = mkdtempSync(join(tmpdir(), "validate-posthog-"));
    try {
      const text = readFileSync(join(root, example), "utf8");
      const single = text.replace(
        "    event: project_created\n",
        "    query: SELECT arm, count() AS units, 0 AS sum, 0 AS sum_sq FROM events WHERE properties.exp = {experiment} AND timestamp <= toDateTime({to}) GROUP BY arm LIMIT 100\n",
      );
      writeFileSync(join(dir, "single.yaml"), single);
      const one = await cli(["validate", join(dir, "single.yaml")]);
      expect(one).toMatchObject({ code: 0 });
      expect(one.stdout).toContain(
        "  signal: posthog reads one experiment at a time ({experiment}); {experiments} reads many at once",
      );

      writeFileSync(
        join(dir, "write.yaml"),
        single.replace("GROUP BY arm LIMIT 100", "GROUP BY arm; DROP TABLE events"),
      );
      const refused = await cli(["validate", join(dir, "write.yaml")]);
      expect(refused.code).toBe(1);
      const line = single.split("\n").findIndex((l) => l.startsWith("    query: ")) + 1;
      expect(refused.stderr).toMatch(new RegExp(`write\\.yaml:${line}:\\d+: error`));
      expect(refused.stderr).toContain("holds more than one statement");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
