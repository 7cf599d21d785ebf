/**
 * A local stand-in for BigQuery's REST API v2 and Google's OAuth 2.0 token
 * endpoint, answering a test's queries from a function it sets. It follows
 * the published reference (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs,
 * read from the docs.cloud.google.com pages):
 *
 * - `POST /bigquery/v2/projects/{projectId}/jobs` (jobs.insert): a `Job`
 *   (`jobReference`, `configuration.query` with `query`, `useLegacySql`,
 *   `parameterMode`, `queryParameters`, `defaultDataset`,
 *   `maximumBytesBilled`; `configuration.dryRun`, `labels`, `jobTimeoutMs`);
 *   answers the `Job` resource: `status.state` PENDING/RUNNING/DONE,
 *   `status.errorResult` and `errors` when it failed, `statistics`
 *   (`totalBytesProcessed`, `query.statementType`, `query.totalBytesProcessed`).
 *   A dry run is answered at once (DONE, statistics only, nothing created);
 *   an invalid dry run is an HTTP error. `409 duplicate` for a job id in use.
 * - `POST .../queries` (jobs.query): a `QueryRequest`; answers a
 *   `QueryResponse` (`jobReference`, `jobComplete`, `schema`, `rows`,
 *   `totalRows`, `pageToken`, `totalBytesProcessed`); a failed query is an
 *   HTTP error; a dry run answers `jobComplete: true` and the bytes.
 * - `GET .../jobs/{jobId}` (jobs.get), `POST .../jobs/{jobId}/cancel`
 *   (jobs.cancel: `{ kind, job }`; the job ends with reason `stopped`).
 * - `GET .../queries/{jobId}` (jobs.getQueryResults): `timeoutMs`,
 *   `maxResults`, `pageToken`, `startIndex`, `location`,
 *   `formatOptions.useInt64Timestamp`; `jobComplete: false` for the first
 *   `polls` calls of a slow job; rows as `{ f: [{ v }] }` with every value
 *   a string (a TIMESTAMP in microseconds with `useInt64Timestamp`, else in
 *   seconds); a failed job's error as an HTTP error.
 * - Errors in BigQuery's shape, `{ error: { code, message, errors: [{ message,
 *   domain, reason, location? }], status } }`, with the documented status of
 *   each reason (https://cloud.google.com/bigquery/docs/error-messages); a
 *   job location other than the request's is `404 notFound`, another project
 *   `403 accessDenied`, a missing or unknown token `401 authError`.
 * - `POST /token`: the service-account JWT bearer grant
 *   (https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
 *   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`,
 *   the JWT checked (RS256 signature of the fake's service account, `iss`,
 *   `aud` this endpoint, `scope`, `exp` at most an hour after `iat`); answers
 *   `{ access_token, expires_in, token_type }`, else `400 { error, error_description }`.
 *
 * The client's own requests (`@google-cloud/bigquery` 8.3.1: `createQueryJob`,
 * `query`, `job.getQueryResults`, `job.cancel`, `job.getMetadata`) are what it
 * answers. Every request is recorded, so tests count what a read costs.
 */
import { createVerify, generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A request as the fake received it. */
export interface FakeBigQueryRequest {
  readonly method: string;
  /** The path: `/token`, or below `/bigquery/v2`, e.g. `/projects/p/jobs`. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The JSON (or form) body, parsed; undefined when empty. */
  readonly body: unknown;
  readonly authorization: string | undefined;
}

/** A query as a test's `answer` sees it: the SQL and its parameters decoded. */
export interface FakeBigQueryQuery {
  readonly sql: string;
  /** Named parameters: STRING → string, ARRAY<STRING> → string[], TIMESTAMP → Date, INT64/FLOAT64 → number. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Each parameter's type as sent, e.g. `STRING`, `ARRAY<STRING>`, `TIMESTAMP`. */
  readonly types: Readonly<Record<string, string>>;
  readonly dryRun: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly maximumBytesBilled: number | undefined;
  readonly jobTimeoutMs: number | undefined;
  readonly location: string | undefined;
  readonly defaultDataset: { readonly projectId?: string; readonly datasetId?: string } | undefined;
  readonly method: "jobs.insert" | "jobs.query";
}

/** A column of a result: a name (its type inferred from the values), or a name and a BigQuery type. */
export type FakeBigQueryColumn = string | { readonly name: string; readonly type: string };

/** A BigQuery error, as `ErrorProto` has it, with the HTTP status it comes with (default: the reason's). */
export interface FakeBigQueryError {
  readonly reason: string;
  readonly message: string;
  readonly location?: string;
  readonly status?: number;
}

/** What a query gives. */
export interface FakeBigQueryResult {
  readonly columns?: readonly FakeBigQueryColumn[];
  /** Rows of JS values: numbers, strings, Dates, booleans, null. */
  readonly rows?: readonly (readonly unknown[])[];
  /** What the query scans (default 10 MB); over `maximumBytesBilled`, a real job fails with `bytesBilledLimitExceeded`. */
  readonly bytesProcessed?: number;
  /** `statistics.query.statementType`; default from the first keyword (SELECT, WITH → SELECT; several statements → SCRIPT). */
  readonly statementType?: string;
  /** How many `getQueryResults` calls answer `jobComplete: false` first (a slow job). */
  readonly polls?: number;
  /** The query fails with this: a dry run or jobs.query at once, a job once its `polls` are over. */
  readonly error?: FakeBigQueryError;
}

/**
 * What a test may put in place of the fake's own answer: `null` to answer
 * normally; else a status, a body (a string is sent as is) and headers, or
 * only `delayMs` to answer normally after a while.
 */
export type FakeBigQueryOverride = (
  request: FakeBigQueryRequest,
) => { status?: number; body?: unknown; headers?: Record<string, string>; delayMs?: number } | null;

/** A job the fake holds. */
export interface FakeBigQueryJob {
  readonly jobId: string;
  readonly location: string;
  readonly query: FakeBigQueryQuery;
  readonly result: FakeBigQueryResult;
  state: "RUNNING" | "DONE";
  pollsLeft: number;
  error: FakeBigQueryError | undefined;
  cancelled: boolean;
  readonly createdAt: number;
}

export interface FakeBigQuery {
  /** The API endpoint to give the client (`apiEndpoint`): `http://127.0.0.1:<port>`. */
  readonly apiEndpoint: string;
  /** The token endpoint, `http://127.0.0.1:<port>/token`. */
  readonly tokenUrl: string;
  /** The project the service account may use. */
  readonly projectId: string;
  readonly clientEmail: string;
  /** Answers each query; set by tests (default: a query that returns no rows). */
  answer: (query: FakeBigQueryQuery) => FakeBigQueryResult;
  /** Replaces answers (abuse cases); `null` answers normally. */
  override: FakeBigQueryOverride | null;
  /** The lifetime of the tokens issued, seconds (default 3599, as Google's). */
  tokenLifetimeSeconds: number;
  /**
   * The most rows one page holds whatever `maxResults` asks (BigQuery stops a
   * page at 10 MB); default no limit but `maxResults`.
   */
  maxPageRows: number;
  /** Every request received, in order. */
  readonly requests: FakeBigQueryRequest[];
  /** Every job created (dry runs are not jobs), by id. */
  readonly jobs: Map<string, FakeBigQueryJob>;
  /**
   * The service account's key file, as Google issues it (`type`, `project_id`,
   * `private_key_id`, `private_key`, `client_email`, `token_uri` this fake's, ...),
   * with `changes` applied (a key of another account, another token_uri).
   */
  serviceAccountKey(changes?: Record<string, unknown>): string;
  /** Requests to the API (not the token endpoint) whose path ends with `suffix`, e.g. `/cancel`. */
  calls(method: string, suffix: RegExp): FakeBigQueryRequest[];
  close(): Promise<void>;
}

/** The HTTP status of each documented reason (https://cloud.google.com/bigquery/docs/error-messages). */
const REASON_STATUS: Readonly<Record<string, number>> = {
  accessDenied: 403,
  backendError: 503,
  billingNotEnabled: 403,
  blocked: 403,
  duplicate: 409,
  internalError: 500,
  notFound: 404,
  quotaExceeded: 403,
  rateLimitExceeded: 403,
  responseTooLarge: 403,
  authError: 401,
};

const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** BigQuery bills at least 10 MB per query, rounded up to a whole MB. */
const MIN_BILLED_BYTES = 10 * 1024 * 1024;

/**
 * Starts the fake on a free loopback port, with a service account of its own
 * (a fresh RSA key) that may use `projectId`.
 */
export async function startFakeBigQuery(
  options: { readonly projectId?: string; readonly clientEmail?: string } = {},
): Promise<FakeBigQuery> {
  const projectId = options.projectId ?? "acme-analytics";
  const clientEmail = options.clientEmail ?? `outcome-runtime-reader@${projectId}.iam.gserviceaccount.com`;
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privateKeyId = randomUUID().replaceAll("-", "");
  const tokens = new Map<string, number>();
  const fake: FakeBigQuery = {
    apiEndpoint: "",
    tokenUrl: "",
    projectId,
    clientEmail,
    answer: () => ({ columns: [], rows: [] }),
    override: null,
    tokenLifetimeSeconds: 3599,
    maxPageRows: Number.POSITIVE_INFINITY,
    requests: [],
    jobs: new Map(),
    serviceAccountKey: (changes = {}) =>
      JSON.stringify({
        type: "service_account",
        project_id: projectId,
        private_key_id: privateKeyId,
        private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        client_email: clientEmail,
        client_id: "103958271150238475012",
        auth_uri: "https://accounts.google.com/o/oauth2/auth",
        token_uri: fake.tokenUrl,
        auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
        client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
        universe_domain: "googleapis.com",
        ...changes,
      }),
    calls: (method, suffix) =>
      fake.requests.filter((r) => r.method === method && r.path !== "/token" && suffix.test(r.path)),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void readBody(req).then((raw) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const path = url.pathname.replace(/^\/bigquery\/v2/u, "");
      const contentType = req.headers["content-type"] ?? "";
      let body: unknown;
      if (raw !== "") {
        try {
          body = contentType.includes("application/x-www-form-urlencoded")
            ? Object.fromEntries(new URLSearchParams(raw))
            : JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
      const request: FakeBigQueryRequest = {
        method: req.method ?? "GET",
        path,
        query: url.searchParams,
        body,
        authorization: req.headers.authorization,
      };
      fake.requests.push(request);
      const replaced = fake.override?.(request) ?? null;
      const reply = (): void => {
        if (replaced !== null && (replaced.status !== undefined || replaced.body !== undefined)) {
          send(res, replaced.status ?? 200, replaced.body ?? "", replaced.headers);
          return;
        }
        if (url.pathname === "/token" && request.method === "POST") {
          const answer = grant(request, fake, publicKey, tokens);
          send(res, answer.status, answer.body);
          return;
        }
        const auth = /^Bearer (.+)$/u.exec(request.authorization ?? "");
        const expiry = auth === null ? undefined : tokens.get(auth[1] ?? "");
        if (!url.pathname.startsWith("/bigquery/v2/")) {
          sendError(res, { reason: "notFound", message: `Not found: ${url.pathname}`, status: 404 });
        } else if (expiry === undefined || expiry <= Date.now()) {
          sendError(res, {
            reason: "authError",
            message:
              "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            location: "Authorization",
            status: 401,
          });
        } else {
          const answer = route(fake, request);
          if ("error" in answer) sendError(res, answer.error);
          else send(res, 200, answer.body);
        }
      };
      if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
      else reply();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(fake, { apiEndpoint: origin, tokenUrl: `${origin}/token` });
  return fake;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => resolve(""));
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=UTF-8", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

/** The error answer in BigQuery's shape. */
function sendError(res: ServerResponse, error: FakeBigQueryError): void {
  const status = error.status ?? REASON_STATUS[error.reason] ?? 400;
  send(res, status, {
    error: {
      code: status,
      message: error.message,
      errors: [
        {
          message: error.message,
          domain: "global",
          reason: error.reason,
          ...(error.location === undefined ? {} : { location: error.location, locationType: "other" }),
        },
      ],
      status: STATUS_NAMES[status] ?? "UNKNOWN",
    },
  });
}

/** The token endpoint: a JWT bearer grant, checked as Google checks it. */
function grant(
  request: FakeBigQueryRequest,
  fake: FakeBigQuery,
  publicKey: KeyObject,
  tokens: Map<string, number>,
): { status: number; body: unknown } {
  const form = (request.body ?? {}) as Record<string, string>;
  const refuse = (error: string, description: string) => ({
    status: 400,
    body: { error, error_description: description },
  });
  if (form.grant_type !== JWT_BEARER)
    return refuse("unsupported_grant_type", `Invalid grant_type: ${form.grant_type ?? ""}`);
  const parts = (form.assertion ?? "").split(".");
  if (parts.length !== 3) return refuse("invalid_request", "Invalid JWT: the assertion is not a JWT.");
  const [header, claims, signature] = parts as [string, string, string];
  const verified = createVerify("RSA-SHA256")
    .update(`${header}.${claims}`)
    .verify(publicKey, Buffer.from(signature, "base64url"));
  if (!verified) return refuse("invalid_grant", "Invalid JWT Signature.");
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(Buffer.from(claims, "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return refuse("invalid_grant", "Invalid JWT: the claims are not JSON.");
  }
  const now = Math.floor(Date.now() / 1000);
  const iat = Number(payload.iat);
  const exp = Number(payload.exp);
  if (payload.iss !== fake.clientEmail) return refuse("invalid_grant", "Invalid grant: account not found");
  if (payload.aud !== fake.tokenUrl)
    return refuse("invalid_grant", "Invalid JWT: the audience is not this token endpoint.");
  if (typeof payload.scope !== "string" || payload.scope === "")
    return refuse("invalid_scope", "Empty or missing scope not allowed.");
  if (!(exp > now) || !(exp - iat <= 3600) || iat > now + 300) {
    return refuse(
      "invalid_grant",
      "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
    );
  }
  const token = `ya29.fake-${randomUUID()}`;
  tokens.set(token, Date.now() + fake.tokenLifetimeSeconds * 1000);
  return { status: 200, body: { access_token: token, expires_in: fake.tokenLifetimeSeconds, token_type: "Bearer" } };
}

type Routed = { body: unknown } | { error: FakeBigQueryError };

function route(fake: FakeBigQuery, request: FakeBigQueryRequest): Routed {
  const match = /^\/projects\/([^/]+)\/(jobs|queries)(?:\/([^/]+))?(\/cancel)?$/u.exec(request.path);
  if (match === null) return { error: { reason: "notFound", message: `Not found: ${request.path}`, status: 404 } };
  const [, project, collection, jobId, cancel] = match;
  if (project !== fake.projectId) {
    return {
      error: {
        reason: "accessDenied",
        message: `Access Denied: Project ${project}: User does not have bigquery.jobs.create permission in project ${project}.`,
      },
    };
  }
  if (collection === "jobs" && jobId === undefined && request.method === "POST") return insert(fake, request);
  if (collection === "queries" && jobId === undefined && request.method === "POST") return query(fake, request);
  const job = jobId === undefined ? undefined : fake.jobs.get(decodeURIComponent(jobId));
  const location = request.query.get("location");
  if (job === undefined || (location !== null && location.toUpperCase() !== job.location.toUpperCase())) {
    return {
      error: { reason: "notFound", message: `Not found: Job ${fake.projectId}:${location ?? "US"}.${jobId ?? ""}` },
    };
  }
  if (collection === "jobs" && cancel !== undefined && request.method === "POST") {
    if (job.state !== "DONE") {
      job.state = "DONE";
      job.cancelled = true;
      job.error = { reason: "stopped", message: "Job execution was cancelled: User requested cancellation" };
    }
    return { body: { kind: "bigquery#jobCancelResponse", job: resource(fake, job) } };
  }
  if (collection === "jobs" && request.method === "GET") return { body: resource(fake, job) };
  if (collection === "queries" && request.method === "GET") return results(fake, job, request.query);
  return { error: { reason: "notFound", message: `Not found: ${request.method} ${request.path}`, status: 404 } };
}

/** The query of a `JobConfigurationQuery` or a `QueryRequest`, checked and decoded. */
function decode(
  config: Record<string, unknown>,
  extra: {
    dryRun: boolean;
    labels: unknown;
    jobTimeoutMs: unknown;
    location: string | undefined;
    method: FakeBigQueryQuery["method"];
  },
): FakeBigQueryQuery | FakeBigQueryError {
  const sql = config.query;
  if (typeof sql !== "string" || sql.trim() === "")
    return { reason: "invalid", message: "Required parameter is missing: query" };
  if (config.useLegacySql !== false) {
    return { reason: "invalidQuery", message: "This fake answers GoogleSQL only: set useLegacySql: false" };
  }
  const labels = (extra.labels ?? {}) as Record<string, string>;
  for (const [key, value] of Object.entries(labels)) {
    if (
      !/^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u.test(key) ||
      !/^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u.test(String(value))
    ) {
      return { reason: "invalid", message: `Invalid label: ${key}: ${String(value)}` };
    }
  }
  const params: Record<string, unknown> = {};
  const types: Record<string, string> = {};
  const list = Array.isArray(config.queryParameters) ? (config.queryParameters as Record<string, unknown>[]) : [];
  if (list.length > 0 && config.parameterMode !== "NAMED" && config.parameterMode !== "named") {
    return { reason: "invalid", message: "parameterMode must be NAMED for named parameters" };
  }
  for (const parameter of list) {
    const name = String(parameter.name ?? "");
    const type = (parameter.parameterType ?? {}) as { type?: string; arrayType?: { type?: string } };
    const value = (parameter.parameterValue ?? {}) as { value?: string; arrayValues?: { value?: string }[] };
    if (type.type === "ARRAY") {
      const element = type.arrayType?.type ?? "STRING";
      types[name] = `ARRAY<${element}>`;
      params[name] = (value.arrayValues ?? []).map((v) => scalar(element, v.value));
    } else {
      types[name] = type.type ?? "STRING";
      params[name] = scalar(type.type ?? "STRING", value.value);
    }
  }
  // Every @name the query uses must be given (outside strings, quoted names and comments).
  const bare = sql
    .replaceAll(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`/gu, (m) => " ".repeat(m.length))
    .replaceAll(/(?:--|#)[^\n]*/gu, (m) => " ".repeat(m.length));
  for (const use of bare.matchAll(/(?<!@)@([A-Za-z_][A-Za-z0-9_]*)/gu)) {
    if (!Object.hasOwn(params, use[1] ?? "")) {
      const { line, column } = lineColumn(sql, use.index ?? 0);
      return {
        reason: "invalidQuery",
        message: `Query parameter '${use[1]}' not found at [${line}:${column}]`,
        location: "query",
      };
    }
  }
  const maximum = config.maximumBytesBilled === undefined ? undefined : Number(config.maximumBytesBilled);
  const timeout = extra.jobTimeoutMs === undefined ? undefined : Number(extra.jobTimeoutMs);
  return {
    sql,
    params,
    types,
    dryRun: extra.dryRun,
    labels,
    maximumBytesBilled: maximum,
    jobTimeoutMs: timeout,
    location: extra.location,
    defaultDataset: config.defaultDataset as FakeBigQueryQuery["defaultDataset"],
    method: extra.method,
  };
}

function scalar(type: string, value: string | undefined): unknown {
  if (value === undefined || value === null) return null;
  if (type === "TIMESTAMP") return new Date(value.replace(" ", "T"));
  if (type === "INT64" || type === "FLOAT64" || type === "NUMERIC") return Number(value);
  if (type === "BOOL") return value === "true";
  return value;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

/** The statement type BigQuery would report, from the first keyword. */
function statementTypeOf(sql: string): string {
  const body = sql.replace(/;\s*$/u, "");
  if (body.includes(";")) return "SCRIPT";
  const word =
    /^\s*(?:(?:--|#)[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*\(*\s*([A-Za-z]+)/u.exec(body)?.[1]?.toUpperCase() ?? "";
  if (word === "SELECT" || word === "WITH" || word === "FROM") return "SELECT";
  if (word === "CREATE") return "CREATE_TABLE_AS_SELECT";
  return word;
}

/** The answer of the test's function, with the fake's defaults and the cost guard applied. */
function evaluate(
  fake: FakeBigQuery,
  query: FakeBigQueryQuery,
): { result: FakeBigQueryResult; bytes: number; type: string } {
  const result = fake.answer(query);
  return {
    result,
    bytes: result.bytesProcessed ?? 10 * 1000 * 1000,
    type: result.statementType ?? statementTypeOf(query.sql),
  };
}

/** The error a real job of `bytes` gets under `maximumBytesBilled`, if any. */
function billed(query: FakeBigQueryQuery, bytes: number): FakeBigQueryError | undefined {
  if (query.maximumBytesBilled === undefined) return undefined;
  const billedBytes = Math.max(MIN_BILLED_BYTES, Math.ceil(bytes / (1024 * 1024)) * 1024 * 1024);
  if (billedBytes <= query.maximumBytesBilled) return undefined;
  return {
    reason: "bytesBilledLimitExceeded",
    message: `Query exceeded limit for bytes billed: ${query.maximumBytesBilled}. ${billedBytes} or higher required.`,
  };
}

function insert(fake: FakeBigQuery, request: FakeBigQueryRequest): Routed {
  const job = (request.body ?? {}) as {
    jobReference?: { projectId?: string; jobId?: string; location?: string };
    configuration?: { query?: Record<string, unknown>; dryRun?: boolean; labels?: unknown; jobTimeoutMs?: unknown };
  };
  const config = job.configuration ?? {};
  if (config.query === undefined)
    return {
      error: {
        reason: "invalid",
        message:
          "Job configuration must contain exactly one job-specific configuration object (e.g., query, load, extract, copy).",
      },
    };
  const location = job.jobReference?.location ?? "US";
  const query = decode(config.query, {
    dryRun: config.dryRun === true,
    labels: config.labels,
    jobTimeoutMs: config.jobTimeoutMs,
    location,
    method: "jobs.insert",
  });
  if ("reason" in query) return { error: query };
  const { result, bytes, type } = evaluate(fake, query);
  if (query.dryRun) {
    if (result.error !== undefined) return { error: result.error };
    return {
      body: {
        kind: "bigquery#job",
        jobReference: { projectId: fake.projectId, location },
        configuration: { ...config, jobType: "QUERY" },
        status: { state: "DONE" },
        statistics: {
          creationTime: String(Date.now()),
          totalBytesProcessed: String(bytes),
          query: {
            totalBytesProcessed: String(bytes),
            totalBytesProcessedAccuracy: "PRECISE",
            statementType: type,
            cacheHit: false,
          },
        },
      },
    };
  }
  const jobId = job.jobReference?.jobId ?? `job_${randomUUID().replaceAll("-", "")}`;
  if (fake.jobs.has(jobId)) {
    return { error: { reason: "duplicate", message: `Already Exists: Job ${fake.projectId}:${location}.${jobId}` } };
  }
  const created = createJob(fake, jobId, location, query, result, bytes);
  return { body: resource(fake, created) };
}

function createJob(
  fake: FakeBigQuery,
  jobId: string,
  location: string,
  query: FakeBigQueryQuery,
  result: FakeBigQueryResult,
  bytes: number,
): FakeBigQueryJob {
  // A job that would bill more than its guard never runs.
  const refused = billed(query, bytes);
  const polls = refused === undefined ? Math.max(0, result.polls ?? 0) : 0;
  const job: FakeBigQueryJob = {
    jobId,
    location,
    query,
    result,
    state: polls > 0 ? "RUNNING" : "DONE",
    pollsLeft: polls,
    error: refused ?? (polls > 0 ? undefined : result.error),
    cancelled: false,
    createdAt: Date.now(),
  };
  fake.jobs.set(jobId, job);
  return job;
}

/** The `Job` resource of a job. */
function resource(fake: FakeBigQuery, job: FakeBigQueryJob): unknown {
  const bytes = job.result.bytesProcessed ?? 10 * 1000 * 1000;
  return {
    kind: "bigquery#job",
    id: `${fake.projectId}:${job.location}.${job.jobId}`,
    jobReference: { projectId: fake.projectId, jobId: job.jobId, location: job.location },
    configuration: {
      jobType: "QUERY",
      labels: job.query.labels,
      ...(job.query.jobTimeoutMs === undefined ? {} : { jobTimeoutMs: String(job.query.jobTimeoutMs) }),
      query: {
        query: job.query.sql,
        useLegacySql: false,
        ...(job.query.maximumBytesBilled === undefined
          ? {}
          : { maximumBytesBilled: String(job.query.maximumBytesBilled) }),
      },
    },
    status:
      job.error === undefined
        ? { state: job.state }
        : {
            state: "DONE",
            errorResult: {
              reason: job.error.reason,
              message: job.error.message,
              ...(job.error.location === undefined ? {} : { location: job.error.location }),
            },
            errors: [{ reason: job.error.reason, message: job.error.message }],
          },
    statistics: {
      creationTime: String(job.createdAt),
      ...(job.state === "DONE" && job.error === undefined
        ? {
            totalBytesProcessed: String(bytes),
            query: {
              totalBytesProcessed: String(bytes),
              statementType: job.result.statementType ?? statementTypeOf(job.query.sql),
            },
          }
        : {}),
    },
    user_email: fake.clientEmail,
  };
}

/** `jobs.query`: runs the query and answers its first page, or `jobComplete: false`. */
function query(fake: FakeBigQuery, request: FakeBigQueryRequest): Routed {
  const body = (request.body ?? {}) as Record<string, unknown>;
  const location = typeof body.location === "string" ? body.location : "US";
  const decoded = decode(body, {
    dryRun: body.dryRun === true,
    labels: body.labels,
    jobTimeoutMs: body.jobTimeoutMs,
    location,
    method: "jobs.query",
  });
  if ("reason" in decoded) return { error: decoded };
  const { result, bytes } = evaluate(fake, decoded);
  if (result.error !== undefined && (decoded.dryRun || (result.polls ?? 0) === 0)) return { error: result.error };
  if (decoded.dryRun) {
    return {
      body: {
        kind: "bigquery#queryResponse",
        jobReference: { projectId: fake.projectId, location },
        schema: { fields: schemaOf(result) },
        totalBytesProcessed: String(bytes),
        jobComplete: true,
        cacheHit: false,
      },
    };
  }
  const refused = billed(decoded, bytes);
  if (refused !== undefined) return { error: refused };
  const job = createJob(fake, `job_${randomUUID().replaceAll("-", "")}`, location, decoded, result, bytes);
  const format = (body.formatOptions ?? {}) as { useInt64Timestamp?: boolean };
  const params = new URLSearchParams();
  if (typeof body.maxResults === "number") params.set("maxResults", String(body.maxResults));
  if (format.useInt64Timestamp === true) params.set("formatOptions.useInt64Timestamp", "true");
  const first = results(fake, job, params);
  if ("error" in first) return first;
  return { body: { ...(first.body as object), kind: "bigquery#queryResponse", queryId: job.jobId, location } };
}

/** `jobs.getQueryResults`: a poll of a running job, the job's error, or a page of its rows. */
function results(fake: FakeBigQuery, job: FakeBigQueryJob, query: URLSearchParams): Routed {
  const reference = { projectId: fake.projectId, jobId: job.jobId, location: job.location };
  if (job.state === "RUNNING") {
    const timeout = job.query.jobTimeoutMs;
    if (timeout !== undefined && Date.now() - job.createdAt > timeout) {
      job.state = "DONE";
      job.error = {
        reason: "timeout",
        message: `Job execution was cancelled: Job timed out after ${Math.round(timeout / 1000)} sec`,
      };
    } else if (job.pollsLeft > 0) {
      job.pollsLeft--;
      return { body: { kind: "bigquery#getQueryResultsResponse", jobReference: reference, jobComplete: false } };
    } else {
      job.state = "DONE";
      job.error = job.result.error;
    }
  }
  if (job.error !== undefined) return { error: job.error };
  const rows = job.result.rows ?? [];
  const fields = schemaOf(job.result);
  const start = Number(
    query.get("pageToken") === null ? (query.get("startIndex") ?? 0) : offsetOf(query.get("pageToken") ?? "", job),
  );
  const max = Math.min(
    fake.maxPageRows,
    query.get("maxResults") === null ? rows.length : Number(query.get("maxResults")),
  );
  const page = rows.slice(start, start + max);
  const micros = query.get("formatOptions.useInt64Timestamp") === "true";
  const next = start + page.length;
  return {
    body: {
      kind: "bigquery#getQueryResultsResponse",
      etag: `"${randomUUID()}"`,
      schema: { fields },
      jobReference: reference,
      totalRows: String(rows.length),
      ...(page.length === 0
        ? {}
        : { rows: page.map((row) => ({ f: row.map((value, i) => ({ v: cell(fields[i]?.type, value, micros) })) })) }),
      ...(next < rows.length ? { pageToken: Buffer.from(`${job.jobId}:${next}`).toString("base64url") } : {}),
      totalBytesProcessed: String(job.result.bytesProcessed ?? 10 * 1000 * 1000),
      jobComplete: true,
      cacheHit: false,
    },
  };
}

function offsetOf(token: string, job: FakeBigQueryJob): number {
  const [jobId, offset] = Buffer.from(token, "base64url").toString("utf8").split(":");
  return jobId === job.jobId ? Number(offset) : 0;
}

/** The `TableSchema` fields of a result: the columns as given, types inferred from the first value. */
function schemaOf(result: FakeBigQueryResult): { name: string; type: string; mode: string }[] {
  return (result.columns ?? []).map((column, i) => {
    if (typeof column !== "string") return { name: column.name, type: column.type, mode: "NULLABLE" };
    const sample = (result.rows ?? []).map((row) => row[i]).find((v) => v !== null && v !== undefined);
    const type =
      sample instanceof Date
        ? "TIMESTAMP"
        : typeof sample === "number"
          ? Number.isInteger(sample)
            ? "INTEGER"
            : "FLOAT"
          : typeof sample === "boolean"
            ? "BOOLEAN"
            : "STRING";
    return { name: column, type, mode: "NULLABLE" };
  });
}

/** A value as the REST API writes it: a string (or null). */
function cell(type: string | undefined, value: unknown, micros: boolean): string | null {
  if (value === null || value === undefined) return null;
  if (type === "TIMESTAMP") {
    const ms = value instanceof Date ? value.getTime() : Date.parse(String(value));
    return micros ? `${BigInt(ms) * 1000n}` : (ms / 1000).toExponential().replace("e+", "E");
  }
  return String(value);
}
