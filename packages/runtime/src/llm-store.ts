/**
 * The LLM gateway's store on Postgres: the cache (`llm_cache`), the metering
 * ledger (`llm_calls`) and the audit trail, written through the repositories
 * of packages/db. The gateway (packages/llm) sees only the `LlmStore`
 * interface; this is the one place where the two meet.
 */
import { audit, type Db, llm } from "@outcome-runtime/db";
import { type Gateway, type GatewayDeps, createGateway as gatewayOver, type LlmStore } from "@outcome-runtime/llm";
import { inTransaction } from "./context";

/**
 * The gateway's store on the runtime's database. `recordRun` writes the cache
 * entry, the ledger row and the audit event in one transaction (joining the
 * caller's when `db` is one).
 */
function llmStore(db: Db): LlmStore {
  return {
    getCached: (workspaceId, key) => llm.getCached(db, workspaceId, key),
    spentUsd: (query) => llm.spentUsd(db, query),
    recordRun: (run) =>
      inTransaction(db, async (trx) => {
        if (run.cache !== null) await llm.putCached(trx, run.cache);
        for (const entry of run.moreCache ?? []) await llm.putCached(trx, entry);
        await llm.insertCall(trx, run.call);
        await audit.insertAuditEvent(trx, run.audit);
      }),
  };
}

/** What {@link createGateway} needs: the database in place of the gateway's store. */
export interface DbGatewayDeps extends Omit<GatewayDeps, "store"> {
  readonly db: Db;
}

/**
 * The LLM gateway over the runtime's database ({@link llmStore}).
 *
 * @example
 *   const gateway = createGateway({ db, config: llmConfigFromEnv(process.env) });
 *   const { output, source } = await gateway.run("generate_hypotheses", input, { workspaceId, outcomeId, actor });
 */
export function createGateway(deps: DbGatewayDeps): Gateway {
  const { db, ...rest } = deps;
  return gatewayOver({ ...rest, store: llmStore(db) });
}
