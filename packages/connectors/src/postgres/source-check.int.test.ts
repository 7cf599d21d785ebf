/**
 * Who a `postgres` source connection is (security finding: a signal query
 * read the runtime's own database, every workspace's API keys, and as a
 * superuser the server's files). Before any query runs, the connector checks
 * the connection: never the runtime's database, never a superuser or a role
 * that may write, create or signal. Real roles on the real server.
 */
import { randomBytes } from "node:crypto";
import { createDb, databaseIdentity } from "@outcome-runtime/db";
import { createEmptyDatabase, readerOf } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test builds the user's own analytics database and its roles.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorContext, DatabaseIdentity, ExperimentWindow } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";

const QUERY =
  "SELECT arm, count(*) AS units, 0 AS sum, 0 AS sum_sq FROM exposures WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm";
const window: ExperimentWindow = {
  experimentKey: "checkout-v2",
  arms: ["control", "treatment"],
  from: new Date(0),
  to: new Date("2027-01-01T00:00:00Z"),
};

let database: { name: string; url: string; drop: () => Promise<void> };
let other: { name: string; url: string; drop: () => Promise<void> };
let admin: pg.Client;
let readerUrl: string;
const roles: string[] = [];

/** A login role of this test's own, set up by `grants` (run as the admin), and its URL of `database`. */
async function role(grants: (name: string) => string[]): Promise<string> {
  const name = `ort_role_${randomBytes(5).toString("hex")}`;
  roles.push(name);
  await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD 'x'`);
  await admin.query(`GRANT USAGE ON SCHEMA public TO ${name}`);
  await admin.query(`GRANT SELECT ON exposures TO ${name}`);
  for (const statement of grants(name)) await admin.query(statement);
  const url = new URL(database.url);
  url.username = name;
  url.password = "x";
  return url.toString();
}

async function refusal(url: string, runtime?: DatabaseIdentity): Promise<ConnectorError> {
  const context: ConnectorContext = {
    metricKind: "proportion",
    credentials: { database_url: url },
    ...(runtime === undefined ? {} : { runtimeDatabase: async () => runtime }),
  };
  const connector = createConnector({ type: "postgres", query: QUERY, database_url_secret: "analytics-db" }, context);
  try {
    await connector.fetchArmAggregates(window);
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  } finally {
    await connector.close();
  }
  throw new Error("expected the source to be refused");
}

async function identityOf(url: string): Promise<DatabaseIdentity> {
  const db = createDb({ url, max: 1 });
  try {
    return await databaseIdentity(db);
  } finally {
    await db.destroy();
  }
}

beforeAll(async () => {
  database = await createEmptyDatabase();
  other = await createEmptyDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(
    "CREATE TABLE exposures (unit_id text, experiment_key text, arm text, exposed_at timestamptz); INSERT INTO exposures VALUES ('u1', 'checkout-v2', 'control', now())",
  );
  readerUrl = await readerOf(database.url);
});

afterAll(async () => {
  for (const name of roles) {
    await admin.query(`DROP OWNED BY ${name} CASCADE`).catch(() => {});
    await admin.query(`DROP ROLE IF EXISTS ${name}`).catch(() => {});
  }
  await admin?.end();
  await database?.drop();
  await other?.drop();
});

describe("postgres source check", () => {
  it("reads through the documented read-only role", async () => {
    const connector = createConnector(
      { type: "postgres", query: QUERY, database_url_secret: "analytics-db" },
      {
        metricKind: "proportion",
        credentials: { database_url: readerUrl },
        runtimeDatabase: () => identityOf(other.url),
      },
    );
    try {
      await connector.check?.();
      expect(await connector.fetchArmAggregates(window)).toEqual([
        { arm: "control", units: 1, sum: 0, sum_sq: 0, ts: null },
      ]);
    } finally {
      await connector.close();
    }
  });

  it("refuses a superuser before running the query, naming the role and the fix", async () => {
    const error = await refusal(database.url);
    expect(error).toMatchObject({ code: "source_refused", retryable: false });
    expect(error.details).toMatchObject({
      reason: "superuser",
      role: "postgres",
      source: "database_url_secret: analytics-db",
    });
    expect(error.message).toContain('the role "postgres" is a superuser');
    expect(error.message).toContain("docs/connectors.md#a-read-only-role");
  });

  it("refuses the runtime's own database, whatever the role and however the host is written", async () => {
    const runtime = await identityOf(database.url);
    const viaLocalhost = new URL(readerUrl);
    viaLocalhost.hostname = "localhost";
    for (const url of [readerUrl, viaLocalhost.toString()]) {
      const error = await refusal(url, runtime);
      expect(error.details.reason).toBe("runtime_database");
      expect(error.message).toContain(`reaches the runtime's own database "${database.name}"`);
    }
  });

  it("refuses a role that may write, create, or holds a powerful predefined role or attribute", async () => {
    const cases: [string, (name: string) => string[], string][] = [
      ["INSERT on a table", (n) => [`GRANT INSERT ON exposures TO ${n}`], "may_write"],
      ["UPDATE on one column", (n) => [`GRANT UPDATE (arm) ON exposures TO ${n}`], "may_write"],
      ["a table of its own", (n) => [`GRANT CREATE ON SCHEMA public TO ${n}`], "may_create"],
      ["CREATE on the database", (n) => [`GRANT CREATE ON DATABASE ${database.name} TO ${n}`], "may_create"],
      ["pg_read_server_files", (n) => [`GRANT pg_read_server_files TO ${n}`], "privileged_role"],
      ["pg_signal_backend", (n) => [`GRANT pg_signal_backend TO ${n}`], "privileged_role"],
      ["pg_write_all_data", (n) => [`GRANT pg_write_all_data TO ${n}`], "privileged_role"],
      ["CREATEROLE", (n) => [`ALTER ROLE ${n} CREATEROLE`], "role_attributes"],
    ];
    for (const [what, grants, reason] of cases) {
      const url = await role(grants);
      const error = await refusal(url);
      expect(error.details.reason, what).toBe(reason);
    }
    // A role that inherits a superuser is a superuser.
    const superRole = `ort_super_${randomBytes(4).toString("hex")}`;
    roles.push(superRole);
    await admin.query(`CREATE ROLE ${superRole} SUPERUSER NOLOGIN`);
    const inherits = await role((n) => [`GRANT ${superRole} TO ${n}`]);
    expect((await refusal(inherits)).details).toMatchObject({ reason: "privileged_role", roles: [superRole] });
  });

  it("computes the runtime's identity and the source's the same way (the db package's query and the connector's)", async () => {
    const runtime = await identityOf(database.url);
    const reader = new pg.Client({ connectionString: readerUrl });
    await reader.connect();
    try {
      const { rows } = await reader.query<{ oid: string }>(
        "SELECT oid::text AS oid FROM pg_database WHERE datname = current_database()",
      );
      expect(runtime.databaseOid).toBe(rows[0]?.oid);
      expect(runtime.systemIdentifier).toMatch(/^\d+$/);
    } finally {
      await reader.end();
    }
    expect((await identityOf(other.url)).databaseOid).not.toBe(runtime.databaseOid);
  });
});
