/**
 * Worker configuration, read from the environment once at start: the worker's
 * own variables, the ones it shares with the API (`SHARED_ENV`), and the
 * settings of signal sources, the LLM gateway, gate emails and outbound HTTP.
 * Every bad variable of every group is reported at once, by name, with what
 * it should be.
 */
import { type BootConfig, ConfigError, readBootConfig, SHARED_ENV } from "@outcome-runtime/runtime";
import { Type } from "typebox";

/** The longest delay a Node.js timer takes (2³¹ − 1 ms, about 24.8 days); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

const ConfigSchema = Type.Object({
  ...SHARED_ENV,
  WORKER_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 8081,
    description: "port of the worker's /healthz, /readyz and /metrics",
  }),
  WORKER_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 256,
    default: 8,
    description: "poll and analysis jobs processed at once by this worker",
  }),
  RECONCILE_INTERVAL_MS: Type.Integer({
    minimum: 100,
    maximum: MAX_TIMER_MS,
    default: 30_000,
    description: "how often schedulers are reconciled with Postgres, ms",
  }),
  LOCK_DURATION_MS: Type.Integer({
    minimum: 1000,
    maximum: MAX_TIMER_MS,
    default: 30_000,
    description: "BullMQ job lock, ms: a killed worker's job runs again after about this long",
  }),
  OUTBOX_INTERVAL_MS: Type.Integer({
    minimum: 100,
    maximum: MAX_TIMER_MS,
    default: 2000,
    description: "how often gate emails, webhooks and due gate deadlines are swept to the queues, ms",
  }),
  POLL_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: MAX_TIMER_MS,
    default: 60_000,
    description: "timeout of one connector call, ms",
  }),
  POLL_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 500,
    description:
      "running experiments of an outcome read in one source request, when its queries use :experiments (the batched form)",
  }),
  POLL_STORE_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1_000,
    default: 100,
    description:
      "experiments of a batched poll stored and analysed in one transaction (their rows locked for its duration)",
  }),
  OUTCOME_RUNTIME_WEBHOOK_URL: Type.Optional(
    Type.String({ pattern: "^https?://", description: "where experiment webhooks are POSTed (unset: not sent)" }),
  ),
  OUTCOME_RUNTIME_WEBHOOK_SECRET: Type.Optional(
    Type.String({ minLength: 16, description: "HMAC-SHA256 secret of webhook signatures (at least 16 characters)" }),
  ),
});

/** The groups of settings the worker reads besides its variables. */
const GROUPS = ["sources", "llm", "mail", "outbound", "flags"] as const;

/** The worker's configuration: its variables (upper case) and `sources`, `llm`, `mail`, `outbound` and `flags`. */
export type WorkerConfig = BootConfig<typeof ConfigSchema, (typeof GROUPS)[number]>;

export { ConfigError };

/**
 * Read the worker configuration from `env`. Empty strings count as unset.
 *
 * @throws ConfigError naming each missing or malformed variable, of every group.
 */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  return readBootConfig(env, {
    schema: ConfigSchema,
    groups: GROUPS,
    crossChecks: (input) =>
      input.OUTCOME_RUNTIME_WEBHOOK_URL !== undefined && input.OUTCOME_RUNTIME_WEBHOOK_SECRET === undefined
        ? ["OUTCOME_RUNTIME_WEBHOOK_SECRET is not set: webhooks to OUTCOME_RUNTIME_WEBHOOK_URL must be signed"]
        : [],
  });
}
