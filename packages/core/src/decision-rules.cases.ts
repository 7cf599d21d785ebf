/**
 * The R14 table (docs/reliability.md): sequences of measurements × limits and
 * the action each must lead to, in Argo Rollouts' terms. Shared by the pure
 * test (decision-rules.test.ts), the integration test of the runtime and the
 * fault-injection scenario (tests/chaos/r14-decision-rules.chaos.ts), which
 * replays the rows marked `integration` against Postgres and real polls.
 *
 * Steps:
 * - `S` a successful measurement (defined statistics, nothing harmed);
 * - `F` a failed one: the rule's metric fails (guardrail violated, or kill
 *   threshold crossed for the `kill` rule);
 * - `NaN`, `Inf`, `empty`, `zero_var`: inconclusive measurements (undefined
 *   statistics: NaN, ±∞, an arm with no units, zero variance);
 * - `E` a failed poll (connector error).
 */
import { decide, type PolicyDecision, type PolicyInput } from "./decision-policy";
import {
  assessErrors,
  combineMeasurements,
  countMeasurement,
  DEFAULT_CONSECUTIVE_ERROR_LIMIT,
  DEFAULT_FAILURE_LIMIT,
  DEFAULT_INCONCLUSIVE_LIMIT,
  measurementOf,
  NO_COUNTS,
  type RuleCounts,
} from "./decision-rules";

export type Step = "S" | "F" | "NaN" | "Inf" | "empty" | "zero_var" | "E";

interface RuleLimits {
  /** The guardrail's `failure_limit` (rule `guardrail`) or the kill's (rule `kill`). */
  readonly failureLimit?: number;
  readonly dryRun?: boolean;
  readonly inconclusiveLimit?: number;
  readonly consecutiveErrorLimit?: number;
}

export interface RuleCase {
  readonly name: string;
  /** Which metric an `F` step fails: a guardrail or the kill-switch. */
  readonly rule: "guardrail" | "kill";
  readonly limits: RuleLimits;
  readonly steps: readonly Step[];
  /** The action the sequence leads to, the step (1-based) it is taken at, or none. */
  readonly expected: { readonly action: "pause" | "analyse"; readonly reason: string; readonly at: number } | null;
  /** Replayed by the runtime's integration path (cumulative real data can show it). */
  readonly integration: boolean;
}

const many = (step: Step, n: number): Step[] => Array.from({ length: n }, () => step);

export const RULE_CASES: readonly RuleCase[] = [
  {
    name: "failure_limit 0 (default): the first violated analysis pauses",
    rule: "guardrail",
    limits: {},
    steps: ["S", "F", "F"],
    expected: { action: "pause", reason: "guardrail", at: 2 },
    integration: true,
  },
  {
    name: "failure_limit 1: the 2nd violated analysis pauses, not the 1st",
    rule: "guardrail",
    limits: { failureLimit: 1 },
    steps: ["F", "F", "F"],
    expected: { action: "pause", reason: "guardrail", at: 2 },
    integration: true,
  },
  {
    name: "failure_limit 3: the 4th violated analysis pauses",
    rule: "guardrail",
    limits: { failureLimit: 3 },
    steps: many("F", 6),
    expected: { action: "pause", reason: "guardrail", at: 4 },
    integration: true,
  },
  {
    name: "failure_limit 3: successes in between do not reset the failed count",
    rule: "guardrail",
    limits: { failureLimit: 3 },
    steps: ["F", "S", "F", "S", "S", "F", "S", "F", "F"],
    expected: { action: "pause", reason: "guardrail", at: 8 },
    integration: false,
  },
  {
    name: "failure_limit -1: never pauses on the guardrail, however many violations",
    rule: "guardrail",
    limits: { failureLimit: -1 },
    steps: many("F", 8),
    expected: null,
    integration: true,
  },
  {
    name: "kill failure_limit 1: the 2nd analysis beyond the kill threshold pauses",
    rule: "kill",
    limits: { failureLimit: 1 },
    steps: ["F", "F", "F"],
    expected: { action: "pause", reason: "kill", at: 2 },
    integration: true,
  },
  {
    name: "dry_run: a violated dry-run guardrail never pauses",
    rule: "guardrail",
    limits: { dryRun: true },
    steps: many("F", 8),
    expected: null,
    integration: true,
  },
  {
    name: "inconclusive_limit 2: the 3rd inconclusive analysis opens an analysis review",
    rule: "guardrail",
    limits: { inconclusiveLimit: 2 },
    steps: ["zero_var", "S", "zero_var", "zero_var", "zero_var"],
    expected: { action: "analyse", reason: "inconclusive", at: 4 },
    integration: true,
  },
  {
    name: "inconclusive_limit -1 (default): undefined statistics never stop anything",
    rule: "guardrail",
    limits: {},
    steps: ["NaN", "Inf", "empty", "zero_var", "NaN", "Inf", "empty", "zero_var"],
    expected: null,
    integration: false,
  },
  {
    name: "NaN statistics are inconclusive, never a pause or a win (inconclusive_limit 0)",
    rule: "guardrail",
    limits: { inconclusiveLimit: 0 },
    steps: ["S", "NaN"],
    expected: { action: "analyse", reason: "inconclusive", at: 2 },
    integration: false,
  },
  {
    name: "±∞ statistics are inconclusive, never a kill or a loss (inconclusive_limit 0)",
    rule: "kill",
    limits: { inconclusiveLimit: 0 },
    steps: ["S", "Inf"],
    expected: { action: "analyse", reason: "inconclusive", at: 2 },
    integration: false,
  },
  {
    name: "an empty arm is inconclusive (inconclusive_limit 0)",
    rule: "guardrail",
    limits: { inconclusiveLimit: 0 },
    steps: ["S", "empty"],
    expected: { action: "analyse", reason: "inconclusive", at: 2 },
    integration: true,
  },
  {
    name: "consecutive_error_limit 4 (default): the 5th consecutive error pauses",
    rule: "guardrail",
    limits: {},
    steps: ["S", ...many("E", 6)],
    expected: { action: "pause", reason: "errors", at: 6 },
    integration: true,
  },
  {
    name: "consecutive_error_limit 4: a success in between resets the run",
    rule: "guardrail",
    limits: { consecutiveErrorLimit: 4 },
    steps: [...many("E", 4), "S", ...many("E", 4), "S", ...many("E", 4)],
    expected: null,
    integration: true,
  },
  {
    name: "consecutive_error_limit 4: after a reset, the next 5 in a row pause",
    rule: "guardrail",
    limits: { consecutiveErrorLimit: 4 },
    steps: [...many("E", 4), "S", ...many("E", 5)],
    expected: { action: "pause", reason: "errors", at: 10 },
    integration: true,
  },
  {
    name: "consecutive_error_limit -1: errors never pause",
    rule: "guardrail",
    limits: { consecutiveErrorLimit: -1 },
    steps: many("E", 12),
    expected: null,
    integration: false,
  },
];

const DAY = 86_400;

/** The policy input of one analysis step of a case (a running experiment past warm-up). */
export function stepInput(c: RuleCase, step: Exclude<Step, "E">): PolicyInput {
  const harmful = c.rule === "kill" && step === "F";
  const base: PolicyInput = {
    units: { control: 10_000, treatment: 10_000 },
    elapsedSeconds: 10 * DAY,
    minSamplePerArm: 1_000,
    minDurationSeconds: DAY,
    maxDurationSeconds: 28 * DAY,
    plannedPerArm: 50_000,
    alpha: 0.05,
    targetDirection: "increase",
    effect: harmful ? -0.05 : 0.001,
    ci: harmful ? [-0.07, -0.04] : [-0.01, 0.012],
    relativeCi: harmful ? [-0.14, -0.08] : [-0.1, 0.12],
    // A harmful step past the kill threshold is also a significant loss: only the limit decides which.
    pValue: harmful ? 1e-6 : 0.6,
    kill: { maxHarm: 0.03, relative: true, failureLimit: c.rule === "kill" ? (c.limits.failureLimit ?? 0) : 0 },
    srm: { alarm: false, sequentialAlarm: false },
    guardrails: [
      {
        metric: "payment_error_rate",
        verdict: c.rule === "guardrail" && step === "F" ? "violated" : "ok",
        harmLow: c.rule === "guardrail" && step === "F" ? 0.01 : -0.002,
        margin: 0.005,
        relative: false,
        failureLimit: c.rule === "guardrail" ? (c.limits.failureLimit ?? DEFAULT_FAILURE_LIMIT) : 0,
        dryRun: c.limits.dryRun ?? false,
      },
    ],
  };
  switch (step) {
    case "S":
    case "F":
      return base;
    case "NaN":
      return { ...base, effect: Number.NaN, ci: [Number.NaN, Number.NaN], relativeCi: null, pValue: Number.NaN };
    case "Inf":
      // Unguarded, −∞ would read as harm beyond any kill threshold and p = −∞ < α as a significant loss.
      return {
        ...base,
        effect: Number.NEGATIVE_INFINITY,
        ci: [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
        relativeCi: [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
        pValue: Number.NEGATIVE_INFINITY,
      };
    case "empty":
      return {
        ...base,
        units: { control: 10_000, treatment: 0 },
        effect: null,
        ci: null,
        relativeCi: null,
        pValue: null,
      };
    case "zero_var":
      // As the sequential test reports it: the interval and p-value of the last look carried, none of this one.
      return { ...base, effect: 0, lookUndefined: true };
  }
}

export interface RuleRun {
  /** The first decision other than continue, with its 1-based step; null when the sequence ran out. */
  readonly decision: (PolicyDecision & { at: number }) | null;
  /** Stops taken (the experiment leaves `running` at the first, so more than one is a duplicate). */
  readonly stops: number;
  /** The counts after the last step analysed. */
  readonly counts: RuleCounts;
}

/**
 * Replay a case through the pure rules, as the runtime does: each analysis
 * step is measured, counted and decided; each `E` adds to the consecutive
 * errors (reset by any analysis). Stops at the first decision, like the
 * experiment, which is then no longer running.
 */
export function runCase(c: RuleCase): RuleRun {
  let counts = NO_COUNTS;
  let errors = 0;
  for (const [i, step] of c.steps.entries()) {
    if (step === "E") {
      errors += 1;
      const escalated = assessErrors(errors, c.limits.consecutiveErrorLimit ?? DEFAULT_CONSECUTIVE_ERROR_LIMIT);
      if (escalated !== null) return { decision: { ...escalated, at: i + 1 }, stops: 1, counts };
      continue;
    }
    errors = 0;
    const input = stepInput(c, step);
    counts = countMeasurement(counts, combineMeasurements([measurementOf(input)]));
    const decision = decide({
      ...input,
      rules: { counts, inconclusiveLimit: c.limits.inconclusiveLimit ?? DEFAULT_INCONCLUSIVE_LIMIT },
    });
    if (decision.action !== "continue") return { decision: { ...decision, at: i + 1 }, stops: 1, counts };
  }
  return { decision: null, stops: 0, counts };
}
