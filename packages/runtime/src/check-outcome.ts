/**
 * Everything checked about an outcome file before it is stored: the file
 * itself (`@outcome-runtime/spec`), each connector's settings (the SQL policy
 * with PostgreSQL's parser, credential references, csv paths, vendor hosts),
 * and, with the workspace's sources at hand, each source: the secrets it
 * names exist, the workspace may use the variables it names, and a Postgres
 * source is a read-only role on a database other than the runtime's.
 *
 * A source the API cannot reach (a private network only the worker sees, a
 * variable set on the worker alone) is a warning, not an error: the worker
 * makes the same checks before its first poll and refuses there.
 */
import {
  type ConnectorError,
  ConnectorError as ConnectorErrorClass,
  checkConnectorSettings,
  connectorCredentials,
  connectorTypes,
  createConnector,
} from "@outcome-runtime/connectors";
import { roleMay } from "@outcome-runtime/core";
import { databaseIdentity, members, secrets } from "@outcome-runtime/db";
import {
  type ConnectorCheck,
  connectorPointers,
  type Diagnostic,
  humanPath,
  type ParseResult,
  parseOutcome,
} from "@outcome-runtime/spec";
import { nowOf, type RuntimeDeps } from "./context";
import { resolveCredentials, type SourceAccess, sourceWorkspace } from "./signals/source-access";

/** Dependencies of the checks: `sources`, when the process has them, lets the sources be reached. */
export type OutcomeCheckDeps = RuntimeDeps;

/** How long the API waits for a source while checking it, ms. */
const SOURCE_CHECK_TIMEOUT_MS = 10_000;

/** The connectors' settings check, as `parseOutcome` takes it. */
export function connectorCheck(access: SourceAccess | undefined): ConnectorCheck {
  return (config, kind) =>
    checkConnectorSettings(config as { type: string } & Record<string, unknown>, kind, {
      ...(access === undefined ? {} : { allowedApiUrls: access.allowedApiUrls }),
      ...(access?.csvDir === undefined ? {} : { baseDir: access.csvDir }),
    });
}

/**
 * Parses an outcome with every offline check, connectors included; the
 * connector types are the built-in ones and those of the loaded connector
 * modules (`CONNECTOR_MODULES`).
 *
 * @param access the operator's settings, when known (the API); the CLI checks offline without them
 */
export function parseOutcomeChecked(source: string, file: string, access?: SourceAccess): ParseResult {
  return parseOutcome(source, { file, connectors: connectorTypes(), checkConnector: connectorCheck(access) });
}

/** The errors and warnings of the sources an outcome names. */
export interface SourceFindings {
  readonly errors: Diagnostic[];
  readonly warnings: Diagnostic[];
}

/** A diagnostic of `file` at the line and column of a JSON pointer into the parsed outcome. */
function locatedDiagnostic(parsed: Extract<ParseResult, { ok: true }>, file: string) {
  return (pointer: string, code: string, message: string, hint: string | undefined): Diagnostic => {
    const { line, column } = parsed.locate(pointer);
    return { file, line, column, pointer, code, message, ...(hint === undefined ? {} : { hint }) };
  };
}

/**
 * Checks the sources of a parsed outcome for `workspaceId`. Nothing is
 * stored; a source is connected to only to read who the connection is.
 */
export async function checkOutcomeSources(
  deps: OutcomeCheckDeps,
  workspaceId: string,
  parsed: Extract<ParseResult, { ok: true }>,
  file: string,
): Promise<SourceFindings> {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const diagnostic = locatedDiagnostic(parsed, file);
  for (const { pointer, kind, config } of connectorPointers(parsed.spec)) {
    const requirements = connectorCredentials(config as { type: string });
    // Secrets are the workspace's: whether they exist is known here, whatever the process.
    const names = requirements.filter((r) => r.ref.via === "secret").map((r) => r.ref.name);
    const existing = new Set(await secrets.existingSecretNames(deps.db, workspaceId, names));
    const missing = requirements.find((r) => r.ref.via === "secret" && !existing.has(r.ref.name));
    if (missing !== undefined) {
      errors.push(
        diagnostic(
          `${pointer}/${missing.field}`,
          "unknown_secret",
          `${humanPath(`${pointer}/${missing.field}`)}: this workspace has no secret named ${missing.ref.name}`,
          `an admin creates it first: outcome-runtime secrets set ${missing.ref.name}`,
        ),
      );
      continue;
    }
    const access = deps.sources;
    if (access === undefined) continue;
    let credentials: Record<string, string>;
    try {
      credentials = await resolveCredentials(
        deps.db,
        access,
        await sourceWorkspace(deps.db, workspaceId),
        requirements,
        "API",
      );
    } catch (error) {
      const found = asConnectorError(error);
      const field = typeof found.details.field === "string" ? `${pointer}/${found.details.field}` : pointer;
      const message = `${humanPath(field)}: ${String(found.details.problem ?? found.message)}`;
      const hint = typeof found.details.fix === "string" ? found.details.fix : undefined;
      if (found.code === "source_refused") errors.push(diagnostic(field, "source_refused", message, hint));
      else if (found.details.unresolved === true && found.details.env !== undefined) {
        warnings.push(diagnostic(field, "unknown_secret", `${message}; the source was not checked here`, hint));
      } else errors.push(diagnostic(field, "unknown_secret", message, hint));
      continue;
    }
    const connector = createConnector(config as { type: string } & Record<string, unknown>, {
      metricKind: kind,
      credentials,
      runtimeDatabase: () => databaseIdentity(deps.db),
      allowedApiUrls: access.allowedApiUrls,
      ...(access.csvDir === undefined ? {} : { baseDir: access.csvDir }),
    });
    try {
      await connector.check?.(AbortSignal.timeout(SOURCE_CHECK_TIMEOUT_MS));
    } catch (error) {
      const found = asConnectorError(error);
      if (found.code === "source_refused") {
        errors.push(diagnostic(pointer, "source_refused", `${humanPath(pointer)}: ${found.message}`, undefined));
      } else {
        warnings.push(
          diagnostic(
            pointer,
            "source_unchecked",
            `${humanPath(pointer)}: the API could not check the source (${found.message})`,
            "the worker checks it again before its first poll; fix the connection if the worker cannot reach it either",
          ),
        );
      }
    } finally {
      await connector.close().catch(() => {});
    }
  }
  return { errors, warnings };
}

function asConnectorError(error: unknown): ConnectorError {
  if (error instanceof ConnectorErrorClass) return error;
  return new ConnectorErrorClass("unavailable", error instanceof Error ? error.message : String(error), {
    cause: error,
  });
}

/** The gates of an outcome file whose people are checked, in the file's order. */
const GATE_NAMES = ["portfolio_review", "launch_approval", "analysis_review"] as const;

/**
 * Checks that the people an outcome names at its gates (assignees and
 * backups) are members of the workspace who may decide gates. An address
 * with an open invitation is a warning (they can decide once they accept);
 * an unknown address, a disabled member or a viewer is an error with the fix.
 * A workspace without members (one that signs in with API keys only) is not
 * checked: its gates are matched against the names of keys, as before
 * accounts existed.
 */
export async function checkOutcomePeople(
  deps: OutcomeCheckDeps,
  workspaceId: string,
  parsed: Extract<ParseResult, { ok: true }>,
  file: string,
): Promise<SourceFindings> {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const gates = (parsed.spec as { gates?: Record<string, { assignees?: string[]; backup?: string } | undefined> })
    .gates;
  if (gates === undefined) return { errors, warnings };
  const named: { pointer: string; email: string }[] = [];
  for (const gate of GATE_NAMES) {
    const spec = gates[gate];
    if (spec === undefined) continue;
    (spec.assignees ?? []).forEach((email, i) => {
      named.push({ pointer: `/gates/${gate}/assignees/${i}`, email: email.toLowerCase() });
    });
    if (spec.backup !== undefined) named.push({ pointer: `/gates/${gate}/backup`, email: spec.backup.toLowerCase() });
  }
  if (named.length === 0 || (await members.countWorkspaceMembers(deps.db, workspaceId)) === 0) {
    return { errors, warnings };
  }
  const people = await members.resolvePeople(
    deps.db,
    workspaceId,
    [...new Set(named.map((n) => n.email))],
    nowOf(deps),
  );
  const diagnostic = locatedDiagnostic(parsed, file);
  for (const { pointer, email } of named) {
    const member = people.members.get(email);
    const where = humanPath(pointer);
    if (member === undefined) {
      if (people.invited.has(email)) {
        warnings.push(
          diagnostic(
            pointer,
            "person_invited",
            `${where}: ${email} is invited but has not joined yet`,
            "they can decide once they accept the invitation",
          ),
        );
      } else {
        errors.push(
          diagnostic(
            pointer,
            "unknown_person",
            `${where}: ${email} is not a member of this workspace`,
            `invite them first (Members page, or outcome-runtime members invite ${email} --role approver), or name a member`,
          ),
        );
      }
    } else if (member.disabled) {
      errors.push(
        diagnostic(pointer, "unknown_person", `${where}: ${email} is disabled`, "name another member who decides"),
      );
    } else if (!roleMay(member.role, "gate.decide")) {
      errors.push(
        diagnostic(
          pointer,
          "person_cannot_decide",
          `${where}: ${email} is a ${member.role} here and cannot decide gates`,
          "give them the approver or member role on the Members page, or name someone else",
        ),
      );
    }
  }
  return { errors, warnings };
}
