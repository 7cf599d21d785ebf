import { readFileSync } from "node:fs";
import { planByRules } from "@outcome-runtime/llm";
import { hypothesisInput } from "@outcome-runtime/runtime";
import { parseOutcome } from "@outcome-runtime/spec";
import { describe, expect, it } from "vitest";
import { plantLearning } from "./planted-learning";

function inputOf(example: string) {
  const file = `examples/outcomes/${example}.yaml`;
  const parsed = parseOutcome(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8"), { file });
  if (!parsed.ok) throw new Error(`${file} is invalid`);
  return hypothesisInput({ slug: parsed.spec.id, name: parsed.spec.name }, parsed.spec, [], []);
}

describe("plantLearning", () => {
  it("plants a won learning on a mechanism of the area that the first portfolio lacks", () => {
    const input = inputOf("checkout-abandonment");
    const proposed = planByRules(input).hypotheses.map((h) => h.mechanism_key);
    const plant = plantLearning(input, proposed);
    expect(plant).not.toBeNull();
    const { learning, planted } = plant!;
    expect(proposed).not.toContain(planted.mechanismKey);
    expect(learning).toMatchObject({ id: planted.id, decision: "ship", tags: [planted.mechanismKey] });
    expect(learning.effect).toBeGreaterThan(0);
    expect(plantLearning(input, proposed)).toEqual(plant);
  });

  it("plants nothing when every mechanism of the area was proposed", () => {
    const input = inputOf("checkout-abandonment");
    const all = planByRules({ ...input, count: 10 }).hypotheses.map((h) => h.mechanism_key);
    expect(plantLearning(input, all)).toBeNull();
  });
});
