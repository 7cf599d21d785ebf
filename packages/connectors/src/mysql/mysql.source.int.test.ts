/**
 * The `mysql` connector against the real local MariaDB: the account check,
 * the server's timeout and cancellation, the row cap, the source's own
 * errors with their position, throttling retried, and the static refusals.
 */
import { createMysqlSourceDatabase, type MysqlSourceDatabase, mysqlServerUrl } from "@outcome-runtime/testing/mysql";
import { waitFor } from "@outcome-runtime/testing/waiting";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SignalConnector } from "../connector";
import { ConnectorError } from "../connector-error";

async function rejectionOf(promise: Promise<unknown>): Promise<ConnectorError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected the call to fail with a ConnectorError");
}
const codeOf = (error: ConnectorError): string => error.code;

import { createConnector } from "../create-connector";
import { refusedPrivilege } from "./mysql.source";

const FROM = new Date("2026-11-01T00:00:00Z");
const TO = new Date("2026-11-02T00:00:00Z");
const WINDOW = { experimentKey: "exp-1", arms: ["control", "treatment"], from: FROM, to: TO };
const SINGLE =
  "SELECT arm, COUNT(*) AS units, SUM(converted) AS `sum`, SUM(converted) AS sum_sq\nFROM exposures\nWHERE experiment_key = :experiment AND arm IN (:arms) AND exposed_at > :from AND exposed_at <= :to\nGROUP BY arm";

let source: MysqlSourceDatabase;
const open: SignalConnector[] = [];

function connector(settings: Record<string, unknown>, url = source.readerUrl): SignalConnector {
  const c = createConnector(
    { type: "mysql", database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL", query: SINGLE, ...settings },
    { metricKind: "proportion", credentials: { database_url: url } },
  );
  open.push(c);
  return c;
}

beforeAll(async () => {
  source = await createMysqlSourceDatabase();
  await source.admin(
    "CREATE TABLE exposures (experiment_key VARCHAR(100), arm VARCHAR(100), unit_id VARCHAR(100), exposed_at DATETIME(3), converted TINYINT)",
  );
  await source.admin(
    `INSERT INTO exposures VALUES ${Array.from({ length: 10 }, (_, i) => `('exp-1', '${i % 2 === 0 ? "control" : "treatment"}', 'u${i}', '2026-11-01 12:00:00', ${i % 3 === 0 ? 1 : 0})`).join(", ")}, ('exp-1', 'control', 'late', '2026-11-03 00:00:00', 1)`,
  );
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await source.drop();
});

describe("mysql connector", () => {
  it("reads the aggregates of the window through a prepared statement in a read-only transaction", async () => {
    const rows = await connector({}).fetchArmAggregates(WINDOW);
    expect(rows.map((r) => [r.arm, r.units, r.sum, r.sum_sq])).toEqual([
      ["control", 5, 2, 2],
      ["treatment", 5, 2, 2],
    ]);
  });

  it("refuses an account that may write, before any query runs", async () => {
    const error = await rejectionOf(connector({}, source.adminUrl).fetchArmAggregates(WINDOW));
    expect(codeOf(error)).toBe("source_refused");
    expect((error as Error).message).toMatch(/may do anything \(ALL PRIVILEGES\)|may (INSERT|CREATE)/);
  });

  it("ends a query past its timeout on the server", async () => {
    const slow = connector({
      timeout: "1s",
      retries: 0,
      query:
        "SELECT arm, 1 AS units, 0 AS `sum`, 0 AS sum_sq FROM (SELECT 'control' AS arm, SLEEP(5) AS s) t WHERE :experiment IS NOT NULL AND :to IS NOT NULL",
    });
    const error = await rejectionOf(slow.fetchArmAggregates(WINDOW));
    expect(codeOf(error)).toBe("timeout");
  });

  it("kills the query on the server when the caller aborts", async () => {
    const slow = connector({
      timeout: "30s",
      retries: 0,
      query:
        "SELECT arm, 1 AS units, 0 AS `sum`, 0 AS sum_sq FROM (SELECT 'control' AS arm, SLEEP(20) AS s) t WHERE :experiment IS NOT NULL AND :to IS NOT NULL",
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const error = await rejectionOf(slow.fetchArmAggregates(WINDOW, controller.signal));
    expect(codeOf(error)).toBe("timeout");
    const root = await mysql.createConnection({ uri: mysqlServerUrl() });
    try {
      const [running] = await root.query<mysql.RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(20)%' AND COMMAND = 'Query' AND INFO NOT LIKE '%PROCESSLIST%'",
      );
      expect(Number(running[0]?.n)).toBe(0);
    } finally {
      await root.end();
    }
  });

  it("stops at the row cap: the server never sends more than max_rows + 1 rows", async () => {
    const wide = connector({
      max_rows: 3,
      query:
        "SELECT arm, 1 AS units, 0 AS `sum`, 0 AS sum_sq FROM exposures WHERE experiment_key = :experiment AND exposed_at <= :to",
    });
    const error = await rejectionOf(wide.fetchArmAggregates(WINDOW));
    expect(codeOf(error)).toBe("too_many_rows");
    expect((error as Error).message).toMatch(/more than 3 rows/);
  });

  it("reports the server's syntax error at its line and column in the query as written", async () => {
    const typo = connector({
      retries: 0,
      query:
        "SELECT arm, COUNT(*) AS units, 0 AS `sum`, 0 AS sum_sq\nFROM exposures\nWHERE experiment_key IN (:arms) AND experiment_key = :experiment AND exposed_at <= :to\nGRUOP BY arm",
    });
    const error = (await rejectionOf(typo.fetchArmAggregates(WINDOW))) as ConnectorError;
    expect(error.code).toBe("query_failed");
    expect(error.details).toMatchObject({ field: "query", line: 4, column: 1 });
    expect(error.message).toMatch(/near 'GRUOP BY arm'/);
  });

  it("names an unknown table with the server's own message", async () => {
    const missing = connector({ retries: 0, query: SINGLE.replace("FROM exposures", "FROM exposure") });
    const error = (await rejectionOf(missing.fetchArmAggregates(WINDOW))) as ConnectorError;
    expect(error.code).toBe("query_failed");
    expect(error.message).toMatch(/exposure' doesn't exist/);
  });

  it("refuses wrong credentials as auth_failed, and an unreachable server as unavailable", async () => {
    const wrong = new URL(source.readerUrl);
    wrong.password = "not-the-password";
    expect(codeOf(await rejectionOf(connector({ retries: 0 }, wrong.toString()).fetchArmAggregates(WINDOW)))).toBe(
      "auth_failed",
    );
    const nowhere = new URL(source.readerUrl);
    nowhere.port = "1";
    expect(codeOf(await rejectionOf(connector({ retries: 0 }, nowhere.toString()).fetchArmAggregates(WINDOW)))).toBe(
      "unavailable",
    );
  });

  it("retries with backoff while the account is at its connection limit, then reads", async () => {
    const root = await mysql.createConnection({ uri: mysqlServerUrl() });
    const user = `ort_limited_${Date.now() % 100000}`;
    try {
      await root.query(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1`);
      await root.query(`GRANT SELECT ON \`${source.name}\`.* TO '${user}'@'127.0.0.1'`);
      const url = new URL(source.readerUrl);
      url.username = user;
      url.password = "pw";
      const holder = await mysql.createConnection({ uri: url.toString() });
      // Holds the account's one connection for a while: the first attempts are refused (ER_TOO_MANY_USER_CONNECTIONS).
      setTimeout(() => void holder.end(), 700);
      const patient = connector({ retries: 5 }, url.toString());
      const rows = await patient.fetchArmAggregates(WINDOW);
      expect(rows.map((r) => r.arm)).toEqual(["control", "treatment"]);
      await patient.close();
      // The server frees a closed connection's slot on its own time: wait until it shows none of the account's.
      await waitFor(`${user}'s connections to close on the server`, async () => {
        const [rows] = await root.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?", [
          user,
        ]);
        return Number((rows as { n: number }[])[0]?.n) === 0;
      });
      const limited = await mysql.createConnection({ uri: url.toString() });
      const blocked = await rejectionOf(connector({ retries: 0 }, url.toString()).fetchArmAggregates(WINDOW));
      await limited.end();
      expect(codeOf(blocked)).toBe("rate_limited");
    } finally {
      await root.query(`DROP USER IF EXISTS '${user}'@'127.0.0.1'`);
      await root.end();
    }
  });

  it.each([
    ["two statements", `${SINGLE};\nDELETE FROM exposures`, /more than one statement/, 4, 13],
    ["a write", "INSERT INTO exposures SELECT * FROM exposures WHERE :experiment = :to", /starts with INSERT/, 1, 1],
    [
      "SELECT ... INTO OUTFILE",
      "SELECT arm, 1 AS units, 0 AS `sum`, 0 AS sum_sq INTO OUTFILE '/tmp/x' FROM exposures WHERE experiment_key = :experiment AND :to",
      /INTO writes its result/,
      1,
      49,
    ],
    [
      "a locking read",
      "SELECT arm, 1 AS units, 0 AS `sum`, 0 AS sum_sq FROM exposures WHERE experiment_key = :experiment AND :to\nFOR UPDATE",
      /FOR UPDATE\/SHARE locks rows/,
      2,
      1,
    ],
    [
      "a parameter that does not exist",
      "SELECT arm FROM t WHERE e = :experiment AND :to AND :until",
      /:until is not a parameter/,
      1,
      53,
    ],
  ])("refuses %s when the settings are read, with its position", (_name, query, message, line, column) => {
    let error: unknown;
    try {
      connector({ query });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("invalid_config");
    expect((error as Error).message).toMatch(message);
    expect((error as ConnectorError).details).toMatchObject({
      field: `query (line ${line}, column ${column})`,
      line,
      column,
    });
  });

  it("reads the series query", async () => {
    const series = connector({
      series_query:
        "SELECT exposed_at AS ts, converted AS value FROM exposures WHERE exposed_at > :from AND exposed_at <= :to ORDER BY unit_id LIMIT 1",
    });
    const points = await series.fetchOutcomeSeries({ from: FROM, to: TO });
    expect(points).toEqual([{ ts: new Date("2026-11-01T12:00:00Z"), value: 1 }]);
  });
});

describe("refusedPrivilege", () => {
  it.each([
    ["GRANT USAGE ON *.* TO `r`@`%`", null],
    ["GRANT SELECT, SHOW VIEW ON `analytics`.* TO `r`@`%`", null],
    ["GRANT SELECT (`arm`, `units`) ON `analytics`.`t` TO `r`@`%`", null],
    ["GRANT SELECT, INSERT ON `analytics`.* TO `r`@`%`", "INSERT"],
    ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION", "do anything (ALL PRIVILEGES)"],
    ["GRANT SELECT ON `analytics`.* TO `r`@`%` WITH GRANT OPTION", "grant privileges to others (WITH GRANT OPTION)"],
    ["GRANT FILE ON *.* TO `r`@`%`", "FILE"],
    ["GRANT PROXY ON ''@'%' TO 'r'@'%'", "PROXY"],
  ])("%s → %s", (grant, expected) => {
    expect(refusedPrivilege(grant)).toBe(expected);
  });
});
