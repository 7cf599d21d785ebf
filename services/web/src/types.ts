/**
 * The shapes the dashboard reads from the public API (see services/api/src/dto.ts
 * and docs/api.md). Only the fields the pages use are named; the rest pass through.
 */

export type Role = "admin" | "member" | "approver" | "agent";

export interface Principal {
  name: string;
  role: Role | string;
}

export interface SessionInfo {
  principal: Principal;
  csrfToken: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId?: string;
  errors?: unknown[];
  details?: Record<string, unknown>;
}

export interface OutcomeSpec {
  signal?: { metric?: string; kind?: string; baseline?: number };
  target?: { value?: number; direction?: "increase" | "decrease"; relative?: boolean };
  horizon?: { end_date?: string; seconds?: number };
  [key: string]: unknown;
}

export interface Outcome {
  id: string;
  slug: string;
  name: string;
  owner: string;
  state: string;
  revision: number;
  contentHash: string;
  spec: OutcomeSpec;
  createdAt: string;
  updatedAt: string;
  activatedAt: string | null;
  closedAt: string | null;
}

export interface OutcomeSummary {
  outcome: Outcome;
  experimentCounts: Record<string, number>;
  pendingGates: number;
}

export interface Revision {
  revision: number;
  contentHash: string;
  createdBy: string;
  createdAt: string;
}

export interface OutcomeDetail extends OutcomeSummary {
  revisions: Revision[];
  gates: Gate[];
  polling: { requestedSeconds: number; effectiveSeconds: number; note: string | null };
}

export interface SeriesPoint {
  ts: string;
  value: number | null;
}

export interface OutcomeSeries {
  metric: string;
  kind: string;
  points: SeriesPoint[];
  goal: number | null;
  baseline: number | null;
  horizonEnd: string | null;
  current: number | null;
}

export interface Prediction {
  direction: "increase" | "decrease";
  effect: number;
  relative: boolean;
}

export interface StatsPlan {
  tau2: number;
  tau2Source: string;
  alpha: number;
  power: number;
  mde: number | null;
  fixedPerArm: number | null;
  sequentialPerArm: number | null;
  baseline: number;
  variance: number;
}

export interface Arm {
  name: string;
  weight: number;
}

export interface Build {
  summary: string;
  pullRequestUrl: string | null;
  changedPaths: string[];
  flagKey: string | null;
  reportedBy: string;
  reportedAt: string;
}

export interface Experiment {
  id: string;
  outcomeId: string;
  key: string;
  title: string;
  statement: string;
  mechanism: string;
  prediction: Prediction | null;
  measurementPlan: string;
  rolloutPlan: string;
  effort: string | null;
  risk: string | null;
  touchedPaths: string[];
  arms: Arm[];
  source: string;
  state: string;
  claimedBy: string | null;
  portfolioGateId: string | null;
  createdAt: string;
  updatedAt: string;
  launchedAt: string | null;
  statsPlan: StatsPlan | null;
  polling: {
    lastPolledAt: string | null;
    failures: number;
    error: { code: string; message: string; at: string } | null;
  };
  build: Build | null;
}

export interface ArmEstimate {
  units?: number;
  mean?: number | null;
  variance?: number | null;
  [key: string]: unknown;
}

export interface GuardrailResult {
  metric?: string;
  arm?: string;
  verdict?: string;
  harm?: number | null;
  harm_ci?: [number, number] | null;
  p_value?: number | null;
  margin?: number;
  relative?: boolean;
  [key: string]: unknown;
}

export interface Analysis {
  ts: string;
  arms: Record<string, ArmEstimate>;
  effect: number | null;
  ci: [number, number] | null;
  relativeEffect: number | null;
  pValue: number | null;
  srmPValue: number | null;
  guardrails: GuardrailResult[];
  decision: { action: string; reason: string; detail: string };
  details?: { srm?: { alarm?: boolean }; elapsed_seconds?: number; [key: string]: unknown };
}

export interface GateDecision {
  decision: string;
  reason: string | null;
  decidedBy: string;
  channel: string;
  decidedAt: string;
  detail: Record<string, unknown> | null;
}

export interface Gate {
  id: string;
  outcomeId: string;
  experimentId: string | null;
  kind: string;
  status: string;
  assignees: string[];
  backup: string | null;
  slaSeconds: number;
  dueAt: string;
  createdAt: string;
  context: Record<string, unknown>;
  onExpiry: "escalate" | "expire";
  remindAt: string;
  remindedAt: string | null;
  escalatedAt: string | null;
  escalatedTo: string | null;
  decision: GateDecision | null;
}

export interface ExperimentDetail {
  experiment: Experiment;
  gates: Gate[];
  latestAnalysis: Analysis | null;
}

export interface OutcomeBrief {
  id: string;
  slug: string;
  name: string;
  owner: string;
  target: string;
}

export interface ExperimentBrief {
  id: string;
  key: string;
  title: string;
  statement: string;
  state: string;
}

export interface HypothesisBrief extends ExperimentBrief {
  prediction: Prediction | null;
  effort: string | null;
  risk: string | null;
  touchedPaths: string[];
  source: string;
}

export interface AnalysisSummary {
  ts: string;
  metric: string;
  metricKind: "proportion" | "mean";
  effect: number | null;
  ciLow: number | null;
  ciHigh: number | null;
  relativeEffect: number | null;
  pValue: number | null;
  alpha: number;
  srm: { pValue: number | null; alarm: boolean };
  guardrails: {
    metric: string;
    arm: string;
    verdict: string;
    harm: number | null;
    margin: number;
    relative: boolean;
  }[];
  arms: { name: string; units: number; mean: number | null }[];
  durationSeconds: number | null;
}

export type ContextPackage =
  | { kind: "portfolio_review"; outcome: OutcomeBrief; hypotheses: HypothesisBrief[] }
  | { kind: "launch_approval"; outcome: OutcomeBrief; experiment: ExperimentBrief; build: Build | null; arms: Arm[] }
  | {
      kind: "analysis_review";
      outcome: OutcomeBrief;
      experiment: ExperimentBrief;
      trigger: { action: string; reason: string; detail: string | null };
      analysis: AnalysisSummary | null;
      chartUrl: string;
    }
  | { kind: "agent_request"; outcome: OutcomeBrief; experiment: ExperimentBrief; question: string; askedBy: string };

export interface DecisionOption {
  decision: string;
  label: string;
  effect: string;
  tone: "primary" | "danger" | "neutral";
}

export interface GateDetail {
  gate: Gate;
  experiments: Experiment[];
  contextPackage: ContextPackage;
  options: DecisionOption[];
}

export interface Learning {
  id: string;
  statement: string;
  decision: string;
  effect: number | null;
  ciLow: number | null;
  ciHigh: number | null;
  tags: string[];
  outcomeId: string;
  experimentId: string | null;
  createdAt: string;
  links?: unknown;
}

export interface AuditEvent {
  id: string;
  at: string;
  actor: { id: string; name: string; role: string } | null;
  channel: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before: unknown;
  after: unknown;
  requestId: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string | null;
}

export interface SpecError {
  file?: string;
  line: number;
  column: number;
  pointer?: string;
  code: string;
  message: string;
  hint?: string | null;
}

export interface ValidateResult {
  valid: boolean;
  errors: SpecError[];
}

export interface Spend {
  spentUsd: number;
  budgetUsd: number | null;
  [key: string]: unknown;
}

export interface LlmUsage {
  month: Spend;
  today: Spend;
  byOperation: Record<string, unknown>[];
  recent: Record<string, unknown>[];
}
