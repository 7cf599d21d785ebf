/**
 * A local stand-in for Amplitude's Dashboard REST API, answering from a list
 * of events. It follows the published reference page "Dashboard REST API"
 * (https://amplitude.com/docs/apis/analytics/dashboard-rest; source
 * github.com/amplitude/amplitude-docs, `content/collections/api/en/dashboard-rest.md`):
 *
 * - auth: HTTP Basic, `{api-key}:{secret-key}`;
 * - "Shared query parameters": `e` (the event format: `event_type`,
 *   `filters` of `subprop_type`/`subprop_key`/`subprop_op`/`subprop_value`,
 *   `group_by` of `type`/`value`), `s` (a segment: a list of
 *   `{ prop, op, values }`), `g`/`g2` (group-bys); custom user properties
 *   are named `gp:<name>`, the built-in ones (`platform`, `country`, ...) bare;
 * - `GET /api/2/events/segmentation`: `e` (and `e2`), `m` = `uniques`
 *   (default), `totals`, `sums` and `value_avg` (property metrics: the
 *   property is `e`'s `group_by`, "you must include a valid group by value in
 *   parameter e"), `formula` with `formula` over `UNIQUES(A)`/`UNIQUES(B)`;
 *   `start`/`end` (YYYYMMDD, days of the project's time zone), `i` (1, 7 or
 *   30), `s`, `g`, `g2`, `limit` (default 100, at most 1000); the answer
 *   `{ data: { series, seriesLabels, seriesCollapsed: [[{ value }]], xValues } }`
 *   with the groups ranked by their collapsed value and cut at `limit`;
 * - `GET /api/2/funnels`: one `e` per step, `start`, `end`, `mode`
 *   (`ordered`, `unordered`, `sequential`: the fake treats them as ordered),
 *   `cs` (conversion window in seconds, default 2,592,000), `s`; the answer
 *   `{ data: [{ meta: { segmentIndex }, cumulativeRaw, cumulative, stepByStep, events, ... }] }`
 *   (`g` is not served: the fake answers 400);
 * - `GET /api/2/events/list`: `{ data: [{ value, display, totals, deleted, hidden, ... }] }`.
 *
 * What the page leaves out, the fake decides and says so: a group of one
 * group-by is labelled with its value as text (as the page's example); a
 * group of two group-bys with both values joined by `"; "`. The page documents
 * no error bodies: the fake answers a malformed parameter, and a property
 * that no event of the project carries, with 400 and `{ "error": <text> }`;
 * bad credentials with 401. Every request is recorded, so tests count what a
 * read costs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One tracked event: who fired it, when, and the user's and event's properties at that time. */
export interface FakeAmplitudeEvent {
  readonly eventType: string;
  readonly userId: string;
  /** When it happened (ISO 8601); its day is taken in the project's time zone. */
  readonly time: string;
  /** The user's properties as of the event (custom ones by their bare name). */
  readonly userProperties: Readonly<Record<string, string | number | boolean>>;
  readonly eventProperties?: Readonly<Record<string, string | number | boolean>>;
}

/** A request as the fake received it. */
export interface FakeAmplitudeRequest {
  /** e.g. `/api/2/events/segmentation`. */
  readonly path: string;
  readonly params: URLSearchParams;
}

/**
 * What a test may put in place of the fake's own answer: `null` to answer from
 * the events; else a status, a body (a string is sent as is), headers and a delay.
 */
export type FakeAmplitudeOverride = (
  request: FakeAmplitudeRequest,
  computed: () => unknown,
) => { status?: number; body?: unknown; headers?: Record<string, string>; delayMs?: number } | null;

export interface FakeAmplitude {
  /** The API's base, `http://127.0.0.1:<port>` (paths start with `/api/2`). */
  readonly baseUrl: string;
  /** The events answered from; tests push to it. */
  readonly events: FakeAmplitudeEvent[];
  /** Every request received, in order. */
  readonly requests: FakeAmplitudeRequest[];
  /** Replaces answers (abuse cases); `null` answers from the events. */
  override: FakeAmplitudeOverride | null;
  close(): Promise<void>;
}

/** "The limit is 1000." */
const MAX_LIMIT = 1000;
const BUILT_IN = new Set([
  "version",
  "country",
  "city",
  "region",
  "DMA",
  "language",
  "platform",
  "os",
  "device",
  "device_type",
  "start_version",
  "paying",
]);

/**
 * Starts the fake on a free loopback port.
 *
 * @param auth the project's API key and secret key
 * @param options `timeZone`: the project's time zone, in which events fall on days (default UTC)
 */
export async function startFakeAmplitude(
  auth: { readonly apiKey: string; readonly secretKey: string },
  options: { readonly timeZone?: string } = {},
): Promise<FakeAmplitude> {
  const expected = `Basic ${Buffer.from(`${auth.apiKey}:${auth.secretKey}`).toString("base64")}`;
  const timeZone = options.timeZone ?? "UTC";
  const fake: FakeAmplitude = {
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
    const url = new URL(req.url ?? "/", "http://localhost");
    const request = { path: url.pathname, params: url.searchParams };
    fake.requests.push(request);
    if (req.method !== "GET") return send(res, 405, { error: "method not allowed" });
    if (req.headers.authorization !== expected) return send(res, 401, { error: "Invalid API key or secret key" });
    const computed = () => answer(fake.events, request, timeZone);
    const replaced = fake.override?.(request, computed) ?? null;
    const reply = (): void => {
      if (replaced !== null && (replaced.status !== undefined || replaced.body !== undefined)) {
        send(res, replaced.status ?? 200, replaced.body ?? "", replaced.headers);
        return;
      }
      try {
        send(res, 200, computed());
      } catch (error) {
        send(res, 400, { error: error instanceof Error ? error.message : String(error) });
      }
    };
    if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { baseUrl: string }).baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const days = new Map<string, string>();

/** The date (YYYY-MM-DD) of an instant in `timeZone` (remembered: a test's events repeat a few instants). */
function dayOf(time: string, timeZone: string): string {
  const id = `${timeZone}|${time}`;
  const known = days.get(id);
  if (known !== undefined) return known;
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
    formatters.set(timeZone, format);
  }
  const day = format.format(new Date(time));
  if (days.size < 100_000) days.set(id, day);
  return day;
}

interface EventSpec {
  event_type: string;
  filters?: { subprop_type: string; subprop_key: string; subprop_op: string; subprop_value: unknown[] }[];
  group_by?: { type: string; value: string }[];
}

interface Condition {
  prop: string;
  op: string;
  values: unknown[];
}

function parseJson<T>(name: string, text: string | null): T {
  if (text === null) throw new Error(`${name} is required`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${name} is not valid JSON`);
  }
}

function yyyymmdd(name: string, text: string | null): string {
  if (text === null || !/^\d{8}$/u.test(text)) throw new Error(`${name} must be a date formatted YYYYMMDD`);
  return `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 8)}`;
}

function daysBetween(start: string, end: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/** A user property named as the API names it (`gp:name` or a built-in), read from an event. */
function userProperty(e: FakeAmplitudeEvent, prop: string): string | number | boolean | undefined {
  if (prop.startsWith("gp:")) return e.userProperties[prop.slice(3)];
  if (BUILT_IN.has(prop)) return e.userProperties[prop];
  throw new Error(`unknown user property ${JSON.stringify(prop)}: custom user properties are named gp:<name>`);
}

function matches(value: unknown, op: string, values: unknown[]): boolean {
  const text = value === undefined ? "(none)" : String(value);
  const list = values.map(String);
  if (op === "is") return list.includes(text);
  if (op === "is not") return !list.includes(text);
  throw new Error(`the fake does not serve the operator ${JSON.stringify(op)}`);
}

function answer(events: readonly FakeAmplitudeEvent[], request: FakeAmplitudeRequest, timeZone: string): unknown {
  const p = request.params;
  if (request.path === "/api/2/events/list") {
    const totals = new Map<string, number>();
    for (const e of events) totals.set(e.eventType, (totals.get(e.eventType) ?? 0) + 1);
    return {
      data: [...totals].map(([value, count]) => ({
        non_active: false,
        value,
        totals: count,
        deleted: false,
        flow_hidden: false,
        hidden: false,
        display: value,
      })),
    };
  }
  const start = yyyymmdd("start", p.get("start"));
  const end = yyyymmdd("end", p.get("end"));
  if (end < start) throw new Error("end is before start");
  const segment = p.has("s") ? parseJson<Condition[]>("s", p.get("s")) : [];
  if (!Array.isArray(segment)) throw new Error("s must be a list of conditions");
  const known = (prop: string): boolean => events.some((e) => userProperty(e, prop) !== undefined);
  for (const c of segment) {
    if (!known(c.prop)) throw new Error(`no event of this project has the user property ${JSON.stringify(c.prop)}`);
  }
  const inSegment = (e: FakeAmplitudeEvent): boolean =>
    segment.every((c) => matches(userProperty(e, c.prop), c.op, c.values));
  const inRange = (e: FakeAmplitudeEvent): boolean => {
    const day = dayOf(e.time, timeZone);
    return day >= start && day <= end;
  };

  if (request.path === "/api/2/funnels") {
    if (p.has("g")) throw new Error("the fake does not group funnels (g)");
    const steps = p.getAll("e").map((text) => parseJson<EventSpec>("e", text));
    if (steps.length < 2) throw new Error("a funnel needs at least two e");
    const cs = Number(p.get("cs") ?? 2_592_000);
    const byUser = new Map<string, FakeAmplitudeEvent[]>();
    for (const e of events) {
      const list = byUser.get(e.userId) ?? [];
      list.push(e);
      byUser.set(e.userId, list);
    }
    const reached = steps.map(() => 0);
    for (const userEvents of byUser.values()) {
      const sorted = [...userEvents].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
      const first = sorted.find((e) => e.eventType === steps[0]?.event_type && inRange(e) && inSegment(e));
      if (first === undefined) continue;
      const t0 = Date.parse(first.time);
      let at = t0;
      reached[0] = (reached[0] ?? 0) + 1;
      for (let k = 1; k < steps.length; k++) {
        const next = sorted.find(
          (e) =>
            e.eventType === steps[k]?.event_type && Date.parse(e.time) >= at && Date.parse(e.time) - t0 <= cs * 1000,
        );
        if (next === undefined) break;
        at = Date.parse(next.time);
        reached[k] = (reached[k] ?? 0) + 1;
      }
    }
    if (reached[0] === 0) return { data: [] };
    const top = reached[0] ?? 1;
    return {
      data: [
        {
          meta: { segmentIndex: 0 },
          cumulativeRaw: reached,
          cumulative: reached.map((n) => n / top),
          stepByStep: reached.map((n, k) => (k === 0 ? 1 : n / Math.max(1, reached[k - 1] ?? 1))),
          events: steps.map((s) => s.event_type),
        },
      ],
    };
  }

  if (request.path !== "/api/2/events/segmentation") throw new Error(`unknown path ${request.path}`);
  const m = p.get("m") ?? "uniques";
  const e1 = parseJson<EventSpec>("e", p.get("e"));
  const e2 = p.has("e2") ? parseJson<EventSpec>("e2", p.get("e2")) : undefined;
  const interval = Number(p.get("i") ?? 1);
  if (![1, 7, 30].includes(interval)) throw new Error("the fake serves i = 1, 7 or 30");
  const limit = Number(p.get("limit") ?? 100);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new Error(`limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  const groupBy = [p.get("g"), p.get("g2")].filter((g): g is string => g !== null && g !== "");
  for (const g of groupBy) {
    if (!known(g)) throw new Error(`no event of this project has the user property ${JSON.stringify(g)}`);
  }
  const window = daysBetween(start, end);
  const buckets = window.filter((_, i) => i % interval === 0);
  const bucketOf = (day: string): string => buckets[Math.floor(window.indexOf(day) / interval)] ?? day;
  const eventMatches = (spec: EventSpec) => (e: FakeAmplitudeEvent) =>
    e.eventType === spec.event_type &&
    inRange(e) &&
    inSegment(e) &&
    (spec.filters ?? []).every((f) =>
      matches(
        f.subprop_type === "user" ? userProperty(e, f.subprop_key) : e.eventProperties?.[f.subprop_key],
        f.subprop_op,
        f.subprop_value,
      ),
    );
  const labelOf = (e: FakeAmplitudeEvent): string =>
    groupBy
      .map((g) => {
        const v = userProperty(e, g);
        return v === undefined ? "(none)" : String(v);
      })
      .join("; ");

  /** group label → its per-bucket values and collapsed value. */
  type Aggregate = { series: Map<string, number>; collapsed: number };
  const aggregate = (spec: EventSpec, metric: string): Map<string, Aggregate> => {
    const property = spec.group_by?.[0];
    if ((metric === "sums" || metric === "value_avg") && property === undefined) {
      throw new Error(`m=${metric} needs a group by value in parameter e`);
    }
    const propOf = (e: FakeAmplitudeEvent): number | undefined => {
      if (property === undefined) return undefined;
      const v = property.type === "user" ? userProperty(e, property.value) : e.eventProperties?.[property.value];
      return typeof v === "number" ? v : undefined;
    };
    const groups = new Map<string, FakeAmplitudeEvent[]>();
    for (const e of events.filter(eventMatches(spec))) {
      const label = labelOf(e);
      const list = groups.get(label) ?? [];
      list.push(e);
      groups.set(label, list);
    }
    const out = new Map<string, Aggregate>();
    for (const [label, list] of groups) {
      const measure = (subset: FakeAmplitudeEvent[]): number => {
        switch (metric) {
          case "uniques":
            return new Set(subset.map((e) => e.userId)).size;
          case "totals":
            return subset.length;
          case "sums":
            return subset.reduce((total, e) => total + (propOf(e) ?? 0), 0);
          case "value_avg": {
            const values = subset.map(propOf).filter((v): v is number => v !== undefined);
            return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
          }
          default:
            throw new Error(`the fake does not serve m=${metric}`);
        }
      };
      const byBucket = new Map<string, FakeAmplitudeEvent[]>();
      for (const e of list) {
        const bucket = bucketOf(dayOf(e.time, timeZone));
        const inBucket = byBucket.get(bucket) ?? [];
        inBucket.push(e);
        byBucket.set(bucket, inBucket);
      }
      const series = new Map(buckets.map((bucket) => [bucket, measure(byBucket.get(bucket) ?? [])] as const));
      out.set(label, { series, collapsed: measure(list) });
    }
    return out;
  };

  let groups: Map<string, Aggregate>;
  if (m === "formula") {
    const formula = (p.get("formula") ?? "").replaceAll(/\s+/gu, "");
    if (formula !== "UNIQUES(B)/UNIQUES(A)" || e2 === undefined) {
      throw new Error("the fake serves the formula UNIQUES(B)/UNIQUES(A), with e2");
    }
    const a = aggregate(e1, "uniques");
    const b = aggregate(e2, "uniques");
    groups = new Map();
    for (const [label, denominator] of a) {
      const numerator = b.get(label);
      const series = new Map(
        [...denominator.series].map(([bucket, n]) => [bucket, n === 0 ? 0 : (numerator?.series.get(bucket) ?? 0) / n]),
      );
      groups.set(label, {
        series,
        collapsed: denominator.collapsed === 0 ? 0 : (numerator?.collapsed ?? 0) / denominator.collapsed,
      });
    }
  } else {
    groups = aggregate(e1, m);
  }
  // The top `limit` groups by their collapsed value.
  const top = [...groups].sort((x, y) => y[1].collapsed - x[1].collapsed).slice(0, limit);
  return {
    data: {
      series: top.map(([, g]) => buckets.map((bucket) => g.series.get(bucket) ?? 0)),
      seriesLabels: groupBy.length === 0 ? top.map(() => 0) : top.map(([label]) => label),
      seriesCollapsed: top.map(([, g]) => [{ value: g.collapsed }]),
      xValues: buckets,
    },
  };
}
