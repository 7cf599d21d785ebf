/**
 * The SQL sandbox of the `postgres` connector (issue 9, security): hostile
 * statements a user (or an LLM writing outcome.yaml) may put in `query`, run
 * against a scratch analytics database. Each must fail with a clear connector
 * error or leave no trace: tables unchanged, no file written, no lock or
 * setting surviving the run.
 *
 * Three layers are tried: the connector, which refuses anything but a read
 * (PostgreSQL's own parser, a deny list of functions) before it is sent; the
 * read-only role the connector must connect as (the server refuses what it
 * has no privilege for); and `runReadOnly` on its own, i.e. what the server
 * does if a statement ever got past both (READ ONLY transaction, extended
 * protocol, statement_timeout, row cap, rollback and DISCARD ALL).
 * `postgres.connector.int.test.ts` covers INSERT, CREATE, writes hidden in a
 * CTE or nextval, the row cap and the pg_sleep timeout; this file adds the
 * rest of the hostile list.
 */
import { randomBytes } from "node:crypto";
import { createEmptyDatabase, readerOf } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test builds the user's own analytics database the connector reads.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExperimentWindow, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { acquirePool, releasePool, runReadOnly } from "./read-only-query";

let database: { name: string; url: string; drop: () => Promise<void> };
let admin: pg.Client;
/** As the admin: what the server alone does with a statement that got past the connector. */
let pool: pg.Pool;
/** As the read-only role: what the server does with the role's privileges. */
let readerUrl: string;
let readerPool: pg.Pool;
const connectors: SignalConnector[] = [];
const OPTIONS = { timeoutMs: 2000, maxRows: 10, field: "query" };

const window: ExperimentWindow = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date("2026-03-01T00:00:00Z"),
  to: new Date("2026-03-05T00:00:00Z"),
};

function connect(query: string, extra: Record<string, unknown> = {}): SignalConnector {
  const connector = createConnector(
    { type: "postgres", database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL", query, ...extra },
    { credentials: { database_url: readerUrl }, metricKind: "proportion" },
  );
  connectors.push(connector);
  return connector;
}

/** The parameters every query must use, bound where they change nothing (before the statement's own text). */
const BOUND = "WITH bound AS (SELECT :experiment AS e, :to AS t) ";

/** The error the connector throws when it is made with `query`: the SQL policy refuses before anything is sent. */
function refusedWhenMade(query: string, extra: Record<string, unknown> = {}): ConnectorError {
  try {
    connect(query, extra);
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error(`expected the connector to refuse ${query}`);
}

async function failure(run: () => Promise<unknown>): Promise<ConnectorError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
}

/** Everything the hostile statements could change, as text. */
async function snapshot(): Promise<unknown> {
  const rows = await admin.query("SELECT ts::text, arm, value::text FROM source_points ORDER BY ts, arm");
  const tables = await admin.query(
    "SELECT table_name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
  );
  return { rows: rows.rows, tables: tables.rows.map((r) => r.table_name) };
}

/** Whether `path` exists on the database server's file system. */
async function serverFileExists(path: string): Promise<boolean> {
  const result = await admin.query("SELECT pg_stat_file($1, true) IS NOT NULL AS exists", [path]);
  return result.rows[0]?.exists === true;
}

/** What four pooled connections report at once: every one must look fresh. */
async function sessions(sql: string): Promise<(string | null)[][]> {
  const results = await Promise.all(Array.from({ length: 4 }, () => runReadOnly(pool, sql, [], OPTIONS)));
  return results.map((r) => r.rows[0] ?? []);
}

beforeAll(async () => {
  database = await createEmptyDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`
    CREATE TABLE source_points (ts timestamptz NOT NULL, arm text NOT NULL, value double precision NOT NULL, PRIMARY KEY (ts, arm));
    INSERT INTO source_points
      SELECT timestamptz '2026-03-01T00:00:00Z' + n * interval '1 day', arm, n * 0.1
        FROM generate_series(0, 3) n, unnest(ARRAY['control', 'treatment']) arm;
  `);
  pool = acquirePool(database.url);
  readerUrl = await readerOf(database.url);
  readerPool = acquirePool(readerUrl);
});

afterAll(async () => {
  for (const connector of connectors) await connector.close();
  if (pool !== undefined) await releasePool(database.url);
  if (readerPool !== undefined) await releasePool(readerUrl);
  await admin?.end();
  await database?.drop();
});

describe("postgres sandbox: writes", () => {
  it.each([
    ["DROP TABLE source_points", "drop"],
    ["UPDATE source_points SET value = -1", "update"],
    ["DELETE FROM source_points", "delete"],
    ["INSERT INTO source_points VALUES (now(), 'control', 1)", "insert"],
    ["CREATE TABLE pwned (a int)", "create"],
    ["TRUNCATE source_points", "truncate"],
    ["ALTER TABLE source_points ADD COLUMN pwned int", "alter"],
  ])("the connector refuses %s before sending it, and the server refuses it too", async (sql, kind) => {
    const before = await snapshot();
    const refused = refusedWhenMade(sql);
    expect(refused).toMatchObject({ code: "invalid_config", retryable: false, details: { sqlField: "query" } });
    expect(refused.message).toContain("was refused: the connector only reads");
    expect(String(refused.details.problem).toLowerCase()).toContain(kind);

    const server = await failure(() => runReadOnly(pool, sql, [], OPTIONS));
    expect(server.code).toBe("read_only_violation");
    expect(server.message).toContain("READ ONLY transaction and nothing was written");
    // And the role has no privilege to write, whatever the transaction.
    const asReader = await failure(() => runReadOnly(readerPool, sql, [], OPTIONS));
    expect(["read_only_violation", "query_failed"]).toContain(asReader.code);
    expect(await snapshot()).toEqual(before);
  });

  it("keeps no large object a SELECT creates through a function (lo_from_bytea): the run is rolled back", async () => {
    const before = await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata");
    // Whether the server refuses it in a READ ONLY transaction depends on its version; either way nothing is kept.
    const sql = "SELECT 'control' AS arm, lo_from_bytea(0, 'x')::bigint AS units, 0 AS sum, 0 AS sum_sq";
    expect(refusedWhenMade(BOUND + sql).details.problem).toMatch(/reads or writes large objects/);
    await runReadOnly(pool, sql, [], OPTIONS).catch((error: unknown) => expect(error).toBeInstanceOf(ConnectorError));
    const after = await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata");
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
  });
});

describe("postgres sandbox: escaping the transaction", () => {
  it("refuses SELECT 1; COMMIT; CREATE TABLE ... in the connector and at the server, creating nothing", async () => {
    const sql = "SELECT 1; COMMIT; CREATE TABLE pwned_multi (a int)";
    expect(() => connect(sql)).toThrow(expect.objectContaining({ code: "invalid_config" }));
    const server = await failure(() => runReadOnly(pool, sql, [], OPTIONS));
    expect(server.code).toBe("read_only_violation");
    const hidden = await failure(() =>
      runReadOnly(pool, "SELECT 1 /* ; */ ; COMMIT; DROP TABLE source_points", [], OPTIONS),
    );
    expect(hidden.code).toBe("read_only_violation");
    expect((await admin.query("SELECT to_regclass('public.pwned_multi') AS t")).rows[0]?.t).toBeNull();
    expect((await admin.query("SELECT count(*)::int AS n FROM source_points")).rows[0]?.n).toBe(8);
  });

  it("refuses COMMIT, ROLLBACK and BEGIN as the query", () => {
    for (const sql of ["COMMIT", "ROLLBACK", "BEGIN", "START TRANSACTION READ WRITE"]) {
      expect(refusedWhenMade(sql).details.problem).toMatch(/a transaction statement was refused/);
    }
  });
});

describe("postgres sandbox: the server's file system", () => {
  it("refuses COPY ... TO PROGRAM and COPY ... TO a file: no file is created", async () => {
    const marker = `/tmp/outcome-runtime-sandbox-${randomBytes(6).toString("hex")}`;
    for (const sql of [
      `COPY (SELECT 1) TO PROGRAM 'touch ${marker}'`,
      `COPY source_points TO '${marker}'`,
      `COPY source_points FROM PROGRAM 'touch ${marker}'`,
    ]) {
      expect(refusedWhenMade(sql).details.problem).toMatch(/a COPY statement was refused/);
      // The role may not run programs or write the server's files, whatever reaches the server.
      const asReader = await failure(() => runReadOnly(readerPool, sql, [], OPTIONS));
      expect(asReader.code).toMatch(/read_only_violation|query_failed/);
    }
    expect(await serverFileExists(marker)).toBe(false);
  });

  it("refuses reading the server's files and directories: the parser first, the role's privileges behind it", async () => {
    for (const sql of [
      "SELECT pg_read_file('/etc/passwd') AS arm",
      "SELECT pg_read_binary_file('/etc/passwd') AS arm",
      "SELECT d AS arm FROM pg_ls_dir('/') d",
      "SELECT pg_stat_file('/etc/passwd')::text AS arm",
    ]) {
      expect(refusedWhenMade(BOUND + sql).details.problem).toMatch(
        /files of the server|directories|pg_stat_file\(\) is not allowed/,
      );
      const asReader = await failure(() => runReadOnly(readerPool, sql, [], OPTIONS));
      expect(asReader.code).toBe("query_failed");
      expect(asReader.message).toMatch(/permission denied/);
    }
  });

  it("refuses signalling other sessions (pg_terminate_backend): the role cannot, and the parser refuses first", async () => {
    const sql = "SELECT pg_terminate_backend(pid)::text AS arm FROM pg_stat_activity WHERE usename = 'postgres'";
    expect(refusedWhenMade(BOUND + sql).details.problem).toMatch(/pg_terminate_backend\(\) is not allowed/);
    const asReader = await failure(() => runReadOnly(readerPool, sql, [], OPTIONS));
    expect(asReader.message).toMatch(/permission denied|must be a (superuser|member)/);
    // The admin's own session is still there.
    expect((await admin.query("SELECT 1 AS ok")).rows[0]?.ok).toBe(1);
  });
});

describe("postgres sandbox: session state does not survive a run", () => {
  it("SET statement_timeout = 0, SET search_path and set_config are refused by the connector", () => {
    for (const sql of ["SET statement_timeout = 0", "SET search_path = pg_temp, public", "RESET ALL"]) {
      expect(refusedWhenMade(sql).details.problem).toMatch(/statement was refused/);
    }
    expect(refusedWhenMade(`${BOUND}SELECT set_config('statement_timeout', '0', false)`).details.problem).toMatch(
      /set_config\(\)/,
    );
  });

  it("and when run at the server, SET and set_config(..., false) leave every pooled connection as it was", async () => {
    await runReadOnly(pool, "SET statement_timeout = 0", [], OPTIONS);
    await runReadOnly(pool, "SET search_path = pg_temp", [], OPTIONS);
    await runReadOnly(
      pool,
      "SELECT set_config('statement_timeout', '0', false), set_config('search_path', 'pg_temp', false), set_config('default_transaction_read_only', 'off', false)",
      [],
      OPTIONS,
    );
    for (const row of await sessions(
      "SELECT current_setting('statement_timeout'), current_setting('search_path'), current_setting('transaction_read_only')",
    )) {
      expect(row).toEqual(["2s", '"$user", public', "on"]);
    }
  });

  it("a session-level pg_advisory_lock taken by a query is not held after the run (DISCARD ALL)", async () => {
    expect(
      refusedWhenMade(`${BOUND}SELECT 'control' AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM pg_advisory_lock(1)`)
        .details.problem,
    ).toMatch(/advisory locks/);
    await runReadOnly(readerPool, "SELECT pg_advisory_lock(1)", [], OPTIONS);
    await runReadOnly(pool, "SELECT pg_advisory_lock(1), pg_advisory_lock_shared(2)", [], OPTIONS);
    const held = await admin.query(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND a.datname = $1`,
      [database.name],
    );
    expect(held.rows[0]?.n).toBe(0);
    // Another session can take the same lock at once.
    const taken = await admin.query("SELECT pg_try_advisory_lock(1) AS ok");
    expect(taken.rows[0]?.ok).toBe(true);
    await admin.query("SELECT pg_advisory_unlock(1)");
  });

  it("LISTEN is refused by the connector, and one run at the server leaves no channel listened to", async () => {
    expect(refusedWhenMade("LISTEN pwned").details.problem).toMatch(/a LISTEN statement was refused/);
    await runReadOnly(pool, "LISTEN pwned", [], OPTIONS).catch((e: unknown) => {
      // Postgres may refuse LISTEN in a read-only transaction; either way nothing is kept.
      expect(e).toBeInstanceOf(ConnectorError);
    });
    for (const row of await sessions("SELECT count(*)::text FROM pg_listening_channels()")) {
      expect(row).toEqual(["0"]);
    }
  });

  it("a prepared statement or temporary table made by a query does not leak into the next run", async () => {
    await failure(() => runReadOnly(pool, "CREATE TEMP TABLE leak (a int)", [], OPTIONS));
    for (const row of await sessions("SELECT count(*)::text FROM pg_prepared_statements")) {
      expect(row).toEqual(["0"]);
    }
  });
});

describe("postgres sandbox: time and size", () => {
  it("refuses SELECT pg_sleep(10) with a 1s timeout; one at the server is cancelled at 1s and the pool stays usable", async () => {
    const sql = "SELECT 'control' AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM pg_sleep(10)";
    expect(refusedWhenMade(BOUND + sql, { timeout: "1s" }).details.problem).toMatch(
      /for 10s may sleep past the statement timeout of 1s/,
    );
    const error = await failure(() => runReadOnly(readerPool, sql, [], { ...OPTIONS, timeoutMs: 1000 }));
    expect(error).toMatchObject({ code: "timeout", retryable: true });
    const idle = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(10)%' AND state = 'active'",
      [database.name],
    );
    expect(idle.rows[0]?.n).toBe(0);
    expect((await runReadOnly(pool, "SELECT 1", [], OPTIONS)).rows).toEqual([["1"]]);
  });

  it("refuses a result with more rows than the cap, from a 10^6-row query, quickly", async () => {
    const started = Date.now();
    const error = await failure(() =>
      connect(`${BOUND}SELECT 'control' AS arm, g AS units, 0 AS sum, 0 AS sum_sq FROM generate_series(1, 1000000) g`, {
        max_rows: 100,
      }).fetchArmAggregates(window),
    );
    expect(error).toMatchObject({ code: "too_many_rows", retryable: false });
    expect(error.message).toContain("more than max_rows = 100 rows");
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
