/**
 * Outcome lifecycle (DESIGN §4): `draft → active → achieved | missed | abandoned`,
 * and `achieved → active` when its owner reopens it.
 */
import type { MachineDef } from "./machine";

export const OUTCOME_STATES = ["draft", "active", "achieved", "missed", "abandoned"] as const;
export type OutcomeState = (typeof OUTCOME_STATES)[number];

export const OUTCOME_ACTIONS = ["activate", "achieve", "miss", "abandon", "reopen"] as const;
export type OutcomeAction = (typeof OUTCOME_ACTIONS)[number];

/** Facts the outcome guards read; the runtime computes them from analyses and the clock. */
export interface OutcomeContext {
  /**
   * The owner confirmed at an `achievement_review` gate that the target is met
   * (the runtime opens that gate once the signal has stayed past the target for
   * `target.sustain`).
   */
  readonly targetMet?: boolean;
  /** The horizon (duration since activation, or end date) has passed. */
  readonly horizonPassed?: boolean;
}

/**
 * Outcome states in which nothing new may happen: the outcome is over. Of
 * these, only `achieved` can be left (`reopen`, by a person).
 */
export const CLOSED_OUTCOME_STATES: readonly OutcomeState[] = ["achieved", "missed", "abandoned"];

/** Whether `state` is one of {@link CLOSED_OUTCOME_STATES}. */
export function isOutcomeClosed(state: string): boolean {
  return (CLOSED_OUTCOME_STATES as readonly string[]).includes(state);
}

export const outcomeMachine: MachineDef<OutcomeState, OutcomeAction, OutcomeContext> = {
  name: "outcome",
  states: OUTCOME_STATES,
  actions: OUTCOME_ACTIONS,
  final: ["missed", "abandoned"],
  transitions: [
    { action: "activate", from: ["draft"], to: "active", events: ["outcome.activated"] },
    {
      action: "achieve",
      from: ["active"],
      to: "achieved",
      guard: (c) =>
        c.targetMet === true ? null : { code: "target_not_met", message: "the outcome's target has not been met yet" },
      events: ["outcome.achieved"],
    },
    {
      action: "miss",
      from: ["active"],
      to: "missed",
      guard: (c) =>
        c.horizonPassed === true
          ? null
          : {
              code: "horizon_not_reached",
              message: "the outcome's horizon has not passed; abandon it instead to stop early",
            },
      events: ["outcome.missed"],
    },
    { action: "abandon", from: ["draft", "active"], to: "abandoned", events: ["outcome.abandoned"] },
    // A confirmed achievement that did not hold (the signal fell back, the data was wrong): the outcome runs again.
    { action: "reopen", from: ["achieved"], to: "active", events: ["outcome.reopened"] },
  ],
};
