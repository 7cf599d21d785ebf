/**
 * The shapes of the stopping policy (`decision-policy.ts`) and its decision
 * rules (`decision-rules.ts`): what one analysis hands in, what comes out,
 * and the rules' counts. Types only, so both modules import them without
 * importing each other back.
 */

/** Counts of failed and inconclusive measurements so far, this one included. */
export interface RuleCounts {
  /** Analyses that crossed the kill threshold. */
  readonly kill: number;
  /** Per guardrail metric: analyses that found it violated. */
  readonly guardrails: Readonly<Record<string, number>>;
  /** Analyses past `min_duration` whose primary statistics were undefined. */
  readonly inconclusive: number;
}

/** `pause` stops traffic (kill-switch, guardrail); `analyse` opens an analysis_review gate. */
export type PolicyAction = "continue" | "pause" | "analyse";

export const POLICY_REASONS = [
  "warming_up",
  "no_data",
  "kill",
  "guardrail",
  "errors",
  "srm",
  "inconclusive",
  "failure_tolerated",
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
  /** Violated analyses tolerated before a pause (default 0; −1: never pauses). */
  readonly failureLimit?: number;
  /** Measured and recorded, never acted on (default false). */
  readonly dryRun?: boolean;
}

/** The counts of the decision rules (this analysis included) and the inconclusive limit. */
export interface RulesInput {
  readonly counts: RuleCounts;
  /** Inconclusive analyses tolerated before an analysis review (default −1: never). */
  readonly inconclusiveLimit: number;
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
  /**
   * The p-value a win or loss is declared on: the always-valid p-value, or with k > 1 treatments its
   * Holm adjustment across the treatments at this look (Holm 1979), so the family-wise error stays ≤ α.
   */
  readonly pValue: number | null;
  /**
   * This look's statistics could not be computed (an empty arm, zero variance, an overflow): the
   * interval and p-value above, if any, are carried from an earlier look. Counts as inconclusive.
   */
  readonly lookUndefined?: boolean;
  /**
   * The intervals the kill-switch reads when they differ from `ci` and `relativeCi`: with k > 1
   * treatments those are confidence sequences at α/k (for the win or loss), while the kill reads the
   * treatment's own at the full α, since a false pause is the safe error. Absent: `ci`, `relativeCi`.
   */
  readonly killInterval?: {
    readonly ci: readonly [number, number] | null;
    readonly relativeCi: readonly [number, number] | null;
  };
  /** Kill threshold (a fraction, > 0) and whether it is relative to control; null: no kill-switch. */
  readonly kill: { readonly maxHarm: number; readonly relative: boolean; readonly failureLimit?: number } | null;
  /**
   * `sequentialAlarm` (the always-valid SRM test) stops; `alarm` (chi-square at this look) is
   * information only: checked at every poll it would alarm falsely far more often than its threshold.
   */
  readonly srm: { readonly alarm: boolean; readonly sequentialAlarm: boolean };
  readonly guardrails: readonly GuardrailVerdictInput[];
  /** Counts so far and limits; without them this analysis is counted alone (every limit then acts as 0 or −1). */
  readonly rules?: RulesInput;
}
