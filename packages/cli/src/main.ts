#!/usr/bin/env node
/**
 * `outcome-runtime`: draft, validate and apply outcome files, see where
 * outcomes stand, manage API keys. Talks to the API over HTTP (except
 * `validate`, and `init --offline`, which drafts with the rules engine). Errors print like a compiler's; `--json` prints
 * machine-readable output for scripts; `--debug` shows stack traces.
 */
import { access, readFile, writeFile } from "node:fs/promises";
import { type DraftTodo, draftOutcomeByRules, draftOutcomeYaml, RulesError } from "@outcome-runtime/llm/offline";
import { type Diagnostic, formatDiagnostics, parseOutcome } from "@outcome-runtime/spec";
import { Command, Option } from "commander";
import { ApiClient, ApiError, ConnectionError } from "./api-client";
import { statsCommand } from "./commands/stats";
import { renderStatus } from "./render";

interface GlobalOptions {
  url: string;
  apiKey?: string;
  json?: boolean;
  debug?: boolean;
}

/** Exit status for a failure the user can fix (bad file, refused request). */
class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

async function readSource(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliFailure(
      code === "ENOENT"
        ? `${file}: no such file`
        : code === "EISDIR"
          ? `${file}: is a directory; give an outcome file`
          : `${file}: cannot read (${code ?? String(error)})`,
    );
  }
}

function clientOf(options: GlobalOptions): ApiClient {
  return new ApiClient({ url: options.url, apiKey: options.apiKey });
}

function isDiagnostics(errors: unknown[] | undefined): errors is Diagnostic[] {
  return (
    Array.isArray(errors) && errors.every((e) => typeof e === "object" && e !== null && "line" in e && "message" in e)
  );
}

const program = new Command()
  .name("outcome-runtime")
  .description("Turn a declared outcome into a governed loop of experiments.")
  .addOption(new Option("--url <url>", "API base URL").env("OUTCOME_RUNTIME_URL").default("http://127.0.0.1:8080"))
  .addOption(new Option("--api-key <key>", "API key").env("OUTCOME_RUNTIME_API_KEY"))
  .option("--json", "print JSON for scripts")
  .option("--debug", "print stack traces")
  .showHelpAfterError();

program
  .command("validate")
  .description("check outcome files against the schema; every error at once, with line and column")
  .argument("<files...>", "outcome.yaml files")
  .action(async (files: string[]) => {
    const options = program.opts<GlobalOptions>();
    const results = [];
    for (const file of files) {
      const source = await readSource(file);
      const result = parseOutcome(source, { file });
      results.push({ file, ok: result.ok, errors: result.ok ? [] : result.errors });
    }
    if (options.json) {
      out(JSON.stringify({ ok: results.every((r) => r.ok), files: results }, null, 2));
    } else {
      for (const r of results) {
        if (r.ok) out(`${r.file}: ok`);
        else process.stderr.write(`${formatDiagnostics(r.errors, { color: process.stderr.isTTY === true })}\n`);
      }
    }
    if (!results.every((r) => r.ok)) process.exitCode = 1;
  });

interface Draft {
  yaml: string;
  todos: DraftTodo[];
  source: string;
  fallbackReason: string | null;
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

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

program
  .command("init")
  .description("draft an outcome.yaml from one sentence, with a TODO comment on each field to fill in")
  .requiredOption(
    "--from <sentence>",
    'the outcome in one sentence, e.g. "Cut checkout abandonment from 68% to 60% in 6 weeks"',
  )
  .option("--out <file>", "where to write the draft", "outcome.yaml")
  .option("--force", "overwrite the file if it exists")
  .option("--offline", "draft here with the rules engine instead of asking the API (and its LLM, if configured)")
  .action(async (opts: { from: string; out: string; force?: boolean; offline?: boolean }) => {
    const options = program.opts<GlobalOptions>();
    const refuse = () =>
      new CliFailure(`${opts.out}: already exists; pass --force to overwrite it, or --out another file`);
    // Checked before drafting so a refused run costs no LLM call; `wx` below closes the race.
    if (!opts.force && (await exists(opts.out))) throw refuse();
    let draft: Draft;
    if (opts.offline) {
      draft = draftOffline(opts.from);
    } else {
      try {
        draft = await clientOf(options).request<Draft>("POST", "/v1/outcomes/draft", { json: { sentence: opts.from } });
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
      if (code === "EEXIST") throw refuse();
      throw new CliFailure(`${opts.out}: cannot write (${code ?? String(error)})`);
    }
    // The same check as `validate`, on the file as written.
    const result = parseOutcome(await readSource(opts.out), { file: opts.out });
    if (options.json) {
      out(
        JSON.stringify(
          {
            ok: result.ok,
            file: opts.out,
            source: draft.source,
            fallbackReason: draft.fallbackReason,
            todos: draft.todos,
            errors: result.ok ? [] : result.errors,
          },
          null,
          2,
        ),
      );
    } else if (!result.ok) {
      process.stderr.write(`${formatDiagnostics(result.errors, { color: process.stderr.isTTY === true })}\n`);
    } else {
      const fallback = draft.fallbackReason === null ? "" : `; the LLM was not used: ${draft.fallbackReason}`;
      out(
        [
          `wrote ${opts.out} (drafted by ${draft.source}${fallback})`,
          `${opts.out}: ok`,
          "",
          "Fill in (each is a # TODO comment in the file):",
          ...draft.todos.map((t) => `  - ${t.path}: ${t.note}`),
          "",
          `Then: outcome-runtime validate ${opts.out} && outcome-runtime apply ${opts.out}`,
        ].join("\n"),
      );
    }
    if (!result.ok) process.exitCode = 1;
  });

program
  .command("apply")
  .description("create or update an outcome from a file (a new revision only when its content changed)")
  .argument("<file>", "outcome.yaml")
  .action(async (file: string) => {
    const options = program.opts<GlobalOptions>();
    const source = await readSource(file);
    // Check locally first: the same errors the API would give, without a round trip.
    const local = parseOutcome(source, { file });
    if (!local.ok) {
      if (options.json) out(JSON.stringify({ ok: false, errors: local.errors }, null, 2));
      else process.stderr.write(`${formatDiagnostics(local.errors)}\n`);
      process.exitCode = 1;
      return;
    }
    const result = await clientOf(options).request<{
      status: string;
      outcome: { slug: string; revision: number; state: string };
    }>("POST", `/v1/outcomes?file=${encodeURIComponent(file)}`, { text: source, contentType: "application/yaml" });
    if (options.json) out(JSON.stringify(result, null, 2));
    else out(`${result.outcome.slug}: ${result.status} (revision ${result.outcome.revision}, ${result.outcome.state})`);
  });

program
  .command("status")
  .description("where every outcome stands, or one outcome in detail")
  .argument("[outcome]", "outcome id or slug")
  .action(async (outcome: string | undefined) => {
    const options = program.opts<GlobalOptions>();
    const client = clientOf(options);
    if (outcome) {
      const detail = await client.request<Record<string, unknown>>(
        "GET",
        `/v1/outcomes/${encodeURIComponent(outcome)}`,
      );
      const experiments = await client.request<{ items: unknown[] }>(
        "GET",
        `/v1/outcomes/${encodeURIComponent(outcome)}/experiments`,
      );
      if (options.json) out(JSON.stringify({ ...detail, experiments: experiments.items }, null, 2));
      else out(renderStatus.detail(detail, experiments.items));
      return;
    }
    const list = await client.request<{ items: unknown[] }>("GET", "/v1/outcomes?limit=200");
    if (options.json) out(JSON.stringify(list, null, 2));
    else out(renderStatus.list(list.items));
  });

program
  .command("activate")
  .description("activate a draft outcome")
  .argument("<outcome>", "outcome id or slug")
  .action(async (outcome: string) => {
    const options = program.opts<GlobalOptions>();
    const result = await clientOf(options).request<{
      outcome: { slug: string; state: string };
      portfolio?: {
        source: string;
        fallbackReason: string | null;
        experiments: { key: string; title: string; prediction: { direction: string; effect: number } | null }[];
        gate: { kind: string; assignees: string[] } | null;
      } | null;
      portfolioError?: string | null;
    }>("POST", `/v1/outcomes/${encodeURIComponent(outcome)}/activate`, { json: {} });
    if (options.json) {
      out(JSON.stringify(result, null, 2));
      return;
    }
    out(`${result.outcome.slug}: ${result.outcome.state}`);
    const p = result.portfolio;
    if (p) {
      const why = p.fallbackReason ? `, fallback: ${p.fallbackReason}` : "";
      const who = p.gate ? ` awaiting ${p.gate.kind} by ${p.gate.assignees.join(", ")}` : "";
      out(`proposed ${p.experiments.length} hypotheses (source: ${p.source}${why})${who}:`);
      for (const e of p.experiments) {
        const effect = e.prediction ? ` (${e.prediction.direction} ${(e.prediction.effect * 100).toFixed(1)}%)` : "";
        out(`  - ${e.key}: ${e.title}${effect}`);
      }
    } else if (result.portfolioError) {
      out(
        `no portfolio yet: ${result.portfolioError} (retry with POST /v1/outcomes/${result.outcome.slug}/hypotheses)`,
      );
    }
  });

const keys = program.command("keys").description("API keys");
keys
  .command("create")
  .description("create an API key for a person (email) or an agent (name); needs an admin key")
  .requiredOption("--name <name>", "a person's email or an agent's name")
  .addOption(
    new Option("--role <role>", "what the key may do")
      .choices(["admin", "member", "approver", "agent"])
      .default("member"),
  )
  .action(async (opts: { name: string; role: string }) => {
    const options = program.opts<GlobalOptions>();
    const created = await clientOf(options).request<{ key: string; name: string; role: string; prefix: string }>(
      "POST",
      "/v1/keys",
      { json: { name: opts.name, role: opts.role } },
    );
    if (options.json) out(JSON.stringify(created, null, 2));
    else out(`created ${created.role} key for ${created.name}:\n\n  ${created.key}\n\nIt is shown once; store it now.`);
  });

program.addCommand(statsCommand(() => program.opts<GlobalOptions>()));

async function run(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    const options = program.opts<GlobalOptions>();
    if (options.debug)
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    if (error instanceof ApiError) {
      const p = error.problem;
      if (options.json) {
        out(JSON.stringify({ ok: false, problem: p }, null, 2));
      } else if (isDiagnostics(p.errors)) {
        process.stderr.write(`${formatDiagnostics(p.errors)}\n`);
      } else {
        process.stderr.write(`error[${p.code}]: ${p.detail}\n`);
      }
      process.exitCode = 1;
      return;
    }
    if (error instanceof CliFailure || error instanceof ConnectionError) {
      if (options.json) out(JSON.stringify({ ok: false, error: error.message }, null, 2));
      else process.stderr.write(`error: ${error.message}\n`);
      process.exitCode = error instanceof CliFailure ? error.exitCode : 1;
      return;
    }
    process.stderr.write(
      `error: ${error instanceof Error ? error.message : String(error)}${options.debug ? "" : " (run with --debug for details)"}\n`,
    );
    process.exitCode = 1;
  }
}

await run();
