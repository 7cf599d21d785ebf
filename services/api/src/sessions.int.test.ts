/**
 * Dashboard sessions held by the server: the cookie is a random session token
 * (never the API key), sign-out revokes the session at once, revoking the key
 * ends its sessions, and sessions expire after 12 h idle or 7 days. Real
 * Postgres and Redis, through the HTTP API.
 */
import { hashApiKey, hashSessionToken, SESSION_IDLE_MS, SESSION_MAX_AGE_MS } from "@outcome-runtime/runtime";
import { waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

let api: TestApi;
/** The clock of `timed`, an app on the same database whose time the tests move. */
let now = new Date("2026-12-09T08:00:00Z");
let timed: TestApi["app"];

beforeAll(async () => {
  api = await createTestApi();
  timed = await buildTestApp(api.t.db, api.redis, { deps: { db: api.t.db, now: () => now } });
});
afterAll(async () => {
  await timed?.close();
  await api?.close();
});

type App = TestApi["app"];

async function signIn(app: App, apiKey: string) {
  const res = await app.inject({ method: "POST", url: "/session", payload: { apiKey } });
  expect(res.statusCode, res.body).toBe(200);
  const raw = res.headers["set-cookie"];
  const lines = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const value = (name: string) =>
    decodeURIComponent(
      lines
        .find((l) => l.startsWith(`${name}=`))
        ?.split(";")[0]
        ?.slice(name.length + 1) ?? "",
    );
  const token = value("or_session");
  const csrfToken = value("or_csrf");
  return { token, csrfToken, cookie: `or_session=${token}; or_csrf=${csrfToken}` };
}

function read(app: App, cookie: string, url = "/v1/outcomes") {
  return app.inject({ method: "GET", url, headers: { cookie } });
}

async function sessionRow(token: string) {
  return api.t.db
    .selectFrom("sessions")
    .selectAll()
    .where("token_hash", "=", hashSessionToken(token))
    .executeTakeFirstOrThrow();
}

describe("dashboard sessions", () => {
  it("the cookie holds a session token, not the API key, and the key as a cookie authenticates nothing", async () => {
    const { token } = await signIn(api.app, api.seed.adminKey);
    expect(token).toMatch(/^ors_[A-Za-z0-9_-]{43}$/);
    const row = await sessionRow(token);
    expect(row).toMatchObject({ workspace_id: api.seed.workspaceId, revoked_at: null });
    expect(row.token_hash).not.toBe(hashApiKey(api.seed.adminKey));
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row.expires_at.getTime() - row.created_at.getTime()).toBe(SESSION_MAX_AGE_MS);
    // A cookie of the old kind (the raw key) is no session.
    const old = await read(api.app, `or_session=${api.seed.adminKey}`);
    expect(old.statusCode).toBe(401);
    expect(old.json()).toMatchObject({ code: "unauthenticated" });
  });

  it("DELETE /session revokes the session: a copied cookie stops working at once", async () => {
    const { cookie, csrfToken, token } = await signIn(api.app, api.seed.adminKey);
    const copied = cookie; // what an attacker lifted from the browser
    expect((await read(api.app, copied)).statusCode).toBe(200);
    const out = await api.app.inject({
      method: "DELETE",
      url: "/session",
      headers: { cookie, "x-csrf-token": csrfToken },
    });
    expect(out.statusCode).toBe(204);
    for (const url of ["/v1/outcomes", "/v1/gates", "/v1/workspace/settings"]) {
      const after = await read(api.app, copied, url);
      expect(after.statusCode, url).toBe(401);
      expect(after.json()).toMatchObject({ code: "unauthenticated" });
      expect(after.json().detail).toContain("sign in again");
    }
    const probe = await api.app.inject({ method: "GET", url: "/session", headers: { cookie: copied } });
    expect(probe.statusCode).toBe(401);
    const write = await api.app.inject({
      method: "PATCH",
      url: "/v1/workspace/settings",
      headers: { cookie: copied, "x-csrf-token": csrfToken },
      payload: { sessionRequiredDecisions: [] },
    });
    expect(write.statusCode).toBe(401);
    expect((await sessionRow(token)).revoked_at).not.toBeNull();
    // Signing out twice is harmless; another session of the same key is untouched.
    const other = await signIn(api.app, api.seed.adminKey);
    const again = await api.app.inject({
      method: "DELETE",
      url: "/session",
      headers: { cookie, "x-csrf-token": csrfToken },
    });
    expect(again.statusCode).toBe(204);
    expect((await read(api.app, other.cookie)).statusCode).toBe(200);
  });

  it("revoking the API key ends its sessions at their next request", async () => {
    const created = await api.app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: api.auth,
      payload: { name: "lee@acme.example", role: "member" },
    });
    const { key, id } = created.json() as { key: string; id: string };
    const first = await signIn(api.app, key);
    const second = await signIn(api.app, key);
    expect((await read(api.app, first.cookie)).statusCode).toBe(200);
    const revoked = await api.app.inject({ method: "DELETE", url: `/v1/keys/${id}`, headers: api.auth });
    expect(revoked.statusCode).toBe(200);
    for (const session of [first, second]) {
      expect((await read(api.app, session.cookie)).statusCode).toBe(401);
      expect((await sessionRow(session.token)).revoked_at).not.toBeNull();
    }
    expect((await api.app.inject({ method: "POST", url: "/session", payload: { apiKey: key } })).statusCode).toBe(401);
  });

  it(`ends a session after ${SESSION_IDLE_MS / 3600_000} h without a request`, async () => {
    now = new Date("2026-12-09T08:00:00Z");
    const { cookie, token } = await signIn(timed, api.seed.adminKey);
    const at = (ms: number) => {
      now = new Date(Date.parse("2026-12-09T08:00:00Z") + ms);
    };
    at(SESSION_IDLE_MS - 60_000);
    expect((await read(timed, cookie)).statusCode).toBe(200);
    // The use is recorded (without holding up the request): the idle clock starts again.
    await waitFor("the session's last use recorded", async () =>
      (await sessionRow(token)).last_seen_at.getTime() === now.getTime() ? true : undefined,
    );
    at(2 * SESSION_IDLE_MS - 120_000);
    expect((await read(timed, cookie)).statusCode).toBe(200);
    await waitFor("the session's last use recorded", async () =>
      (await sessionRow(token)).last_seen_at.getTime() === now.getTime() ? true : undefined,
    );
    at(3 * SESSION_IDLE_MS);
    const idle = await read(timed, cookie);
    expect(idle.statusCode).toBe(401);
    expect(idle.json()).toMatchObject({ code: "unauthenticated" });
  });

  it(`ends a session ${SESSION_MAX_AGE_MS / 86_400_000} days after sign-in, however busy`, async () => {
    const start = Date.parse("2026-12-20T08:00:00Z");
    now = new Date(start);
    const { cookie, token } = await signIn(timed, api.seed.adminKey);
    for (let t = SESSION_IDLE_MS / 2; t < SESSION_MAX_AGE_MS; t += SESSION_IDLE_MS / 2) {
      now = new Date(start + t);
      expect((await read(timed, cookie)).statusCode, `after ${t / 3600_000} h`).toBe(200);
      await waitFor("the session's last use recorded", async () =>
        (await sessionRow(token)).last_seen_at.getTime() === now.getTime() ? true : undefined,
      );
    }
    now = new Date(start + SESSION_MAX_AGE_MS + 1000);
    expect((await read(timed, cookie)).statusCode).toBe(401);
  });
});
