import { describe, expect, it } from "vitest";
import { validateOutput } from "./validate";

describe("validateOutput", () => {
  it("validates against a second copy of a schema with the same $id (read from disk again)", () => {
    const schema = () => ({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://outcome-runtime.dev/schemas/test/copy.schema.json",
      type: "object",
      required: ["n"],
      properties: { n: { type: "integer", minimum: 1 } },
      additionalProperties: false,
    });
    expect(validateOutput(schema(), { n: 1 })).toEqual([]);
    expect(validateOutput(schema(), { n: 0, x: 1 })).toEqual([
      { path: "", message: "must NOT have additional properties (x)" },
      { path: "/n", message: "must be >= 1" },
    ]);
  });
});
