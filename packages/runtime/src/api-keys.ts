/**
 * API keys: bearer tokens owned by a named person or agent with a role. Keys
 * are 256-bit random strings; only their SHA-256 is stored (a key has enough
 * entropy that a slow hash adds nothing), so a database leak reveals no key.
 * A key also carries scopes (read, write, admin) and may do what both its role
 * and its scopes allow; it can be listed (never its hash) and revoked, and its
 * last use is recorded at most once a minute.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  API_KEY_SCOPES,
  type ApiKeyScope,
  authorize,
  DomainError,
  isRole,
  knownScopes,
  newKeyScopes,
  type Principal,
  ROLES,
  type Role,
} from "@outcome-runtime/core";
import { apiKeys, audit, sessions, workspaces } from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";

const KEY_PREFIX = "ork_";

/** A key's principal with the key's scopes. */
export interface ApiKeyPrincipal extends Principal {
  readonly scopes: readonly ApiKeyScope[];
}

/** Keys are looked up by id; anything that is not a UUID is no key. */
const UUID_FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** SHA-256 hex of a key. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random key: `ork_` + 43 base64url characters (256 bits). */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

/** A key as admins see it: never the key or its hash. */
export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly scopes: readonly ApiKeyScope[];
  /** The first 12 characters of the key, to recognise it. */
  readonly prefix: string;
  readonly createdAt: Date;
  /** Updated on successful authentication, at most once a minute. */
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

export interface CreatedApiKey {
  /** The key itself: shown once, never stored. */
  readonly key: string;
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly scopes: readonly ApiKeyScope[];
  readonly prefix: string;
  readonly createdAt: Date;
}

function infoOf(record: apiKeys.ApiKeyRecord): ApiKeyInfo {
  return {
    id: record.id,
    name: record.name,
    role: record.role,
    scopes: knownScopes(record.scopes),
    prefix: record.prefix,
    createdAt: record.createdAt,
    lastUsedAt: record.lastUsedAt,
    revokedAt: record.revokedAt,
  };
}

/**
 * Create a key in the caller's workspace.
 *
 * @param input.name a person's email or an agent's name (e.g. `claude-code`).
 * @param input.scopes what the key may be used for (default: what the role
 *   allows, and no more than the caller's own key has).
 * @throws DomainError `forbidden` unless the caller may `key.create` (an admin
 *   key with the `admin` and `write` scopes), or when asking for a scope the
 *   caller's key lacks;
 *   `validation_failed` for an empty name, an unknown role or scope, no
 *   scope, or `admin` on a key that is not an admin's.
 */
export async function createApiKey(
  deps: RuntimeDeps,
  caller: Caller,
  input: { name: string; role: Role; scopes?: readonly string[] | undefined },
): Promise<CreatedApiKey> {
  authorize(caller, "key.create");
  const name = input.name.trim();
  if (name === "" || name.length > 200) {
    throw new DomainError("validation_failed", "name must be a person's email or an agent's name (1–200 characters)", {
      field: "name",
    });
  }
  if (!isRole(input.role)) {
    throw new DomainError("validation_failed", `role "${input.role}" is not one of ${ROLES.join(", ")}`, {
      field: "role",
    });
  }
  const scopes = newKeyScopes(caller.principal, input.role, input.scopes);
  const key = generateApiKey();
  return inTransaction(deps.db, async (trx) => {
    const record = await apiKeys.insertApiKey(trx, {
      workspaceId: caller.principal.workspaceId,
      name,
      role: input.role,
      scopes,
      prefix: key.slice(0, 12),
      keyHash: hashApiKey(key),
      createdBy: caller.principal.name,
      // Keys belong to the member who made them: removing the member revokes them.
      memberId: caller.principal.memberId ?? null,
    });
    await audit.insertAuditEvent(trx, {
      workspaceId: caller.principal.workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "api_key.created",
      subjectType: "api_key",
      subjectId: record.id,
      before: null,
      after: { name, role: input.role, scopes, prefix: record.prefix },
      requestId: caller.requestId,
    });
    return {
      key,
      id: record.id,
      name,
      role: record.role,
      scopes,
      prefix: record.prefix,
      createdAt: record.createdAt,
    };
  });
}

/**
 * The keys of the caller's workspace, revoked ones included, oldest first.
 *
 * @throws DomainError `forbidden` unless the caller may `key.list` (an admin key with the `admin` scope).
 */
export async function listApiKeys(deps: RuntimeDeps, caller: Caller): Promise<ApiKeyInfo[]> {
  authorize(caller, "key.list");
  return (await apiKeys.listApiKeys(deps.db, caller.principal.workspaceId)).map(infoOf);
}

/**
 * Revoke a key of the caller's workspace: from now on it authenticates
 * nothing (the next request with it is a 401), and the dashboard sessions
 * signed in with it are revoked too. Idempotent: revoking a revoked
 * key changes nothing and writes no second audit event.
 *
 * @returns the key, and whether this call revoked it (false: it was revoked already).
 * @throws DomainError `forbidden` unless the caller may `key.revoke` (an
 *   admin key with the `admin` and `write` scopes); `not_found` when the
 *   workspace has no key with this id.
 */
export async function revokeApiKey(
  deps: RuntimeDeps,
  caller: Caller,
  id: string,
): Promise<{ key: ApiKeyInfo; revoked: boolean }> {
  authorize(caller, "key.revoke");
  const notFound = () =>
    new DomainError(
      "not_found",
      `no API key with id ${id} in this workspace; list them with outcome-runtime keys list`,
    );
  if (!UUID_FORMAT.test(id)) throw notFound();
  const announced = deps.principalCache?.announced({ kind: "api_key", id });
  const result = await inTransaction(deps.db, async (trx) => {
    const { record, revoked } = await apiKeys.revokeApiKey(trx, caller.principal.workspaceId, id, nowOf(deps));
    if (record === null) throw notFound();
    if (revoked) {
      // Its dashboard sessions end with it (they would authenticate nothing anyway: the lookup joins the key).
      await sessions.revokeSessionsOfKey(trx, record.id, nowOf(deps));
      await audit.insertAuditEvent(trx, {
        workspaceId: caller.principal.workspaceId,
        actor: auditActor(caller),
        channel: caller.channel,
        action: "api_key.revoked",
        subjectType: "api_key",
        subjectId: record.id,
        before: { name: record.name, role: record.role, prefix: record.prefix, revokedAt: null },
        after: { name: record.name, role: record.role, prefix: record.prefix, revokedAt: record.revokedAt },
        requestId: caller.requestId,
      });
    }
    return { key: infoOf(record), revoked };
  });
  // This process drops it now; the others when the trigger's notification reaches them (on commit). The answer
  // waits (1 s at most) until the notification reached this process too, so it has been sent to every replica.
  if (result.revoked) {
    deps.principalCache?.apply({ kind: "api_key", id: result.key.id });
    await announced;
  }
  return result;
}

/**
 * The principal owning `key`, with the key's scopes, or null for an unknown
 * or revoked key. Records the key's last use (at most once a minute) without
 * waiting for it: a failed write is reported to `onLastUsedError` and never
 * fails or delays the caller. With `deps.principalCache`, a key seen in the
 * last `ttlMs` is answered from it (keyed by the key's SHA-256), as long as
 * the cache is hearing revocations; otherwise from the database.
 */
export async function authenticate(
  deps: RuntimeDeps,
  key: string,
  options: { onLastUsedError?: (error: unknown) => void } = {},
): Promise<ApiKeyPrincipal | null> {
  if (key.length < 16 || key.length > 512) return null;
  const keyHash = hashApiKey(key);
  const cache = deps.principalCache;
  const cacheKey = `key:${keyHash}`;
  let principal = (await cache?.confirmedLookup(cacheKey))?.principal;
  if (principal === undefined) {
    const generation = cache?.generation() ?? 0;
    const found = await apiKeys.findPrincipalByKeyHash(deps.db, keyHash);
    if (found === null) return null;
    principal = { ...found.principal, scopes: knownScopes(found.scopes) };
    cache?.store(cacheKey, { principal, sessionId: null, sessionExpiresAt: null, sessionReadAt: null }, generation);
  }
  const id = principal.id;
  const now = nowOf(deps);
  if (!recentlyTouched(id, now)) {
    apiKeys
      .touchLastUsed(deps.db, id, now)
      .then((written) => {
        if (written) lastTouched(id, now);
      })
      .catch((error: unknown) => {
        options.onLastUsedError?.(error);
      });
  }
  return principal;
}

/**
 * When this process last wrote each key's `last_used_at` (key id → ms). The
 * write is conditional (`touchLastUsed` changes nothing within
 * `LAST_USED_PRECISION_MS` of the stored time), so once this process has
 * written time T, every touch before T + the precision is a no-op UPDATE: it
 * is skipped, which saves a round-trip on every authenticated request. Only
 * successful writes are remembered, so the stored value is never older than
 * the conditional UPDATE alone would leave it. Bounded: cleared when full.
 */
const touchedAt = new Map<string, number>();
const TOUCHED_CAPACITY = 10_000;

function recentlyTouched(id: string, now: Date): boolean {
  const at = touchedAt.get(id);
  if (at === undefined) return false;
  const age = now.getTime() - at;
  return age >= 0 && age < apiKeys.LAST_USED_PRECISION_MS;
}

function lastTouched(id: string, now: Date): void {
  if (touchedAt.size >= TOUCHED_CAPACITY) touchedAt.clear();
  touchedAt.set(id, now.getTime());
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
      scopes: API_KEY_SCOPES,
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
