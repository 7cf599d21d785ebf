/**
 * The CLI's surface without an API: `--help` on every command (found by
 * walking the help itself, so a new command cannot be missed), the exit
 * statuses, colours only where they belong, and `mcp`'s standard output kept
 * for the protocol even when it fails.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const ESC = "\u001b";
/**
 * Each case starts the CLI with tsx (about 3 s on an idle core, many times that while the other test files
 * load the machine): the cases get minutes, not the suite's default minute. No case asserts a duration.
 */
const CLI_CASE_TIMEOUT_MS = 300_000;
/** No API listens on port 1. */
const NOWHERE = "http://127.0.0.1:1";

async function cli(args: string[], env: Record<string, string> = {}) {
  const base: NodeJS.ProcessEnv = { ...process.env, OUTCOME_RUNTIME_URL: NOWHERE, ...env };
  for (const name of ["FORCE_COLOR", "NO_COLOR", "OUTCOME_RUNTIME_API_KEY"]) {
    if (!(name in env)) delete base[name];
  }
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: base,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The command names listed under "Commands:" in a help text (without `help`). */
function subcommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1]?.split(/^\S/m)[0] ?? "";
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((name) => name !== "help");
}

describe("--help", () => {
  it(
    "exits 0 on every command, with examples and the exit statuses, and no colour when piped",
    async () => {
      const seen: string[] = [];
      // One level of the command tree at a time, its commands side by side.
      let level: string[][] = [[]];
      while (level.length > 0) {
        const results = await Promise.all(level.map((path) => cli([...path, "--help"])));
        const next: string[][] = [];
        level.forEach((path, i) => {
          const result = results[i]!;
          const name = ["outcome-runtime", ...path].join(" ");
          seen.push(name);
          expect(result.code, name).toBe(0);
          expect(result.stderr, name).toBe("");
          expect(result.stdout, name).toMatch(new RegExp(`^Usage: ${name} `));
          expect(result.stdout, name).toMatch(/\nExamples:\n {2}\$ .*outcome-runtime /);
          expect(result.stdout, name).toContain("Exit status:\n  0   ok\n  1   refused or invalid");
          expect(result.stdout, name).toContain("  69  the API cannot be reached");
          expect(result.stdout.includes(ESC), name).toBe(false);
          for (const sub of subcommands(result.stdout)) next.push([...path, sub]);
        });
        level = next;
      }
      expect(seen).toEqual(
        expect.arrayContaining([
          "outcome-runtime init",
          "outcome-runtime experiments list",
          "outcome-runtime experiments show",
          "outcome-runtime experiments brief",
          "outcome-runtime gates list",
          "outcome-runtime gates show",
          "outcome-runtime gates approve",
          "outcome-runtime gates reject",
          "outcome-runtime gates decide",
          "outcome-runtime mcp",
          "outcome-runtime demo",
          "outcome-runtime stats sequential",
        ]),
      );
      expect(seen.length).toBeGreaterThanOrEqual(20);
    },
    CLI_CASE_TIMEOUT_MS,
  );
});

describe("exit statuses", () => {
  it(
    "exits 2 on a usage error, naming it",
    async () => {
      const cases: [string[], RegExp][] = [
        [["nope"], /^error: unknown command 'nope'/],
        [["gates", "list", "--bogus"], /^error: unknown option '--bogus'/],
        [["gates", "approve"], /^error: missing required argument 'id'/],
        [["gates", "decide", "7c1d", "launch"], /argument 'decision'\. Allowed choices are approve, reject, ship/],
        [["experiments", "list", "--state", "done"], /Allowed choices are proposed, approved, /],
        [["init", "--mcp", "sse"], /Allowed choices are stdio, http, none/],
        [["gates"], /^Usage: outcome-runtime gates /],
      ];
      for (const [args, message] of cases) {
        const result = await cli(args);
        expect(result.code, args.join(" ")).toBe(2);
        expect(result.stderr, args.join(" ")).toMatch(message);
        expect(result.stdout, args.join(" ")).toBe("");
      }
    },
    CLI_CASE_TIMEOUT_MS,
  );

  it(
    "exits 69 when the API cannot be reached, saying where it looked",
    async () => {
      for (const args of [
        ["gates", "list"],
        ["experiments", "show", "x"],
        ["--json", "gates", "approve", "x"],
      ]) {
        const result = await cli(args);
        expect(result.code, args.join(" ")).toBe(69);
        const message = args[0] === "--json" ? JSON.parse(result.stdout).error : result.stderr;
        expect(message).toContain(`cannot reach the API at ${NOWHERE}`);
      }
    },
    CLI_CASE_TIMEOUT_MS,
  );
});

describe("colours", () => {
  const file = "packages/spec/fixtures/three-mistakes.yaml";

  it(
    "are off when piped, on with FORCE_COLOR, and off again with NO_COLOR",
    async () => {
      const piped = await cli(["validate", file]);
      expect(piped.code).toBe(1);
      expect(piped.stderr).toContain("error[");
      expect(piped.stderr.includes(ESC)).toBe(false);

      const forced = await cli(["validate", file], { FORCE_COLOR: "1" });
      expect(forced.stderr.includes(ESC)).toBe(true);
      const refused = await cli(["gates", "list"], { FORCE_COLOR: "1" });
      expect(refused.stderr.includes(ESC)).toBe(true);

      for (const args of [
        ["validate", file],
        ["gates", "list"],
      ]) {
        const none = await cli(args, { FORCE_COLOR: "1", NO_COLOR: "1" });
        expect(none.stderr.includes(ESC), args.join(" ")).toBe(false);
      }
    },
    CLI_CASE_TIMEOUT_MS,
  );
});

describe("outcome-runtime mcp", () => {
  it(
    "without an API key exits 78 and writes nothing to standard output",
    async () => {
      const result = await cli(["mcp"]);
      expect(result).toMatchObject({ code: 78, stdout: "" });
      expect(result.stderr).toMatch(/^error: no API key: pass --api-key or set OUTCOME_RUNTIME_API_KEY/);
      // MCP clients pass no environment of their own: the error says where the variables go.
      expect(result.stderr).toContain(
        "set OUTCOME_RUNTIME_URL and OUTCOME_RUNTIME_API_KEY in the server entry's env block",
      );
      const json = await cli(["--json", "mcp"]);
      expect(json).toMatchObject({ code: 78, stdout: "" });
    },
    CLI_CASE_TIMEOUT_MS,
  );

  it(
    "exits 69 when the API cannot be reached, with the reason on standard error only",
    async () => {
      const result = await cli(["mcp", "--api-key", "ork_whatever"]);
      expect(result).toMatchObject({ code: 69, stdout: "" });
      expect(result.stderr).toMatch(/cannot reach the API at http:\/\/127\.0\.0\.1:1/);
    },
    CLI_CASE_TIMEOUT_MS,
  );
});
