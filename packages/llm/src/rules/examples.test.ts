import { readdirSync, readFileSync } from "node:fs";
import { parseOutcome } from "@outcome-runtime/spec";
import Ajv2020 from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { detectArea } from "./area";
import { planByRules } from "./generate-hypotheses";
import { forbiddenHits } from "./scope-paths";
import type { RulesOutcome } from "./types";

const dir = new URL("../../../../examples/outcomes/", import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .sort();
const validate = new Ajv2020({ strict: false }).compile(
  JSON.parse(
    readFileSync(new URL("../../../../schemas/llm/generate_hypotheses.output.schema.json", import.meta.url), "utf8"),
  ),
);

describe("the example outcomes", () => {
  it("are at least ten, covering every area", () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
    const areas = new Set(files.map((f) => detectArea(load(f)).area));
    expect([...areas].sort()).toEqual(["activation", "checkout", "onboarding", "performance", "pricing", "retention"]);
  });

  it.each(files)("%s gets a valid portfolio of three mechanisms within its scope", (file) => {
    const outcome = load(file);
    const plan = planByRules({ outcome });
    expect(validate({ hypotheses: plan.hypotheses })).toBe(true);
    expect(new Set(plan.hypotheses.map((h) => h.mechanism_key)).size).toBe(3);
    for (const h of plan.hypotheses) expect(forbiddenHits(h.touched_paths, outcome.forbidden_paths)).toEqual([]);
  });
});

function load(file: string): RulesOutcome {
  const parsed = parseOutcome(readFileSync(new URL(file, dir), "utf8"), { file });
  if (!parsed.ok) throw new Error(`${file} is not valid`);
  const { spec } = parsed;
  return {
    id: spec.id,
    name: spec.name,
    description: spec.description,
    objective: spec.objective,
    signal: {
      metric: spec.signal.metric,
      kind: spec.signal.kind === "ratio" ? "mean" : spec.signal.kind,
      unit: spec.signal.unit,
      baseline: spec.signal.baseline,
    },
    target: spec.target,
    allowed_paths: spec.constraints.scope?.allowed_paths,
    forbidden_paths: spec.constraints.scope?.forbidden_paths,
  };
}
