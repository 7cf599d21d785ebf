/**
 * Workspace secrets: source credentials an admin stores for the workspace's
 * connectors (`database_url_secret: analytics-db` in outcome.yaml), sealed
 * by `secret-box.ts`. Only admins create, rotate and delete secrets; nobody
 * reads a value back through the API: the worker opens it for a poll.
 */
import { authorize, DomainError } from "@outcome-runtime/core";
import { audit, type SecretRecord, secrets } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { MAX_SECRET_BYTES, sealSecret } from "./secret-box";

/** A secret's name: lowercase letters, digits, `-`, `_`, `.`; 1 to 63 characters. */
const SECRET_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/u;

/** What an API answer may show of a secret: never its value. */
export interface SecretSummary {
  readonly name: string;
  readonly description: string;
  readonly version: number;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly updatedBy: string;
  readonly updatedAt: Date;
  readonly lastUsedAt: Date | null;
}

function summary(record: SecretRecord): SecretSummary {
  return {
    name: record.name,
    description: record.description,
    version: record.version,
    createdBy: record.createdBy,
    createdAt: record.createdAt,
    updatedBy: record.updatedBy,
    updatedAt: record.updatedAt,
    lastUsedAt: record.lastUsedAt,
  };
}

function checkName(name: unknown): string {
  if (typeof name !== "string" || !SECRET_NAME.test(name)) {
    throw new DomainError(
      "validation_failed",
      `name: ${JSON.stringify(name)} is not a secret name; use lowercase letters, digits, -, _ and ., such as analytics-db`,
      { field: "name", value: name },
    );
  }
  return name;
}

/**
 * The workspace's secrets, without values. Every role may list them (outcome.yaml names them).
 *
 * @throws DomainError `forbidden` unless the caller may `secret.list`.
 */
export async function listWorkspaceSecrets(deps: RuntimeDeps, caller: Caller): Promise<SecretSummary[]> {
  authorize(caller, "secret.list");
  return (await secrets.listSecrets(deps.db, caller.principal.workspaceId)).map(summary);
}

/**
 * Creates a secret, or rotates it (a new value: `version` + 1); audited as
 * `secret.created` or `secret.rotated` with the name and version, never the
 * value.
 *
 * @throws DomainError `forbidden` for a non-admin or a key without the write and admin scopes;
 *   `validation_failed` for a bad name, an empty, NUL-holding or too long value;
 *   `secrets_disabled` when the operator set no OUTCOME_RUNTIME_SECRETS_KEY
 */
export async function setWorkspaceSecret(
  deps: RuntimeDeps,
  caller: Caller,
  input: { readonly name: unknown; readonly value: unknown; readonly description?: unknown },
): Promise<{ secret: SecretSummary; created: boolean }> {
  authorize(caller, "secret.set");
  const name = checkName(input.name);
  const value = input.value;
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw new DomainError(
      "validation_failed",
      "value: give the secret's value as non-empty text without NUL characters",
      {
        field: "value",
      },
    );
  }
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_BYTES) {
    throw new DomainError("validation_failed", `value: a secret may be at most ${MAX_SECRET_BYTES} bytes`, {
      field: "value",
      max: MAX_SECRET_BYTES,
    });
  }
  const description = input.description ?? "";
  if (typeof description !== "string" || description.length > 500 || description.includes("\0")) {
    throw new DomainError("validation_failed", "description: write at most 500 characters of text", {
      field: "description",
    });
  }
  const keyring = deps.sources?.secretsKeyring ?? null;
  if (keyring === null) {
    throw new DomainError(
      "secrets_disabled",
      "this installation stores no secrets: the operator must set OUTCOME_RUNTIME_SECRETS_KEY (openssl rand -base64 32) on the API and the worker",
      {},
    );
  }
  const workspaceId = caller.principal.workspaceId;
  const sealed = sealSecret(keyring, workspaceId, name, value);
  return inTransaction(deps.db, async (trx) => {
    const { record, created } = await secrets.upsertSecret(trx, {
      workspaceId,
      name,
      description,
      ciphertext: sealed,
      keyId: keyring.current.id,
      actor: caller.principal.name,
      at: nowOf(deps),
    });
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: created ? "secret.created" : "secret.rotated",
      subjectType: "secret",
      subjectId: record.id,
      before: created ? null : { name, version: record.version - 1 },
      after: { name, version: record.version, keyId: record.keyId },
      requestId: caller.requestId,
    });
    return { secret: summary(record), created };
  });
}

/**
 * Deletes a secret; audited as `secret.deleted`. Polls that name it fail
 * from then on with an error naming it.
 *
 * @throws DomainError `forbidden`; `not_found` when the workspace has no such secret
 */
export async function deleteWorkspaceSecret(deps: RuntimeDeps, caller: Caller, name: unknown): Promise<SecretSummary> {
  authorize(caller, "secret.delete");
  const checked = checkName(name);
  const workspaceId = caller.principal.workspaceId;
  return inTransaction(deps.db, async (trx) => {
    const deleted = await secrets.deleteSecret(trx, workspaceId, checked);
    if (deleted === null) {
      throw new DomainError("not_found", `no secret ${checked} in this workspace`, { secret: checked });
    }
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "secret.deleted",
      subjectType: "secret",
      subjectId: deleted.id,
      before: { name: checked, version: deleted.version },
      after: null,
      requestId: caller.requestId,
    });
    return summary(deleted);
  });
}
