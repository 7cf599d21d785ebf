/**
 * Streamable HTTP, stateless: one server and one transport per POST, JSON
 * responses (no SSE stream, no session). The HTTP framework (services/api)
 * authenticates the caller and checks the method; this module checks Host and
 * Origin and answers the JSON-RPC message.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpServer, type McpServerContext } from "./server";

/** A JSON-RPC error body for a refusal at the HTTP level (no request id is known yet). */
export function jsonRpcError(
  code: number,
  message: string,
): { jsonrpc: "2.0"; error: { code: number; message: string }; id: null } {
  return { jsonrpc: "2.0", error: { code, message }, id: null };
}

/** Hostnames that always mean "this machine". `URL.hostname` writes IPv6 in brackets. */
const LOOPBACK = ["localhost", "127.0.0.1", "[::1]"];

function hostnameOf(value: string, withScheme: boolean): string | null {
  try {
    return new URL(withScheme ? value : `http://${value}`).hostname.toLowerCase();
  } catch {
    return null;
  }
}

export interface OriginPolicy {
  /** The public base URL of the service: its host and origin are allowed. */
  readonly publicUrl: string;
  /** More hostnames to accept in `Host` (the listen address, the address the connection arrived on). */
  readonly extraHosts?: readonly string[];
}

/**
 * DNS-rebinding and cross-site protection for `/mcp`:
 * - `Host` must name this service: the public URL's host, a loopback name, or
 *   one of `extraHosts` (any port);
 * - `Origin`, when present (browsers send it), must be the public URL's
 *   origin or a loopback origin (any port). Clients that are not browsers send
 *   none, which is fine.
 *
 * @returns null when allowed, else the reason (answer 403).
 */
export function checkHostAndOrigin(
  headers: { host?: string | undefined; origin?: string | undefined },
  policy: OriginPolicy,
): string | null {
  const publicHost = hostnameOf(policy.publicUrl, true);
  const allowedHosts = new Set(
    [...LOOPBACK, ...(publicHost ? [publicHost] : []), ...(policy.extraHosts ?? [])]
      .map((h) => (h.includes(":") && !h.startsWith("[") ? `[${h}]` : h).toLowerCase())
      .filter((h) => h !== "" && h !== "0.0.0.0" && h !== "[::]"),
  );
  const host = headers.host ? hostnameOf(headers.host, false) : null;
  if (host === null || !allowedHosts.has(host)) {
    return `Host "${headers.host ?? ""}" is not this service; use ${policy.publicUrl} or localhost`;
  }
  if (headers.origin !== undefined) {
    let origin: URL | null = null;
    try {
      origin = new URL(headers.origin);
    } catch {
      origin = null;
    }
    let publicOrigin: string | null = null;
    try {
      publicOrigin = new URL(policy.publicUrl).origin;
    } catch {
      publicOrigin = null;
    }
    const allowed =
      origin !== null &&
      (origin.origin === publicOrigin ||
        ((origin.protocol === "http:" || origin.protocol === "https:") && LOOPBACK.includes(origin.hostname)));
    if (!allowed) return `Origin "${headers.origin}" may not call this service`;
  }
  return null;
}

/**
 * Answer one MCP POST: a fresh server for the caller, a stateless transport
 * (`sessionIdGenerator: undefined`, JSON responses), and the already parsed
 * body. Writes the response on `res`; both are closed when it is sent.
 */
export async function handleMcpPost(
  context: McpServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
): Promise<void> {
  const server = createMcpServer(context);
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  transport.onerror = (error) => context.onError?.(error, "MCP transport error");
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}
