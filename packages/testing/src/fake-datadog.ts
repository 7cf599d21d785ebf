/**
 * A local stand-in for Datadog's metrics query API, answering from a list of
 * submitted points. It follows the published API description:
 * github.com/DataDog/datadog-api-client-typescript,
 * `.generator/schemas/v1/openapi.yaml`, path `GET /api/v1/query`
 * (operationId QueryMetrics: query parameters `from` and `to`, seconds since
 * the epoch, and `query`; security `apiKeyAuth` (header `DD-API-KEY`) and
 * `appKeyAuth` (header `DD-APPLICATION-KEY`); answers 200
 * `MetricsQueryResponse` `{ status, res_type, query, from_date, to_date,
 * group_by, series: [MetricsQueryMetadata { metric, display_name, aggr, scope,
 * tag_set, expression, pointlist: [[ms, value | null]], start, end, interval,
 * length, query_index, unit }] }`, 400 and 403 `APIErrorResponse`
 * `{ errors: [string] }`, 429 `TooManyRequestsResponse`), with the rate-limit
 * headers of docs.datadoghq.com/api/latest/rate-limits/ (`X-RateLimit-Limit`,
 * `X-RateLimit-Period`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` in seconds
 * until the reset, `X-RateLimit-Name`) on every answer.
 *
 * The query grammar served is the part of Datadog's
 * (docs.datadoghq.com/metrics/#query-metrics) the connector writes:
 * `sum:<metric>{<filter>}`, `by {<tag keys>}`, `.as_count()` and
 * `.rollup(sum, <seconds>)`; a filter is `*`, tags `key:value` joined by `,`,
 * or `AND`, `OR`, `NOT`, parentheses and `key IN (v1, v2)`. Tags are
 * lowercased at intake and in queries, as Datadog does. A metric without
 * points answers `series: []`, as Datadog answers an unknown metric. Points
 * are summed into buckets of the rollup's length from `from` (of 60 s without
 * a rollup), each stamped with its start in milliseconds. Every request is
 * recorded, so tests count what a read costs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One submitted point of a count metric: its tags (`key:value`), time (seconds) and value. */
export interface FakeDatadogPoint {
  readonly metric: string;
  readonly tags: readonly string[];
  readonly timestamp: number;
  readonly value: number;
}

/** A request as the fake received it. */
export interface FakeDatadogRequest {
  readonly path: string;
  readonly params: URLSearchParams;
  readonly headers: IncomingMessage["headers"];
}

/**
 * What a test may put in place of the fake's own answer: `null` to answer from
 * the points; else a status, a body (a string is sent as is), headers, and a delay.
 */
export type FakeDatadogOverride = (
  request: FakeDatadogRequest,
  computed: () => unknown,
) => { status?: number; body?: unknown; headers?: Record<string, string>; delayMs?: number } | null;

export interface FakeDatadog {
  /** The API base, `http://127.0.0.1:<port>` (the client appends `/api/v1/query`). */
  readonly baseUrl: string;
  /** The points answered from; tests push to it (tags are lowercased when read, as Datadog does at intake). */
  readonly points: FakeDatadogPoint[];
  /** Every request received, in order. */
  readonly requests: FakeDatadogRequest[];
  /** Replaces answers (abuse cases); `null` answers from the points. */
  override: FakeDatadogOverride | null;
  close(): Promise<void>;
}

/** The fake's rate limit: `limit` requests per `periodSeconds`, counted from the fake's start. */
export interface FakeDatadogRateLimit {
  readonly limit: number;
  readonly periodSeconds: number;
}

/**
 * Starts the fake on a free loopback port.
 *
 * @param auth the organisation's API key and an application key that may query it; `rateLimit` defaults to
 *   100 requests per 3600 s
 */
export async function startFakeDatadog(
  auth: { readonly apiKey: string; readonly applicationKey: string },
  rateLimit: FakeDatadogRateLimit = { limit: 100, periodSeconds: 3600 },
): Promise<FakeDatadog> {
  const startedAt = Date.now();
  let used = 0;
  const fake: FakeDatadog = {
    baseUrl: "",
    points: [],
    requests: [],
    override: null,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const request: FakeDatadogRequest = { path: url.pathname, params: url.searchParams, headers: req.headers };
    fake.requests.push(request);
    const elapsed = Math.floor((Date.now() - startedAt) / 1000);
    const periodStart = elapsed - (elapsed % rateLimit.periodSeconds);
    const limitHeaders = (): Record<string, string> => ({
      "X-RateLimit-Limit": String(rateLimit.limit),
      "X-RateLimit-Period": String(rateLimit.periodSeconds),
      "X-RateLimit-Remaining": String(Math.max(0, rateLimit.limit - used)),
      "X-RateLimit-Reset": String(periodStart + rateLimit.periodSeconds - elapsed),
      "X-RateLimit-Name": "metrics_query",
    });
    if (req.method !== "GET" || request.path !== "/api/v1/query") {
      return send(res, 404, { errors: ["Not found"] }, {});
    }
    // Both keys are required (security: apiKeyAuth and appKeyAuth); a wrong one is a 403 (openapi: "Forbidden").
    if (req.headers["dd-api-key"] !== auth.apiKey || req.headers["dd-application-key"] !== auth.applicationKey) {
      return send(res, 403, { errors: ["Forbidden"] }, {});
    }
    used++;
    if (used > rateLimit.limit) {
      return send(res, 429, { errors: ["Too many requests"] }, limitHeaders());
    }
    const computed = (): unknown => answer(fake.points, request.params);
    const replaced = fake.override?.(request, computed) ?? null;
    const reply = (): void => {
      if (replaced !== null && (replaced.status !== undefined || replaced.body !== undefined)) {
        send(res, replaced.status ?? 200, replaced.body ?? "", { ...limitHeaders(), ...replaced.headers });
        return;
      }
      try {
        send(res, 200, computed(), limitHeaders());
      } catch (error) {
        send(res, 400, { errors: [error instanceof Error ? error.message : String(error)] }, limitHeaders());
      }
    };
    if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { baseUrl: string }).baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

/** A parsed query: `sum:<metric>{<filter>} by {<keys>}.as_count().rollup(sum, <seconds>)`. */
export interface FakeDatadogQuery {
  readonly metric: string;
  readonly filter: Filter;
  readonly by: readonly string[];
  readonly rollupSeconds: number | undefined;
}

/** A filter: all tags (`*`), one tag, a list of values, or a boolean of filters. */
type Filter =
  | { readonly kind: "all" }
  | { readonly kind: "tag"; readonly key: string; readonly value: string }
  | { readonly kind: "in"; readonly key: string; readonly values: readonly string[] }
  | { readonly kind: "not"; readonly of: Filter }
  | { readonly kind: "and" | "or"; readonly of: readonly Filter[] };

/**
 * Parses the query grammar the fake serves.
 *
 * @throws Error with Datadog's kind of message ("Error parsing query: ...") for anything else
 */
export function parseFakeDatadogQuery(text: string): FakeDatadogQuery {
  const match =
    /^\s*sum:([A-Za-z][A-Za-z0-9_.]*)\{([^{}]*)\}(?:\s*by\s*\{([^{}]*)\})?((?:\.as_count\(\))?)(?:\.rollup\(\s*sum\s*,\s*(\d+)\s*\))?\s*$/u.exec(
      text,
    );
  if (match === null) throw new Error(`Error parsing query: unable to parse ${text}: Rule 'scope_expr' didn't match`);
  const [, metric = "", filterText = "", byText, , rollup] = match;
  return {
    metric,
    filter: parseFilter(filterText),
    by:
      byText === undefined
        ? []
        : byText
            .split(",")
            .map((k) => k.trim().toLowerCase())
            .filter((k) => k !== ""),
    rollupSeconds: rollup === undefined ? undefined : Number(rollup),
  };
}

/** Tokens of a filter: words (tags, values, keywords), `(`, `)` and `,`. */
function tokenize(text: string): string[] {
  return text.match(/[(),]|[^\s(),]+/gu) ?? [];
}

function parseFilter(text: string): Filter {
  const trimmed = text.trim();
  if (trimmed === "*" || trimmed === "") return { kind: "all" };
  const tokens = tokenize(trimmed);
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`Error parsing query: ${why} in {${text}}`);
  };
  const parseOr = (): Filter => {
    const of = [parseAnd()];
    while (tokens[i] === "OR") {
      i++;
      of.push(parseAnd());
    }
    return of.length === 1 ? (of[0] as Filter) : { kind: "or", of };
  };
  const parseAnd = (): Filter => {
    const of = [parseNot()];
    while (tokens[i] === "AND" || tokens[i] === ",") {
      i++;
      of.push(parseNot());
    }
    return of.length === 1 ? (of[0] as Filter) : { kind: "and", of };
  };
  const parseNot = (): Filter => {
    if (tokens[i] === "NOT") {
      i++;
      return { kind: "not", of: parseNot() };
    }
    if (tokens[i] === "(") {
      i++;
      const inner = parseOr();
      if (tokens[i] !== ")") fail("unbalanced parenthesis");
      i++;
      return inner;
    }
    const word = tokens[i++];
    if (word === undefined) return fail("unexpected end");
    if (tokens[i] === "IN") {
      i++;
      if (tokens[i++] !== "(") fail("IN without a list");
      const values: string[] = [];
      while (tokens[i] !== ")") {
        const value = tokens[i++];
        if (value === undefined) fail("unterminated IN list");
        if (value !== ",") values.push((value as string).toLowerCase());
      }
      i++;
      return { kind: "in", key: word.toLowerCase(), values };
    }
    const colon = word.indexOf(":");
    if (colon <= 0) fail(`"${word}" is not a tag`);
    return { kind: "tag", key: word.slice(0, colon).toLowerCase(), value: word.slice(colon + 1).toLowerCase() };
  };
  const filter = parseOr();
  if (i !== tokens.length) fail(`unexpected "${tokens[i]}"`);
  return filter;
}

/** The value of `key` in `tags` (lowercased, `key:value`), or undefined. */
function tagValue(tags: readonly string[], key: string): string | undefined {
  const tag = tags.find((t) => t.startsWith(`${key}:`));
  return tag?.slice(key.length + 1);
}

/** Whether a series with `tags` (lowercased `key:value`) passes the filter of `query`. */
export function matchesFakeDatadogQuery(query: FakeDatadogQuery, tags: readonly string[]): boolean {
  return matches(query.filter, tags);
}

function matches(filter: Filter, tags: readonly string[]): boolean {
  switch (filter.kind) {
    case "all":
      return true;
    case "tag":
      return tags.includes(`${filter.key}:${filter.value}`);
    case "in":
      return filter.values.some((v) => tags.includes(`${filter.key}:${v}`));
    case "not":
      return !matches(filter.of, tags);
    case "and":
      return filter.of.every((f) => matches(f, tags));
    case "or":
      return filter.of.some((f) => matches(f, tags));
  }
}

/** The answer of a query over `points`. */
function answer(points: readonly FakeDatadogPoint[], params: URLSearchParams): unknown {
  const fromText = params.get("from");
  const toText = params.get("to");
  const queryText = params.get("query");
  if (fromText === null || toText === null || queryText === null) {
    throw new Error("from, to and query are required");
  }
  if (!/^\d+$/u.test(fromText) || !/^\d+$/u.test(toText))
    throw new Error("from and to must be seconds since the epoch");
  const from = Number(fromText);
  const to = Number(toText);
  if (to <= from) throw new Error("The time range is invalid: to must be after from");
  const query = parseFakeDatadogQuery(queryText);
  const interval = query.rollupSeconds ?? 60;
  const groups = new Map<string, { tags: string[]; buckets: Map<number, number> }>();
  for (const point of points) {
    if (point.metric !== query.metric || point.timestamp < from || point.timestamp > to) continue;
    const tags = point.tags.map((t) => t.toLowerCase());
    if (!matches(query.filter, tags)) continue;
    const groupTags = query.by.map((key) => `${key}:${tagValue(tags, key) ?? "n/a"}`);
    const id = groupTags.join(",");
    const group = groups.get(id) ?? { tags: groupTags, buckets: new Map<number, number>() };
    const bucket = from + Math.floor((point.timestamp - from) / interval) * interval;
    group.buckets.set(bucket, (group.buckets.get(bucket) ?? 0) + point.value);
    groups.set(id, group);
  }
  const series = [...groups.values()].map(({ tags, buckets }) => {
    const pointlist = [...buckets].sort(([a], [b]) => a - b).map(([at, value]) => [at * 1000, value]);
    const scope = tags.length === 0 ? "*" : tags.join(",");
    return {
      metric: query.metric,
      display_name: query.metric,
      query_index: 0,
      aggr: "sum",
      scope,
      tag_set: tags,
      expression: `sum:${query.metric}{${scope}}`,
      unit: null,
      pointlist,
      start: from * 1000,
      end: to * 1000,
      interval: interval * 1000,
      length: pointlist.length,
    };
  });
  return {
    status: "ok",
    res_type: "time_series",
    resp_version: 1,
    query: queryText,
    message: "",
    from_date: from * 1000,
    to_date: to * 1000,
    group_by: query.by,
    series,
  };
}
