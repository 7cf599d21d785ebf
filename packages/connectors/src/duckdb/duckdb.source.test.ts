/**
 * The `duckdb` connector against the real engine (`@duckdb/node-api`), on
 * Parquet and CSV files and a DuckDB database file each test run writes to
 * a temporary directory: both query forms, the value types, the row cap,
 * the timeout, and the sandbox's abuse cases.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { rejectionOf } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorConfig, ConnectorContext, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { checkConnectorSettings, createConnector } from "../create-connector";
import { DuckdbDriver } from "./duckdb-driver";

let root: string;
let context: ConnectorContext;
const open: SignalConnector[] = [];

const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);
/** The invalid_config error creating a connector throws. */
const configError = (config: ConnectorConfig, ctx: ConnectorContext = context): ConnectorError => {
  try {
    open.push(createConnector(config, ctx));
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("the settings were accepted");
};
const connect = (config: Omit<ConnectorConfig, "type">, ctx: ConnectorContext = context): SignalConnector => {
  const connector = createConnector({ type: "duckdb", base_dir: "exports", ...config }, ctx);
  open.push(connector);
  return connector;
};

const TABLES = { exposures: "exposures/*.parquet", conversions: "conversions.csv" };
const window = {
  experimentKey: "exp-1",
  arms: ["control", "treatment"],
  from: new Date("2026-03-01T00:00:00Z"),
  to: new Date("2026-03-05T00:00:00Z"),
};

const PROPORTION = `
SELECT e.arm,
       count(*)          AS units,
       count(c.unit_id)  AS sum,
       count(c.unit_id)  AS sum_sq
  FROM exposures e
  LEFT JOIN conversions c ON c.unit_id = e.unit_id AND c.converted_at <= :to
 WHERE e.experiment_key = :experiment
   AND list_contains(:arms, e.arm)
   AND e.exposed_at <= :to
 GROUP BY e.arm`;

/** A whole-number query that never filters, for the limits' tests. */
const endless = (from: string): string =>
  `SELECT 'control' AS arm, count(*) AS units, 0 AS sum, 0 AS sum_sq FROM ${from} WHERE :experiment IS NOT NULL AND :to IS NOT NULL`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "duckdb-source-"));
  const exports = join(root, "exports");
  await mkdir(join(exports, "exposures"), { recursive: true });
  await writeFile(join(root, "outside.csv"), "secret\nleaked\n");
  // The team's export, written by DuckDB itself (a separate, unsandboxed instance).
  const writer = await DuckDBInstance.create(":memory:");
  const w = await writer.connect();
  await w.run(`CREATE TABLE exposures AS SELECT * FROM (VALUES
    ('u1', 'exp-1', 'control',   TIMESTAMPTZ '2026-03-01 10:00:00+00'),
    ('u2', 'exp-1', 'control',   TIMESTAMPTZ '2026-03-01 11:00:00+00'),
    ('u3', 'exp-1', 'control',   TIMESTAMPTZ '2026-03-01 12:00:00+00'),
    ('u4', 'exp-1', 'control',   TIMESTAMPTZ '2026-03-01 13:00:00+00'),
    ('u5', 'exp-1', 'treatment', TIMESTAMPTZ '2026-03-01 10:30:00+00'),
    ('u6', 'exp-1', 'treatment', TIMESTAMPTZ '2026-03-01 11:30:00+00'),
    ('u7', 'exp-1', 'treatment', TIMESTAMPTZ '2026-03-01 12:30:00+00'),
    ('u8', 'exp-1', 'treatment', TIMESTAMPTZ '2026-03-01 13:30:00+00'),
    ('u9', 'exp-1', 'treatment', TIMESTAMPTZ '2026-03-10 09:00:00+00'),
    ('v1', 'exp-2', 'control',   TIMESTAMPTZ '2026-03-02 10:00:00+00'),
    ('v2', 'exp-2', 'control',   TIMESTAMPTZ '2026-03-02 11:00:00+00'),
    ('v3', 'exp-2', 'treatment', TIMESTAMPTZ '2026-03-02 10:00:00+00'),
    ('v4', 'exp-2', 'treatment', TIMESTAMPTZ '2026-03-02 11:00:00+00'),
    ('v5', 'exp-2', 'treatment', TIMESTAMPTZ '2026-03-02 12:00:00+00')
  ) t(unit_id, experiment_key, arm, exposed_at)`);
  await w.run(
    `COPY (SELECT * FROM exposures WHERE experiment_key = 'exp-1') TO '${join(exports, "exposures", "part-0.parquet")}' (FORMAT parquet)`,
  );
  await w.run(
    `COPY (SELECT * FROM exposures WHERE experiment_key = 'exp-2') TO '${join(exports, "exposures", "part-1.parquet")}' (FORMAT parquet)`,
  );
  await writeFile(
    join(exports, "conversions.csv"),
    "unit_id,converted_at,revenue\nu1,2026-03-02 10:00:00+00,10.50\nu5,2026-03-02 10:00:00+00,20.00\nu6,2026-03-03 10:00:00+00,5.25\nv3,2026-03-03 10:00:00+00,1.00\nu7,2026-03-09 10:00:00+00,99.00\n",
  );
  // A DuckDB database file with the same exposures.
  const file = await DuckDBInstance.create(join(exports, "analytics.duckdb"));
  const f = await file.connect();
  await f.run(`CREATE TABLE exposures AS SELECT * FROM read_parquet('${join(exports, "exposures", "*.parquet")}')`);
  f.closeSync();
  file.closeSync();
  w.closeSync();
  writer.closeSync();
  await symlink(join(root, "outside.csv"), join(exports, "link.csv"));
  context = { metricKind: "proportion", baseDir: root };
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await rm(root, { recursive: true, force: true });
});

describe("duckdb connector: reads", () => {
  it("reads a proportion from Parquet and CSV files through tables, one experiment at a time", async () => {
    const connector = connect({ tables: TABLES, query: PROPORTION });
    expect(connector.describe()).toBe("duckdb exports, timeout 30s, at most 10000 rows, 4 queries at once");
    expect(await connector.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 4, sum: 1, sum_sq: 1, ts: null },
      { arm: "treatment", units: 4, sum: 2, sum_sq: 2, ts: null },
    ]);
  });

  it("reads a mean for many experiments in one query (:experiments as a list, ANY), split by experiment", async () => {
    const connector = connect(
      {
        tables: TABLES,
        query: `
          SELECT e.experiment_key AS experiment, e.arm,
                 count(*) AS units,
                 sum(coalesce(c.revenue, 0)) AS sum,
                 sum(coalesce(c.revenue, 0) * coalesce(c.revenue, 0)) AS sum_sq
            FROM exposures e
            LEFT JOIN conversions c ON c.unit_id = e.unit_id AND c.converted_at <= :to
           WHERE e.experiment_key = ANY(:experiments)
             AND e.arm = ANY(:arms)
             AND e.exposed_at > :from AND e.exposed_at <= :to
           GROUP BY ALL`,
      },
      { ...context, metricKind: "mean" },
    );
    expect(connector.fetchBatchAggregates).toBeDefined();
    const batch = await connector.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "exp-1", arms: ["control", "treatment"], from: window.from },
        { experimentKey: "exp-2", arms: ["control", "treatment"], from: window.from },
      ],
      to: window.to,
    });
    expect(batch?.get("exp-1")).toEqual([
      { arm: "control", units: 4, sum: 10.5, sum_sq: 110.25, ts: null },
      { arm: "treatment", units: 4, sum: 25.25, sum_sq: 427.5625, ts: null },
    ]);
    expect(batch?.get("exp-2")).toEqual([
      { arm: "control", units: 2, sum: 0, sum_sq: 0, ts: null },
      { arm: "treatment", units: 3, sum: 1, sum_sq: 1, ts: null },
    ]);
  });

  it("reads a mean from per-unit values (the docs' query), a unit without a conversion counting 0", async () => {
    const connector = connect(
      {
        tables: TABLES,
        query: `
          WITH per_unit AS (
            SELECT e.arm, e.unit_id, coalesce(sum(c.revenue), 0) AS v
              FROM exposures e
              LEFT JOIN conversions c ON c.unit_id = e.unit_id AND c.converted_at <= :to
             WHERE e.experiment_key = :experiment
               AND e.arm IN :arms
               AND e.exposed_at <= :to
             GROUP BY e.arm, e.unit_id
          )
          SELECT arm, count(*) AS units, sum(v) AS sum, sum(v * v) AS sum_sq FROM per_unit GROUP BY arm`,
      },
      { ...context, metricKind: "mean" },
    );
    expect(await connector.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 4, sum: 10.5, sum_sq: 110.25, ts: null },
      { arm: "treatment", units: 4, sum: 25.25, sum_sq: 427.5625, ts: null },
    ]);
  });

  it("reads files by absolute path built from getvariable('base_dir')", async () => {
    const connector = connect({
      query: `SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq
                FROM read_parquet(getvariable('base_dir') || '/exposures/*.parquet')
               WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm`,
    });
    expect((await connector.fetchArmAggregates(window)).map((r) => [r.arm, r.units])).toEqual([
      ["control", 4],
      ["treatment", 4],
    ]);
  });

  it("reads a DuckDB database file opened read-only", async () => {
    const connector = connect({
      database: "analytics.duckdb",
      query: `SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq FROM exposures
               WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm`,
    });
    expect(connector.describe()).toContain("duckdb exports analytics.duckdb");
    expect((await connector.fetchArmAggregates(window)).map((r) => r.units)).toEqual([4, 4]);
  });

  it("reads the outcome's series, with TIMESTAMPTZ points as times", async () => {
    const connector = connect({
      tables: TABLES,
      query: PROPORTION,
      series_query: `SELECT date_trunc('day', converted_at) AS ts, count(*) AS value FROM conversions
                      WHERE converted_at > :from AND converted_at <= :to GROUP BY 1 ORDER BY 1`,
    });
    expect(await connector.fetchOutcomeSeries({ from: window.from, to: window.to })).toEqual([
      { ts: new Date("2026-03-02T00:00:00Z"), value: 2 },
      { ts: new Date("2026-03-03T00:00:00Z"), value: 2 },
    ]);
  });

  it("keeps DECIMAL exact, reads TIMESTAMP as UTC, and refuses a HUGEINT count beyond 2^53 instead of rounding it", async () => {
    const values = connect(
      {
        query: `SELECT 'control' AS arm, 3::HUGEINT AS units, 1.10::DECIMAL(38,2) AS sum, 1.21::DECIMAL(38,10) AS sum_sq,
                       TIMESTAMP '2026-03-02 10:00:00' AS ts
                 WHERE :experiment IS NOT NULL AND :to IS NOT NULL`,
      },
      { ...context, metricKind: "mean" },
    );
    expect(await values.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 3, sum: 1.1, sum_sq: 1.21, ts: new Date("2026-03-02T10:00:00Z") },
    ]);
    const huge = connect({
      query: `SELECT 'control' AS arm, (2::HUGEINT ** 60)::HUGEINT + 1 AS units, 0 AS sum, 0 AS sum_sq
               WHERE :experiment IS NOT NULL AND :to IS NOT NULL`,
    });
    const error = await failure(huge.fetchArmAggregates(window));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("1152921504606846977 is not a whole number of units");
  });

  it("shares one instance per directory and database: closing one connector leaves the other working", async () => {
    const a = connect({ tables: TABLES, query: PROPORTION });
    const b = connect({ tables: TABLES, query: PROPORTION });
    await a.fetchArmAggregates(window);
    await b.fetchArmAggregates(window);
    await a.close();
    expect((await b.fetchArmAggregates(window)).length).toBe(2);
    await b.close();
    // A new connector opens a new instance after the last one closed.
    expect((await connect({ tables: TABLES, query: PROPORTION }).fetchArmAggregates(window)).length).toBe(2);
  });
});

describe("duckdb connector: limits", () => {
  it("stops reading at max_rows + 1 (streamed, never a whole huge result)", async () => {
    const connector = connect({
      max_rows: 10,
      query: `SELECT 'control' AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq, range AS n FROM range(1000000000)
               WHERE :experiment IS NOT NULL AND :to IS NOT NULL`,
    });
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("too_many_rows");
    expect(error.message).toContain("more than 10 rows");
  });

  it("interrupts a query that runs past its timeout", async () => {
    const connector = connect({ timeout: 1, query: endless("range(1000000000000)") });
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("timeout");
    expect(error.message).toContain("longer than its timeout (1000 ms)");
  });

  it("interrupts a query when the poll is aborted", async () => {
    const connector = connect({ query: endless("range(1000000000000)") });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const error = await failure(connector.fetchArmAggregates(window, controller.signal));
    expect(error.code).toBe("timeout");
    expect(error.details.aborted).toBe(true);
  });

  it("caps threads and memory per instance (a locked setting)", async () => {
    const connector = connect({
      threads: 1,
      memory_limit: "64MB",
      query: `SELECT current_setting('threads')::VARCHAR AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq
               WHERE :experiment IS NOT NULL AND :to IS NOT NULL`,
    });
    const error = await failure(connector.fetchArmAggregates({ ...window, arms: ["control"] }));
    // The arm column carries the setting: "1" is not an arm, and the message shows it.
    expect(error.message).toContain('"1" is not an arm');
  });
});

describe("duckdb connector: the sandbox", () => {
  const refusedAtRun = async (from: string): Promise<ConnectorError> =>
    failure(connect({ tables: TABLES, query: endless(from) }).fetchArmAggregates(window));

  it.each([
    ["an absolute path outside base_dir", "read_csv('/etc/passwd')"],
    ["a relative path climbing out", "read_text('../../outside')"],
    ["base_dir's own path with ..", "read_csv(getvariable('base_dir') || '/../outside.csv')"],
    ["a symbolic link out of base_dir", "read_csv(getvariable('base_dir') || '/link.csv')"],
    ["an https URL", "read_csv('https://example.com/events.csv')"],
    ["an s3 URL", "read_parquet('s3://bucket/events/*.parquet')"],
  ])("refuses %s (the engine's allowed_directories)", async (_, from) => {
    const error = await refusedAtRun(from);
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("Permission Error");
    expect(error.message).toContain("only files under base_dir");
  });

  it("refuses a table whose path is a link out of base_dir", async () => {
    const error = await failure(
      connect({ tables: { leak: "link.csv" }, query: endless("leak") }).fetchArmAggregates(window),
    );
    expect(error.code).toBe("source_refused");
    expect(error.details.field).toBe("tables.leak");
  });

  it("has no getenv (a CLI-only function) to leak the environment", async () => {
    const error = await refusedAtRun("(SELECT getenv('HOME') AS h)");
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("getenv does not exist");
    expect(error.details).toMatchObject({ field: "query", line: 1 });
  });

  it.each([
    ["COPY", "COPY (SELECT 1) TO 'out.csv'"],
    ["ATTACH", "ATTACH 'other.duckdb'"],
    ["INSTALL", "INSTALL httpfs"],
    ["LOAD", "LOAD httpfs"],
    ["SET", "SET enable_external_access = true"],
    ["RESET", "RESET lock_configuration"],
  ])("refuses %s statically", (_, query) => {
    const error = configError({ type: "duckdb", base_dir: "exports", query });
    expect(error.code).toBe("invalid_config");
    expect(error.details.sqlField).toBe("query");
  });

  it.each([
    ["COPY ... TO", "COPY (SELECT 1) TO '{base}/out.csv'"],
    ["ATTACH", "ATTACH '{base}/new.duckdb'"],
    ["SET enable_external_access", "SET enable_external_access = true"],
    ["two statements", "SELECT 1; SELECT 2"],
  ])("refuses %s in the engine too (the prepared statement is not one SELECT)", async (_, sql) => {
    const driver = new DuckdbDriver({
      baseDir: join(root, "exports"),
      rootDir: root,
      baseDirSetting: "exports",
      database: undefined,
      tables: [],
      threads: 1,
      memoryLimit: "64MB",
      remoteUrls: [],
    });
    try {
      const error = await failure(
        driver.run({
          field: "query",
          statement: { sql: sql.replace("{base}", join(root, "exports")), uses: [], names: [] },
          values: { from: window.from, to: window.to },
          timeoutMs: 5000,
          maxRows: 10,
          signal: undefined,
        }),
      );
      expect(error.code).toBe("read_only_violation");
      expect(await readdir(join(root, "exports"))).not.toContain("out.csv");
      expect(await readdir(join(root, "exports"))).not.toContain("new.duckdb");
    } finally {
      await driver.close();
    }
  });

  it("keeps the sandbox locked: the query sees external access off and the configuration locked", async () => {
    const connector = connect({
      query: `SELECT current_setting('enable_external_access')::VARCHAR || '/' || current_setting('lock_configuration')::VARCHAR
                     || '/' || current_setting('autoload_known_extensions')::VARCHAR AS arm,
                     1 AS units, 0 AS sum, 0 AS sum_sq
               WHERE :experiment IS NOT NULL AND :to IS NOT NULL`,
    });
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.message).toContain('"false/true/false" is not an arm');
  });

  it("refuses remote URLs unless remote_urls lists them, and never installs httpfs to read them", async () => {
    const connector = connect({
      remote_urls: ["https://example.com/exports/"],
      query: endless("read_csv('https://example.com/exports/events.csv')"),
    });
    const error = await failure(connector.fetchArmAggregates(window));
    // No httpfs installed here, and none is downloaded: the read fails naming the setting.
    expect(error.code).toBe("query_failed");
    expect(error.message).toContain("remote_urls: DuckDB's httpfs extension cannot be loaded");
  });
});

describe("duckdb connector: static checks with DuckDB's parser", () => {
  it("names the line and column of a syntax error DuckDB finds", () => {
    const error = configError({
      type: "duckdb",
      query:
        "SELECT arm, count(*) AS units\n  FROM exposures\n WHERE experiment_key = :experiment AND exposed_at <= :to\n GROUP arm",
    });
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("DuckDB cannot parse the query");
    expect(error.details).toMatchObject({ sqlField: "query", line: 4, column: 8 });
  });

  it("refuses a list parameter inside IN ( ), with the fix", () => {
    const query =
      "SELECT experiment_key AS experiment, arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM exposures WHERE experiment_key IN (:experiments) AND exposed_at <= :to";
    const error = configError({ type: "duckdb", query });
    expect(error.message).toContain("ANY(:experiments)");
    expect(error.details.offset).toBe(query.indexOf(":experiments"));
  });

  it("reports the problem through checkConnectorSettings as sql_refused with its offset", () => {
    const query =
      "SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM exposures WHERE experiment_key = :experiment AND ts <= :to GROUP arm";
    const problem = checkConnectorSettings({ type: "duckdb", query }, "proportion", { baseDir: root });
    expect(problem).toMatchObject({
      code: "sql_refused",
      field: "query",
      offset: query.indexOf("arm", query.indexOf("GROUP")),
    });
  });
});

describe("duckdb connector: settings", () => {
  const query = endless("exposures");

  it.each([
    [{ base_dir: "/etc" }, "base_dir", "outside the directory sources are read from"],
    [{ base_dir: "../elsewhere" }, "base_dir", "outside the directory sources are read from"],
    [{ base_dir: "exports", database: "../x.duckdb" }, "database", "outside base_dir"],
    [{ base_dir: "exports", tables: { events: "../outside.csv" } }, "tables.events", "outside base_dir"],
    [{ base_dir: "exports", tables: { events: "events.xlsx" } }, "tables.events", "not a Parquet, CSV or JSON file"],
    [{ base_dir: "exports", tables: { "bad name": "e.csv" } }, "tables.bad name", "not a table name"],
    [{ base_dir: "exports", tables: ["e.csv"] }, "tables", "not a mapping"],
    [{ base_dir: "exports", memory_limit: "lots" }, "memory_limit", "not a size"],
    [{ base_dir: "exports", threads: 0 }, "threads", "not a whole number from 1 to 16"],
    [{ base_dir: "exports", remote_urls: ["ftp://host/x/"] }, "remote_urls[0]", "not an s3://"],
    [{ base_dir: "exports", remote_urls: "s3://b/x/" }, "remote_urls", "not a list"],
    [{ base_dir: "exports", path: "x" }, "path", "unknown field"],
  ])("refuses %j naming %s", (settings, field, problem) => {
    const error = configError({ type: "duckdb", query, ...settings });
    expect(error.code).toBe("invalid_config");
    expect(error.details.field).toBe(field);
    expect(error.message).toContain(problem);
    expect(typeof error.details.fix).toBe("string");
  });

  it("refuses a base_dir that is a link out of the directory sources are read from, at check()", async () => {
    await symlink(tmpdir(), join(root, "escape"));
    const error = await failure(connect({ base_dir: "escape", query }).check?.() ?? Promise.resolve());
    expect(error.code).toBe("source_refused");
    expect(error.details.field).toBe("base_dir");
  });

  it("names a missing base_dir or database at check()", async () => {
    expect((await failure(connect({ base_dir: "nowhere", query }).check?.() ?? Promise.resolve())).code).toBe(
      "invalid_config",
    );
    const error = await failure(connect({ database: "missing.duckdb", query }).check?.() ?? Promise.resolve());
    expect(error).toMatchObject({ code: "invalid_config", details: { field: "database" } });
  });

  it("names a table whose files are missing", async () => {
    const error = await failure(
      connect({ tables: { events: "none/*.parquet" }, query: endless("events") }).fetchArmAggregates(window),
    );
    expect(error.code).toBe("query_failed");
    expect(error.details.field).toBe("tables.events");
  });
});
