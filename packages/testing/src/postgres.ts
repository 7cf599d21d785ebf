/**
 * Real Postgres for tests, with cheap isolation: a template database is
 * migrated once per run (`prepareTemplate`, from vitest's global setup), and
 * each test file gets its own database cloned from it (`createTestDatabase`).
 */
import { randomBytes } from "node:crypto";
import { createDb, type Db, migrateToLatest } from "@outcome-runtime/db";
import pg from "pg";

/** Server URL without a database, from `TEST_POSTGRES_URL` (default: local trust auth). */
export function serverUrl(): string {
  return process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432";
}

/** The migrated template every test database is cloned from. */
export const TEMPLATE_DB = process.env.TEST_TEMPLATE_DB ?? "outcome_runtime_test";

function urlFor(database: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlFor("postgres") });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drop and re-create the template database, then migrate it. */
export async function prepareTemplate(): Promise<void> {
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  });
  const db = createDb({ url: urlFor(TEMPLATE_DB), max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  readonly db: Db;
  /** Close the pool and drop the database. */
  readonly drop: () => Promise<void>;
}

/** A fresh, migrated database of its own, cloned from the template. */
export async function createTestDatabase(options: { max?: number } = {}): Promise<TestDatabase> {
  const name = `ort_test_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`));
  const url = urlFor(name);
  const db = createDb({ url, max: options.max ?? 20 });
  return {
    name,
    url,
    db,
    drop: async () => {
      await db.destroy();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** A database with no migrations, for tests of the migrator itself. */
export async function createEmptyDatabase(): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `ort_empty_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    name,
    url: urlFor(name),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
