/**
 * What the runtime needs to reach a team's flag provider: the operator's
 * allow-list of self-hosted API URLs (`FLAG_API_URLS`), the outbound policy
 * every provider request passes (netguard: no private address unless
 * allowed, no redirect), the per-call timeout, and the binding of an
 * outcome's `flags` settings to a provider with its resolved token.
 */
import type { Outcome } from "@outcome-runtime/core";
import type { DbOrTrx } from "@outcome-runtime/db";
import {
  type FlagProvider,
  FlagProviderError,
  type FlagProviderModule,
  flagProviderModule,
  parseFlagApiUrls,
} from "@outcome-runtime/flags";
import { guardedFetch, type OutboundPolicy, type Resolver } from "@outcome-runtime/netguard";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import { ConfigError } from "../env-config";
import { FLAGS_ENV_NAME, resolveCredentials, type SourceAccess, sourceWorkspace } from "../signals/source-access";
import { specOf } from "../spec-of";

/** The operator's settings for flag providers. */
export interface FlagAccess {
  /** `FLAG_API_URLS`: provider type → API base URLs allowed besides the vendor's documented ones. */
  readonly allowedApiUrls: Readonly<Record<string, readonly string[]>>;
  /** `FLAG_TIMEOUT_MS`: one attempt's timeout (its read and its writes together), ms (default 10 000). */
  readonly timeoutMs: number;
  /** What provider URLs may resolve to besides public addresses; default `OUTBOUND_ALLOW` (netguard). */
  readonly policy?: OutboundPolicy;
  /** DNS for the policy check (tests inject one). */
  readonly resolve?: Resolver;
}

/**
 * The flag settings from the environment: `FLAG_API_URLS`, `FLAG_TIMEOUT_MS`.
 *
 * @throws ConfigError naming every malformed variable
 */
export function flagAccessFromEnv(env: Readonly<Record<string, string | undefined>>): FlagAccess {
  const problems: string[] = [];
  let allowedApiUrls: Record<string, string[]> = {};
  try {
    allowedApiUrls = parseFlagApiUrls(env.FLAG_API_URLS);
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  const timeout = env.FLAG_TIMEOUT_MS?.trim();
  const timeoutMs = timeout === undefined || timeout === "" ? 10_000 : Number(timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 120_000) {
    problems.push(`FLAG_TIMEOUT_MS: "${timeout}" is not a whole number of milliseconds from 100 to 120000`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { allowedApiUrls, timeoutMs };
}

/** The outcome's `flags` settings, or null when it has no flag provider. */
export function flagsOf(outcome: Pick<Outcome, "spec">): NonNullable<OutcomeSpec["flags"]> | null {
  return specOf(outcome).flags ?? null;
}

/** The key of an experiment's flag: the outcome's `flags.flag_prefix` (default `outcome-runtime-`) and its key. */
export function flagKeyOf(flags: NonNullable<OutcomeSpec["flags"]>, experimentKey: string): string {
  return `${flags.flag_prefix ?? "outcome-runtime-"}${experimentKey}`;
}

/** The module of a provider type; `invalid_config` naming `flags.provider` for an unknown one. */
export function moduleOf(type: string): FlagProviderModule {
  const module = flagProviderModule(type);
  if (module === null) {
    throw new FlagProviderError(
      "invalid_config",
      `flags.provider: "${type}" is not a flag provider this runtime knows; write unleash, launchdarkly or growthbook`,
      { details: { field: "flags.provider", value: type } },
    );
  }
  return module;
}

/**
 * Bind the outcome's provider: its settings validated, its token resolved
 * (`<credential>_env`, an `OUTCOME_RUNTIME_FLAGS_` variable, or
 * `<credential>_secret`, a workspace secret), every request through the
 * guarded fetch.
 *
 * @throws FlagProviderError `invalid_config` for no or a wrong setting (including a credential named
 *   neither way), `provider_refused` for a URL not allowed; ConnectorError from the credential
 *   resolution (`source_refused`, `invalid_config` with `details.unresolved`)
 */
export async function openFlagProvider(
  db: DbOrTrx,
  access: FlagAccess,
  sources: SourceAccess,
  outcome: Outcome,
  where: "API" | "worker",
  now: Date,
): Promise<FlagProvider> {
  const flags = flagsOf(outcome);
  if (flags === null) {
    throw new FlagProviderError("invalid_config", `outcome ${outcome.slug} has no flags section`, {
      details: { field: "flags" },
    });
  }
  const module = moduleOf(flags.provider);
  const settings = flags as unknown as Readonly<Record<string, unknown>>;
  const requirements = module.credentials.map((need) => {
    const env = settings[`${need.credential}_env`];
    const secret = settings[`${need.credential}_secret`];
    if ((typeof env === "string") === (typeof secret === "string")) {
      throw new FlagProviderError(
        "invalid_config",
        `${module.type} flags: flags.${need.credential}_env or flags.${need.credential}_secret: name ${need.what} in exactly one of them (an OUTCOME_RUNTIME_FLAGS_ variable, or a workspace secret)`,
        { details: { field: `flags.${need.credential}_env`, provider: module.type } },
      );
    }
    return typeof env === "string"
      ? { credential: need.credential, field: `flags.${need.credential}_env`, ref: { via: "env" as const, name: env } }
      : {
          credential: need.credential,
          field: `flags.${need.credential}_secret`,
          ref: { via: "secret" as const, name: secret as string },
        };
  });
  const workspace = await sourceWorkspace(db, outcome.workspaceId);
  const credentials = await resolveCredentials(db, sources, workspace, requirements, where, now, {
    pattern: FLAGS_ENV_NAME,
    prefix: "OUTCOME_RUNTIME_FLAGS_",
  });
  return module.create(settings, {
    credentials,
    allowedApiUrls: access.allowedApiUrls[module.type] ?? [],
    fetch: guardedFetch({ policy: access.policy, resolve: access.resolve, maxRedirects: 0 }),
  });
}
