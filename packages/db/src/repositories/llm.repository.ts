/**
 * The LLM gateway's cache and metering ledger (`llm_cache`, `llm_calls`).
 */
import { sql } from "kysely";
import type { DbOrTrx } from "../database";

/** One metered gateway run, as recorded in `llm_calls`. */
export interface LlmCall {
  readonly id: string;
  readonly workspaceId: string;
  readonly outcomeId: string | null;
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
  /** US dollars. */
  readonly costUsd: number;
  readonly latencyMs: number;
  readonly cacheHit: boolean;
  readonly repaired: boolean;
  readonly fallbackReason: string | null;
  readonly at: Date;
}

export type NewLlmCall = Omit<LlmCall, "id" | "at"> & { readonly at?: Date };

/** A cached output, or `undefined`. */
export async function getCached(db: DbOrTrx, workspaceId: string, key: string): Promise<unknown | undefined> {
  const row = await db
    .selectFrom("llm_cache")
    .select("value")
    .where("workspace_id", "=", workspaceId)
    .where("key", "=", key)
    .executeTakeFirst();
  return row?.value;
}

/** Store an output under its key; the first writer wins (identical keys mean identical requests). */
export async function putCached(
  db: DbOrTrx,
  entry: {
    readonly workspaceId: string;
    readonly key: string;
    readonly operation: string;
    readonly promptVersion: string;
    readonly model: string;
    readonly value: unknown;
  },
): Promise<void> {
  await db
    .insertInto("llm_cache")
    .values({
      workspace_id: entry.workspaceId,
      key: entry.key,
      operation: entry.operation,
      prompt_version: entry.promptVersion,
      model: entry.model,
      value: JSON.stringify(entry.value),
    })
    .onConflict((oc) => oc.columns(["workspace_id", "key"]).doNothing())
    .execute();
}

/** Record one gateway run. */
export async function insertCall(db: DbOrTrx, call: NewLlmCall): Promise<string> {
  const row = await db
    .insertInto("llm_calls")
    .values({
      workspace_id: call.workspaceId,
      outcome_id: call.outcomeId,
      actor_id: call.actorId,
      operation: call.operation,
      prompt_version: call.promptVersion,
      provider: call.provider,
      model: call.model,
      source: call.source,
      input_tokens: call.inputTokens,
      output_tokens: call.outputTokens,
      cost_usd: call.costUsd,
      latency_ms: Math.round(call.latencyMs),
      cache_hit: call.cacheHit,
      repaired: call.repaired,
      fallback_reason: call.fallbackReason,
      ...(call.at === undefined ? {} : { at: call.at }),
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Dollars spent by a workspace (or, with `actorId`, by one user in it) in
 * `[since, until)`.
 */
export async function spentUsd(
  db: DbOrTrx,
  query: { readonly workspaceId: string; readonly since: Date; readonly until: Date; readonly actorId?: string },
): Promise<number> {
  let q = db
    .selectFrom("llm_calls")
    .select(sql<number>`coalesce(sum(cost_usd), 0)::float8`.as("spent"))
    .where("workspace_id", "=", query.workspaceId)
    .where("at", ">=", query.since)
    .where("at", "<", query.until);
  if (query.actorId !== undefined) q = q.where("actor_id", "=", query.actorId);
  const row = await q.executeTakeFirstOrThrow();
  return Number(row.spent);
}

/** Dollars spent in `[since, until)` by every workspace together. */
export async function spentUsdAllWorkspaces(
  db: DbOrTrx,
  query: { readonly since: Date; readonly until: Date },
): Promise<number> {
  const row = await db
    .selectFrom("llm_calls")
    .select(sql<number>`coalesce(sum(cost_usd), 0)::float8`.as("spent"))
    .where("at", ">=", query.since)
    .where("at", "<", query.until)
    .executeTakeFirstOrThrow();
  return Number(row.spent);
}

/** A workspace's gateway runs, newest first. */
export async function listCalls(
  db: DbOrTrx,
  workspaceId: string,
  query: { readonly outcomeId?: string; readonly operation?: string; readonly limit?: number } = {},
): Promise<LlmCall[]> {
  let q = db.selectFrom("llm_calls").selectAll().where("workspace_id", "=", workspaceId);
  if (query.outcomeId !== undefined) q = q.where("outcome_id", "=", query.outcomeId);
  if (query.operation !== undefined) q = q.where("operation", "=", query.operation);
  const rows = await q
    .orderBy("at", "desc")
    .orderBy("id", "desc")
    .limit(Math.min(query.limit ?? 100, 1000))
    .execute();
  return rows.map((r) => ({
    id: r.id,
    workspaceId: r.workspace_id,
    outcomeId: r.outcome_id,
    actorId: r.actor_id,
    operation: r.operation,
    promptVersion: r.prompt_version,
    provider: r.provider,
    model: r.model,
    source: r.source,
    inputTokens: r.input_tokens,
    outputTokens: r.output_tokens,
    costUsd: Number(r.cost_usd),
    latencyMs: r.latency_ms,
    cacheHit: r.cache_hit,
    repaired: r.repaired,
    fallbackReason: r.fallback_reason,
    at: r.at,
  }));
}

/** Gateway runs of one operation in a period, summed. */
export interface OperationUsage {
  readonly operation: string;
  readonly calls: number;
  /** US dollars. */
  readonly spentUsd: number;
  readonly cacheHits: number;
  /** Runs the rules engine answered in place of the LLM (`fallback_reason` set). */
  readonly fallbacks: number;
}

/** A workspace's gateway runs in `[since, until)` by operation, the costliest first. */
export async function usageByOperation(
  db: DbOrTrx,
  query: { readonly workspaceId: string; readonly since: Date; readonly until: Date },
): Promise<OperationUsage[]> {
  const rows = await db
    .selectFrom("llm_calls")
    .select([
      "operation",
      sql<number>`count(*)::int`.as("calls"),
      sql<number>`coalesce(sum(cost_usd), 0)::float8`.as("spent"),
      sql<number>`count(*) FILTER (WHERE cache_hit)::int`.as("cache_hits"),
      sql<number>`count(*) FILTER (WHERE fallback_reason IS NOT NULL)::int`.as("fallbacks"),
    ])
    .where("workspace_id", "=", query.workspaceId)
    .where("at", ">=", query.since)
    .where("at", "<", query.until)
    .groupBy("operation")
    .orderBy("spent", "desc")
    .orderBy("operation", "asc")
    .execute();
  return rows.map((r) => ({
    operation: r.operation,
    calls: Number(r.calls),
    spentUsd: Number(r.spent),
    cacheHits: Number(r.cache_hits),
    fallbacks: Number(r.fallbacks),
  }));
}
