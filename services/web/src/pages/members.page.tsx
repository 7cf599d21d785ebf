/**
 * The workspace's people: members with their roles and open invitations.
 * Everyone reads the list; an admin also changes roles, removes members,
 * invites people and revokes invitations. The API decides who may (a refusal
 * is shown with its reason); the page only leaves out controls a non-admin
 * could not use.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { errorMessage, request } from "../api";
import { ConfirmDialog } from "../components/confirm-dialog";
import { CopyField } from "../components/copy-field";
import { RoleField } from "../components/role-field";
import { Empty, ErrorState, Loading, PageTitle } from "../components/ui";
import { formatDateTime } from "../format";
import { MEMBER_ROLES } from "../roles";
import { useSessionQuery } from "../session";
import type { Invitation, InvitationCreated, Member, MemberList, MemberRemoved, MemberRole } from "../types";

const MEMBERS_KEY = ["members"] as const;

function useMembersChanged() {
  const queryClient = useQueryClient();
  return () => {
    void queryClient.invalidateQueries({ queryKey: MEMBERS_KEY });
    // One's own role may have changed: the header and the pages' controls follow the session.
    void queryClient.invalidateQueries({ queryKey: ["session"] });
  };
}

function RoleSelect({ member, onError }: { member: Member; onError: (error: unknown) => void }) {
  const changed = useMembersChanged();
  const change = useMutation({
    mutationFn: (role: MemberRole) =>
      request(`/v1/members/${encodeURIComponent(member.id)}`, { method: "PATCH", body: { role } }),
    onSuccess: changed,
    onError,
  });
  return (
    <select
      aria-label={`Role of ${member.email}`}
      value={change.isPending ? change.variables : member.role}
      disabled={change.isPending}
      onChange={(e) => {
        onError(null);
        change.mutate(e.target.value as MemberRole);
      }}
      data-testid="member-role-select"
    >
      {MEMBER_ROLES.map((r) => (
        <option key={r} value={r}>
          {r}
        </option>
      ))}
    </select>
  );
}

function MembersTable({
  members,
  admin,
  me,
  onRemove,
  onError,
}: {
  members: Member[];
  admin: boolean;
  me: string | undefined;
  onRemove: (member: Member) => void;
  onError: (error: unknown) => void;
}) {
  return (
    <div className="table-wrap">
      <table data-testid="members">
        <caption className="visually-hidden">Members of the workspace</caption>
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Last sign-in</th>
            <th scope="col">Added by</th>
            {admin ? (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {members.map((m) => (
            <tr key={m.id} data-testid="member-row" data-email={m.email}>
              <td>
                {m.email}
                {m.id === me ? <span className="text-muted"> (you)</span> : null}
                {m.disabled ? (
                  <>
                    {" "}
                    <span className="badge badge-muted">disabled</span>
                  </>
                ) : null}
              </td>
              <td>{m.name || "—"}</td>
              <td>{admin ? <RoleSelect member={m} onError={onError} /> : m.role}</td>
              <td>{m.lastSignInAt ? formatDateTime(m.lastSignInAt) : "never"}</td>
              <td>
                {m.addedBy}
                <span className="small text-muted"> · {formatDateTime(m.addedAt)}</span>
              </td>
              {admin ? (
                <td>
                  <button type="button" className="button button-small" onClick={() => onRemove(m)}>
                    Remove
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function InviteForm() {
  const changed = useMembersChanged();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<MemberRole>("member");
  const invite = useMutation({
    mutationFn: (input: { email: string; role: MemberRole }) =>
      request<InvitationCreated>("/v1/members/invitations", { method: "POST", body: input }),
    onSuccess: () => {
      setEmail("");
      changed();
    },
  });
  const ids = { email: useId(), role: useId(), error: useId() };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (email.trim()) invite.mutate({ email: email.trim(), role });
  };

  return (
    <section className="section card" aria-labelledby={`${ids.email}-h`}>
      <h2 id={`${ids.email}-h`}>Invite someone</h2>
      <form className="filters-form" onSubmit={submit} noValidate>
        <div className="field field-grow">
          <label htmlFor={ids.email}>Email</label>
          <input
            id={ids.email}
            type="email"
            autoComplete="off"
            spellCheck={false}
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            aria-invalid={invite.isError}
            aria-describedby={invite.isError ? ids.error : undefined}
            required
            data-testid="invite-email"
          />
        </div>
        <RoleField id={ids.role} roles={MEMBER_ROLES} value={role} onChange={setRole} testId="invite-role" />
        <div className="field field-actions">
          <button type="submit" className="button button-primary" disabled={invite.isPending || !email.trim()}>
            {invite.isPending ? "Inviting…" : "Invite"}
          </button>
        </div>
      </form>
      <p className="hint">The invitation's link works once, for 7 days. Inviting the same address again replaces it.</p>
      {invite.isError ? (
        <p id={ids.error} className="form-error" role="alert">
          {errorMessage(invite.error)}
        </p>
      ) : null}
      <div role="status" data-testid="invite-result">
        {invite.isSuccess ? (
          invite.data.mailed ? (
            <p>
              Invitation emailed to <strong>{invite.data.invitation.email}</strong> as {invite.data.invitation.role}.
            </p>
          ) : (
            <p>
              Invited <strong>{invite.data.invitation.email}</strong> as {invite.data.invitation.role}. No email was
              sent (mail is not set up here): pass the link on yourself.
            </p>
          )
        ) : null}
      </div>
      {invite.isSuccess && !invite.data.mailed && invite.data.inviteUrl ? (
        <CopyField label="Invitation link" value={invite.data.inviteUrl} testId="invite-url" />
      ) : null}
    </section>
  );
}

function Invitations({ invitations, admin }: { invitations: Invitation[]; admin: boolean }) {
  const changed = useMembersChanged();
  const revoke = useMutation({
    mutationFn: (id: string) => request(`/v1/members/invitations/${encodeURIComponent(id)}`, { method: "DELETE" }),
    onSuccess: changed,
  });
  return (
    <section className="section" aria-labelledby="invitations-h">
      <h2 id="invitations-h">Open invitations</h2>
      {revoke.isError ? (
        <p className="form-error" role="alert">
          {errorMessage(revoke.error)}
        </p>
      ) : null}
      {invitations.length === 0 ? (
        <Empty title="No open invitations" />
      ) : (
        <div className="table-wrap">
          <table data-testid="invitations">
            <caption className="visually-hidden">Invitations not accepted yet</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Invited by</th>
                <th scope="col">Sent</th>
                <th scope="col">Expires</th>
                {admin ? (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {invitations.map((i) => (
                <tr key={i.id} data-testid="invitation-row" data-email={i.email}>
                  <td>{i.email}</td>
                  <td>{i.role}</td>
                  <td>{i.invitedBy}</td>
                  <td>{formatDateTime(i.createdAt)}</td>
                  <td>{formatDateTime(i.expiresAt)}</td>
                  {admin ? (
                    <td>
                      <button
                        type="button"
                        className="button button-small"
                        disabled={revoke.isPending && revoke.variables === i.id}
                        onClick={() => revoke.mutate(i.id)}
                      >
                        Revoke
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function MembersPage() {
  const session = useSessionQuery().data;
  const admin = session?.allowed.includes("member.manage") ?? false;
  const changed = useMembersChanged();
  const list = useQuery({ queryKey: MEMBERS_KEY, queryFn: () => request<MemberList>("/v1/members") });
  const [roleError, setRoleError] = useState<unknown>(null);
  const [removing, setRemoving] = useState<Member | null>(null);
  const remove = useMutation({
    mutationFn: (member: Member) =>
      request<MemberRemoved>(`/v1/members/${encodeURIComponent(member.id)}`, { method: "DELETE" }),
    onSuccess: () => {
      setRemoving(null);
      changed();
    },
  });
  const workspace = session?.workspace?.name;

  return (
    <>
      <PageTitle title="Members">Members</PageTitle>
      <p className="lead">
        The people of {workspace ? <strong>{workspace}</strong> : "this workspace"} and their roles
        {admin ? "." : ". Only an admin changes them."}
      </p>
      {list.isPending ? (
        <Loading label="Loading the members…" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : (
        <>
          {roleError ? (
            <p className="form-error" role="alert" data-testid="members-error">
              {errorMessage(roleError)}
            </p>
          ) : null}
          {remove.isSuccess ? (
            <p role="status" className="notice" data-testid="member-removed">
              Removed <strong>{remove.variables.email}</strong>
              {remove.data.keysRevoked > 0
                ? `; ${remove.data.keysRevoked} API ${remove.data.keysRevoked === 1 ? "key" : "keys"} revoked.`
                : "."}
            </p>
          ) : null}
          {list.data.members.length === 0 ? (
            <Empty title="No members yet">{admin ? <p>Invite the first one below.</p> : null}</Empty>
          ) : (
            <MembersTable
              members={list.data.members}
              admin={admin}
              me={session?.member?.id}
              onRemove={(m) => {
                remove.reset();
                setRemoving(m);
              }}
              onError={setRoleError}
            />
          )}
          {admin ? <InviteForm /> : null}
          <Invitations invitations={list.data.invitations} admin={admin} />
        </>
      )}
      {removing ? (
        <ConfirmDialog
          title={`Remove ${removing.email}?`}
          confirmLabel="Remove"
          pending={remove.isPending}
          error={remove.error}
          onConfirm={() => remove.mutate(removing)}
          onCancel={() => {
            setRemoving(null);
            remove.reset();
          }}
        >
          <p>
            {removing.email} leaves {workspace ?? "this workspace"}: their sessions here end and the API keys they own
            here are revoked, at once. An admin can invite them again.
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
