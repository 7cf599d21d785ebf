/**
 * The `stats sequential` report: every look of an experiment analysed with
 * the always-valid test, next to the fixed-horizon p-value and both SRM
 * checks, with a decision per look. Pure. Its input and output are the
 * CLI's published JSON format, hence snake_case; the statistics it calls
 * (`@outcome-runtime/stats`) speak camelCase.
 */
import {
  type ArmTotals,
  fixedHorizonTest,
  type MetricKind,
  mixtureVarianceForSample,
  type SequentialCarry,
  sequentialSrm,
  sequentialTest,
  srmChiSquare,
  summarizeArm,
} from "@outcome-runtime/stats";

/**
 * Input of {@link sequentialReport} (the published JSON format of
 * `outcome-runtime stats sequential`, hence snake_case).
 */
export interface SequentialReportInput {
  metric: MetricKind;
  /** Type I error level, default 0.05. */
  alpha?: number;
  /** Mixture variance; when absent it is tuned to `planned_units_per_arm`. */
  tau2?: number;
  /** Traffic weights [control, treatment], default [0.5, 0.5] (normalised). */
  weights?: number[];
  /** Planned units per arm, to tune τ² when `tau2` is absent (default {@link DEFAULT_PLANNED_UNITS_PER_ARM}). */
  planned_units_per_arm?: number;
  /** The desired direction of the metric, default "increase": names which side is "better". */
  direction?: "increase" | "decrease";
  /** Cumulative totals at each look, oldest first. */
  snapshots: { control: ReportArmTotals; treatment: ReportArmTotals }[];
}

/** One arm's cumulative totals at a look, as the JSON format spells them. */
interface ReportArmTotals {
  units: number;
  /** Sum of the metric (conversions for a proportion). */
  sum: number;
  /** Sum of the squares of each unit's value (equal to `sum` for a proportion). */
  sum_sq: number;
}

/** The statistics library's totals of a report arm. */
function totals(arm: ReportArmTotals): ArmTotals {
  return { units: arm.units, sum: arm.sum, sumSq: arm.sum_sq };
}

/** One look of the report. */
export interface SequentialReportRow {
  effect: number | null;
  ci: [number, number] | null;
  relative_lift: number | null;
  relative_ci: [number, number] | null;
  p_value: number | null;
  fixed_p_value: number | null;
  srm_p_value: number | null;
  srm_sequential_p_value: number | null;
  decision: "continue" | "treatment_better" | "treatment_worse";
  warnings?: string[];
}

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

/** τ² for a report, and a sentence saying where it came from. */
function resolveTau2(input: SequentialReportInput, alpha: number): { tau2: number; source: string } {
  if (input.tau2 !== undefined) return { tau2: input.tau2, source: "tau2 given in the input" };
  const planned = input.planned_units_per_arm ?? DEFAULT_PLANNED_UNITS_PER_ARM;
  const plannedText =
    input.planned_units_per_arm !== undefined
      ? "planned_units_per_arm"
      : `the default when planned_units_per_arm is not given: GrowthBook's N* = ${2 * planned} units in total`;
  for (let i = 0; i < input.snapshots.length; i++) {
    const snapshot = input.snapshots[i];
    if (!snapshot) continue;
    const vc = summarizeArm(input.metric, totals(snapshot.control)).variance;
    const vt = summarizeArm(input.metric, totals(snapshot.treatment)).variance;
    if (vc === null || vt === null) continue;
    const sigma2 = (vc + vt) / 2;
    if (!(sigma2 > 0)) continue;
    return {
      tau2: mixtureVarianceForSample({ alpha, sigma2, plannedUnitsPerArm: planned }),
      source:
        `tuned to make the confidence sequence tightest at ${planned} units per arm (${plannedText}), ` +
        `with the per-unit variance ${fmt(sigma2)} of snapshot ${i + 1}, the first with a positive variance`,
    };
  }
  return {
    tau2: 0,
    source: `undetermined: no snapshot has a positive variance yet to tune tau2 to ${planned} units per arm; give tau2`,
  };
}

/**
 * Analyses every snapshot of one experiment, oldest first.
 *
 * Per snapshot: the always-valid mSPRT ({@link sequentialTest}: effect,
 * confidence sequence, relative lift and its interval, always-valid p-value,
 * each carried from look to look), the fixed-horizon p-value
 * ({@link fixedHorizonTest}, for comparison only), the chi-square SRM p-value
 * and the sequential SRM p-value (weights default to 50/50).
 *
 * Decision: "treatment_better" / "treatment_worse" when the always-valid
 * p-value is below alpha (equivalently the confidence sequence excludes 0) and
 * neither SRM test (chi-square or sequential) is alarmed, as in the runtime's
 * decision policy; the side is the side of the
 * confidence sequence, and "better" follows `direction` (default "increase").
 * Otherwise "continue". No effect is declared while the SRM alarm is raised.
 * The report does not enforce a minimum sample or duration: the runtime does
 * (min_sample_per_arm, min_duration) before acting on a decision.
 *
 * τ²: `tau2` when given; else tuned with {@link mixtureVarianceForSample} to
 * `planned_units_per_arm` (default {@link DEFAULT_PLANNED_UNITS_PER_ARM}) using the
 * per-unit variance of the first snapshot with a positive variance, and held
 * fixed for all looks. `tau2_source` says which.
 *
 * Expects input checked by {@link validateSequentialReportInput}; anything
 * else still gives defined rows (nulls and warnings), never a throw.
 */
export function sequentialReport(input: SequentialReportInput): {
  tau2: number;
  tau2_source: string;
  results: SequentialReportRow[];
} {
  const alpha = input.alpha ?? DEFAULT_ALPHA;
  const weights = input.weights ?? [0.5, 0.5];
  const direction = input.direction ?? "increase";
  const { tau2, source } = resolveTau2(input, alpha);
  let carry: SequentialCarry | null = null;
  let srmCarry: number | null = null;
  const results: SequentialReportRow[] = [];
  for (const look of input.snapshots) {
    const snapshot = { control: totals(look.control), treatment: totals(look.treatment) };
    const seq = sequentialTest(snapshot.control, snapshot.treatment, { kind: input.metric, alpha, tau2 }, carry);
    carry = seq.carry ?? carry;
    const fixed = fixedHorizonTest(input.metric, snapshot.control, snapshot.treatment, alpha);
    const units = [snapshot.control.units, snapshot.treatment.units];
    const srm = srmChiSquare(units, weights);
    const ssrm = sequentialSrm(units, weights, srmCarry);
    srmCarry = ssrm.carry ?? srmCarry;

    const notes: string[] = [];
    let decision: SequentialReportRow["decision"] = "continue";
    if (seq.pValue !== null && seq.pValue < alpha && seq.ci !== null) {
      const side = seq.ci[0] > 0 ? 1 : seq.ci[1] < 0 ? -1 : Math.sign(seq.effect ?? 0);
      if (srm.alarm || ssrm.alarm) {
        notes.push("the effect is significant, but no decision is declared while the SRM alarm is raised");
      } else if (side !== 0) {
        const better = direction === "increase" ? side > 0 : side < 0;
        decision = better ? "treatment_better" : "treatment_worse";
      }
    }
    if (ssrm.alarm && !srm.alarm) {
      notes.push("the sequential SRM test is alarmed (p < 0.001): check the assignment before trusting any effect");
    }
    const warnings = [...new Set([...seq.warnings, ...fixed.warnings, ...srm.warnings, ...ssrm.warnings, ...notes])];
    const row: SequentialReportRow = {
      effect: seq.effect,
      ci: seq.ci,
      relative_lift: seq.relativeLift,
      relative_ci: seq.relativeCi,
      p_value: seq.pValue,
      fixed_p_value: fixed.pValue,
      srm_p_value: srm.pValue,
      srm_sequential_p_value: ssrm.pValue,
      decision,
    };
    if (warnings.length > 0) row.warnings = warnings;
    results.push(row);
  }
  return { tau2, tau2_source: source, results };
}

// ---------------------------------------------------------------------------
// Validation

const ROOT_KEYS = ["metric", "alpha", "tau2", "weights", "planned_units_per_arm", "direction", "snapshots"];
const SNAPSHOT_KEYS = ["control", "treatment"];
const ARM_KEYS = ["units", "sum", "sum_sq"];
const MAX_ERRORS = 50;

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

/**
 * Checks a parsed JSON value against the report input format and returns it
 * typed (proportion arms without `sum_sq` get sum_sq = sum), or every
 * mistake found (up to 50), each with a JSON pointer, a message naming the
 * field and its value, and a hint.
 *
 * Rules: `metric` "proportion" | "mean"; `alpha` in (0, 1); `tau2` > 0;
 * `planned_units_per_arm` > 0 (not with `tau2`); `weights` two numbers > 0;
 * `direction` "increase" | "decrease"; `snapshots` a non-empty list of
 * `{ control, treatment }`, each arm `{ units, sum, sum_sq }` with units a
 * whole number ≥ 0; for a proportion, sum (conversions) a whole number in
 * [0, units] and sum_sq, if given, equal to sum; for a mean, sum finite and
 * sum_sq ≥ sum²/units. Snapshots are cumulative: units (and conversions, or
 * sum_sq for a mean) never decrease from one snapshot to the next. Unknown
 * keys are errors (they are usually typos).
 */
export function validateSequentialReportInput(
  value: unknown,
): { ok: true; input: SequentialReportInput } | { ok: false; errors: ReportInputError[] } {
  const errors: ReportInputError[] = [];
  const add = (path: string, code: string, message: string, hint?: string) => {
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
    add("/metric", "missing_field", "metric is missing", 'add "metric": "proportion" (conversions) or "mean"');
  } else if (metric !== "proportion" && metric !== "mean") {
    add(
      "/metric",
      "invalid_value",
      `metric is ${show(metric)}; it must be "proportion" or "mean"`,
      '"proportion" for conversion rates (sum = conversions), "mean" for a continuous metric',
    );
  }
  const kind: MetricKind | null = metric === "proportion" || metric === "mean" ? metric : null;

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
  if (value.weights !== undefined) {
    const w = value.weights;
    if (!Array.isArray(w) || w.length !== 2 || !w.every((x) => isNumber(x) && x > 0)) {
      add(
        "/weights",
        "invalid_value",
        `weights is ${Array.isArray(w) ? JSON.stringify(w) : show(w)}; it must be two numbers > 0, [control, treatment]`,
        "for example [0.5, 0.5]; they are normalised, so [1, 1] is the same",
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
  const out: { control: ReportArmTotals; treatment: ReportArmTotals }[] = [];
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
    const previous: Record<string, ReportArmTotals | null> = { control: null, treatment: null };
    snapshots.forEach((snapshot, i) => {
      const base = `/snapshots/${i}`;
      if (!isObject(snapshot)) {
        add(
          base,
          "wrong_type",
          `snapshots[${i}] is ${show(snapshot)}; it must be an object`,
          '{ "control": {...}, "treatment": {...} }',
        );
        return;
      }
      for (const key of Object.keys(snapshot)) {
        if (!SNAPSHOT_KEYS.includes(key)) {
          add(
            `${base}/${pointerSegment(key)}`,
            "unknown_key",
            `snapshots[${i}]: unknown field "${key}"`,
            "the fields are: control, treatment",
          );
        }
      }
      const arms: Partial<Record<"control" | "treatment", ReportArmTotals>> = {};
      for (const name of ["control", "treatment"] as const) {
        const arm = checkArm(
          snapshot[name],
          `${base}/${name}`,
          `snapshots[${i}].${name}`,
          kind,
          previous[name] ?? null,
          add,
        );
        if (arm) {
          arms[name] = arm;
          previous[name] = arm;
        }
      }
      if (arms.control && arms.treatment) out.push({ control: arms.control, treatment: arms.treatment });
    });
  }

  if (errors.length > 0 || kind === null) return { ok: false, errors };
  const input: SequentialReportInput = { metric: kind, snapshots: out };
  if (value.alpha !== undefined) input.alpha = value.alpha as number;
  if (value.tau2 !== undefined) input.tau2 = value.tau2 as number;
  if (value.weights !== undefined) input.weights = [...(value.weights as number[])];
  if (value.planned_units_per_arm !== undefined) input.planned_units_per_arm = value.planned_units_per_arm as number;
  if (value.direction !== undefined) input.direction = value.direction as "increase" | "decrease";
  return { ok: true, input };
}

/** JSON-pointer escaping of one path segment (RFC 6901). */
function pointerSegment(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

function checkArm(
  arm: unknown,
  path: string,
  field: string,
  kind: MetricKind | null,
  before: ReportArmTotals | null,
  add: (path: string, code: string, message: string, hint?: string) => void,
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
  let ok = true;
  for (const key of Object.keys(arm)) {
    if (!ARM_KEYS.includes(key)) {
      add(
        `${path}/${pointerSegment(key)}`,
        "unknown_key",
        `${field}: unknown field "${key}"`,
        "the fields are: units, sum, sum_sq",
      );
      ok = false;
    }
  }
  const { units, sum, sum_sq } = arm;
  if (units === undefined) {
    add(
      `${path}/units`,
      "missing_field",
      `${field}.units is missing`,
      "the number of units (users, sessions…) in the arm so far",
    );
    ok = false;
  } else if (!(isNumber(units) && Number.isInteger(units) && units >= 0)) {
    add(
      `${path}/units`,
      "out_of_range",
      `${field}.units is ${show(units)}; it must be a whole number ≥ 0`,
      "a count of units, such as 1000",
    );
    ok = false;
  }
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
  if (!ok || kind === null) return null;
  const u = units as number;
  const s = sum as number;
  if (kind === "proportion") {
    if (!Number.isInteger(s) || s < 0 || s > u) {
      add(
        `${path}/sum`,
        "out_of_range",
        `${field}.sum is ${s}; for a proportion it is the number of conversions, a whole number from 0 to units (${u})`,
        "did you give a rate or a percent instead of a count?",
      );
      return null;
    }
    if (sum_sq !== undefined && sum_sq !== s) {
      add(
        `${path}/sum_sq`,
        "invalid_value",
        `${field}.sum_sq is ${sum_sq} but sum is ${s}; for a proportion they are both the number of conversions`,
        "leave sum_sq out, or set it equal to sum",
      );
      return null;
    }
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
    // Cauchy–Schwarz: Σx² ≥ (Σx)²/n, with room for rounding in exported totals.
    if (u > 0 && q < ((s * s) / u) * (1 - 1e-9) - 1e-12) {
      add(
        `${path}/sum_sq`,
        "out_of_range",
        `${field}.sum_sq is ${q}, less than sum²/units = ${fmt((s * s) / u)}, which no data can give`,
        "sum_sq is the sum of the squared values (Σx²), not the squared sum or a variance",
      );
      return null;
    }
  }
  const totals: ReportArmTotals = { units: u, sum: s, sum_sq: kind === "proportion" ? s : (sum_sq as number) };
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
  }
  return totals;
}
