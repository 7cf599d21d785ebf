/**
 * `outcome-runtime init`: start a project. Writes an `outcome.yaml` (a
 * commented starter, or a draft from one sentence with `--from`) and the MCP
 * entries coding agents need: `.mcp.json` for Claude Code and
 * `.cursor/mcp.json` for Cursor.
 *
 * Nothing is overwritten without `--force`: every file is planned first and,
 * when one would be clobbered, nothing at all is written. An existing MCP
 * config gains the `outcome-runtime` server beside its other servers.
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { draftOutcomeByRules, draftOutcomeYaml, RulesError } from "@outcome-runtime/llm/offline";
import { formatDiagnostics, parseOutcome } from "@outcome-runtime/spec";
import { type Command, Option } from "commander";
import { ConnectionError } from "../api-client";
import type { ResponseJson } from "../api-types";
import {
  DEFAULT_MCP_API_URL,
  MCP_CLIENT_NAMES,
  MCP_CLIENTS,
  MCP_CONFIG_FILES,
  MCP_MODES,
  type McpClient,
  type McpFilePlan,
  type McpMode,
  mcpEntry,
  planMcpFile,
} from "../mcp-entries";
import { CliFailure, clientOf, EXIT, type GlobalOptions, out, outJson, useColor } from "../output";

/** A draft: the API's answer to `POST /v1/outcomes/draft`, or the rules drafter's offline. */
type Draft = ResponseJson<"/v1/outcomes/draft", "post">;

interface InitOptions {
  from?: string;
  out: string;
  force?: boolean;
  offline?: boolean;
  mcp: McpMode;
  mcpOnly?: boolean;
}

/** The commented starter: valid as it stands (tests/cli-init-mcp.test.ts validates what init writes). */
function starterYaml(): string {
  return readFileSync(new URL("../../templates/outcome.yaml", import.meta.url), "utf8");
}

/** The rules engine's draft, made here without the API. */
function draftOffline(sentence: string): Draft {
  try {
    const draft = draftOutcomeByRules({ sentence });
    return {
      yaml: draftOutcomeYaml(draft, { sentence, source: "rules" }),
      todos: draft.todos,
      source: "rules",
      fallbackReason: null,
    };
  } catch (error) {
    if (error instanceof RulesError && error.code === "sentence_not_understood") throw new CliFailure(error.message);
    throw error;
  }
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw new CliFailure(`${file}: cannot read (${code ?? String(error)})`);
  }
}

interface McpFileResult {
  readonly client: McpClient;
  readonly file: string;
  readonly plan: McpFilePlan;
}

/** What to say about an MCP config file, for people. */
function describeMcp(r: McpFileResult, mode: McpMode): string {
  const who = `${MCP_CLIENT_NAMES[r.client]}, ${mode}`;
  const kept =
    "others" in r.plan && r.plan.others.length > 0
      ? `; kept ${r.plan.others.length === 1 ? "1 other server" : `${r.plan.others.length} other servers`}`
      : "";
  switch (r.plan.action) {
    case "create":
      return `wrote ${r.file} (${who})`;
    case "add":
      return `added outcome-runtime to ${r.file} (${who}${kept})`;
    case "replace":
      return `replaced outcome-runtime in ${r.file} (${who}${kept})`;
    case "unchanged":
      return `${r.file}: outcome-runtime already set up (${who})`;
    case "conflict":
      return `${r.file}: has another outcome-runtime entry; pass --force to replace it (other servers are kept)`;
    case "invalid":
      return `${r.file}: ${r.plan.reason}; fix or remove it, then run init again`;
  }
}

/** The URL the MCP entries point at: --url or OUTCOME_RUNTIME_URL when given, else http://localhost:8080. */
function entryUrl(program: Command, options: GlobalOptions): string {
  return program.getOptionValueSource("url") === "default" ? DEFAULT_MCP_API_URL : options.url;
}

export function initCommand(program: Command): Command {
  return program
    .command("init")
    .description(
      "start a project: a commented outcome.yaml (or a draft from one sentence with --from) and the MCP entries for Claude Code (.mcp.json) and Cursor (.cursor/mcp.json)",
    )
    .option(
      "--from <sentence>",
      'draft the outcome from one sentence, e.g. "Cut checkout abandonment from 68% to 60% in 6 weeks"',
    )
    .option("--out <file>", "where to write the outcome", "outcome.yaml")
    .option("--force", "overwrite outcome.yaml, and replace an existing outcome-runtime MCP entry")
    .option("--offline", "with --from: draft here with the rules engine instead of asking the API (and its LLM)")
    .addOption(
      new Option(
        "--mcp <transport>",
        "how the agents reach the server: stdio (a local process), http (the API's /mcp), none",
      )
        .choices([...MCP_MODES])
        .default("stdio"),
    )
    .option("--mcp-only", "write only the MCP entries; leave outcome.yaml alone")
    .addHelpText(
      "after",
      [
        "",
        "The MCP files go in the current folder (the project root). They reference the API key as",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the variable syntax of the config files, literally
        "${OUTCOME_RUNTIME_API_KEY} (Claude Code) and ${env:OUTCOME_RUNTIME_API_KEY} (Cursor), never its",
        "value, so they can be committed. The global --url (or OUTCOME_RUNTIME_URL) is the API they",
        "point at; default http://localhost:8080. An existing config keeps its other servers.",
        "",
        "Examples:",
        "  $ outcome-runtime init",
        '  $ outcome-runtime init --from "Increase trial-to-paid conversion by 10% in 8 weeks" --offline',
        "  $ outcome-runtime --url https://outcomes.acme.example init --mcp http",
        "  $ outcome-runtime init --mcp-only --force",
        "",
        "Guides: docs/integrations/claude-code.md, docs/integrations/cursor.md.",
      ].join("\n"),
    )
    .action(async (opts: InitOptions) => {
      const options = program.opts<GlobalOptions>();
      const writeOutcome = !opts.mcpOnly;
      if (opts.mcpOnly && opts.mcp === "none") {
        throw new CliFailure("--mcp-only with --mcp none has nothing to write", EXIT.usage);
      }
      const refuseOutcome = () =>
        new CliFailure(`${opts.out}: already exists; pass --force to overwrite it, or --out another file`);

      // Plan every file before writing any, so that a refusal leaves everything as it was
      // (and, with --from, costs no LLM call).
      const problems: string[] = [];
      if (writeOutcome && !opts.force && (await readIfExists(opts.out)) !== null)
        problems.push(refuseOutcome().message);
      const mcp: McpFileResult[] = [];
      if (opts.mcp !== "none") {
        const url = entryUrl(program, options);
        for (const client of MCP_CLIENTS) {
          const file = MCP_CONFIG_FILES[client];
          const plan = planMcpFile(await readIfExists(file), mcpEntry(client, opts.mcp, url), opts.force === true);
          mcp.push({ client, file, plan });
          if (plan.action === "conflict" || plan.action === "invalid")
            problems.push(describeMcp({ client, file, plan }, opts.mcp));
        }
      }
      if (problems.length > 0) throw new CliFailure(`${problems.join("\nerror: ")}\n  nothing was written`);

      let draft: Draft | null = null;
      if (writeOutcome) {
        if (opts.from === undefined) {
          draft = { yaml: starterYaml(), todos: [], source: "starter", fallbackReason: null };
        } else if (opts.offline) {
          draft = draftOffline(opts.from);
        } else {
          try {
            draft = await clientOf(options).request<Draft>("POST", "/v1/outcomes/draft", {
              json: { sentence: opts.from },
            });
          } catch (error) {
            if (!(error instanceof ConnectionError)) throw error;
            process.stderr.write(`warning: ${error.message}\n  drafting offline with the rules engine instead\n`);
            draft = draftOffline(opts.from);
          }
        }
        try {
          await writeFile(opts.out, draft.yaml, { encoding: "utf8", flag: opts.force ? "w" : "wx" });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === "EEXIST") throw refuseOutcome();
          throw new CliFailure(`${opts.out}: cannot write (${code ?? String(error)})`);
        }
      }
      for (const r of mcp) {
        if (!("text" in r.plan)) continue;
        await mkdir(dirname(r.file), { recursive: true });
        try {
          // `wx` for a new file: another process creating it meanwhile is not clobbered.
          await writeFile(r.file, r.plan.text, { encoding: "utf8", flag: r.plan.action === "create" ? "wx" : "w" });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          throw new CliFailure(
            code === "EEXIST"
              ? `${r.file}: was created meanwhile; run init again`
              : `${r.file}: cannot write (${code ?? String(error)})`,
          );
        }
      }

      // The same check as `validate`, on the file as written.
      const result = draft === null ? null : parseOutcome(await readFile(opts.out, "utf8"), { file: opts.out });
      if (options.json) {
        outJson({
          ok: result === null || result.ok,
          file: writeOutcome ? opts.out : null,
          source: draft?.source ?? null,
          fallbackReason: draft?.fallbackReason ?? null,
          todos: draft?.todos ?? [],
          errors: result === null || result.ok ? [] : result.errors,
          mcp: mcp.map((r) => ({
            client: r.client,
            file: r.file,
            transport: opts.mcp,
            action: r.plan.action,
            otherServers: "others" in r.plan ? r.plan.others : [],
          })),
        });
      } else {
        const lines: string[] = [];
        if (draft !== null && result?.ok) {
          if (draft.source === "starter") {
            lines.push(`wrote ${opts.out} (a commented starter: edit it to your signal, target and people)`);
          } else {
            const fallback = draft.fallbackReason === null ? "" : `; the LLM was not used: ${draft.fallbackReason}`;
            lines.push(`wrote ${opts.out} (drafted by ${draft.source}${fallback})`);
          }
          lines.push(`${opts.out}: ok`);
        }
        lines.push(...mcp.map((r) => describeMcp(r, opts.mcp)));
        if (draft !== null && draft.todos.length > 0) {
          lines.push(
            "",
            "Fill in (each is a # TODO comment in the file):",
            ...draft.todos.map((t) => `  - ${t.path}: ${t.note}`),
          );
        }
        lines.push("", "Then:");
        if (writeOutcome) lines.push(`  outcome-runtime validate ${opts.out} && outcome-runtime apply ${opts.out}`);
        if (mcp.length > 0) {
          lines.push(
            "  outcome-runtime keys create --name claude-code --role agent   # with an admin key",
            "  export OUTCOME_RUNTIME_API_KEY=<the agent key>                # before starting Claude Code or Cursor",
          );
        }
        if (result !== null && !result.ok) {
          process.stderr.write(`${formatDiagnostics(result.errors, { color: useColor(process.stderr) })}\n`);
        }
        out(lines.join("\n"));
      }
      if (result !== null && !result.ok) process.exitCode = EXIT.failure;
    });
}
