/**
 * Liveness and readiness. Neither needs a key.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { checkDatabase } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import type { AppOptions } from "../app";

async function withTimeout(check: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const Check = Type.Union([Type.Literal("up"), Type.Literal("down")]);

const healthRoutes: FastifyPluginAsyncTypebox<AppOptions> = async (app, options) => {
  app.get(
    "/healthz",
    {
      config: { rateLimit: false },
      schema: {
        tags: ["health"],
        summary: "Liveness: the process is up",
        response: {
          200: Type.Object({
            status: Type.Literal("ok"),
            version: Type.String(),
            signalStorage: Type.Union([Type.Literal("timescaledb"), Type.Literal("plain")], {
              description: "how signal points are stored: a TimescaleDB hypertable, or a plain table with a BRIN index",
            }),
          }),
        },
      },
    },
    async () => ({ status: "ok" as const, version: options.version, signalStorage: options.signalStorage }),
  );

  app.get(
    "/readyz",
    {
      config: { rateLimit: false },
      schema: {
        tags: ["health"],
        summary: "Readiness: Postgres and Redis are reachable",
        response: {
          200: Type.Object({ status: Type.Literal("ready"), checks: Type.Object({ postgres: Check, redis: Check }) }),
          503: Type.Object({
            status: Type.Literal("unavailable"),
            checks: Type.Object({ postgres: Check, redis: Check }),
          }),
        },
      },
    },
    async (_request, reply) => {
      const [postgres, redis] = await Promise.all([
        withTimeout(checkDatabase(options.deps), 2000),
        withTimeout(
          options.redis.ping().then((r) => r === "PONG"),
          2000,
        ),
      ]);
      const checks = { postgres: postgres ? "up" : "down", redis: redis ? "up" : "down" } as const;
      if (postgres && redis) return reply.code(200).send({ status: "ready" as const, checks });
      reply.header("retry-after", "5");
      return reply.code(503).send({ status: "unavailable" as const, checks });
    },
  );
};

export default healthRoutes;
