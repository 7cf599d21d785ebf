/**
 * The one boot-time reader of a process's configuration: its own variables
 * (a TypeBox schema, the shared ones included: `SHARED_ENV`) and the groups of
 * settings the infrastructure packages parse — signal sources (`sources`), the
 * LLM gateway (`llm`), gate emails (`mail`) and outbound HTTP (`outbound`). It
 * reads every group whatever else is wrong and reports every problem of every
 * group in one `ConfigError`, so an operator fixes the whole file at once and
 * nothing fails later at the first outbound call.
 */
import { type LlmConfig, LlmConfigError, llmConfigFromEnv } from "@outcome-runtime/llm";
import { type OutboundPolicy, OutboundPolicyError, outboundPolicyFromEnv } from "@outcome-runtime/netguard";
import { type MailConfig, MailConfigError, mailConfigFromEnv } from "@outcome-runtime/notify";
import type { Static, TObject } from "typebox";
import { ConfigError, readEnvConfig } from "./env-config";
import { type SourceAccess, sourceAccessFromEnv } from "./signals/source-access";

/**
 * Connectors of the operator's own: `loadConnectorModules(config.sources.connectorModules ?? [])` imports and
 * registers them once the configuration is read (it throws `ConnectorModuleError`, which stops the boot);
 * `registeredConnectorModules()` lists them for the health routes.
 */
export {
  ConnectorModuleError,
  connectorTypes,
  loadConnectorModules,
  type RegisteredConnectorModule,
  registeredConnectorModules,
} from "@outcome-runtime/connectors";

import { type FlagAccess, flagAccessFromEnv } from "./flags/flag-access";

/** Installs the outbound policy read at boot as the process's default (`config.outbound`). */
export { setDefaultOutboundPolicy } from "@outcome-runtime/netguard";

/** The settings each group yields once parsed. */
export interface BootGroups {
  /** `SOURCE_ENV_WORKSPACES`, `SOURCE_API_URLS`, `SOURCE_CSV_DIR`, `CONNECTOR_MODULES`, `OUTCOME_RUNTIME_SECRETS_KEY(_PREVIOUS)`. */
  readonly sources: SourceAccess;
  /** `OUTCOME_RUNTIME_LLM_*`, `ANTHROPIC_*`, `OPENAI_*`, `LLM_*` budgets. */
  readonly llm: LlmConfig;
  /** `SMTP_URL`, `MAIL_LOG_LINKS`, `MAIL_FROM`, `OUTCOME_RUNTIME_PUBLIC_URL`. */
  readonly mail: MailConfig;
  /** `OUTBOUND_ALLOW` (and `NODE_ENV` for its default). */
  readonly outbound: OutboundPolicy;
  /** `FLAG_API_URLS`, `FLAG_TIMEOUT_MS`. */
  readonly flags: FlagAccess;
}

/** A group of settings a process may read. */
export type BootGroup = keyof BootGroups;

/** A process's configuration: its schema's variables (upper case) and the groups it asked for (lower case). */
export type BootConfig<S extends TObject, G extends BootGroup> = Static<S> & Pick<BootGroups, G>;

type Env = Readonly<Record<string, string | undefined>>;

const READERS: { readonly [G in BootGroup]: (env: Env) => BootGroups[G] } = {
  sources: sourceAccessFromEnv,
  llm: llmConfigFromEnv,
  mail: mailConfigFromEnv,
  outbound: outboundPolicyFromEnv,
  flags: flagAccessFromEnv,
};

/** The variable a problem line starts with (`DATABASE_URL is not set: …`, `OUTBOUND_ALLOW: …`). */
function variableOf(problem: string): string | null {
  return /^([A-Z][A-Z0-9_]*)/.exec(problem)?.[1] ?? null;
}

/** The problems a group reader threw, one line each with the variable it names; null for another error. */
function problemsOf(error: unknown): { variable: string | null; text: string }[] | null {
  if (error instanceof LlmConfigError) {
    return error.problems.map((p) => ({ variable: p.variable, text: `${p.variable}: ${p.message}` }));
  }
  if (error instanceof MailConfigError) return error.problems.map((p) => ({ variable: p.variable, text: p.message }));
  if (error instanceof ConfigError || error instanceof OutboundPolicyError) {
    return error.problems.map((text) => ({ variable: variableOf(text), text }));
  }
  return null;
}

/**
 * Read a process's configuration from `env` at boot: the variables of
 * `options.schema` (empty strings count as unset; defaults and coercion as in
 * {@link readEnvConfig}) and each group of `options.groups`. A variable the
 * schema already found wrong is not reported again by a group (the public URL
 * is in both the shared schema and the mail settings).
 *
 * @returns the schema's variables, with each group's settings under its name (`config.llm`, `config.mail`, …)
 * @throws ConfigError listing every problem of the schema, its cross-checks and every group, one line each.
 *
 * @example
 *   const config = readBootConfig(process.env, { schema: ConfigSchema, groups: ["sources", "llm", "outbound"] });
 *   config.DATABASE_URL; config.llm.provider; setDefaultOutboundPolicy(config.outbound);
 */
export function readBootConfig<S extends TObject, G extends BootGroup>(
  env: Env,
  options: {
    readonly schema: S;
    readonly groups: readonly G[];
    /** Problems between the schema's variables (see {@link readEnvConfig}). */
    readonly crossChecks?: (input: Readonly<Record<string, unknown>>) => string[];
  },
): BootConfig<S, G> {
  const problems: string[] = [];
  let own: Static<S> | undefined;
  try {
    own = readEnvConfig<Static<S>>(options.schema, env, options.crossChecks);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const reported = new Set(problems.map(variableOf));
  const groups: Partial<Record<BootGroup, unknown>> = {};
  for (const group of new Set(options.groups)) {
    try {
      groups[group] = READERS[group](env);
    } catch (error) {
      const found = problemsOf(error);
      if (found === null) throw error;
      for (const problem of found) {
        if (problem.variable === null || !reported.has(problem.variable)) problems.push(problem.text);
      }
    }
  }
  if (problems.length > 0 || own === undefined) throw new ConfigError([...new Set(problems)]);
  return { ...own, ...groups } as BootConfig<S, G>;
}
