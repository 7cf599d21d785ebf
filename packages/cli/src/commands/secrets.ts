/**
 * `outcome-runtime secrets list|set|delete`: the workspace's source
 * credentials, named by connectors in outcome.yaml
 * (`database_url_secret: analytics-db`). `set` reads the value from standard
 * input (or from an environment variable with `--from-env`), never from the
 * command line, where shells and `ps` would keep it. Setting and deleting need
 * an admin key with the write and admin scopes.
 */
import { Command } from "commander";
import type { ResponseJson } from "../api-types";
import { CliFailure, clientOf, EXIT, type GlobalOptions, out, outJson } from "../output";
import { examples, when } from "./listing";

/** Everything on standard input, without one trailing newline (what `echo` adds). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new CliFailure(
      "secrets set: pipe the value on standard input (printf '%s' \"$VALUE\" | outcome-runtime secrets set <name>), or use --from-env <VARIABLE>",
      EXIT.usage,
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/u, "");
}

export function secretsCommand(globals: () => GlobalOptions): Command {
  const secrets = new Command("secrets")
    .description("workspace secrets: source credentials that connectors name (values are never shown)")
    .addHelpText(
      "after",
      examples(
        "printf '%s' \"$ANALYTICS_URL\" | outcome-runtime secrets set analytics-db --description 'read-only role'",
        "outcome-runtime secrets set mixpanel-secret --from-env MIXPANEL_SECRET",
        "outcome-runtime secrets list",
        "outcome-runtime secrets delete analytics-db",
      ),
    );

  secrets
    .command("list")
    .description("the workspace's secrets: names, versions, who changed them and when they were last used")
    .addHelpText(
      "after",
      examples("outcome-runtime secrets list", "outcome-runtime --json secrets list | jq -r '.secrets[].name'"),
    )
    .action(async () => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/secrets", "get">>("GET", "/v1/secrets");
      if (options.json) {
        outJson(result);
        return;
      }
      if (result.secrets.length === 0) {
        out("no secrets; an admin creates one with: outcome-runtime secrets set <name>");
        return;
      }
      for (const s of result.secrets) {
        out(
          `${s.name}  v${s.version}  set by ${s.updatedBy} ${when(s.updatedAt)}  last used ${when(s.lastUsedAt)}${s.description === "" ? "" : `  ${s.description}`}`,
        );
      }
    });

  secrets
    .command("set")
    .description("create a secret, or rotate its value (admin); the value comes from standard input")
    .argument("<name>", "lowercase letters, digits, -, _ and ., e.g. analytics-db")
    .option("--from-env <variable>", "read the value from this environment variable instead of standard input")
    .option("--description <text>", "what it is, for the list (e.g. 'analytics read-only role')")
    .addHelpText(
      "after",
      [
        examples(
          "printf '%s' 'postgres://reader:…@analytics:5432/app' | outcome-runtime secrets set analytics-db",
          "outcome-runtime secrets set mixpanel-username --from-env MIXPANEL_USERNAME",
        ),
        "",
        "Then name it in outcome.yaml: database_url_secret: analytics-db (see docs/connectors.md).",
      ].join("\n"),
    )
    .action(async (name: string, opts: { fromEnv?: string; description?: string }) => {
      const options = globals();
      let value: string;
      if (opts.fromEnv !== undefined) {
        const fromEnv = process.env[opts.fromEnv];
        if (fromEnv === undefined || fromEnv === "") {
          throw new CliFailure(`secrets set: the environment variable ${opts.fromEnv} is not set`, EXIT.usage);
        }
        value = fromEnv;
      } else value = await readStdin();
      if (value === "") throw new CliFailure("secrets set: the value is empty", EXIT.usage);
      const result = await clientOf(options).request<ResponseJson<"/v1/secrets/{name}", "put">>(
        "PUT",
        `/v1/secrets/${encodeURIComponent(name)}`,
        { json: { value, ...(opts.description === undefined ? {} : { description: opts.description }) } },
      );
      if (options.json) outJson(result);
      else out(`${result.secret.name}: ${result.created ? "created" : "rotated"} (version ${result.secret.version})`);
    });

  secrets
    .command("delete")
    .description("delete a secret (admin); polls of connectors that name it fail from then on")
    .argument("<name>", "the secret's name")
    .addHelpText("after", examples("outcome-runtime secrets delete analytics-db"))
    .action(async (name: string) => {
      const options = globals();
      const result = await clientOf(options).request<ResponseJson<"/v1/secrets/{name}", "delete">>(
        "DELETE",
        `/v1/secrets/${encodeURIComponent(name)}`,
      );
      if (options.json) outJson(result);
      else out(`${result.secret.name}: deleted`);
    });

  return secrets;
}
