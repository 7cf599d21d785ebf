/**
 * The offline answer to `summarize_learning`: a deterministic sentence built
 * from the numbers, used when no LLM serves.
 */
import type { SummarizeLearningInput } from "./inputs";
import type { SummarizeLearningOutput } from "./output.types";

function percent(x: number): string {
  return `${(x * 100).toFixed(2).replace(/\.?0+$/, "")} pp`;
}

export function summarizeLearningOffline(input: SummarizeLearningInput): SummarizeLearningOutput {
  const effect =
    input.effect === null
      ? "no estimable effect"
      : `an effect of ${input.effect >= 0 ? "+" : ""}${percent(input.effect)}` +
        (input.ciLow !== null && input.ciHigh !== null
          ? ` (CI ${percent(input.ciLow)} to ${percent(input.ciHigh)})`
          : "");
  const statement = `${input.experiment.title}: ${effect} on ${input.metric}; decision: ${input.decision}.`;
  const tag = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "_")
      .replace(/^[^a-z]+/, "")
      .slice(0, 40);
  const tags = [input.experiment.mechanism_key ?? "", input.metric, input.decision]
    .map(tag)
    .filter((t, i, all) => t !== "" && all.indexOf(t) === i);
  return { statement, tags };
}
