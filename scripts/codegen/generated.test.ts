import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { OpenAPI3 } from "openapi-typescript";
import { afterAll, describe, expect, it } from "vitest";
import { apiTypes, openApiJson } from "./api-types";
import { ROOT, staleFiles, staleMessage, writeGenerated } from "./generated";

const dir = mkdtempSync(join(tmpdir(), "gen-types-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("staleFiles", () => {
  it("finds the files that are missing or differ, and none once written", () => {
    const files = [
      { path: "same.txt", source: "a", text: "one\n" },
      { path: "changed.txt", source: "b", text: "two\n" },
      { path: "missing.txt", source: "c", text: "three\n" },
    ];
    writeFileSync(join(dir, "same.txt"), "one\n");
    writeFileSync(join(dir, "changed.txt"), "2\n");
    const stale = staleFiles(files, dir);
    expect(stale).toEqual([
      { path: "changed.txt", source: "b", state: "stale" },
      { path: "missing.txt", source: "c", state: "missing" },
    ]);
    expect(staleMessage(stale)).toBe(
      "changed.txt is stale: it no longer matches b.\nmissing.txt is missing: it no longer matches c.\n" +
        "  run: pnpm gen:types (tsx scripts/gen-types.ts) and commit the result",
    );
    writeGenerated(files, dir);
    expect(staleFiles(files, dir)).toEqual([]);
  });
});

describe("the API's generated files", () => {
  const doc = JSON.parse(readFileSync(resolve(ROOT, "schemas/openapi.json"), "utf8")) as OpenAPI3;

  it("api.types.ts is what openapi-typescript makes of the checked-in openapi.json", async () => {
    expect(staleFiles([openApiJson(doc), await apiTypes(doc)])).toEqual([]);
  }, 60_000);

  it("a changed response schema makes both files stale", async () => {
    const changed = structuredClone(doc);
    const experiment = changed.components?.schemas?.Experiment as { properties: Record<string, unknown> };
    experiment.properties.title = { type: "integer" };
    const types = await apiTypes(changed);
    expect(types.text).toMatch(/Experiment: \{[^}]*title: number;/);
    expect(staleFiles([openApiJson(changed), types])).toEqual([
      { path: "schemas/openapi.json", source: expect.stringContaining("route schemas"), state: "stale" },
      { path: "packages/spec/src/api.types.ts", source: "schemas/openapi.json", state: "stale" },
    ]);
  }, 60_000);
});
