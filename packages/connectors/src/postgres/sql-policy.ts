/**
 * What a signal query may be, checked with PostgreSQL's own grammar
 * (libpg_query, compiled to WebAssembly by the `libpg-query` package), not
 * with patterns: one `SELECT` (or `WITH ... SELECT`, `VALUES`, `TABLE`), no
 * data-modifying `WITH`, no `SELECT INTO`, no row locks (`FOR UPDATE`,
 * `FOR SHARE`), and no function from {@link deniedFunction}'s list: files,
 * large objects, `dblink`, backend signals, settings, advisory locks,
 * sequences, replication, `query_to_xml` and its kin (they run SQL given as
 * text), and `pg_sleep` beyond the statement timeout.
 *
 * This is one of three walls. The connection must also be a read-only role
 * that is not a superuser (`source-check.ts`), and the statement runs in a
 * `READ ONLY` transaction that is rolled back (`read-only-query.ts`).
 */
import { loadModule, parseSync, scanSync } from "libpg-query";

await loadModule();

/** Why a statement was refused: the problem, the fix, and the character offset in the checked text. */
export interface PolicyProblem {
  readonly problem: string;
  readonly fix: string;
  /** 0-based character offset into the text given to {@link checkSqlPolicy}. */
  readonly offset: number;
}

/** Options of {@link checkSqlPolicy}. */
export interface PolicyOptions {
  /** The statement timeout, in seconds: a `pg_sleep` may not ask for longer. */
  readonly timeoutSeconds: number;
}

/** Exact names of refused functions (compared in lower case, without the schema). */
const DENIED_NAMES: ReadonlySet<string> = new Set([
  // files and the server's directories
  "pg_stat_file",
  "pg_logdir_ls",
  "pg_current_logfile",
  // large objects (also prefix lo_)
  "loread",
  "lowrite",
  // signals to backends and the server
  "pg_terminate_backend",
  "pg_cancel_backend",
  "pg_reload_conf",
  "pg_rotate_logfile",
  "pg_signal_backend",
  "pg_log_backend_memory_contexts",
  "pg_promote",
  "pg_switch_wal",
  "pg_create_restore_point",
  "pg_start_backup",
  "pg_stop_backup",
  "pg_backup_start",
  "pg_backup_stop",
  "pg_import_system_collations",
  "pg_stat_statements_reset",
  // settings, notifications, sequences
  "set_config",
  "pg_notify",
  "nextval",
  "setval",
  "lastval",
]);

/** Refused name prefixes, with what they are. */
const DENIED_PREFIXES: readonly (readonly [string, string])[] = [
  ["pg_read_", "reads files of the server"],
  ["pg_ls_", "lists directories of the server"],
  ["pg_file_", "writes files of the server"],
  ["lo_", "reads or writes large objects"],
  ["dblink", "connects to another database"],
  ["pg_advisory", "takes advisory locks"],
  ["pg_try_advisory", "takes advisory locks"],
  ["pg_wal_", "controls the write-ahead log"],
  ["pg_replication_", "controls replication"],
  ["pg_create_", "creates replication slots"],
  ["pg_drop_replication", "drops replication slots"],
  ["pg_copy_", "copies replication slots"],
  ["pg_logical_", "controls logical replication"],
  ["pg_stat_reset", "resets statistics"],
  ["binary_upgrade_", "is for pg_upgrade only"],
  ["query_to_xml", "runs SQL given as text"],
  ["cursor_to_xml", "reads a cursor"],
  ["table_to_xml", "dumps a table"],
  ["schema_to_xml", "dumps a schema"],
  ["database_to_xml", "dumps the database"],
];

const SLEEP_FUNCTIONS: ReadonlySet<string> = new Set(["pg_sleep", "pg_sleep_for", "pg_sleep_until"]);

/** Statements that read; every other kind is refused. */
const READING_STATEMENT = "SelectStmt";

/** Nodes that write, wherever they appear (a data-modifying `WITH`). */
const WRITING_NODES: Readonly<Record<string, string>> = {
  InsertStmt: "INSERT",
  UpdateStmt: "UPDATE",
  DeleteStmt: "DELETE",
  MergeStmt: "MERGE",
};

/**
 * Why `name` (a function's name, without its schema) is refused, or null
 * when it may be called.
 */
export function deniedFunction(name: string): string | null {
  const lower = name.toLowerCase();
  if (DENIED_NAMES.has(lower)) return "is not allowed in a signal query";
  for (const [prefix, what] of DENIED_PREFIXES) {
    if (lower.startsWith(prefix)) return `${what}`;
  }
  return null;
}

type Node = Record<string, unknown>;

function isNode(value: unknown): value is Node {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Checks one statement against the policy. `text` is the SQL as Postgres
 * will parse it (named parameters already replaced by `$n`, of the same
 * length as the names they replace, so offsets are the user's).
 *
 * @returns the first problem found, or null when the statement may run
 */
export function checkSqlPolicy(text: string, options: PolicyOptions): PolicyProblem | null {
  let tree: { stmts?: { stmt?: Node; stmt_location?: number }[] };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? (error instanceof Error ? error.message : String(error));
    return {
      problem: `PostgreSQL cannot parse the query: ${message}`,
      fix: "fix the SQL (run it in psql to see the error in context)",
      offset: charOffset(text, Math.max(0, details?.cursorPosition ?? 0)),
    };
  }
  const statements = tree.stmts ?? [];
  if (statements.length !== 1) {
    return {
      problem: statements.length === 0 ? "the query is empty" : "the query holds more than one statement",
      fix: "write a single SELECT (a WITH ... SELECT for several steps)",
      offset: charOffset(text, statements[1]?.stmt_location ?? 0),
    };
  }
  const statement = statements[0]?.stmt ?? {};
  const kind = Object.keys(statement)[0] ?? "";
  if (kind !== READING_STATEMENT) {
    return {
      problem: `${describeStatement(kind)} was refused: the connector only reads`,
      fix: "write a SELECT (or WITH ... SELECT, VALUES, TABLE)",
      offset: charOffset(text, statements[0]?.stmt_location ?? 0),
    };
  }
  return walk(statement, text, options, 0);
}

/** Depth-first over the tree; the first refused node wins. `at` is the nearest location seen above. */
function walk(node: unknown, text: string, options: PolicyOptions, at: number): PolicyProblem | null {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = walk(item, text, options, at);
      if (found !== null) return found;
    }
    return null;
  }
  if (!isNode(node)) return null;
  const here = typeof node.location === "number" && node.location >= 0 ? node.location : at;
  for (const [key, value] of Object.entries(node)) {
    const writes = WRITING_NODES[key];
    if (writes !== undefined) {
      // The statement has no location of its own: its keyword is the last one before its table.
      const table = locationOf(value) ?? here;
      return {
        problem: `the query holds ${writes === "INSERT" ? "an" : "a"} ${writes} (a data-modifying WITH), which was refused`,
        fix: "read only: remove the INSERT, UPDATE, DELETE or MERGE",
        offset: charOffset(text, keywordBefore(text, writes, table) ?? table),
      };
    }
    if (key === "lockingClause" && Array.isArray(value) && value.length > 0) {
      return {
        problem: "FOR UPDATE / FOR SHARE locks rows of the source, which was refused",
        fix: "remove the FOR UPDATE, FOR SHARE, FOR NO KEY UPDATE or FOR KEY SHARE clause",
        offset: charOffset(text, lockingClauseStart(text, here) ?? here),
      };
    }
    if (key === "intoClause" && value !== undefined && value !== null) {
      return {
        problem: "SELECT ... INTO creates a table, which was refused",
        fix: "remove INTO ...: the connector reads the rows the SELECT returns",
        offset: charOffset(text, locationOf(value) ?? here),
      };
    }
    if (key === "FuncCall" && isNode(value)) {
      const found = checkCall(value, text, options, here);
      if (found !== null) return found;
    }
  }
  for (const value of Object.values(node)) {
    const found = walk(value, text, options, here);
    if (found !== null) return found;
  }
  return null;
}

function checkCall(call: Node, text: string, options: PolicyOptions, at: number): PolicyProblem | null {
  const parts = Array.isArray(call.funcname) ? call.funcname : [];
  const last = parts.at(-1) as { String?: { sval?: string } } | undefined;
  const name = last?.String?.sval ?? "";
  const where = charOffset(text, typeof call.location === "number" ? call.location : at);
  const denied = deniedFunction(name);
  if (denied !== null) {
    return {
      problem: `the function ${name}() ${denied}, and was refused`,
      fix: "read your tables with plain SQL; see docs/connectors.md for what a signal query may call",
      offset: where,
    };
  }
  if (SLEEP_FUNCTIONS.has(name.toLowerCase())) {
    const seconds = name.toLowerCase() === "pg_sleep" ? constantNumber(call.args) : undefined;
    if (seconds === undefined || seconds > options.timeoutSeconds) {
      return {
        problem: `${name}() ${seconds === undefined ? "with a computed or interval argument" : `for ${seconds}s`} may sleep past the statement timeout of ${options.timeoutSeconds}s, and was refused`,
        fix: `remove it, or sleep a constant number of seconds no longer than ${options.timeoutSeconds}`,
        offset: where,
      };
    }
  }
  return null;
}

/** The value of a call's only argument when it is a numeric constant. */
function constantNumber(args: unknown): number | undefined {
  if (!Array.isArray(args) || args.length !== 1) return undefined;
  const constant = (args[0] as { A_Const?: { ival?: { ival?: number }; fval?: { fval?: string } } }).A_Const;
  if (constant === undefined) return undefined;
  if (constant.ival !== undefined) return constant.ival.ival ?? 0;
  if (constant.fval?.fval !== undefined) {
    const n = Number(constant.fval.fval);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function locationOf(value: unknown): number | undefined {
  if (!isNode(value)) return undefined;
  for (const inner of Object.values(value)) {
    if (isNode(inner) && typeof inner.location === "number" && inner.location >= 0) return inner.location;
  }
  return typeof value.location === "number" && value.location >= 0 ? value.location : undefined;
}

/** `InsertStmt` → `an INSERT statement`; `VariableSetStmt` → `a SET statement`. */
function describeStatement(kind: string): string {
  const known: Record<string, string> = {
    InsertStmt: "an INSERT statement",
    UpdateStmt: "an UPDATE statement",
    DeleteStmt: "a DELETE statement",
    MergeStmt: "a MERGE statement",
    CopyStmt: "a COPY statement",
    VariableSetStmt: "a SET statement",
    ExplainStmt: "an EXPLAIN statement",
    CallStmt: "a CALL statement",
    DoStmt: "a DO block",
    TransactionStmt: "a transaction statement",
  };
  const words = kind
    .replace(/Stmt$/u, "")
    .replaceAll(/([a-z])([A-Z])/gu, "$1 $2")
    .toUpperCase();
  return known[kind] ?? `a ${words} statement`;
}

/** The text's tokens as PostgreSQL's scanner reads them (strings and comments are single tokens or none). */
function tokensOf(text: string): { start: number; text: string }[] {
  try {
    return (scanSync(text) as { tokens?: { start: number; text: string }[] }).tokens ?? [];
  } catch {
    return [];
  }
}

/** The byte offset of the last `keyword` token before byte offset `before`, if any. */
function keywordBefore(text: string, keyword: string, before: number): number | undefined {
  let found: number | undefined;
  for (const token of tokensOf(text)) {
    if (token.start >= before) break;
    if (token.text.toUpperCase() === keyword) found = token.start;
  }
  return found;
}

/**
 * The byte offset of the first row-locking clause (`FOR UPDATE`, `FOR NO KEY
 * UPDATE`, `FOR SHARE`, `FOR KEY SHARE`) at or after byte offset `from`: its
 * node has no location of its own.
 */
function lockingClauseStart(text: string, from: number): number | undefined {
  const tokens = tokensOf(text);
  for (const [i, token] of tokens.entries()) {
    if (token.start < from || token.text.toUpperCase() !== "FOR") continue;
    const next = tokens[i + 1]?.text.toUpperCase();
    if (next === "UPDATE" || next === "SHARE" || next === "NO" || next === "KEY") return token.start;
  }
  return undefined;
}

/** libpg_query reports byte offsets into the UTF-8 text; messages need character offsets. */
function charOffset(text: string, byteOffset: number): number {
  if (byteOffset <= 0) return 0;
  return Buffer.from(text, "utf8").subarray(0, byteOffset).toString("utf8").length;
}
