/**
 * Liveness and readiness. Neither needs a key.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { RuntimeDeps } from "@outcome-runtime/runtime";
import {
  checkDatabase,
  checkRedisEvictionPolicy,
  connectorTypes,
  registeredConnectorModules,
} from "@outcome-runtime/runtime";
import type { Redis } from "ioredis";
import { Type } from "typebox";

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

const EvictionPolicyCheck = Type.Object(
  {
    status: Type.Union([Type.Literal("ok"), Type.Literal("unhealthy"), Type.Literal("unknown")]),
    value: Type.Union([Type.String(), Type.Null()], { description: "Redis's maxmemory-policy; null when unreadable" }),
    fix: Type.Optional(Type.String({ description: "what to change, when unhealthy" })),
    detail: Type.Optional(Type.String({ description: "why the policy could not be read, when unknown" })),
  },
  {
    description:
      "Redis must run with maxmemory-policy noeviction, or it may evict queued jobs; `unknown` when CONFIG GET is not allowed (managed Redis) or Redis is down",
  },
);

const Connectors = Type.Object(
  {
    types: Type.Array(Type.String(), {
      description: "every connector type outcome files may name here: the built-in ones, then the modules' ones",
    }),
    modules: Type.Array(
      Type.Object({
        module: Type.String({ description: "the package (or path) as CONNECTOR_MODULES names it" }),
        type: Type.String({ description: "the connector type it adds" }),
        description: Type.Union([Type.String(), Type.Null()]),
      }),
      { description: "the connectors of the operator's own loaded at boot (CONNECTOR_MODULES)" },
    ),
  },
  { description: "the connector types this API knows; see docs/connectors.md, Connectors of your own" },
);

/** Why plain tables although TimescaleDB is installed, with the fix (`MigrationReport.signalStorageNote`). */
export interface SignalStorageNote {
  readonly reason: "timescaledb_not_preloaded";
  readonly message: string;
  readonly fix: string;
}

/** What the health routes read: the API's own options (`AppOptions`) carry these. */
interface HealthOptions {
  readonly deps: RuntimeDeps;
  readonly redis: Redis;
  readonly version: string;
  readonly signalStorage: "timescaledb" | "plain";
  /** Set when TimescaleDB is installed but not preloaded (plain tables used): what to change. */
  readonly signalStorageNote?: SignalStorageNote | null;
}

const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, options) => {
  app.get(
    "/healthz",
    {
      config: { rateLimit: false },
      schema: {
        tags: ["health"],
        summary: "Liveness: the process is up",
        description:
          "Always 200 while the process answers (restarting cannot fix a configuration); `status` is `degraded` " +
          "when a check is unhealthy, e.g. Redis's eviction policy is not noeviction.",
        response: {
          200: Type.Object({
            status: Type.Union([Type.Literal("ok"), Type.Literal("degraded")]),
            version: Type.String(),
            signalStorage: Type.Union([Type.Literal("timescaledb"), Type.Literal("plain")], {
              description: "how signal points are stored: a TimescaleDB hypertable, or a plain table with a BRIN index",
            }),
            signalStorageNote: Type.Union(
              [
                Type.Object({
                  reason: Type.Literal("timescaledb_not_preloaded"),
                  message: Type.String(),
                  fix: Type.String({ description: "the line to add and the restart" }),
                }),
                Type.Null(),
              ],
              {
                description:
                  "why signal points are in plain tables although TimescaleDB is installed, and the fix; null when " +
                  "there is nothing to change",
              },
            ),
            checks: Type.Object({ redis_eviction_policy: EvictionPolicyCheck }),
            connectors: Connectors,
          }),
        },
      },
    },
    async () => {
      const evictionPolicy = await checkRedisEvictionPolicy(options.redis, 1000);
      return {
        status: evictionPolicy.status === "unhealthy" ? ("degraded" as const) : ("ok" as const),
        version: options.version,
        signalStorage: options.signalStorage,
        signalStorageNote: options.signalStorageNote ?? null,
        checks: { redis_eviction_policy: evictionPolicy },
        connectors: { types: connectorTypes(), modules: registeredConnectorModules() },
      };
    },
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
