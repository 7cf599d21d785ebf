/**
 * Deciding a gate: exactly once, by someone allowed to, with the experiment
 * moves the decision implies, all in one transaction.
 */
import {
  applyTransition,
  authorize,
  DEFAULT_WORKSPACE_SETTINGS,
  type DecisionOption,
  DomainError,
  dutiesWindowSeconds,
  dutiesWindowStart,
  type Experiment,
  type ExperimentAction,
  type ExperimentState,
  type Gate,
  type GateContextPackage,
  type GateKind,
  gateMachine,
  type Outcome,
  separationOfDutiesConflict,
} from "@outcome-runtime/core";
import {
  audit,
  experiments,
  gates,
  outcomes,
  type Page,
  type PageRequest,
  type Trx,
  workspaces,
} from "@outcome-runtime/db";
import { formatDuration, formatUtc } from "@outcome-runtime/notify";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { buildGateContext, evidenceOf, type GateLinks } from "./gate-context";
import { recordGateClosed } from "./gate-events";
import { writeLearningForDecision } from "./learnings";
import { moveExperiment } from "./move-experiment";
import { moveOutcome } from "./move-outcome";

/** The decisions each gate kind accepts, and the gate status each leads to. */
export const GATE_DECISIONS = {
  portfolio_review: { approve: "approved", reject: "rejected" },
  launch_approval: { approve: "approved", reject: "rejected" },
  analysis_review: {
    ship: "approved",
    iterate: "approved",
    extend: "approved",
    resume: "approved",
    roll_back: "rejected",
  },
  agent_request: { approve: "approved", reject: "rejected" },
  achievement_review: { approve: "approved", reject: "rejected" },
} as const satisfies Record<GateKind, Record<string, "approved" | "rejected">>;

export type GateDecisionValue = "approve" | "reject" | "ship" | "iterate" | "extend" | "resume" | "roll_back";

/** Every decision value any gate takes. */
export const ALL_GATE_DECISIONS: readonly GateDecisionValue[] = [
  "approve",
  "reject",
  "ship",
  "iterate",
  "extend",
  "resume",
  "roll_back",
];

/** The experiment action a decision applies, per gate kind. */
const EXPERIMENT_EFFECT: Record<GateKind, Partial<Record<GateDecisionValue, ExperimentAction>>> = {
  portfolio_review: { approve: "approve", reject: "reject" },
  launch_approval: { approve: "launch", reject: "rework" },
  analysis_review: { ship: "ship", iterate: "iterate", extend: "extend", resume: "resume", roll_back: "roll_back" },
  // An answer moves nothing: the agent reads it with get_gate_status and acts on it.
  agent_request: {},
  // Moves the outcome, not an experiment (see applyOutcomeEffect).
  achievement_review: {},
};

const OPTION_TEXT: Record<GateKind, Partial<Record<GateDecisionValue, Omit<DecisionOption, "decision">>>> = {
  portfolio_review: {
    approve: { label: "Approve", effect: "the approved hypotheses go to be built", tone: "primary" },
    reject: { label: "Reject all", effect: "every hypothesis of this review is rejected", tone: "danger" },
  },
  launch_approval: {
    approve: { label: "Launch", effect: "traffic starts flowing to the experiment's arms", tone: "primary" },
    reject: { label: "Send back", effect: "the experiment goes back to its builder for rework", tone: "danger" },
  },
  analysis_review: {
    ship: { label: "Ship", effect: "the treatment is shipped and the experiment concludes", tone: "primary" },
    iterate: {
      label: "Iterate",
      effect: "the experiment concludes and its learning seeds a next version",
      tone: "neutral",
    },
    extend: {
      label: "Extend",
      effect: "the experiment keeps running and is analysed again as data arrives",
      tone: "neutral",
    },
    resume: { label: "Resume", effect: "traffic flows to the paused experiment again", tone: "primary" },
    roll_back: {
      label: "Roll back",
      effect: "the treatment is switched off and the experiment concludes",
      tone: "danger",
    },
  },
  agent_request: {
    approve: { label: "Yes", effect: "the agent is told yes, with your reason", tone: "primary" },
    reject: { label: "No", effect: "the agent is told no, with your reason", tone: "danger" },
  },
  achievement_review: {
    approve: {
      label: "Confirm achieved",
      effect: "the outcome is marked achieved and closes; it can be reopened",
      tone: "primary",
    },
    reject: {
      label: "Not yet",
      effect: "the outcome stays active; you are asked again once the target has held for another target.sustain",
      tone: "neutral",
    },
  },
};

/**
 * The decisions a gate takes now, with labels. An analysis review of an
 * experiment in `analysing` takes ship, iterate, extend and roll_back; of a
 * `paused` one (kill-switch, guardrail harm, a manual pause) resume and
 * roll_back. Empty once the gate is decided or its experiment moved on.
 */
export function decisionOptions(
  gate: Pick<Gate, "kind" | "status">,
  experimentState: ExperimentState | null,
): DecisionOption[] {
  if (gate.status !== "pending") return [];
  let values = Object.keys(GATE_DECISIONS[gate.kind]) as GateDecisionValue[];
  if (gate.kind === "analysis_review") {
    values =
      experimentState === "analysing"
        ? ["ship", "iterate", "extend", "roll_back"]
        : experimentState === "paused"
          ? ["resume", "roll_back"]
          : [];
  } else if (gate.kind === "launch_approval" && experimentState !== "built") {
    values = [];
  }
  return values.map((decision) => ({
    decision,
    ...(OPTION_TEXT[gate.kind][decision] as Omit<DecisionOption, "decision">),
  }));
}

/** The audit action of a decision refused because the gate or its experiment moved on. */
export const STALE_DECISION_ACTION = "gate.decision_rejected_stale";

/**
 * Why a decision came too late: the gate was decided (by someone else, or by
 * this caller's own earlier attempt) or expired, its outcome closed, or its
 * experiment left the state the gate was opened to decide.
 */
type StaleReason = "decided" | "expired" | "outcome_closed" | "experiment_moved_on";

interface StaleRefusal {
  readonly gateId: string;
  readonly reason: StaleReason;
  readonly experimentState: ExperimentState | null;
  readonly detail: string;
}

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
  /**
   * Portfolio review only: a decision per hypothesis (experiment id →
   * `approve` | `reject`); hypotheses left out take the gate's decision. Lets a
   * PM approve some hypotheses and reject the others in one decision.
   */
  readonly hypotheses?: Readonly<Record<string, "approve" | "reject">> | undefined;
  /** Extra facts for the audit event (e.g. the email link used). */
  readonly via?: Readonly<Record<string, unknown>> | undefined;
}

export interface DecideGateResult {
  readonly gate: Gate;
  /** Experiments the decision moved, in their new state. */
  readonly experiments: readonly Experiment[];
  /** The learning written when the decision concluded an experiment. */
  readonly learningId: string | null;
}

/**
 * Decide a pending gate. One conditional `UPDATE … WHERE status = 'pending'
 * RETURNING` picks the single winner among concurrent deciders; the gate's
 * audit event and the experiment moves it implies commit with it or not at all.
 *
 * Effects: `portfolio_review` approve/reject moves every proposed experiment of
 * the gate to approved/rejected (or each as `input.hypotheses` says);
 * `launch_approval` approve launches the experiment (running), reject sends it
 * back to building; `analysis_review` ship/iterate/extend/resume/roll_back
 * apply the action of that name, and a concluding decision (ship, iterate,
 * roll_back) writes the experiment's learning; `achievement_review` approve
 * marks the outcome achieved (reject leaves it active). In the same transaction every
 * email link of the gate dies, its unsent emails are cancelled and its
 * `gate.decided` webhook is recorded.
 *
 * @throws DomainError `forbidden` or `agents_cannot_decide` unless the caller
 *   may `gate.decide` (checked first); `not_found`; `invalid_decision` for a decision the gate
 *   kind does not take, or not in the experiment's current state (e.g. `ship`
 *   of a paused experiment), or per-hypothesis decisions that do not fit;
 *   `agents_cannot_decide` / `gate_not_assignee`; `separation_of_duties` when
 *   the caller approves a launch of an outcome they revised within the launch
 *   gate's SLA (see checkSeparationOfDuties); GateAlreadyDecidedError
 *   (`gate_already_decided`, the winning decision in `details.decision`) when
 *   the gate is no longer pending; `outcome_closed` when its outcome closed;
 *   `illegal_transition` when the decision fitted the gate when it opened but
 *   its experiment has moved on since (e.g. `resume` of a pause's review after
 *   the experiment went to analysis), or the gate takes no decision now. Each
 *   of these stale refusals is audited as `gate.decision_rejected_stale`, at
 *   most once per (gate, actor, channel, attempted decision), unless the call
 *   runs inside a caller's transaction (which rolls back).
 */
export async function decideGate(
  deps: RuntimeDeps,
  caller: Caller,
  gateId: string,
  input: DecideGateInput,
): Promise<DecideGateResult> {
  authorize(caller, "gate.decide");
  // Set just before a refusal for staleness is thrown; audited once the refused transaction rolled back.
  const refusal: { stale?: StaleRefusal } = {};
  const stale = (reason: StaleReason, error: DomainError, experimentState: ExperimentState | null = null) => {
    refusal.stale = { gateId, reason, experimentState, detail: error.message };
    return error;
  };
  try {
    return await decide(deps, caller, gateId, input, stale);
  } catch (error) {
    // Inside a caller's transaction (an email link's) the audit would roll back with it: that caller's refusal page
    // is its record. On our own connection, a failure to audit fails the request (503 on a lost connection), and
    // the client's retry writes it.
    if (refusal.stale !== undefined && !deps.db.isTransaction) {
      await auditStaleDecision(deps, caller, refusal.stale, input.decision);
    }
    throw error;
  }
}

async function decide(
  deps: RuntimeDeps,
  caller: Caller,
  gateId: string,
  input: DecideGateInput,
  stale: (reason: StaleReason, error: DomainError, experimentState?: ExperimentState | null) => DomainError,
): Promise<DecideGateResult> {
  const workspaceId = caller.principal.workspaceId;
  return inTransaction(deps.db, async (trx) => {
    const seen = await gates.findGate(trx, workspaceId, gateId);
    if (seen === null) throw new DomainError("not_found", `no gate "${gateId}" in this workspace`, { gate: gateId });
    const allowed = GATE_DECISIONS[seen.kind] as Record<string, "approved" | "rejected">;
    const status = allowed[input.decision];
    if (status === undefined) {
      throw new DomainError(
        "invalid_decision",
        `a ${seen.kind} gate takes ${Object.keys(allowed).join(" or ")}, not "${input.decision}"`,
        { field: "decision", allowed: Object.keys(allowed) },
      );
    }
    if (seen.status !== "pending") {
      throw stale(seen.status === "expired" ? "expired" : "decided", new GateAlreadyDecidedError(seen));
    }
    // Lock the outcome first, as proposals do: a hypothesis joining this gate
    // either commits before the decision (and is decided with it) or finds
    // the gate decided and opens a new one. Never both, never neither.
    const outcome = await outcomes.findOutcome(trx, workspaceId, seen.outcomeId, { forUpdate: true });
    if (outcome === null)
      throw new DomainError("not_found", `the outcome of gate ${seen.id} is gone`, { gate: seen.id });
    // Every decider of the gate waits on that lock: read the gate again, so that the loser of a race is told who
    // won (409 with the winning decision) instead of judging the winner's effects (an experiment already launched)
    // against its stale copy of the gate.
    const gate = (await gates.findGate(trx, workspaceId, gateId)) ?? seen;
    if (gate.status !== "pending") {
      throw stale(gate.status === "expired" ? "expired" : "decided", new GateAlreadyDecidedError(gate));
    }
    if (outcome.state !== "active" && outcome.state !== "draft") {
      throw stale(
        "outcome_closed",
        new DomainError("outcome_closed", `outcome ${outcome.slug} is ${outcome.state}; its gates are closed`, {
          state: outcome.state,
        }),
      );
    }
    // Who may decide (and that the gate is pending) is the gate machine's rule.
    applyTransition(gateMachine, gate.status, status === "approved" ? "approve" : "reject", {
      actor: caller.principal,
      assignees: gate.assignees,
      backup: gate.backup,
      escalatedTo: gate.escalatedTo,
    });
    if (gate.experimentId !== null) {
      const experiment = await experiments.findExperiment(trx, workspaceId, gate.experimentId);
      const state = experiment?.state ?? null;
      const options = decisionOptions(gate, state).map((o) => o.decision);
      if (!options.includes(input.decision)) {
        const openedFor = openedForState(gate);
        const offeredAtOpening =
          openedFor !== null && decisionOptions(gate, openedFor).some((o) => o.decision === input.decision);
        if (options.length === 0 || (offeredAtOpening && state !== openedFor)) {
          // The decision fitted the gate when it opened; the experiment has moved on since (a pause, an analysis,
          // a conclusion): the decision is stale, not malformed.
          throw stale(
            "experiment_moved_on",
            new DomainError(
              "illegal_transition",
              options.length === 0
                ? `the experiment of this gate is ${state ?? "gone"}; the gate takes no decision now`
                : `the experiment of this gate is now ${state}; the gate takes ${options.join(" or ")} now, not "${input.decision}"`,
              { gateId: gate.id, status: gate.status, allowed: options, state },
            ),
            state,
          );
        }
        throw new DomainError(
          "invalid_decision",
          options.length === 0
            ? `the experiment of this gate is ${experiment?.state ?? "gone"}; the gate takes no decision now`
            : `the experiment is ${experiment?.state}; this gate takes ${options.join(" or ")} now, not "${input.decision}"`,
          { field: "decision", allowed: options, state: experiment?.state ?? null },
        );
      }
    }
    const at = nowOf(deps);
    await checkSeparationOfDuties(trx, caller, gate, outcome, input.decision, at);
    const detail = await portfolioDetail(trx, gate, input);

    const decided = await gates.decidePendingGate(trx, gate.id, {
      status,
      decision: input.decision,
      reason: input.reason ?? null,
      decidedBy: caller.principal.name,
      channel: caller.channel,
      at,
      detail,
    });
    if (decided === null) {
      // Someone else's decision committed between our read and our update.
      const winner = await gates.findGate(trx, workspaceId, gate.id);
      throw stale(winner?.status === "expired" ? "expired" : "decided", new GateAlreadyDecidedError(winner ?? gate));
    }
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "gate.decided",
      subjectType: "gate",
      subjectId: gate.id,
      before: { status: "pending" },
      after: {
        status,
        decision: input.decision,
        reason: input.reason ?? null,
        ...(detail ? { detail } : {}),
        ...(input.via ? { via: input.via } : {}),
      },
      requestId: caller.requestId,
    });
    const moved = await applyGateEffects(trx, caller, decided, outcome, input.decision, at, detail);
    if (decided.kind === "achievement_review" && status === "approved") {
      await moveOutcome(trx, caller, at, {
        outcome,
        action: "achieve",
        context: { targetMet: true },
        facts: { gateId: decided.id, ...achievedFacts(decided.context) },
      });
    }
    await recordGateClosed(trx, decided, outcome, at);
    let learningId: string | null = null;
    const concluded = moved.find((e) => e.state === "shipped" || e.state === "rolled_back" || e.state === "iterated");
    if (gate.kind === "analysis_review" && concluded !== undefined) {
      learningId = await writeLearningForDecision(trx, { gate: decided, outcome, experiment: concluded, at });
    }
    return { gate: decided, experiments: moved, learningId };
  });
}

/**
 * Separation of duties (workspace setting `separationOfDuties`, on by
 * default): a person who revised the gate's outcome (revision 2 or later)
 * within the launch gate's SLA (at least 48 hours) before it opened, or since,
 * may not be the one who approves the launch; another assignee, the backup or
 * an admin does. Their `reject` is allowed, and so is any decision of another
 * gate kind. Admins are bound too. Applies on every channel (API, dashboard,
 * email link), since every decision comes through here. Runs under the
 * outcome's row lock, which a revision also takes: a revision and a decision
 * never pass each other.
 *
 * @throws DomainError `separation_of_duties` naming who revised the outcome,
 *   which revision and when, and who else may approve.
 */
async function checkSeparationOfDuties(
  trx: Trx,
  caller: Caller,
  gate: Gate,
  outcome: Outcome,
  decision: GateDecisionValue,
  now: Date,
): Promise<void> {
  if (gate.kind !== "launch_approval" || decision !== "approve") return;
  const workspace = await workspaces.findWorkspace(trx, gate.workspaceId);
  if (!(workspace?.settings ?? DEFAULT_WORKSPACE_SETTINGS).separationOfDuties) return;
  const revisions = await outcomes.listRevisionAuthorsSince(trx, outcome.id, dutiesWindowStart(gate, now));
  const conflict = separationOfDutiesConflict({ actor: caller.principal, gate, decision, revisions, now });
  if (conflict === null) return;
  const me = caller.principal.name.trim().toLowerCase();
  const others = [
    ...new Set(
      [...gate.assignees, gate.backup, gate.escalatedTo]
        .filter((p): p is string => p !== null && p.trim().toLowerCase() !== me)
        .map((p) => p.toLowerCase()),
    ),
  ];
  const revisedAt = conflict.revisedAt.toISOString();
  const windowSeconds = dutiesWindowSeconds(gate);
  throw new DomainError(
    "separation_of_duties",
    `${conflict.revisedBy} revised outcome ${outcome.slug} (revision ${conflict.revision}) at ${formatUtc(revisedAt)}, ` +
      `less than ${formatDuration(windowSeconds)} before this launch gate opened or since: whoever revises an outcome ` +
      `may not alone approve a launch under it. ${others.length > 0 ? `Another assignee (${others.join(", ")}) or an admin` : `An admin other than ${caller.principal.name}`} ` +
      `must approve; you may still reject. For a one-person team an admin can set separationOfDuties to false ` +
      `in the workspace settings.`,
    {
      field: "decision",
      revisedBy: conflict.revisedBy,
      revision: conflict.revision,
      revisedAt,
      windowSeconds,
      otherApprovers: others,
      setting: "separationOfDuties",
    },
  );
}

/**
 * The experiment state a gate was opened to decide: `built` for a launch
 * approval; for an analysis review `paused` when a pause (kill-switch,
 * guardrail, by hand) opened it, else `analysing`. Null for gates of no
 * experiment.
 */
function openedForState(gate: Gate): ExperimentState | null {
  if (gate.kind === "launch_approval") return "built";
  if (gate.kind === "analysis_review") return gate.context.action === "pause" ? "paused" : "analysing";
  return null;
}

/**
 * Audit a refused stale decision (`gate.decision_rejected_stale`): who tried
 * which decision on which gate, through which channel, the gate's status then
 * and why it was stale. In its own short transaction with the gate row locked,
 * so that of a storm of refusals at most one row is written per (gate, actor,
 * channel, attempted decision).
 */
async function auditStaleDecision(
  deps: RuntimeDeps,
  caller: Caller,
  refusal: StaleRefusal,
  attemptedDecision: GateDecisionValue,
): Promise<void> {
  const workspaceId = caller.principal.workspaceId;
  await inTransaction(deps.db, async (trx) => {
    const gate = await gates.findGateById(trx, refusal.gateId, { forUpdate: true });
    if (gate === null || gate.workspaceId !== workspaceId) return;
    const earlier = await audit.listAuditEventsPage(trx, workspaceId, {
      subjectType: "gate",
      subjectId: gate.id,
      action: STALE_DECISION_ACTION,
      actorName: caller.principal.name,
      channel: caller.channel,
      limit: 1000,
    });
    const seen = earlier.items.some(
      (e) =>
        e.actor?.id === caller.principal.id &&
        (e.after as { attemptedDecision?: unknown } | null)?.attemptedDecision === attemptedDecision,
    );
    if (seen) return;
    const experiment =
      gate.experimentId === null ? null : await experiments.findExperiment(trx, workspaceId, gate.experimentId);
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: STALE_DECISION_ACTION,
      subjectType: "gate",
      subjectId: gate.id,
      before: { status: gate.status },
      after: {
        attemptedDecision,
        reason: refusal.reason,
        gateStatus: gate.status,
        experimentState: experiment?.state ?? refusal.experimentState,
        winningDecision: gate.decision
          ? {
              decision: gate.decision.decision,
              decidedBy: gate.decision.decidedBy,
              channel: gate.decision.channel,
              decidedAt: gate.decision.decidedAt.toISOString(),
            }
          : null,
        detail: refusal.detail,
      },
      requestId: caller.requestId,
    });
  });
}

/**
 * The per-hypothesis split of a portfolio decision: `{ approved, rejected }`
 * experiment ids, or null when every hypothesis takes the gate's decision.
 *
 * @throws DomainError `invalid_decision` for per-hypothesis decisions on another
 *   gate kind, with a gate-wide `reject`, naming an experiment not in the review,
 *   or rejecting every hypothesis under `approve`.
 */
async function portfolioDetail(
  trx: Trx,
  gate: Gate,
  input: DecideGateInput,
): Promise<{ approved: string[]; rejected: string[] } | null> {
  const items = input.hypotheses;
  if (items === undefined || Object.keys(items).length === 0) return null;
  if (gate.kind !== "portfolio_review") {
    throw new DomainError("invalid_decision", `only a portfolio_review takes per-hypothesis decisions`, {
      field: "hypotheses",
    });
  }
  if (input.decision !== "approve") {
    throw new DomainError(
      "invalid_decision",
      `per-hypothesis decisions go with "approve" (approve some, reject the others); "reject" rejects them all`,
      { field: "hypotheses" },
    );
  }
  const proposed = await experiments.listExperiments(trx, gate.workspaceId, {
    portfolioGateId: gate.id,
    state: "proposed",
  });
  const ids = new Set(proposed.map((e) => e.id));
  const unknown = Object.keys(items).filter((id) => !ids.has(id));
  if (unknown.length > 0) {
    throw new DomainError(
      "invalid_decision",
      `not proposed in this review: ${unknown.join(", ")}; the review holds ${[...ids].join(", ") || "nothing"}`,
      { field: "hypotheses", unknown },
    );
  }
  const approved = proposed.filter((e) => items[e.id] !== "reject").map((e) => e.id);
  const rejected = proposed.filter((e) => items[e.id] === "reject").map((e) => e.id);
  if (approved.length === 0) {
    throw new DomainError("invalid_decision", `every hypothesis is rejected: decide "reject" instead of "approve"`, {
      field: "hypotheses",
    });
  }
  return { approved, rejected };
}

/** The facts of an achievement gate's evidence worth keeping on the outcome's `outcome.achieved` event. */
function achievedFacts(context: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const e = evidenceOf(context);
  return e === null
    ? {}
    : { value: e.latest, goal: e.goal, bound: e.bound, windowStart: e.windowStart, windowEnd: e.windowEnd };
}

async function applyGateEffects(
  trx: Trx,
  caller: Caller,
  gate: Gate,
  outcome: Outcome,
  decision: GateDecisionValue,
  at: Date,
  detail: { approved: string[]; rejected: string[] } | null,
): Promise<Experiment[]> {
  const gateAction = EXPERIMENT_EFFECT[gate.kind][decision];
  if (gateAction === undefined) return [];
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
    const action: ExperimentAction = detail?.rejected.includes(experiment.id) ? "reject" : gateAction;
    const result = await moveExperiment(trx, caller, at, {
      experiment,
      outcome,
      action,
      context: { launchGateApproved: gate.kind === "launch_approval" && gate.status === "approved" },
      facts: { gateId: gate.id, decision: action === gateAction ? decision : "reject" },
    });
    moved.push(result.experiment);
  }
  return moved;
}

/**
 * Gates of the caller's workspace, newest first. `assignee` keeps the gates a
 * person may decide (assignee, backup or escalation target; `me` is the
 * caller): with `status: "pending"` that is their inbox.
 *
 * @throws DomainError `forbidden` (`gate.read`).
 */
export async function listGates(
  deps: RuntimeDeps,
  caller: Caller,
  filter: {
    status?: Gate["status"] | undefined;
    kind?: GateKind | undefined;
    assignee?: string | undefined;
    outcomeId?: string | undefined;
    experimentId?: string | undefined;
  } & PageRequest,
): Promise<Page<Gate>> {
  authorize(caller, "gate.read");
  const assignee = filter.assignee === "me" ? caller.principal.name : filter.assignee;
  return gates.listGates(deps.db, caller.principal.workspaceId, { ...filter, assignee });
}

export interface GateDetail {
  readonly gate: Gate;
  /** The experiments the gate decides. */
  readonly experiments: readonly Experiment[];
  /** What the person deciding needs to see (the same package the emails show). */
  readonly contextPackage: GateContextPackage;
  /** The decisions the gate takes now (empty once decided). */
  readonly options: readonly DecisionOption[];
}

/**
 * One gate with its context package and the decisions it takes now.
 * @throws DomainError `forbidden` (`gate.read`), `not_found`.
 */
export async function getGate(
  deps: RuntimeDeps,
  caller: Caller,
  gateId: string,
  links: GateLinks = { publicUrl: "" },
): Promise<GateDetail> {
  authorize(caller, "gate.read");
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
  const contextPackage = await buildGateContext(deps.db, gate, links);
  const state = gate.experimentId ? (list[0]?.state ?? null) : null;
  return { gate, experiments: list, contextPackage, options: decisionOptions(gate, state) };
}
