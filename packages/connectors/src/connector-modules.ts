/**
 * Connectors of one's own: packages named in `CONNECTOR_MODULES`, imported at
 * boot by the API, the worker and `outcome-runtime validate`, checked, and
 * registered as connector types (`connector-registry.ts`). A module that
 * cannot be used stops the boot with a {@link ConnectorModuleError} naming
 * the module, the field and the fix. See docs/connectors.md, "Connectors of
 * your own".
 */
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import { show } from "./config-reader";
import {
  type ConnectorModule,
  type RegisteredConnectorModule,
  registerCheckedModules,
  registeredConnectorModules,
  registeredEntry,
} from "./connector-registry";
import { CONNECTOR_ALIASES, CONNECTOR_TYPES } from "./create-connector";

/** The variable that names the modules. */
const VARIABLE = "CONNECTOR_MODULES";

/** An npm package name (`@scope/name`, `name`), optionally with a subpath (`name/connector`). */
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(?:\/[A-Za-z0-9._~-]+)*$/u;

/** A connector type a module may declare. */
const TYPE_NAME = /^[a-z][a-z0-9_-]{0,39}$/u;

/** A credential's name: its settings are `<credential>_env` and `<credential>_secret`. */
const CREDENTIAL_NAME = /^[a-z][a-z0-9_]{0,39}$/u;

/** A module that cannot be used as a connector: which one, the field concerned, and what to do. */
export class ConnectorModuleError extends Error {
  constructor(
    /** The module as `CONNECTOR_MODULES` names it. */
    readonly module: string,
    /** The export's field (`type`, `create`, `credentials[0].credential`), or `import` when it did not load. */
    readonly field: string,
    readonly problem: string,
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(`${VARIABLE}: module ${JSON.stringify(module)}: ${field}: ${problem}; ${fix}`, options);
    this.name = "ConnectorModuleError";
  }
}

/**
 * Parses `CONNECTOR_MODULES`: module names separated by commas, each an npm
 * package name (optionally with a subpath, `@acme/connectors/metrics`) or an
 * absolute path to a module file. Unset or empty: none.
 *
 * @throws Error starting with `CONNECTOR_MODULES:` naming the malformed or repeated entry
 */
export function parseConnectorModules(text: string | undefined): string[] {
  if (text === undefined || text.trim() === "") return [];
  const names = text
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  for (const name of names) {
    if (!PACKAGE_NAME.test(name) && !isAbsolute(name) && !name.startsWith("file://")) {
      throw new Error(
        `${VARIABLE}: ${show(name)} is not a package name or an absolute path; list installed packages (or absolute paths) separated by commas, e.g. ${VARIABLE}=@acme/outcome-connector-metrics,other-connector`,
      );
    }
  }
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw new Error(`${VARIABLE}: ${show(repeated)} is listed twice; list it once`);
  return names;
}

/**
 * Imports each module, checks its default export (a {@link ConnectorModule})
 * and registers its type, so that `createConnector`, `connectorCredentials`,
 * `readsInBatches`, `checkConnectorSettings` and {@link connectorTypes} know
 * it. Nothing is registered unless every module is usable. Loading a module
 * registered before is a no-op.
 *
 * @param modules names as `parseConnectorModules` returns them; package names are resolved from the runtime's
 *   installation (the repository's root `node_modules`), absolute paths as files
 * @returns what was registered, one entry per module
 * @throws ConnectorModuleError for the first module that is not installed, fails to load, exports no usable
 *   connector, declares a built-in type, or a type another module declared
 */
export async function loadConnectorModules(modules: readonly string[]): Promise<RegisteredConnectorModule[]> {
  const entries: { module: string; connector: ConnectorModule }[] = [];
  for (const module of modules) {
    const connector = checkExport(module, await importModule(module));
    const builtIn = CONNECTOR_TYPES.includes(connector.type) || Object.hasOwn(CONNECTOR_ALIASES, connector.type);
    if (builtIn) {
      throw new ConnectorModuleError(
        module,
        "type",
        `${show(connector.type)} is a built-in connector type, which a module may not replace`,
        `give the module's connector a type of its own, e.g. ${show(`${connector.type}-custom`)}`,
      );
    }
    const other =
      entries.find((e) => e.connector.type === connector.type) ??
      (registeredEntry(connector.type)?.module === module ? undefined : registeredEntry(connector.type));
    if (other !== undefined) {
      throw new ConnectorModuleError(
        module,
        "type",
        `${show(connector.type)} is also the type of module ${show(other.module)}`,
        "keep one of the two in CONNECTOR_MODULES",
      );
    }
    entries.push({ module, connector });
  }
  registerCheckedModules(entries);
  return entries.map(({ module, connector }) => ({
    module,
    type: connector.type,
    description: connector.description ?? null,
  }));
}

/**
 * Every connector type this process knows: the built-in ones, then those of
 * the loaded modules. What the outcome.yaml parser takes as `connectors`.
 */
export function connectorTypes(): string[] {
  // Registered types never shadow a built-in one (loadConnectorModules refuses it).
  return [...CONNECTOR_TYPES, ...registeredConnectorModules().map((m) => m.type)];
}

async function importModule(module: string): Promise<Record<string, unknown>> {
  const specifier = isAbsolute(module) ? pathToFileURL(module).href : module;
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    const notFound =
      (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED") &&
      (message.includes(`'${module}'`) || message.includes(specifier) || message.includes(`"${module}"`));
    if (notFound) {
      throw new ConnectorModuleError(
        module,
        "import",
        "is not installed where the runtime runs",
        isAbsolute(module) || module.startsWith("file://")
          ? "check the path, or remove it from CONNECTOR_MODULES"
          : `install it beside the runtime (pnpm add -w ${module}, or in your image), or remove it from CONNECTOR_MODULES`,
        { cause: error },
      );
    }
    throw new ConnectorModuleError(
      module,
      "import",
      `failed to load (${message})`,
      "fix the module, or remove it from CONNECTOR_MODULES",
      { cause: error },
    );
  }
}

/** The module's default export as a {@link ConnectorModule}, every field checked. */
function checkExport(module: string, namespace: Record<string, unknown>): ConnectorModule {
  const exported = namespace.default;
  const shape =
    "export default { type: 'my-source', create(config, context) { ... } } (docs/connectors.md, Connectors of your own)";
  if (exported === null || typeof exported !== "object") {
    throw new ConnectorModuleError(
      module,
      "default export",
      exported === undefined ? "is missing" : `is ${show(exported)}, not an object`,
      `default-export the connector: ${shape}`,
    );
  }
  const value = exported as Record<string, unknown>;
  const problem = (field: string, what: string, fix: string) => new ConnectorModuleError(module, field, what, fix);
  if (typeof value.type !== "string" || !TYPE_NAME.test(value.type)) {
    throw problem(
      "type",
      value.type === undefined ? "is missing" : `${show(value.type)} is not a connector type name`,
      "write a lowercase letter, then lowercase letters, digits, - or _ (at most 40), e.g. type: 'acme-metrics'",
    );
  }
  if (typeof value.create !== "function") {
    throw problem(
      "create",
      value.create === undefined ? "is missing" : `is ${typeof value.create}, not a function`,
      "give create(config, context), returning the SignalConnector",
    );
  }
  if (value.readsInBatches !== undefined && typeof value.readsInBatches !== "function") {
    throw problem(
      "readsInBatches",
      `is ${typeof value.readsInBatches}, not a function`,
      "give readsInBatches(config) returning true or false, or leave it out",
    );
  }
  if (value.description !== undefined && typeof value.description !== "string") {
    throw problem("description", `${show(value.description)} is not text`, "write one line, or leave it out");
  }
  if (value.credentials !== undefined) {
    if (!Array.isArray(value.credentials)) {
      throw problem(
        "credentials",
        `${show(value.credentials)} is not a list`,
        "write e.g. credentials: [{ credential: 'token', what: 'the API token' }]",
      );
    }
    const seen = new Set<string>();
    value.credentials.forEach((entry: unknown, i: number) => {
      const c = (entry ?? {}) as Record<string, unknown>;
      if (typeof c.credential !== "string" || !CREDENTIAL_NAME.test(c.credential) || seen.has(c.credential)) {
        throw problem(
          `credentials[${i}].credential`,
          typeof c.credential === "string" && seen.has(c.credential)
            ? `${show(c.credential)} is listed twice`
            : `${show(c.credential)} is not a credential name`,
          "write a lowercase name such as token (outcome.yaml then names token_secret or token_env)",
        );
      }
      seen.add(c.credential);
      if (typeof c.what !== "string" || c.what.trim() === "") {
        throw problem(
          `credentials[${i}].what`,
          c.what === undefined ? "is missing" : `${show(c.what)} is not text`,
          "say what the credential is, e.g. 'the metrics service's API token'",
        );
      }
    });
  }
  return value as unknown as ConnectorModule;
}
