/**
 * The read-only role signal sources are read through, as docs/connectors.md
 * ("A read-only role") tells users to create it: it may log in and read the
 * analytics tables, and nothing else (not a superuser, no CREATE, no write
 * privilege, no predefined role). The tests and the demo read their
 * analytics databases through it, so the connector's refusal of any other
 * role holds everywhere.
 *
 * Imported by the demo too, so it depends on nothing but `pg`.
 */
import pg from "pg";

/** The role's name. */
export const READER_ROLE = "outcome_runtime_reader";
/** Its password (used where the server asks for one; trust auth ignores it). */
export const READER_PASSWORD = "outcome-runtime-reader";

/** Creates the role when the server has none (safe when several processes race to). */
export async function ensureReaderRole(admin: pg.ClientBase): Promise<void> {
  try {
    await admin.query(
      `CREATE ROLE ${READER_ROLE} LOGIN PASSWORD '${READER_PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION`,
    );
  } catch (error) {
    // 42710: it exists; 23505: another process created it at the same moment.
    const code = (error as { code?: string }).code;
    if (code !== "42710" && code !== "23505") throw error;
  }
}

/**
 * Lets the reader read every table of schema `public` of the database
 * `database` is connected to, now and later (tables created afterwards by the
 * role running this), and sets it to read-only transactions by default. The
 * statements of docs/connectors.md.
 */
export async function grantReadOnly(database: pg.ClientBase): Promise<void> {
  const { rows } = await database.query<{ db: string }>("SELECT current_database() AS db");
  const name = `"${(rows[0]?.db ?? "").replaceAll('"', '""')}"`;
  await database.query(`GRANT CONNECT ON DATABASE ${name} TO ${READER_ROLE}`);
  await database.query(`GRANT USAGE ON SCHEMA public TO ${READER_ROLE}`);
  await database.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${READER_ROLE}`);
  await database.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${READER_ROLE}`);
  await database.query(`ALTER ROLE ${READER_ROLE} IN DATABASE ${name} SET default_transaction_read_only = on`);
}

/** `url` with the reader's credentials instead of its own. */
export function readerUrl(url: string): string {
  const parsed = new URL(url);
  parsed.username = READER_ROLE;
  parsed.password = READER_PASSWORD;
  return parsed.toString();
}

/**
 * Makes `url`'s database readable by the reader (creating the role if
 * needed) and returns the reader's URL of it.
 *
 * @param url a URL of the database as a role that owns it (or a superuser)
 */
export async function readerOf(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await ensureReaderRole(client);
    await grantReadOnly(client);
  } finally {
    await client.end();
  }
  return readerUrl(url);
}
