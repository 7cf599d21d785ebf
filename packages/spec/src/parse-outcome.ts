/**
 * `parseOutcome`: outcome.yaml text in, a normalised `OutcomeSpec` or every
 * mistake (with file:line:column and a hint) out. Never throws.
 */
import { isScalar, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, YAMLError } from 'yaml';
import { contentHash } from './content-hash.js';
import type { Diagnostic, DiagnosticCode } from './diagnostics.js';
import { normaliseOutcome, isPlainObject } from './normalise-outcome.js';
import type { OutcomeSpec, OutcomeSpecInput } from './outcome.types.js';
import { outcomeSchema, outcomeValidator, type SchemaNode } from './outcome-schema.js';
import { type Finding, schemaFindings } from './schema-diagnostics.js';
import { semanticFindings } from './semantic-checks.js';
import { SourcePositions } from './source-positions.js';

/** Connector types the runtime ships with. */
export const KNOWN_CONNECTORS: readonly string[] = Object.freeze(['postgres', 'mixpanel', 'replay']);

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

/** More diagnostics than this are cut, with a final `too_many_errors`. */
const MAX_DIAGNOSTICS = 100;

const DEFAULT_FILE = 'outcome.yaml';

/** Options of {@link parseOutcome}. */
export interface ParseOptions {
  /** The file name shown in diagnostics (default `outcome.yaml`). */
  file?: string;
  /** Connector types this runtime knows (default {@link KNOWN_CONNECTORS}). */
  connectors?: readonly string[];
}

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
  const file = typeof options.file === 'string' && options.file !== '' ? options.file : DEFAULT_FILE;
  try {
    return parse(source, file, options.connectors ?? KNOWN_CONNECTORS);
  } catch (error) {
    return { ok: false, errors: [unexpected(file, error)] };
  }
}

function parse(source: string, file: string, connectors: readonly string[]): ParseResult {
  if (typeof source !== 'string') {
    return fail(file, 'internal_error', `expected the text of the file, got ${source === null ? 'null' : typeof source}`);
  }
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > MAX_OUTCOME_BYTES) {
    return fail(
      file,
      'file_too_large',
      `the file is ${formatBytes(bytes)}; an outcome file may be at most ${formatBytes(MAX_OUTCOME_BYTES)}`,
      'an outcome.yaml is a few kilobytes: check that this is the right file',
    );
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, uniqueKeys: true, prettyErrors: false, version: '1.2' });
  const positions = new SourcePositions(doc, lineCounter);

  const yamlErrors = yamlDiagnostics(doc, source, file, positions);
  // Only duplicate keys leave a document whose shape can be trusted; after
  // any other syntax error, schema errors would mostly be echoes of it.
  if (yamlErrors.some((d) => d.code !== 'duplicate_key')) return { ok: false, errors: finish(yamlErrors) };

  if (doc.contents === null) {
    const onlyComments = /\S/u.test(source);
    return fail(
      file,
      'empty_file',
      onlyComments ? 'the file has no content, only comments' : 'the file is empty',
      'an outcome needs at least id, name, owner, signal, target and horizon; start from outcome.example.yaml or run `outcome-runtime init`',
    );
  }

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
        at(file, positions, cycle, 'value', {
          code: 'alias_cycle',
          message: 'an alias refers to the node that contains it, which makes an endless structure',
          hint: 'an alias (*name) must not appear inside the node its anchor (&name) is set on',
        }),
      ],
    };
  }
  if (!isPlainObject(data)) {
    return {
      ok: false,
      errors: [
        at(file, positions, '', 'value', {
          code: 'not_a_mapping',
          message: `the document is ${Array.isArray(data) ? 'a list' : 'a single value'}, but an outcome is a mapping of keys to values`,
          hint: 'write the outcome as key: value lines (id:, name:, owner:, signal:, target:, horizon:, ...), not as a "- item" list',
        }),
      ],
    };
  }

  const input = structuredClone(data) as unknown as OutcomeSpecInput;
  const validate = outcomeValidator();
  const valid = validate(data);
  const findings: Finding[] = valid ? [] : schemaFindings(validate.errors ?? []);

  const isClean = (pointer: string): boolean =>
    !findings.some((f) => isWithin(f.pointer, pointer) || (isWithin(pointer, f.pointer) && f.code === 'wrong_type'));
  const normalised = normaliseOutcome(data, outcomeSchema as SchemaNode, isClean);
  findings.push(...normalised.findings);
  findings.push(...semanticFindings(normalised.value, { connectors, isClean }));

  const errors = [...yamlErrors, ...findings.map((f) => at(file, positions, f.pointer, f.target, f))];
  if (errors.length > 0) return { ok: false, errors: finish(errors) };

  const spec = normalised.value as OutcomeSpec;
  return { ok: true, spec, input, contentHash: contentHash(spec) };
}

function isWithin(pointer: string, ancestor: string): boolean {
  return pointer === ancestor || pointer.startsWith(`${ancestor}/`);
}

/** Sorts by position and caps the list, so output reads top to bottom. */
function finish(errors: Diagnostic[]): Diagnostic[] {
  const sorted = [...errors].sort((a, b) => a.line - b.line || a.column - b.column);
  if (sorted.length <= MAX_DIAGNOSTICS) return sorted;
  const last = sorted[MAX_DIAGNOSTICS - 1];
  return [
    ...sorted.slice(0, MAX_DIAGNOSTICS),
    {
      file: last?.file ?? DEFAULT_FILE,
      line: last?.line ?? 1,
      column: last?.column ?? 1,
      pointer: '',
      code: 'too_many_errors',
      message: `${sorted.length - MAX_DIAGNOSTICS} more errors not shown`,
      hint: 'fix the errors above and run again',
    },
  ];
}

function at(
  file: string,
  positions: SourcePositions,
  pointer: string,
  target: Finding['target'],
  finding: Pick<Finding, 'code' | 'message' | 'hint'>,
): Diagnostic {
  const { line, column } = positions.at(pointer, target);
  return withHint({ file, line, column, pointer, code: finding.code, message: finding.message }, finding.hint);
}

function withHint(diagnostic: Diagnostic, hint: string | undefined): Diagnostic {
  return hint === undefined || hint === '' ? diagnostic : { ...diagnostic, hint };
}

function fail(file: string, code: DiagnosticCode, message: string, hint?: string): ParseResult {
  return { ok: false, errors: [withHint({ file, line: 1, column: 1, pointer: '', code, message }, hint)] };
}

const YAML_HINTS: Partial<Record<YAMLError['code'], string>> = {
  TAB_AS_INDENT: 'indent with spaces: YAML does not allow tabs for indentation',
  BAD_INDENT: 'check the indentation: the keys of one mapping must start in the same column',
  MISSING_CHAR: 'a quote or bracket opened earlier is not closed',
  MULTIPLE_DOCS: 'an outcome file holds one document: remove the extra `---` line, or split the file',
  BLOCK_AS_IMPLICIT_KEY: 'a key must fit on one line: is a colon missing, or a value that needs quotes?',
  MULTILINE_IMPLICIT_KEY: 'a key must fit on one line: is a colon missing, or a value that needs quotes?',
  BAD_DQ_ESCAPE: 'in double quotes a backslash starts an escape: write \\\\ for a backslash, or use single quotes',
  BAD_SCALAR_START: 'a plain value cannot start with this character: put the value in quotes',
  KEY_OVER_1024_CHARS: 'keys are short names such as signal or target',
};

/** The syntax errors of the document, one per line, with hints. */
function yamlDiagnostics(doc: Document, source: string, file: string, positions: SourcePositions): Diagnostic[] {
  const looksLikeJson = /^\s*[{[]/u.test(source);
  const seenLines = new Set<number>();
  const diagnostics: Diagnostic[] = [];
  for (const error of doc.errors) {
    const quoteStart = error.code === 'MISSING_CHAR' ? unclosedQuoteStart(doc, error.pos[0]) : undefined;
    const { line, column } = positions.offset(quoteStart ?? error.pos[0]);
    if (error.code === 'DUPLICATE_KEY') {
      diagnostics.push(duplicateKey(doc, source, error, file, positions));
      continue;
    }
    // One bad character tends to confuse the parser for the rest of the
    // line; the first error on a line is the one that says what happened.
    if (seenLines.has(line)) continue;
    seenLines.add(line);
    const jsonHint = looksLikeJson ? 'in JSON, look for a missing comma, colon, quote or bracket on this line or the one before' : undefined;
    diagnostics.push(
      withHint(
        {
          file,
          line,
          column,
          pointer: '',
          code: 'yaml_syntax',
          message:
            quoteStart === undefined
              ? yamlMessage(error)
              : 'this quoted text is never closed: it runs on to the end of the file',
        },
        YAML_HINTS[error.code] ?? jsonHint,
      ),
    );
  }
  return diagnostics;
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
      const quoted = scalar.type === 'QUOTE_DOUBLE' || scalar.type === 'QUOTE_SINGLE';
      if (quoted && range !== undefined && range !== null && range[0] < errorOffset && errorOffset <= range[2]) {
        start = range[0];
      }
    },
  });
  return start;
}

function yamlMessage(error: YAMLError): string {
  // yaml's messages are sentences already; the first line is the one that matters.
  const first = error.message.split('\n')[0] ?? error.message;
  return first.charAt(0).toLowerCase() + first.slice(1);
}

function duplicateKey(doc: Document, source: string, error: YAMLError, file: string, positions: SourcePositions): Diagnostic {
  const { line, column } = positions.offset(error.pos[0]);
  let key = source.slice(error.pos[0], error.pos[1]).trim();
  let firstLine: number | undefined;
  visit(doc, {
    Map(_, map) {
      const duplicate = map.items.find((p) => isScalar(p.key) && p.key.range?.[0] === error.pos[0])?.key;
      if (!isScalar(duplicate)) return undefined;
      key = String(duplicate.value);
      const original = map.items.find((p) => isScalar(p.key) && p.key !== duplicate && p.key.value === duplicate.value)?.key;
      if (isScalar(original)) firstLine = positions.offset(original.range?.[0] ?? 0).line;
      return visit.BREAK;
    },
  });
  return {
    file,
    line,
    column,
    pointer: '',
    code: 'duplicate_key',
    message: `key "${key}" appears twice in the same mapping${firstLine === undefined ? '' : ` (first on line ${firstLine})`}`,
    hint: 'remove one of them: YAML does not allow a key twice, and which one wins would be a guess',
  };
}

function aliasDiagnostic(error: unknown, doc: Document, file: string, positions: SourcePositions): Diagnostic | undefined {
  if (!(error instanceof ReferenceError)) return undefined;
  const aliases: { source: string; offset: number }[] = [];
  visit(doc, {
    Alias(_, alias) {
      aliases.push({ source: alias.source, offset: alias.range?.[0] ?? 0 });
    },
  });
  if (/resource exhaustion|alias count/iu.test(error.message)) {
    const { line, column } = positions.offset(aliases[0]?.offset ?? 0);
    return {
      file,
      line,
      column,
      pointer: '',
      code: 'alias_bomb',
      message: `the anchors and aliases of this file expand to too much data (more than ${MAX_ALIAS_COUNT} alias expansions): a "billion laughs" pattern`,
      hint: 'use aliases (*name) sparingly, or write the values out',
    };
  }
  const unresolved = /Unresolved alias[^:]*: (.+)$/u.exec(error.message)?.[1];
  if (unresolved !== undefined) {
    const alias = aliases.find((a) => a.source === unresolved);
    const { line, column } = positions.offset(alias?.offset ?? 0);
    return {
      file,
      line,
      column,
      pointer: '',
      code: 'yaml_syntax',
      message: `alias *${unresolved} refers to no anchor`,
      hint: `set the anchor &${unresolved} on a node before this line, or remove the alias`,
    };
  }
  return undefined;
}

/** A pointer to a value that contains itself (a recursive alias), if any. */
function findCycle(root: unknown): string | undefined {
  const onPath = new Set<object>();
  const done = new Set<object>();
  const search = (value: unknown, pointer: string): string | undefined => {
    if (value === null || typeof value !== 'object') return undefined;
    if (onPath.has(value)) return pointer;
    // Shared (aliased) subtrees are fine and are checked once.
    if (done.has(value)) return undefined;
    onPath.add(value);
    const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    for (const [key, child] of entries) {
      const found = search(child, `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`);
      if (found !== undefined) return found;
    }
    onPath.delete(value);
    done.add(value);
    return undefined;
  };
  return search(root, '');
}

function unexpected(file: string, error: unknown): Diagnostic {
  if (error instanceof RangeError && /call stack/iu.test(error.message)) {
    return {
      file,
      line: 1,
      column: 1,
      pointer: '',
      code: 'too_deeply_nested',
      message: 'the document is nested too deeply to read',
      hint: 'an outcome is a few levels deep; check for runaway brackets or indentation',
    };
  }
  const detail = error instanceof Error ? error.message : String(error);
  return {
    file,
    line: 1,
    column: 1,
    pointer: '',
    code: 'internal_error',
    message: `internal error while reading the outcome: ${detail}`,
    hint: 'this is a bug in Outcome Runtime; please report it with the file that caused it',
  };
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} bytes`;
}
