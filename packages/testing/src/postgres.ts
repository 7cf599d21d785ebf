/**
 * Real Postgres for tests, with cheap isolation. Vitest's global setup
 * migrates a template database of its own for the run (`prepareTemplate`,
 * named `ort_tpl_<random>`) and hands its name to the test files
 * (`provide`/`inject`); each test file clones its own database from it
 * (`createTestDatabase`) and drops it at the end. Nothing is shared by name,
 * so several runs against one server do not disturb each other.
 *
 * CREATE/DROP DATABASE run over a connection to the administrative database:
 * `TEST_ADMIN_DB`, else `outcome_runtime_test` (created by the scripts), else
 * `postgres` when that does not exist.
 */
import { randomBytes } from "node:crypto";
import { createDb, type Db, migrateToLatest } from "@outcome-runtime/db";
import pg from "pg";
import { inject } from "vitest";
import { readerOf } from "./read-only-role";

/** The key under which the global setup provides the template's name. */
export const TEMPLATE_KEY = "outcomeRuntimeTemplateDb";

declare module "vitest" {
  interface ProvidedContext {
    /** The migrated template database of this run (see `prepareTemplate`). */
    outcomeRuntimeTemplateDb: string;
  }
}

/** Server URL without a database, from `TEST_POSTGRES_URL` (default: local trust auth). */
export function serverUrl(): string {
  return process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432";
}

/** The database the scripts create for the tests; the default administrative connection database. */
const DEFAULT_ADMIN_DB = "outcome_runtime_test";

function urlFor(database: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/** The administrative database, once it has been found to exist. */
let adminDb: string | undefined;

async function connectAdmin(): Promise<pg.Client> {
  const explicit = process.env.TEST_ADMIN_DB;
  const database = adminDb ?? explicit ?? DEFAULT_ADMIN_DB;
  const client = new pg.Client({ connectionString: urlFor(database) });
  try {
    await client.connect();
  } catch (error) {
    // 3D000: the database does not exist (the scripts create it; a bare `pnpm test:int` may not have).
    if (adminDb === undefined && (error as { code?: string }).code === "3D000") {
      if (explicit !== undefined) {
        throw new Error(`TEST_ADMIN_DB: database "${explicit}" does not exist on ${new URL(serverUrl()).host}`);
      }
      adminDb = "postgres";
      return connectAdmin();
    }
    throw error;
  }
  adminDb = database;
  return client;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectAdmin();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`));
}

export interface TemplateDatabase {
  readonly name: string;
  /** Drop the template (at the end of the run). */
  readonly drop: () => Promise<void>;
}

/** Create a uniquely named template database (`ort_tpl_<random>`) and migrate it. */
export async function prepareTemplate(): Promise<TemplateDatabase> {
  const name = uniqueName("ort_tpl");
  await admin((c) => c.query(`CREATE DATABASE ${quote(name)}`));
  const drop = () => dropDatabase(name);
  try {
    const db = createDb({ url: urlFor(name), max: 1 });
    try {
      await migrateToLatest(db);
    } finally {
      await db.destroy();
    }
  } catch (error) {
    await drop().catch(() => {});
    throw error;
  }
  return { name, drop };
}

function templateOfThisRun(): string {
  const name = inject(TEMPLATE_KEY);
  if (!name) {
    throw new Error(
      "no template database was provided: createTestDatabase() needs the global setup of the integration " +
        "project (packages/testing/src/global-setup.ts); run the file with `pnpm test:int`",
    );
  }
  return name;
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  readonly db: Db;
  /** Close the pool and drop the database. */
  readonly drop: () => Promise<void>;
}

/**
 * A fresh, migrated database of its own, cloned from the template of this run
 * (or from `options.template`).
 */
export async function createTestDatabase(options: { max?: number; template?: string } = {}): Promise<TestDatabase> {
  const template = options.template ?? templateOfThisRun();
  const name = uniqueName("ort_test");
  await admin((c) => c.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(template)}`));
  const url = urlFor(name);
  const db = createDb({ url, max: options.max ?? 20 });
  return {
    name,
    url,
    db,
    drop: async () => {
      await db.destroy();
      await dropDatabase(name);
    },
  };
}

/** A database with no migrations, for tests of the migrator itself. */
export async function createEmptyDatabase(): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = uniqueName("ort_empty");
  await admin((c) => c.query(`CREATE DATABASE ${quote(name)}`));
  return { name, url: urlFor(name), drop: () => dropDatabase(name) };
}

/** A database standing for a team's analytics database, read through the read-only role. */
export interface SourceDatabase {
  readonly name: string;
  /** As the server's admin: to create tables and write rows. */
  readonly adminUrl: string;
  /** As the read-only role (`outcome_runtime_reader`): what a connector is given. */
  readonly readerUrl: string;
  /** Drop the database. */
  readonly drop: () => Promise<void>;
}

/**
 * An empty database of its own (not the runtime's: that is never a source),
 * whose tables, created later by the admin, the read-only role may read.
 */
export async function createSourceDatabase(): Promise<SourceDatabase> {
  const name = uniqueName("ort_src");
  await admin((c) => c.query(`CREATE DATABASE ${quote(name)}`));
  const adminUrl = urlFor(name);
  try {
    return { name, adminUrl, readerUrl: await readerOf(adminUrl), drop: () => dropDatabase(name) };
  } catch (error) {
    await dropDatabase(name).catch(() => {});
    throw error;
  }
}
