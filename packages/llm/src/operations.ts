/**
 * The catalog of operations: each is a named unit of AI work with a versioned
 * prompt file, an output JSON Schema from `schemas/llm`, an output token cap
 * and a model tier (a strong model for hypotheses, a cheap one for summaries).
 */
import { readFileSync } from "node:fs";

export const OPERATIONS = ["generate_hypotheses", "repair_output", "summarize_learning", "draft_outcome"] as const;
export type OperationName = (typeof OPERATIONS)[number];

/** Which configured model an operation uses by default. */
type ModelTier = "strong" | "cheap";

export interface OperationSpec {
  readonly name: OperationName;
  /** `v1`, `v2`, …: part of the cache key; bump it whenever the prompt file changes meaning. */
  readonly promptVersion: string;
  /** The prompt file's text (the system prompt). */
  readonly prompt: string;
  /**
   * The output JSON Schema. `repair_output` has none of its own: it answers in
   * the schema of the operation whose output it repairs.
   */
  readonly outputSchema: Record<string, unknown> | null;
  readonly maxOutputTokens: number;
  readonly tier: ModelTier;
}

const PROMPTS_DIR = new URL("../prompts/", import.meta.url);
const SCHEMAS_DIR = new URL("../../../schemas/llm/", import.meta.url);

function prompt(name: OperationName, version: string): string {
  return readFileSync(new URL(`${name}.${version}.md`, PROMPTS_DIR), "utf8");
}

function schema(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(file, SCHEMAS_DIR), "utf8")) as Record<string, unknown>;
}

function define(
  name: OperationName,
  promptVersion: string,
  outputSchema: Record<string, unknown> | null,
  maxOutputTokens: number,
  tier: ModelTier,
): OperationSpec {
  return { name, promptVersion, prompt: prompt(name, promptVersion), outputSchema, maxOutputTokens, tier };
}

let catalog: Record<OperationName, OperationSpec> | undefined;

/** The operation catalog (read from disk once). */
export function operations(): Record<OperationName, OperationSpec> {
  catalog ??= {
    generate_hypotheses: define(
      "generate_hypotheses",
      "v1",
      schema("generate_hypotheses.output.schema.json"),
      4096,
      "strong",
    ),
    repair_output: define("repair_output", "v1", null, 4096, "strong"),
    summarize_learning: define(
      "summarize_learning",
      "v1",
      schema("summarize_learning.output.schema.json"),
      1024,
      "cheap",
    ),
    draft_outcome: define("draft_outcome", "v1", schema("draft_outcome.output.schema.json"), 2048, "strong"),
  };
  return catalog;
}

/**
 * The `embed` operation: texts to vectors through an OpenAI-compatible
 * embeddings endpoint (`Gateway.embed`). It has no prompt and no output
 * schema (its output is checked for length and finite numbers instead), and
 * no rules answer: when it fails, callers search by full text. Its model is
 * `OUTCOME_RUNTIME_EMBEDDING_MODEL`, not a tier. The version is part of each
 * vector's cache key: bump it if the request changes meaning.
 */
export const EMBED_OPERATION = { name: "embed", promptVersion: "v1", maxBatch: 64 } as const;

export function isOperationName(value: string): value is OperationName {
  return (OPERATIONS as readonly string[]).includes(value);
}
