/**
 * What a flag provider should serve after an experiment moves: the one rule
 * behind the runtime's ownership of the traffic split (docs/flags.md).
 *
 * | the experiment moves to | served | reason |
 * |---|---|---|
 * | approved (the hypothesis goes to be built) | control to everyone: the flag exists for the build to use | `prepare` |
 * | running, from built | the arms' weights | `launch` |
 * | running, from paused | the arms' weights | `resume` |
 * | running, from analysing | the arms' weights | `extend` |
 * | paused (kill-switch, guardrail, a person, the outcome abandoned) | control to everyone | `pause` |
 * | shipped | the first treatment (the one decisions are declared on) to everyone | `ship` |
 * | rolled_back, iterated | control to everyone | `roll_back`, `iterate` |
 * | anything else (analysing included: the split stays) | no change | |
 */
import type { Arm } from "./entities";
import type { ExperimentState } from "./experiment.machine";

/** Why a split was asked for. */
export type FlagSplitReason = "prepare" | "launch" | "resume" | "extend" | "pause" | "ship" | "roll_back" | "iterate";

/** A split: fractions of the units by arm name, summing to 1. */
export interface FlagSplit {
  readonly weights: Readonly<Record<string, number>>;
  readonly reason: FlagSplitReason;
  /** True when the split sends everyone to control (a rollback). */
  readonly rollback: boolean;
}

function only(arms: readonly Arm[], name: string): Record<string, number> {
  return Object.fromEntries(arms.map((a) => [a.name, a.name === name ? 1 : 0]));
}

/**
 * The split a move from `from` to `to` asks of the flag provider, or null
 * when the move changes nothing it serves. `arms` are the experiment's, control
 * first, weights fractions summing to 1.
 */
export function flagSplitFor(from: ExperimentState, to: ExperimentState, arms: readonly Arm[]): FlagSplit | null {
  const control = arms[0]?.name;
  if (control === undefined || from === to) return null;
  switch (to) {
    case "approved":
      return { weights: only(arms, control), reason: "prepare", rollback: false };
    case "running": {
      const reason = from === "built" ? "launch" : from === "paused" ? "resume" : "extend";
      return { weights: Object.fromEntries(arms.map((a) => [a.name, a.weight])), reason, rollback: false };
    }
    case "paused":
      return { weights: only(arms, control), reason: "pause", rollback: true };
    case "shipped":
      return { weights: only(arms, arms[1]?.name ?? control), reason: "ship", rollback: false };
    case "rolled_back":
      return { weights: only(arms, control), reason: "roll_back", rollback: true };
    case "iterated":
      return { weights: only(arms, control), reason: "iterate", rollback: true };
    default:
      return null;
  }
}
