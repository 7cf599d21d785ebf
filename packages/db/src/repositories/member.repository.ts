/**
 * Members (people of the installation), their role per workspace, and
 * invitations. Emails are stored lowercased; an invitation's token only as its
 * SHA-256. Authorization is not decided here: the use cases in
 * `@outcome-runtime/runtime` call these after `authorize`.
 */
import { sql } from "kysely";
import type { DbOrTrx } from "../database";

/** The roles a person can have in a workspace (agents keep keys). */
export type MemberRole = "admin" | "member" | "approver" | "viewer";

export interface MemberRecord {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly installationAdmin: boolean;
  readonly createdAt: Date;
  readonly disabledAt: Date | null;
  readonly lastSignInAt: Date | null;
}

/** A member with their role in one workspace. */
export interface WorkspaceMemberRecord extends MemberRecord {
  readonly workspaceId: string;
  readonly role: MemberRole;
  readonly addedAt: Date;
  readonly addedBy: string;
}

/** One workspace a member belongs to. */
export interface MembershipRecord {
  readonly workspaceId: string;
  readonly slug: string;
  readonly name: string;
  readonly role: MemberRole;
}

export interface InvitationRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly email: string;
  readonly role: MemberRole;
  readonly invitedBy: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly acceptedAt: Date | null;
  readonly acceptedBy: string | null;
  readonly revokedAt: Date | null;
  /** The link was shown to the inviter instead of mailed. */
  readonly linkShown: boolean;
}

type MemberRow = {
  id: string;
  email: string;
  name: string;
  installation_admin: boolean;
  created_at: Date;
  disabled_at: Date | null;
  last_sign_in_at: Date | null;
};

function toMember(row: MemberRow): MemberRecord {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    installationAdmin: row.installation_admin,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    lastSignInAt: row.last_sign_in_at,
  };
}

const MEMBER_COLUMNS = [
  "m.id",
  "m.email",
  "m.name",
  "m.installation_admin",
  "m.created_at",
  "m.disabled_at",
  "m.last_sign_in_at",
] as const;

/** The member with this email (any case), or null. */
export async function findMemberByEmail(db: DbOrTrx, email: string): Promise<MemberRecord | null> {
  const row = await db
    .selectFrom("members as m")
    .select(MEMBER_COLUMNS)
    .where("m.email", "=", email.toLowerCase())
    .executeTakeFirst();
  return row ? toMember(row) : null;
}

/** The member with this id, or null. */
export async function findMember(db: DbOrTrx, id: string): Promise<MemberRecord | null> {
  const row = await db.selectFrom("members as m").select(MEMBER_COLUMNS).where("m.id", "=", id).executeTakeFirst();
  return row ? toMember(row) : null;
}

/** How many members the installation has (disabled ones included). */
export async function countMembers(db: DbOrTrx): Promise<number> {
  const row = await db
    .selectFrom("members")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * The member with this email, created when missing (email lowercased). An
 * existing member keeps its name unless it has none; `installationAdmin` only
 * ever turns on here.
 */
export async function ensureMember(
  db: DbOrTrx,
  input: { email: string; name?: string | undefined; installationAdmin?: boolean; createdBy: string },
): Promise<{ member: MemberRecord; created: boolean }> {
  const email = input.email.toLowerCase();
  const inserted = await db
    .insertInto("members")
    .values({
      email,
      name: input.name ?? "",
      installation_admin: input.installationAdmin ?? false,
      created_by: input.createdBy,
    })
    .onConflict((oc) => oc.column("email").doNothing())
    .returning("id")
    .executeTakeFirst();
  if (inserted === undefined) {
    await db
      .updateTable("members")
      .set((eb) => ({
        name: eb
          .case()
          .when("name", "=", "")
          .then(input.name ?? "")
          .else(eb.ref("name"))
          .end(),
        installation_admin: input.installationAdmin ? true : eb.ref("installation_admin"),
      }))
      .where("email", "=", email)
      .execute();
  }
  const member = await findMemberByEmail(db, email);
  if (member === null) throw new Error(`member ${email} vanished while being created`);
  return { member, created: inserted !== undefined };
}

/** Set whether a member is an installation admin (it follows the operator's list at each sign-in). */
export async function setInstallationAdmin(db: DbOrTrx, memberId: string, value: boolean): Promise<void> {
  await db.updateTable("members").set({ installation_admin: value }).where("id", "=", memberId).execute();
}

/** Record a sign-in. */
export async function recordSignIn(db: DbOrTrx, memberId: string, at: Date): Promise<void> {
  await db.updateTable("members").set({ last_sign_in_at: at }).where("id", "=", memberId).execute();
}

/** Disable (at `at`) or enable (null) a member; returns whether the row changed. */
export async function setDisabled(db: DbOrTrx, memberId: string, at: Date | null): Promise<boolean> {
  const result = await db
    .updateTable("members")
    .set({ disabled_at: at })
    .where("id", "=", memberId)
    .where((eb) => (at === null ? eb("disabled_at", "is not", null) : eb("disabled_at", "is", null)))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** The workspaces a member belongs to, by name. */
export async function listMemberships(db: DbOrTrx, memberId: string): Promise<MembershipRecord[]> {
  const rows = await db
    .selectFrom("workspace_members as wm")
    .innerJoin("workspaces as w", "w.id", "wm.workspace_id")
    .select(["w.id", "w.slug", "w.name", "wm.role"])
    .where("wm.member_id", "=", memberId)
    .orderBy("w.name")
    .orderBy("w.id")
    .execute();
  return rows.map((r) => ({ workspaceId: r.id, slug: r.slug, name: r.name, role: r.role as MemberRole }));
}

/** The member's role in the workspace, or null when not a member there. */
export async function findMembership(
  db: DbOrTrx,
  workspaceId: string,
  memberId: string,
): Promise<WorkspaceMemberRecord | null> {
  const row = await db
    .selectFrom("workspace_members as wm")
    .innerJoin("members as m", "m.id", "wm.member_id")
    .select([...MEMBER_COLUMNS, "wm.workspace_id", "wm.role", "wm.added_at", "wm.added_by"])
    .where("wm.workspace_id", "=", workspaceId)
    .where("wm.member_id", "=", memberId)
    .executeTakeFirst();
  if (row === undefined) return null;
  return {
    ...toMember(row),
    workspaceId: row.workspace_id,
    role: row.role as MemberRole,
    addedAt: row.added_at,
    addedBy: row.added_by,
  };
}

/** The members of a workspace, by email. */
export async function listWorkspaceMembers(db: DbOrTrx, workspaceId: string): Promise<WorkspaceMemberRecord[]> {
  const rows = await db
    .selectFrom("workspace_members as wm")
    .innerJoin("members as m", "m.id", "wm.member_id")
    .select([...MEMBER_COLUMNS, "wm.workspace_id", "wm.role", "wm.added_at", "wm.added_by"])
    .where("wm.workspace_id", "=", workspaceId)
    .orderBy("m.email")
    .execute();
  return rows.map((row) => ({
    ...toMember(row),
    workspaceId: row.workspace_id,
    role: row.role as MemberRole,
    addedAt: row.added_at,
    addedBy: row.added_by,
  }));
}

/** Add a member to a workspace with a role; false when already a member there (nothing changed). */
export async function insertMembership(
  db: DbOrTrx,
  input: { workspaceId: string; memberId: string; role: MemberRole; addedBy: string; at: Date },
): Promise<boolean> {
  const row = await db
    .insertInto("workspace_members")
    .values({
      workspace_id: input.workspaceId,
      member_id: input.memberId,
      role: input.role,
      added_by: input.addedBy,
      added_at: input.at,
    })
    .onConflict((oc) => oc.columns(["workspace_id", "member_id"]).doNothing())
    .returning("member_id")
    .executeTakeFirst();
  return row !== undefined;
}

/** Change a member's role in a workspace; false when not a member there or the role is the same. */
export async function updateMembershipRole(
  db: DbOrTrx,
  workspaceId: string,
  memberId: string,
  role: MemberRole,
): Promise<boolean> {
  const result = await db
    .updateTable("workspace_members")
    .set({ role })
    .where("workspace_id", "=", workspaceId)
    .where("member_id", "=", memberId)
    .where("role", "<>", role)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Remove a member from a workspace; false when not a member there. */
export async function deleteMembership(db: DbOrTrx, workspaceId: string, memberId: string): Promise<boolean> {
  const result = await db
    .deleteFrom("workspace_members")
    .where("workspace_id", "=", workspaceId)
    .where("member_id", "=", memberId)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** How many admins a workspace has whose member is not disabled. */
export async function countActiveAdmins(db: DbOrTrx, workspaceId: string): Promise<number> {
  const row = await db
    .selectFrom("workspace_members as wm")
    .innerJoin("members as m", "m.id", "wm.member_id")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("wm.workspace_id", "=", workspaceId)
    .where("wm.role", "=", "admin")
    .where("m.disabled_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Announce a change of what the member's sessions authenticate as (in
 * `workspaceId`, or everywhere when null): bumps `auth_version`, whose change
 * the sessions trigger announces, so every process drops its cached
 * principal. Returns how many sessions.
 */
export async function bumpMemberSessions(db: DbOrTrx, memberId: string, workspaceId: string | null): Promise<number> {
  let query = db
    .updateTable("sessions")
    .set((eb) => ({ auth_version: eb("auth_version", "+", 1) }))
    .where("member_id", "=", memberId)
    .where("revoked_at", "is", null);
  if (workspaceId !== null) query = query.where("workspace_id", "=", workspaceId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Revoke the open sessions of a member (in one workspace, or everywhere when null); returns how many. */
export async function revokeMemberSessions(
  db: DbOrTrx,
  memberId: string,
  workspaceId: string | null,
  at: Date,
): Promise<number> {
  let query = db
    .updateTable("sessions")
    .set({ revoked_at: at })
    .where("member_id", "=", memberId)
    .where("revoked_at", "is", null);
  if (workspaceId !== null) query = query.where("workspace_id", "=", workspaceId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Revoke the live API keys a member owns (in one workspace, or everywhere when null); returns their ids. */
export async function revokeMemberKeys(
  db: DbOrTrx,
  memberId: string,
  workspaceId: string | null,
  at: Date,
): Promise<string[]> {
  let query = db
    .updateTable("api_keys")
    .set({ revoked_at: at })
    .where("member_id", "=", memberId)
    .where("revoked_at", "is", null);
  if (workspaceId !== null) query = query.where("workspace_id", "=", workspaceId);
  const rows = await query.returning("id").execute();
  return rows.map((r) => r.id);
}

// ---------------------------------------------------------------------------
// Invitations

type InvitationRow = {
  id: string;
  workspace_id: string;
  email: string;
  role: string;
  invited_by: string;
  created_at: Date;
  expires_at: Date;
  accepted_at: Date | null;
  accepted_by: string | null;
  revoked_at: Date | null;
  link_shown: boolean;
};

function toInvitation(row: InvitationRow): InvitationRecord {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    email: row.email,
    role: row.role as MemberRole,
    invitedBy: row.invited_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    acceptedAt: row.accepted_at,
    acceptedBy: row.accepted_by,
    revokedAt: row.revoked_at,
    linkShown: row.link_shown,
  };
}

const INVITATION_COLUMNS = [
  "id",
  "workspace_id",
  "email",
  "role",
  "invited_by",
  "created_at",
  "expires_at",
  "accepted_at",
  "accepted_by",
  "revoked_at",
  "link_shown",
] as const;

/**
 * Store an invitation; an open invitation of the same address to the same
 * workspace is revoked first (inviting again replaces it). Returns the new one
 * and the id of the one it replaced.
 */
export async function insertInvitation(
  db: DbOrTrx,
  input: {
    workspaceId: string;
    email: string;
    role: MemberRole;
    tokenHash: string;
    invitedBy: string;
    at: Date;
    expiresAt: Date;
  },
): Promise<{ invitation: InvitationRecord; replaced: string | null }> {
  const email = input.email.toLowerCase();
  const previous = await db
    .updateTable("invitations")
    .set({ revoked_at: input.at })
    .where("workspace_id", "=", input.workspaceId)
    .where("email", "=", email)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .returning("id")
    .executeTakeFirst();
  const row = await db
    .insertInto("invitations")
    .values({
      workspace_id: input.workspaceId,
      email,
      role: input.role,
      token_hash: input.tokenHash,
      invited_by: input.invitedBy,
      created_at: input.at,
      expires_at: input.expiresAt,
    })
    .returning(INVITATION_COLUMNS)
    .executeTakeFirstOrThrow();
  return { invitation: toInvitation(row), replaced: previous?.id ?? null };
}

/** Record that an invitation's link was shown to the inviter instead of mailed. */
export async function markInvitationLinkShown(db: DbOrTrx, id: string): Promise<void> {
  await db.updateTable("invitations").set({ link_shown: true }).where("id", "=", id).execute();
}

/** The invitation whose token has this SHA-256 (whatever its state), or null. */
export async function findInvitationByTokenHash(db: DbOrTrx, tokenHash: string): Promise<InvitationRecord | null> {
  const row = await db
    .selectFrom("invitations")
    .select(INVITATION_COLUMNS)
    .where("token_hash", "=", tokenHash)
    .executeTakeFirst();
  return row ? toInvitation(row) : null;
}

/** The open (not accepted, not revoked, not expired at `at`) invitations of a workspace, newest first. */
export async function listOpenInvitations(db: DbOrTrx, workspaceId: string, at: Date): Promise<InvitationRecord[]> {
  const rows = await db
    .selectFrom("invitations")
    .select(INVITATION_COLUMNS)
    .where("workspace_id", "=", workspaceId)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", at)
    .orderBy("created_at", "desc")
    .execute();
  return rows.map(toInvitation);
}

/**
 * Mark an invitation accepted by `memberId`, if it is still open at `at`
 * (conditional update: of two tabs accepting at once, one wins). True when
 * this call accepted it.
 */
export async function acceptInvitation(db: DbOrTrx, id: string, memberId: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("invitations")
    .set({ accepted_at: at, accepted_by: memberId })
    .where("id", "=", id)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", at)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Revoke an open invitation of a workspace; the record (null when unknown) and whether this call revoked it. */
export async function revokeInvitation(
  db: DbOrTrx,
  workspaceId: string,
  id: string,
  at: Date,
): Promise<{ invitation: InvitationRecord | null; revoked: boolean }> {
  const updated = await db
    .updateTable("invitations")
    .set({ revoked_at: at })
    .where("workspace_id", "=", workspaceId)
    .where("id", "=", id)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .returning(INVITATION_COLUMNS)
    .executeTakeFirst();
  if (updated) return { invitation: toInvitation(updated), revoked: true };
  const row = await db
    .selectFrom("invitations")
    .select(INVITATION_COLUMNS)
    .where("workspace_id", "=", workspaceId)
    .where("id", "=", id)
    .executeTakeFirst();
  return { invitation: row ? toInvitation(row) : null, revoked: false };
}

/** Delete one of better-auth's sessions (schema `auth`) once the runtime's own session has replaced it. */
export async function deleteAuthSession(db: DbOrTrx, id: string): Promise<void> {
  await sql`DELETE FROM auth.session WHERE id = ${id}`.execute(db);
}

/** How many members a workspace has. */
export async function countWorkspaceMembers(db: DbOrTrx, workspaceId: string): Promise<number> {
  const row = await db
    .selectFrom("workspace_members")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("workspace_id", "=", workspaceId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Of these addresses (lowercase), the members of the workspace with their
 * role and whether they are disabled, and those with an open invitation there.
 */
export async function resolvePeople(
  db: DbOrTrx,
  workspaceId: string,
  emails: readonly string[],
  at: Date,
): Promise<{ members: Map<string, { role: MemberRole; disabled: boolean }>; invited: Set<string> }> {
  const found = new Map<string, { role: MemberRole; disabled: boolean }>();
  const invited = new Set<string>();
  if (emails.length === 0) return { members: found, invited };
  const rows = await db
    .selectFrom("workspace_members as wm")
    .innerJoin("members as m", "m.id", "wm.member_id")
    .select(["m.email", "wm.role", "m.disabled_at"])
    .where("wm.workspace_id", "=", workspaceId)
    .where("m.email", "in", emails)
    .execute();
  for (const row of rows) found.set(row.email, { role: row.role as MemberRole, disabled: row.disabled_at !== null });
  const open = await db
    .selectFrom("invitations")
    .select("email")
    .where("workspace_id", "=", workspaceId)
    .where("email", "in", emails)
    .where("accepted_at", "is", null)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", at)
    .execute();
  for (const row of open) invited.add(row.email);
  return { members: found, invited };
}
