/**
 * Source credentials: what a connector's settings may name, and nothing else.
 *
 * A credential (a connection string, a service account's secret) never
 * appears in outcome.yaml. The settings name where it is kept, in one of two
 * forms per credential `<name>`:
 *
 * - `<name>_secret: analytics-db`: a workspace secret, stored encrypted by
 *   the runtime, created and rotated by the workspace's admins;
 * - `<name>_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL`: an environment
 *   variable of the API and the worker whose name starts with
 *   {@link SOURCE_ENV_PREFIX}. The operator puts a source's credentials
 *   there on purpose; no other variable of the process (its database URL,
 *   its webhook secret, LLM keys) can be named.
 *
 * The connector never reads the environment or the secret store itself: the
 * runtime resolves the references (checking who may use them) and hands the
 * values over in `ConnectorContext.credentials`.
 */
import { ConfigReader, show } from "./config-reader";
import type { ConnectorConfig } from "./connector";
import { ConnectorError } from "./connector-error";
import { registeredCredentials } from "./connector-registry";

/** The only environment variables a connector setting may name start with this. */
export const SOURCE_ENV_PREFIX = "OUTCOME_RUNTIME_SOURCE_";

/** A source environment variable's name: the prefix, then uppercase letters, digits and underscores. */
export const SOURCE_ENV_NAME = /^OUTCOME_RUNTIME_SOURCE_[A-Z0-9_]+$/u;

/** A workspace secret's name: lowercase letters, digits, `-`, `_` and `.`, 1 to 63 characters, starting with a letter or digit. */
export const SECRET_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/u;

/** Where a credential is kept: an operator-allowed environment variable, or a workspace secret. */
export interface CredentialRef {
  readonly via: "env" | "secret";
  /** The variable's or the secret's name (never the value). */
  readonly name: string;
}

/** One credential a connector needs: its name, the setting that named it, and where it is kept. */
export interface CredentialRequirement {
  /** The credential's name, the key of `ConnectorContext.credentials` (e.g. `database_url`). */
  readonly credential: string;
  /** The setting that names it (`database_url_env` or `database_url_secret`). */
  readonly field: string;
  readonly ref: CredentialRef;
  /**
   * The setting that names a workspace secret instead, for hints, when it is
   * not `<credential>_secret` (`bigquery`'s `credentials_file_env` has no
   * secret form; `credentials_json_secret` holds the key instead).
   */
  readonly secretSetting?: string;
}

/**
 * One credential: its name, what it is (for messages), the forms it may be
 * named in (default both), and whether it may be left out (`optional`).
 */
interface CredentialNeed {
  readonly credential: string;
  readonly what: string;
  readonly forms?: readonly CredentialRef["via"][];
  readonly optional?: boolean;
}

/** A credential a connector needs, or one of several it may be given instead (`oneOf`: exactly one is named). */
type CredentialEntry = CredentialNeed | { readonly oneOf: readonly CredentialNeed[] };

/** The credentials each connector type needs, in the order they are checked. */
const CREDENTIALS: Readonly<Record<string, readonly CredentialEntry[]>> = Object.freeze({
  postgres: [{ credential: "database_url", what: "the connection string (postgres://...) of a read-only role" }],
  mixpanel: [
    { credential: "username", what: "the service account's username" },
    { credential: "secret", what: "the service account's secret" },
  ],
  // The key JSON itself (a workspace secret, or a variable holding it), or the path of the key file on the
  // API's and the worker's hosts (a mounted secret), in a variable.
  bigquery: [
    {
      oneOf: [
        { credential: "credentials_json", what: "the service account's JSON key" },
        { credential: "credentials_file", what: "the path of the service account's JSON key file", forms: ["env"] },
      ],
    },
  ],
  csv: [],
  replay: [],
  mysql: [
    {
      credential: "database_url",
      what: "the connection string (mysql://user:password@host:3306/database) of a read-only account",
    },
  ],
  clickhouse: [
    {
      credential: "url",
      what: "the ClickHouse HTTP(S) URL with a read-only user's name and password (https://reader:password@host:8443)",
    },
  ],
  posthog: [{ credential: "personal_api_key", what: "a PostHog personal API key with the query:read scope" }],
  snowflake: [
    { credential: "private_key", what: "the PEM (PKCS#8) private key of the Snowflake user's key pair" },
    { credential: "private_key_passphrase", what: "the passphrase of an encrypted private key", optional: true },
  ],
  // As bigquery: the key JSON (a workspace secret, or a variable holding it), or a key file's path in a variable.
  ga4: [
    {
      oneOf: [
        { credential: "credentials_json", what: "the service account's JSON key" },
        { credential: "credentials_file", what: "the path of the service account's JSON key file", forms: ["env"] },
      ],
    },
  ],
  amplitude: [
    { credential: "api_key", what: "the Amplitude project's API key" },
    { credential: "secret_key", what: "the Amplitude project's secret key" },
  ],
  // All optional: a Prometheus server behind no authentication takes none; a bearer token, or basic auth.
  prometheus: [
    { credential: "bearer_token", what: "the bearer token the Prometheus server (or its proxy) takes", optional: true },
    { credential: "username", what: "the basic-auth username of the Prometheus server", optional: true },
    { credential: "password", what: "the basic-auth password of the Prometheus server", optional: true },
  ],
  datadog: [
    { credential: "api_key", what: "the organisation's Datadog API key" },
    { credential: "application_key", what: "a Datadog application key with the timeseries_query scope" },
  ],
});

/** The credentials of a connector type: a built-in's, or those a registered module declares (CONNECTOR_MODULES). */
function entriesOf(type: string): readonly CredentialEntry[] | undefined {
  return CREDENTIALS[type] ?? registeredCredentials(type);
}

function alternativesOf(entry: CredentialEntry): readonly CredentialNeed[] {
  return "oneOf" in entry ? entry.oneOf : [entry];
}

function settingsOf(need: CredentialNeed): string[] {
  return (need.forms ?? ["env", "secret"]).map((via) => `${need.credential}_${via}`);
}

/** The settings of every credential of a connector type (`database_url_env`, `database_url_secret`, ...). */
export function credentialFields(type: string): string[] {
  return (entriesOf(type) ?? []).flatMap((entry) => alternativesOf(entry).flatMap(settingsOf));
}

/**
 * The credential settings of a connector type, grouped: exactly one setting
 * of each group is given (`[["database_url_env", "database_url_secret"]]`;
 * `bigquery`: `[["credentials_json_env", "credentials_json_secret", "credentials_file_env"]]`).
 */
export function credentialChoices(type: string): string[][] {
  return (entriesOf(type) ?? []).map((entry) => alternativesOf(entry).flatMap(settingsOf));
}

/**
 * Reads the reference of credential `credential` from its two settings,
 * `<credential>_env` and `<credential>_secret`: exactly one must be given.
 *
 * @throws ConnectorError `invalid_config` naming the setting, the value and the fix
 */
export function readCredentialRef(
  reader: ConfigReader,
  credential: string,
  what: string,
  forms: readonly CredentialRef["via"][] = ["env", "secret"],
): CredentialRequirement {
  const envField = `${credential}_env`;
  const secretField = `${credential}_secret`;
  const hasEnv = forms.includes("env") && reader.has(envField);
  const hasSecret = forms.includes("secret") && reader.has(secretField);
  if (hasEnv && hasSecret) {
    throw reader.invalid(
      secretField,
      `both ${envField} and ${secretField} are set`,
      `keep one: ${secretField} (a workspace secret) or ${envField} (an environment variable the operator set)`,
    );
  }
  if (!hasEnv && !hasSecret) {
    throw reader.invalid(
      secretField,
      `is missing (so is ${envField})`,
      `name where ${what} is kept: ${secretField}: <name> for a workspace secret (outcome-runtime secrets set <name>), or ${envField}: ${SOURCE_ENV_PREFIX}<NAME> for an environment variable of the API and the worker`,
    );
  }
  if (hasEnv) {
    const value = reader.raw(envField);
    if (typeof value !== "string" || !SOURCE_ENV_NAME.test(value)) {
      throw reader.invalid(
        envField,
        typeof value === "string" && /^[A-Z_][A-Z0-9_]*$/u.test(value)
          ? `${show(value)} is not a source variable: only names starting with ${SOURCE_ENV_PREFIX} may be used`
          : `${show(value)} is not the name of a source environment variable`,
        `ask the operator to put ${what} in a variable such as ${suggestEnvName(value)} (on the API and the worker)${forms.includes("secret") ? `, or use ${secretField} with a workspace secret` : ""}`,
        { value },
      );
    }
    return { credential, field: envField, ref: { via: "env", name: value } };
  }
  const value = reader.raw(secretField);
  if (typeof value !== "string" || !SECRET_NAME.test(value)) {
    throw reader.invalid(
      secretField,
      `${show(value)} is not a secret name`,
      "write the name of a workspace secret: lowercase letters, digits, -, _ and ., such as analytics-db",
      { value },
    );
  }
  return { credential, field: secretField, ref: { via: "secret", name: value } };
}

/** `analytics_url` → `OUTCOME_RUNTIME_SOURCE_ANALYTICS_URL`, for hints. */
function suggestEnvName(value: unknown): string {
  const stem = (typeof value === "string" ? value : "")
    .toUpperCase()
    .replace(/^OUTCOME_RUNTIME_SOURCE_/u, "")
    .replaceAll(/[^A-Z0-9]+/gu, "_")
    .replaceAll(/^_+|_+$/gu, "");
  return `${SOURCE_ENV_PREFIX}${stem === "" ? "ANALYTICS_DATABASE_URL" : stem}`;
}

/**
 * The credentials a connector's settings name, without reading any of them.
 * The runtime resolves these and passes the values as
 * `ConnectorContext.credentials`.
 *
 * @throws ConnectorError `invalid_config` when a credential's settings are missing, doubled or malformed
 */
export function connectorCredentials(config: ConnectorConfig): CredentialRequirement[] {
  if (config === null || typeof config !== "object" || typeof config.type !== "string") return [];
  if (entriesOf(config.type) === undefined) return [];
  // Only the credential settings are read here; the connector checks the others when it is created.
  return credentialRequirements(new ConfigReader(config, Object.keys(config)));
}

/**
 * The credentials the settings `reader` reads name, for its connector type.
 *
 * @throws ConnectorError `invalid_config` when a credential's settings are missing, doubled or malformed
 */
export function credentialRequirements(reader: ConfigReader): CredentialRequirement[] {
  return (entriesOf(reader.type) ?? [])
    .filter(
      (entry) =>
        "oneOf" in entry || entry.optional !== true || settingsOf(entry).some((setting) => reader.has(setting)),
    )
    .map((entry) =>
      "oneOf" in entry
        ? readOneOfCredentialRef(reader, entry.oneOf)
        : readCredentialRef(reader, entry.credential, entry.what, entry.forms),
    );
}

/**
 * Reads the one credential of `alternatives` the settings name: exactly one
 * of all their settings must be given.
 *
 * @throws ConnectorError `invalid_config` naming the settings when none or several are given, or the one given is malformed
 */
function readOneOfCredentialRef(reader: ConfigReader, alternatives: readonly CredentialNeed[]): CredentialRequirement {
  const all = alternatives.flatMap(settingsOf);
  const secret = all.find((field) => field.endsWith("_secret"));
  const given = all.filter((field) => reader.has(field));
  if (given.length > 1) {
    throw reader.invalid(given[1] ?? "", `${given.join(" and ")} are set`, `keep one of ${all.join(", ")}`);
  }
  const chosen = alternatives.find((need) => settingsOf(need).includes(given[0] ?? ""));
  if (chosen === undefined) {
    const ways = alternatives.flatMap((need) =>
      (need.forms ?? ["env", "secret"]).map((via) =>
        via === "secret"
          ? `${need.credential}_secret: <name> for a workspace secret holding ${need.what} (outcome-runtime secrets set <name>)`
          : `${need.credential}_env: ${SOURCE_ENV_PREFIX}<NAME> for a variable of the API and the worker holding ${need.what}`,
      ),
    );
    const named = secret ?? all[0] ?? "";
    throw reader.invalid(
      named,
      `is missing (so are ${all.filter((f) => f !== named).join(" and ")})`,
      `give one of ${ways.join("; ")}`,
    );
  }
  const requirement = readCredentialRef(reader, chosen.credential, chosen.what, chosen.forms);
  return secret === undefined || secret === `${chosen.credential}_secret`
    ? requirement
    : { ...requirement, secretSetting: secret };
}

/**
 * The value of credential `credential`, resolved by the runtime.
 *
 * @throws ConnectorError `invalid_config` when the runtime did not resolve it (a programming error in the caller)
 */
export function credentialValue(
  credentials: Readonly<Record<string, string>> | undefined,
  requirement: CredentialRequirement,
  type: string,
): string {
  const value = credentials?.[requirement.credential];
  if (value === undefined || value === "") {
    throw new ConnectorError(
      "invalid_config",
      `${type} connector: ${requirement.field}: the ${requirement.ref.via === "env" ? "environment variable" : "workspace secret"} ${requirement.ref.name} was not resolved`,
      { details: { connector: type, field: requirement.field, [requirement.ref.via]: requirement.ref.name } },
    );
  }
  return value;
}
