/**
 * Dashboard sessions held by the server. Signing in with an API key creates a
 * session whose random token (256 bits, `ors_` + 43 base64url characters) is
 * the cookie's value; only its SHA-256 is stored, and the key never leaves the
 * sign-in request. A session authenticates as its key, with the key's role and
 * scopes, until the first of: sign-out (revoked at once), the key's revocation,
 * {@link SESSION_IDLE_MS} without a request, {@link SESSION_MAX_AGE_MS} after
 * sign-in.
 */
import { createHash, randomBytes } from "node:crypto";
import { type ApiKeyScope, DomainError, knownScopes, memberSessionScopes } from "@outcome-runtime/core";
import { apiKeys, members, sessions } from "@outcome-runtime/db";
import { type ApiKeyPrincipal, authenticate } from "./api-keys";
import { nowOf, type RuntimeDeps } from "./context";
import { assertMembership } from "./members";

/** A session ends after this long without a request: 12 hours. */
export const SESSION_IDLE_MS = 12 * 3600_000;
/** A session ends this long after sign-in, however busy: 7 days. */
export const SESSION_MAX_AGE_MS = 7 * 24 * 3600_000;

const TOKEN_PREFIX = "ors_";

/**
 * A cached session is read from the database again (its idle limit checked,
 * its use recorded) once this much time has passed by the use cases' clock,
 * whatever the cache's TTL: the precision of `last_seen_at`.
 */
const SESSION_TOUCH_MS = 60_000;

/** SHA-256 hex of a session token: what the sessions table stores. */
export function hashSessionToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new session, as sign-in answers it: the token is shown once (in the cookie) and never stored. */
export interface StartedSession {
  readonly token: string;
  readonly principal: ApiKeyPrincipal;
  readonly expiresAt: Date;
}

/**
 * Sign in with an API key: a new session of that key, or null when the key is
 * unknown or revoked. Sessions that ended more than a day ago are deleted on
 * the way (they authenticate nothing).
 */
export async function startSession(deps: RuntimeDeps, apiKey: string): Promise<StartedSession | null> {
  const principal = await authenticate(deps, apiKey);
  if (principal === null) return null;
  const now = nowOf(deps);
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + SESSION_MAX_AGE_MS);
  await sessions.insertSession(deps.db, {
    workspaceId: principal.workspaceId,
    apiKeyId: principal.id,
    tokenHash: hashSessionToken(token),
    at: now,
    expiresAt,
  });
  await sessions.deleteEndedSessions(deps.db, new Date(now.getTime() - 24 * 3600_000));
  return { token, principal, expiresAt };
}

/**
 * The principal a session token stands for, with its key's scopes, or null
 * when the session is unknown, signed out, expired (idle or absolute) or its
 * key revoked. Records the use (at most once a minute, session and key)
 * without waiting: a failed write goes to `onTouchError`, never to the caller.
 * With `deps.principalCache`, a session read in the last `ttlMs` is answered
 * from it (keyed by the token's SHA-256; its absolute end still checked on
 * every request), while the cache is hearing changes, for up to a minute
 * by `deps.now` (then read again, which records its use).
 */
export async function sessionPrincipal(
  deps: RuntimeDeps,
  token: string,
  options: { onTouchError?: (error: unknown) => void } = {},
): Promise<ApiKeyPrincipal | null> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return null;
  const now = nowOf(deps);
  const tokenHash = hashSessionToken(token);
  const cache = deps.principalCache;
  const cacheKey = `session:${tokenHash}`;
  const cached = await cache?.confirmedLookup(cacheKey);
  if (cached?.sessionExpiresAt != null && cached.sessionReadAt !== null) {
    if (now >= cached.sessionExpiresAt) return null;
    // Read (and its use recorded) less than a minute ago by this clock: not idle, and no use to record yet.
    const sinceRead = now.getTime() - cached.sessionReadAt.getTime();
    if (sinceRead >= 0 && sinceRead < SESSION_TOUCH_MS) return cached.principal;
  }
  const generation = cache?.generation() ?? 0;
  const session = await sessions.findLiveSession(deps.db, tokenHash, now);
  if (session === null || now.getTime() - session.lastSeenAt.getTime() > SESSION_IDLE_MS) return null;
  const failed = (error: unknown) => options.onTouchError?.(error);
  sessions.touchSession(deps.db, session.id, now).catch(failed);
  if (session.memberId === null) apiKeys.touchLastUsed(deps.db, session.principal.id, now).catch(failed);
  // A member's session has the scopes of the member's role in the session's workspace.
  const scopes: ApiKeyScope[] = knownScopes(session.scopes ?? memberSessionScopes(session.principal.role));
  const principal = { ...session.principal, scopes };
  cache?.store(
    cacheKey,
    { principal, sessionId: session.id, sessionExpiresAt: session.expiresAt, sessionReadAt: now },
    generation,
  );
  return principal;
}

/**
 * Start a member's session (after an email link, an invitation or single
 * sign-on proved who they are), in `workspaceId` or, when null, with no
 * workspace yet (an installation admin who has none). Same token, lifetime and
 * storage as a key's session.
 */
export async function startMemberSession(
  deps: RuntimeDeps,
  memberId: string,
  workspaceId: string | null,
): Promise<{ token: string; expiresAt: Date }> {
  const now = nowOf(deps);
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + SESSION_MAX_AGE_MS);
  await sessions.insertSession(deps.db, {
    workspaceId,
    memberId,
    tokenHash: hashSessionToken(token),
    at: now,
    expiresAt,
  });
  await sessions.deleteEndedSessions(deps.db, new Date(now.getTime() - 24 * 3600_000));
  return { token, expiresAt };
}

/**
 * A member's live session (not signed out, expired or idle, member not
 * disabled), whatever its workspace; null otherwise or for a key's session.
 */
export async function memberSessionOf(
  deps: RuntimeDeps,
  token: string,
): Promise<{ id: string; memberId: string; workspaceId: string | null } | null> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return null;
  const now = nowOf(deps);
  const session = await sessions.findMemberSession(deps.db, hashSessionToken(token), now);
  if (session === null || now.getTime() - session.lastSeenAt.getTime() > SESSION_IDLE_MS) return null;
  return { id: session.id, memberId: session.memberId, workspaceId: session.workspaceId };
}

/** Sign out: revoke the session of this token at once. Idempotent; an unknown token changes nothing. */
export async function endSession(deps: RuntimeDeps, token: string): Promise<void> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return;
  const tokenHash = hashSessionToken(token);
  const cache = deps.principalCache;
  let announced: Promise<boolean> | undefined;
  if (cache?.listening) {
    const sessionId =
      cache.lookup(`session:${tokenHash}`)?.sessionId ??
      (await sessions.findLiveSession(deps.db, tokenHash, nowOf(deps)))?.id;
    if (sessionId !== undefined && sessionId !== null) announced = cache.announced({ kind: "session", id: sessionId });
  }
  const revoked = await sessions.revokeSession(deps.db, tokenHash, nowOf(deps));
  // This process forgets it now; the others when the trigger's notification reaches them (on commit). Like a
  // key's revocation, sign-out answers once the notification reached this process too (1 s at most).
  cache?.forget(`session:${tokenHash}`);
  if (revoked) await announced;
}

/**
 * Move a member's session to another of their workspaces (the switcher): its
 * cached principal is dropped everywhere (the row's change is announced).
 *
 * @throws DomainError `not_found` when the session is not a member's live session or the member does not belong there.
 */
export async function switchSessionWorkspace(deps: RuntimeDeps, token: string, workspaceId: string): Promise<void> {
  const session = await memberSessionOf(deps, token);
  if (session === null) throw new DomainError("not_found", "no member's session to switch; sign in again");
  await assertMembership(deps, session.memberId, workspaceId);
  const tokenHash = hashSessionToken(token);
  const announced = deps.principalCache?.listening
    ? deps.principalCache.announced({ kind: "session", id: session.id })
    : undefined;
  if (await sessions.switchSessionWorkspace(deps.db, tokenHash, workspaceId, nowOf(deps))) {
    deps.principalCache?.forget(`session:${tokenHash}`);
    await announced;
  }
}

/**
 * Sign out everywhere: revoke every session of the member (a member's
 * session) or of the API key (a key's session) this token belongs to.
 * Returns how many sessions ended; 0 for an unknown token.
 */
export async function endAllSessions(deps: RuntimeDeps, token: string): Promise<number> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) return 0;
  const now = nowOf(deps);
  const tokenHash = hashSessionToken(token);
  const member = await sessions.findMemberSession(deps.db, tokenHash, now);
  const live = member === null ? await sessions.findLiveSession(deps.db, tokenHash, now) : null;
  let ended = 0;
  if (member !== null) ended = await members.revokeMemberSessions(deps.db, member.memberId, null, now);
  else if (live !== null) ended = await sessions.revokeSessionsOfKey(deps.db, live.principal.id, now);
  deps.principalCache?.forget(`session:${tokenHash}`);
  return ended;
}
