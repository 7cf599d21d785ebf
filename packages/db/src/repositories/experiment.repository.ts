import type {
  Arm,
  BuildReport,
  Experiment,
  ExperimentState,
  PollStatus,
  Prediction,
  StatsPlan,
} from "@outcome-runtime/core";
import { type Selectable, sql } from "kysely";
import type { DbOrTrx } from "../database";
import type { ExperimentsTable } from "../schema";
import { cursorTs, type Page, type PageRequest, pageAfter, pageLimit, toPage, UUID } from "./pagination";

function toExperiment(row: Selectable<ExperimentsTable>): Experiment {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    outcomeId: row.outcome_id,
    key: row.key,
    title: row.title,
    statement: row.statement,
    mechanism: row.mechanism,
    prediction: (row.prediction as Prediction | null) ?? null,
    measurementPlan: row.measurement_plan,
    rolloutPlan: row.rollout_plan,
    effort: row.effort as Experiment["effort"],
    risk: row.risk as Experiment["risk"],
    touchedPaths: row.touched_paths,
    arms: row.arms as Arm[],
    source: row.source,
    state: row.state as ExperimentState,
    claimedBy: row.claimed_by,
    portfolioGateId: row.portfolio_gate_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    launchedAt: row.launched_at,
    statsPlan: (row.stats_plan as StatsPlan | null) ?? null,
    polling: {
      lastPolledAt: row.last_polled_at,
      failures: row.poll_failures,
      error: (row.poll_error as PollStatus["error"]) ?? null,
    },
    build: (row.build as BuildReport | null) ?? null,
  };
}

export type NewExperiment = Omit<
  Experiment,
  "id" | "state" | "claimedBy" | "createdAt" | "updatedAt" | "launchedAt" | "statsPlan" | "polling" | "build"
>;

/**
 * Insert a proposed experiment; null when its key is taken in the workspace
 * (checked by the unique constraint, so concurrent proposals cannot both win).
 */
export async function insertExperiment(db: DbOrTrx, e: NewExperiment): Promise<Experiment | null> {
  const row = await db
    .insertInto("experiments")
    .values({
      workspace_id: e.workspaceId,
      outcome_id: e.outcomeId,
      key: e.key,
      title: e.title,
      statement: e.statement,
      mechanism: e.mechanism,
      prediction: e.prediction === null ? null : JSON.stringify(e.prediction),
      measurement_plan: e.measurementPlan,
      rollout_plan: e.rolloutPlan,
      effort: e.effort,
      risk: e.risk,
      touched_paths: [...e.touchedPaths],
      arms: JSON.stringify(e.arms),
      source: e.source,
      state: "proposed",
      portfolio_gate_id: e.portfolioGateId,
    })
    .onConflict((oc) => oc.constraint("experiments_workspace_key_key").doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toExperiment(row) : null;
}

/** Whether an experiment key is taken in the workspace. */
export async function experimentKeyExists(db: DbOrTrx, workspaceId: string, key: string): Promise<boolean> {
  const row = await db
    .selectFrom("experiments")
    .select("id")
    .where("workspace_id", "=", workspaceId)
    .where("key", "=", key)
    .executeTakeFirst();
  return row !== undefined;
}

/** An experiment by id in any workspace (for the worker, which serves every workspace). */
export async function findExperimentById(
  db: DbOrTrx,
  id: string,
  lookup: { forUpdate?: boolean } = {},
): Promise<Experiment | null> {
  if (!UUID.test(id)) return null;
  let q = db.selectFrom("experiments").selectAll().where("id", "=", id);
  if (lookup.forUpdate) q = q.forNoKeyUpdate();
  const row = await q.executeTakeFirst();
  return row ? toExperiment(row) : null;
}

/**
 * Lock many experiments (`FOR NO KEY UPDATE`, in id order so two callers never
 * wait on each other in a cycle) and read them, in one statement. Ids that are
 * not UUIDs or name no experiment are left out.
 *
 * @returns the experiments found, ordered by id.
 */
export async function lockExperiments(db: DbOrTrx, ids: readonly string[]): Promise<Experiment[]> {
  const valid = ids.filter((id) => UUID.test(id));
  if (valid.length === 0) return [];
  const rows = await db
    .selectFrom("experiments")
    .selectAll()
    .where(sql<boolean>`id = ANY(${valid}::uuid[])`)
    .orderBy("id")
    .forNoKeyUpdate()
    .execute();
  return rows.map(toExperiment);
}

export async function findExperiment(
  db: DbOrTrx,
  workspaceId: string,
  idOrKey: string,
  lookup: { forUpdate?: boolean } = {},
): Promise<Experiment | null> {
  const isUuid = UUID.test(idOrKey);
  let q = db
    .selectFrom("experiments")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where(isUuid ? "id" : "key", "=", idOrKey);
  if (lookup.forUpdate) q = q.forNoKeyUpdate();
  const row = await q.executeTakeFirst();
  return row ? toExperiment(row) : null;
}

export async function listExperiments(
  db: DbOrTrx,
  workspaceId: string,
  filter: { outcomeId?: string; portfolioGateId?: string; state?: ExperimentState },
): Promise<Experiment[]> {
  let q = db.selectFrom("experiments").selectAll().where("workspace_id", "=", workspaceId);
  if (filter.outcomeId) q = q.where("outcome_id", "=", filter.outcomeId);
  if (filter.portfolioGateId) q = q.where("portfolio_gate_id", "=", filter.portfolioGateId);
  if (filter.state) q = q.where("state", "=", filter.state);
  const rows = await q.orderBy("created_at", "asc").orderBy("id", "asc").execute();
  return rows.map(toExperiment);
}

/**
 * Experiments of an outcome, oldest first, a page at a time (`limit` 1–200,
 * default 50). Scoped to the workspace.
 *
 * @throws DomainError `validation_failed` for a cursor no page made.
 */
export async function listExperimentsOfOutcomePage(
  db: DbOrTrx,
  workspaceId: string,
  outcomeId: string,
  page: PageRequest,
): Promise<Page<Experiment>> {
  const limit = pageLimit(page);
  let q = db
    .selectFrom("experiments")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where("outcome_id", "=", outcomeId);
  if (page.cursor) q = q.where(pageAfter(page.cursor, "asc"));
  const rows = await q
    .select(cursorTs)
    .orderBy("created_at", "asc")
    .orderBy("id", "asc")
    .limit(limit + 1)
    .execute();
  return toPage(rows, limit, toExperiment);
}

/** Experiments by state for each of the given outcomes (states with none are absent). */
export async function countExperimentsByState(
  db: DbOrTrx,
  workspaceId: string,
  outcomeIds: readonly string[],
): Promise<Map<string, Partial<Record<ExperimentState, number>>>> {
  const counts = new Map<string, Partial<Record<ExperimentState, number>>>();
  if (outcomeIds.length === 0) return counts;
  const rows = await db
    .selectFrom("experiments")
    .select(["outcome_id", "state", (eb) => eb.fn.countAll<number>().as("n")])
    .where("workspace_id", "=", workspaceId)
    .where("outcome_id", "in", [...outcomeIds])
    .groupBy(["outcome_id", "state"])
    .execute();
  for (const r of rows) {
    const entry = counts.get(r.outcome_id) ?? {};
    entry[r.state as ExperimentState] = Number(r.n);
    counts.set(r.outcome_id, entry);
  }
  return counts;
}

/**
 * Move an experiment from `from` to `to` with one conditional UPDATE; null when
 * it is no longer in `from`. The first move to running sets `launched_at`,
 * unless `deferLaunch` (a flag provider confirms the launch later:
 * {@link markLaunched}).
 */
export async function updateExperimentState(
  db: DbOrTrx,
  id: string,
  from: ExperimentState,
  to: ExperimentState,
  patch: { claimedBy?: string | null; at: Date; build?: BuildReport; deferLaunch?: boolean },
): Promise<Experiment | null> {
  const row = await db
    .updateTable("experiments")
    .set({
      state: to,
      updated_at: patch.at,
      ...(patch.claimedBy !== undefined ? { claimed_by: patch.claimedBy } : {}),
      ...(patch.build !== undefined ? { build: JSON.stringify(patch.build) } : {}),
      // The first launch starts the experiment's clock; a resume or extension keeps it.
      ...(to === "running" && patch.deferLaunch !== true
        ? { launched_at: sql<Date>`COALESCE(launched_at, ${patch.at})` }
        : {}),
    })
    .where("id", "=", id)
    .where("state", "=", from)
    .returningAll()
    .executeTakeFirst();
  return row ? toExperiment(row) : null;
}

/**
 * The launch a flag provider confirmed: `launched_at` set to `at` when not
 * set yet (a later confirmation, of a resume, keeps the first).
 *
 * @returns whether this call set it
 */
export async function markLaunched(db: DbOrTrx, id: string, at: Date): Promise<boolean> {
  const row = await db
    .updateTable("experiments")
    .set({ launched_at: at })
    .where("id", "=", id)
    .where("launched_at", "is", null)
    .returning("id")
    .executeTakeFirst();
  return row !== undefined;
}
