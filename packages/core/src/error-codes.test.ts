import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "./error-codes";

describe("error code registry", () => {
  const doc = readFileSync(new URL("../../../docs/api.md", import.meta.url), "utf8");
  const documented = new Map(
    [...doc.matchAll(/^\| `([a-z_]+)`\s*\| (\d{3})\s*\|/gm)].map((m) => [m[1], Number(m[2])] as const),
  );

  it("docs/api.md lists every code with its status, and no code that does not exist", () => {
    const registry = new Map(Object.entries(ERROR_CODES).map(([code, e]) => [code, e.status]));
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(registry));
  });

  it("codes are stable snake_case", () => {
    for (const code of Object.keys(ERROR_CODES)) expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  });
});
