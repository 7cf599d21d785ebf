/**
 * Process configuration from environment variables, validated once at start
 * against a TypeBox schema (with defaults and coercion). Every missing or
 * malformed variable is reported at once, by name, with its description;
 * secrets are never echoed and passwords in URLs are masked. The processes
 * (API, worker) declare their own schema, spreading {@link SHARED_ENV} for the
 * variables they both read, and read it with `readBootConfig` (boot-config.ts).
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { type TObject, Type } from "typebox";

/**
 * The variables the API and the worker both read, defined once: spread into
 * each process's schema (`Type.Object({ ...SHARED_ENV, PORT: … })`). The
 * groups both read (signal sources, LLM, outbound HTTP) are parsed by their
 * packages through `readBootConfig`.
 */
export const SHARED_ENV = {
  DATABASE_URL: Type.String({
    pattern: "^postgres(ql)?://",
    description: "Postgres URL, e.g. postgres://postgres@localhost:5432/outcome_runtime",
  }),
  REDIS_URL: Type.String({ pattern: "^rediss?://", description: "Redis URL, e.g. redis://localhost:6379" }),
  HOST: Type.String({
    default: "127.0.0.1",
    description: "interface the process listens on (the API, or the worker's health server); 0.0.0.0 in containers",
  }),
  QUEUE_PREFIX: Type.String({
    pattern: "^[A-Za-z0-9_.:-]+$",
    default: "outcome-runtime",
    description: "prefix of the BullMQ keys in Redis; the API and the workers of one installation share it",
  }),
  LOG_LEVEL: Type.Enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
    default: "info",
    description: "pino log level",
  }),
  OUTCOME_RUNTIME_PUBLIC_URL: Type.Optional(
    Type.String({
      format: "uri",
      // Absolute http(s), no credentials, query or fragment: links are built by appending paths to it.
      pattern: "^https?://[^/?#@\\s]+(/[^?#\\s]*)?$",
      description:
        "public base URL people reach the dashboard at (links in the API and in gate emails), e.g. https://outcomes.acme.example; no query or fragment",
    }),
  ),
};

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
  const named = new Set<string>();
  for (const e of validate.errors ?? []) {
    const name = e.keyword === "required" ? String(e.params.missingProperty) : e.instancePath.slice(1);
    // One line per variable: a value may break several keywords (a pattern and a format).
    if (named.has(name)) continue;
    named.add(name);
    const about = props[name]?.description ?? "";
    problems.push(
      e.keyword === "required"
        ? `${name} is not set: ${about}`
        : `${name}=${shown(name, env[name])} is not valid (${e.message}): ${about}`,
    );
  }
  throw new ConfigError([...new Set(problems)]);
}
