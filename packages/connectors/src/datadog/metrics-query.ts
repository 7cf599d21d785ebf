/**
 * Datadog metric queries, written and read: the settings' metric queries
 * checked, the per-arm query built from them, and the series of an answer
 * summed into whole counts per (experiment, arm). Pure functions; the request
 * itself is `query-client.ts`.
 *
 * The query grammar is Datadog's (docs.datadoghq.com/metrics/#query-metrics,
 * "Advanced filtering" and "Functions"): `<space aggregator>:<metric>{<filter>}
 * by {<tag keys>}`, then `.as_count()` (a count metric's values as counts per
 * interval, not a per-second rate) and `.rollup(sum, <seconds>)` (the points of
 * each series summed over intervals of that length). A filter is tags
 * (`key:value`) joined by `,` (and), or a boolean expression of them with
 * `AND`, `OR`, `NOT`, parentheses and `key IN (v1, v2)`.
 */
import { ConnectorError } from "../connector-error";

/** A metric query of the settings, split: `sum:trace.http.request.hits{service:checkout}`. */
export interface MetricQuery {
  /** The setting it came from (`requests`, `errors`, `slow_requests`). */
  readonly field: string;
  readonly metric: string;
  /** The filter inside the braces, trimmed; `*` or empty for none. */
  readonly filter: string;
}

/** Datadog's metric names: ASCII letters, digits, `_` and `.`, starting with a letter, at most 200 characters. */
const METRIC_NAME = /^[A-Za-z][A-Za-z0-9_.]{0,199}$/u;

/** A tag key of the settings (`experiment_tag`, `arm_tag`): lowercase, as Datadog stores it. */
export const TAG_KEY = /^[a-z][a-z0-9_./-]{0,99}$/u;

/**
 * A tag value the connector puts in a query: Unicode letters and digits, `_`,
 * `-`, `.` and `/`, nothing that ends a tag (`,`), a group (`)`, `}`), a value
 * list or a key (`:`), and no blanks or quotes: a key holding any of those
 * could widen the filter, and Datadog would have turned them into `_` at
 * intake anyway (docs.datadoghq.com/getting_started/tagging/#define-tags).
 * Upper-case letters are allowed here and lowercased before use.
 */
const TAG_VALUE = /^[\p{L}\p{N}][\p{L}\p{M}\p{N}_./-]*$/u;

/** Datadog's longest tag, `key:value` together (getting_started/tagging). */
const MAX_TAG_CHARS = 200;

/**
 * Reads a metric query setting: `[sum:]<metric>{<filter>}` or `[sum:]<metric>`.
 * The connector adds the experiment's tags, the grouping, `.as_count()` and
 * the rollup, so the setting holds none of them.
 *
 * @throws ConnectorError `invalid_config` naming the setting, what is wrong and the form to write
 */
export function parseMetricQuery(field: string, text: string): MetricQuery {
  const fail = (problem: string): ConnectorError =>
    new ConnectorError(
      "invalid_config",
      `datadog connector: ${field}: ${problem}; write the query of a count metric as sum:<metric>{<tags>}, e.g. sum:trace.http.request.hits{service:checkout} (the connector adds the experiment's tags, "by {arm}", .as_count() and the rollup)`,
      { details: { connector: "datadog", field, value: text, problem } },
    );
  const match = /^\s*(?:([a-z0-9.]+):)?([^{}\s:]+)\s*(?:\{([^{}]*)\})?\s*$/u.exec(text);
  if (match === null) {
    if (/\bby\s*\{/u.test(text)) throw fail(`${JSON.stringify(text)} groups the query (by {...})`);
    if (/\)\s*$|\.\w+\(/u.test(text)) throw fail(`${JSON.stringify(text)} applies functions to the query`);
    throw fail(`${JSON.stringify(text)} is not one metric with an optional {filter}`);
  }
  const [, aggregator, metric = "", filter = ""] = match;
  if (aggregator !== undefined && aggregator !== "sum") {
    throw fail(
      /^p\d/u.test(aggregator)
        ? `"${aggregator}:" is a percentile, not a count: a latency guardrail reads the share of requests slower than a threshold, from a count of slow requests (slow_requests) and of all requests (requests); a percentile cannot be compared arm against arm`
        : `the space aggregator "${aggregator}:" does not give the arm's total; counts are summed across hosts with "sum:"`,
    );
  }
  if (!METRIC_NAME.test(metric)) {
    throw fail(`${JSON.stringify(metric)} is not a metric name (letters, digits, _ and ., starting with a letter)`);
  }
  return { field, metric, filter: filter.trim() };
}

/** `tag` as a filter term of `key`, after {@link checkTagValue}. */
function term(key: string, value: string): string {
  return `${key}:${value}`;
}

/**
 * The lowercased tag value of `value` (an experiment key or an arm), or why
 * it cannot be one: Datadog lowercases tags at intake, so the query asks for
 * the lowercased value and answers are matched back without case.
 */
export function checkTagValue(key: string, value: string): { ok: string } | { problem: string } {
  if (!TAG_VALUE.test(value)) {
    return {
      problem: `${JSON.stringify(value)} cannot be a Datadog tag value: only letters, digits, _, -, . and / (no blanks, commas, colons, braces, parentheses or quotes), starting with a letter or digit`,
    };
  }
  if (key.length + 1 + value.length > MAX_TAG_CHARS) {
    return { problem: `the tag ${key}:${value} is longer than Datadog's ${MAX_TAG_CHARS} characters` };
  }
  return { ok: value.toLowerCase() };
}

/**
 * The user's filter joined with the connector's terms by AND. A filter of
 * plain tags joined by commas is rewritten with AND (Datadog does not mix the
 * comma with boolean operators); a boolean filter is kept whole in parentheses.
 */
function joinFilter(filter: string, terms: readonly string[]): string {
  const user =
    filter === "" || filter === "*"
      ? []
      : /\b(AND|OR|NOT|IN)\b|[()]/u.test(filter)
        ? [`(${filter})`]
        : filter
            .split(",")
            .map((t) => t.trim())
            .filter((t) => t !== "");
  return [...user, ...terms].join(" AND ");
}

/**
 * The total of `query` per (experiment, arm) over `rangeSeconds`:
 * `sum:<metric>{<filter> AND <experiment_tag> IN (...) AND <arm_tag> IN (...)} by {<experiment_tag>,<arm_tag>}.as_count().rollup(sum, <rangeSeconds>)`.
 * Keys and arms must have passed {@link checkTagValue} (lowercased).
 *
 * @example
 * totalsQuery(q, { experimentTag: "experiment", armTag: "arm" }, ["checkout-copy"], ["control", "treatment"], 604800)
 * // sum:trace.http.request.hits{service:checkout AND experiment:checkout-copy AND arm IN (control, treatment)} by {experiment,arm}.as_count().rollup(sum, 604800)
 */
export function totalsQuery(
  query: MetricQuery,
  tags: { readonly experimentTag: string; readonly armTag: string },
  keys: readonly string[],
  arms: readonly string[],
  rangeSeconds: number,
): string {
  const experiment =
    keys.length === 1 ? term(tags.experimentTag, keys[0] ?? "") : `${tags.experimentTag} IN (${keys.join(", ")})`;
  const arm = arms.length === 1 ? term(tags.armTag, arms[0] ?? "") : `${tags.armTag} IN (${arms.join(", ")})`;
  const filter = joinFilter(query.filter, [experiment, arm]);
  return `sum:${query.metric}{${filter}} by {${tags.experimentTag},${tags.armTag}}.as_count().rollup(sum, ${rangeSeconds})`;
}

/** One series of an answer, as the connector reads it. */
export interface AnswerSeries {
  readonly scope?: string | undefined;
  readonly tagSet?: readonly string[] | undefined;
  readonly pointlist?: readonly (readonly unknown[])[] | undefined;
}

/** The value of tag `key` in a series (its `tag_set`, else its `scope`), lowercased; undefined when absent. */
export function tagOf(series: AnswerSeries, key: string): string | undefined {
  const tags = series.tagSet ?? (series.scope ?? "").split(",").map((t) => t.trim());
  const found = tags.filter((t) => t.startsWith(`${key}:`)).map((t) => t.slice(key.length + 1).toLowerCase());
  return found.length === 1 ? found[0] : undefined;
}

/** What a series' points add up to within the window. */
export interface SeriesTotal {
  readonly total: number;
  /** Points left out because their data may lie outside the window (see {@link seriesTotal}). */
  readonly outside: number;
  /** Points with a null value (no data in that interval), left out. */
  readonly nulls: number;
}

/**
 * Σ of a series' points over the window [fromMs, toMs). A point is a rollup
 * bucket stamped with its start: one stamped at `to` or later holds data after
 * the window and is not counted; one stamped before `from` is counted only
 * when the answer says it covers no earlier time than asked (`answerFromMs`,
 * its `from_date`, ≥ fromMs: Datadog then bounded the bucket's data by the
 * window), and not when the answer was widened (rounded to another boundary,
 * another time zone's day), as its data may lie before the window. A null
 * value is an interval without data.
 *
 * @throws ConnectorError `bad_response` naming the series and the point when a point is not [time, number | null]
 */
export function seriesTotal(
  series: AnswerSeries,
  window: { readonly fromMs: number; readonly toMs: number; readonly answerFromMs: number | undefined },
  where: string,
): SeriesTotal {
  const { fromMs, toMs, answerFromMs } = window;
  const widened = answerFromMs === undefined || answerFromMs < fromMs;
  let total = 0;
  let outside = 0;
  let nulls = 0;
  for (const [index, point] of (series.pointlist ?? []).entries()) {
    const [at, value] = point;
    if (point.length !== 2 || typeof at !== "number" || !Number.isFinite(at)) {
      throw new ConnectorError(
        "bad_response",
        `datadog: ${where}: point ${index} is ${JSON.stringify(point)}, not [milliseconds, value]`,
        { details: { scope: series.scope, index } },
      );
    }
    if (value === null) {
      nulls++;
      continue;
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new ConnectorError(
        "bad_response",
        `datadog: ${where}: point ${index} has the value ${JSON.stringify(value)}, not a number`,
        { details: { scope: series.scope, index, value } },
      );
    }
    if (at >= toMs || (at < fromMs && widened)) {
      outside++;
      continue;
    }
    total += value;
  }
  return { total, outside, nulls };
}

/**
 * Whole counts from a requests total and an errors (or slow requests) total:
 * each rounded to the nearest whole number (a rollup of `.as_count()` values
 * can carry float residue, e.g. 99.99999); an errors count above the requests
 * count by one after rounding is clamped to it (the two metrics are rolled up
 * separately, and their rounding may part by one), by more it is refused.
 *
 * @returns units (requests) and sum (errors); or the problem, for a `bad_response`
 */
export function wholeCounts(requests: number, errors: number): { units: number; sum: number } | { problem: string } {
  const units = Math.round(requests);
  const sum = Math.round(errors);
  if (sum > units + 1) {
    return {
      problem: `counts ${sum} errors (or slow requests) out of ${units} requests; the numerator's metric must count a subset of the requests' metric, over the same tags`,
    };
  }
  return { units, sum: Math.min(sum, Math.max(units, 0)) };
}
