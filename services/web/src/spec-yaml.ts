/**
 * Turns a stored (normalised) outcome spec back into outcome.yaml text for the
 * editor: durations are written back as `14d`-style strings and the horizon as
 * a duration or a date (the schema takes only those), fractions stay numbers
 * (the schema takes `0.05` as well as `5%`). Which fields are durations is read
 * from `schemas/outcome.schema.json`, as the normaliser does.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type SchemaNode = { [key: string]: unknown };

/** Names of the properties whose schema is a Duration or the Horizon, and every property name in schema order. */
function schemaFields(schema: SchemaNode): { durations: Set<string>; order: Map<string, number> } {
  const names = new Set<string>();
  const order = new Map<string, number>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const x of node) visit(x);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    const n = node as SchemaNode;
    const props = n.properties;
    if (typeof props === "object" && props !== null) {
      for (const [name, sub] of Object.entries(props as SchemaNode)) {
        if (!order.has(name)) order.set(name, order.size);
        const ref = (sub as SchemaNode | null)?.$ref;
        if (ref === "#/$defs/Duration" || ref === "#/$defs/Horizon") names.add(name);
      }
    }
    for (const v of Object.values(n)) visit(v);
  };
  visit(schema);
  return { durations: names, order };
}

/** 1209600 → "2w", 5400 → "90m". */
export function secondsToDuration(seconds: number): string {
  const units: [string, number][] = [
    ["w", 604_800],
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ];
  for (const [unit, size] of units) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${Math.round(seconds)}s`;
}

function denormalise(value: unknown, fields: ReturnType<typeof schemaFields>, key?: string): Json {
  const { durations, order } = fields;
  if (key !== undefined && durations.has(key)) {
    if (typeof value === "number") return secondsToDuration(value);
    if (typeof value === "object" && value !== null) {
      const h = value as { seconds?: unknown; end_date?: unknown };
      if (typeof h.seconds === "number") return secondsToDuration(h.seconds);
      if (typeof h.end_date === "string") return h.end_date;
    }
  }
  if (Array.isArray(value)) return value.map((v) => denormalise(v, fields));
  if (typeof value === "object" && value !== null) {
    // Keys in the schema's order (the database keeps JSON keys in its own order).
    const rank = (k: string) => order.get(k) ?? Number.MAX_SAFE_INTEGER;
    const entries = Object.entries(value).sort(([a], [b]) => rank(a) - rank(b));
    const out: { [k: string]: Json } = {};
    for (const [k, v] of entries) if (v !== undefined) out[k] = denormalise(v, fields, k);
    return out;
  }
  if (typeof value === "number" || typeof value === "string" || typeof value === "boolean" || value === null) {
    return value;
  }
  return null;
}

const PLAIN = /^[A-Za-z0-9_./][A-Za-z0-9 _./@*~^$:+()=,'-]*$/;
const AMBIGUOUS =
  /^(?:true|false|yes|no|on|off|null|~|[-+]?(?:\d[\d_]*)?\.?\d+(?:e[-+]?\d+)?|\.inf|\.nan|\d{4}-\d\d-\d\d.*)$/i;

function scalar(v: Json): string {
  if (v === null) return "null";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  const s = String(v);
  if (s !== "" && PLAIN.test(s) && !AMBIGUOUS.test(s) && !s.endsWith(" ") && !s.includes(": ") && !s.includes(" #")) {
    return s;
  }
  // A date of the schema is a string: quoting it keeps YAML from reading a timestamp.
  return JSON.stringify(s);
}

function keyOf(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(k) ? k : JSON.stringify(k);
}

function block(s: string, indent: string): string {
  const chomp = s.endsWith("\n") ? "|" : "|-";
  const body = s.replace(/\n$/, "").split("\n");
  return `${chomp}\n${body.map((line) => (line ? `${indent}${line}` : "")).join("\n")}`;
}

function emit(value: Json, indent: string): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return " []";
    return value
      .map((item) => {
        if (typeof item === "object" && item !== null && !Array.isArray(item)) {
          const inner = emit(item, `${indent}  `).replace(/^\n/, "");
          return `\n${indent}- ${inner.slice(indent.length + 2)}`;
        }
        return `\n${indent}- ${typeof item === "string" && item.includes("\n") ? block(item, `${indent}  `) : emitInline(item, indent)}`;
      })
      .join("");
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return " {}";
    return entries
      .map(([k, v]) => {
        if (typeof v === "string" && v.includes("\n")) return `\n${indent}${keyOf(k)}: ${block(v, `${indent}  `)}`;
        if (typeof v === "object" && v !== null) {
          const nested = emit(v, Array.isArray(v) ? `${indent}  ` : `${indent}  `);
          return `\n${indent}${keyOf(k)}:${nested}`;
        }
        return `\n${indent}${keyOf(k)}: ${scalar(v)}`;
      })
      .join("");
  }
  return ` ${scalar(value)}`;
}

function emitInline(v: Json, indent: string): string {
  if (typeof v === "object" && v !== null) return emit(v, `${indent}  `).trimStart();
  return scalar(v);
}

/** YAML text of a stored spec, ready to edit and re-apply. */
export function specToYaml(spec: Record<string, unknown>, schema: SchemaNode): string {
  const json = denormalise(spec, schemaFields(schema));
  return `${emit(json, "").replace(/^\n/, "")}\n`;
}
