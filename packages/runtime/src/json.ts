/**
 * The records every face shows, as JSON: camelCase, times as ISO 8601
 * strings, arrays and objects copied (never the record's own). One mapper per
 * record. The REST API answers with them as they are (their schemas, which
 * the OpenAPI document publishes, are in services/api/src/dto.ts); the MCP
 * tools answer with projections of them, trimmed for an agent's context
 * (packages/mcp/src/shapes.ts).
 */
import type { AnalysisRecord, Experiment, Gate, Outcome, OutcomeRevision, SourceHealth } from "@outcome-runtime/core";
import type { OutcomeSummary } from "./outcomes";

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

/** An outcome: its state, revision and normalised spec. */
export function outcomeJson(o: Outcome) {
  return {
    id: o.id,
    slug: o.slug,
    name: o.name,
    owner: o.owner,
    state: o.state,
    revision: o.revision,
    contentHash: o.contentHash,
    spec: { ...o.spec } as Record<string, unknown>,
    createdAt: o.createdAt.toISOString(),
    updatedAt: o.updatedAt.toISOString(),
    activatedAt: iso(o.activatedAt),
    closedAt: iso(o.closedAt),
  };
}

/** An outcome with its experiments counted by state and its pending gates. */
export function summaryJson(s: OutcomeSummary) {
  return {
    outcome: outcomeJson(s.outcome),
    experimentCounts: { ...s.experimentCounts } as Record<string, number>,
    pendingGates: s.pendingGates,
  };
}

/** A metric source's health (`SourceHealth`), dates as ISO strings. */
export function sourceHealthJson(h: SourceHealth) {
  return {
    ...h,
    lastReadAt: iso(h.lastReadAt),
    polledUntil: iso(h.polledUntil),
    lastError: h.lastError === null ? null : { ...h.lastError, at: h.lastError.at.toISOString() },
    throttledUntil: iso(h.throttledUntil),
  };
}

/** One stored revision of an outcome. */
export function revisionJson(r: OutcomeRevision) {
  return {
    revision: r.revision,
    contentHash: r.contentHash,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
  };
}

/** An experiment: hypothesis, arms, state, statistical plan, polling state and build report. */
export function experimentJson(e: Experiment) {
  return {
    id: e.id,
    outcomeId: e.outcomeId,
    key: e.key,
    title: e.title,
    statement: e.statement,
    mechanism: e.mechanism,
    prediction: e.prediction === null ? null : { ...e.prediction },
    measurementPlan: e.measurementPlan,
    rolloutPlan: e.rolloutPlan,
    effort: e.effort,
    risk: e.risk,
    touchedPaths: [...e.touchedPaths],
    arms: e.arms.map((a) => ({ ...a })),
    source: e.source,
    state: e.state,
    claimedBy: e.claimedBy,
    portfolioGateId: e.portfolioGateId,
    createdAt: e.createdAt.toISOString(),
    updatedAt: e.updatedAt.toISOString(),
    launchedAt: iso(e.launchedAt),
    statsPlan: e.statsPlan === null ? null : { ...e.statsPlan },
    polling: {
      lastPolledAt: iso(e.polling.lastPolledAt),
      failures: e.polling.failures,
      error: e.polling.error === null ? null : { ...e.polling.error },
    },
    build: e.build === null ? null : { ...e.build, changedPaths: [...e.build.changedPaths] },
  };
}

/** A gate: who decides it by when, why it opened, and its decision once made. */
export function gateJson(g: Gate) {
  return {
    id: g.id,
    outcomeId: g.outcomeId,
    experimentId: g.experimentId,
    kind: g.kind,
    status: g.status,
    assignees: [...g.assignees],
    backup: g.backup,
    slaSeconds: g.slaSeconds,
    dueAt: g.dueAt.toISOString(),
    createdAt: g.createdAt.toISOString(),
    context: { ...g.context } as Record<string, unknown>,
    onExpiry: g.onExpiry,
    remindAt: g.remindAt.toISOString(),
    remindedAt: iso(g.remindedAt),
    escalatedAt: iso(g.escalatedAt),
    escalatedTo: g.escalatedTo,
    decision: g.decision
      ? {
          decision: g.decision.decision,
          reason: g.decision.reason,
          decidedBy: g.decision.decidedBy,
          channel: g.decision.channel,
          decidedAt: g.decision.decidedAt.toISOString(),
          detail: g.decision.detail ? { ...g.decision.detail } : null,
        }
      : null,
  };
}

/** One analysis of an experiment: the estimate, its always-valid interval and p-value, and the policy's decision. */
export function analysisJson(a: AnalysisRecord) {
  return {
    ts: a.ts.toISOString(),
    arms: { ...a.arms },
    effect: a.effect,
    ci: a.ciLow === null || a.ciHigh === null ? null : ([a.ciLow, a.ciHigh] as [number, number]),
    relativeLift: a.relativeLift,
    pValue: a.pValue,
    srmPValue: a.srmPValue,
    guardrails: a.guardrails.map((g) => ({ ...g })),
    decision: { ...a.decision },
    details: { ...a.details },
  };
}
