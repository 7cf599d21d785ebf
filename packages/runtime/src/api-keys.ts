/**
 * API keys: bearer tokens owned by a named person or agent with a role. Keys
 * are 256-bit random strings; only their SHA-256 is stored (a key has enough
 * entropy that a slow hash adds nothing), so a database leak reveals no key.
 */
import { createHash, randomBytes } from "node:crypto";
import { DomainError, type Principal, ROLES, type Role } from "@outcome-runtime/core";
import { apiKeys, audit, workspaces } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";

const KEY_PREFIX = "ork_";

/** SHA-256 hex of a key. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random key: `ork_` + 43 base64url characters (256 bits). */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

export interface CreatedApiKey {
  /** The key itself: shown once, never stored. */
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly createdAt: Date;
}

/**
 * Create a key in the caller's workspace.
 *
 * @param input.name a person's email or an agent's name (e.g. `claude-code`).
 * @throws DomainError `forbidden` unless the caller is an admin;
 *   `validation_failed` for an empty name or unknown role.
 */
export async function createApiKey(
  deps: RuntimeDeps,
  caller: Caller,
  input: { name: string; role: Role },
): Promise<CreatedApiKey> {
  if (caller.principal.role !== "admin") {
    throw new DomainError("forbidden", "only an admin can create API keys", { role: caller.principal.role });
  }
  const name = input.name.trim();
  if (name === "" || name.length > 200) {
    throw new DomainError("validation_failed", "name must be a person's email or an agent's name (1–200 characters)", {
      field: "name",
    });
  }
  if (!(ROLES as readonly string[]).includes(input.role)) {
    throw new DomainError("validation_failed", `role "${input.role}" is not one of ${ROLES.join(", ")}`, {
      field: "role",
    });
  }
  const key = generateApiKey();
  return inTransaction(deps.db, async (trx) => {
    const record = await apiKeys.insertApiKey(trx, {
      workspaceId: caller.principal.workspaceId,
      name,
      role: input.role,
      prefix: key.slice(0, 12),
      keyHash: hashApiKey(key),
      createdBy: caller.principal.name,
    });
    await audit.insertAuditEvent(trx, {
      workspaceId: caller.principal.workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "api_key.created",
      subjectType: "api_key",
      subjectId: record.id,
      before: null,
      after: { name, role: input.role, prefix: record.prefix },
      requestId: caller.requestId,
    });
    return { key, id: record.id, name, role: record.role, prefix: record.prefix, createdAt: record.createdAt };
  });
}

/** The principal owning `key`, or null for an unknown or revoked key. */
export async function authenticate(deps: RuntimeDeps, key: string): Promise<Principal | null> {
  if (key.length < 16 || key.length > 512) return null;
  return apiKeys.findPrincipalByKeyHash(deps.db, hashApiKey(key));
}

export const DEFAULT_WORKSPACE = { slug: "default", name: "Default workspace" } as const;

/** `created_by` of bootstrap keys: the variable they come from. */
const BOOTSTRAP_SOURCE = "OUTCOME_RUNTIME_API_KEY";

/**
 * First start: make sure the default workspace exists and, when a bootstrap key
 * is configured (`OUTCOME_RUNTIME_API_KEY`), that it is an admin key there.
 * Changing the variable rotates the key: the previous bootstrap key is
 * revoked. Idempotent; safe on every start of every replica.
 *
 * @returns the workspace id, whether the bootstrap key was newly registered,
 *   and how many earlier bootstrap keys were revoked.
 */
export async function bootstrap(
  deps: RuntimeDeps,
  options: { apiKey?: string | undefined },
): Promise<{ workspaceId: string; keyCreated: boolean; keysRevoked: number }> {
  const ws = await workspaces.ensureWorkspace(deps.db, DEFAULT_WORKSPACE.slug, DEFAULT_WORKSPACE.name);
  if (options.apiKey === undefined) return { workspaceId: ws.id, keyCreated: false, keysRevoked: 0 };
  const apiKey = options.apiKey;
  const keyHash = hashApiKey(apiKey);
  return inTransaction(deps.db, async (trx) => {
    const keyCreated = await apiKeys.insertApiKeyIfAbsent(trx, {
      workspaceId: ws.id,
      name: "bootstrap-admin",
      role: "admin",
      prefix: apiKey.slice(0, 12),
      keyHash,
      createdBy: BOOTSTRAP_SOURCE,
    });
    const keysRevoked = await apiKeys.revokeKeysCreatedByExcept(trx, ws.id, BOOTSTRAP_SOURCE, keyHash, nowOf(deps));
    if (keyCreated || keysRevoked > 0) {
      await audit.insertAuditEvent(trx, {
        workspaceId: ws.id,
        actor: null,
        channel: "system",
        action: keysRevoked > 0 ? "api_key.bootstrap_rotated" : "api_key.bootstrap_registered",
        subjectType: "workspace",
        subjectId: ws.id,
        before: null,
        after: { prefix: apiKey.slice(0, 12), revoked: keysRevoked },
        requestId: null,
      });
    }
    return { workspaceId: ws.id, keyCreated, keysRevoked };
  });
}
