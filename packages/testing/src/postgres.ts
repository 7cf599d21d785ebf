/**
 * Real Postgres for tests, with cheap isolation. Vitest's global setup
 * migrates a template database of its own for the run (`prepareTemplate`,
 * named `ort_tpl_<random>`) and hands its name to the test files
 * (`provide`/`inject`); each test file clones its own database from it
 * (`createTestDatabase`) and drops it at the end. Nothing is shared by name,
 * so several runs against one server do not disturb each other.
 *
 * Two storage paths (docs/self-hosting.md, Storage): where the server has
 * TimescaleDB preloaded, the global setup migrates a second template whose
 * signal points are a hypertable; `createTestDatabase({ storage })` picks one,
 * `signalStorages()` lists what this server runs. Without `storage`, a test
 * file gets `TEST_SIGNAL_STORAGE` (`timescaledb` or `plain`), else TimescaleDB
 * where the server has it, else plain tables. TimescaleDB's background
 * scheduler connects to every database with the extension; a template must
 * have no connections to be cloned, so the TimescaleDB template is marked a
 * template that allows no connections (the scheduler skips those) once it is
 * migrated.
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

/** The key under which the global setup provides the templates' names. */
export const TEMPLATE_KEY = "outcomeRuntimeTemplateDbs";

/** How a test database stores signal points: a TimescaleDB hypertable or a plain table. */
export type SignalStorage = "timescaledb" | "plain";

/** The migrated templates of a run, by storage (`timescaledb` is null where the server cannot run it). */
export interface TemplateNames {
  readonly plain: string;
  readonly timescaledb: string | null;
}

declare module "vitest" {
  interface ProvidedContext {
    /** The migrated template databases of this run (see `prepareTemplates`). */
    outcomeRuntimeTemplateDbs: TemplateNames;
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

interface TemplateDatabase {
  readonly name: string;
  /** Drop the template (at the end of the run). */
  readonly drop: () => Promise<void>;
}

/** Whether this server can store signal points in a TimescaleDB hypertable (installed and preloaded). */
export async function timescaleUsable(): Promise<boolean> {
  const row = await admin((c) =>
    c.query<{ usable: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
          AND 'timescaledb' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
          AS usable`,
    ),
  );
  return row.rows[0]?.usable === true;
}

/**
 * Create a uniquely named template database (`ort_tpl_<storage>_<random>`) and
 * migrate it on the given storage path.
 *
 * @throws Error when `storage` is `timescaledb` and the migration did not make a hypertable.
 */
export async function prepareTemplate(storage: SignalStorage = "plain"): Promise<TemplateDatabase> {
  const name = uniqueName(storage === "plain" ? "ort_tpl_plain" : "ort_tpl_tsdb");
  await admin((c) => c.query(`CREATE DATABASE ${quote(name)}`));
  // The migration reads this database setting (packages/db, the initial migration).
  if (storage === "plain") {
    await admin((c) => c.query(`ALTER DATABASE ${quote(name)} SET outcome_runtime.signal_storage = 'plain'`));
  }
  const drop = async () => {
    await admin((c) => c.query(`ALTER DATABASE ${quote(name)} WITH IS_TEMPLATE false ALLOW_CONNECTIONS true`));
    await dropDatabase(name);
  };
  try {
    const db = createDb({ url: urlFor(name), max: 1 });
    try {
      const report = await migrateToLatest(db);
      if (report.signalStorage !== storage) {
        throw new Error(
          `template ${name}: asked for ${storage} signal storage, the migration made ${report.signalStorage}`,
        );
      }
    } finally {
      await db.destroy();
    }
    if (storage === "timescaledb") {
      // No connections from now on: TimescaleDB's scheduler skips such databases; the one it started is ended.
      await admin(async (c) => {
        await c.query(`ALTER DATABASE ${quote(name)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
      });
    }
  } catch (error) {
    await drop().catch(() => {});
    throw error;
  }
  return { name, drop };
}

/** The templates of a run: plain always, TimescaleDB where the server has it preloaded. */
export async function prepareTemplates(): Promise<{ names: TemplateNames; drop: () => Promise<void> }> {
  const plain = await prepareTemplate("plain");
  let tsdb: TemplateDatabase | null = null;
  try {
    if (await timescaleUsable()) tsdb = await prepareTemplate("timescaledb");
  } catch (error) {
    await plain.drop().catch(() => {});
    throw error;
  }
  return {
    names: { plain: plain.name, timescaledb: tsdb?.name ?? null },
    drop: async () => {
      await Promise.all([plain.drop(), tsdb?.drop()]);
    },
  };
}

function templatesOfThisRun(): TemplateNames {
  const names = inject(TEMPLATE_KEY);
  if (!names) {
    throw new Error(
      "no template database was provided: createTestDatabase() needs the global setup of the integration " +
        "project (packages/testing/src/global-setup.ts); run the file with `pnpm test:int`",
    );
  }
  return names;
}

/**
 * The storage paths this run can test: always `plain`, and `timescaledb`
 * where the server has it preloaded. For `describe.each(signalStorages())`.
 */
export function signalStorages(): SignalStorage[] {
  return templatesOfThisRun().timescaledb === null ? ["plain"] : ["plain", "timescaledb"];
}

/**
 * The storage a test file gets without asking: `TEST_SIGNAL_STORAGE` when set
 * (`timescaledb` or `plain`), else TimescaleDB where the server has it.
 *
 * @throws Error when TEST_SIGNAL_STORAGE names another value, or `timescaledb` on a server without it.
 */
export function defaultSignalStorage(): SignalStorage {
  const names = templatesOfThisRun();
  const wanted = process.env.TEST_SIGNAL_STORAGE;
  if (wanted === undefined || wanted === "") return names.timescaledb === null ? "plain" : "timescaledb";
  if (wanted !== "plain" && wanted !== "timescaledb") {
    throw new Error(`TEST_SIGNAL_STORAGE=${wanted}: use "timescaledb" or "plain" (or leave it unset)`);
  }
  if (wanted === "timescaledb" && names.timescaledb === null) {
    throw new Error(
      "TEST_SIGNAL_STORAGE=timescaledb, but the server has no preloaded TimescaleDB: run scripts/test.sh (its " +
        "setup installs it) or unset TEST_SIGNAL_STORAGE",
    );
  }
  return wanted;
}

function templateFor(storage: SignalStorage): string {
  const names = templatesOfThisRun();
  const name = storage === "plain" ? names.plain : names.timescaledb;
  if (name === null) {
    throw new Error("a TimescaleDB test database was asked for, but the server has no preloaded TimescaleDB");
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
 * for `options.storage` (default: `defaultSignalStorage()`), or from
 * `options.template`.
 *
 * @throws Error when `storage` is `timescaledb` on a server without it.
 */
export async function createTestDatabase(
  options: { max?: number; template?: string; storage?: SignalStorage } = {},
): Promise<TestDatabase> {
  const template = options.template ?? templateFor(options.storage ?? defaultSignalStorage());
  const name = uniqueName("ort_test");
  await cloneDatabase(template, name);
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

/**
 * CREATE DATABASE … TEMPLATE, retried while another session is still leaving
 * the template (55006 "being accessed by other users": a TimescaleDB scheduler
 * started just before the template was closed to connections).
 */
async function cloneDatabase(template: string, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin((c) => c.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(template)}`));
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "55006" || attempt >= 50) throw error;
      await admin((c) =>
        c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [template]),
      );
      await new Promise((resolve) => setTimeout(resolve, 100 * Math.min(attempt, 10)));
    }
  }
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
