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
import { databaseIdentity, secrets } from "@outcome-runtime/db";
import {
  type ConnectorCheck,
  connectorPointers,
  type Diagnostic,
  humanPath,
  type ParseResult,
  parseOutcome,
} from "@outcome-runtime/spec";
import type { RuntimeDeps } from "./context";
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
  const diagnostic = (pointer: string, code: string, message: string, hint: string | undefined): Diagnostic => {
    const { line, column } = parsed.locate(pointer);
    return { file, line, column, pointer, code, message, ...(hint === undefined ? {} : { hint }) };
  };
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
