/**
 * The context package of a gate: what the person deciding needs to see, per
 * gate kind. Built by the runtime from the database, shown by the API, the
 * dashboard and the gate emails alike, so every channel shows the same facts.
 */
import type { Arm, BuildReport, Prediction } from "./entities";

export type { BuildReport } from "./entities";

/** The outcome a gate belongs to, in brief. */
export interface OutcomeBrief {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
  readonly owner: string;
  /** The target in words, e.g. "checkout_conversion increase to 0.042 by 2027-03-31". */
  readonly target: string;
}

/** One proposed hypothesis of a portfolio review. */
export interface HypothesisBrief {
  readonly id: string;
  readonly key: string;
  readonly title: string;
  readonly statement: string;
  readonly prediction: Prediction | null;
  readonly effort: "low" | "medium" | "high" | null;
  readonly risk: "low" | "medium" | "high" | null;
  readonly touchedPaths: readonly string[];
  /** `proposed` while the review is pending; the decided state afterwards. */
  readonly state: string;
  /** `human`, `rules` or `llm:<model>`. */
  readonly source: string;
}

export interface ExperimentBrief {
  readonly id: string;
  readonly key: string;
  readonly title: string;
  readonly statement: string;
  readonly state: string;
}

/** Per-arm sample and estimate at the analysis. */
export interface ArmSummary {
  readonly name: string;
  /** Exposed units (users, sessions) counted so far. */
  readonly units: number;
  /** The arm's mean of the primary metric (a fraction for proportions). */
  readonly mean: number | null;
}

export interface GuardrailSummary {
  readonly metric: string;
  readonly arm: string;
  /** `ok`, `harm` or `inconclusive`, as the sequential guardrail test reported. */
  readonly verdict: string;
  /** Estimated harm (positive is worse), in the guardrail's units (relative fraction when `relative`). */
  readonly harm: number | null;
  readonly margin: number;
  readonly relative: boolean;
}

/** The numbers of the analysis that stopped (or paused) an experiment. */
export interface AnalysisSummary {
  /** ISO 8601 time of the data the analysis covers. */
  readonly ts: string;
  readonly metric: string;
  /** `ratio`: Σnumerator / Σdenominator over the units; effects are differences of ratios. */
  readonly metricKind: "proportion" | "mean" | "ratio";
  /** Absolute effect, treatment − control, in metric units (fractions for proportions). */
  readonly effect: number | null;
  /** Always-valid confidence sequence for the effect at this analysis. */
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
  /** Relative lift (fraction, 0.05 = +5 %). */
  readonly relativeLift: number | null;
  /** Always-valid p-value (mSPRT). */
  readonly pValue: number | null;
  readonly alpha: number;
  /** Sample ratio mismatch check: chi-square p-value and whether it alarmed. */
  readonly srm: { readonly pValue: number | null; readonly alarm: boolean };
  readonly guardrails: readonly GuardrailSummary[];
  readonly arms: readonly ArmSummary[];
  /** Seconds between the launch and `ts`. */
  readonly durationSeconds: number | null;
}

export interface PortfolioReviewContext {
  readonly kind: "portfolio_review";
  readonly outcome: OutcomeBrief;
  readonly hypotheses: readonly HypothesisBrief[];
}

export interface LaunchApprovalContext {
  readonly kind: "launch_approval";
  readonly outcome: OutcomeBrief;
  readonly experiment: ExperimentBrief;
  readonly build: BuildReport | null;
  readonly arms: readonly Arm[];
}

export interface AnalysisReviewContext {
  readonly kind: "analysis_review";
  readonly outcome: OutcomeBrief;
  readonly experiment: ExperimentBrief;
  /** Why the gate opened: the policy's action (`pause`, `stop`…) and reason (`win`, `kill_switch`…). */
  readonly trigger: { readonly action: string; readonly reason: string; readonly detail: string | null };
  /** The latest analysis, or null when none was stored (a manual stop before any data). */
  readonly analysis: AnalysisSummary | null;
  /** Link to the experiment's chart in the dashboard. */
  readonly chartUrl: string;
}

/** A question a coding agent asks a person about the experiment it builds (MCP `request_human_gate`). */
export interface AgentRequestContext {
  readonly kind: "agent_request";
  readonly outcome: OutcomeBrief;
  readonly experiment: ExperimentBrief;
  /** The question, as the agent asked it. */
  readonly question: string;
  /** The agent (API key name) that asked. */
  readonly askedBy: string;
}

/**
 * What the worker saw when it judged an outcome's target sustained: the last
 * `sustain` of the outcome's series, with a one-sided Student-t bound on the
 * mean of its points (see `sustainedTarget` in the runtime).
 */
export interface AchievementEvidence {
  /** The level the signal must reach (the target as a level, in the signal's units). */
  readonly goal: number;
  readonly direction: "increase" | "decrease";
  /** The latest point's value. */
  readonly latest: number;
  /** Mean of the window's points. */
  readonly mean: number;
  /** One-sided bound of that mean at `confidence`: the lower bound for `increase`, the upper for `decrease`. */
  readonly bound: number;
  /** Confidence of the bound, a fraction (0.95). */
  readonly confidence: number;
  /** Points in the window. */
  readonly points: number;
  /** ISO 8601 times of the window's first and last points. */
  readonly windowStart: string;
  readonly windowEnd: string;
  /** `target.sustain`, in seconds. */
  readonly sustainSeconds: number;
}

/** An experiment of the outcome shipped since the outcome was activated. */
export interface ShippedExperimentBrief extends ExperimentBrief {
  /** ISO 8601 time it was shipped. */
  readonly shippedAt: string;
  /** Relative lift of its latest analysis (fraction, 0.05 = +5 %), null without one. */
  readonly relativeLift: number | null;
}

/** The owner confirms that an outcome's target is reached (opened by the worker once it held for `target.sustain`). */
export interface AchievementReviewContext {
  readonly kind: "achievement_review";
  readonly outcome: OutcomeBrief;
  /** The kind of the outcome's signal: `proportion` values are fractions, the others in the metric's units. */
  readonly metricKind: "proportion" | "mean";
  /** The evidence as the worker saw it when it opened the gate. */
  readonly evidence: AchievementEvidence | null;
  /** The outcome's series since activation (the latest 500 points at most), oldest first. */
  readonly series: readonly { readonly ts: string; readonly value: number }[];
  /** Experiments shipped since activation, newest first. */
  readonly shipped: readonly ShippedExperimentBrief[];
  /** Link to the outcome's page in the dashboard, with its chart. */
  readonly chartUrl: string;
}

export type GateContextPackage =
  | PortfolioReviewContext
  | LaunchApprovalContext
  | AnalysisReviewContext
  | AgentRequestContext
  | AchievementReviewContext;

/** A decision a gate takes now, with its label for buttons and emails. */
export interface DecisionOption {
  readonly decision: string;
  readonly label: string;
  /** What the decision does, in one sentence. */
  readonly effect: string;
  /** `primary` (go ahead), `danger` (stop, undo) or `neutral`. */
  readonly tone: "primary" | "danger" | "neutral";
}
