/**
 * `outcome-runtime signals test outcome.yaml`: a dry run of the outcome's
 * reads. Each metric's connector (the signal, the guardrails, the secondary
 * metrics) runs its read once against the real source, through the same
 * connector code as the worker, and the rows it would store are printed per
 * experiment and arm, with the query time, the form (batched or single) and
 * the source's cost estimate where it gives one. Nothing is stored.
 *
 * Locally, credentials named by `<name>_env` are read from this shell's
 * environment (`OUTCOME_RUNTIME_SOURCE_*` only); a `<name>_secret` is the
 * workspace's and only the API opens it: `--api` runs the same dry run on
 * the API (`POST /v1/outcomes/signals-test`), with the workspace's secrets
 * and the operator's variables.
 */
import { dirname, resolve } from "node:path";
import {
  DEFAULT_DRY_RUN_WINDOW_MS,
  type DryRunError,
  type DryRunMetric,
  dryRunOutcome,
  PLACEHOLDER_EXPERIMENT,
  type SignalsTestReport,
} from "@outcome-runtime/connectors";
import { connectorPointers, formatDiagnostics, humanPath, type OutcomeSpec, parseOutcome } from "@outcome-runtime/spec";
import { Command } from "commander";
import type { ResponseJson } from "../api-types";
import { loadLocalConnectorModules } from "../connector-modules";
import { CliFailure, clientOf, EXIT, type GlobalOptions, out, outJson, useColor } from "../output";

function examples(...lines: string[]): string {
  return ["", "Examples:", ...lines.map((l) => `  $ ${l}`)].join("\n");
}

function date(flag: string, text: string): Date {
  const value = new Date(text);
  if (Number.isNaN(value.getTime()) || !/^\d{4}-\d{2}-\d{2}/u.test(text)) {
    throw new CliFailure(
      `signals test: ${flag} ${JSON.stringify(text)} is not a date; write ISO 8601, e.g. 2025-01-31 or 2025-01-31T12:00:00Z`,
      EXIT.usage,
    );
  }
  return value;
}

/**
 * The window and the experiments to read from the flags: `--to` now, `--from` 7 days before `--to`.
 *
 * @throws CliFailure (usage) for a date that is not ISO 8601 or a window that ends before it starts
 */
function windowOf(opts: { from?: string; to?: string }): { from: Date; to: Date } {
  const to = opts.to === undefined ? new Date() : date("--to", opts.to);
  const from = opts.from === undefined ? new Date(to.getTime() - DEFAULT_DRY_RUN_WINDOW_MS) : date("--from", opts.from);
  if (from.getTime() >= to.getTime()) {
    throw new CliFailure(
      `signals test: --from ${from.toISOString()} is not before --to ${to.toISOString()}; give a window that ends after it starts`,
      EXIT.usage,
    );
  }
  return { from, to };
}

/** The credentials of a local run: `_env` from this shell (source variables only); `_secret` needs the API. */
async function localCredentials(
  requirements: readonly { credential: string; field: string; ref: { via: "env" | "secret"; name: string } }[],
): Promise<Record<string, string>> {
  const { ConnectorError, SOURCE_ENV_NAME } = await import("@outcome-runtime/connectors");
  const values: Record<string, string> = {};
  for (const { credential, field, ref } of requirements) {
    if (ref.via === "secret") {
      throw new ConnectorError(
        "invalid_config",
        `${ref.name} is a workspace secret, which only the API opens; run with --api (and an API key of the workspace), or name an OUTCOME_RUNTIME_SOURCE_* variable with ${credential}_env`,
        { details: { field, secret: ref.name } },
      );
    }
    const value = SOURCE_ENV_NAME.test(ref.name) ? process.env[ref.name] : undefined;
    if (value === undefined || value.trim() === "") {
      throw new ConnectorError(
        "invalid_config",
        `the environment variable ${ref.name} is not set in this shell; export it, or run with --api to use the API's`,
        { details: { field, env: ref.name } },
      );
    }
    values[credential] = value;
  }
  return values;
}

async function runLocally(
  file: string,
  source: string,
  opts: { experiment?: string[]; from?: string; to?: string },
): Promise<SignalsTestReport> {
  const { checkConnectorSettings, connectorTypes, dryRunConnector, parseAllowedApiUrls } = await import(
    "@outcome-runtime/connectors"
  );
  await loadLocalConnectorModules();
  const baseDir = dirname(resolve(file));
  const parsed = parseOutcome(source, {
    file,
    connectors: connectorTypes(),
    checkConnector: (config, kind) =>
      checkConnectorSettings(config as { type: string } & Record<string, unknown>, kind, {
        hostPolicy: false,
        baseDir,
      }),
  });
  if (!parsed.ok) {
    process.stderr.write(`${formatDiagnostics(parsed.errors, { color: useColor(process.stderr) })}\n`);
    throw new CliFailure(`${file}: fix the errors above first`);
  }
  const { from, to } = windowOf(opts);
  const arms = armsOf(parsed.spec);
  const metrics: DryRunMetric[] = connectorPointers(parsed.spec).map(({ pointer, kind, config }) => ({
    path: humanPath(pointer.replace(/\/connector$/u, "")),
    kind,
    config: config as { type: string } & Record<string, unknown>,
    locate: (setting, offset) => parsed.locate(setting === null ? pointer : `${pointer}/${setting}`, offset),
  }));
  return dryRunOutcome(file, metrics, opts.experiment ?? [], {
    arms,
    from,
    to,
    context: { baseDir, allowedApiUrls: parseAllowedApiUrls(process.env.SOURCE_API_URLS) },
    credentials: localCredentials,
  });
}

/** The arms every experiment of the outcome has (`experiment_defaults.arms`, defaults applied). */
function armsOf(spec: OutcomeSpec): string[] {
  return (spec.experiment_defaults?.arms ?? []).map((arm) => arm.name);
}

function number(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+$/u, "");
}

function errorLine(file: string, error: DryRunError): string {
  const where = error.location === null ? file : `${file}:${error.location.line}:${error.location.column}`;
  const field = error.field === null ? "" : `${error.field}: `;
  // One line per error, as a compiler prints it: a source's message may span lines (Snowflake's does).
  const message = error.message.replaceAll(/\s*\n\s*/gu, " ");
  return `${where}: error: ${field}${message} [${error.code}]`;
}

/** The report for people: one block per metric, rows as a table, errors like a compiler's. */
function render(report: SignalsTestReport): { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  stdout.push(`${report.file}: read ${report.from} to ${report.to}, arms ${report.arms.join(", ")}`);
  if (report.placeholder) {
    stdout.push(
      `  no --experiment given: read as experiment "${PLACEHOLDER_EXPERIMENT}", which no source has rows for; the query runs, give --experiment KEY to see an experiment's rows`,
    );
  }
  for (const metric of report.metrics) {
    const time = metric.queryMs === null ? "" : `, ${metric.queryMs} ms`;
    stdout.push("");
    stdout.push(
      `${metric.path} (${metric.type}, ${metric.form}${time})${metric.source === null ? "" : `: ${metric.source}`}`,
    );
    if (metric.cost !== null) {
      stdout.push(`  cost: ${metric.cost.summary} (${metric.cost.bytesProcessed} bytes)`);
    }
    if (metric.error !== null) {
      stdout.push(`  failed: ${metric.error.code}`);
      stderr.push(errorLine(report.file, metric.error));
      continue;
    }
    for (const experiment of metric.experiments) {
      if (experiment.error !== null) {
        stdout.push(`  ${experiment.experiment}: failed: ${experiment.error.code}`);
        stderr.push(errorLine(report.file, experiment.error));
        continue;
      }
      const rows = experiment.rows ?? [];
      if (rows.length === 0) {
        stdout.push(`  ${experiment.experiment}: no rows`);
        continue;
      }
      stdout.push(`  ${experiment.experiment}:`);
      const table = [
        ["arm", "ts", "units", "sum", "sum_sq", "mean"],
        ...rows.map((r) => [
          r.arm,
          r.ts ?? "(window end)",
          number(r.units),
          number(r.sum),
          number(r.sum_sq),
          r.mean === null ? "-" : number(r.mean),
        ]),
      ];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      for (const row of table)
        stdout.push(
          `    ${row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join("  ")
            .trimEnd()}`,
        );
    }
  }
  return { stdout, stderr };
}

/** `outcome-runtime signals ...`: for now `test`. */
export function signalsCommand(globals: () => GlobalOptions): Command {
  const signals = new Command("signals")
    .description("the signals an outcome reads through its connectors")
    .addHelpText(
      "after",
      examples(
        "outcome-runtime signals test outcome.yaml --experiment checkout-v2",
        "outcome-runtime signals test outcome.yaml --api",
      ),
    );
  signals
    .command("test")
    .description(
      "dry run: read each metric of an outcome once from its real source, as the worker would, and show what would be stored",
    )
    .argument("<file>", "outcome.yaml")
    .option(
      "--experiment <key>",
      "an experiment key to read (repeat for several); default: a placeholder key",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--from <date>", "window start, ISO 8601 (default: 7 days before --to)")
    .option("--to <date>", "window end, ISO 8601 (default: now)")
    .option("--api", "run on the API, with the workspace's secrets and the operator's variables")
    .addHelpText(
      "after",
      examples(
        "outcome-runtime signals test outcome.yaml --experiment checkout-v2",
        "outcome-runtime signals test outcome.yaml --experiment a --experiment b --from 2025-01-01 --to 2025-01-08",
        "outcome-runtime --json signals test outcome.yaml --api --experiment checkout-v2",
      ),
    )
    .action(async (file: string, opts: { experiment?: string[]; from?: string; to?: string; api?: boolean }) => {
      const options = globals();
      const { readFile } = await import("node:fs/promises");
      const source = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
        throw new CliFailure(
          error.code === "ENOENT" ? `${file}: no such file` : `${file}: cannot read (${error.code})`,
        );
      });
      let report: SignalsTestReport;
      if (opts.api) {
        const { from, to } = windowOf(opts);
        // Typed from the API's OpenAPI document: a change to the route's schema is a type error here.
        report = await clientOf(options).request<ResponseJson<"/v1/outcomes/signals-test", "post">>(
          "POST",
          `/v1/outcomes/signals-test?file=${encodeURIComponent(file)}`,
          {
            json: {
              source,
              from: from.toISOString(),
              to: to.toISOString(),
              ...(opts.experiment === undefined ? {} : { experiments: opts.experiment }),
            },
          },
        );
      } else report = await runLocally(file, source, opts);
      if (options.json) outJson(report);
      else {
        const { stdout, stderr } = render(report);
        for (const line of stdout) out(line);
        if (stderr.length > 0) process.stderr.write(`${stderr.join("\n")}\n`);
      }
      if (!report.ok) process.exitCode = EXIT.failure;
    });
  return signals;
}
