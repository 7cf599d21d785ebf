/**
 * People of a workspace: members with a role (admin, member, approver,
 * viewer), invitations by email, several workspaces per installation. Every
 * change is audited and transactional; what a member's sessions and keys
 * authenticate as follows at once (their sessions are announced to every
 * API process, a removed member's keys are revoked).
 *
 * Who may sign in (see {@link admitMember}): a member of the installation who
 * is not disabled; an address listed as an installation admin; by single
 * sign-on, an address of an allowed domain (just-in-time membership with the
 * default role); by an invitation's link, the invited address.
 */
import { createHash, randomBytes } from "node:crypto";
import { authorize, DomainError, roleMay } from "@outcome-runtime/core";
import { audit, type DbOrTrx, type MemberRecord, type MemberRole, members, workspaces } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";

/** The roles a person can have in a workspace, most powerful first. */
export const MEMBER_ROLES: readonly MemberRole[] = ["admin", "approver", "member", "viewer"];

/** An invitation's link is valid this long: 7 days. */
export const INVITATION_TTL_MS = 7 * 24 * 3600_000;

const INVITATION_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const UUID_FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** An address as people type it: one `@`, no spaces, a dot in the domain; at most 254 characters (RFC 5321). */
const EMAIL_FORMAT = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const SLUG_FORMAT = /^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$/;

/** SHA-256 hex of an invitation token: what the invitations table stores. */
export function hashInvitationToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * The address lowercased and trimmed.
 *
 * @throws DomainError `validation_failed` (field `field`) when it is not an email address.
 */
export function normalizeEmail(value: string, field = "email"): string {
  const email = value.trim().toLowerCase();
  if (email.length > 254 || !EMAIL_FORMAT.test(email)) {
    throw new DomainError("validation_failed", `${field} "${value.slice(0, 80)}" is not an email address`, {
      field,
    });
  }
  return email;
}

function parseRole(value: string, field = "role"): MemberRole {
  if (!(MEMBER_ROLES as readonly string[]).includes(value)) {
    throw new DomainError(
      "validation_failed",
      `${field} "${value}" is not one of ${MEMBER_ROLES.join(", ")} (agents get API keys, not memberships)`,
      { field },
    );
  }
  return value as MemberRole;
}

/** The domain of an address, lowercased. */
export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf("@") + 1).toLowerCase();
}

/** How the operator lets people in: from the environment (see `docs/auth.md`). */
export interface SignInPolicy {
  /** Addresses that may sign in without an invitation and create workspaces (`OUTCOME_RUNTIME_ADMIN_EMAILS`). */
  readonly installationAdmins: readonly string[];
  /** Single sign-on's just-in-time membership, when configured. */
  readonly sso?: {
    /** Domains whose addresses may sign in by single sign-on (lowercase); empty: none joins by itself. */
    readonly allowedDomains: readonly string[];
    /** The role a new member gets. */
    readonly defaultRole: MemberRole;
    /** The workspace (slug) a new member joins. */
    readonly workspaceSlug: string;
  };
}

/** The member who signed in and the workspace their session opens in (null: none yet). */
export interface AdmittedMember {
  readonly member: MemberRecord;
  readonly workspaceId: string | null;
  /** True when this sign-in created the member (an installation admin's first, or single sign-on's just in time). */
  readonly created: boolean;
}

/** Why a sign-in is refused: shown to the person, never naming another account. */
export class SignInRefused extends Error {
  constructor(
    readonly reason: "not_a_member" | "disabled" | "domain_not_allowed" | "email_not_verified",
    message: string,
  ) {
    super(message);
    this.name = "SignInRefused";
  }
}

/**
 * Decide whether the owner of `email` (proved by an email link or single
 * sign-on) may sign in, creating the member when the policy says so, and
 * record the sign-in. The session opens in the member's first workspace by
 * name (or `preferWorkspaceId` when a member there).
 *
 * @throws SignInRefused when the address is no member and the policy does not
 *   admit it, when the member is disabled, or (single sign-on) when its domain
 *   is not allowed or the provider did not verify the address.
 */
export async function admitMember(
  deps: RuntimeDeps,
  policy: SignInPolicy,
  input: {
    email: string;
    name?: string | undefined;
    via: "email_link" | "sso";
    emailVerified?: boolean;
    preferWorkspaceId?: string | undefined;
  },
): Promise<AdmittedMember> {
  const email = normalizeEmail(input.email);
  const now = nowOf(deps);
  const installationAdmin = policy.installationAdmins.includes(email);
  if (input.via === "sso" && input.emailVerified !== true) {
    throw new SignInRefused(
      "email_not_verified",
      "your identity provider did not confirm this email address; ask its administrator",
    );
  }
  return inTransaction(deps.db, async (trx) => {
    let member = await members.findMemberByEmail(trx, email);
    let created = false;
    if (member === null) {
      const sso = input.via === "sso" ? policy.sso : undefined;
      if (!installationAdmin && sso === undefined) {
        throw new SignInRefused("not_a_member", "this address is not a member here; ask an admin for an invitation");
      }
      // Just in time, by single sign-on: only addresses of the allowed domains (members sign in whatever theirs).
      if (!installationAdmin && sso !== undefined && !sso.allowedDomains.includes(emailDomain(email))) {
        throw new SignInRefused(
          "domain_not_allowed",
          `addresses of ${emailDomain(email)} may not sign in here; ask an admin to invite you`,
        );
      }
      const made = await members.ensureMember(trx, {
        email,
        name: input.name,
        installationAdmin,
        createdBy: input.via === "sso" ? "sso" : "installation_admins",
      });
      member = made.member;
      created = made.created;
      if (sso !== undefined && !installationAdmin) {
        const ws = await workspaces.ensureWorkspace(trx, sso.workspaceSlug, sso.workspaceSlug);
        if (
          await members.insertMembership(trx, {
            workspaceId: ws.id,
            memberId: member.id,
            role: sso.defaultRole,
            addedBy: "sso",
            at: now,
          })
        ) {
          await audit.insertAuditEvent(trx, {
            workspaceId: ws.id,
            actor: { id: member.id, name: email, role: sso.defaultRole },
            channel: "web",
            action: "member.joined",
            subjectType: "member",
            subjectId: member.id,
            before: null,
            after: { email, role: sso.defaultRole, via: "sso" },
            requestId: null,
          });
        }
      }
    }
    if (member.disabledAt !== null) {
      throw new SignInRefused("disabled", "this account is disabled; ask an admin of your workspace");
    }
    // The installation-admin mark follows OUTCOME_RUNTIME_ADMIN_EMAILS at every sign-in, both ways.
    if (member.installationAdmin !== installationAdmin) {
      await members.setInstallationAdmin(trx, member.id, installationAdmin);
      member = { ...member, installationAdmin };
    }
    await members.recordSignIn(trx, member.id, now);
    const memberships = await members.listMemberships(trx, member.id);
    const preferred = memberships.find((m) => m.workspaceId === input.preferWorkspaceId);
    return { member, workspaceId: (preferred ?? memberships[0])?.workspaceId ?? null, created };
  });
}

/** Whether an email link should be sent to this address: it could sign in with it. */
export async function mayRequestEmailLink(deps: RuntimeDeps, policy: SignInPolicy, email: string): Promise<boolean> {
  const normalized = normalizeEmail(email);
  if (policy.installationAdmins.includes(normalized)) return true;
  const member = await members.findMemberByEmail(deps.db, normalized);
  return member !== null && member.disabledAt === null;
}

/** What the signed-in person sees of themselves: the member, and their workspaces with their role in each. */
export interface MemberProfile {
  readonly member: MemberRecord;
  readonly workspaces: readonly { workspaceId: string; slug: string; name: string; role: MemberRole }[];
}

/** The member and their workspaces. @throws DomainError `not_found` for an unknown id. */
export async function memberProfile(deps: RuntimeDeps, memberId: string): Promise<MemberProfile> {
  const member = await members.findMember(deps.db, memberId);
  if (member === null) throw new DomainError("not_found", "no such member");
  return { member, workspaces: await members.listMemberships(deps.db, memberId) };
}

/**
 * Create a workspace; its creator becomes its admin.
 *
 * @param input.slug lowercase letters, digits and dashes (2–50), unique in the installation.
 * @throws DomainError `forbidden` unless the member is an installation admin
 *   (listed in the policy now: the operator's variable is the authority);
 *   `validation_failed` for a bad slug or name; `conflict` when the slug is taken.
 */
export async function createWorkspace(
  deps: RuntimeDeps,
  policy: SignInPolicy,
  memberId: string,
  input: { slug: string; name: string },
): Promise<{ id: string; slug: string; name: string }> {
  const slug = input.slug.trim();
  const name = input.name.trim();
  if (!SLUG_FORMAT.test(slug)) {
    throw new DomainError(
      "validation_failed",
      `slug "${slug.slice(0, 60)}" must be 1–50 lowercase letters, digits and dashes, e.g. "growth-team"`,
      { field: "slug" },
    );
  }
  if (name === "" || name.length > 120) {
    throw new DomainError("validation_failed", "name must be 1–120 characters", { field: "name" });
  }
  return inTransaction(deps.db, async (trx) => {
    const member = await members.findMember(trx, memberId);
    if (member === null || member.disabledAt !== null || !policy.installationAdmins.includes(member.email)) {
      throw new DomainError(
        "forbidden",
        "only an installation admin (OUTCOME_RUNTIME_ADMIN_EMAILS) creates workspaces",
      );
    }
    // Insert or nothing: of two admins creating the same slug at once, the second is refused.
    const ws = await workspaces.insertWorkspace(trx, slug, name);
    if (ws === null) {
      throw new DomainError("conflict", `a workspace "${slug}" exists already; choose another slug`, {
        field: "slug",
      });
    }
    const now = nowOf(deps);
    await members.insertMembership(trx, {
      workspaceId: ws.id,
      memberId,
      role: "admin",
      addedBy: member.email,
      at: now,
    });
    await audit.insertAuditEvent(trx, {
      workspaceId: ws.id,
      actor: { id: member.id, name: member.email, role: "admin" },
      channel: "web",
      action: "workspace.created",
      subjectType: "workspace",
      subjectId: ws.id,
      before: null,
      after: { slug, name, admin: member.email },
      requestId: null,
    });
    return { id: ws.id, slug: ws.slug, name: ws.name };
  });
}

/** A member as the Members page shows them. */
export interface WorkspaceMemberInfo {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly role: MemberRole;
  readonly addedAt: Date;
  readonly addedBy: string;
  readonly lastSignInAt: Date | null;
  readonly disabled: boolean;
}

/** An invitation as admins see it (never its token). */
export interface InvitationInfo {
  readonly id: string;
  readonly email: string;
  readonly role: MemberRole;
  readonly invitedBy: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
}

/**
 * The members of the caller's workspace and its open invitations.
 *
 * @throws DomainError `forbidden` unless the caller may `member.list`.
 */
export async function listMembers(
  deps: RuntimeDeps,
  caller: Caller,
): Promise<{ members: WorkspaceMemberInfo[]; invitations: InvitationInfo[] }> {
  authorize(caller, "member.list");
  const ws = caller.principal.workspaceId;
  const rows = await members.listWorkspaceMembers(deps.db, ws);
  const open = await members.listOpenInvitations(deps.db, ws, nowOf(deps));
  return {
    members: rows.map((m) => ({
      id: m.id,
      email: m.email,
      name: m.name,
      role: m.role,
      addedAt: m.addedAt,
      addedBy: m.addedBy,
      lastSignInAt: m.lastSignInAt,
      disabled: m.disabledAt !== null,
    })),
    invitations: open.map((i) => ({
      id: i.id,
      email: i.email,
      role: i.role,
      invitedBy: i.invitedBy,
      createdAt: i.createdAt,
      expiresAt: i.expiresAt,
    })),
  };
}

/**
 * Invite an address to the caller's workspace with a role. Inviting an
 * address with an open invitation replaces it (the earlier link stops
 * working). The token is returned once, for the invitation email; only its
 * SHA-256 is stored.
 *
 * @throws DomainError `forbidden` unless the caller may `member.invite`;
 *   `validation_failed` for a bad address or role; `conflict` when the
 *   address is a member of the workspace already.
 */
/** Record that an invitation's link was handed to the inviter (no mail sent): accepting it will start no session. */
export async function invitationLinkShown(deps: RuntimeDeps, invitationId: string): Promise<void> {
  await members.markInvitationLinkShown(deps.db, invitationId);
}

export async function inviteMember(
  deps: RuntimeDeps,
  caller: Caller,
  input: { email: string; role: string },
): Promise<{ invitation: InvitationInfo; token: string; workspaceName: string }> {
  authorize(caller, "member.invite");
  const email = normalizeEmail(input.email);
  const role = parseRole(input.role);
  const ws = caller.principal.workspaceId;
  const token = randomBytes(32).toString("base64url");
  const now = nowOf(deps);
  return inTransaction(deps.db, async (trx) => {
    const existing = await members.findMemberByEmail(trx, email);
    if (existing !== null && (await members.findMembership(trx, ws, existing.id)) !== null) {
      throw new DomainError("conflict", `${email} is a member of this workspace already; change their role instead`, {
        field: "email",
      });
    }
    const { invitation, replaced } = await members.insertInvitation(trx, {
      workspaceId: ws,
      email,
      role,
      tokenHash: hashInvitationToken(token),
      invitedBy: caller.principal.name,
      at: now,
      expiresAt: new Date(now.getTime() + INVITATION_TTL_MS),
    });
    await audit.insertAuditEvent(trx, {
      workspaceId: ws,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "member.invited",
      subjectType: "invitation",
      subjectId: invitation.id,
      before: replaced === null ? null : { replaced },
      after: { email, role, expiresAt: invitation.expiresAt },
      requestId: caller.requestId,
    });
    const workspace = await workspaces.findWorkspace(trx, ws);
    return {
      invitation: {
        id: invitation.id,
        email,
        role,
        invitedBy: invitation.invitedBy,
        createdAt: invitation.createdAt,
        expiresAt: invitation.expiresAt,
      },
      token,
      workspaceName: workspace?.name ?? "",
    };
  });
}

/**
 * Revoke an open invitation of the caller's workspace (its link stops
 * working). Idempotent.
 *
 * @throws DomainError `forbidden` unless the caller may `member.invite`; `not_found` for an unknown id.
 */
export async function revokeInvitation(deps: RuntimeDeps, caller: Caller, id: string): Promise<{ revoked: boolean }> {
  authorize(caller, "member.invite");
  const notFound = () => new DomainError("not_found", `no invitation with id ${id} in this workspace`);
  if (!UUID_FORMAT.test(id)) throw notFound();
  return inTransaction(deps.db, async (trx) => {
    const { invitation, revoked } = await members.revokeInvitation(trx, caller.principal.workspaceId, id, nowOf(deps));
    if (invitation === null) throw notFound();
    if (revoked) {
      await audit.insertAuditEvent(trx, {
        workspaceId: caller.principal.workspaceId,
        actor: auditActor(caller),
        channel: caller.channel,
        action: "member.invitation_revoked",
        subjectType: "invitation",
        subjectId: id,
        before: { email: invitation.email, role: invitation.role },
        after: null,
        requestId: caller.requestId,
      });
    }
    return { revoked };
  });
}

/** What an invitation link shows before it is accepted (GET: nothing changes). */
export type InvitationView =
  | {
      readonly status: "open";
      readonly email: string;
      readonly role: MemberRole;
      readonly workspaceName: string;
      readonly invitedBy: string;
    }
  | { readonly status: "used" | "expired" | "revoked" | "unknown" };

/** Look at an invitation by its link's token; changes nothing (mail scanners open links). */
export async function viewInvitation(deps: RuntimeDeps, token: string): Promise<InvitationView> {
  if (!INVITATION_TOKEN.test(token)) return { status: "unknown" };
  const invitation = await members.findInvitationByTokenHash(deps.db, hashInvitationToken(token));
  if (invitation === null) return { status: "unknown" };
  if (invitation.acceptedAt !== null) return { status: "used" };
  if (invitation.revokedAt !== null) return { status: "revoked" };
  if (invitation.expiresAt <= nowOf(deps)) return { status: "expired" };
  const ws = await workspaces.findWorkspace(deps.db, invitation.workspaceId);
  return {
    status: "open",
    email: invitation.email,
    role: invitation.role,
    workspaceName: ws?.name ?? "",
    invitedBy: invitation.invitedBy,
  };
}

/**
 * Accept an invitation by its link's token (the page's POST): the invited
 * address becomes a member (created when new) of the workspace with the
 * invited role, in one transaction with the invitation's conditional update
 * (a second accept, or a race of two tabs, finds it used).
 *
 * `startSession` says whether the caller may start the member's session: only
 * when this acceptance created the member and the link was mailed to the
 * address (which proves it). A link shown to the inviter proves nothing about
 * its holder, and an existing member's session would carry their other
 * workspaces: then the membership is added and the person signs in as usual.
 *
 * @throws DomainError `not_found` for an unknown token, `conflict` for a used,
 *   revoked or expired invitation (message says which), `forbidden` when the
 *   invited member is disabled.
 */
export async function acceptInvitation(
  deps: RuntimeDeps,
  token: string,
): Promise<{ memberId: string; email: string; workspaceId: string; role: MemberRole; startSession: boolean }> {
  const view = await viewInvitation(deps, token);
  if (view.status === "unknown") throw new DomainError("not_found", "this invitation link is not valid");
  if (view.status !== "open") {
    throw new DomainError(
      "conflict",
      `this invitation was ${view.status === "used" ? "used already" : view.status}; ask an admin for a new one`,
    );
  }
  const now = nowOf(deps);
  return inTransaction(deps.db, async (trx) => {
    const invitation = await members.findInvitationByTokenHash(trx, hashInvitationToken(token));
    if (invitation === null) throw new DomainError("not_found", "this invitation link is not valid");
    const { member, created } = await members.ensureMember(trx, { email: invitation.email, createdBy: "invitation" });
    if (member.disabledAt !== null) {
      throw new DomainError("forbidden", "this account is disabled; ask an admin of your workspace");
    }
    if (!(await members.acceptInvitation(trx, invitation.id, member.id, now))) {
      throw new DomainError(
        "conflict",
        "this invitation was used, revoked or expired a moment ago; ask an admin for a new one",
      );
    }
    const added = await members.insertMembership(trx, {
      workspaceId: invitation.workspaceId,
      memberId: member.id,
      role: invitation.role,
      addedBy: invitation.invitedBy,
      at: now,
    });
    const startSession = created && !invitation.linkShown;
    if (startSession) await members.recordSignIn(trx, member.id, now);
    // An existing member's open sessions learn of the new workspace (the switcher) at their next request.
    else await members.bumpMemberSessions(trx, member.id, null);
    await audit.insertAuditEvent(trx, {
      workspaceId: invitation.workspaceId,
      actor: { id: member.id, name: member.email, role: invitation.role },
      channel: "email",
      action: "member.joined",
      subjectType: "member",
      subjectId: member.id,
      before: null,
      after: { email: member.email, role: invitation.role, via: "invitation", invitedBy: invitation.invitedBy, added },
      requestId: null,
    });
    return {
      memberId: member.id,
      email: member.email,
      workspaceId: invitation.workspaceId,
      role: invitation.role,
      startSession,
    };
  });
}

/** The member's membership in the caller's workspace, read in `trx` (after the workspace's lock). */
async function requireMember(trx: DbOrTrx, caller: Caller, memberId: string) {
  const notFound = () => new DomainError("not_found", `no member with id ${memberId} in this workspace`);
  if (!UUID_FORMAT.test(memberId)) throw notFound();
  const membership = await members.findMembership(trx, caller.principal.workspaceId, memberId);
  if (membership === null) throw notFound();
  return membership;
}

/** Whether a role holds the workspace's administration: it may manage members (the permissions table says who). */
function administers(role: MemberRole): boolean {
  return roleMay(role, "member.manage");
}

async function refuseLastAdmin(trx: DbOrTrx, workspaceId: string, what: string): Promise<void> {
  if ((await members.countActiveAdmins(trx, workspaceId)) <= 1) {
    throw new DomainError(
      "conflict",
      `${what} would leave the workspace without an admin; make someone else admin first`,
    );
  }
}

/**
 * Change a member's role in the caller's workspace. Their sessions there take
 * the new role at their next request (announced to every API process). A
 * lower role revokes the API keys the member owns there: a key made as admin
 * must not outlive the admin role. Changes of one workspace's members are
 * serialised (its row is locked), so two admins demoting each other at once
 * cannot leave it without an admin.
 *
 * @throws DomainError `forbidden` unless the caller may `member.manage`;
 *   `not_found`; `validation_failed` for an unknown role; `conflict` when it
 *   would leave the workspace without an admin.
 */
export async function changeMemberRole(
  deps: RuntimeDeps,
  caller: Caller,
  memberId: string,
  roleInput: string,
): Promise<{ changed: boolean; role: MemberRole; keysRevoked: number }> {
  authorize(caller, "member.manage");
  const role = parseRole(roleInput);
  const ws = caller.principal.workspaceId;
  const now = nowOf(deps);
  return inTransaction(deps.db, async (trx) => {
    await workspaces.lockWorkspace(trx, ws);
    const before = await requireMember(trx, caller, memberId);
    if (before.role === role) return { changed: false, role, keysRevoked: 0 };
    if (administers(before.role) && !administers(role)) await refuseLastAdmin(trx, ws, "demoting the last admin");
    await members.updateMembershipRole(trx, ws, memberId, role);
    await members.bumpMemberSessions(trx, memberId, ws);
    const lower = MEMBER_ROLES.indexOf(role) > MEMBER_ROLES.indexOf(before.role);
    const keys = lower ? await members.revokeMemberKeys(trx, memberId, ws, now) : [];
    await audit.insertAuditEvent(trx, {
      workspaceId: ws,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "member.role_changed",
      subjectType: "member",
      subjectId: memberId,
      before: { email: before.email, role: before.role },
      after: { email: before.email, role, keysRevoked: keys },
      requestId: caller.requestId,
    });
    return { changed: true, role, keysRevoked: keys.length };
  });
}

/**
 * Remove a member from the caller's workspace: their sessions there end and
 * the API keys they own there are revoked, at once.
 *
 * @throws DomainError `forbidden` unless the caller may `member.manage`;
 *   `not_found`; `conflict` when removing the last admin.
 */
export async function removeMember(
  deps: RuntimeDeps,
  caller: Caller,
  memberId: string,
): Promise<{ removed: boolean; keysRevoked: number }> {
  authorize(caller, "member.manage");
  const ws = caller.principal.workspaceId;
  const now = nowOf(deps);
  return inTransaction(deps.db, async (trx) => {
    await workspaces.lockWorkspace(trx, ws);
    const before = await requireMember(trx, caller, memberId);
    if (administers(before.role)) await refuseLastAdmin(trx, ws, "removing the last admin");
    if (!(await members.deleteMembership(trx, ws, memberId))) return { removed: false, keysRevoked: 0 };
    await members.revokeMemberSessions(trx, memberId, ws, now);
    const keys = await members.revokeMemberKeys(trx, memberId, ws, now);
    await audit.insertAuditEvent(trx, {
      workspaceId: ws,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "member.removed",
      subjectType: "member",
      subjectId: memberId,
      before: { email: before.email, role: before.role },
      after: { keysRevoked: keys },
      requestId: caller.requestId,
    });
    return { removed: true, keysRevoked: keys.length };
  });
}

/**
 * The member's role in a workspace, checked before their session moves there
 * (the dashboard's switcher).
 *
 * @throws DomainError `not_found` when the member does not belong to that workspace.
 */
export async function assertMembership(
  deps: RuntimeDeps,
  memberId: string,
  workspaceId: string,
): Promise<{ role: MemberRole }> {
  const membership = UUID_FORMAT.test(workspaceId)
    ? await members.findMembership(deps.db, workspaceId, memberId)
    : null;
  if (membership === null || membership.disabledAt !== null) {
    throw new DomainError("not_found", "you are not a member of that workspace");
  }
  return { role: membership.role };
}
