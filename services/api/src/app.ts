/**
 * The API as a Fastify plugin, without `listen`: `server.ts` serves it, tests
 * call `app.inject`. External plugins first (helmet, rate limit, OpenAPI),
 * then ours (problem details, auth), then the routes.
 */

import { createHash } from "node:crypto";
import cookie from "@fastify/cookie";
import helmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import websocket from "@fastify/websocket";
import {
  createGateway,
  DEFAULT_QUEUE_PREFIX,
  type Gateway,
  type HttpMetrics,
  type LlmBudgets,
  llmConfigFromEnv,
  type PrincipalCache,
  type RuntimeDeps,
  startPrincipalCache,
} from "@outcome-runtime/runtime";
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from "fastify";
import type { Redis } from "ioredis";
import { ProblemDto } from "./dto";
import auth, { SESSION_COOKIE } from "./plugins/auth";
import httpMetricsPlugin from "./plugins/http-metrics";
import problemDetails, { problem, sendProblem } from "./plugins/problem-details";
import accountRoutes, { type AccountsOptions } from "./routes/accounts";
import emailRoutes from "./routes/email";
import healthRoutes, { type SignalStorageNote } from "./routes/health";
import mcpRoutes from "./routes/mcp";
import sessionRoutes from "./routes/session";
import auditRoutes from "./routes/v1/audit/index";
import experimentRoutes from "./routes/v1/experiments/index";
import gateRoutes from "./routes/v1/gates/index";
import keyRoutes from "./routes/v1/keys/index";
import learningRoutes from "./routes/v1/learnings/index";
import memberRoutes from "./routes/v1/members/index";
import applyRoute from "./routes/v1/outcomes/apply";
import draftRoute from "./routes/v1/outcomes/draft";
import outcomeRoutes from "./routes/v1/outcomes/index";
import signalsTestRoute from "./routes/v1/outcomes/signals-test";
import validateRoute from "./routes/v1/outcomes/validate";
import secretRoutes from "./routes/v1/secrets/index";
import streamRoutes from "./routes/v1/stream/index";
import transferRoutes from "./routes/v1/transfer/index";
import usageRoutes from "./routes/v1/usage/index";
import workspaceRoutes from "./routes/v1/workspace/index";
import webRoutes from "./routes/web";

export interface AppOptions {
  readonly deps: RuntimeDeps;
  /** Redis, for readiness and the shared rate-limit counters. */
  readonly redis: Redis;
  readonly version: string;
  readonly signalStorage: "timescaledb" | "plain";
  /** Why plain tables although TimescaleDB is installed, with the fix (/healthz); null or absent otherwise. */
  readonly signalStorageNote?: SignalStorageNote | null;
  /** Requests per minute per API key (per IP without one). */
  readonly rateLimitPerMinute: number;
  /**
   * Redis key prefix of the rate-limit counters (the global limit, the AI routes' and the failed
   * authentications per address). Default `<queuePrefix>:rate-limit:`, so installations sharing a
   * Redis under different `QUEUE_PREFIX`es never share a counter.
   */
  readonly rateLimitNamespace?: string;
  /** Requests per minute per API key to the expensive routes (the LLM ones, the dry run; default 10, at most `rateLimitPerMinute`). */
  readonly aiRateLimitPerMinute?: number;
  /**
   * Failed authentications (401s to requests that sent a credential) allowed per IP in a window before its
   * requests get 429 until the window ends (default 20 a minute).
   */
  readonly authFailureLimit?: { readonly max: number; readonly timeWindowMs: number };
  readonly publicUrl?: string | undefined;
  /** The installation's Redis prefix (`QUEUE_PREFIX`, shared with the worker's BullMQ keys): of the rate-limit counters (default `outcome-runtime`). */
  readonly queuePrefix?: string;
  /** The LLM gateway (default: rules only, no LLM). */
  readonly gateway?: Gateway;
  /** The LLM budgets shown by `GET /v1/usage/llm` (default: no caps); the gateway's own config enforces them. */
  readonly llmBudgets?: LlmBudgets;
  /** The built dashboard (default services/web/dist); `null` serves the "not built" page. */
  readonly webRoot?: string | URL | null;
  /** How often the live stream reads new audit events and analyses, in ms (default 1000). */
  readonly streamIntervalMs?: number;
  /** Counts every request for Prometheus (served by `metrics-server.ts` on METRICS_PORT); none by default. */
  readonly httpMetrics?: HttpMetrics;
  /**
   * Cache the principals of keys and sessions for `ttlMs` (AUTH_CACHE_TTL_MS), dropping an entry the moment
   * the database announces its key or session changed: a connection of its own to `databaseUrl` listens
   * (`reconnectMs` after a loss, default 1000; bypassed, from empty, until it is back). Absent: every
   * request reads its key or session from the database.
   */
  readonly authCache?: { readonly databaseUrl: string; readonly ttlMs: number; readonly reconnectMs?: number };
  /**
   * People's accounts: sign-in by email link and single sign-on, invitations (docs/auth.md). Absent: the
   * dashboard signs in with API keys only, and invitations answer with their link instead of an email.
   */
  readonly accounts?: AccountsOptions;
}

declare module "fastify" {
  interface FastifyInstance {
    /** The principal cache of this instance (`authCache`), or null without one. */
    principalCache: PrincipalCache | null;
  }
}

/**
 * Frames from dashboard clients are tiny (the stream is one-way); a large one
 * is refused. On close, sockets get 1001 "going away", so clients reconnect.
 */
const WEBSOCKET_OPTIONS = {
  options: { maxPayload: 64 * 1024 },
  preClose(this: FastifyInstance, done: () => void) {
    for (const client of this.websocketServer.clients) client.close(1001, "server shutting down");
    // Like the plugin's default: stop accepting, and let the closing handshakes finish on their own.
    this.websocketServer.close();
    done();
  },
};

/**
 * The expensive routes (method and route pattern), under the stricter limit: those that may call an LLM
 * (drafting an outcome, generating hypotheses), and the dry run, which runs every query of an outcome
 * against the team's own sources.
 */
const LLM_ROUTES: ReadonlySet<string> = new Set([
  "POST /v1/outcomes/draft",
  "POST /v1/outcomes/:id/hypotheses",
  "POST /v1/outcomes/signals-test",
]);

/** Whether a request authenticates (or signs in): the routes a key can be guessed on. */
function authenticates(request: FastifyRequest): boolean {
  const route = request.routeOptions.url ?? "";
  return route.startsWith("/v1/") || route === "/mcp" || (route === "/session" && request.method === "POST");
}

/** Whether a request sent a credential (a key, a session cookie, or a key to sign in with). */
function sentCredential(request: FastifyRequest): boolean {
  return (
    request.headers.authorization !== undefined ||
    request.cookies[SESSION_COOKIE] !== undefined ||
    (request.routeOptions.url === "/session" && request.method === "POST")
  );
}

/**
 * Key guessing: every 401 to a request that sent a credential counts against
 * its IP in Redis (shared by the replicas); once an IP has `limit.max` of
 * them in the window, its requests to authenticating routes get 429 problem details
 * with `Retry-After` until the window ends, before any key is looked at.
 * Successful requests count nothing. The global limit cannot do this: it
 * counts per key, and a guesser sends a new key each time.
 */
function limitAuthFailures(fastify: FastifyInstance, limit: NonNullable<AppOptions["authFailureLimit"]>): void {
  const failures = fastify.createRateLimit({
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    keyGenerator: (request) => `auth-failures:ip:${request.ip}`,
  });
  fastify.addHook("onRequest", async (request, reply) => {
    if (!authenticates(request)) return;
    const status = await failures(request, { increment: false });
    if (status.isAllowed || status.remaining > 0 || status.ttl <= 0) return;
    reply.header("retry-after", String(status.ttlInSeconds));
    return sendProblem(
      reply,
      problem(
        request,
        "rate_limited",
        `too many failed authentications from this address; retry in ${status.ttlInSeconds} s with a valid API key`,
      ),
    );
  });
  fastify.addHook("onResponse", async (request, reply) => {
    if (reply.statusCode !== 401 || !sentCredential(request)) return;
    await failures(request).catch((error: unknown) =>
      request.log.warn({ err: error }, "failed authentication not counted"),
    );
  });
}

/**
 * The Redis key prefix of every rate-limit counter of this installation: the
 * option when given, else `<queuePrefix>:rate-limit:` (`outcome-runtime:rate-limit:`
 * with the default prefix).
 */
export function rateLimitNamespace(options: Pick<AppOptions, "rateLimitNamespace" | "queuePrefix">): string {
  return options.rateLimitNamespace ?? `${options.queuePrefix ?? DEFAULT_QUEUE_PREFIX}:rate-limit:`;
}

/** The name of a shared schema in the OpenAPI document: its `$id`, else the plugin's default `def-<n>`. */
function schemaName(json: { $id?: unknown }, _baseUri: unknown, _fragment: unknown, i: number): string {
  return typeof json.$id === "string" ? json.$id : `def-${i}`;
}

/** Register every plugin and route of the API on `app`. */
export async function app(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  // First, so every request is counted, those refused by a later hook (rate limit, auth) included.
  if (options.httpMetrics !== undefined) await fastify.register(httpMetricsPlugin, { metrics: options.httpMetrics });
  // Cookies first: the rate limit keys a dashboard session by its cookie.
  await fastify.register(cookie);
  await fastify.register(helmet, { global: true });
  // Routes that may call an LLM cost money per request: a stricter limit of their own (per key, as the global one).
  const aiLimit = Math.min(options.aiRateLimitPerMinute ?? 10, options.rateLimitPerMinute);
  fastify.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((m) => LLM_ROUTES.has(`${m} ${route.url}`)) && route.config?.rateLimit === undefined) {
      route.config = { ...route.config, rateLimit: { max: aiLimit, timeWindow: 60_000 } };
    }
  });
  await fastify.register(rateLimit, {
    global: true,
    max: options.rateLimitPerMinute,
    timeWindow: 60_000,
    redis: options.redis,
    nameSpace: rateLimitNamespace(options),
    // A Redis outage must not take the API down with it.
    skipOnError: true,
    keyGenerator: (request) => {
      const auth = request.headers.authorization ?? request.cookies[SESSION_COOKIE];
      return auth ? `key:${createHash("sha256").update(auth).digest("hex").slice(0, 32)}` : `ip:${request.ip}`;
    },
  });
  limitAuthFailures(fastify, options.authFailureLimit ?? { max: 20, timeWindowMs: 60_000 });
  fastify.addSchema(ProblemDto);
  await fastify.register(swagger, {
    // A schema with an `$id` (Problem, Outcome, Experiment, Gate…) is named by it in `components.schemas`, so
    // the types generated from the document (scripts/gen-types.ts) have names, not `def-3`.
    refResolver: { buildLocalReference: schemaName },
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Outcome Runtime API",
        version: options.version,
        description:
          "Declare outcomes, propose experiments, decide gates. Errors are RFC 9457 problem details; " +
          "authenticate with `Authorization: Bearer <API key>`.",
      },
      ...(options.publicUrl ? { servers: [{ url: options.publicUrl }] } : {}),
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  await fastify.register(swaggerUi, { routePrefix: "/docs", staticCSP: true });

  await fastify.register(problemDetails);
  await fastify.register(auth, { deps: options.deps });
  // buildApp registers it at the root, so `injectWS` is on the instance it returns.
  if (!fastify.hasDecorator("websocketServer")) await fastify.register(websocket, WEBSOCKET_OPTIONS);

  await fastify.register(healthRoutes, options);
  const gateway = options.gateway ?? createGateway({ db: options.deps.db, config: llmConfigFromEnv({}) });
  const routeOptions = {
    // The gateway rides along in deps too: searches of learnings embed their query through it (hybrid search).
    deps: { ...options.deps, gateway },
    gateway,
    publicUrl: (options.publicUrl ?? "http://localhost:8080").replace(/\/+$/, ""),
  };
  await fastify.register(applyRoute, routeOptions);
  await fastify.register(draftRoute, routeOptions);
  await fastify.register(outcomeRoutes, routeOptions);
  await fastify.register(experimentRoutes, routeOptions);
  await fastify.register(gateRoutes, routeOptions);
  await fastify.register(keyRoutes, routeOptions);
  await fastify.register(secretRoutes, routeOptions);
  await fastify.register(auditRoutes, routeOptions);
  await fastify.register(workspaceRoutes, routeOptions);
  await fastify.register(learningRoutes, routeOptions);
  await fastify.register(transferRoutes, { ...routeOptions, version: options.version });
  await fastify.register(emailRoutes, routeOptions);
  await fastify.register(mcpRoutes, routeOptions);
  await fastify.register(validateRoute, routeOptions);
  await fastify.register(signalsTestRoute, routeOptions);
  await fastify.register(usageRoutes, {
    ...routeOptions,
    llmBudgets: options.llmBudgets ?? { monthlyWorkspaceBudgetUsd: null, dailyUserBudgetUsd: null },
  });
  await fastify.register(streamRoutes, { ...routeOptions, streamIntervalMs: options.streamIntervalMs ?? 1000 });
  await fastify.register(sessionRoutes, routeOptions);
  await fastify.register(accountRoutes, { ...routeOptions, accounts: options.accounts });
  await fastify.register(memberRoutes, { ...routeOptions, mailer: options.accounts?.mailer });
  await fastify.register(webRoutes, { webRoot: options.webRoot });

  fastify.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
}

/**
 * A Fastify instance with the API registered and ready (not listening).
 * `logger` is pino's options or `false`.
 */
export async function buildApp(
  options: AppOptions,
  server: Pick<FastifyServerOptions, "logger" | "trustProxy"> = { logger: false },
): Promise<FastifyInstance> {
  const fastify = Fastify({
    logger: server.logger ?? false,
    // Behind a TLS-terminating proxy, X-Forwarded-Proto makes the session cookie Secure.
    ...(server.trustProxy === undefined ? {} : { trustProxy: server.trustProxy }),
    // A client's X-Request-Id is kept only when it looks like an id; otherwise a new one.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[A-Za-z0-9._:-]{8,128}$/.test(given) ? given : crypto.randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, allErrors: true } },
    // The router's own refusals (a malformed percent-escape, an over-long path parameter) answer as
    // every other error does: RFC 9457 problem details, not Fastify's default body.
    frameworkErrors: (error, request, reply) => {
      sendProblem(
        reply,
        problem(
          request,
          "validation_failed",
          error.code === "FST_ERR_MAX_PARAM_LENGTH"
            ? "a path parameter is too long; ids and keys are at most a few hundred characters"
            : `the URL is not valid (${error.message}); percent-escapes must encode UTF-8`,
        ),
      );
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  let cache: PrincipalCache | null = null;
  if (options.authCache !== undefined) {
    const listening = await startPrincipalCache({
      ...options.authCache,
      onListening: () => fastify.log.info("auth cache: listening for key and session changes"),
      onLost: (error) =>
        fastify.log.warn(
          { err: error },
          "auth cache: change listener lost; every credential is read from the database",
        ),
    });
    fastify.addHook("onClose", listening.close);
    cache = listening.cache;
  }
  fastify.decorate("principalCache", cache);
  await fastify.register(websocket, WEBSOCKET_OPTIONS);
  await fastify.register(
    app,
    cache === null ? options : { ...options, deps: { ...options.deps, principalCache: cache } },
  );
  await fastify.ready();
  return fastify;
}
