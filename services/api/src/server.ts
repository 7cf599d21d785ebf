/**
 * The API process: configuration (every group, read once), logger, connections, migrations under the
 * advisory lock, the bootstrap key, then `listen` (and the metrics server on
 * METRICS_PORT when set); a graceful close on SIGTERM/SIGINT.
 */
import { createDb, migrateToLatest } from "@outcome-runtime/db";
import { createMailer } from "@outcome-runtime/notify";
import {
  bootstrap,
  ConnectorModuleError,
  checkRedisEvictionPolicy,
  createGateway,
  createMetricsRegistry,
  httpMetrics,
  loadConnectorModules,
  metricsScraper,
  setDefaultOutboundPolicy,
} from "@outcome-runtime/runtime";
import { Redis } from "ioredis";
import { buildApp } from "./app";
import { accountsFromConfig, type Config, ConfigError, loadConfig } from "./config";
import { apiLoggerOptions } from "./logger";
import { buildMetricsServer } from "./metrics-server";

const VERSION = "0.1.0";

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
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
  const { llm: llmConfig, sources } = config;
  setDefaultOutboundPolicy(config.outbound);
  const db = createDb({ url: config.DATABASE_URL, applicationName: "outcome-runtime-api" });
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  redis.on("error", () => {}); // readiness reports it; ioredis reconnects on its own
  await redis.connect().catch(() => {});

  const report = await migrateToLatest(db);
  const deps = { db, sources, flags: config.flags };
  const boot = await bootstrap(deps, { apiKey: config.OUTCOME_RUNTIME_API_KEY });
  const mailer = createMailer(config.mail, (fields, message) =>
    process.stdout.write(`${JSON.stringify({ ...fields, msg: message })}\n`),
  );
  const accounts = accountsFromConfig(config, mailer);
  // Metrics only when asked for: their port must be chosen to stay internal.
  const registry = config.METRICS_PORT === undefined ? null : createMetricsRegistry();

  const app = await buildApp(
    {
      deps,
      redis,
      version: VERSION,
      signalStorage: report.signalStorage,
      signalStorageNote: report.signalStorageNote,
      rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
      publicUrl: config.OUTCOME_RUNTIME_PUBLIC_URL,
      queuePrefix: config.QUEUE_PREFIX,
      gateway: createGateway({ db, config: llmConfig }),
      llmBudgets: llmConfig,
      ...(config.AUTH_CACHE_TTL_MS === 0
        ? {}
        : { authCache: { databaseUrl: config.DATABASE_URL, ttlMs: config.AUTH_CACHE_TTL_MS } }),
      ...(registry === null ? {} : { httpMetrics: httpMetrics(registry) }),
      ...(accounts === undefined ? {} : { accounts }),
    },
    {
      trustProxy: config.TRUST_PROXY,
      logger: apiLoggerOptions(config.LOG_LEVEL),
    },
  );
  app.log.info(
    {
      migrationsApplied: report.applied,
      signalStorage: report.signalStorage,
      bootstrapKeyRegistered: boot.keyCreated,
      bootstrapKeysRevoked: boot.keysRevoked,
    },
    "database ready",
  );
  // BullMQ needs noeviction: with another policy Redis may drop queued jobs. Not fatal (the API itself keeps
  // working, and a managed Redis may forbid CONFIG), but an error an operator must act on; /healthz reports it too.
  const evictionPolicy = await checkRedisEvictionPolicy(redis, 2000);
  if (evictionPolicy.status === "unhealthy") {
    app.log.error(
      { check: "redis_eviction_policy", maxmemoryPolicy: evictionPolicy.value, fix: evictionPolicy.fix },
      `Redis maxmemory-policy is ${evictionPolicy.value}, not noeviction: ${evictionPolicy.fix}`,
    );
  } else if (evictionPolicy.status === "unknown") {
    app.log.warn(
      { check: "redis_eviction_policy", detail: evictionPolicy.detail },
      "could not read Redis maxmemory-policy; make sure it is noeviction",
    );
  }
  if (report.signalStorageNote !== null) {
    app.log.warn(
      { check: "signal_storage", reason: report.signalStorageNote.reason, fix: report.signalStorageNote.fix },
      `${report.signalStorageNote.message}: ${report.signalStorageNote.fix}`,
    );
  }
  if (config.OUTCOME_RUNTIME_API_KEY === undefined) {
    app.log.warn("OUTCOME_RUNTIME_API_KEY is not set: no admin key exists until you set one and restart");
  }

  const metricsServer = registry === null ? null : await buildMetricsServer(metricsScraper(registry, []));

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await Promise.allSettled([app.close(), metricsServer?.close()]);
    await Promise.allSettled([db.destroy(), redis.quit()]);
    process.exit(0);
  };
  process.on("SIGTERM", () => void close("SIGTERM"));
  process.on("SIGINT", () => void close("SIGINT"));

  await app.listen({ port: config.PORT, host: config.HOST });
  if (metricsServer !== null && config.METRICS_PORT !== undefined) {
    await metricsServer.listen({ port: config.METRICS_PORT, host: config.HOST });
    app.log.info({ port: config.METRICS_PORT }, "metrics served at /metrics");
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `outcome-runtime api failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
