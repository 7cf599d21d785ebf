import type { Outcome } from "@outcome-runtime/core";
import type { OutcomeSpec } from "@outcome-runtime/spec";

/**
 * The normalised spec of a stored outcome. Specs are validated by
 * `parseOutcome` before they are stored, so the stored JSON has this shape.
 */
export function specOf(outcome: Pick<Outcome, "spec">): OutcomeSpec {
  return outcome.spec as unknown as OutcomeSpec;
}
