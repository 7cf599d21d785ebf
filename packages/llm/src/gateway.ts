/**
 * The LLM gateway: every AI call of the product goes through `run`, which
 * bounds it (timeout, retries, budgets), checks it (ajv against the
 * operation's output schema, one repair), meters it and audits it (through
 * the {@link LlmStore} the runtime implements) and, whatever goes wrong,
 * still answers through the offline rules engine.
 */
import { createHash } from "node:crypto";
import type { Actor, DecisionChannel } from "@outcome-runtime/core";
import type { LlmConfig, ModelPrice, ProviderName } from "./config";
import type { DraftOutcomeInput, GenerateHypothesesInput, SummarizeLearningInput } from "./inputs";
import { EMBED_OPERATION, type OperationName, operations } from "./operations";
import type { DraftOutcomeOutput, GenerateHypothesesOutput, SummarizeLearningOutput } from "./output.types";
import { createAnthropicProvider } from "./providers/anthropic.provider";
import { createOpenAiCompatibleProvider } from "./providers/openai-compatible.provider";
import { createEmbeddingProvider, type EmbeddingProvider } from "./providers/openai-embeddings.provider";
import { type LlmProvider, ProviderError, type ProviderResponse } from "./providers/provider";
import { draftOutcomeByRules, generateHypothesesByRules } from "./rules";
import type { LlmRunRecord, LlmStore, SpendQuery } from "./store";
import { summarizeLearningOffline } from "./summarize-learning.offline";
import { type ValidationIssue, validateOutput } from "./validate";

/** Input and output types per public operation (`repair_output` is internal). */
export interface OperationTypes {
  generate_hypotheses: { input: GenerateHypothesesInput; output: GenerateHypothesesOutput };
  draft_outcome: { input: DraftOutcomeInput; output: DraftOutcomeOutput };
  summarize_learning: { input: SummarizeLearningInput; output: SummarizeLearningOutput };
}
export type PublicOperation = keyof OperationTypes;

/**
 * Why the rules engine served instead of the LLM. Stable snake_case codes.
 * `null` in a result means the LLM served (or no LLM is configured at all).
 */
export type FallbackReason = "budget_exhausted" | "rate_limited" | "timeout" | "provider_error" | "invalid_output";

export interface LlmResult<T> {
  readonly output: T;
  /** `llm:<model>` or `rules`. */
  readonly source: string;
  /** What served: the provider, or `rules`. */
  readonly provider: ProviderName;
  /** The model that served, or `rules`. */
  readonly model: string;
  /** Tokens billed by this call (all attempts and the repair); 0 on a cache hit. */
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
  /** USD billed by this call; 0 on a cache hit. */
  readonly costUsd: number;
  readonly cacheHit: boolean;
  readonly fallbackReason: FallbackReason | null;
  /** Budget warnings (80 % of a cap), missing prices, the repair used. */
  readonly warnings: string[];
  readonly latencyMs: number;
}

export interface RunContext {
  readonly workspaceId: string;
  readonly outcomeId?: string | null;
  /** Who asked; the daily user budget is per `actor.id`. */
  readonly actor: Actor;
  readonly channel?: DecisionChannel;
  readonly requestId?: string | null;
}

export interface GatewayDeps {
  /** Cache, metering ledger and audit trail (the runtime's Postgres store). */
  readonly store: LlmStore;
  readonly config: LlmConfig;
  /** Clock for budget windows (tests pin it). */
  readonly now?: () => Date;
  /** Sleep between retries (tests may shorten it). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Why `embed` returned no vectors: no embedding model is configured, or a
 * gateway {@link FallbackReason} (`invalid_output`: the response had the wrong
 * length, non-finite numbers or a missing vector).
 */
export type EmbedFailure = "not_configured" | FallbackReason;

/** What `Gateway.embed` answers. */
export interface EmbedResult {
  /** One vector per text, in the texts' order, each `dimensions` long; null when the embedding failed. */
  readonly vectors: number[][] | null;
  /** The embedding model (`OUTCOME_RUNTIME_EMBEDDING_MODEL`), or null when none is configured. */
  readonly model: string | null;
  /** The configured vector length, or null when no model is configured. */
  readonly dimensions: number | null;
  /** Null when `vectors` is set. */
  readonly failure: EmbedFailure | null;
  /** What went wrong, for people and the logs (the provider's status and message, or the field at fault). */
  readonly error: string | null;
  /** Input tokens billed by this call (0 for texts served from the cache). */
  readonly inputTokens: number;
  /** USD billed by this call. */
  readonly costUsd: number;
  /** Texts served from the cache. */
  readonly cacheHits: number;
  readonly latencyMs: number;
}

export interface Gateway {
  /**
   * Run an operation. Never throws for provider trouble: the rules engine
   * answers and `fallbackReason` says why. Throws only for errors of the
   * store (its database) and for a rules-engine failure (a bug).
   */
  run<Op extends PublicOperation>(
    operation: Op,
    input: OperationTypes[Op]["input"],
    context: RunContext,
  ): Promise<LlmResult<OperationTypes[Op]["output"]>>;
  /**
   * The `embed` operation: one vector per text, through the configured
   * OpenAI-compatible embeddings endpoint, with the same cache (per text),
   * budgets, timeout and retries, metering (`llm_calls`, operation `embed`)
   * and audit (`llm.call`) as `run`. At most {@link EMBED_OPERATION}`.maxBatch`
   * texts per call. Never throws for provider trouble: `vectors` is null and
   * `failure`/`error` say why. Throws for errors of the store.
   */
  embed(texts: readonly string[], context: RunContext): Promise<EmbedResult>;
  /** The embedding model, its vector length and the least similarity that matches; null when none is configured. */
  embeddingSettings(): { model: string; dimensions: number; minSimilarity: number } | null;
}

/** JSON with object keys sorted at every level, so equal inputs hash equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The cache key: operation, prompt version, model and sha256 of the canonical input. */
export function cacheKey(operation: string, promptVersion: string, model: string, input: unknown): string {
  const hash = createHash("sha256").update(canonicalJson(input)).digest("hex");
  return `${operation}:${promptVersion}:${model}:${hash}`;
}

/** USD for a usage at a price (USD per million tokens). */
export function costOf(usage: { inputTokens: number; outputTokens: number }, price: ModelPrice): number {
  return (usage.inputTokens * price.input + usage.outputTokens * price.output) / 1_000_000;
}

function renderInput(input: unknown): string {
  return `Input (JSON):\n\n\`\`\`json\n${JSON.stringify(input, null, 2)}\n\`\`\``;
}

function rulesAnswer(operation: PublicOperation, input: unknown): unknown {
  switch (operation) {
    case "generate_hypotheses":
      return generateHypothesesByRules(input as GenerateHypothesesInput);
    case "draft_outcome":
      return draftOutcomeByRules(input as DraftOutcomeInput);
    case "summarize_learning":
      return summarizeLearningOffline(input as SummarizeLearningInput);
    default: {
      const never: never = operation;
      throw new Error(`unknown operation ${String(never)}`);
    }
  }
}

function startOfMonthUtc(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}
function startOfNextMonthUtc(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
}
function startOfDayUtc(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}

function createProvider(config: LlmConfig): LlmProvider | null {
  switch (config.provider) {
    case "anthropic":
      return config.anthropic === null
        ? null
        : createAnthropicProvider({ apiKey: config.anthropic.apiKey, baseURL: config.anthropic.baseURL });
    case "openai-compatible":
      return config.openai === null
        ? null
        : createOpenAiCompatibleProvider({ apiKey: config.openai.apiKey, baseURL: config.openai.baseURL });
    case "rules":
      return null;
    default: {
      const never: never = config.provider;
      throw new Error(`unknown provider ${String(never)}`);
    }
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Attempted {
  inputTokens: number;
  outputTokens: number;
}

/**
 * Create the gateway.
 *
 * @example
 *   const gateway = createGateway({ store, config: llmConfigFromEnv(process.env) });
 *   const { output, source } = await gateway.run("generate_hypotheses", input, { workspaceId, outcomeId, actor });
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { store, config } = deps;
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? defaultSleep;
  const provider = createProvider(config);
  const embedding = config.embedding;
  const embedder: EmbeddingProvider | null =
    embedding === null ? null : createEmbeddingProvider({ baseURL: embedding.baseURL, apiKey: embedding.apiKey });
  const catalog = operations();

  /** `attempt()` with retries on 429/5xx/timeouts/connection errors, honouring `retry-after`. */
  async function withRetries<T>(attemptOnce: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await attemptOnce();
      } catch (error) {
        if (!(error instanceof ProviderError) || !error.retryable || attempt >= config.maxRetries) throw error;
        let wait: number;
        if (error.retryAfterMs !== null) {
          if (error.retryAfterMs > config.maxRetryAfterMs) throw error;
          wait = error.retryAfterMs;
        } else {
          // Exponential backoff with full jitter in [base·2^n / 2, base·2^n].
          const ceiling = config.retryBaseMs * 2 ** attempt;
          wait = ceiling / 2 + Math.random() * (ceiling / 2);
        }
        await sleep(wait);
      }
    }
  }

  /** One provider request with retries on 429/5xx/timeouts, honouring `retry-after`; every attempt billed. */
  async function completeWithRetries(
    request: Omit<Parameters<LlmProvider["complete"]>[0], "timeoutMs">,
    billed: Attempted,
  ): Promise<ProviderResponse> {
    return withRetries(async () => {
      const response = await provider!.complete({ ...request, timeoutMs: config.timeoutMs });
      billed.inputTokens += response.usage.inputTokens;
      billed.outputTokens += response.usage.outputTokens;
      return response;
    });
  }

  function reasonOf(error: unknown): FallbackReason {
    if (error instanceof ProviderError) {
      if (error.kind === "rate_limited") return "rate_limited";
      if (error.kind === "timeout") return "timeout";
    }
    return "provider_error";
  }

  async function run<Op extends PublicOperation>(
    operation: Op,
    input: OperationTypes[Op]["input"],
    context: RunContext,
  ): Promise<LlmResult<OperationTypes[Op]["output"]>> {
    const started = performance.now();
    const spec = catalog[operation];
    const model = config.models[operation];
    const warnings: string[] = [];
    const billed: Attempted = { inputTokens: 0, outputTokens: 0 };
    const price = config.prices[model];
    const outcomeId = context.outcomeId ?? null;

    let output: unknown;
    let servedBy: "llm" | "rules" = "rules";
    let cacheHit = false;
    let repaired = false;
    let fallbackReason: FallbackReason | null = null;
    let key: string | null = null;

    if (provider !== null) {
      key = cacheKey(operation, spec.promptVersion, model, input);
      const cached = await store.getCached(context.workspaceId, key);
      if (cached !== undefined) {
        output = cached;
        servedBy = "llm";
        cacheHit = true;
      } else {
        const budget = await checkBudgets(context);
        warnings.push(...budget.warnings);
        if (budget.exhausted !== null) {
          fallbackReason = "budget_exhausted";
          warnings.push(budget.exhausted);
        } else {
          if (price === undefined) warnings.push(`no price configured for model ${model}: its cost is recorded as 0`);
          const schema = spec.outputSchema!;
          try {
            const first = await completeWithRetries(
              {
                model,
                system: spec.prompt,
                user: renderInput(input),
                outputName: operation,
                outputSchema: schema,
                maxOutputTokens: spec.maxOutputTokens,
              },
              billed,
            );
            const problem = problemsOf(first, schema);
            if (problem === null) {
              output = first.output;
              servedBy = "llm";
            } else {
              // One repair: the invalid output and what is wrong with it go back to the model.
              const repairSpec = catalog.repair_output;
              const repair = await completeWithRetries(
                {
                  model: config.models.repair_output,
                  system: repairSpec.prompt,
                  user: renderRepair(operation, input, first.raw, problem),
                  outputName: operation,
                  outputSchema: schema,
                  maxOutputTokens: spec.maxOutputTokens,
                },
                billed,
              );
              const still = problemsOf(repair, schema);
              if (still === null) {
                output = repair.output;
                servedBy = "llm";
                repaired = true;
                warnings.push(`output repaired once: ${summarize(problem)}`);
              } else {
                fallbackReason = "invalid_output";
                warnings.push(`output invalid after one repair: ${summarize(still)}`);
              }
            }
          } catch (error) {
            if (!(error instanceof ProviderError)) throw error;
            fallbackReason = reasonOf(error);
            warnings.push(error.message);
          }
        }
      }
    }

    if (servedBy === "rules") output = rulesAnswer(operation, input);

    const servedModel = servedBy === "llm" ? model : "rules";
    const source = servedBy === "llm" ? `llm:${model}` : "rules";
    const costUsd = cacheHit || price === undefined ? 0 : costOf(billed, price);
    const latencyMs = Math.round(performance.now() - started);
    const result: LlmResult<OperationTypes[Op]["output"]> = {
      output: output as OperationTypes[Op]["output"],
      source,
      provider: servedBy === "llm" ? config.provider : "rules",
      model: servedModel,
      usage: { inputTokens: billed.inputTokens, outputTokens: billed.outputTokens },
      costUsd,
      cacheHit,
      fallbackReason,
      warnings,
      latencyMs,
    };

    await store.recordRun({
      cache:
        servedBy === "llm" && !cacheHit && key !== null
          ? {
              workspaceId: context.workspaceId,
              key,
              operation,
              promptVersion: spec.promptVersion,
              model,
              value: output,
            }
          : null,
      call: {
        workspaceId: context.workspaceId,
        outcomeId,
        actorId: context.actor.id,
        operation,
        promptVersion: spec.promptVersion,
        provider: provider === null ? "rules" : config.provider,
        model: provider === null ? "rules" : model,
        source,
        inputTokens: billed.inputTokens,
        outputTokens: billed.outputTokens,
        costUsd,
        latencyMs,
        cacheHit,
        repaired,
        fallbackReason,
        at: now(),
      },
      audit: llmCallAudit(context, outcomeId, {
        operation,
        promptVersion: spec.promptVersion,
        provider: result.provider,
        model: result.model,
        source,
        requestedModel: provider === null ? null : model,
        inputTokens: billed.inputTokens,
        outputTokens: billed.outputTokens,
        costUsd,
        latencyMs,
        cacheHit,
        repaired,
        fallbackReason,
        warnings,
      }),
    });
    return result;
  }

  async function checkBudgets(context: RunContext): Promise<{ exhausted: string | null; warnings: string[] }> {
    const at = now();
    const warnings: string[] = [];
    const checks: { cap: number | null; label: string; query: SpendQuery }[] = [
      {
        cap: config.monthlyWorkspaceBudgetUsd,
        label: "monthly workspace LLM budget",
        query: { workspaceId: context.workspaceId, since: startOfMonthUtc(at), until: startOfNextMonthUtc(at) },
      },
      {
        cap: config.dailyUserBudgetUsd,
        label: `daily LLM budget of ${context.actor.name || context.actor.id}`,
        query: {
          workspaceId: context.workspaceId,
          actorId: context.actor.id,
          since: startOfDayUtc(at),
          until: new Date(startOfDayUtc(at).getTime() + 86_400_000),
        },
      },
    ];
    for (const check of checks) {
      if (check.cap === null) continue;
      const spent = await store.spentUsd(check.query);
      const text = `$${spent.toFixed(4)} of $${check.cap.toFixed(2)}`;
      if (spent >= check.cap) {
        return { exhausted: `${check.label} exhausted (${text}): the rules engine answers`, warnings };
      }
      if (spent >= check.cap * config.warnAtFraction) {
        warnings.push(`${check.label} at ${Math.floor((spent / check.cap) * 100)} % (${text})`);
      }
    }
    return { exhausted: null, warnings };
  }

  async function embed(texts: readonly string[], context: RunContext): Promise<EmbedResult> {
    const started = performance.now();
    if (embedding === null || embedder === null) {
      return {
        vectors: null,
        model: null,
        dimensions: null,
        failure: "not_configured",
        error: "no embedding model is configured (OUTCOME_RUNTIME_EMBEDDING_MODEL)",
        inputTokens: 0,
        costUsd: 0,
        cacheHits: 0,
        latencyMs: 0,
      };
    }
    if (texts.length === 0 || texts.length > EMBED_OPERATION.maxBatch) {
      throw new RangeError(`embed: texts must hold 1 to ${EMBED_OPERATION.maxBatch} texts, got ${texts.length}`);
    }
    const { model, dimensions } = embedding;
    // The cache's model names the length too: the same model shortened to other dimensions is another output.
    const cacheModel = `${model}@${dimensions}`;
    const keys = texts.map((t) => cacheKey(EMBED_OPERATION.name, EMBED_OPERATION.promptVersion, cacheModel, t));
    const vectors: (number[] | null)[] = [];
    for (const key of keys) {
      const hit = await store.getCached(context.workspaceId, key);
      const ok = Array.isArray(hit) && hit.length === dimensions && hit.every((x) => Number.isFinite(x));
      vectors.push(ok ? (hit as number[]) : null);
    }
    const missing = vectors.flatMap((v, i) => (v === null ? [i] : []));
    const warnings: string[] = [];
    const price = config.prices[model];
    let failure: FallbackReason | null = null;
    let error: string | null = null;
    let inputTokens = 0;
    if (missing.length > 0) {
      const budget = await checkBudgets(context);
      warnings.push(...budget.warnings);
      if (budget.exhausted !== null) {
        failure = "budget_exhausted";
        error = budget.exhausted.replace(/: the rules engine answers$/, "");
      } else {
        if (price === undefined) warnings.push(`no price configured for model ${model}: its cost is recorded as 0`);
        try {
          const response = await withRetries(async () => {
            const r = await embedder.embed({
              model,
              input: missing.map((i) => texts[i] as string),
              dimensions,
              sendDimensions: embedding.sendDimensions,
              timeoutMs: config.timeoutMs,
            });
            inputTokens += r.inputTokens;
            return r;
          });
          if (response.vectors === null) {
            failure = "invalid_output";
            error = response.malformed;
          } else {
            for (const [j, i] of missing.entries()) vectors[i] = response.vectors[j] as number[];
          }
        } catch (caught) {
          if (!(caught instanceof ProviderError)) throw caught;
          failure = reasonOf(caught);
          error = caught.message;
        }
      }
      if (error !== null) warnings.push(error);
    }
    const costUsd = price === undefined ? 0 : costOf({ inputTokens, outputTokens: 0 }, price);
    const latencyMs = Math.round(performance.now() - started);
    const cacheHits = texts.length - missing.length;
    const served = failure === null;
    const source = served ? `llm:${model}` : "none";
    const outcomeId = context.outcomeId ?? null;
    const fresh = served
      ? missing.map((i) => ({
          workspaceId: context.workspaceId,
          key: keys[i] as string,
          operation: EMBED_OPERATION.name,
          promptVersion: EMBED_OPERATION.promptVersion,
          model: cacheModel,
          value: vectors[i],
        }))
      : [];
    await store.recordRun({
      cache: null,
      moreCache: fresh,
      call: {
        workspaceId: context.workspaceId,
        outcomeId,
        actorId: context.actor.id,
        operation: EMBED_OPERATION.name,
        promptVersion: EMBED_OPERATION.promptVersion,
        provider: "openai-compatible",
        model,
        source,
        inputTokens,
        outputTokens: 0,
        costUsd,
        latencyMs,
        cacheHit: missing.length === 0,
        repaired: false,
        fallbackReason: failure,
        at: now(),
      },
      audit: llmCallAudit(context, outcomeId, {
        operation: EMBED_OPERATION.name,
        promptVersion: EMBED_OPERATION.promptVersion,
        provider: "openai-compatible",
        model,
        dimensions,
        source,
        texts: texts.length,
        cacheHits,
        inputTokens,
        outputTokens: 0,
        costUsd,
        latencyMs,
        cacheHit: missing.length === 0,
        fallbackReason: failure,
        warnings,
      }),
    });
    return {
      vectors: served ? (vectors as number[][]) : null,
      model,
      dimensions,
      failure,
      error,
      inputTokens,
      costUsd,
      cacheHits,
      latencyMs,
    };
  }

  const embeddingSettings = () =>
    embedding === null
      ? null
      : { model: embedding.model, dimensions: embedding.dimensions, minSimilarity: embedding.minSimilarity };

  return { run, embed, embeddingSettings };
}

/** What is wrong with a provider response, or `null` when it is a valid output. */
function problemsOf(response: ProviderResponse, schema: Record<string, unknown>): ValidationIssue[] | null {
  if (response.malformed !== null) return [{ path: "", message: response.malformed }];
  const issues = validateOutput(schema, response.output);
  return issues.length === 0 ? null : issues;
}

function summarize(issues: readonly ValidationIssue[]): string {
  const shown = issues.slice(0, 3).map((i) => `${i.path || "/"} ${i.message}`);
  return shown.join("; ") + (issues.length > 3 ? `; and ${issues.length - 3} more` : "");
}

function renderRepair(
  operation: OperationName,
  input: unknown,
  raw: string,
  issues: readonly ValidationIssue[],
): string {
  return [
    `Operation: ${operation}`,
    renderInput(input),
    "Your previous output:",
    "```",
    raw.slice(0, 20_000),
    "```",
    "Validation errors (JSON Pointer: message):",
    ...issues.slice(0, 50).map((i) => `- ${i.path || "/"}: ${i.message}`),
  ].join("\n");
}

/** The `llm.call` audit event of one gateway call, on the outcome it served (else the workspace). */
function llmCallAudit(
  context: RunContext,
  outcomeId: string | null,
  after: Record<string, unknown>,
): LlmRunRecord["audit"] {
  return {
    workspaceId: context.workspaceId,
    actor: { id: context.actor.id, name: context.actor.name, role: context.actor.role },
    channel: context.channel ?? "system",
    action: "llm.call",
    subjectType: outcomeId === null ? "workspace" : "outcome",
    subjectId: outcomeId ?? context.workspaceId,
    before: undefined,
    after,
    requestId: context.requestId ?? null,
  };
}
