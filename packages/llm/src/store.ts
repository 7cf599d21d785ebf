/**
 * What the gateway keeps between runs, behind a small interface: its cache,
 * its metering ledger and the audit trail. The gateway is infrastructure and
 * does not know the database; the runtime implements this store on Postgres
 * (`packages/runtime/src/llm-store.ts`) and hands it to `createGateway`.
 */
import type { AuditEvent } from "@outcome-runtime/core";

/** An output to cache: the LLM served it fresh and valid. */
export interface LlmCacheEntry {
  readonly workspaceId: string;
  /** `cacheKey(operation, promptVersion, model, input)`. */
  readonly key: string;
  readonly operation: string;
  readonly promptVersion: string;
  readonly model: string;
  /** The validated output, JSON-serialisable. */
  readonly value: unknown;
}

/** One metered run (a row of the ledger), whatever served it. */
export interface LlmCallRecord {
  readonly workspaceId: string;
  readonly outcomeId: string | null;
  /** The user or key the run is billed to (the daily user budget is per actor). */
  readonly actorId: string;
  readonly operation: string;
  readonly promptVersion: string;
  /** The provider asked (`anthropic`, `openai-compatible`), or `rules` when none was. */
  readonly provider: string;
  /** The model asked, or `rules`. */
  readonly model: string;
  /** What served the output: `llm:<model>` or `rules`. */
  readonly source: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** US dollars; 0 on a cache hit or for a model without a price. */
  readonly costUsd: number;
  readonly latencyMs: number;
  readonly cacheHit: boolean;
  readonly repaired: boolean;
  readonly fallbackReason: string | null;
  readonly at: Date;
}

/** Everything one run leaves behind, written together or not at all. */
export interface LlmRunRecord {
  /** Set when the LLM served a fresh valid output; null on a cache hit or when the rules answered. */
  readonly cache: LlmCacheEntry | null;
  /** Further entries of the same run: the `embed` operation caches one vector per text it embedded. */
  readonly moreCache?: readonly LlmCacheEntry[];
  readonly call: LlmCallRecord;
  /** The `llm.call` audit event (model, tokens, cost, cache hit, fallback, warnings). */
  readonly audit: Omit<AuditEvent, "id" | "at">;
}

/** A spending period of a workspace, or of one actor in it: `[since, until)`. */
export interface SpendQuery {
  readonly workspaceId: string;
  readonly since: Date;
  readonly until: Date;
  /** Only this actor's runs (the daily user budget); all of the workspace's when absent. */
  readonly actorId?: string;
}

/**
 * The gateway's storage. Errors of the store propagate out of `Gateway.run`
 * (they are not provider trouble, so no fallback hides them).
 */
export interface LlmStore {
  /** The output cached under `key` for the workspace, or `undefined`. */
  getCached(workspaceId: string, key: string): Promise<unknown | undefined>;
  /** US dollars billed in the period (the sum of `costUsd` of the recorded calls). */
  spentUsd(query: SpendQuery): Promise<number>;
  /**
   * Record one run atomically: the cache entry (first writer wins on a key),
   * the ledger row and the audit event.
   */
  recordRun(run: LlmRunRecord): Promise<void>;
}
