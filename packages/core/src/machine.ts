/**
 * A small table-driven state machine: each transition names its action, the
 * states it may start from, the state it leads to, an optional guard and the
 * domain events it emits. Pure: no I/O, no clock.
 */

import type { ErrorCode } from "./error-codes";
import { GuardRejectedError, IllegalTransitionError } from "./errors";

/** What a guard returns: `null` when it allows the transition, else why not. */
export type GuardVerdict = null | { code: ErrorCode; message: string; details?: Record<string, unknown> };

/** One row of a transition table. */
export interface TransitionDef<S extends string, A extends string, C> {
  readonly action: A;
  readonly from: readonly S[];
  readonly to: S;
  readonly guard?: (context: C) => GuardVerdict;
  /** Domain events emitted when the transition applies, e.g. `experiment.launched`. */
  readonly events: readonly string[];
}

/** A machine: its name, all its states, its final states and its table. */
export interface MachineDef<S extends string, A extends string, C> {
  readonly name: string;
  readonly states: readonly S[];
  readonly actions: readonly A[];
  readonly final: readonly S[];
  readonly transitions: readonly TransitionDef<S, A, C>[];
  /**
   * A rule over every action, checked before the table (e.g. nothing but a
   * pause on an experiment of a closed outcome): its refusal wins over
   * `illegal_transition`.
   */
  readonly guard?: (state: S, action: A, context: C) => GuardVerdict;
}

/** The result of applying an action: the move and the events to publish. */
export interface TransitionResult<S extends string, A extends string> {
  readonly action: A;
  readonly from: S;
  readonly to: S;
  readonly events: readonly string[];
}

/**
 * Apply `action` to an entity in `state`.
 *
 * @returns the new state and the events the move emits. A row that leads back
 *   to `state` (`to === from`, e.g. a builder claiming again what they hold)
 *   changes nothing and emits no event.
 * @throws GuardRejectedError with the machine-wide guard's code when it refuses.
 * @throws IllegalTransitionError (`illegal_transition`) when no row of the table
 *   starts from `state` with `action`.
 * @throws GuardRejectedError with the guard's own code (e.g.
 *   `launch_gate_not_approved`) when the row exists but its guard refuses.
 */
export function applyTransition<S extends string, A extends string, C>(
  machine: MachineDef<S, A, C>,
  state: S,
  action: A,
  context: C,
): TransitionResult<S, A> {
  const refusal = machine.guard?.(state, action, context) ?? null;
  if (refusal !== null) {
    throw new GuardRejectedError(refusal.code, refusal.message, {
      machine: machine.name,
      from: state,
      action,
      ...refusal.details,
    });
  }
  const row = machine.transitions.find((t) => t.action === action && t.from.includes(state));
  if (row === undefined) {
    throw new IllegalTransitionError(machine.name, state, action, availableActions(machine, state));
  }
  const verdict = row.guard?.(context) ?? null;
  if (verdict !== null) {
    throw new GuardRejectedError(verdict.code, verdict.message, {
      machine: machine.name,
      from: state,
      action,
      ...verdict.details,
    });
  }
  return { action, from: state, to: row.to, events: row.events };
}

/** The actions whose table rows start from `state` (guards not evaluated). */
export function availableActions<S extends string, A extends string, C>(machine: MachineDef<S, A, C>, state: S): A[] {
  return machine.transitions.filter((t) => t.from.includes(state)).map((t) => t.action);
}

/** Whether `state` is final (no transition leaves it). */
export function isFinal<S extends string, A extends string, C>(machine: MachineDef<S, A, C>, state: S): boolean {
  return machine.final.includes(state);
}
