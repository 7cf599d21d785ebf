/**
 * Experiment lifecycle (DESIGN §4):
 * `proposed → approved | rejected → building → built → running ⇄ paused →
 * analysing → shipped | rolled_back | iterated`.
 */
import type { Actor } from "./gate.machine";
import type { GuardVerdict, MachineDef } from "./machine";
import { isOutcomeClosed, type OutcomeState } from "./outcome.machine";
import { roleMay } from "./permissions";

export const EXPERIMENT_STATES = [
  "proposed",
  "approved",
  "rejected",
  "building",
  "built",
  "running",
  "paused",
  "analysing",
  "shipped",
  "rolled_back",
  "iterated",
] as const;
export type ExperimentState = (typeof EXPERIMENT_STATES)[number];

export const EXPERIMENT_ACTIONS = [
  "approve",
  "reject",
  "claim",
  "release",
  "report_built",
  "launch",
  "rework",
  "pause",
  "resume",
  "analyse",
  "extend",
  "ship",
  "roll_back",
  "iterate",
] as const;
export type ExperimentAction = (typeof EXPERIMENT_ACTIONS)[number];

/** Facts the experiment guards read; the runtime fills in what an action needs. */
export interface ExperimentContext {
  /** Who builds the experiment after the action: for `claim` the one claiming it, otherwise its holder. */
  readonly claimedBy?: string | null;
  /** The experiment's key, named in refusals. */
  readonly key?: string;
  /** For `claim`: who holds the experiment now (null while nobody does). */
  readonly heldBy?: string | null;
  /** The experiment's outcome; a closed one takes nothing but a pause from people and agents. */
  readonly outcome?: { readonly slug: string; readonly state: OutcomeState };
  /** Changed paths of a reported build that match the outcome's `forbidden_paths`. */
  readonly forbiddenPathsTouched?: readonly string[];
  /** The experiment's `launch_approval` gate has been approved. */
  readonly launchGateApproved?: boolean;
  /** Who requests the action (absent for the system's own moves). */
  readonly actor?: Actor;
  /** For `report_built`: the name the builder claimed under, when it is not the actor's (an agent's own name). */
  readonly builder?: string;
}

/**
 * Actions a human or agent may request directly (the others come from gates).
 * Pausing is always allowed; sending traffic again (`resume`) is decided at the
 * analysis review a pause opens.
 */
export const DIRECT_EXPERIMENT_ACTIONS: readonly ExperimentAction[] = [
  "claim",
  "release",
  "report_built",
  "pause",
  "analyse",
];

/**
 * An experiment of a closed outcome (achieved, missed, abandoned) is only ever
 * paused by a person or an agent: nothing new starts under an outcome that is
 * over. A role with `experiment.move_under_closed_outcome` (the runtime's own
 * worker: the kill-switch, the analyses of an experiment still running when
 * its outcome closed) is not bound by it.
 */
function outcomeOpen(_state: ExperimentState, action: ExperimentAction, c: ExperimentContext): GuardVerdict {
  if (c.outcome === undefined || !isOutcomeClosed(c.outcome.state)) return null;
  if (action === "pause" || c.actor === undefined || roleMay(c.actor.role, "experiment.move_under_closed_outcome")) {
    return null;
  }
  return {
    code: "outcome_closed",
    message: `outcome ${c.outcome.slug} is ${c.outcome.state}; its experiments can only be paused`,
    details: { state: c.outcome.state, operation: "experiment.move_under_closed_outcome" },
  };
}

export const experimentMachine: MachineDef<ExperimentState, ExperimentAction, ExperimentContext> = {
  name: "experiment",
  states: EXPERIMENT_STATES,
  actions: EXPERIMENT_ACTIONS,
  final: ["rejected", "shipped", "rolled_back", "iterated"],
  guard: outcomeOpen,
  transitions: [
    { action: "approve", from: ["proposed"], to: "approved", events: ["experiment.approved"] },
    { action: "reject", from: ["proposed"], to: "rejected", events: ["experiment.rejected"] },
    {
      action: "claim",
      from: ["approved"],
      to: "building",
      guard: (c) =>
        typeof c.claimedBy === "string" && c.claimedBy.trim() !== ""
          ? null
          : { code: "claim_required", message: "say who is building the experiment (an agent or person name)" },
      events: ["experiment.claimed"],
    },
    {
      // Claiming again what one holds changes nothing (a retried claim); no two builders on one experiment.
      action: "claim",
      from: ["building"],
      to: "building",
      guard: (c) =>
        typeof c.claimedBy === "string" && c.claimedBy === c.heldBy
          ? null
          : {
              code: "already_claimed",
              message: `${c.key === undefined ? "the experiment" : `experiment ${c.key}`} is already being built by ${c.heldBy ?? "someone"}; pick another approved experiment, or ask them to release it`,
              details: { claimedBy: c.heldBy ?? null, state: "building" },
            },
      events: [],
    },
    { action: "release", from: ["building"], to: "approved", events: ["experiment.released"] },
    {
      action: "report_built",
      from: ["building"],
      to: "built",
      guard: (c) => {
        // Only the builder (or a role with `experiment.report_built_any`, admins) reports a build done.
        const builder = c.builder ?? c.actor?.name;
        if (c.actor && !roleMay(c.actor.role, "experiment.report_built_any") && builder !== c.claimedBy) {
          return {
            code: "not_claimant",
            message: `${builder} did not claim this experiment; ${c.claimedBy ?? "nobody"} is building it`,
            details: { claimedBy: c.claimedBy ?? null, operation: "experiment.report_built_any" },
          };
        }
        const touched = c.forbiddenPathsTouched ?? [];
        return touched.length === 0
          ? null
          : {
              code: "forbidden_paths_touched",
              message: `the change touches paths the outcome forbids: ${touched.join(", ")}`,
              details: { paths: [...touched] },
            };
      },
      events: ["experiment.built", "gate.launch_approval.requested"],
    },
    {
      action: "launch",
      from: ["built"],
      to: "running",
      guard: (c) =>
        c.launchGateApproved === true
          ? null
          : {
              code: "launch_gate_not_approved",
              message: "the launch_approval gate must be approved before traffic flows",
            },
      events: ["experiment.launched"],
    },
    {
      action: "rework",
      from: ["built"],
      to: "building",
      events: ["experiment.rework_requested"],
    },
    {
      action: "pause",
      from: ["running"],
      to: "paused",
      // A paused experiment waits for a person: resume it or roll it back.
      events: ["experiment.paused", "gate.analysis_review.requested"],
    },
    {
      action: "resume",
      from: ["paused"],
      to: "running",
      // Sending traffic again is a human decision (a pause may be the kill-switch's): a gate decision, so
      // only the roles that may decide gates resume.
      guard: (c) =>
        c.actor !== undefined && !roleMay(c.actor.role, "gate.decide")
          ? {
              code: "forbidden",
              message: "agents cannot resume an experiment; a person must decide to send traffic again",
            }
          : null,
      events: ["experiment.resumed"],
    },
    {
      action: "analyse",
      from: ["running", "paused"],
      to: "analysing",
      events: ["experiment.analysing", "gate.analysis_review.requested"],
    },
    { action: "extend", from: ["analysing"], to: "running", events: ["experiment.extended"] },
    { action: "ship", from: ["analysing"], to: "shipped", events: ["experiment.shipped", "experiment.concluded"] },
    {
      action: "roll_back",
      from: ["analysing", "paused"],
      to: "rolled_back",
      events: ["experiment.rolled_back", "experiment.concluded"],
    },
    { action: "iterate", from: ["analysing"], to: "iterated", events: ["experiment.iterated", "experiment.concluded"] },
  ],
};
