/**
 * The analysis of one snapshot of an experiment, as a pure computation: the
 * cumulative per-arm totals of the primary metric and of each guardrail at the
 * snapshot's as-of time, the statistical plan and the previous analysis's
 * carry go in; the analysis row to store, the decision policy's answer and the
 * next carry come out. No I/O: `analyse.ts` reads the points, writes the row
 * and applies the decision, in its transaction.
 *
 * The tests: the primary metric's mSPRT (always-valid p-value and confidence
 * sequence, Johari, Pekelis & Walsh 2017) and the fixed-horizon test per
 * treatment arm (for a ratio metric, on the difference of ratios with its
 * delta-method variance, Deng, Knoblich & Lu 2018), the chi-square and
 * sequential SRM tests, and each guardrail's one-sided sequential test
 * (`packages/stats`); the decision policy and the decision rules' counts
 * (`packages/core`).
 */
import {
  type AnalysisCarry,
  type AnalysisComparison,
  type AnalysisSecondary,
  type Arm,
  combineMeasurements,
  countMeasurement,
  countsFrom,
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  decide,
  measurementOf,
  type NewAnalysis,
  NO_COUNTS,
  type PolicyDecision,
  type PolicyInput,
  type StatsPlan,
} from "@outcome-runtime/core";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import {
  type ArmSummary,
  type ArmTotals,
  cupedSequentialTest,
  fixedHorizonTest,
  fixedHorizonTestOfEstimate,
  type GuardrailResult,
  guardrailTest,
  holmAdjust,
  mixtureVarianceForSample,
  type PairedTotals,
  planSample,
  ratioArm,
  ratioEstimate,
  ratioSequentialTest,
  type SequentialCarry,
  type SequentialResult,
  SRM_THRESHOLD,
  sequentialSrm,
  sequentialTest,
  sequentialTestOfEstimate,
  srmChiSquare,
  summarizeArm,
} from "@outcome-runtime/stats";

/** Σx, Σx² and Σxy over an arm's units, x the pre-exposure covariate and y the metric value (CUPED). */
interface CovariateTotals {
  readonly sum: number;
  readonly sumSq: number;
  readonly sumProduct: number;
}

/** Σd, Σd² and Σn·d over an arm's units, d the denominator and n the numerator of a ratio metric. */
interface DenominatorTotals {
  readonly sum: number;
  readonly sumSq: number;
  readonly sumProduct: number;
}

/**
 * An arm's cumulative totals, with the covariate's when the source gives them, and for a ratio metric the
 * denominator's (`sum` and `sumSq` are then the numerator's).
 */
export type SnapshotTotals = ArmTotals & {
  readonly covariate?: CovariateTotals;
  readonly denominator?: DenominatorTotals;
};

/** The kinds of metric the analysis reads: a ratio beside the statistics' proportion and mean. */
type AnalysedKind = "proportion" | "mean" | "ratio";

/** Kept in each analysis row so the next snapshot continues the running minimum and intersections. */
export type { AnalysisCarry };

const DEFAULT_ALPHA = 0.05;
const DEFAULT_POWER = 0.8;

/** One stored point: an arm's cumulative totals as of `ts`. */
export interface ArmPoint {
  readonly arm: string;
  readonly ts: Date;
  readonly units: number;
  readonly sum: number;
  readonly sum_sq: number;
  readonly covariate?: CovariateTotals;
  readonly denominator?: DenominatorTotals;
}

/** A per-arm snapshot: cumulative totals per arm name as of `ts`. */
export interface Snapshot {
  readonly ts: Date;
  readonly arms: ReadonlyMap<string, SnapshotTotals>;
}

/** A point's totals, its covariate's included when it has one. */
function totalsOfPoint(p: ArmPoint): SnapshotTotals {
  return {
    units: p.units,
    sum: p.sum,
    sumSq: p.sum_sq,
    ...(p.covariate === undefined ? {} : { covariate: p.covariate }),
    ...(p.denominator === undefined ? {} : { denominator: p.denominator }),
  };
}

/**
 * The snapshots the points after the last analysis make, oldest first: each
 * distinct `ts` is one snapshot, carrying forward the arms that did not report
 * at it from `previous` (the totals as of the last analysis).
 */
export function snapshotsAfter(previous: ReadonlyMap<string, SnapshotTotals>, points: readonly ArmPoint[]): Snapshot[] {
  const state = new Map(previous);
  const byTs = new Map<number, ArmPoint[]>();
  for (const p of points) {
    const key = p.ts.getTime();
    const list = byTs.get(key) ?? [];
    list.push(p);
    byTs.set(key, list);
  }
  const out: Snapshot[] = [];
  for (const key of [...byTs.keys()].sort((a, b) => a - b)) {
    for (const p of byTs.get(key) ?? []) state.set(p.arm, totalsOfPoint(p));
    out.push({ ts: new Date(key), arms: new Map(state) });
  }
  return out;
}

/** Totals per arm of a set of points (the newest per arm, as the repository returns them). */
export function totalsOf(points: readonly ArmPoint[]): Map<string, SnapshotTotals> {
  return new Map(points.map((p) => [p.arm, totalsOfPoint(p)]));
}

/**
 * The arms' totals as the CUPED test reads them (y the metric, x the
 * covariate), when every arm has a covariate; null when any lacks one (the
 * unadjusted test applies).
 */
function pairedTotals(arms: readonly Arm[], snapshot: Snapshot): Map<string, PairedTotals> | null {
  const out = new Map<string, PairedTotals>();
  for (const a of arms) {
    const totals = snapshot.arms.get(a.name);
    if (totals?.covariate === undefined) return null;
    out.set(a.name, {
      units: totals.units,
      sum: totals.sum,
      sumSq: totals.sumSq,
      pairSum: totals.covariate.sum,
      pairSumSq: totals.covariate.sumSq,
      crossSum: totals.covariate.sumProduct,
    });
  }
  return out;
}

/**
 * A ratio metric's arm as the delta-method functions read it (y the numerator, x the denominator);
 * null when the arm's totals carry no denominator.
 */
function ratioTotals(totals: SnapshotTotals): PairedTotals | null {
  if (totals.denominator === undefined) return null;
  return {
    units: totals.units,
    sum: totals.sum,
    sumSq: totals.sumSq,
    pairSum: totals.denominator.sum,
    pairSumSq: totals.denominator.sumSq,
    crossSum: totals.denominator.sumProduct,
  };
}

/**
 * One arm of any kind described as `summarizeArm` does: for a ratio metric the mean is the ratio
 * R = Σn/Σd (null while Σd is 0 or the denominator is missing) and the variance the linearised
 * per-unit variance n·Var(R) = (s²_n − 2R·s_nd + R²·s²_d)/d̄² of the delta method (Deng, Knoblich &
 * Lu 2018, §3), null below 2 units: the per-unit variance the plan and τ² are tuned with, as a
 * mean's sample variance is.
 */
function summarizeMetric(kind: AnalysedKind, totals: SnapshotTotals): ArmSummary {
  if (kind !== "ratio") return summarizeArm(kind, totals);
  const paired = ratioTotals(totals);
  const arm = paired === null ? null : ratioArm(paired);
  if (arm !== null) return { units: arm.units, mean: arm.ratio, variance: arm.variance * arm.units };
  const den = totals.denominator?.sum ?? 0;
  const ratio = den !== 0 && Number.isFinite(totals.sum / den) ? totals.sum / den : null;
  return { units: totals.units, mean: ratio, variance: null };
}

/**
 * One look of the mSPRT on a ratio metric (`ratioSequentialTest`: the difference of ratios with the
 * delta-method variance), in the shape of `sequentialTest`'s result: each arm's summary from
 * {@link summarizeMetric}. An arm without a denominator (points stored before the metric became a
 * ratio) gives nulls and a warning, and carries the previous look, as any undefined look does.
 */
function ratioLook(
  control: SnapshotTotals,
  treatment: SnapshotTotals,
  options: { alpha: number; tau2: number },
  previous: SequentialCarry | null,
): SequentialResult {
  const c = ratioTotals(control);
  const t = ratioTotals(treatment);
  const summaries = { control: summarizeMetric("ratio", control), treatment: summarizeMetric("ratio", treatment) };
  if (c === null || t === null) {
    const missing = c === null ? "control" : "treatment";
    const look = sequentialTestOfEstimate(
      null,
      options,
      previous,
      `${missing} arm has no denominator totals (den_sum, den_sum_sq, num_den_sum): the ratio is undefined`,
    );
    return { ...look, ...summaries };
  }
  const { control: _c, treatment: _t, ...look } = ratioSequentialTest(c, t, options, previous);
  return { ...look, ...summaries };
}

/** The fixed-horizon p-value of one comparison, for information: on the difference of ratios for a ratio. */
function fixedPValue(kind: AnalysedKind, control: SnapshotTotals, treatment: SnapshotTotals, alpha: number) {
  if (kind !== "ratio") return fixedHorizonTest(kind, control, treatment, alpha).pValue;
  const c = ratioTotals(control);
  const t = ratioTotals(treatment);
  const estimate = c === null || t === null ? null : ratioEstimate(c, t);
  return fixedHorizonTestOfEstimate(estimate, alpha).pValue;
}

/** One look of the always-valid test of a metric of any kind (the unadjusted one; CUPED apart). */
function metricLook(
  kind: AnalysedKind,
  control: SnapshotTotals,
  treatment: SnapshotTotals,
  options: { alpha: number; tau2: number },
  previous: SequentialCarry | null,
): SequentialResult {
  return kind === "ratio"
    ? ratioLook(control, treatment, options, previous)
    : sequentialTest(control, treatment, { kind, ...options }, previous);
}

/**
 * Fix the experiment's statistical plan from the outcome's `experiment_defaults`
 * and the control arm's first snapshot (baseline and variance, unless the signal
 * declares a `baseline`). τ² comes from `mixture_variance` when given, otherwise
 * from the planned sample (the sample at which the always-valid test reaches the
 * requested power for `expected_effect`), otherwise from ten times
 * `min_sample_per_arm` (then no futility stop). Null when the control arm has no
 * usable variance yet. For a ratio metric the baseline is the control's ratio
 * R = Σn/Σd and the variance the delta method's linearised per-unit variance
 * n·Var(R), planned as a mean's (so Var(Rₜ − R꜀) ≈ 2·n·Var(R)/n per arm).
 */
export function makeStatsPlan(spec: OutcomeSpec, control: SnapshotTotals): StatsPlan | null {
  const d = spec.experiment_defaults ?? {};
  const kind = spec.signal.kind;
  const alpha = d.alpha ?? DEFAULT_ALPHA;
  const power = d.power ?? DEFAULT_POWER;
  let baseline: number;
  let variance: number;
  if (kind === "proportion") {
    // A shrunk estimate so a first snapshot with no conversion still gives a positive variance; none
    // before the control has units (the plan is not fixed on a made-up rate of 0.5).
    const observed = control.units > 0 ? (control.sum + 0.5) / (control.units + 1) : null;
    const declared = spec.signal.baseline;
    // A declared baseline of 0 or 1 has no variance to plan with; the observed rate has.
    const rate = declared !== undefined && declared > 0 && declared < 1 ? declared : observed;
    if (rate === null) return null;
    baseline = declared ?? rate;
    variance = rate * (1 - rate);
  } else {
    const summary = summarizeMetric(kind, control);
    if (summary.mean === null || summary.variance === null || !(summary.variance > 0)) return null;
    baseline = spec.signal.baseline ?? summary.mean;
    variance = summary.variance;
  }
  if (!(variance > 0)) return null;
  const expected = d.expected_effect ?? null;
  const mde = expected === null ? null : Math.abs(expected * baseline);
  let plan: ReturnType<typeof planSample> | null = null;
  if (mde !== null && mde > 0) {
    try {
      plan = planSample({ kind: kind === "ratio" ? "mean" : kind, alpha, power, baseline, variance, mde });
    } catch (error) {
      // A design planSample does not size (power below 0.5, a proportion baseline of 0 or 1) falls back
      // to the default tuning below: a plan that throws would stop every analysis, the kill-switch included.
      if (!(error instanceof RangeError)) throw error;
    }
  }
  const minSample = d.min_sample_per_arm ?? 1000;
  if (d.mixture_variance !== undefined) {
    return {
      tau2: d.mixture_variance,
      tau2Source: "mixture_variance in outcome.yaml",
      alpha,
      power,
      mde,
      fixedPerArm: plan?.fixedPerArm ?? null,
      sequentialPerArm: plan?.sequentialPerArm ?? null,
      baseline,
      variance,
    };
  }
  if (plan !== null && mde !== null) {
    return {
      tau2: plan.tau2,
      tau2Source: `tuned to the planned sample of ${Math.ceil(plan.sequentialPerArm)} units per arm (expected effect ${expected} relative, power ${power})`,
      alpha,
      power,
      mde,
      fixedPerArm: plan.fixedPerArm,
      sequentialPerArm: plan.sequentialPerArm,
      baseline,
      variance,
    };
  }
  const planned = 10 * minSample;
  return {
    tau2: mixtureVarianceForSample({ alpha, sigma2: variance, plannedUnitsPerArm: planned }),
    tau2Source: `tuned to ${planned} units per arm (ten times min_sample_per_arm; no expected_effect given)`,
    alpha,
    power,
    mde: null,
    fixedPerArm: null,
    sequentialPerArm: null,
    baseline,
    variance,
  };
}

function severity(d: PolicyDecision): number {
  return d.action === "pause" ? 2 : d.action === "analyse" ? 1 : 0;
}

function round(x: number | null): number | null {
  return x === null ? null : Number(x.toPrecision(12));
}

/**
 * The planned sample per arm for a look: the plan's (sized on the unadjusted
 * variance) times `1 − variance reduction` when the look is CUPED-adjusted,
 * since the adjusted estimator reaches the planned power with that fraction of
 * the units (its variance is that fraction; Deng et al. 2013 §3). Futility is
 * then judged at the sample the adjusted test needs, not the unadjusted one.
 * Null without a plan.
 */
function cupedPlanned(planned: number | null, look: PrimaryLook | undefined): number | null {
  const reduction = look?.cuped?.varianceReduction ?? null;
  if (planned === null || reduction === null || !(reduction > 0 && reduction < 1)) return planned;
  return planned * (1 - reduction);
}

/** One look of the primary metric's test; `cuped` when it is the CUPED-adjusted one. */
type PrimaryLook = SequentialResult & { cuped?: { theta: number | null; varianceReduction: number | null } };

function describeComparison(arm: string, r: PrimaryLook, fixedP: number | null) {
  return {
    arm,
    effect: round(r.effect),
    ci: r.ci,
    relativeLift: round(r.relativeLift),
    relativeCi: r.relativeCi,
    pValue: r.pValue,
    logLambda: r.logLambda,
    fixedPValue: fixedP,
    ...(r.cuped === undefined ? {} : { cuped: r.cuped }),
    warnings: r.warnings,
  };
}

/**
 * The per-unit variance a guardrail's or a secondary metric's τ² is tuned to,
 * from control at the metric's first look: p(1 − p) with p smoothed by
 * (conversions + ½)/(units + 1) for a proportion (never 0), the sample
 * variance for a mean, the linearised per-unit variance for a ratio (0 while
 * undefined: not tuned yet).
 */
function tuningVariance(kind: AnalysedKind, control: SnapshotTotals): number {
  if (kind === "proportion") {
    const p = (control.sum + 0.5) / (control.units + 1);
    return p * (1 - p);
  }
  return summarizeMetric(kind, control).variance ?? 0;
}

/** The control arm's name: `control`, else the first arm. */
function controlArm(arms: readonly Arm[]): string {
  return arms.find((a) => a.name === "control")?.name ?? arms[0]?.name ?? "control";
}

/**
 * How strongly an experiment's newest totals point to harm, to order work by
 * (a batched poll stores the most suspect experiments first, so a kill-switch
 * pause does not wait for the rest of the round); never a decision. The
 * largest, over the metrics given and the treatment arms, of Welch's statistic
 * for the difference in per-unit means in the harmful direction:
 * ±(m_t − m_c) / √(v_t/n_t + v_c/n_c), with m = Σx/n and v = Σx²/n − m² from
 * the cumulative totals (for a ratio metric, its numerator per unit). 0 when no
 * treatment can be compared (an arm missing, under 2 units, no variance).
 *
 * @param metrics each metric's totals by arm name, and the direction that is
 *   harmful (against the target's direction for the signal, against a
 *   guardrail's own direction).
 */
export function harmEvidence(
  arms: readonly Arm[],
  metrics: readonly { readonly harmful: "increase" | "decrease"; readonly totals: ReadonlyMap<string, ArmTotals> }[],
): number {
  const controlName = controlArm(arms);
  const moments = (t: ArmTotals | undefined) => {
    if (t === undefined || t.units < 2) return null;
    const mean = t.sum / t.units;
    return { n: t.units, mean, variance: Math.max(t.sumSq / t.units - mean * mean, 0) };
  };
  let strongest = 0;
  for (const { harmful, totals } of metrics) {
    const control = moments(totals.get(controlName));
    if (control === null) continue;
    for (const arm of arms) {
      if (arm.name === controlName) continue;
      const treatment = moments(totals.get(arm.name));
      if (treatment === null) continue;
      const se = Math.sqrt(treatment.variance / treatment.n + control.variance / control.n);
      if (!(se > 0)) continue;
      const z = ((harmful === "increase" ? 1 : -1) * (treatment.mean - control.mean)) / se;
      if (Number.isFinite(z) && z > strongest) strongest = z;
    }
  }
  return strongest;
}

/** The control's totals when every arm has reported in the snapshot (null until then: nothing to compare). */
export function completeControl(arms: readonly Arm[], snapshot: Snapshot): SnapshotTotals | null {
  const controlName = controlArm(arms);
  const control = snapshot.arms.get(controlName);
  if (control === undefined) return null;
  return arms.every((a) => a.name === controlName || snapshot.arms.has(a.name)) ? control : null;
}

/** A carry before any analysis. */
export const EMPTY_CARRY: AnalysisCarry = { arms: {}, srm: null, guardrails: {} };

export interface SnapshotInput {
  readonly spec: OutcomeSpec;
  /** The experiment's arms and weights, control among them. */
  readonly arms: readonly Arm[];
  /** A snapshot in which every arm has reported (`completeControl` is not null). */
  readonly snapshot: Snapshot;
  /** Per guardrail metric with a series: its newest totals per arm at or before the snapshot. */
  readonly guardrailTotals: ReadonlyMap<string, ReadonlyMap<string, ArmTotals>>;
  /** Per secondary metric with a series: likewise, a ratio's with its denominator (absent: none). */
  readonly secondaryTotals?: ReadonlyMap<string, ReadonlyMap<string, SnapshotTotals>>;
  readonly plan: StatsPlan;
  /** The previous analysis's carry (`EMPTY_CARRY` before the first). */
  readonly carry: AnalysisCarry;
  /** When the experiment's clock started: the earlier of its launch and its first point. */
  readonly startedAt: Date;
}

/** The figures of the first treatment arm, shown with a decision (audit event, webhook). */
interface HeadFigures {
  readonly effect: number | null;
  readonly ci: readonly [number, number] | null;
  readonly relativeLift: number | null;
  readonly pValue: number | null;
}

export interface SnapshotAnalysis {
  /** The `analyses` row, less its workspace, experiment and ts. */
  readonly row: Omit<NewAnalysis, "workspaceId" | "experimentId" | "ts">;
  /** The policy's answer: the most severe over the treatment arms (pause over analyse over continue). */
  readonly decision: PolicyDecision;
  readonly head: HeadFigures;
  /** What the next snapshot's analysis continues from. */
  readonly carry: AnalysisCarry;
}

/**
 * Analyse one complete snapshot: per treatment arm the sequential and
 * fixed-horizon tests against control, the SRM tests over all arms, each
 * guardrail's test (its τ² fixed when first seen, from the control's variance
 * and the planned sample), then the decision policy with the decision rules'
 * counts (failed and inconclusive analyses, reset after a decision).
 *
 * @throws Error when the snapshot is not complete (check with `completeControl`).
 */
export function analyseSnapshot(input: SnapshotInput): SnapshotAnalysis {
  const { spec, arms, snapshot: snap, plan, carry, startedAt } = input;
  const d = spec.experiment_defaults ?? {};
  const controlName = controlArm(arms);
  const treatments = arms.filter((a) => a.name !== controlName).map((a) => a.name);
  const weights = arms.map((a) => a.weight);
  const kind = spec.signal.kind;
  const alpha = d.alpha ?? DEFAULT_ALPHA;
  const kill = spec.constraints?.kill
    ? {
        maxHarm: spec.constraints.kill.max_harm,
        relative: spec.constraints.kill.relative ?? true,
        failureLimit: spec.constraints.kill.failure_limit ?? DEFAULT_FAILURE_LIMIT,
      }
    : null;
  // Specs stored before the decision rules existed have none of these fields: Argo's defaults apply.
  const inconclusiveLimit = d.decision_rules?.inconclusive_limit ?? DEFAULT_INCONCLUSIVE_LIMIT;
  const control = completeControl(arms, snap);
  if (control === null) throw new Error(`snapshot ${snap.ts.toISOString()} lacks an arm`);

  const comparisons: AnalysisComparison[] = [];
  const decisions: PolicyDecision[] = [];
  const nextArms: Record<string, SequentialCarry> = { ...carry.arms };
  const units = arms.map((a) => snap.arms.get(a.name)?.units ?? 0);
  const srm = srmChiSquare(units, weights);
  const srmSeq = sequentialSrm(units, weights, carry.srm);
  const elapsedSeconds = Math.max(0, (snap.ts.getTime() - startedAt.getTime()) / 1000);

  // Guardrails: each one's newest snapshot at or before this one.
  const guardrailResults: {
    metric: string;
    arm: string;
    result: GuardrailResult;
    margin: number;
    relative: boolean;
    failureLimit: number;
    dryRun: boolean;
  }[] = [];
  const nextGuardrails: AnalysisCarry["guardrails"] = { ...carry.guardrails };
  for (const g of spec.constraints?.guardrails ?? []) {
    const totals = input.guardrailTotals.get(g.metric);
    if (totals === undefined) continue;
    const gControl = totals.get(controlName);
    if (gControl === undefined) continue;
    let state = nextGuardrails[g.metric];
    if (state === undefined) {
      const sigma2 = tuningVariance(g.kind, gControl);
      if (!(sigma2 > 0)) continue;
      const planned = plan.sequentialPerArm ?? 10 * (d.min_sample_per_arm ?? 1000);
      state = { tau2: mixtureVarianceForSample({ alpha, sigma2, plannedUnitsPerArm: planned }), arms: {} };
    }
    const armsCarry = { ...state.arms };
    for (const t of treatments) {
      const gTreatment = totals.get(t);
      if (gTreatment === undefined) continue;
      const result = guardrailTest(
        gControl,
        gTreatment,
        {
          kind: g.kind,
          alpha,
          tau2: state.tau2,
          direction: g.direction,
          margin: g.max_regression,
          relative: g.relative ?? true,
        },
        armsCarry[t] ?? null,
      );
      if (result.carry !== null) armsCarry[t] = result.carry;
      guardrailResults.push({
        metric: g.metric,
        arm: t,
        result,
        margin: g.max_regression,
        relative: g.relative ?? true,
        failureLimit: g.failure_limit ?? DEFAULT_FAILURE_LIMIT,
        dryRun: g.dry_run ?? false,
      });
    }
    nextGuardrails[g.metric] = { tau2: state.tau2, arms: armsCarry };
  }

  // With k treatments, each confidence sequence is at α/k and wins and losses are declared on Holm's
  // adjustment of the always-valid p-values (Holm 1979), so the family-wise error stays ≤ α; the
  // kill-switch reads each treatment's own sequence at the full α (a false pause is the safe error).
  // When every arm's source gives the pre-exposure covariate, the primary metric's looks (the kill-switch's
  // included) are CUPED-adjusted (Deng, Xu, Kohavi & Walker 2013), θ pooled over all arms; otherwise the
  // unadjusted test, as before. A ratio metric is compared on the difference of ratios with the delta
  // method's variance (Deng, Knoblich & Lu 2018), never CUPED-adjusted (its connectors refuse a covariate).
  const k = treatments.length;
  const paired = kind === "ratio" ? null : pairedTotals(arms, snap);
  const primaryLook = (
    treatment: SnapshotTotals,
    t: string,
    a: number,
    previous: SequentialCarry | null,
  ): PrimaryLook => {
    if (paired === null) return metricLook(kind, control, treatment, { alpha: a, tau2: plan.tau2 }, previous);
    const r = cupedSequentialTest(
      paired.get(controlName) as PairedTotals,
      paired.get(t) as PairedTotals,
      { alpha: a, tau2: plan.tau2 },
      previous,
      [...paired.values()],
    );
    const { theta, varianceReduction, ...look } = r;
    return {
      ...look,
      control: summarizeMetric(kind, control),
      treatment: summarizeMetric(kind, treatment),
      cuped: { theta: round(theta), varianceReduction: round(varianceReduction) },
    };
  };
  const nextKillArms: Record<string, SequentialCarry> = { ...(carry.killArms ?? {}) };
  const looks = treatments.map((t) => {
    const treatment = snap.arms.get(t) as SnapshotTotals;
    const r = primaryLook(treatment, t, alpha / k, carry.arms[t] ?? null);
    if (r.carry !== null) nextArms[t] = r.carry;
    const rKill = k > 1 ? primaryLook(treatment, t, alpha, carry.killArms?.[t] ?? null) : r;
    if (k > 1 && rKill.carry !== null) nextKillArms[t] = rKill.carry;
    return { t, treatment, r, rKill };
  });
  const adjusted = k > 1 ? holmAdjust(looks.map((l) => l.r.pValue)) : looks.map((l) => l.r.pValue);
  // The chi-square SRM test is information: checked at every poll it alarms falsely far more often
  // than its threshold promises, so only the sequential test stops (decide's step 4).
  const srmNote =
    srm.alarm && !srmSeq.alarm
      ? [
          `the chi-square SRM p-value ${Number((srm.pValue ?? 0).toPrecision(3))} is below ${SRM_THRESHOLD} at this look, but the sequential SRM test (always valid) is not alarmed: information only, no decision is held back`,
        ]
      : [];
  const relativeBySize = (r: SequentialResult): readonly [number, number] | null =>
    // Relative to the size of control's mean, as the guardrails measure it: divided by a negative
    // mean, a treatment better than control would read as harm.
    r.relativeCi !== null && r.control.mean !== null && r.control.mean < 0
      ? [-r.relativeCi[1], -r.relativeCi[0]]
      : r.relativeCi;

  // Secondary metrics: each treatment against control with the same always-valid test (two-sided, at
  // α/k like the primary metric), τ² fixed at the metric's first look as for a guardrail; they are
  // recorded in the analysis and never reach the decision policy.
  const secondary: AnalysisSecondary[] = [];
  const nextSecondary: NonNullable<AnalysisCarry["secondary"]> = { ...(carry.secondary ?? {}) };
  for (const m of spec.secondary_metrics ?? []) {
    const totals = input.secondaryTotals?.get(m.metric);
    const mControl = totals?.get(controlName);
    if (totals === undefined || mControl === undefined) continue;
    let state = nextSecondary[m.metric];
    if (state === undefined) {
      const sigma2 = tuningVariance(m.kind, mControl);
      if (!(sigma2 > 0)) continue;
      const planned = plan.sequentialPerArm ?? 10 * (d.min_sample_per_arm ?? 1000);
      state = { tau2: mixtureVarianceForSample({ alpha, sigma2, plannedUnitsPerArm: planned }), arms: {} };
    }
    const armsCarry = { ...state.arms };
    for (const t of treatments) {
      const mTreatment = totals.get(t);
      if (mTreatment === undefined) continue;
      const r = metricLook(m.kind, mControl, mTreatment, { alpha: alpha / k, tau2: state.tau2 }, armsCarry[t] ?? null);
      if (r.carry !== null) armsCarry[t] = r.carry;
      secondary.push({
        metric: m.metric,
        kind: m.kind,
        arm: t,
        direction: m.direction ?? "increase",
        effect: round(r.effect),
        ci: r.ci,
        relativeLift: round(r.relativeLift),
        relativeCi: r.relativeCi,
        pValue: r.pValue,
        warnings: r.warnings,
      });
    }
    nextSecondary[m.metric] = { tau2: state.tau2, arms: armsCarry };
  }

  const inputs: PolicyInput[] = [];
  for (const [i, { t, treatment, r, rKill }] of looks.entries()) {
    const comparison = describeComparison(t, r, fixedPValue(kind, control, treatment, alpha));
    comparisons.push({
      ...comparison,
      ...(k > 1 ? { adjustedPValue: adjusted[i] ?? null } : {}),
      warnings: [...comparison.warnings, ...srmNote],
    });
    inputs.push({
      units: { control: control.units, treatment: treatment.units },
      elapsedSeconds,
      minSamplePerArm: d.min_sample_per_arm ?? 1000,
      minDurationSeconds: (d as { min_duration?: number }).min_duration ?? 86_400,
      maxDurationSeconds: d.max_duration ?? 28 * 86_400,
      plannedPerArm: cupedPlanned(plan.sequentialPerArm, r),
      alpha,
      targetDirection: spec.target.direction,
      effect: r.effect,
      ci: r.ci,
      relativeCi: relativeBySize(r),
      pValue: adjusted[i] ?? null,
      ...(k > 1 ? { killInterval: { ci: rKill.ci, relativeCi: relativeBySize(rKill) } } : {}),
      // Nothing computed at this look (empty arm, zero variance, overflow): the interval is carried.
      lookUndefined: r.effect === null || r.variance === null || !(r.variance > 0),
      kill,
      srm: { alarm: srm.alarm, sequentialAlarm: srmSeq.alarm },
      guardrails: guardrailResults
        .filter((g) => g.arm === t)
        .map((g) => ({
          metric: g.metric,
          verdict: g.result.verdict,
          harmLow: g.result.harmCi?.[0] ?? null,
          margin: g.margin,
          relative: g.relative,
          failureLimit: g.failureLimit,
          dryRun: g.dryRun,
        })),
    });
  }
  // One measurement per analysis: a metric failed in it when it failed in any treatment arm.
  const counts = countMeasurement(countsFrom(carry.rules), combineMeasurements(inputs.map(measurementOf)));
  for (const input of inputs) decisions.push(decide({ ...input, rules: { counts, inconclusiveLimit } }));
  const decision = decisions.reduce(
    (worst, x) => (severity(x) > severity(worst) ? x : worst),
    decisions[0] as PolicyDecision,
  );
  const next: AnalysisCarry = {
    arms: nextArms,
    ...(k > 1 ? { killArms: nextKillArms } : {}),
    ...(Object.keys(nextSecondary).length > 0 ? { secondary: nextSecondary } : {}),
    srm: srmSeq.carry ?? carry.srm,
    guardrails: nextGuardrails,
    rules: decision.action === "continue" ? counts : NO_COUNTS,
  };
  const head = comparisons[0];
  return {
    row: {
      arms: Object.fromEntries(
        arms.map((a) => {
          // The totals the row keeps: the covariate is in the comparison's `cuped`, not in the arms; a
          // ratio's denominator is, beside the numerator's totals (its mean is the ratio).
          const stored: SnapshotTotals = snap.arms.get(a.name) ?? { units: 0, sum: 0, sumSq: 0 };
          const { units, sum, sumSq } = stored;
          const denominator = kind === "ratio" ? stored.denominator : undefined;
          return [
            a.name,
            {
              sum,
              sumSq,
              ...(denominator === undefined ? {} : { denominator: { ...denominator } }),
              // units, mean and variance (the summary's units are the totals' own).
              ...summarizeMetric(kind, kind === "ratio" ? stored : { units, sum, sumSq }),
            },
          ];
        }),
      ),
      effect: head?.effect ?? null,
      ciLow: head?.ci?.[0] ?? null,
      ciHigh: head?.ci?.[1] ?? null,
      relativeLift: head?.relativeLift ?? null,
      pValue: head === undefined ? null : (head.adjustedPValue ?? head.pValue),
      srmPValue: srm.pValue,
      guardrails: guardrailResults.map((g) => ({
        metric: g.metric,
        arm: g.arm,
        verdict: g.result.verdict,
        harm: g.result.harm,
        harmCi: g.result.harmCi,
        pValue: g.result.pValue,
        margin: g.margin,
        relative: g.relative,
        // A dry-run guardrail (or failure_limit −1) shows its verdict here and nowhere else.
        failureLimit: g.failureLimit,
        dryRun: g.dryRun,
        failedAnalyses: counts.guardrails[g.metric] ?? 0,
      })),
      decision,
      details: {
        comparisons,
        ...(secondary.length > 0 ? { secondary } : {}),
        srm: {
          pValue: srm.pValue,
          alarm: srm.alarm,
          sequentialPValue: srmSeq.pValue,
          sequentialAlarm: srmSeq.alarm,
        },
        elapsedSeconds,
        tau2: plan.tau2,
        tau2Source: plan.tau2Source,
        plannedPerArm: cupedPlanned(plan.sequentialPerArm, looks[0]?.r),
        ...(looks[0]?.r.cuped === undefined ? {} : { unadjustedPlannedPerArm: plan.sequentialPerArm }),
        fixedPerArm: plan.fixedPerArm,
        rules: {
          counts,
          killFailureLimit: kill?.failureLimit ?? null,
          inconclusiveLimit,
        },
        carry: next,
      },
    },
    decision,
    head: {
      effect: head?.effect ?? null,
      ci: head?.ci ?? null,
      relativeLift: head?.relativeLift ?? null,
      pValue: head === undefined ? null : (head.adjustedPValue ?? head.pValue),
    },
    carry: next,
  };
}
