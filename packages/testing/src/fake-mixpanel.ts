/**
 * A local stand-in for Mixpanel's Query API, answering from a list of events.
 * It follows the published API description: github.com/mixpanel/docs,
 * `openapi/query.openapi.yaml` (Query API 1.0.0), paths `GET /segmentation`
 * (parameters event, from_date, to_date, on, where, type general | unique,
 * unit or interval, limit "defaults to 60, maximum value 10,000"; answer
 * `{ data: { series, values: { <segment>: { <date>: count } } }, legend_size }`),
 * `GET /segmentation/sum` and `GET /segmentation/average` (answer
 * `{ status: "ok", computed_at, results: { <date>: number } }`), and the
 * expression grammar of `reference/segmentation-expressions.mdx` (properties,
 * string and number literals, lists, `+` that joins two strings, `==`, `!=`,
 * `in`, `and`, `or`, `not`, the arithmetic operators, `defined`, the
 * `string`/`number`/`boolean` casts). Service-account auth: HTTP Basic and
 * `project_id` in the query string. Errors: `{ error, status: "error" }`, 400
 * for a bad expression or parameter, 401 for bad credentials. Every request is
 * recorded, so tests count what a read costs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One tracked event: who fired it, on which day (yyyy-mm-dd, the project's time zone), with what properties. */
export interface FakeMixpanelEvent {
  readonly event: string;
  readonly distinctId: string;
  readonly date: string;
  readonly properties: Readonly<Record<string, string | number | boolean>>;
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
    const computed = () => answer(fake.events, request);
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
