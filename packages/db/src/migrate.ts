/**
 * Schema migrations with Kysely's Migrator. Kysely's Postgres adapter takes a
 * session-level advisory lock (`pg_advisory_lock`) around the run, so API
 * replicas starting at once apply each migration exactly once; the others wait
 * and then find nothing to do.
 */
import { type Migration, type MigrationResult, Migrator, sql } from "kysely";
import type { Db, DbOrTrx } from "./database";
import * as initial from "./migrations/2026-11-22T00-00-initial";
import * as signals from "./migrations/2026-12-01T00-00-signals";
import * as seriesLookups from "./migrations/2026-12-01T01-00-series-lookups";
import * as llm from "./migrations/2026-12-02T00-00-llm";
import * as gates from "./migrations/2026-12-03T00-00-gates";
import * as agentRequests from "./migrations/2026-12-04T00-00-agent-requests";
import * as dashboard from "./migrations/2026-12-05T00-00-dashboard";
import * as timescalePolicies from "./migrations/2026-12-06T00-00-timescale-policies";
import * as apiKeyScopes from "./migrations/2026-12-07T00-00-api-key-scopes";
import * as pointRevisions from "./migrations/2026-12-08T00-00-point-revisions";
import * as workspaceSecrets from "./migrations/2026-12-09T00-00-workspace-secrets";
import * as sessions from "./migrations/2026-12-09T01-00-sessions";
import * as imports from "./migrations/2026-12-09T02-00-imports";
import * as jobRequests from "./migrations/2026-12-10T00-00-job-requests";
import * as analysisNames from "./migrations/2026-12-11T00-00-analysis-names";
import * as secondaryMetrics from "./migrations/2026-12-11T01-00-secondary-metrics";
import * as pointCovariates from "./migrations/2026-12-12T00-00-point-covariates";
import * as ratioMetrics from "./migrations/2026-12-13T00-00-ratio-metrics";
import * as achievementGates from "./migrations/2026-12-13T01-00-achievement-gates";
import * as authChangeNotify from "./migrations/2026-12-14T00-00-auth-change-notify";
import * as sourceHealth from "./migrations/2026-12-15T00-00-source-health";
import * as flagRollouts from "./migrations/2026-12-16T00-00-flag-rollouts";
import * as learningEmbeddings from "./migrations/2026-12-17T00-00-learning-embeddings";
import * as hypertableTsIndex from "./migrations/2026-12-18T00-00-hypertable-ts-index";
import * as viewerRole from "./migrations/2026-12-19T00-00-viewer-role";
import * as members from "./migrations/2026-12-19T01-00-members";
import { enableSemanticSearch } from "./semantic-search";

/** Every migration, by name. Names sort in the order they apply. */
const MIGRATIONS: Record<string, Migration> = {
  "2026-11-22T00-00-initial": initial,
  "2026-12-01T00-00-signals": signals,
  "2026-12-01T01-00-series-lookups": seriesLookups,
  "2026-12-02T00-00-llm": llm,
  "2026-12-03T00-00-gates": gates,
  "2026-12-04T00-00-agent-requests": agentRequests,
  "2026-12-05T00-00-dashboard": dashboard,
  "2026-12-06T00-00-timescale-policies": timescalePolicies,
  "2026-12-07T00-00-api-key-scopes": apiKeyScopes,
  "2026-12-08T00-00-point-revisions": pointRevisions,
  "2026-12-09T00-00-workspace-secrets": workspaceSecrets,
  "2026-12-09T01-00-sessions": sessions,
  "2026-12-09T02-00-imports": imports,
  "2026-12-10T00-00-job-requests": jobRequests,
  "2026-12-11T00-00-analysis-names": analysisNames,
  "2026-12-11T01-00-secondary-metrics": secondaryMetrics,
  "2026-12-12T00-00-point-covariates": pointCovariates,
  "2026-12-13T00-00-ratio-metrics": ratioMetrics,
  "2026-12-13T01-00-achievement-gates": achievementGates,
  "2026-12-14T00-00-auth-change-notify": authChangeNotify,
  "2026-12-15T00-00-source-health": sourceHealth,
  "2026-12-16T00-00-flag-rollouts": flagRollouts,
  "2026-12-17T00-00-learning-embeddings": learningEmbeddings,
  "2026-12-18T00-00-hypertable-ts-index": hypertableTsIndex,
  "2026-12-19T00-00-viewer-role": viewerRole,
  "2026-12-19T01-00-members": members,
};

export interface MigrationReport {
  /** Migrations applied by this call, in order. */
  readonly applied: readonly string[];
  /** How signal points are stored: a TimescaleDB hypertable or a plain table. */
  readonly signalStorage: "timescaledb" | "plain";
  /** Why plain tables where TimescaleDB could have been used, with the fix; null when there is nothing to fix. */
  readonly signalStorageNote: SignalStorageNote | null;
}

/** A storage choice an operator should know about (logged once at start, shown in the API's /healthz). */
export interface SignalStorageNote {
  /** `timescaledb_not_preloaded`: installed, but not in `shared_preload_libraries`. */
  readonly reason: "timescaledb_not_preloaded";
  readonly message: string;
  readonly fix: string;
}

/**
 * Apply every pending migration.
 *
 * @throws Error naming the migration that failed (the failed one is rolled back).
 */
export async function migrateToLatest(db: Db): Promise<MigrationReport> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r: MigrationResult) => r.status === "Error");
  if (error !== undefined || failed !== undefined) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? "(unknown)"} failed: ${cause}`, { cause: error });
  }
  // A server that got pgvector since the learning-embeddings migration recorded it absent gets semantic search.
  await enableSemanticSearch(db);
  return {
    applied: (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName),
    signalStorage: await signalStorageMode(db),
    signalStorageNote: await signalStorageNote(db),
  };
}

/**
 * Migrate to `name`: apply the pending migrations up to it, or undo every
 * applied migration after it (each one's `down`, newest first), so that a
 * test can run one migration again as the first time, alone. Returns the
 * names applied or undone, in order.
 *
 * @throws Error naming the migration that failed.
 */
export async function migrateTo(db: Db, name: string): Promise<readonly string[]> {
  if (!(name in MIGRATIONS)) throw new Error(`no migration named ${name}`);
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
  const { error, results } = await migrator.migrateTo(name);
  const failed = results?.find((r: MigrationResult) => r.status === "Error");
  if (error !== undefined || failed !== undefined) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${failed?.migrationName ?? "(unknown)"} failed: ${cause}`, { cause: error });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/**
 * Whether the server has TimescaleDB installed but not preloaded while signal
 * points are in plain tables: the migration then chose plain tables (a FATAL
 * would have ended its connection), and the operator should know how to get
 * the hypertable. Null otherwise (TimescaleDB in use, not installed, or plain
 * tables chosen with `outcome_runtime.signal_storage = 'plain'`).
 */
export async function signalStorageNote(db: Db): Promise<SignalStorageNote | null> {
  if ((await signalStorageMode(db)) === "timescaledb") return null;
  const row = await db.selectFrom("settings").select("value").where("key", "=", "signal_storage").executeTakeFirst();
  if ((row?.value as { reason?: string } | undefined)?.reason === "chosen") return null;
  // As the initial migration decides (the loader's settings, not `shared_preload_libraries`, which only a
  // superuser or pg_read_all_settings may read: pg_settings hides it from others, `list` is then null).
  const probe = await sql<{ available: boolean; preloaded: boolean; list: string | null }>`
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
           (EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
            OR EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.disable_load')) AS preloaded,
           (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS list`.execute(db);
  const { available, preloaded, list } = probe.rows[0] ?? { available: false, preloaded: false, list: null };
  if (!available || preloaded) return null;
  const wanted = list === null || list.trim() === "" ? "timescaledb" : `${list},timescaledb`;
  return {
    reason: "timescaledb_not_preloaded",
    message:
      "TimescaleDB is installed on the PostgreSQL server but not preloaded, so signal points are stored in plain " +
      "tables (everything works; the hypertable, compression and the continuous aggregate are not used)",
    fix:
      `add it to postgresql.conf: shared_preload_libraries = '${wanted}' (or ALTER SYSTEM SET ` +
      `shared_preload_libraries = '${wanted}'), restart PostgreSQL; a new database then gets the hypertable ` +
      "(docs/self-hosting.md, Storage)",
  };
}

/** Read the signal storage mode recorded by the migration. */
export async function signalStorageMode(db: Db): Promise<"timescaledb" | "plain"> {
  const row = await db.selectFrom("settings").select("value").where("key", "=", "signal_storage").executeTakeFirst();
  const mode = (row?.value as { mode?: string } | undefined)?.mode;
  return mode === "timescaledb" ? "timescaledb" : "plain";
}

/** `SELECT 1` with a short timeout: is the database reachable? */
export async function pingDb(db: DbOrTrx): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

/**
 * The identity of the runtime's database (the cluster's system identifier,
 * the postmaster's start time in µs since the epoch, the database's OID), so
 * that a signal source reaching this database can be refused. Kept identical
 * to the query of the `postgres` connector's source check.
 */
export async function databaseIdentity(
  db: DbOrTrx,
): Promise<{ systemIdentifier: string | null; startedAt: string; databaseOid: string }> {
  const base = sql<{ started_at: string; database_oid: string }>`
    SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint::text AS started_at,
           d.oid::text AS database_oid
      FROM pg_database d WHERE d.datname = current_database()`;
  const row = (await base.execute(db)).rows[0];
  if (row === undefined) throw new Error("the runtime's database is not in pg_database");
  let systemIdentifier: string | null = null;
  try {
    const control = await sql<{ id: string }>`SELECT system_identifier::text AS id FROM pg_control_system()`.execute(
      db,
    );
    systemIdentifier = control.rows[0]?.id ?? null;
  } catch {
    // Not granted (a managed service): the start time stands in for the cluster, on both sides.
  }
  return { systemIdentifier, startedAt: row.started_at, databaseOid: row.database_oid };
}
