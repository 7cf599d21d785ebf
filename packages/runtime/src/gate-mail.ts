/**
 * Sending gate emails from the outbox (`gate_notifications`), and the
 * decision tokens of their links.
 *
 * A link is `<public URL>/email/gates/<gate id>/<decision>?to=<recipient>&token=<token>`.
 * The token is 256 random bits (base64url, 43 characters); only its SHA-256
 * hash is stored, bound to the gate, the decision and the recipient, and it
 * expires with the SLA (the escalation's own SLA for the backup's links).
 * A newer email to the same person about the same gate supersedes the links
 * of the older ones.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Gate } from "@outcome-runtime/core";
import { experiments, gateMail, gates, workspaces } from "@outcome-runtime/db";
import { type GateEmailModel, type Mailer, renderGateEmail } from "@outcome-runtime/notify";
import { inTransaction, nowOf, type RuntimeDeps } from "./context";
import { decisionOptions } from "./decide-gate";
import { buildGateContext, type GateLinks, gateUrl } from "./gate-context";

/** A fresh decision token: 32 random bytes, base64url. */
export function newDecisionToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The stored form of a token: its SHA-256, hex. */
export function hashDecisionToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** The link of one decision for one recipient. */
export function decisionLink(
  links: GateLinks,
  gateId: string,
  decision: string,
  recipient: string,
  token: string,
): string {
  const query = new URLSearchParams({ to: recipient, token });
  return `${links.publicUrl}/email/gates/${gateId}/${decision}?${query.toString()}`;
}

export interface GateMailDeps extends RuntimeDeps {
  readonly mailer: Mailer;
  readonly links: GateLinks;
  /** A claim older than this is taken over (the worker that held it died), ms; default 10 minutes. */
  readonly staleClaimMs?: number;
}

export type SendNotificationResult =
  | { readonly status: "sent"; readonly messageId: string }
  | { readonly status: "logged" | "already_done" }
  | { readonly status: "cancelled"; readonly reason: string };

/** When the links of a notification stop working: the SLA's end (the escalation's own SLA for the backup). */
export function linksExpireAt(gate: Gate, reason: gateMail.NotificationReason): Date {
  if (reason === "escalation" && gate.escalatedAt !== null) {
    return new Date(gate.escalatedAt.getTime() + gate.slaSeconds * 1000);
  }
  return gate.dueAt;
}

/**
 * Send one gate email. Claims the notification with a conditional UPDATE (of
 * duplicate jobs exactly one sends), issues fresh tokens for the decisions the
 * gate takes now (superseding the recipient's older links), renders the email
 * and hands it to the mailer, then marks it sent. A gate decided or closed
 * meanwhile cancels it instead.
 *
 * @throws Error when the mailer fails (the notification goes back to `pending`,
 *   or `failed` when `final`), so the job is retried with backoff.
 */
export async function sendGateNotification(
  deps: GateMailDeps,
  notificationId: string,
  options: { final?: boolean } = {},
): Promise<SendNotificationResult> {
  const now = nowOf(deps);
  const claimed = await gateMail.claimNotification(
    deps.db,
    notificationId,
    now,
    new Date(now.getTime() - (deps.staleClaimMs ?? 600_000)),
  );
  if (claimed === null) return { status: "already_done" };
  const cancel = async (reason: string): Promise<SendNotificationResult> => {
    await gateMail.finishNotification(deps.db, claimed.id, { status: "cancelled", reason });
    return { status: "cancelled", reason };
  };
  if (deps.mailer.mode === "disabled") return cancel("mail is off: set SMTP_URL (or MAIL_LOG_LINKS=true)");
  const gate = await gates.findGateById(deps.db, claimed.gateId);
  if (gate === null || gate.status !== "pending") return cancel(`gate is ${gate?.status ?? "gone"}`);
  const experiment = gate.experimentId
    ? await experiments.findExperiment(deps.db, gate.workspaceId, gate.experimentId)
    : null;
  const options_ = decisionOptions(gate, experiment?.state ?? null);
  if (options_.length === 0) return cancel(`the gate takes no decision now (experiment ${experiment?.state})`);
  const expiresAt = linksExpireAt(gate, claimed.reason);
  if (expiresAt.getTime() <= now.getTime()) return cancel("the SLA ended before the email could be sent");
  const workspace = await workspaces.findWorkspace(deps.db, gate.workspaceId);
  const sessionOnly = new Set(workspace?.settings.sessionRequiredDecisions ?? []);
  const context = await buildGateContext(deps.db, gate, deps.links);

  // Tokens first, committed: the links must work the moment the mail arrives. The gate row is
  // share-locked and read again: a decision committed since the check above cancels the email, and
  // one that comes after waits for these tokens and then revokes them with the others.
  const actions = await inTransaction(deps.db, async (trx) => {
    const current = await gates.findGateById(trx, gate.id, { forShare: true });
    if (current === null || current.status !== "pending") return null;
    await gateMail.revokeTokens(trx, gate.id, "superseded", now, { recipient: claimed.recipient });
    const issued = options_.map((option) => ({ option, token: newDecisionToken() }));
    await gateMail.insertTokens(
      trx,
      issued.map(({ option, token }) => ({
        workspaceId: gate.workspaceId,
        gateId: gate.id,
        notificationId: claimed.id,
        recipient: claimed.recipient,
        decision: option.decision,
        tokenHash: hashDecisionToken(token),
        expiresAt,
        at: now,
      })),
    );
    return issued.map(({ option, token }) => ({
      option,
      url: decisionLink(deps.links, gate.id, option.decision, claimed.recipient, token),
      requiresSession: sessionOnly.has(option.decision),
    }));
  });
  if (actions === null) return cancel("the gate was decided while the email was being prepared");

  const model: GateEmailModel = {
    reason: claimed.reason,
    recipient: claimed.recipient,
    gate: {
      id: gate.id,
      kind: gate.kind,
      dueAt: gate.dueAt.toISOString(),
      slaSeconds: gate.slaSeconds,
      dashboardUrl: gateUrl(deps.links, gate.id),
      ...(claimed.reason === "escalation"
        ? {
            escalatedFrom: gate.assignees,
            escalatedAs: gate.backup === null ? ("owner" as const) : ("backup" as const),
          }
        : {}),
    },
    context,
    actions,
    linksExpireAt: expiresAt.toISOString(),
  };
  const rendered = renderGateEmail(model);
  const messageId = `<${claimed.id}.${claimed.attempts}@outcome-runtime>`;
  try {
    const result = await deps.mailer.send({
      to: claimed.recipient,
      subject: rendered.subject,
      html: rendered.html,
      text: rendered.text,
      messageId,
      links: actions.map((a) => ({ label: a.option.label, url: a.url })),
      headers: { "X-Outcome-Runtime-Gate": gate.id },
    });
    const sentId = result.status === "sent" ? result.messageId : null;
    await gateMail.finishNotification(deps.db, claimed.id, { status: "sent", messageId: sentId, at: nowOf(deps) });
    return result.status === "sent" ? { status: "sent", messageId: result.messageId } : { status: "logged" };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await gateMail.finishNotification(deps.db, claimed.id, {
      status: "failed",
      error: message,
      final: options.final === true,
    });
    throw new Error(`gate email ${claimed.id} to ${claimed.recipient}: ${message}`, { cause: error });
  }
}

/** Notifications to send now: pending ones, and claims older than the stale limit. */
export async function openNotifications(deps: RuntimeDeps, staleClaimMs = 600_000): Promise<string[]> {
  return gateMail.listOpenNotificationIds(deps.db, new Date(nowOf(deps).getTime() - staleClaimMs));
}
