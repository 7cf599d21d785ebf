/**
 * Process configuration from environment variables, validated once at start
 * against a TypeBox schema (with defaults and coercion). Every missing or
 * malformed variable is reported at once, by name, with its description;
 * secrets are never echoed and passwords in URLs are masked. The processes
 * (API, worker) declare their own schema and call this.
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import type { TObject } from "typebox";

/** Thrown with one line per bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false });
addFormats.default(ajv);
const compiled = new WeakMap<TObject, ValidateFunction>();

/** A value as it may appear in a message: secrets hidden, URL passwords masked. */
function shown(name: string, value: string | undefined): string {
  if (value === undefined) return "(unset)";
  if (/KEY|SECRET|PASSWORD|TOKEN/.test(name)) return `(hidden, ${value.trim().length} characters)`;
  return JSON.stringify(value.replace(/(\/\/[^:/@]+:)[^@/]*@/, "$1***@"));
}

/**
 * Read the variables the schema declares from `env`; empty strings count as
 * unset. `crossChecks` adds problems between variables (e.g. a URL that needs
 * a secret); it runs whatever else is wrong, so everything is reported at once.
 *
 * @throws ConfigError naming each missing or malformed variable.
 */
export function readEnvConfig<T>(
  schema: TObject,
  env: Readonly<Record<string, string | undefined>>,
  crossChecks: (input: Readonly<Record<string, unknown>>) => string[] = () => [],
): T {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const props = schema.properties as Record<string, { description?: string }>;
  const input: Record<string, unknown> = {};
  for (const name of Object.keys(props)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== "") input[name] = value.trim();
  }
  const valid = validate(input);
  const problems = crossChecks(input);
  if (valid && problems.length === 0) return input as T;
  for (const e of validate.errors ?? []) {
    const name = e.keyword === "required" ? String(e.params.missingProperty) : e.instancePath.slice(1);
    const about = props[name]?.description ?? "";
    problems.push(
      e.keyword === "required"
        ? `${name} is not set: ${about}`
        : `${name}=${shown(name, env[name])} is not valid (${e.message}): ${about}`,
    );
  }
  throw new ConfigError([...new Set(problems)]);
}
