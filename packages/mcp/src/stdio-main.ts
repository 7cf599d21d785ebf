/**
 * A bare entry point for the stdio server, for tests and for running it
 * without the CLI:
 *
 *   node --import tsx packages/mcp/src/stdio-main.ts --url http://127.0.0.1:8080 --api-key ork_…
 *
 * (`outcome-runtime mcp` is the same server behind the CLI's options.)
 * `--url` and `--api-key` fall back to OUTCOME_RUNTIME_URL and
 * OUTCOME_RUNTIME_API_KEY. Exit status: 0 when the agent closes stdin, 64 for
 * bad arguments, 77 when the API refuses the key, 69 when it cannot be
 * reached, 1 otherwise; the reason is on stderr.
 */
import { parseArgs } from "node:util";
import { runStdioServer, StdioServerError } from "./stdio";

// One stray console.log would corrupt the protocol on stdout.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const EXIT_STATUS = { unauthenticated: 77, unreachable: 69, failed: 1 } as const;

function fail(message: string, status: number): never {
  process.stderr.write(`outcome-runtime mcp: ${message}\n`);
  process.exit(status);
}

let values: { url?: string | undefined; "api-key"?: string | undefined };
try {
  values = parseArgs({
    options: { url: { type: "string" }, "api-key": { type: "string" } },
    strict: true,
  }).values;
} catch (error) {
  fail(`${error instanceof Error ? error.message : String(error)}; usage: --url <API base URL> --api-key <key>`, 64);
}
const url = values.url ?? process.env.OUTCOME_RUNTIME_URL ?? "http://127.0.0.1:8080";
const apiKey = values["api-key"] ?? process.env.OUTCOME_RUNTIME_API_KEY ?? "";
if (apiKey === "") fail("no API key: pass --api-key or set OUTCOME_RUNTIME_API_KEY", 64);

try {
  await runStdioServer({ url, apiKey });
  process.exit(0);
} catch (error) {
  if (error instanceof StdioServerError) fail(error.message, EXIT_STATUS[error.reason]);
  fail(error instanceof Error ? error.message : String(error), 1);
}
