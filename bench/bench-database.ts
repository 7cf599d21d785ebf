/**
 * The benchmark's own databases and Redis keys. A migrated template
 * `outcome_runtime_bench_<pid>` is cloned once per scenario
 * (`outcome_runtime_bench_<pid>_<scenario>`), so each scenario starts from a
 * fresh migrated database; every one of them is dropped at the end, and the
 * BullMQ keys under the run's prefix are deleted.
 */
import { createDb, type Db, migrateToLatest } from "@outcome-runtime/db";
import type { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the benchmark administers its own databases (create, clone, drop) and reads the server version, outside the runtime's storage layer
import pg from "pg";

/** Server URL without a database (`BENCH_POSTGRES_URL`, default local trust auth). */
function postgresServerUrl(): string {
  return process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432";
}

/** Redis URL (`BENCH_REDIS_URL`, default local). */
export function redisUrl(): string {
  return process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
}

function urlFor(database: string): string {
  const url = new URL(postgresServerUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlFor(process.env.BENCH_ADMIN_DB ?? "postgres") });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  readonly name: string;
  /** Its URL, for a process of its own (the API). */
  readonly url: string;
  readonly db: Db;
  /** Close the pool and drop the database. */
  readonly drop: () => Promise<void>;
}

/**
 * The databases of one benchmark run: a migrated template and its clones.
 * `dropAll` removes whatever is left, also after a failure.
 */
export class BenchDatabases {
  readonly template: string;
  private readonly created = new Set<string>();
  private readonly pools = new Set<Db>();

  constructor(pid: number = process.pid) {
    this.template = `outcome_runtime_bench_${pid}`;
  }

  /**
   * Create and migrate the template; returns how signal points are stored.
   * `storage: "plain"` keeps plain tables on a server with TimescaleDB (the
   * database setting the migration reads); `timescaledb` insists on it.
   *
   * @throws Error when `storage` is `timescaledb` and the server cannot make a hypertable.
   */
  async prepare(storage?: "timescaledb" | "plain"): Promise<"timescaledb" | "plain"> {
    await admin((c) => c.query(`CREATE DATABASE ${quote(this.template)}`));
    this.created.add(this.template);
    if (storage === "plain") {
      await admin((c) =>
        c.query(`ALTER DATABASE ${quote(this.template)} SET outcome_runtime.signal_storage = 'plain'`),
      );
    }
    const db = createDb({ url: urlFor(this.template), max: 1 });
    let made: "timescaledb" | "plain";
    try {
      made = (await migrateToLatest(db)).signalStorage;
    } finally {
      await db.destroy();
    }
    if (storage !== undefined && made !== storage) {
      throw new Error(`--storage ${storage}: the migration made ${made} signal storage (is TimescaleDB preloaded?)`);
    }
    if (made === "timescaledb") {
      // TimescaleDB's scheduler connects to every database with the extension; a template must have none.
      await admin(async (c) => {
        await c.query(`ALTER DATABASE ${quote(this.template)} WITH ALLOW_CONNECTIONS false`);
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [this.template]);
      });
    }
    return made;
  }

  /** A fresh clone of the template, with a pool of `max` connections. */
  async clone(scenario: string, max: number): Promise<BenchDatabase> {
    const name = `${this.template}_${scenario}`;
    await admin((c) => c.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(this.template)}`));
    this.created.add(name);
    const db = createDb({
      url: urlFor(name),
      max,
      applicationName: "outcome-runtime-bench",
      statementTimeoutMs: 120_000,
    });
    this.pools.add(db);
    return {
      name,
      url: urlFor(name),
      db,
      drop: async () => {
        this.pools.delete(db);
        await db.destroy();
        await this.dropDatabase(name);
      },
    };
  }

  /** A URL of the administrative database, for a loader that creates its own database. */
  adminUrl(): string {
    return urlFor(process.env.BENCH_ADMIN_DB ?? "postgres");
  }

  /** Drop database `name` with the others at the end (a loader creates it); returns the name. */
  track(name: string): string {
    this.created.add(name);
    return name;
  }

  private async dropDatabase(name: string): Promise<void> {
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`));
    this.created.delete(name);
  }

  /** Close every pool and drop every database this run created. */
  async dropAll(): Promise<void> {
    await Promise.allSettled([...this.pools].map((db) => db.destroy()));
    this.pools.clear();
    for (const name of [...this.created].reverse()) await this.dropDatabase(name);
  }
}

/** Facts about the Postgres server, for the report. */
export async function postgresFacts(): Promise<{ version: string; settings: Record<string, string> }> {
  return admin(async (c) => {
    const version = (await c.query<{ server_version: string }>("SHOW server_version")).rows[0]?.server_version ?? "?";
    const rows = await c.query<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings
        WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'autovacuum')`,
    );
    const settings: Record<string, string> = {};
    for (const r of rows.rows) {
      settings[r.name] = r.name === "shared_buffers" ? `${(Number(r.setting) * 8) / 1024} MB` : r.setting;
    }
    return { version, settings };
  });
}

/** Delete every key under `pattern` (SCAN + UNLINK, never KEYS). Returns how many. */
export async function deleteRedisKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== "0");
  return deleted;
}
