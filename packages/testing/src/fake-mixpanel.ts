/**
 * A local stand-in for Mixpanel's Query API, answering from a list of events.
 * It follows the published API description: github.com/mixpanel/docs,
 * `openapi/query.openapi.yaml` (Query API 1.0.0), paths `GET /segmentation`
 * (parameters event, from_date, to_date, on, where, type general | unique,
 * unit or interval, limit "defaults to 60, maximum value 10,000"; answer
 * `{ data: { series, values: { <segment>: { <date>: count } } }, legend_size }`),
 * `GET /segmentation/sum` and `GET /segmentation/average` (answer
 * `{ status: "ok", computed_at, results: { <date>: number } }`), `GET /funnels`
 * (parameters funnel_id, from_date, to_date, length and length_unit — the
 * conversion window, "defaults to the value that was previously saved", at most
 * 90 days, completions looked for past to_date —, interval or unit, on, where,
 * limit "defaults to 255 … maximum value 10,000"; answer `{ meta: { dates },
 * data: { <date>: { steps: [{ count, goal, event, step_conv_ratio,
 * overall_conv_ratio, avg_time, avg_time_from_start }], analysis } } }`), and the
 * expression grammar of `reference/segmentation-expressions.mdx` (properties,
 * string and number literals, lists, `+` that joins two strings, `==`, `!=`,
 * `in`, `and`, `or`, `not`, the arithmetic operators, `defined`, the
 * `string`/`number`/`boolean` casts). Service-account auth: HTTP Basic and
 * `project_id` in the query string. Errors: `{ error, status: "error" }`, 400
 * for a bad expression or parameter (and for a `funnel_id` no funnel of the
 * project has: the document gives no error of its own for it), 401 for bad
 * credentials. Every request is recorded, so tests count what a read costs.
 *
 * Funnels are counted as `docs/reports/funnels/funnels-advanced.mdx` of the
 * same repository describes the default ("Uniques") counting: a user enters
 * the first time they do step 1 in the period (once per segment of `on`, the
 * segment being step 1's value), and completes the later steps in order, each
 * after the one before, within the conversion window from the entry; `where`
 * applies to the events of every step. The document's example answer is of a
 * funnel without `on`; with `on`, each date's object has one entry per segment
 * (and `$overall`), each `{ steps, analysis }` as for the whole funnel.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One tracked event: who fired it, on which day (yyyy-mm-dd, the project's time zone), with what properties. */
export interface FakeMixpanelEvent {
  readonly event: string;
  readonly distinctId: string;
  readonly date: string;
  /** The time of day (`HH:MM:SS`, the project's time zone), which orders a funnel's steps; default midnight, then list order. */
  readonly time?: string;
  readonly properties: Readonly<Record<string, string | number | boolean>>;
}

/** A funnel saved in the project (the Funnels report): its steps' events and its conversion window. */
export interface FakeMixpanelFunnel {
  readonly name: string;
  /** The events of its steps, in order: step 1 first. */
  readonly steps: readonly string[];
  /** The saved conversion window, in days. */
  readonly windowDays: number;
}

/** A request as the fake received it. */
export interface FakeMixpanelRequest {
  /** The path below `/api/query`, e.g. `/segmentation`. */
  readonly path: string;
  readonly params: URLSearchParams;
}

/**
 * What a test may put in place of the fake's own answer: `null` to answer from
 * the events; else a status and a body (a string is sent as is), and a delay.
 */
export type FakeMixpanelOverride = (
  request: FakeMixpanelRequest,
  computed: () => unknown,
) => { status?: number; body?: unknown; delayMs?: number } | null;

export interface FakeMixpanel {
  /** The Query API base, `http://127.0.0.1:<port>/api/query`. */
  readonly baseUrl: string;
  /** The events answered from; tests push to it. */
  readonly events: FakeMixpanelEvent[];
  /** Every request received, in order. */
  readonly requests: FakeMixpanelRequest[];
  /** The project's saved funnels by `funnel_id`; tests add to it. */
  readonly funnels: Map<number, FakeMixpanelFunnel>;
  /** Replaces answers (abuse cases); `null` answers from the events. */
  override: FakeMixpanelOverride | null;
  close(): Promise<void>;
}

/** The largest `limit` of `/segmentation` (openapi/query.openapi.yaml). */
const MAX_LIMIT = 10_000;

/**
 * Starts the fake on a free loopback port.
 *
 * @param auth the service account's username and secret, and the project id it may read.
 */
export async function startFakeMixpanel(auth: {
  readonly username: string;
  readonly secret: string;
  readonly projectId: string;
}): Promise<FakeMixpanel> {
  const expected = `Basic ${Buffer.from(`${auth.username}:${auth.secret}`).toString("base64")}`;
  const fake: FakeMixpanel = {
    baseUrl: "",
    events: [],
    requests: [],
    funnels: new Map(),
    override: null,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const request = { path: url.pathname.replace(/^\/api\/query/u, ""), params: url.searchParams };
    fake.requests.push(request);
    if (req.method !== "GET") return send(res, 405, { error: "method not allowed", status: "error" });
    if (req.headers.authorization !== expected) return send(res, 401, { error: "Unauthorized", status: "error" });
    if (request.params.get("project_id") !== auth.projectId) {
      return send(res, 400, { error: "project_id is required with service account auth", status: "error" });
    }
    const computed = () =>
      request.path === "/funnels" ? funnelAnswer(fake.events, fake.funnels, request) : answer(fake.events, request);
    const replaced = fake.override?.(request, computed) ?? null;
    const reply = (): void => {
      if (replaced !== null && (replaced.status !== undefined || replaced.body !== undefined)) {
        send(res, replaced.status ?? 200, replaced.body ?? "");
        return;
      }
      try {
        send(res, 200, computed());
      } catch (error) {
        send(res, 400, { error: error instanceof Error ? error.message : String(error), status: "error" });
      }
    };
    if (replaced?.delayMs !== undefined) setTimeout(reply, replaced.delayMs).unref();
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { baseUrl: string }).baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/query`;
  return fake;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

/** The answer of a segmentation request computed from `events`. */
function answer(events: readonly FakeMixpanelEvent[], request: FakeMixpanelRequest): unknown {
  const p = request.params;
  const event = p.get("event");
  const from = p.get("from_date");
  const to = p.get("to_date");
  if (event === null || from === null || to === null) throw new Error("event, from_date and to_date are required");
  const where = p.get("where");
  const filter = where === null || where === "" ? null : parse(where);
  const matching = events.filter(
    (e) => e.event === event && e.date >= from && e.date <= to && (filter === null || truthy(evaluate(filter, e))),
  );
  if (request.path === "/segmentation/sum" || request.path === "/segmentation/average") {
    const on = parse(p.get("on") ?? "");
    const byDay = new Map<string, number[]>();
    for (const e of matching) {
      const value = evaluate(on, e);
      byDay.set(e.date, [...(byDay.get(e.date) ?? []), typeof value === "number" ? value : 0]);
    }
    const results = Object.fromEntries(
      [...byDay].map(([day, values]) => {
        const total = values.reduce((a, b) => a + b, 0);
        return [day, request.path === "/segmentation/sum" ? total : total / values.length];
      }),
    );
    return { status: "ok", computed_at: new Date().toISOString(), results };
  }
  if (request.path !== "/segmentation") throw new Error(`unknown path ${request.path}`);
  const limit = Number(p.get("limit") ?? 60);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new Error(`limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  const interval = p.get("interval");
  const days = interval === null ? 1 : Number(interval);
  if (!Number.isInteger(days) || days < 1) throw new Error("interval must be a whole number of days");
  const unique = p.get("type") === "unique";
  const onText = p.get("on");
  const on = onText === null ? null : parse(onText);
  const start = Date.parse(`${from}T00:00:00Z`);
  const bucketOf = (date: string): string => {
    const index = Math.floor((Date.parse(`${date}T00:00:00Z`) - start) / (days * 86_400_000));
    return new Date(start + index * days * 86_400_000).toISOString().slice(0, 10);
  };
  /** segment → bucket → distinct ids (unique) or event count. */
  const counts = new Map<string, Map<string, Set<string> | number>>();
  for (const e of matching) {
    const segment = on === null ? event : evaluate(on, e);
    if (segment === undefined || segment === null) continue;
    const name = String(segment);
    const buckets = counts.get(name) ?? new Map();
    counts.set(name, buckets);
    const bucket = bucketOf(e.date);
    if (unique) {
      const ids = (buckets.get(bucket) as Set<string> | undefined) ?? new Set<string>();
      ids.add(e.distinctId);
      buckets.set(bucket, ids);
    } else {
      buckets.set(bucket, ((buckets.get(bucket) as number | undefined) ?? 0) + 1);
    }
  }
  const totals = [...counts].map(([name, buckets]) => {
    const values = Object.fromEntries(
      [...buckets].map(([bucket, v]) => [bucket, typeof v === "number" ? v : v.size] as const),
    );
    return { name, values, total: Object.values(values).reduce((a, b) => a + b, 0) };
  });
  // The top `limit` segments by count, as the documentation says.
  const top = totals.sort((a, b) => b.total - a.total).slice(0, limit);
  const series = [...new Set(top.flatMap((t) => Object.keys(t.values)))].sort();
  return { data: { series, values: Object.fromEntries(top.map((t) => [t.name, t.values])) }, legend_size: top.length };
}

/** The largest `length` of `/funnels`, in days ("May not be greater than 90 days"). */
const MAX_FUNNEL_DAYS = 90;

const DAY_MS = 86_400_000;

const UNIT_MS: Readonly<Record<string, number>> = { day: 86_400_000, hour: 3_600_000, minute: 60_000, second: 1000 };

/** The answer of a `/funnels` request computed from `events` and the saved `funnels`. */
function funnelAnswer(
  events: readonly FakeMixpanelEvent[],
  funnels: ReadonlyMap<number, FakeMixpanelFunnel>,
  request: FakeMixpanelRequest,
): unknown {
  const p = request.params;
  const idText = p.get("funnel_id");
  const from = p.get("from_date");
  const to = p.get("to_date");
  if (idText === null || from === null || to === null) throw new Error("funnel_id, from_date and to_date are required");
  const funnel = /^[0-9]+$/u.test(idText) ? funnels.get(Number(idText)) : undefined;
  if (funnel === undefined) throw new Error(`funnel_id ${idText} is not a funnel of this project`);
  const lengthUnit = p.get("length_unit") ?? "day";
  const unitMs = UNIT_MS[lengthUnit];
  if (unitMs === undefined) throw new Error("length_unit must be day, hour, minute or second");
  const length = p.get("length");
  const windowMs = length === null ? funnel.windowDays * DAY_MS : Number(length) * unitMs;
  if (!Number.isInteger(windowMs) || windowMs <= 0 || windowMs > MAX_FUNNEL_DAYS * DAY_MS) {
    throw new Error(`length must be a whole number of ${lengthUnit}s, at most ${MAX_FUNNEL_DAYS} days`);
  }
  const limit = Number(p.get("limit") ?? 255);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new Error(`limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  const unit = p.get("unit");
  const interval = p.get("interval");
  const days = interval !== null ? Number(interval) : unit === "week" ? 7 : unit === "month" ? 30 : 1;
  if (!Number.isInteger(days) || days < 1) throw new Error("interval must be a whole number of days");
  const where = p.get("where");
  const filter = where === null || where === "" ? null : parse(where);
  const onText = p.get("on");
  const on = onText === null || onText === "" ? null : parse(onText);
  const start = Date.parse(`${from}T00:00:00Z`);
  const bucketOf = (date: string): string => {
    const index = Math.floor((Date.parse(`${date}T00:00:00Z`) - start) / (days * 86_400_000));
    return new Date(start + index * days * 86_400_000).toISOString().slice(0, 10);
  };
  const at = (e: FakeMixpanelEvent): number => Date.parse(`${e.date}T${e.time ?? "00:00:00"}Z`);
  // Each user's events of the funnel's steps that `where` keeps, in time order (list order within a second).
  const byUser = new Map<string, FakeMixpanelEvent[]>();
  for (const e of events) {
    if (!funnel.steps.includes(e.event) || (filter !== null && !truthy(evaluate(filter, e)))) continue;
    byUser.set(e.distinctId, [...(byUser.get(e.distinctId) ?? []), e]);
  }
  /** bucket → segment (null: no `on`) → users reaching each step. */
  const reached = new Map<string, Map<string | null, number[]>>();
  for (const list of byUser.values()) {
    const sorted = list.map((e, i) => ({ e, i })).sort((a, b) => at(a.e) - at(b.e) || a.i - b.i);
    const entered = new Set<string | null>();
    for (const { e: entry } of sorted) {
      if (entry.event !== funnel.steps[0] || entry.date < from || entry.date > to) continue;
      const value = on === null ? null : evaluate(on, entry);
      if (value === undefined || (on !== null && value === null)) continue;
      const segment = value === null ? null : String(value);
      if (entered.has(segment)) continue;
      entered.add(segment);
      let step = 1;
      let last = at(entry);
      for (const { e } of sorted) {
        if (step >= funnel.steps.length) break;
        if (e.event === funnel.steps[step] && at(e) >= last && at(e) <= at(entry) + windowMs) {
          step++;
          last = at(e);
        }
      }
      const bucket = bucketOf(entry.date);
      const segments = reached.get(bucket) ?? new Map<string | null, number[]>();
      reached.set(bucket, segments);
      const counts = segments.get(segment) ?? funnel.steps.map(() => 0);
      for (let i = 0; i < step; i++) counts[i] = (counts[i] ?? 0) + 1;
      segments.set(segment, counts);
    }
  }
  const stepsOf = (counts: readonly number[]) => ({
    steps: funnel.steps.map((event, i) => ({
      count: counts[i] ?? 0,
      avg_time: i === 0 ? null : 0,
      avg_time_from_start: i === 0 ? null : 0,
      step_conv_ratio: i === 0 ? 1 : (counts[i - 1] ?? 0) === 0 ? 0 : (counts[i] ?? 0) / (counts[i - 1] ?? 1),
      overall_conv_ratio: (counts[0] ?? 0) === 0 ? 0 : (counts[i] ?? 0) / (counts[0] ?? 1),
      goal: event,
      event,
    })),
    analysis: {
      completion: counts.at(-1) ?? 0,
      starting_amount: counts[0] ?? 0,
      steps: funnel.steps.length,
      worst: 1,
    },
  });
  // The top `limit` segments by users entered over the whole range, as the documentation says.
  const entries = new Map<string, number>();
  for (const segments of reached.values()) {
    for (const [segment, counts] of segments) {
      if (segment !== null) entries.set(segment, (entries.get(segment) ?? 0) + (counts[0] ?? 0));
    }
  }
  const top = new Set(
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([segment]) => segment),
  );
  const dates: string[] = [];
  for (
    let day = from;
    day <= to;
    day = new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10)
  ) {
    dates.push(day);
  }
  const data: Record<string, unknown> = {};
  for (const date of dates) {
    const segments = reached.get(date) ?? new Map<string | null, number[]>();
    if (on === null) {
      data[date] = stepsOf(segments.get(null) ?? []);
      continue;
    }
    const overall = funnel.steps.map(() => 0);
    const bySegment: Record<string, unknown> = {};
    for (const [segment, counts] of segments) {
      counts.forEach((c, i) => {
        overall[i] = (overall[i] ?? 0) + c;
      });
      if (segment !== null && top.has(segment)) bySegment[segment] = stepsOf(counts);
    }
    data[date] = { $overall: stepsOf(overall), ...bySegment };
  }
  return { meta: { dates }, data };
}

/**
 * The value of a segmentation expression (an `on` or a `where`) for one event
 * with `properties`, by the grammar the fake answers with: a test that writes
 * its own answer body (`override`) still segments and filters as Mixpanel does.
 *
 * @throws Error naming the place of a syntax error
 */
export function evaluateExpression(expression: string, properties: FakeMixpanelEvent["properties"]): unknown {
  return evaluate(parse(expression), { event: "", distinctId: "", date: "", properties });
}

// The expression grammar (reference/segmentation-expressions.mdx).

type Value = string | number | boolean | null | undefined | Value[];
type Node =
  | { kind: "literal"; value: Value }
  | { kind: "property"; name: string }
  | { kind: "list"; items: Node[] }
  | { kind: "unary"; op: "not" | "-"; operand: Node }
  | { kind: "call"; name: string; argument: Node }
  | { kind: "binary"; op: string; left: Node; right: Node };

const TOKEN = /\s*(?:("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|(==|!=|>=|<=|[-+*/%()[\],<>])|([A-Za-z_$][A-Za-z0-9_$]*))/uy;

/** Parses an expression; throws an Error naming the place of a syntax error. */
function parse(text: string): Node {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (m === null) {
      if (text.slice(at).trim() === "") break;
      throw new Error(`invalid expression: unexpected character at ${at}`);
    }
    tokens.push(m[1] ?? m[2] ?? m[3] ?? m[4] ?? "");
  }
  let i = 0;
  const peek = (): string | undefined => tokens[i];
  const take = (expected?: string): string => {
    const t = tokens[i++];
    if (t === undefined || (expected !== undefined && t !== expected)) {
      throw new Error(`invalid expression: expected ${expected ?? "a value"}, got ${t ?? "the end"}`);
    }
    return t;
  };
  const binary = (ops: readonly string[], next: () => Node) => (): Node => {
    let left = next();
    while (ops.includes(peek() ?? "")) {
      const op = take();
      left = { kind: "binary", op, left, right: next() };
    }
    return left;
  };
  const primary = (): Node => {
    const t = take();
    if (t.startsWith('"')) return { kind: "literal", value: JSON.parse(t) as string };
    if (/^-?\d/u.test(t)) return { kind: "literal", value: Number(t) };
    if (t === "true" || t === "false") return { kind: "literal", value: t === "true" };
    if (t === "(") {
      const inner = or();
      take(")");
      return inner;
    }
    if (t === "[") {
      const items: Node[] = [];
      while (peek() !== "]") {
        items.push(or());
        if (peek() === ",") take(",");
        else break;
      }
      take("]");
      return { kind: "list", items };
    }
    if (t === "properties") {
      take("[");
      const name = take();
      if (!name.startsWith('"')) throw new Error("invalid expression: a property name is a string");
      take("]");
      return { kind: "property", name: JSON.parse(name) as string };
    }
    if (["defined", "string", "number", "boolean", "floor", "round", "ceil"].includes(t)) {
      take("(");
      const argument = or();
      take(")");
      return { kind: "call", name: t, argument };
    }
    throw new Error(`invalid expression: unexpected ${t}`);
  };
  const unary = (): Node => {
    if (peek() === "not" || peek() === "-") return { kind: "unary", op: take() as "not" | "-", operand: unary() };
    return primary();
  };
  const product = binary(["*", "/", "%"], unary);
  const sum = binary(["+", "-"], product);
  const comparison = binary(["==", "!=", ">", ">=", "<", "<=", "in"], sum);
  const and = binary(["and"], comparison);
  const or = binary(["or"], and);
  const tree = or();
  if (i !== tokens.length) throw new Error(`invalid expression: unexpected ${tokens[i]}`);
  return tree;
}

function truthy(value: Value): boolean {
  return value === true;
}

function evaluate(node: Node, e: FakeMixpanelEvent): Value {
  switch (node.kind) {
    case "literal":
      return node.value;
    case "property":
      return e.properties[node.name];
    case "list":
      return node.items.map((item) => evaluate(item, e));
    case "unary": {
      const v = evaluate(node.operand, e);
      if (node.op === "-") return typeof v === "number" ? -v : undefined;
      return v === undefined ? true : typeof v === "boolean" ? !v : undefined;
    }
    case "call": {
      const v = evaluate(node.argument, e);
      if (node.name === "defined") return v !== undefined && v !== null;
      if (v === undefined || v === null) return undefined;
      if (node.name === "string") return typeof v === "number" || typeof v === "boolean" ? String(v) : v;
      if (node.name === "number") {
        const n = typeof v === "boolean" ? Number(v) : Number(v);
        return Number.isFinite(n) ? n : undefined;
      }
      if (node.name === "boolean") return Boolean(v);
      return typeof v === "number" ? Math[node.name as "floor" | "round" | "ceil"](v) : undefined;
    }
    case "binary": {
      const l = evaluate(node.left, e);
      const r = evaluate(node.right, e);
      switch (node.op) {
        case "and":
        case "or": {
          for (const v of [l, r]) {
            if (v !== undefined && typeof v !== "boolean")
              throw new Error(`invalid expression: ${node.op} of a non-boolean`);
          }
          return node.op === "and" ? l === true && r === true : l === true || r === true;
        }
        case "==":
          return typeof l === typeof r && l === r;
        case "!=":
          return !(typeof l === typeof r && l === r);
        case "in":
          if (Array.isArray(r)) return r.some((item) => typeof item === typeof l && item === l);
          return typeof l === "string" && typeof r === "string" ? r.includes(l) : undefined;
        case "+":
          if (typeof l === "number" && typeof r === "number") return l + r;
          return typeof l === "string" && typeof r === "string" ? l + r : undefined;
        default: {
          if (typeof l !== "number" || typeof r !== "number") return undefined;
          switch (node.op) {
            case "-":
              return l - r;
            case "*":
              return l * r;
            case "/":
              return r === 0 ? undefined : l / r;
            case "%":
              return l % r;
            case ">":
              return l > r;
            case ">=":
              return l >= r;
            case "<":
              return l < r;
            default:
              return l <= r;
          }
        }
      }
    }
  }
}
