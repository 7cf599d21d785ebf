/**
 * Workspace secrets: source credentials an admin stores for the workspace's
 * connectors (`database_url_secret: analytics-db` in outcome.yaml). Values are
 * sealed with AES-256-GCM (Node's crypto; NIST SP 800-38D) under the
 * operator's `OUTCOME_RUNTIME_SECRETS_KEY`, with the workspace id and the
 * secret's name as additional data, so a sealed value copied to another row
 * or workspace does not open. Only admins create, rotate and delete secrets;
 * nobody reads a value back through the API: the worker opens it for a poll.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { authorize, DomainError } from "@outcome-runtime/core";
import { audit, type SecretRecord, secrets } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The longest secret value, in bytes (a connection string or a service account key file fits). */
export const MAX_SECRET_BYTES = 16 * 1024;
/** A secret's name: lowercase letters, digits, `-`, `_`, `.`; 1 to 63 characters. */
const SECRET_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/u;

/** The keys secrets are sealed with: the current one, and earlier ones that still open older values. */
export interface SecretsKeyring {
  readonly current: { readonly id: string; readonly key: Buffer };
  readonly previous: readonly { readonly id: string; readonly key: Buffer }[];
}

/** A key's id: the first 16 hex digits of SHA-256 over a label and the key (reveals nothing of the key). */
function keyId(key: Buffer): string {
  return createHash("sha256").update("outcome-runtime secrets key\0").update(key).digest("hex").slice(0, 16);
}

/** 32 bytes from base64, base64url or hex text; undefined when it is not exactly 32 bytes. */
function decodeKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/u.test(trimmed) ? Buffer.from(trimmed, "hex") : Buffer.from(trimmed, "base64");
  return bytes.length === 32 ? bytes : undefined;
}

/**
 * The keyring from `OUTCOME_RUNTIME_SECRETS_KEY` (32 random bytes, base64 or
 * hex: `openssl rand -base64 32`) and `OUTCOME_RUNTIME_SECRETS_KEY_PREVIOUS`
 * (comma-separated older keys, while values sealed with them remain).
 *
 * @returns null when no key is set (secrets cannot be stored or opened then)
 * @throws Error naming the variable when a key is not 32 bytes
 */
export function secretsKeyringFromEnv(env: Readonly<Record<string, string | undefined>>): SecretsKeyring | null {
  const text = env.OUTCOME_RUNTIME_SECRETS_KEY?.trim() ?? "";
  if (text === "") return null;
  const key = decodeKey(text);
  if (key === undefined) {
    throw new Error(
      "OUTCOME_RUNTIME_SECRETS_KEY: not 32 bytes in base64 or hex; generate one with `openssl rand -base64 32`",
    );
  }
  const previous = (env.OUTCOME_RUNTIME_SECRETS_KEY_PREVIOUS ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "")
    .map((k, i) => {
      const decoded = decodeKey(k);
      if (decoded === undefined) {
        throw new Error(`OUTCOME_RUNTIME_SECRETS_KEY_PREVIOUS: key ${i + 1} is not 32 bytes in base64 or hex`);
      }
      return { id: keyId(decoded), key: decoded };
    });
  return { current: { id: keyId(key), key }, previous };
}

function additionalData(workspaceId: string, name: string): Buffer {
  return Buffer.from(`outcome-runtime secret\0${workspaceId}\0${name}`, "utf8");
}

/** Seals `value` for (`workspaceId`, `name`): IV ‖ tag ‖ ciphertext. */
export function sealSecret(keyring: SecretsKeyring, workspaceId: string, name: string, value: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keyring.current.key, iv);
  cipher.setAAD(additionalData(workspaceId, name));
  const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/**
 * Opens a sealed value.
 *
 * @throws DomainError `secret_unreadable` when no key of the keyring has `keyIdOfValue`, or the value does not open
 *   (tampered, or moved from another workspace or name)
 */
export function openSecret(
  keyring: SecretsKeyring,
  sealed: { readonly workspaceId: string; readonly name: string; readonly keyId: string; readonly ciphertext: Buffer },
): string {
  const key = [keyring.current, ...keyring.previous].find((k) => k.id === sealed.keyId);
  if (key === undefined) {
    throw new DomainError(
      "secret_unreadable",
      `the secret ${sealed.name} was sealed with another key (id ${sealed.keyId}); put that key in OUTCOME_RUNTIME_SECRETS_KEY_PREVIOUS, or set the secret again`,
      { secret: sealed.name, keyId: sealed.keyId },
    );
  }
  try {
    const iv = sealed.ciphertext.subarray(0, IV_BYTES);
    const tag = sealed.ciphertext.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", key.key, iv);
    decipher.setAAD(additionalData(sealed.workspaceId, sealed.name));
    decipher.setAuthTag(tag);
    return Buffer.concat([
      decipher.update(sealed.ciphertext.subarray(IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    throw new DomainError(
      "secret_unreadable",
      `the secret ${sealed.name} does not open: its stored value was changed or does not belong to this workspace; set it again`,
      { secret: sealed.name },
    );
  }
}

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
