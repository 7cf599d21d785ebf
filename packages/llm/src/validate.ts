/**
 * Output validation with ajv (JSON Schema 2020-12, the dialect of schemas/llm).
 */
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

let ajv: Ajv2020 | undefined;
const compiled = new Map<Record<string, unknown>, ValidateFunction>();

function validator(schema: Record<string, unknown>): ValidateFunction {
  let fn = compiled.get(schema);
  if (fn === undefined) {
    ajv ??= (() => {
      const a = new Ajv2020({ allErrors: true, strict: false });
      addFormats(a);
      return a;
    })();
    // A copy of a schema compiled before (read again from schemas/llm) has its `$id`: ajv refuses to add it twice.
    const id = typeof schema.$id === "string" ? schema.$id : undefined;
    fn = (id === undefined ? undefined : ajv.getSchema(id)) ?? ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

export interface ValidationIssue {
  /** JSON Pointer of the offending value ("" for the root). */
  readonly path: string;
  readonly message: string;
}

/** Validate `value` against `schema`; returns the issues, empty when valid. */
export function validateOutput(schema: Record<string, unknown>, value: unknown): ValidationIssue[] {
  const fn = validator(schema);
  if (fn(value)) return [];
  return (fn.errors ?? []).map((e: ErrorObject) => ({
    path: e.instancePath,
    message: `${e.message ?? "is invalid"}${e.keyword === "additionalProperties" ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : ""}`,
  }));
}
