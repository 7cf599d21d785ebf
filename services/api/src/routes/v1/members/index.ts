/**
 * The people of the workspace: list members and open invitations, invite by
 * email (the invitation email carries a single-use link, 7 days), revoke an
 * invitation, change a member's role, remove a member (their sessions end and
 * their keys are revoked). Every change is audited.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { type Mailer, renderAccountEmail } from "@outcome-runtime/notify";
import {
  changeMemberRole,
  type InvitationInfo,
  invitationLinkShown,
  inviteMember,
  listMembers,
  MEMBER_ROLES,
  removeMember,
  revokeInvitation,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { literals, PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const MemberRoleDto = literals(MEMBER_ROLES);
const DateTime = Type.String({ format: "date-time" });

const MemberDto = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  role: MemberRoleDto,
  addedAt: DateTime,
  addedBy: Type.String(),
  lastSignInAt: Type.Union([DateTime, Type.Null()]),
  disabled: Type.Boolean(),
});

const InvitationDto = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: MemberRoleDto,
  invitedBy: Type.String(),
  createdAt: DateTime,
  expiresAt: DateTime,
});

function invitationJson(i: InvitationInfo) {
  return { ...i, createdAt: i.createdAt.toISOString(), expiresAt: i.expiresAt.toISOString() };
}

const memberRoutes: FastifyPluginAsyncTypebox<RouteOptions & { mailer?: Mailer | undefined }> = async (
  app,
  { deps, publicUrl, mailer },
) => {
  app.get(
    "/v1/members",
    {
      config: { operations: ["member.list"] },
      schema: {
        tags: ["members"],
        summary: "The workspace's members and open invitations",
        response: {
          200: Type.Object({ members: Type.Array(MemberDto), invitations: Type.Array(InvitationDto) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const listed = await listMembers(deps, request.caller);
      return {
        members: listed.members.map((m) => ({
          ...m,
          addedAt: m.addedAt.toISOString(),
          lastSignInAt: m.lastSignInAt?.toISOString() ?? null,
        })),
        invitations: listed.invitations.map(invitationJson),
      };
    },
  );

  app.post(
    "/v1/members/invitations",
    {
      config: { operations: ["member.invite"] },
      schema: {
        tags: ["members"],
        summary: "Invite a person by email (admin)",
        description:
          "Emails an invitation with a single-use link valid 7 days; inviting the same address again replaces the " +
          "earlier invitation. When no mail is sent (mail not set up, or logged only), the response carries the " +
          "link as `inviteUrl` for the admin to pass on; such a link, having been seen by the inviter, adds the " +
          "membership when opened but signs nobody in (the person then signs in by email link or single sign-on).",
        body: Type.Object(
          { email: Type.String({ minLength: 3, maxLength: 254 }), role: MemberRoleDto },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            invitation: InvitationDto,
            mailed: Type.Boolean({ description: "true when the invitation email was sent" }),
            inviteUrl: Type.Optional(Type.String({ description: "only when no email was sent" })),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const { invitation, token, workspaceName } = await inviteMember(deps, request.caller, request.body);
      const url = `${publicUrl}/auth/invitation?token=${encodeURIComponent(token)}`;
      let mailed = false;
      if (mailer !== undefined && mailer.mode === "smtp") {
        const mail = renderAccountEmail({
          subject: `${request.caller.principal.name} invited you to ${workspaceName} on Outcome Runtime`,
          intro: `${request.caller.principal.name} invited you to the workspace ${workspaceName} as ${invitation.role}.`,
          button: "Accept the invitation",
          url,
          expiresAt: invitation.expiresAt,
        });
        try {
          await mailer.send({ to: invitation.email, ...mail, links: [{ label: "accept", url }] });
          mailed = true;
        } catch (error) {
          request.log.warn({ err: error, invitationId: invitation.id }, "invitation email not sent");
        }
      }
      if (!mailed) await invitationLinkShown(deps, invitation.id);
      return reply
        .code(201)
        .send({ invitation: invitationJson(invitation), mailed, ...(mailed ? {} : { inviteUrl: url }) });
    },
  );

  app.delete(
    "/v1/members/invitations/:id",
    {
      config: { operations: ["member.invite"] },
      schema: {
        tags: ["members"],
        summary: "Revoke an invitation (admin)",
        description: "Its link stops working. Idempotent.",
        params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
        response: { 200: Type.Object({ revoked: Type.Boolean() }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => revokeInvitation(deps, request.caller, request.params.id),
  );

  app.patch(
    "/v1/members/:id",
    {
      config: { operations: ["member.manage"] },
      schema: {
        tags: ["members"],
        summary: "Change a member's role (admin)",
        description:
          "Their sessions in this workspace take the new role at their next request. A lower role revokes the API " +
          "keys they own in this workspace (a key made as admin must not outlive the role).",
        params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
        body: Type.Object({ role: MemberRoleDto }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            changed: Type.Boolean(),
            role: MemberRoleDto,
            keysRevoked: Type.Integer({ description: "the member's API keys here revoked because the role is lower" }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => changeMemberRole(deps, request.caller, request.params.id, request.body.role),
  );

  app.delete(
    "/v1/members/:id",
    {
      config: { operations: ["member.manage"] },
      schema: {
        tags: ["members"],
        summary: "Remove a member from the workspace (admin)",
        description: "Their sessions here end and the API keys they own here are revoked, at once.",
        params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
        response: {
          200: Type.Object({ removed: Type.Boolean(), keysRevoked: Type.Integer() }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => removeMember(deps, request.caller, request.params.id),
  );
};

export default memberRoutes;
