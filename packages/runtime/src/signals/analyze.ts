/**
 * Analysis: run the sequential tests on every new snapshot of a running
 * experiment, record one `analyses` row per snapshot, and apply the decision
 * policy of `packages/core` (kill-switch, guardrails, SRM, win/loss, futility,
 * maximum duration), with the decision rules' limits (failure_limit, dry_run,
 * inconclusive_limit; counts kept in each row's carry, see decision-rules.ts).
 *
 * Exactly once in effect: the outcome row is share-locked and the experiment
 * row locked (`FOR NO KEY UPDATE`) for the whole analysis, analyses are keyed
 * by (experiment, ts), and a decision moves the experiment with a conditional
 * UPDATE from `running`, so a duplicated or re-run job finds nothing left to do.
 */
import {
  type AnalysisCarry,
  applyTransition,
  combineMeasurements,
  countMeasurement,
  countsFrom,
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  decide,
  type Experiment,
  experimentMachine,
  measurementOf,
  NO_COUNTS,
  type Outcome,
  type PolicyDecision,
  type PolicyInput,
  type StatsPlan,
} from "@outcome-runtime/core";
import { audit, experiments, outcomes, signals, type Trx } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import {
  type ArmTotals,
  fixedHorizonTest,
  type GuardrailResult,
  guardrailTest,
  mixtureVarianceForSample,
  planSample,
  type SequentialCarry,
  type SequentialResult,
  sequentialSrm,
  sequentialTest,
  srmChiSquare,
  summarizeArm,
} from "@outcome-runtime/stats";
import { auditActor, inTransaction, nowOf, type RuntimeDeps } from "../context";
import { ensurePendingGate } from "../open-gate";
import { specOf } from "../spec-of";
import { workerCaller } from "./poll";

/** Kept in each analysis row so the next snapshot continues the running minimum and intersections. */
export type { AnalysisCarry };

export interface AnalysisOutcome {
  /** The experiment's key (null when the experiment does not exist). */
  readonly experimentKey: string | null;
  /** Analyses written by this call (0 when there was nothing new). */
  readonly analysed: number;
  /** The policy's answer at each analysis written, oldest first (`continue` included): one per analysis. */
  readonly looks: readonly { readonly action: PolicyDecision["action"]; readonly reason: PolicyDecision["reason"] }[];
  /** The decision taken, if any (the experiment moved to `paused` or `analysing`). */
  readonly decision: (PolicyDecision & { ts: Date }) | null;
  /** Webhook outbox ids to deliver (after commit). */
  readonly webhooks: readonly string[];
  readonly state: string;
}

const DEFAULT_ALPHA = 0.05;
const DEFAULT_POWER = 0.8;

/** A per-arm snapshot: cumulative totals per arm name as of `ts`. */
type Snapshot = { ts: Date; arms: Map<string, ArmTotals> };

function snapshotsAfter(previous: Map<string, ArmTotals>, points: signals.StoredPoint[]): Snapshot[] {
  const state = new Map(previous);
  const byTs = new Map<number, signals.StoredPoint[]>();
  for (const p of points) {
    const key = p.ts.getTime();
    const list = byTs.get(key) ?? [];
    list.push(p);
    byTs.set(key, list);
  }
  const out: Snapshot[] = [];
  for (const key of [...byTs.keys()].sort((a, b) => a - b)) {
    for (const p of byTs.get(key) ?? []) state.set(p.arm, { units: p.units, sum: p.sum, sum_sq: p.sum_sq });
    out.push({ ts: new Date(key), arms: new Map(state) });
  }
  return out;
}

function totalsOf(points: signals.StoredPoint[]): Map<string, ArmTotals> {
  return new Map(points.map((p) => [p.arm, { units: p.units, sum: p.sum, sum_sq: p.sum_sq }]));
}

/**
 * Fix the experiment's statistical plan from the outcome's `experiment_defaults`
 * and the control arm's first snapshot (baseline and variance, unless the signal
 * declares a `baseline`). τ² comes from `mixture_variance` when given, otherwise
 * from the planned sample (the sample at which the always-valid test reaches the
 * requested power for `expected_effect`), otherwise from ten times
 * `min_sample_per_arm` (then no futility stop). Null when the control arm has no
 * usable variance yet.
 */
export function makeStatsPlan(spec: OutcomeSpec, control: ArmTotals): StatsPlan | null {
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
    const summary = summarizeArm(kind, control);
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
      plan = planSample({ kind, alpha, power, baseline, variance, mde });
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
      fixedPerArm: plan?.fixed_per_arm ?? null,
      sequentialPerArm: plan?.sequential_per_arm ?? null,
      baseline,
      variance,
    };
  }
  if (plan !== null && mde !== null) {
    return {
      tau2: plan.tau2,
      tau2Source: `tuned to the planned sample of ${Math.ceil(plan.sequential_per_arm)} units per arm (expected effect ${expected} relative, power ${power})`,
      alpha,
      power,
      mde,
      fixedPerArm: plan.fixed_per_arm,
      sequentialPerArm: plan.sequential_per_arm,
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

function describeComparison(arm: string, r: SequentialResult, fixedP: number | null) {
  return {
    arm,
    effect: round(r.effect),
    ci: r.ci,
    relative_lift: round(r.relative_lift),
    relative_ci: r.relative_ci,
    p_value: r.p_value,
    log_lambda: r.log_lambda,
    fixed_p_value: fixedP,
    warnings: r.warnings,
  };
}

/**
 * Analyse every snapshot of a running experiment newer than its last analysis.
 * Stops at the first snapshot that leads to a decision, moves the experiment
 * (`pause`: kill-switch or guardrail; `analyse`: opens the analysis_review gate
 * with `{ action, reason }`), writes the audit event (actor `worker`) and a
 * webhook to the outbox, all in one transaction.
 */
export async function analyzeExperiment(deps: RuntimeDeps, experimentId: string): Promise<AnalysisOutcome> {
  return inTransaction(deps.db, async (trx) => {
    const found = await experiments.findExperimentById(trx, experimentId);
    if (found === null) return nothingAnalysed(null, "missing");
    // The outcome first, then the experiment: the order of a gate decision and of an outcome's
    // wind-down, so a decision here and an abandon there apply one after the other, never interleaved.
    const outcome = await outcomes.findOutcome(trx, found.workspaceId, found.outcomeId, { forShare: true });
    const experiment = await experiments.findExperimentById(trx, experimentId, { forUpdate: true });
    if (experiment === null) return nothingAnalysed(found.key, "missing");
    if (experiment.state !== "running" || outcome === null) return nothingAnalysed(experiment.key, experiment.state);
    return analyseLocked(deps, trx, experiment, outcome);
  });
}

async function analyseLocked(
  deps: RuntimeDeps,
  trx: Trx,
  experiment: Experiment,
  outcome: NonNullable<Awaited<ReturnType<typeof outcomes.findOutcome>>>,
): Promise<AnalysisOutcome> {
  const spec = specOf(outcome);
  const d = spec.experiment_defaults ?? {};
  // Read, not created: a series holds points only once a poll has created it. An insert here would wait
  // for a poll that has updated the series and waits in turn for this experiment's row (a deadlock).
  const seriesByMetric = new Map<string, signals.SeriesRecord>(
    (await signals.listSeriesOfExperiment(trx, experiment.id)).map((s) => [`${s.role}:${s.metric}`, s]),
  );
  const primary = seriesByMetric.get(`primary:${spec.signal.metric}`);
  if (primary === undefined) return nothingAnalysed(experiment.key, experiment.state);
  const last = await signals.latestAnalysis(trx, experiment.id);
  const lastTs = last?.ts ?? null;
  const previousTotals =
    lastTs === null ? new Map() : totalsOf(await signals.latestPointsAtOrBefore(trx, primary.id, lastTs));
  const snapshots = snapshotsAfter(previousTotals, await signals.listPoints(trx, primary.id, lastTs));
  if (snapshots.length === 0) return nothingAnalysed(experiment.key, experiment.state);

  const controlName = experiment.arms.find((a) => a.name === "control")?.name ?? experiment.arms[0]?.name ?? "control";
  const treatments = experiment.arms.filter((a) => a.name !== controlName).map((a) => a.name);
  const weights = experiment.arms.map((a) => a.weight);
  const kind = spec.signal.kind;
  const alpha = d.alpha ?? DEFAULT_ALPHA;
  const firstTs = await signals.firstPointTs(trx, primary.id);
  const startedAt = new Date(
    Math.min(
      experiment.launchedAt?.getTime() ?? Number.POSITIVE_INFINITY,
      firstTs?.getTime() ?? Number.POSITIVE_INFINITY,
    ),
  );
  const kill = spec.constraints?.kill
    ? {
        maxHarm: spec.constraints.kill.max_harm,
        relative: spec.constraints.kill.relative ?? true,
        failureLimit: spec.constraints.kill.failure_limit ?? DEFAULT_FAILURE_LIMIT,
      }
    : null;
  // Specs stored before the decision rules existed have none of these fields: Argo's defaults apply.
  const inconclusiveLimit = d.decision_rules?.inconclusive_limit ?? DEFAULT_INCONCLUSIVE_LIMIT;
  const guardrailSpecs = spec.constraints?.guardrails ?? [];

  let plan = experiment.statsPlan;
  let carry: AnalysisCarry = last?.details.carry ?? {
    arms: {},
    srm: null,
    guardrails: {},
  };
  let analysed = 0;
  const looks: { action: PolicyDecision["action"]; reason: PolicyDecision["reason"] }[] = [];

  for (const snap of snapshots) {
    const control = snap.arms.get(controlName);
    if (control === undefined || treatments.some((t) => !snap.arms.has(t))) continue;
    if (plan === null) {
      const made = makeStatsPlan(spec, control);
      if (made === null) continue;
      plan = (await signals.setStatsPlanOnce(trx, experiment.id, made)) as StatsPlan;
    }
    const comparisons: ReturnType<typeof describeComparison>[] = [];
    const decisions: PolicyDecision[] = [];
    const nextArms: Record<string, SequentialCarry> = { ...carry.arms };
    const units = experiment.arms.map((a) => snap.arms.get(a.name)?.units ?? 0);
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
    for (const g of guardrailSpecs) {
      const series = seriesByMetric.get(`guardrail:${g.metric}`);
      if (series === undefined) continue;
      const totals = totalsOf(await signals.latestPointsAtOrBefore(trx, series.id, snap.ts));
      const gControl = totals.get(controlName);
      if (gControl === undefined) continue;
      let state = nextGuardrails[g.metric];
      if (state === undefined) {
        const summary = summarizeArm(g.kind, gControl);
        const sigma2 =
          g.kind === "proportion"
            ? (() => {
                const p = (gControl.sum + 0.5) / (gControl.units + 1);
                return p * (1 - p);
              })()
            : (summary.variance ?? 0);
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

    const inputs: PolicyInput[] = [];
    for (const t of treatments) {
      const treatment = snap.arms.get(t) as ArmTotals;
      const r = sequentialTest(control, treatment, { kind, alpha, tau2: plan.tau2 }, carry.arms[t] ?? null);
      if (r.carry !== null) nextArms[t] = r.carry;
      const fixed = fixedHorizonTest(kind, control, treatment, alpha);
      comparisons.push(describeComparison(t, r, fixed.p_value));
      inputs.push({
        units: { control: control.units, treatment: treatment.units },
        elapsedSeconds,
        minSamplePerArm: d.min_sample_per_arm ?? 1000,
        minDurationSeconds: (d as { min_duration?: number }).min_duration ?? 86_400,
        maxDurationSeconds: d.max_duration ?? 28 * 86_400,
        plannedPerArm: plan.sequentialPerArm,
        alpha,
        targetDirection: spec.target.direction,
        effect: r.effect,
        ci: r.ci,
        // Relative to the size of control's mean, as the guardrails measure it: divided by a negative
        // mean, a treatment better than control would read as harm.
        relativeCi:
          r.relative_ci !== null && r.control.mean !== null && r.control.mean < 0
            ? [-r.relative_ci[1], -r.relative_ci[0]]
            : r.relative_ci,
        pValue: r.p_value,
        // Nothing computed at this look (empty arm, zero variance, overflow): the interval is carried.
        lookUndefined: r.effect === null || r.variance === null || !(r.variance > 0),
        kill,
        srm: { alarm: srm.alarm, sequentialAlarm: srmSeq.alarm },
        guardrails: guardrailResults
          .filter((g) => g.arm === t)
          .map((g) => ({
            metric: g.metric,
            verdict: g.result.verdict,
            harmLow: g.result.harm_ci?.[0] ?? null,
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
    carry = {
      arms: nextArms,
      srm: srmSeq.carry ?? carry.srm,
      guardrails: nextGuardrails,
      rules: decision.action === "continue" ? counts : NO_COUNTS,
    };
    const head = comparisons[0];
    const inserted = await signals.insertAnalysis(trx, {
      workspaceId: experiment.workspaceId,
      experimentId: experiment.id,
      ts: snap.ts,
      arms: Object.fromEntries(
        experiment.arms.map((a) => {
          const totals = snap.arms.get(a.name) ?? { units: 0, sum: 0, sum_sq: 0 };
          return [a.name, { ...totals, ...summarizeArm(kind, totals) }];
        }),
      ),
      effect: head?.effect ?? null,
      ciLow: head?.ci?.[0] ?? null,
      ciHigh: head?.ci?.[1] ?? null,
      relativeEffect: head?.relative_lift ?? null,
      pValue: head?.p_value ?? null,
      srmPValue: srm.p_value,
      guardrails: guardrailResults.map((g) => ({
        metric: g.metric,
        arm: g.arm,
        verdict: g.result.verdict,
        harm: g.result.harm,
        harm_ci: g.result.harm_ci,
        p_value: g.result.p_value,
        margin: g.margin,
        relative: g.relative,
        // A dry-run guardrail (or failure_limit −1) shows its verdict here and nowhere else.
        failure_limit: g.failureLimit,
        dry_run: g.dryRun,
        failed_analyses: counts.guardrails[g.metric] ?? 0,
      })),
      decision,
      details: {
        comparisons,
        srm: {
          p_value: srm.p_value,
          alarm: srm.alarm,
          sequential_p_value: srmSeq.p_value,
          sequential_alarm: srmSeq.alarm,
        },
        elapsed_seconds: elapsedSeconds,
        tau2: plan.tau2,
        tau2_source: plan.tau2Source,
        planned_per_arm: plan.sequentialPerArm,
        fixed_per_arm: plan.fixedPerArm,
        rules: {
          counts,
          kill_failure_limit: kill?.failureLimit ?? null,
          inconclusive_limit: inconclusiveLimit,
        },
        carry,
      },
    });
    if (!inserted) continue;
    analysed += 1;
    looks.push({ action: decision.action, reason: decision.reason });
    if (decision.action === "continue") continue;

    const applied = await applyDecision(deps, trx, experiment, outcome, decision, snap.ts, {
      effect: head?.effect ?? null,
      ci: head?.ci ?? null,
      relative_lift: head?.relative_lift ?? null,
      p_value: head?.p_value ?? null,
    });
    return {
      experimentKey: experiment.key,
      analysed,
      looks,
      decision: { ...decision, ts: snap.ts },
      webhooks: [applied.webhookId],
      state: applied.state,
    };
  }
  return { experimentKey: experiment.key, analysed, looks, decision: null, webhooks: [], state: experiment.state };
}

function nothingAnalysed(experimentKey: string | null, state: string): AnalysisOutcome {
  return { experimentKey, analysed: 0, looks: [], decision: null, webhooks: [], state };
}

/**
 * Apply a decision to a running experiment locked by the caller's transaction:
 * move it (`pause` → paused, `analyse` → analysing) with a conditional UPDATE
 * from `running`, write the audit event (actor `worker`), open the
 * analysis_review gate with `{ action, reason, detail }` and put the webhook in
 * the outbox. The one path of every automatic decision: the kill-switch, the
 * guardrails, the other policy stops and the consecutive-error escalation.
 *
 * @param ts the analysis (or failed poll) the decision is about; it names the webhook's dedupe key
 * @param facts figures shown in the audit event and the webhook
 * @throws Error when the experiment is not `running` (the caller holds its row lock and checked)
 */
export async function applyDecision(
  deps: RuntimeDeps,
  trx: Trx,
  experiment: Experiment,
  outcome: Outcome,
  decision: PolicyDecision,
  ts: Date,
  facts: Record<string, unknown>,
): Promise<{ state: string; webhookId: string }> {
  const at = nowOf(deps);
  const caller = workerCaller(experiment.workspaceId);
  const action = decision.action === "pause" ? "pause" : "analyse";
  const move = applyTransition(experimentMachine, experiment.state, action, { actor: caller.principal });
  const updated = await experiments.updateExperimentState(trx, experiment.id, move.from, move.to, { at });
  if (updated === null) throw new Error(`experiment ${experiment.id} changed state under a row lock`);
  const summary = {
    state: move.to,
    action: decision.action,
    reason: decision.reason,
    detail: decision.detail,
    analysis_ts: ts.toISOString(),
    ...facts,
  };
  await audit.insertAuditEvent(trx, {
    workspaceId: experiment.workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: move.events[0] ?? `experiment.${action}`,
    subjectType: "experiment",
    subjectId: experiment.id,
    before: { state: move.from },
    after: summary,
    requestId: null,
  });
  // A stop (win, loss, futility, SRM, maximum duration, inconclusive) asks for ship / iterate / extend /
  // roll back; a pause (kill-switch, guardrail harm, errors) for resume / roll back.
  await ensurePendingGate(trx, caller, outcome, "analysis_review", experiment.id, at, {
    action: decision.action,
    reason: decision.reason,
    detail: decision.detail,
    analysis_ts: ts.toISOString(),
  });
  const webhookId = await signals.enqueueWebhook(trx, {
    workspaceId: experiment.workspaceId,
    eventType: `experiment.${move.to}`,
    dedupeKey: `experiment.${move.to}:${experiment.id}:${ts.toISOString()}`,
    payload: {
      type: `experiment.${move.to}`,
      created_at: at.toISOString(),
      data: {
        experiment: { id: experiment.id, key: experiment.key, outcome: outcome.slug, state: move.to },
        ...summary,
      },
    },
  });
  return { state: move.to, webhookId };
}
