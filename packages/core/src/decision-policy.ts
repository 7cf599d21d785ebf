/**
 * The decision policy: what the runtime does with one analysis of a running
 * experiment. Pure: the statistics are computed elsewhere (packages/stats) and
 * handed in as numbers; this module only decides.
 *
 * Order of precedence (harm always wins):
 *  1. Warming up: before `min_sample_per_arm` units in every arm and
 *     `min_duration` since the start, nothing is decided, not even a pause, so
 *     early noise never pauses or ships anything.
 *  2. Kill-switch: the always-valid confidence sequence shows the treatment
 *     worse than control by more than the kill threshold → pause.
 *  3. Guardrail: a guardrail's one-sided sequential test shows a regression
 *     beyond its tolerance → pause. No later check can override 2 or 3.
 *  4. Sample ratio mismatch (chi-square or sequential) → analysis review; no
 *     effect is declared while SRM is alarmed.
 *  5. Significant effect (always-valid p < α): on the side of the target's
 *     direction (the side of the confidence sequence) a win, against it a
 *     loss → analysis review.
 *  6. Futility: the planned sample per arm reached without an effect → review.
 *  7. Maximum duration reached → review.
 *  8. Otherwise continue.
 */

/** `pause` stops traffic (kill-switch, guardrail); `analyse` opens an analysis_review gate. */
export type PolicyAction = "continue" | "pause" | "analyse";

export const POLICY_REASONS = [
  "warming_up",
  "no_data",
  "kill",
  "guardrail",
  "srm",
  "win",
  "loss",
  "futility",
  "max_duration",
  "running",
] as const;
export type PolicyReason = (typeof POLICY_REASONS)[number];

export interface PolicyDecision {
  readonly action: PolicyAction;
  readonly reason: PolicyReason;
  /** One sentence a person can read in the audit log, the gate and the webhook. */
  readonly detail: string;
}

export interface GuardrailVerdictInput {
  readonly metric: string;
  readonly verdict: "violated" | "ok" | "inconclusive";
  /** Lower bound of the harm (tolerance units), for the message; null when undefined. */
  readonly harmLow?: number | null;
  readonly margin: number;
  readonly relative: boolean;
}

export interface PolicyInput {
  /** Units so far in control and treatment. */
  readonly units: { readonly control: number; readonly treatment: number };
  /** Seconds since the experiment started (as of the analysed snapshot). */
  readonly elapsedSeconds: number;
  readonly minSamplePerArm: number;
  readonly minDurationSeconds: number;
  readonly maxDurationSeconds: number;
  /** Planned units per arm (the always-valid test's sample for the requested power); null: no futility stop. */
  readonly plannedPerArm: number | null;
  readonly alpha: number;
  /** The direction the outcome wants the primary metric to move. */
  readonly targetDirection: "increase" | "decrease";
  /** Primary metric: treatment − control (absolute), its always-valid CI, relative CI, always-valid p. Nulls when undefined. */
  readonly effect: number | null;
  readonly ci: readonly [number, number] | null;
  readonly relativeCi: readonly [number, number] | null;
  readonly pValue: number | null;
  /** Kill threshold (a fraction, > 0) and whether it is relative to control; null: no kill-switch. */
  readonly kill: { readonly maxHarm: number; readonly relative: boolean } | null;
  readonly srm: { readonly alarm: boolean; readonly sequentialAlarm: boolean };
  readonly guardrails: readonly GuardrailVerdictInput[];
}

function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x);
}

/**
 * Lower bound of the harm shown by an interval on treatment − control: harm is
 * a move against `direction`. For `increase`, harm = control − treatment, so its
 * lower bound is `−ci.high`; for `decrease`, harm = treatment − control and its
 * lower bound is `ci.low`.
 */
export function harmLowerBound(ci: readonly [number, number], direction: "increase" | "decrease"): number {
  return direction === "increase" ? -ci[1] : ci[0];
}

/**
 * Decide what to do after one analysis. Pure and total: every input gives a
 * decision; undefined statistics (nulls) never trigger a stop.
 */
export function decide(input: PolicyInput): PolicyDecision {
  const minUnits = Math.min(input.units.control, input.units.treatment);
  if (minUnits <= 0) {
    return { action: "continue", reason: "no_data", detail: "no units in at least one arm yet" };
  }
  if (minUnits < input.minSamplePerArm || input.elapsedSeconds < input.minDurationSeconds) {
    return {
      action: "continue",
      reason: "warming_up",
      detail: `warming up: ${minUnits} of ${input.minSamplePerArm} units in the smaller arm, ${fmt(input.elapsedSeconds / 86400)} of ${fmt(input.minDurationSeconds / 86400)} days`,
    };
  }

  if (input.kill !== null) {
    const interval = input.kill.relative ? input.relativeCi : input.ci;
    if (interval !== null) {
      const harm = harmLowerBound(interval, input.targetDirection);
      if (harm > input.kill.maxHarm) {
        const unit = input.kill.relative ? " (relative to control)" : "";
        return {
          action: "pause",
          reason: "kill",
          detail: `kill-switch: the treatment is worse than control by at least ${fmt(harm)}${unit}, beyond the kill threshold ${fmt(input.kill.maxHarm)}`,
        };
      }
    }
  }

  const violated = input.guardrails.find((g) => g.verdict === "violated");
  if (violated !== undefined) {
    const shown =
      violated.harmLow === null || violated.harmLow === undefined ? "" : ` by at least ${fmt(violated.harmLow)}`;
    return {
      action: "pause",
      reason: "guardrail",
      detail: `guardrail ${violated.metric} regressed${shown}, beyond its tolerance ${fmt(violated.margin)}${violated.relative ? " (relative)" : ""}`,
    };
  }

  if (input.srm.alarm || input.srm.sequentialAlarm) {
    const which = [input.srm.alarm ? "chi-square" : null, input.srm.sequentialAlarm ? "sequential" : null]
      .filter((x) => x !== null)
      .join(" and ");
    return {
      action: "analyse",
      reason: "srm",
      detail: `sample ratio mismatch (${which} test): the arms' units do not match the configured weights; no effect can be trusted`,
    };
  }

  if (input.pValue !== null && input.effect !== null && input.pValue < input.alpha && input.effect !== 0) {
    // The side of the always-valid interval, which the p-value is about; this look's estimate only when
    // the interval straddles 0 (its running intersection restarted). A running minimum p-value may come
    // from an earlier look whose effect this look's estimate no longer shows.
    const side = input.ci !== null && input.ci[0] > 0 ? 1 : input.ci !== null && input.ci[1] < 0 ? -1 : input.effect;
    const better = input.targetDirection === "increase" ? side > 0 : side < 0;
    const ci = input.ci === null ? "" : ` (always-valid interval ${fmt(input.ci[0])} to ${fmt(input.ci[1])})`;
    return better
      ? {
          action: "analyse",
          reason: "win",
          detail: `significant win: effect ${fmt(input.effect)}${ci}, always-valid p = ${fmt(input.pValue)}`,
        }
      : {
          action: "analyse",
          reason: "loss",
          detail: `significant loss: effect ${fmt(input.effect)}${ci}, always-valid p = ${fmt(input.pValue)}`,
        };
  }

  if (input.plannedPerArm !== null && minUnits >= input.plannedPerArm) {
    return {
      action: "analyse",
      reason: "futility",
      detail: `planned sample of ${Math.round(input.plannedPerArm)} per arm reached without a significant effect`,
    };
  }

  if (input.elapsedSeconds >= input.maxDurationSeconds) {
    return {
      action: "analyse",
      reason: "max_duration",
      detail: `maximum duration of ${fmt(input.maxDurationSeconds / 86400)} days reached`,
    };
  }

  return { action: "continue", reason: "running", detail: "no decision yet" };
}
