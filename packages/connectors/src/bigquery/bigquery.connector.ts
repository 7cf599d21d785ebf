/**
 * `bigquery`: the user's own GoogleSQL on BigQuery, through the SQL-source
 * connector (`sql/sql-source.ts`: settings, static checks, the batched and
 * one-experiment forms, concurrency, retries) and this driver.
 *
 * What it sends, and why (sources: the REST reference,
 * https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs, pages
 * `insert`, `getQueryResults`, `cancel` and the `Job` resource; and the
 * client's own source, `@google-cloud/bigquery` 8.3.1 `build/src/bigquery.js`
 * `createQueryJob`/`createJob` and `build/src/job.js`, which show the exact
 * requests it makes):
 *
 * 1. **A dry run, once per query** (`jobs.insert` with
 *    `configuration.dryRun`): BigQuery has no read-only session, so the
 *    statement's `statistics.query.statementType` must be `SELECT`
 *    (else `read_only_violation`), and its `statistics.totalBytesProcessed`
 *    at most `maximum_bytes_billed` (else `cost_exceeded`), before any job
 *    runs. The query text never changes, so a SELECT confirmed stays
 *    confirmed for the connector's life; a failed dry run is tried again.
 * 2. **The job** (`jobs.insert`, `POST /projects/{p}/jobs`), with a job id of
 *    our own (`outcome_runtime_<uuid>`), the named parameters through the
 *    client's `params` and `types`, `maximumBytesBilled` (on every job:
 *    BigQuery then refuses a job that would bill more, before any charge),
 *    the job `labels`, `jobTimeoutMs`, `location` and `defaultDataset`.
 *    Not `jobs.query`, which would save a round trip for a small result: its
 *    job id is BigQuery's, known only once it answers, so a read aborted
 *    while it waits (up to its `timeoutMs`) could not cancel its job; and its
 *    dry run gives no `statementType`.
 * 3. **Its results** (`jobs.getQueryResults`, `GET /projects/{p}/queries/{job}`)
 *    with `timeoutMs` (at most 10 s per call, the API's default; polled while
 *    `jobComplete` is false), `maxResults` and `pageToken`: at most
 *    `max_rows + 1` rows are ever asked for, and a `totalRows` above
 *    `max_rows` stops at once (`too_many_rows`).
 * 4. **`jobs.cancel`** when the read is aborted, runs past `timeout`, or fails
 *    while the job may still run.
 *
 * A request cannot be aborted through the client: its transport
 * (teeny-request on node-fetch 3) takes neither a signal nor a timeout. So a
 * read that is aborted or runs past `timeout` stops waiting at once and
 * cancels its job; the request in flight ends when BigQuery answers it (a
 * `getQueryResults` call waits at most 10 s).
 *
 * The client's own retries are turned off (`retryOptions.autoRetry: false`):
 * `sql-source.ts` retries `rate_limited` and `unavailable`, in one place for
 * all SQL sources, with backoff, within the poll's abort signal and budget. The
 * client's retries (3 by default, on 429, 5xx and `rateLimitExceeded`) would
 * multiply those (4 × 4 requests for one read), could not be aborted, and
 * would spend the poll's time where nobody sees it.
 */
import { randomUUID } from "node:crypto";
import { BigQuery } from "@google-cloud/bigquery";
import { checkOutboundUrl, defaultOutboundPolicy, guardedFetch, OutboundBlockedError } from "@outcome-runtime/netguard";
import { type ConfigReader, show } from "../config-reader";
import type { ConnectorContext, CostEstimate } from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialRequirements, credentialValue } from "../credentials";
import { renderStatement, type SqlLexicon } from "../sql/named-parameters";
import type { SqlRows } from "../sql/result-rows";
import type { SqlCommonSettings, SqlDriver, SqlRequest, SqlSourceDefinition } from "../sql/sql-source";
import { vendorApiUrl } from "../vendor-hosts";
import { bigQueryError, type ErrorContext, errorOfProto, formatBytes, READ_LESS } from "./bigquery-errors";
import {
  type AccessToken,
  fetchAccessToken,
  GOOGLE_TOKEN_URL,
  type KeyOrigin,
  parseServiceAccountKey,
  readKeyFile,
  type ServiceAccountKey,
  tokenAuthClient,
} from "./service-account";

/** BigQuery's documented API endpoint; the client adds `/bigquery/v2`. */
const BIGQUERY_API_ENDPOINT = "https://bigquery.googleapis.com";

/** Default `maximum_bytes_billed`: 10 GB. */
const DEFAULT_MAXIMUM_BYTES_BILLED = 10_000_000_000;
/** BigQuery bills at least 10 MB per query: a lower guard would refuse every query. */
const MIN_MAXIMUM_BYTES_BILLED = 10 * 1024 * 1024;
/** 1 PB: more is not a guard. */
const MAX_MAXIMUM_BYTES_BILLED = 1e15;

/** The label each job gets besides `labels`: `signal` (the `query`) or `series` (the `series_query`). */
const READ_LABEL = "outcome_runtime_read";
/** Labels every job carries; `labels` adds to them (and may replace `app`). */
const DEFAULT_JOB_LABELS: Readonly<Record<string, string>> = Object.freeze({ app: "outcome-runtime" });
/** At most 64 labels per resource (https://cloud.google.com/bigquery/docs/labels-intro#requirements). */
const MAX_LABELS = 64;
/** A label key: 1 to 63 lowercase letters (international ones too), digits, `_` and `-`, starting with a letter. */
const LABEL_KEY = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
/** A label value: 0 to 63 of the same characters. */
const LABEL_VALUE = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;

/** How long one `getQueryResults` call may wait for the job, ms: the API's default. */
const POLL_WAIT_MS = 10_000;
/** Rows asked for per page at most. */
const PAGE_ROWS = 10_000;
/** The prefix of every job id (`INFORMATION_SCHEMA.JOBS` finds them by it, and by the labels). */
const JOB_ID_PREFIX = "outcome_runtime_";

/** A project id, or a domain-scoped one (`example.com:analytics`). */
const PROJECT_ID = /^(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/u;
/** A location: `US`, `EU`, or a region such as `europe-west4`. */
const LOCATION = /^[A-Za-z]+(?:-[A-Za-z]+[0-9]+)?$/u;
/** A dataset id. */
const DATASET_ID = /^[A-Za-z0-9_]{1,1024}$/u;

/**
 * GoogleSQL's lexical rules as far as finding `:name` needs them: backquoted
 * names, '...' and "..." strings with backslash escapes, `#` comments.
 */
const BIGQUERY_LEXICON: SqlLexicon = Object.freeze({
  identifierQuotes: ["`"],
  stringQuotes: ["'", '"'],
  backslashEscapes: true,
  hashComments: true,
  dollarStrings: false,
  dashCommentNeedsSpace: false,
  slashComments: false,
  executableComments: false,
});

/** The BigQuery type of each parameter (`:experiments` → `@experiments ARRAY<STRING>`). */
const PARAMETER_TYPES: Readonly<Record<string, string | string[]>> = Object.freeze({
  experiment: "STRING",
  experiments: ["STRING"],
  arms: ["STRING"],
  from: "TIMESTAMP",
  to: "TIMESTAMP",
});

const FIELDS = ["project_id", "location", "dataset", "maximum_bytes_billed", "labels", "api_endpoint"] as const;

/** Where the key is: its text (a secret or a variable), or a file whose path a variable holds. */
type KeySource =
  | { readonly via: "json"; readonly text: string; readonly origin: KeyOrigin }
  | { readonly via: "file"; readonly origin: KeyOrigin & { readonly path: string } };

/** A `bigquery` connector's own settings, checked. */
interface BigQuerySettings {
  readonly projectId: string;
  readonly location: string;
  readonly dataset: { readonly projectId: string; readonly datasetId: string } | undefined;
  readonly maximumBytesBilled: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly apiEndpoint: string;
  readonly key: KeySource;
  /** Token endpoints allowed: Google's and the operator's (`SOURCE_API_URLS` for `bigquery`). */
  readonly allowedTokenUrls: readonly string[];
}

/** The `bigquery` SQL source. */
export const BIGQUERY_SOURCE: SqlSourceDefinition = Object.freeze({
  type: "bigquery",
  lexicon: BIGQUERY_LEXICON,
  fields: FIELDS,
  createDriver(reader: ConfigReader, context: ConnectorContext, common: SqlCommonSettings): SqlDriver {
    return new BigQueryDriver(readSettings(reader, context), context, common);
  },
});

function readSettings(reader: ConfigReader, context: ConnectorContext): BigQuerySettings {
  const projectId = reader.string(
    "project_id",
    "write the id of the project that runs and pays for the jobs, e.g. acme-analytics",
  );
  if (!PROJECT_ID.test(projectId)) {
    throw reader.invalid(
      "project_id",
      `${show(projectId)} is not a Google Cloud project id`,
      "write the project's id (6 to 30 lowercase letters, digits and hyphens, starting with a letter), not its name or number",
      { value: projectId },
    );
  }
  const location = reader.string("location", "write where the datasets are, e.g. US, EU or europe-west4");
  if (!LOCATION.test(location)) {
    throw reader.invalid(
      "location",
      `${show(location)} is not a BigQuery location`,
      "write the datasets' location: a multi-region (US, EU) or a region (europe-west4, us-central1)",
      { value: location },
    );
  }
  const allowed = context.allowedApiUrls?.bigquery ?? [];
  const endpoint = reader.optionalString("api_endpoint", `write ${BIGQUERY_API_ENDPOINT}, or leave it out`);
  const apiEndpoint =
    endpoint === undefined
      ? BIGQUERY_API_ENDPOINT
      : vendorApiUrl(reader, "api_endpoint", endpoint, [BIGQUERY_API_ENDPOINT], allowed);
  const [requirement] = credentialRequirements(reader);
  if (requirement === undefined) throw new Error("bigquery: no credential requirement");
  const value = credentialValue(context.credentials, requirement, "bigquery");
  const origin = { field: requirement.field, name: requirement.ref.name };
  const key: KeySource =
    requirement.credential === "credentials_file"
      ? { via: "file", origin: { ...origin, path: value } }
      : { via: "json", text: value, origin };
  return {
    projectId,
    location,
    dataset: readDataset(reader, projectId),
    maximumBytesBilled: readBytes(reader, "maximum_bytes_billed", DEFAULT_MAXIMUM_BYTES_BILLED),
    labels: readLabels(reader),
    apiEndpoint,
    key,
    allowedTokenUrls: [GOOGLE_TOKEN_URL, ...allowed],
  };
}

function readDataset(reader: ConfigReader, projectId: string): BigQuerySettings["dataset"] {
  const text = reader.optionalString("dataset", "write the default dataset, e.g. analytics or acme-data.analytics");
  if (text === undefined) return undefined;
  const dot = text.lastIndexOf(".");
  const project = dot === -1 ? projectId : text.slice(0, dot);
  const datasetId = text.slice(dot + 1);
  if (!PROJECT_ID.test(project) || !DATASET_ID.test(datasetId)) {
    throw reader.invalid(
      "dataset",
      `${show(text)} is not a dataset`,
      "write a dataset id (letters, digits and underscores), or project.dataset for one of another project",
      { value: text },
    );
  }
  return { projectId: project, datasetId };
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  pib: 2 ** 50,
};

/** Bytes, from a whole number of bytes or a size such as `10 GB`, `500MB` or `1 TiB`. */
function readBytes(reader: ConfigReader, field: string, fallback: number): number {
  if (!reader.has(field)) return fallback;
  const value = reader.raw(field);
  let bytes: number | undefined;
  if (typeof value === "number" && Number.isSafeInteger(value)) bytes = value;
  const match = typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$/u.exec(value) : null;
  if (match !== null) {
    const unit = BYTE_UNITS[(match[2] ?? "b").toLowerCase()];
    if (unit !== undefined) bytes = Math.round(Number(match[1]) * unit);
  }
  if (bytes === undefined) {
    throw reader.invalid(
      field,
      `${show(value)} is not a size`,
      "write a size such as 10 GB, 500 MB or 1 TiB, or a whole number of bytes",
      {
        value,
      },
    );
  }
  if (bytes < MIN_MAXIMUM_BYTES_BILLED || bytes > MAX_MAXIMUM_BYTES_BILLED) {
    throw reader.invalid(
      field,
      `${show(value)} is ${bytes < MIN_MAXIMUM_BYTES_BILLED ? "less than the 10 MiB BigQuery bills at least per query" : "more than 1 PB"}`,
      "write a size from 10 MiB to 1 PB, e.g. 10 GB",
      { value },
    );
  }
  return bytes;
}

/** The job labels: the defaults, then `labels`, each checked against BigQuery's rules. */
function readLabels(reader: ConfigReader): Record<string, string> {
  const labels: Record<string, string> = { ...DEFAULT_JOB_LABELS };
  if (!reader.has("labels")) return labels;
  const raw = reader.raw("labels");
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw reader.invalid(
      "labels",
      `${show(raw)} is not a mapping`,
      "write labels as key: value pairs, e.g. { team: growth }",
      {
        value: raw,
      },
    );
  }
  const rules =
    "keys and values are at most 63 lowercase letters, digits, _ and -; a key starts with a letter (https://cloud.google.com/bigquery/docs/labels-intro#requirements)";
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!LABEL_KEY.test(key)) {
      throw reader.invalid(`labels.${key}`, `${show(key)} is not a label key`, rules, { key });
    }
    const text = typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
    if (typeof text !== "string" || !LABEL_VALUE.test(text)) {
      throw reader.invalid(`labels.${key}`, `${show(value)} is not a label value`, rules, { key, value });
    }
    labels[key] = text;
  }
  const count = Object.keys({ ...labels, [READ_LABEL]: "" }).length;
  if (count > MAX_LABELS) {
    throw reader.invalid(
      "labels",
      `${count} labels, with ${[...Object.keys(DEFAULT_JOB_LABELS), READ_LABEL].join(" and ")}, are more than a job may have (${MAX_LABELS})`,
      "keep fewer labels",
    );
  }
  return labels;
}

/** What a dry run says about a statement. */
interface DryRun {
  readonly statementType: string | undefined;
  readonly bytesProcessed: number;
}

/** The part of a `Job` resource (and of a `getQueryResults` answer) read here. */
interface JobResource {
  readonly status?: { readonly state?: string; readonly errorResult?: { reason?: string; message?: string } };
  readonly statistics?: {
    readonly totalBytesProcessed?: string;
    readonly query?: { readonly statementType?: string; readonly totalBytesProcessed?: string };
  };
}

interface QueryResultsPage {
  readonly jobComplete?: boolean;
  readonly schema?: {
    readonly fields?: readonly { readonly name?: string; readonly type?: string; readonly mode?: string }[];
  };
  readonly rows?: readonly { readonly f?: readonly { readonly v?: unknown }[] }[];
  readonly totalRows?: string;
  readonly pageToken?: string;
}

class BigQueryDriver implements SqlDriver {
  readonly location: string;
  private readonly settings: BigQuerySettings;
  private readonly context: ConnectorContext;
  private readonly common: SqlCommonSettings;
  private client: Promise<BigQuery> | undefined;
  /** The key, once read (a `credentials_file` is read again at each token request). */
  private key: ServiceAccountKey | undefined;
  /** The token request under way, if any. */
  private pendingToken: Promise<AccessToken> | undefined;
  /** Per query (`query`, `series_query`): its dry run, which confirmed a SELECT within the guard. */
  private readonly confirmed = new Map<string, Promise<void>>();

  constructor(settings: BigQuerySettings, context: ConnectorContext, common: SqlCommonSettings) {
    this.settings = settings;
    this.context = context;
    this.common = common;
    this.location = `project ${settings.projectId} (${settings.location})`;
  }

  async run(request: SqlRequest): Promise<SqlRows> {
    const { signal, deadline } = bounded(request.signal, request.timeoutMs);
    try {
      const client = await raced(this.clientOnce(), signal);
      await raced(this.confirmOnce(client, request), signal);
      return await this.query(client, request, signal);
    } catch (error) {
      if (signal.aborted) {
        throw this.aborted(request, deadline.aborted && request.signal?.aborted !== true, error, "read");
      }
      throw bigQueryError(error, this.errorContext(request.field, "job"));
    }
  }

  /** A dry run of the read (`outcome-runtime signals test` shows it): what it would scan, against the guard. */
  async estimateCost(request: SqlRequest): Promise<CostEstimate> {
    const { signal, deadline } = bounded(request.signal, request.timeoutMs);
    try {
      const client = await raced(this.clientOnce(), signal);
      const dry = await raced(this.dryRun(client, request), signal);
      this.assertSelect(dry, request.field);
      this.assertWithinGuard(dry, request.field);
      const guard = this.settings.maximumBytesBilled;
      return {
        bytesProcessed: dry.bytesProcessed,
        maximumBytesBilled: guard,
        summary: `scans ${formatBytes(dry.bytesProcessed)} (limit ${formatBytes(guard)})`,
      };
    } catch (error) {
      if (signal.aborted) {
        throw this.aborted(request, deadline.aborted && request.signal?.aborted !== true, error, "dry run");
      }
      throw bigQueryError(error, this.errorContext(request.field, "dry run"));
    }
  }

  /**
   * Before any poll: the key is usable (its `token_uri` allowed), the
   * endpoints pass the outbound guard, and each query's dry run (with
   * placeholder values) is a SELECT: this also proves the token, the job
   * role and read access to the tables.
   */
  async check(signal: AbortSignal | undefined): Promise<void> {
    const { signal: guard, deadline } = bounded(signal, this.common.timeoutMs);
    const now = new Date();
    const values = {
      experiment: "outcome-runtime-check",
      experiments: ["outcome-runtime-check"],
      arms: ["control", "treatment"],
      from: new Date(now.getTime() - 86_400_000),
      to: now,
    };
    const statements = [
      { field: "query" as const, statement: this.common.query },
      ...(this.common.seriesQuery === undefined
        ? []
        : [{ field: "series_query" as const, statement: this.common.seriesQuery }]),
    ];
    for (const { field, statement } of statements) {
      const request: SqlRequest = { field, statement, values, timeoutMs: this.common.timeoutMs, maxRows: 1, signal };
      try {
        const client = await raced(this.clientOnce(), guard);
        this.assertSelect(await raced(this.dryRun(client, request), guard), field);
      } catch (error) {
        if (guard.aborted) throw this.aborted(request, deadline.aborted && signal?.aborted !== true, error, "dry run");
        throw bigQueryError(error, this.errorContext(field, "dry run"));
      }
    }
  }

  async close(): Promise<void> {
    this.confirmed.clear();
    this.client = undefined;
  }

  private errorContext(field: "query" | "series_query", operation: string): ErrorContext {
    return {
      field,
      operation,
      projectId: this.settings.projectId,
      maximumBytesBilled: this.settings.maximumBytesBilled,
    };
  }

  /** The `timeout` error of a read (or a dry run) that was aborted or ran past `timeout`. */
  private aborted(request: SqlRequest, timedOut: boolean, cause: unknown, what: "read" | "dry run"): ConnectorError {
    const seconds = request.timeoutMs / 1000;
    const cancelled = what === "read" ? " (a job it started is cancelled)" : "";
    return new ConnectorError(
      "timeout",
      timedOut
        ? `bigquery ${request.field}: the ${what} took longer than ${seconds}s (timeout)${cancelled}; raise timeout, or ${READ_LESS}`
        : `bigquery ${request.field}: the ${what} was aborted${cancelled}`,
      { details: { field: request.field, timeoutMs: request.timeoutMs }, cause },
    );
  }

  /** The client, made once: the key checked, the endpoints past the outbound guard. A failure is not kept. */
  private clientOnce(): Promise<BigQuery> {
    if (this.client === undefined) {
      const made = this.makeClient();
      this.client = made;
      made.catch(() => {
        if (this.client === made) this.client = undefined;
      });
    }
    return this.client;
  }

  private async makeClient(): Promise<BigQuery> {
    const key = await this.loadKey();
    if (this.context.fetch === undefined) {
      // The client's own transport (teeny-request) is not the guarded fetch: its endpoint is checked here.
      const policy = this.context.outboundPolicy ?? defaultOutboundPolicy();
      for (const url of [this.settings.apiEndpoint, key.tokenUrl]) {
        try {
          await checkOutboundUrl(url, policy);
        } catch (error) {
          if (!(error instanceof OutboundBlockedError)) throw error;
          throw new ConnectorError("invalid_config", `bigquery connector: ${error.message}`, {
            details: { url: error.url, address: error.address },
            cause: error,
          });
        }
      }
    }
    const client = new BigQuery({
      projectId: this.settings.projectId,
      location: this.settings.location,
      apiEndpoint: this.settings.apiEndpoint,
      authClient: tokenAuthClient(() => this.token()),
      // One place retries: sql-source.ts (see the header).
      retryOptions: { autoRetry: false },
      userAgent: "outcome-runtime",
    });
    // The client prefers BIGQUERY_EMULATOR_HOST, when the process has it, to apiEndpoint; the key must only
    // ever go to the endpoint checked above.
    client.baseUrl = `${this.settings.apiEndpoint}/bigquery/v2`;
    return client;
  }

  /** The key, checked; a key file is read again each time (a rotated file is used from its next token). */
  private async loadKey(): Promise<ServiceAccountKey> {
    const source = this.settings.key;
    if (source.via === "json" && this.key !== undefined) return this.key;
    const text = source.via === "json" ? source.text : await readKeyFile(source.origin);
    const key = parseServiceAccountKey(text, source.origin, this.settings.allowedTokenUrls);
    this.key = key;
    return key;
  }

  /** A token for the client; requests that need one at the same time share one token request. */
  private token(): Promise<AccessToken> {
    if (this.pendingToken === undefined) {
      const pending = this.loadKey().then((key) =>
        fetchAccessToken(
          key,
          this.context.fetch ??
            guardedFetch({
              policy: this.context.outboundPolicy,
              origins: [new URL(key.tokenUrl).origin],
              maxRedirects: 0,
            }),
        ),
      );
      this.pendingToken = pending;
      void pending.then(
        () => this.clearToken(pending),
        () => this.clearToken(pending),
      );
    }
    return this.pendingToken;
  }

  private clearToken(pending: Promise<AccessToken>): void {
    if (this.pendingToken === pending) this.pendingToken = undefined;
  }

  /** The query's text and the client's `params` and `types` for a request. */
  private queryOptions(request: SqlRequest) {
    const names = request.statement.names;
    const values = request.values as unknown as Record<string, unknown>;
    const params = Object.fromEntries(names.map((name) => [name, values[name]]));
    const types = Object.fromEntries(names.map((name) => [name, PARAMETER_TYPES[name] ?? "STRING"]));
    const { dataset } = this.settings;
    return {
      // `:name` → `@name`: the same length, so BigQuery's [line:column] points into the query as written.
      query: renderStatement(request.statement, (name) => `@${name}`),
      params,
      types,
      useLegacySql: false,
      location: this.settings.location,
      // Every job, dry runs included, carries the guard and the labels.
      maximumBytesBilled: String(this.settings.maximumBytesBilled),
      labels: { ...this.settings.labels, [READ_LABEL]: request.field === "query" ? "signal" : "series" },
      ...(dataset === undefined ? {} : { defaultDataset: dataset }),
    };
  }

  private async dryRun(client: BigQuery, request: SqlRequest): Promise<DryRun> {
    const [, resource] = await client.createQueryJob({ ...this.queryOptions(request), dryRun: true });
    const job = resource as JobResource;
    const bytes = Number(job.statistics?.totalBytesProcessed ?? job.statistics?.query?.totalBytesProcessed ?? 0);
    return { statementType: job.statistics?.query?.statementType, bytesProcessed: Number.isFinite(bytes) ? bytes : 0 };
  }

  /** The query's dry run, once per connector while it succeeds (a failure is tried again on the next read). */
  private confirmOnce(client: BigQuery, request: SqlRequest): Promise<void> {
    let confirmed = this.confirmed.get(request.field);
    if (confirmed === undefined) {
      const made = this.dryRun(client, request).then(
        (dry) => {
          this.assertSelect(dry, request.field);
          this.assertWithinGuard(dry, request.field);
        },
        (error: unknown) => {
          throw bigQueryError(error, this.errorContext(request.field, "dry run"));
        },
      );
      confirmed = made;
      this.confirmed.set(request.field, made);
      made.catch(() => {
        if (this.confirmed.get(request.field) === made) this.confirmed.delete(request.field);
      });
    }
    return confirmed;
  }

  private assertSelect(dry: DryRun, field: "query" | "series_query"): void {
    if (dry.statementType === "SELECT") return;
    const kind = dry.statementType === undefined ? "of no type BigQuery named" : `a ${dry.statementType} statement`;
    throw new ConnectorError(
      "read_only_violation",
      `bigquery ${field}: BigQuery's dry run says the query is ${kind}, not a SELECT; nothing was run. A signal query only reads: write one SELECT (or WITH ... SELECT)`,
      { details: { field, statementType: dry.statementType ?? null } },
    );
  }

  private assertWithinGuard(dry: DryRun, field: "query" | "series_query"): void {
    const guard = this.settings.maximumBytesBilled;
    if (dry.bytesProcessed <= guard) return;
    throw new ConnectorError(
      "cost_exceeded",
      `bigquery ${field}: the query would scan ${formatBytes(dry.bytesProcessed)}, more than maximum_bytes_billed (${formatBytes(guard)}); nothing was run; ${READ_LESS}, or raise maximum_bytes_billed`,
      { details: { field, bytesProcessed: dry.bytesProcessed, maximumBytesBilled: guard } },
    );
  }

  /** Runs the job and reads its rows, cancelling it when the read ends before the job does. */
  private async query(client: BigQuery, request: SqlRequest, signal: AbortSignal): Promise<SqlRows> {
    const jobId = `${JOB_ID_PREFIX}${randomUUID().replaceAll("-", "")}`;
    const inserted = client.createQueryJob({
      ...this.queryOptions(request),
      jobId,
      jobTimeoutMs: request.timeoutMs,
      useQueryCache: true,
      priority: "INTERACTIVE",
    });
    let finished = false;
    try {
      const [, resource] = await raced(inserted, signal);
      const error = (resource as JobResource).status?.errorResult;
      if (error !== undefined) {
        finished = true;
        throw errorOfProto(error, undefined, this.errorContext(request.field, "job"));
      }
      const fields: string[] = [];
      let types: (string | undefined)[] = [];
      const rows: unknown[][] = [];
      let pageToken: string | undefined;
      for (let polls = 0; ; polls++) {
        const page = await raced(
          this.results(client, jobId, {
            maxResults: Math.min(PAGE_ROWS, request.maxRows + 1 - rows.length),
            pageToken,
            timeoutMs: POLL_WAIT_MS,
          }),
          signal,
        );
        if (page.jobComplete !== true) {
          // BigQuery holds the call until the job ends or timeoutMs passes; a server that answers at once is
          // not asked again in a tight loop.
          await raced(sleep(Math.min(1000, 50 * 2 ** polls)), signal);
          continue;
        }
        finished = true;
        if (fields.length === 0) {
          const schema = page.schema?.fields ?? [];
          fields.push(...schema.map((f) => f.name ?? ""));
          types = schema.map((f) => (f.mode === "REPEATED" ? "REPEATED" : f.type?.toUpperCase()));
        }
        const total = Number(page.totalRows);
        if (Number.isFinite(total) && total > request.maxRows) throw this.tooManyRows(request, `${total}`);
        for (const row of page.rows ?? []) rows.push((row.f ?? []).map((cell, i) => cellValue(types[i], cell?.v)));
        if (rows.length > request.maxRows) throw this.tooManyRows(request, `more than ${request.maxRows}`);
        if (page.pageToken === undefined || page.pageToken === "" || (page.rows ?? []).length === 0) break;
        pageToken = page.pageToken;
      }
      return { fields, rows };
    } catch (error) {
      const mapped =
        error instanceof ConnectorError || signal.aborted
          ? error
          : bigQueryError(error, this.errorContext(request.field, "job"));
      if (!finished && (signal.aborted || (mapped instanceof ConnectorError && mayStillRun(mapped)))) {
        this.cancel(client, jobId, inserted);
      }
      throw mapped;
    }
  }

  private tooManyRows(request: SqlRequest, count: string): ConnectorError {
    return new ConnectorError(
      "too_many_rows",
      `bigquery ${request.field}: the query returns ${count} rows, more than max_rows (${request.maxRows}); aggregate per arm (GROUP BY) or raise max_rows`,
      { details: { field: request.field, maxRows: request.maxRows } },
    );
  }

  /** `jobs.getQueryResults`: one call, waiting at most `timeoutMs` for the job. */
  private results(
    client: BigQuery,
    jobId: string,
    page: { maxResults: number; pageToken: string | undefined; timeoutMs: number },
  ): Promise<QueryResultsPage> {
    return new Promise((resolve, reject) => {
      client.request(
        {
          uri: `/queries/${encodeURIComponent(jobId)}`,
          qs: {
            location: this.settings.location,
            maxResults: page.maxResults,
            timeoutMs: page.timeoutMs,
            "formatOptions.useInt64Timestamp": true,
            ...(page.pageToken === undefined ? {} : { pageToken: page.pageToken }),
          },
        },
        (error, body) => (error ? reject(error) : resolve((body ?? {}) as QueryResultsPage)),
      );
    });
  }

  /** `jobs.cancel`, once the insert has answered; best effort (a job that ended meanwhile is fine). */
  private cancel(client: BigQuery, jobId: string, inserted: Promise<unknown>): void {
    void inserted
      .catch(() => undefined)
      .then(() => client.job(jobId, { location: this.settings.location }).cancel())
      .catch(() => undefined);
  }
}

/** Whether a job may still be running after this error (then it is cancelled). */
function mayStillRun(error: ConnectorError): boolean {
  return error.code === "unavailable" || error.code === "rate_limited" || error.code === "timeout";
}

/**
 * A cell of a `getQueryResults` row (`{ v }`, a string or null) as the result
 * checks read it: numbers stay decimal text (INT64, NUMERIC, FLOAT64 as
 * BigQuery writes them), a TIMESTAMP (microseconds, `useInt64Timestamp`)
 * becomes a Date, a DATETIME stays zone-less text (read as UTC), a BOOL a
 * boolean. Arrays and records are left as they are (the checks refuse them).
 */
function cellValue(type: string | undefined, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value !== "string" || type === "REPEATED") return value;
  if (type === "TIMESTAMP") {
    if (/^-?\d+$/u.test(value)) return new Date(Number(BigInt(value) / 1000n));
    const seconds = Number(value);
    return Number.isFinite(seconds) ? new Date(seconds * 1000) : value;
  }
  if (type === "BOOL" || type === "BOOLEAN") return value === "true";
  return value;
}

/** `signal`, or none, bounded by `timeoutMs`: `deadline` tells a timeout from the caller's abort. */
function bounded(
  signal: AbortSignal | undefined,
  timeoutMs: number,
): { readonly signal: AbortSignal; readonly deadline: AbortSignal } {
  const deadline = AbortSignal.timeout(timeoutMs);
  return { signal: signal === undefined ? deadline : AbortSignal.any([signal, deadline]), deadline };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or the signal's reason as soon as it aborts (the promise goes on; its outcome is dropped). */
function raced<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
