/**
 * The eval's own runtime database, `outcome_runtime_eval_<pid>`: created and
 * migrated at the start (the gateway meters and audits every call into it),
 * dropped at the end.
 */
import { createDb, type Db, migrateToLatest } from "@outcome-runtime/db";
// biome-ignore lint/style/noRestrictedImports: the eval administers its own database (create and drop), outside the runtime's storage layer
import pg from "pg";

/** Admin URL (`EVAL_POSTGRES_URL`, default local trust auth on the `postgres` database). */
function adminUrl(): string {
  return process.env.EVAL_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

function urlFor(database: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export interface EvalDatabase {
  readonly name: string;
  readonly db: Db;
  /** Close the pool and drop the database; safe to call twice. */
  readonly drop: () => Promise<void>;
}

/** Create and migrate a fresh database for this process. */
export async function createEvalDatabase(pid: number = process.pid): Promise<EvalDatabase> {
  const name = `outcome_runtime_eval_${pid}`;
  await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin(`CREATE DATABASE "${name}"`);
  const db = createDb({ url: urlFor(name), max: 2, applicationName: "outcome-runtime-eval" });
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await db.destroy();
    await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  };
  try {
    await migrateToLatest(db);
  } catch (error) {
    await drop();
    throw error;
  }
  return { name, db, drop };
}
