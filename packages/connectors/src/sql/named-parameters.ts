/**
 * The named parameters (`:experiments`, `:arms`, `:from`, `:to`, ...) of a
 * query written for a warehouse, and the static checks every SQL source
 * shares: one statement, a `SELECT` (or `WITH ... SELECT`), no keyword that
 * writes, each refusal with its character offset.
 *
 * A lexer, not a parser: it knows each dialect's strings, quoted identifiers
 * and comments well enough to leave them alone. What it cannot see (a write
 * hidden in a function call, a procedure) the source's own read-only mode
 * stops at run time: BigQuery's dry run and statement type, ClickHouse's
 * `readonly=1`, MySQL's `START TRANSACTION READ ONLY`, DuckDB's prepared
 * statement type, Snowflake's `MULTI_STATEMENT_COUNT=1` and a read-only role.
 */

/** The lexical rules of one SQL dialect, as far as finding parameters needs them. */
export interface SqlLexicon {
  /** Characters that open and close a quoted identifier (`"` in standard SQL, `` ` `` in MySQL, BigQuery, ClickHouse). */
  readonly identifierQuotes: readonly string[];
  /** Characters that open and close a string (`'`; also `"` in MySQL and BigQuery). */
  readonly stringQuotes: readonly string[];
  /** Whether `\` escapes the next character in a string (MySQL, BigQuery, ClickHouse). */
  readonly backslashEscapes: boolean;
  /** Whether `#` starts a comment to the end of the line (MySQL, ClickHouse). */
  readonly hashComments: boolean;
  /**
   * Whether `--` starts a comment only when a blank or a control character follows it (MySQL and MariaDB:
   * `--1` is minus minus one, so a `;` after it ends the statement). Elsewhere `--` always starts one.
   */
  readonly dashCommentNeedsSpace: boolean;
  /** Whether `//` starts a comment to the end of the line (Snowflake). */
  readonly slashComments: boolean;
  /**
   * Whether `/*! ... *\/` (and MariaDB's `/*M! ... *\/`) is SQL the server runs rather than a comment
   * (MySQL, MariaDB): such a comment is refused, since what it holds is hidden from these checks.
   */
  readonly executableComments: boolean;
  /** Whether `$$...$$` is a string (Snowflake, DuckDB). */
  readonly dollarStrings: boolean;
}

/** One use of a named parameter in a query. */
export interface ParameterUse {
  /** The name as written, without the colon. */
  readonly name: string;
  /** Offset of the colon in the query. */
  readonly start: number;
  /** Offset just past the name. */
  readonly end: number;
}

/** A query split into its parameters, checked. */
export interface NamedStatement {
  /** The query as written, without a trailing `;`. */
  readonly sql: string;
  /** Every parameter use, in order. */
  readonly uses: readonly ParameterUse[];
  /** The distinct names used, in order of first use. */
  readonly names: readonly string[];
}

/** Why a query was refused, and where (a character offset into the query). */
export interface StatementRefusal {
  readonly problem: string;
  readonly fix: string;
  readonly offset: number;
}

const IDENT_START = /[A-Za-z_\u0080-\uffff]/u;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/u;

/**
 * Keywords that begin a statement which writes, changes the schema or the
 * session, or runs code. Refused anywhere outside strings and comments: a
 * `SELECT` never needs them, and a dialect may allow them inside a `WITH`.
 * (`REPLACE` and `TRUNCATE`, also common function names, are refused only
 * where a statement starts.)
 */
const WRITE_KEYWORDS: ReadonlySet<string> = new Set([
  "insert",
  "update",
  "delete",
  "merge",
  "upsert",
  "create",
  "drop",
  "alter",
  "truncate",
  "rename",
  "grant",
  "revoke",
  "call",
  "execute",
  "exec",
  "copy",
  "load",
  "put",
  "remove",
  "attach",
  "detach",
  "install",
  "export",
  "import",
  "optimize",
  "system",
  "kill",
  "lock",
  "unlock",
  "handler",
  "declare",
  "begin",
  "commit",
  "rollback",
  "set",
  "use",
  "pragma",
  "vacuum",
  "checkpoint",
  "outfile",
  "dumpfile",
]);

/** Keywords that end a SELECT with a side effect in some dialect (`SELECT ... INTO`, `FOR UPDATE`). */
const SIDE_EFFECT_KEYWORDS: ReadonlySet<string> = new Set(["into"]);

/**
 * Splits `sql` into its named parameters and checks it: one statement, which
 * starts with `SELECT`, `WITH`, `(` or `FROM` (DuckDB), uses no keyword that
 * writes, and uses only parameters of `known`.
 *
 * @param known the parameter names the query may use
 * @returns the statement, or the first refusal with its offset
 */
export function parseNamedStatement(
  sql: string,
  lexicon: SqlLexicon,
  known: readonly string[],
): { ok: true; statement: NamedStatement } | ({ ok: false } & StatementRefusal) {
  const n = sql.length;
  const uses: ParameterUse[] = [];
  const words: { word: string; offset: number }[] = [];
  let end = n;
  let i = 0;
  const refuse = (offset: number, problem: string, fix: string) => ({ ok: false as const, problem, fix, offset });

  while (i < n) {
    const c = sql[i] ?? "";
    const next = sql[i + 1] ?? "";
    if (lineCommentAt(sql, i, lexicon)) {
      const newline = sql.indexOf("\n", i);
      i = newline === -1 ? n : newline + 1;
      continue;
    }
    if (c === "/" && next === "*") {
      if (executableCommentAt(sql, i, lexicon)) {
        return refuse(
          i,
          "a /*! ... */ comment is SQL that MySQL and MariaDB run, not a comment",
          "remove it, or write an ordinary comment (/* ... */, without the !)",
        );
      }
      const close = sql.indexOf("*/", i + 2);
      if (close === -1) return refuse(i, "a /* comment is never closed", "close it with */");
      i = close + 2;
      continue;
    }
    if (lexicon.stringQuotes.includes(c) || lexicon.identifierQuotes.includes(c)) {
      const close = closingQuote(sql, i, c, lexicon.backslashEscapes && lexicon.stringQuotes.includes(c));
      if (close === -1) {
        return refuse(
          i,
          `a ${c === "'" || lexicon.stringQuotes.includes(c) ? "string" : "quoted name"} starting with ${c} is never closed`,
          `close it with ${c}`,
        );
      }
      i = close + 1;
      continue;
    }
    if (c === "$" && next === "$" && lexicon.dollarStrings) {
      const close = sql.indexOf("$$", i + 2);
      if (close === -1) return refuse(i, "a $$ string is never closed", "close it with $$");
      i = close + 2;
      continue;
    }
    if (c === ";") {
      // Only blanks and comments may follow the statement's end.
      if (firstTokenOffset(sql.slice(i + 1), lexicon) !== -1) {
        return refuse(
          i,
          "the query holds more than one statement",
          "write a single SELECT; remove the ; and what follows it",
        );
      }
      end = i;
      break;
    }
    if (c === ":" && next === ":") {
      i += 2;
      continue;
    }
    if (c === ":" && IDENT_START.test(next) && !(i > 0 && IDENT_PART.test(sql[i - 1] ?? ""))) {
      let j = i + 1;
      while (j < n && IDENT_PART.test(sql[j] ?? "")) j++;
      const name = sql.slice(i + 1, j);
      if (!known.includes(name)) {
        return refuse(
          i,
          `:${name} is not a parameter`,
          `the parameters are ${known.map((k) => `:${k}`).join(", ")}; quote a literal colon inside a string`,
        );
      }
      uses.push({ name, start: i, end: j });
      i = j;
      continue;
    }
    if (IDENT_START.test(c) && !(i > 0 && IDENT_PART.test(sql[i - 1] ?? ""))) {
      let j = i + 1;
      while (j < n && IDENT_PART.test(sql[j] ?? "")) j++;
      // A name after a dot is a column or a table (t.update), never a keyword.
      if (sql[i - 1] !== ".") words.push({ word: sql.slice(i, j).toLowerCase(), offset: i });
      i = j;
      continue;
    }
    i++;
  }

  const first = words[0];
  const firstOffset = firstTokenOffset(sql, lexicon);
  if (first === undefined && firstOffset === -1) {
    return refuse(0, "the query is empty", "write a SELECT returning the columns docs/connectors.md lists");
  }
  const opensWithParen = firstOffset !== -1 && sql[firstOffset] === "(";
  if (!opensWithParen && (first === undefined || !["select", "with", "from"].includes(first.word))) {
    return refuse(
      first?.offset ?? Math.max(firstOffset, 0),
      `the query starts with ${first === undefined ? "no keyword" : first.word.toUpperCase()}, not SELECT`,
      "a signal query only reads: write one SELECT (or WITH ... SELECT)",
    );
  }
  const forUpdate = words.findIndex(
    (w, k) => w.word === "for" && ["update", "share"].includes(words[k + 1]?.word ?? ""),
  );
  if (forUpdate !== -1) {
    return refuse(
      words[forUpdate]?.offset ?? 0,
      "FOR UPDATE/SHARE locks rows",
      "a signal query only reads: remove the locking clause",
    );
  }
  for (const { word, offset } of words) {
    if (WRITE_KEYWORDS.has(word)) {
      return refuse(
        offset,
        `${word.toUpperCase()} is not allowed in a signal query`,
        "a signal query only reads: write one SELECT; quote a column named like a keyword",
      );
    }
    if (SIDE_EFFECT_KEYWORDS.has(word)) {
      return refuse(
        offset,
        `SELECT ... ${word.toUpperCase()} writes its result somewhere`,
        "return the rows instead: remove the INTO clause",
      );
    }
  }
  const names = [...new Set(uses.map((u) => u.name))];
  return { ok: true, statement: { sql: sql.slice(0, end), uses, names } };
}

/**
 * The query with each named parameter replaced by what `render` returns for
 * it (the dialect's placeholder: `?`, `@name`, `{name:Type}`, `$3`).
 *
 * @param render called once per use, in order; `index` counts the uses from 0
 */
export function renderStatement(statement: NamedStatement, render: (name: string, index: number) => string): string {
  let out = "";
  let at = 0;
  statement.uses.forEach((use, index) => {
    out += statement.sql.slice(at, use.start) + render(use.name, index);
    at = use.end;
  });
  return out + statement.sql.slice(at);
}

/** The offset of the closing `quote` of the quoted text opening at `start`, or -1. A doubled quote is an escaped one. */
function closingQuote(sql: string, start: number, quote: string, backslash: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslash && c === "\\") {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i;
    }
    i++;
  }
  return -1;
}

/**
 * Whether a comment to the end of the line starts at `i`: `--` (in MySQL
 * only before a blank or a control character, or at the end), `#` and `//`
 * where the dialect has them.
 */
function lineCommentAt(sql: string, i: number, lexicon: SqlLexicon): boolean {
  const c = sql[i];
  const next = sql[i + 1];
  if (c === "#") return lexicon.hashComments;
  if (c === "/" && next === "/") return lexicon.slashComments;
  if (c !== "-" || next !== "-") return false;
  if (!lexicon.dashCommentNeedsSpace) return true;
  const after = sql.charCodeAt(i + 2);
  return Number.isNaN(after) || after <= 32 || after === 127;
}

/** Whether the `/*` at `i` opens a comment the server runs (`/*!`, `/*M!` in MySQL and MariaDB). */
function executableCommentAt(sql: string, i: number, lexicon: SqlLexicon): boolean {
  return lexicon.executableComments && (sql[i + 2] === "!" || sql.startsWith("M!", i + 2));
}

/**
 * The offset of the first character that is not blank or inside a comment,
 * or -1. A comment the server runs (`/*!`) or one never closed counts as
 * such a character.
 */
function firstTokenOffset(sql: string, lexicon: SqlLexicon): number {
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] ?? "";
    if (/\s/u.test(c)) {
      i++;
    } else if (lineCommentAt(sql, i, lexicon)) {
      const newline = sql.indexOf("\n", i);
      if (newline === -1) return -1;
      i = newline + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      if (close === -1 || executableCommentAt(sql, i, lexicon)) return i;
      i = close + 2;
    } else {
      return i;
    }
  }
  return -1;
}
