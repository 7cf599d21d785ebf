/**
 * The domain records the application works with (DESIGN §4). Repositories map
 * database rows to these; adapters map these to API shapes. Times are `Date`s,
 * durations are seconds, effects and weights are fractions.
 */
import type { ExperimentState } from "./experiment.machine";
import type { Actor, DecisionChannel, GateKind, GateState } from "./gate.machine";
import type { BuildReport } from "./gate-context";
import type { OutcomeState } from "./outcome.machine";

/**
 * A validated, normalised outcome spec as stored (the `OutcomeSpec` type of
 * `@outcome-runtime/spec`; kept opaque here because the domain does not depend
 * on the file format).
 */
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
}

export const DEFAULT_WORKSPACE_SETTINGS: WorkspaceSettings = {
  sessionRequiredDecisions: ["resume"],
  separationOfDuties: true,
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
  readonly subjectType: "outcome" | "experiment" | "gate" | "api_key" | "workspace" | "mcp_tool" | "secret";
  readonly subjectId: string;
  readonly before: unknown;
  readonly after: unknown;
  readonly requestId: string | null;
}

/** An API key's owner as the API sees it after authentication. */
export interface Principal extends Actor {
  readonly workspaceId: string;
}
