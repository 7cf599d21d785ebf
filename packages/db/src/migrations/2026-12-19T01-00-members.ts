/**
 * People, not keys: members, their roles per workspace, invitations, and the
 * tables of the sign-in library (better-auth).
 *
 * - `members`: a person of the installation, by email (stored lowercased,
 *   unique), with a name; `installation_admin` mirrors the operator's list
 *   of installation admins at the member's last sign-in; `disabled_at` ends
 *   every session of the person at once and refuses their sign-in.
 * - `workspace_members`: the person's role in one workspace (admin, member,
 *   approver, viewer). Removing a member deletes the row.
 * - `invitations`: an admin's invitation of an email address to a workspace
 *   with a role; the link's token is stored only as its SHA-256, used once,
 *   expires, can be revoked. `link_shown`: the link was handed to the inviter
 *   (no mail sent), so it proves nothing about who holds it: accepting it
 *   adds the membership but starts no session.
 * - `sessions` may now be a member's (`member_id`) instead of an API key's:
 *   exactly one of the two is set; a member's session may have no workspace
 *   yet (the installation's first admin, who creates one). `auth_version` is bumped when the member's
 *   role or membership changes, so the change trigger announces the session
 *   and every process drops what it cached.
 * - `api_keys.member_id`: the member who owns the key; a removed or disabled
 *   member's keys are revoked with it.
 * - Schema `auth`: better-auth's own tables (`user`, `session`, `account`,
 *   `verification`) in its default shape, used only to prove who someone is
 *   (an email link, an OpenID Connect sign-in); the runtime's own session
 *   follows at once and better-auth's is deleted.
 *
 * The upgrade from a key-only installation keeps every key, session, outcome
 * and gate as it is: keys stay keys. A person's live key (a name that is an
 * email, role admin, member or approver) gains a member of that email with
 * that role in the key's workspace (the highest role when the person has
 * several keys there), and the key is linked to it.
 *
 * Frozen in time: no imports of app code.
 */
import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations are written against an untyped database on purpose
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE members (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
              email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
              name text NOT NULL DEFAULT '',
              installation_admin boolean NOT NULL DEFAULT false,
              created_at timestamptz NOT NULL DEFAULT now(),
              created_by text NOT NULL,
              disabled_at timestamptz,
              last_sign_in_at timestamptz
            )`.execute(db);
  await sql`CREATE TABLE workspace_members (
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              member_id uuid NOT NULL REFERENCES members (id) ON DELETE CASCADE,
              role text NOT NULL CHECK (role IN ('admin', 'member', 'approver', 'viewer')),
              added_by text NOT NULL,
              added_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (workspace_id, member_id)
            )`.execute(db);
  await sql`CREATE INDEX workspace_members_member ON workspace_members (member_id)`.execute(db);
  await sql`CREATE TABLE invitations (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
              workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
              email text NOT NULL CHECK (email = lower(email)),
              role text NOT NULL CHECK (role IN ('admin', 'member', 'approver', 'viewer')),
              token_hash text NOT NULL UNIQUE,
              invited_by text NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(),
              expires_at timestamptz NOT NULL,
              accepted_at timestamptz,
              accepted_by uuid REFERENCES members (id) ON DELETE SET NULL,
              revoked_at timestamptz,
              link_shown boolean NOT NULL DEFAULT false,
              CHECK (expires_at > created_at)
            )`.execute(db);
  // One open invitation per address and workspace: inviting again replaces it.
  await sql`CREATE UNIQUE INDEX invitations_open ON invitations (workspace_id, email)
            WHERE accepted_at IS NULL AND revoked_at IS NULL`.execute(db);

  await sql`ALTER TABLE api_keys ADD COLUMN member_id uuid REFERENCES members (id) ON DELETE SET NULL`.execute(db);
  await sql`CREATE INDEX api_keys_member ON api_keys (member_id) WHERE member_id IS NOT NULL`.execute(db);

  // A member's session may have no workspace yet (the installation's first admin, before creating one).
  await sql`ALTER TABLE sessions ALTER COLUMN api_key_id DROP NOT NULL, ALTER COLUMN workspace_id DROP NOT NULL,
              ADD COLUMN member_id uuid REFERENCES members (id) ON DELETE CASCADE,
              ADD COLUMN auth_version integer NOT NULL DEFAULT 0,
              ADD CONSTRAINT sessions_one_credential CHECK ((api_key_id IS NULL) <> (member_id IS NULL)),
              ADD CONSTRAINT sessions_key_workspace CHECK (api_key_id IS NULL OR workspace_id IS NOT NULL)`.execute(db);
  await sql`CREATE INDEX sessions_member ON sessions (member_id) WHERE revoked_at IS NULL`.execute(db);

  // Keys named by an email address are people's keys: each gains its member.
  await sql`INSERT INTO members (email, created_by)
            SELECT DISTINCT lower(name), 'upgrade' FROM api_keys
             WHERE role IN ('admin', 'member', 'approver') AND revoked_at IS NULL
               AND name ~* '^[^@[:space:]]+@[^@[:space:]]+$'
            ON CONFLICT (email) DO NOTHING`.execute(db);
  await sql`INSERT INTO workspace_members (workspace_id, member_id, role, added_by)
            SELECT DISTINCT ON (k.workspace_id, m.id) k.workspace_id, m.id, k.role, 'upgrade'
              FROM api_keys k JOIN members m ON m.email = lower(k.name)
             WHERE k.revoked_at IS NULL AND k.role IN ('admin', 'member', 'approver')
             ORDER BY k.workspace_id, m.id,
                      CASE k.role WHEN 'admin' THEN 0 WHEN 'approver' THEN 1 ELSE 2 END
            ON CONFLICT DO NOTHING`.execute(db);
  await sql`UPDATE api_keys k SET member_id = m.id FROM members m
             WHERE m.email = lower(k.name) AND k.role IN ('admin', 'member', 'approver')`.execute(db);

  await sql`CREATE SCHEMA IF NOT EXISTS auth`.execute(db);
  await sql`CREATE TABLE auth."user" (
              id text PRIMARY KEY,
              name text NOT NULL,
              email text NOT NULL UNIQUE,
              "emailVerified" boolean NOT NULL,
              image text,
              "createdAt" timestamptz NOT NULL DEFAULT now(),
              "updatedAt" timestamptz NOT NULL DEFAULT now()
            )`.execute(db);
  await sql`CREATE TABLE auth.session (
              id text PRIMARY KEY,
              "expiresAt" timestamptz NOT NULL,
              token text NOT NULL UNIQUE,
              "createdAt" timestamptz NOT NULL DEFAULT now(),
              "updatedAt" timestamptz NOT NULL,
              "ipAddress" text,
              "userAgent" text,
              "userId" text NOT NULL REFERENCES auth."user" (id) ON DELETE CASCADE
            )`.execute(db);
  await sql`CREATE TABLE auth.account (
              id text PRIMARY KEY,
              "accountId" text NOT NULL,
              "providerId" text NOT NULL,
              "userId" text NOT NULL REFERENCES auth."user" (id) ON DELETE CASCADE,
              "accessToken" text,
              "refreshToken" text,
              "idToken" text,
              "accessTokenExpiresAt" timestamptz,
              "refreshTokenExpiresAt" timestamptz,
              scope text,
              password text,
              "createdAt" timestamptz NOT NULL DEFAULT now(),
              "updatedAt" timestamptz NOT NULL
            )`.execute(db);
  await sql`CREATE INDEX account_user ON auth.account ("userId")`.execute(db);
  await sql`CREATE TABLE auth.verification (
              id text PRIMARY KEY,
              identifier text NOT NULL,
              value text NOT NULL,
              "expiresAt" timestamptz NOT NULL,
              "createdAt" timestamptz NOT NULL DEFAULT now(),
              "updatedAt" timestamptz NOT NULL DEFAULT now()
            )`.execute(db);
  await sql`CREATE INDEX verification_identifier ON auth.verification (identifier)`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: migrations are written against an untyped database on purpose
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP SCHEMA auth CASCADE`.execute(db);
  await sql`DELETE FROM sessions WHERE member_id IS NOT NULL`.execute(db);
  await sql`ALTER TABLE sessions DROP CONSTRAINT sessions_one_credential, DROP CONSTRAINT sessions_key_workspace,
              DROP COLUMN auth_version, DROP COLUMN member_id,
              ALTER COLUMN api_key_id SET NOT NULL, ALTER COLUMN workspace_id SET NOT NULL`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN member_id`.execute(db);
  await sql`DROP TABLE invitations`.execute(db);
  await sql`DROP TABLE workspace_members`.execute(db);
  await sql`DROP TABLE members`.execute(db);
}
