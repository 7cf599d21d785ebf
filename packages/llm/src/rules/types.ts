/**
 * Shapes of the rules engine: its input, and the `generate_hypotheses`
 * output it produces (the shape of
 * `schemas/llm/generate_hypotheses.output.schema.json`, written as plain
 * arrays so callers can build and map it freely).
 */

export type MetricKind = "proportion" | "mean";
export type Direction = "increase" | "decrease";
export type Effort = "S" | "M" | "L" | "XL";
export type Risk = "low" | "medium" | "high";

/** One hypothesis of a `generate_hypotheses` output. */
export interface GeneratedHypothesis {
  title: string;
  statement: string;
  mechanism: string;
  mechanism_key: string;
  prediction: { metric: string; direction: Direction; effect: number; relative: boolean };
  measurement_plan: string;
  rollout_plan: string;
  effort: Effort;
  risk: Risk;
  confidence?: number;
  touched_paths: string[];
  rationale: string;
  learnings_used?: string[];
}

/** Output of the `generate_hypotheses` operation. */
export interface GenerateHypothesesOutput {
  hypotheses: GeneratedHypothesis[];
}

/** A past learning, as the hypothesis engine retrieves it. */
export interface RulesLearning {
  id: string;
  statement: string;
  /** The analysis decision it came from: `shipped`, `rolled_back`, `iterated`, … */
  decision: string;
  /** Relative effect in the desired direction when known (0.04 = +4 %). */
  effect?: number | null;
  tags?: string[];
  mechanism_key?: string;
}

/** A hypothesis that already failed for this outcome. */
export interface RulesFailedHypothesis {
  title: string;
  statement: string;
  mechanism_key?: string;
}

/** The outcome fields the rules engine reads. */
export interface RulesOutcome {
  id: string;
  name: string;
  description?: string;
  objective?: string;
  signal: { metric: string; kind: MetricKind; unit: string; baseline?: number };
  target: { direction: Direction; value: number; relative: boolean };
  allowed_paths?: string[];
  forbidden_paths?: string[];
}

/** Input of {@link generateHypothesesByRules} and {@link planByRules}. */
export interface RulesHypothesesInput {
  outcome: RulesOutcome;
  learnings?: RulesLearning[];
  failed?: RulesFailedHypothesis[];
  /** How many hypotheses to return (default 3, at most 10). */
  count?: number;
  /** Mechanism keys not to propose (e.g. those of hypotheses already running). */
  exclude_mechanisms?: string[];
}
