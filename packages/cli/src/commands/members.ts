/**
 * `outcome-runtime members list|invite|revoke-invitation|role|remove`: the
 * people of the workspace (docs/auth.md). Listing needs any key; the changes
 * an admin key with the `admin` scope. The API applies the rules (the last
 * admin stays, a removed member's keys are revoked); refusals print as
 * `error[code]: detail` and exit 1.
 */
import { Argument, Command, Option } from "commander";
import type { ResponseJson } from "../api-types";
import { clientOf, type GlobalOptions, out, outJson } from "../output";
import { examples, table, when } from "./listing";

/** The roles a person can have in a workspace (agents get keys: `outcome-runtime keys create --role agent`). */
const MEMBER_ROLES = ["admin", "approver", "member", "viewer"] as const;

export function membersCommand(globals: () => GlobalOptions): Command {
  const members = new Command("members")
    .description("the people of the workspace: list, invite, change roles, remove")
    .addHelpText(
      "after",
      examples(
        "outcome-runtime members list",
        "outcome-runtime members invite maya.pm@acme.example --role approver",
        "outcome-runtime members role 3f2a… viewer",
        "outcome-runtime members remove 3f2a…",
      ),
    );

  members
    .command("list")
    .description("the members with their role, and the open invitations")
    .addHelpText(
      "after",
      [
        examples("outcome-runtime members list", "outcome-runtime --json members list | jq -r '.members[].email'"),
        "",
        "--json prints { members: [...], invitations: [...] }.",
      ].join("\n"),
    )
    .action(async () => {
      const options = globals();
      const listed = await clientOf(options).request<ResponseJson<"/v1/members", "get">>("GET", "/v1/members");
      if (options.json) {
        outJson(listed);
        return;
      }
      out(
        table([
          ["ID", "EMAIL", "ROLE", "LAST SIGN-IN", "ADDED BY"],
          ...listed.members.map((m) => [
            m.id,
            m.email,
            m.disabled ? `${m.role} (disabled)` : m.role,
            when(m.lastSignInAt),
            m.addedBy,
          ]),
        ]),
      );
      if (listed.invitations.length > 0) {
        out("\nInvited:");
        out(
          table([
            ["ID", "EMAIL", "ROLE", "INVITED BY", "EXPIRES"],
            ...listed.invitations.map((i) => [i.id, i.email, i.role, i.invitedBy, when(i.expiresAt)]),
          ]),
        );
      }
    });

  members
    .command("invite")
    .description("invite a person by email: they get a link, valid 7 days, to join with the role")
    .addArgument(new Argument("<email>", "the person's address"))
    .addOption(new Option("--role <role>", "their role in the workspace").choices([...MEMBER_ROLES]).default("member"))
    .addHelpText(
      "after",
      [
        examples("outcome-runtime members invite maya.pm@acme.example --role approver"),
        "",
        "Without mail set up (SMTP_URL), the invitation link is printed for you to pass on.",
        "Inviting the same address again replaces the earlier invitation.",
      ].join("\n"),
    )
    .action(async (email: string, opts: { role: string }) => {
      const options = globals();
      const created = await clientOf(options).request<ResponseJson<"/v1/members/invitations", "post", 201>>(
        "POST",
        "/v1/members/invitations",
        { json: { email, role: opts.role } },
      );
      if (options.json) outJson(created);
      else if (created.mailed)
        out(`invited ${created.invitation.email} as ${created.invitation.role}: the link is in their mail`);
      else
        out(
          `invited ${created.invitation.email} as ${created.invitation.role}; no mail was sent, pass them this link (single use, until ${when(created.invitation.expiresAt)}):\n\n  ${created.inviteUrl ?? ""}`,
        );
    });

  members
    .command("revoke-invitation")
    .description("withdraw an open invitation: its link stops working")
    .addArgument(new Argument("<id>", "the invitation's id, from `outcome-runtime members list`"))
    .addHelpText("after", examples("outcome-runtime members revoke-invitation 9c1e…"))
    .action(async (id: string) => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/members/invitations/{id}", "delete">>(
        "DELETE",
        `/v1/members/invitations/${encodeURIComponent(id)}`,
      );
      if (options.json) outJson(result);
      else out(result.revoked ? "invitation revoked" : "the invitation was already revoked, accepted or expired");
    });

  members
    .command("role")
    .description("change a member's role; their sessions take it at their next request")
    .addArgument(new Argument("<id>", "the member's id, from `outcome-runtime members list`"))
    .addArgument(new Argument("<role>", "the new role").choices([...MEMBER_ROLES]))
    .addHelpText(
      "after",
      [
        examples("outcome-runtime members role 3f2a… approver"),
        "",
        "A lower role revokes the API keys the member owns in this workspace.",
      ].join("\n"),
    )
    .action(async (id: string, role: string) => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/members/{id}", "patch">>(
        "PATCH",
        `/v1/members/${encodeURIComponent(id)}`,
        { json: { role } },
      );
      if (options.json) outJson(result);
      else
        out(
          result.changed
            ? `now ${result.role}${result.keysRevoked > 0 ? `; ${result.keysRevoked} of their keys revoked` : ""}`
            : `already ${result.role}`,
        );
    });

  members
    .command("remove")
    .description("remove a member: their sessions end and the keys they own here are revoked")
    .addArgument(new Argument("<id>", "the member's id, from `outcome-runtime members list`"))
    .addHelpText("after", examples("outcome-runtime members remove 3f2a…"))
    .action(async (id: string) => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/members/{id}", "delete">>(
        "DELETE",
        `/v1/members/${encodeURIComponent(id)}`,
      );
      if (options.json) outJson(result);
      else out(result.removed ? `removed; ${result.keysRevoked} of their keys revoked` : "not a member any more");
    });

  return members;
}
