/**
 * MCP over Streamable HTTP at `/mcp`, stateless: every POST gets a fresh MCP
 * server for its caller (packages/mcp) and is answered with JSON. No session,
 * no SSE stream: GET and DELETE answer 405 with `Allow: POST`, which clients
 * read as "no server-initiated stream here".
 *
 * Order of checks: Host and Origin (403, DNS-rebinding and cross-site
 * protection), the method (405), the API key as bearer (401 with
 * `WWW-Authenticate: Bearer`). Refusals carry a JSON-RPC error body. The
 * global rate limit applies (per API key).
 */
import type { AddressInfo } from "node:net";
import { checkHostAndOrigin, handleMcpPost, jsonRpcError } from "@outcome-runtime/mcp";
import { authenticate } from "@outcome-runtime/runtime";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RouteOptions } from "./route-options";

/** JSON-RPC "server error" code used for HTTP-level refusals (as the MCP SDK does). */
const REFUSED = -32000;
/** JSON-RPC code of a missing or unknown API key. */
const UNAUTHENTICATED = -32001;

export default async function mcpRoutes(app: FastifyInstance, { deps, publicUrl }: RouteOptions): Promise<void> {
  /** Hostnames the server is reached at besides the public URL's and loopback: its listen address and the local end of the connection (an IP, so not a rebinding target). */
  function extraHosts(request: FastifyRequest): string[] {
    const address = app.server.address() as AddressInfo | string | null;
    const listen = typeof address === "object" && address !== null ? [address.address] : [];
    return [...listen, ...(request.socket.localAddress ? [request.socket.localAddress.replace(/^::ffff:/, "")] : [])];
  }

  function refuse(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
    return reply.code(status).type("application/json").send(jsonRpcError(code, message));
  }

  /** Host and Origin first, whatever the method. */
  async function guard(request: FastifyRequest, reply: FastifyReply) {
    const reason = checkHostAndOrigin(
      { host: request.headers.host, origin: request.headers.origin },
      { publicUrl, extraHosts: extraHosts(request) },
    );
    if (reason !== null) return refuse(reply, 403, REFUSED, reason);
    return undefined;
  }

  app.route({
    method: ["GET", "DELETE"],
    url: "/mcp",
    schema: { hide: true },
    onRequest: guard,
    handler: async (_request, reply) =>
      refuse(
        reply.header("allow", "POST"),
        405,
        REFUSED,
        "Method not allowed: this MCP endpoint is stateless; POST JSON-RPC messages to it",
      ),
  });

  app.post("/mcp", { schema: { hide: true }, onRequest: guard }, async (request, reply) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
    const principal = match?.[1] ? await authenticate(deps, match[1]) : null;
    if (principal === null) {
      reply.header("www-authenticate", 'Bearer realm="outcome-runtime"');
      return refuse(
        reply,
        401,
        UNAUTHENTICATED,
        match
          ? "the API key is unknown or revoked; create one with `outcome-runtime keys create --role agent`"
          : "send an API key as `Authorization: Bearer <key>`",
      );
    }
    // The transport writes the response itself: keep the headers set so far (security headers, rate limit, request id).
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined) reply.raw.setHeader(name, value as string | number | string[]);
    }
    reply.raw.setHeader("x-request-id", request.id);
    reply.hijack();
    try {
      await handleMcpPost(
        {
          deps,
          caller: { principal, channel: "mcp", requestId: request.id },
          publicUrl,
          onError: (error, message) => request.log.error({ err: error }, message),
        },
        request.raw,
        reply.raw,
        request.body,
      );
    } catch (error) {
      // Hijacked: Fastify's error handler cannot answer any more, so answer here (no internals).
      request.log.error({ err: error }, "MCP request failed");
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { "content-type": "application/json" });
        reply.raw.end(JSON.stringify(jsonRpcError(-32603, `internal error; quote request id ${request.id}`)));
      }
    }
  });
}
