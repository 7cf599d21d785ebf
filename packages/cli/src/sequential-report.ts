/**
 * The `stats sequential` report: every look of an experiment analysed with
 * the always-valid test, next to the fixed-horizon p-value and both SRM
 * checks, with a decision per look (per treatment when there are several).
 * Pure. Its input and output are the CLI's published JSON format, hence
 * snake_case; the statistics it calls (`@outcome-runtime/stats`) speak
 * camelCase.
 */
import {
  type ArmTotals,
  adjustedUnitVariance,
  COUNT_TOLERANCE,
  cupedSequentialTest,
  type EffectEstimate,
  type EstimateSequentialResult,
  equalWithinCountTolerance,
  fixedHorizonTest,
  fixedHorizonTestOfEstimate,
  holmAdjust,
  type MetricKind,
  mixtureVarianceForSample,
  type PairedTotals,
  pooledSlope,
  ratioArm,
  ratioSequentialTest,
  type SequentialCarry,
  SRM_THRESHOLD,
  sequentialSrm,
  sequentialTest,
  srmChiSquare,
  summarizeArm,
  wholeCount,
} from "@outcome-runtime/stats";

/** The metric of a report: a proportion or mean per unit, or a ratio of two sums. */
type ReportMetric = MetricKind | "ratio";

/**
 * Input of {@link sequentialReport} (the published JSON format of
 * `outcome-runtime stats sequential`, hence snake_case).
 */
export interface SequentialReportInput {
  metric: ReportMetric;
  /** Type I error level, default 0.05. */
  alpha?: number;
  /** Mixture variance; when absent it is tuned to `planned_units_per_arm`. */
  tau2?: number;
  /**
   * Traffic weights: an object by arm name, or (two arms) a list [control, treatment]; default equal
   * weights (normalised).
   */
  weights?: number[] | Record<string, number>;
  /** Planned units per arm, to tune τ² when `tau2` is absent (default {@link DEFAULT_PLANNED_UNITS_PER_ARM}). */
  planned_units_per_arm?: number;
  /** The desired direction of the metric, default "increase": names which side is "better". */
  direction?: "increase" | "decrease";
  /** Cumulative totals at each look, oldest first, by arm name: `control` and one or more treatments. */
  snapshots: Record<string, ReportArm>[];
}

/** One arm's cumulative totals at a look: {@link ReportArmTotals}, or {@link ReportRatioTotals} for a ratio. */
type ReportArm = ReportArmTotals | ReportRatioTotals;

/** One arm's cumulative totals at a look, as the JSON format spells them. */
interface ReportArmTotals {
  units: number;
  /** Sum of the metric (conversions for a proportion). */
  sum: number;
  /** Sum of the squares of each unit's value (equal to `sum` for a proportion). */
  sum_sq: number;
  /** A pre-exposure covariate x per unit, for CUPED: Σx, Σx² and Σx·y. */
  covariate?: ReportCovariate;
}

/** The covariate's totals of one arm (CUPED). */
interface ReportCovariate {
  sum: number;
  sum_sq: number;
  /** Σ x·y over the units, y the metric. */
  sum_product: number;
}

/** Sum and sum of squares of one per-unit value. */
interface ReportMoments {
  sum: number;
  sum_sq: number;
}

/** One arm of a ratio metric: Σnum / Σden over its units. */
interface ReportRatioTotals {
  units: number;
  numerator: ReportMoments;
  denominator: ReportMoments;
  /** Σ num·den over the units. */
  sum_product: number;
}

function isRatioArm(arm: ReportArm): arm is ReportRatioTotals {
  return typeof arm === "object" && arm !== null && "numerator" in arm;
}

/** The statistics library's totals of a report arm (a ratio arm has none). */
function totals(arm: ReportArm): ArmTotals {
  if (isRatioArm(arm)) return { units: arm.units, sum: Number.NaN, sumSq: Number.NaN };
  return { units: arm.units, sum: arm.sum, sumSq: arm.sum_sq };
}

/** The paired totals of a CUPED or ratio arm (y the metric or numerator, x the covariate or denominator). */
function paired(arm: ReportArm): PairedTotals | null {
  if (isRatioArm(arm)) {
    return {
      units: arm.units,
      sum: arm.numerator.sum,
      sumSq: arm.numerator.sum_sq,
      pairSum: arm.denominator.sum,
      pairSumSq: arm.denominator.sum_sq,
      crossSum: arm.sum_product,
    };
  }
  if (arm.covariate === undefined) return null;
  return {
    units: arm.units,
    sum: arm.sum,
    sumSq: arm.sum_sq,
    pairSum: arm.covariate.sum,
    pairSumSq: arm.covariate.sum_sq,
    crossSum: arm.covariate.sum_product,
  };
}

/** What CUPED did at a look: the pooled slope and the share of the variance it removed. */
interface ReportCuped {
  theta: number | null;
  variance_reduction: number | null;
}

/** One look of the report with one treatment (two arms). */
export interface SequentialReportRow {
  effect: number | null;
  ci: [number, number] | null;
  relative_lift: number | null;
  relative_ci: [number, number] | null;
  p_value: number | null;
  fixed_p_value: number | null;
  srm_p_value: number | null;
  srm_sequential_p_value: number | null;
  decision: ReportDecision;
  /** With a covariate: the CUPED slope and variance reduction. */
  cuped?: ReportCuped;
  warnings?: string[];
}

/** One treatment's comparison with control at a look of a report with several treatments. */
interface ReportArmResult {
  effect: number | null;
  /** The running confidence sequence at α/k, k the number of treatments. */
  ci: [number, number] | null;
  relative_lift: number | null;
  relative_ci: [number, number] | null;
  /** The treatment's own running always-valid p-value. */
  p_value: number | null;
  /** Holm's adjustment of the treatments' p-values at this look. */
  adjusted_p_value: number | null;
  fixed_p_value: number | null;
  decision: ReportDecision;
  cuped?: ReportCuped;
}

/** One look of the report with several treatments. */
export interface MultiArmReportRow {
  arms: Record<string, ReportArmResult>;
  srm_p_value: number | null;
  srm_sequential_p_value: number | null;
  warnings?: string[];
}

type ReportDecision = "continue" | "treatment_better" | "treatment_worse";

/** One mistake in a report input: a JSON pointer, a message naming the field and value, and how to fix it. */
export interface ReportInputError {
  /** JSON pointer to the value concerned (`/snapshots/2/control/units`), `""` for the whole input. */
  path: string;
  message: string;
  /** Stable snake_case code: missing_field, wrong_type, invalid_value, out_of_range, unknown_key, … */
  code: string;
  hint?: string;
}

/**
 * Planned units per arm used to tune τ² when neither `tau2` nor
 * `planned_units_per_arm` is given: 2 500 per arm, GrowthBook's default tuning
 * parameter N* = 5 000 units in total.
 */
export const DEFAULT_PLANNED_UNITS_PER_ARM = 2500;

const DEFAULT_ALPHA = 0.05;

function fmt(x: number): string {
  return Number(x.toPrecision(6)).toString();
}

/** The arms of a report: control first, then the treatments in the order of the first snapshot. */
function reportArms(input: SequentialReportInput): { control: "control"; treatments: string[] } {
  const first = input.snapshots[0] ?? {};
  return { control: "control", treatments: Object.keys(first).filter((name) => name !== "control") };
}

type Mode = "plain" | "cuped" | "ratio";

function modeOf(input: SequentialReportInput): Mode {
  if (input.metric === "ratio") return "ratio";
  const first = input.snapshots[0] ?? {};
  return Object.values(first).some((arm) => !isRatioArm(arm) && arm.covariate !== undefined) ? "cuped" : "plain";
}

/**
 * The per-unit variance of every arm at one snapshot, or null when one is
 * undefined: plain p(1−p) or the sample variance; with CUPED the variance
 * of y − θx (θ pooled over the arms); for a ratio n·Var(R) by the delta method.
 */
function unitVariances(input: SequentialReportInput, mode: Mode, snapshot: Record<string, ReportArm>): number[] | null {
  const arms = Object.values(snapshot);
  if (mode === "plain") {
    const kind = input.metric as MetricKind;
    const v = arms.map((arm) => summarizeArm(kind, totals(arm)).variance);
    return v.every((x): x is number => x !== null) ? v : null;
  }
  const pairs = arms.map(paired);
  if (!pairs.every((p): p is PairedTotals => p !== null)) return null;
  if (mode === "cuped") {
    const theta = pooledSlope(pairs);
    if (theta === null) return null;
    const v = pairs.map((p) => adjustedUnitVariance(p, theta));
    return v.every((x): x is number => x !== null) ? v : null;
  }
  const v = pairs.map((p) => {
    const r = ratioArm(p);
    return r === null ? null : r.variance * r.units;
  });
  return v.every((x): x is number => x !== null) ? v : null;
}

/** τ² for a report, and a sentence saying where it came from. */
function resolveTau2(input: SequentialReportInput, alpha: number, mode: Mode): { tau2: number; source: string } {
  if (input.tau2 !== undefined) return { tau2: input.tau2, source: "tau2 given in the input" };
  const planned = input.planned_units_per_arm ?? DEFAULT_PLANNED_UNITS_PER_ARM;
  const plannedText =
    input.planned_units_per_arm !== undefined
      ? "planned_units_per_arm"
      : `the default when planned_units_per_arm is not given: GrowthBook's N* = ${2 * planned} units in total`;
  const what =
    mode === "cuped"
      ? "the CUPED-adjusted per-unit variance"
      : mode === "ratio"
        ? "the per-unit variance of the ratio (delta method)"
        : "the per-unit variance";
  for (let i = 0; i < input.snapshots.length; i++) {
    const snapshot = input.snapshots[i];
    if (!snapshot) continue;
    const variances = unitVariances(input, mode, snapshot);
    if (variances === null || variances.length === 0) continue;
    const sigma2 = variances.reduce((a, b) => a + b, 0) / variances.length;
    if (!(sigma2 > 0) || !Number.isFinite(sigma2)) continue;
    return {
      tau2: mixtureVarianceForSample({ alpha, sigma2, plannedUnitsPerArm: planned }),
      source:
        `tuned to make the confidence sequence tightest at ${planned} units per arm (${plannedText}), ` +
        `with ${what} ${fmt(sigma2)} of snapshot ${i + 1}, the first with a positive variance`,
    };
  }
  return {
    tau2: 0,
    source: `undetermined: no snapshot has a positive variance yet to tune tau2 to ${planned} units per arm; give tau2`,
  };
}

/** Normalised-order weights (control first), from the input's list or object; equal weights by default. */
function weightsOf(input: SequentialReportInput, arms: readonly string[]): number[] {
  const w = input.weights;
  if (w === undefined) return arms.map(() => 1 / arms.length);
  if (Array.isArray(w)) return [...w];
  return arms.map((name) => w[name] ?? Number.NaN);
}

/** One treatment against control at one look. */
interface Comparison {
  effect: number | null;
  ci: [number, number] | null;
  relative_lift: number | null;
  relative_ci: [number, number] | null;
  p_value: number | null;
  fixed_p_value: number | null;
  cuped?: ReportCuped;
  warnings: string[];
  carry: SequentialCarry | null;
}

function compare(
  input: SequentialReportInput,
  mode: Mode,
  snapshot: Record<string, ReportArm>,
  treatment: string,
  options: { alpha: number; ciAlpha: number; tau2: number },
  carry: SequentialCarry | null,
): Comparison {
  const control = snapshot.control;
  const arm = snapshot[treatment];
  if (control === undefined || arm === undefined) {
    const missing = control === undefined ? "control" : treatment;
    return {
      effect: null,
      ci: carry?.ci ?? null,
      relative_lift: null,
      relative_ci: carry?.relativeCi ?? null,
      p_value: carry?.pValue ?? null,
      fixed_p_value: null,
      warnings: [`arm ${JSON.stringify(missing)} is missing from this snapshot`],
      carry,
    };
  }
  const sequentialOptions = { alpha: options.ciAlpha, tau2: options.tau2 };
  if (mode === "plain") {
    const kind = input.metric as MetricKind;
    const seq = sequentialTest(totals(control), totals(arm), { kind, ...sequentialOptions }, carry);
    const fixed = fixedHorizonTest(kind, totals(control), totals(arm), options.alpha);
    return { ...fromLook(seq), fixed_p_value: fixed.pValue, warnings: [...seq.warnings, ...fixed.warnings] };
  }
  const pc = paired(control);
  const pt = paired(arm);
  if (pc === null || pt === null) {
    return {
      effect: null,
      ci: carry?.ci ?? null,
      relative_lift: null,
      relative_ci: carry?.relativeCi ?? null,
      p_value: carry?.pValue ?? null,
      fixed_p_value: null,
      warnings: ["the covariate is missing from an arm: CUPED needs it on every arm"],
      carry,
    };
  }
  if (mode === "cuped") {
    const all = Object.values(snapshot)
      .map(paired)
      .filter((p): p is PairedTotals => p !== null);
    const seq = cupedSequentialTest(pc, pt, sequentialOptions, carry, all);
    const fixed = fixedHorizonTestOfEstimate(estimateOf(seq), options.alpha);
    return {
      ...fromLook(seq),
      fixed_p_value: fixed.pValue,
      cuped: { theta: seq.theta, variance_reduction: seq.varianceReduction },
      warnings: [...seq.warnings, ...fixed.warnings],
    };
  }
  const seq = ratioSequentialTest(pc, pt, sequentialOptions, carry);
  const fixed = fixedHorizonTestOfEstimate(estimateOf(seq), options.alpha);
  return { ...fromLook(seq), fixed_p_value: fixed.pValue, warnings: [...seq.warnings, ...fixed.warnings] };
}

function fromLook(seq: EstimateSequentialResult): Omit<Comparison, "fixed_p_value" | "warnings"> {
  return {
    effect: seq.effect,
    ci: seq.ci,
    relative_lift: seq.relativeLift,
    relative_ci: seq.relativeCi,
    p_value: seq.pValue,
    carry: seq.carry,
  };
}

function estimateOf(seq: EstimateSequentialResult): EffectEstimate | null {
  return seq.effect !== null && seq.variance !== null
    ? { effect: seq.effect, variance: seq.variance, controlLevel: null }
    : null;
}

/** The side of a significant comparison: +1 above 0, −1 below (the confidence sequence's side, else the effect's). */
function sideOf(c: Comparison): number {
  if (c.ci === null) return Math.sign(c.effect ?? 0);
  return c.ci[0] > 0 ? 1 : c.ci[1] < 0 ? -1 : Math.sign(c.effect ?? 0);
}

/**
 * Analyses every snapshot of one experiment, oldest first: the report of
 * `outcome-runtime stats sequential` ({@link runSequentialReport} picks the
 * row format: {@link sequentialReport} for one treatment, one row per look
 * with the comparison's fields; {@link multiArmSequentialReport} for several,
 * one row per look with `arms` by treatment name).
 *
 * Per snapshot and treatment: the always-valid mSPRT (effect, confidence
 * sequence, relative lift and its interval, always-valid p-value, each
 * carried from look to look) on the difference of means ({@link sequentialTest}),
 * on the CUPED-adjusted difference when the arms carry a covariate
 * ({@link cupedSequentialTest}, θ pooled over every arm), or on the difference
 * of ratios for `metric: "ratio"` ({@link ratioSequentialTest}); the
 * fixed-horizon p-value (for comparison only); and, over all arms, the
 * chi-square SRM p-value and the sequential SRM p-value (weights default to
 * equal).
 *
 * Several treatments (k > 1): each treatment's confidence sequences are at
 * α/k (Bonferroni), its `p_value` is its own always-valid p-value and
 * `adjusted_p_value` Holm's adjustment of the k p-values at that look
 * ({@link holmAdjust}), valid at any stopping time since each p-value is.
 *
 * Decision (per treatment): "treatment_better" / "treatment_worse" when the
 * always-valid p-value (Holm-adjusted with several treatments) is below alpha
 * and the sequential SRM test is not alarmed; the side is the side of the
 * confidence sequence (else of the effect), and "better" follows `direction`
 * (default "increase"). Otherwise "continue". Only the sequential SRM test
 * blocks a decision: it is always valid, while the chi-square test, looked at
 * on every snapshot, raises false alarms (docs/statistics.md); a chi-square
 * p-value below 0.001 alone gives a warning. The report does not enforce a
 * minimum sample or duration: the runtime does (min_sample_per_arm,
 * min_duration) before acting on a decision.
 *
 * τ²: `tau2` when given; else tuned with {@link mixtureVarianceForSample} to
 * `planned_units_per_arm` (default {@link DEFAULT_PLANNED_UNITS_PER_ARM}) using the
 * mean per-unit variance of the arms (CUPED-adjusted with a covariate; of
 * the ratio by the delta method for a ratio) at the first snapshot where it
 * is positive, and held fixed for all looks. `tau2_source` says which.
 *
 * Expects input checked by {@link validateSequentialReportInput}; anything
 * else still gives defined rows (nulls and warnings), never a throw.
 */
export function runSequentialReport(
  input: SequentialReportInput,
): SequentialReport<SequentialReportRow> | SequentialReport<MultiArmReportRow> {
  return reportArms(input).treatments.length > 1 ? multiArmSequentialReport(input) : sequentialReport(input);
}

/** The report: τ², where it came from, and one row per snapshot. */
export interface SequentialReport<Row> {
  tau2: number;
  tau2_source: string;
  results: Row[];
}

/**
 * The report of an experiment with one treatment (two arms), one
 * {@link SequentialReportRow} per snapshot; see {@link runSequentialReport}
 * for the statistics. Given several treatments it reports control against
 * the first one alone, as a two-arm experiment: use
 * {@link multiArmSequentialReport} for them.
 */
export function sequentialReport(input: SequentialReportInput): SequentialReport<SequentialReportRow> {
  const { treatments } = reportArms(input);
  const first = treatments[0];
  const twoArms = treatments.length > 1 && first !== undefined ? restrictArms(input, ["control", first]) : input;
  const { tau2, source, looks } = analyse(twoArms);
  const results = looks.map((look): SequentialReportRow => {
    const c = look.comparisons[0];
    const d = look.decisions[0];
    const notes = d?.note ? [d.note] : [];
    const warnings = [
      ...new Set([...(c?.warnings ?? []), ...look.srm.warnings, ...look.ssrm.warnings, ...notes, ...look.srmNotes]),
    ];
    const row: SequentialReportRow = {
      effect: c?.effect ?? null,
      ci: c?.ci ?? null,
      relative_lift: c?.relative_lift ?? null,
      relative_ci: c?.relative_ci ?? null,
      p_value: c?.p_value ?? null,
      fixed_p_value: c?.fixed_p_value ?? null,
      srm_p_value: look.srm.pValue,
      srm_sequential_p_value: look.ssrm.pValue,
      decision: d?.decision ?? "continue",
    };
    if (c?.cuped !== undefined) row.cuped = c.cuped;
    if (warnings.length > 0) row.warnings = warnings;
    return row;
  });
  return { tau2, tau2_source: source, results };
}

/**
 * The report of an experiment with several treatments, one
 * {@link MultiArmReportRow} per snapshot (`arms` by treatment name, the SRM
 * p-values over all arms); see {@link runSequentialReport}.
 */
export function multiArmSequentialReport(input: SequentialReportInput): SequentialReport<MultiArmReportRow> {
  const { treatments } = reportArms(input);
  const { tau2, source, looks } = analyse(input);
  const results = looks.map((look): MultiArmReportRow => {
    const arms: Record<string, ReportArmResult> = {};
    const armWarnings: string[] = [];
    treatments.forEach((name, i) => {
      const c = look.comparisons[i] as Comparison;
      const d = look.decisions[i] as Decided;
      const entry: ReportArmResult = {
        effect: c.effect,
        ci: c.ci,
        relative_lift: c.relative_lift,
        relative_ci: c.relative_ci,
        p_value: c.p_value,
        adjusted_p_value: look.adjusted[i] ?? null,
        fixed_p_value: c.fixed_p_value,
        decision: d.decision,
      };
      if (c.cuped !== undefined) entry.cuped = c.cuped;
      arms[name] = entry;
      for (const w of [...c.warnings, ...(d.note === null ? [] : [d.note])]) {
        // The control's own problems are the same for every treatment: said once, without a name.
        armWarnings.push(w.startsWith("control arm") ? w : `${name}: ${w.replace(/^treatment arm/, "arm")}`);
      }
    });
    const warnings = [...new Set([...armWarnings, ...look.srm.warnings, ...look.ssrm.warnings, ...look.srmNotes])];
    const row: MultiArmReportRow = {
      arms,
      srm_p_value: look.srm.pValue,
      srm_sequential_p_value: look.ssrm.pValue,
    };
    if (warnings.length > 0) row.warnings = warnings;
    return row;
  });
  return { tau2, tau2_source: source, results };
}

/** The input reduced to some of its arms (weights renormalised by the SRM tests). */
function restrictArms(input: SequentialReportInput, arms: readonly string[]): SequentialReportInput {
  const snapshots = input.snapshots.map((snapshot) => {
    const kept: Record<string, ReportArm> = {};
    for (const name of arms) {
      const arm = snapshot[name];
      if (arm !== undefined) kept[name] = arm;
    }
    return kept;
  });
  const all = ["control", ...reportArms(input).treatments];
  const w = input.weights;
  const weights =
    w === undefined
      ? undefined
      : Array.isArray(w)
        ? arms.map((name) => w[all.indexOf(name)] ?? Number.NaN)
        : Object.fromEntries(arms.map((name) => [name, w[name] ?? Number.NaN]));
  return { ...input, snapshots, ...(weights === undefined ? {} : { weights }) };
}

interface Decided {
  decision: ReportDecision;
  note: string | null;
}

interface Look {
  comparisons: Comparison[];
  decisions: Decided[];
  /** Holm-adjusted p-values with several treatments, else the p-values. */
  adjusted: (number | null)[];
  srm: ReturnType<typeof srmChiSquare>;
  ssrm: ReturnType<typeof sequentialSrm>;
  srmNotes: string[];
}

/** Every look of every treatment, with the SRM tests and the decisions. */
function analyse(input: SequentialReportInput): { tau2: number; source: string; looks: Look[] } {
  const alpha = input.alpha ?? DEFAULT_ALPHA;
  const direction = input.direction ?? "increase";
  const mode = modeOf(input);
  const { treatments } = reportArms(input);
  const arms = ["control", ...treatments];
  const weights = weightsOf(input, arms);
  const k = Math.max(1, treatments.length);
  const { tau2, source } = resolveTau2(input, alpha, mode);
  const carries = new Map<string, SequentialCarry | null>(treatments.map((t) => [t, null]));
  let srmCarry: number | null = null;
  const looks: Look[] = [];
  for (const snapshot of input.snapshots) {
    const comparisons = treatments.map((t) => {
      const c = compare(input, mode, snapshot, t, { alpha, ciAlpha: alpha / k, tau2 }, carries.get(t) ?? null);
      carries.set(t, c.carry ?? carries.get(t) ?? null);
      return c;
    });
    const units = arms.map((name) => snapshot[name]?.units ?? 0);
    const srm = srmChiSquare(units, weights);
    const ssrm = sequentialSrm(units, weights, srmCarry);
    srmCarry = ssrm.carry ?? srmCarry;

    const srmNotes: string[] = [];
    if (ssrm.alarm && !srm.alarm) {
      srmNotes.push("the sequential SRM test is alarmed (p < 0.001): check the assignment before trusting any effect");
    }
    if (srm.pValue !== null && srm.pValue < SRM_THRESHOLD && !ssrm.alarm) {
      srmNotes.push(
        "the chi-square SRM p-value is below 0.001 but the sequential SRM test is not alarmed: no decision is " +
          "blocked (only the sequential test, valid at every look, blocks one); check the assignment if it persists",
      );
    }
    const adjusted = k > 1 ? holmAdjust(comparisons.map((c) => c.p_value)) : comparisons.map((c) => c.p_value);
    const decisions = comparisons.map((c, i): Decided => {
      const p = adjusted[i] ?? null;
      if (p === null || !(p < alpha) || c.ci === null) return { decision: "continue", note: null };
      const side = sideOf(c);
      if (ssrm.alarm) {
        return {
          decision: "continue",
          note: "the effect is significant, but no decision is declared while the SRM alarm is raised",
        };
      }
      if (side === 0) return { decision: "continue", note: null };
      const better = direction === "increase" ? side > 0 : side < 0;
      return { decision: better ? "treatment_better" : "treatment_worse", note: null };
    });
    looks.push({ comparisons, decisions, adjusted, srm, ssrm, srmNotes });
  }
  return { tau2, source, looks };
}

// ---------------------------------------------------------------------------
// Validation

const ROOT_KEYS = ["metric", "alpha", "tau2", "weights", "planned_units_per_arm", "direction", "snapshots"];
const ARM_KEYS = ["units", "sum", "sum_sq", "covariate"];
const COVARIATE_KEYS = ["sum", "sum_sq", "sum_product"];
const RATIO_ARM_KEYS = ["units", "numerator", "denominator", "sum_product"];
const MOMENT_KEYS = ["sum", "sum_sq"];
const MAX_ERRORS = 50;

type Add = (path: string, code: string, message: string, hint?: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (isObject(value)) return "an object";
  return String(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** `snapshots[2].b`, or `snapshots[2]["a b"]` for a name that is not an identifier. */
function armField(i: number, name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)
    ? `snapshots[${i}].${name}`
    : `snapshots[${i}][${JSON.stringify(name)}]`;
}

/** Cauchy–Schwarz for a sum of squares, with room for rounding in exported totals: Σx² ≥ (Σx)²/n. */
function sumSqTooSmall(units: number, sum: number, sumSq: number): boolean {
  return units > 0 && sumSq < ((sum * sum) / units) * (1 - 1e-9) - 1e-12;
}

/** Cauchy–Schwarz for a cross product: |Σxy − Σx·Σy/n| ≤ sqrt(SSx·SSy), with room for rounding. */
function crossSumImpossible(u: number, sx: number, sxx: number, sy: number, syy: number, sxy: number): boolean {
  if (u <= 0) return false;
  const ssx = Math.max(0, sxx - (sx * sx) / u);
  const ssy = Math.max(0, syy - (sy * sy) / u);
  const centred = sxy - (sx * sy) / u;
  const slack = 1e-9 * (Math.abs(sxy) + Math.abs((sx * sy) / u)) + 1e-12;
  return Math.abs(centred) > Math.sqrt(ssx * ssy) * (1 + 1e-9) + slack;
}

/**
 * Checks a parsed JSON value against the report input format and returns it
 * typed (proportion arms without `sum_sq` get sum_sq = sum; counts within
 * COUNT_TOLERANCE·max(1, units) of a whole number are rounded to it), or every
 * mistake found (up to 50), each with a JSON pointer, a message naming the
 * field and its value, and a hint.
 *
 * Rules: `metric` "proportion" | "mean" | "ratio"; `alpha` in (0, 1);
 * `tau2` > 0; `planned_units_per_arm` > 0 (not with `tau2`); `weights` an
 * object with a number > 0 for every arm, or for two arms a list
 * [control, treatment]; `direction` "increase" | "decrease"; `snapshots` a
 * non-empty list of objects by arm name, each naming `control` and at least
 * one treatment, every snapshot the same arms.
 *
 * A proportion or mean arm is `{ units, sum, sum_sq, covariate? }` with units
 * a whole number ≥ 0; for a proportion, sum (conversions) a whole number in
 * [0, units] and sum_sq, if given, equal to sum; for a mean, sum finite and
 * sum_sq ≥ sum²/units. `covariate` `{ sum, sum_sq, sum_product }` (CUPED) is
 * on every arm of every snapshot or on none, with sum_sq ≥ sum²/units and
 * sum_product within what Cauchy–Schwarz allows. A ratio arm is
 * `{ units, numerator: { sum, sum_sq }, denominator: { sum, sum_sq }, sum_product }`
 * with the same checks. Snapshots are cumulative: units (and conversions, or
 * the sums of squares) never decrease from one snapshot to the next. Unknown
 * keys are errors (they are usually typos).
 */
export function validateSequentialReportInput(
  value: unknown,
): { ok: true; input: SequentialReportInput } | { ok: false; errors: ReportInputError[] } {
  const errors: ReportInputError[] = [];
  const add: Add = (path, code, message, hint) => {
    if (errors.length < MAX_ERRORS)
      errors.push(hint === undefined ? { path, code, message } : { path, code, message, hint });
  };
  if (!isObject(value)) {
    add(
      "",
      "wrong_type",
      `the input must be a JSON object; got ${show(value)}`,
      'give { "metric": "proportion", "snapshots": [{ "control": {...}, "treatment": {...} }] }',
    );
    return { ok: false, errors };
  }
  for (const key of Object.keys(value)) {
    if (!ROOT_KEYS.includes(key)) {
      add(
        `/${pointerSegment(key)}`,
        "unknown_key",
        `unknown field "${key}"`,
        `the fields are: ${ROOT_KEYS.join(", ")}`,
      );
    }
  }

  const metric = value.metric;
  if (metric === undefined) {
    add("/metric", "missing_field", "metric is missing", 'add "metric": "proportion" (conversions), "mean" or "ratio"');
  } else if (metric !== "proportion" && metric !== "mean" && metric !== "ratio") {
    add(
      "/metric",
      "invalid_value",
      `metric is ${show(metric)}; it must be "proportion", "mean" or "ratio"`,
      '"proportion" for conversion rates (sum = conversions), "mean" for a continuous metric, ' +
        '"ratio" for Σnumerator/Σdenominator (e.g. revenue per session)',
    );
  }
  const kind: ReportMetric | null = metric === "proportion" || metric === "mean" || metric === "ratio" ? metric : null;

  if (value.alpha !== undefined && !(isNumber(value.alpha) && value.alpha > 0 && value.alpha < 1)) {
    add(
      "/alpha",
      "out_of_range",
      `alpha is ${show(value.alpha)}; it must be a number in (0, 1)`,
      "a fraction such as 0.05, not 5",
    );
  }
  if (value.tau2 !== undefined && !(isNumber(value.tau2) && value.tau2 > 0)) {
    add(
      "/tau2",
      "out_of_range",
      `tau2 is ${show(value.tau2)}; it must be a finite number > 0`,
      "the mixture variance in squared metric units; leave it out to tune it to planned_units_per_arm",
    );
  }
  if (value.planned_units_per_arm !== undefined) {
    if (!(isNumber(value.planned_units_per_arm) && value.planned_units_per_arm > 0)) {
      add(
        "/planned_units_per_arm",
        "out_of_range",
        `planned_units_per_arm is ${show(value.planned_units_per_arm)}; it must be a number > 0`,
        "the number of units you expect in each arm",
      );
    } else if (value.tau2 !== undefined) {
      add(
        "/planned_units_per_arm",
        "conflicting_options",
        "planned_units_per_arm and tau2 are both given",
        "give tau2, or planned_units_per_arm to tune tau2 from it, not both",
      );
    }
  }
  if (value.direction !== undefined && value.direction !== "increase" && value.direction !== "decrease") {
    add(
      "/direction",
      "invalid_value",
      `direction is ${show(value.direction)}; it must be "increase" or "decrease"`,
      "the direction in which the metric improves",
    );
  }

  const snapshots = value.snapshots;
  const out: Record<string, ReportArm>[] = [];
  /** The arms of the first snapshot that names them, control first. */
  let armNames: string[] | null = null;
  if (snapshots === undefined) {
    add(
      "/snapshots",
      "missing_field",
      "snapshots is missing",
      'add "snapshots": a list of cumulative totals, each { "control": { "units", "sum", "sum_sq" }, "treatment": {...} }',
    );
  } else if (!Array.isArray(snapshots)) {
    add(
      "/snapshots",
      "wrong_type",
      `snapshots is ${show(snapshots)}; it must be a list`,
      "one entry per look, oldest first",
    );
  } else if (snapshots.length === 0) {
    add("/snapshots", "too_few_items", "snapshots is empty", "give at least one snapshot");
  } else {
    const previous = new Map<string, ReportArm>();
    let covariate: { has: boolean; where: string } | null = null;
    snapshots.forEach((snapshot, i) => {
      const base = `/snapshots/${i}`;
      if (!isObject(snapshot)) {
        add(
          base,
          "wrong_type",
          `snapshots[${i}] is ${show(snapshot)}; it must be an object`,
          '{ "control": {...}, "treatment": {...} }: the cumulative totals of each arm, by arm name',
        );
        return;
      }
      const names = Object.keys(snapshot);
      const ordered = [...(names.includes("control") ? ["control"] : []), ...names.filter((n) => n !== "control")];
      let complete = true;
      if (!names.includes("control")) {
        add(
          `${base}/control`,
          "missing_field",
          `snapshots[${i}].control is missing`,
          'every snapshot gives the control arm\'s totals under the name "control"',
        );
        complete = false;
      } else if (names.length === 1) {
        add(
          base,
          "too_few_items",
          `snapshots[${i}] has only the control arm`,
          'add at least one treatment arm, such as "treatment": { "units": 1000, "sum": 120 }',
        );
        complete = false;
      }
      if (armNames === null && complete) armNames = ordered;
      else if (armNames !== null) {
        const expected: string[] = armNames;
        for (const name of ordered) {
          if (!expected.includes(name)) {
            add(
              `${base}/${pointerSegment(name)}`,
              "unknown_key",
              `snapshots[${i}]: arm ${JSON.stringify(name)} is not in the first snapshot, whose arms are ${expected.join(", ")}`,
              "every snapshot names the same arms; check the spelling",
            );
            complete = false;
          }
        }
        for (const name of expected) {
          if (!names.includes(name)) {
            add(
              `${base}/${pointerSegment(name)}`,
              "missing_field",
              `${armField(i, name)} is missing; the first snapshot has arm ${JSON.stringify(name)}`,
              "every snapshot gives the cumulative totals of every arm",
            );
            complete = false;
          }
        }
      }
      const arms: Record<string, ReportArm> = {};
      for (const name of ordered) {
        const path = `${base}/${pointerSegment(name)}`;
        const field = armField(i, name);
        if (name === "") {
          add(path, "invalid_value", `snapshots[${i}] has an arm named ""`, "name every arm, such as treatment");
          complete = false;
          continue;
        }
        const before = previous.get(name) ?? null;
        let arm: ReportArm | null;
        if (kind === "ratio") {
          arm = checkRatioArm(snapshot[name], path, field, before as ReportRatioTotals | null, add);
        } else {
          const raw = snapshot[name];
          if (kind !== null && isObject(raw)) {
            const has = raw.covariate !== undefined;
            if (covariate === null) covariate = { has, where: field };
            else if (has !== covariate.has) {
              add(
                `${path}/covariate`,
                has ? "invalid_value" : "missing_field",
                has
                  ? `${field}.covariate is given, but ${covariate.where} has none`
                  : `${field}.covariate is missing, but ${covariate.where} has one`,
                "give the covariate (CUPED) on every arm of every snapshot, or on none",
              );
              complete = false;
            }
          }
          arm = checkArm(raw, path, field, kind, before as ReportArmTotals | null, add);
        }
        if (arm) {
          arms[name] = arm;
          previous.set(name, arm);
        } else complete = false;
      }
      if (complete) out.push(arms);
    });
  }

  if (value.weights !== undefined) checkWeights(value.weights, armNames, add);

  if (errors.length > 0 || kind === null) return { ok: false, errors };
  const input: SequentialReportInput = { metric: kind, snapshots: out };
  if (value.alpha !== undefined) input.alpha = value.alpha as number;
  if (value.tau2 !== undefined) input.tau2 = value.tau2 as number;
  if (value.weights !== undefined) {
    input.weights = Array.isArray(value.weights)
      ? [...(value.weights as number[])]
      : { ...(value.weights as Record<string, number>) };
  }
  if (value.planned_units_per_arm !== undefined) input.planned_units_per_arm = value.planned_units_per_arm as number;
  if (value.direction !== undefined) input.direction = value.direction as "increase" | "decrease";
  return { ok: true, input };
}

/** `weights`: a list [control, treatment] for two arms, or an object with a number > 0 for every arm. */
function checkWeights(w: unknown, arms: string[] | null, add: Add): void {
  const example = arms === null ? '{ "control": 1, "treatment": 1 }' : `{ ${arms.map((a) => `"${a}": 1`).join(", ")} }`;
  if (Array.isArray(w)) {
    if (w.length !== 2 || !w.every((x) => isNumber(x) && x > 0)) {
      add(
        "/weights",
        "invalid_value",
        `weights is ${JSON.stringify(w)}; it must be two numbers > 0, [control, treatment]`,
        `for example [0.5, 0.5]; they are normalised, so [1, 1] is the same; or an object by arm name, ${example}`,
      );
    } else if (arms !== null && arms.length !== 2) {
      add(
        "/weights",
        "invalid_value",
        `weights is a list, but the snapshots have ${arms.length} arms (${arms.join(", ")})`,
        `give an object by arm name, such as ${example}`,
      );
    }
    return;
  }
  if (!isObject(w)) {
    add(
      "/weights",
      "wrong_type",
      `weights is ${show(w)}; it must be an object by arm name, or a list [control, treatment]`,
      `for example ${example}; they are normalised`,
    );
    return;
  }
  for (const [name, x] of Object.entries(w)) {
    if (arms !== null && !arms.includes(name)) {
      add(
        `/weights/${pointerSegment(name)}`,
        "unknown_key",
        `weights names arm ${JSON.stringify(name)}, which the snapshots do not have (their arms: ${arms.join(", ")})`,
        "give a weight for each arm of the snapshots; check the spelling",
      );
    } else if (!(isNumber(x) && x > 0)) {
      add(
        `/weights/${pointerSegment(name)}`,
        "out_of_range",
        `weights.${name} is ${show(x)}; it must be a number > 0`,
        "the arm's share of the traffic, such as 0.5; the weights are normalised",
      );
    }
  }
  for (const name of arms ?? []) {
    if (!(name in w)) {
      add(
        `/weights/${pointerSegment(name)}`,
        "missing_field",
        `weights.${name} is missing`,
        `give a weight for every arm, such as ${example}`,
      );
    }
  }
}

/** JSON-pointer escaping of one path segment (RFC 6901). */
function pointerSegment(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Units: a whole number ≥ 0, a float within COUNT_TOLERANCE of one rounded to it; null (and an error) otherwise. */
function checkUnits(units: unknown, path: string, field: string, add: Add): number | null {
  if (units === undefined) {
    add(
      `${path}/units`,
      "missing_field",
      `${field}.units is missing`,
      "the number of units (users, sessions…) in the arm so far",
    );
    return null;
  }
  const whole = isNumber(units) ? wholeCount(units, units) : null;
  if (whole === null || whole < 0) {
    add(
      `${path}/units`,
      "out_of_range",
      `${field}.units is ${show(units)}; it must be a whole number ≥ 0`,
      `a count of units, such as 1000 (within a relative ${COUNT_TOLERANCE} of a whole number is read as it)`,
    );
    return null;
  }
  return whole;
}

/** Unknown keys of an object, as errors; false when there was one. */
function checkKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  path: string,
  field: string,
  add: Add,
  hint?: string,
): boolean {
  let ok = true;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      add(
        `${path}/${pointerSegment(key)}`,
        "unknown_key",
        `${field}: unknown field "${key}"`,
        hint ?? `the fields are: ${allowed.join(", ")}`,
      );
      ok = false;
    }
  }
  return ok;
}

/** A finite number field; null (and an error) when missing or not a finite number. */
function checkFinite(value: unknown, path: string, field: string, add: Add, missingHint: string): number | null {
  if (value === undefined) {
    add(path, "missing_field", `${field} is missing`, missingHint);
    return null;
  }
  if (!isNumber(value)) {
    add(path, "wrong_type", `${field} is ${show(value)}; it must be a finite number`);
    return null;
  }
  return value;
}

/** A sum of squares: finite, ≥ 0 and ≥ sum²/units. */
function checkSumSq(
  value: unknown,
  path: string,
  field: string,
  units: number,
  sum: number | null,
  add: Add,
  what: string,
): number | null {
  if (value === undefined) {
    add(path, "missing_field", `${field} is missing`, `the sum of the squared ${what} (Σx²), to estimate the variance`);
    return null;
  }
  if (!(isNumber(value) && value >= 0)) {
    add(
      path,
      "out_of_range",
      `${field} is ${show(value)}; it must be a finite number ≥ 0`,
      `the sum of the squared ${what}`,
    );
    return null;
  }
  if (sum !== null && sumSqTooSmall(units, sum, value)) {
    add(
      path,
      "out_of_range",
      `${field} is ${value}, less than sum²/units = ${fmt((sum * sum) / units)}, which no data can give`,
      "sum_sq is the sum of the squared values (Σx²), not the squared sum or a variance",
    );
    return null;
  }
  return value;
}

function checkCovariate(
  raw: unknown,
  path: string,
  field: string,
  units: number,
  y: { sum: number; sum_sq: number },
  add: Add,
): ReportCovariate | null {
  const shape = '{ "sum": Σx, "sum_sq": Σx², "sum_product": Σx·y }';
  if (!isObject(raw)) {
    add(path, "wrong_type", `${field} is ${show(raw)}; it must be an object`, `the covariate's totals, ${shape}`);
    return null;
  }
  if (!checkKeys(raw, COVARIATE_KEYS, path, field, add)) return null;
  const sum = checkFinite(raw.sum, `${path}/sum`, `${field}.sum`, add, "the sum of the covariate over the units (Σx)");
  const sumProduct = checkFinite(
    raw.sum_product,
    `${path}/sum_product`,
    `${field}.sum_product`,
    add,
    "the sum over the units of the covariate times the metric (Σx·y)",
  );
  const sumSq = checkSumSq(raw.sum_sq, `${path}/sum_sq`, `${field}.sum_sq`, units, sum, add, "covariate values");
  if (sum === null || sumProduct === null || sumSq === null) return null;
  if (units === 0 && (sum !== 0 || sumSq !== 0 || sumProduct !== 0)) {
    add(path, "invalid_value", `${field} has values but the arm has 0 units`, "an empty arm's covariate totals are 0");
    return null;
  }
  if (crossSumImpossible(units, sum, sumSq, y.sum, y.sum_sq, sumProduct)) {
    add(
      `${path}/sum_product`,
      "out_of_range",
      `${field}.sum_product is ${sumProduct}, which no data can give with these sums (|Σxy − Σx·Σy/n| ≤ sqrt(SSx·SSy))`,
      "sum_product is the sum over the units of each unit's covariate times its metric value",
    );
    return null;
  }
  return { sum, sum_sq: sumSq, sum_product: sumProduct };
}

function checkArm(
  arm: unknown,
  path: string,
  field: string,
  kind: MetricKind | null,
  before: ReportArmTotals | null,
  add: Add,
): ReportArmTotals | null {
  const shape = '{ "units": 1000, "sum": 120, "sum_sq": 120 }';
  if (arm === undefined) {
    add(path, "missing_field", `${field} is missing`, `give the arm's cumulative totals, ${shape}`);
    return null;
  }
  if (!isObject(arm)) {
    add(path, "wrong_type", `${field} is ${show(arm)}; it must be an object`, shape);
    return null;
  }
  let ok = checkKeys(arm, ARM_KEYS, path, field, add, "the fields are: units, sum, sum_sq, covariate");
  const { units, sum, sum_sq } = arm;
  const u = checkUnits(units, path, field, add);
  if (u === null) ok = false;
  if (sum === undefined) {
    add(
      `${path}/sum`,
      "missing_field",
      `${field}.sum is missing`,
      kind === "proportion" ? "the number of conversions so far" : "the sum of the metric's values so far",
    );
    ok = false;
  } else if (!isNumber(sum)) {
    add(`${path}/sum`, "wrong_type", `${field}.sum is ${show(sum)}; it must be a finite number`);
    ok = false;
  }
  if (sum_sq !== undefined && !(isNumber(sum_sq) && sum_sq >= 0)) {
    add(
      `${path}/sum_sq`,
      "out_of_range",
      `${field}.sum_sq is ${show(sum_sq)}; it must be a finite number ≥ 0`,
      "the sum of the squared values",
    );
    ok = false;
  } else if (sum_sq === undefined && kind === "mean") {
    add(
      `${path}/sum_sq`,
      "missing_field",
      `${field}.sum_sq is missing`,
      "a mean metric needs the sum of the squared values to estimate its variance",
    );
    ok = false;
  }
  if (!ok || kind === null || u === null) return null;
  let s = sum as number;
  if (kind === "proportion") {
    const conversions = wholeCount(s, u);
    if (conversions === null || conversions < 0 || conversions > u) {
      add(
        `${path}/sum`,
        "out_of_range",
        `${field}.sum is ${s}; for a proportion it is the number of conversions, a whole number from 0 to units (${u})`,
        "did you give a rate or a percent instead of a count?",
      );
      return null;
    }
    if (sum_sq !== undefined && !equalWithinCountTolerance(sum_sq as number, s)) {
      add(
        `${path}/sum_sq`,
        "invalid_value",
        `${field}.sum_sq is ${sum_sq} but sum is ${s}; for a proportion they are both the number of conversions`,
        "leave sum_sq out, or set it equal to sum",
      );
      return null;
    }
    s = conversions;
  } else {
    const q = sum_sq as number;
    if (u === 0 && (s !== 0 || q !== 0)) {
      add(
        `${path}`,
        "invalid_value",
        `${field} has 0 units but sum ${s} and sum_sq ${q}`,
        "an empty arm has sum 0 and sum_sq 0",
      );
      return null;
    }
    if (checkSumSq(q, `${path}/sum_sq`, `${field}.sum_sq`, u, s, add, "values") === null) return null;
  }
  const totals: ReportArmTotals = { units: u, sum: s, sum_sq: kind === "proportion" ? s : (sum_sq as number) };
  if (arm.covariate !== undefined) {
    const covariate = checkCovariate(arm.covariate, `${path}/covariate`, `${field}.covariate`, u, totals, add);
    if (covariate === null) return null;
    totals.covariate = covariate;
  }
  if (before !== null) {
    if (totals.units < before.units) {
      add(
        `${path}/units`,
        "out_of_range",
        `${field}.units is ${totals.units}, less than ${before.units} in the previous snapshot`,
        "snapshots are cumulative totals, oldest first; units never decrease",
      );
      return null;
    }
    if (kind === "proportion" && totals.sum < before.sum) {
      add(
        `${path}/sum`,
        "out_of_range",
        `${field}.sum is ${totals.sum}, less than ${before.sum} conversions in the previous snapshot`,
        "snapshots are cumulative totals, oldest first; conversions never decrease",
      );
      return null;
    }
    if (kind === "mean" && totals.sum_sq < before.sum_sq * (1 - 1e-12)) {
      add(
        `${path}/sum_sq`,
        "out_of_range",
        `${field}.sum_sq is ${totals.sum_sq}, less than ${before.sum_sq} in the previous snapshot`,
        "snapshots are cumulative totals, oldest first; a sum of squares never decreases",
      );
      return null;
    }
    if (totals.covariate && before.covariate && totals.covariate.sum_sq < before.covariate.sum_sq * (1 - 1e-12)) {
      add(
        `${path}/covariate/sum_sq`,
        "out_of_range",
        `${field}.covariate.sum_sq is ${totals.covariate.sum_sq}, less than ${before.covariate.sum_sq} in the previous snapshot`,
        "snapshots are cumulative totals, oldest first; a sum of squares never decreases",
      );
      return null;
    }
  }
  return totals;
}

/** `{ sum, sum_sq }` of a ratio's numerator or denominator. */
function checkMoments(raw: unknown, path: string, field: string, units: number, add: Add): ReportMoments | null {
  if (raw === undefined) {
    add(path, "missing_field", `${field} is missing`, 'give its totals over the units, { "sum": Σv, "sum_sq": Σv² }');
    return null;
  }
  if (!isObject(raw)) {
    add(path, "wrong_type", `${field} is ${show(raw)}; it must be an object`, '{ "sum": Σv, "sum_sq": Σv² }');
    return null;
  }
  if (!checkKeys(raw, MOMENT_KEYS, path, field, add)) return null;
  const sum = checkFinite(raw.sum, `${path}/sum`, `${field}.sum`, add, "the sum of the per-unit values (Σv)");
  const sumSq = checkSumSq(raw.sum_sq, `${path}/sum_sq`, `${field}.sum_sq`, units, sum, add, "per-unit values");
  if (sum === null || sumSq === null) return null;
  return { sum, sum_sq: sumSq };
}

function checkRatioArm(
  arm: unknown,
  path: string,
  field: string,
  before: ReportRatioTotals | null,
  add: Add,
): ReportRatioTotals | null {
  const shape =
    '{ "units": 400, "numerator": { "sum": 1203.5, "sum_sq": 9876.1 }, "denominator": { "sum": 1600, "sum_sq": 7630 }, "sum_product": 5012.2 }';
  if (arm === undefined) {
    add(path, "missing_field", `${field} is missing`, `give the arm's cumulative totals, ${shape}`);
    return null;
  }
  if (!isObject(arm)) {
    add(path, "wrong_type", `${field} is ${show(arm)}; it must be an object`, shape);
    return null;
  }
  const keysOk = checkKeys(
    arm,
    RATIO_ARM_KEYS,
    path,
    field,
    add,
    "a ratio arm's fields are: units, numerator, denominator, sum_product (a ratio takes no covariate)",
  );
  const u = checkUnits(arm.units, path, field, add);
  if (u === null) {
    // Still check the rest, for every mistake at once.
    checkMoments(arm.numerator, `${path}/numerator`, `${field}.numerator`, 0, add);
    checkMoments(arm.denominator, `${path}/denominator`, `${field}.denominator`, 0, add);
    return null;
  }
  const numerator = checkMoments(arm.numerator, `${path}/numerator`, `${field}.numerator`, u, add);
  const denominator = checkMoments(arm.denominator, `${path}/denominator`, `${field}.denominator`, u, add);
  const sumProduct = checkFinite(
    arm.sum_product,
    `${path}/sum_product`,
    `${field}.sum_product`,
    add,
    "the sum over the units of numerator × denominator (Σ num·den)",
  );
  if (!keysOk || numerator === null || denominator === null || sumProduct === null) return null;
  if (
    u === 0 &&
    [numerator.sum, numerator.sum_sq, denominator.sum, denominator.sum_sq, sumProduct].some((v) => v !== 0)
  ) {
    add(path, "invalid_value", `${field} has 0 units but non-zero totals`, "an empty arm's totals are all 0");
    return null;
  }
  if (crossSumImpossible(u, denominator.sum, denominator.sum_sq, numerator.sum, numerator.sum_sq, sumProduct)) {
    add(
      `${path}/sum_product`,
      "out_of_range",
      `${field}.sum_product is ${sumProduct}, which no data can give with these sums (|Σxy − Σx·Σy/n| ≤ sqrt(SSx·SSy))`,
      "sum_product is the sum over the units of each unit's numerator times its denominator",
    );
    return null;
  }
  const totals: ReportRatioTotals = { units: u, numerator, denominator, sum_product: sumProduct };
  if (before !== null) {
    if (u < before.units) {
      add(
        `${path}/units`,
        "out_of_range",
        `${field}.units is ${u}, less than ${before.units} in the previous snapshot`,
        "snapshots are cumulative totals, oldest first; units never decrease",
      );
      return null;
    }
    for (const part of ["numerator", "denominator"] as const) {
      if (totals[part].sum_sq < before[part].sum_sq * (1 - 1e-12)) {
        add(
          `${path}/${part}/sum_sq`,
          "out_of_range",
          `${field}.${part}.sum_sq is ${totals[part].sum_sq}, less than ${before[part].sum_sq} in the previous snapshot`,
          "snapshots are cumulative totals, oldest first; a sum of squares never decreases",
        );
        return null;
      }
    }
  }
  return totals;
}
