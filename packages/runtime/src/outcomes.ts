/**
 * Outcome queries and lifecycle actions.
 */
import {
  type AuditEvent,
  authorize,
  DomainError,
  type ExperimentState,
  type GateKind,
  type GateState,
  type Operation,
  type Outcome,
  type OutcomeRevision,
  type OutcomeState,
  type SourceHealth,
} from "@outcome-runtime/core";
import {
  audit,
  type DbOrTrx,
  experiments,
  gates,
  outcomes,
  type Page,
  type PageRequest,
  sourceHealth,
  type Trx,
} from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { recordGateClosed } from "./gate-events";
import { moveExperiment } from "./move-experiment";
import { moveOutcome } from "./move-outcome";
import { type PollingPlan, pollingPlan } from "./signals/schedules";

export interface OutcomeSummary {
  readonly outcome: Outcome;
  /** Experiments of the outcome by state (states with none are absent). */
  readonly experimentCounts: Partial<Record<ExperimentState, number>>;
  readonly pendingGates: number;
}

/** How many of the newest revisions an outcome's detail carries; the others are a page away. */
export const LATEST_REVISIONS = 5;

/**
 * One outcome with bounded summaries of its lists: whatever the number of
 * revisions, experiments and gates, its size stays that of the spec plus a
 * few hundred bytes. The lists themselves are read a page at a time
 * (`listRevisionsOfOutcome`, `listExperimentsOfOutcome`, `listGates` by outcome).
 */
export interface OutcomeDetail extends OutcomeSummary {
  /** The newest revisions, at most `LATEST_REVISIONS`, newest first; `outcome.revision` is how many there are. */
  readonly latestRevisions: readonly OutcomeRevision[];
  /** Gates of the outcome by kind, then status (kinds and statuses with none are absent). */
  readonly gateCounts: Partial<Record<GateKind, Partial<Record<GateState, number>>>>;
  /** How often the signal is polled, after the connector's budget (e.g. Mixpanel's) is applied. */
  readonly polling: PollingPlan;
  /**
   * Each metric's source across the outcome's running experiments, and the outcome's own series: the newest
   * successful read, the newest error, the throttle of a rate limit, how many experiments fail to read it.
   */
  readonly sources: readonly SourceHealth[];
}

/** @throws DomainError `not_found` naming the id. */
export async function requireOutcome(
  db: DbOrTrx,
  workspaceId: string,
  idOrSlug: string,
  lookup: { forUpdate?: boolean } = {},
): Promise<Outcome> {
  const outcome = await outcomes.findOutcome(db, workspaceId, idOrSlug, lookup);
  if (outcome === null) {
    throw new DomainError("not_found", `no outcome "${idOrSlug}" in this workspace`, {
      outcome: idOrSlug,
    });
  }
  return outcome;
}

async function summarise(deps: RuntimeDeps, list: readonly Outcome[]): Promise<OutcomeSummary[]> {
  const first = list[0];
  if (first === undefined) return [];
  const ids = list.map((o) => o.id);
  const [counts, pending] = await Promise.all([
    experiments.countExperimentsByState(deps.db, first.workspaceId, ids),
    gates.countPendingGatesByOutcome(deps.db, first.workspaceId, ids),
  ]);
  return list.map((outcome) => ({
    outcome,
    experimentCounts: counts.get(outcome.id) ?? {},
    pendingGates: pending.get(outcome.id) ?? 0,
  }));
}

/** Outcomes of the caller's workspace, newest first, with experiment counts. */
export async function listOutcomes(
  deps: RuntimeDeps,
  caller: Caller,
  filter: { state?: OutcomeState | undefined } & PageRequest,
): Promise<Page<OutcomeSummary>> {
  authorize(caller, "outcome.read");
  const page = await outcomes.listOutcomes(deps.db, caller.principal.workspaceId, filter);
  return { items: await summarise(deps, page.items), nextCursor: page.nextCursor };
}

/**
 * One outcome by id or slug, with its newest revisions, experiment and gate
 * counts, and its polling plan (see `OutcomeDetail`).
 *
 * @throws DomainError `forbidden` (`outcome.read`); `not_found` naming the id or slug.
 */
export async function getOutcome(deps: RuntimeDeps, caller: Caller, idOrSlug: string): Promise<OutcomeDetail> {
  authorize(caller, "outcome.read");
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, idOrSlug);
  const [summary, revisions, gateCounts, polling, sources] = await Promise.all([
    summarise(deps, [outcome]).then((s) => s[0] as OutcomeSummary),
    outcomes.listRevisions(deps.db, outcome.workspaceId, outcome.id, { limit: LATEST_REVISIONS }),
    gates.countGatesOfOutcome(deps.db, outcome.workspaceId, outcome.id),
    pollingPlan(deps, outcome.spec),
    sourceHealth.listOutcomeSourceHealth(deps.db, outcome.id, nowOf(deps)),
  ]);
  return { ...summary, latestRevisions: revisions.items, gateCounts, polling, sources };
}

/**
 * Revisions of an outcome, newest first, a page at a time (`limit` 1–200, default 50;
 * pass the page's `nextCursor` back as `cursor`).
 *
 * @throws DomainError `forbidden` (`outcome.read`); `not_found` naming the id or slug (an outcome
 *   of another workspace included); `validation_failed` (field `cursor`) for a cursor no page made.
 */
export async function listRevisionsOfOutcome(
  deps: RuntimeDeps,
  caller: Caller,
  idOrSlug: string,
  page: PageRequest,
): Promise<Page<OutcomeRevision>> {
  authorize(caller, "outcome.read");
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, idOrSlug);
  return outcomes.listRevisions(deps.db, outcome.workspaceId, outcome.id, page);
}

/** Actions on an outcome that a person may request directly. */
export const DIRECT_OUTCOME_ACTIONS = ["activate", "abandon", "reopen"] as const;
export type DirectOutcomeAction = (typeof DIRECT_OUTCOME_ACTIONS)[number];

/** The operation of the permissions table each direct action is. */
const OUTCOME_ACTION_OPERATIONS: Record<DirectOutcomeAction, Operation> = {
  activate: "outcome.activate",
  abandon: "outcome.abandon",
  reopen: "outcome.reopen",
};

/**
 * Activate, abandon or reopen an outcome. The state change and its audit event
 * are one transaction; the row is locked, so concurrent requests apply once and
 * the others see `illegal_transition` from the new state. Reopening moves an
 * `achieved` outcome back to `active`: the worker polls its signal again (its
 * scheduler comes back with the next reconcile), its horizon counts again, and
 * it takes revisions.
 *
 * @throws DomainError `forbidden` unless the caller may do the action's operation (`outcome.activate`,
 *   `outcome.abandon`, `outcome.reopen`; agents may not); `not_found`, `illegal_transition`
 *   (e.g. reopening an outcome that is not achieved).
 */
export async function transitionOutcome(
  deps: RuntimeDeps,
  caller: Caller,
  idOrSlug: string,
  action: DirectOutcomeAction,
  reason: string | null,
): Promise<Outcome> {
  authorize(caller, OUTCOME_ACTION_OPERATIONS[action]);
  return inTransaction(deps.db, async (trx) => {
    const outcome = await requireOutcome(trx, caller.principal.workspaceId, idOrSlug, { forUpdate: true });
    const at = nowOf(deps);
    const moved = await moveOutcome(trx, caller, at, { outcome, action, facts: { reason } });
    if (moved.to === "abandoned") await windDown(trx, caller, moved.outcome, at);
    return moved.outcome;
  });
}

/**
 * An abandoned outcome stops: its pending gates expire (nobody is asked to
 * decide any more) and its running experiments are paused (no traffic keeps
 * flowing to a change nobody will conclude). Each move is audited.
 */
async function windDown(trx: Trx, caller: Caller, outcome: Outcome, at: Date): Promise<void> {
  const reason = `outcome ${outcome.slug} abandoned`;
  for (const gate of await gates.expirePendingGatesOfOutcome(trx, outcome.id, at)) {
    await audit.insertAuditEvent(trx, {
      workspaceId: outcome.workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "gate.expired",
      subjectType: "gate",
      subjectId: gate.id,
      before: { status: "pending" },
      after: { status: "expired", reason },
      requestId: caller.requestId,
    });
    await recordGateClosed(trx, gate, outcome, at);
  }
  const running = await experiments.listExperiments(trx, outcome.workspaceId, {
    outcomeId: outcome.id,
    state: "running",
  });
  for (const listed of running) {
    // Locked, then read again: a pause requested meanwhile has already stopped it.
    const experiment = await experiments.findExperimentById(trx, listed.id, { forUpdate: true });
    if (experiment === null || experiment.state !== "running") continue;
    await moveExperiment(trx, caller, at, { experiment, outcome, action: "pause", facts: { reason } });
  }
}

/** Audit events of the caller's workspace, newest first. */
export async function listAudit(deps: RuntimeDeps, caller: Caller, query: audit.AuditQuery): Promise<AuditEvent[]> {
  authorize(caller, "audit.read");
  return audit.listAuditEvents(deps.db, caller.principal.workspaceId, query);
}
