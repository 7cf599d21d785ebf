/**
 * What each flag provider exports: its type, the credentials it needs, its
 * vendor's documented API hosts, a factory that validates the `flags`
 * settings of outcome.yaml, and the server-SDK snippet the coding agent's
 * brief shows.
 */
import type { FlagProvider, FlagProviderContext, FlagTarget } from "./provider";

/** A credential a provider needs, named in outcome.yaml by `<credential>_env` or `<credential>_secret`. */
export interface FlagCredentialNeed {
  /** The key of `FlagProviderContext.credentials`, e.g. `api_token`. */
  readonly credential: string;
  /** What it is and the permissions it needs, for messages (`an admin API token`). */
  readonly what: string;
}

/** Languages the agent's brief has a server-SDK snippet for. */
export const SNIPPET_LANGUAGES = ["typescript", "python", "go"] as const;
export type SnippetLanguage = (typeof SNIPPET_LANGUAGES)[number];

/** One provider: registered in `registry.ts`. */
export interface FlagProviderModule {
  /** `unleash`, `launchdarkly` or `growthbook`: the `flags.provider` value. */
  readonly type: string;
  readonly credentials: readonly FlagCredentialNeed[];
  /**
   * The vendor's documented API base URLs (`https://app.launchdarkly.com`);
   * the first is the default when `flags.api_url` is left out. Empty for a
   * self-hosted tool (Unleash): `api_url` is then required and must be
   * allowed by the operator (`FLAG_API_URLS`).
   */
  readonly documentedApiUrls: readonly string[];
  /**
   * Validate the `flags` settings (the block of outcome.yaml, credential
   * references already resolved into `context.credentials`) and bind a provider.
   *
   * @throws FlagProviderError `invalid_config` naming `flags.<field>`, the value and the fix;
   *   `provider_refused` for an `api_url` neither documented nor allowed
   */
  create(settings: Readonly<Record<string, unknown>>, context: FlagProviderContext): FlagProvider;
  /**
   * Code for the repository's server, in `language`, that evaluates the flag
   * for a user and branches per arm (the variation names are the arm names).
   */
  snippet(language: SnippetLanguage, flag: FlagTarget): string;
}
