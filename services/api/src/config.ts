/**
 * Configuration, read from the environment once at boot: the API's own
 * variables, the ones it shares with the worker (`SHARED_ENV`), and the
 * settings of signal sources, the LLM gateway and outbound HTTP. Every
 * missing or malformed variable of every group is reported at once, by name,
 * with what to write instead.
 */
import {
  type BootConfig,
  ConfigError,
  DEFAULT_PRINCIPAL_CACHE_TTL_MS,
  readBootConfig,
  SHARED_ENV,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";

const ConfigSchema = Type.Object({
  ...SHARED_ENV,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: "HTTP port of the API" }),
  OUTCOME_RUNTIME_API_KEY: Type.Optional(
    Type.String({ minLength: 24, description: "bootstrap admin API key (at least 24 characters)" }),
  ),
  RATE_LIMIT_PER_MINUTE: Type.Integer({
    minimum: 1,
    default: 1200,
    description: "requests per minute per API key (or per IP without one)",
  }),
  AUTH_CACHE_TTL_MS: Type.Integer({
    minimum: 0,
    maximum: 300_000,
    default: DEFAULT_PRINCIPAL_CACHE_TTL_MS,
    description:
      "how long (ms) the API serves a key's or session's principal from memory; revocations reach every replica at once through Postgres LISTEN/NOTIFY, the TTL bounds a lost notification; 0 turns the cache off",
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

/** The groups of settings the API reads besides its variables (it sends no mail: the worker does). */
const GROUPS = ["sources", "llm", "outbound", "flags"] as const;

/** The API's configuration: its variables (upper case) and `sources`, `llm` and `outbound`. */
export type Config = BootConfig<typeof ConfigSchema, (typeof GROUPS)[number]>;

export { ConfigError };

/**
 * Read the configuration from `env` (default `process.env`). Empty strings
 * count as unset.
 *
 * @throws ConfigError naming each missing or malformed variable, of every group.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return readBootConfig(env, {
    schema: ConfigSchema,
    groups: GROUPS,
    crossChecks: (input) =>
      input.METRICS_PORT !== undefined && Number(input.METRICS_PORT) === Number(input.PORT)
        ? [
            "METRICS_PORT is the same as PORT: metrics are never served on the public port; give them a port of their own",
          ]
        : [],
  });
}
