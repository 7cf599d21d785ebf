/**
 * Deciding a gate: exactly once, by someone allowed to, with the experiment
 * moves the decision implies, all in one transaction.
 */
import {
  applyTransition,
  DomainError,
  type Experiment,
  type ExperimentAction,
  experimentMachine,
  type Gate,
  type GateKind,
  gateMachine,
} from "@outcome-runtime/core";
import { audit, experiments, gates, outcomes, type Page, type PageRequest, type Trx } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";

/** The decisions each gate kind accepts, and the gate status each leads to. */
export const GATE_DECISIONS = {
  portfolio_review: { approve: "approved", reject: "rejected" },
  launch_approval: { approve: "approved", reject: "rejected" },
  analysis_review: { ship: "approved", iterate: "approved", extend: "approved", roll_back: "rejected" },
} as const satisfies Record<GateKind, Record<string, "approved" | "rejected">>;

export type GateDecisionValue = "approve" | "reject" | "ship" | "iterate" | "extend" | "roll_back";

/** The experiment action a decision applies, per gate kind. */
const EXPERIMENT_EFFECT: Record<GateKind, Partial<Record<GateDecisionValue, ExperimentAction>>> = {
  portfolio_review: { approve: "approve", reject: "reject" },
  launch_approval: { approve: "launch", reject: "rework" },
  analysis_review: { ship: "ship", iterate: "iterate", extend: "extend", roll_back: "roll_back" },
};

/** Thrown to every caller but the first: carries the decision that won. */
export class GateAlreadyDecidedError extends DomainError {
  constructor(gate: Gate) {
    super(
      "gate_already_decided",
      gate.decision
        ? `gate ${gate.id} was already decided: ${gate.decision.decision} by ${gate.decision.decidedBy} via ${gate.decision.channel} at ${gate.decision.decidedAt.toISOString()}`
        : `gate ${gate.id} is ${gate.status}`,
      { gateId: gate.id, status: gate.status, decision: gate.decision },
    );
  }
}

export interface DecideGateInput {
  readonly decision: GateDecisionValue;
  readonly reason?: string | null | undefined;
}

export interface DecideGateResult {
  readonly gate: Gate;
  /** Experiments the decision moved, in their new state. */
  readonly experiments: readonly Experiment[];
}

/**
 * Decide a pending gate. One conditional `UPDATE … WHERE status = 'pending'
 * RETURNING` picks the single winner among concurrent deciders; the gate's
 * audit event and the experiment moves it implies commit with it or not at all.
 *
 * Effects: `portfolio_review` approve/reject moves every proposed experiment of
 * the gate to approved/rejected; `launch_approval` approve launches the
 * experiment (running), reject sends it back to building; `analysis_review`
 * ship/iterate/extend/roll_back apply the action of that name.
 *
 * @throws DomainError `not_found`; `invalid_decision` for a decision the gate
 *   kind does not take; `agents_cannot_decide` / `gate_not_assignee`;
 *   GateAlreadyDecidedError (`gate_already_decided`, the winning decision in
 *   `details.decision`) when the gate is no longer pending.
 */
export async function decideGate(
  deps: RuntimeDeps,
  caller: Caller,
  gateId: string,
  input: DecideGateInput,
): Promise<DecideGateResult> {
  const workspaceId = caller.principal.workspaceId;
  return inTransaction(deps.db, async (trx) => {
    const gate = await gates.findGate(trx, workspaceId, gateId);
    if (gate === null) throw new DomainError("not_found", `no gate "${gateId}" in this workspace`, { gate: gateId });
    const allowed = GATE_DECISIONS[gate.kind] as Record<string, "approved" | "rejected">;
    const status = allowed[input.decision];
    if (status === undefined) {
      throw new DomainError(
        "invalid_decision",
        `a ${gate.kind} gate takes ${Object.keys(allowed).join(" or ")}, not "${input.decision}"`,
        { field: "decision", allowed: Object.keys(allowed) },
      );
    }
    if (gate.status !== "pending") throw new GateAlreadyDecidedError(gate);
    // Lock the outcome first, as proposals do: a hypothesis joining this gate
    // either commits before the decision (and is decided with it) or finds
    // the gate decided and opens a new one. Never both, never neither.
    const outcome = await outcomes.findOutcome(trx, workspaceId, gate.outcomeId, { forUpdate: true });
    if (outcome === null)
      throw new DomainError("not_found", `the outcome of gate ${gate.id} is gone`, { gate: gate.id });
    if (outcome.state !== "active" && outcome.state !== "draft") {
      throw new DomainError("outcome_closed", `outcome ${outcome.slug} is ${outcome.state}; its gates are closed`, {
        state: outcome.state,
      });
    }
    // Who may decide (and that the gate is pending) is the gate machine's rule.
    applyTransition(gateMachine, gate.status, status === "approved" ? "approve" : "reject", {
      actor: caller.principal,
      assignees: gate.assignees,
      backup: gate.backup,
    });

    const at = nowOf(deps);
    const decided = await gates.decidePendingGate(trx, gate.id, {
      status,
      decision: input.decision,
      reason: input.reason ?? null,
      decidedBy: caller.principal.name,
      channel: caller.channel,
      at,
    });
    if (decided === null) {
      // Someone else's decision committed between our read and our update.
      const winner = await gates.findGate(trx, workspaceId, gate.id);
      throw new GateAlreadyDecidedError(winner ?? gate);
    }
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "gate.decided",
      subjectType: "gate",
      subjectId: gate.id,
      before: { status: "pending" },
      after: { status, decision: input.decision, reason: input.reason ?? null },
      requestId: caller.requestId,
    });
    const moved = await applyGateEffects(trx, caller, decided, input.decision, at);
    return { gate: decided, experiments: moved };
  });
}

async function applyGateEffects(
  trx: Trx,
  caller: Caller,
  gate: Gate,
  decision: GateDecisionValue,
  at: Date,
): Promise<Experiment[]> {
  const action = EXPERIMENT_EFFECT[gate.kind][decision];
  if (action === undefined) return [];
  const targets =
    gate.kind === "portfolio_review"
      ? await experiments.listExperiments(trx, gate.workspaceId, { portfolioGateId: gate.id, state: "proposed" })
      : gate.experimentId
        ? [await experiments.findExperiment(trx, gate.workspaceId, gate.experimentId, { forUpdate: true })].filter(
            (e): e is Experiment => e !== null,
          )
        : [];
  const moved: Experiment[] = [];
  for (const experiment of targets) {
    const move = applyTransition(experimentMachine, experiment.state, action, {
      launchGateApproved: gate.kind === "launch_approval" && gate.status === "approved",
      claimedBy: experiment.claimedBy,
    });
    const updated = await experiments.updateExperimentState(trx, experiment.id, move.from, move.to, { at });
    if (updated === null) throw new Error(`experiment ${experiment.id} changed state during a gate decision`);
    await audit.insertAuditEvent(trx, {
      workspaceId: gate.workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: move.events[0] ?? `experiment.${action}`,
      subjectType: "experiment",
      subjectId: experiment.id,
      before: { state: move.from },
      after: { state: move.to, gateId: gate.id, decision },
      requestId: caller.requestId,
    });
    moved.push(updated);
  }
  return moved;
}

/** Gates of the caller's workspace, newest first. */
export async function listGates(
  deps: RuntimeDeps,
  caller: Caller,
  filter: { status?: Gate["status"] | undefined; kind?: GateKind | undefined } & PageRequest,
): Promise<Page<Gate>> {
  return gates.listGates(deps.db, caller.principal.workspaceId, filter);
}

/** One gate, with the experiments it decides. @throws DomainError `not_found`. */
export async function getGate(
  deps: RuntimeDeps,
  caller: Caller,
  gateId: string,
): Promise<{ gate: Gate; experiments: readonly Experiment[] }> {
  const gate = await gates.findGate(deps.db, caller.principal.workspaceId, gateId);
  if (gate === null) throw new DomainError("not_found", `no gate "${gateId}" in this workspace`, { gate: gateId });
  const list =
    gate.kind === "portfolio_review"
      ? await experiments.listExperiments(deps.db, gate.workspaceId, { portfolioGateId: gate.id })
      : gate.experimentId
        ? [await experiments.findExperiment(deps.db, gate.workspaceId, gate.experimentId)].filter(
            (e): e is Experiment => e !== null,
          )
        : [];
  return { gate, experiments: list };
}
