/**
 * What every use case receives: its dependencies and who is calling.
 */
import type { DecisionChannel, Principal } from "@outcome-runtime/core";
import type { Db, DbOrTrx, Trx } from "@outcome-runtime/db";
import type { Gateway } from "@outcome-runtime/llm";
import type { FlagAccess } from "./flags/flag-access";
import type { PrincipalCache } from "./principal-cache";
import type { SourceAccess } from "./signals/source-access";

export interface RuntimeDeps {
  /** The pool, or a transaction when the use case must join one (idempotent requests). */
  readonly db: DbOrTrx;
  /** The clock; tests pass a fixed one. */
  readonly now?: () => Date;
  /**
   * What signal sources may use, as the operator configured it
   * (`sourceAccessFromEnv`): source variables, the secrets keyring, allowed
   * API hosts. Without it, secrets cannot be stored and outcomes' sources
   * are checked only against the database (their secrets exist).
   */
  readonly sources?: SourceAccess;
  /**
   * The operator's flag-provider settings (`FLAG_API_URLS`, the timeout). With them (and `sources`, which
   * resolves the token), a build report is checked against the provider: its flag must exist.
   */
  readonly flags?: FlagAccess;
  /**
   * Principals of recently used keys and sessions (the API's, fed by the
   * database's change notifications). Without it, every authentication reads
   * the database.
   */
  readonly principalCache?: PrincipalCache;
  /**
   * The LLM gateway, for the searches of learnings: its `embed` operation embeds the query, making the search
   * hybrid (where pgvector is installed). Without it, learnings are searched by full text. Operations that
   * need the gateway itself take it as a required dependency of their own.
   */
  readonly gateway?: Gateway | undefined;
}

/** The authenticated caller of a use case and the channel the call came through. */
export interface Caller {
  readonly principal: Principal;
  readonly channel: DecisionChannel;
  /** Request id for the audit trail (HTTP request id, MCP call id), if any. */
  readonly requestId: string | null;
}

export function nowOf(deps: RuntimeDeps): Date {
  return deps.now ? deps.now() : new Date();
}

/** Run `fn` in a transaction, or inside the caller's one when `db` already is one. */
export async function inTransaction<T>(db: DbOrTrx, fn: (trx: Trx) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db as Trx);
  return (db as Db).transaction().execute(fn);
}

/** The actor fields of an audit event for a caller. */
export function auditActor(caller: Caller): { id: string; name: string; role: Caller["principal"]["role"] } {
  return { id: caller.principal.id, name: caller.principal.name, role: caller.principal.role };
}

/** The runtime's own worker as a caller: audit events of its decisions carry actor `worker` (role `system`). */
export function workerCaller(workspaceId: string): Caller {
  return {
    principal: { id: "worker", name: "worker", role: "system", workspaceId },
    channel: "system",
    requestId: null,
  };
}
