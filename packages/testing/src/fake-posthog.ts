/**
 * A local stand-in for PostHog's query API, answering the `posthog`
 * connector's built HogQL queries from a list of events. It follows the
 * published API description: posthog.com/docs/api/queries (repository
 * PostHog/posthog.com, `contents/docs/api/queries.mdx`: `POST
 * /api/projects/:project_id/query/` with a personal API key as
 * `Authorization: Bearer`, body `{ "query": { "kind": "HogQLQuery", "query",
 * "values" } }`, the project-level rate limits answered with 429) and
 * PostHog's query schema (PostHog/posthog, `frontend/src/queries/schema`,
 * `posthog/schema.py`: `HogQLQuery { kind, query, values }`,
 * `HogQLQueryResponse { results, columns, types: [name, type][], hasMore,
 * limit, offset, hogql, timings, modifiers, error }`). Errors have the shape
 * of PostHog's API errors `{ type, code, detail, attr }` (posthog.com/docs/api,
 * "Errors"): 401 `authentication_error` for a missing, expired or invalid key,
 * 403 `permission_denied` for a project the key may not read, 400
 * `validation_error` for a query HogQL cannot resolve, 429 `throttled_error`
 * with `Retry-After`.
 *
 * It evaluates the shape of the query the connector builds
 * (`packages/connectors/src/posthog/hogql.ts`): exposures of one event by
 * experiment, arm and person, joined to one outcome event per person, summed
 * per (experiment, arm). Times in the query are bound through
 * `toDateTime({to})`, which HogQL makes `parseDateTime64BestEffortOrNull(text,
 * 6, <project time zone>)`: a text with a zone is read in that zone, one
 * without in the project's `timezone` (default UTC). Any other
 * query is a 400 naming what it cannot resolve, unless a test's `override`
 * answers it. Every request is recorded, so tests count what a read costs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One captured event: its name, the person it belongs to, when (ISO 8601 with a zone), its properties. */
export interface FakePosthogEvent {
  readonly event: string;
  readonly personId: string;
  readonly timestamp: string;
  readonly properties: Readonly<Record<string, string | number | boolean | null>>;
}

/** A query request as the fake received it. */
export interface FakePosthogRequest {
  readonly path: string;
  readonly method: string;
  readonly authorization: string | undefined;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  readonly body: unknown;
  /** `body.query.query`, when present. */
  readonly hogql: string | undefined;
  /** `body.query.values`, when present. */
  readonly values: Readonly<Record<string, unknown>>;
}

/**
 * What a test may put in place of the fake's own answer: `null` to answer from
 * the events; else a status, a body (a string is sent as is), headers and a delay.
 */
export type FakePosthogOverride = (
  request: FakePosthogRequest,
  computed: () => unknown,
) => { status?: number; body?: unknown; headers?: Record<string, string>; delayMs?: number } | null;

export interface FakePosthog {
  /** The API base, `http://127.0.0.1:<port>` (what `api_url` names). */
  readonly baseUrl: string;
  /** The events answered from; tests push to it. */
  readonly events: FakePosthogEvent[];
  /** Every request received, in order. */
  readonly requests: FakePosthogRequest[];
  /** Replaces answers (abuse cases); `null` answers from the events. */
  override: FakePosthogOverride | null;
  close(): Promise<void>;
}

/** A HogQL answer's rows past which PostHog sets `hasMore` (HogQL's default LIMIT is 100). */
const DEFAULT_LIMIT = 100;

/**
 * Starts the fake on a free loopback port.
 *
 * @param auth the personal API key it accepts, the project id that key may read, and the project's time zone
 */
export async function startFakePosthog(auth: {
  readonly apiKey: string;
  readonly projectId: string;
  /** The project's time zone (Project settings → Time zone), an IANA name; default UTC. */
  readonly timezone?: string;
}): Promise<FakePosthog> {
  const fake: FakePosthog = {
    baseUrl: "",
    events: [],
    requests: [],
    override: null,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
      const query = isRecord(body) && isRecord(body.query) ? body.query : undefined;
      const url = new URL(req.url ?? "/", "http://localhost");
      const request: FakePosthogRequest = {
        path: url.pathname,
        method: req.method ?? "",
        authorization: req.headers.authorization,
        body,
        hogql: typeof query?.query === "string" ? query.query : undefined,
        values: isRecord(query?.values) ? query.values : {},
      };
      fake.requests.push(request);
      const match = /^\/api\/projects\/([^/]+)\/query\/?$/u.exec(url.pathname);
      if (match === null) return send(res, 404, apiError("invalid_request", "not_found", "Not found."));
      if (req.method !== "POST") {
        return send(res, 405, apiError("invalid_request", "method_not_allowed", `Method "${req.method}" not allowed.`));
      }
      if (req.headers.authorization === undefined) {
        return send(
          res,
          401,
          apiError("authentication_error", "not_authenticated", "Authentication credentials were not provided."),
        );
      }
      if (req.headers.authorization !== `Bearer ${auth.apiKey}`) {
        return send(
          res,
          401,
          apiError(
            "authentication_error",
            "authentication_failed",
            "Personal API key found in request Authorization header is invalid.",
          ),
        );
      }
      if (decodeURIComponent(match[1] ?? "") !== auth.projectId) {
        return send(
          res,
          403,
          apiError("authentication_error", "permission_denied", "You don't have access to the project."),
        );
      }
      const computed = () => answer(fake.events, request, auth.timezone ?? "UTC");
      const replaced = fake.override?.(request, computed) ?? null;
      const reply = (): void => {
        if (replaced !== null && (replaced.status !== undefined || replaced.body !== undefined)) {
          send(res, replaced.status ?? 200, replaced.body ?? "", replaced.headers);
          return;
        }
        try {
          send(res, 200, computed());
        } catch (error) {
          send(
            res,
            400,
            apiError("validation_error", "invalid_input", error instanceof Error ? error.message : String(error)),
          );
        }
      };
      if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
      else reply();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { baseUrl: string }).baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** PostHog's API error body. */
export function apiError(type: string, code: string, detail: string): Record<string, unknown> {
  return { type, code, detail, attr: null };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A `HogQLQueryResponse` around `columns`, `types` and `rows`, cut at `limit` with `hasMore`. */
export function hogqlResponse(
  hogql: string,
  columns: readonly string[],
  types: readonly string[],
  rows: readonly (readonly unknown[])[],
  limit: number = DEFAULT_LIMIT,
): Record<string, unknown> {
  return {
    columns,
    types: columns.map((c, i) => [c, types[i] ?? "String"]),
    results: rows.slice(0, limit),
    hasMore: rows.length > limit,
    limit,
    offset: 0,
    hogql,
    clickhouse: null,
    timings: [],
    modifiers: {},
    error: null,
    query_status: null,
    is_cached: false,
  };
}

/** The settings the connector's built query reads, recovered from its text. */
export interface BuiltQueryShape {
  readonly exposureEvent: string;
  readonly event: string;
  readonly experimentProperty: string;
  readonly variantProperty: string;
  /** Undefined for a proportion. */
  readonly valueProperty: string | undefined;
  readonly limit: number;
}

const QUOTED = "((?:[^'\\\\]|\\\\.)*)";
const BACKTICKED = "((?:[^`\\\\]|\\\\.)*)";

function unquote(text: string): string {
  return text.replace(/\\(.)/gu, "$1");
}

/**
 * The built query's settings, or null when `hogql` is not of its shape (an
 * experiment and an arm property selected per person from one exposure event,
 * left-joined to one outcome event per person, grouped by experiment and arm).
 */
export function builtQueryShape(hogql: string): BuiltQueryShape | null {
  const events = [...hogql.matchAll(new RegExp(`WHERE event = '${QUOTED}'`, "gu"))].map((m) => unquote(m[1] ?? ""));
  const experiment = new RegExp(`toString\\(properties\\.\`${BACKTICKED}\`\\) AS experiment`, "u").exec(hogql);
  const arm = new RegExp(`toString\\(properties\\.\`${BACKTICKED}\`\\) AS arm`, "u").exec(hogql);
  const value = new RegExp(`toFloat\\(properties\\.\`${BACKTICKED}\`\\) AS value`, "u").exec(hogql);
  const limit = /\nLIMIT (\d+)$/u.exec(hogql);
  if (
    events.length !== 2 ||
    experiment === null ||
    arm === null ||
    !hogql.includes(") AS exposure") ||
    !hogql.includes(") AS outcome ON exposure.person_id = outcome.person_id") ||
    !hogql.includes("GROUP BY experiment, arm\n") ||
    hogql.split("AND timestamp <= toDateTime({to})").length !== 3
  ) {
    return null;
  }
  return {
    exposureEvent: events[0] ?? "",
    event: events[1] ?? "",
    experimentProperty: unquote(experiment[1] ?? ""),
    variantProperty: unquote(arm[1] ?? ""),
    valueProperty: value === null ? undefined : unquote(value[1] ?? ""),
    limit: limit === null ? DEFAULT_LIMIT : Number(limit[1]),
  };
}

/** The offset of `timeZone` from UTC at the instant `ms`, in milliseconds. */
function zoneOffsetMs(ms: number, timeZone: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  const local = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
    Number(parts.second),
  );
  return local - Math.floor(ms / 1000) * 1000;
}

/**
 * ClickHouse's `parseDateTime64BestEffortOrNull(text, 6, timeZone)`: a zone in
 * the text is honoured, a text without one is read in `timeZone`.
 */
function bestEffort(text: unknown, timeZone: string): number {
  if (typeof text !== "string") throw new Error(`Cannot parse ${JSON.stringify(text)} as DateTime64`);
  const trimmed = text.trim().replace(" ", "T");
  if (/(Z|[+-]\d{2}:?\d{2})$/iu.test(trimmed)) {
    const ms = Date.parse(trimmed);
    if (Number.isNaN(ms)) throw new Error(`Cannot parse ${JSON.stringify(text)} as DateTime64`);
    return ms;
  }
  const asUtc = Date.parse(`${trimmed}Z`);
  if (Number.isNaN(asUtc)) throw new Error(`Cannot parse ${JSON.stringify(text)} as DateTime64`);
  return asUtc - zoneOffsetMs(asUtc, timeZone);
}

function answer(events: readonly FakePosthogEvent[], request: FakePosthogRequest, timeZone: string): unknown {
  const body = request.body;
  if (!isRecord(body) || !isRecord(body.query)) throw new Error("query: This field is required.");
  if (body.query.kind !== "HogQLQuery") throw new Error(`Unsupported query kind ${JSON.stringify(body.query.kind)}`);
  const hogql = request.hogql;
  if (hogql === undefined) throw new Error("query.query: This field is required.");
  const table = /\bFROM\s+([A-Za-z_][A-Za-z0-9_.]*)/u.exec(hogql)?.[1];
  if (table !== undefined && table !== "events") throw new Error(`Unknown table \`${table}\`.`);
  const shape = builtQueryShape(hogql);
  if (shape === null) throw new Error("This query is not one the fake answers; give the test an override");
  const v = request.values;
  for (const name of ["experiments", "arms", "to"]) {
    if (!(name in v)) throw new Error(`Placeholder {${name}} is not available in this context.`);
  }
  if (!Array.isArray(v.experiments) || !Array.isArray(v.arms)) throw new Error("{experiments} and {arms} are arrays");
  const experiments = new Set(v.experiments.map(String));
  const arms = new Set(v.arms.map(String));
  const to = bestEffort(v.to, timeZone);
  const at = (e: FakePosthogEvent): number => {
    const ms = Date.parse(e.timestamp);
    if (Number.isNaN(ms)) throw new Error(`the fake's event timestamp ${e.timestamp} is not ISO 8601 with a zone`);
    return ms;
  };
  const text = (value: unknown): string => (value === null || value === undefined ? "" : String(value));

  const exposures = new Map<string, { experiment: string; arm: string; person: string; exposedAt: number }>();
  for (const e of events) {
    if (e.event !== shape.exposureEvent || at(e) > to) continue;
    const experiment = text(e.properties[shape.experimentProperty]);
    const arm = text(e.properties[shape.variantProperty]);
    if (!experiments.has(experiment) || !arms.has(arm)) continue;
    const key = JSON.stringify([experiment, arm, e.personId]);
    const seen = exposures.get(key);
    if (seen === undefined || at(e) < seen.exposedAt) {
      exposures.set(key, { experiment, arm, person: e.personId, exposedAt: at(e) });
    }
  }
  const outcomesOf = new Map<string, FakePosthogEvent[]>();
  for (const e of events) {
    if (e.event !== shape.event || at(e) > to) continue;
    outcomesOf.set(e.personId, [...(outcomesOf.get(e.personId) ?? []), e]);
  }
  const perArm = new Map<
    string,
    { experiment: string; arm: string; units: number; sum: number; sumSq: number; events: number; valued: number }
  >();
  for (const x of exposures.values()) {
    const after = (outcomesOf.get(x.person) ?? []).filter((o) => at(o) >= x.exposedAt);
    let value: number;
    let valued = 0;
    if (shape.valueProperty === undefined) value = after.length > 0 ? 1 : 0;
    else {
      value = 0;
      for (const o of after) {
        const raw = o.properties[shape.valueProperty];
        const n =
          typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : Number.NaN;
        if (Number.isFinite(n)) {
          value += n;
          valued += 1;
        }
      }
    }
    const key = JSON.stringify([x.experiment, x.arm]);
    const agg = perArm.get(key) ?? {
      experiment: x.experiment,
      arm: x.arm,
      units: 0,
      sum: 0,
      sumSq: 0,
      events: 0,
      valued: 0,
    };
    agg.units += 1;
    agg.events += after.length;
    agg.valued += valued;
    agg.sum += value;
    agg.sumSq += value * value;
    perArm.set(key, agg);
  }
  const rows = [...perArm.values()]
    .sort((a, b) => (a.experiment === b.experiment ? cmp(a.arm, b.arm) : cmp(a.experiment, b.experiment)))
    .map((a) =>
      shape.valueProperty === undefined
        ? [a.experiment, a.arm, a.units, a.sum, a.sumSq]
        : [a.experiment, a.arm, a.units, a.sum, a.sumSq, a.events, a.valued],
    );
  return shape.valueProperty === undefined
    ? hogqlResponse(
        hogql,
        ["experiment", "arm", "units", "sum", "sum_sq"],
        ["String", "String", "UInt64", "UInt64", "UInt64"],
        rows,
        shape.limit,
      )
    : hogqlResponse(
        hogql,
        ["experiment", "arm", "units", "sum", "sum_sq", "outcome_events", "valued_events"],
        ["String", "String", "UInt64", "Float64", "Float64", "UInt64", "UInt64"],
        rows,
        shape.limit,
      );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
