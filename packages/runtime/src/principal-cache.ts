/**
 * The principals this process authenticated recently, so a busy key or
 * session costs no database read per request. Entries are keyed by the
 * SHA-256 of the credential (never the credential itself), hold what the
 * database answered for it, and live at most `ttlMs`.
 *
 * Safe only while the process hears every change to credentials: the API
 * listens for the notifications that the database's triggers send in the
 * transaction of every revocation or change of a key or a session
 * (`listenForAuthChanges` of packages/db), and calls {@link PrincipalCache.apply}
 * for each. Until the listener is in place, and from the moment its
 * connection is lost until it is back, the cache is empty and bypassed: every
 * request reads the database. The TTL bounds how long a principal may
 * outlive its revocation if a notification is lost without the connection
 * being lost.
 *
 * A lookup that started before a change and finishes after it must not store
 * what it read: {@link PrincipalCache.generation} is taken before the read,
 * and {@link PrincipalCache.store} refuses when any change, loss or reconnect
 * happened in between.
 */
import type { ApiKeyScope, Principal } from "@outcome-runtime/core";
import { type AuthChange, listenForAuthChanges } from "@outcome-runtime/db";

/** A key's principal with the key's scopes (`ApiKeyPrincipal` of api-keys.ts). */
type ApiKeyPrincipal = Principal & { readonly scopes: readonly ApiKeyScope[] };

/** How long a cached principal is served without asking the database again, by default: 30 s. */
export const DEFAULT_PRINCIPAL_CACHE_TTL_MS = 30_000;

/** What is cached for one credential. */
interface CachedPrincipal {
  readonly principal: ApiKeyPrincipal;
  /** The session's id for a session token; null for an API key. */
  readonly sessionId: string | null;
  /** When the session ends (absolute limit), for a session token; null for an API key. */
  readonly sessionExpiresAt: Date | null;
  /** When (by the use cases' clock) the session was read from the database and its use recorded; null for a key. */
  readonly sessionReadAt: Date | null;
}

interface Entry extends CachedPrincipal {
  /** `clock()` when stored, in ms. */
  readonly storedAt: number;
}

interface PrincipalCacheOptions {
  /** How long an entry is served, in ms (> 0). */
  readonly ttlMs: number;
  /** At most this many entries (default 10,000); when full, the cache is emptied. */
  readonly capacity?: number;
  /** A monotonic clock in ms (default `performance.now`); tests pass their own. */
  readonly clock?: () => number;
}

/** The cache of one process; see the module's comment for when it may serve. */
export class PrincipalCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #capacity: number;
  readonly #clock: () => number;
  #generation = 0;
  #listening = false;
  readonly #waiters = new Map<string, Set<(heard: boolean) => void>>();
  #sync: () => Promise<boolean> = () => Promise.resolve(false);

  /** @throws RangeError when `ttlMs` is not a positive finite number. */
  constructor(options: PrincipalCacheOptions) {
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) {
      throw new RangeError(`ttlMs must be a positive number of milliseconds, not ${options.ttlMs}`);
    }
    this.#ttlMs = options.ttlMs;
    this.#capacity = options.capacity ?? 10_000;
    this.#clock = options.clock ?? (() => performance.now());
  }

  /** Whether changes are being heard, so the cache serves and stores. */
  get listening(): boolean {
    return this.#listening;
  }

  /** How many credentials are cached. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * What is cached for a credential's hash, once every change the database
   * had announced when the call was made has been applied (a round-trip on
   * the listening connection, shared by concurrent calls): so a revocation
   * that committed before this request is never overtaken by a cached
   * principal, even when its notification is still on its way. Undefined
   * when nothing is cached or that round-trip failed: read the database.
   */
  async confirmedLookup(hash: string): Promise<CachedPrincipal | undefined> {
    if (this.lookup(hash) === undefined) return undefined;
    if (!(await this.#sync())) return undefined;
    return this.lookup(hash);
  }

  /** Set how {@link confirmedLookup} waits for the changes announced so far (the listener's `sync`). */
  syncWith(sync: () => Promise<boolean>): void {
    this.#sync = sync;
  }

  /** Take before reading the database; pass to {@link store}. */
  generation(): number {
    return this.#generation;
  }

  /**
   * What is cached for a credential's hash, if anything younger than the TTL
   * is and the cache is serving; undefined otherwise (read the database).
   */
  lookup(hash: string): CachedPrincipal | undefined {
    if (!this.#listening) return undefined;
    const entry = this.#entries.get(hash);
    if (entry === undefined) return undefined;
    if (this.#clock() - entry.storedAt >= this.#ttlMs) {
      this.#entries.delete(hash);
      return undefined;
    }
    return entry;
  }

  /**
   * Remember what the database answered for a credential's hash, unless the
   * cache is not serving or anything changed since `generation` was taken.
   *
   * @returns whether it was stored.
   */
  store(hash: string, value: CachedPrincipal, generation: number): boolean {
    if (!this.#listening || generation !== this.#generation) return false;
    if (this.#entries.size >= this.#capacity) this.#entries.clear();
    this.#entries.set(hash, { ...value, storedAt: this.#clock() });
    return true;
  }

  /** Drop what is cached for one credential's hash (signing out in this process). */
  forget(hash: string): void {
    this.#generation++;
    this.#entries.delete(hash);
  }

  /** A key or a session changed: drop every entry it stands behind (a key's sessions too). */
  apply(change: AuthChange): void {
    this.#generation++;
    for (const [hash, entry] of this.#entries) {
      const hit = change.kind === "api_key" ? entry.principal.id === change.id : entry.sessionId === change.id;
      if (hit) this.#entries.delete(hash);
    }
  }

  /**
   * Resolve once the listener delivers `change` (through {@link heard}), or
   * after `timeoutMs`, or at once when not listening. A use case that revokes
   * calls it before its transaction and awaits it after the commit, so it
   * answers only once the database has sent the notification (to every
   * listening process at once): a client that then uses another replica
   * finds the entry gone there too.
   *
   * @returns whether the notification was heard in time.
   */
  announced(change: AuthChange, timeoutMs = 1000): Promise<boolean> {
    if (!this.#listening) return Promise.resolve(false);
    const key = `${change.kind}:${change.id}`;
    return new Promise((resolve) => {
      const done = (heard: boolean) => {
        clearTimeout(timer);
        this.#waiters.get(key)?.delete(done);
        resolve(heard);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const waiting = this.#waiters.get(key) ?? new Set();
      waiting.add(done);
      this.#waiters.set(key, waiting);
    });
  }

  /** The listener delivered a change: drop its entries, and wake who waits for it. */
  heard(change: AuthChange): void {
    this.apply(change);
    const key = `${change.kind}:${change.id}`;
    for (const done of [...(this.#waiters.get(key) ?? [])]) done(true);
    this.#waiters.delete(key);
  }

  /** The listener is in place: start serving, from empty (changes during the outage went unheard). */
  listeningStarted(): void {
    this.#generation++;
    this.#entries.clear();
    this.#listening = true;
  }

  /** The listener's connection is lost: empty the cache and bypass it until {@link listeningStarted}. */
  listeningLost(): void {
    this.#generation++;
    this.#entries.clear();
    this.#listening = false;
  }
}

/** A running principal cache and its listener. */
interface ListeningPrincipalCache {
  readonly cache: PrincipalCache;
  /** Stop listening; the cache stops serving. */
  readonly close: () => Promise<void>;
}

/**
 * A principal cache fed by `listenForAuthChanges` on a connection of its own
 * to `databaseUrl`. Resolves once the first `LISTEN` is in place or has
 * failed (at most 5 s), so a started API caches from its first request when
 * the database is reachable; the cache is bypassed until then, and from any
 * loss of the connection until it is back (`reconnectMs` later, default
 * 1000 ms, doubling while it fails).
 *
 * @param options.onListening, options.onLost for logs: the listener started, or was lost (with the error).
 * @throws RangeError when `ttlMs` is not a positive number.
 */
export async function startPrincipalCache(options: {
  databaseUrl: string;
  ttlMs: number;
  reconnectMs?: number | undefined;
  onListening?: () => void;
  onLost?: (error: unknown) => void;
}): Promise<ListeningPrincipalCache> {
  const cache = new PrincipalCache({ ttlMs: options.ttlMs });
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const listener = listenForAuthChanges(
    options.databaseUrl,
    {
      onChange: (change) => cache.heard(change),
      onListening: () => {
        cache.listeningStarted();
        options.onListening?.();
        settle();
      },
      onLost: (error) => {
        cache.listeningLost();
        options.onLost?.(error);
        settle();
      },
    },
    options.reconnectMs === undefined ? {} : { reconnectMs: options.reconnectMs },
  );
  cache.syncWith(listener.sync);
  const timeout = setTimeout(settle, 5_000);
  await settled;
  clearTimeout(timeout);
  return {
    cache,
    close: async () => {
      await listener.close();
      cache.listeningLost();
    },
  };
}
