/**
 * Workspace settings an admin changes through the API: which gate decisions
 * an email link may not make, whether separation of duties holds at
 * launches, and how long raw signal points of finished experiments are kept.
 */
import { authorize, DomainError, parseSignalRetention, type WorkspaceSettings } from "@outcome-runtime/core";
import { audit, workspaces } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, type RuntimeDeps } from "./context";
import { ALL_GATE_DECISIONS } from "./decide-gate";

/** The caller's workspace settings. @throws DomainError `forbidden` (`settings.read`), `not_found`. */
export async function getWorkspaceSettings(deps: RuntimeDeps, caller: Caller): Promise<WorkspaceSettings> {
  authorize(caller, "settings.read");
  const workspace = await workspaces.findWorkspace(deps.db, caller.principal.workspaceId);
  if (workspace === null) throw new DomainError("not_found", "this workspace no longer exists");
  return workspace.settings;
}

/**
 * Change the caller's workspace settings (`settings.update`: admins, with a
 * key scoped `admin` and `write`); audited with the values before and after.
 *
 * @param patch the fields to change: `sessionRequiredDecisions` (gate
 *   decisions, deduplicated), `separationOfDuties` (a boolean), `signalRetention`
 *   (`{ days: n }`, n whole days from 1 to 36 500, or `{ days: null }` to keep points forever).
 * @throws DomainError `forbidden` unless the caller may `settings.update`; `validation_failed` naming
 *   an unknown decision in `sessionRequiredDecisions`, a
 *   `separationOfDuties` that is not a boolean, or a `signalRetention` that is not one of the above
 *   (the field, the value and the range in the message).
 */
export async function updateWorkspaceSettings(
  deps: RuntimeDeps,
  caller: Caller,
  patch: Partial<WorkspaceSettings>,
): Promise<WorkspaceSettings> {
  authorize(caller, "settings.update");
  const unknown = (patch.sessionRequiredDecisions ?? []).filter(
    (d) => !(ALL_GATE_DECISIONS as readonly string[]).includes(d),
  );
  if (unknown.length > 0) {
    throw new DomainError(
      "validation_failed",
      `sessionRequiredDecisions: unknown decision ${unknown.map((d) => `"${d}"`).join(", ")}; use any of ${ALL_GATE_DECISIONS.join(", ")}`,
      { field: "sessionRequiredDecisions", allowed: ALL_GATE_DECISIONS },
    );
  }
  if (patch.separationOfDuties !== undefined && typeof patch.separationOfDuties !== "boolean") {
    throw new DomainError(
      "validation_failed",
      `separationOfDuties must be true or false, not ${JSON.stringify(patch.separationOfDuties)}`,
      { field: "separationOfDuties" },
    );
  }
  const retention = patch.signalRetention === undefined ? undefined : parseSignalRetention(patch.signalRetention);
  return inTransaction(deps.db, async (trx) => {
    const current = await workspaces.findWorkspace(trx, caller.principal.workspaceId);
    if (current === null) throw new DomainError("not_found", "this workspace no longer exists");
    const next: WorkspaceSettings = {
      ...current.settings,
      ...(patch.sessionRequiredDecisions
        ? { sessionRequiredDecisions: [...new Set(patch.sessionRequiredDecisions)] }
        : {}),
      ...(patch.separationOfDuties !== undefined ? { separationOfDuties: patch.separationOfDuties } : {}),
      ...(retention !== undefined ? { signalRetention: retention } : {}),
    };
    const updated = await workspaces.updateWorkspaceSettings(trx, current.id, next);
    if (updated === null) throw new DomainError("not_found", "this workspace no longer exists");
    await audit.insertAuditEvent(trx, {
      workspaceId: current.id,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "workspace.settings_changed",
      subjectType: "workspace",
      subjectId: current.id,
      before: current.settings,
      after: updated.settings,
      requestId: caller.requestId,
    });
    return updated.settings;
  });
}
