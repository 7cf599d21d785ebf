/**
 * Connection to Postgres through Kysely and `pg`.
 */
import { Kysely, PostgresDialect, type Transaction } from "kysely";
import pg from "pg";
import type { Database } from "./schema";

// int8 (counts, bigserial ids) → number: our counts stay far below 2^53.
// numeric → number: we store no money; doubles are what the statistics use.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number.parseFloat(v));

/** The database handle: the pool, or an open transaction. Repositories take either. */
export type Db = Kysely<Database>;
export type Trx = Transaction<Database>;
export type DbOrTrx = Db | Trx;

export interface DbOptions {
  /** Postgres URL, e.g. `postgres://postgres@localhost:5432/outcome_runtime`. */
  readonly url: string;
  /** Pool size (default 10). */
  readonly max?: number;
  /** Per-statement timeout in ms (default 15 000), so a stuck query cannot hold a request forever. */
  readonly statementTimeoutMs?: number;
  /** Application name shown in `pg_stat_activity`. */
  readonly applicationName?: string;
}

/**
 * Open a pooled Kysely handle. Nothing connects until the first query.
 * Close it with `db.destroy()`.
 */
export function createDb(options: DbOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    statement_timeout: options.statementTimeoutMs ?? 15_000,
    connectionTimeoutMillis: 5_000,
    application_name: options.applicationName ?? "outcome-runtime",
  });
  // An idle client losing its connection (Postgres restarting) must not crash
  // the process; the pool drops it and the next query reconnects.
  pool.on("error", () => {});
  // Nor may a client that loses it while checked out between two queries (a
  // backend terminated mid-transaction): pg emits `error` on the client, which
  // with no listener ends the process. The query in flight fails on its own
  // (the API answers 503), and the pool discards the broken client on release.
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
