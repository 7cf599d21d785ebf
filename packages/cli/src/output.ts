/**
 * What every command shares: the global options, the exit codes, writing to
 * the terminal, and colours (only on a terminal, never with `NO_COLOR`).
 */
import pc from "picocolors";
import { ApiClient } from "./api-client";

export interface GlobalOptions {
  url: string;
  apiKey?: string;
  json?: boolean;
  debug?: boolean;
}

/**
 * Exit statuses, documented in `docs/cli.md` and in `outcome-runtime --help`.
 * 69 and 78 follow BSD sysexits (`EX_UNAVAILABLE`, `EX_CONFIG`).
 */
export const EXIT = {
  ok: 0,
  /** Refused or invalid: a bad file, an API refusal (`error[code]`), a failed check. */
  failure: 1,
  /** Usage: an unknown command or option, a missing or malformed argument. */
  usage: 2,
  /** The API could not be reached. */
  unavailable: 69,
  /** Configuration is missing, e.g. no API key for `mcp`. */
  config: 78,
} as const;

/** The exit statuses as `--help` prints them. */
export const EXIT_HELP = [
  "Exit status:",
  "  0   ok",
  "  1   refused or invalid: a bad file, an API refusal (error[code]: detail), a failed check",
  "  2   usage: unknown command or option, missing or malformed argument",
  "  69  the API cannot be reached (--url, OUTCOME_RUNTIME_URL)",
  "  78  configuration missing (e.g. no API key for `mcp`)",
].join("\n");

/** A failure the user can fix (bad file, refused request), with its exit status. */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = "CliFailure";
  }
}

/** Write a line (a newline is added when missing) to standard output. */
export function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Write a line to standard error. */
export function err(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Print a value as indented JSON on standard output (the `--json` form of every command). */
export function outJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/**
 * Whether to colour what goes to `stream`: only a terminal, and never when
 * `NO_COLOR` is set to anything but the empty string (no-color.org) or `TERM`
 * is `dumb`. `FORCE_COLOR` (not `0`) turns colours on anywhere.
 */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true && env.TERM !== "dumb";
}

/** Colours for standard output, or identity functions when off. */
export function stdoutColors() {
  return pc.createColors(useColor(process.stdout));
}

/** Colours for standard error, or identity functions when off. */
export function stderrColors() {
  return pc.createColors(useColor(process.stderr));
}

export type Colors = ReturnType<typeof stdoutColors>;

export function clientOf(options: GlobalOptions): ApiClient {
  return new ApiClient({ url: options.url, apiKey: options.apiKey });
}
