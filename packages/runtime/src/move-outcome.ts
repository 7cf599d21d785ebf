/**
 * The one way an outcome changes state: the outcome machine's check, the
 * conditional UPDATE (compare-and-set on the state) and the audit event, inside
 * the caller's transaction. A person's activate or abandon and the worker's
 * achieved or missed come through here.
 */
import {
  applyTransition,
  type Outcome,
  type OutcomeAction,
  type OutcomeContext,
  type OutcomeState,
  outcomeMachine,
} from "@outcome-runtime/core";
import { audit, outcomes, type Trx } from "@outcome-runtime/db";
import { auditActor, type Caller } from "./context";
import { stateChanged } from "./state-conflict";

export interface OutcomeMove {
  /** The outcome as read by the caller (locked by it when it must not lose a race). */
  readonly outcome: Outcome;
  readonly action: OutcomeAction;
  /** What the action's guards read (the target met, the horizon passed). */
  readonly context?: OutcomeContext;
  /** Facts for the audit event's `after`, besides the new state. */
  readonly facts?: Readonly<Record<string, unknown>>;
}

export interface OutcomeMoved {
  readonly outcome: Outcome;
  readonly from: OutcomeState;
  readonly to: OutcomeState;
}

/**
 * Move an outcome inside `trx`: check the action with the outcome machine,
 * move it with `UPDATE … WHERE state = <from>` and write the audit event
 * (action: the move's first event, actor the caller; `before: { state }`,
 * `after: { state, ...facts }`).
 *
 * @throws `illegal_transition`, or a guard's code (`target_not_met`, `horizon_not_reached`).
 * @throws StateChangedError (`conflict`, naming the winning change) when the
 *   outcome left `from` between the caller's read and this UPDATE.
 */
export async function moveOutcome(trx: Trx, caller: Caller, at: Date, move: OutcomeMove): Promise<OutcomeMoved> {
  const { outcome, action } = move;
  const transition = applyTransition(outcomeMachine, outcome.state, action, move.context ?? {});
  const updated = await outcomes.updateOutcomeState(trx, outcome.id, transition.from, transition.to, at);
  if (updated === null) {
    const now = await outcomes.findOutcomeById(trx, outcome.id);
    throw await stateChanged(
      trx,
      { type: "outcome", id: outcome.id, workspaceId: outcome.workspaceId, name: outcome.slug },
      transition.from,
      now?.state ?? "gone",
    );
  }
  await audit.insertAuditEvent(trx, {
    workspaceId: outcome.workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: transition.events[0] ?? `outcome.${action}`,
    subjectType: "outcome",
    subjectId: outcome.id,
    before: { state: transition.from },
    after: { state: transition.to, ...move.facts },
    requestId: caller.requestId,
  });
  return { outcome: updated, from: transition.from, to: transition.to };
}
