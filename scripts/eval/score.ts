/**
 * Scoring of a hypothesis portfolio on what can be checked without a person,
 * and the report of `pnpm eval:hypotheses`. Pure functions over plain values.
 */
import { matchPaths } from "@outcome-runtime/core";
import type { GenerateHypothesesOutput } from "@outcome-runtime/llm";

export type Hypothesis = GenerateHypothesesOutput["hypotheses"][number];

const CHECKS = [
  "schema_valid",
  "distinct_mechanisms",
  "quantified_predictions",
  "forbidden_paths_respected",
  "learnings_used",
  "cost",
] as const;
export type CheckName = (typeof CHECKS)[number];

/** One check of one outcome. `passed: null` when it does not apply (it neither passes nor fails). */
export interface Check {
  readonly name: CheckName;
  readonly passed: boolean | null;
  /** Short text for the table cell. */
  readonly detail: string;
}

/**
 * The pass mark: an outcome passes when every required check passes and at
 * most `maxFailed` of the other checks fail. A portfolio that is not
 * schema-valid or touches a forbidden path cannot be proposed at all; one
 * miss among the softer checks (an unused learning, a prediction in the wrong
 * direction) is tolerated once per outcome.
 */
export const PASS_MARK = {
  required: ["schema_valid", "forbidden_paths_respected"] as readonly CheckName[],
  maxFailed: 1,
} as const;

/** Default cap on the cost of one outcome's two generator calls, USD. */
export const DEFAULT_MAX_COST_USD = 0.25;

/** A past learning planted for the second run: a win on a mechanism the first run did not propose. */
export interface PlantedLearning {
  readonly id: string;
  readonly mechanismKey: string;
}

export function schemaCheck(issues: readonly { path: string; message: string }[]): Check {
  if (issues.length === 0) return { name: "schema_valid", passed: true, detail: "✓" };
  const first = issues[0]!;
  return {
    name: "schema_valid",
    passed: false,
    detail: `✗ ${issues.length} issue${issues.length === 1 ? "" : "s"} (${first.path || "/"} ${first.message})`,
  };
}

/** Passes when the portfolio holds `size` hypotheses with `size` different `mechanism_key`s. */
export function mechanismsCheck(portfolio: readonly Hypothesis[], size: number): Check {
  const distinct = new Set(portfolio.map((h) => h.mechanism_key)).size;
  const passed = portfolio.length >= size && distinct >= size;
  return { name: "distinct_mechanisms", passed, detail: `${passed ? "✓" : "✗"} ${distinct} of ${size}` };
}

/**
 * Passes when every hypothesis predicts an effect > 0 (a finite fraction) in
 * the outcome's target direction. An empty portfolio fails.
 */
export function predictionsCheck(portfolio: readonly Hypothesis[], direction: "increase" | "decrease"): Check {
  const good = portfolio.filter(
    (h) => Number.isFinite(h.prediction.effect) && h.prediction.effect > 0 && h.prediction.direction === direction,
  ).length;
  const passed = portfolio.length > 0 && good === portfolio.length;
  return {
    name: "quantified_predictions",
    passed,
    detail: `${passed ? "✓" : "✗"} ${good}/${portfolio.length}`,
  };
}

/** How many hypotheses touch at least one forbidden path. */
export function forbiddenTouches(hypotheses: readonly Hypothesis[], forbidden: readonly string[]): number {
  return hypotheses.filter((h) => matchPaths(h.touched_paths, forbidden).length > 0).length;
}

/**
 * Passes when no hypothesis of the (screened) portfolio touches a forbidden
 * path; `proposed` is how many the generator put inside forbidden paths before
 * screening, shown for information.
 */
export function forbiddenCheck(
  portfolio: readonly Hypothesis[],
  forbidden: readonly string[],
  proposed: number,
): Check {
  const kept = forbiddenTouches(portfolio, forbidden);
  const scope = forbidden.length === 0 ? "no forbidden paths" : `${proposed} proposed inside, ${kept} kept`;
  return { name: "forbidden_paths_respected", passed: kept === 0, detail: `${kept === 0 ? "✓" : "✗"} ${scope}` };
}

/** Whether the portfolio cites the learning (`learnings_used`) and whether its mechanism entered the portfolio. */
export function learningUse(
  portfolio: readonly Hypothesis[],
  learning: PlantedLearning,
): { cited: boolean; adopted: boolean } {
  return {
    cited: portfolio.some((h) => (h.learnings_used ?? []).includes(learning.id)),
    adopted: portfolio.some((h) => h.mechanism_key === learning.mechanismKey),
  };
}

/**
 * Passes when the second run's portfolio cites the planted learning or adopts
 * its mechanism. Not applicable (`null`) when no playbook mechanism was left
 * to plant.
 */
export function learningsCheck(
  learning: PlantedLearning | null,
  use: { cited: boolean; adopted: boolean } | null,
): Check {
  if (learning === null || use === null) return { name: "learnings_used", passed: null, detail: "n/a" };
  const how = [use.cited ? "cited" : "", use.adopted ? "adopted" : ""].filter((s) => s !== "").join(" + ");
  const passed = use.cited || use.adopted;
  return {
    name: "learnings_used",
    passed,
    detail: `${passed ? "✓" : "✗"} ${passed ? how : "ignored"} \`${learning.mechanismKey}\``,
  };
}

/** Passes when the outcome's calls together cost at most `maxUsd`. */
export function costCheck(costUsd: number, maxUsd: number): Check {
  const passed = costUsd <= maxUsd;
  return { name: "cost", passed, detail: `${passed ? "✓" : "✗"} $${costUsd.toFixed(4)}` };
}

/** Apply {@link PASS_MARK}: the score counts passed checks over applicable ones. */
export function judge(checks: readonly Check[]): { passed: boolean; score: string; failed: CheckName[] } {
  const applicable = checks.filter((c) => c.passed !== null);
  const failed = applicable.filter((c) => c.passed === false).map((c) => c.name);
  const requiredFailed = failed.some((name) => PASS_MARK.required.includes(name));
  const passed = applicable.length > 0 && !requiredFailed && failed.length <= PASS_MARK.maxFailed;
  return { passed, score: `${applicable.length - failed.length}/${applicable.length}`, failed };
}

/** One outcome's line of the report. */
export interface OutcomeRow {
  readonly outcome: string;
  /** `llm:<model>`, `rules`, or `rules (fallback: <reason>)`; for both runs when they differ. */
  readonly source: string;
  readonly checks: readonly Check[];
  readonly costUsd: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Set when the outcome could not be evaluated at all (it then fails). */
  readonly error: string | null;
}

export interface ReportMeta {
  /** e.g. `rules (no LLM key set)` or `anthropic, model claude-sonnet-4-5 (ANTHROPIC_API_KEY)`. */
  readonly provider: string;
  readonly maxCostUsd: number;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/**
 * A Markdown table with padded columns, laid out the way the repository's
 * formatter lays tables out, so a rewritten docs/hypotheses.md stays formatted.
 */
export function alignedTable(header: readonly string[], body: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(3, [...h].length, ...body.map((r) => [...(r[i] ?? "")].length)));
  const pad = (text: string, width: number) => text + " ".repeat(width - [...text].length);
  const line = (cells: readonly string[]) => `| ${widths.map((w, i) => pad(cells[i] ?? "", w)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)];
}

/** Whether a row passes the pass mark; a row with an error fails. */
export function rowPassed(row: OutcomeRow): boolean {
  return row.error === null && judge(row.checks).passed;
}

/** The Markdown report: provider, table, totals. */
export function renderReport(rows: readonly OutcomeRow[], meta: ReportMeta): string {
  const header = [
    "outcome",
    "source",
    "schema",
    "mechanisms",
    "predictions",
    "forbidden paths",
    "learning",
    "cost",
    "tokens in / out",
    "score",
    "result",
  ];
  const body = rows.map((row) => {
    const byName = new Map(row.checks.map((c) => [c.name, c.detail]));
    return [
      `\`${row.outcome}\``,
      row.source,
      ...(row.error === null
        ? CHECKS.map((name) => byName.get(name) ?? "–")
        : [`✗ ${row.error}`, ...CHECKS.slice(1).map(() => "–")]),
      `${row.inputTokens} / ${row.outputTokens}`,
      row.error === null ? judge(row.checks).score : "0",
      rowPassed(row) ? "pass" : "**FAIL**",
    ].map(cell);
  });
  const lines = alignedTable(header, body);
  const passing = rows.filter(rowPassed).length;
  const cost = rows.reduce((s, r) => s + r.costUsd, 0);
  const tokensIn = rows.reduce((s, r) => s + r.inputTokens, 0);
  const tokensOut = rows.reduce((s, r) => s + r.outputTokens, 0);
  return [
    `Generator: ${meta.provider}. Cost cap per outcome: $${meta.maxCostUsd.toFixed(2)}.`,
    "",
    ...lines,
    "",
    `**${passing} of ${rows.length} outcomes pass.** Total cost $${cost.toFixed(4)} (${tokensIn} input, ${tokensOut} output tokens).`,
  ].join("\n");
}

const BEGIN_MARKER = "<!-- eval:begin -->";
const END_MARKER = "<!-- eval:end -->";

/**
 * Replace what lies between {@link BEGIN_MARKER} and {@link END_MARKER} in
 * `doc` with `content`.
 *
 * @throws Error when the markers are missing or out of order.
 */
export function replaceBetweenMarkers(doc: string, content: string): string {
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) {
    throw new Error(`expected ${BEGIN_MARKER} followed by ${END_MARKER}`);
  }
  return `${doc.slice(0, begin + BEGIN_MARKER.length)}\n\n${content.trim()}\n\n${doc.slice(end)}`;
}
