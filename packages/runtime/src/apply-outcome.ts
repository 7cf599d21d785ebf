/**
 * Apply an `outcome.yaml`: create the outcome, or a new revision when its
 * content changed, or nothing when it did not.
 */
import {
  authorize,
  DomainError,
  diffSpecs,
  isSensitivePath,
  mayReviseOutcome,
  type Outcome,
  type OutcomeRevision,
} from "@outcome-runtime/core";
import { audit, outcomes } from "@outcome-runtime/db";
import type { Diagnostic } from "@outcome-runtime/spec";
import { checkOutcomePeople, checkOutcomeSources, type OutcomeCheckDeps, parseOutcomeChecked } from "./check-outcome";
import { auditActor, type Caller, inTransaction, nowOf } from "./context";

export type ApplyStatus = "created" | "revised" | "unchanged";

export interface ApplyResult {
  readonly status: ApplyStatus;
  readonly outcome: Outcome;
  /** What could not be checked here (a source the API cannot reach): the worker checks it again. */
  readonly warnings: readonly Diagnostic[];
}

/** Thrown when the outcome file has errors; `details.errors` lists every one. */
export class OutcomeInvalidError extends DomainError {
  readonly errors: readonly Diagnostic[];
  constructor(errors: readonly Diagnostic[]) {
    super(
      "outcome_invalid",
      `the outcome has ${errors.length} error${errors.length === 1 ? "" : "s"}: ${errors[0]?.message ?? ""}`,
      { errors },
    );
    this.errors = errors;
  }
}

/**
 * Parse, validate and apply an outcome (YAML or JSON text).
 *
 * "Changed" means the normalised content changed (its hash): comments, key
 * order and `5%` vs `0.05` do not make a revision. Concurrent applies of the
 * same outcome serialise on the outcome row.
 *
 * Every connector is checked first (`check-outcome.ts`): its SQL with
 * PostgreSQL's parser, the secrets and variables it names, and the source
 * itself when the API can reach it (never the runtime's database, never a
 * role that may write). A refused source is an error; an unreachable one a
 * warning.
 *
 * Anyone who may apply (not an agent) creates a new outcome; only its owner
 * (the `owner` of the current revision, compared case-insensitively with the
 * caller's name) or an admin revises an existing one. A revision is audited as
 * `outcome.revised` with `after.changes`, every changed field of the normalised
 * spec as `{ path, before, after }` (e.g. `constraints.kill.max_harm`); when a
 * sensitive field changed (owner, gates, scope paths, kill, guardrails, signal
 * connector, …: see `isSensitivePath`) an `outcome.sensitive_change` event
 * carries those changes alone. Gates already open keep their assignees, backup
 * and SLA: they were copied onto the gate when it opened.
 *
 * @throws OutcomeInvalidError (`outcome_invalid`) with every diagnostic.
 * @throws DomainError `outcome_closed` when the outcome is achieved, missed or
 *   abandoned; `forbidden` unless the caller may `outcome.apply` (agents may
 *   not); `not_outcome_owner` when someone other than the owner or an admin
 *   (`outcome.revise_any`) changes an existing outcome (`details.owner` names
 *   whom to ask). A refusal writes nothing.
 */
export async function applyOutcome(
  deps: OutcomeCheckDeps,
  caller: Caller,
  input: { source: string; file?: string },
): Promise<ApplyResult> {
  authorize(caller, "outcome.apply");
  const file = input.file ?? "outcome.yaml";
  const parsed = parseOutcomeChecked(input.source, file, deps.sources);
  if (!parsed.ok) throw new OutcomeInvalidError(parsed.errors);
  const { spec, contentHash } = parsed;
  const workspaceId = caller.principal.workspaceId;
  const sources = await checkOutcomeSources(deps, workspaceId, parsed, file);
  const people = await checkOutcomePeople(deps, workspaceId, parsed, file);
  const errors = [...sources.errors, ...people.errors];
  if (errors.length > 0) throw new OutcomeInvalidError(errors);
  const warnings = [...sources.warnings, ...people.warnings];
  const specJson = spec as unknown as Record<string, unknown>;

  return inTransaction(deps.db, async (trx) => {
    const at = nowOf(deps);
    let existing = await outcomes.findOutcome(trx, workspaceId, spec.id, { forUpdate: true, bySlug: true });
    if (existing === null) {
      const created = await outcomes.insertOutcome(trx, {
        workspaceId,
        slug: spec.id,
        name: spec.name,
        owner: spec.owner,
        contentHash,
        spec: specJson,
      });
      if (created !== null) {
        await recordRevision(trx, caller, created, input.source, at);
        await audit.insertAuditEvent(trx, {
          workspaceId,
          actor: auditActor(caller),
          channel: caller.channel,
          action: "outcome.created",
          subjectType: "outcome",
          subjectId: created.id,
          before: null,
          after: { slug: created.slug, revision: 1, contentHash, state: created.state },
          requestId: caller.requestId,
        });
        return { status: "created", outcome: created, warnings };
      }
      // A concurrent apply created it between our read and our insert: lock it and go on as an update.
      existing = await outcomes.findOutcome(trx, workspaceId, spec.id, { forUpdate: true, bySlug: true });
      if (existing === null) throw new Error(`outcome ${spec.id} vanished during apply`);
    }
    if (existing.contentHash === contentHash) return { status: "unchanged", outcome: existing, warnings };
    if (existing.state === "achieved" || existing.state === "missed" || existing.state === "abandoned") {
      throw new DomainError(
        "outcome_closed",
        existing.state === "achieved"
          ? `outcome ${existing.slug} is achieved; reopen it first (outcome-runtime reopen ${existing.slug}) to revise it, or give the file a new id to start a new outcome`
          : `outcome ${existing.slug} is ${existing.state}; give the file a new id to start a new outcome`,
        { state: existing.state },
      );
    }
    const refusal = mayReviseOutcome(caller.principal, existing);
    if (refusal !== null) throw new DomainError(refusal.code, refusal.message, refusal.details);
    const changes = diffSpecs(existing.spec, specJson);
    const sensitive = changes.filter((c) => isSensitivePath(c.path));
    const revision = existing.revision + 1;
    const updated = await outcomes.updateOutcomeContent(trx, existing.id, {
      revision,
      contentHash,
      spec: specJson,
      name: spec.name,
      owner: spec.owner,
    });
    await recordRevision(trx, caller, updated, input.source, at);
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "outcome.revised",
      subjectType: "outcome",
      subjectId: updated.id,
      before: { revision: existing.revision, contentHash: existing.contentHash, owner: existing.owner },
      after: { revision, contentHash, owner: updated.owner, changes },
      requestId: caller.requestId,
    });
    if (sensitive.length > 0) {
      await audit.insertAuditEvent(trx, {
        workspaceId,
        actor: auditActor(caller),
        channel: caller.channel,
        action: "outcome.sensitive_change",
        subjectType: "outcome",
        subjectId: updated.id,
        before: { revision: existing.revision, owner: existing.owner },
        after: { revision, owner: updated.owner, changes: sensitive },
        requestId: caller.requestId,
      });
    }
    return { status: "revised", outcome: updated, warnings };
  });
}

async function recordRevision(
  trx: Parameters<typeof outcomes.insertRevision>[0],
  caller: Caller,
  outcome: Outcome,
  source: string,
  at: Date,
): Promise<OutcomeRevision> {
  return outcomes.insertRevision(trx, {
    workspaceId: outcome.workspaceId,
    outcomeId: outcome.id,
    revision: outcome.revision,
    contentHash: outcome.contentHash,
    source,
    spec: outcome.spec,
    createdBy: caller.principal.name,
    createdAt: at,
  });
}
