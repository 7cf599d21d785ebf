import type { DecisionChannel, Gate, GateExpiryPolicy, GateKind, GateState } from "@outcome-runtime/core";
import type { Selectable } from "kysely";
import { sql } from "kysely";
import type { DbOrTrx } from "../database";
import type { GatesTable } from "../schema";
import { cursorTs, type Page, type PageRequest, pageAfter, pageLimit, toPage, UUID } from "./pagination";

function toGate(row: Selectable<GatesTable>): Gate {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    outcomeId: row.outcome_id,
    experimentId: row.experiment_id,
    kind: row.kind as GateKind,
    status: row.status as GateState,
    assignees: row.assignees,
    backup: row.backup,
    slaSeconds: row.sla_seconds,
    dueAt: row.due_at,
    createdAt: row.created_at,
    decision:
      row.decision === null || row.decided_at === null
        ? null
        : {
            decision: row.decision,
            reason: row.reason,
            decidedBy: row.decided_by ?? "",
            channel: (row.decided_channel ?? "api") as DecisionChannel,
            decidedAt: row.decided_at,
            detail: (row.decision_detail as Record<string, unknown> | null) ?? null,
          },
    context: row.context ?? {},
    onExpiry: (row.on_expiry === "expire" ? "expire" : "escalate") as GateExpiryPolicy,
    remindAt: row.remind_at,
    remindedAt: row.reminded_at,
    escalatedAt: row.escalated_at,
    escalatedTo: row.escalated_to,
  };
}

export interface NewGate {
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly kind: GateKind;
  readonly assignees: readonly string[];
  readonly backup: string | null;
  readonly slaSeconds: number;
  readonly createdAt: Date;
  /** Why the gate is opened (e.g. `{ action, reason }` of an analysis review). */
  readonly context?: Readonly<Record<string, unknown>>;
  /** What the SLA's expiry does (default `escalate`). */
  readonly onExpiry?: GateExpiryPolicy;
}

/**
 * Insert a pending gate. Returns null when the partial unique index refuses it
 * because an equivalent gate is already pending (a concurrent request opened it).
 */
export async function insertPendingGate(db: DbOrTrx, gate: NewGate): Promise<Gate | null> {
  const row = await db
    .insertInto("gates")
    .values({
      workspace_id: gate.workspaceId,
      outcome_id: gate.outcomeId,
      experiment_id: gate.experimentId,
      kind: gate.kind,
      status: "pending",
      assignees: [...gate.assignees],
      backup: gate.backup,
      sla_seconds: gate.slaSeconds,
      due_at: new Date(gate.createdAt.getTime() + gate.slaSeconds * 1000),
      remind_at: new Date(gate.createdAt.getTime() + gate.slaSeconds * 500),
      on_expiry: gate.onExpiry ?? "escalate",
      created_at: gate.createdAt,
      context: JSON.stringify(gate.context ?? {}),
    })
    .onConflict((oc) => oc.doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

export async function findGate(db: DbOrTrx, workspaceId: string, id: string): Promise<Gate | null> {
  if (!UUID.test(id)) return null;
  const row = await db
    .selectFrom("gates")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where("id", "=", id)
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

/**
 * A gate by id in any workspace (the worker's jobs), optionally locked: `FOR
 * UPDATE`, or `FOR SHARE` (a decision, which updates the row, waits for it).
 */
export async function findGateById(
  db: DbOrTrx,
  id: string,
  lookup: { forUpdate?: boolean; forShare?: boolean } = {},
): Promise<Gate | null> {
  if (!UUID.test(id)) return null;
  let q = db.selectFrom("gates").selectAll().where("id", "=", id);
  if (lookup.forUpdate) q = q.forUpdate();
  else if (lookup.forShare) q = q.forShare();
  const row = await q.executeTakeFirst();
  return row ? toGate(row) : null;
}

/** Stamp the reminder on a pending, unreminded gate; null when another caller did it first. */
export async function markGateReminded(db: DbOrTrx, id: string, at: Date): Promise<Gate | null> {
  const row = await db
    .updateTable("gates")
    .set({ reminded_at: at })
    .where("id", "=", id)
    .where("status", "=", "pending")
    .where("reminded_at", "is", null)
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

/** Stamp the escalation on a pending, unescalated gate; null when another caller did it first. */
export async function markGateEscalated(db: DbOrTrx, id: string, to: string, at: Date): Promise<Gate | null> {
  const row = await db
    .updateTable("gates")
    .set({ escalated_at: at, escalated_to: to })
    .where("id", "=", id)
    .where("status", "=", "pending")
    .where("escalated_at", "is", null)
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

/** Expire one pending gate (its SLA ran out and its policy says `expire`); null when no longer pending. */
export async function expirePendingGate(db: DbOrTrx, id: string, at: Date): Promise<Gate | null> {
  const row = await db
    .updateTable("gates")
    .set({ status: "expired", decided_at: at, decided_by: "system", decided_channel: "system", decision: "expire" })
    .where("id", "=", id)
    .where("status", "=", "pending")
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

/** A deadline of a pending gate that has come: its reminder, or its expiry. */
export interface DueDeadline {
  readonly gateId: string;
  readonly step: "reminder" | "expiry";
  readonly at: Date;
}

/** Reminders and expiries due at `now` and not yet handled, oldest first. */
export async function listDueDeadlines(db: DbOrTrx, now: Date, limit = 500): Promise<DueDeadline[]> {
  const reminders = await db
    .selectFrom("gates")
    .select(["id", "remind_at as at"])
    .where("status", "=", "pending")
    .where("remind_at", "<=", now)
    .where("reminded_at", "is", null)
    .where("escalated_at", "is", null)
    .where("due_at", ">", now)
    .orderBy("remind_at")
    .limit(limit)
    .execute();
  const expiries = await db
    .selectFrom("gates")
    .select(["id", "due_at as at"])
    .where("status", "=", "pending")
    .where("due_at", "<=", now)
    .where("escalated_at", "is", null)
    .orderBy("due_at")
    .limit(limit)
    .execute();
  return [
    ...reminders.map((r) => ({ gateId: r.id, step: "reminder" as const, at: r.at })),
    ...expiries.map((r) => ({ gateId: r.id, step: "expiry" as const, at: r.at })),
  ];
}

/** The pending gates of one kind, across every workspace. */
export interface PendingGatesOfKind {
  readonly kind: GateKind;
  /** Pending within their SLA (not escalated). */
  readonly running: number;
  /** Pending past their SLA, escalated to a backup. */
  readonly escalated: number;
  /** The earliest `due_at` among those within their SLA (it may have just passed, the expiry step pending); null: none. */
  readonly earliestDueAt: Date | null;
}

/**
 * Pending gates by kind, across every workspace (kinds with none pending are
 * absent). One aggregate over the pending gates (the partial index
 * `gates_pending_deadlines_idx`), cheap enough for every metrics scrape.
 */
export async function summarizePendingGates(db: DbOrTrx): Promise<PendingGatesOfKind[]> {
  const rows = await db
    .selectFrom("gates")
    .select([
      "kind",
      sql<number>`(count(*) FILTER (WHERE escalated_at IS NULL))::int`.as("running"),
      sql<number>`(count(*) FILTER (WHERE escalated_at IS NOT NULL))::int`.as("escalated"),
      sql<Date | null>`min(due_at) FILTER (WHERE escalated_at IS NULL)`.as("earliest_due_at"),
    ])
    .where("status", "=", "pending")
    .groupBy("kind")
    .orderBy("kind")
    .execute();
  return rows.map((r) => ({
    kind: r.kind as GateKind,
    running: Number(r.running),
    escalated: Number(r.escalated),
    earliestDueAt: r.earliest_due_at,
  }));
}

/** Pending gates whose delayed SLA jobs were not put on the queue yet. */
export async function listUnscheduledGates(
  db: DbOrTrx,
  limit = 500,
): Promise<{ id: string; remindAt: Date; dueAt: Date }[]> {
  const rows = await db
    .selectFrom("gates")
    .select(["id", "remind_at", "due_at"])
    .where("status", "=", "pending")
    .where("sla_scheduled_at", "is", null)
    .orderBy("created_at")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, remindAt: r.remind_at, dueAt: r.due_at }));
}

export async function markSlaScheduled(db: DbOrTrx, ids: readonly string[], at: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable("gates")
    .set({ sla_scheduled_at: at })
    .where("id", "in", [...ids])
    .execute();
}

export async function findPendingGate(
  db: DbOrTrx,
  filter: { outcomeId: string; kind: GateKind; experimentId?: string | null },
): Promise<Gate | null> {
  let q = db
    .selectFrom("gates")
    .selectAll()
    .where("outcome_id", "=", filter.outcomeId)
    .where("kind", "=", filter.kind)
    .where("status", "=", "pending");
  if (filter.experimentId !== undefined) {
    q =
      filter.experimentId === null
        ? q.where("experiment_id", "is", null)
        : q.where("experiment_id", "=", filter.experimentId);
  }
  const row = await q.executeTakeFirst();
  return row ? toGate(row) : null;
}

/** The outcome's most recently decided gate of `kind` with `status` (null when none is). */
export async function latestDecidedGate(
  db: DbOrTrx,
  filter: { outcomeId: string; kind: GateKind; status: Exclude<GateState, "pending"> },
): Promise<Gate | null> {
  const row = await db
    .selectFrom("gates")
    .selectAll()
    .where("outcome_id", "=", filter.outcomeId)
    .where("kind", "=", filter.kind)
    .where("status", "=", filter.status)
    .orderBy("decided_at", "desc")
    .limit(1)
    .executeTakeFirst();
  return row ? toGate(row) : null;
}

/** Pending gates per outcome, for the given outcomes (absent: none pending). */
export async function countPendingGatesByOutcome(
  db: DbOrTrx,
  workspaceId: string,
  outcomeIds: readonly string[],
): Promise<Map<string, number>> {
  if (outcomeIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("gates")
    .select(["outcome_id", (eb) => eb.fn.countAll<number>().as("n")])
    .where("workspace_id", "=", workspaceId)
    .where("outcome_id", "in", [...outcomeIds])
    .where("status", "=", "pending")
    .groupBy("outcome_id")
    .execute();
  return new Map(rows.map((r) => [r.outcome_id, Number(r.n)]));
}

/** Gates of one outcome by kind, then status (kinds and statuses with none are absent). */
export async function countGatesOfOutcome(
  db: DbOrTrx,
  workspaceId: string,
  outcomeId: string,
): Promise<Partial<Record<GateKind, Partial<Record<GateState, number>>>>> {
  const rows = await db
    .selectFrom("gates")
    .select(["kind", "status", (eb) => eb.fn.countAll<number>().as("n")])
    .where("workspace_id", "=", workspaceId)
    .where("outcome_id", "=", outcomeId)
    .groupBy(["kind", "status"])
    .execute();
  const counts: Partial<Record<GateKind, Partial<Record<GateState, number>>>> = {};
  for (const r of rows) {
    const byStatus = counts[r.kind as GateKind] ?? {};
    byStatus[r.status as GateState] = Number(r.n);
    counts[r.kind as GateKind] = byStatus;
  }
  return counts;
}

/** Expire every pending gate of an outcome; returns the gates expired. */
export async function expirePendingGatesOfOutcome(db: DbOrTrx, outcomeId: string, at: Date): Promise<Gate[]> {
  const rows = await db
    .updateTable("gates")
    .set({ status: "expired", decided_at: at, decided_by: "system", decided_channel: "system", decision: "expire" })
    .where("outcome_id", "=", outcomeId)
    .where("status", "=", "pending")
    .returningAll()
    .execute();
  return rows.map(toGate);
}

export async function listGates(
  db: DbOrTrx,
  workspaceId: string,
  filter: {
    status?: GateState | undefined;
    outcomeId?: string | undefined;
    experimentId?: string | undefined;
    kind?: GateKind | undefined;
    /** Gates this person may decide: an assignee, the backup, or the escalation target (case-insensitive). */
    assignee?: string | undefined;
  } & PageRequest,
): Promise<Page<Gate>> {
  const limit = pageLimit(filter);
  let q = db.selectFrom("gates").selectAll().where("workspace_id", "=", workspaceId);
  if (filter.assignee) {
    const who = filter.assignee.toLowerCase();
    q = q.where(
      sql<boolean>`(${who} = ANY (SELECT lower(a) FROM unnest(assignees) AS a) OR lower(coalesce(backup, '')) = ${who} OR lower(coalesce(escalated_to, '')) = ${who})`,
    );
  }
  if (filter.status) q = q.where("status", "=", filter.status);
  if (filter.outcomeId) q = q.where("outcome_id", "=", filter.outcomeId);
  if (filter.kind) q = q.where("kind", "=", filter.kind);
  if (filter.experimentId) q = q.where("experiment_id", "=", filter.experimentId);
  if (filter.cursor) q = q.where(pageAfter(filter.cursor));
  const rows = await q
    .select(cursorTs)
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  return toPage(rows, limit, toGate);
}

/**
 * An experiment's gates, newest first (at most `limit`), then its outcome's
 * portfolio gate `portfolioGateId` when given and found: one query, where the
 * API read them with two.
 */
export async function listGatesOfExperiment(
  db: DbOrTrx,
  workspaceId: string,
  experimentId: string,
  portfolioGateId: string | null,
  limit: number,
): Promise<Gate[]> {
  const portfolio = portfolioGateId !== null && UUID.test(portfolioGateId) ? portfolioGateId : null;
  const isPortfolio = portfolio === null ? sql<boolean>`false` : sql<boolean>`id = ${portfolio}::uuid`;
  const rows = await db
    .selectFrom("gates")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where((eb) =>
      portfolio === null
        ? eb("experiment_id", "=", experimentId)
        : eb.or([eb("experiment_id", "=", experimentId), eb("id", "=", portfolio)]),
    )
    // The portfolio gate first, so the limit never cuts it; it is moved to the end below.
    .orderBy(isPortfolio, "desc")
    .orderBy("created_at", "desc")
    .orderBy("id", "desc")
    .limit(limit + (portfolio === null ? 0 : 1))
    .execute();
  const gates = rows.map(toGate);
  if (portfolio !== null && gates[0]?.id === portfolio) gates.push(gates.shift() as Gate);
  return gates;
}

export interface GateDecisionWrite {
  readonly status: Exclude<GateState, "pending">;
  readonly decision: string;
  readonly reason: string | null;
  readonly decidedBy: string;
  readonly channel: DecisionChannel;
  readonly at: Date;
  readonly detail?: Readonly<Record<string, unknown>> | null;
}

/**
 * Record a decision on a pending gate with one conditional
 * `UPDATE … WHERE status = 'pending' RETURNING`. Of any number of concurrent
 * callers exactly one gets the gate back; the others get null (Postgres
 * re-checks the WHERE clause on the row version the winner committed).
 */
export async function decidePendingGate(db: DbOrTrx, id: string, write: GateDecisionWrite): Promise<Gate | null> {
  const row = await db
    .updateTable("gates")
    .set({
      status: write.status,
      decision: write.decision,
      reason: write.reason,
      decided_by: write.decidedBy,
      decided_channel: write.channel,
      decided_at: write.at,
      decision_detail: write.detail ? JSON.stringify(write.detail) : null,
    })
    .where("id", "=", id)
    .where("status", "=", "pending")
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}
