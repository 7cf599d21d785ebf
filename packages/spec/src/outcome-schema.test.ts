/**
 * The schema file's own rules (it is what editors show), and the generated
 * types being in step with it.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { outcomeSchema } from "./index.js";

type Node = Record<string, unknown>;
const schema = outcomeSchema as Node;
const root = fileURLToPath(new URL("../../../", import.meta.url));

/** Every object schema with `properties`, with a readable location. */
function objectSchemas(node: unknown, at: string, out: [string, Node][] = []): [string, Node][] {
  if (Array.isArray(node)) {
    for (const [i, child] of node.entries()) objectSchemas(child, `${at}/${i}`, out);
  } else if (node !== null && typeof node === "object") {
    const n = node as Node;
    if (n.properties !== undefined) out.push([at, n]);
    for (const [key, child] of Object.entries(n)) {
      if (key !== "default" && key !== "examples" && key !== "const" && key !== "enum") {
        objectSchemas(child, `${at}/${key}`, out);
      }
    }
  }
  return out;
}

describe("schemas/outcome.schema.json", () => {
  it("is JSON Schema 2020-12 with an $id", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.$id).toBe("https://outcome-runtime.dev/schemas/outcome.schema.json");
  });

  it("describes every property", () => {
    for (const [at, node] of objectSchemas(schema, "#")) {
      for (const [key, property] of Object.entries(node.properties as Record<string, Node>)) {
        // `if` conditions and the `contains` test of arms are not shown to anyone.
        if (at.endsWith("/if") || at.endsWith("/contains")) continue;
        expect(typeof property.description, `${at}/properties/${key}`).toBe("string");
      }
    }
  });

  it("closes every object except the connector's open base", () => {
    for (const [at, node] of objectSchemas(schema, "#")) {
      if (at.endsWith("/if") || at.endsWith("/contains")) continue;
      expect(node.additionalProperties, at).toBe(at === "#/$defs/Connector");
    }
  });

  it("titles every $def, so generated types get good names", () => {
    for (const [name, def] of Object.entries(schema.$defs as Record<string, Node>)) {
      expect(def.title, name).toBe(name);
    }
  });

  it("is frozen", () => {
    expect(Object.isFrozen(schema)).toBe(true);
    expect(Object.isFrozen((schema.$defs as Node).Duration)).toBe(true);
  });
});

describe("scripts/gen-types.ts", () => {
  it("--check passes: outcome.types.ts, openapi.json and api.types.ts are in step with their sources", () => {
    const output = execFileSync(process.execPath, ["--import", "tsx", "scripts/gen-types.ts", "--check"], {
      cwd: root,
      encoding: "utf8",
    });
    expect(output).toContain("outcome.types.ts is up to date");
    expect(output).toContain("openapi.json is up to date");
    expect(output).toContain("api.types.ts is up to date");
  }, 120_000);
});
