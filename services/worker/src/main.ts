/**
 * The worker process: configuration, logger, connections, migrations (under
 * the advisory lock, like the API), the BullMQ processors, and a small health
 * server: `/healthz` (the process answers; `degraded` when Redis's eviction
 * policy is not noeviction) and `/readyz` (Postgres and Redis
 * reachable, and the time of the last completed job, so a worker that silently
 * stopped after a Redis restart is visible), and `/metrics` (Prometheus text
 * format: this worker's polls and analyses, the installation's queues, gates,
 * outboxes and LLM spend; docs/operations.md). SIGTERM drains: active jobs
 * finish, no new ones start.
 */
import { createDb, migrateToLatest, pingDb } from "@outcome-runtime/db";
import { createMailer } from "@outcome-runtime/notify";
import {
  ConnectorModuleError,
  checkRedisEvictionPolicy,
  connectorProvider,
  connectorTypes,
  createGateway,
  createMetricsRegistry,
  flagRolloutsHealth,
  installationCollectors,
  loadConnectorModules,
  metricsScraper,
  registeredConnectorModules,
  setDefaultOutboundPolicy,
  signalMetrics,
  sourcesStatus,
} from "@outcome-runtime/runtime";
import Fastify from "fastify";
import { Redis } from "ioredis";
import { pino } from "pino";
import { ConfigError, loadWorkerConfig, type WorkerConfig } from "./config";
import { startWorker } from "./worker";

async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\nSee .env.example for every variable.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  try {
    // Connectors of the operator's own (CONNECTOR_MODULES): a module that cannot be used stops the boot.
    await loadConnectorModules(config.sources.connectorModules ?? []);
  } catch (error) {
    if (error instanceof ConnectorModuleError) {
      process.stderr.write(`${error.message}\nSee docs/connectors.md, "Connectors of your own".\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const { mail: mailConfig, llm: llmConfig, sources: sourceAccess } = config;
  setDefaultOutboundPolicy(config.outbound);
  const logger = pino({ level: config.LOG_LEVEL, base: { service: "worker" } });
  const db = createDb({ url: config.DATABASE_URL, applicationName: "outcome-runtime-worker", max: 10 });
  // BullMQ's blocking connections need maxRetriesPerRequest: null; ioredis reconnects on its own.
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  redis.on("error", (error) => logger.warn({ err: error }, "redis error"));

  // BullMQ needs noeviction: with another policy Redis may drop queued jobs. Not fatal (a managed Redis may
  // also forbid CONFIG), but an error an operator must act on; /healthz reports it too.
  const evictionPolicy = await checkRedisEvictionPolicy(redis, 5000);
  if (evictionPolicy.status === "unhealthy") {
    logger.error(
      { check: "redis_eviction_policy", maxmemoryPolicy: evictionPolicy.value, fix: evictionPolicy.fix },
      `Redis maxmemory-policy is ${evictionPolicy.value}, not noeviction: ${evictionPolicy.fix}`,
    );
  } else if (evictionPolicy.status === "unknown") {
    logger.warn(
      { check: "redis_eviction_policy", detail: evictionPolicy.detail },
      "could not read Redis maxmemory-policy; make sure it is noeviction",
    );
  }

  await migrateToLatest(db);
  for (const warning of mailConfig.warnings) logger.warn({ mail: mailConfig.mode }, warning);
  if (mailConfig.mode === "disabled") {
    logger.warn(
      "gate emails are off: set SMTP_URL (or MAIL_LOG_LINKS=true to log the links); gates still work in the API",
    );
  }
  const mailer = createMailer(mailConfig, (fields, message) => logger.info(fields, message));
  const connectors = connectorProvider({ db, access: sourceAccess, maxTimeoutMs: config.POLL_TIMEOUT_MS });
  const registry = createMetricsRegistry();
  const worker = await startWorker({
    db,
    redis,
    connectors,
    logger,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.WORKER_CONCURRENCY,
    reconcileIntervalMs: config.RECONCILE_INTERVAL_MS,
    lockDurationMs: config.LOCK_DURATION_MS,
    pollTimeoutMs: config.POLL_TIMEOUT_MS,
    pollBatchSize: config.POLL_BATCH_SIZE,
    pollStoreSize: config.POLL_STORE_SIZE,
    webhook: {
      url: config.OUTCOME_RUNTIME_WEBHOOK_URL ?? null,
      secret: config.OUTCOME_RUNTIME_WEBHOOK_SECRET ?? "",
    },
    flags: { access: config.flags, sources: sourceAccess },
    mailer,
    links: { publicUrl: mailConfig.publicUrl },
    gateway: createGateway({ db, config: llmConfig }),
    outboxIntervalMs: config.OUTBOX_INTERVAL_MS,
    metrics: signalMetrics(registry),
  });
  const metrics = metricsScraper(
    registry,
    installationCollectors(
      registry,
      { db },
      {
        queues: [worker.signalsQueue, worker.controlQueue, worker.notifyQueue],
        // Gate emails always leave the outbox (a disabled mailer drops them); webhooks wait for a URL.
        delivery: { gateEmails: true, webhooks: config.OUTCOME_RUNTIME_WEBHOOK_URL !== undefined },
      },
    ),
    {
      onError: (collector, error) => logger.warn({ collector, err: error }, "metrics collector failed"),
    },
  );

  const health = Fastify({ logger: false });
  const startedAt = new Date();
  // Liveness: always 200 while the process answers (a restart cannot fix a configuration); `degraded` names
  // the check an operator must fix.
  health.get("/healthz", async () => {
    const [evictionPolicy, sources, flags] = await Promise.all([
      checkRedisEvictionPolicy(redis, 1000),
      // The sources whose rate limit slows their polls, and the request budgets; null when the database is down.
      sourcesStatus(db, new Date()).catch(() => null),
      // Flag rollouts not applied yet ("rollback pending since …"); null when the database is down.
      flagRolloutsHealth({ db }).catch(() => null),
    ]);
    return {
      status: evictionPolicy.status === "unhealthy" ? "degraded" : "ok",
      checks: { redis_eviction_policy: evictionPolicy },
      connectors: { types: connectorTypes(), modules: registeredConnectorModules() },
      sources,
      flags,
    };
  });
  health.get("/readyz", async (_request, reply) => {
    const [database, queue] = await Promise.all([
      pingDb(db),
      redis
        .ping()
        .then(() => true)
        .catch(() => false),
    ]);
    const last = worker.lastCompletedAt();
    // Stale: jobs are waiting, yet this worker has completed none for a while (e.g. it stopped taking
    // jobs after a Redis restart). An idle replica with nothing waiting is not stale: with several
    // replicas, one of them may take every reconcile job.
    const staleAfterMs = Math.max(3 * config.RECONCILE_INTERVAL_MS, 10_000);
    const reference = last ?? startedAt;
    const quiet = Date.now() - reference.getTime() > staleAfterMs;
    const stale = quiet && queue && (await worker.hasWaitingWork().catch(() => true));
    const ready = database && queue && !stale;
    if (!ready) reply.code(503).header("retry-after", "5");
    return {
      status: ready ? "ready" : "not_ready",
      checks: { database, redis: queue, jobs: !stale },
      lastCompletedJobAt: last?.toISOString() ?? null,
      startedAt: startedAt.toISOString(),
    };
  });
  // Unauthenticated, like the probes: keep WORKER_PORT off the public network (docs/operations.md).
  health.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.contentType);
    return metrics.render();
  });
  await health.listen({ port: config.WORKER_PORT, host: config.HOST });
  logger.info(
    { port: config.WORKER_PORT, name: worker.name, connectorModules: registeredConnectorModules() },
    "worker started",
  );

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, "draining");
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    await worker.close();
    mailer.close();
    await Promise.allSettled([health.close(), connectors.close(), db.destroy()]);
    await redis.quit().catch(() => {});
    process.exit(0);
  };
  process.on("SIGTERM", () => void close("SIGTERM"));
  process.on("SIGINT", () => void close("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
