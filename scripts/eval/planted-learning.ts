/**
 * The learning planted for the "learnings used when relevant" check: a past
 * win on a mechanism of the outcome's area that the first portfolio did not
 * contain.
 */
import { createHash } from "node:crypto";
import {
  defaultPlaybooks,
  detectArea,
  planByRules,
  RulesError,
  type RulesHypothesesInput,
  type RulesLearning,
} from "@outcome-runtime/llm";
import type { PlantedLearning } from "./score";

type Candidate = ReturnType<typeof planByRules>["hypotheses"][number];

/** Mechanism keys of the playbook templates written for the outcome's area and signal kind. */
function areaMechanisms(input: RulesHypothesesInput): Set<string> {
  const area = detectArea(input.outcome).area;
  if (area === null) return new Set();
  return new Set(
    defaultPlaybooks()
      .filter((t) => t.kinds.includes(input.outcome.signal.kind))
      .filter((t) => t.area === area || t.also_areas.includes(area))
      .map((t) => t.mechanism_key),
  );
}

function bestOther(input: RulesHypothesesInput, proposed: readonly string[]): Candidate | undefined {
  const relevant = areaMechanisms(input);
  for (const key of proposed) relevant.delete(key);
  if (relevant.size === 0) return undefined;
  try {
    const plan = planByRules({ ...input, learnings: [], failed: [], count: 10, exclude_mechanisms: [...proposed] });
    return plan.hypotheses.find((h) => relevant.has(h.mechanism_key));
  } catch (error) {
    if (error instanceof RulesError) return undefined;
    throw error;
  }
}

/**
 * The best-ranked playbook mechanism of the outcome's area (the rules
 * engine's ranking) among those not in `proposed`, written up as a shipped
 * learning of that mechanism with the template's expected effect, tagged with
 * the mechanism key. The id is derived from the outcome and the mechanism, so
 * reruns send the same input. `null` when no area is detected or every
 * mechanism of the area was already proposed (the check does not apply).
 */
export function plantLearning(
  input: RulesHypothesesInput,
  proposed: readonly string[],
): { learning: RulesLearning; planted: PlantedLearning } | null {
  const candidate = bestOther(input, proposed);
  if (candidate === undefined) return null;
  const key = candidate.mechanism_key;
  const hash = createHash("sha256").update(`${input.outcome.id}:${key}`).digest("hex").slice(0, 12);
  const id = `learning-${hash}`;
  const percent = (candidate.prediction.effect * 100).toFixed(1);
  const learning: RulesLearning = {
    id,
    statement:
      `Shipped: "${candidate.title}" (mechanism ${key}) moved ${candidate.prediction.metric} ` +
      `${candidate.prediction.direction === "decrease" ? "down" : "up"} by ${percent} % relative in a past experiment ` +
      `on a comparable audience. ${candidate.mechanism}`,
    decision: "ship",
    effect: candidate.prediction.effect,
    tags: [key],
  };
  return { learning, planted: { id, mechanismKey: key } };
}
