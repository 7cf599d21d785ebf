/**
 * Diagnostics: what `parseOutcome` reports about a file, and how the CLI
 * prints them (compiler style, one per mistake, each with a hint).
 */

/** One mistake in an outcome file, with where it is and how to fix it. */
export interface Diagnostic {
  /** The file name as given to `parseOutcome` (default `outcome.yaml`). */
  file: string;
  /** 1-based line of the offending node (the key, for an unknown key). */
  line: number;
  /** 1-based column, in UTF-16 code units like every JS string index. */
  column: number;
  /** JSON pointer to the value concerned, `''` for the whole document. */
  pointer: string;
  /** Stable snake_case code, one of {@link DIAGNOSTIC_CODES}. */
  code: string;
  /** What is wrong, in a sentence, naming the field (`signal.kind`). */
  message: string;
  /** How to fix it, when there is something useful to say. */
  hint?: string;
}

/**
 * The registry of diagnostic codes and what each means. Codes are stable:
 * tools and tests match on them, people read the messages.
 */
export const DIAGNOSTIC_CODES = {
  yaml_syntax: "The file is not valid YAML (JSON is read as YAML, so JSON syntax errors land here too).",
  duplicate_key: "A mapping sets the same key twice.",
  alias_bomb: 'Anchors and aliases expand to far more data than the file holds (a "billion laughs" attack).',
  alias_cycle: "An alias refers to the node that contains it, making an endless structure.",
  empty_file: "The file holds no document: it is empty, blank or only comments.",
  file_too_large: "The file is larger than MAX_OUTCOME_BYTES; it was not parsed.",
  too_deeply_nested: "The document is nested too deeply to read.",
  not_a_mapping: "The top level of the document is not a mapping of keys to values.",
  unknown_key: "A key the format does not define (often a typo or a key at the wrong level).",
  missing_field: "A required field is absent.",
  wrong_type: "A value has the wrong type (e.g. text where a number is expected).",
  invalid_value: "A value is not one of the allowed values.",
  bad_format: "A text value does not have the required form (e.g. an id that is not a slug).",
  bad_email: "A value is not an email address.",
  bad_date: "A value is not a calendar date in YYYY-MM-DD form.",
  bad_duration: "A value is not a duration such as 15m, 6h, 14d.",
  bad_percentage: "A value is not a percentage such as 5% or a fraction such as 0.05.",
  out_of_range: "A number is outside the range allowed for its field.",
  too_few_items: "A list has fewer items than required.",
  too_many_items: "A list has more items than allowed.",
  duplicate_item: "A list that must hold distinct items repeats one.",
  too_short: "A text value is shorter than allowed (often: empty).",
  too_long: "A text value is longer than allowed.",
  no_control_arm: "No arm is named `control`.",
  duplicate_arm: "Two arms have the same name.",
  weights_not_one: "The arm weights do not add up to 1 (100%).",
  unknown_connector: "A connector type that this runtime does not know.",
  invalid_connector:
    "A connector's settings are unusable: a credential named both ways or not at all, a csv path outside its directory, a timeout too long.",
  sql_refused:
    "A connector's SQL is refused: not one SELECT, it writes or locks, calls a denied function, lacks a required parameter, or does not parse.",
  source_refused:
    "A source the runtime may not read: its own database, a superuser or a role that may write, a host the vendor does not own, a credential this workspace may not use.",
  unknown_secret: "A connector names a workspace secret or source variable that does not exist or is not set.",
  source_unchecked:
    "A warning: the API could not reach a source to check it; the worker checks it again before its first poll.",
  conflicting_options: "Two fields that exclude each other are both set.",
  target_direction_conflict: "An absolute target is on the wrong side of the baseline for its direction.",
  target_unreachable: "A target the metric cannot reach (e.g. a proportion above 100%).",
  schema_violation: "Any other violation of the schema.",
  too_many_errors: "More mistakes than are worth listing; the rest are left out.",
  internal_error: "A bug in Outcome Runtime while reading the file; please report it.",
} as const satisfies Record<string, string>;

/** A code of {@link DIAGNOSTIC_CODES}. */
export type DiagnosticCode = keyof typeof DIAGNOSTIC_CODES;

/** Options of {@link formatDiagnostics}. */
export interface FormatOptions {
  /** Use ANSI colours (default false: the CLI decides from the terminal). */
  color?: boolean;
  /** What the diagnostics are: `error` (default) or `warning` (a source the API could not check). */
  severity?: "error" | "warning";
}

const ansi = {
  bold: (text: string) => `\u001b[1m${text}\u001b[22m`,
  red: (text: string) => `\u001b[31m${text}\u001b[39m`,
  cyan: (text: string) => `\u001b[36m${text}\u001b[39m`,
} as const;

/**
 * Formats diagnostics like a compiler, one block per diagnostic, then a
 * summary line:
 *
 * ```text
 * outcome.yaml:12:3: error[unknown_key]: signal: unknown key "metirc"
 *   hint: did you mean "metric"?
 * 1 error
 * ```
 *
 * Diagnostics are printed in the order given (`parseOutcome` sorts them by
 * position). An empty list gives `0 errors`.
 */
export function formatDiagnostics(errors: readonly Diagnostic[], options: FormatOptions = {}): string {
  const paint = options.color === true ? ansi : { bold: same, red: same, cyan: same };
  const severity = options.severity ?? "error";
  const lines: string[] = [];
  for (const d of errors) {
    const where = paint.bold(`${d.file}:${d.line}:${d.column}:`);
    lines.push(`${where} ${paint.red(paint.bold(`${severity}[${d.code}]`))}: ${d.message}`);
    if (d.hint !== undefined && d.hint !== "") lines.push(`  ${paint.cyan("hint:")} ${d.hint}`);
  }
  lines.push(`${errors.length} ${severity}${errors.length === 1 ? "" : "s"}`);
  return lines.join("\n");
}

function same(text: string): string {
  return text;
}
