/**
 * @outcome-runtime/spec: read, validate and normalise `outcome.yaml`
 * against `schemas/outcome.schema.json`, with compiler-style diagnostics.
 */

export { canonicalJson, contentHash } from "./content-hash.js";
export type { Diagnostic, DiagnosticCode, FormatOptions } from "./diagnostics.js";
export { DIAGNOSTIC_CODES, formatDiagnostics } from "./diagnostics.js";
export type { OutcomeSpec, OutcomeSpecInput } from "./outcome.types.js";
export { outcomeSchema } from "./outcome-schema.js";
export type { ConnectorCheck, ConnectorCheckFinding, ParseOptions, ParseResult } from "./parse-outcome.js";
export { connectorPointers, KNOWN_CONNECTORS, MAX_OUTCOME_BYTES, parseOutcome } from "./parse-outcome.js";
export { humanPath } from "./source-positions.js";
export type { UnitErrorCode } from "./units.js";
export { parseDuration, parsePercentage, UnitError } from "./units.js";
