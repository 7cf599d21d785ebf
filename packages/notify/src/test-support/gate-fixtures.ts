/**
 * Context packages and email models for the notify tests, in the shapes the
 * runtime builds them. Each factory takes overrides for the fields a test varies.
 */
import type {
  AchievementReviewContext,
  AgentRequestContext,
  AnalysisReviewContext,
  AnalysisSummary,
  BuildReport,
  DecisionOption,
  GateContextPackage,
  HypothesisBrief,
  LaunchApprovalContext,
  OutcomeBrief,
  PortfolioReviewContext,
} from "@outcome-runtime/core";
import type { GateEmailModel } from "../render";

const outcome: OutcomeBrief = {
  id: "out_1",
  slug: "checkout-conversion",
  name: "Checkout conversion",
  owner: "pm@example.com",
  target: "checkout_conversion increase to 0.042 by 2027-03-31",
};

export function hypothesis(overrides: Partial<HypothesisBrief> = {}): HypothesisBrief {
  return {
    id: "hyp_1",
    key: "one-page-checkout",
    title: "One-page checkout",
    statement: "Merging the three checkout steps into one page raises conversion.",
    prediction: { direction: "increase", effect: 0.05, relative: true },
    effort: "medium",
    risk: "low",
    touchedPaths: ["web/checkout/**", "api/orders.ts"],
    state: "proposed",
    source: "llm:claude-sonnet",
    ...overrides,
  };
}

export function portfolioContext(overrides: Partial<PortfolioReviewContext> = {}): PortfolioReviewContext {
  return {
    kind: "portfolio_review",
    outcome,
    hypotheses: [
      hypothesis(),
      hypothesis({
        id: "hyp_2",
        key: "trust-badges",
        title: "Trust badges at payment",
        statement: "Showing payment trust badges reduces abandonment.",
        prediction: { direction: "increase", effect: 0.004, relative: false },
        effort: null,
        risk: "high",
        touchedPaths: [],
        source: "human",
      }),
    ],
    ...overrides,
  };
}

const experiment = {
  id: "exp_1",
  key: "one-page-checkout",
  title: "One-page checkout",
  statement: "Merging the three checkout steps into one page raises conversion.",
  state: "built",
};

export function build(overrides: Partial<BuildReport> = {}): BuildReport {
  return {
    summary: "Adds a one-page checkout behind a flag.",
    pullRequestUrl: "https://github.com/acme/shop/pull/42",
    changedPaths: ["web/checkout/page.tsx", "web/checkout/steps.tsx"],
    flagKey: "one_page_checkout",
    reportedBy: "builder-agent",
    reportedAt: "2026-12-01T09:30:00Z",
    ...overrides,
  };
}

export function launchContext(overrides: Partial<LaunchApprovalContext> = {}): LaunchApprovalContext {
  return {
    kind: "launch_approval",
    outcome,
    experiment,
    build: build(),
    arms: [
      { name: "control", weight: 0.5 },
      { name: "treatment", weight: 0.5 },
    ],
    ...overrides,
  };
}

export function analysis(overrides: Partial<AnalysisSummary> = {}): AnalysisSummary {
  return {
    ts: "2026-12-10T06:00:00Z",
    metric: "checkout_conversion",
    metricKind: "proportion",
    effect: 0.012,
    ciLow: 0.002,
    ciHigh: 0.021,
    relativeLift: 0.052,
    pValue: 0.0031,
    alpha: 0.05,
    srm: { pValue: 0.41, alarm: false },
    guardrails: [
      { metric: "refund_rate", arm: "treatment", verdict: "ok", harm: 0.004, margin: 0.02, relative: true },
      { metric: "page_load_ms", arm: "treatment", verdict: "harm", harm: 120, margin: 50, relative: false },
    ],
    arms: [
      { name: "control", units: 12345, mean: 0.0231 },
      { name: "treatment", units: 12410, mean: 0.0351 },
    ],
    durationSeconds: 3 * 86_400 + 4 * 3_600,
    ...overrides,
  };
}

export function analysisContext(overrides: Partial<AnalysisReviewContext> = {}): AnalysisReviewContext {
  return {
    kind: "analysis_review",
    outcome,
    experiment: { ...experiment, state: "paused" },
    trigger: { action: "stop", reason: "win", detail: "the interval excludes zero" },
    analysis: analysis(),
    chartUrl: "https://outcomes.example.com/experiments/exp_1/chart",
    ...overrides,
  };
}

export const approve: DecisionOption = {
  decision: "approve",
  label: "Approve",
  effect: "Approves the hypotheses; they become experiments.",
  tone: "primary",
};

export const reject: DecisionOption = {
  decision: "reject",
  label: "Reject",
  effect: "Rejects every hypothesis of this review.",
  tone: "danger",
};

export function agentRequestContext(overrides: Partial<AgentRequestContext> = {}): AgentRequestContext {
  return {
    kind: "agent_request",
    outcome: portfolioContext().outcome,
    experiment: { ...experiment, state: "building" },
    question: "May I also change the <b>button</b> copy?",
    askedBy: "claude-code",
    ...overrides,
  };
}

export function achievementContext(overrides: Partial<AchievementReviewContext> = {}): AchievementReviewContext {
  return {
    kind: "achievement_review",
    outcome: portfolioContext().outcome,
    metricKind: "proportion",
    evidence: {
      goal: 0.042,
      direction: "increase",
      latest: 0.0446,
      mean: 0.0441,
      bound: 0.0433,
      confidence: 0.95,
      points: 7,
      windowStart: "2026-11-26T00:00:00Z",
      windowEnd: "2026-12-02T00:00:00Z",
      sustainSeconds: 7 * 86_400,
    },
    series: [
      { ts: "2026-11-25T00:00:00Z", value: 0.039 },
      { ts: "2026-12-02T00:00:00Z", value: 0.0446 },
    ],
    shipped: [
      {
        ...experiment,
        state: "shipped",
        shippedAt: "2026-11-20T10:00:00Z",
        relativeLift: 0.061,
      },
    ],
    chartUrl: "https://outcomes.example.com/outcomes/out_1",
    ...overrides,
  };
}

export function emailModel(context: GateContextPackage, overrides: Partial<GateEmailModel> = {}): GateEmailModel {
  return {
    reason: "opened",
    recipient: "pm@example.com",
    gate: {
      id: "gate_1",
      kind: context.kind,
      dueAt: "2026-12-03T14:05:09Z",
      slaSeconds: 2 * 86_400,
      dashboardUrl: "https://outcomes.example.com/gates/gate_1",
    },
    context,
    actions: [
      { option: approve, url: "https://outcomes.example.com/email-decisions/tok_approve", requiresSession: false },
      {
        option: reject,
        url: "https://outcomes.example.com/email-decisions/tok_reject?x=1&y=2",
        requiresSession: false,
      },
    ],
    linksExpireAt: "2026-12-05T14:05:00Z",
    ...overrides,
  };
}
