/**
 * An outcome draft as the outcome.yaml a person edits: a header naming the
 * schema and where the draft came from, then the document with a `# TODO:`
 * comment above each field the person must still fill in or check.
 */
import { Document, isMap, isScalar, type Scalar } from "yaml";
import type { DraftTodo } from "./rules/draft-outcome";

/** The first line of a drafted file: editors with the YAML language server validate against the schema. */
const OUTCOME_SCHEMA_MODELINE = "yaml-language-server: $schema=./schemas/outcome.schema.json";

export interface DraftOrigin {
  /** The sentence the draft was made from. */
  readonly sentence: string;
  /** What drafted it: `rules` or `llm:<model>`. */
  readonly source: string;
}

/** The key node of the deepest existing field along `path`, and how many segments it covers. */
function deepestKey(doc: Document, path: readonly string[]): { key: Scalar; depth: number } | null {
  let node: unknown = doc.contents;
  let found: { key: Scalar; depth: number } | null = null;
  for (const [i, segment] of path.entries()) {
    if (!isMap(node)) break;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment);
    if (pair === undefined || !isScalar(pair.key)) break;
    found = { key: pair.key, depth: i + 1 };
    node = pair.value;
  }
  return found;
}

function addComment(target: Scalar, line: string): void {
  target.commentBefore = target.commentBefore ? `${target.commentBefore}\n${line}` : line;
}

/**
 * Render a drafted outcome document as YAML text.
 *
 * Each todo becomes ` TODO: <note>` above its field (`path` is dotted, e.g.
 * `signal.connector.query`); a todo for a field the draft does not contain
 * (such as `signal.baseline`) goes above its nearest existing parent, naming
 * the field, or into the header when no parent exists.
 */
export function draftOutcomeYaml(
  draft: { readonly outcome: Record<string, unknown>; readonly todos: readonly DraftTodo[] },
  origin: DraftOrigin,
): string {
  const doc = new Document(draft.outcome);
  const sentence = origin.sentence.replace(/\s+/g, " ").trim();
  const header = [
    ` ${OUTCOME_SCHEMA_MODELINE}`,
    ` Drafted from "${sentence}" (source: ${origin.source}).`,
    " Fill in each TODO below, then run `outcome-runtime validate` on this file and `outcome-runtime apply` it.",
  ];
  for (const todo of draft.todos) {
    const path = todo.path.split(".").filter((s) => s !== "");
    const at = deepestKey(doc, path);
    if (at === null) header.push(` TODO: ${todo.path}: ${todo.note}`);
    else if (at.depth === path.length) addComment(at.key, ` TODO: ${todo.note}`);
    else addComment(at.key, ` TODO: ${todo.path}: ${todo.note}`);
  }
  doc.commentBefore = header.join("\n");
  return doc.toString({ lineWidth: 0 });
}
