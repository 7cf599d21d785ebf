/**
 * Sealing and opening workspace secrets: AES-256-GCM (Node's crypto; NIST SP
 * 800-38D) under the operator's `OUTCOME_RUNTIME_SECRETS_KEY`, with the
 * workspace id and the secret's name as additional data, so a sealed value
 * copied to another row or workspace does not open. No I/O: the use cases
 * that store secrets are in `secrets.ts`; the worker's poll opens them
 * through `signals/source-access.ts`.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { DomainError } from "@outcome-runtime/core";

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The longest secret value, in bytes (a connection string or a service account key file fits). */
export const MAX_SECRET_BYTES = 16 * 1024;

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
