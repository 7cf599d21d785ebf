import { describe, expect, it } from "vitest";
import type { ApiKeyPrincipal } from "./api-keys";
import { PrincipalCache } from "./principal-cache";

const principal = (id: string, workspaceId = "ws-1"): ApiKeyPrincipal => ({
  id,
  name: `${id}@acme.example`,
  role: "member",
  workspaceId,
  scopes: ["read", "write"],
});
const keyEntry = (id: string) => ({
  principal: principal(id),
  sessionId: null,
  sessionExpiresAt: null,
  sessionReadAt: null,
});

function listeningCache(options: { ttlMs?: number; capacity?: number } = {}) {
  let now = 0;
  const cache = new PrincipalCache({ ttlMs: options.ttlMs ?? 30_000, capacity: options.capacity, clock: () => now });
  cache.listeningStarted();
  return { cache, advance: (ms: number) => (now += ms) };
}

describe("PrincipalCache", () => {
  it("serves an entry until its TTL, then forgets it", () => {
    const { cache, advance } = listeningCache({ ttlMs: 30_000 });
    expect(cache.store("key:h1", keyEntry("k1"), cache.generation())).toBe(true);
    advance(29_999);
    expect(cache.lookup("key:h1")?.principal.id).toBe("k1");
    advance(1);
    expect(cache.lookup("key:h1")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("neither serves nor stores before listening, nor after the listener is lost", () => {
    const cache = new PrincipalCache({ ttlMs: 30_000 });
    expect(cache.listening).toBe(false);
    expect(cache.store("key:h1", keyEntry("k1"), cache.generation())).toBe(false);
    cache.listeningStarted();
    expect(cache.store("key:h1", keyEntry("k1"), cache.generation())).toBe(true);
    cache.listeningLost();
    expect(cache.lookup("key:h1")).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.store("key:h1", keyEntry("k1"), cache.generation())).toBe(false);
    // Back: from empty, and what was read during the outage is not stored.
    const duringOutage = cache.generation();
    cache.listeningStarted();
    expect(cache.store("key:h1", keyEntry("k1"), duringOutage)).toBe(false);
    expect(cache.store("key:h1", keyEntry("k1"), cache.generation())).toBe(true);
  });

  it("refuses to store a read that a change overtook", () => {
    const { cache } = listeningCache();
    const before = cache.generation();
    cache.apply({ kind: "api_key", id: "unrelated" });
    expect(cache.store("key:h1", keyEntry("k1"), before)).toBe(false);
    expect(cache.lookup("key:h1")).toBeUndefined();
  });

  it("drops a key's entries, its sessions' included, and a session's alone", () => {
    const { cache } = listeningCache();
    const session = (sessionId: string, keyId: string) => ({
      principal: principal(keyId),
      sessionId,
      sessionExpiresAt: new Date("2027-01-01T00:00:00Z"),
      sessionReadAt: new Date("2026-12-09T00:00:00Z"),
    });
    cache.store("key:h1", keyEntry("k1"), cache.generation());
    cache.store("session:s1", session("s1", "k1"), cache.generation());
    cache.store("session:s2", session("s2", "k2"), cache.generation());
    cache.store("session:s3", session("s3", "k2"), cache.generation());
    cache.apply({ kind: "api_key", id: "k1" });
    expect(cache.lookup("key:h1")).toBeUndefined();
    expect(cache.lookup("session:s1")).toBeUndefined();
    cache.apply({ kind: "session", id: "s2" });
    expect(cache.lookup("session:s2")).toBeUndefined();
    expect(cache.lookup("session:s3")?.sessionId).toBe("s3");
    cache.forget("session:s3");
    expect(cache.size).toBe(0);
  });

  it("empties itself when full rather than growing", () => {
    const { cache } = listeningCache({ capacity: 2 });
    cache.store("key:a", keyEntry("a"), cache.generation());
    cache.store("key:b", keyEntry("b"), cache.generation());
    cache.store("key:c", keyEntry("c"), cache.generation());
    expect(cache.size).toBe(1);
    expect(cache.lookup("key:c")?.principal.id).toBe("c");
  });

  it("refuses a TTL that is not a positive number of milliseconds", () => {
    expect(() => new PrincipalCache({ ttlMs: 0 })).toThrow(RangeError);
    expect(() => new PrincipalCache({ ttlMs: Number.NaN })).toThrow(RangeError);
  });

  it("wakes who waits for a change when the listener delivers it, and gives up after the timeout", async () => {
    const { cache } = listeningCache();
    const heard = cache.announced({ kind: "api_key", id: "k1" }, 1000);
    const missed = cache.announced({ kind: "api_key", id: "k2" }, 10);
    cache.apply({ kind: "api_key", id: "k1" }); // a local drop is not the notification
    cache.heard({ kind: "api_key", id: "k1" });
    expect(await heard).toBe(true);
    expect(await missed).toBe(false);
    expect(await new PrincipalCache({ ttlMs: 1000 }).announced({ kind: "session", id: "s1" })).toBe(false);
  });
});
