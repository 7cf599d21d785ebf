/**
 * Losing a race to move an entity. Each state-change helper moves its entity
 * with a conditional UPDATE (compare-and-set on the state); when that finds the
 * entity in another state, a concurrent change won, and the loser is told who
 * won, the same way on every face (REST, MCP, email pages, the worker's logs).
 */
import { DomainError } from "@outcome-runtime/core";
import { audit, type Trx } from "@outcome-runtime/db";

/** The change that won: its audit action, who made it, through which channel, when. */
export interface WinningChange {
  readonly action: string;
  readonly by: string | null;
  readonly channel: string;
  readonly at: string;
}

/**
 * Thrown to the loser of a race to move an experiment or an outcome (code
 * `conflict`, 409): another change moved it first. `details.state` is the
 * state it is in now and `details.winner` the change that put it there.
 */
export class StateChangedError extends DomainError {
  constructor(
    subject: "experiment" | "outcome",
    name: string,
    expected: string,
    state: string,
    winner: WinningChange | null,
  ) {
    super(
      "conflict",
      `${subject} ${name} is no longer ${expected}: it is ${state}` +
        (winner === null
          ? ""
          : ` (${winner.action} by ${winner.by ?? "someone"} via ${winner.channel} at ${winner.at})`) +
        "; read it again before deciding what to do",
      { subject, expected, state, winner },
    );
    this.name = "StateChangedError";
  }
}

/**
 * The error for the loser of a race on `subjectId`: reads the entity's newest
 * audit event (the winner committed it with its move) inside `trx`.
 */
export async function stateChanged(
  trx: Trx,
  subject: { type: "experiment" | "outcome"; id: string; workspaceId: string; name: string },
  expected: string,
  state: string,
): Promise<StateChangedError> {
  const [latest] = await audit.listAuditEvents(trx, subject.workspaceId, {
    subjectType: subject.type,
    subjectId: subject.id,
    limit: 1,
  });
  const winner =
    latest === undefined
      ? null
      : { action: latest.action, by: latest.actor?.name ?? null, channel: latest.channel, at: latest.at.toISOString() };
  return new StateChangedError(subject.type, subject.name, expected, state, winner);
}
