/**
 * The parts of the REST API's JSON (docs/api.md) that the CLI reads. The
 * context package of a gate is the domain's own JSON-safe type.
 */
import type { DecisionOption, GateContextPackage } from "@outcome-runtime/core";

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

interface ArmJson {
  readonly name: string;
  /** Fraction of traffic. */
  readonly weight: number;
}

interface PredictionJson {
  readonly direction: "increase" | "decrease";
  /** A fraction when `relative`. */
  readonly effect: number;
  readonly relative: boolean;
}

export interface ExperimentJson {
  readonly id: string;
  readonly outcomeId: string;
  readonly key: string;
  readonly title: string;
  readonly statement: string;
  readonly mechanism: string;
  readonly prediction: PredictionJson | null;
  readonly measurementPlan: string;
  readonly rolloutPlan: string;
  readonly effort: string | null;
  readonly risk: string | null;
  readonly touchedPaths: string[];
  readonly arms: ArmJson[];
  readonly source: string;
  readonly state: string;
  readonly claimedBy: string | null;
  readonly createdAt: string;
  readonly launchedAt: string | null;
  readonly statsPlan: { readonly alpha: number; readonly sequentialPerArm: number | null } | null;
  readonly polling: {
    readonly lastPolledAt: string | null;
    readonly failures: number;
    readonly error: { readonly code: string; readonly message: string } | null;
  };
  readonly build: {
    readonly summary: string;
    readonly pullRequestUrl: string | null;
    readonly changedPaths: string[];
    readonly flagKey: string | null;
    readonly reportedBy: string;
    readonly reportedAt: string;
  } | null;
}

export interface AnalysisJson {
  readonly ts: string;
  readonly arms: Record<string, { units?: number; sum?: number; mean?: number }>;
  /** Treatment − control, absolute. */
  readonly effect: number | null;
  /** Always-valid confidence sequence for the effect. */
  readonly ci: [number, number] | null;
  /** Effect relative to control (a fraction). */
  readonly relativeEffect: number | null;
  /** Always-valid p-value. */
  readonly pValue: number | null;
  readonly srmPValue: number | null;
  readonly decision: { readonly action: string; readonly reason: string; readonly detail: string };
}

export interface GateJson {
  readonly id: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly kind: string;
  readonly status: string;
  readonly assignees: string[];
  readonly backup: string | null;
  readonly dueAt: string;
  readonly createdAt: string;
  readonly context: { readonly reason?: string; readonly detail?: string; readonly action?: string };
  readonly escalatedTo: string | null;
  readonly decision: {
    readonly decision: string;
    readonly reason: string | null;
    readonly decidedBy: string;
    readonly channel: string;
    readonly decidedAt: string;
  } | null;
}

export interface ExperimentDetailJson {
  readonly experiment: ExperimentJson;
  readonly gates: GateJson[];
  readonly latestAnalysis: AnalysisJson | null;
}

export interface GateDetailJson {
  readonly gate: GateJson;
  readonly experiments: ExperimentJson[];
  readonly contextPackage: GateContextPackage;
  readonly options: DecisionOption[];
}

export interface DecisionResultJson {
  readonly gate: GateJson;
  readonly experiments: ExperimentJson[];
  readonly learningId: string | null;
}

export interface OutcomeSummaryJson {
  readonly outcome: { readonly id: string; readonly slug: string; readonly name: string; readonly state: string };
}

export interface BriefJson {
  readonly brief: Record<string, unknown>;
  readonly markdown: string;
}
