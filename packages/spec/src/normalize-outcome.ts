/**
 * Normalisation: the validated document (schema defaults already filled in by
 * ajv) becomes an `OutcomeSpec`, with percentages as fractions, durations as
 * seconds and the horizon as `{ seconds }` or `{ end_date }`.
 *
 * Which values are percentages or durations is read from the schema (every
 * `$ref` to `$defs/Percentage`, `$defs/Duration`, `$defs/Horizon`), so a new
 * field declared in the schema is normalised without code here.
 */
import { defName, matchesFragment, resolveDef, type SchemaNode } from "./outcome-schema.js";
import { type Finding, formatLimit } from "./schema-diagnostics.js";
import { humanPath, pointerSegments, toPointer } from "./source-positions.js";
import { describeValue, parseDuration, parsePercentage, UnitError } from "./units.js";

/** What {@link normalizeOutcome} returns. */
export interface Normalised {
  /** The normalised document; an `OutcomeSpec` when `findings` is empty and the input was valid. */
  value: unknown;
  /** Unit strings that failed to parse, and percentage strings outside their field's bounds. */
  findings: Finding[];
}

/**
 * Normalises a document that passed (or mostly passed) schema validation.
 *
 * @param data the document with schema defaults applied
 * @param schema the outcome schema root
 * @param isClean whether the value at a pointer passed schema validation;
 *   values that did not are left as they are (they already have a finding)
 */
export function normalizeOutcome(data: unknown, schema: SchemaNode, isClean: (pointer: string) => boolean): Normalised {
  const findings: Finding[] = [];

  const unit = (pointer: string, value: unknown, node: SchemaNode, parse: (v: unknown) => number): unknown => {
    if (!isClean(pointer)) return value;
    try {
      const parsed = parse(value);
      // A number was range-checked by ajv against the bounds beside the
      // $ref; a string is only a number now, so check it against them here.
      if (typeof value === "string") {
        const problem = boundsProblem(parsed, node);
        if (problem !== undefined) {
          findings.push({
            code: "out_of_range",
            pointer,
            target: "value",
            message: `${humanPath(pointer)} must be ${problem}; ${describeValue(value)} is ${parsed}`,
            hint: typeof node.description === "string" ? node.description : undefined,
          });
        }
      }
      return parsed;
    } catch (error) {
      if (!(error instanceof UnitError)) throw error;
      findings.push({
        code: error.code,
        pointer,
        target: "value",
        message: `${humanPath(pointer)}: ${error.problem}`,
        hint: error.hint,
      });
      return value;
    }
  };

  const walk = (node: SchemaNode, value: unknown, pointer: string): unknown => {
    const ref = defName(node.$ref);
    if (ref === "Percentage") return unit(pointer, value, node, parsePercentage);
    if (ref === "Duration") return unit(pointer, value, node, parseDuration);
    if (ref === "Horizon") return horizon(value, pointer);
    if (ref !== undefined) return walk(resolveDef(node.$ref), value, pointer);

    if (Array.isArray(value)) {
      const items = node.items as SchemaNode | undefined;
      return items === undefined ? value : value.map((item, i) => walk(items, item, `${pointer}/${i}`));
    }
    if (isPlainObject(value)) {
      const properties = propertiesFor(node, value);
      const entries: [string, unknown][] = [];
      for (const [key, child] of Object.entries(value)) {
        // `$schema` only tells editors where the schema is; not part of the outcome.
        if (pointer === "" && key === "$schema") continue;
        const childSchema = Object.hasOwn(properties, key) ? properties[key] : undefined;
        const childPointer = toPointer([...pointerSegments(pointer), key]);
        entries.push([key, childSchema === undefined ? child : walk(childSchema, child, childPointer)]);
      }
      // fromEntries defines own properties, so a `__proto__` key stays a key.
      return Object.fromEntries(entries);
    }
    return value;
  };

  const horizon = (value: unknown, pointer: string): unknown => {
    if (!isClean(pointer) || typeof value !== "string") return value;
    // The schema accepted it, so it is a duration or a valid YYYY-MM-DD date.
    if (/^\d{4}-\d{2}-\d{2}$/u.test(value)) return { end_date: value };
    const seconds = unit(pointer, value, {}, parseDuration);
    return typeof seconds === "number" ? { seconds } : value;
  };

  return { value: walk(schema, data, ""), findings };
}

/**
 * The property schemas that apply to an object: its own, plus those of each
 * `if`/`then` whose `if` matches (the connector types).
 */
function propertiesFor(node: SchemaNode, value: Record<string, unknown>): Record<string, SchemaNode> {
  const own = (node.properties ?? {}) as Record<string, SchemaNode>;
  let merged: Record<string, SchemaNode> = { ...own };
  for (const branch of (node.allOf ?? []) as SchemaNode[]) {
    const condition = branch.if as SchemaNode | undefined;
    const then = branch.then as SchemaNode | undefined;
    if (condition === undefined || then === undefined || !matchesFragment(condition, value)) continue;
    const resolved = then.$ref === undefined ? then : resolveDef(then.$ref);
    merged = { ...merged, ...((resolved.properties ?? {}) as Record<string, SchemaNode>) };
  }
  return merged;
}

/** The first bound of `node` that `n` violates, in words, or undefined. */
function boundsProblem(n: number, node: SchemaNode): string | undefined {
  const bound = (keyword: string): number | undefined =>
    typeof node[keyword] === "number" ? (node[keyword] as number) : undefined;
  const exclusiveMinimum = bound("exclusiveMinimum");
  const minimum = bound("minimum");
  const exclusiveMaximum = bound("exclusiveMaximum");
  const maximum = bound("maximum");
  if (exclusiveMinimum !== undefined && !(n > exclusiveMinimum))
    return `greater than ${formatLimit(exclusiveMinimum, true)}`;
  if (minimum !== undefined && !(n >= minimum)) return `at least ${formatLimit(minimum, true)}`;
  if (exclusiveMaximum !== undefined && !(n < exclusiveMaximum))
    return `less than ${formatLimit(exclusiveMaximum, true)}`;
  if (maximum !== undefined && !(n <= maximum)) return `at most ${formatLimit(maximum, true)}`;
  return undefined;
}

/** A mapping from the YAML (not an array, not null, not a Date). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}
