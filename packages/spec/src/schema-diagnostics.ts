/**
 * Turns ajv's errors into diagnostics a person can act on: one per mistake,
 * placed on the offending line, worded in the file's own terms, with a hint.
 */
import type { ErrorObject } from "ajv/dist/2020.js";
import type { DiagnosticCode } from "./diagnostics.js";
import { didYouMean } from "./did-you-mean.js";
import { defName, propertyLocations, type SchemaNode } from "./outcome-schema.js";
import { humanPath, type PositionTarget, pointerSegments, toPointer } from "./source-positions.js";
import { describeValue, parseDuration, parsePercentage, UnitError } from "./units.js";

/** A diagnostic before it gets a file and a position. */
export interface Finding {
  code: DiagnosticCode;
  pointer: string;
  /** Which part of the node at `pointer` the position should show. */
  target: PositionTarget;
  message: string;
  hint?: string;
}

/**
 * Maps ajv errors (from a validator compiled with `allErrors` and `verbose`)
 * to findings, collapsing the noise of composite keywords so that one
 * mistake yields one finding:
 * - `if` errors only echo the errors of their `then` branch: dropped;
 * - the branch errors of an `anyOf`/`oneOf` are replaced by one finding for
 *   the whole alternative (e.g. "not a percentage");
 * - the per-item errors of a failed `contains` are dropped;
 * - a missing required field is dropped when an unknown key beside it is a
 *   likely misspelling of it (`querry` → `query`): the unknown key says it all;
 * - a type error supersedes any other error on the same value.
 *
 * Only the first `limit` errors (in document order, as ajv walks it) are
 * worded; `omitted` counts the rest.
 */
export function schemaFindings(
  errors: readonly ErrorObject[],
  limit: number = Number.POSITIVE_INFINITY,
): { findings: Finding[]; omitted: number } {
  const kept = collapse(errors);
  // Wording a finding (did-you-mean, hints) costs microseconds; a 1 MiB file
  // of unknown keys has 100 000 of them, of which a person reads the first few.
  const findings = kept.slice(0, limit).map(toFinding);
  return {
    findings: dedupe(dropMisspeltRequired(findings)).map(({ suggestion: _, ...finding }) => finding),
    omitted: Math.max(0, kept.length - limit),
  };
}

function collapse(errors: readonly ErrorObject[]): ErrorObject[] {
  const dropped = new Set<number>();
  errors.forEach((error, index) => {
    if (error.keyword === "if") dropped.add(index);
    if (error.keyword === "anyOf" || error.keyword === "oneOf") {
      // ajv emits the branch errors right before the anyOf error itself.
      for (let j = index - 1; j >= 0; j--) {
        const previous = errors[j];
        if (previous === undefined || !isWithin(previous.instancePath, error.instancePath)) break;
        dropped.add(j);
      }
    }
    if (error.keyword === "contains") {
      errors.forEach((other, j) => {
        if (other.schemaPath.startsWith(`${error.schemaPath}/`) && isWithin(other.instancePath, error.instancePath)) {
          dropped.add(j);
        }
      });
    }
  });
  const typed = new Set(errors.filter((e, i) => !dropped.has(i) && e.keyword === "type").map((e) => e.instancePath));
  return errors.filter(
    (error, index) => !dropped.has(index) && (error.keyword === "type" || !typed.has(error.instancePath)),
  );
}

function isWithin(pointer: string, ancestor: string): boolean {
  return pointer === ancestor || pointer.startsWith(`${ancestor}/`);
}

function dropMisspeltRequired(findings: SuggestingFinding[]): SuggestingFinding[] {
  const misspelt = new Set(
    findings.flatMap((f) => (f.code === "unknown_key" && f.suggestion !== undefined ? [f.suggestion] : [])),
  );
  return findings.filter((f) => !(f.code === "missing_field" && misspelt.has(f.pointer)));
}

function dedupe(findings: SuggestingFinding[]): SuggestingFinding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const key = `${f.code}\u0000${f.pointer}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A finding that may carry the pointer of the key it suggests instead. */
interface SuggestingFinding extends Finding {
  suggestion?: string;
}

function toFinding(error: ErrorObject): SuggestingFinding {
  const parent = (error.parentSchema ?? {}) as SchemaNode;
  const path = humanPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
    case "unevaluatedProperties":
      return unknownKey(error.instancePath, String(params.additionalProperty ?? params.unevaluatedProperty), parent);
    case "required":
      return missingField(error.instancePath, String(params.missingProperty), parent);
    case "type":
      return wrongType(error.instancePath, String(params.type), error.data, parent);
    case "enum":
      return invalidValue(error.instancePath, error.data, (params.allowedValues as unknown[]) ?? []);
    case "const":
      return invalidValue(error.instancePath, error.data, [params.allowedValue]);
    case "pattern":
      return badPattern(error.instancePath, error.data, parent);
    case "format":
      return badFormat(error.instancePath, error.data, String(params.format));
    case "anyOf":
    case "oneOf":
      return noAlternative(error.instancePath, error.data, parent);
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return outOfRange(error.instancePath, error.data, String(params.comparison), Number(params.limit), parent);
    case "minItems":
      return {
        code: "too_few_items",
        pointer: error.instancePath,
        target: "container",
        message: `${path} needs at least ${Number(params.limit)} ${plural(Number(params.limit), "item")}, it has ${lengthOf(error.data)}`,
        hint: fewItemsHint(error.instancePath),
      };
    case "maxItems":
      return {
        code: "too_many_items",
        pointer: error.instancePath,
        target: "container",
        message: `${path} may have at most ${Number(params.limit)} ${plural(Number(params.limit), "item")}, it has ${lengthOf(error.data)}`,
      };
    case "uniqueItems": {
      // ajv reports the later duplicate as i, the earlier one as j.
      const later = toPointer([...pointerSegments(error.instancePath), Number(params.i)]);
      return {
        code: "duplicate_item",
        pointer: later,
        target: "value",
        message: `${path} lists ${describeValue(itemAt(error.data, Number(params.i)))} twice (items ${Number(params.j) + 1} and ${Number(params.i) + 1})`,
        hint: "remove the repeated item",
      };
    }
    case "minLength":
      return {
        code: "too_short",
        pointer: error.instancePath,
        target: "value",
        message:
          Number(params.limit) === 1
            ? `${path} must not be empty`
            : `${path} must be at least ${Number(params.limit)} characters long`,
        hint: describe(parent),
      };
    case "maxLength":
      return {
        code: "too_long",
        pointer: error.instancePath,
        target: "value",
        message: `${path} is ${lengthOf(error.data)} characters long, the limit is ${Number(params.limit)}`,
        hint: describe(parent),
      };
    case "contains":
      if (error.instancePath.endsWith("/arms")) {
        return {
          code: "no_control_arm",
          pointer: error.instancePath,
          target: "container",
          message: `${path} has no arm named "control"`,
          hint: "name the baseline arm `control`: every other arm is compared with it",
        };
      }
      return generic(error);
    default:
      return generic(error);
  }
}

function generic(error: ErrorObject): SuggestingFinding {
  return {
    code: "schema_violation",
    pointer: error.instancePath,
    target: "value",
    message: `${humanPath(error.instancePath)} ${error.message ?? "is not valid"}`,
  };
}

const propertyNames = new WeakMap<SchemaNode, readonly string[]>();

/** The property names a schema declares, one array per schema (did-you-mean caches by array). */
function declaredProperties(schema: SchemaNode): readonly string[] {
  let names = propertyNames.get(schema);
  if (names === undefined) {
    names = Object.keys((schema.properties ?? {}) as Record<string, unknown>);
    propertyNames.set(schema, names);
  }
  return names;
}

function unknownKey(container: string, key: string, parent: SchemaNode): SuggestingFinding {
  const allowed = declaredProperties(parent);
  const suggestion = didYouMean(key, allowed);
  const where = container === "" ? "at the top level" : `in ${humanPath(container)}`;
  const hints: string[] = [];
  if (key === "<<") {
    hints.push("YAML merge keys (<<) are not supported: write the fields out in full");
  } else if (suggestion !== undefined) {
    hints.push(`did you mean "${suggestion}"?`);
  } else {
    const elsewhere = propertyLocations().get(key);
    if (elsewhere !== undefined && elsewhere.length > 0) {
      hints.push(`"${key}" belongs ${elsewhere.slice(0, 3).map(underWhat).join(" or ")}`);
    }
  }
  const allowedText = allowed.length > 0 ? `allowed here: ${allowed.join(", ")}` : undefined;
  return {
    code: "unknown_key",
    pointer: toPointer([...pointerSegments(container), key]),
    target: "key",
    message: `unknown key "${key}" ${where}`,
    hint: [hints.join("; "), allowedText && hints.length > 0 ? `(${allowedText})` : allowedText]
      .filter(Boolean)
      .join(" "),
    ...(suggestion === undefined ? {} : { suggestion: toPointer([...pointerSegments(container), suggestion]) }),
  };
}

function underWhat(location: string): string {
  return location === "the top level" ? "at the top level" : `under ${location}`;
}

function missingField(container: string, field: string, parent: SchemaNode): Finding {
  const property = ((parent.properties ?? {}) as Record<string, SchemaNode>)[field];
  const where = container === "" ? "the outcome" : humanPath(container);
  return {
    code: "missing_field",
    pointer: toPointer([...pointerSegments(container), field]),
    target: "container",
    message: `${where} is missing the required field "${field}"`,
    hint: property === undefined ? undefined : describe(property),
  };
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: "a mapping",
  array: "a list",
  string: "text",
  number: "a number",
  integer: "a whole number",
  boolean: "true or false",
  null: "nothing",
};

function wrongType(pointer: string, expected: string, data: unknown, parent: SchemaNode): Finding {
  const title = typeof parent.title === "string" ? parent.title : undefined;
  const expectedText =
    title === "Duration"
      ? "a duration such as 15m"
      : expected
          .split(",")
          .map((t) => TYPE_NAMES[t] ?? t)
          .join(" or ");
  return {
    code: "wrong_type",
    pointer,
    target: "value",
    message: `${humanPath(pointer)}: expected ${expectedText}, got ${describeTyped(data)}`,
    hint: wrongTypeHint(expected, data, parent),
  };
}

function wrongTypeHint(expected: string, data: unknown, parent: SchemaNode): string | undefined {
  if (parent.title === "Duration") return unitHint(() => parseDuration(data));
  if (expected === "boolean" && typeof data === "string" && /^(?:yes|no|on|off|y|n)$/iu.test(data)) {
    return "outcome.yaml is YAML 1.2, where yes/no/on/off are text: write true or false";
  }
  if (expected === "object" && (data === null || data === undefined)) {
    return "the section is empty: indent its fields under it, or remove the line";
  }
  if ((expected === "number" || expected === "integer") && typeof data === "string" && Number.isFinite(Number(data))) {
    return "remove the quotes to write a number";
  }
  if (expected === "integer" && typeof data === "number") return "write a whole number";
  if (expected === "string" && (typeof data === "number" || typeof data === "boolean")) {
    return `put it in quotes to make it text: "${String(data)}"`;
  }
  if (expected === "array" && data !== null && typeof data !== "object") {
    return `write a list, e.g. [${typeof data === "string" ? data : String(data)}] or one "- item" per line`;
  }
  return describe(parent);
}

function invalidValue(pointer: string, data: unknown, allowed: readonly unknown[]): Finding {
  const allowedText = allowed.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
  const suggestion =
    typeof data === "string"
      ? didYouMean(
          data,
          allowed.filter((v): v is string => typeof v === "string"),
        )
      : undefined;
  return {
    code: "invalid_value",
    pointer,
    target: "value",
    message:
      allowed.length === 1
        ? `${humanPath(pointer)} must be ${allowedText}, got ${describeValue(data)}`
        : `${humanPath(pointer)}: ${describeValue(data)} is not one of ${allowedText}`,
    hint:
      data === "ratio" && GUARDRAIL_KIND.test(pointer)
        ? "a ratio metric cannot be a guardrail (the guardrail test reads one value per unit): report it under secondary_metrics, or guard its numerator per unit as a mean"
        : suggestion === undefined
          ? `allowed: ${allowedText}`
          : `did you mean "${suggestion}"?`,
  };
}

/** A guardrail's `kind`, which takes no `ratio`. */
const GUARDRAIL_KIND = /^\/constraints\/guardrails\/\d+\/kind$/u;

/** Suggested rewrites for the named string forms of the schema. */
const REWRITES: Readonly<Record<string, (text: string) => string>> = {
  Slug: (t) =>
    t
      .toLowerCase()
      .replaceAll(/[^a-z0-9]+/gu, "-")
      .replaceAll(/^-+|-+$/gu, ""),
  Identifier: (t) =>
    t
      .replaceAll(/([a-z0-9])([A-Z])/gu, "$1_$2")
      .toLowerCase()
      .replaceAll(/[^a-z0-9]+/gu, "_")
      .replaceAll(/^[_0-9]+|_+$/gu, ""),
  SourceEnvVarName: (t) =>
    `OUTCOME_RUNTIME_SOURCE_${t
      .toUpperCase()
      .replace(/^OUTCOME_RUNTIME_SOURCE_/u, "")
      .replaceAll(/[^A-Z0-9]+/gu, "_")
      .replaceAll(/^_+|_+$/gu, "")}`,
  SecretName: (t) =>
    t
      .toLowerCase()
      .replaceAll(/[^a-z0-9_.-]+/gu, "-")
      .replaceAll(/^[-_.]+|[-_.]+$/gu, "")
      .slice(0, 63),
};

const FORM_NAMES: Readonly<Record<string, string>> = {
  Slug: "a slug",
  Identifier: "a snake_case name",
  SourceEnvVarName: "the name of a source environment variable (OUTCOME_RUNTIME_SOURCE_...)",
  SecretName: "a secret name",
};

function badPattern(pointer: string, data: unknown, parent: SchemaNode): Finding {
  const title = typeof parent.title === "string" ? parent.title : "";
  if (title === "Duration") return unitFinding(pointer, () => parseDuration(data));
  const rewrite = REWRITES[title];
  const suggestion = rewrite !== undefined && typeof data === "string" ? rewrite(data) : undefined;
  const pattern = typeof parent.pattern === "string" ? new RegExp(parent.pattern, "u") : undefined;
  const usable = suggestion !== undefined && suggestion !== "" && pattern?.test(suggestion) === true;
  const form = FORM_NAMES[title] ?? formByField(pointer);
  return {
    code: "bad_format",
    pointer,
    target: "value",
    message: `${humanPath(pointer)}: ${describeValue(data)} is not ${form}`,
    hint: [usable ? `did you mean "${suggestion}"?` : undefined, describe(parent)].filter(Boolean).join(" "),
  };
}

/** How to name the form of an untitled pattern, from the field it is on. */
function formByField(pointer: string): string {
  const field = pointerSegments(pointer).at(-1);
  if (field === "path") return "a path to a .csv file";
  if (field === "name") return "a valid arm name";
  return "in the required form";
}

function badFormat(pointer: string, data: unknown, format: string): Finding {
  if (format === "email") {
    return {
      code: "bad_email",
      pointer,
      target: "value",
      message: `${humanPath(pointer)}: ${describeValue(data)} is not an email address`,
      hint: "write an address such as maya.pm@acme.example",
    };
  }
  if (format === "date") return badDate(pointer, data);
  return {
    code: "bad_format",
    pointer,
    target: "value",
    message: `${humanPath(pointer)}: ${describeValue(data)} is not a valid ${format}`,
  };
}

function badDate(pointer: string, data: unknown): Finding {
  return {
    code: "bad_date",
    pointer,
    target: "value",
    message: `${humanPath(pointer)}: ${describeValue(data)} is not a valid date`,
    hint: "write a calendar date as YYYY-MM-DD, such as 2026-12-31",
  };
}

function noAlternative(pointer: string, data: unknown, parent: SchemaNode): Finding {
  const path = humanPath(pointer);
  if (parent.title === "Percentage") {
    if (typeof data === "string") return unitFinding(pointer, () => parsePercentage(data));
    return {
      code: "wrong_type",
      pointer,
      target: "value",
      message: `${path}: expected a percentage such as 5% or a fraction such as 0.05, got ${describeTyped(data)}`,
      hint: "write a percentage such as 5% or a fraction such as 0.05",
    };
  }
  if (parent.title === "Horizon") {
    if (typeof data === "string" && /^\d{4}-/u.test(data)) return badDate(pointer, data);
    if (typeof data === "string") {
      return {
        code: "bad_duration",
        pointer,
        target: "value",
        message: `${path}: ${describeValue(data)} is neither a duration nor an end date`,
        // "60 days" gets the specific rewrite (60d); anything else the two forms.
        hint: /^\d/u.test(data)
          ? unitHint(() => parseDuration(data))
          : "write a duration such as 60d or an end date such as 2026-12-31",
      };
    }
    return {
      code: "wrong_type",
      pointer,
      target: "value",
      message: `${path}: expected a duration such as 60d or an end date such as 2026-12-31, got ${describeTyped(data)}`,
      hint: unitHint(() => parseDuration(data)),
    };
  }
  return {
    code: "schema_violation",
    pointer,
    target: "value",
    message: `${path}: ${describeValue(data)} matches none of the allowed forms`,
    hint: describe(parent),
  };
}

function outOfRange(pointer: string, data: unknown, comparison: string, limit: number, parent: SchemaNode): Finding {
  const words: Record<string, string> = {
    ">=": "at least",
    "<=": "at most",
    ">": "greater than",
    "<": "less than",
  };
  const isPercentage = defName(parent.$ref) === "Percentage";
  const hint =
    isPercentage && typeof data === "number" && data > 1 && limit <= 1
      ? `did you mean ${data}%? A bare number here is a fraction: 0.05 means 5%`
      : describe(parent);
  return {
    code: "out_of_range",
    pointer,
    target: "value",
    message: `${humanPath(pointer)} must be ${words[comparison] ?? comparison} ${formatLimit(limit, isPercentage)}, got ${describeValue(data)}`,
    hint,
  };
}

/** `0.5` → `0.5 (50%)` for a percentage field, `0.5` otherwise. */
export function formatLimit(limit: number, asPercentage: boolean): string {
  return asPercentage && limit !== 0 ? `${limit} (${formatPercent(limit)})` : String(limit);
}

/** `0.123` → `12.3%`, without binary noise (`0.07` → `7%`, not `7.000000000000001%`). */
export function formatPercent(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(12))}%`;
}

function unitFinding(pointer: string, parse: () => unknown): Finding {
  try {
    parse();
  } catch (error) {
    if (error instanceof UnitError) {
      return {
        code: error.code,
        pointer,
        target: "value",
        message: `${humanPath(pointer)}: ${error.problem}`,
        hint: error.hint,
      };
    }
    throw error;
  }
  // The schema pattern and the parser disagree: a bug in the schema or in units.ts.
  throw new Error(`schema and units.ts disagree about the value at ${pointer}`);
}

function unitHint(parse: () => unknown): string | undefined {
  try {
    parse();
    return undefined;
  } catch (error) {
    return error instanceof UnitError ? error.hint : undefined;
  }
}

function fewItemsHint(pointer: string): string | undefined {
  if (pointer.endsWith("/arms")) return "an experiment needs a control arm and at least one treatment arm";
  if (pointer.endsWith("/assignees")) return "add the email of at least one person who decides at this gate";
  return undefined;
}

function describe(schema: SchemaNode): string | undefined {
  return typeof schema.description === "string" ? schema.description : undefined;
}

/** `the string "abc"`, `the number 3`, `a list`: a value with its type, for type errors. */
function describeTyped(data: unknown): string {
  if (typeof data === "string") return `the string ${JSON.stringify(data)}`;
  if (typeof data === "number") return `the number ${data}`;
  if (typeof data === "boolean") return `${data}`;
  return describeValue(data);
}

function lengthOf(data: unknown): number {
  return Array.isArray(data) || typeof data === "string" ? data.length : 0;
}

function itemAt(data: unknown, index: number): unknown {
  return Array.isArray(data) ? data[index] : undefined;
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}
