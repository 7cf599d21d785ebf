/**
 * Searching learnings by meaning as well as by words, and keeping their
 * embeddings up to date.
 *
 * A search is `hybrid` (the full-text ranking fused with the cosine similarity
 * of embeddings, see `learnings.searchLearnings`) when the database has
 * pgvector (recorded by the migration), an embedding model is configured and
 * the query's embedding came back; otherwise it is `full_text`, exactly as
 * before, and the answer says why. Learnings are embedded after they are
 * written, by the worker (`embedPendingLearnings`, queued by the outbox sweep),
 * never in the decision's transaction: a slow or failing embeddings server
 * delays only the semantic half of the search.
 */
import type { Actor, DecisionChannel } from "@outcome-runtime/core";
import { learnings } from "@outcome-runtime/db";
import type { EmbedFailure, Gateway } from "@outcome-runtime/llm";
import { nowOf, type RuntimeDeps } from "./context";

/** What ranked a search, for every answer that lists learnings. */
export interface LearningSearchInfo {
  readonly search: "hybrid" | "full_text";
  /**
   * Why full text: `pgvector_unavailable` (the database has no pgvector), `no_embedding_model`
   * (OUTCOME_RUNTIME_EMBEDDING_MODEL is not set), `embedding_failed` (the query's embedding failed: timeout,
   * HTTP error, budget, a malformed response); null when hybrid.
   */
  readonly fallbackReason: "pgvector_unavailable" | "no_embedding_model" | "embedding_failed" | null;
  /** One sentence for people: what ranked the answer, or why full text and how to get hybrid. */
  readonly note: string;
}

/** A search's embedding and what to say about it. */
export interface PreparedSearch {
  /** The query's embedding for a hybrid search, or undefined for full text. */
  readonly semantic: learnings.SemanticQuery | undefined;
  readonly info: LearningSearchInfo;
}

/** The database and, optionally, the gateway whose `embed` operation embeds queries and learnings. */
type SearchDeps = RuntimeDeps;

function fullText(reason: NonNullable<LearningSearchInfo["fallbackReason"]>, note: string): PreparedSearch {
  return { semantic: undefined, info: { search: "full_text", fallbackReason: reason, note: `full text: ${note}` } };
}

function failureNote(failure: EmbedFailure | null, error: string | null): string {
  return `the query's embedding failed (${failure ?? "provider_error"}: ${error ?? "no detail"})`;
}

/**
 * Decide how to search a workspace's learnings for `query`, and embed the
 * query when the search can be hybrid (one `embed` call, cached, metered and
 * audited for `actor`). Never throws for the embeddings server: its failure
 * makes the search full text, with the reason.
 */
export async function prepareLearningSearch(
  deps: SearchDeps,
  request: {
    workspaceId: string;
    query: string;
    actor: Actor;
    channel: DecisionChannel;
    requestId?: string | null;
    outcomeId?: string | null;
  },
): Promise<PreparedSearch> {
  const support = await learnings.semanticSearchSupport(deps.db);
  if (!support.available) {
    return fullText(
      "pgvector_unavailable",
      `${support.reason ?? "pgvector is not installed"}; install pgvector and run the migrations on a new database, or see docs/llm.md`,
    );
  }
  const result =
    deps.gateway === undefined
      ? null
      : await deps.gateway.embed([request.query], {
          workspaceId: request.workspaceId,
          outcomeId: request.outcomeId ?? null,
          actor: request.actor,
          channel: request.channel,
          requestId: request.requestId ?? null,
        });
  if (result === null || result.failure === "not_configured") {
    return fullText(
      "no_embedding_model",
      "no embedding model is configured (set OUTCOME_RUNTIME_EMBEDDING_MODEL; docs/llm.md)",
    );
  }
  const vector = result.vectors?.[0];
  if (vector === undefined || result.model === null || result.dimensions === null) {
    return fullText("embedding_failed", failureNote(result.failure, result.error));
  }
  return {
    semantic: {
      vector,
      model: result.model,
      dimensions: result.dimensions,
      minSimilarity: embeddingMinSimilarity(deps.gateway),
    },
    info: {
      search: "hybrid",
      fallbackReason: null,
      note: `hybrid: full text and vector similarity (${result.model}), fused by reciprocal rank`,
    },
  };
}

function embeddingMinSimilarity(gateway: Gateway | undefined): number {
  return gateway?.embeddingSettings()?.minSimilarity ?? 0.3;
}

/** A failed embedding attempt is tried again after this long (the worker's sweep finds it due). */
export const EMBEDDING_RETRY_AFTER_MS = 15 * 60_000;

/** Texts per `embed` call. */
const EMBED_BATCH = 32;

/** What one embedding pass did. */
export interface EmbeddingPass {
  /** Learnings embedded now. */
  readonly embedded: number;
  /** Learnings whose attempt failed (recorded on their row, tried again after {@link EMBEDDING_RETRY_AFTER_MS}). */
  readonly failed: number;
  /** Why nothing was tried: `pgvector_unavailable`, `no_embedding_model`; null otherwise. */
  readonly skipped: "pgvector_unavailable" | "no_embedding_model" | null;
  /** The first error of the pass, if any. */
  readonly error: string | null;
}

/**
 * The oldest learning waiting for an embedding (new, changed, or a failure
 * due again), which names the pass that will embed it; null when none waits,
 * or without pgvector or an embedding model.
 */
export async function nextEmbeddingPass(
  deps: SearchDeps,
): Promise<{ readonly learningId: string; readonly contentHash: string } | null> {
  const settings = deps.gateway?.embeddingSettings() ?? null;
  if (settings === null || !(await learnings.semanticSearchSupport(deps.db)).available) return null;
  const [first] = await learnings.listPendingEmbeddings(deps.db, {
    model: settings.model,
    dimensions: settings.dimensions,
    retryFailedBefore: new Date(nowOf(deps).getTime() - EMBEDDING_RETRY_AFTER_MS),
    limit: 1,
  });
  return first === undefined ? null : { learningId: first.learningId, contentHash: first.contentHash };
}

/**
 * Embed every learning whose current text has no embedding by the configured
 * model (new, re-summarised, or embedded by another model), and those whose
 * last attempt failed more than {@link EMBEDDING_RETRY_AFTER_MS} ago: the
 * worker's job for new learnings and the backfill of existing ones alike.
 * Idempotent: the sha256 of each embedded text is stored, so a second pass
 * embeds nothing. Per workspace, in batches, through the gateway's `embed`
 * (budgets, cache, metering per workspace). A failure is recorded on each
 * learning of the batch (`learning_embeddings.error`), never thrown: the
 * learnings stay searchable by full text.
 *
 * @param options.workspaceId only this workspace's learnings; `limit` at most this many (default 500).
 */
export async function embedPendingLearnings(
  deps: SearchDeps,
  options: { workspaceId?: string; limit?: number } = {},
): Promise<EmbeddingPass> {
  const settings = deps.gateway?.embeddingSettings() ?? null;
  if (!(await learnings.semanticSearchSupport(deps.db)).available) {
    return { embedded: 0, failed: 0, skipped: "pgvector_unavailable", error: null };
  }
  if (deps.gateway === undefined || settings === null) {
    return { embedded: 0, failed: 0, skipped: "no_embedding_model", error: null };
  }
  const gateway = deps.gateway;
  const pending = await learnings.listPendingEmbeddings(deps.db, {
    model: settings.model,
    dimensions: settings.dimensions,
    retryFailedBefore: new Date(nowOf(deps).getTime() - EMBEDDING_RETRY_AFTER_MS),
    ...(options.workspaceId === undefined ? {} : { workspaceId: options.workspaceId }),
    limit: options.limit ?? 500,
  });
  const byWorkspace = new Map<string, learnings.PendingEmbedding[]>();
  for (const p of pending) byWorkspace.set(p.workspaceId, [...(byWorkspace.get(p.workspaceId) ?? []), p]);
  let embedded = 0;
  let failed = 0;
  let firstError: string | null = null;
  for (const [workspaceId, items] of byWorkspace) {
    for (let i = 0; i < items.length; i += EMBED_BATCH) {
      const batch = items.slice(i, i + EMBED_BATCH);
      const result = await gateway.embed(
        batch.map((p) => p.text),
        { workspaceId, actor: { id: "worker", name: "worker", role: "system" }, channel: "system" },
      );
      const at = nowOf(deps);
      const error =
        result.vectors === null ? `${result.failure ?? "provider_error"}: ${result.error ?? "no detail"}` : null;
      firstError ??= error;
      for (const [j, p] of batch.entries()) {
        const vector = result.vectors?.[j];
        await learnings.saveLearningEmbedding(deps.db, {
          learningId: p.learningId,
          workspaceId,
          model: settings.model,
          dimensions: settings.dimensions,
          contentHash: p.contentHash,
          at,
          ...(vector === undefined ? { error: error ?? "no vector returned" } : { embedding: vector }),
        });
        if (vector === undefined) failed += 1;
        else embedded += 1;
      }
    }
  }
  return { embedded, failed, skipped: null, error: firstError };
}
