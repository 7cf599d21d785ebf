import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConnectorError } from "./connector-error";
import { ConnectorModuleError, connectorTypes, loadConnectorModules, parseConnectorModules } from "./connector-modules";
import { registeredConnectorModules } from "./connector-registry";
import { checkConnectorSettings, createConnector, readsInBatches } from "./create-connector";
import { connectorCredentials } from "./credentials";

const dir = mkdtempSync(join(tmpdir(), "ort-connector-modules-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a module file and returns its absolute path (what CONNECTOR_MODULES may name besides packages). */
function moduleFile(name: string, source: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, source);
  return file;
}

/** A connector module whose connector answers `rows` for every experiment (as its source would). */
function workingModule(type: string, rows: string, extra = ""): string {
  return moduleFile(
    type,
    `export default {
  type: ${JSON.stringify(type)},
  description: "rows from a test source",
  credentials: [{ credential: "token", what: "the test source's token" }],
  create(config, context) {
    if (typeof config.url !== "string") {
      throw new Error("url is missing");
    }
    return {
      type: ${JSON.stringify(type)},
      describe: () => "${type} " + config.url,
      async fetchArmAggregates() { return ${rows}; },
      async fetchOutcomeSeries() { throw new Error("no series here"); },
      async close() {},
      token: context.credentials.token,
    };
  },
  ${extra}
};
`,
  );
}

async function loadError(modules: string[]): Promise<ConnectorModuleError> {
  try {
    await loadConnectorModules(modules);
  } catch (error) {
    if (error instanceof ConnectorModuleError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorModuleError");
}

const window = {
  experimentKey: "checkout-1",
  arms: ["control", "treatment"],
  from: new Date("2025-01-01T00:00:00Z"),
  to: new Date("2025-01-08T00:00:00Z"),
};

describe("parseConnectorModules", () => {
  it("reads package names and absolute paths separated by commas; unset is none", () => {
    expect(parseConnectorModules(undefined)).toEqual([]);
    expect(parseConnectorModules("  ")).toEqual([]);
    expect(parseConnectorModules("@acme/outcome-connector-foo, other-pkg/connector ,/opt/connectors/x.mjs")).toEqual([
      "@acme/outcome-connector-foo",
      "other-pkg/connector",
      "/opt/connectors/x.mjs",
    ]);
  });

  it("refuses a relative path or a malformed name, and a repeated one, naming it", () => {
    expect(() => parseConnectorModules("./connector.mjs")).toThrow(
      /^CONNECTOR_MODULES: "\.\/connector\.mjs" is not a package name or an absolute path/,
    );
    expect(() => parseConnectorModules("Acme Connector")).toThrow(/"Acme Connector" is not a package name/);
    expect(() => parseConnectorModules("a,b,a")).toThrow('CONNECTOR_MODULES: "a" is listed twice; list it once');
  });
});

describe("loadConnectorModules", () => {
  it("registers a module's type: createConnector, connectorCredentials, readsInBatches, the settings check and the known types all know it", async () => {
    const file = workingModule("acme-metrics", `[{ arm: "control", units: 10, sum: 4, sum_sq: 4, ts: null }]`);
    const loaded = await loadConnectorModules([file]);
    expect(loaded).toEqual([{ module: file, type: "acme-metrics", description: "rows from a test source" }]);
    expect(registeredConnectorModules()).toContainEqual(loaded[0]);
    expect(connectorTypes()).toEqual(expect.arrayContaining(["postgres", "csv", "acme-metrics"]));

    const config = { type: "acme-metrics", url: "https://metrics.acme.example", token_env: "OUTCOME_RUNTIME_SOURCE_T" };
    expect(connectorCredentials(config)).toEqual([
      { credential: "token", field: "token_env", ref: { via: "env", name: "OUTCOME_RUNTIME_SOURCE_T" } },
    ]);
    // A credential reference is checked as for a built-in connector.
    const missing = checkConnectorSettings({ type: "acme-metrics", url: "https://x.example" }, "proportion");
    expect(missing).toMatchObject({ code: "invalid_connector", field: "token_secret" });
    expect(missing?.fix).toContain("the test source's token");
    expect(checkConnectorSettings(config, "proportion")).toBeNull();
    expect(readsInBatches(config)).toBe(false);

    const connector = createConnector(config, { metricKind: "proportion", credentials: { token: "t0ken" } });
    expect(connector.type).toBe("acme-metrics");
    expect(connector.describe()).toBe("acme-metrics https://metrics.acme.example");
    expect(await connector.fetchArmAggregates(window)).toEqual([
      { arm: "control", units: 10, sum: 4, sum_sq: 4, ts: null },
    ]);
    // Whatever the module throws reaches the runtime as a ConnectorError naming the module.
    const series = await connector.fetchOutcomeSeries(window).catch((e: unknown) => e);
    expect(series).toBeInstanceOf(ConnectorError);
    expect(series).toMatchObject({ code: "unavailable", retryable: true });
    expect((series as Error).message).toBe(`acme-metrics connector (module ${file}): no series here`);
  });

  it("loading a module again is a no-op", async () => {
    const file = workingModule("again-metrics", "[]");
    await loadConnectorModules([file]);
    await expect(loadConnectorModules([file])).resolves.toHaveLength(1);
    expect(registeredConnectorModules().filter((m) => m.type === "again-metrics")).toHaveLength(1);
  });

  it("checks a module's rows as a built-in connector's: a conversion rate above 1 is refused", async () => {
    const file = workingModule("overcount", `[{ arm: "control", units: 10, sum: 12, sum_sq: 12, ts: null }]`);
    await loadConnectorModules([file]);
    const connector = createConnector(
      { type: "overcount", url: "https://x.example", token_secret: "t" },
      { metricKind: "proportion", credentials: { token: "t" } },
    );
    const error = await connector.fetchArmAggregates(window).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("bad_response");
    expect((error as ConnectorError).details.field).toBe("sum");
  });

  it("a create() that throws is an invalid_config error naming the module, for the worker and the settings check", async () => {
    const file = workingModule("throwing-create", "[]");
    await loadConnectorModules([file]);
    const config = { type: "throwing-create", token_secret: "t" };
    let error: unknown;
    try {
      createConnector(config, { metricKind: "mean", credentials: { token: "t" } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("invalid_config");
    expect((error as Error).message).toBe(
      `throwing-create connector (module ${file}): create() failed: url is missing; fix the module or report it to its authors; remove it from CONNECTOR_MODULES to stop using it`,
    );
    expect(checkConnectorSettings(config, "mean")).toMatchObject({
      code: "invalid_connector",
      problem: "create() failed: url is missing",
    });
  });

  it("a batched module must give fetchBatchAggregates, and its batches are checked per experiment", async () => {
    const file = workingModule("batched-metrics", "[]", `readsInBatches: (config) => config.batch === true,`);
    await loadConnectorModules([file]);
    const config = { type: "batched-metrics", url: "https://x.example", token_secret: "t", batch: true };
    expect(readsInBatches(config)).toBe(true);
    expect(() => createConnector(config, { metricKind: "proportion", credentials: { token: "t" } })).toThrow(
      "create() returned an object without fetchBatchAggregates()",
    );
  });

  it("refuses a module that is not installed", async () => {
    const error = await loadError(["@acme/outcome-connector-nowhere"]);
    expect(error.field).toBe("import");
    expect(error.message).toBe(
      'CONNECTOR_MODULES: module "@acme/outcome-connector-nowhere": import: is not installed where the runtime runs; install it beside the runtime (pnpm add -w @acme/outcome-connector-nowhere, or in your image), or remove it from CONNECTOR_MODULES',
    );
    const path = join(dir, "absent.mjs");
    expect((await loadError([path])).problem).toBe("is not installed where the runtime runs");
  });

  it("refuses a module that fails to load", async () => {
    const file = moduleFile("broken", `throw new Error("boom at import");\nexport default {};\n`);
    const error = await loadError([file]);
    expect(error.field).toBe("import");
    expect(error.problem).toContain("failed to load (boom at import)");
  });

  it("refuses a bad export, naming the field and the fix", async () => {
    const cases: [string, string, string][] = [
      ["export const connector = {};", "default export", "is missing"],
      ["export default 42;", "default export", "is 42, not an object"],
      ["export default { create() {} };", "type", "is missing"],
      ['export default { type: "Acme Metrics", create() {} };', "type", '"Acme Metrics" is not a connector type name'],
      ['export default { type: "no-create" };', "create", "is missing"],
      ['export default { type: "bad-batches", create() {}, readsInBatches: true };', "readsInBatches", "is boolean"],
      ['export default { type: "bad-creds", create() {}, credentials: "token" };', "credentials", "is not a list"],
      [
        'export default { type: "bad-cred", create() {}, credentials: [{ credential: "API-Token", what: "x" }] };',
        "credentials[0].credential",
        '"API-Token" is not a credential name',
      ],
      [
        'export default { type: "no-what", create() {}, credentials: [{ credential: "token" }] };',
        "credentials[0].what",
        "is missing",
      ],
    ];
    for (const [i, [source, field, problem]] of cases.entries()) {
      const error = await loadError([moduleFile(`bad-export-${i}`, source)]);
      expect({ field: error.field, problem: error.problem }).toEqual({
        field,
        problem: expect.stringContaining(problem),
      });
      expect(error.fix).not.toBe("");
    }
    // Nothing of a failed load is registered.
    expect(registeredConnectorModules().map((m) => m.type)).not.toContain("bad-cred");
  });

  it("refuses a type that shadows a built-in one or another module's", async () => {
    for (const type of ["postgres", "replay"]) {
      const error = await loadError([moduleFile(`shadow-${type}`, `export default { type: "${type}", create() {} };`)]);
      expect(error.field).toBe("type");
      expect(error.problem).toBe(`"${type}" is a built-in connector type, which a module may not replace`);
    }
    const first = moduleFile("twin-a", 'export default { type: "twin", create() {} };');
    const second = moduleFile("twin-b", 'export default { type: "twin", create() {} };');
    const error = await loadError([first, second]);
    expect(error.message).toContain(`"twin" is also the type of module "${first}"`);
    // The whole list is refused: the first module was not registered either.
    expect(connectorTypes()).not.toContain("twin");
  });
});
