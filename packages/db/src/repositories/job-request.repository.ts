/**
 * Work requested in Postgres for the worker's outbox sweep to queue: a
 * person's "poll now" and the LLM summary of a learning. The rows are written
 * in the requesting transaction, so a request exists exactly when what asked
 * for it committed, whatever the state of Redis.
 */
import type { DbOrTrx } from "../database";

/** One "poll now" of an experiment, at a time truncated to the second. */
export interface PollRequest {
  readonly experimentId: string;
  readonly requestedAt: Date;
}

/**
 * Record a "poll now" of an experiment. One per experiment and second
 * (`requestedAt` is truncated to it): a second request in the same second is
 * the same request.
 *
 * @returns the request's time, truncated to the second.
 */
export async function insertPollRequest(
  db: DbOrTrx,
  request: { workspaceId: string; experimentId: string; at: Date },
): Promise<Date> {
  const requestedAt = new Date(Math.floor(request.at.getTime() / 1000) * 1000);
  await db
    .insertInto("poll_requests")
    .values({ workspace_id: request.workspaceId, experiment_id: request.experimentId, requested_at: requestedAt })
    .onConflict((oc) => oc.columns(["experiment_id", "requested_at"]).doNothing())
    .execute();
  return requestedAt;
}

/** Poll requests whose job has not run yet, oldest first, across every workspace. */
export async function listPollRequests(db: DbOrTrx, limit = 500): Promise<PollRequest[]> {
  const rows = await db
    .selectFrom("poll_requests")
    .select(["experiment_id", "requested_at"])
    .orderBy("requested_at")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ experimentId: r.experiment_id, requestedAt: r.requested_at }));
}

/** Forget a poll request once its job has run. */
export async function deletePollRequest(db: DbOrTrx, request: PollRequest): Promise<void> {
  await db
    .deleteFrom("poll_requests")
    .where("experiment_id", "=", request.experimentId)
    .where("requested_at", "=", request.requestedAt)
    .execute();
}

/** Ask for the LLM summary of a learning (in the transaction that wrote it). Once per learning. */
export async function insertLearningSummaryRequest(
  db: DbOrTrx,
  request: { workspaceId: string; learningId: string; at: Date },
): Promise<void> {
  await db
    .insertInto("learning_summary_requests")
    .values({ learning_id: request.learningId, workspace_id: request.workspaceId, requested_at: request.at })
    .onConflict((oc) => oc.column("learning_id").doNothing())
    .execute();
}

/** Learnings whose summary is requested and not done yet, oldest request first. */
export async function listLearningSummaryRequests(db: DbOrTrx, limit = 500): Promise<string[]> {
  const rows = await db
    .selectFrom("learning_summary_requests")
    .select("learning_id")
    .orderBy("requested_at")
    .limit(limit)
    .execute();
  return rows.map((r) => r.learning_id);
}

/** The summary is done (or given up): forget the request. */
export async function deleteLearningSummaryRequest(db: DbOrTrx, learningId: string): Promise<void> {
  await db.deleteFrom("learning_summary_requests").where("learning_id", "=", learningId).execute();
}
