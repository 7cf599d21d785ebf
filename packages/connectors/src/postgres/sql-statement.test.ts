import { describe, expect, it } from "vitest";
import { EXPERIMENT_PARAMETERS, SERIES_PARAMETERS } from "./postgres.connector";
import { type PrepareResult, prepareStatement } from "./sql-statement";

function ok(result: PrepareResult): Extract<PrepareResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected ok, got ${result.problem} at ${result.line}:${result.column}`);
  return result;
}

function problem(result: PrepareResult): Extract<PrepareResult, { ok: false }> {
  if (result.ok) throw new Error(`expected a problem, got ${result.text}`);
  return result;
}

describe("prepareStatement", () => {
  it("turns named parameters into typed positional ones, numbering each name once", () => {
    const result = ok(
      prepareStatement(
        "SELECT arm FROM e WHERE key = :experiment AND arm = ANY(:arms) AND t > :from AND t <= :to AND k2 = :experiment",
        EXPERIMENT_PARAMETERS,
      ),
    );
    expect(result.text).toBe(
      "SELECT arm FROM e WHERE key = ($1::text) AND arm = ANY(($2::text[])) AND t > ($3::timestamptz) AND t <= ($4::timestamptz) AND k2 = ($1::text)",
    );
    expect(result.parameters).toEqual(["experiment", "arms", "from", "to"]);
    expect(result.kind).toBe("select");
  });

  it("reads :experiment_key and :until as :experiment and :to", () => {
    const result = ok(
      prepareStatement("SELECT 1 WHERE a = :experiment_key AND b < :until AND c = :experiment", EXPERIMENT_PARAMETERS),
    );
    expect(result.text).toBe("SELECT 1 WHERE a = ($1::text) AND b < ($2::timestamptz) AND c = ($1::text)");
    expect(result.parameters).toEqual(["experiment", "to"]);
  });

  it("leaves casts, strings, quoted identifiers, dollar quotes and comments alone", () => {
    const sql = [
      "SELECT x::date, y :: int, ':from', E'it\\'s :to', 'it''s :to', \"col:to\", $$ :arms $$, $q$ :arms $q$,",
      "       a$b, n -- :unknown in a comment",
      "  /* outer /* nested :unknown */ still :unknown */ FROM t WHERE z = :to",
    ].join("\n");
    const result = ok(prepareStatement(sql, EXPERIMENT_PARAMETERS));
    expect(result.parameters).toEqual(["to"]);
    expect(result.text).toBe(sql.replace("z = :to", "z = ($1::timestamptz)"));
  });

  it("keeps an array slice with a number, and explains one with a name", () => {
    expect(ok(prepareStatement("SELECT a[1:2] FROM t", EXPERIMENT_PARAMETERS)).parameters).toEqual([]);
    const found = problem(prepareStatement("SELECT a[lo:hi] FROM t", EXPERIMENT_PARAMETERS));
    expect(found.problem).toBe("unknown parameter :hi");
    expect(found.fix).toContain("a[lo : hi]");
  });

  it("names an unknown parameter with its line and column, and lists the known ones", () => {
    const found = problem(prepareStatement("SELECT 1\nWHERE k = :experment", EXPERIMENT_PARAMETERS));
    expect(found).toMatchObject({ problem: "unknown parameter :experment", line: 2, column: 11 });
    expect(found.fix).toContain(":experiment, :experiments, :arms, :from, :to");
  });

  it("allows only :from and :to in a series query", () => {
    expect(problem(prepareStatement("SELECT :experiment", SERIES_PARAMETERS)).problem).toBe(
      "unknown parameter :experiment",
    );
    expect(ok(prepareStatement("SELECT :from AS ts, 1 AS value", SERIES_PARAMETERS)).parameters).toEqual(["from"]);
  });

  it("refuses positional parameters", () => {
    expect(problem(prepareStatement("SELECT $1", EXPERIMENT_PARAMETERS)).problem).toBe(
      "positional parameter $1 is not allowed",
    );
  });

  it("refuses a second statement, wherever it hides", () => {
    for (const sql of [
      "SELECT 1; COMMIT; CREATE TABLE x (a int)",
      "SELECT 1;\n-- comment\nDROP TABLE t",
      "SELECT ';' ; DELETE FROM t",
      "SELECT 1 /* ; */; SELECT 2",
    ]) {
      expect(problem(prepareStatement(sql, EXPERIMENT_PARAMETERS)).problem, sql).toBe(
        "the query holds more than one statement",
      );
    }
  });

  it("drops trailing semicolons, blanks and comments", () => {
    const result = ok(prepareStatement("SELECT 1 ;  ;\n-- the end\n", EXPERIMENT_PARAMETERS));
    expect(result.text).toBe("SELECT 1");
  });

  it("tells the kind of statement", () => {
    const kind = (sql: string): string => ok(prepareStatement(sql, EXPERIMENT_PARAMETERS)).kind;
    expect(kind("  -- hi\n select 1")).toBe("select");
    expect(kind("WITH a AS (SELECT 1) SELECT * FROM a")).toBe("with");
    expect(kind("(SELECT 1) UNION (SELECT 2)")).toBe("(");
    expect(kind("insert into t values (1)")).toBe("insert");
    expect(kind("/* x */ CREATE TABLE t (a int)")).toBe("create");
  });

  it("reports unclosed strings, identifiers, dollar quotes and comments", () => {
    for (const [sql, text] of [
      ["SELECT 'abc", "a quoted string is never closed"],
      ['SELECT "abc', "a quoted identifier is never closed"],
      ["SELECT $x$ abc", "a $x$-quoted string is never closed"],
      ["SELECT 1 /* abc", "a /* comment is never closed"],
      ["   -- only a comment", "the query is empty (only blanks or comments)"],
    ] as const) {
      expect(problem(prepareStatement(sql, EXPERIMENT_PARAMETERS)).problem).toBe(text);
    }
  });
});
