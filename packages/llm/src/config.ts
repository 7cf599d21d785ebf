/**
 * Gateway configuration, parsed once from the environment by a pure function.
 */
import { isOperationName, OPERATIONS, type OperationName } from "./operations";

export type ProviderName = "anthropic" | "openai-compatible" | "rules";

/** USD per million tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
}

export interface LlmConfig {
  /** Which provider serves LLM operations; `rules` means no LLM is called. */
  readonly provider: ProviderName;
  readonly anthropic: { readonly apiKey: string; readonly baseURL: string | undefined } | null;
  readonly openai: { readonly apiKey: string | undefined; readonly baseURL: string } | null;
  /** Model per operation. */
  readonly models: Readonly<Record<OperationName, string>>;
  /** Price per model, USD per million tokens. A model without a price is metered at 0 with a warning. */
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** Per-attempt timeout, ms. */
  readonly timeoutMs: number;
  /** Retries after the first attempt on 429, 5xx, timeouts and connection errors. */
  readonly maxRetries: number;
  /** First backoff, ms; doubled per retry, with jitter, when the server sends no `retry-after`. */
  readonly retryBaseMs: number;
  /** The longest `retry-after` honoured, ms; a longer one ends the call (fallback `rate_limited`). */
  readonly maxRetryAfterMs: number;
  /** Monthly cap per workspace, USD (calendar month, UTC); `null` = none. */
  readonly monthlyWorkspaceBudgetUsd: number | null;
  /** Daily cap per user, USD (calendar day, UTC); `null` = none. */
  readonly dailyUserBudgetUsd: number | null;
  /** Fraction of a budget at which a warning is returned. */
  readonly warnAtFraction: number;
  /** The `embed` operation's endpoint and model; `null` when no embedding model is configured (full-text search only). */
  readonly embedding: EmbeddingConfig | null;
}

/** An OpenAI-compatible embeddings endpoint (`POST {baseURL}/embeddings`): OpenAI, Ollama, vLLM. */
export interface EmbeddingConfig {
  /** E.g. `text-embedding-3-small`, or `nomic-embed-text` on Ollama. */
  readonly model: string;
  /** Length of every vector the model returns; a response of another length is refused. */
  readonly dimensions: number;
  /**
   * Send `dimensions` in the request: true when the operator set it (models that can shorten their vectors,
   * e.g. text-embedding-3-*); a model's known default is not sent (text-embedding-ada-002 refuses the field).
   */
  readonly sendDimensions: boolean;
  /** E.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`. */
  readonly baseURL: string;
  /** Optional: a local server needs none. */
  readonly apiKey: string | undefined;
  /**
   * Cosine similarity (−1 to 1) below which a learning is not a semantic match of a query. Model-dependent:
   * unrelated texts score about 0.1 with OpenAI's models, higher with some local ones.
   */
  readonly minSimilarity: number;
}

/** Vector lengths of well-known embedding models, used when `OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS` is not set. */
const KNOWN_EMBEDDING_DIMENSIONS: Readonly<Record<string, number>> = {
  "text-embedding-3-small": 1536,
  "text-embedding-3-large": 3072,
  "text-embedding-ada-002": 1536,
  "nomic-embed-text": 768,
  "mxbai-embed-large": 1024,
  "all-minilm": 384,
};

/** Default models per provider: strong for hypotheses and drafts, cheap for summaries. */
export const DEFAULT_MODELS: Readonly<Record<Exclude<ProviderName, "rules">, { strong: string; cheap: string }>> = {
  anthropic: { strong: "claude-sonnet-4-5", cheap: "claude-haiku-4-5" },
  "openai-compatible": { strong: "gpt-4o", cheap: "gpt-4o-mini" },
};

/** Default prices, USD per million tokens (list prices; override with OUTCOME_RUNTIME_LLM_PRICES). */
export const DEFAULT_PRICES: Readonly<Record<string, ModelPrice>> = {
  "claude-opus-4-1": { input: 15, output: 75 },
  "claude-sonnet-4-5": { input: 3, output: 15 },
  "claude-haiku-4-5": { input: 1, output: 5 },
  "gpt-4o": { input: 2.5, output: 10 },
  "gpt-4o-mini": { input: 0.15, output: 0.6 },
  "gpt-4.1": { input: 2, output: 8 },
  "gpt-4.1-mini": { input: 0.4, output: 1.6 },
  "text-embedding-3-small": { input: 0.02, output: 0 },
  "text-embedding-3-large": { input: 0.13, output: 0 },
  "text-embedding-ada-002": { input: 0.1, output: 0 },
};

/** One malformed variable of the gateway's configuration. */
export interface LlmConfigProblem {
  readonly variable: string;
  readonly message: string;
}

/**
 * A configuration error naming the environment variables at fault: `variable`
 * is the first, `problems` lists every one found, and the message has one
 * `VARIABLE: problem` line each.
 */
export class LlmConfigError extends Error {
  readonly code = "llm_config_invalid";
  readonly problems: readonly LlmConfigProblem[];

  constructor(
    readonly variable: string,
    message: string,
    more: readonly LlmConfigProblem[] = [],
  ) {
    const problems = [{ variable, message }, ...more];
    super(problems.map((p) => `${p.variable}: ${p.message}`).join("\n"));
    this.name = "LlmConfigError";
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

function number(env: Env, name: string, fallback: number | null, opts: { min?: number; integer?: boolean } = {}) {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || (opts.min !== undefined && n < opts.min) || (opts.integer && !Number.isInteger(n))) {
    throw new LlmConfigError(
      name,
      `expected ${opts.integer ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got "${raw}"`,
    );
  }
  return n;
}

function url(env: Env, name: string): string | undefined {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return undefined;
  try {
    const u = new URL(raw);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw new LlmConfigError(name, `expected an http(s) URL, got "${raw}"`);
  }
  return raw.replace(/\/+$/, "");
}

/** `op=model,op=model` or a JSON object `{ "op": "model" }`. */
function parseModels(raw: string): Partial<Record<OperationName, string>> {
  const name = "OUTCOME_RUNTIME_LLM_MODELS";
  let entries: [string, unknown][];
  if (raw.startsWith("{")) {
    try {
      entries = Object.entries(JSON.parse(raw) as Record<string, unknown>);
    } catch (error) {
      throw new LlmConfigError(name, `invalid JSON (${(error as Error).message})`);
    }
  } else {
    entries = raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .map((pair) => {
        const i = pair.indexOf("=");
        if (i <= 0) throw new LlmConfigError(name, `expected operation=model, got "${pair}"`);
        return [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
      });
  }
  const out: Partial<Record<OperationName, string>> = {};
  for (const [op, model] of entries) {
    if (!isOperationName(op)) {
      throw new LlmConfigError(name, `unknown operation "${op}" (known: ${OPERATIONS.join(", ")})`);
    }
    if (typeof model !== "string" || model === "") throw new LlmConfigError(name, `empty model for "${op}"`);
    out[op] = model;
  }
  return out;
}

function parsePrices(raw: string): Record<string, ModelPrice> {
  const name = "OUTCOME_RUNTIME_LLM_PRICES";
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new LlmConfigError(name, `invalid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new LlmConfigError(name, 'expected an object like {"my-model": {"input": 3, "output": 15}}');
  }
  const out: Record<string, ModelPrice> = {};
  for (const [model, price] of Object.entries(parsed)) {
    const p = price as { input?: unknown; output?: unknown } | null;
    if (typeof p?.input !== "number" || typeof p.output !== "number" || !(p.input >= 0) || !(p.output >= 0)) {
      throw new LlmConfigError(
        name,
        `price of "${model}" needs non-negative numbers "input" and "output" (USD per million tokens)`,
      );
    }
    out[model] = { input: p.input, output: p.output };
  }
  return out;
}

/**
 * Read the gateway configuration from environment variables.
 *
 * - `OUTCOME_RUNTIME_LLM_PROVIDER`: `anthropic` | `openai-compatible` | `rules`
 *   (default: `anthropic` when `ANTHROPIC_API_KEY` is set, else
 *   `openai-compatible` when `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set, else `rules`).
 * - `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`; `OPENAI_API_KEY`, `OPENAI_BASE_URL`
 *   (default `https://api.openai.com/v1`; a local Ollama needs no key).
 * - `OUTCOME_RUNTIME_LLM_MODELS`: `generate_hypotheses=claude-opus-4-1,summarize_learning=claude-haiku-4-5` or JSON.
 * - `OUTCOME_RUNTIME_LLM_PRICES`: JSON `{ "model": { "input": 3, "output": 15 } }`, USD per million tokens.
 * - `OUTCOME_RUNTIME_LLM_TIMEOUT_MS` (60000), `OUTCOME_RUNTIME_LLM_MAX_RETRIES` (3),
 *   `OUTCOME_RUNTIME_LLM_RETRY_BASE_MS` (500), `OUTCOME_RUNTIME_LLM_MAX_RETRY_AFTER_MS` (60000).
 * - `LLM_MONTHLY_BUDGET_USD` (per workspace), `LLM_DAILY_USER_BUDGET_USD` (per user).
 * - `OUTCOME_RUNTIME_EMBEDDING_MODEL` (none: no `embed` operation, full-text search only),
 *   `OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS` (the model's known length, else required),
 *   `OUTCOME_RUNTIME_EMBEDDING_BASE_URL` (`OPENAI_BASE_URL`, else `https://api.openai.com/v1`),
 *   `OUTCOME_RUNTIME_EMBEDDING_API_KEY` (`OPENAI_API_KEY`), `OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY` (0.3).
 *
 * Every variable is read whatever else is wrong, so one error names them all.
 *
 * @throws LlmConfigError naming every variable at fault.
 */
export function llmConfigFromEnv(env: Env): LlmConfig {
  const problems: LlmConfigProblem[] = [];
  /** `read()`, or `fallback` with its problem noted: a bad variable does not hide the next one. */
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof LlmConfigError)) throw error;
      problems.push(...error.problems);
      return fallback;
    }
  };
  const anthropicKey = nonEmpty(env, "ANTHROPIC_API_KEY");
  const anthropicBase = attempt(() => url(env, "ANTHROPIC_BASE_URL"), undefined);
  const openaiKey = nonEmpty(env, "OPENAI_API_KEY");
  const openaiBase = attempt(() => url(env, "OPENAI_BASE_URL"), undefined);

  const explicit = nonEmpty(env, "OUTCOME_RUNTIME_LLM_PROVIDER");
  let provider: ProviderName;
  if (explicit !== undefined && explicit !== "anthropic" && explicit !== "openai-compatible" && explicit !== "rules") {
    problems.push({
      variable: "OUTCOME_RUNTIME_LLM_PROVIDER",
      message: `expected anthropic, openai-compatible or rules, got "${explicit}"`,
    });
    provider = "rules";
  } else if (explicit !== undefined) provider = explicit;
  else if (anthropicKey !== undefined) provider = "anthropic";
  else if (openaiKey !== undefined || openaiBase !== undefined) provider = "openai-compatible";
  else provider = "rules";

  if (provider === "anthropic" && anthropicKey === undefined) {
    problems.push({ variable: "ANTHROPIC_API_KEY", message: "required when OUTCOME_RUNTIME_LLM_PROVIDER=anthropic" });
  }
  if (provider === "openai-compatible" && openaiKey === undefined && openaiBase === undefined) {
    problems.push({
      variable: "OPENAI_API_KEY",
      message:
        "required when OUTCOME_RUNTIME_LLM_PROVIDER=openai-compatible (or set OPENAI_BASE_URL for a local server)",
    });
  }

  const defaults = provider === "rules" ? { strong: "rules", cheap: "rules" } : DEFAULT_MODELS[provider];
  const overrides = nonEmpty(env, "OUTCOME_RUNTIME_LLM_MODELS");
  const chosen = overrides === undefined ? {} : attempt(() => parseModels(overrides), {});
  const models = {
    generate_hypotheses: chosen.generate_hypotheses ?? defaults.strong,
    repair_output: chosen.repair_output ?? defaults.strong,
    summarize_learning: chosen.summarize_learning ?? defaults.cheap,
    draft_outcome: chosen.draft_outcome ?? defaults.strong,
  } satisfies Record<OperationName, string>;

  const priceOverrides = nonEmpty(env, "OUTCOME_RUNTIME_LLM_PRICES");
  const prices = {
    ...DEFAULT_PRICES,
    ...(priceOverrides === undefined ? {} : attempt(() => parsePrices(priceOverrides), {})),
  };

  const warnPercent = attempt(() => number(env, "LLM_BUDGET_WARN_PERCENT", 80, { min: 0 }) as number, 80);
  if (warnPercent > 100) {
    problems.push({ variable: "LLM_BUDGET_WARN_PERCENT", message: `expected 0 to 100, got "${warnPercent}"` });
  }
  const integer = (name: string, fallback: number, min: number) =>
    attempt(() => number(env, name, fallback, { min, integer: true }) as number, fallback);
  const config: LlmConfig = {
    provider,
    anthropic: anthropicKey === undefined ? null : { apiKey: anthropicKey, baseURL: anthropicBase },
    openai:
      openaiKey === undefined && openaiBase === undefined
        ? null
        : { apiKey: openaiKey, baseURL: openaiBase ?? "https://api.openai.com/v1" },
    models,
    prices,
    timeoutMs: integer("OUTCOME_RUNTIME_LLM_TIMEOUT_MS", 60_000, 1),
    maxRetries: integer("OUTCOME_RUNTIME_LLM_MAX_RETRIES", 3, 0),
    retryBaseMs: integer("OUTCOME_RUNTIME_LLM_RETRY_BASE_MS", 500, 0),
    maxRetryAfterMs: integer("OUTCOME_RUNTIME_LLM_MAX_RETRY_AFTER_MS", 60_000, 0),
    monthlyWorkspaceBudgetUsd: attempt(() => number(env, "LLM_MONTHLY_BUDGET_USD", null, { min: 0 }), null),
    dailyUserBudgetUsd: attempt(() => number(env, "LLM_DAILY_USER_BUDGET_USD", null, { min: 0 }), null),
    warnAtFraction: warnPercent / 100,
    embedding: attempt(() => embeddingConfig(env, openaiKey, openaiBase), null),
  };
  const [first, ...rest] = problems;
  if (first !== undefined) throw new LlmConfigError(first.variable, first.message, rest);
  return config;
}

/** The embedding settings, or null without `OUTCOME_RUNTIME_EMBEDDING_MODEL`. @throws LlmConfigError naming every variable at fault. */
function embeddingConfig(
  env: Env,
  openaiKey: string | undefined,
  openaiBase: string | undefined,
): EmbeddingConfig | null {
  const model = nonEmpty(env, "OUTCOME_RUNTIME_EMBEDDING_MODEL");
  const problems: LlmConfigProblem[] = [];
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof LlmConfigError)) throw error;
      problems.push(...error.problems);
      return fallback;
    }
  };
  const explicit = attempt(
    () => number(env, "OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS", null, { min: 1, integer: true }),
    null,
  );
  const baseURL = attempt(() => url(env, "OUTCOME_RUNTIME_EMBEDDING_BASE_URL"), undefined) ?? openaiBase;
  const apiKey = nonEmpty(env, "OUTCOME_RUNTIME_EMBEDDING_API_KEY") ?? openaiKey;
  const minSimilarity = attempt(
    () => number(env, "OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY", 0.3, { min: -1 }) as number,
    0.3,
  );
  if (minSimilarity > 1) {
    problems.push({
      variable: "OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY",
      message: `expected a cosine similarity from -1 to 1, got "${minSimilarity}"`,
    });
  }
  if (model === undefined) {
    const [first, ...rest] = problems;
    if (first !== undefined) throw new LlmConfigError(first.variable, first.message, rest);
    return null;
  }
  const dimensions = explicit ?? KNOWN_EMBEDDING_DIMENSIONS[model];
  if (dimensions === undefined) {
    problems.push({
      variable: "OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS",
      message: `required for model "${model}" (its vector length, e.g. 768 for nomic-embed-text); known models: ${Object.keys(KNOWN_EMBEDDING_DIMENSIONS).join(", ")}`,
    });
  }
  if (baseURL === undefined && apiKey === undefined) {
    problems.push({
      variable: "OUTCOME_RUNTIME_EMBEDDING_API_KEY",
      message:
        "required for https://api.openai.com/v1 (or OPENAI_API_KEY); for a local server set OUTCOME_RUNTIME_EMBEDDING_BASE_URL, e.g. http://localhost:11434/v1",
    });
  }
  const [first, ...rest] = problems;
  if (first !== undefined) throw new LlmConfigError(first.variable, first.message, rest);
  return {
    model,
    dimensions: dimensions as number,
    sendDimensions: explicit !== null,
    baseURL: baseURL ?? "https://api.openai.com/v1",
    apiKey,
    minSimilarity,
  };
}
