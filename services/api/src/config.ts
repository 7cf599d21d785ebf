/**
 * Configuration, read from the environment once at boot: the API's own
 * variables, the ones it shares with the worker (`SHARED_ENV`), and the
 * settings of signal sources, the LLM gateway and outbound HTTP. Every
 * missing or malformed variable of every group is reported at once, by name,
 * with what to write instead.
 */

import type { Mailer } from "@outcome-runtime/notify";
import {
  type BootConfig,
  ConfigError,
  DEFAULT_PRINCIPAL_CACHE_TTL_MS,
  readBootConfig,
  SHARED_ENV,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import type { AccountsOptions } from "./routes/accounts";

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
  OUTCOME_RUNTIME_AUTH_SECRET: Type.Optional(
    Type.String({
      minLength: 32,
      description:
        "turns on people's accounts (email-link sign-in, single sign-on): signs the sign-in library's cookies and encrypts its stored tokens; at least 32 characters, e.g. `openssl rand -base64 32`",
    }),
  ),
  OUTCOME_RUNTIME_ADMIN_EMAILS: Type.Optional(
    Type.String({
      maxLength: 4000,
      description:
        "comma-separated addresses of installation admins: they may sign in without an invitation and create workspaces",
    }),
  ),
  OUTCOME_RUNTIME_OIDC_ISSUER: Type.Optional(
    Type.String({
      format: "uri",
      description: "OpenID Connect issuer URL of single sign-on (e.g. https://acme.okta.com)",
    }),
  ),
  OUTCOME_RUNTIME_OIDC_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, description: "single sign-on client id" })),
  OUTCOME_RUNTIME_OIDC_CLIENT_SECRET: Type.Optional(
    Type.String({ minLength: 1, description: "single sign-on client secret" }),
  ),
  OUTCOME_RUNTIME_OIDC_NAME: Type.Optional(
    Type.String({ minLength: 1, maxLength: 60, description: "the sign-in button's name, e.g. Okta" }),
  ),
  OUTCOME_RUNTIME_OIDC_ALLOWED_DOMAINS: Type.Optional(
    Type.String({
      maxLength: 4000,
      description:
        "comma-separated email domains whose people join by single sign-on without an invitation (just in time); members sign in by single sign-on whatever their domain; empty: only members and installation admins",
    }),
  ),
  OUTCOME_RUNTIME_OIDC_DEFAULT_ROLE: Type.Union(
    [Type.Literal("viewer"), Type.Literal("member"), Type.Literal("approver"), Type.Literal("admin")],
    { default: "member", description: "the role of a person who joins by single sign-on" },
  ),
  OUTCOME_RUNTIME_OIDC_WORKSPACE: Type.String({
    minLength: 1,
    maxLength: 50,
    default: "default",
    description: "the workspace (slug) a person who joins by single sign-on joins",
  }),
  TRUST_PROXY: Type.Boolean({
    default: false,
    description:
      "true behind a TLS-terminating reverse proxy: X-Forwarded-For/-Proto are believed (client address, Secure cookies)",
  }),
});

/** The groups of settings the API reads besides its variables (mail: sign-in links and invitations; gate mail is the worker's). */
const GROUPS = ["sources", "llm", "outbound", "flags", "mail"] as const;

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
    crossChecks: (input) => {
      const problems: string[] = [];
      if (input.METRICS_PORT !== undefined && Number(input.METRICS_PORT) === Number(input.PORT)) {
        problems.push(
          "METRICS_PORT is the same as PORT: metrics are never served on the public port; give them a port of their own",
        );
      }
      const oidc = [
        "OUTCOME_RUNTIME_OIDC_ISSUER",
        "OUTCOME_RUNTIME_OIDC_CLIENT_ID",
        "OUTCOME_RUNTIME_OIDC_CLIENT_SECRET",
      ];
      const set = oidc.filter((name) => input[name] !== undefined && input[name] !== "");
      if (set.length > 0 && set.length < oidc.length) {
        problems.push(
          `single sign-on needs all of ${oidc.join(", ")}; missing ${oidc.filter((n) => !set.includes(n)).join(", ")}`,
        );
      }
      if (set.length > 0 && (input.OUTCOME_RUNTIME_AUTH_SECRET ?? "") === "") {
        problems.push("single sign-on needs OUTCOME_RUNTIME_AUTH_SECRET (at least 32 characters) to turn accounts on");
      }
      return problems;
    },
  });
}

/** A comma-separated list, trimmed and lowercased, without empty items. */
function commaList(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== "");
}

/**
 * People's accounts as the configuration sets them up (docs/auth.md), or
 * undefined when `OUTCOME_RUNTIME_AUTH_SECRET` is unset (API keys only).
 */
export function accountsFromConfig(config: Config, mailer: Mailer): AccountsOptions | undefined {
  const secret = config.OUTCOME_RUNTIME_AUTH_SECRET;
  if (secret === undefined) return undefined;
  const issuer = config.OUTCOME_RUNTIME_OIDC_ISSUER;
  const clientId = config.OUTCOME_RUNTIME_OIDC_CLIENT_ID;
  const clientSecret = config.OUTCOME_RUNTIME_OIDC_CLIENT_SECRET;
  const oidc =
    issuer !== undefined && clientId !== undefined && clientSecret !== undefined
      ? { issuer, clientId, clientSecret, displayName: config.OUTCOME_RUNTIME_OIDC_NAME }
      : undefined;
  return {
    secret,
    mailer,
    oidc,
    policy: {
      installationAdmins: commaList(config.OUTCOME_RUNTIME_ADMIN_EMAILS),
      ...(oidc === undefined
        ? {}
        : {
            sso: {
              allowedDomains: commaList(config.OUTCOME_RUNTIME_OIDC_ALLOWED_DOMAINS),
              defaultRole: config.OUTCOME_RUNTIME_OIDC_DEFAULT_ROLE,
              workspaceSlug: config.OUTCOME_RUNTIME_OIDC_WORKSPACE,
            },
          }),
    },
  };
}
