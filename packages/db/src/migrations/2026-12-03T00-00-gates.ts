/**
 * Human gates end to end: the SLA clock of each gate (reminder, escalation,
 * expiry policy), the decision's detail, the build report of an experiment,
 * workspace settings, the gate email outbox and the email decision tokens.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("gates")
    // What the expiry of the SLA does: escalate to the backup, or expire the gate.
    .addColumn("on_expiry", "text", (c) =>
      c.notNull().defaultTo("escalate").check(sql`on_expiry IN ('escalate', 'expire')`),
    )
    // The reminder goes out at half the SLA; these stamps make each step happen once.
    .addColumn("remind_at", "timestamptz")
    .addColumn("reminded_at", "timestamptz")
    .addColumn("escalated_at", "timestamptz")
    .addColumn("escalated_to", "text")
    // When the worker put the delayed reminder and deadline jobs on the queue.
    .addColumn("sla_scheduled_at", "timestamptz")
    // Per-item detail of a decision, e.g. the hypotheses approved and rejected in a portfolio review.
    .addColumn("decision_detail", "jsonb")
    .execute();
  await sql`UPDATE gates SET remind_at = created_at + make_interval(secs => sla_seconds / 2.0)`.execute(db);
  await sql`ALTER TABLE gates ALTER COLUMN remind_at SET NOT NULL`.execute(db);
  await sql`CREATE INDEX gates_pending_deadlines_idx ON gates (remind_at, due_at) WHERE status = 'pending'`.execute(db);

  // What the builder reported: summary, pull request, changed paths, flag key.
  await db.schema.alterTable("experiments").addColumn("build", "jsonb").execute();

  // Per-workspace settings, e.g. decisions that email links may not make.
  await db.schema
    .alterTable("workspaces")
    .addColumn("settings", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'`))
    .execute();

  // Where a learning's statement came from: `rules` (written with the decision) or `llm:<model>`.
  await db.schema
    .alterTable("learnings")
    .addColumn("source", "text", (c) => c.notNull().defaultTo("rules"))
    .addColumn("gate_id", "uuid", (c) => c.references("gates.id").onDelete("set null"))
    .execute();
  await sql`CREATE UNIQUE INDEX learnings_gate_key ON learnings (gate_id) WHERE gate_id IS NOT NULL`.execute(db);

  // Outbox of gate emails: one row per (gate, recipient, reason), written in the
  // transaction that opened, reminded or escalated the gate; the worker sends it.
  await db.schema
    .createTable("gate_notifications")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("gate_id", "uuid", (c) => c.notNull().references("gates.id").onDelete("cascade"))
    .addColumn("recipient", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull().check(sql`reason IN ('opened', 'reminder', 'escalation')`))
    .addColumn("status", "text", (c) =>
      c.notNull().defaultTo("pending").check(sql`status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')`),
    )
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .addColumn("message_id", "text")
    .addColumn("claimed_at", "timestamptz")
    .addColumn("sent_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("gate_notifications_once", ["gate_id", "recipient", "reason"])
    .execute();
  await sql`CREATE INDEX gate_notifications_open_idx ON gate_notifications (created_at)
            WHERE status IN ('pending', 'sending')`.execute(db);

  // Email decision links: a random 256-bit token per (gate, decision, recipient),
  // stored only as its SHA-256 hash.
  await db.schema
    .createTable("gate_tokens")
    .addColumn("id", "uuid", (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn("workspace_id", "uuid", (c) => c.notNull().references("workspaces.id").onDelete("cascade"))
    .addColumn("gate_id", "uuid", (c) => c.notNull().references("gates.id").onDelete("cascade"))
    .addColumn("notification_id", "uuid", (c) => c.references("gate_notifications.id").onDelete("set null"))
    .addColumn("recipient", "text", (c) => c.notNull())
    .addColumn("decision", "text", (c) => c.notNull())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("used_at", "timestamptz")
    .addColumn("revoked_at", "timestamptz")
    .addColumn("revoked_reason", "text", (c) => c.check(sql`revoked_reason IN ('decided', 'superseded', 'closed')`))
    .execute();
  await db.schema.createIndex("gate_tokens_gate_idx").on("gate_tokens").columns(["gate_id", "recipient"]).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("gate_tokens").execute();
  await db.schema.dropTable("gate_notifications").execute();
  await sql`DROP INDEX learnings_gate_key`.execute(db);
  await db.schema.alterTable("learnings").dropColumn("source").dropColumn("gate_id").execute();
  await db.schema.alterTable("workspaces").dropColumn("settings").execute();
  await db.schema.alterTable("experiments").dropColumn("build").execute();
  await sql`DROP INDEX gates_pending_deadlines_idx`.execute(db);
  await db.schema
    .alterTable("gates")
    .dropColumn("on_expiry")
    .dropColumn("remind_at")
    .dropColumn("reminded_at")
    .dropColumn("escalated_at")
    .dropColumn("escalated_to")
    .dropColumn("sla_scheduled_at")
    .dropColumn("decision_detail")
    .execute();
}
