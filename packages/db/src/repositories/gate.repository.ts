import type { DecisionChannel, Gate, GateKind, GateState } from "@outcome-runtime/core";
import type { Selectable } from "kysely";
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
          },
    context: row.context ?? {},
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
  } & PageRequest,
): Promise<Page<Gate>> {
  const limit = pageLimit(filter);
  let q = db.selectFrom("gates").selectAll().where("workspace_id", "=", workspaceId);
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

export interface GateDecisionWrite {
  readonly status: Exclude<GateState, "pending">;
  readonly decision: string;
  readonly reason: string | null;
  readonly decidedBy: string;
  readonly channel: DecisionChannel;
  readonly at: Date;
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
    })
    .where("id", "=", id)
    .where("status", "=", "pending")
    .returningAll()
    .executeTakeFirst();
  return row ? toGate(row) : null;
}
