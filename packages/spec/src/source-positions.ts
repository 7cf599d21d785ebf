/**
 * Maps JSON pointers into the parsed YAML document back to line:column, so
 * that every diagnostic points at the text a person has to change.
 */

import type { Document, LineCounter, Node, Pair, YAMLMap } from "yaml";
import { isAlias, isMap, isNode, isScalar, isSeq } from "yaml";

/** A 1-based position in the source. */
export interface SourcePosition {
  line: number;
  column: number;
}

/**
 * Which part of the located node to point at:
 * - `value`: the value itself (wrong type, bad duration, ...);
 * - `key`: the key of the last segment (unknown key, duplicate arm name);
 * - `container`: the mapping the pointer names, at its key when it has one
 *   (a missing field is reported on the `target:` line, not on an
 *   arbitrary child).
 */
export type PositionTarget = "value" | "key" | "container";

/** Decodes a JSON pointer (`/a~1b/0`) into segments (`['a/b', '0']`). */
export function pointerSegments(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** Encodes segments into a JSON pointer. */
export function toPointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${String(s).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

/** `/constraints/guardrails/0/metric` → `constraints.guardrails[0].metric`; `''` → `the top level`. */
export function humanPath(pointer: string): string {
  const segments = pointerSegments(pointer);
  if (segments.length === 0) return "the top level";
  let path = "";
  for (const segment of segments) {
    if (/^\d+$/u.test(segment)) path += `[${segment}]`;
    else path += path === "" ? segment : `.${segment}`;
  }
  return path;
}

interface Located {
  /** The deepest node reached (the value at the pointer when fully resolved). */
  node: Node | null;
  /** The pair whose value `node` is, when `node` was reached through a mapping. */
  pair: Pair<unknown, unknown> | undefined;
  /** Whether every segment of the pointer was found in the document. */
  complete: boolean;
}

/** Positions of a parsed document, looked up by JSON pointer. */
export class SourcePositions {
  private readonly pairIndex = new WeakMap<YAMLMap<unknown, unknown>, Map<string, Pair<unknown, unknown>>>();

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    /** The text the document was parsed from. */
    private readonly source: string = "",
  ) {}

  /** The position of a source offset (0-based UTF-16 index). */
  offset(offset: number): SourcePosition {
    const { line, col } = this.lineCounter.linePos(Math.max(0, offset));
    return { line, column: col };
  }

  /**
   * The position for a pointer. When the pointer goes past what the file
   * holds (a default filled in, a missing field), the deepest node that does
   * exist is used, so a position is always returned.
   */
  at(pointer: string, target: PositionTarget = "value"): SourcePosition {
    const segments = pointerSegments(pointer);
    const located = this.locate(segments);
    let offset: number | undefined;
    if (target === "key" && located.complete && located.pair !== undefined) {
      offset = rangeStart(located.pair.key);
    } else if (target === "container" || !located.complete) {
      offset = located.pair === undefined ? rangeStart(located.node) : rangeStart(located.pair.key);
    } else {
      offset = rangeStart(located.node) ?? rangeStart(located.pair?.key);
    }
    return this.offset(offset ?? rangeStart(this.doc.contents) ?? 0);
  }

  /**
   * The position of character `offset` inside the text value at `pointer`
   * (a SQL query's error, say). Exact for a block scalar (`|`, `|-`) and for
   * a value on one line; otherwise the value's start.
   */
  inString(pointer: string, offset: number): SourcePosition {
    const start = this.at(pointer, "value");
    const node = this.node(pointer);
    if (!isScalar(node) || typeof node.value !== "string" || node.range === undefined || node.range === null) {
      return start;
    }
    const value = node.value;
    const before = value.slice(0, Math.max(0, Math.min(offset, value.length)));
    const lineInValue = before.split("\n").length - 1;
    const columnInLine = before.length - (before.lastIndexOf("\n") + 1);
    if (node.type === "BLOCK_LITERAL") {
      // The header (`|`) is on the start line; the value's lines follow, each indented alike.
      const raw = this.source.slice(node.range[0], node.range[1]);
      const lines = raw.split("\n").slice(1);
      const indent = Math.min(
        ...lines.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length),
        Number.POSITIVE_INFINITY,
      );
      return { line: start.line + 1 + lineInValue, column: (Number.isFinite(indent) ? indent : 0) + columnInLine + 1 };
    }
    const raw = this.source.slice(node.range[0], node.range[1]);
    if (!raw.includes("\n") && lineInValue === 0) {
      const quoted = node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE";
      return { line: start.line, column: start.column + (quoted ? 1 : 0) + columnInLine };
    }
    return start;
  }

  /** The node at a pointer, or undefined when the file does not hold it. */
  node(pointer: string): Node | undefined {
    const located = this.locate(pointerSegments(pointer));
    return located.complete ? (located.node ?? undefined) : undefined;
  }

  /**
   * The pairs of a mapping by key, built once per mapping: a file with
   * 100 000 unknown keys gets 100 000 lookups, which must not each scan.
   * The first pair wins, as in the document (later ones are duplicates).
   */
  private pairsOf(map: YAMLMap<unknown, unknown>): Map<string, Pair<unknown, unknown>> {
    let index = this.pairIndex.get(map);
    if (index === undefined) {
      index = new Map();
      for (const item of map.items) {
        const key = isScalar(item.key) ? String(item.key.value) : undefined;
        if (key !== undefined && !index.has(key)) index.set(key, item);
      }
      this.pairIndex.set(map, index);
    }
    return index;
  }

  private locate(segments: readonly string[]): Located {
    let node: Node | null = this.doc.contents;
    let pair: Pair<unknown, unknown> | undefined;
    for (const segment of segments) {
      // An alias stands for its anchor's node: follow it to keep walking,
      // but report positions at the alias (where the reader looks).
      const current: unknown = isAlias(node) ? node.resolve(this.doc) : node;
      let next: { node: Node | null; pair: Pair<unknown, unknown> | undefined } | undefined;
      if (isMap(current)) {
        const found = this.pairsOf(current).get(segment);
        if (found !== undefined) next = { node: isNode(found.value) ? found.value : null, pair: found };
      } else if (isSeq(current) && /^\d+$/u.test(segment)) {
        const item = current.items[Number(segment)];
        if (isNode(item)) next = { node: item, pair: undefined };
      }
      if (next === undefined) return { node, pair, complete: false };
      node = next.node;
      pair = next.pair;
    }
    return { node, pair, complete: true };
  }
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined;
}
