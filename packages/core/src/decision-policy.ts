/**
 * The decision policy: what the runtime does with one analysis of a running
 * experiment. Pure: the statistics are computed elsewhere (packages/stats) and
 * handed in as numbers; this module only decides.
 *
 * Order of precedence (harm always wins):
 *  1. Warming up: before `min_sample_per_arm` units in every arm nothing is
 *     decided, not even a pause (the normal approximation behind every
 *     interval needs units). From then on the kill-switch, the guardrails, the
 *     sequential SRM and the inconclusive count decide at every look, before
 *     `min_duration` too: their tests are always valid (a confidence sequence
 *     holds at every look at once, Howard et al. 2021), so looking early does
 *     not raise their error rates. `min_duration` holds back wins, losses,
 *     futility and the maximum duration only (a full cycle of days before a
 *     rollout is a product rule, not a statistical one).
 *  2. Kill-switch: the always-valid confidence sequence shows the treatment
 *     worse than control by more than the kill threshold, in more analyses
 *     than the kill's `failure_limit` (default 0: the first) → pause.
 *  3. Guardrail: a guardrail's one-sided sequential test shows a regression
 *     beyond its tolerance, in more analyses than its `failure_limit` → pause;
 *     never for a `dry_run` guardrail or a limit of −1. No later check can
 *     override 2 or 3. A kill or guardrail failure still within its limit
 *     holds the experiment (`continue`, reason `failure_tolerated`): nothing
 *     below is decided while that harm may be real.
 *  4. Sample ratio mismatch → analysis review; no effect is declared while
 *     SRM is alarmed. Only the sequential SRM test (always valid, Lindon &
 *     Malek 2022) stops: the chi-square p-value, checked at every poll, would
 *     alarm falsely far more often than its threshold promises; it stays in the
 *     analysis as information.
 *  4b. Inconclusive: the statistics are undefined (empty arm, zero variance,
 *     NaN, ±∞) in more analyses than `inconclusive_limit` (default −1: never)
 *     → analysis review, so a person decides.
 *  5. Significant effect (always-valid p < α; with several treatments the
 *     Holm-adjusted p, see `PolicyInput.pValue`): on the side of the target's
 *     direction (the side of the confidence sequence) a win, against it a
 *     loss → analysis review.
 *  6. Futility: the planned sample per arm reached without an effect → review.
 *  7. Maximum duration reached → review.
 *  8. Otherwise continue.
 *
 * Undefined statistics never pause or ship on their own: NaN and ±∞ are read
 * as null before anything is compared. The limits follow Argo Rollouts'
 * analysis metrics (see decision-rules.ts); a decision on consecutive poll
 * errors (reason `errors`) is taken by `assessErrors`, outside any analysis.
 */

import {
  countMeasurement,
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  exceedsLimit,
  isInconclusive,
  killHarm,
  measurementOf,
  NO_COUNTS,
  sanitizeInput,
} from "./decision-rules";
import type { PolicyDecision, PolicyInput } from "./decision-types";
import { formatSeconds } from "./durations";

export { harmLowerBound } from "./decision-rules";

export type {
  GuardrailVerdictInput,
  PolicyAction,
  PolicyDecision,
  PolicyInput,
  PolicyReason,
  RulesInput,
} from "./decision-types";
export { POLICY_REASONS } from "./decision-types";

function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x);
}

/**
 * Decide what to do after one analysis. Pure and total: every input gives a
 * decision; undefined statistics (nulls) never trigger a stop.
 */
export function decide(raw: PolicyInput): PolicyDecision {
  const input = sanitizeInput(raw);
  const counts = input.rules?.counts ?? countMeasurement(NO_COUNTS, measurementOf(input));
  const inconclusiveLimit = input.rules?.inconclusiveLimit ?? DEFAULT_INCONCLUSIVE_LIMIT;
  const inconclusive = isInconclusive(input) && exceedsLimit(counts.inconclusive, inconclusiveLimit);
  const minUnits = Math.min(input.units.control, input.units.treatment);
  if (minUnits <= 0) {
    if (inconclusive) return inconclusiveDecision(counts.inconclusive, inconclusiveLimit, "an arm has no units");
    return { action: "continue", reason: "no_data", detail: "no units in at least one arm yet" };
  }
  if (minUnits < input.minSamplePerArm) {
    return {
      action: "continue",
      reason: "warming_up",
      detail: `warming up: ${minUnits} of ${input.minSamplePerArm} units in the smaller arm (min_sample_per_arm), ${formatSeconds(input.elapsedSeconds)} of ${formatSeconds(input.minDurationSeconds)} (min_duration) since the launch`,
    };
  }
  const early = input.elapsedSeconds < input.minDurationSeconds;

  const harm = killHarm(input);
  if (input.kill !== null && harm !== null) {
    const limit = input.kill.failureLimit ?? DEFAULT_FAILURE_LIMIT;
    if (exceedsLimit(counts.kill, limit)) {
      const unit = input.kill.relative ? " (relative to control)" : "";
      return {
        action: "pause",
        reason: "kill",
        detail: `kill-switch: the treatment is worse than control by at least ${fmt(harm)}${unit}, beyond the kill threshold ${fmt(input.kill.maxHarm)}${countNote(counts.kill, limit)}`,
      };
    }
  }

  // Dry-run guardrails and those with failure_limit −1 are recorded by the caller, never acted on here.
  const violated = input.guardrails.find(
    (g) =>
      g.verdict === "violated" &&
      g.dryRun !== true &&
      exceedsLimit(counts.guardrails[g.metric] ?? 0, g.failureLimit ?? DEFAULT_FAILURE_LIMIT),
  );
  // A violation within its failure_limit holds the experiment as it is: no win, loss or other stop is
  // declared while the harm the limit tolerates for a while may still be real.
  const held = input.guardrails.find(
    (g) => g.verdict === "violated" && g.dryRun !== true && (g.failureLimit ?? DEFAULT_FAILURE_LIMIT) >= 0,
  );
  if (violated !== undefined) {
    const shown =
      violated.harmLow === null || violated.harmLow === undefined ? "" : ` by at least ${fmt(violated.harmLow)}`;
    return {
      action: "pause",
      reason: "guardrail",
      detail: `guardrail ${violated.metric} regressed${shown}, beyond its tolerance ${fmt(violated.margin)}${violated.relative ? " (relative)" : ""}${countNote(counts.guardrails[violated.metric] ?? 0, violated.failureLimit ?? DEFAULT_FAILURE_LIMIT)}`,
    };
  }

  const killLimit = input.kill?.failureLimit ?? DEFAULT_FAILURE_LIMIT;
  if (harm !== null && killLimit >= 0) return tolerated("the kill threshold", counts.kill, killLimit);
  if (held !== undefined) {
    return tolerated(`guardrail ${held.metric}`, counts.guardrails[held.metric] ?? 0, held.failureLimit ?? 0);
  }

  if (input.srm.sequentialAlarm) {
    return {
      action: "analyse",
      reason: "srm",
      detail:
        "sample ratio mismatch (sequential test, always valid): the arms' units do not match the configured weights; no effect can be trusted",
    };
  }

  if (inconclusive) {
    return inconclusiveDecision(counts.inconclusive, inconclusiveLimit, "the statistics are undefined");
  }

  if (early) {
    return {
      action: "continue",
      reason: "warming_up",
      detail: `warming up: ${formatSeconds(input.elapsedSeconds)} of ${formatSeconds(input.minDurationSeconds)} (min_duration) since the launch before a win, a loss or futility is declared; the kill-switch and guardrails are watching`,
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
      detail: `maximum duration of ${formatSeconds(input.maxDurationSeconds)} (max_duration) reached`,
    };
  }

  return { action: "continue", reason: "running", detail: "no decision yet" };
}

/** ": 2 failed analyses, more than its failure_limit of 1" when a limit above 0 was waited for. */
function countNote(count: number, limit: number): string {
  return limit > 0 ? `, in ${count} analyses (more than its failure_limit of ${limit})` : "";
}

function tolerated(what: string, count: number, limit: number): PolicyDecision {
  return {
    action: "continue",
    reason: "failure_tolerated",
    detail: `${what} failed in ${count} analyses, within its failure_limit of ${limit}: watching, nothing else is decided meanwhile`,
  };
}

function inconclusiveDecision(count: number, limit: number, why: string): PolicyDecision {
  return {
    action: "analyse",
    reason: "inconclusive",
    detail: `inconclusive: ${why} in ${count} analyses, more than the inconclusive_limit of ${limit}; a person decides`,
  };
}
