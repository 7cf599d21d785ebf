/**
 * MCP clients for tests (the SDK's `Client`, so tests outside packages/mcp
 * need not import the SDK): in memory against a server object, over
 * Streamable HTTP against a listening API, and over stdio against a spawned
 * process.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ERROR_META_KEY } from "./tool-errors";

export type { Client };

const CLIENT_INFO = { name: "outcome-runtime-tests", version: "0.1.0" };

/** A client connected to `server` through a linked in-memory transport pair. */
export async function connectInMemory(server: McpServer): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client(CLIENT_INFO);
  await client.connect(clientSide);
  return client;
}

/** A client of the API's `/mcp` over Streamable HTTP; `apiKey` null sends no Authorization header. */
export async function connectHttp(
  endpoint: string,
  apiKey: string | null,
  headers: Record<string, string> = {},
): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), {
    requestInit: { headers: { ...headers, ...(apiKey === null ? {} : { authorization: `Bearer ${apiKey}` }) } },
  });
  const client = new Client(CLIENT_INFO);
  await client.connect(transport);
  return client;
}

/** A client of a spawned stdio server; `stderr()` is what the process wrote there so far. */
export async function connectStdio(params: {
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({ ...params, stderr: "pipe" });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const client = new Client(CLIENT_INFO);
  try {
    await client.connect(transport);
  } catch (error) {
    const wrapped = new Error(`${error instanceof Error ? error.message : String(error)}\nstderr: ${stderr}`);
    throw wrapped;
  }
  return { client, stderr: () => stderr };
}

/** The structured refusal of an error result (`_meta["dev.outcome-runtime/error"]`), or undefined. */
export function toolErrorOf(result: {
  isError?: unknown;
  _meta?: Record<string, unknown> | undefined;
}): { code: string; message: string; hint: string; details?: Record<string, unknown> } | undefined {
  if (result.isError !== true) return undefined;
  return result._meta?.[ERROR_META_KEY] as { code: string; message: string; hint: string } | undefined;
}
