/**
 * HogQL text for the `posthog` connector: the queries it builds from
 * `exposure_event`, `event`, `experiment_property`, `variant_property` and
 * `value_property`, and the checks a user's own `query` passes before it is
 * ever sent (one read-only SELECT, known placeholders only).
 *
 * Placeholders: HogQL parses `{name}` in a query as a placeholder and replaces
 * it with the constant `values[name]` of the `HogQLQuery` request (PostHog's
 * query schema, `HogQLQuery.values`: "Constant values that can be referenced
 * with the {placeholder} syntax in the query"; posthog.com/docs/sql/variables).
 * Values travel as JSON, never pasted into the text, so an experiment key or
 * an arm may hold any character. A JSON array becomes a HogQL array constant:
 * test membership with `has({arms}, arm)`. Times travel as ISO 8601 text in
 * UTC with the `Z` zone (`2026-11-08T00:00:00.000Z`); compare them to
 * `timestamp` through `toDateTime({to})`. HogQL turns `toDateTime` of a text
 * into ClickHouse's `parseDateTime64BestEffortOrNull(text, 6, <project time
 * zone>)` (PostHog/posthog, `posthog/hogql/functions`, `toDateTime`: tz-aware):
 * the project's time zone applies only to a text without a zone, and the `Z`
 * the connector writes wins, so the window ends at the same instant whatever
 * the project's time zone is.
 *
 * Source of the placeholder semantics: PostHog/posthog,
 * `posthog/hogql_queries/hogql_query_runner.py` (`to_query`: each of
 * `query.values` becomes `ast.Constant(value=value)`, passed to `parse_select`
 * as the placeholders).
 */
import { ConnectorError } from "../connector-error";

/** Placeholders a user's `query` may use, with what each holds. */
const POSTHOG_PLACEHOLDERS: Readonly<Record<string, string>> = Object.freeze({
  experiment: "the experiment key (the one-experiment form)",
  experiments: "the keys of the batch's experiments, an array (the batched form)",
  arms: "the arms asked for, an array (every arm of the batch in the batched form)",
  from: "the window start (exclusive), ISO 8601 text in UTC",
  to: "the window end (inclusive), ISO 8601 text in UTC",
});

/** Statements HogQL's grammar has that are not a plain read, refused before sending (HogQL runs SELECT only, but the refusal is ours). */
const WRITE_KEYWORDS = [
  "insert",
  "update",
  "delete",
  "alter",
  "drop",
  "create",
  "truncate",
  "rename",
  "grant",
  "revoke",
  "optimize",
  "attach",
  "detach",
  "kill",
  "exchange",
];

/** A user's HogQL query, checked: its form, and the placeholders it uses. */
export interface CheckedHogQL {
  readonly text: string;
  /** `batched` when it uses `{experiments}` (rows carry an `experiment` column), `single` for `{experiment}`. */
  readonly form: "batched" | "single";
  readonly placeholders: ReadonlySet<string>;
}

interface Token {
  readonly kind: "word" | "placeholder" | "semicolon" | "other";
  readonly text: string;
  readonly offset: number;
}

/**
 * The tokens of `text` that matter to the checks: words, `{placeholders}`
 * and `;`, outside string literals ('...'), quoted identifiers ("..." and
 * `...`) and comments (-- and /* *\/).
 *
 * @throws ConnectorError `invalid_config` for an unterminated literal or comment
 */
function tokens(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] ?? "";
    if (c === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      i = end === -1 ? n : end + 1;
      continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end === -1) throw unterminated(i, "comment /*");
      i = end + 2;
      continue;
    }
    if (c === "'" || c === '"' || c === "`") {
      let j = i + 1;
      for (;;) {
        if (j >= n) throw unterminated(i, `quote ${c}`);
        const d = text[j];
        if (d === "\\") j += 2;
        else if (d === c && text[j + 1] === c) j += 2;
        else if (d === c) break;
        else j++;
      }
      i = j + 1;
      continue;
    }
    if (c === "{") {
      const match = /^\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}/u.exec(text.slice(i));
      if (match !== null) {
        out.push({ kind: "placeholder", text: match[1] ?? "", offset: i });
        i += match[0].length;
        continue;
      }
    }
    if (c === ";") {
      out.push({ kind: "semicolon", text: c, offset: i });
      i++;
      continue;
    }
    if (/[A-Za-z_]/u.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_$]*/u.exec(text.slice(i));
      const word = match?.[0] ?? c;
      out.push({ kind: "word", text: word.toLowerCase(), offset: i });
      i += word.length;
      continue;
    }
    i++;
  }
  return out;
}

function unterminated(offset: number, what: string): ConnectorError {
  return refused(`an unterminated ${what} starts at character ${offset + 1}`, "close it", offset, "invalid_config");
}

function refused(
  problem: string,
  fix: string,
  offset: number,
  code: "read_only_violation" | "invalid_config" = "read_only_violation",
): ConnectorError {
  return new ConnectorError(code, `posthog connector: query: ${problem}; ${fix}`, {
    details: { connector: "posthog", field: "query", sqlField: "query", problem, fix, offset },
  });
}

/**
 * Checks a user's HogQL `query` before it is ever sent: one statement, a
 * SELECT (or WITH ... SELECT), no write or administration keyword outside
 * strings and comments, only the placeholders of {@link POSTHOG_PLACEHOLDERS},
 * `{experiment}` or `{experiments}` (not both) and `{to}`.
 *
 * @throws ConnectorError `read_only_violation` (with `details.sqlField: "query"` and the offset) for
 *   anything but one read; `invalid_config` for an unknown or missing placeholder
 */
export function checkUserQuery(text: string): CheckedHogQL {
  const list = tokens(text);
  const first = list[0];
  if (first === undefined) throw refused("is empty", "write a HogQL SELECT", 0, "invalid_config");
  if (first.kind !== "word" || (first.text !== "select" && first.text !== "with")) {
    throw refused(
      `starts with ${JSON.stringify(text.slice(first.offset, first.offset + 20))}, not SELECT or WITH`,
      "a signal query only reads: write one HogQL SELECT",
      first.offset,
    );
  }
  const semicolons = list.filter((t) => t.kind === "semicolon");
  const last = list.at(-1);
  for (const s of semicolons) {
    if (s !== last) {
      throw refused(
        `holds more than one statement (a ";" at character ${s.offset + 1})`,
        "write one SELECT, without ;",
        s.offset,
      );
    }
  }
  for (const t of list) {
    // `events.properties.delete` names a property, not a statement.
    if (t.kind === "word" && WRITE_KEYWORDS.includes(t.text) && text[t.offset - 1] !== ".") {
      throw refused(
        `uses ${t.text.toUpperCase()} at character ${t.offset + 1}, which is not a read`,
        "a signal query only reads: write one HogQL SELECT",
        t.offset,
      );
    }
  }
  const placeholders = new Set<string>();
  for (const t of list) {
    if (t.kind !== "placeholder") continue;
    if (!(t.text in POSTHOG_PLACEHOLDERS)) {
      throw refused(
        `the placeholder {${t.text}} at character ${t.offset + 1} is not one the connector fills`,
        `use ${Object.keys(POSTHOG_PLACEHOLDERS)
          .map((p) => `{${p}}`)
          .join(", ")}`,
        t.offset,
        "invalid_config",
      );
    }
    placeholders.add(t.text);
  }
  if (placeholders.has("experiment") && placeholders.has("experiments")) {
    throw refused(
      "uses both {experiment} and {experiments}",
      "use {experiments} to read a batch (with an experiment column), or {experiment} for one",
      0,
      "invalid_config",
    );
  }
  if (!placeholders.has("experiment") && !placeholders.has("experiments")) {
    throw refused(
      "uses neither {experiment} nor {experiments}, so every experiment would get the same numbers",
      "filter on has({experiments}, ...) and return it as experiment, or on {experiment}",
      0,
      "invalid_config",
    );
  }
  if (!placeholders.has("to")) {
    throw refused(
      "does not use {to}, so every poll would count up to a different moment",
      "bound the events with timestamp <= toDateTime({to})",
      0,
      "invalid_config",
    );
  }
  return { text, form: placeholders.has("experiments") ? "batched" : "single", placeholders };
}

/** What the built query reads, from the connector's settings. */
export interface BuiltQuerySettings {
  readonly exposureEvent: string;
  readonly event: string;
  readonly experimentProperty: string;
  readonly variantProperty: string;
  /** The numeric property a mean sums per person; undefined for a proportion. */
  readonly valueProperty: string | undefined;
}

/** `properties.<name>` with the name as a HogQL quoted identifier (backticks, so `$feature/my-flag` reads as one name). */
function propertyRef(name: string, table = ""): string {
  return `${table === "" ? "" : `${table}.`}properties.\`${name.replaceAll("\\", "\\\\").replaceAll("`", "\\`")}\``;
}

/** A HogQL string literal (single quotes, backslash escapes). */
function stringLiteral(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * The HogQL the connector sends when no `query` is set: per person, the
 * experiment and arm of their exposures (`exposure_event` carrying
 * `experiment_property` and `variant_property`) and their first exposure
 * time, then their value: for a proportion 1 when they fired `event` at or
 * after their first exposure, else 0; for a mean the sum of `value_property`
 * over those events (0 without any). Then per (experiment, arm): units =
 * persons, sum = Σ value, sum_sq = Σ value², each person's value squared
 * once, in HogQL. Cumulative: everything up to `{to}`. Batched: one query for
 * `{experiments}`, grouped by experiment and arm, at most `limit` rows. A
 * mean's rows also carry `outcome_events` (events of `event` after exposure)
 * and `valued_events` (those with a number in `value_property`): HogQL reads
 * a missing property as null, so a mistyped `value_property` would otherwise
 * be sums of 0.
 */
export function builtQuery(s: BuiltQuerySettings, limit: number): string {
  const experiment = `toString(${propertyRef(s.experimentProperty)})`;
  const arm = `toString(${propertyRef(s.variantProperty)})`;
  const to = "toDateTime({to})";
  const perPerson =
    s.valueProperty === undefined
      ? "if(countIf(outcome.timestamp >= exposure.exposed_at) > 0, 1, 0)"
      : "sumIf(outcome.value, outcome.timestamp >= exposure.exposed_at)";
  const outcomeValue = s.valueProperty === undefined ? "1" : `toFloat(${propertyRef(s.valueProperty)})`;
  const after = "outcome.timestamp >= exposure.exposed_at";
  const meanChecks =
    s.valueProperty === undefined
      ? { outer: "", inner: "" }
      : {
          outer: ", sum(events) AS outcome_events, sum(valued) AS valued_events",
          inner: `,\n           countIf(${after}) AS events, countIf(${after} AND outcome.value IS NOT NULL) AS valued`,
        };
  return [
    `SELECT experiment, arm, count() AS units, sum(value) AS sum, sum(value * value) AS sum_sq${meanChecks.outer}`,
    "FROM (",
    `    SELECT exposure.experiment AS experiment, exposure.arm AS arm, exposure.person_id AS person_id, ${perPerson} AS value${meanChecks.inner}`,
    "    FROM (",
    `        SELECT ${experiment} AS experiment, ${arm} AS arm, person_id, min(timestamp) AS exposed_at`,
    "        FROM events",
    `        WHERE event = ${stringLiteral(s.exposureEvent)}`,
    `          AND timestamp <= ${to}`,
    `          AND has({experiments}, ${experiment})`,
    `          AND has({arms}, ${arm})`,
    "        GROUP BY experiment, arm, person_id",
    "    ) AS exposure",
    "    LEFT JOIN (",
    `        SELECT person_id, timestamp, ${outcomeValue} AS value`,
    "        FROM events",
    `        WHERE event = ${stringLiteral(s.event)}`,
    `          AND timestamp <= ${to}`,
    "    ) AS outcome ON exposure.person_id = outcome.person_id",
    "    GROUP BY experiment, arm, person_id",
    ")",
    "GROUP BY experiment, arm",
    "ORDER BY experiment, arm",
    `LIMIT ${limit}`,
  ].join("\n");
}
