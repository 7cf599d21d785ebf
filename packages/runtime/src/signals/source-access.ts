/**
 * What a workspace's connectors may reach, as the operator configured it, and
 * the resolution of the credentials a connector's settings name:
 *
 * - `<credential>_secret: name`: the workspace's own secret, opened with the
 *   operator's keyring (`secrets.ts`);
 * - `<credential>_env: OUTCOME_RUNTIME_SOURCE_...`: an environment variable of
 *   the process with that prefix only; with `SOURCE_ENV_WORKSPACES` set, only
 *   the workspaces listed for it may use it.
 *
 * Both processes read the same variables (`sourceAccessFromEnv`): the API to
 * check an outcome when it is applied, the worker to poll.
 */
import {
  type ConnectorError,
  ConnectorError as ConnectorErrorClass,
  type CredentialRequirement,
  parseAllowedApiUrls,
  parseConnectorModules,
  SOURCE_ENV_NAME,
} from "@outcome-runtime/connectors";
import { DomainError } from "@outcome-runtime/core";
import { type DbOrTrx, secrets, workspaces } from "@outcome-runtime/db";
import { ConfigError } from "../env-config";
import { openSecret, type SecretsKeyring, secretsKeyringFromEnv } from "../secret-box";

/** The variables a flag provider's settings may name (`flags.<credential>_env`). */
export const FLAGS_ENV_NAME = /^OUTCOME_RUNTIME_FLAGS_[A-Z0-9_]+$/u;

/** Which variables a credential may name: sources' (the default) or flag providers'. */
export interface EnvNameRule {
  readonly pattern: RegExp;
  readonly prefix: string;
}

const SOURCE_ENV_RULE: EnvNameRule = { pattern: SOURCE_ENV_NAME, prefix: "OUTCOME_RUNTIME_SOURCE_" };

/** The operator's settings for signal sources. */
export interface SourceAccess {
  /** The process environment; only variables starting with `OUTCOME_RUNTIME_SOURCE_` are ever read from it. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * `SOURCE_ENV_WORKSPACES`: source variable → the workspace slugs that may
   * use it (`*`: all). Null when unset: every workspace may use every source
   * variable (one team per installation). Once set, a variable it does not
   * list may not be used at all.
   */
  readonly envWorkspaces: Readonly<Record<string, readonly string[]>> | null;
  /** The keyring of workspace secrets; null without `OUTCOME_RUNTIME_SECRETS_KEY`. */
  readonly secretsKeyring: SecretsKeyring | null;
  /** `SOURCE_API_URLS`: connector type → API base URLs allowed besides the vendor's. */
  readonly allowedApiUrls: Readonly<Record<string, readonly string[]>>;
  /** `SOURCE_CSV_DIR`: the directory csv paths are relative to and may not leave. */
  readonly csvDir?: string;
  /**
   * `CONNECTOR_MODULES`: the packages (or absolute paths) of connectors of the operator's own, imported and
   * registered at boot (`loadConnectorModules`). Unset: none.
   */
  readonly connectorModules?: readonly string[];
}

/**
 * Parses `SOURCE_ENV_WORKSPACES`: entries separated by `;`, each
 * `OUTCOME_RUNTIME_SOURCE_<NAME>=<slug>,<slug>` (or `=*` for every workspace).
 *
 * @throws Error naming the malformed entry
 */
export function parseEnvWorkspaces(text: string | undefined): Record<string, string[]> | null {
  if (text === undefined || text.trim() === "") return null;
  const result: Record<string, string[]> = {};
  for (const entry of text
    .split(";")
    .map((e) => e.trim())
    .filter((e) => e !== "")) {
    const at = entry.indexOf("=");
    const name = entry.slice(0, at).trim();
    const slugs = entry
      .slice(at + 1)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    if (at <= 0 || !(SOURCE_ENV_NAME.test(name) || FLAGS_ENV_NAME.test(name)) || slugs.length === 0) {
      throw new Error(
        `SOURCE_ENV_WORKSPACES: "${entry}" is not OUTCOME_RUNTIME_SOURCE_<NAME>=<workspace>,<workspace> (or =*; OUTCOME_RUNTIME_FLAGS_<NAME> for a flag provider's token)`,
      );
    }
    result[name] = slugs;
  }
  return result;
}

/**
 * The source settings from the environment: `SOURCE_ENV_WORKSPACES`,
 * `SOURCE_API_URLS`, `SOURCE_CSV_DIR`, `CONNECTOR_MODULES`,
 * `OUTCOME_RUNTIME_SECRETS_KEY` (and `_PREVIOUS`). The API and the worker read the same.
 *
 * @throws ConfigError naming every malformed variable
 */
export function sourceAccessFromEnv(env: Readonly<Record<string, string | undefined>>): SourceAccess {
  const problems: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
      return fallback;
    }
  };
  const envWorkspaces = attempt(() => parseEnvWorkspaces(env.SOURCE_ENV_WORKSPACES), null);
  const allowedApiUrls = attempt(() => parseAllowedApiUrls(env.SOURCE_API_URLS), {});
  const secretsKeyring = attempt(() => secretsKeyringFromEnv(env), null);
  const connectorModules = attempt(() => parseConnectorModules(env.CONNECTOR_MODULES), []);
  if (problems.length > 0) throw new ConfigError(problems);
  const csvDir = env.SOURCE_CSV_DIR?.trim();
  return {
    env,
    envWorkspaces,
    secretsKeyring,
    allowedApiUrls,
    ...(csvDir === undefined || csvDir === "" ? {} : { csvDir }),
    ...(connectorModules.length === 0 ? {} : { connectorModules }),
  };
}

/** The workspace a connector reads for: its id and its slug (what `SOURCE_ENV_WORKSPACES` lists). */
export interface SourceWorkspace {
  readonly id: string;
  readonly slug: string;
}

/** The workspace's slug, looked up once. */
export async function sourceWorkspace(db: DbOrTrx, workspaceId: string): Promise<SourceWorkspace> {
  const workspace = await workspaces.findWorkspace(db, workspaceId);
  if (workspace === null) throw new DomainError("not_found", `no workspace ${workspaceId}`, {});
  return { id: workspace.id, slug: workspace.slug };
}

function refused(requirement: CredentialRequirement, problem: string, fix: string): ConnectorError {
  return new ConnectorErrorClass("source_refused", `${requirement.field}: ${problem}; ${fix}`, {
    details: { field: requirement.field, [requirement.ref.via]: requirement.ref.name, problem, fix },
  });
}

function unresolved(requirement: CredentialRequirement, problem: string, fix: string): ConnectorError {
  return new ConnectorErrorClass("invalid_config", `${requirement.field}: ${problem}; ${fix}`, {
    details: {
      field: requirement.field,
      [requirement.ref.via]: requirement.ref.name,
      problem,
      fix,
      unresolved: true,
    },
  });
}

/**
 * The values of the credentials a connector names, for `workspace`.
 *
 * @param where which process reads them (`API`, `worker`), for messages
 * @param envRule the variables a reference may name: `OUTCOME_RUNTIME_SOURCE_` ones (the default), or
 *   `OUTCOME_RUNTIME_FLAGS_` ones for a flag provider
 * @returns credential name → value
 * @throws ConnectorError `source_refused` for a variable the workspace may not use; `invalid_config`
 *   (`details.unresolved`) for a missing secret or an unset variable
 */
export async function resolveCredentials(
  db: DbOrTrx,
  access: SourceAccess,
  workspace: SourceWorkspace,
  requirements: readonly CredentialRequirement[],
  where: "API" | "worker",
  now: Date = new Date(),
  envRule: EnvNameRule = SOURCE_ENV_RULE,
): Promise<Record<string, string>> {
  const values: Record<string, string> = {};
  for (const requirement of requirements) {
    const { ref } = requirement;
    if (ref.via === "env") {
      if (!envRule.pattern.test(ref.name)) {
        throw refused(
          requirement,
          `${ref.name} may not be named here`,
          `name a variable starting with ${envRule.prefix}`,
        );
      }
      const allowed = access.envWorkspaces === null ? ["*"] : (access.envWorkspaces[ref.name] ?? []);
      if (!allowed.includes("*") && !allowed.includes(workspace.slug)) {
        throw refused(
          requirement,
          `the operator has not allowed workspace ${workspace.slug} to use ${ref.name}`,
          `ask the operator to add it to SOURCE_ENV_WORKSPACES (${ref.name}=${[...allowed, workspace.slug].join(",")}), or use a workspace secret (${requirement.secretSetting ?? `${requirement.credential}_secret`})`,
        );
      }
      const value = access.env[ref.name];
      if (value === undefined || value.trim() === "") {
        throw unresolved(
          requirement,
          `the environment variable ${ref.name} is not set on the ${where}`,
          `set it on the API and the worker, or use a workspace secret (${requirement.secretSetting ?? `${requirement.credential}_secret`})`,
        );
      }
      values[requirement.credential] = value;
      continue;
    }
    const sealed = await secrets.findSealedSecret(db, workspace.id, ref.name);
    if (sealed === null) {
      throw unresolved(
        requirement,
        `this workspace has no secret named ${ref.name}`,
        `an admin creates it with \`outcome-runtime secrets set ${ref.name}\` (PUT /v1/secrets/${ref.name})`,
      );
    }
    if (access.secretsKeyring === null) {
      throw unresolved(
        requirement,
        `the secret ${ref.name} cannot be opened: the ${where} has no OUTCOME_RUNTIME_SECRETS_KEY`,
        "give the API and the worker the same OUTCOME_RUNTIME_SECRETS_KEY",
      );
    }
    try {
      values[requirement.credential] = openSecret(access.secretsKeyring, sealed);
    } catch (error) {
      if (error instanceof DomainError) throw unresolved(requirement, error.message, "set the secret again");
      throw error;
    }
    await secrets.touchSecret(db, sealed.id, now).catch(() => {});
  }
  return values;
}
