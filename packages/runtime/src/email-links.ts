/**
 * Deciding a gate from an email link.
 *
 * Opening a link (GET) only shows a confirmation page and changes nothing:
 * mail scanners fetch links. Only the page's POST decides. Every check runs on
 * both: the link must be intact (its token's hash is known and bound to this
 * gate, decision and recipient), live (not used, superseded by a newer email,
 * or past its expiry), and the gate must still be pending and take that
 * decision. A workspace can reserve decisions for a signed-in dashboard
 * session (default: resuming a paused experiment, since some scanners run a
 * page's scripts and submit its forms); their pages say so instead of deciding.
 */
import { type DecisionOption, DomainError, type Gate, type Principal } from "@outcome-runtime/core";
import { experiments, gateMail, gates, members, workspaces } from "@outcome-runtime/db";
import type { DecisionPageModel } from "@outcome-runtime/notify";
import { type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import {
  ALL_GATE_DECISIONS,
  decideGate,
  decisionOptions,
  GateAlreadyDecidedError,
  type GateDecisionValue,
} from "./decide-gate";
import { buildGateContext, type GateLinks, gateUrl } from "./gate-context";
import { decisionLink, hashDecisionToken } from "./gate-mail";

/** What the link carries: path `/email/gates/:gateId/:decision`, query `to` and `token`. */
export interface EmailLinkParams {
  readonly gateId: string;
  readonly decision: string;
  readonly recipient: string;
  readonly token: string;
}

/** The form the confirmation page posts. */
export interface EmailDecisionForm {
  readonly reason?: string | undefined;
  /** Portfolio review approve: the ids of the hypotheses left checked. */
  readonly approve?: readonly string[] | undefined;
  /** Portfolio review: the ids of the hypotheses the page showed (a review that changed since is refused). */
  readonly shown?: readonly string[] | undefined;
}

/** A page to show, and the HTTP status to show it with. */
export interface EmailLinkPage {
  readonly httpStatus: number;
  readonly page: DecisionPageModel;
  /** The learning a concluding decision wrote (for the LLM summary job), if any. */
  readonly learningId?: string | null;
}

const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const UUID_FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type RefusalCode = Extract<DecisionPageModel, { page: "refused" }>["code"];

function refused(
  httpStatus: number,
  code: RefusalCode,
  title: string,
  message: string,
  dashboardUrl: string | null,
): EmailLinkPage {
  return { httpStatus, page: { page: "refused", code, title, message, dashboardUrl } };
}

function describeDecision(gate: Gate): string {
  const d = gate.decision;
  if (d === null) return `This gate is ${gate.status}.`;
  if (gate.status === "expired") return `This gate expired on ${d.decidedAt.toISOString()} without a decision.`;
  return `${d.decidedBy} decided "${d.decision}" via ${d.channel} on ${d.decidedAt.toISOString()}.`;
}

/**
 * The principal an email decision acts as: the recipient, as an approver of
 * this workspace; when the recipient is a member there, the member (its id
 * and its role now: a member made a viewer since the mail was sent decides
 * nothing), so the audit log names the same person as their dashboard
 * decisions.
 *
 * @throws DomainError `forbidden` when the recipient is a person of the
 *   installation who is no member of the workspace any more, or disabled.
 */
async function emailCaller(
  db: RuntimeDeps["db"],
  workspaceId: string,
  recipient: string,
  requestId: string | null,
): Promise<Caller> {
  const member = await members.findMemberByEmail(db, recipient);
  const inWorkspace = member === null ? null : await members.findMembership(db, workspaceId, member.id);
  // A person of the installation decides only while a member here, not disabled; the approver stand-in is
  // only for addresses that are nobody's account (a key-only workspace's assignees).
  if (member !== null && (inWorkspace === null || member.disabledAt !== null)) {
    throw new DomainError(
      "forbidden",
      member.disabledAt !== null
        ? "this account is disabled; ask an admin of your workspace"
        : "you are no longer a member of this workspace; ask an admin",
    );
  }
  const principal: Principal =
    inWorkspace === null
      ? { id: `email:${recipient}`, name: recipient, role: "approver", workspaceId }
      : { id: inWorkspace.id, name: inWorkspace.email, role: inWorkspace.role, workspaceId, memberId: inWorkspace.id };
  return { principal, channel: "email", requestId };
}

interface CheckedLink {
  readonly tokenId: string;
  readonly gate: Gate;
  readonly decision: GateDecisionValue;
  readonly option: DecisionOption;
  readonly recipient: string;
}

/**
 * Every check of a link, without changing anything.
 * @returns the link's facts, or the refusal page.
 */
async function checkLink(
  deps: RuntimeDeps,
  links: GateLinks,
  params: EmailLinkParams,
): Promise<CheckedLink | EmailLinkPage> {
  const invalid = refused(
    404,
    "invalid_link",
    "This link is not valid",
    "The link is incomplete or was changed. Open the newest email about this gate and use its link as it is, or decide in the dashboard.",
    null,
  );
  if (
    !UUID_FORMAT.test(params.gateId) ||
    !(ALL_GATE_DECISIONS as readonly string[]).includes(params.decision) ||
    !TOKEN_FORMAT.test(params.token) ||
    params.recipient.length === 0 ||
    params.recipient.length > 320
  ) {
    return invalid;
  }
  const token = await gateMail.findTokenByHash(deps.db, hashDecisionToken(params.token));
  if (token === null || token.gateId !== params.gateId.toLowerCase() || token.decision !== params.decision) {
    return invalid;
  }
  const dashboard = gateUrl(links, token.gateId);
  if (token.recipient !== params.recipient.toLowerCase()) {
    return refused(
      403,
      "wrong_recipient",
      "This link was sent to someone else",
      "Decision links work only for the person they were emailed to. If you are an assignee of this gate, use the link in your own email or decide in the dashboard.",
      dashboard,
    );
  }
  const gate = await gates.findGateById(deps.db, token.gateId);
  if (gate === null) return invalid;
  if (gate.status !== "pending") {
    return refused(409, "already_decided", "This gate was already decided", describeDecision(gate), dashboard);
  }
  if (token.usedAt !== null || token.revokedReason === "decided" || token.revokedReason === "closed") {
    return refused(410, "link_used", "This link was already used", "Each decision link works once.", dashboard);
  }
  if (token.revokedReason === "superseded") {
    return refused(
      410,
      "link_superseded",
      "A newer email replaced this link",
      "A newer email about this gate was sent to you (a reminder or an escalation); its links replace this one. Use the newest email or the dashboard.",
      dashboard,
    );
  }
  const now = nowOf(deps);
  if (token.expiresAt.getTime() <= now.getTime()) {
    return refused(
      410,
      "link_expired",
      "This link has expired",
      `Decision links expire with the gate's SLA; this one expired on ${token.expiresAt.toISOString()}. The gate is still open: decide it in the dashboard.`,
      dashboard,
    );
  }
  const experiment = gate.experimentId
    ? await experiments.findExperiment(deps.db, gate.workspaceId, gate.experimentId)
    : null;
  const options = decisionOptions(gate, experiment?.state ?? null);
  const option = options.find((o) => o.decision === token.decision);
  if (option === undefined) {
    // The gate and the experiment were read one after the other: a decision that committed in between
    // moved the experiment. Say who decided, as for any other late link.
    const current = await gates.findGateById(deps.db, gate.id);
    if (current !== null && current.status !== "pending") {
      return refused(409, "already_decided", "This gate was already decided", describeDecision(current), dashboard);
    }
    return refused(
      409,
      "decision_unavailable",
      "This decision no longer applies",
      `The experiment is now ${experiment?.state ?? "gone"}; this gate takes ${options.map((o) => o.decision).join(" or ") || "no decision"} now. Open the dashboard to see where it stands.`,
      dashboard,
    );
  }
  const workspace = await workspaces.findWorkspace(deps.db, gate.workspaceId);
  if ((workspace?.settings.sessionRequiredDecisions ?? []).includes(token.decision)) {
    return refused(
      403,
      "session_required",
      "This decision needs the dashboard",
      `Your workspace requires a signed-in dashboard session to ${token.decision.replace("_", " ")} (some mail scanners open links and submit forms). Nothing was decided. Open the gate in the dashboard to decide.`,
      dashboard,
    );
  }
  return { tokenId: token.id, gate, decision: token.decision as GateDecisionValue, option, recipient: token.recipient };
}

/**
 * The page for a GET of a link: the confirmation page, or why the link does
 * not work. Changes nothing.
 */
export async function inspectEmailLink(
  deps: RuntimeDeps,
  links: GateLinks,
  params: EmailLinkParams,
): Promise<EmailLinkPage> {
  const checked = await checkLink(deps, links, params);
  if ("httpStatus" in checked) return checked;
  const context = await buildGateContext(deps.db, checked.gate, links);
  return {
    httpStatus: 200,
    page: {
      page: "confirm",
      recipient: checked.recipient,
      gate: { id: checked.gate.id, kind: checked.gate.kind, dashboardUrl: gateUrl(links, checked.gate.id) },
      context,
      option: checked.option,
      formAction: decisionLink(links, checked.gate.id, checked.decision, params.recipient, params.token),
    },
  };
}

/**
 * The POST of a confirmation page: decide the gate as the link's recipient,
 * through the `email` channel, and mark the token used, in one transaction.
 * Of concurrent posts (of this or any other link, or any other channel)
 * exactly one decides; the others get the "already decided" page.
 */
export async function decideByEmailLink(
  deps: RuntimeDeps,
  links: GateLinks,
  params: EmailLinkParams,
  form: EmailDecisionForm,
  requestId: string | null = null,
): Promise<EmailLinkPage> {
  const checked = await checkLink(deps, links, params);
  if ("httpStatus" in checked) return checked;
  const { gate, decision, recipient } = checked;
  const reason = form.reason?.trim().slice(0, 2000) || null;
  let hypotheses: Record<string, "approve" | "reject"> | undefined;
  const dashboard = gateUrl(links, gate.id);
  if (gate.kind === "portfolio_review") {
    const context = await buildGateContext(deps.db, gate, links);
    const proposed =
      context.kind === "portfolio_review" ? context.hypotheses.filter((h) => h.state === "proposed") : [];
    // Decide only what the person saw: hypotheses that joined the review after the page was opened are not
    // approved or rejected unseen.
    const shown = new Set(form.shown ?? []);
    const unseen = proposed.filter((h) => !shown.has(h.id));
    if (unseen.length > 0 || shown.size !== proposed.length) {
      return refused(
        409,
        "decision_unavailable",
        "The review changed since you opened it",
        `${unseen.length > 0 ? `Not on your page: ${unseen.map((h) => h.title).join(", ")}. ` : ""}Nothing was decided. Open the link again to see the review as it is now.`,
        dashboard,
      );
    }
    if (decision === "approve") {
      const keep = new Set(form.approve ?? []);
      hypotheses = Object.fromEntries(
        proposed.map((h) => [h.id, keep.has(h.id) ? ("approve" as const) : ("reject" as const)]),
      );
    }
  }
  try {
    const result = await inTransaction(deps.db, async (trx) => {
      const decided = await decideGate(
        { ...deps, db: trx },
        await emailCaller(trx, gate.workspaceId, recipient, requestId),
        gate.id,
        {
          decision,
          reason,
          hypotheses,
          via: { tokenId: checked.tokenId },
        },
      );
      // The decision revoked every token of the gate; this one is recorded as the one used.
      await gateMail.markTokenUsed(trx, checked.tokenId, nowOf(deps));
      return decided;
    });
    const titles = new Map(result.experiments.map((e) => [e.id, e.title]));
    const detail = result.gate.decision?.detail as { approved?: string[]; rejected?: string[] } | null | undefined;
    return {
      httpStatus: 200,
      learningId: result.learningId,
      page: {
        page: "decided",
        recipient,
        gate: { id: gate.id, kind: gate.kind, dashboardUrl: dashboard },
        option: checked.option,
        decidedAt: (result.gate.decision?.decidedAt ?? nowOf(deps)).toISOString(),
        reason,
        ...(gate.kind === "portfolio_review"
          ? {
              approved: (detail?.approved ?? (decision === "approve" ? [...titles.keys()] : [])).map(
                (id) => titles.get(id) ?? id,
              ),
              rejected: (detail?.rejected ?? (decision === "reject" ? [...titles.keys()] : [])).map(
                (id) => titles.get(id) ?? id,
              ),
            }
          : {}),
      },
    };
  } catch (error) {
    if (error instanceof GateAlreadyDecidedError) {
      const now = await gates.findGateById(deps.db, gate.id);
      return refused(409, "already_decided", "This gate was already decided", describeDecision(now ?? gate), dashboard);
    }
    if (error instanceof DomainError) {
      const current = await gates.findGateById(deps.db, gate.id);
      if (current !== null && current.status !== "pending") {
        return refused(409, "already_decided", "This gate was already decided", describeDecision(current), dashboard);
      }
      const code: RefusalCode =
        error.code === "gate_not_assignee" || error.code === "forbidden" || error.code === "separation_of_duties"
          ? "not_allowed"
          : "decision_unavailable";
      return refused(code === "not_allowed" ? 403 : 409, code, "Nothing was decided", error.message, dashboard);
    }
    throw error;
  }
}
