import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cacheKey, canonicalJson, costOf } from "./gateway";
import { outputTypesSource, TYPES_PATH } from "./output-types.generator";

describe("canonicalJson and cacheKey", () => {
  it("ignore key order and undefined properties", () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: "x", u: undefined })).toBe('{"a":"x","b":[1,{"c":2,"d":1}]}');
    expect(cacheKey("generate_hypotheses", "v1", "m", { a: 1, b: 2 })).toBe(
      cacheKey("generate_hypotheses", "v1", "m", { b: 2, a: 1 }),
    );
  });
  it("differ by operation, prompt version, model and input", () => {
    const base = cacheKey("generate_hypotheses", "v1", "m", { a: 1 });
    expect(base).toMatch(/^generate_hypotheses:v1:m:[0-9a-f]{64}$/);
    expect(cacheKey("draft_outcome", "v1", "m", { a: 1 })).not.toBe(base);
    expect(cacheKey("generate_hypotheses", "v2", "m", { a: 1 })).not.toBe(base);
    expect(cacheKey("generate_hypotheses", "v1", "n", { a: 1 })).not.toBe(base);
    expect(cacheKey("generate_hypotheses", "v1", "m", { a: 2 })).not.toBe(base);
  });
});

describe("costOf", () => {
  it("prices tokens in USD per million", () => {
    expect(costOf({ inputTokens: 1_000_000, outputTokens: 0 }, { input: 3, output: 15 })).toBe(3);
    expect(costOf({ inputTokens: 2000, outputTokens: 1000 }, { input: 3, output: 15 })).toBeCloseTo(0.021, 12);
  });
});

describe("output types", () => {
  it("match schemas/llm (run packages/llm/scripts/gen-output-types.ts after changing a schema)", async () => {
    expect(readFileSync(TYPES_PATH, "utf8")).toBe(await outputTypesSource());
  });
});
