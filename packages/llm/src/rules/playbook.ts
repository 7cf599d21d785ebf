/**
 * The playbook library: hypothesis templates kept as YAML in `playbooks/` at
 * the repository root (format: `playbooks/README.md`), read once, validated
 * against {@link PLAYBOOK_FILE_SCHEMA} and indexed by area and metric kind.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import { parse } from "yaml";
import { RulesError } from "./rules-error";
import type { Effort, MetricKind, Risk } from "./types";

/** The product areas a playbook covers; the order breaks ties in area detection. */
export const AREAS = ["checkout", "onboarding", "activation", "retention", "pricing", "performance"] as const;
export type Area = (typeof AREAS)[number];

/** Placeholders a template's text may use (see `playbooks/README.md`). */
const PLACEHOLDERS = [
  "metric",
  "unit",
  "units",
  "direction",
  "effect",
  "outcome",
  "target",
  "baseline",
  "flag",
] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** One hypothesis template of a playbook. */
export interface PlaybookTemplate {
  /** Unique across the library, kebab-case, prefixed with its area. */
  id: string;
  title: string;
  mechanism_key: string;
  /** The playbook (file) area. */
  area: Area;
  /** Further areas the template also fits. */
  also_areas: Area[];
  kinds: MetricKind[];
  statement: string;
  mechanism: string;
  /** Typical relative effect in the desired direction (0.05 = 5 %). */
  expected_effect: number;
  confidence: number;
  effort: Effort;
  risk: Risk;
  /** Path patterns relative to the application source root (e.g. `checkout/shipping/**`). */
  touched_paths: string[];
  measurement_plan: string;
  rollout_plan: string;
  /** The file it came from, relative to the repository root. */
  source: string;
}

const TEXT = { type: "string", minLength: 10, maxLength: 1500 } as const;

/** JSON Schema of one playbook file. */
const PLAYBOOK_FILE_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  additionalProperties: false,
  required: ["area", "templates"],
  properties: {
    area: { enum: [...AREAS] },
    templates: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        additionalProperties: false,
        required: [
          "id",
          "title",
          "mechanism_key",
          "kinds",
          "statement",
          "mechanism",
          "expected_effect",
          "confidence",
          "effort",
          "risk",
          "touched_paths",
          "measurement_plan",
          "rollout_plan",
        ],
        properties: {
          id: { type: "string", pattern: "^[a-z0-9]+(?:-[a-z0-9]+)*$", maxLength: 63 },
          title: { type: "string", minLength: 3, maxLength: 120 },
          mechanism_key: { type: "string", pattern: "^[a-z][a-z0-9_]*$", maxLength: 63 },
          also_areas: { type: "array", uniqueItems: true, items: { enum: [...AREAS] } },
          kinds: { type: "array", minItems: 1, uniqueItems: true, items: { enum: ["proportion", "mean"] } },
          statement: TEXT,
          mechanism: TEXT,
          expected_effect: { type: "number", exclusiveMinimum: 0, maximum: 1 },
          confidence: { type: "number", minimum: 0, maximum: 1 },
          effort: { enum: ["S", "M", "L", "XL"] },
          risk: { enum: ["low", "medium", "high"] },
          touched_paths: {
            type: "array",
            minItems: 1,
            maxItems: 20,
            items: { type: "string", minLength: 1, pattern: "^[^/.]" },
          },
          measurement_plan: TEXT,
          rollout_plan: TEXT,
        },
      },
    },
  },
} as const;

/** The `playbooks/` directory of the repository. */
const DEFAULT_PLAYBOOKS_DIR: string = fileURLToPath(new URL("../../../../playbooks/", import.meta.url));

const validateFile = new Ajv2020({ allErrors: true, strict: true }).compile(PLAYBOOK_FILE_SCHEMA);

const PLACEHOLDER_RE = /\{\{\s*([a-z_]+)\s*\}\}/g;

function checkPlaceholders(file: string, id: string, text: string): void {
  for (const match of text.matchAll(PLACEHOLDER_RE)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(match[1] ?? "")) {
      throw new RulesError(
        "invalid_playbook",
        `${file}: template ${id}: unknown placeholder {{${match[1]}}} (known: ${PLACEHOLDERS.join(", ")})`,
        { file, template: id },
      );
    }
  }
}

/**
 * Reads every `*.yaml` playbook in `dir` (sorted by file name, so the result
 * is deterministic) and returns its templates in file order.
 *
 * @throws RulesError `invalid_playbook` when a file breaks the schema, uses an
 *   unknown placeholder, or repeats a template id.
 */
export function loadPlaybooks(dir: string = DEFAULT_PLAYBOOKS_DIR): PlaybookTemplate[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  const templates: PlaybookTemplate[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const source = `playbooks/${file}`;
    const doc: unknown = parse(readFileSync(join(dir, file), "utf8"));
    if (!validateFile(doc)) {
      const why = (validateFile.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
      throw new RulesError("invalid_playbook", `${source}: ${why}`, { file: source });
    }
    const playbook = doc as unknown as {
      area: Area;
      templates: (Omit<PlaybookTemplate, "area" | "also_areas" | "source"> & { also_areas?: Area[] })[];
    };
    for (const t of playbook.templates) {
      if (seen.has(t.id)) {
        throw new RulesError("invalid_playbook", `${source}: template id ${t.id} is used twice`, { file: source });
      }
      seen.add(t.id);
      for (const text of [t.title, t.statement, t.mechanism, t.measurement_plan, t.rollout_plan]) {
        checkPlaceholders(source, t.id, text);
      }
      templates.push({ ...t, area: playbook.area, also_areas: t.also_areas ?? [], source });
    }
  }
  return templates;
}

let cached: PlaybookTemplate[] | undefined;

/** The library in `playbooks/`, read on first use. */
export function defaultPlaybooks(): PlaybookTemplate[] {
  cached ??= loadPlaybooks();
  return cached;
}
