/**
 * Who a `postgres` source connection is, checked before its first query and
 * again every {@link SOURCE_RECHECK_MS}: a signal query runs only on a role
 * that cannot write and is not a superuser, and never on the runtime's own
 * database. The SQL policy and the read-only transaction are the other two
 * walls; this one holds even against SQL they would miss, because the server
 * itself enforces a role's privileges.
 *
 * docs/connectors.md ("A read-only role") gives the role to create.
 */
// biome-ignore lint/style/noRestrictedImports: the postgres connector inspects the user's own database (DESIGN §3: connectors are infrastructure).
import type pg from "pg";
import type { DatabaseIdentity } from "../connector";
import { ConnectorError } from "../connector-error";

/** How long a passed check is trusted before it runs again, ms. */
export const SOURCE_RECHECK_MS = 10 * 60_000;

/** What the server says about the connection's database and role. */
export interface SourceFacts {
  readonly identity: DatabaseIdentity;
  readonly database: string;
  readonly role: string;
  readonly superuser: boolean;
  /** Role attributes that administer the server: CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS. */
  readonly attributes: readonly string[];
  /** Superuser and predefined roles of the server it is a member of (pg_write_all_data, pg_read_server_files, ...). */
  readonly powerfulRoles: readonly string[];
  readonly canCreateInDatabase: boolean;
  /** Up to five schemas it may create objects in. */
  readonly writableSchemas: readonly string[];
  /** Up to five tables, views or sequences it may change. */
  readonly writableRelations: readonly string[];
}

/** The predefined roles that let a member write, read the server's files, run programs or signal backends. */
const POWERFUL_PREDEFINED = [
  "pg_write_all_data",
  "pg_write_server_files",
  "pg_read_server_files",
  "pg_execute_server_program",
  "pg_signal_backend",
  "pg_checkpoint",
  "pg_create_subscription",
];

/**
 * The database's identity. Kept identical to `databaseIdentity` of
 * `@outcome-runtime/db`, which computes the runtime's own.
 */
const IDENTITY_SQL = `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint::text AS started_at,
       d.oid::text AS database_oid, current_database() AS database
  FROM pg_database d WHERE d.datname = current_database()`;
const IDENTITY_SQL_WITHOUT_CONTROL = IDENTITY_SQL.replace(
  "(SELECT system_identifier::text FROM pg_control_system())",
  "NULL::text",
);

const ROLE_SQL = `SELECT r.rolname AS role, r.rolsuper AS superuser,
       array_remove(ARRAY[CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
                          CASE WHEN r.rolreplication THEN 'REPLICATION' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL) AS attributes,
       ARRAY(SELECT s.rolname::text FROM pg_roles s
              WHERE s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER')
                AND (s.rolsuper OR s.rolname = ANY($1::text[])) ORDER BY 1) AS powerful_roles,
       has_database_privilege(current_database(), 'CREATE') AS can_create_in_database,
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
                AND has_schema_privilege(n.oid, 'CREATE') ORDER BY 1 LIMIT 5) AS writable_schemas,
       ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
               AND ((c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     AND (has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                          OR has_any_column_privilege(c.oid, 'INSERT, UPDATE')))
                    OR (c.relkind = 'S' AND has_sequence_privilege(c.oid, 'USAGE, UPDATE')))
             ORDER BY 1 LIMIT 5) AS writable_relations
  FROM pg_roles r WHERE r.rolname = current_user`;

/**
 * Reads the facts of the connection `client` is on, in a read-only
 * transaction (rolled back).
 *
 * @throws the driver's error when the server refuses a query
 */
export async function inspectSource(client: pg.ClientBase): Promise<SourceFacts> {
  await client.query("BEGIN READ ONLY");
  try {
    let identity: { system_identifier: string | null; started_at: string; database_oid: string; database: string };
    await client.query("SAVEPOINT identity");
    try {
      identity = (await client.query(IDENTITY_SQL)).rows[0];
    } catch (error) {
      // pg_control_system() may be revoked (a managed service): the start time stands in for the cluster.
      if ((error as { code?: string }).code !== "42501") throw error;
      await client.query("ROLLBACK TO SAVEPOINT identity");
      identity = (await client.query(IDENTITY_SQL_WITHOUT_CONTROL)).rows[0];
    }
    const role = (await client.query(ROLE_SQL, [POWERFUL_PREDEFINED])).rows[0] as {
      role: string;
      superuser: boolean;
      attributes: string[];
      powerful_roles: string[];
      can_create_in_database: boolean;
      writable_schemas: string[];
      writable_relations: string[];
    };
    return {
      identity: {
        systemIdentifier: identity.system_identifier,
        startedAt: identity.started_at,
        databaseOid: identity.database_oid,
      },
      database: identity.database,
      role: role.role,
      superuser: role.superuser,
      attributes: role.attributes,
      powerfulRoles: role.powerful_roles,
      canCreateInDatabase: role.can_create_in_database,
      writableSchemas: role.writable_schemas,
      writableRelations: role.writable_relations,
    };
  } finally {
    await client.query("ROLLBACK");
  }
}

/**
 * Whether two identities are the same database: the same database OID in
 * the same cluster (the same system identifier, or, when one side could not
 * read it, the same postmaster start time).
 */
export function sameDatabase(a: DatabaseIdentity, b: DatabaseIdentity): boolean {
  if (a.databaseOid !== b.databaseOid) return false;
  if (a.systemIdentifier !== null && b.systemIdentifier !== null) return a.systemIdentifier === b.systemIdentifier;
  return a.startedAt === b.startedAt;
}

const FIX = "connect as a read-only role instead: docs/connectors.md#a-read-only-role has the CREATE ROLE and GRANTs";

/**
 * Why a source with these facts may not be read, as a `source_refused`
 * error naming the role, what it may do and the fix; null when it may.
 *
 * @param runtime the runtime's own database (never a source); undefined when not known
 * @param where the setting that named the connection (`database_url_secret: analytics-db`), for the message
 */
export function sourceRefusal(
  facts: SourceFacts,
  runtime: DatabaseIdentity | undefined,
  where: string,
): ConnectorError | null {
  const refuse = (reason: string, details: Record<string, unknown>): ConnectorError =>
    new ConnectorError("source_refused", `postgres (${where}): ${reason}; the connector was not run. ${FIX}`, {
      details: { source: where, database: facts.database, role: facts.role, ...details },
    });
  if (runtime !== undefined && sameDatabase(facts.identity, runtime)) {
    return refuse(
      `the connection reaches the runtime's own database "${facts.database}", which is never a signal source; point it at your analytics database`,
      { reason: "runtime_database" },
    );
  }
  if (facts.superuser || facts.powerfulRoles.length > 0) {
    const via = facts.superuser ? "" : ` through membership of ${facts.powerfulRoles.join(", ")}`;
    return refuse(
      `the role "${facts.role}" is ${facts.superuser ? "a superuser" : `privileged${via}`}: it could read the server's files, signal other sessions or write`,
      { reason: facts.superuser ? "superuser" : "privileged_role", roles: facts.powerfulRoles },
    );
  }
  if (facts.attributes.length > 0) {
    return refuse(`the role "${facts.role}" has ${facts.attributes.join(", ")}, which administer the server`, {
      reason: "role_attributes",
      attributes: facts.attributes,
    });
  }
  if (facts.writableRelations.length > 0) {
    return refuse(
      `the role "${facts.role}" may change ${facts.writableRelations.join(", ")}${facts.writableRelations.length === 5 ? " and more" : ""}`,
      { reason: "may_write", relations: facts.writableRelations },
    );
  }
  if (facts.canCreateInDatabase || facts.writableSchemas.length > 0) {
    const what = facts.canCreateInDatabase
      ? `may create schemas in "${facts.database}"`
      : `may create objects in schema ${facts.writableSchemas.join(", ")}`;
    return refuse(`the role "${facts.role}" ${what} (does it own the database or the schema?)`, {
      reason: "may_create",
      schemas: facts.writableSchemas,
    });
  }
  return null;
}
