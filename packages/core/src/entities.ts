/**
 * The domain records the application works with (DESIGN §4). Repositories map
 * database rows to these; adapters map these to API shapes. Times are `Date`s,
 * durations are seconds, effects and weights are fractions.
 */
import type { PolicyDecision } from "./decision-policy";
import type { RuleCounts } from "./decision-rules";
import type { ExperimentState } from "./experiment.machine";
import type { Actor, DecisionChannel, GateKind, GateState } from "./gate.machine";
import type { OutcomeState } from "./outcome.machine";

/**
 * A validated, normalised outcome spec as stored (the `OutcomeSpec` type of
 * `@outcome-runtime/spec`; kept opaque here because the domain does not depend
 * on the file format).
 */
/** What the builder reported when the experiment was built. */
export interface BuildReport {
  readonly summary: string;
  readonly pullRequestUrl: string | null;
  readonly changedPaths: readonly string[];
  /** The feature flag that splits traffic, if the build uses one. */
  readonly flagKey: string | null;
  readonly reportedBy: string;
  /** ISO 8601. */
  readonly reportedAt: string;
}

export type StoredSpec = Readonly<Record<string, unknown>>;

export interface Workspace {
  readonly id: string;
  readonly slug: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly settings: WorkspaceSettings;
}

/** Workspace-wide settings an admin changes through the API. */
export interface WorkspaceSettings {
  /**
   * Gate decisions an email link may not make: the link's page asks for a
   * signed-in dashboard session instead (mail scanners may run a page and
   * submit its form). Default `["resume"]`: sending traffic to a paused
   * experiment again.
   */
  readonly sessionRequiredDecisions: readonly string[];
  /**
   * Separation of duties at launches: the person who revised an outcome may
   * not alone approve the launch of one of its experiments within the launch
   * gate's SLA (at least 48 hours) of the revision; another assignee or an admin approves. Default
   * true; turn it off for a one-person team.
   */
  readonly separationOfDuties: boolean;
  /**
   * How long raw signal points of finished experiments (and of closed
   * outcomes' own series) are kept: `days` after which the retention job
   * deletes them, except the points the latest analysis used; null keeps
   * them forever (the default). See `signal-retention.ts`.
   */
  readonly signalRetention: SignalRetention;
}

/** The `signalRetention` workspace setting: whole days (1 to 36 500), or null to keep points forever. */
export interface SignalRetention {
  readonly days: number | null;
}

export const DEFAULT_WORKSPACE_SETTINGS: WorkspaceSettings = {
  sessionRequiredDecisions: ["resume"],
  separationOfDuties: true,
  signalRetention: { days: null },
};

export interface Outcome {
  readonly id: string;
  readonly workspaceId: string;
  /** The `id` of the outcome.yaml, unique within a workspace. */
  readonly slug: string;
  readonly name: string;
  readonly owner: string;
  readonly state: OutcomeState;
  readonly revision: number;
  readonly contentHash: string;
  readonly spec: StoredSpec;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly activatedAt: Date | null;
  readonly closedAt: Date | null;
}

export interface OutcomeRevision {
  readonly outcomeId: string;
  readonly revision: number;
  readonly contentHash: string;
  readonly source: string;
  readonly spec: StoredSpec;
  readonly createdBy: string;
  readonly createdAt: Date;
}

/** One arm of an experiment; weights of all arms sum to 1. */
export interface Arm {
  readonly name: string;
  readonly weight: number;
}

/** The predicted effect of a hypothesis, relative (fraction) unless `relative` is false. */
export interface Prediction {
  readonly direction: "increase" | "decrease";
  readonly effect: number;
  readonly relative: boolean;
}

export const EXPERIMENT_SOURCES = ["human", "rules"] as const;

export interface Experiment {
  readonly id: string;
  readonly workspaceId: string;
  readonly outcomeId: string;
  /** Stable key used by flags and signal queries (`:experiment_key`). */
  readonly key: string;
  readonly title: string;
  readonly statement: string;
  readonly mechanism: string;
  readonly prediction: Prediction | null;
  readonly measurementPlan: string;
  readonly rolloutPlan: string;
  readonly effort: "low" | "medium" | "high" | null;
  readonly risk: "low" | "medium" | "high" | null;
  readonly touchedPaths: readonly string[];
  readonly arms: readonly Arm[];
  /** `human`, `rules` or `llm:<model>`. */
  readonly source: string;
  readonly state: ExperimentState;
  readonly claimedBy: string | null;
  readonly portfolioGateId: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** When traffic first flowed (the launch); null before. */
  readonly launchedAt: Date | null;
  /** The statistical plan fixed at the first analysis (τ², planned sample, why). */
  readonly statsPlan: StatsPlan | null;
  /** The signal polls: when the last one ran and the error of the last failed one. */
  readonly polling: PollStatus;
  /** What the builder reported with `report_built`; null before. */
  readonly build: BuildReport | null;
}

/** How an experiment's sequential test is tuned; fixed once, shown with every result. */
export interface StatsPlan {
  /** Mixture variance τ² of the mSPRT, in squared metric units. */
  readonly tau2: number;
  /** How τ² was chosen, in words (e.g. "planned sample of 31,000 per arm"). */
  readonly tau2Source: string;
  readonly alpha: number;
  readonly power: number;
  /** Absolute effect the plan is sized for (metric units), or null when none was given. */
  readonly mde: number | null;
  /** Units per arm for a fixed-horizon test of the same power (null without an MDE). */
  readonly fixedPerArm: number | null;
  /** Units per arm at which the always-valid test reaches the power (the planned sample; null without an MDE). */
  readonly sequentialPerArm: number | null;
  /** Per-unit variance and control mean the plan assumed. */
  readonly baseline: number;
  readonly variance: number;
}

// ---------------------------------------------------------------------------
// Analyses: one row per experiment per analysed snapshot (DESIGN §4). The JSON
// columns keep the snake_case of the statistics (packages/stats) they hold.
// Fields added with the decision rules are optional: rows written before them
// lack them (read as the defaults: no limit, not dry-run, no failures).

/** A closed interval `[lower, upper]`, in the units of what it bounds. */
type Interval = [number, number];

/** Cumulative totals of one arm at the analysed snapshot, and their per-unit summary. */
export type AnalysisArm = {
  readonly units: number;
  /** Sum of the metric (conversions for a proportion). */
  readonly sum: number;
  readonly sumSq: number;
  /** Per-unit mean (the rate, a fraction, for a proportion); null while undefined (no units). */
  readonly mean: number | null;
  /**
   * Per-unit variance; null while undefined (fewer than two units of a mean). For a ratio metric, the
   * linearised per-unit variance n·Var(R) of the delta method (Deng, Knoblich & Lu 2018).
   */
  readonly variance: number | null;
  /**
   * A ratio metric's denominator: Σd, Σd² and Σn·d over the arm's units. `sum` and `sumSq` are then
   * the numerator's, and `mean` the ratio R = Σn / Σd (null while Σd is 0). Absent for other kinds.
   */
  readonly denominator?: { readonly sum: number; readonly sumSq: number; readonly sumProduct: number };
};

/** One guardrail's one-sided sequential harm test at an analysis, for one treatment arm. */
type AnalysisGuardrail = {
  readonly metric: string;
  /** The treatment arm compared with control. */
  readonly arm: string;
  readonly verdict: "violated" | "ok" | "inconclusive";
  /** Estimated harm, in tolerance units (a fraction of control when `relative`); null while undefined. */
  readonly harm: number | null;
  /** Always-valid bounds on the harm. */
  readonly harmCi: Interval | null;
  /** Always-valid p-value of "harm ≤ margin". */
  readonly pValue: number | null;
  /** The tolerated regression (`max_regression` of outcome.yaml). */
  readonly margin: number;
  readonly relative: boolean;
  /** Violated analyses tolerated before a pause (−1: never pauses). */
  readonly failureLimit?: number;
  /** Measured and shown, never acted on. */
  readonly dryRun?: boolean;
  /** Violated analyses of this metric so far, this one included. */
  readonly failedAnalyses?: number;
};

/** The primary metric's comparison of one treatment arm with control (the mSPRT look). */
export type AnalysisComparison = {
  readonly arm: string;
  /** Treatment − control, in metric units (a difference of fractions for a proportion). */
  readonly effect: number | null;
  /** Always-valid confidence sequence of the effect. */
  readonly ci: Interval | null;
  /** Effect over control (a fraction). */
  readonly relativeLift: number | null;
  readonly relativeCi: Interval | null;
  /** Always-valid p-value. */
  readonly pValue: number | null;
  /**
   * With several treatments: Holm's adjustment of the treatments' always-valid p-values at this look,
   * the p-value a win or loss is declared on (`ci` is then the confidence sequence at α/k). Absent
   * with one treatment (the same as `pValue`) and in rows written before it existed.
   */
  readonly adjustedPValue?: number | null;
  /** ln Λ of the mixture likelihood ratio at this look. */
  readonly logLambda: number | null;
  /** Fixed-horizon p-value of the same data (for comparison only; never decides). */
  readonly fixedPValue: number | null;
  /**
   * Present when the look is CUPED-adjusted (every arm's source gave the pre-exposure covariate):
   * θ, the slope pooled over all arms, and 1 − adjusted / unadjusted variance of the effect (a
   * fraction). `effect`, `ci` and the p-values are then the adjusted ones. Absent otherwise.
   */
  readonly cuped?: { readonly theta: number | null; readonly varianceReduction: number | null };
  readonly warnings: readonly string[];
};

/**
 * A secondary metric's comparison of one treatment arm with control: reported with its always-valid
 * interval (at α/k with k treatments), never acted on.
 */
export type AnalysisSecondary = {
  readonly metric: string;
  readonly kind: "proportion" | "mean" | "ratio";
  readonly arm: string;
  /** The direction that reads as better, for display. */
  readonly direction: "increase" | "decrease";
  /** Treatment − control, in metric units. */
  readonly effect: number | null;
  readonly ci: Interval | null;
  /** Effect over control (a fraction). */
  readonly relativeLift: number | null;
  readonly relativeCi: Interval | null;
  /** Always-valid p-value (information only). */
  readonly pValue: number | null;
  readonly warnings: readonly string[];
};

/** What one look of a sequential test hands to the next: running p-value and intervals. */
type SequentialLookCarry = {
  readonly pValue: number;
  readonly ci: Interval;
  readonly relativeCi: Interval | null;
};

/** Kept in each analysis so the next snapshot continues the running minimum and intersections. */
export type AnalysisCarry = {
  /** Per treatment arm: the primary metric's running p-value and intervals. */
  readonly arms: Record<string, SequentialLookCarry>;
  /**
   * With several treatments, per treatment arm: the running state of its confidence sequence at the
   * full α, which the kill-switch reads (`arms` holds the one at α/k). Absent with one treatment.
   */
  readonly killArms?: Record<string, SequentialLookCarry>;
  /** Per secondary metric and treatment arm: its τ² (fixed when first seen) and running state. */
  readonly secondary?: Record<string, { readonly tau2: number; readonly arms: Record<string, SequentialLookCarry> }>;
  /** Running minimum of the sequential SRM p-value. */
  readonly srm: number | null;
  /** Per guardrail metric and treatment arm: its τ² (fixed when first seen) and running state. */
  readonly guardrails: Record<string, { readonly tau2: number; readonly arms: Record<string, SequentialLookCarry> }>;
  /**
   * Failed and inconclusive analyses so far (the decision rules' counts), this one included; back to
   * zero after a decision, so a resumed experiment gets its limits afresh. Absent in rows written
   * before the rules existed (read as zero).
   */
  readonly rules?: RuleCounts;
};

/** How an analysis was computed: each comparison, SRM, the plan in force, the rules' counts, the carry. */
type AnalysisDetails = {
  /** One per treatment arm, in the experiment's arm order. */
  readonly comparisons: readonly AnalysisComparison[];
  /** Per secondary metric and treatment arm (outcome.yaml `secondary_metrics`); absent without any. */
  readonly secondary?: readonly AnalysisSecondary[];
  readonly srm: {
    /** Chi-square p-value against the configured weights. */
    readonly pValue: number | null;
    readonly alarm: boolean;
    /** Always-valid (sequential) SRM p-value. */
    readonly sequentialPValue: number | null;
    readonly sequentialAlarm: boolean;
  };
  /** Seconds from the experiment's start to the snapshot. */
  readonly elapsedSeconds: number;
  /** Mixture variance of the mSPRT (squared metric units) and how it was chosen. */
  readonly tau2: number;
  readonly tau2Source: string;
  /**
   * Units per arm of the plan: always-valid, and fixed-horizon for comparison; null without an MDE. With
   * CUPED, `plannedPerArm` is the plan's times `1 − variance reduction` of the headline comparison (what the
   * adjusted test needs; futility is judged there) and `unadjustedPlannedPerArm` the plan's own.
   */
  readonly plannedPerArm: number | null;
  readonly unadjustedPlannedPerArm?: number | null;
  readonly fixedPerArm: number | null;
  readonly rules?: {
    readonly counts: RuleCounts;
    readonly killFailureLimit: number | null;
    readonly inconclusiveLimit: number;
  };
  readonly carry: AnalysisCarry;
};

/** What an analysis stores (the runtime's analysis writes it; the repository returns it with its id). */
export interface NewAnalysis {
  readonly workspaceId: string;
  readonly experimentId: string;
  /** The analysed snapshot's time. */
  readonly ts: Date;
  /** Per arm name. */
  readonly arms: Readonly<Record<string, AnalysisArm>>;
  /**
   * The first treatment arm's effect, interval, relative lift and p-value (see `details.comparisons`):
   * the figures a decision is declared on, so with several treatments the interval is at α/k and the
   * p-value is the Holm-adjusted one (its own is in `details.comparisons[0].pValue`).
   */
  readonly effect: number | null;
  readonly ciLow: number | null;
  readonly ciHigh: number | null;
  readonly relativeLift: number | null;
  readonly pValue: number | null;
  readonly srmPValue: number | null;
  readonly guardrails: readonly AnalysisGuardrail[];
  /** The stopping policy's answer at this snapshot (`continue` included). */
  readonly decision: PolicyDecision;
  readonly details: AnalysisDetails;
}

/** One analysis row: a snapshot's effect, always-valid interval and p-value, SRM, guardrails and decision. */
export interface AnalysisRecord extends NewAnalysis {
  readonly id: string;
  readonly createdAt: Date;
}

/**
 * How one metric's source is doing for an experiment (or, summed over its
 * running experiments, for an outcome): the last successful read, the last
 * error with the source's own message, and whether its rate limit is holding
 * its polls back.
 */
export interface SourceHealth {
  readonly metric: string;
  readonly role: "primary" | "guardrail" | "secondary" | "outcome";
  /** The connector type (`postgres`, `prometheus`, …); null before the first read. */
  readonly connector: string | null;
  /** The connector's one-line description (never a secret). */
  readonly source: string | null;
  /**
   * `ok`: the last read succeeded; `failing`: the last read failed; `throttled`: the source's rate limit holds
   * reads back until `throttledUntil` (nothing is lost: the next read starts from `polledUntil`);
   * `waiting`: never read yet.
   */
  readonly status: "ok" | "failing" | "throttled" | "waiting";
  readonly lastReadAt: Date | null;
  /** As-of time of the newest stored point: the next read starts there. */
  readonly polledUntil: Date | null;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: Date } | null;
  readonly throttledUntil: Date | null;
  readonly throttleNote: string | null;
  /** On an outcome: the running experiments measured through this source, and how many of them fail. */
  readonly experiments?: number;
  readonly failingExperiments?: number;
}

export interface PollStatus {
  readonly lastPolledAt: Date | null;
  readonly failures: number;
  readonly error: { readonly code: string; readonly message: string; readonly at: string } | null;
}

export interface GateDecision {
  readonly decision: string;
  readonly reason: string | null;
  readonly decidedBy: string;
  readonly channel: DecisionChannel;
  readonly decidedAt: Date;
  /**
   * Per-item detail, e.g. `{ approved: [ids], rejected: [ids] }` of a portfolio
   * review decided item by item; null when the decision applies to everything.
   */
  readonly detail: Readonly<Record<string, unknown>> | null;
}

/** What a gate's SLA expiry does: escalate to the backup (or the owner), or expire the gate. */
export type GateExpiryPolicy = "escalate" | "expire";

export interface Gate {
  readonly id: string;
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly kind: GateKind;
  readonly status: GateState;
  readonly assignees: readonly string[];
  readonly backup: string | null;
  readonly slaSeconds: number;
  readonly dueAt: Date;
  readonly createdAt: Date;
  readonly decision: GateDecision | null;
  /** Why the gate was opened, e.g. `{ action: "analyse", reason: "win" }` for an analysis review. */
  readonly context: Readonly<Record<string, unknown>>;
  readonly onExpiry: GateExpiryPolicy;
  /** When the reminder is due: half the SLA after opening. */
  readonly remindAt: Date;
  readonly remindedAt: Date | null;
  /** When the SLA expired and the gate was escalated, and to whom (the backup, or the owner). */
  readonly escalatedAt: Date | null;
  readonly escalatedTo: string | null;
}

export interface AuditEvent {
  readonly id: string;
  readonly workspaceId: string;
  readonly at: Date;
  readonly actor: Pick<Actor, "id" | "name" | "role"> | null;
  readonly channel: DecisionChannel;
  readonly action: string;
  readonly subjectType:
    | "outcome"
    | "experiment"
    | "gate"
    | "api_key"
    | "workspace"
    | "mcp_tool"
    | "secret"
    | "member"
    | "invitation";
  readonly subjectId: string;
  readonly before: unknown;
  readonly after: unknown;
  readonly requestId: string | null;
}

/** An API key's owner as the API sees it after authentication. */
export interface Principal extends Actor {
  readonly workspaceId: string;
  /**
   * The member behind the principal: a member's session (then `id` is the
   * member's id too), or the owner of the key; absent for agents' and
   * bootstrap keys.
   */
  readonly memberId?: string | null;
}
