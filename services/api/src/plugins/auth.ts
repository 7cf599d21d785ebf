/**
 * Bearer API keys. Routes under `/v1` need a key; health checks and the
 * OpenAPI document do not. The authenticated caller is `request.caller`.
 */
import type { Principal } from "@outcome-runtime/runtime";
import { authenticate, type Caller, type RuntimeDeps } from "@outcome-runtime/runtime";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { problem, sendProblem } from "./problem-details";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated caller; set on every `/v1` route. */
    caller: Caller;
  }
}

async function auth(app: FastifyInstance, options: { deps: RuntimeDeps }): Promise<void> {
  app.decorateRequest("caller", null as unknown as Caller);
  // preParsing: after the rate limit (onRequest), before the body is read.
  app.addHook("preParsing", async (request, reply) => {
    // The matched route, not the raw URL: `/%761/…` routes to `/v1/…` too.
    const route = request.routeOptions.url;
    if (route === undefined || !route.startsWith("/v1/")) return;
    const header = request.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const principal: Principal | null = match?.[1] ? await authenticate(options.deps, match[1]) : null;
    if (principal === null) {
      reply.header("www-authenticate", 'Bearer realm="outcome-runtime"');
      return sendProblem(
        reply,
        problem(
          request,
          "unauthenticated",
          match
            ? "the API key is unknown or revoked; create one with `outcome-runtime keys create`"
            : "send an API key as `Authorization: Bearer <key>`",
        ),
      );
    }
    request.caller = { principal, channel: "api", requestId: request.id };
  });
}

export default fp(auth, { name: "auth", dependencies: ["problem-details"] });
