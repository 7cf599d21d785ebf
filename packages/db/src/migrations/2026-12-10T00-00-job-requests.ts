/**
 * Two outboxes of work for the worker, written by the API in Postgres instead
 * of a queue, and swept to the queues by the worker (OUTBOX_INTERVAL_MS), like
 * gate emails and webhooks: a person's "poll now" (one row per experiment and
 * second, deleted once its job has run) and the LLM summary of a learning a
 * decision wrote (inserted in the decision's transaction, deleted once
 * summarised or given up).
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE poll_requests (
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
              requested_at timestamptz NOT NULL,
              PRIMARY KEY (experiment_id, requested_at)
            )`.execute(db);
  await sql`CREATE INDEX poll_requests_requested_at ON poll_requests (requested_at)`.execute(db);
  await sql`CREATE TABLE learning_summary_requests (
              learning_id uuid PRIMARY KEY REFERENCES learnings (id) ON DELETE CASCADE,
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              requested_at timestamptz NOT NULL DEFAULT now()
            )`.execute(db);
  await sql`CREATE INDEX learning_summary_requests_requested_at ON learning_summary_requests (requested_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE learning_summary_requests`.execute(db);
  await sql`DROP TABLE poll_requests`.execute(db);
}
