/**
 * Database faults for tests, raised by Postgres itself (not by a stand-in):
 * a trigger that refuses the writes of one table with a chosen SQLSTATE, and
 * the URL of a Postgres nobody listens on. The errors reach the code under
 * test through the real driver, as they would in production.
 */
import pg from "pg";
import type { TestDatabase } from "./postgres";
import { freePort } from "./waiting";

/** SQLSTATEs a concurrent writer makes Postgres answer (PostgreSQL docs, Appendix A). */
export type ConflictSqlstate = "23505" | "40001" | "40P01";

const CONDITION_NAMES: Record<ConflictSqlstate, string> = {
  "23505": "unique_violation",
  "40001": "serialization_failure",
  "40P01": "deadlock_detected",
};

async function run(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/**
 * Make every INSERT and UPDATE of `table` in `database` fail with `sqlstate`,
 * as a losing concurrent transaction would, until the returned function is
 * called (it drops the trigger).
 *
 * @param table a table of the runtime's schema, e.g. `experiments` (trusted test input, quoted)
 * @returns a function that restores normal writes
 */
export async function refuseWrites(
  database: Pick<TestDatabase, "url">,
  table: string,
  sqlstate: ConflictSqlstate,
): Promise<() => Promise<void>> {
  const quoted = `"${table.replaceAll('"', '""')}"`;
  const fn = `"ort_refuse_${table.replaceAll(/[^a-z0-9_]/g, "_")}"`;
  await run(
    database.url,
    `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'test fault: % refused', TG_TABLE_NAME USING ERRCODE = '${CONDITION_NAMES[sqlstate]}'; END $$;
     CREATE TRIGGER ort_refuse_writes BEFORE INSERT OR UPDATE ON ${quoted} FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
  );
  return () => run(database.url, `DROP TRIGGER ort_refuse_writes ON ${quoted}; DROP FUNCTION ${fn}();`);
}

/**
 * A Postgres URL on a free local port where nothing listens: connecting is
 * refused (ECONNREFUSED), as when the database is down.
 */
export async function unreachableDatabaseUrl(): Promise<string> {
  return `postgres://postgres@127.0.0.1:${await freePort()}/outcome_runtime`;
}

/**
 * Terminate every connection to `database` whose `application_name` is
 * `applicationName` (`pg_terminate_backend`), as a restarted server or a
 * dropped network would end them.
 *
 * @returns how many connections were terminated.
 */
export async function terminateConnections(
  database: Pick<TestDatabase, "url">,
  applicationName: string,
): Promise<number> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const result = await client.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = $1`,
      [applicationName],
    );
    return result.rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}
