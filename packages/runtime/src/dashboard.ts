/**
 * What the dashboard reads beyond the other use cases: an outcome's signal
 * over time, LLM spend against the budgets, the learning library and the audit
 * log with filters, a dry-run validation of an outcome file, and the batches
 * of new audit events and analyses that the live stream fans out.
 */

import { type AuditEvent, authorize, type DecisionChannel } from "@outcome-runtime/core";
import { audit, learnings, llm, type Page, signals } from "@outcome-runtime/db";
import type { Diagnostic } from "@outcome-runtime/spec";
import { type LearningHit, learningHit, outcomeProgress } from "./agents";
import { checkOutcomePeople, checkOutcomeSources, type OutcomeCheckDeps, parseOutcomeChecked } from "./check-outcome";
import { type Caller, nowOf, type RuntimeDeps } from "./context";
import { type LearningSearchInfo, prepareLearningSearch } from "./learning-search";
import { requireOutcome } from "./outcomes";
import { specOf } from "./spec-of";

/** Most points a series answer carries; longer series are thinned evenly. */
export const MAX_SERIES_POINTS = 2000;

export interface OutcomeSeries {
  readonly metric: string;
  /** `ratio`: the level is Σnumerator / Σdenominator over the units. */
  readonly kind: "proportion" | "mean" | "ratio";
  /** Oldest first; `value` is the signal's level at `ts` (a fraction for proportions). */
  readonly points: readonly { readonly ts: string; readonly value: number }[];
  /** The level the target asks for, or null while it cannot be computed. */
  readonly goal: number | null;
  readonly baseline: number | null;
  /** ISO end of the horizon, or null before activation. */
  readonly horizonEnd: string | null;
  /** The latest value, or null before the first poll. */
  readonly current: number | null;
}

/**
 * Keep at most `max` items, evenly spaced, always keeping the first and the
 * last (the newest value is the one people look at).
 */
export function downsampleEvenly<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return [...items];
  if (max <= 1) return items.slice(-1);
  const step = (items.length - 1) / (max - 1);
  const kept: T[] = [];
  for (let i = 0; i < max; i++) kept.push(items[Math.round(i * step)] as T);
  return kept;
}

/**
 * The outcome's own signal over time, with its goal, baseline and horizon.
 *
 * @throws DomainError `forbidden` (`outcome.read`), `not_found` for an unknown id or slug.
 */
export async function outcomeSeries(deps: RuntimeDeps, caller: Caller, idOrSlug: string): Promise<OutcomeSeries> {
  authorize(caller, "outcome.read");
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, idOrSlug);
  const spec = specOf(outcome);
  const [points, progress] = await Promise.all([
    signals.outcomeSeriesPoints(deps.db, outcome.id),
    outcomeProgress(deps, outcome),
  ]);
  return {
    metric: spec.signal.metric,
    kind: spec.signal.kind,
    points: downsampleEvenly(points, MAX_SERIES_POINTS).map((p) => ({ ts: p.ts.toISOString(), value: p.sum })),
    goal: progress.goal,
    baseline: progress.baseline,
    horizonEnd: progress.horizonEnd,
    current: progress.current,
  };
}

/** The budgets of the LLM configuration (`LLM_MONTHLY_BUDGET_USD`, `LLM_DAILY_USER_BUDGET_USD`); null is no cap. */
export interface LlmBudgets {
  readonly monthlyWorkspaceBudgetUsd: number | null;
  readonly dailyUserBudgetUsd: number | null;
}

export interface LlmUsage {
  /** The workspace this calendar month (UTC) against the monthly workspace budget. */
  readonly month: { readonly spentUsd: number; readonly budgetUsd: number | null };
  /** The caller today (UTC) against the daily budget, which is per user. */
  readonly today: { readonly spentUsd: number; readonly budgetUsd: number | null };
  /** This month by operation, the costliest first. */
  readonly byOperation: readonly llm.OperationUsage[];
  /** The newest runs of the workspace (at most `recentLimit`). */
  readonly recent: readonly {
    readonly at: string;
    readonly operation: string;
    readonly model: string;
    readonly source: string;
    readonly costUsd: number;
    readonly inputTokens: number;
    readonly outputTokens: number;
    readonly cacheHit: boolean;
    readonly fallbackReason: string | null;
  }[];
}

function startOfMonthUtc(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

function startOfDayUtc(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}

/**
 * LLM spend against the budgets, in the same windows as the gateway's
 * budget checks (UTC calendar month for the workspace, UTC day per user).
 *
 * @throws DomainError `forbidden` (`usage.read`).
 */
export async function llmUsage(
  deps: RuntimeDeps,
  caller: Caller,
  budgets: LlmBudgets,
  options: { recentLimit?: number } = {},
): Promise<LlmUsage> {
  authorize(caller, "usage.read");
  const workspaceId = caller.principal.workspaceId;
  const now = nowOf(deps);
  const monthStart = startOfMonthUtc(now);
  const monthEnd = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  const dayStart = startOfDayUtc(now);
  const [month, today, byOperation, recent] = await Promise.all([
    llm.spentUsd(deps.db, { workspaceId, since: monthStart, until: monthEnd }),
    llm.spentUsd(deps.db, {
      workspaceId,
      since: dayStart,
      until: new Date(dayStart.getTime() + 86_400_000),
      actorId: caller.principal.id,
    }),
    llm.usageByOperation(deps.db, { workspaceId, since: monthStart, until: monthEnd }),
    llm.listCalls(deps.db, workspaceId, { limit: Math.min(Math.max(options.recentLimit ?? 50, 1), 200) }),
  ]);
  return {
    month: { spentUsd: month, budgetUsd: budgets.monthlyWorkspaceBudgetUsd },
    today: { spentUsd: today, budgetUsd: budgets.dailyUserBudgetUsd },
    byOperation,
    recent: recent.map((c) => ({
      at: c.at.toISOString(),
      operation: c.operation,
      model: c.model,
      source: c.source,
      costUsd: c.costUsd,
      inputTokens: c.inputTokens,
      outputTokens: c.outputTokens,
      cacheHit: c.cacheHit,
      fallbackReason: c.fallbackReason,
    })),
  };
}

/** A learning as the library lists it: the same shape as a search hit (`rank` 0 without a query). */
export type LearningListItem = LearningHit;

/**
 * The learning library: with `query`, the learnings matching any of its words
 * or, when the search is hybrid, its meaning, best first (as `queryLearnings`;
 * `search` says which); without, the newest first (`search` null). `outcome`
 * (id or slug) and `tag` narrow it; at most `limit` (default 10, max 50).
 *
 * @throws DomainError `forbidden` (`learning.read`), `not_found` for an unknown outcome.
 */
export async function listLearnings(
  deps: RuntimeDeps,
  caller: Caller,
  input: {
    query?: string | undefined;
    outcome?: string | undefined;
    tag?: string | undefined;
    limit?: number | undefined;
  },
): Promise<{ items: LearningListItem[]; search: LearningSearchInfo | null }> {
  authorize(caller, "learning.read");
  const workspaceId = caller.principal.workspaceId;
  const outcomeId = input.outcome ? (await requireOutcome(deps.db, workspaceId, input.outcome)).id : undefined;
  const query = input.query?.trim() ?? "";
  const prepared =
    query === ""
      ? null
      : await prepareLearningSearch(deps, {
          workspaceId,
          query,
          actor: caller.principal,
          channel: caller.channel,
          requestId: caller.requestId,
          outcomeId: outcomeId ?? null,
        });
  const found = await learnings.browseLearnings(deps.db, workspaceId, {
    ...(query === "" ? {} : { words: query.split(/\s+/) }),
    ...(outcomeId === undefined ? {} : { outcomeId }),
    ...(input.tag ? { tag: input.tag } : {}),
    limit: Math.min(Math.max(input.limit ?? 10, 1), 50),
    ...(prepared?.semantic === undefined ? {} : { semantic: prepared.semantic }),
  });
  return { items: found.map(learningHit), search: prepared?.info ?? null };
}

/** Filters of the audit log; every one optional. */
export interface AuditFilter {
  readonly subjectType?: AuditEvent["subjectType"] | undefined;
  readonly subjectId?: string | undefined;
  readonly action?: string | undefined;
  /** The actor's name. */
  readonly actor?: string | undefined;
  readonly channel?: DecisionChannel | undefined;
  readonly cursor?: string | undefined;
  /** Page size, 1–1000 (default 100). */
  readonly limit?: number | undefined;
}

/**
 * A page of the caller's workspace's audit log, newest first.
 *
 * @throws DomainError `forbidden` (`audit.read`); `validation_failed` for a cursor that is not a `nextCursor`.
 */
export async function listAuditPage(deps: RuntimeDeps, caller: Caller, filter: AuditFilter): Promise<Page<AuditEvent>> {
  authorize(caller, "audit.read");
  return audit.listAuditEventsPage(deps.db, caller.principal.workspaceId, {
    ...(filter.subjectType ? { subjectType: filter.subjectType } : {}),
    ...(filter.subjectId ? { subjectId: filter.subjectId } : {}),
    ...(filter.action ? { action: filter.action } : {}),
    ...(filter.actor ? { actorName: filter.actor } : {}),
    ...(filter.channel ? { channel: filter.channel } : {}),
    ...(filter.cursor ? { cursor: filter.cursor } : {}),
    ...(filter.limit === undefined ? {} : { limit: filter.limit }),
  });
}

/**
 * Check an outcome file without storing anything: the same diagnostics as
 * `POST /v1/outcomes` (every error, with line, column, code, message and
 * hint), sources included, and the warnings of sources the API could not
 * check.
 *
 * @throws DomainError `forbidden` (`outcome.validate`).
 */
export async function validateOutcomeSource(
  deps: OutcomeCheckDeps,
  caller: Caller,
  source: string,
  file = "outcome.yaml",
): Promise<{ valid: boolean; errors: readonly Diagnostic[]; warnings: readonly Diagnostic[] }> {
  authorize(caller, "outcome.validate");
  const parsed = parseOutcomeChecked(source, file, deps.sources);
  if (!parsed.ok) return { valid: false, errors: parsed.errors, warnings: [] };
  const found = await checkOutcomeSources(deps, caller.principal.workspaceId, parsed, file);
  const people = await checkOutcomePeople(deps, caller.principal.workspaceId, parsed, file);
  const errors = [...found.errors, ...people.errors];
  return { valid: errors.length === 0, errors, warnings: [...found.warnings, ...people.warnings] };
}

/** One message of the live stream, for one workspace. */
export type StreamEvent =
  | {
      readonly type: "audit";
      readonly event: {
        readonly id: string;
        readonly at: string;
        readonly action: string;
        readonly subjectType: string;
        readonly subjectId: string;
        readonly actor: { readonly id: string; readonly name: string; readonly role: string } | null;
        readonly channel: string;
        readonly after: unknown;
      };
    }
  | {
      readonly type: "analysis";
      readonly experimentId: string;
      readonly ts: string;
      readonly effect: number | null;
      readonly ciLow: number | null;
      readonly ciHigh: number | null;
      readonly pValue: number | null;
      readonly decision: unknown;
    };

/**
 * Where the live stream has read up to: the last audit event id, and the
 * analyses recently sent (kept for `overlapMs`, since an analysis committed
 * late may carry a `created_at` before the newest one already read).
 */
export interface StreamCursor {
  auditId: string;
  analysesAfter: Date;
  /** The last read was a full batch: read on from `analysesAfter` without the overlap, or it would not move. */
  analysesBacklog: boolean;
  readonly seenAnalyses: Map<string, number>;
}

/** How far back each read of analyses looks again, to catch late commits. */
export const STREAM_OVERLAP_MS = 10_000;

/** Where a new stream starts: after everything that exists now. */
export async function startStreamCursor(deps: RuntimeDeps): Promise<StreamCursor> {
  const now = nowOf(deps);
  const [auditId, recent] = await Promise.all([
    audit.latestAuditEventId(deps.db),
    signals.listAnalysesCreatedAfter(deps.db, new Date(now.getTime() - STREAM_OVERLAP_MS), 5000),
  ]);
  // What the overlap would read again is old news to this stream.
  return {
    auditId,
    analysesAfter: now,
    analysesBacklog: false,
    seenAnalyses: new Map(recent.map((a) => [a.id, a.createdAt.getTime()])),
  };
}

/**
 * The audit events and analyses since `cursor`, by workspace id, oldest first;
 * advances `cursor`. At most `limit` of each per call (the rest come next call).
 */
export async function readStreamEvents(
  deps: RuntimeDeps,
  cursor: StreamCursor,
  limit = 500,
): Promise<Map<string, StreamEvent[]>> {
  const since = cursor.analysesBacklog
    ? cursor.analysesAfter
    : new Date(cursor.analysesAfter.getTime() - STREAM_OVERLAP_MS);
  const [events, analyses] = await Promise.all([
    audit.listAuditEventsAfter(deps.db, cursor.auditId, limit),
    signals.listAnalysesCreatedAfter(deps.db, since, limit),
  ]);
  const byWorkspace = new Map<string, StreamEvent[]>();
  const push = (workspaceId: string, event: StreamEvent) => {
    const list = byWorkspace.get(workspaceId);
    if (list) list.push(event);
    else byWorkspace.set(workspaceId, [event]);
  };
  for (const e of events) {
    push(e.workspaceId, {
      type: "audit",
      event: {
        id: e.id,
        at: e.at.toISOString(),
        action: e.action,
        subjectType: e.subjectType,
        subjectId: e.subjectId,
        actor: e.actor,
        channel: e.channel,
        after: e.after ?? null,
      },
    });
    cursor.auditId = e.id;
  }
  for (const a of analyses) {
    const created = a.createdAt.getTime();
    if (created > cursor.analysesAfter.getTime()) cursor.analysesAfter = a.createdAt;
    if (cursor.seenAnalyses.has(a.id)) continue;
    cursor.seenAnalyses.set(a.id, created);
    push(a.workspaceId, {
      type: "analysis",
      experimentId: a.experimentId,
      ts: a.ts.toISOString(),
      effect: a.effect,
      ciLow: a.ciLow,
      ciHigh: a.ciHigh,
      pValue: a.pValue,
      decision: a.decision,
    });
  }
  cursor.analysesBacklog = analyses.length >= limit;
  const forget = cursor.analysesAfter.getTime() - 2 * STREAM_OVERLAP_MS;
  for (const [id, created] of cursor.seenAnalyses) if (created < forget) cursor.seenAnalyses.delete(id);
  return byWorkspace;
}
