/**
 * `outcome-runtime keys create|list|revoke`: API keys for people and agents.
 * Every subcommand needs an admin key with the `admin` scope; the API applies
 * the rules (roles, scopes, idempotent revocation), refusals print as
 * `error[code]: detail` and exit 1.
 */
import { API_KEY_SCOPES, ROLES } from "@outcome-runtime/core";
import { Argument, Command, InvalidArgumentError, Option } from "commander";
import type { ResponseJson } from "../api-types";
import { clientOf, type GlobalOptions, out, outJson } from "../output";
import { examples, table, when } from "./listing";

/** The roles and scopes a key may have: the permissions table's lists. */
const SCOPES = API_KEY_SCOPES;

/** `--scopes read,write` as a list, each checked. */
function parseScopes(value: string): string[] {
  const scopes = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = scopes.find((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknown !== undefined || scopes.length === 0) {
    throw new InvalidArgumentError(`give a comma-separated list of ${SCOPES.join(", ")} (got "${value}")`);
  }
  return scopes;
}

export function keysCommand(globals: () => GlobalOptions): Command {
  const keys = new Command("keys")
    .description("API keys: create, list and revoke them (admin keys only)")
    .addHelpText(
      "after",
      examples(
        "outcome-runtime keys create --name claude-code --role agent",
        "outcome-runtime keys list",
        "outcome-runtime keys revoke 3f2a…",
      ),
    );

  keys
    .command("create")
    .description("create an API key for a person (email) or an agent (name); needs an admin key")
    .requiredOption("--name <name>", "a person's email or an agent's name")
    .addOption(
      new Option("--role <role>", "what the key's owner may do (a viewer reads only)")
        .choices([...ROLES])
        .default("member"),
    )
    .addOption(
      new Option("--scopes <scopes>", "what the key may be used for: read, write, admin (comma-separated)").argParser(
        parseScopes,
      ),
    )
    .addHelpText(
      "after",
      [
        examples(
          "outcome-runtime keys create --name claude-code --role agent",
          "outcome-runtime keys create --name maya.pm@acme.example --role approver",
          "outcome-runtime keys create --name cfo@acme.example --role viewer",
          "outcome-runtime keys create --name dashboard-tv --role member --scopes read",
        ),
        "",
        "The key is printed once. Agent keys build experiments over MCP; they never decide gates.",
        "A viewer reads everything a member reads and changes nothing.",
        "Scopes default to what the role allows (admin: read,write,admin; viewer: read; others:",
        "read,write); a key may do what both its role and its scopes allow. A read key only reads",
        "(GET, MCP read tools).",
      ].join("\n"),
    )
    .action(async (opts: { name: string; role: string; scopes?: string[] }) => {
      const options = globals();
      const created = await clientOf(options).request<ResponseJson<"/v1/keys", "post", 201>>("POST", "/v1/keys", {
        json: { name: opts.name, role: opts.role, ...(opts.scopes ? { scopes: opts.scopes } : {}) },
      });
      if (options.json) outJson(created);
      else
        out(
          `created ${created.role} key for ${created.name} (scopes ${created.scopes.join(", ")}):\n\n  ${created.key}\n\nIt is shown once; store it now.`,
        );
    });

  keys
    .command("list")
    .description("the workspace's keys, revoked ones included (never the keys themselves)")
    .addHelpText(
      "after",
      [
        examples("outcome-runtime keys list", "outcome-runtime --json keys list | jq -r '.keys[].id'"),
        "",
        "LAST USED is updated at most once a minute. --json prints { keys: [key, …] }.",
      ].join("\n"),
    )
    .action(async () => {
      const options = globals();
      const { keys: listed } = await clientOf(options).request<ResponseJson<"/v1/keys", "get">>("GET", "/v1/keys");
      if (options.json) {
        outJson({ keys: listed });
        return;
      }
      out(
        table([
          ["ID", "NAME", "ROLE", "SCOPES", "PREFIX", "CREATED", "LAST USED", "REVOKED"],
          ...listed.map((k) => [
            k.id,
            k.name,
            k.role,
            k.scopes.join(","),
            k.prefix,
            when(k.createdAt),
            when(k.lastUsedAt),
            when(k.revokedAt),
          ]),
        ]),
      );
    });

  keys
    .command("revoke")
    .description("revoke a key: it is refused from its next request on (idempotent)")
    .addArgument(new Argument("<id>", "the key's id, from `outcome-runtime keys list`"))
    .addHelpText("after", examples("outcome-runtime keys revoke 3f2a…"))
    .action(async (id: string) => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/keys/{id}", "delete">>(
        "DELETE",
        `/v1/keys/${encodeURIComponent(id)}`,
      );
      if (options.json) outJson(result);
      else
        out(
          result.revoked
            ? `revoked ${result.key.role} key ${result.key.prefix}… of ${result.key.name}`
            : `${result.key.prefix}… of ${result.key.name} was already revoked (${when(result.key.revokedAt)})`,
        );
    });

  return keys;
}
