/**
 * Who may do what: one table, {@link PERMISSIONS}, maps every operation a
 * person, an agent or the worker can ask for to the roles that may do it and
 * the API-key scopes it needs. Every face asks it: each use case starts with
 * `authorize(caller, operation)`; the REST routes and the MCP tools name their
 * operation, so a refusal comes before any input is read (a route whose body
 * picks the operation leaves it to the use case); the CLI talks to the REST
 * API. Nothing else in the code base compares roles or picks scopes.
 *
 * Rules about one object (the assignees of a gate, the claimant of an
 * experiment, the owner of an outcome, separation of duties) stay with that
 * object in core; where such a rule lets a role pass it by (an admin decides
 * any gate), the role comes from a qualifier entry of this table, marked
 * `within` the operation it widens.
 *
 * docs/security.md ("Who can do what") shows the same matrix; a test keeps
 * the two equal.
 */
import type { ErrorCode } from "./error-codes";
import { DomainError } from "./errors";
import type { GuardVerdict } from "./machine";

/** The roles a key can have. A `viewer` is a person who reads what a member reads and changes nothing. */
export const ROLES = ["admin", "member", "approver", "viewer", "agent"] as const;
export type Role = (typeof ROLES)[number];

/**
 * Role of whoever acts: a person's or agent's API key role, or `system` for the
 * runtime's own worker (kill-switch, analyses), which holds no key.
 */
export type ActorRole = Role | "system";

/** Who is acting: the owner of an API key (a person's email or an agent's name), or the worker. */
export interface Actor {
  readonly id: string;
  readonly name: string;
  readonly role: ActorRole;
}

/**
 * What an API key may be used for, on top of its owner's role: `read` (every
 * read operation), `write` (the changes the role allows), `admin` (the
 * workspace's administration: keys, settings, secrets, export and import).
 */
export const API_KEY_SCOPES = ["read", "write", "admin"] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** Every role of the table: the five a key can have, and `system`, the runtime's own worker (it holds no key). */
export const ACTOR_ROLES: readonly ActorRole[] = ["admin", "member", "approver", "viewer", "agent", "system"];

/**
 * Whoever asks: an actor, with the scopes of the key it authenticated with.
 * Without `scopes` (the worker, an actor made in code) it has its role's
 * ({@link roleScopes}).
 */
export interface ScopedActor extends Actor {
  readonly scopes?: readonly ApiKeyScope[];
}

/**
 * The scopes of a person's dashboard session (a member signed in by email
 * link or single sign-on): every scope the member's role can hold, as a key
 * of that role would by default.
 */
export function memberSessionScopes(role: ActorRole): readonly ApiKeyScope[] {
  return ROLE_SCOPES[role];
}

/** The scopes each role's key can hold (see {@link roleScopes}). */
const ROLE_SCOPES: Readonly<Record<ActorRole, readonly ApiKeyScope[]>> = {
  admin: API_KEY_SCOPES,
  member: ["read", "write"],
  approver: ["read", "write"],
  viewer: ["read"],
  agent: ["read", "write"],
  system: ["read", "write"],
};

/** One row of the table. */
export interface Permission {
  /** What the operation does, as the docs list it (lowercase, no final stop). */
  readonly summary: string;
  /** The roles that may do it. */
  readonly roles: readonly ActorRole[];
  /** Every scope the caller's key needs, in the order a refusal names the first one missing. */
  readonly scopes: readonly ApiKeyScope[];
  /**
   * Set on a qualifier: the operation it widens, which is authorized first
   * (scopes included); the qualifier's roles may pass a per-object rule of it.
   */
  readonly within?: Operation;
  /** The refusal of a role that may not (code `forbidden` unless given); the worker gets a plain one. */
  readonly refusal?: { readonly code?: ErrorCode; readonly message: string };
}

/** Every role a key can have: the reads. */
const EVERYONE = ["admin", "member", "approver", "viewer", "agent"] as const satisfies readonly Role[];
/** Every role whose keys may write: the changes a person or an agent may make. */
const WRITERS = ["admin", "member", "approver", "agent"] as const satisfies readonly Role[];
/** The people who change things (a viewer reads only). */
const PEOPLE = ["admin", "member", "approver"] as const satisfies readonly Role[];
/**
 * The roles a person with a read-only role is told to ask an admin for, in
 * this order: the first that may do the operation.
 */
const ROLES_TO_ASK_FOR = ["member", "admin"] as const satisfies readonly Role[];
const ADMINS = ["admin"] as const satisfies readonly Role[];
const READ = ["read"] as const satisfies readonly ApiKeyScope[];
const WRITE = ["write"] as const satisfies readonly ApiKeyScope[];
const ADMIN = ["admin"] as const satisfies readonly ApiKeyScope[];
/** Changing the workspace's administration: `admin` and `write`, so a `read,admin` key inspects but changes nothing. */
const ADMIN_WRITE = ["admin", "write"] as const satisfies readonly ApiKeyScope[];

/** Every operation, in the table's order (the order the docs list them in). */
export const OPERATIONS = [
  "outcome.read",
  "outcome.validate",
  "outcome.draft",
  "outcome.apply",
  "outcome.revise_any",
  "outcome.activate",
  "outcome.abandon",
  "outcome.reopen",
  "portfolio.generate",
  "experiment.read",
  "experiment.propose",
  "experiment.claim",
  "experiment.release",
  "experiment.report_built",
  "experiment.report_built_any",
  "experiment.pause",
  "experiment.analyse",
  "experiment.move_under_closed_outcome",
  "experiment.poll",
  "gate.read",
  "gate.request",
  "gate.decide",
  "gate.decide_any",
  "gate.decide_unassigned",
  "learning.read",
  "audit.read",
  "usage.read",
  "settings.read",
  "settings.update",
  "secret.list",
  "secret.set",
  "secret.delete",
  "key.list",
  "key.create",
  "key.revoke",
  "member.list",
  "member.invite",
  "member.manage",
  "workspace.export",
  "workspace.import",
] as const;

/** An operation of the table, e.g. `gate.decide`. */
export type Operation = (typeof OPERATIONS)[number];

/**
 * The table: operation → roles and scopes. Reads need `read`; changes
 * `write`; the workspace's administration `admin` (and `write` to change it).
 * A qualifier (`within`) needs no scope of its own.
 */
export const PERMISSIONS: Readonly<Record<Operation, Permission>> = {
  "outcome.read": {
    summary: "read outcomes: list, detail, revisions, progress and signal series",
    roles: EVERYONE,
    scopes: READ,
  },
  "outcome.validate": {
    summary: "check an outcome file without storing it",
    roles: WRITERS,
    scopes: WRITE,
  },
  "outcome.draft": {
    summary: "draft an outcome.yaml from one sentence (may call the LLM)",
    roles: WRITERS,
    scopes: WRITE,
  },
  "outcome.apply": {
    summary: "create an outcome from outcome.yaml, or revise one you own",
    roles: PEOPLE,
    scopes: WRITE,
    // An agent that could rewrite its outcome could lift its own forbidden paths.
    refusal: { message: "agents cannot apply outcomes; a person applies outcome.yaml" },
  },
  "outcome.revise_any": {
    summary: "revise an outcome someone else owns",
    roles: ADMINS,
    scopes: [],
    within: "outcome.apply",
  },
  "outcome.activate": {
    summary: "activate a draft outcome (and propose its first portfolio)",
    roles: PEOPLE,
    scopes: WRITE,
    refusal: { message: "agents cannot activate outcomes" },
  },
  "outcome.abandon": {
    summary: "abandon an outcome (its gates expire, its running experiments pause)",
    roles: PEOPLE,
    scopes: WRITE,
    refusal: { message: "agents cannot abandon outcomes" },
  },
  "outcome.reopen": {
    summary: "reopen an achieved outcome: it is active again, its signal polled and its horizon checked",
    roles: PEOPLE,
    scopes: WRITE,
    refusal: { message: "agents cannot reopen outcomes" },
  },
  "portfolio.generate": {
    summary: "generate a portfolio of hypotheses for an active outcome (may call the LLM)",
    roles: PEOPLE,
    scopes: WRITE,
    refusal: { message: "agents cannot generate portfolios; they build approved experiments" },
  },
  "experiment.read": {
    summary: "read experiments: detail, brief, analyses, an outcome's experiments",
    roles: EVERYONE,
    scopes: READ,
  },
  "experiment.propose": {
    summary: "propose a hypothesis for an active outcome",
    roles: WRITERS,
    scopes: WRITE,
  },
  "experiment.claim": {
    summary: "claim an approved experiment to build it",
    roles: WRITERS,
    scopes: WRITE,
  },
  "experiment.release": {
    summary: "release the claim on an experiment being built",
    roles: WRITERS,
    scopes: WRITE,
  },
  "experiment.report_built": {
    summary: "report an experiment you claimed built (opens its launch gate)",
    roles: WRITERS,
    scopes: WRITE,
  },
  "experiment.report_built_any": {
    summary: "report an experiment someone else claimed built",
    roles: ADMINS,
    scopes: [],
    within: "experiment.report_built",
  },
  "experiment.pause": {
    summary: "pause a running experiment (opens its analysis review)",
    roles: [...WRITERS, "system"],
    scopes: WRITE,
  },
  "experiment.analyse": {
    summary: "stop a running or paused experiment for analysis (opens its analysis review)",
    roles: [...WRITERS, "system"],
    scopes: WRITE,
  },
  "experiment.move_under_closed_outcome": {
    summary:
      "move an experiment whose outcome is over (achieved, missed, abandoned) other than by pausing it, and open its review gate: the kill-switch and the analyses of an experiment still running when its outcome closed",
    roles: ["system"],
    scopes: [],
    within: "experiment.analyse",
  },
  "experiment.poll": {
    summary: "poll a running experiment's signal now",
    roles: WRITERS,
    scopes: WRITE,
  },
  "gate.read": {
    summary: "read gates, their context and the decisions they take",
    roles: EVERYONE,
    scopes: READ,
  },
  "gate.request": {
    summary: "ask a person a question about an experiment (opens an agent_request gate)",
    roles: WRITERS,
    scopes: WRITE,
  },
  "gate.decide": {
    summary: "decide a gate assigned to you (as an assignee, its backup or its escalation target), resumes included",
    roles: PEOPLE,
    scopes: WRITE,
    refusal: {
      code: "agents_cannot_decide",
      message: "agents cannot decide gates; ask a human with request_human_gate",
    },
  },
  "gate.decide_any": {
    summary: "decide a gate assigned to other people",
    roles: ADMINS,
    scopes: [],
    within: "gate.decide",
  },
  "gate.decide_unassigned": {
    summary: "decide a gate that has no assignees",
    roles: ["admin", "approver"],
    scopes: [],
    within: "gate.decide",
  },
  "learning.read": {
    summary: "search and list learnings",
    roles: EVERYONE,
    scopes: READ,
  },
  "audit.read": {
    summary: "read the audit log and follow the live stream",
    roles: EVERYONE,
    scopes: READ,
  },
  "usage.read": {
    summary: "read LLM spend against the budgets",
    roles: EVERYONE,
    scopes: READ,
  },
  "settings.read": {
    summary: "read the workspace settings",
    roles: EVERYONE,
    scopes: READ,
  },
  "settings.update": {
    summary: "change the workspace settings",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin changes workspace settings" },
  },
  "secret.list": {
    summary: "list the workspace's secrets (names, never values)",
    roles: EVERYONE,
    scopes: READ,
  },
  "secret.set": {
    summary: "create or rotate a secret",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can set secrets" },
  },
  "secret.delete": {
    summary: "delete a secret",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can delete secrets" },
  },
  "key.list": {
    summary: "list the workspace's API keys (never a key or its hash)",
    roles: ADMINS,
    scopes: ADMIN,
    refusal: { message: "only an admin can list API keys" },
  },
  "key.create": {
    summary: "create an API key",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can create API keys" },
  },
  "key.revoke": {
    summary: "revoke an API key",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can revoke API keys" },
  },
  "member.list": {
    summary: "list the workspace's members, their roles and its open invitations",
    roles: EVERYONE,
    scopes: READ,
  },
  "member.invite": {
    summary: "invite a person by email with a role, or revoke an invitation",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can invite people" },
  },
  "member.manage": {
    summary: "change a member's role, or remove a member (their sessions end and their keys are revoked)",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can change roles or remove members" },
  },
  "workspace.export": {
    summary: "export the workspace (JSON tables and the signal points as CSV)",
    roles: ADMINS,
    scopes: ADMIN,
    refusal: { message: "only an admin can export a workspace" },
  },
  "workspace.import": {
    summary: "import an export into an empty workspace",
    roles: ADMINS,
    scopes: ADMIN_WRITE,
    refusal: { message: "only an admin can import into a workspace" },
  },
};

/** The row of `operation`. */
export function permissionOf(operation: Operation): Permission {
  return PERMISSIONS[operation];
}

/**
 * The scopes a role's key can hold, and a new key's default: admin → `read`,
 * `write`, `admin`; viewer → `read`; every other role (and the worker, which
 * holds no key) → `read`, `write`. (The `api_keys` table's CHECKs repeat the
 * admin and viewer rules.)
 */
export function roleScopes(role: ActorRole): readonly ApiKeyScope[] {
  return ROLE_SCOPES[role];
}

/** The scopes of the key an actor authenticated with; an actor made in code has its role's. */
export function scopesOf(actor: ScopedActor): readonly ApiKeyScope[] {
  return actor.scopes ?? roleScopes(actor.role);
}

/** Whether `value` names a role a key can have (`admin`, `member`, `approver`, `viewer`, `agent`). */
export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** Whether `role` may do `operation` (its role part only: see {@link refusalOf} for the scopes). */
export function roleMay(role: ActorRole, operation: Operation): boolean {
  return permissionOf(operation).roles.includes(role);
}

/** The roles that may do `operation`, in the table's role order. */
export function rolesFor(operation: Operation): ActorRole[] {
  return ACTOR_ROLES.filter((role) => roleMay(role, operation));
}

/**
 * The refusal of a call that needs `scope` by a key without it, or null when
 * the key has it. The message names the scope and how to get a key with it.
 *
 * @returns DomainError `forbidden` with `details.missingScope` and the key's `scopes`.
 */
export function missingScope(actor: ScopedActor, scope: ApiKeyScope): DomainError | null {
  const scopes = scopesOf(actor);
  if (scopes.includes(scope)) return null;
  const wanted = API_KEY_SCOPES.filter((s) => s === scope || scopes.includes(s));
  return new DomainError(
    "forbidden",
    `this API key lacks the "${scope}" scope (it has: ${scopes.join(", ")}); ` +
      `ask an admin for a key with it: outcome-runtime keys create --name ${actor.name} --role ${actor.role} --scopes ${wanted.join(",")}`,
    { missingScope: scope, scopes },
  );
}

/**
 * Why `actor`'s role may not do `operation`, or null when it may. The worker
 * (`system`) is told so plainly. A role whose keys cannot hold `write` (a
 * viewer) is told that it reads only and which role to ask an admin for,
 * with code `forbidden`: a row's refusal speaks to the roles that write (an
 * agent is told a person applies outcomes, and gets `agents_cannot_decide`
 * for a gate). The others get the row's refusal.
 */
export function roleRefusal(actor: Pick<Actor, "role">, operation: Operation): GuardVerdict {
  if (roleMay(actor.role, operation)) return null;
  const row = permissionOf(operation);
  const details = { role: actor.role, operation };
  if (!roleScopes(actor.role).includes("write")) {
    return { code: "forbidden", message: readOnlyRefusal(actor.role, operation), details };
  }
  if (actor.role === "system" || row.refusal === undefined) {
    return { code: "forbidden", message: `the ${actor.role} role may not ${row.summary}`, details };
  }
  return { code: row.refusal.code ?? "forbidden", message: row.refusal.message, details };
}

/**
 * The refusal of a read-only role, naming the role to ask an admin for (the
 * first of {@link ROLES_TO_ASK_FOR} that may), e.g. "a viewer reads only; ask
 * an admin for the member role to propose a hypothesis for an active outcome".
 */
function readOnlyRefusal(role: ActorRole, operation: Operation): string {
  const summary = permissionOf(operation).summary;
  const askFor = ROLES_TO_ASK_FOR.find((r) => roleMay(r, operation));
  return askFor === undefined
    ? `a ${role} reads only, and may not ${summary}`
    : `a ${role} reads only; ask an admin for the ${askFor} role to ${summary}`;
}

/**
 * Why `actor` may not do `operation`, or null when it may: first its role
 * (a role that may not is told so, whatever its key), then every scope the
 * operation needs (the first missing one is named). A qualifier
 * (`within`) checks its own roles only; authorize the operation it widens
 * first.
 *
 * @returns a DomainError whose `details.operation` names the operation:
 *   the row's refusal code (`forbidden`, or e.g. `agents_cannot_decide`) for
 *   the role, `forbidden` with `details.missingScope` and
 *   `details.requiredScopes` for a scope.
 */
export function refusalOf(actor: ScopedActor, operation: Operation): DomainError | null {
  const role = roleRefusal(actor, operation);
  if (role !== null) return new DomainError(role.code, role.message, role.details);
  const required = permissionOf(operation).scopes;
  for (const scope of required) {
    const refusal = missingScope(actor, scope);
    if (refusal !== null) {
      return new DomainError(refusal.code, refusal.message, {
        ...refusal.details,
        operation,
        requiredScopes: [...required],
      });
    }
  }
  return null;
}

/**
 * The first line of every use case: the caller may do `operation`, by its
 * role and its key's scopes (see {@link refusalOf}).
 *
 * @throws DomainError the refusal, with `details.operation`.
 */
export function authorize(caller: { readonly principal: ScopedActor }, operation: Operation): void {
  const refusal = refusalOf(caller.principal, operation);
  if (refusal !== null) throw refusal;
}

/** Scopes as stored or asked for, in the canonical order; unknown values are dropped. */
export function knownScopes(scopes: readonly string[]): ApiKeyScope[] {
  return API_KEY_SCOPES.filter((s) => scopes.includes(s));
}

/**
 * The scopes of a new key for `role`, made by `creator`: those `asked` for,
 * checked (known, not empty, within what the role can hold and within the
 * creator's own key), or by default what the role can hold and the creator's
 * key has.
 *
 * @throws DomainError `validation_failed` (field `scopes`) for an unknown
 *   scope, none, or one beyond the role (`details.role` and the
 *   `details.scopes` beyond it: `write` for a viewer, `admin` for any role
 *   but admin); `forbidden` for a scope the creator's key lacks, and by
 *   default when it lacks every scope the role holds (a viewer's key made
 *   with a key without `read`).
 */
export function newKeyScopes(creator: ScopedActor, role: Role, asked: readonly string[] | undefined): ApiKeyScope[] {
  const mine = scopesOf(creator);
  if (asked === undefined) {
    const given = knownScopes(roleScopes(role)).filter((s) => mine.includes(s));
    // A viewer's key (read only) made with a key that lacks read: nothing the role holds is the creator's to give.
    if (given.length === 0) throw beyondCreatorRefusal(roleScopes(role));
    return given;
  }
  const unknown = asked.filter((s) => !(API_KEY_SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new DomainError("validation_failed", `scope "${unknown[0]}" is not one of ${API_KEY_SCOPES.join(", ")}`, {
      field: "scopes",
    });
  }
  const scopes = knownScopes(asked);
  if (scopes.length === 0) {
    throw new DomainError("validation_failed", `a key needs at least one scope (${API_KEY_SCOPES.join(", ")})`, {
      field: "scopes",
    });
  }
  const held = roleScopes(role);
  const beyondRole = scopes.filter((s) => !held.includes(s));
  if (beyondRole.length > 0) {
    const holder = ROLES_TO_ASK_FOR.find((r) => scopes.every((s) => roleScopes(r).includes(s)));
    throw new DomainError(
      "validation_failed",
      `a ${role} key cannot have the ${beyondRole.join(", ")} scope (a ${role} key holds ${held.join(", ")} only)` +
        (holder === undefined ? "" : `; a key with it needs --role ${holder}`),
      { field: "scopes", role, scopes: beyondRole },
    );
  }
  const beyondCreator = scopes.filter((s) => !mine.includes(s));
  if (beyondCreator.length > 0) throw beyondCreatorRefusal(beyondCreator);
  return scopes;
}

/** The refusal of a new key's `scopes` (not empty) that its creator's key lacks. */
function beyondCreatorRefusal(scopes: readonly ApiKeyScope[]): DomainError {
  return new DomainError(
    "forbidden",
    `your API key lacks the ${scopes.join(", ")} scope, so it cannot give it to a new key`,
    { missingScope: scopes[0] },
  );
}
