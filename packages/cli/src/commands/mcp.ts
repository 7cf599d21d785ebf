/**
 * `outcome-runtime mcp`: the MCP server over stdio, for a coding agent that
 * starts it as a process (Claude Code, Cursor). It talks to the API over
 * HTTP, so the machine it runs on needs no database.
 *
 * Standard output carries the protocol and nothing else: this command never
 * writes to it, and sends `console.log` and its kin to standard error while
 * the server runs. Errors go to standard error.
 */
import type { Command } from "commander";
import { EXIT, err, type GlobalOptions } from "../output";

/** Route console output to standard error: one stray `console.log` would corrupt the protocol. */
function keepStdoutForProtocol(): void {
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

export function mcpCommand(program: Command): Command {
  return program
    .command("mcp")
    .description("run the MCP server over stdio for a coding agent (it reaches the API over HTTP)")
    .addHelpText(
      "after",
      [
        "",
        "The agent starts this command itself; you configure it once. --url and --api-key are the",
        "global options (env OUTCOME_RUNTIME_URL and OUTCOME_RUNTIME_API_KEY), which an MCP config",
        "usually sets through its env block. Use an agent key (keys create --role agent): agents",
        "never decide gates.",
        "",
        "Standard output is the protocol: the command prints nothing else there. Errors go to",
        "standard error. It exits 0 when the agent closes its input, 1 when the API refuses the key,",
        "69 when the API cannot be reached, 78 with no API key.",
        "",
        "Examples:",
        "  $ OUTCOME_RUNTIME_API_KEY=ork_… outcome-runtime mcp --url http://localhost:8080",
        "  $ claude mcp add outcome-runtime --env OUTCOME_RUNTIME_URL=http://localhost:8080 \\",
        "      --env OUTCOME_RUNTIME_API_KEY=$OUTCOME_RUNTIME_API_KEY -- npx outcome-runtime mcp",
        "  $ outcome-runtime init --mcp-only     # writes .mcp.json and .cursor/mcp.json",
        "",
        "Guides: docs/integrations/claude-code.md, docs/integrations/cursor.md.",
      ].join("\n"),
    )
    .action(async () => {
      const options = program.opts<GlobalOptions>();
      if (options.apiKey === undefined || options.apiKey === "") {
        err(
          "error: no API key: pass --api-key or set OUTCOME_RUNTIME_API_KEY\n" +
            "  hint: an MCP client (Claude Code, Cursor, the Inspector) starts this command without your shell's\n" +
            "  environment: set OUTCOME_RUNTIME_URL and OUTCOME_RUNTIME_API_KEY in the server entry's env block\n" +
            '  ("env": {...} in .mcp.json or .cursor/mcp.json, `claude mcp add --env`, the Inspector\'s -e);\n' +
            "  `outcome-runtime init --mcp-only` writes the entries. Create an agent key with\n" +
            "  `outcome-runtime keys create --name <agent> --role agent`",
        );
        process.exitCode = EXIT.config;
        return;
      }
      keepStdoutForProtocol();
      const { runStdioServer, StdioServerError } = await import("@outcome-runtime/mcp/stdio");
      try {
        // Resolves when the agent closes standard input.
        await runStdioServer({ url: options.url, apiKey: options.apiKey });
      } catch (error) {
        if (options.debug) err(error instanceof Error ? (error.stack ?? error.message) : String(error));
        err(`error: ${error instanceof Error ? error.message : String(error)}`);
        if (
          error instanceof StdioServerError &&
          error.reason === "unreachable" &&
          program.getOptionValueSource("url") === "default"
        ) {
          err(
            `  hint: OUTCOME_RUNTIME_URL is not set, so ${options.url} was tried; an MCP client passes no environment\n` +
              "  of its own: set OUTCOME_RUNTIME_URL (and OUTCOME_RUNTIME_API_KEY) in the server entry's env block",
          );
        }
        // A refused key is refused like any request (1); an API that cannot be reached is 69.
        process.exitCode =
          error instanceof StdioServerError && error.reason === "unreachable" ? EXIT.unavailable : EXIT.failure;
      }
    });
}
