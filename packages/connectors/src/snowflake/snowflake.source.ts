/**
 * The `snowflake` SQL source: the team's own query, run on their warehouse
 * through Snowflake's SQL API v2 with key-pair (JWT) authentication.
 *
 * Transport: the documented SQL API (`POST /api/v2/statements`, polled by
 * statement handle, partitions, cancel; see `sql-api-client.ts`), not the
 * `snowflake-sdk` driver, whose protocol (login-request, query-request, Arrow
 * result chunks from cloud storage) is internal and undocumented: nothing a
 * test server could follow, while the SQL API has a reference and an OpenAPI
 * description (github.com/snowflakedb/snowflake-rest-api-specs).
 *
 * Read-only is held by three walls: the shared static check (one SELECT),
 * `MULTI_STATEMENT_COUNT=1` on every statement (a second statement fails on
 * Snowflake), and a role that can only read, inspected with `SHOW GRANTS TO
 * ROLE` before the first read and every ten minutes (refused: any privilege
 * but USAGE, SELECT, REFERENCES, MONITOR, READ and IMPORTED PRIVILEGES, and
 * the administrative roles, granted directly or through other roles).
 *
 * Parameters: Snowflake binds positional `?`: `:experiment` is one,
 * `:experiments` and `:arms` one per value (`IN (:experiments)`), `:from`
 * and `:to` are ISO 8601 text read by `TO_TIMESTAMP_TZ` with an explicit
 * format (the statement runs with `TIMEZONE='UTC'`). Values are never pasted
 * into the SQL.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import type { ConfigReader } from "../config-reader";
import { show } from "../config-reader";
import type { ConnectorContext } from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialValue, readCredentialRef } from "../credentials";
import { lineColumn } from "../postgres/sql-statement";
import type { NamedStatement, ParameterUse, SqlLexicon } from "../sql/named-parameters";
import { renderStatement } from "../sql/named-parameters";
import type { SqlRows } from "../sql/result-rows";
import type {
  SqlCommonSettings,
  SqlDriver,
  SqlParameterValues,
  SqlRequest,
  SqlSourceDefinition,
} from "../sql/sql-source";
import { vendorApiUrl } from "../vendor-hosts";
import { KeyPairAuth, loadPrivateKey, PrivateKeyProblem } from "./key-pair-auth";
import { type Binding, executeStatement, type SqlApiSettings } from "./sql-api-client";

/** Default `QUERY_TAG` of every statement, to find the runtime's queries in QUERY_HISTORY. */
const DEFAULT_QUERY_TAG = "outcome-runtime";
/** Snowflake's longest QUERY_TAG. */
const MAX_QUERY_TAG = 2000;
/** How long a passed role check is trusted before it runs again, ms. */
const ROLE_RECHECK_MS = 10 * 60_000;
/** The most roles the check follows (the role and those granted to it, transitively). */
const MAX_ROLES_CHECKED = 25;
/** Time the client gives a statement beyond Snowflake's own timeout (queueing, transfer), ms. */
const CLIENT_GRACE_MS = 15_000;
/** The role check's longest statement timeout, in seconds (the connector's `timeout` when shorter). */
const CHECK_TIMEOUT_SECONDS = 60;

/** Roles that administer the account: never a connector's. */
const ADMIN_ROLES: ReadonlySet<string> = new Set([
  "ACCOUNTADMIN",
  "SYSADMIN",
  "SECURITYADMIN",
  "USERADMIN",
  "ORGADMIN",
  "GLOBALORGADMIN",
]);
/** The only privileges a connector's role may hold: each lets it read and nothing more. */
const READ_PRIVILEGES: ReadonlySet<string> = new Set([
  "USAGE",
  "SELECT",
  "REFERENCES",
  "MONITOR",
  "READ",
  "IMPORTED PRIVILEGES",
]);

/** Snowflake's lexical rules: `"` quotes names, `'` strings (with `\` escapes), `$$...$$` is a string. */
const SNOWFLAKE_LEXICON: SqlLexicon = Object.freeze({
  identifierQuotes: ['"'],
  stringQuotes: ["'"],
  backslashEscapes: true,
  hashComments: false,
  dashCommentNeedsSpace: false,
  slashComments: true,
  executableComments: false,
  dollarStrings: true,
});

/** How `:from`/`:to` reach the statement: ISO 8601 text read with an explicit format. */
const TIMESTAMP_PLACEHOLDER = `TO_TIMESTAMP_TZ(?, 'YYYY-MM-DD"T"HH24:MI:SS.FF3TZH:TZM')`;

const ACCOUNT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/u;

/** The `snowflake` source: its settings, lexicon and driver. */
export const SNOWFLAKE_SOURCE: SqlSourceDefinition = Object.freeze({
  type: "snowflake",
  lexicon: SNOWFLAKE_LEXICON,
  fields: ["account", "user", "warehouse", "role", "database", "schema", "query_tag", "api_url"],
  createDriver: createSnowflakeDriver,
});

/** The documented API bases of an account: its public and its PrivateLink host. */
function accountApiUrls(account: string): string[] {
  // Hostnames take hyphens where account names have underscores (docs: "Account identifiers").
  const host = account.toLowerCase().replaceAll("_", "-");
  return [`https://${host}.snowflakecomputing.com`, `https://${host}.privatelink.snowflakecomputing.com`];
}

/**
 * Reads the `snowflake` settings and credential references and makes the
 * driver. Connects nowhere, and reads the key only at the first request
 * (`check` or a read), where a key that does not load is `invalid_config`.
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix; `source_refused` for an
 *   administrative role or an `api_url` that is not the account's and not allowed by the operator
 */
function createSnowflakeDriver(reader: ConfigReader, context: ConnectorContext, common: SqlCommonSettings): SqlDriver {
  const account = reader.string("account", "write the account identifier, e.g. myorg-myaccount");
  if (!ACCOUNT.test(account) || account.toLowerCase().includes("snowflakecomputing")) {
    throw reader.invalid(
      "account",
      `${show(account)} is not an account identifier`,
      "write the identifier alone (myorg-myaccount, or a locator such as xy12345.us-east-1), not a URL; a proxy or a test server goes in api_url",
      { value: account },
    );
  }
  const user = identifier(reader, "user", "name the Snowflake user whose RSA_PUBLIC_KEY matches private_key");
  const warehouse = identifier(reader, "warehouse", "name the warehouse the queries run on, e.g. ANALYTICS_WH");
  const role = identifier(reader, "role", "name a role that may only read, e.g. OUTCOME_READER (docs/connectors.md)");
  if (ADMIN_ROLES.has(role.toUpperCase())) throw adminRoleRefused(role, role);
  const database = identifier(reader, "database", "name the database the query reads, e.g. ANALYTICS");
  const schema = reader.has("schema") ? identifier(reader, "schema", "name the schema, e.g. PUBLIC") : undefined;
  const queryTag = reader.optionalString("query_tag", "write a short tag, e.g. outcome-runtime") ?? DEFAULT_QUERY_TAG;
  if (queryTag.length > MAX_QUERY_TAG) {
    throw reader.invalid("query_tag", `is ${queryTag.length} characters long`, `keep it under ${MAX_QUERY_TAG}`);
  }
  const documented = accountApiUrls(account);
  const apiUrl = reader.optionalString("api_url", `write ${documented[0]}`);
  const baseUrl =
    apiUrl === undefined
      ? (documented[0] as string)
      : vendorApiUrl(reader, "api_url", apiUrl, documented, context.allowedApiUrls?.snowflake);

  const keyRef = readCredentialRef(reader, "private_key", "the PEM (PKCS#8) private key of the user's key pair");
  const hasPassphrase = reader.has("private_key_passphrase_env") || reader.has("private_key_passphrase_secret");
  const passphraseRef = hasPassphrase
    ? readCredentialRef(reader, "private_key_passphrase", "the private key's passphrase")
    : undefined;
  const pem = credentialValue(context.credentials, keyRef, "snowflake");
  const passphrase =
    passphraseRef === undefined ? undefined : credentialValue(context.credentials, passphraseRef, "snowflake");
  // The key is read at the first request, not here: settings are checked (validate) with placeholder credentials.
  const loadAuth = (): KeyPairAuth => {
    try {
      return new KeyPairAuth(account, user, loadPrivateKey(pem, passphrase));
    } catch (error) {
      if (!(error instanceof PrivateKeyProblem)) throw error;
      throw reader.invalid(
        keyRef.field,
        `the private key in the ${keyRef.ref.via === "env" ? "environment variable" : "workspace secret"} ${keyRef.ref.name} ${error.message}`,
        error.fix,
        { [keyRef.ref.via]: keyRef.ref.name },
      );
    }
  };
  const api = {
    baseUrl,
    // The default transport is held to the outbound policy and to the API's origin: the JWT goes nowhere else.
    fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
    context: { warehouse, role, database, schema, queryTag },
  };
  return new SnowflakeDriver(
    api,
    loadAuth,
    common,
    `${new URL(baseUrl).host} ${database}${schema === undefined ? "" : `.${schema}`} as ${role}`,
  );
}

/**
 * An object name: 1 to 255 characters, no control character. Sent as is:
 * the SQL API's context fields are case-sensitive (an unquoted name is
 * stored upper-case: `ANALYTICS`, not `analytics`).
 */
function identifier(reader: ConfigReader, field: string, fix: string): string {
  const value = reader.string(field, fix);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
  if (value.length > 255 || /[\u0000-\u001f\u007f]/u.test(value)) {
    throw reader.invalid(field, `${show(value)} is not a Snowflake object name`, fix, { value });
  }
  return value;
}

function adminRoleRefused(role: string, through: string): ConnectorError {
  const direct = role === through;
  return new ConnectorError(
    "source_refused",
    `snowflake connector: role: ${show(role)} ${direct ? "is" : `is granted ${show(through)}, which is`} an administrative role; signal queries run on a role that can only read: create one (GRANT USAGE on the warehouse, database and schema, GRANT SELECT on the tables; docs/connectors.md) and name it in role`,
    { details: { connector: "snowflake", field: "role", value: role, adminRole: through } },
  );
}

/** `"NAME"`, with inner quotes doubled. */
function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `DB.ROLE` (as SHOW GRANTS names a database role) → `"DB"."ROLE"`. */
function quoteDatabaseRole(name: string): string {
  const dot = name.indexOf(".");
  return dot === -1 ? quoteName(name) : `${quoteName(name.slice(0, dot))}.${quoteName(name.slice(dot + 1))}`;
}

/** A statement in Snowflake's placeholders, its binds, and where each of its pieces came from. */
interface Rendered {
  readonly sql: string;
  readonly bindings: Binding[];
  /** Maps Snowflake's (line, 0-based position) in `sql` back to the user's line and column. */
  readonly positionOf: (line: number, position: number) => { line: number; column: number };
}

/**
 * Renders `statement` for the SQL API: each `:name` becomes positional `?`
 * placeholders and binds, in order.
 */
function renderForSnowflake(statement: NamedStatement, values: SqlParameterValues): Rendered {
  const bindings: Binding[] = [];
  const replacements: string[] = [];
  const list = (name: string, items: readonly string[] | undefined): string => {
    if (items === undefined || items.length === 0) throw new Error(`snowflake: no values for :${name}`);
    for (const item of items) bindings.push({ type: "TEXT", value: item });
    return items.map(() => "?").join(", ");
  };
  const sql = renderStatement(statement, (name) => {
    let text: string;
    switch (name) {
      case "experiment":
        bindings.push({ type: "TEXT", value: values.experiment ?? "" });
        text = "?";
        break;
      case "experiments":
        text = list(name, values.experiments);
        break;
      case "arms":
        text = list(name, values.arms);
        break;
      case "from":
      case "to":
        bindings.push({ type: "TEXT", value: isoWithOffset(name === "from" ? values.from : values.to) });
        text = TIMESTAMP_PLACEHOLDER;
        break;
      default:
        throw new Error(`snowflake: unknown parameter :${name}`);
    }
    replacements.push(text);
    return text;
  });
  const positionOf = (line: number, position: number): { line: number; column: number } => {
    // The offset in the statement sent, then back through the replacements to the statement as written.
    let offset = 0;
    for (let l = 1; l < line; l++) {
      const next = sql.indexOf("\n", offset);
      if (next === -1) break;
      offset = next + 1;
    }
    offset += position;
    let sent = 0;
    let written = 0;
    const uses: readonly ParameterUse[] = statement.uses;
    for (const [i, use] of uses.entries()) {
      const literal = use.start - written;
      if (offset < sent + literal) return lineColumn(statement.sql, written + (offset - sent));
      sent += literal;
      const replaced = replacements[i]?.length ?? 0;
      if (offset < sent + replaced) return lineColumn(statement.sql, use.start);
      sent += replaced;
      written = use.end;
    }
    return lineColumn(statement.sql, written + (offset - sent));
  };
  return { sql, bindings, positionOf };
}

/** `2026-03-01T12:00:00.000+00:00`: the form {@link TIMESTAMP_PLACEHOLDER} reads. */
function isoWithOffset(date: Date): string {
  return date.toISOString().replace(/Z$/u, "+00:00");
}

class SnowflakeDriver implements SqlDriver {
  readonly location: string;
  private readonly settings: Omit<SqlApiSettings, "auth">;
  private readonly loadAuth: () => KeyPairAuth;
  private readonly common: SqlCommonSettings;
  private loaded: SqlApiSettings | undefined;
  private checkedAt: number | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    settings: Omit<SqlApiSettings, "auth">,
    loadAuth: () => KeyPairAuth,
    common: SqlCommonSettings,
    location: string,
  ) {
    this.settings = settings;
    this.loadAuth = loadAuth;
    this.common = common;
    this.location = location;
  }

  /** The API settings with the key loaded (once). @throws ConnectorError `invalid_config` naming the key's setting */
  private get api(): SqlApiSettings {
    this.loaded ??= { ...this.settings, auth: this.loadAuth() };
    return this.loaded;
  }

  async run(request: SqlRequest): Promise<SqlRows> {
    const api = this.api;
    await this.ensureChecked();
    const rendered = renderForSnowflake(request.statement, request.values);
    const result = await executeStatement(api, {
      sql: rendered.sql,
      bindings: rendered.bindings,
      timeoutSeconds: request.timeoutMs / 1000,
      maxRows: request.maxRows,
      deadlineMs: request.timeoutMs + CLIENT_GRACE_MS,
      signal: request.signal,
      label: `snowflake ${request.field}`,
      field: request.field,
      positionOf: rendered.positionOf,
    });
    // Snowflake upper-cases unquoted names (AS units → UNITS); the result's columns are matched in lower case.
    return { fields: result.columns.map((c) => c.name.toLowerCase()), rows: result.rows };
  }

  /**
   * Checks the role now (and trusts it for ten minutes).
   *
   * @throws ConnectorError `source_refused` for a role that may do more than read; the errors of a statement
   */
  async check(signal: AbortSignal | undefined): Promise<void> {
    await this.inspectRole(this.api, signal);
    this.checkedAt = Date.now();
  }

  async close(): Promise<void> {
    // Nothing is held open: every request is its own HTTP exchange.
  }

  /** The role check before a read, when the last one is older than {@link ROLE_RECHECK_MS}; concurrent reads share one. */
  private async ensureChecked(): Promise<void> {
    if (this.checkedAt !== undefined && Date.now() - this.checkedAt < ROLE_RECHECK_MS) return;
    this.checking ??= this.check(undefined).finally(() => {
      this.checking = undefined;
    });
    await this.checking;
  }

  /**
   * Follows the role's grants (`SHOW GRANTS TO ROLE`, then to each role and
   * database role granted to it) and refuses any privilege outside
   * {@link READ_PRIVILEGES} and any administrative role.
   */
  private async inspectRole(api: SqlApiSettings, signal: AbortSignal | undefined): Promise<void> {
    const role = api.context.role;
    const queue: { kind: "ROLE" | "DATABASE ROLE"; name: string }[] = [{ kind: "ROLE", name: role }];
    const seen = new Set<string>();
    const offending: string[] = [];
    while (queue.length > 0) {
      const next = queue.shift() as { kind: "ROLE" | "DATABASE ROLE"; name: string };
      const key = `${next.kind} ${next.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (seen.size > MAX_ROLES_CHECKED) {
        throw new ConnectorError(
          "source_refused",
          `snowflake connector: role: ${show(role)} inherits more than ${MAX_ROLES_CHECKED} roles, too many to check; grant the connector's role its privileges directly (docs/connectors.md)`,
          { details: { connector: "snowflake", field: "role", value: role } },
        );
      }
      const quoted = next.kind === "ROLE" ? quoteName(next.name) : quoteDatabaseRole(next.name);
      const result = await executeStatement(api, {
        sql: `SHOW GRANTS TO ${next.kind} ${quoted}`,
        bindings: [],
        timeoutSeconds: Math.min(CHECK_TIMEOUT_SECONDS, this.common.timeoutMs / 1000),
        maxRows: 10_000,
        deadlineMs: Math.min(CHECK_TIMEOUT_SECONDS * 1000, this.common.timeoutMs) + CLIENT_GRACE_MS,
        signal,
        label: `snowflake role check (SHOW GRANTS TO ${next.kind} ${quoted})`,
      });
      const column = (name: string): number => result.columns.findIndex((c) => c.name.toLowerCase() === name);
      const [privilegeAt, grantedOnAt, nameAt] = [column("privilege"), column("granted_on"), column("name")];
      if (privilegeAt === -1 || grantedOnAt === -1 || nameAt === -1) {
        throw new ConnectorError(
          "bad_response",
          "snowflake role check: SHOW GRANTS answered without the privilege, granted_on and name columns; check api_url",
          { details: { columns: result.columns.map((c) => c.name) } },
        );
      }
      for (const row of result.rows) {
        const privilege = String(row[privilegeAt] ?? "").toUpperCase();
        const grantedOn = String(row[grantedOnAt] ?? "").toUpperCase();
        const name = String(row[nameAt] ?? "");
        if (privilege === "USAGE" && grantedOn === "ROLE") {
          if (ADMIN_ROLES.has(name.toUpperCase())) throw adminRoleRefused(role, name);
          queue.push({ kind: "ROLE", name });
        } else if (privilege === "USAGE" && grantedOn === "DATABASE_ROLE") {
          queue.push({ kind: "DATABASE ROLE", name });
        } else if (!READ_PRIVILEGES.has(privilege)) {
          offending.push(
            `${privilege} ON ${grantedOn.replaceAll("_", " ")} ${name}${next.name === role ? "" : ` (through ${next.kind.toLowerCase()} ${next.name})`}`,
          );
        }
      }
    }
    if (offending.length > 0) {
      throw new ConnectorError(
        "source_refused",
        `snowflake connector: role: ${show(role)} may do more than read: ${offending.slice(0, 5).join("; ")}${offending.length > 5 ? `; and ${offending.length - 5} more` : ""}. Signal queries run on a role that can only read: REVOKE these, or create a role with only USAGE on the warehouse, database and schema and SELECT on the tables (docs/connectors.md)`,
        { details: { connector: "snowflake", field: "role", value: role, privileges: offending } },
      );
    }
  }
}
