/**
 * The offline `draft_outcome` operation: an outcome document drafted from one
 * sentence such as "Cut checkout abandonment from 68% to 60% in 6 weeks".
 */
import { formatPercent } from "./render";
import { RulesError } from "./rules-error";
import type { Direction, MetricKind } from "./types";

/** A field the user must still fill in or check. */
export interface DraftTodo {
  /** Dotted path of the field (e.g. `signal.connector.query`). */
  path: string;
  note: string;
}

/** Output of the `draft_outcome` operation (`schemas/llm/draft_outcome.output.schema.json`). */
export interface DraftOutcomeOutput {
  /** An outcome.yaml document, as written (percentages as text such as `10%`). */
  outcome: Record<string, unknown>;
  todos: DraftTodo[];
}

export interface DraftOutcomeInput {
  sentence: string;
  /** Today's date (YYYY-MM-DD) for "this quarter" and the like; default: the current UTC date. */
  today?: string;
}

const DRAFT_EXAMPLES: readonly string[] = [
  "Cut checkout abandonment from 68% to 60% in 6 weeks",
  "Increase trial-to-paid conversion by 10% by 2027-03-31",
  "Reduce p95 page load time from 2.4s to 1.8s this quarter",
];

const PLACEHOLDER_EMAIL = "owner@example.com";
const DATABASE_URL_ENV = "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL";

const DECREASE_VERBS = [
  "cut",
  "reduce",
  "decrease",
  "lower",
  "drop",
  "shrink",
  "minimise",
  "minimize",
  "halve",
  "bring down",
  "slash",
];
const INCREASE_VERBS = [
  "increase",
  "raise",
  "grow",
  "boost",
  "lift",
  "double",
  "maximise",
  "maximize",
  "triple",
  "get",
];
const NEUTRAL_VERBS = ["improve", "move", "change"];
const VERBS = [...DECREASE_VERBS, ...INCREASE_VERBS, ...NEUTRAL_VERBS].sort((a, b) => b.length - a.length);

/** Metric words for which lower is better ("improve" then means decrease). */
const LOWER_IS_BETTER = new Set(
  "abandonment abandon churn latency time load error errors bounce cost costs crash crashes duration cancellation cancellations refund refunds p50 p75 p90 p95 p99 ttfb lcp inp cls fcp wait tickets".split(
    " ",
  ),
);
const PROPORTION_WORDS = new Set(
  "rate conversion conversions abandonment churn retention share ratio percentage activation bounce adoption completion ctr signup signups".split(
    " ",
  ),
);
const MEAN_WORDS = new Set(
  "time latency duration value revenue spend aov arpu arpa count number minutes seconds load p50 p75 p90 p95 p99 ttfb lcp inp score nps size sessions orders per".split(
    " ",
  ),
);
const ACCOUNT_WORDS = new Set(
  "account accounts subscription subscriptions workspace workspaces team teams seat seats plan plans mrr arpa".split(
    " ",
  ),
);
const SESSION_WORDS = new Set(
  "checkout cart basket page pages load latency bounce p50 p75 p90 p95 p99 ttfb lcp inp cls fcp search".split(" "),
);

type ValueUnit = "%" | "s" | "ms" | "min" | "h" | "eur" | "usd" | "gbp" | "pp" | "";

interface Quantity {
  value: number;
  unit: ValueUnit;
  text: string;
}

const NUMBER = String.raw`([$€£])?\s?(\d+(?:\.\d+)?)\s?(%|percentage points?|pp|points?|ms|milliseconds?|seconds?|secs?|s|minutes?|mins?|min|hours?|h|eur|usd|gbp|euros?|dollars?)?(?![a-z])`;

function quantity(match: RegExpMatchArray, offset: number): Quantity {
  const currency = match[offset];
  const value = Number(match[offset + 1]);
  const raw = (match[offset + 2] ?? "").toLowerCase();
  let unit: ValueUnit = "";
  if (raw === "%") unit = "%";
  else if (/^(percentage points?|pp|points?)$/.test(raw)) unit = "pp";
  else if (/^(ms|milliseconds?)$/.test(raw)) unit = "ms";
  else if (/^(seconds?|secs?|s)$/.test(raw)) unit = "s";
  else if (/^(minutes?|mins?|min)$/.test(raw)) unit = "min";
  else if (/^(hours?|h)$/.test(raw)) unit = "h";
  else if (currency === "€" || /^(eur|euros?)$/.test(raw)) unit = "eur";
  else if (currency === "$" || /^(usd|dollars?)$/.test(raw)) unit = "usd";
  else if (currency === "£" || raw === "gbp") unit = "gbp";
  return { value, unit, text: `${currency ?? ""}${match[offset + 1]}${match[offset + 2] ?? ""}` };
}

function notUnderstood(sentence: string, what: string): RulesError {
  return new RulesError(
    "sentence_not_understood",
    `could not draft an outcome from "${sentence}": ${what}. Write a change verb, a metric, a number and a deadline, for example: "${DRAFT_EXAMPLES[0]}" or "${DRAFT_EXAMPLES[1]}"`,
    { sentence, examples: DRAFT_EXAMPLES },
  );
}

function isRealDate(date: string): boolean {
  const d = new Date(`${date}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === date;
}

function lastDayOfMonth(year: number, month: number): string {
  // month is 1-based; day 0 of the next month is the last day of this one.
  return new Date(Date.UTC(year, month, 0)).toISOString().slice(0, 10);
}

interface Horizon {
  value: string;
  note?: string;
}

/** Finds and removes the deadline of the sentence. */
function takeHorizon(text: string, today: string): { rest: string; horizon: Horizon | undefined } {
  const [year, month] = today.split("-").map(Number) as [number, number];
  const quarter = Math.ceil(month / 3);
  const rules: [RegExp, (m: RegExpMatchArray) => Horizon][] = [
    [
      /\b(?:in|within|over)\s+(?:the\s+next\s+)?(\d+)\s+(days?|weeks?|months?|quarters?|hours?)\b/,
      (m) => {
        const n = Number(m[1]);
        const unit = m[2] ?? "";
        if (unit.startsWith("day")) return { value: `${n}d` };
        if (unit.startsWith("week")) return { value: `${n}w` };
        if (unit.startsWith("hour")) return { value: `${n}h` };
        if (unit.startsWith("month")) return { value: `${n * 30}d`, note: `${n} month(s) read as ${n * 30} days` };
        return { value: `${n * 13}w`, note: `${n} quarter(s) read as ${n * 13} weeks` };
      },
    ],
    [/\b(?:by|before|until)\s+(\d{4}-\d{2}-\d{2})\b/, (m) => ({ value: m[1] ?? "" })],
    [
      /\b(?:by\s+(?:the\s+)?end\s+of\s+|by\s+|before\s+)?q([1-4])(?:\s+(\d{4}))?\b/,
      (m) => {
        const q = Number(m[1]);
        let y = m[2] === undefined ? year : Number(m[2]);
        if (m[2] === undefined && q < quarter) y += 1;
        return { value: lastDayOfMonth(y, q * 3) };
      },
    ],
    [
      /\b(?:(?:by|before)\s+(?:the\s+)?end\s+of\s+(?:the\s+)?|(?:by\s+)?(?:the\s+)?end\s+of\s+)?(this|next|the)\s+(quarter|month|year)\b/,
      (m) => {
        const next = m[1] === "next";
        if (m[2] === "month") {
          const mm = next ? (month % 12) + 1 : month;
          return { value: lastDayOfMonth(next && month === 12 ? year + 1 : year, mm) };
        }
        if (m[2] === "year") return { value: `${next ? year + 1 : year}-12-31` };
        const q = next ? (quarter % 4) + 1 : quarter;
        return { value: lastDayOfMonth(next && quarter === 4 ? year + 1 : year, q * 3) };
      },
    ],
  ];
  for (const [re, read] of rules) {
    const m = text.match(re);
    if (m !== null && m.index !== undefined) {
      const rest = `${text.slice(0, m.index)} ${text.slice(m.index + m[0].length)}`.replace(/\s+/g, " ").trim();
      return { rest, horizon: read(m) };
    }
  }
  return { rest: text, horizon: undefined };
}

function snake(words: string[]): string {
  let name = words.join("_").replace(/_+/g, "_");
  if (!/^[a-z]/.test(name)) name = `metric_${name}`;
  return name.slice(0, 63).replace(/_+$/, "");
}

const UNIT_SUFFIX: Partial<Record<ValueUnit, string>> = {
  s: "seconds",
  ms: "ms",
  min: "minutes",
  h: "hours",
  eur: "eur",
  usd: "usd",
  gbp: "gbp",
};

/** A fraction from a percentage quantity, for a proportion level. */
function level(q: Quantity, kind: MetricKind): number {
  if (kind === "proportion" && q.unit === "%") return Number((q.value / 100).toFixed(10));
  return q.value;
}

function pct(fraction: number): string {
  return formatPercent(Number(fraction.toFixed(6)));
}

/**
 * Drafts an outcome document from one sentence, without an LLM.
 *
 * Reads, in order: the deadline ("in 6 weeks", "by 2027-03-31", "this
 * quarter", "by end of Q3", "next month"; none → 90d and a todo), the change
 * verb at the start (cut/reduce/… → decrease, increase/raise/… → increase,
 * improve → by the metric's words), the numbers ("from X to Y" → baseline and
 * an absolute target; "by N%" → a relative target; "to Y" → an absolute
 * target; "double"/"halve" → ±100 %/50 % relative), and the metric: the words
 * between the verb and the numbers, in snake_case, with `_rate` for a
 * proportion or the value's unit (`_seconds`, `_ms`, `_eur`, …) for a mean.
 * `kind` comes from the values (`%` → proportion, a time or currency → mean)
 * or, failing that, from the metric's words. Everything that is a guess or a
 * placeholder is listed in `todos`.
 *
 * @throws RulesError `sentence_not_understood`, naming what was missing and
 *   giving an example sentence.
 * @example draftOutcomeByRules({ sentence: "Cut checkout abandonment from 68% to 60% in 6 weeks" })
 */
export function draftOutcomeByRules(input: DraftOutcomeInput): DraftOutcomeOutput {
  const sentence = input.sentence.trim().replace(/[.!]+$/, "");
  const today = input.today ?? new Date().toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(today) || !isRealDate(today)) {
    throw new RulesError("sentence_not_understood", `today must be a date such as 2026-05-01, got "${today}"`);
  }
  if (sentence.length === 0) throw notUnderstood(sentence, "the sentence is empty");
  const todos: DraftTodo[] = [];
  const lower = sentence.toLowerCase().replace(/\s+/g, " ");

  const { rest, horizon } = takeHorizon(lower, today);
  if (horizon !== undefined && /^\d{4}-/.test(horizon.value) && !isRealDate(horizon.value)) {
    throw notUnderstood(sentence, `"${horizon.value}" is not a calendar date`);
  }

  const verb = VERBS.find((v) => rest === v || rest.startsWith(`${v} `));
  if (verb === undefined) {
    throw notUnderstood(
      sentence,
      `it does not start with a change verb (one of: ${[...DECREASE_VERBS, ...INCREASE_VERBS, ...NEUTRAL_VERBS].join(", ")})`,
    );
  }
  const body = rest.slice(verb.length).trim();

  // The metric is what comes before the first number phrase.
  const cut = body.search(/\s(?:from|by|to)\s+[$€£]?\d|^(?:from|by|to)\s|\s(?:from|by|to)\s*$/);
  const metricPhrase = (cut === -1 ? body : body.slice(0, cut)).replace(/^(?:the|our|my)\s+/, "").trim();
  const numbers = cut === -1 ? "" : body.slice(cut);
  const metricWords = metricPhrase
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0 && !["the", "our", "my", "a", "an"].includes(w));
  if (metricWords.length === 0 || !/[a-z]/.test(metricPhrase)) {
    throw notUnderstood(sentence, `no metric was named after "${verb}"`);
  }

  const fromTo = numbers.match(new RegExp(String.raw`\bfrom\s+${NUMBER}\s+to\s+${NUMBER}`));
  const by = numbers.match(new RegExp(String.raw`\bby\s+${NUMBER}`));
  const toOnly = numbers.match(new RegExp(String.raw`\bto\s+${NUMBER}`));
  const fromOnly = numbers.match(new RegExp(String.raw`\bfrom\s+${NUMBER}`));

  let baseline: Quantity | undefined;
  let absolute: Quantity | undefined;
  let relative: number | undefined;
  let delta: Quantity | undefined;
  if (fromTo !== null) {
    baseline = quantity(fromTo, 1);
    absolute = quantity(fromTo, 4);
    if (absolute.unit === "" && baseline.unit !== "") absolute.unit = baseline.unit;
    if (baseline.unit === "" && absolute.unit !== "") baseline.unit = absolute.unit;
  } else if (by !== null) {
    const q = quantity(by, 1);
    if (fromOnly !== null) baseline = quantity(fromOnly, 1);
    if (q.unit === "%") relative = q.value / 100;
    else delta = q;
  } else if (toOnly !== null) {
    absolute = quantity(toOnly, 1);
  } else if (verb === "double" || verb === "triple") {
    relative = verb === "double" ? 1 : 2;
  } else if (verb === "halve") {
    relative = 0.5;
  } else {
    throw notUnderstood(sentence, `no target was found for "${metricPhrase}" (write "from X to Y", "by N%" or "to Y")`);
  }

  // Kind: the values say it when they carry a unit; otherwise the metric's words.
  const units = [baseline?.unit, absolute?.unit, delta?.unit].filter(
    (u): u is ValueUnit => u !== undefined && u !== "",
  );
  const valueUnit = units.find((u) => u !== "%" && u !== "pp");
  let kind: MetricKind;
  if (valueUnit !== undefined) kind = "mean";
  else if (units.includes("%") || units.includes("pp")) kind = "proportion";
  else if (metricWords.some((w) => PROPORTION_WORDS.has(w))) kind = "proportion";
  else if (metricWords.some((w) => MEAN_WORDS.has(w))) kind = "mean";
  else {
    kind = "proportion";
    todos.push({
      path: "signal.kind",
      note: `could not tell whether "${metricPhrase}" is a rate or an average: check kind (proportion or mean)`,
    });
  }
  if (
    kind === "proportion" &&
    relative === undefined &&
    [baseline, absolute].some((q) => q !== undefined && q.unit === "" && q.value > 1)
  ) {
    kind = "mean";
  }
  if (delta !== undefined) {
    if (baseline === undefined) {
      throw notUnderstood(
        sentence,
        `"by ${delta.text}" is a change in the metric's own units, so the current value is needed (write "from X by ${delta.text}" or "by N%")`,
      );
    }
  }

  // Direction: the verb, or the numbers, or for "improve" the metric's words.
  const lowerIsBetter = metricWords.some((w) => LOWER_IS_BETTER.has(w));
  let direction: Direction;
  if (DECREASE_VERBS.includes(verb)) direction = "decrease";
  else if (INCREASE_VERBS.includes(verb)) direction = "increase";
  else if (baseline !== undefined && absolute !== undefined && baseline.value !== absolute.value) {
    direction = absolute.value < baseline.value ? "decrease" : "increase";
  } else direction = lowerIsBetter ? "decrease" : "increase";
  if (baseline !== undefined && absolute !== undefined) {
    const numeric =
      absolute.value < baseline.value ? "decrease" : absolute.value > baseline.value ? "increase" : "none";
    if (numeric === "none") throw notUnderstood(sentence, `the target ${absolute.text} equals the current value`);
    if (numeric !== direction) {
      throw notUnderstood(
        sentence,
        `"${verb}" asks for a ${direction}, but ${baseline.text} → ${absolute.text} is an ${numeric}`,
      );
    }
  }

  const metricBase = metricWords.filter((w) => w !== "rate");
  let metric: string;
  if (kind === "proportion") metric = snake([...metricBase, "rate"]);
  else {
    const suffix = valueUnit === undefined ? undefined : UNIT_SUFFIX[valueUnit];
    metric = snake(suffix === undefined || metricBase.at(-1) === suffix ? metricWords : [...metricWords, suffix]);
  }

  const baselineValue = baseline === undefined ? undefined : level(baseline, kind);
  if (kind === "proportion" && baselineValue !== undefined && baselineValue > 1) {
    throw notUnderstood(sentence, `a rate cannot start at ${baseline?.text}: write it as a percentage such as 68%`);
  }
  let target: { direction: Direction; value: string | number; relative: boolean };
  let relativeSize: number | undefined;
  if (absolute !== undefined) {
    const v = level(absolute, kind);
    if (kind === "proportion" && v > 1) throw notUnderstood(sentence, `a rate cannot reach ${absolute.text}`);
    target = { direction, value: kind === "proportion" ? pct(v) : v, relative: false };
    if (baselineValue !== undefined && baselineValue > 0) relativeSize = Math.abs(v - baselineValue) / baselineValue;
  } else if (delta !== undefined && baselineValue !== undefined) {
    const step = kind === "proportion" ? delta.value / 100 : delta.value;
    const v = Number((direction === "increase" ? baselineValue + step : baselineValue - step).toFixed(10));
    if (kind === "proportion" && (v < 0 || v > 1))
      throw notUnderstood(sentence, `the target ${pct(v)} is not a possible rate`);
    target = { direction, value: kind === "proportion" ? pct(v) : v, relative: false };
    if (baselineValue > 0) relativeSize = step / baselineValue;
  } else if (relative !== undefined && relative > 0) {
    if (kind === "proportion" && direction === "decrease" && relative > 1) {
      throw notUnderstood(sentence, `a rate cannot fall by more than 100%`);
    }
    if (
      kind === "proportion" &&
      direction === "increase" &&
      baselineValue !== undefined &&
      baselineValue * (1 + relative) > 1
    ) {
      throw notUnderstood(sentence, `${baseline?.text} raised by ${pct(relative)} would be above 100%`);
    }
    target = { direction, value: pct(relative), relative: true };
    relativeSize = relative;
  } else {
    throw notUnderstood(sentence, `the size of the change is not a positive number`);
  }

  // The randomisation unit is a guess from the metric's words.
  const unit = metricWords.some((w) => ACCOUNT_WORDS.has(w))
    ? "account"
    : metricWords.some((w) => SESSION_WORDS.has(w))
      ? "session"
      : "user";

  const verbTitle = direction === "decrease" ? "reduce" : "increase";
  const name = `${verbTitle[0]?.toUpperCase()}${verbTitle.slice(1)} ${metricPhrase}`.slice(0, 200);
  const id = `${verbTitle}-${metricPhrase}`
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");

  const signal: Record<string, unknown> = {
    metric,
    kind,
    unit,
    description:
      kind === "proportion"
        ? `Share of ${unit}s counted as ${metricPhrase}.`
        : `Average ${metricPhrase} per ${unit}${valueUnit === undefined ? "" : `, in ${UNIT_SUFFIX[valueUnit]}`}.`,
  };
  if (baselineValue !== undefined) signal.baseline = baselineValue;
  signal.poll_interval = "1h";
  signal.connector = {
    type: "postgres",
    database_url_env: DATABASE_URL_ENV,
    query: placeholderQuery(metric, kind),
  };

  const expectedEffect = Math.min(0.1, Math.max(0.01, Number(((relativeSize ?? 0.09) / 3).toFixed(3))));
  const outcome: Record<string, unknown> = {
    version: 1,
    id: id.length > 0 ? id : "drafted-outcome",
    name,
    owner: PLACEHOLDER_EMAIL,
    description: `${sentence}.`,
    signal,
    target,
    horizon: horizon?.value ?? "90d",
    constraints: {
      kill: { max_harm: "5%", relative: true },
      max_concurrent_experiments: 3,
    },
    gates: {
      portfolio_review: { assignees: [PLACEHOLDER_EMAIL], sla: "48h" },
      launch_approval: { assignees: [PLACEHOLDER_EMAIL], sla: "24h" },
      analysis_review: { assignees: [PLACEHOLDER_EMAIL], sla: "72h", on_expiry: "escalate" },
    },
    experiment_defaults: {
      alpha: 0.05,
      power: 0.8,
      arms: [
        { name: "control", weight: "50%" },
        { name: "treatment", weight: "50%" },
      ],
      min_sample_per_arm: 1000,
      min_duration: "7d",
      max_duration: "28d",
      expected_effect: pct(expectedEffect),
    },
  };

  todos.push(
    { path: "owner", note: `replace ${PLACEHOLDER_EMAIL} with the email of the person accountable for this outcome` },
    {
      path: "signal.connector.query",
      note: `write the SQL returning arm, units, sum, sum_sq per arm for ${metric} (see docs/connectors.md); set ${DATABASE_URL_ENV} in the environment`,
    },
    { path: "signal.unit", note: `"${unit}" is a guess: set what is randomised between arms (user, session, account)` },
    {
      path: "gates",
      note: `replace ${PLACEHOLDER_EMAIL} in portfolio_review, launch_approval and analysis_review with the approvers' emails, and add a backup`,
    },
    {
      path: "constraints",
      note: "add guardrails (metrics that must not get worse, e.g. an error rate) and scope.forbidden_paths for code experiments must not touch",
    },
  );
  if (baselineValue === undefined) {
    todos.push({
      path: "signal.baseline",
      note: `add the current value of ${metric}, used to size experiments and check the target`,
    });
  }
  if (horizon === undefined) {
    todos.push({
      path: "horizon",
      note: "no deadline was given: 90d is a placeholder (write a duration such as 6w or a date)",
    });
  } else if (horizon.note !== undefined) {
    todos.push({ path: "horizon", note: `${horizon.note}: check it, or write a date` });
  }
  return { outcome, todos };
}

function placeholderQuery(metric: string, kind: MetricKind): string {
  const source = `todo_${metric}_source`.slice(0, 63);
  const value =
    kind === "proportion"
      ? ["count(*) FILTER (WHERE m.converted) AS sum", "count(*) FILTER (WHERE m.converted) AS sum_sq"]
      : ["sum(m.value) AS sum", "sum(m.value * m.value) AS sum_sq"];
  return [
    "-- TODO: replace todo source and columns with your own tables; keep the output columns.",
    "SELECT e.arm,",
    "       count(*) AS units,",
    `       ${value[0]},`,
    `       ${value[1]}`,
    "  FROM exposures e",
    `  JOIN ${source} m ON m.unit_id = e.unit_id`,
    " WHERE e.experiment_key = :experiment",
    "   AND e.arm = ANY(:arms)",
    "   AND e.exposed_at <= :to",
    " GROUP BY e.arm",
    "",
  ].join("\n");
}
