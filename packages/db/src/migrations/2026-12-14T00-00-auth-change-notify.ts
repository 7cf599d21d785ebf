/**
 * Every change to what a credential authenticates as is announced on the
 * `outcome_runtime_auth` channel, so API processes caching principals drop
 * theirs at once: any change to an API key's row (revocation, re-enabling,
 * role, scopes, workspace, name…) or its deletion (payload `api_key:<id>`);
 * any change to a session's row (sign-out, expiry…) or its deletion
 * (`session:<id>`). The triggers compare whole rows rather than name
 * columns, so a column added later is covered and no column depends on them.
 * `NOTIFY` is transactional: the notification is delivered on commit only,
 * and never for a rolled-back change. A trigger, not the application, sends
 * it, so a change made by hand in `psql` is announced too. `last_used_at` and
 * `last_seen_at` (written once a minute per credential) announce nothing.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE FUNCTION announce_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'last_used_at') = (to_jsonb(NEW) - 'last_used_at') THEN
                RETURN NULL;
              END IF;
              PERFORM pg_notify('outcome_runtime_auth', 'api_key:' || OLD.id::text);
              RETURN NULL;
            END $$`.execute(db);
  await sql`CREATE TRIGGER api_keys_announce_change
            AFTER UPDATE OR DELETE ON api_keys
            FOR EACH ROW EXECUTE FUNCTION announce_api_key_change()`.execute(db);
  await sql`CREATE FUNCTION announce_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'last_seen_at') = (to_jsonb(NEW) - 'last_seen_at') THEN
                RETURN NULL;
              END IF;
              PERFORM pg_notify('outcome_runtime_auth', 'session:' || OLD.id::text);
              RETURN NULL;
            END $$`.execute(db);
  await sql`CREATE TRIGGER sessions_announce_change
            AFTER UPDATE OR DELETE ON sessions
            FOR EACH ROW EXECUTE FUNCTION announce_session_change()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER sessions_announce_change ON sessions`.execute(db);
  await sql`DROP FUNCTION announce_session_change()`.execute(db);
  await sql`DROP TRIGGER api_keys_announce_change ON api_keys`.execute(db);
  await sql`DROP FUNCTION announce_api_key_change()`.execute(db);
}
