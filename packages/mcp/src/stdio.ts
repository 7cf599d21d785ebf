/**
 * The MCP server over stdio, for agents that start a process (Claude Code,
 * Cursor): a proxy that forwards every request to the API's Streamable HTTP
 * endpoint `/mcp` with the API key as bearer. The laptop it runs on needs no
 * database, and the tool definitions are the API's own.
 *
 * Standard output carries the protocol only; nothing here writes to it
 * otherwise. This module imports the SDK and nothing of the runtime.
 */
import type { Readable, Writable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  GetPromptResultSchema,
  ListPromptsRequestSchema,
  ListPromptsResultSchema,
  ListResourcesRequestSchema,
  ListResourcesResultSchema,
  ListResourceTemplatesRequestSchema,
  ListResourceTemplatesResultSchema,
  ListToolsRequestSchema,
  ListToolsResultSchema,
  McpError,
  ReadResourceRequestSchema,
  ReadResourceResultSchema,
} from "@modelcontextprotocol/sdk/types.js";

export interface StdioServerOptions {
  /** The API's base URL (e.g. `http://127.0.0.1:8080`), or its `/mcp` endpoint. */
  readonly url: string;
  /** An API key (an agent key: agents never decide gates). */
  readonly apiKey: string;
  /** The protocol streams (default: the process's stdin and stdout). */
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  /** Where diagnostics go (default: the process's stderr). Never stdout. */
  readonly log?: (line: string) => void;
}

/** Why the stdio server could not start or stopped: a message to show as is, and an exit status to use. */
export class StdioServerError extends Error {
  constructor(
    message: string,
    /** `unauthenticated` (401/403: the key), `unreachable` (no API there), `failed` (anything else). */
    readonly reason: "unauthenticated" | "unreachable" | "failed",
  ) {
    super(message);
    this.name = "StdioServerError";
  }
}

/** The `/mcp` endpoint of an API base URL; a URL already ending in `/mcp` is kept. */
export function mcpEndpoint(url: string): URL {
  let parsed: URL | null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (parsed === null || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new StdioServerError(
      `--url "${url}" is not an http(s) URL; pass the API's base URL, e.g. http://127.0.0.1:8080`,
      "failed",
    );
  }
  if (!/\/mcp\/?$/.test(parsed.pathname)) parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}/mcp`;
  return parsed;
}

/** A clear sentence for a failure to reach or use the API. */
function explain(endpoint: URL, error: unknown): StdioServerError {
  if (error instanceof StdioServerError) return error;
  if (error instanceof StreamableHTTPError) {
    const detail = /"message"\s*:\s*"([^"]*)"/.exec(error.message)?.[1] ?? error.message;
    if (error.code === 401) {
      return new StdioServerError(
        `the API at ${endpoint.origin} refused the API key (401): ${detail}. Pass a valid agent key with --api-key or OUTCOME_RUNTIME_API_KEY.`,
        "unauthenticated",
      );
    }
    if (error.code === 403) {
      return new StdioServerError(
        `the API at ${endpoint.origin} refused the request (403): ${detail}`,
        "unauthenticated",
      );
    }
    if (error.code === 404) {
      return new StdioServerError(
        `no MCP endpoint at ${endpoint.href} (404): check --url (the API's base URL, e.g. http://127.0.0.1:8080)`,
        "unreachable",
      );
    }
    return new StdioServerError(`the API at ${endpoint.href} answered ${error.code}: ${detail}`, "failed");
  }
  if (error instanceof TypeError) {
    // fetch failed: refused connection, unknown host, TLS.
    const cause = error.cause instanceof Error ? error.cause.message : error.message;
    return new StdioServerError(
      `cannot reach the API at ${endpoint.origin} (${cause}); start it (\`pnpm start\` or \`docker compose up\`) or fix --url`,
      "unreachable",
    );
  }
  return new StdioServerError(error instanceof Error ? error.message : String(error), "failed");
}

/**
 * Serve MCP on stdin/stdout, forwarding `tools/list`, `tools/call`,
 * `resources/list`, `resources/templates/list`, `resources/read`,
 * `prompts/list` and `prompts/get` to the API at `url` (`/mcp`, Streamable
 * HTTP) with `apiKey` as bearer token. Results and JSON-RPC errors pass
 * through unchanged.
 *
 * The API is contacted first (the MCP handshake): a bad key or an unreachable
 * API rejects at once, before anything is served, so the agent's host sees the
 * process exit with the message on stderr rather than a hang.
 *
 * Resolves when the agent closes stdin.
 *
 * @throws StdioServerError with a message fit to print as is: `unauthenticated`
 *   (401/403), `unreachable`, or `failed`.
 */
export async function runStdioServer(options: StdioServerOptions): Promise<void> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const endpoint = mcpEndpoint(options.url);
  const upstream = new Client({ name: "outcome-runtime-stdio", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(endpoint, {
    requestInit: { headers: { authorization: `Bearer ${options.apiKey}` } },
  });
  try {
    await upstream.connect(transport);
  } catch (error) {
    await upstream.close().catch(() => {});
    throw explain(endpoint, error);
  }

  const info = upstream.getServerVersion();
  const capabilities = upstream.getServerCapabilities() ?? {};
  const server = new Server(
    { name: info?.name ?? "outcome-runtime", version: info?.version ?? "0.1.0" },
    {
      capabilities: {
        ...(capabilities.tools ? { tools: {} } : {}),
        ...(capabilities.resources ? { resources: {} } : {}),
        ...(capabilities.prompts ? { prompts: {} } : {}),
      },
      ...(upstream.getInstructions() ? { instructions: upstream.getInstructions() } : {}),
    },
  );

  /** Forward one request; an upstream JSON-RPC error passes through, a transport failure becomes one. */
  const forward =
    <R>(method: string, resultSchema: Parameters<Client["request"]>[1]) =>
    async (request: { params?: unknown }, extra: { signal: AbortSignal }): Promise<R> => {
      try {
        return (await upstream.request(
          { method, params: request.params as Record<string, unknown> | undefined },
          resultSchema,
          { signal: extra.signal },
        )) as R;
      } catch (error) {
        if (error instanceof McpError) throw error;
        const explained = explain(endpoint, error);
        log(`outcome-runtime mcp: ${method}: ${explained.message}`);
        throw new McpError(ErrorCode.InternalError, explained.message);
      }
    };

  if (capabilities.tools) {
    server.setRequestHandler(ListToolsRequestSchema, forward("tools/list", ListToolsResultSchema));
    server.setRequestHandler(CallToolRequestSchema, forward("tools/call", CallToolResultSchema));
  }
  if (capabilities.resources) {
    server.setRequestHandler(ListResourcesRequestSchema, forward("resources/list", ListResourcesResultSchema));
    server.setRequestHandler(
      ListResourceTemplatesRequestSchema,
      forward("resources/templates/list", ListResourceTemplatesResultSchema),
    );
    server.setRequestHandler(ReadResourceRequestSchema, forward("resources/read", ReadResourceResultSchema));
  }
  if (capabilities.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, forward("prompts/list", ListPromptsResultSchema));
    server.setRequestHandler(GetPromptRequestSchema, forward("prompts/get", GetPromptResultSchema));
  }

  const stdin = options.stdin ?? process.stdin;
  const stdio = new StdioServerTransport(stdin, options.stdout ?? process.stdout);
  stdio.onerror = (error) => log(`outcome-runtime mcp: stdio: ${error.message}`);
  const ended = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    // The agent closing our stdin ends the session (StdioServerTransport does not watch for it).
    stdin.once("end", () => void server.close());
    stdin.once("close", () => void server.close());
  });
  await server.connect(stdio);
  await ended;
  await upstream.close().catch(() => {});
}
