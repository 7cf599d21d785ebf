/**
 * Turns a user's SQL with named parameters (`:experiment`, `:arms`, ...)
 * into text with positional parameters (`$1`, `$2`, ...) for the extended
 * query protocol, and tells what kind of statement it is.
 *
 * A small lexer, not a parser: it knows just enough of Postgres's lexical
 * rules to leave alone what is not a parameter: string constants ('...',
 * E'...' with backslash escapes, $tag$...$tag$), quoted identifiers ("..."),
 * comments (-- and nested /* *\/) and `::` casts. Each parameter becomes
 * `($n::type)`, so its type never depends on the context it is used in.
 */

/** A parameter a query may use: its canonical name and its SQL type. */
export interface ParameterDefinition {
  /** The name values are looked up by (aliases share one). */
  canonical: string;
  /** The SQL type the value is cast to. */
  sqlType: string;
}

/** A statement ready for the extended protocol. */
export interface PreparedStatement {
  /** The SQL with `($n::type)` in place of each `:name`, without a trailing `;`. */
  text: string;
  /** Canonical parameter names in `$n` order (`parameters[0]` is `$1`). */
  parameters: string[];
  /** The first keyword, lowercased (`select`, `with`, `insert`, ...), or `(`. Empty for an empty statement. */
  kind: string;
  /**
   * The SQL as written, with each `:name` replaced by `$n` padded with
   * blanks to the same length: what the SQL policy parses, so that the
   * offsets it reports are the user's.
   */
  checkText: string;
}

/** Why a statement was refused, with where. */
interface StatementProblem {
  problem: string;
  fix: string;
  line: number;
  column: number;
}

export type PrepareResult = ({ ok: true } & PreparedStatement) | ({ ok: false } & StatementProblem);

const IDENT_START = /[A-Za-z_\u0080-\uffff]/u;
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/u;

/**
 * Translates named parameters and checks that `sql` is a single statement.
 *
 * @param parameters written name → definition; aliases map to the same canonical name
 */
export function prepareStatement(
  sql: string,
  parameters: Readonly<Record<string, ParameterDefinition>>,
): PrepareResult {
  const n = sql.length;
  const out: string[] = [];
  const order: string[] = [];
  const spans: { start: number; end: number; index: number }[] = [];
  let kind = "";
  let copiedUpTo = 0;
  let endOfStatement = -1; // offset of the first `;` outside strings and comments
  let i = 0;

  const fail = (offset: number, problem: string, fix: string): PrepareResult => {
    const { line, column } = lineColumn(sql, offset);
    return { ok: false, problem, fix, line, column };
  };
  const isIdentPart = (offset: number): boolean => offset >= 0 && offset < n && IDENT_PART.test(sql[offset] ?? "");

  while (i < n) {
    const c = sql[i] ?? "";
    const next = sql[i + 1] ?? "";

    if (c === "-" && next === "-") {
      const newline = sql.indexOf("\n", i);
      i = newline === -1 ? n : newline + 1;
      continue;
    }
    if (c === "/" && next === "*") {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (sql[j] === "/" && sql[j + 1] === "*") {
          depth++;
          j += 2;
        } else if (sql[j] === "*" && sql[j + 1] === "/") {
          depth--;
          j += 2;
        } else j++;
      }
      if (depth > 0) return fail(i, "a /* comment is never closed", "close it with */");
      i = j;
      continue;
    }
    if (/\s/u.test(c)) {
      i++;
      continue;
    }

    // Anything else is part of a statement: after the first `;` that is a second statement.
    if (endOfStatement !== -1 && c !== ";") {
      return fail(
        i,
        "the query holds more than one statement",
        "write a single SELECT (a WITH ... SELECT for several steps); statements after a `;` are never run",
      );
    }
    if (kind === "" && c !== ";") {
      kind = IDENT_START.test(c) ? (/^[A-Za-z_]+/u.exec(sql.slice(i))?.[0]?.toLowerCase() ?? c) : c;
    }

    if (c === "'") {
      const prefix = sql[i - 1] ?? "";
      const escapes = (prefix === "E" || prefix === "e") && !isIdentPart(i - 2);
      let j = i + 1;
      let closed = false;
      while (j < n) {
        const d = sql[j];
        if (escapes && d === "\\") {
          j += 2;
        } else if (d === "'") {
          if (sql[j + 1] === "'") j += 2;
          else {
            closed = true;
            j++;
            break;
          }
        } else j++;
      }
      if (!closed) return fail(i, "a quoted string is never closed", "close it with '");
      i = j;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      let closed = false;
      while (j < n) {
        if (sql[j] === '"') {
          if (sql[j + 1] === '"') j += 2;
          else {
            closed = true;
            j++;
            break;
          }
        } else j++;
      }
      if (!closed) return fail(i, "a quoted identifier is never closed", 'close it with "');
      i = j;
      continue;
    }
    if (c === "$" && !isIdentPart(i - 1)) {
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/u.exec(sql.slice(i));
      if (tag !== null) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        if (close === -1) return fail(i, `a ${tag[0]}-quoted string is never closed`, `close it with ${tag[0]}`);
        i = close + tag[0].length;
        continue;
      }
      if (/[0-9]/u.test(next)) {
        return fail(
          i,
          `positional parameter $${/^[0-9]+/u.exec(sql.slice(i + 1))?.[0] ?? ""} is not allowed`,
          `use the named parameters instead: ${Object.keys(parameters)
            .map((p) => `:${p}`)
            .join(", ")}`,
        );
      }
    }
    if (c === ":") {
      if (next === ":") {
        i += 2;
        continue;
      }
      if (IDENT_START.test(next)) {
        let j = i + 1;
        while (j < n && /[A-Za-z0-9_]/u.test(sql[j] ?? "")) j++;
        const name = sql.slice(i + 1, j);
        const definition = Object.hasOwn(parameters, name) ? parameters[name] : undefined;
        if (definition === undefined) {
          return fail(
            i,
            `unknown parameter :${name}`,
            `the parameters are ${Object.keys(parameters)
              .map((p) => `:${p}`)
              .join(", ")}; an array slice needs spaces around its colon (a[lo : hi])`,
          );
        }
        let index = order.indexOf(definition.canonical);
        if (index === -1) {
          order.push(definition.canonical);
          index = order.length - 1;
        }
        out.push(sql.slice(copiedUpTo, i), `($${index + 1}::${definition.sqlType})`);
        spans.push({ start: i, end: j, index: index + 1 });
        copiedUpTo = j;
        i = j;
        continue;
      }
    }
    if (c === ";") {
      if (endOfStatement === -1) {
        endOfStatement = i;
        out.push(sql.slice(copiedUpTo, i));
        copiedUpTo = n; // nothing after the first `;` is kept (only blanks, comments and `;` may follow)
      }
      i++;
      continue;
    }
    i++;
  }
  if (copiedUpTo < n) out.push(sql.slice(copiedUpTo));
  const text = out.join("").trimEnd();
  if (kind === "") return fail(0, "the query is empty (only blanks or comments)", "write a SELECT");
  let checkText = "";
  let copied = 0;
  for (const span of spans) {
    const placeholder = `$${span.index}`;
    checkText += sql.slice(copied, span.start) + placeholder.padEnd(span.end - span.start, " ");
    copied = span.end;
  }
  checkText += sql.slice(copied);
  return { ok: true, text, parameters: order, kind, checkText };
}

/** 1-based line and column of `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
