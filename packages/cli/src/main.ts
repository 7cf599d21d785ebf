#!/usr/bin/env node
/**
 * `outcome-runtime`: start a project, validate and apply outcome files, see
 * where outcomes and experiments stand, decide gates, manage API keys, and
 * run the MCP server for coding agents. Talks to the API over HTTP (except
 * `validate`, `stats`, `signals test` without `--api`, and `init` without
 * `--from`, or with `--offline`).
 * Errors print like a compiler's; `--json` prints machine-readable output for
 * scripts; `--debug` shows stack traces. Exit statuses: see `EXIT`.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { assertNever } from "@outcome-runtime/core";
import {
  type ConnectorCheck,
  connectorPointers,
  type Diagnostic,
  formatDiagnostics,
  humanPath,
  parseOutcome,
} from "@outcome-runtime/spec";
import { Command, CommanderError, Option } from "commander";
import { ApiError, ConnectionError } from "./api-client";
import type { ExperimentJson, GateJson, OutcomeDetailJson, ResponseJson, RevisionJson } from "./api-types";
import { demoCommand } from "./commands/demo";
import { experimentsCommand } from "./commands/experiments";
import { gatesCommand } from "./commands/gates";
import { initCommand } from "./commands/init";
import { keysCommand } from "./commands/keys";
import { mcpCommand } from "./commands/mcp";
import { membersCommand } from "./commands/members";
import { secretsCommand } from "./commands/secrets";
import { signalsCommand } from "./commands/signals";
import { statsCommand } from "./commands/stats";
import { transferCommands } from "./commands/transfer";
import { loadLocalConnectorModules } from "./connector-modules";
import {
  CliFailure,
  clientOf,
  EXIT,
  EXIT_HELP,
  type GlobalOptions,
  out,
  outJson,
  stderrColors,
  useColor,
} from "./output";
import { renderStatus } from "./render";

/** The form one connector of a valid outcome reads in, by the metric's path (e.g. `constraints.guardrails[0]`). */
interface ConnectorForm {
  readonly path: string;
  /** The connector type, as written. */
  readonly connector: string;
  /** `query`: a SQL source's query; `file`: csv; `module`: a type of a connector module. */
  readonly reads: "query" | "mixpanel" | "file" | "module" | "ga4" | "posthog" | "amplitude" | "prometheus" | "datadog";
  /** `batched`: many experiments per request (`:experiments`, a Mixpanel proportion, a module's `readsInBatches`). */
  readonly form: "batched" | "single";
  /** A Mixpanel saved funnel's `funnel_id`, when the connector reads one. */
  readonly funnelId?: unknown;
}

/** The form each connector of a valid outcome reads in (`readsInBatches`, as the worker polls it). */
async function connectorForms(spec: unknown): Promise<ConnectorForm[]> {
  const { connectorReadKind, readsInBatches } = await import("@outcome-runtime/connectors");
  return connectorPointers(spec).flatMap((c) => {
    const config = c.config as { type: string; funnel_id?: unknown };
    const reads = connectorReadKind(config.type);
    if (reads === undefined) return [];
    return [
      {
        path: humanPath(c.pointer.replace(/\/connector$/, "")),
        connector: config.type,
        reads,
        form: readsInBatches(config) ? "batched" : "single",
        ...(config.type === "mixpanel" && config.funnel_id !== undefined ? { funnelId: config.funnel_id } : {}),
      },
    ];
  });
}

/** The line `validate` prints for a connector's form. */
function formLine(q: ConnectorForm): string {
  const batched = q.form === "batched";
  switch (q.reads) {
    case "query":
      return batched
        ? `  ${q.path}: query reads many experiments at once (:experiments), one query per batch`
        : `  ${q.path}: query reads one experiment at a time (:experiment); :experiments reads many at once`;
    case "mixpanel":
      if (batched && q.funnelId !== undefined) {
        return `  ${q.path}: mixpanel reads many experiments at once from saved funnel ${String(q.funnelId)} (segmented by experiment and arm), 1 request per 100 experiments`;
      }
      return batched
        ? `  ${q.path}: mixpanel reads many experiments at once (segmented by experiment and arm), 2 requests per 100 experiments`
        : `  ${q.path}: mixpanel reads one experiment at a time (a mean's sums have no breakdown), 1 + 2 × arms requests each`;
    case "posthog":
      return batched
        ? `  ${q.path}: posthog reads many experiments at once (HogQL grouped by experiment and arm), one request per batch`
        : `  ${q.path}: posthog reads one experiment at a time ({experiment}); {experiments} reads many at once`;
    case "amplitude":
      return batched
        ? `  ${q.path}: amplitude reads many experiments at once (grouped by experiment and arm), 2 or 3 requests per 100 experiments`
        : `  ${q.path}: amplitude reads one experiment at a time (a funnel: one request per arm; batch: false), its query cost per read`;
    case "file":
      return `  ${q.path}: ${q.connector} reads one experiment at a time from its file`;
    case "ga4":
      return `  ${q.path}: ga4 reads many experiments at once (runReport filtered by the experiment dimension), 2 reports per 100 experiments`;
    case "prometheus":
      return `  ${q.path}: prometheus reads many experiments at once (a regular expression on the experiment label), 2 queries per 100 experiments`;
    case "datadog":
      return `  ${q.path}: datadog reads many experiments at once (grouped by experiment and arm tags), 2 requests per 50 experiments`;
    case "module":
      return batched
        ? `  ${q.path}: ${q.connector} reads many experiments at once (its module's readsInBatches), one request per batch`
        : `  ${q.path}: ${q.connector} reads one experiment at a time (its module's readsInBatches), one request each`;
    default:
      return assertNever(q.reads);
  }
}

/**
 * The connectors' settings check (the SQL policy with PostgreSQL's parser,
 * credential references, csv paths), offline: the operator's allowed API
 * hosts are not known here, so the API checks those. Loaded on demand, so
 * other commands do not pay for the parser.
 */
async function offlineConnectorCheck(
  baseDir: string,
): Promise<{ connectors: string[]; checkConnector: ConnectorCheck }> {
  const { checkConnectorSettings, connectorTypes } = await import("@outcome-runtime/connectors");
  await loadLocalConnectorModules();
  return {
    connectors: connectorTypes(),
    checkConnector: (config, kind) =>
      checkConnectorSettings(config as { type: string } & Record<string, unknown>, kind, {
        hostPolicy: false,
        baseDir,
      }),
  };
}

function dirnameOf(file: string): string {
  return file === "-" ? process.cwd() : dirname(resolve(file));
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

function isDiagnostics(errors: unknown[] | undefined): errors is Diagnostic[] {
  return (
    Array.isArray(errors) && errors.every((e) => typeof e === "object" && e !== null && "line" in e && "message" in e)
  );
}

function examples(...lines: string[]): string {
  return ["", "Examples:", ...lines.map((l) => `  $ ${l}`)].join("\n");
}

const program = new Command()
  .name("outcome-runtime")
  .description("Turn a declared outcome into a governed loop of experiments.")
  .addOption(new Option("--url <url>", "API base URL").env("OUTCOME_RUNTIME_URL").default("http://127.0.0.1:8080"))
  .addOption(new Option("--api-key <key>", "API key").env("OUTCOME_RUNTIME_API_KEY"))
  .option("--json", "print JSON for scripts")
  .option("--debug", "print stack traces")
  .addHelpText(
    "after",
    [
      examples(
        "outcome-runtime init",
        "outcome-runtime validate outcome.yaml && outcome-runtime apply outcome.yaml",
        "outcome-runtime gates list",
        "outcome-runtime --json experiments list --state running",
      ),
      "",
      "Global options may come before or after the command. Colours are used on a terminal only,",
      "never with NO_COLOR set. Reference: docs/cli.md.",
    ].join("\n"),
  )
  .addHelpText("afterAll", `\n${EXIT_HELP}`);

program
  .command("validate")
  .description("check outcome files against the schema; every error at once, with line and column")
  .argument("<files...>", "outcome.yaml files")
  .addHelpText(
    "after",
    examples("outcome-runtime validate outcome.yaml", "outcome-runtime --json validate outcomes/*.yaml"),
  )
  .action(async (files: string[]) => {
    const options = program.opts<GlobalOptions>();
    const results = [];
    const parseOptions = await offlineConnectorCheck(dirnameOf(files[0] ?? "."));
    for (const file of files) {
      const source = await readSource(file);
      const result = parseOutcome(source, { file, ...parseOptions });
      results.push({
        file,
        ok: result.ok,
        errors: result.ok ? [] : result.errors,
        queries: result.ok ? await connectorForms(result.spec) : [],
      });
    }
    if (options.json) {
      outJson({ ok: results.every((r) => r.ok), files: results });
    } else {
      for (const r of results) {
        if (r.ok) {
          out(`${r.file}: ok`);
          for (const q of r.queries) out(formLine(q));
        } else process.stderr.write(`${formatDiagnostics(r.errors, { color: useColor(process.stderr) })}\n`);
      }
    }
    if (!results.every((r) => r.ok)) process.exitCode = EXIT.failure;
  });

initCommand(program);

program
  .command("apply")
  .description("create or update an outcome from a file (a new revision only when its content changed)")
  .argument("<file>", "outcome.yaml")
  .addHelpText("after", examples("outcome-runtime apply outcome.yaml"))
  .action(async (file: string) => {
    const options = program.opts<GlobalOptions>();
    const source = await readSource(file);
    // Check locally first: the errors the API would give offline, without a round trip.
    const local = parseOutcome(source, { file, ...(await offlineConnectorCheck(dirnameOf(file))) });
    if (!local.ok) {
      if (options.json) outJson({ ok: false, errors: local.errors });
      else process.stderr.write(`${formatDiagnostics(local.errors, { color: useColor(process.stderr) })}\n`);
      process.exitCode = EXIT.failure;
      return;
    }
    const result = await clientOf(options).request<ResponseJson<"/v1/outcomes", "post">>(
      "POST",
      `/v1/outcomes?file=${encodeURIComponent(file)}`,
      { text: source, contentType: "application/yaml" },
    );
    if (options.json) outJson(result);
    else {
      out(`${result.outcome.slug}: ${result.status} (revision ${result.outcome.revision}, ${result.outcome.state})`);
      const warnings = result.warnings ?? [];
      if (warnings.length > 0) {
        process.stderr.write(
          `${formatDiagnostics(warnings, { color: useColor(process.stderr), severity: "warning" })}\n`,
        );
      }
    }
  });

program
  .command("status")
  .description("where every outcome stands, or one outcome in detail")
  .argument("[outcome]", "outcome id or slug")
  .addHelpText("after", examples("outcome-runtime status", "outcome-runtime --json status checkout-abandonment"))
  .action(async (outcome: string | undefined) => {
    const options = program.opts<GlobalOptions>();
    const client = clientOf(options);
    if (outcome) {
      // The outcome's answer carries counts; its lists are paged endpoints, read to the end here.
      const detail = await client.request<OutcomeDetailJson>("GET", `/v1/outcomes/${encodeURIComponent(outcome)}`);
      const id = encodeURIComponent(detail.outcome.id);
      const [revisions, experiments, gates] = await Promise.all([
        client.all<RevisionJson>(`/v1/outcomes/${id}/revisions`),
        client.all<ExperimentJson>(`/v1/outcomes/${id}/experiments`),
        client.all<GateJson>(`/v1/gates?outcomeId=${id}`),
      ]);
      if (options.json) outJson({ ...detail, revisions, experiments, gates });
      else out(renderStatus.detail(detail, { revisions, experiments, gates }));
      return;
    }
    const list = await client.request<{ items: unknown[] }>("GET", "/v1/outcomes?limit=200");
    if (options.json) outJson(list);
    else out(renderStatus.list(list.items));
  });

program
  .command("activate")
  .description("activate a draft outcome; its first three hypotheses go to a portfolio review")
  .argument("<outcome>", "outcome id or slug")
  .addHelpText("after", examples("outcome-runtime activate checkout-abandonment"))
  .action(async (outcome: string) => {
    const options = program.opts<GlobalOptions>();
    const result = await clientOf(options).request<ResponseJson<"/v1/outcomes/{id}/activate", "post">>(
      "POST",
      `/v1/outcomes/${encodeURIComponent(outcome)}/activate`,
      { json: {} },
    );
    if (options.json) {
      outJson(result);
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

program
  .command("reopen")
  .description("reopen an achieved outcome: it is active again, its signal polled and its horizon checked")
  .argument("<outcome>", "outcome id or slug")
  .option("--reason <text>", "why it is reopened (kept in the audit log)")
  .addHelpText("after", examples('outcome-runtime reopen checkout-abandonment --reason "the gain did not hold"'))
  .action(async (outcome: string, opts: { reason?: string }) => {
    const options = program.opts<GlobalOptions>();
    const result = await clientOf(options).request<ResponseJson<"/v1/outcomes/{id}/reopen", "post">>(
      "POST",
      `/v1/outcomes/${encodeURIComponent(outcome)}/reopen`,
      { json: opts.reason === undefined ? {} : { reason: opts.reason } },
    );
    if (options.json) outJson(result);
    else out(`${result.outcome.slug}: ${result.outcome.state}`);
  });

program.addCommand(experimentsCommand(() => program.opts<GlobalOptions>()));
program.addCommand(gatesCommand(() => program.opts<GlobalOptions>()));

program.addCommand(keysCommand(() => program.opts<GlobalOptions>()));
program.addCommand(membersCommand(() => program.opts<GlobalOptions>()));
program.addCommand(secretsCommand(() => program.opts<GlobalOptions>()));

mcpCommand(program);
demoCommand(program);
program.addCommand(statsCommand(() => program.opts<GlobalOptions>()));
program.addCommand(signalsCommand(() => program.opts<GlobalOptions>()));
transferCommands(program);

/** Every command of the tree: usage errors come back as exceptions (exit 2), and show the help. */
function configureTree(command: Command): void {
  command.exitOverride().showHelpAfterError();
  for (const sub of command.commands) configureTree(sub);
}
configureTree(program);

async function run(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    const options = program.opts<GlobalOptions>();
    if (error instanceof CommanderError) {
      // Help and --version end here too, with status 0; commander printed the message already.
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    if (options.debug)
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    // (`mcp` handles its own errors: its standard output is the protocol.)
    const json = options.json === true;
    const c = stderrColors();
    if (error instanceof ApiError) {
      const p = error.problem;
      if (json) {
        outJson({ ok: false, problem: p });
      } else if (isDiagnostics(p.errors)) {
        process.stderr.write(`${formatDiagnostics(p.errors, { color: useColor(process.stderr) })}\n`);
      } else {
        process.stderr.write(`${c.red(c.bold(`error[${p.code}]`))}: ${p.detail}\n`);
        if (p.code === "unauthenticated" && !options.apiKey) {
          process.stderr.write(`  ${c.cyan("hint:")} pass --api-key or set OUTCOME_RUNTIME_API_KEY\n`);
        }
      }
      process.exitCode = EXIT.failure;
      return;
    }
    if (error instanceof CliFailure || error instanceof ConnectionError) {
      if (json) outJson({ ok: false, error: error.message });
      else process.stderr.write(`${c.red(c.bold("error"))}: ${error.message}\n`);
      process.exitCode = error instanceof CliFailure ? error.exitCode : EXIT.unavailable;
      return;
    }
    process.stderr.write(
      `error: ${error instanceof Error ? error.message : String(error)}${options.debug ? "" : " (run with --debug for details)"}\n`,
    );
    process.exitCode = EXIT.failure;
  }
}

await run();
