/**
 * The postgres connector on a real Postgres: a database of its own holding
 * an analytics schema (exposures, checkout sessions), queried the way
 * docs/connectors.md tells users to write their SQL.
 */
import { createEmptyDatabase, readerOf, rejectionOf } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test builds the user's own analytics database the connector reads.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorContext, ExperimentWindow, SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector, readsInBatches } from "../create-connector";
import { acquirePool, releasePool, runReadOnly } from "./read-only-query";

let database: { name: string; url: string; drop: () => Promise<void> };
/** The read-only role's URL of the database: what the connector is given (docs/connectors.md). */
let readerUrl: string;
let admin: pg.Client;
const connectors: SignalConnector[] = [];

const START = Date.parse("2026-03-01T00:00:00Z");
const MINUTE = 60_000;

interface Exposure {
  unit: string;
  experiment: string;
  arm: string;
  exposedAt: Date;
  paid: boolean;
  amount: number;
}

/** 900 sessions: three arms of checkout-v2 (one a holdout) and some of another experiment. */
const exposures: Exposure[] = Array.from({ length: 900 }, (_, i) => ({
  unit: `s-${i}`,
  experiment: i % 10 === 9 ? "other-exp" : "checkout-v2",
  arm: ["control", "treatment", "holdout"][i % 3] ?? "control",
  exposedAt: new Date(START + i * 10 * MINUTE),
  paid: (i * 7) % 10 < 3,
  amount: (i % 13) * 1.25,
}));

const window: ExperimentWindow = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date(START),
  to: new Date(START + 4 * 86_400_000),
};

function expected(arm: string, to: Date, kind: "proportion" | "mean") {
  const units = exposures.filter((e) => e.experiment === "checkout-v2" && e.arm === arm && e.exposedAt < to);
  if (kind === "proportion") {
    const conversions = units.filter((e) => e.paid).length;
    return { arm, units: units.length, sum: conversions, sum_sq: conversions };
  }
  return {
    arm,
    units: units.length,
    sum: units.reduce((s, e) => s + e.amount, 0),
    sum_sq: units.reduce((s, e) => s + e.amount * e.amount, 0),
  };
}

const CONVERSION_SQL = `
  SELECT e.arm,
         count(*)                         AS units,
         count(*) FILTER (WHERE s.paid)   AS sum,
         count(*) FILTER (WHERE s.paid)   AS sum_sq
    FROM exposures e
    JOIN checkout_sessions s ON s.session_id = e.unit_id
   WHERE e.experiment_key = :experiment
     AND e.arm = ANY(:arms)
     AND e.exposed_at < :to
   GROUP BY e.arm`;

function connect(
  config: Record<string, unknown>,
  metricKind: "proportion" | "mean" | "ratio" = "proportion",
  extra: Partial<ConnectorContext> = {},
): SignalConnector {
  const context: ConnectorContext = { credentials: { database_url: readerUrl }, metricKind, ...extra };
  const connector = createConnector(
    { type: "postgres", database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL", ...config },
    context,
  );
  connectors.push(connector);
  return connector;
}

/**
 * `sql` with the parameters every query must use bound in a CTE it ignores, on the same line: for the
 * queries below that test something else than the experiment filter.
 */
function bound(sql: string): string {
  return `WITH bound AS (SELECT :experiment AS experiment, :to AS upto) ${sql}`;
}

/** The ConnectorError a call rejects with. */
const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

/** The reader's statements now running `slow_arm` on the server. */
async function runningSlowQueries(): Promise<number> {
  const result = await admin.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'outcome_runtime_reader' AND state = 'active' AND query LIKE '%slow_arm%'",
  );
  return result.rows[0]?.n ?? 0;
}

/** Waits (up to 10 s) until `n` of the reader's `slow_arm` statements run on the server. */
async function waitForCount(n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await runningSlowQueries()) !== n) {
    if (Date.now() > deadline)
      throw new Error(`expected ${n} slow_arm statements running, found ${await runningSlowQueries()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function count(table: string): Promise<number> {
  const result = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(result.rows[0]?.n);
}

beforeAll(async () => {
  database = await createEmptyDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`
    CREATE TABLE exposures (unit_id text PRIMARY KEY, experiment_key text NOT NULL, arm text NOT NULL, exposed_at timestamptz NOT NULL);
    CREATE TABLE checkout_sessions (session_id text PRIMARY KEY, paid boolean NOT NULL, amount numeric(12, 2) NOT NULL);
    CREATE SEQUENCE order_numbers;
    CREATE TABLE daily_signal (day date PRIMARY KEY, rate double precision NOT NULL);
    -- The source's own function: the SQL policy cannot see inside it, the timeouts still hold.
    CREATE FUNCTION slow_arm(seconds double precision) RETURNS text LANGUAGE sql AS $$ SELECT 'control' FROM pg_sleep(seconds) $$;
  `);
  await admin.query(
    `INSERT INTO exposures SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])`,
    [
      exposures.map((e) => e.unit),
      exposures.map((e) => e.experiment),
      exposures.map((e) => e.arm),
      exposures.map((e) => e.exposedAt.toISOString()),
    ],
  );
  await admin.query(`INSERT INTO checkout_sessions SELECT * FROM unnest($1::text[], $2::boolean[], $3::numeric[])`, [
    exposures.map((e) => e.unit),
    exposures.map((e) => e.paid),
    exposures.map((e) => e.amount),
  ]);
  await admin.query(
    `INSERT INTO daily_signal SELECT d::date, 0.7 - 0.01 * n FROM generate_series(0, 9) n, LATERAL (SELECT date '2026-03-01' + n) x(d)`,
  );
  readerUrl = await readerOf(database.url);
});

afterAll(async () => {
  for (const connector of connectors) await connector.close();
  await admin?.end();
  await database?.drop();
});

describe("postgres connector: aggregates", () => {
  it("returns the cumulative aggregate per arm, with :experiment, :arms and :to bound as parameters", async () => {
    const rows = await connect({ query: CONVERSION_SQL }).fetchArmAggregates(window);
    expect(rows).toEqual([
      { ...expected("control", window.to, "proportion"), ts: null },
      { ...expected("treatment", window.to, "proportion"), ts: null },
    ]);
    expect(rows[0]?.units).toBeGreaterThan(100);
  });

  it("passes :arms as a text[]: only the requested arms come back", async () => {
    const rows = await connect({ query: CONVERSION_SQL }).fetchArmAggregates({ ...window, arms: ["treatment"] });
    expect(rows.map((r) => r.arm)).toEqual(["treatment"]);
  });

  it("still reads :experiment_key and :until (the older names)", async () => {
    const sql = CONVERSION_SQL.replace(":experiment", ":experiment_key").replace(":to", ":until");
    const rows = await connect({ query: sql }).fetchArmAggregates(window);
    expect(rows.map((r) => r.units)).toEqual([
      expected("control", window.to, "proportion").units,
      expected("treatment", window.to, "proportion").units,
    ]);
  });

  it("reads bigint and numeric columns (strings from the driver) exactly, for a mean", async () => {
    const sql = `
      SELECT e.arm,
             count(*)::bigint                   AS units,
             sum(s.amount)                      AS sum,
             sum(s.amount * s.amount)           AS sum_sq
        FROM exposures e JOIN checkout_sessions s ON s.session_id = e.unit_id
       WHERE e.experiment_key = :experiment AND e.arm = ANY(:arms) AND e.exposed_at < :to
       GROUP BY e.arm`;
    const rows = await connect({ query: sql }, "mean").fetchArmAggregates(window);
    for (const [i, arm] of ["control", "treatment"].entries()) {
      const want = expected(arm, window.to, "mean");
      expect(rows[i]?.units).toBe(want.units);
      expect(rows[i]?.sum).toBeCloseTo(want.sum, 9);
      expect(rows[i]?.sum_sq).toBeCloseTo(want.sum_sq, 9);
    }
  });

  it("returns every cumulative snapshot since :from when the query has a ts column", async () => {
    const sql = `
      WITH days AS (
        SELECT d AS ts FROM generate_series(date_trunc('day', :from) + interval '1 day', :to, interval '1 day') d
      )
      SELECT e.arm, days.ts,
             count(*) AS units,
             count(*) FILTER (WHERE s.paid) AS sum,
             count(*) FILTER (WHERE s.paid) AS sum_sq
        FROM days
        JOIN exposures e ON e.exposed_at < days.ts
        JOIN checkout_sessions s ON s.session_id = e.unit_id
       WHERE e.experiment_key = :experiment AND e.arm = ANY(:arms)
       GROUP BY e.arm, days.ts`;
    const rows = await connect({ query: sql }).fetchArmAggregates(window);
    expect(rows).toHaveLength(8);
    const day3 = new Date(START + 3 * 86_400_000);
    expect(rows.filter((r) => r.ts?.getTime() === day3.getTime())).toEqual([
      { ...expected("control", day3, "proportion"), ts: day3 },
      { ...expected("treatment", day3, "proportion"), ts: day3 },
    ]);
    // Sorted by ts, then by arm order.
    expect(rows.map((r) => r.arm)).toEqual([
      "control",
      "treatment",
      "control",
      "treatment",
      "control",
      "treatment",
      "control",
      "treatment",
    ]);
  });

  it("reads the outcome series with series_query", async () => {
    const connector = connect({
      query: CONVERSION_SQL,
      series_query:
        "SELECT day::timestamptz AS ts, rate AS value FROM daily_signal WHERE day > :from AND day <= :to ORDER BY day DESC",
    });
    const points = await connector.fetchOutcomeSeries({
      from: new Date("2026-03-02T00:00:00Z"),
      to: new Date("2026-03-04T00:00:00Z"),
    });
    expect(points).toEqual([
      { ts: new Date("2026-03-03T00:00:00Z"), value: 0.68 },
      { ts: new Date("2026-03-04T00:00:00Z"), value: 0.67 },
    ]);
  });
});

describe("postgres connector: refusals", () => {
  it("refuses a multi-statement injection before it reaches the server", () => {
    expect(() => connect({ query: bound("SELECT 1; COMMIT; CREATE TABLE pwned (a int)") })).toThrow(
      expect.objectContaining({ code: "invalid_config" }),
    );
  });

  it("and the server refuses one too: the extended protocol takes a single statement", async () => {
    const pool = acquirePool(database.url);
    try {
      const error = await failure(
        runReadOnly(pool, "SELECT 1; COMMIT; CREATE TABLE pwned (a int)", [], {
          timeoutMs: 5000,
          maxRows: 10,
          field: "query",
        }),
      );
      expect(error.code).toBe("read_only_violation");
      expect(error.message).toContain("more than one statement");
    } finally {
      await releasePool(database.url);
    }
    const pwned = await admin.query("SELECT to_regclass('public.pwned') AS t");
    expect(pwned.rows[0]?.t).toBeNull();
  });

  it("refuses INSERT, CREATE, a data-modifying WITH and nextval when the connector is made: nothing is sent", async () => {
    const before = await count("exposures");
    const refusals: [string, RegExp][] = [
      ["INSERT INTO exposures VALUES ('x', :experiment, 'control', :to)", /an INSERT statement was refused/],
      [bound("SELECT 1; CREATE TABLE made_by_query (a int)"), /more than one statement/],
      [
        "WITH w AS (INSERT INTO exposures VALUES ('y', :experiment, 'control', :to) RETURNING arm) SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM w",
        /a data-modifying WITH/,
      ],
      [bound("SELECT 'control' AS arm, nextval('order_numbers') AS units, 0 AS sum, 0 AS sum_sq"), /nextval/],
    ];
    for (const [query, reason] of refusals) {
      let error: unknown;
      try {
        connect({ query });
      } catch (caught) {
        error = caught;
      }
      expect(error, query).toBeInstanceOf(ConnectorError);
      expect((error as ConnectorError).code).toBe("invalid_config");
      expect((error as ConnectorError).message).toMatch(reason);
    }
    expect(await count("exposures")).toBe(before);
    expect((await admin.query("SELECT to_regclass('public.made_by_query') AS t")).rows[0]?.t).toBeNull();
  });

  it("and behind the parser, the read-only role and the READ ONLY transaction stop writes hidden in a function", async () => {
    await admin.query(
      "CREATE FUNCTION sneaky_insert() RETURNS int LANGUAGE sql AS $$ INSERT INTO exposures VALUES ('z', 'x', 'control', now()) RETURNING 1 $$",
    );
    const before = await count("exposures");
    const error = await failure(
      connect({
        query: bound("SELECT 'control' AS arm, sneaky_insert() AS units, 0 AS sum, 0 AS sum_sq"),
      }).fetchArmAggregates(window),
    );
    expect(["read_only_violation", "query_failed"]).toContain(error.code);
    expect(await count("exposures")).toBe(before);
    expect((await admin.query("SELECT last_value::text AS v, is_called FROM order_numbers")).rows[0]).toEqual({
      v: "1",
      is_called: false,
    });
  });

  it("cancels a query running past the timeout", async () => {
    const connector = connect({
      query: bound("SELECT slow_arm(30) AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq"),
      timeout: "1s",
    });
    const started = Date.now();
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error).toMatchObject({ code: "timeout", retryable: true });
    expect(error.message).toContain("longer than the timeout of 1s");
    // Cancelled at 1 s, not after the 30 s sleep (a margin a loaded machine keeps).
    expect(Date.now() - started).toBeLessThan(15_000);
    // The connection is usable again.
    expect(await connect({ query: CONVERSION_SQL }).fetchArmAggregates(window)).toHaveLength(2);
  });

  it("caps the statement timeout at the worker's poll timeout, so a query never outlives the poll (the 30d finding)", async () => {
    const connector = connect(
      { query: bound("SELECT slow_arm(120) AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq"), timeout: "1h" },
      "proportion",
      { maxTimeoutMs: 1500 },
    );
    expect(connector.describe()).toContain("timeout 2s");
    const error = await failure(connector.fetchArmAggregates(window));
    expect(error.code).toBe("timeout");
    expect(await runningSlowQueries()).toBe(0);
  });

  it("cancels the query on the server when the poll gives up, instead of leaving it running", async () => {
    const connector = connect({
      query: bound("SELECT slow_arm(60) AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq"),
      timeout: "50s",
    });
    const controller = new AbortController();
    const poll = failure(connector.fetchArmAggregates(window, controller.signal));
    await waitForCount(1);
    controller.abort();
    expect((await poll).code).toBe("timeout");
    // Without the CancelRequest the server would sleep on for a minute.
    await waitForCount(0);
  });

  it("refuses more rows than max_rows without reading them all", async () => {
    const few = await failure(
      connect({
        query: bound("SELECT 'control' AS arm, g AS units, 0 AS sum, 0 AS sum_sq FROM generate_series(1, 11) g"),
        max_rows: 10,
      }).fetchArmAggregates(window),
    );
    expect(few).toMatchObject({ code: "too_many_rows", retryable: false });
    expect(few.message).toContain("more than max_rows = 10 rows");
    const started = Date.now();
    const many = await failure(
      connect({
        query: bound(
          "SELECT 'control' AS arm, a AS units, 0 AS sum, 0 AS sum_sq FROM generate_series(1, 3000) a, generate_series(1, 3000) b",
        ),
        max_rows: 10,
      }).fetchArmAggregates(window),
    );
    expect(many.code).toBe("too_many_rows");
    expect(Date.now() - started).toBeLessThan(5000);
    expect(
      await connect({
        query: bound("SELECT 'control' AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq"),
        max_rows: 1,
      }).fetchArmAggregates(window),
    ).toHaveLength(1);
  });

  it("reads the optional covariate columns, and names the row of one left NULL", async () => {
    // Each unit's covariate is 1: Σx = units, Σx² = units, Σxy = 0 (sum is 0).
    const covariate =
      "SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq, count(*)::float8 AS cov_sum, count(*) AS cov_sum_sq, " +
      "%s AS cov_sum_product FROM exposures WHERE arm = ANY(:arms) GROUP BY arm ORDER BY arm";
    const rows = await connect({ query: bound(covariate.replace("%s", "0")) }).fetchArmAggregates(window);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.covariate).toEqual({ sum: row.units, sumSq: row.units, sumProduct: 0 });
    const error = await failure(
      connect({ query: bound(covariate.replace("%s", "NULL::float8")) }).fetchArmAggregates(window),
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain('postgres query: row 1 (arm "control"), column cov_sum_product: is NULL or empty');
  });

  it("reads a ratio's denominator columns, names a NULL one, and names them when the query lacks them", async () => {
    // Each unit counts 2 in the denominator and 1 in the numerator: Σd = 2n, Σd² = 4n, Σn·d = 2n.
    const ratio =
      "SELECT arm, count(*) AS units, count(*) AS sum, count(*) AS sum_sq, 2 * count(*) AS den_sum, " +
      "4 * count(*) AS den_sum_sq, %s AS num_den_sum FROM exposures WHERE arm = ANY(:arms) GROUP BY arm ORDER BY arm";
    const rows = await connect({ query: bound(ratio.replace("%s", "2 * count(*)")) }, "ratio").fetchArmAggregates(
      window,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.denominator).toEqual({ sum: 2 * row.units, sumSq: 4 * row.units, sumProduct: 2 * row.units });
    }
    const nulled = await failure(
      connect({ query: bound(ratio.replace("%s", "NULL::float8")) }, "ratio").fetchArmAggregates(window),
    );
    expect(nulled.code).toBe("bad_response");
    expect(nulled.message).toContain('postgres query: row 1 (arm "control"), column num_den_sum: is NULL or empty');
    const missing = await failure(
      connect(
        { query: bound("SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq FROM exposures GROUP BY arm") },
        "ratio",
      ).fetchArmAggregates(window),
    );
    expect(missing.code).toBe("missing_columns");
    expect(missing.message).toContain('the result has no "den_sum", "den_sum_sq", "num_den_sum" column');
    expect(missing.message).toContain("return arm, units, sum, sum_sq, den_sum, den_sum_sq, num_den_sum");
    // The same columns on a proportion are refused, with the fix.
    const proportion = await failure(
      connect({ query: bound(ratio.replace("%s", "2 * count(*)")) }).fetchArmAggregates(window),
    );
    expect(proportion.message).toContain("column den_sum: the metric is a proportion, which has no denominator");
  });

  it("names missing columns and what the query returned", async () => {
    const error = await failure(
      connect({
        query: bound("SELECT arm, count(*) AS units, 0 AS sum FROM exposures WHERE arm = ANY(:arms) GROUP BY arm"),
      }).fetchArmAggregates(window),
    );
    expect(error.code).toBe("missing_columns");
    expect(error.message).toBe(
      'postgres query: the result has no "sum_sq" column (it has: "arm", "units", "sum"); return arm, units, sum, sum_sq (and optionally ts), naming each column with AS, e.g. count(*) AS sum_sq',
    );
  });

  it("refuses arms nobody asked for, and reports SQL errors with the server's message", async () => {
    const extra = await failure(
      connect({
        query: bound("SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq FROM exposures GROUP BY arm"),
      }).fetchArmAggregates(window),
    );
    expect(extra.code).toBe("bad_response");
    expect(extra.message).toContain('arm "holdout" is not an arm of experiment "checkout-v2"');
    const broken = await failure(connect({ query: bound("SELECT arm FROM\n  exposurez") }).fetchArmAggregates(window));
    expect(broken).toMatchObject({ code: "query_failed", retryable: false });
    expect(broken.message).toBe(
      'postgres query at line 2: relation "exposurez" does not exist; fix the SQL in outcome.yaml',
    );
  });
});

describe("postgres connector: connections", () => {
  it("resets the session after each run: no advisory lock or setting leaks into the next one", async () => {
    const pool = acquirePool(database.url);
    try {
      const options = { timeoutMs: 5000, maxRows: 10, field: "query" };
      await runReadOnly(pool, "SELECT pg_advisory_lock(4242), set_config('work_mem', '77MB', false)", [], options);
      const locks = await admin.query(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242",
      );
      expect(locks.rows[0]?.n).toBe(0);
      // Every connection the pool hands out looks fresh.
      const seen = await Promise.all(
        Array.from({ length: 4 }, () =>
          runReadOnly(
            pool,
            "SELECT current_setting('work_mem') AS w, current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st",
            [],
            options,
          ),
        ),
      );
      for (const result of seen) {
        expect(result.rows[0]).toEqual(["4MB", "on", "5s"]);
      }
      const after = await runReadOnly(pool, "SELECT current_setting('statement_timeout')", [], {
        ...options,
        timeoutMs: 45_000,
      });
      expect(after.rows[0]).toEqual(["45s"]);
    } finally {
      await releasePool(database.url);
    }
  });

  it("reports an unreachable server or database as unavailable (retryable)", async () => {
    const refused = createConnector(
      { type: "postgres", query: CONVERSION_SQL, database_url_secret: "nowhere" },
      { metricKind: "proportion", credentials: { database_url: "postgres://postgres@127.0.0.1:1/nowhere" } },
    );
    connectors.push(refused);
    expect(await failure(refused.fetchArmAggregates(window))).toMatchObject({ code: "unavailable", retryable: true });

    const noDatabase = new URL(readerUrl);
    noDatabase.pathname = "/no_such_database_for_connectors";
    const missing = createConnector(
      { type: "postgres", query: CONVERSION_SQL, database_url_secret: "missing" },
      { metricKind: "proportion", credentials: { database_url: noDatabase.toString() } },
    );
    connectors.push(missing);
    const error = await failure(missing.fetchArmAggregates(window));
    expect(error).toMatchObject({ code: "unavailable", retryable: true });
    expect(error.message).toContain("no_such_database_for_connectors");
  });

  it("stops waiting when the poll is aborted", async () => {
    const connector = connect({
      query: bound("SELECT 'control' AS arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM pg_sleep(30)"),
      timeout: "60s",
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = Date.now();
    const error = await failure(connector.fetchArmAggregates(window, controller.signal));
    expect(error.code).toBe("timeout");
    expect(error.details.aborted).toBe(true);
    // Back at the abort, not after the 30 s sleep (a margin a loaded machine keeps).
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe("postgres connector: the batched form (:experiments)", () => {
  const BATCH_SQL = `
    SELECT e.experiment_key                 AS experiment,
           e.arm,
           count(*)                         AS units,
           count(*) FILTER (WHERE s.paid)   AS sum,
           count(*) FILTER (WHERE s.paid)   AS sum_sq
      FROM exposures e
      JOIN checkout_sessions s ON s.session_id = e.unit_id
     WHERE e.experiment_key = ANY(:experiments)
       AND e.arm = ANY(:arms)
       AND e.exposed_at < :to
     GROUP BY e.experiment_key, e.arm`;
  const batch = {
    experiments: [
      { experimentKey: "checkout-v2", arms: ["control", "treatment"], from: window.from },
      { experimentKey: "other-exp", arms: ["control", "treatment", "holdout"], from: window.from },
      { experimentKey: "not-started", arms: ["control", "treatment"], from: window.from },
    ],
    to: window.to,
  };

  it("reads every experiment of the batch in one query, each as the one-experiment form reads it", async () => {
    const connector = connect({ query: BATCH_SQL });
    expect(readsInBatches({ type: "postgres", query: BATCH_SQL })).toBe(true);
    expect(readsInBatches({ type: "postgres", query: CONVERSION_SQL })).toBe(false);
    const answer = await connector.fetchBatchAggregates!(batch);
    const single = await connect({ query: CONVERSION_SQL }).fetchArmAggregates(window);
    expect(answer.get("checkout-v2")).toEqual(single);
    expect((answer.get("other-exp") as unknown[]).length).toBe(3);
    // An experiment with no rows yet has none: not an error.
    expect(answer.get("not-started")).toEqual([]);
    // The one-experiment call of a batched query asks for that experiment alone.
    expect(await connector.fetchArmAggregates(window)).toEqual(single);
    expect(connect({ query: CONVERSION_SQL }).fetchBatchAggregates).toBeUndefined();
  });

  it("refuses a row naming an experiment outside the batch: nothing of the answer is used", async () => {
    const leaky = BATCH_SQL.replace(
      "e.experiment_key = ANY(:experiments)",
      "(e.experiment_key = ANY(:experiments) OR true)",
    );
    const error = await failure(
      connect({ query: leaky }).fetchBatchAggregates!({ experiments: [batch.experiments[0]!], to: window.to }),
    );
    expect(error.code).toBe("bad_response");
    expect(error.message).toMatch(/column experiment: "other-exp" is not one of the 1 experiments asked for/);
  });

  it("gives a duplicate (arm, ts) of one experiment to that experiment alone", async () => {
    const doubled = `${BATCH_SQL} UNION ALL SELECT 'other-exp', 'control', 1, 0, 0`;
    const answer = await connect({ query: doubled }).fetchBatchAggregates!(batch);
    expect(answer.get("checkout-v2")).toEqual(await connect({ query: CONVERSION_SQL }).fetchArmAggregates(window));
    const error = answer.get("other-exp");
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).message).toMatch(/control/);
  });

  it("names a missing experiment column, and refuses a query using both :experiment and :experiments", async () => {
    const noColumn = BATCH_SQL.replace("e.experiment_key                 AS experiment,", "");
    const missing = await failure(
      connect({ query: noColumn.replace("GROUP BY e.experiment_key, e.arm", "GROUP BY e.arm") }).fetchBatchAggregates!(
        batch,
      ),
    );
    expect(missing.code).toBe("missing_columns");
    expect(missing.message).toContain('no "experiment" column');
    const both = `${BATCH_SQL} HAVING max(e.experiment_key) <> :experiment`;
    expect(() => connect({ query: both })).toThrow(/uses both :experiment and :experiments/);
  });
});
