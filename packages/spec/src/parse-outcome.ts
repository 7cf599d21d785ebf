/**
 * `parseOutcome`: outcome.yaml text in, a normalised `OutcomeSpec` or every
 * mistake (with file:line:column and a hint) out. Never throws.
 */

import type { Alias, Document, Node, Scalar, YAMLError } from "yaml";
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, Parser, parseDocument, visit } from "yaml";
import { contentHash } from "./content-hash.js";
import type { Diagnostic, DiagnosticCode } from "./diagnostics.js";
import { metricPointers, valueAt } from "./metric-pointers.js";
import { isPlainObject, normalizeOutcome } from "./normalize-outcome.js";
import type { OutcomeSpec, OutcomeSpecInput } from "./outcome.types.js";
import { outcomeSchema, outcomeValidator, type SchemaNode } from "./outcome-schema.js";
import { type Finding, schemaFindings } from "./schema-diagnostics.js";
import { semanticFindings } from "./semantic-checks.js";
import { humanPath, SourcePositions } from "./source-positions.js";

/**
 * Connector types the runtime ships with (`replay` is another name for
 * `csv`). Kept in step with `CONNECTOR_TYPES` of @outcome-runtime/connectors,
 * which spec does not import (it may import only core).
 */
export const KNOWN_CONNECTORS: readonly string[] = Object.freeze([
  "postgres",
  "mixpanel",
  "csv",
  "replay",
  "mysql",
  "duckdb",
  "clickhouse",
  "snowflake",
  "bigquery",
  "ga4",
  "datadog",
  "prometheus",
  "posthog",
  "amplitude",
]);

/**
 * The largest outcome file read, in bytes (UTF-8): 1 MiB. An outcome is a
 * few kilobytes; anything near this is a wrong file or an attack, and is
 * refused before parsing.
 */
export const MAX_OUTCOME_BYTES: number = 1024 * 1024;

/**
 * How many aliases may be expanded (yaml's `maxAliasCount`). Sharing a
 * connector between a few guardrails needs a handful; a "billion laughs"
 * document needs millions.
 */
const MAX_ALIAS_COUNT = 50;

/**
 * The most values (scalars, mappings, lists, counting aliases expanded) an
 * outcome may hold. The example holds about 100. A bound here keeps every
 * later stage cheap: ajv's error collection is quadratic in the number of
 * errors, and a "wide" alias bomb (one big list aliased many times) stays
 * under yaml's alias count while multiplying the data.
 */
const MAX_VALUES = 20_000;

/**
 * The deepest nesting of mappings and lists read. An outcome is a few levels
 * deep. yaml builds the document recursively and catches its own stack
 * overflow, but at 10 000 levels (`[[[…]]]`, 20 kB) the code that runs next
 * at the edge of the stack compiles a regular expression and V8 aborts the
 * whole process ("FATAL ERROR: RegExpCompiler Allocation failed"), which no
 * `catch` can stop. So the depth is measured first, without recursion.
 */
const MAX_DEPTH = 256;

/** More diagnostics than this are cut, with a final `too_many_errors`. */
const MAX_DIAGNOSTICS = 100;

/**
 * Schema errors worded before the cut. More than MAX_DIAGNOSTICS, so the
 * first hundred by position are (nearly always) among them.
 */
const MAX_WORDED_FINDINGS = 1000;

const DEFAULT_FILE = "outcome.yaml";

/** Options of {@link parseOutcome}. */
export interface ParseOptions {
  /** The file name shown in diagnostics (default `outcome.yaml`). */
  file?: string;
  /** Connector types this runtime knows (default {@link KNOWN_CONNECTORS}). */
  connectors?: readonly string[];
  /**
   * Checks each connector's settings beyond the schema (the SQL policy,
   * credential references, vendor hosts); the connectors package provides it
   * (`checkConnectorSettings`). Run on every connector that passed the schema.
   */
  checkConnector?: ConnectorCheck;
}

/** What {@link ConnectorCheck} reports about one connector. */
export interface ConnectorCheckFinding {
  readonly code: "invalid_connector" | "sql_refused" | "source_refused";
  /** The setting concerned (`query`, `database_url_secret`), when there is one. */
  readonly field: string | undefined;
  readonly problem: string;
  readonly fix: string | undefined;
  /** For a text setting: the character offset of the problem in its value. */
  readonly offset: number | undefined;
}

/** A connector settings check: the first problem of one connector, or null. */
export type ConnectorCheck = (
  connector: Readonly<Record<string, unknown>>,
  metricKind: "proportion" | "mean" | "ratio",
) => ConnectorCheckFinding | null;

/** The result of {@link parseOutcome}. */
export type ParseResult =
  | {
      ok: true;
      /** The normalised outcome: defaults applied, fractions, seconds. */
      spec: OutcomeSpec;
      /** The document as written (no defaults, units as text). */
      input: OutcomeSpecInput;
      /** SHA-256 hex of the canonical JSON (sorted keys) of `spec`. */
      contentHash: string;
      /**
       * Where a JSON pointer of the document is in the file (and, with
       * `offset`, a character of its text value): for diagnostics found
       * after parsing.
       */
      locate: (pointer: string, offset?: number) => { line: number; column: number };
    }
  | { ok: false; errors: Diagnostic[] };

/**
 * Parses, validates and normalises an outcome file.
 *
 * `source` is YAML 1.2 or JSON text (JSON is read as YAML, so positions work
 * for both). The steps: size check (`file_too_large` over
 * {@link MAX_OUTCOME_BYTES}), YAML parse (syntax errors, duplicate keys,
 * alias bombs), JSON Schema validation (`schemas/outcome.schema.json`),
 * normalisation (percentages → fractions, durations → seconds, schema
 * defaults) and semantic checks (weights add up to 1, known connectors,
 * target vs baseline, ...). Every independent mistake is reported at once,
 * sorted by position.
 *
 * Never throws: an unexpected failure becomes an `internal_error` diagnostic.
 *
 * @example
 * const result = parseOutcome(text, { file: 'outcome.yaml' });
 * if (!result.ok) console.error(formatDiagnostics(result.errors));
 */
export function parseOutcome(source: string, options: ParseOptions = {}): ParseResult {
  const file = typeof options.file === "string" && options.file !== "" ? options.file : DEFAULT_FILE;
  try {
    return parse(source, file, options.connectors ?? KNOWN_CONNECTORS, options.checkConnector);
  } catch (error) {
    return { ok: false, errors: [unexpected(file, error)] };
  }
}

function parse(
  source: string,
  file: string,
  connectors: readonly string[],
  checkConnector: ConnectorCheck | undefined,
): ParseResult {
  if (typeof source !== "string") {
    return fail(
      file,
      "internal_error",
      `expected the text of the file, got ${source === null ? "null" : typeof source}`,
    );
  }
  const bytes = Buffer.byteLength(source, "utf8");
  if (bytes > MAX_OUTCOME_BYTES) {
    return fail(
      file,
      "file_too_large",
      `the file is ${formatBytes(bytes)}; an outcome file may be at most ${formatBytes(MAX_OUTCOME_BYTES)}`,
      "an outcome.yaml is a few kilobytes: check that this is the right file",
    );
  }

  const lineCounter = new LineCounter();
  const deep = tooDeepAt(source);
  if (deep !== undefined) {
    const before = source.slice(0, deep);
    const line = before.split("\n").length;
    return { ok: false, errors: [tooDeep(file, line, deep - before.lastIndexOf("\n"))] };
  }
  const doc = parseDocument(source, {
    lineCounter,
    // Duplicate keys are found by duplicateKeys(), in linear time.
    uniqueKeys: false,
    prettyErrors: false,
    // outcome.yaml is YAML 1.2 (core schema) even under a `%YAML 1.1`
    // directive, so `n` stays text and `2026-12-31` stays a date string.
    version: "1.2",
    schema: "core",
    // `<<: *pg` is how people share a connector between guardrails; merged
    // values go through the same alias limit as any alias.
    merge: true,
    // Problems are reported as diagnostics, never as console warnings
    // ("silent" would also drop the error for a second document).
    logLevel: "error",
  });
  const positions = new SourcePositions(doc, lineCounter, source);

  const syntaxErrors = yamlDiagnostics(doc, source, file, positions);
  if (syntaxErrors.length > 0) {
    return { ok: false, errors: finish([...syntaxErrors, ...duplicateKeys(doc, file, positions)]) };
  }

  if (doc.contents === null) {
    const onlyComments = /\S/u.test(source);
    return fail(
      file,
      "empty_file",
      onlyComments ? "the file has no content, only comments" : "the file is empty",
      "an outcome needs at least id, name, owner, signal, target and horizon; start from outcome.example.yaml or run `outcome-runtime init`",
    );
  }

  const targets = aliasTargets(doc);
  const size = documentSize(doc, targets);
  if (size.expanded > MAX_VALUES) return { ok: false, errors: [tooManyValues(file, doc, positions, size)] };
  // Duplicate keys leave a document whose shape can be trusted, so the
  // schema is checked too; after any other syntax error (above), schema
  // errors would mostly be echoes of it.
  const yamlErrors = duplicateKeys(doc, file, positions);
  // yaml throws on these while building the data (an alias with no anchor, a
  // merge of something other than a mapping) instead of reporting them, so
  // they are looked for first.
  const unbuildable = [
    ...unresolvedAliases(doc, file, positions, targets),
    ...badMerges(doc, file, positions, targets),
  ];
  if (unbuildable.length > 0) return { ok: false, errors: finish([...unbuildable, ...yamlErrors]) };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const alias = aliasDiagnostic(error, doc, file, positions);
    if (alias !== undefined) return { ok: false, errors: [alias] };
    throw error;
  }
  const cycle = findCycle(data);
  if (cycle !== undefined) {
    return {
      ok: false,
      errors: [
        at(file, positions, cycle, "value", {
          code: "alias_cycle",
          message: "an alias refers to the node that contains it, which makes an endless structure",
          hint: "an alias (*name) must not appear inside the node its anchor (&name) is set on",
        }),
      ],
    };
  }
  if (!isPlainObject(data)) {
    return {
      ok: false,
      errors: [
        at(file, positions, "", "value", {
          code: "not_a_mapping",
          message: `the document is ${Array.isArray(data) ? "a list" : "a single value"}, but an outcome is a mapping of keys to values`,
          hint: 'write the outcome as key: value lines (id:, name:, owner:, signal:, target:, horizon:, ...), not as a "- item" list',
        }),
      ],
    };
  }

  const input = structuredClone(data) as unknown as OutcomeSpecInput;
  const validate = outcomeValidator();
  const valid = validate(data);
  const { findings, omitted } = valid
    ? { findings: [] as Finding[], omitted: 0 }
    : schemaFindings(validate.errors ?? [], MAX_WORDED_FINDINGS);

  const { note, isClean } = cleanliness();
  findings.forEach(note);
  const normalised = normalizeOutcome(data, outcomeSchema as SchemaNode, isClean);
  normalised.findings.forEach(note);
  findings.push(...normalised.findings);
  // Noted, so a connector a semantic check already refused is not checked (and refused) again below.
  const semantic = semanticFindings(normalised.value, { connectors, isClean });
  semantic.forEach(note);
  findings.push(...semantic);

  const errors = [...yamlErrors, ...findings.map((f) => at(file, positions, f.pointer, f.target, f))];
  if (checkConnector !== undefined)
    errors.push(...connectorDiagnostics(normalised.value, checkConnector, isClean, file, positions));
  if (errors.length > 0) return { ok: false, errors: finish(errors, omitted) };

  const spec = normalised.value as OutcomeSpec;
  const locate = (pointer: string, offset?: number) =>
    offset === undefined ? positions.at(pointer, "value") : positions.inString(pointer, offset);
  return { ok: true, spec, input, contentHash: contentHash(spec), locate };
}

/** The JSON pointers of the connectors of a normalised outcome, with their metric kinds. */
export function connectorPointers(
  spec: unknown,
): { pointer: string; kind: "proportion" | "mean" | "ratio"; config: Record<string, unknown> }[] {
  const found: { pointer: string; kind: "proportion" | "mean" | "ratio"; config: Record<string, unknown> }[] = [];
  const take = (metric: unknown, pointer: string): void => {
    if (!isPlainObject(metric)) return;
    const kind = metric.kind;
    const config = metric.connector;
    if (
      (kind === "proportion" || kind === "mean" || kind === "ratio") &&
      isPlainObject(config) &&
      typeof config.type === "string"
    ) {
      found.push({ pointer: `${pointer}/connector`, kind, config });
    }
  };
  for (const { pointer } of metricPointers(spec)) take(valueAt(spec, pointer), pointer);
  return found;
}

/** A diagnostic for a connector setting (or the connector) at `pointer`, with the finding's offset. */
function connectorDiagnostic(
  file: string,
  positions: SourcePositions,
  pointer: string,
  config: Readonly<Record<string, unknown>>,
  finding: ConnectorCheckFinding,
): Diagnostic {
  const fieldPointer =
    finding.field !== undefined && Object.hasOwn(config, finding.field) ? `${pointer}/${finding.field}` : pointer;
  const { line, column } =
    finding.offset !== undefined && fieldPointer !== pointer
      ? positions.inString(fieldPointer, finding.offset)
      : positions.at(fieldPointer, fieldPointer === pointer ? "container" : "value");
  const where = humanPath(finding.field !== undefined ? `${pointer}/${finding.field}` : pointer);
  return withHint(
    { file, line, column, pointer: fieldPointer, code: finding.code, message: `${where}: ${finding.problem}` },
    finding.fix,
  );
}

function connectorDiagnostics(
  spec: unknown,
  check: ConnectorCheck,
  isClean: (pointer: string) => boolean,
  file: string,
  positions: SourcePositions,
): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const { pointer, kind, config } of connectorPointers(spec)) {
    if (!isClean(pointer)) continue;
    const finding = check(config, kind);
    if (finding !== null) diagnostics.push(connectorDiagnostic(file, positions, pointer, config, finding));
  }
  return diagnostics;
}

/**
 * Tracks which parts of the document already have a finding, so later
 * stages skip them and one mistake is reported once. A value is clean when
 * no finding is at or below it and no ancestor has the wrong type. Set
 * lookups, not scans: a file can have 100 000 findings.
 */
function cleanliness(): { note: (finding: Finding) => void; isClean: (pointer: string) => boolean } {
  const dirty = new Set<string>();
  const wrongType = new Set<string>();
  const note = (finding: Finding): void => {
    if (finding.code === "wrong_type") wrongType.add(finding.pointer);
    for (let p = finding.pointer; !dirty.has(p); p = p.slice(0, Math.max(0, p.lastIndexOf("/")))) {
      dirty.add(p);
      if (p === "") break;
    }
  };
  const isClean = (pointer: string): boolean => {
    if (dirty.has(pointer)) return false;
    for (let p = pointer; p !== ""; ) {
      p = p.slice(0, Math.max(0, p.lastIndexOf("/")));
      if (wrongType.has(p)) return false;
    }
    return true;
  };
  return { note, isClean };
}

/** Sorts by position and caps the list, so output reads top to bottom. */
function finish(errors: Diagnostic[], omitted = 0): Diagnostic[] {
  const sorted = [...errors].sort((a, b) => a.line - b.line || a.column - b.column);
  if (sorted.length <= MAX_DIAGNOSTICS && omitted === 0) return sorted;
  const last = sorted[Math.min(sorted.length, MAX_DIAGNOSTICS) - 1];
  return [
    ...sorted.slice(0, MAX_DIAGNOSTICS),
    {
      file: last?.file ?? DEFAULT_FILE,
      line: last?.line ?? 1,
      column: last?.column ?? 1,
      pointer: "",
      code: "too_many_errors",
      message: `${Math.max(0, sorted.length - MAX_DIAGNOSTICS) + omitted} more errors not shown`,
      hint: "fix the errors above and run again",
    },
  ];
}

function at(
  file: string,
  positions: SourcePositions,
  pointer: string,
  target: Finding["target"],
  finding: Pick<Finding, "code" | "message" | "hint">,
): Diagnostic {
  const { line, column } = positions.at(pointer, target);
  return withHint({ file, line, column, pointer, code: finding.code, message: finding.message }, finding.hint);
}

function withHint(diagnostic: Diagnostic, hint: string | undefined): Diagnostic {
  return hint === undefined || hint === "" ? diagnostic : { ...diagnostic, hint };
}

function fail(file: string, code: DiagnosticCode, message: string, hint?: string): ParseResult {
  return { ok: false, errors: [withHint({ file, line: 1, column: 1, pointer: "", code, message }, hint)] };
}

const YAML_HINTS: Partial<Record<YAMLError["code"], string>> = {
  TAB_AS_INDENT: "indent with spaces: YAML does not allow tabs for indentation",
  BAD_INDENT: "check the indentation: the keys of one mapping must start in the same column",
  MULTIPLE_DOCS: "an outcome file holds one document: remove the extra `---` line, or split the file",
  BLOCK_AS_IMPLICIT_KEY:
    "check the indentation of this line and the next: the keys of one mapping must start in the same column",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line: is a colon missing, or a value that needs quotes?",
  BAD_DQ_ESCAPE: "in double quotes a backslash starts an escape: write \\\\ for a backslash, or use single quotes",
  BAD_SCALAR_START: "a plain value cannot start with this character: put the value in quotes",
  KEY_OVER_1024_CHARS: "keys are short names such as signal or target",
  BAD_ALIAS: "an alias is * followed by the name of an anchor (*name); text that starts with * must be in quotes",
};

/** Our wording where yaml's speaks of its own API or internals. */
const YAML_MESSAGES: Partial<Record<YAMLError["code"], string>> = {
  MULTIPLE_DOCS: "the file holds more than one YAML document (a second `---` line)",
  BLOCK_AS_IMPLICIT_KEY: "a mapping cannot start inside this value",
};

/**
 * The first syntax error of the document, with a hint. After one syntax
 * error the parser's idea of the structure is off, and the errors that
 * follow are mostly echoes of the first (a tab on line 7 gives errors on
 * lines 8, 9 and 10). Duplicate keys, which are independent mistakes, are
 * all reported, by {@link duplicateKeys}.
 */
function yamlDiagnostics(doc: Document, source: string, file: string, positions: SourcePositions): Diagnostic[] {
  const looksLikeJson = /^\s*[{[]/u.test(source);
  const diagnostics: Diagnostic[] = [];
  let syntaxReported = false;
  for (const error of doc.errors) {
    if (syntaxReported) continue;
    syntaxReported = true;
    // yaml catches its own stack overflow on absurd nesting and reports it as an error.
    if (/call stack/iu.test(error.message)) {
      const { line, column } = positions.offset(error.pos[0]);
      diagnostics.push(tooDeep(file, line, column));
      continue;
    }
    const quoteStart = error.code === "MISSING_CHAR" ? unclosedQuoteStart(doc, error.pos[0]) : undefined;
    const { line, column } = positions.offset(quoteStart ?? error.pos[0]);
    const message =
      quoteStart === undefined
        ? (YAML_MESSAGES[error.code] ?? yamlMessage(error))
        : "this quoted text is never closed: it runs on to the end of the file";
    const jsonHint = looksLikeJson
      ? "in JSON, look for a missing comma, colon, quote or bracket on this line or the one before"
      : undefined;
    const hint =
      quoteStart === undefined
        ? (missingCharHint(error) ?? YAML_HINTS[error.code] ?? jsonHint)
        : "close the quote at the end of the value";
    diagnostics.push(withHint({ file, line, column, pointer: "", code: "yaml_syntax", message }, hint));
  }
  return diagnostics;
}

function missingCharHint(error: YAMLError): string | undefined {
  if (error.code !== "MISSING_CHAR") return undefined;
  if (error.message.includes(",")) return "add a comma between the items";
  if (/[\]}]/u.test(error.message)) return "a bracket opened earlier is not closed";
  return undefined;
}

/**
 * Where an unclosed quoted scalar starts. yaml reports the missing quote at
 * the end of the file, but the mistake is where the quote was opened.
 */
function unclosedQuoteStart(doc: Document, errorOffset: number): number | undefined {
  let start: number | undefined;
  visit(doc, {
    Scalar(_, scalar) {
      const range = scalar.range;
      const quoted = scalar.type === "QUOTE_DOUBLE" || scalar.type === "QUOTE_SINGLE";
      if (quoted && range !== undefined && range !== null && range[0] < errorOffset && errorOffset <= range[2]) {
        start = range[0];
      }
    },
  });
  return start;
}

function yamlMessage(error: YAMLError): string {
  // yaml's messages are sentences already; the first line is the one that matters.
  const first = error.message.split("\n")[0] ?? error.message;
  return first.charAt(0).toLowerCase() + first.slice(1);
}

/**
 * Duplicate keys, found in one pass with a Set per mapping. yaml's own
 * `uniqueKeys` check compares every key with all earlier keys of its mapping:
 * quadratic, so a 1 MiB file of distinct keys took minutes. It is off, and
 * this does the same check (keys equal when their scalar values are equal).
 */
function duplicateKeys(doc: Document, file: string, positions: SourcePositions): Diagnostic[] {
  const found: Diagnostic[] = [];
  visit(doc, {
    Map(_, map) {
      const first = new Map<unknown, Scalar>();
      for (const { key } of map.items) {
        if (!isScalar(key)) continue;
        const earlier = first.get(key.value);
        if (earlier === undefined) {
          first.set(key.value, key);
          continue;
        }
        const { line, column } = positions.offset(key.range?.[0] ?? 0);
        const firstLine = positions.offset(earlier.range?.[0] ?? 0).line;
        found.push({
          file,
          line,
          column,
          pointer: "",
          code: "duplicate_key",
          message: `key "${String(key.value)}" appears twice in the same mapping (first on line ${firstLine})`,
          hint: "remove one of them: YAML does not allow a key twice, and which one wins would be a guess",
        });
      }
    },
  });
  return found;
}

/** The one diagnostic for a "billion laughs" document, at its first alias. */
function aliasBomb(file: string, positions: SourcePositions, offset: number | undefined, what: string): Diagnostic {
  const { line, column } = positions.offset(offset ?? 0);
  return {
    file,
    line,
    column,
    pointer: "",
    code: "alias_bomb",
    message: `${what}: a "billion laughs" pattern`,
    hint: "use aliases (*name) sparingly, or write the values out",
  };
}

function aliasDiagnostic(
  error: unknown,
  doc: Document,
  file: string,
  positions: SourcePositions,
): Diagnostic | undefined {
  if (!(error instanceof ReferenceError)) return undefined;
  const aliases: { source: string; offset: number }[] = [];
  visit(doc, {
    Alias(_, alias) {
      aliases.push({ source: alias.source, offset: alias.range?.[0] ?? 0 });
    },
  });
  if (/resource exhaustion|alias count/iu.test(error.message)) {
    return aliasBomb(
      file,
      positions,
      aliases[0]?.offset,
      `the anchors and aliases of this file expand to too much data (more than ${MAX_ALIAS_COUNT} alias expansions)`,
    );
  }
  return undefined;
}

/**
 * An alias name as it can be read in a message: characters that do not show
 * (controls, line and paragraph separators, other spaces) as `\u` escapes.
 * yaml ends a name only at a space, a line break or one of `,[]{}`, so
 * `*` then U+2028 is an alias named U+2028.
 */
function visibleName(name: string): string {
  return name.replace(
    /[\p{C}\p{Z}]/gu,
    (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`,
  );
}

function unresolvedAlias(file: string, positions: SourcePositions, alias: Alias): Diagnostic {
  const { line, column } = positions.offset(alias.range?.[0] ?? 0);
  const name = visibleName(alias.source);
  return {
    file,
    line,
    column,
    pointer: "",
    code: "yaml_syntax",
    message: `alias *${name} refers to no anchor`,
    hint: `set the anchor &${name} on a node before this line, or remove the alias; text that starts with * must be in quotes`,
  };
}

/**
 * Aliases with no anchor before them (yaml would throw on the first while
 * building the data). One diagnostic per alias name, at its first use.
 */
function unresolvedAliases(
  doc: Document,
  file: string,
  positions: SourcePositions,
  targets: Map<Alias, Node>,
): Diagnostic[] {
  const found: Diagnostic[] = [];
  const named = new Set<string>();
  visit(doc, {
    Alias(_, alias) {
      if (targets.has(alias) || named.has(alias.source)) return;
      named.add(alias.source);
      found.push(unresolvedAlias(file, positions, alias));
    },
  });
  return found;
}

/** yaml's test for a merge key: `<<` written plain (a quoted "<<" is an ordinary key). */
function isMergeKey(key: unknown): boolean {
  if (!isScalar(key)) return false;
  if ("addToJSMap" in key) return true;
  const plain = key.type === undefined || key.type === "PLAIN";
  return plain && (key.value === "<<" || (typeof key.value === "symbol" && key.value.description === "<<"));
}

/**
 * Merge keys (`<<:`) whose value is not a mapping, an alias of one, or a list
 * of those (the YAML merge type, https://yaml.org/type/merge.html). yaml
 * throws on them while building the data; here they become one diagnostic
 * each, at the value that cannot be merged.
 */
function badMerges(doc: Document, file: string, positions: SourcePositions, targets: Map<Alias, Node>): Diagnostic[] {
  const found: Diagnostic[] = [];
  // `undefined` only for an alias with no anchor, which unresolvedAliases reports.
  const resolve = (node: unknown): unknown => (isAlias(node) ? targets.get(node) : node);
  visit(doc, {
    Pair(_, pair) {
      if (!isMergeKey(pair.key)) return;
      const source = resolve(pair.value);
      const items: unknown[] = isSeq(source) ? source.items : [pair.value];
      const culprit = items.find((item) => {
        const target = resolve(item);
        return target !== undefined && !isMap(target);
      });
      if (culprit === undefined) return;
      // Through an alias, point at the alias in the merge, not into the anchored node.
      const at = [isAlias(pair.value) ? pair.value : culprit, pair.key].find(isRanged);
      const { line, column } = positions.offset(at?.range[0] ?? 0);
      found.push({
        file,
        line,
        column,
        pointer: "",
        code: "yaml_syntax",
        message: `the merge key << takes a mapping, an alias of a mapping (*name) or a list of those, not ${describeNode(resolve(culprit))}`,
        hint: "write `<<: *name` with the anchor &name set on a mapping (such as a connector), or write the keys out; for an ordinary key named <<, put it in quotes",
      });
    },
  });
  return found;
}

function isRanged(node: unknown): node is { range: [number, number, number] } {
  return node !== null && typeof node === "object" && Array.isArray((node as { range?: unknown }).range);
}

/** What a node that should have been a mapping is, for a message: "a list", "the number 5", "an empty value". */
function describeNode(node: unknown): string {
  if (isSeq(node)) return "a list";
  if (!isScalar(node) || node.value === null || node.value === undefined) return "an empty value";
  const value = node.value;
  if (typeof value === "string")
    return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `the ${typeof value} ${String(value)}`;
}

/**
 * How many values the document holds as written, and once its aliases are
 * expanded. Linear in the document: an anchored node's expanded size is
 * computed once. An alias inside its own anchor counts 0 here (the cycle is
 * reported later).
 */
function documentSize(doc: Document, targets: Map<Alias, Node>): { written: number; expanded: number } {
  const expandedOf = new Map<unknown, number>();
  const inProgress = new Set<unknown>();
  let written = 0;
  const expanded = (node: unknown, viaAlias: boolean): number => {
    if (!viaAlias) written++;
    if (isAlias(node)) {
      const target = targets.get(node);
      if (target === undefined || inProgress.has(target)) return 1;
      const known = expandedOf.get(target);
      if (known !== undefined) return known;
      const size = expanded(target, true);
      expandedOf.set(target, size);
      return size;
    }
    let size = 1;
    if (isMap(node) || isSeq(node)) {
      inProgress.add(node);
      for (const item of node.items) {
        if (isPair(item)) size += expanded(item.key, viaAlias) + expanded(item.value, viaAlias);
        else size += expanded(item, viaAlias);
      }
      inProgress.delete(node);
      // An anchored node met first in place is expanded again by each alias; remember its size.
      expandedOf.set(node, size);
    }
    return size;
  };
  return { expanded: expanded(doc.contents, false), written };
}

/**
 * The node each alias stands for, in one pass. (`Alias.resolve` searches the
 * whole document on every call: an alias-heavy file would be quadratic.) An
 * alias refers to the latest node before it with that anchor, and a node's
 * anchor is set where the node starts, so a pre-order walk sees them in the
 * right order.
 */
function aliasTargets(doc: Document): Map<Alias, Node> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  visit(doc, (_, node) => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target !== undefined) targets.set(node, target);
    } else if ((isScalar(node) || isMap(node) || isSeq(node)) && node.anchor !== undefined) {
      anchors.set(node.anchor, node);
    }
  });
  return targets;
}

function tooManyValues(
  file: string,
  doc: Document,
  positions: SourcePositions,
  size: { written: number; expanded: number },
): Diagnostic {
  if (size.written <= MAX_VALUES) {
    let firstAlias: number | undefined;
    visit(doc, {
      Alias(_, alias) {
        firstAlias = alias.range?.[0];
        return visit.BREAK;
      },
    });
    return aliasBomb(
      file,
      positions,
      firstAlias,
      `the aliases of this file expand it to ${size.expanded.toExponential(1)} values (the limit is ${MAX_VALUES})`,
    );
  }
  return {
    file,
    line: 1,
    column: 1,
    pointer: "",
    code: "file_too_large",
    message: `the file holds ${size.written} values; an outcome holds a few hundred (the limit is ${MAX_VALUES})`,
    hint: "an outcome.yaml is a few kilobytes: check that this is the right file",
  };
}

/** A pointer to a value that contains itself (a recursive alias), if any. */
function findCycle(root: unknown): string | undefined {
  const onPath = new Set<object>();
  const done = new Set<object>();
  const search = (value: unknown, pointer: string): string | undefined => {
    if (value === null || typeof value !== "object") return undefined;
    if (onPath.has(value)) return pointer;
    // Shared (aliased) subtrees are fine and are checked once.
    if (done.has(value)) return undefined;
    onPath.add(value);
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((v, i) => [String(i), v])
      : Object.entries(value);
    for (const [key, child] of entries) {
      const found = search(child, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
      if (found !== undefined) return found;
    }
    onPath.delete(value);
    done.add(value);
    return undefined;
  };
  return search(root, "");
}

function unexpected(file: string, error: unknown): Diagnostic {
  if (error instanceof RangeError && /call stack/iu.test(error.message)) return tooDeep(file, 1, 1);
  const detail = error instanceof Error ? error.message : String(error);
  return {
    file,
    line: 1,
    column: 1,
    pointer: "",
    code: "internal_error",
    message: `internal error while reading the outcome: ${detail}`,
    hint: "this is a bug in Outcome Runtime; please report it with the file that caused it",
  };
}

/** One CST node: a collection has items, an item a key and a value. */
interface CstNode {
  type?: string;
  offset?: number;
  items?: Array<{ key?: CstNode | null; value?: CstNode | null }>;
  value?: CstNode | null;
}

/**
 * The offset of the first mapping or list nested deeper than MAX_DEPTH, or
 * undefined. yaml's parser (to a concrete syntax tree) keeps its own stack
 * and is safe at any depth; the tree is walked here with an explicit stack.
 */
function tooDeepAt(source: string): number | undefined {
  const stack: Array<[CstNode, number]> = [];
  for (const token of new Parser().parse(source)) {
    const document = token as CstNode;
    if (document.type === "document" && document.value) stack.push([document.value, 1]);
    while (stack.length > 0) {
      const [node, depth] = stack.pop() as [CstNode, number];
      if (node.items === undefined) continue;
      if (depth > MAX_DEPTH) return node.offset ?? 0;
      for (const item of node.items) {
        if (item.key) stack.push([item.key, depth + 1]);
        if (item.value) stack.push([item.value, depth + 1]);
      }
    }
  }
  return undefined;
}

function tooDeep(file: string, line: number, column: number): Diagnostic {
  return {
    file,
    line,
    column,
    pointer: "",
    code: "too_deeply_nested",
    message: "the document is nested too deeply to read",
    hint: "an outcome is a few levels deep; check for runaway brackets or indentation",
  };
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} bytes`;
}
