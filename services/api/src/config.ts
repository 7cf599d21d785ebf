/**
 * Configuration, read from the environment once at boot and validated by a
 * schema. Every missing or malformed variable is reported at once, by name,
 * with what to write instead.
 */
import { ConfigError, readEnvConfig } from "@outcome-runtime/runtime";
import { type Static, Type } from "typebox";

const ConfigSchema = Type.Object({
  DATABASE_URL: Type.String({
    pattern: "^postgres(ql)?://",
    description: "Postgres URL, e.g. postgres://postgres@localhost:5432/outcome_runtime",
  }),
  REDIS_URL: Type.String({ pattern: "^rediss?://", description: "Redis URL, e.g. redis://localhost:6379" }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: "HTTP port of the API" }),
  HOST: Type.String({ default: "127.0.0.1", description: "interface to listen on (0.0.0.0 in containers)" }),
  OUTCOME_RUNTIME_API_KEY: Type.Optional(
    Type.String({ minLength: 24, description: "bootstrap admin API key (at least 24 characters)" }),
  ),
  OUTCOME_RUNTIME_PUBLIC_URL: Type.Optional(
    Type.String({ format: "uri", description: "public base URL of the API, e.g. https://outcomes.acme.example" }),
  ),
  QUEUE_PREFIX: Type.String({
    pattern: "^[A-Za-z0-9_.:-]+$",
    default: "outcome-runtime",
    description: "prefix of the BullMQ keys in Redis; the API and the workers of one installation share it",
  }),
  LOG_LEVEL: Type.Enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
    default: "info",
    description: "pino log level",
  }),
  RATE_LIMIT_PER_MINUTE: Type.Integer({
    minimum: 1,
    default: 1200,
    description: "requests per minute per API key (or per IP without one)",
  }),
  METRICS_PORT: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 65535,
      description:
        "port of GET /metrics (Prometheus), on HOST beside the API's port; unset: no metrics. Keep it off the public network",
    }),
  ),
  TRUST_PROXY: Type.Boolean({
    default: false,
    description:
      "true behind a TLS-terminating reverse proxy: X-Forwarded-For/-Proto are believed (client address, Secure cookies)",
  }),
});

export type Config = Static<typeof ConfigSchema>;

export { ConfigError };

/**
 * Read the configuration from `env` (default `process.env`). Empty strings
 * count as unset.
 *
 * @throws ConfigError naming each missing or malformed variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return readEnvConfig<Config>(ConfigSchema, env, (input) =>
    input.METRICS_PORT !== undefined && Number(input.METRICS_PORT) === Number(input.PORT)
      ? ["METRICS_PORT is the same as PORT: metrics are never served on the public port; give them a port of their own"]
      : [],
  );
}
