/**
 * A local stand-in for the Google Analytics Data API v1beta's `runReport`
 * (REST) and Google's OAuth 2.0 token endpoint, answering a test's reports
 * from a function it sets. It follows the published description:
 *
 * - the REST reference of `properties.runReport`
 *   (https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport)
 *   and the protos it is generated from, `google/analytics/data/v1beta/analytics_data_api.proto`
 *   (`RunReportRequest`, `RunReportResponse`) and `google/analytics/data/v1beta/data.proto`
 *   (`FilterExpression`, `Filter.InListFilter`, `Filter.StringFilter`,
 *   `ResponseMetaData` with `dataLossFromOtherRow`, `samplingMetadatas`,
 *   `subjectToThresholding`, `timeZone`; `PropertyQuota`, `QuotaStatus`) of
 *   github.com/googleapis/googleapis (as shipped in `@google-analytics/data`
 *   6.1.0, `build/protos/`);
 * - `POST /v1beta/properties/{propertyId}:runReport` with the request as
 *   proto3 JSON (enums as names, or as numbers when the query string has
 *   `$alt=json;enum-encoding=int`, which the official client's REST transport
 *   sends); answers a `RunReportResponse` in proto3 JSON (`dimensionHeaders`,
 *   `metricHeaders`, `rows` of `dimensionValues`/`metricValues` whose values are
 *   strings, `rowCount`, `metadata`, `propertyQuota` when
 *   `returnPropertyQuota`, `kind: "analyticsData#runReport"`);
 * - errors in Google's shape (https://cloud.google.com/apis/design/errors#http_mapping):
 *   `{ error: { code, message, status, details } }`: 400 `INVALID_ARGUMENT`
 *   for a dimension or metric the property does not have ("Field X is not a
 *   valid dimension. For a list of valid dimensions and metrics, see ..."),
 *   401 `UNAUTHENTICATED` for a missing or expired token, 403
 *   `PERMISSION_DENIED` for another property or a token without an Analytics
 *   scope, 429 `RESOURCE_EXHAUSTED` once a token quota of the property is
 *   spent (the quotas page:
 *   https://developers.google.com/analytics/devguides/reporting/data/v1/quotas);
 * - `POST /token`: the service-account JWT bearer grant
 *   (https://developers.google.com/identity/protocols/oauth2/service-account#httprest),
 *   the JWT's RS256 signature, `iss`, `aud`, `scope` and lifetime checked;
 *   answers `{ access_token, expires_in, token_type }`, else `400 { error, error_description }`.
 *
 * Every request is recorded, so tests count what a read costs.
 */
import { createVerify, generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A request as the fake received it. */
export interface FakeGa4Request {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** The JSON (or form) body, parsed; undefined when empty. */
  readonly body: unknown;
  readonly authorization: string | undefined;
}

/** A `FilterExpression` (data.proto), as proto3 JSON. */
export interface FakeGa4Filter {
  readonly andGroup?: { readonly expressions?: readonly FakeGa4Filter[] };
  readonly orGroup?: { readonly expressions?: readonly FakeGa4Filter[] };
  readonly notExpression?: FakeGa4Filter;
  readonly filter?: {
    readonly fieldName?: string;
    readonly inListFilter?: { readonly values?: readonly string[]; readonly caseSensitive?: boolean };
    readonly stringFilter?: {
      readonly matchType?: string | number;
      readonly value?: string;
      readonly caseSensitive?: boolean;
    };
  };
}

/** A runReport request as a test's `answer` sees it. */
export interface FakeGa4Report {
  readonly propertyId: string;
  readonly dimensions: readonly string[];
  readonly metrics: readonly string[];
  readonly dateRanges: readonly { readonly startDate: string; readonly endDate: string }[];
  readonly dimensionFilter: FakeGa4Filter | undefined;
  readonly limit: number | undefined;
  readonly returnPropertyQuota: boolean;
  /** The request body as sent. */
  readonly body: Record<string, unknown>;
}

/** What a test answers a report with: rows (values as GA4 writes them, strings; null for no value) and metadata. */
export interface FakeGa4Answer {
  readonly rows: readonly {
    readonly dimensionValues: readonly (string | null)[];
    readonly metricValues: readonly (string | null)[];
  }[];
  /** Merged into `metadata` (e.g. `{ dataLossFromOtherRow: true }`). */
  readonly metadata?: Record<string, unknown>;
  /** `rowCount` when it is not the number of rows. */
  readonly rowCount?: number;
}

/** An answer that replaces the fake's own: any status and body, after an optional delay. */
export interface FakeGa4Override {
  readonly status?: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly delayMs?: number;
}

/** The property's quota state (PropertyQuota), tokens left. */
export interface FakeGa4Quota {
  tokensPerDay: number;
  tokensPerHour: number;
  tokensPerProjectPerHour: number;
}

export interface FakeGa4 {
  /** The API base, `http://127.0.0.1:<port>` (the client adds `/v1beta/...`). */
  readonly apiUrl: string;
  /** The token endpoint, `http://127.0.0.1:<port>/token`. */
  readonly tokenUrl: string;
  readonly propertyId: string;
  readonly clientEmail: string;
  /** The property's reporting time zone (`metadata.timeZone`). */
  timeZone: string;
  /** Dimensions the property has besides the built-in ones the fake knows (`eventName`, `date`, ...). */
  customDimensions: Set<string>;
  /** Metrics the property has besides the built-in ones (`totalUsers`, `activeUsers`, `eventCount`, `eventValue`, ...). */
  customMetrics: Set<string>;
  /** Answers a report; default: no rows. */
  answer: (report: FakeGa4Report) => FakeGa4Answer;
  /** When set and returning non-null, replaces the answer to a request (token requests included). */
  override: ((request: FakeGa4Request) => FakeGa4Override | null) | null;
  /** Tokens each report costs (GA4: "most requests consume fewer than 10 tokens"). */
  tokensPerReport: number;
  /** Tokens left; a report when one is spent is 429 RESOURCE_EXHAUSTED. */
  readonly quota: FakeGa4Quota;
  /** The lifetime of the tokens issued, seconds (default 3599, as Google's). */
  tokenLifetimeSeconds: number;
  readonly requests: FakeGa4Request[];
  /** The runReport requests, decoded, in order. */
  reports(): FakeGa4Report[];
  /** The service account's key file (JSON text), with `changes` applied (another account, another token_uri). */
  serviceAccountKey(changes?: Record<string, unknown>): string;
  close(): Promise<void>;
}

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ANALYTICS_SCOPES = [
  "https://www.googleapis.com/auth/analytics.readonly",
  "https://www.googleapis.com/auth/analytics",
];
const BUILT_IN_DIMENSIONS = new Set(["eventName", "date", "dateHour", "country", "platform", "deviceCategory"]);
const BUILT_IN_METRICS = new Set([
  "totalUsers",
  "activeUsers",
  "newUsers",
  "eventCount",
  "eventValue",
  "purchaseRevenue",
  "keyEvents",
  "sessions",
]);
/** MetricType numbers (data.proto) of the metrics the fake types. */
const METRIC_TYPES: Readonly<Record<string, readonly [string, number]>> = {
  integer: ["TYPE_INTEGER", 1],
  float: ["TYPE_FLOAT", 2],
  currency: ["TYPE_CURRENCY", 9],
};
/** StringFilter.MatchType numbers (data.proto). */
const MATCH_TYPES: Readonly<Record<number, string>> = {
  1: "EXACT",
  2: "BEGINS_WITH",
  3: "ENDS_WITH",
  4: "CONTAINS",
  5: "FULL_REGEXP",
  6: "PARTIAL_REGEXP",
};
const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};
const SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema";

/**
 * Whether a row with `values` (field name → value) passes a `FilterExpression`
 * as GA4 evaluates it (`inListFilter`, `stringFilter` EXACT/BEGINS_WITH/
 * ENDS_WITH/CONTAINS, `andGroup`, `orGroup`, `notExpression`; case-insensitive
 * unless `caseSensitive`).
 */
export function matchesFilter(filter: FakeGa4Filter | undefined, values: Readonly<Record<string, string>>): boolean {
  if (filter === undefined) return true;
  if (filter.andGroup !== undefined) return (filter.andGroup.expressions ?? []).every((f) => matchesFilter(f, values));
  if (filter.orGroup !== undefined) return (filter.orGroup.expressions ?? []).some((f) => matchesFilter(f, values));
  if (filter.notExpression !== undefined) return !matchesFilter(filter.notExpression, values);
  const f = filter.filter;
  if (f === undefined) return true;
  const value = values[f.fieldName ?? ""];
  if (value === undefined) return false;
  if (f.inListFilter !== undefined) {
    const exact = f.inListFilter.caseSensitive === true;
    return (f.inListFilter.values ?? []).some((v) => (exact ? v === value : v.toLowerCase() === value.toLowerCase()));
  }
  if (f.stringFilter !== undefined) {
    const exact = f.stringFilter.caseSensitive === true;
    const a = exact ? value : value.toLowerCase();
    const b = exact ? (f.stringFilter.value ?? "") : (f.stringFilter.value ?? "").toLowerCase();
    const type =
      typeof f.stringFilter.matchType === "number" ? MATCH_TYPES[f.stringFilter.matchType] : f.stringFilter.matchType;
    switch (type) {
      case "BEGINS_WITH":
        return a.startsWith(b);
      case "ENDS_WITH":
        return a.endsWith(b);
      case "CONTAINS":
        return a.includes(b);
      default:
        return a === b;
    }
  }
  return true;
}

/**
 * Starts the fake on a free loopback port, with a service account of its own
 * (a fresh RSA key) that may read `propertyId`.
 */
export async function startFakeGa4(
  options: {
    readonly propertyId?: string;
    readonly clientEmail?: string;
    readonly timeZone?: string;
    readonly customDimensions?: readonly string[];
    readonly customMetrics?: readonly string[];
  } = {},
): Promise<FakeGa4> {
  const propertyId = options.propertyId ?? "287465190";
  const clientEmail = options.clientEmail ?? "outcome-runtime-reader@acme-analytics.iam.gserviceaccount.com";
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privateKeyId = randomUUID().replaceAll("-", "");
  const tokens = new Map<string, { expiresAt: number; scope: string }>();
  const fake: FakeGa4 = {
    apiUrl: "",
    tokenUrl: "",
    propertyId,
    clientEmail,
    timeZone: options.timeZone ?? "UTC",
    customDimensions: new Set(options.customDimensions ?? ["customUser:experiment_key", "customUser:experiment_arm"]),
    customMetrics: new Set(options.customMetrics ?? []),
    answer: () => ({ rows: [] }),
    override: null,
    tokensPerReport: 5,
    quota: { tokensPerDay: 200_000, tokensPerHour: 40_000, tokensPerProjectPerHour: 14_000 },
    tokenLifetimeSeconds: 3599,
    requests: [],
    reports: () =>
      fake.requests.filter((r) => r.method === "POST" && /:runReport$/u.test(r.path)).map((r) => decodeReport(r)),
    serviceAccountKey: (changes = {}) =>
      JSON.stringify({
        type: "service_account",
        project_id: "acme-analytics",
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
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void readBody(req).then((raw) => {
      const url = new URL(req.url ?? "/", "http://localhost");
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
      const request: FakeGa4Request = {
        method: req.method ?? "GET",
        path: url.pathname,
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
        const answer = route(fake, request, tokens);
        send(res, answer.status, answer.body);
      };
      if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
      else reply();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(fake, { apiUrl: origin, tokenUrl: `${origin}/token` });
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

/** An error answer in Google's shape. */
function googleError(status: number, message: string, details: unknown[] = []): { status: number; body: unknown } {
  return {
    status,
    body: {
      error: {
        code: status,
        message,
        status: STATUS_NAMES[status] ?? "UNKNOWN",
        ...(details.length > 0 ? { details } : {}),
      },
    },
  };
}

function decodeReport(request: FakeGa4Request): FakeGa4Report {
  const body = (request.body ?? {}) as Record<string, unknown>;
  const names = (list: unknown): string[] =>
    Array.isArray(list) ? list.map((d) => String((d as { name?: unknown }).name ?? "")) : [];
  const limit = body.limit === undefined ? undefined : Number(body.limit);
  return {
    propertyId: /^\/v1beta\/properties\/([^/:]+):runReport$/u.exec(request.path)?.[1] ?? "",
    dimensions: names(body.dimensions),
    metrics: names(body.metrics),
    dateRanges: Array.isArray(body.dateRanges) ? (body.dateRanges as FakeGa4Report["dateRanges"]) : [],
    dimensionFilter: body.dimensionFilter as FakeGa4Filter | undefined,
    limit,
    returnPropertyQuota: body.returnPropertyQuota === true,
    body,
  };
}

function route(
  fake: FakeGa4,
  request: FakeGa4Request,
  tokens: Map<string, { expiresAt: number; scope: string }>,
): { status: number; body: unknown } {
  const match = /^\/v1beta\/properties\/([^/:]+):runReport$/u.exec(request.path);
  if (match === null || request.method !== "POST") {
    return googleError(404, `The requested URL ${request.path} was not found on this server.`);
  }
  const auth = /^Bearer (.+)$/u.exec(request.authorization ?? "");
  const token = auth === null ? undefined : tokens.get(auth[1] ?? "");
  if (token === undefined || token.expiresAt <= Date.now()) {
    return googleError(
      401,
      "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    );
  }
  if (!token.scope.split(" ").some((s) => ANALYTICS_SCOPES.includes(s))) {
    return googleError(403, "Request had insufficient authentication scopes.");
  }
  if (match[1] !== fake.propertyId) {
    return googleError(
      403,
      "User does not have sufficient permissions for this property. To learn more about Property ID, see https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.",
    );
  }
  const report = decodeReport(request);
  for (const name of report.dimensions) {
    if (!BUILT_IN_DIMENSIONS.has(name) && !fake.customDimensions.has(name)) {
      return googleError(
        400,
        `Field ${name} is not a valid dimension. For a list of valid dimensions and metrics, see ${SCHEMA_URL} `,
      );
    }
  }
  for (const name of report.metrics) {
    if (!BUILT_IN_METRICS.has(name) && !fake.customMetrics.has(name)) {
      return googleError(
        400,
        `Field ${name} is not a valid metric. For a list of valid dimensions and metrics, see ${SCHEMA_URL} `,
      );
    }
  }
  if (report.metrics.length === 0) return googleError(400, "At least one metric is required.");
  if (report.dateRanges.length === 0) return googleError(400, "A date range is required.");
  for (const range of report.dateRanges) {
    if (!/^\d{4}-\d{2}-\d{2}$/u.test(range.startDate) || !/^\d{4}-\d{2}-\d{2}$/u.test(range.endDate)) {
      return googleError(400, `Invalid date range: ${JSON.stringify(range)}.`);
    }
    if (range.startDate > range.endDate)
      return googleError(400, "The start date of a date range is after its end date.");
  }
  const q = fake.quota;
  for (const [name, left] of [
    ["tokens per day", q.tokensPerDay],
    ["tokens per hour", q.tokensPerHour],
    ["tokens per project per hour", q.tokensPerProjectPerHour],
  ] as const) {
    if (left <= 0) {
      return googleError(
        429,
        `Exhausted property ${name}. Consider using fewer tokens per request by reducing the complexity or date range of the request.`,
      );
    }
  }
  const cost = fake.tokensPerReport;
  q.tokensPerDay = Math.max(0, q.tokensPerDay - cost);
  q.tokensPerHour = Math.max(0, q.tokensPerHour - cost);
  q.tokensPerProjectPerHour = Math.max(0, q.tokensPerProjectPerHour - cost);
  const answer = fake.answer(report);
  const intEnums = (request.query.get("$alt") ?? "").includes("enum-encoding=int");
  const typeOf = (name: string): string | number => {
    const kind = name === "purchaseRevenue" ? "currency" : /value|revenue|amount/iu.test(name) ? "float" : "integer";
    const [text, number] = METRIC_TYPES[kind] ?? ["TYPE_INTEGER", 1];
    return intEnums ? number : text;
  };
  const rows = answer.rows.map((row) => ({
    dimensionValues: row.dimensionValues.map((v) => (v === null ? {} : { value: v })),
    metricValues: row.metricValues.map((v) => (v === null ? {} : { value: v })),
  }));
  const rowCount = answer.rowCount ?? rows.length;
  const limited = report.limit === undefined || report.limit <= 0 ? rows : rows.slice(0, report.limit);
  const status = (left: number, max: number) => ({ consumed: cost, remaining: Math.min(left, max) });
  return {
    status: 200,
    body: {
      dimensionHeaders: report.dimensions.map((name) => ({ name })),
      metricHeaders: report.metrics.map((name) => ({ name, type: typeOf(name) })),
      ...(limited.length > 0 ? { rows: limited } : {}),
      ...(rowCount > 0 ? { rowCount } : {}),
      metadata: { currencyCode: "USD", timeZone: fake.timeZone, ...(answer.metadata ?? {}) },
      ...(report.returnPropertyQuota
        ? {
            propertyQuota: {
              tokensPerDay: status(q.tokensPerDay, 200_000),
              tokensPerHour: status(q.tokensPerHour, 40_000),
              concurrentRequests: { consumed: 0, remaining: 10 },
              serverErrorsPerProjectPerHour: { consumed: 0, remaining: 10 },
              potentiallyThresholdedRequestsPerHour: { consumed: 0, remaining: 120 },
              tokensPerProjectPerHour: status(q.tokensPerProjectPerHour, 14_000),
            },
          }
        : {}),
      kind: "analyticsData#runReport",
    },
  };
}

/** The token endpoint: a JWT bearer grant, checked as Google checks it. */
function grant(
  request: FakeGa4Request,
  fake: FakeGa4,
  publicKey: KeyObject,
  tokens: Map<string, { expiresAt: number; scope: string }>,
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
  tokens.set(token, { expiresAt: Date.now() + fake.tokenLifetimeSeconds * 1000, scope: payload.scope });
  return { status: 200, body: { access_token: token, expires_in: fake.tokenLifetimeSeconds, token_type: "Bearer" } };
}
