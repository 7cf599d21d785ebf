/**
 * The static SQL checks of every SQL source, through `createConnector` as the
 * worker and `validate` reach them: the shared lexer of `named-parameters.ts`
 * (with each source's own `checkStatement`) for every type of `SQL_SOURCES`,
 * and PostgreSQL's own grammar for `postgres` (`postgres/sql-policy.ts`).
 * Hostile queries are refused as `invalid_config` at the exact line and
 * column of the query as written; what only looks hostile (a `;` in a string
 * or a comment, a keyword quoted as a column name, a `::` cast) is accepted.
 * Where a dialect quotes or comments differently, it has its own expectation.
 */
import { describe, expect, it } from "vitest";
import type { ConnectorConfig } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";
import { SQL_SOURCES } from "./sources";

/** Each source's settings besides `query`: enough to create it, never enough to reach anything. */
const SETTINGS: Readonly<Record<string, Record<string, unknown>>> = {
  postgres: { database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL" },
  mysql: { database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL" },
  duckdb: {},
  clickhouse: { url_env: "OUTCOME_RUNTIME_SOURCE_CLICKHOUSE_URL", database: "analytics" },
  snowflake: {
    account: "myorg-myaccount",
    user: "outcome_reader",
    warehouse: "ANALYTICS_WH",
    role: "OUTCOME_READER",
    database: "ANALYTICS",
    private_key_env: "OUTCOME_RUNTIME_SOURCE_SNOWFLAKE_KEY",
  },
  bigquery: { project_id: "acme-analytics", location: "EU", credentials_json_env: "OUTCOME_RUNTIME_SOURCE_BQ_KEY" },
};
const CREDENTIALS = {
  database_url: "postgres://reader@127.0.0.1:1/analytics",
  url: "http://reader:password@127.0.0.1:1",
  private_key: "(not read until the first request)",
  credentials_json: "(not read until the first request)",
};
const TYPES = Object.keys(SETTINGS);

/** The connector's verdict on `query`: accepted, or the refusal's code, line, column and problem. */
async function verdict(type: string, query: string) {
  try {
    const connector = createConnector({ type, ...SETTINGS[type], query } as ConnectorConfig, {
      metricKind: "proportion",
      credentials: CREDENTIALS,
      baseDir: process.cwd(),
    });
    await connector.close();
    return "accepted" as const;
  } catch (error) {
    if (!(error instanceof ConnectorError)) throw error;
    const { line, column, sqlField, problem } = error.details;
    return { code: error.code, line, column, sqlField, problem: String(problem), message: error.message };
  }
}

/** The line and column (1-based) of the `nth` occurrence (from 1) of `needle` in `sql`. */
function at(sql: string, needle: string, nth = 1): { line: number; column: number } {
  let offset = -1;
  for (let k = 0; k < nth; k++) {
    offset = sql.indexOf(needle, offset + 1);
    if (offset === -1) throw new Error(`${needle} is not in ${sql}`);
  }
  const before = sql.slice(0, offset);
  return { line: before.split("\n").length, column: offset - before.lastIndexOf("\n") };
}

type Expected = "accepted" | { readonly at: string; readonly nth?: number; readonly problem: RegExp };

interface Case {
  readonly name: string;
  readonly sql: string;
  /** What every source does, unless `per` says otherwise for its type. */
  readonly expected: Expected;
  readonly per?: Readonly<Record<string, Expected>>;
}

const W = "WHERE experiment_key = :experiment AND ts <= :to";
const Q = `SELECT arm FROM t ${W}`;
const MULTI = /more than one statement/;

const CASES: readonly Case[] = [
  {
    name: "two statements",
    sql: `${Q}; DELETE FROM t`,
    expected: { at: ";", problem: MULTI },
    // PostgreSQL's parser names the second statement.
    per: { postgres: { at: "DELETE", problem: MULTI } },
  },
  {
    name: "a second statement on the next line, which writes nothing",
    sql: `${Q};\n  SELECT 2`,
    expected: { at: ";", problem: MULTI },
    per: { postgres: { at: "SELECT 2", problem: MULTI } },
  },
  { name: "a ; inside a line comment", sql: `${Q} -- ; DELETE FROM t\n`, expected: "accepted" },
  { name: "a ; inside a block comment", sql: `${Q} /* ; DROP TABLE t */`, expected: "accepted" },
  {
    name: "a ; and a write inside strings",
    sql: `SELECT ';' AS s, 'DELETE FROM t; DROP TABLE t' AS note, arm FROM t ${W}`,
    expected: "accepted",
  },
  ...(
    [
      ["INSERT", `INSERT INTO t SELECT arm FROM s ${W}`],
      ["UPDATE", `UPDATE t SET arm = 'control' ${W}`],
      ["DELETE", `DELETE FROM t ${W}`],
      ["MERGE", `MERGE INTO t USING s ON t.arm = s.arm WHEN MATCHED THEN DELETE`],
      ["CREATE", `CREATE TABLE copy AS SELECT arm FROM t ${W}`],
      ["DROP", "DROP TABLE t"],
      ["GRANT", "GRANT SELECT ON t TO someone"],
    ] as const
  ).map(
    ([keyword, statement]): Case => ({
      name: `${keyword} as the statement, after a comment line`,
      sql: `-- the signal\n  ${statement}`,
      expected: { at: keyword, problem: new RegExp(keyword) },
    }),
  ),
  {
    name: "a data-modifying WITH",
    sql: `WITH gone AS (\n  DELETE FROM t RETURNING *\n) SELECT arm FROM gone ${W}`,
    expected: { at: "DELETE", problem: /DELETE/ },
  },
  {
    name: "SELECT ... INTO",
    sql: `SELECT arm INTO backup FROM t ${W}`,
    expected: { at: "INTO", problem: /INTO/ },
    // PostgreSQL points at the table it would create.
    per: { postgres: { at: "backup", problem: /INTO/ } },
  },
  {
    name: "FOR UPDATE",
    sql: `${Q}\n FOR UPDATE`,
    expected: { at: "FOR", problem: /FOR UPDATE/ },
  },
  {
    name: "a trailing ; followed only by blanks and comments",
    sql: `${Q};  \n -- done\n /* the end */ `,
    expected: "accepted",
  },
  {
    name: "backticks: quoted names in MySQL, ClickHouse and BigQuery, nothing elsewhere",
    sql: `SELECT \`delete\` AS arm FROM \`update\` ${W}`,
    expected: { at: "delete", problem: /DELETE/ },
    per: {
      mysql: "accepted",
      clickhouse: "accepted",
      bigquery: "accepted",
      // A backtick is no token of PostgreSQL's: its parser stops at the next one it cannot place.
      postgres: { at: "AS", problem: /cannot parse/ },
    },
  },
  {
    name: "$$ strings in Snowflake, DuckDB, ClickHouse and PostgreSQL, not in MySQL or BigQuery",
    sql: `SELECT $$; DELETE FROM t$$ AS note, arm FROM t ${W}`,
    expected: "accepted",
    per: { mysql: { at: ";", problem: MULTI }, bigquery: { at: ";", problem: MULTI } },
  },
  {
    name: "# comments in MySQL, ClickHouse and BigQuery, not elsewhere",
    sql: `${Q} # ; DROP TABLE t\n`,
    expected: { at: ";", problem: MULTI },
    per: { mysql: "accepted", clickhouse: "accepted", bigquery: "accepted", postgres: { at: "DROP", problem: MULTI } },
  },
  {
    name: "an unknown :parameter",
    sql: `${Q}\n  AND ts > :since`,
    expected: { at: ":since", problem: /:since/ },
  },
  {
    name: ":: casts are not parameters",
    sql: "SELECT arm, units::bigint AS units FROM t WHERE experiment_key = :experiment::text AND ts <= :to::timestamp",
    expected: "accepted",
  },
  {
    name: "keywords as quoted column names and after a dot",
    sql: `SELECT "delete" AS arm, "update", t.insert FROM t ${W}`,
    expected: "accepted",
  },
  {
    name: "MySQL's -- needs a blank after it: --1; ends the statement there",
    sql: `${Q} --1;\nSELECT 2`,
    // Elsewhere --1; is a comment, and the next line is one statement's bad tail, for the source to refuse.
    expected: "accepted",
    per: {
      mysql: { at: ";", problem: MULTI },
      duckdb: { at: "SELECT 2", problem: /cannot parse/ },
      postgres: { at: "SELECT 2", problem: /cannot parse/ },
    },
  },
  {
    name: "MySQL's /*! comments, which MySQL and MariaDB run",
    sql: `${Q} /*! INTO OUTFILE '/tmp/rows' */`,
    expected: "accepted",
    per: { mysql: { at: "/*!", problem: /MySQL and MariaDB run/ } },
  },
  {
    name: "Snowflake's // comments: a quote after one opens no string",
    sql: `${Q} // don't\n; DELETE FROM t --'`,
    expected: "accepted",
    per: { snowflake: { at: ";", problem: MULTI } },
  },
];

describe("the static SQL checks of every SQL source", () => {
  it("cover every SQL source type createConnector knows, and postgres", () => {
    expect(TYPES.filter((t) => t !== "postgres").sort()).toEqual(Object.keys(SQL_SOURCES).sort());
  });

  for (const c of CASES) {
    describe(c.name, () => {
      for (const type of TYPES) {
        const expected = c.per?.[type] ?? c.expected;
        it(`${type}: ${expected === "accepted" ? "accepted" : `refused at ${expected.at}`}`, async () => {
          const result = await verdict(type, c.sql);
          if (expected === "accepted") {
            expect(result, c.sql).toBe("accepted");
            return;
          }
          const { line, column } = at(c.sql, expected.at, expected.nth);
          expect(result, c.sql).toMatchObject({ code: "invalid_config", sqlField: "query", line, column });
          if (result === "accepted") return;
          expect(result.problem).toMatch(expected.problem);
          expect(result.message).toContain(`query (line ${line}, column ${column})`);
        });
      }
    });
  }
});
