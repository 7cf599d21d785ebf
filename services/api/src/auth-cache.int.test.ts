/**
 * The principal cache across API replicas: two app instances on one database,
 * each caching principals and listening for the database's change
 * notifications. A revocation or a sign-out in one is refused by the other at
 * its next request (the revoking request answers once the notification is
 * out); a change by hand in SQL within moments, long before the TTL; a session's end is
 * checked on every request; a lost listener empties the cache and every
 * request reads the database until it is back; one workspace's principal is
 * never served for another's key. Real Postgres and Redis.
 */
import { workspaces } from "@outcome-runtime/db";
import { createApiKey, hashApiKey } from "@outcome-runtime/runtime";
import { terminateConnections, unreachableDatabaseUrl, waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

type App = TestApi["app"];

let api: TestApi;
/** A second replica: its own cache and listener, the same database. */
let replica: App;
const extra: App[] = [];

beforeAll(async () => {
  api = await createTestApi();
  replica = await buildTestApp(api.t.db, api.redis, { authCache: { databaseUrl: api.t.url, ttlMs: 60_000 } });
});
afterAll(async () => {
  for (const app of extra) await app.close();
  await replica?.close();
  await api?.close();
});

function cacheOf(app: App) {
  const cache = app.principalCache;
  if (cache === null) throw new Error("the app was built without a principal cache");
  return cache;
}

async function createKey(body: { name: string; role: string; scopes?: string[] }) {
  const response = await api.app.inject({ method: "POST", url: "/v1/keys", headers: api.auth, payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { key: string; id: string };
}

function get(app: App, key: string, url = "/v1/outcomes") {
  return app.inject({ method: "GET", url, headers: { authorization: `Bearer ${key}` } });
}

async function revoke(app: App, id: string) {
  const response = await app.inject({ method: "DELETE", url: `/v1/keys/${id}`, headers: api.auth });
  expect(response.json()).toMatchObject({ revoked: true });
}

/** Sign in on `app`; the session cookie and the CSRF token. */
async function signIn(app: App, apiKey: string) {
  const res = await app.inject({ method: "POST", url: "/session", payload: { apiKey } });
  expect(res.statusCode, res.body).toBe(200);
  const cookies = Object.fromEntries(res.cookies.map((c) => [c.name, c.value]));
  return { cookie: `or_session=${cookies.or_session}; or_csrf=${cookies.or_csrf}`, csrf: String(cookies.or_csrf) };
}

/** Terminate every auth listener's connection to the test database (both replicas'). */
function terminateListeners(): Promise<number> {
  return terminateConnections(api.t, "outcome-runtime-auth-listener");
}

/**
 * How long a change by hand may take to be heard: a third of the replica's 60 s TTL, so a change that takes
 * effect was announced, not expired (it is announced on commit, with no request waiting for it; usually in
 * milliseconds, but a busy machine may take longer).
 */
const HEARD_WITHIN_MS = 20_000;

/** The status `app` answers `key` on `url`, once it is `status` (within {@link HEARD_WITHIN_MS}). */
function statusSoon(app: App, key: string, url: string, status: number) {
  return waitFor(
    `${url} answering ${status}`,
    async () => ((await get(app, key, url)).statusCode === status ? true : undefined),
    { timeoutMs: HEARD_WITHIN_MS, intervalMs: 5 },
  );
}

/** Change a key's role and scopes in the database, as an operator would by hand. */
async function setRole(id: string, role: string, scopes: string[]) {
  await api.t.db.updateTable("api_keys").set({ role, scopes }).where("id", "=", id).execute();
}

describe("the principal cache", () => {
  it("serves a key's repeated requests from memory, keyed by the key's hash and never the key", async () => {
    const { key } = await createKey({ name: "cached@acme.example", role: "member" });
    expect(cacheOf(replica).listening).toBe(true);
    const before = cacheOf(replica).size;
    expect((await get(replica, key)).statusCode).toBe(200);
    expect(cacheOf(replica).size).toBe(before + 1);
    expect((await get(replica, key)).statusCode).toBe(200);
    expect(cacheOf(replica).size).toBe(before + 1);
    expect(cacheOf(replica).lookup(`key:${hashApiKey(key)}`)?.principal.name).toBe("cached@acme.example");
    expect(cacheOf(replica).lookup(`key:${key}`)).toBeUndefined();
  });

  it("a key revoked through one replica is refused by the other at its very next request", async () => {
    for (let round = 0; round < 5; round++) {
      const { key, id } = await createKey({ name: `revoked-${round}@acme.example`, role: "member" });
      // Cached on both replicas.
      for (const app of [replica, api.app, replica, api.app]) expect((await get(app, key)).statusCode).toBe(200);
      expect(cacheOf(replica).lookup(`key:${hashApiKey(key)}`)).toBeDefined();
      await revoke(api.app, id);
      const refused = await get(replica, key);
      expect(refused.statusCode, `round ${round}`).toBe(401);
      expect(refused.json()).toMatchObject({ code: "unauthenticated" });
      expect((await get(api.app, key)).statusCode).toBe(401);
    }
  });

  it("a role changed in the database by hand takes effect within moments, up and down", async () => {
    const { key, id } = await createKey({ name: "promoted@acme.example", role: "member" });
    const listKeys = () => get(replica, key, "/v1/keys");
    const refused = await listKeys();
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: "forbidden" });
    await setRole(id, "admin", ["read", "write", "admin"]);
    await statusSoon(replica, key, "/v1/keys", 200);
    expect((await listKeys()).statusCode).toBe(200);
    await setRole(id, "member", ["read", "write"]);
    await statusSoon(replica, key, "/v1/keys", 403);
    // A scope taken away alone counts too: reads still pass, writes are refused.
    await setRole(id, "member", ["read"]);
    await waitFor("the scope change heard", () => cacheOf(replica).lookup(`key:${hashApiKey(key)}`) === undefined, {
      timeoutMs: HEARD_WITHIN_MS,
      intervalMs: 5,
    });
    expect((await get(replica, key)).statusCode).toBe(200);
    const write = await replica.inject({
      method: "POST",
      url: "/v1/outcomes",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/yaml" },
      body: "slug: x\n",
    });
    expect(write.json()).toMatchObject({ code: "forbidden" });
  });

  it("a key deleted by hand is refused within moments", async () => {
    const { key, id } = await createKey({ name: "deleted@acme.example", role: "member" });
    expect((await get(replica, key)).statusCode).toBe(200);
    await api.t.db.deleteFrom("api_keys").where("id", "=", id).execute();
    await statusSoon(replica, key, "/v1/outcomes", 401);
  });

  it("never serves one workspace's principal for another workspace's key", async () => {
    const other = await workspaces.ensureWorkspace(api.t.db, "cache-other", "Another team");
    const otherAdmin = await createApiKey(
      { db: api.t.db },
      {
        principal: { id: "test-admin", name: "admin@other.example", role: "admin", workspaceId: other.id },
        channel: "api",
        requestId: null,
      },
      { name: "admin@other.example", role: "admin" },
    );
    const names = async (key: string) =>
      ((await get(replica, key, "/v1/keys")).json() as { keys: { name: string }[] }).keys.map((k) => k.name);
    for (let round = 0; round < 3; round++) {
      const mine = await names(api.seed.adminKey);
      const theirs = await names(otherAdmin.key);
      expect(theirs).toEqual(["admin@other.example"]);
      expect(mine).not.toContain("admin@other.example");
      expect(mine).toContain("bootstrap-admin");
    }
    expect(cacheOf(replica).lookup(`key:${hashApiKey(otherAdmin.key)}`)?.principal.workspaceId).toBe(other.id);
    expect(cacheOf(replica).lookup(`key:${hashApiKey(api.seed.adminKey)}`)?.principal.workspaceId).toBe(
      api.seed.workspaceId,
    );
  });

  it("a session signed out on one replica is refused by the other at its next request", async () => {
    const { cookie, csrf } = await signIn(api.app, api.seed.adminKey);
    const read = (app: App) => app.inject({ method: "GET", url: "/v1/outcomes", headers: { cookie } });
    expect((await read(replica)).statusCode).toBe(200);
    expect((await read(replica)).statusCode).toBe(200);
    const out = await api.app.inject({ method: "DELETE", url: "/session", headers: { cookie, "x-csrf-token": csrf } });
    expect(out.statusCode).toBeLessThan(300);
    expect((await read(replica)).statusCode).toBe(401);
    expect((await read(api.app)).statusCode).toBe(401);
  });

  it("a cached session is refused once it has expired, and re-read once idle time has passed", async () => {
    let now = new Date("2026-12-09T08:00:00Z");
    const timed = await buildTestApp(api.t.db, api.redis, {
      deps: { db: api.t.db, now: () => now },
      authCache: { databaseUrl: api.t.url, ttlMs: 60_000 },
    });
    extra.push(timed);
    const { cookie } = await signIn(timed, api.seed.adminKey);
    const read = () => timed.inject({ method: "GET", url: "/v1/outcomes", headers: { cookie } });
    expect((await read()).statusCode).toBe(200);
    // Past the session's absolute end: refused from the cache itself.
    now = new Date(now.getTime() + 7 * 24 * 3600_000 + 1000);
    expect((await read()).statusCode).toBe(401);
    // A new session left idle 13 hours: the cache reads the database again, which refuses it.
    now = new Date("2026-12-20T08:00:00Z");
    const second = await signIn(timed, api.seed.adminKey);
    const readSecond = () => timed.inject({ method: "GET", url: "/v1/outcomes", headers: { cookie: second.cookie } });
    expect((await readSecond()).statusCode).toBe(200);
    now = new Date(now.getTime() + 13 * 3600_000);
    expect((await readSecond()).statusCode).toBe(401);
  });

  it("a lost listener empties the cache and every request reads the database until it is back", async () => {
    const slow = await buildTestApp(api.t.db, api.redis, {
      authCache: { databaseUrl: api.t.url, ttlMs: 60_000, reconnectMs: 600_000 },
    });
    extra.push(slow);
    const { key, id } = await createKey({ name: "outage@acme.example", role: "member" });
    expect((await get(slow, key)).statusCode).toBe(200);
    expect(cacheOf(slow).size).toBeGreaterThan(0);
    expect(await terminateListeners()).toBeGreaterThanOrEqual(2);
    await waitFor("the listener's loss noticed", () => !cacheOf(slow).listening);
    expect(cacheOf(slow).size).toBe(0);
    // Bypassed: the database answers, and nothing is stored.
    expect((await get(slow, key)).statusCode).toBe(200);
    expect(cacheOf(slow).size).toBe(0);
    // A revocation it cannot hear of is still refused at once.
    await revoke(api.app, id);
    expect((await get(slow, key)).statusCode).toBe(401);
  });

  it("after a lost listener reconnects, it caches again and hears revocations again", async () => {
    await waitFor("the replica's listener back", () => cacheOf(replica).listening, { timeoutMs: 10_000 });
    const { key, id } = await createKey({ name: "reconnected@acme.example", role: "member" });
    expect((await get(replica, key)).statusCode).toBe(200);
    expect(cacheOf(replica).lookup(`key:${hashApiKey(key)}`)).toBeDefined();
    await waitFor("the first replica's listener back", () => cacheOf(api.app).listening, { timeoutMs: 10_000 });
    await revoke(api.app, id);
    expect((await get(replica, key)).statusCode).toBe(401);
  });

  it("reads every credential from the database when it cannot listen at all", async () => {
    const unlistened = await buildTestApp(api.t.db, api.redis, {
      authCache: { databaseUrl: await unreachableDatabaseUrl(), ttlMs: 60_000, reconnectMs: 600_000 },
    });
    extra.push(unlistened);
    expect(cacheOf(unlistened).listening).toBe(false);
    const { key, id } = await createKey({ name: "unlistened@acme.example", role: "member" });
    expect((await get(unlistened, key)).statusCode).toBe(200);
    expect(cacheOf(unlistened).size).toBe(0);
    await revoke(api.app, id);
    expect((await get(unlistened, key)).statusCode).toBe(401);
  });
});
