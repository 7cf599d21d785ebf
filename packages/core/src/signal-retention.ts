/**
 * Retention of raw signal points: the rules the workspace setting
 * `signalRetention` and the retention job (`packages/runtime`,
 * `applySignalRetention`) share.
 *
 * Which points may go, once older than the retention:
 * - points of experiments in a final state ({@link RETENTION_EXPERIMENT_STATES}:
 *   rejected, shipped, rolled back, iterated); never those of an experiment
 *   that is running, paused, being analysed or not launched yet;
 * - points of an outcome's own series once the outcome is over for good
 *   ({@link RETENTION_OUTCOME_STATES}: missed, abandoned; an achieved outcome
 *   can be reopened, and its sustain window and baseline read old points
 *   again, so its series is kept);
 * - never the points the latest analysis used: per series and arm, the newest
 *   point at or before the experiment's latest analysis (points are cumulative,
 *   so that one point holds the totals the analysis read), the newest point of
 *   each arm (the final totals, which `polled_until` points at), and for an
 *   outcome's series the level at activation (the baseline a relative target
 *   is measured from), its first point, and the window of its latest
 *   achievement review.
 */

import type { SignalRetention } from "./entities";
import { DomainError } from "./errors";
import type { ExperimentState } from "./experiment.machine";
import { experimentMachine } from "./experiment.machine";
import { type OutcomeState, outcomeMachine } from "./outcome.machine";

/** The longest retention a workspace may set, in days (about a century). */
export const MAX_SIGNAL_RETENTION_DAYS = 36_500;

/** Experiment states whose old points the retention job may delete: the machine's final states. */
export const RETENTION_EXPERIMENT_STATES: readonly ExperimentState[] = experimentMachine.final;

/** Outcome states whose own series' old points the retention job may delete: the machine's final states. */
export const RETENTION_OUTCOME_STATES: readonly OutcomeState[] = outcomeMachine.final;

/**
 * Check a `signalRetention` value from a request or an import.
 *
 * @param value `{ days: n }` with n a whole number of days from 1 to
 *   {@link MAX_SIGNAL_RETENTION_DAYS}, or `{ days: null }` to keep points forever.
 * @returns the setting, a new object holding `days` only.
 * @throws DomainError `validation_failed` naming the field (`signalRetention` or
 *   `signalRetention.days`), the value given and what to send instead.
 */
export function parseSignalRetention(value: unknown): SignalRetention {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DomainError(
      "validation_failed",
      `signalRetention must be an object like {"days": 90} or {"days": null}, not ${JSON.stringify(value) ?? "undefined"}`,
      { field: "signalRetention" },
    );
  }
  const extra = Object.keys(value).filter((k) => k !== "days");
  if (extra.length > 0) {
    throw new DomainError(
      "validation_failed",
      `signalRetention has unknown field ${extra.map((k) => `"${k}"`).join(", ")}; it takes only "days"`,
      { field: `signalRetention.${extra[0]}` },
    );
  }
  const days = (value as { days?: unknown }).days;
  if (days === null) return { days: null };
  if (typeof days !== "number" || !Number.isInteger(days) || days < 1 || days > MAX_SIGNAL_RETENTION_DAYS) {
    throw new DomainError(
      "validation_failed",
      `signalRetention.days must be a whole number of days from 1 to ${MAX_SIGNAL_RETENTION_DAYS}, or null to keep ` +
        `signal points forever, not ${JSON.stringify(days) ?? "undefined"}`,
      { field: "signalRetention.days", value: days ?? null, min: 1, max: MAX_SIGNAL_RETENTION_DAYS },
    );
  }
  return { days };
}

/**
 * The time before which points may be deleted: `now` minus `days` whole days
 * (24 h each, independent of time zones); null when `days` is null (keep forever).
 */
export function retentionCutoff(now: Date, days: number | null): Date | null {
  return days === null ? null : new Date(now.getTime() - days * 86_400_000);
}
