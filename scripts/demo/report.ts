/**
 * The demo's closing table: what the runtime decided on each replayed ASOS
 * comparison, next to the fixed-horizon result on the full data, and a
 * summary (early stops, agreement in direction, experiment-days saved).
 */
import { fixedHorizonTest } from "@outcome-runtime/stats";
import type { AsosComparison } from "./asos";

export interface DemoRow {
  key: string;
  /** Simulated day of the runtime's decision; null when it ran to the end without one. */
  decisionDay: number | null;
  /** Last checkpoint day in the data. */
  lastDay: number;
  /** e.g. "paused (kill)", "analysing (win)", "analysing (srm)", "analysing (futility)", "running". */
  decision: string;
  reason: string | null;
  /** The runtime's effect (absolute, treatment − control) and always-valid CI at the decision. */
  effect: number | null;
  ci: [number, number] | null;
  /** Fixed-horizon test on the full data (the last checkpoint). */
  full: { effect: number; pValue: number | null; ci: [number, number] | null; significant: boolean };
  /** With `--flags <provider>`: what the flag provider serves for the experiment, and when it was applied. */
  flag?: DemoFlag;
}

/** An experiment's flag in the provider (`pnpm demo --flags unleash`), from its rollouts and audit events. */
export interface DemoFlag {
  /** The last split the provider applied: why (`launch`, `pause`, …), fractions by arm (control first), when (ISO). */
  applied: { reason: string; weights: number[]; at: string } | null;
  /** The reason of a split asked for and not applied yet (being written, or failing); null when none. */
  pending: string | null;
  /**
   * A kill's rollback (everyone to control after the pause): when the pause was recorded (its audit event) and
   * when the provider applied the rollback (null: not yet). Null when the experiment was not paused.
   */
  rollback: { pausedAt: string; appliedAt: string | null } | null;
}

/**
 * Fixed-horizon result on a comparison's last checkpoint of `metricId`: the
 * two-proportion z-test for metric 1 (binary), Welch's t-test for metrics
 * 2–4, from `@outcome-runtime/stats`. `effect` is the difference of means
 * (treatment − control); `significant` is `p_value < alpha`.
 *
 * @throws Error when the comparison has no usable checkpoint of the metric
 */
export function fullDataResult(comparison: AsosComparison, metricId: number, alpha: number): DemoRow["full"] {
  const last = comparison.metrics[metricId]?.at(-1);
  if (last === undefined) throw new Error(`fullDataResult: ${comparison.key} has no checkpoint of metric ${metricId}`);
  const { control, treatment } = last;
  const totals = (arm: typeof control) => ({ units: arm.units, sum: arm.sum, sumSq: arm.sum_sq });
  const result = fixedHorizonTest(metricId === 1 ? "proportion" : "mean", totals(control), totals(treatment), alpha);
  return {
    effect: treatment.sum / treatment.units - control.sum / control.units,
    pValue: result.pValue,
    ci: result.ci,
    significant: result.pValue !== null && result.pValue < alpha,
  };
}

export interface DemoSummary {
  total: number;
  /** Rows with a decision before their last checkpoint day. */
  stoppedEarly: number;
  /** Rows with a decision (at any day). */
  decided: number;
  /** Decided rows whose runtime effect has the sign of the full-data effect. */
  agreeInDirection: number;
  /** Decided rows with a runtime effect, the base of `agreeInDirection`. */
  directionCompared: number;
  /** Early stops whose effect has the opposite sign of a full-data effect significant at the fixed horizon. */
  contradictingSignificant: DemoRow[];
  /** Σ (lastDay − decisionDay) over early stops. */
  experimentDaysSaved: number;
  /** Rows by `decision`. */
  byDecision: Record<string, number>;
}

function stoppedEarly(row: DemoRow): row is DemoRow & { decisionDay: number } {
  return row.decisionDay !== null && row.decisionDay < row.lastDay;
}

/** Counts for the summary under the table (see `DemoSummary` for each definition). */
export function summarize(rows: DemoRow[]): DemoSummary {
  const byDecision: Record<string, number> = {};
  let early = 0;
  let decided = 0;
  let agree = 0;
  let compared = 0;
  let saved = 0;
  const contradictingSignificant: DemoRow[] = [];
  for (const row of rows) {
    byDecision[row.decision] = (byDecision[row.decision] ?? 0) + 1;
    if (row.decisionDay === null) continue;
    decided += 1;
    if (row.effect !== null) {
      compared += 1;
      if (Math.sign(row.effect) === Math.sign(row.full.effect)) agree += 1;
    }
    if (stoppedEarly(row)) {
      early += 1;
      saved += row.lastDay - row.decisionDay;
      if (row.effect !== null && row.full.significant && Math.sign(row.effect) * Math.sign(row.full.effect) < 0) {
        contradictingSignificant.push(row);
      }
    }
  }
  return {
    total: rows.length,
    stoppedEarly: early,
    decided,
    agreeInDirection: agree,
    directionCompared: compared,
    contradictingSignificant,
    experimentDaysSaved: saved,
    byDecision,
  };
}

export interface ReportOptions {
  /**
   * How effects are shown: `"pp"` (default) as percentage points with 3
   * decimals, for proportions (metric 1); `"raw"` in the metric's own units
   * with 4 significant digits.
   */
  scale?: "pp" | "raw";
  /**
   * The flag provider of `pnpm demo --flags <provider>`: adds each experiment's flag (its last split applied,
   * when, and a kill's rollback) before the reason, and a line of the summary. None by default.
   */
  flags?: string;
}

const DASH = "—";

const FLAG_HEADER = ["flag", "applied", "rollback applied", "pause→rollback ms"];

function formatDay(day: number | null): string {
  return day === null ? DASH : day.toFixed(1);
}

function formatP(p: number | null): string {
  if (p === null) return DASH;
  return p < 0.0001 ? "<0.0001" : p.toFixed(4);
}

function pValueClause(p: number | null): string {
  const text = formatP(p);
  return text.startsWith("<") ? `< ${text.slice(1)}` : `= ${text}`;
}

/** The time of day of an ISO timestamp, UTC, to the millisecond: `14:02:11.532`. */
function clockTime(iso: string): string {
  return iso.slice(11, 23);
}

/** `launch 50/50`: the reason of the last split applied and its percentages by arm; a pending one after it. */
function flagSplit(flag: DemoFlag | undefined): string {
  if (flag === undefined) return DASH;
  const applied =
    flag.applied === null
      ? "none"
      : `${flag.applied.reason} ${flag.applied.weights.map((w) => Number((w * 100).toFixed(1))).join("/")}`;
  return flag.pending === null ? applied : `${applied}, ${flag.pending} pending`;
}

/** Milliseconds from the pause to its rollback applied in the provider; null without both. */
export function rollbackDelayMs(flag: DemoFlag | undefined): number | null {
  const r = flag?.rollback;
  if (r === null || r === undefined || r.appliedAt === null) return null;
  return new Date(r.appliedAt).getTime() - new Date(r.pausedAt).getTime();
}

function flagCells(row: DemoRow): string[] {
  const flag = row.flag;
  const delay = rollbackDelayMs(flag);
  return [
    flagSplit(flag),
    flag?.applied ? clockTime(flag.applied.at) : DASH,
    flag?.rollback ? (flag.rollback.appliedAt === null ? "pending" : clockTime(flag.rollback.appliedAt)) : DASH,
    delay === null ? DASH : String(Math.round(delay)),
  ];
}

/** Nearest-rank quantile of sorted values. */
function rank(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/** The summary's flag line: splits applied by reason, kills and their rollbacks, pause → rollback ms. */
function flagSummary(rows: readonly DemoRow[], provider: string): string[] {
  const byReason = new Map<string, number>();
  for (const row of rows) {
    const reason = row.flag?.applied?.reason;
    if (reason !== undefined) byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }
  const pending = rows.filter((r) => (r.flag?.pending ?? null) !== null).length;
  const kills = rows.filter((r) => (r.flag?.rollback ?? null) !== null);
  const delays = kills
    .map((r) => rollbackDelayMs(r.flag))
    .filter((d): d is number => d !== null)
    .sort((a, b) => a - b);
  const reasons = [...byReason].map(([reason, n]) => `${reason}: ${n}`).join(", ");
  return [
    `  ${`flags in ${provider}:`.padEnd(33)} last split applied: ${reasons === "" ? DASH : reasons}; pending: ${pending}`,
    `  ${`kills rolled back in ${provider}:`.padEnd(33)} ${delays.length} of ${kills.length}${
      delays.length === 0
        ? kills.length === 0
          ? " (no experiment was paused)"
          : ""
        : `; pause → rollback applied p50 ${Math.round(rank(delays, 0.5))} ms, max ${Math.round(delays.at(-1) as number)} ms`
    }`,
  ];
}

function direction(row: DemoRow): string {
  if (row.effect === null) return DASH;
  const product = Math.sign(row.effect) * Math.sign(row.full.effect);
  if (product > 0 || (row.effect === 0 && row.full.effect === 0)) return "same";
  return product < 0 ? "opposite" : DASH;
}

function formatter(scale: "pp" | "raw"): (value: number) => string {
  if (scale === "pp") {
    return (value) => {
      const text = (value * 100).toFixed(3);
      // -0.000 and 0.000 both read as no effect.
      if (Number(text) === 0) return "0.000";
      return value > 0 ? `+${text}` : text;
    };
  }
  return (value) => {
    const text = Number(value.toPrecision(4)).toString();
    return value > 0 ? `+${text}` : text;
  };
}

/**
 * An aligned text table, one line per row in the given order, then the
 * summary. Units of the effect columns are stated in the header.
 */
export function renderReport(rows: DemoRow[], options: ReportOptions = {}): string {
  const scale = options.scale ?? "pp";
  const flags = options.flags;
  const effect = formatter(scale);
  const interval = (ci: [number, number] | null) => (ci === null ? DASH : `[${effect(ci[0])}, ${effect(ci[1])}]`);
  const unit = scale === "pp" ? "pp" : "";
  const suffix = unit === "" ? "" : ` ${unit}`;

  const header = [
    "experiment",
    "decided",
    "last",
    "decision",
    `effect${suffix}`,
    `always-valid CI${suffix}`,
    `full effect${suffix}`,
    `full CI${suffix}`,
    "full p",
    "sig",
    "direction",
    ...(flags === undefined ? [] : FLAG_HEADER),
    "reason",
  ];
  const body = rows.map((row) => [
    row.key,
    formatDay(row.decisionDay),
    formatDay(row.lastDay),
    row.decision,
    row.effect === null ? DASH : effect(row.effect),
    interval(row.ci),
    effect(row.full.effect),
    interval(row.full.ci),
    formatP(row.full.pValue),
    row.full.significant ? "yes" : "no",
    direction(row),
    ...(flags === undefined ? [] : flagCells(row)),
    row.reason ?? DASH,
  ]);
  // Text columns align left, numbers right; the last column is not padded.
  const right = new Set([1, 2, 4, 6, 8, ...(flags === undefined ? [] : [14])]);
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1 ? cell : right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!),
      )
      .join("  ")
      .trimEnd();

  const out: string[] = [];
  out.push(
    scale === "pp"
      ? "Effects are absolute (treatment − control), in percentage points (pp) with 3 decimals."
      : "Effects are absolute (treatment − control), in the metric's units.",
    "decided: simulated day of the runtime's decision (— : none); last: last checkpoint day in the data.",
    "effect, always-valid CI: the runtime's at its decision; full: fixed-horizon test on the last checkpoint.",
    ...(flags === undefined
      ? []
      : [
          `flag: the last split ${flags} applied (why, % by arm) and when (UTC); rollback: when ${flags} applied a kill's`,
          "rollback (everyone to control) and its ms after the pause (the experiment.paused audit event).",
        ]),
    "",
    line(header),
    line(widths.map((width) => "─".repeat(width))),
    ...body.map(line),
    "",
  );

  const summary = summarize(rows);
  const percent = (part: number, whole: number) => (whole === 0 ? "" : ` (${Math.round((100 * part) / whole)} %)`);
  const decisions = Object.entries(summary.byDecision)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
    .map(([decision, count]) => `${decision}: ${count}`)
    .join(", ");
  out.push(
    "Summary",
    `  comparisons:                      ${summary.total}`,
    `  decisions:                        ${decisions === "" ? DASH : decisions}`,
    `  stopped early:                    ${summary.stoppedEarly} of ${summary.total}${percent(summary.stoppedEarly, summary.total)}: a decision before the last checkpoint`,
    `  same direction as the full data:  ${summary.agreeInDirection} of ${summary.directionCompared} decisions with an effect${percent(summary.agreeInDirection, summary.directionCompared)}`,
    `  experiment-days saved:            ${Number(summary.experimentDaysSaved.toFixed(1))} (Σ last day − decision day over early stops)`,
    ...(flags === undefined ? [] : flagSummary(rows, flags)),
    `  early stops against a significant full-data effect: ${summary.contradictingSignificant.length}`,
  );
  for (const row of summary.contradictingSignificant) {
    out.push(
      `    ${row.key}: ${row.decision} at day ${formatDay(row.decisionDay)} with ${effect(row.effect!)}${suffix} ${interval(row.ci)}; ` +
        `full data by day ${formatDay(row.lastDay)}: ${effect(row.full.effect)}${suffix} ${interval(row.full.ci)}, p ${pValueClause(row.full.pValue)}` +
        (row.reason === null ? "" : `; reason: ${row.reason}`),
    );
  }
  return `${out.join("\n")}\n`;
}
