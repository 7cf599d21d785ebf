/**
 * The outcome.yaml JSON Schema (`schemas/outcome.schema.json`, the one source
 * of truth for the format) and its compiled ajv validator.
 */

import type { ValidateFunction } from "ajv/dist/2020.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import schemaJson from "../../../schemas/outcome.schema.json" with { type: "json" };

/** A JSON Schema node, as read from the schema file (shapes vary by keyword). */
export type SchemaNode = { readonly [keyword: string]: unknown };

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * The outcome.yaml JSON Schema (draft 2020-12), frozen: the validator, the
 * normaliser and the type generator all read this one object.
 */
export const outcomeSchema: object = deepFreeze(schemaJson);

const root = outcomeSchema as SchemaNode;
const defs = (root.$defs ?? {}) as Readonly<Record<string, SchemaNode>>;

/** `#/$defs/Duration` → `Duration`; undefined for any other reference. */
export function defName(ref: unknown): string | undefined {
  return typeof ref === "string" && ref.startsWith("#/$defs/") ? ref.slice("#/$defs/".length) : undefined;
}

/** The `$defs` entry a `$ref` points at. Throws on a dangling reference (a schema bug). */
export function resolveDef(ref: unknown): SchemaNode {
  const name = defName(ref);
  const def = name === undefined ? undefined : defs[name];
  if (def === undefined) throw new Error(`outcome schema: unresolvable $ref ${String(ref)}`);
  return def;
}

let ajv: Ajv2020 | undefined;
let validator: ValidateFunction | undefined;

function getAjv(): Ajv2020 {
  if (ajv !== undefined) return ajv;
  ajv = new Ajv2020({
    allErrors: true,
    // verbose puts `parentSchema` and `data` on each error: the diagnostics
    // read titles, descriptions and allowed keys from there.
    verbose: true,
    // Defaults live in the schema and are applied here, in one place.
    useDefaults: true,
    strict: true,
    // `project_id` is `["integer", "string"]` on purpose.
    allowUnionTypes: true,
    // Numeric bounds sit beside `$ref: Percentage` (number or string) and
    // apply to the number form only, as JSON Schema intends; strictTypes
    // would demand a `type: number` there, which would reject `"5%"`.
    strictTypes: false,
  });
  addFormats(ajv, ["email", "date"]);
  return ajv;
}

/**
 * The compiled validator for a whole outcome, compiled on first use and
 * kept. It fills in schema defaults in the data it validates (mutates it).
 */
export function outcomeValidator(): ValidateFunction {
  validator ??= getAjv().compile(outcomeSchema);
  return validator;
}

const fragmentValidators = new WeakMap<object, ValidateFunction>();

/**
 * Whether `data` matches a self-contained fragment of the schema (no `$ref`),
 * e.g. the `if` of a connector's `if`/`then`. Compiled once per fragment.
 */
export function matchesFragment(fragment: SchemaNode, data: unknown): boolean {
  let validate = fragmentValidators.get(fragment);
  if (validate === undefined) {
    validate = getAjv().compile(fragment);
    fragmentValidators.set(fragment, validate);
  }
  return validate(data) === true;
}

/**
 * Where each property name is allowed, for "`alpha` belongs under
 * `experiment_defaults`" hints: property name → human paths of the objects
 * that declare it.
 */
export function propertyLocations(): ReadonlyMap<string, readonly string[]> {
  locations ??= indexProperties();
  return locations;
}

let locations: Map<string, string[]> | undefined;

function indexProperties(): Map<string, string[]> {
  const index = new Map<string, string[]>();
  const visit = (node: SchemaNode, path: string, seen: ReadonlySet<SchemaNode>): void => {
    if (seen.has(node)) return;
    const nextSeen = new Set(seen).add(node);
    if (node.$ref !== undefined) visit(resolveDef(node.$ref), path, nextSeen);
    const properties = node.properties as Record<string, SchemaNode> | undefined;
    for (const [key, child] of Object.entries(properties ?? {})) {
      const where = path === "" ? "the top level" : path;
      const list = index.get(key) ?? [];
      if (!list.includes(where)) list.push(where);
      index.set(key, list);
      visit(child, path === "" ? key : `${path}.${key}`, nextSeen);
    }
    const items = node.items as SchemaNode | undefined;
    if (items !== undefined) visit(items, `${path}[]`, nextSeen);
    for (const branch of (node.allOf ?? []) as SchemaNode[]) {
      if (branch.then !== undefined) visit(branch.then as SchemaNode, path, nextSeen);
    }
  };
  visit(root, "", new Set());
  return index;
}
