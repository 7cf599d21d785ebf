/**
 * Gate lifecycle (DESIGN §4): `pending → approved | rejected | expired`, and
 * who may decide a gate.
 */
import type { GuardVerdict, MachineDef } from "./machine";
import { type Actor, roleMay, roleRefusal, rolesFor } from "./permissions";

// The roles live with the permissions table; re-exported here, where the rest of core has always found them.
export { type Actor, type ActorRole, ROLES, type Role } from "./permissions";

export const GATE_STATES = ["pending", "approved", "rejected", "expired"] as const;
export type GateState = (typeof GATE_STATES)[number];

export const GATE_ACTIONS = ["approve", "reject", "expire"] as const;
export type GateAction = (typeof GATE_ACTIONS)[number];

export const GATE_KINDS = [
  "portfolio_review",
  "launch_approval",
  "analysis_review",
  "agent_request",
  "achievement_review",
] as const;
export type GateKind = (typeof GATE_KINDS)[number];

/** Where a decision came from. */
export const DECISION_CHANNELS = ["web", "email", "mcp", "api", "system"] as const;
export type DecisionChannel = (typeof DECISION_CHANNELS)[number];

/** The facts a gate decision guard reads. */
export interface GateContext {
  readonly actor?: Actor;
  readonly assignees?: readonly string[];
  readonly backup?: string | null;
  /** Whom the gate was escalated to when its SLA expired (the backup, or the outcome's owner). */
  readonly escalatedTo?: string | null;
}

/**
 * Who may decide a gate. AI proposes, humans decide: the roles come from the
 * permissions table (`gate.decide`: never an agent, never the worker). Of
 * those, a role with `gate.decide_any` (admins) decides any gate; the others
 * only gates they are an assignee, the backup or the escalation target of
 * (emails compared case-insensitively); a gate with no assignees only a role
 * with `gate.decide_unassigned` (approvers and admins).
 */
export function mayDecideGate(context: GateContext): GuardVerdict {
  const actor = context.actor;
  if (actor === undefined) return { code: "unauthenticated", message: "a gate decision needs an actor" };
  const refusal = roleRefusal(actor, "gate.decide");
  if (refusal !== null) return refusal;
  if (roleMay(actor.role, "gate.decide_any")) return null;
  const people = [
    ...new Set(
      [
        ...(context.assignees ?? []),
        ...(context.backup ? [context.backup] : []),
        ...(context.escalatedTo ? [context.escalatedTo] : []),
      ].map((e) => e.toLowerCase()),
    ),
  ];
  if (people.length === 0) {
    return roleMay(actor.role, "gate.decide_unassigned")
      ? null
      : {
          code: "gate_not_assignee",
          message: `this gate has no assignees; only the ${rolesFor("gate.decide_unassigned").join(" and ")} roles may decide it`,
          details: { operation: "gate.decide_unassigned" },
        };
  }
  return people.includes(actor.name.toLowerCase())
    ? null
    : {
        code: "gate_not_assignee",
        message: `${actor.name} is not an assignee of this gate (assignees: ${people.join(", ")})`,
        details: { assignees: people, operation: "gate.decide_any" },
      };
}

export const gateMachine: MachineDef<GateState, GateAction, GateContext> = {
  name: "gate",
  states: GATE_STATES,
  actions: GATE_ACTIONS,
  final: ["approved", "rejected", "expired"],
  transitions: [
    { action: "approve", from: ["pending"], to: "approved", guard: mayDecideGate, events: ["gate.approved"] },
    { action: "reject", from: ["pending"], to: "rejected", guard: mayDecideGate, events: ["gate.rejected"] },
    { action: "expire", from: ["pending"], to: "expired", events: ["gate.expired"] },
  ],
};
