import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseOutcome } from "../../../packages/spec/src/index";
import { secondsToDuration, specToYaml } from "./spec-yaml";

const root = join(import.meta.dirname, "../../..");
const schema = JSON.parse(readFileSync(join(root, "schemas/outcome.schema.json"), "utf8"));

describe("specToYaml", () => {
  it("writes durations in their largest whole unit", () => {
    expect(secondsToDuration(1_209_600)).toBe("2w");
    expect(secondsToDuration(172_800)).toBe("2d");
    expect(secondsToDuration(5400)).toBe("90m");
    expect(secondsToDuration(45)).toBe("45s");
  });

  const examples = readdirSync(join(root, "examples/outcomes")).filter((f) => f.endsWith(".yaml"));
  it.each(examples)("round-trips %s to the same normalised spec", (file) => {
    const first = parseOutcome(readFileSync(join(root, "examples/outcomes", file), "utf8"), { file });
    if (!first.ok) throw new Error(`${file} is invalid`);
    const again = parseOutcome(specToYaml(first.spec as unknown as Record<string, unknown>, schema), { file });
    expect(again.ok ? again.contentHash : again.errors).toBe(first.contentHash);
  });
});
