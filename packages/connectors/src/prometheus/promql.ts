/**
 * The PromQL the `prometheus` connector writes: string literals, regular
 * expressions matching a list of values exactly, and series selectors read
 * from outcome.yaml with matchers added (docs/prometheus/latest/querying/basics.md,
 * "Time series selectors" and "String literals").
 *
 * Nothing from an experiment key or an arm name is ever written into an
 * expression except through {@link promqlString} (a string literal) and
 * {@link promqlExactRegex} (a regular expression of escaped literals): a key
 * holding `"`, `|` or `.*` stays a literal and cannot widen a match.
 */

/**
 * A PromQL double-quoted string literal holding `value` exactly. PromQL's
 * escapes are Go's (`\"`, `\\`, `\n`, `\uXXXX`), a superset of what
 * `JSON.stringify` writes.
 */
export function promqlString(value: string): string {
  return JSON.stringify(value);
}

/** RE2's metacharacters, escaped with a backslash as Go's `regexp.QuoteMeta` does. */
const RE2_META = /[\\.+*?()|[\]{}^$]/gu;

/**
 * A regular expression (RE2, which PromQL anchors at both ends) matching
 * exactly the values of `values` and nothing else: each value with its
 * metacharacters escaped, joined by `|`.
 *
 * @example promqlExactRegex(["a.b", "c|d"]) === "a\\.b|c\\|d"
 */
export function promqlExactRegex(values: readonly string[]): string {
  return values.map((v) => v.replace(RE2_META, (c) => `\\${c}`)).join("|");
}

/** A label name (basics.md: `[a-zA-Z_][a-zA-Z0-9_]*`). */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/u;

/** One label matcher: `name op "value"` (the value kept as its literal, as written). */
export interface LabelMatcher {
  readonly name: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  /** The string literal as written (quotes included). */
  readonly literal: string;
}

/** A series selector: a metric name and its label matchers. */
export interface SeriesSelector {
  readonly metric: string;
  readonly matchers: readonly LabelMatcher[];
}

/**
 * Parses a series selector as outcome.yaml writes it: a metric name,
 * optionally followed by `{label="value", label=~"regex", ...}`. Nothing
 * else (no range, offset, function or operator) is accepted, so a setting
 * cannot carry an expression of its own into the query around it.
 *
 * @returns the selector, or a sentence saying what is wrong
 */
export function parseSeriesSelector(text: string): SeriesSelector | string {
  const s = text.trim();
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/u.exec(s)?.[0];
  if (name === undefined) return "does not start with a metric name";
  let i = name.length;
  const matchers: LabelMatcher[] = [];
  const skip = (): void => {
    while (i < s.length && /\s/u.test(s[i] ?? "")) i++;
  };
  skip();
  if (i === s.length) return { metric: name, matchers };
  if (s[i] !== "{")
    return `has ${JSON.stringify(s.slice(i, i + 20))} after the metric name, where only {label matchers} may follow`;
  i++;
  for (;;) {
    skip();
    if (s[i] === "}") {
      i++;
      break;
    }
    const label = /^[a-zA-Z_][a-zA-Z0-9_]*/u.exec(s.slice(i))?.[0];
    if (label === undefined) return `has ${JSON.stringify(s.slice(i, i + 20))} where a label name belongs`;
    i += label.length;
    skip();
    const op = (["=~", "!~", "!=", "="] as const).find((o) => s.startsWith(o, i));
    if (op === undefined) return `has no =, !=, =~ or !~ after the label ${label}`;
    i += op.length;
    skip();
    const quote = s[i];
    if (quote !== '"' && quote !== "'" && quote !== "`") return `the value of ${label} is not a quoted string`;
    let end = i + 1;
    while (end < s.length && s[end] !== quote) end += quote !== "`" && s[end] === "\\" ? 2 : 1;
    if (end >= s.length) return `the value of ${label} has no closing ${quote}`;
    matchers.push({ name: label, op, literal: s.slice(i, end + 1) });
    i = end + 1;
    skip();
    if (s[i] === ",") {
      i++;
      continue;
    }
    if (s[i] === "}") {
      i++;
      break;
    }
    return `has ${JSON.stringify(s.slice(i, i + 20))} where , or } belongs`;
  }
  skip();
  if (i !== s.length) return `has ${JSON.stringify(s.slice(i, i + 20))} after the selector`;
  return { metric: name, matchers };
}

/** The selector written back with `extra` matchers added after its own. */
export function renderSelector(selector: SeriesSelector, extra: readonly LabelMatcher[]): string {
  const all = [...selector.matchers, ...extra];
  return all.length === 0
    ? selector.metric
    : `${selector.metric}{${all.map((m) => `${m.name}${m.op}${m.literal}`).join(", ")}}`;
}
