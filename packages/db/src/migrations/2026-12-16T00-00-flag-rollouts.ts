/**
 * Flag rollouts: the traffic split each experiment of an outcome with a flag
 * provider should be served, and what the provider was last seen serving.
 * One row per experiment, the runtime's outbox for the provider: a move of
 * the experiment writes the weights it wants (`desired`, a new `version`) in
 * its own transaction; the worker reads the provider, compares and writes the
 * difference, then records the version applied (once: a conditional UPDATE)
 * with the provider's answer. `lease_until` keeps two workers from writing the
 * same change at once. `observed` and `drift` hold what the last drift check
 * read. `flag_weight_history` keeps each split the provider served, from when,
 * for the SRM check's expected shares.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE flag_rollouts (
              experiment_id uuid PRIMARY KEY REFERENCES experiments (id) ON DELETE CASCADE,
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              outcome_id uuid NOT NULL REFERENCES outcomes (id) ON DELETE CASCADE,
              provider text NOT NULL,
              flag_key text NOT NULL,
              arms jsonb NOT NULL,
              desired jsonb NOT NULL,
              reason text NOT NULL,
              version integer NOT NULL,
              requested_at timestamptz NOT NULL,
              status text NOT NULL CHECK (status IN ('pending', 'applied', 'waiting_for_approval')),
              applied_version integer,
              applied_at timestamptz,
              applied_answer jsonb,
              attempts integer NOT NULL DEFAULT 0,
              last_attempt_at timestamptz,
              last_error_code text,
              last_error text,
              next_attempt_at timestamptz NOT NULL,
              lease_until timestamptz,
              lease_owner text,
              observed jsonb,
              observed_at timestamptz,
              drift jsonb,
              drift_at timestamptz
            )`.execute(db);
  await sql`CREATE INDEX flag_rollouts_due ON flag_rollouts (next_attempt_at) WHERE status <> 'applied'`.execute(db);
  await sql`CREATE INDEX flag_rollouts_workspace ON flag_rollouts (workspace_id, outcome_id)`.execute(db);
  await sql`CREATE TABLE flag_weight_history (
              experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              since timestamptz NOT NULL,
              weights jsonb NOT NULL,
              source text NOT NULL CHECK (source IN ('applied', 'drift')),
              PRIMARY KEY (experiment_id, since)
            )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE flag_weight_history`.execute(db);
  await sql`DROP TABLE flag_rollouts`.execute(db);
}
