/**
 * The one way an experiment changes state: the experiment machine's check,
 * the conditional UPDATE (compare-and-set on the state), the audit event, and
 * what the move puts in the outboxes (the gates it requests, with their emails
 * and webhooks, and the experiment's own webhook), all inside the caller's
 * transaction. People's requests, gate decisions, the outcome's wind-down and
 * the worker's automatic decisions all come through here.
 */
import {
  applyTransition,
  type BuildReport,
  type Experiment,
  type ExperimentAction,
  type ExperimentContext,
  type ExperimentState,
  experimentMachine,
  type Gate,
  type GateKind,
  isOutcomeClosed,
  type Outcome,
  roleMay,
} from "@outcome-runtime/core";
import { audit, experiments, signals, type Trx } from "@outcome-runtime/db";
import { auditActor, type Caller } from "./context";
import { flagsOf } from "./flags/flag-access";
import { requestFlagRollout } from "./flags/rollouts";
import { ensurePendingGate } from "./open-gate";
import { stateChanged } from "./state-conflict";

export interface ExperimentMove {
  /** The experiment as read by the caller (locked by it when it must not lose a race). */
  readonly experiment: Experiment;
  /** Its outcome: named by the machine's closed-outcome rule, and the owner of the gates the move opens. */
  readonly outcome: Outcome;
  readonly action: ExperimentAction;
  /** What the action's guards read besides the actor, the outcome and the holder, which are filled in here. */
  readonly context?: Pick<ExperimentContext, "claimedBy" | "builder" | "forbiddenPathsTouched" | "launchGateApproved">;
  /** Columns the move sets with the state: the builder (claim, release) and the build report. */
  readonly patch?: { readonly claimedBy?: string | null; readonly build?: BuildReport };
  /** Facts for the audit event's `after`, besides the new state. */
  readonly facts?: Readonly<Record<string, unknown>>;
  /**
   * The context of the gates the move requests (an analysis review says why it
   * opened). Without it no gate is opened.
   */
  readonly gateContext?: Readonly<Record<string, unknown>>;
  /**
   * Put the `experiment.<new state>` webhook in the outbox (its data: the
   * experiment and the audit event's `after`), about the look (or failed poll)
   * at `ts`, which names its dedupe key.
   */
  readonly webhook?: { readonly ts: Date };
}

export interface ExperimentMoved {
  /** The experiment in its new state (unchanged when the move led back to the same state). */
  readonly experiment: Experiment;
  readonly from: ExperimentState;
  readonly to: ExperimentState;
  /** False when the machine's row leads back to the same state (a builder claiming again): nothing was written. */
  readonly changed: boolean;
  /** The gates the move requested, opened or joined. */
  readonly gates: readonly Gate[];
  /** The webhook outbox row, when one was asked for. */
  readonly webhookId: string | null;
}

/** Gates that domain events ask for, e.g. `gate.launch_approval.requested`. */
function requestedGates(events: readonly string[]): GateKind[] {
  return events.flatMap((e) => {
    const m = /^gate\.(portfolio_review|launch_approval|analysis_review)\.requested$/.exec(e);
    return m?.[1] ? [m[1] as GateKind] : [];
  });
}

/**
 * Move an experiment inside `trx`: check the action with the experiment
 * machine (the closed-outcome rule, the claim rules, every guard), move it
 * with `UPDATE … WHERE state = <from>`, write the audit event (action: the
 * move's first event, actor the caller; `before: { state }`, `after: { state,
 * ...facts }`), open the gates the move requests when `gateContext` is given
 * (none on a closed outcome unless the runtime itself moved it: a person
 * pausing there waits for nobody), put the webhook in the outbox when asked, and,
 * when the outcome has a flag provider, the split it should serve now
 * (`requestFlagRollout`; the launch's `launched_at` then waits for the
 * provider's confirmation).
 *
 * @throws what `applyTransition` throws: `illegal_transition`, a guard's code
 *   (`outcome_closed`, `already_claimed`, `claim_required`, `not_claimant`,
 *   `forbidden_paths_touched`, `launch_gate_not_approved`, `forbidden`).
 * @throws StateChangedError (`conflict`, naming the winning change) when the
 *   experiment left `from` between the caller's read and this UPDATE.
 */
export async function moveExperiment(
  trx: Trx,
  caller: Caller,
  at: Date,
  move: ExperimentMove,
): Promise<ExperimentMoved> {
  const { experiment, outcome, action } = move;
  const transition = applyTransition(experimentMachine, experiment.state, action, {
    ...move.context,
    actor: caller.principal,
    key: experiment.key,
    heldBy: experiment.claimedBy,
    outcome: { slug: outcome.slug, state: outcome.state },
  });
  if (transition.to === transition.from) {
    return { experiment, from: transition.from, to: transition.to, changed: false, gates: [], webhookId: null };
  }
  const updated = await experiments.updateExperimentState(trx, experiment.id, transition.from, transition.to, {
    at,
    ...move.patch,
    // With a flag provider the launch counts from the provider's confirmation (the rollout sets it).
    deferLaunch: flagsOf(outcome) !== null,
  });
  if (updated === null) {
    const now = await experiments.findExperimentById(trx, experiment.id);
    throw await stateChanged(
      trx,
      { type: "experiment", id: experiment.id, workspaceId: experiment.workspaceId, name: experiment.key },
      transition.from,
      now?.state ?? "gone",
    );
  }
  // The split the provider should serve now, in the same transaction as the move (the flag outbox).
  const rollout = await requestFlagRollout(trx, outcome, updated, transition.from, transition.to, at);
  const after = {
    state: transition.to,
    ...move.facts,
    ...(rollout === null ? {} : { flag: { key: rollout.flagKey, weights: rollout.desired, version: rollout.version } }),
  };
  await audit.insertAuditEvent(trx, {
    workspaceId: experiment.workspaceId,
    actor: auditActor(caller),
    channel: caller.channel,
    action: transition.events[0] ?? `experiment.${action}`,
    subjectType: "experiment",
    subjectId: experiment.id,
    before: { state: transition.from },
    after,
    requestId: caller.requestId,
  });
  const gates: Gate[] = [];
  // No gate opens under an outcome that is over, unless the mover may act there (the worker's analyses).
  const closed =
    isOutcomeClosed(outcome.state) && !roleMay(caller.principal.role, "experiment.move_under_closed_outcome");
  if (move.gateContext !== undefined && !closed) {
    for (const kind of requestedGates(transition.events)) {
      const { gate } = await ensurePendingGate(trx, caller, outcome, kind, experiment.id, at, move.gateContext);
      gates.push(gate);
    }
  }
  const webhookId =
    move.webhook === undefined
      ? null
      : await signals.enqueueWebhook(trx, {
          workspaceId: experiment.workspaceId,
          eventType: `experiment.${transition.to}`,
          dedupeKey: `experiment.${transition.to}:${experiment.id}:${move.webhook.ts.toISOString()}`,
          payload: {
            type: `experiment.${transition.to}`,
            created_at: at.toISOString(),
            data: {
              experiment: { id: experiment.id, key: experiment.key, outcome: outcome.slug, state: transition.to },
              ...after,
            },
          },
        });
  return { experiment: updated, from: transition.from, to: transition.to, changed: true, gates, webhookId };
}
