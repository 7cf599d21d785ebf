/**
 * The feature-flag provider interface (DESIGN §10): the runtime owns an
 * experiment's traffic split in the team's flag tool. It sets the arms'
 * weights when the launch is approved, sends everyone to control on a kill or
 * a guardrail pause, and the winner to everyone on a ship.
 *
 * The runtime drives a provider through its outbox and reconciles: it reads
 * what the provider serves now ({@link FlagProvider.read}), compares it with
 * what it wants, and writes only the difference. Every method is therefore
 * safe to call again with the same arguments (idempotent), and a provider
 * never keeps state of its own between calls.
 *
 * Weights are fractions of the units (0 to 1) keyed by arm name; the arms of
 * an experiment sum to 1. The first arm of a {@link FlagTarget} is the
 * control. A provider converts to its own scale (Unleash: per mille;
 * LaunchDarkly: thousandths of a percent; GrowthBook: fractions) and rounds
 * so that its own weights still sum to its whole.
 */

/** One arm of the experiment as a variation of its flag. */
export interface FlagArm {
  /** The arm's name; the variation (Unleash variant, LaunchDarkly variation, GrowthBook value) carries it. */
  readonly name: string;
  /** Share of the units, a fraction 0..1. */
  readonly weight: number;
}

/** The flag an experiment is split by. */
export interface FlagTarget {
  /** The flag's key in the provider (`outcome-runtime-<experiment key>` unless the build named another). */
  readonly key: string;
  /** The experiment's key, for the flag's description and tags. */
  readonly experimentKey: string;
  /** A human description of the flag, shown in the provider's UI. */
  readonly description: string;
  /** Control first, then the treatments; weights sum to 1. */
  readonly arms: readonly FlagArm[];
}

/** What a provider serves now for one flag, in the environment it is configured for. */
export interface ServedFlag {
  /** False when the flag does not exist (deleted by hand, or never created). */
  readonly exists: boolean;
  /** False when the flag is off in the environment (it then serves its off variation, or nothing). */
  readonly enabled: boolean;
  /** The variation names the flag has, in the provider's order. */
  readonly variations: readonly string[];
  /**
   * The share of units each variation gets now, fractions by name, as the
   * provider would serve them (a flag that is off serves its off variation to
   * everyone: that variation 1). Null when the flag does not exist or serves
   * something the runtime cannot express as weights (a rule it did not write).
   */
  readonly weights: Readonly<Record<string, number>> | null;
  /** The provider's own version of the flag (revision, etag, dateUpdated), for audit and drift. */
  readonly version: string | null;
}

/** The provider's answer to a write, kept in the audit event. */
export type FlagChange =
  | {
      readonly status: "applied";
      /** When the provider confirmed the change (its clock when it said so, else ours at the answer). */
      readonly at: Date;
      /** A small JSON summary of the provider's answer (version, ids); never a token. */
      readonly answer: Readonly<Record<string, unknown>>;
    }
  | {
      /** The project requires an approval in the provider (LaunchDarkly approval requests). */
      readonly status: "waiting_for_approval";
      /** The approval request's id and where a person reviews it. */
      readonly approval: { readonly id: string; readonly url: string | null };
      readonly answer: Readonly<Record<string, unknown>>;
    };

/**
 * A feature-flag provider bound to one project and environment and its
 * credentials. Every call takes an AbortSignal (the runtime's timeout).
 *
 * @throws FlagProviderError from every method (see its codes)
 */
export interface FlagProvider {
  /** `unleash`, `launchdarkly` or `growthbook`. */
  readonly type: string;
  /** `<type> <project>/<environment>` for messages. */
  readonly describe: string;
  /**
   * Create the flag, or update it, so that it has one variation per arm
   * (named by the arm) and serves the arms' weights in the environment, on.
   * A flag that already serves exactly that is left alone (no write) and
   * answered `applied` with `answer.unchanged: true`.
   */
  ensureFlag(target: FlagTarget, signal: AbortSignal): Promise<FlagChange>;
  /** Serve these weights (fractions by arm name, summing to 1) on the existing flag. */
  setWeights(target: FlagTarget, weights: Readonly<Record<string, number>>, signal: AbortSignal): Promise<FlagChange>;
  /** Send every unit to control (the first arm): the kill. Leaves the flag otherwise in place. */
  disable(target: FlagTarget, signal: AbortSignal): Promise<FlagChange>;
  /**
   * What the provider serves now for each key, in as few requests as the API
   * allows (a list of the project's flags rather than one request per flag).
   * A key the provider does not know is answered `exists: false`.
   */
  read(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, ServedFlag>>;
}

/** Stable codes of {@link FlagProviderError}. */
export type FlagProviderErrorCode =
  | "invalid_config"
  | "auth_failed"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "rate_limited"
  | "unavailable"
  | "timeout"
  | "bad_response"
  | "provider_refused";

/** Every code, whether the same call may succeed later, and what it means. */
export const FLAG_PROVIDER_ERROR_CODES: Readonly<
  Record<FlagProviderErrorCode, { readonly retryable: boolean; readonly meaning: string }>
> = Object.freeze({
  invalid_config: { retryable: false, meaning: "The flags settings are wrong; fix outcome.yaml or the environment." },
  auth_failed: { retryable: false, meaning: "The provider refused the token (401)." },
  forbidden: {
    retryable: false,
    meaning: "The token may not do this (403): grant the permissions docs/flags.md lists.",
  },
  not_found: { retryable: false, meaning: "The project, environment or flag does not exist (404)." },
  conflict: { retryable: true, meaning: "The flag changed between our read and our write (409); read again." },
  rate_limited: { retryable: true, meaning: "The provider's rate limit was hit; retry after `retryAfterMs`." },
  unavailable: { retryable: true, meaning: "The provider could not be reached or failed on its side (5xx)." },
  timeout: { retryable: true, meaning: "The provider did not answer in time." },
  bad_response: { retryable: true, meaning: "The provider answered with something that is not its documented shape." },
  provider_refused: {
    retryable: false,
    meaning: "The provider's URL is not one the vendor owns nor one the operator allows (FLAG_API_URLS).",
  },
});

/**
 * The one error type providers throw: a stable `code`, whether a retry can
 * help, how long the provider asked to wait, and a message that names the
 * field or the flag, the value and the fix. Never carries a token.
 */
export class FlagProviderError extends Error {
  readonly code: FlagProviderErrorCode;
  readonly retryable: boolean;
  /** From `Retry-After` / `X-RateLimit-Reset`, in milliseconds; null when the provider did not say. */
  readonly retryAfterMs: number | null;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: FlagProviderErrorCode,
    message: string,
    options: {
      retryable?: boolean;
      retryAfterMs?: number | null;
      details?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FlagProviderError";
    this.code = code;
    this.retryable = options.retryable ?? FLAG_PROVIDER_ERROR_CODES[code].retryable;
    this.retryAfterMs = options.retryAfterMs ?? null;
    this.details = options.details ?? {};
  }
}

/** What the runtime hands a provider factory besides the settings. */
export interface FlagProviderContext {
  /** The resolved credentials by name (`api_token`, `access_token`, ...); never logged. */
  readonly credentials: Readonly<Record<string, string>>;
  /** Base URLs the operator allows besides the vendor's documented hosts (`FLAG_API_URLS`), for this type. */
  readonly allowedApiUrls: readonly string[];
  /** The fetch to use: the runtime passes netguard's guarded fetch (outbound policy, no redirects). */
  readonly fetch: typeof fetch;
}
