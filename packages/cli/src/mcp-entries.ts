/**
 * The MCP server entries `outcome-runtime init` writes for coding agents, and
 * how an entry joins an existing config file without touching other servers.
 *
 * - Claude Code reads `.mcp.json` at the project root. It expands `${VAR}`
 *   (and `${VAR:-default}`) in `command`, `args`, `env`, `url` and `headers`;
 *   an HTTP entry needs `"type": "http"`.
 * - Cursor reads `.cursor/mcp.json`. It expands `${env:NAME}`; an entry with
 *   `url` (and `headers`) is a remote (Streamable HTTP) server.
 *
 * The API key is never written: both files reference the
 * `OUTCOME_RUNTIME_API_KEY` environment variable, so they can be committed.
 * docs/integrations/claude-code.md and cursor.md show these same entries;
 * tests/cli-init-mcp.test.ts checks that they are equal.
 */
import { isDeepStrictEqual } from "node:util";

/** The server's name in `mcpServers`. */
export const MCP_SERVER_NAME = "outcome-runtime";
/** The API URL `init` writes when none is given. */
export const DEFAULT_MCP_API_URL = "http://localhost:8080";

export const MCP_CLIENTS = ["claude-code", "cursor"] as const;
export type McpClient = (typeof MCP_CLIENTS)[number];
export const MCP_MODES = ["stdio", "http", "none"] as const;
export type McpMode = (typeof MCP_MODES)[number];

/** The config file of each client, relative to the project folder. */
export const MCP_CONFIG_FILES: Record<McpClient, string> = {
  "claude-code": ".mcp.json",
  cursor: ".cursor/mcp.json",
};

export const MCP_CLIENT_NAMES: Record<McpClient, string> = { "claude-code": "Claude Code", cursor: "Cursor" };

/** How each client references an environment variable inside its config file. */
function envRef(client: McpClient, name: string): string {
  return client === "cursor" ? `\${env:${name}}` : `\${${name}}`;
}

/**
 * The `mcpServers.outcome-runtime` entry for a client.
 *
 * @param apiUrl the API's base URL, e.g. `http://localhost:8080` (a trailing slash is dropped)
 *
 * @example
 * mcpEntry("cursor", "http", "http://localhost:8080")
 * // { url: "http://localhost:8080/mcp", headers: { Authorization: "Bearer ${env:OUTCOME_RUNTIME_API_KEY}" } }
 */
export function mcpEntry(client: McpClient, mode: Exclude<McpMode, "none">, apiUrl: string): Record<string, unknown> {
  const base = apiUrl.replace(/\/+$/, "");
  const key = envRef(client, "OUTCOME_RUNTIME_API_KEY");
  if (mode === "stdio") {
    return {
      command: "npx",
      args: ["--no-install", "outcome-runtime", "mcp"],
      env: { OUTCOME_RUNTIME_URL: base, OUTCOME_RUNTIME_API_KEY: key },
    };
  }
  const remote = { url: `${base}/mcp`, headers: { Authorization: `Bearer ${key}` } };
  return client === "claude-code" ? { type: "http", ...remote } : remote;
}

/** What writing an entry into a config file comes to. */
export type McpFilePlan =
  /** No file yet: write `text`. */
  | { readonly action: "create"; readonly text: string; readonly others: readonly string[] }
  /** The file lists other servers and not ours: `text` adds ours and keeps them. */
  | { readonly action: "add"; readonly text: string; readonly others: readonly string[] }
  /** The file has our entry already, as it would be written: nothing to do. */
  | { readonly action: "unchanged"; readonly others: readonly string[] }
  /** The file has a different entry of ours and `force` was given: `text` replaces only that entry. */
  | { readonly action: "replace"; readonly text: string; readonly others: readonly string[] }
  /** The file has a different entry of ours and no `force`: leave it. */
  | { readonly action: "conflict"; readonly others: readonly string[] }
  /** The file is not a JSON object with an `mcpServers` object: leave it. */
  | { readonly action: "invalid"; readonly reason: string };

function render(doc: unknown): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * Plan writing `entry` as `mcpServers.outcome-runtime` into a config file
 * whose current text is `existing` (null when there is no file). Other
 * servers and other top-level keys are kept, in their order.
 */
export function planMcpFile(existing: string | null, entry: Record<string, unknown>, force: boolean): McpFilePlan {
  if (existing === null) {
    return { action: "create", text: render({ mcpServers: { [MCP_SERVER_NAME]: entry } }), others: [] };
  }
  let doc: unknown;
  try {
    doc = existing.trim() === "" ? {} : JSON.parse(existing);
  } catch (error) {
    return { action: "invalid", reason: `not valid JSON (${(error as Error).message})` };
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return { action: "invalid", reason: "not a JSON object" };
  }
  const record = doc as Record<string, unknown>;
  const servers = record.mcpServers ?? {};
  if (typeof servers !== "object" || servers === null || Array.isArray(servers)) {
    return { action: "invalid", reason: '"mcpServers" is not an object' };
  }
  const current = servers as Record<string, unknown>;
  const others = Object.keys(current).filter((name) => name !== MCP_SERVER_NAME);
  const next = render({ ...record, mcpServers: { ...current, [MCP_SERVER_NAME]: entry } });
  if (!(MCP_SERVER_NAME in current)) return { action: "add", text: next, others };
  if (isDeepStrictEqual(current[MCP_SERVER_NAME], entry)) return { action: "unchanged", others };
  return force ? { action: "replace", text: next, others } : { action: "conflict", others };
}
