/**
 * Decision rules in the style of Argo Rollouts' analysis metrics
 * (`failureLimit`, `inconclusiveLimit`, `consecutiveErrorLimit`, `dryRun`),
 * mapped onto the analyses of a running experiment. Pure: counts and limits in,
 * facts and decisions out; the runtime keeps the counts in each analysis row.
 *
 * - A *measurement* is one analysis (one snapshot) past warm-up. It is
 *   **failed** for the kill-switch when the always-valid interval shows harm
 *   beyond the kill threshold, and for a guardrail when its sequential test says
 *   `violated`; it is **inconclusive** when the primary metric's statistics are
 *   undefined (an empty arm after `min_duration`, zero variance, NaN, ±∞).
 * - A rule trips when its count *exceeds* its limit: limit 0 trips at the first
 *   failure, 3 at the fourth; −1 never trips (the facts are still recorded).
 * - An *error* is a poll of the experiment that failed; the experiment row
 *   counts them in a row (reset by a successful poll), and the rule trips when
 *   that count exceeds `consecutive_error_limit` (default 4: the 5th error).
 * - A dry-run guardrail is measured and counted, never acted on.
 */
import type { PolicyDecision, PolicyInput, RuleCounts } from "./decision-types";

/** Argo's defaults: the first failure fails; errors fail at the 5th in a row; inconclusive never stops on count. */
export const DEFAULT_FAILURE_LIMIT = 0;
export const DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4;
export const DEFAULT_INCONCLUSIVE_LIMIT = -1;

export type { RuleCounts } from "./decision-types";

export const NO_COUNTS: RuleCounts = Object.freeze({ kill: 0, guardrails: Object.freeze({}), inconclusive: 0 });

/** What one analysis measured, before any limit is applied. */
export interface Measurement {
  /** The kill threshold was crossed (in any treatment arm). */
  readonly killFailed: boolean;
  /** Guardrail metrics found violated (dry-run ones included: they are counted, not acted on). */
  readonly guardrailsFailed: readonly string[];
  /** The primary metric's statistics were undefined past `min_duration`. */
  readonly inconclusive: boolean;
}

/**
 * Whether a count trips its limit: `count > limit`, except that −1 (or any
 * negative limit) never trips. Argo: "the metric fails when failed > failureLimit".
 */
export function exceedsLimit(count: number, limit: number): boolean {
  return limit >= 0 && count > limit;
}

/** A finite number, or null for NaN, ±∞, null and undefined. */
function finiteOrNull(x: number | null | undefined): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

function intervalOrNull(ci: readonly [number, number] | null | undefined): readonly [number, number] | null {
  if (ci === null || ci === undefined) return null;
  const low = finiteOrNull(ci[0]);
  const high = finiteOrNull(ci[1]);
  return low === null || high === null ? null : [low, high];
}

/**
 * The policy input with every non-finite statistic (NaN, ±∞) replaced by
 * null, so undefined statistics are never compared (NaN > x is false, but
 * −∞ < x is true and would read as a significant effect).
 */
export function sanitizeInput(input: PolicyInput): PolicyInput {
  return {
    ...input,
    units: {
      control: Number.isFinite(input.units.control) ? input.units.control : 0,
      treatment: Number.isFinite(input.units.treatment) ? input.units.treatment : 0,
    },
    effect: finiteOrNull(input.effect),
    ci: intervalOrNull(input.ci),
    relativeCi: intervalOrNull(input.relativeCi),
    pValue: finiteOrNull(input.pValue),
    ...(input.killInterval !== undefined
      ? {
          killInterval: {
            ci: intervalOrNull(input.killInterval.ci),
            relativeCi: intervalOrNull(input.killInterval.relativeCi),
          },
        }
      : {}),
    guardrails: input.guardrails.map((g) => ({ ...g, harmLow: finiteOrNull(g.harmLow) })),
  };
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

/** The harm's lower bound when it crosses the kill threshold, else null (also when the interval is undefined). */
export function killHarm(input: PolicyInput): number | null {
  if (input.kill === null) return null;
  const intervals = input.killInterval ?? input;
  const interval = input.kill.relative ? intervals.relativeCi : intervals.ci;
  if (interval === null) return null;
  const harm = harmLowerBound(interval, input.targetDirection);
  return Number.isFinite(harm) && harm > input.kill.maxHarm ? harm : null;
}

/**
 * Past `min_sample_per_arm` in every arm: the analysis may decide on harm (the
 * kill-switch and guardrails count from here, before `min_duration` too).
 */
function isWarm(input: PolicyInput): boolean {
  const minUnits = Math.min(input.units.control, input.units.treatment);
  return minUnits > 0 && minUnits >= input.minSamplePerArm;
}

/**
 * Whether the primary metric's statistics are undefined in an analysis that
 * should have them: past `min_duration` with an empty arm, or past warm-up
 * with no effect, interval or p-value (zero variance, NaN, ±∞), or with
 * only those carried from an earlier look (`lookUndefined`).
 */
export function isInconclusive(input: PolicyInput): boolean {
  const s = sanitizeInput(input);
  if (s.elapsedSeconds < s.minDurationSeconds) return false;
  if (Math.min(s.units.control, s.units.treatment) <= 0) return true;
  if (!isWarm(s)) return false;
  return s.lookUndefined === true || s.effect === null || s.ci === null || s.pValue === null;
}

/**
 * What one analysis of one treatment arm measured. Nothing is failed before
 * `min_sample_per_arm`: those analyses decide nothing, so they count for nothing.
 */
export function measurementOf(input: PolicyInput): Measurement {
  const s = sanitizeInput(input);
  const inconclusive = isInconclusive(s);
  if (!isWarm(s)) return { killFailed: false, guardrailsFailed: [], inconclusive };
  return {
    killFailed: killHarm(s) !== null,
    guardrailsFailed: s.guardrails.filter((g) => g.verdict === "violated").map((g) => g.metric),
    inconclusive,
  };
}

/** One analysis of several treatment arms: a metric failed when it failed in any arm. */
export function combineMeasurements(measurements: readonly Measurement[]): Measurement {
  return {
    killFailed: measurements.some((m) => m.killFailed),
    guardrailsFailed: [...new Set(measurements.flatMap((m) => m.guardrailsFailed))],
    inconclusive: measurements.some((m) => m.inconclusive),
  };
}

/** The counts after one more analysis. Failed counts never reset on a success (Argo's `failed`). */
export function countMeasurement(counts: RuleCounts, m: Measurement): RuleCounts {
  const guardrails = { ...counts.guardrails };
  for (const metric of m.guardrailsFailed) guardrails[metric] = (guardrails[metric] ?? 0) + 1;
  return {
    kill: counts.kill + (m.killFailed ? 1 : 0),
    guardrails,
    inconclusive: counts.inconclusive + (m.inconclusive ? 1 : 0),
  };
}

/** Counts read back from a stored analysis (missing or malformed fields are 0). */
export function countsFrom(stored: unknown): RuleCounts {
  if (stored === null || typeof stored !== "object") return NO_COUNTS;
  const s = stored as { kill?: unknown; guardrails?: unknown; inconclusive?: unknown };
  const n = (x: unknown): number => (typeof x === "number" && Number.isInteger(x) && x >= 0 ? x : 0);
  const guardrails: Record<string, number> = {};
  if (s.guardrails !== null && typeof s.guardrails === "object") {
    for (const [metric, count] of Object.entries(s.guardrails)) guardrails[metric] = n(count);
  }
  return { kill: n(s.kill), guardrails, inconclusive: n(s.inconclusive) };
}

/**
 * The decision for `consecutiveErrors` failed polls in a row: a pause (reason
 * `errors`) once the count exceeds the limit, because harm can no longer be
 * watched; null otherwise (−1: never).
 */
export function assessErrors(
  consecutiveErrors: number,
  limit: number = DEFAULT_CONSECUTIVE_ERROR_LIMIT,
  lastError: string | null = null,
): PolicyDecision | null {
  if (!exceedsLimit(consecutiveErrors, limit)) return null;
  const cause = lastError === null ? "" : ` (last: ${lastError})`;
  return {
    action: "pause",
    reason: "errors",
    detail: `${consecutiveErrors} polls in a row failed${cause}, more than the consecutive_error_limit of ${limit}: the experiment's harm cannot be watched`,
  };
}
