/**
 * What the dashboard relies on: sign-in with cookies and CSRF, the app served
 * at `/`, the live stream, and the read endpoints it draws from.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { learnings, llm, signals, workspaces } from "@outcome-runtime/db";
import { createApiKey, OPERATIONS } from "@outcome-runtime/runtime";
import { analysisFixture, outcomeVariant, sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type WebSocket, WebSocket as WebSocketClient } from "ws";
import { APP_CSP } from "./routes/web";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

let api: TestApi;
let app: TestApi["app"];
let auth: { authorization: string };

beforeAll(async () => {
  api = await createTestApi();
  app = api.app;
  auth = api.auth;
});
afterAll(async () => {
  await api.close();
});

/** `name=value` of each Set-Cookie, and the raw header lines by name. */
function cookiesOf(res: Awaited<ReturnType<TestApi["app"]["inject"]>>): Map<string, { value: string; line: string }> {
  const raw = res.headers["set-cookie"];
  const lines = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const map = new Map<string, { value: string; line: string }>();
  for (const line of lines) {
    const [pair = ""] = line.split(";");
    const eq = pair.indexOf("=");
    map.set(pair.slice(0, eq), { value: decodeURIComponent(pair.slice(eq + 1)), line });
  }
  return map;
}

async function signIn(apiKey = api.seed.adminKey, target: TestApi["app"] = app) {
  const res = await target.inject({ method: "POST", url: "/session", payload: { apiKey } });
  expect(res.statusCode).toBe(200);
  const body = res.json() as { csrfToken: string };
  const token = cookiesOf(res).get("or_session")?.value ?? "";
  const cookie = `or_session=${encodeURIComponent(token)}; or_csrf=${encodeURIComponent(body.csrfToken)}`;
  return { cookie, token, csrfToken: body.csrfToken, res };
}

async function applyOutcome(id: string, activate = true): Promise<string> {
  const created = await app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { ...auth, "content-type": "application/yaml" },
    body: outcomeVariant(id),
  });
  expect(created.statusCode).toBe(201);
  if (activate) {
    const res = await app.inject({ method: "POST", url: `/v1/outcomes/${id}/activate`, headers: auth, payload: {} });
    expect(res.statusCode).toBe(200);
  }
  return created.json().outcome.id as string;
}

async function proposeExperiment(outcome: string, title: string) {
  const res = await app.inject({
    method: "POST",
    url: `/v1/outcomes/${outcome}/experiments`,
    headers: auth,
    payload: { title, statement: `If we try ${title.toLowerCase()}, fewer shoppers abandon checkout.` },
  });
  expect(res.statusCode).toBe(201);
  return res.json() as { experiment: { id: string }; gate: { id: string } };
}

describe("session sign-in", () => {
  it("signs in with an API key: HttpOnly session cookie, readable CSRF cookie, SameSite=Strict, no Secure over http", async () => {
    const { res, csrfToken } = await signIn();
    expect(res.json()).toEqual({
      principal: { name: expect.any(String), role: "admin" },
      csrfToken,
      // The bootstrap admin key's session may run every operation of the table but the worker's own.
      allowed: OPERATIONS.filter((op) => op !== "experiment.move_under_closed_outcome"),
    });
    expect(csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cookies = cookiesOf(res);
    const session = cookies.get("or_session");
    const csrf = cookies.get("or_csrf");
    // A session's random token, never the API key.
    expect(session?.value).toMatch(/^ors_[A-Za-z0-9_-]{43}$/);
    expect(session?.value).not.toContain(api.seed.adminKey);
    expect(session?.line).toMatch(/; HttpOnly/);
    expect(session?.line).toMatch(/; SameSite=Strict/);
    expect(session?.line).toMatch(/; Path=\//);
    expect(session?.line).not.toMatch(/; Secure/);
    expect(csrf?.value).toBe(csrfToken);
    expect(csrf?.line).not.toMatch(/HttpOnly/);
    expect(csrf?.line).toMatch(/; SameSite=Strict/);
    expect(csrf?.line).toMatch(/; Path=\//);
  });

  it("marks the cookies Secure over HTTPS behind a trusted proxy", async () => {
    const proxied = await buildTestApp(api.t.db, api.redis, {}, { trustProxy: true });
    try {
      const res = await proxied.inject({
        method: "POST",
        url: "/session",
        headers: { "x-forwarded-proto": "https" },
        payload: { apiKey: api.seed.adminKey },
      });
      expect(res.statusCode).toBe(200);
      const cookies = cookiesOf(res);
      expect(cookies.get("or_session")?.line).toMatch(/; Secure/);
      expect(cookies.get("or_csrf")?.line).toMatch(/; Secure/);
    } finally {
      await proxied.close();
    }
    // Without trustProxy the header is not believed.
    const plain = await app.inject({
      method: "POST",
      url: "/session",
      headers: { "x-forwarded-proto": "https" },
      payload: { apiKey: api.seed.adminKey },
    });
    expect(cookiesOf(plain).get("or_session")?.line).not.toMatch(/Secure/);
  });

  it("refuses an unknown key with a 401 problem and sets no cookie", async () => {
    const res = await app.inject({ method: "POST", url: "/session", payload: { apiKey: "ork_not_a_real_key_at_all" } });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: "unauthenticated", status: 401 });
    expect(res.headers["set-cookie"]).toBeUndefined();
    const empty = await app.inject({ method: "POST", url: "/session", payload: {} });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().code).toBe("validation_failed");
  });

  it("GET /session answers from the cookies, 401 without them", async () => {
    const { cookie, csrfToken } = await signIn();
    const res = await app.inject({ method: "GET", url: "/session", headers: { cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      principal: { name: expect.any(String), role: "admin" },
      csrfToken,
      // The bootstrap admin key's session may run every operation of the table but the worker's own.
      allowed: OPERATIONS.filter((op) => op !== "experiment.move_under_closed_outcome"),
    });
    const none = await app.inject({ method: "GET", url: "/session" });
    expect(none.statusCode).toBe(401);
    expect(none.json().code).toBe("unauthenticated");
    const stale = await app.inject({
      method: "GET",
      url: "/session",
      headers: { cookie: "or_session=ork_revoked_or_never_existed_123" },
    });
    expect(stale.statusCode).toBe(401);
  });

  it("DELETE /session needs the CSRF header, then clears both cookies", async () => {
    const { cookie, csrfToken } = await signIn();
    const refused = await app.inject({ method: "DELETE", url: "/session", headers: { cookie } });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: "forbidden", detail: "missing or wrong CSRF token" });
    const res = await app.inject({
      method: "DELETE",
      url: "/session",
      headers: { cookie, "x-csrf-token": csrfToken },
    });
    expect(res.statusCode).toBe(204);
    const cookies = cookiesOf(res);
    for (const name of ["or_session", "or_csrf"]) {
      expect(cookies.get(name)?.value).toBe("");
      expect(cookies.get(name)?.line).toMatch(/Expires=Thu, 01 Jan 1970|Max-Age=0/);
    }
  });
});

describe("cookie authentication and CSRF", () => {
  it("a GET under /v1 works with the session cookie alone", async () => {
    const { cookie } = await signIn();
    const res = await app.inject({ method: "GET", url: "/v1/outcomes", headers: { cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toHaveProperty("items");
  });

  it("a state change by cookie needs x-csrf-token equal to the CSRF cookie; bearer needs none", async () => {
    await applyOutcome("dash-csrf");
    const first = await proposeExperiment("dash-csrf", "Express pay first");
    const { cookie, token, csrfToken } = await signIn();
    const url = `/v1/gates/${first.gate.id}/decision`;
    const payload = { decision: "approve", reason: "from the dashboard" };

    const missing = await app.inject({ method: "POST", url, headers: { cookie }, payload });
    expect(missing.statusCode).toBe(403);
    expect(missing.json()).toMatchObject({ code: "forbidden", detail: "missing or wrong CSRF token" });
    const wrong = await app.inject({ method: "POST", url, headers: { cookie, "x-csrf-token": "nope" }, payload });
    expect(wrong.statusCode).toBe(403);
    // A token without its cookie proves nothing.
    const noCookie = await app.inject({
      method: "POST",
      url,
      headers: { cookie: `or_session=${token}`, "x-csrf-token": csrfToken },
      payload,
    });
    expect(noCookie.statusCode).toBe(403);

    const ok = await app.inject({ method: "POST", url, headers: { cookie, "x-csrf-token": csrfToken }, payload });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().gate.decision).toMatchObject({ decision: "approve", channel: "web" });

    // Bearer: no CSRF token, channel api.
    const second = await proposeExperiment("dash-csrf", "Saved cards");
    const gateDetail = await app.inject({ method: "GET", url: `/v1/gates/${second.gate.id}`, headers: auth });
    expect(gateDetail.json().gate.status).toBe("pending");
    const bearer = await app.inject({
      method: "POST",
      url: `/v1/gates/${second.gate.id}/decision`,
      headers: auth,
      payload: { decision: "reject", reason: "by script" },
    });
    expect(bearer.statusCode).toBe(200);
    expect(bearer.json().gate.decision).toMatchObject({ decision: "reject", channel: "api" });
  });

  it("a revoked or unknown session cookie is a 401", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/v1/outcomes",
      headers: { cookie: "or_session=ork_definitely_not_a_key_0000" },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe("unauthenticated");
  });
});

describe("serving the app", () => {
  let root: string;
  let web: TestApi["app"];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "or-web-"));
    mkdirSync(join(root, "assets"));
    writeFileSync(
      join(root, "index.html"),
      '<!doctype html><title>app</title><script src="/assets/app-abc123.js"></script>',
    );
    writeFileSync(join(root, "assets", "app-abc123.js"), "console.log('app');");
    web = await buildTestApp(api.t.db, api.redis, { webRoot: root });
  });
  afterAll(async () => {
    await web.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("serves index.html at / with no-cache and the app's CSP", async () => {
    const res = await web.inject({ method: "GET", url: "/", headers: { accept: "text/html" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/html");
    expect(res.body).toContain("<title>app</title>");
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.headers["content-security-policy"]).toBe(APP_CSP);
  });

  it("serves hashed assets for a year, immutable", async () => {
    const res = await web.inject({ method: "GET", url: "/assets/app-abc123.js" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("javascript");
    expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(res.body).toBe("console.log('app');");
  });

  it("falls back to index.html for the app's own paths, and only for pages", async () => {
    for (const url of ["/gates/5f0c4b8e-3c1b-4d7e-9a7a-0a3b1f2e4d5c", "/experiments/abc", "/outcomes/x/edit"]) {
      const res = await web.inject({ method: "GET", url, headers: { accept: "text/html,application/xhtml+xml" } });
      expect(res.statusCode, url).toBe(200);
      expect(res.body).toContain("<title>app</title>");
      expect(res.headers["cache-control"]).toBe("no-cache");
      expect(res.headers["content-security-policy"]).toBe(APP_CSP);
    }
    const json = await web.inject({ method: "GET", url: "/gates/x", headers: { accept: "application/json" } });
    expect(json.statusCode).toBe(404);
    expect(json.json().code).toBe("not_found");
  });

  it("never answers an API path with the app", async () => {
    for (const url of ["/v1/nothing-here", "/assets/missing.js", "/email/nope", "/session/x", "/mcp/x"]) {
      const res = await web.inject({ method: "GET", url, headers: { accept: "text/html" } });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers["content-type"], url).toContain("application/problem+json");
    }
    // Authentication still applies under /v1.
    const outcomes = await web.inject({ method: "GET", url: "/v1/outcomes", headers: { accept: "text/html" } });
    expect(outcomes.statusCode).toBe(401);
  });

  it("says how to build the dashboard when it is not built", async () => {
    const bare = await buildTestApp(api.t.db, api.redis, { webRoot: join(root, "does-not-exist") });
    try {
      const res = await bare.inject({ method: "GET", url: "/" });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toContain("text/html");
      expect(res.body).toContain("The dashboard is not built: run <code>pnpm build</code>");
      const deep = await bare.inject({ method: "GET", url: "/gates/abc", headers: { accept: "text/html" } });
      expect(deep.statusCode).toBe(200);
      expect(deep.body).toContain("not built");
    } finally {
      await bare.close();
    }
  });
});

describe("the live stream", () => {
  /** Connect; collect the messages from the first one on, with a way to wait for one. */
  async function connect(target: TestApi["app"], headers: Record<string, string>) {
    const messages: Record<string, unknown>[] = [];
    const ws = await target.injectWS(
      "/v1/stream",
      { headers },
      {
        // Before the upgrade completes, as a browser's onmessage is: the hello may come at once.
        onInit: (socket: WebSocket) =>
          socket.on("message", (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>)),
      },
    );
    return {
      ws,
      messages,
      next: (match: (m: Record<string, unknown>) => boolean, what: string) =>
        waitFor(what, () => messages.find(match), {
          timeoutMs: 5000,
          diagnostics: () => JSON.stringify(messages),
        }),
    };
  }

  it("refuses a connection without credentials with 401", async () => {
    await expect(app.injectWS("/v1/stream", { headers: {} })).rejects.toThrow(/401/);
    await expect(
      app.injectWS("/v1/stream", { headers: { cookie: "or_session=ork_definitely_not_a_key_0000" } }),
    ).rejects.toThrow(/401/);
  });

  it("works over a real connection: 401 before the upgrade without a session, hello with one", async () => {
    const live = await buildTestApp(api.t.db, api.redis, { streamIntervalMs: 100, webRoot: null });
    try {
      const address = await live.listen({ port: 0, host: "127.0.0.1" });
      const url = `${address.replace(/^http/, "ws")}/v1/stream`;
      const refused = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocketClient(url);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.on("open", () => reject(new Error("opened without credentials")));
        ws.on("error", () => {});
      });
      expect(refused).toBe(401);
      const { cookie } = await signIn();
      const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const ws = new WebSocketClient(url, { headers: { cookie } });
        ws.on("message", (data) => {
          resolve(JSON.parse(String(data)) as Record<string, unknown>);
          ws.close();
        });
        ws.on("error", reject);
      });
      expect(hello).toMatchObject({ type: "hello", at: expect.any(String) });
    } finally {
      await live.close();
    }
  });

  it("says hello, then sends new audit events and analyses of the workspace", async () => {
    const live = await buildTestApp(api.t.db, api.redis, { streamIntervalMs: 100, webRoot: null });
    try {
      const { cookie } = await signIn();
      // Another site's page cannot use the session cookie for the stream.
      await expect(
        live.injectWS("/v1/stream", { headers: { cookie, origin: "https://evil.example", host: "localhost:80" } }),
      ).rejects.toThrow(/403/);
      const got = await connect(live, { cookie, origin: "http://localhost:80", host: "localhost:80" });
      const hello = await got.next((m) => m.type === "hello", "hello");
      expect(Date.parse(String(hello.at))).not.toBeNaN();

      const outcomeId = await applyOutcome("dash-live", false);
      const audit = await got.next(
        (m) => m.type === "audit" && (m.event as { subjectId: string }).subjectId === outcomeId,
        "the outcome.created audit event",
      );
      expect(audit.event).toMatchObject({
        id: expect.any(String),
        at: expect.any(String),
        action: "outcome.created",
        subjectType: "outcome",
        subjectId: outcomeId,
        actor: { name: expect.any(String), role: "admin" },
        channel: "api",
        after: expect.objectContaining({ slug: "dash-live" }),
      });

      await applyOutcome("dash-live-2");
      const { experiment } = await proposeExperiment("dash-live-2", "One page checkout");
      const ts = new Date("2026-12-10T12:00:00.000Z");
      const decision = { action: "continue", reason: "running", detail: "no conclusion yet" } as const;
      await signals.insertAnalysis(
        api.t.db,
        analysisFixture(
          { workspaceId: api.seed.workspaceId, experimentId: experiment.id, ts },
          {
            effect: -0.012,
            ciLow: -0.02,
            ciHigh: -0.004,
            relativeLift: -0.1,
            pValue: 0.003,
            srmPValue: 0.6,
            decision,
          },
        ),
      );
      const analysis = await got.next((m) => m.type === "analysis", "the analysis");
      expect(analysis).toEqual({
        type: "analysis",
        experimentId: experiment.id,
        ts: ts.toISOString(),
        effect: -0.012,
        ciLow: -0.02,
        ciHigh: -0.004,
        pValue: 0.003,
        decision,
      });
      // Each event once.
      const ids = got.messages.filter((m) => m.type === "audit").map((m) => (m.event as { id: string }).id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(got.messages.filter((m) => m.type === "analysis")).toHaveLength(1);
      got.ws.terminate();
    } finally {
      await live.close();
    }
  });

  it("sends nothing of another workspace, accepts a bearer key, and closes sockets when the app closes", async () => {
    const other = await workspaces.ensureWorkspace(api.t.db, "dash-other", "Another team");
    const otherKey = await createApiKey(
      { db: api.t.db },
      {
        principal: { id: "test-admin", name: "admin@other.example", role: "admin", workspaceId: other.id },
        channel: "api",
        requestId: null,
      },
      { name: "viewer@other.example", role: "member" },
    );
    const live = await buildTestApp(api.t.db, api.redis, { streamIntervalMs: 100, webRoot: null });
    const mine = await connect(live, auth);
    const theirs = await connect(live, { authorization: `Bearer ${otherKey.key}` });
    await mine.next((m) => m.type === "hello", "hello");
    await theirs.next((m) => m.type === "hello", "their hello");

    const outcomeId = await applyOutcome("dash-private", false);
    await mine.next(
      (m) => m.type === "audit" && (m.event as { subjectId: string }).subjectId === outcomeId,
      "our audit event",
    );
    await sleep(300); // three more polls
    expect(theirs.messages.map((m) => m.type)).toEqual(["hello"]);

    const closed = new Promise<number>((resolve) => mine.ws.on("close", (code) => resolve(code)));
    await live.close();
    expect(await closed).toBe(1001);
  });
});

describe("dashboard endpoints", () => {
  it("GET /v1/outcomes/:id/series: the outcome's signal with goal, baseline and horizon", async () => {
    const outcomeId = await applyOutcome("dash-series");
    const empty = await app.inject({ method: "GET", url: "/v1/outcomes/dash-series/series", headers: auth });
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toMatchObject({
      metric: expect.any(String),
      kind: expect.stringMatching(/^(proportion|mean)$/),
      points: [],
      current: null,
      horizonEnd: expect.any(String),
    });

    const series = await signals.ensureSeries(api.t.db, {
      workspaceId: api.seed.workspaceId,
      outcomeId,
      experimentId: null,
      metric: empty.json().metric,
      role: "outcome",
      kind: empty.json().kind,
    });
    const start = Date.parse("2026-12-01T00:00:00Z");
    const points = Array.from({ length: 2500 }, (_, i) => ({
      arm: "all",
      ts: new Date(start + i * 60_000),
      units: 1000 + i,
      sum: 0.3 - i / 100_000,
      sum_sq: 0,
    }));
    await signals.upsertPoints(api.t.db, series, points, new Date());
    const res = await app.inject({ method: "GET", url: `/v1/outcomes/${outcomeId}/series`, headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.points).toHaveLength(2000);
    expect(body.points[0]).toEqual({ ts: new Date(start).toISOString(), value: 0.3 });
    expect(body.points.at(-1)).toEqual({
      ts: new Date(start + 2499 * 60_000).toISOString(),
      value: 0.3 - 2499 / 100_000,
    });
    expect(body.current).toBeCloseTo(0.3 - 2499 / 100_000, 12);
    expect(typeof body.baseline === "number" || body.baseline === null).toBe(true);

    const missing = await app.inject({ method: "GET", url: "/v1/outcomes/nope-nope/series", headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe("not_found");
  });

  it("GET /v1/usage/llm: spend against the budgets, by operation, and the latest runs", async () => {
    const keyed = await api.seed.key("usage@acme.example", "member");
    const withBudgets = await buildTestApp(api.t.db, api.redis, {
      webRoot: null,
      llmBudgets: { monthlyWorkspaceBudgetUsd: 50, dailyUserBudgetUsd: 2.5 },
    });
    try {
      const before = (await withBudgets.inject({ method: "GET", url: "/v1/usage/llm", headers: auth })).json();
      for (const [operation, cost, cacheHit, fallbackReason] of [
        ["generate_hypotheses", 0.25, false, null],
        ["generate_hypotheses", 0, true, null],
        ["summarize_learning", 0, false, "budget_exhausted"],
      ] as const) {
        await llm.insertCall(api.t.db, {
          workspaceId: api.seed.workspaceId,
          outcomeId: null,
          actorId: keyed.caller.principal.id,
          operation,
          promptVersion: "1",
          provider: "anthropic",
          model: "claude-test",
          source: fallbackReason ? "rules" : "llm:claude-test",
          inputTokens: 1000,
          outputTokens: 200,
          costUsd: cost,
          latencyMs: 10,
          cacheHit,
          repaired: false,
          fallbackReason,
        });
      }
      const res = await withBudgets.inject({
        method: "GET",
        url: "/v1/usage/llm?limit=2",
        headers: { authorization: `Bearer ${keyed.key}` },
      });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.month.budgetUsd).toBe(50);
      expect(body.month.spentUsd).toBeCloseTo(before.month.spentUsd + 0.25, 9);
      expect(body.today).toEqual({ spentUsd: 0.25, budgetUsd: 2.5 });
      const gen = body.byOperation.find((o: { operation: string }) => o.operation === "generate_hypotheses");
      expect(gen).toMatchObject({ cacheHits: expect.any(Number), fallbacks: expect.any(Number) });
      expect(gen.calls).toBeGreaterThanOrEqual(2);
      expect(gen.spentUsd).toBeGreaterThanOrEqual(0.25);
      const sum = body.byOperation.find((o: { operation: string }) => o.operation === "summarize_learning");
      expect(sum.fallbacks).toBeGreaterThanOrEqual(1);
      expect(body.recent).toHaveLength(2);
      expect(body.recent[0]).toEqual({
        at: expect.any(String),
        operation: "summarize_learning",
        model: "claude-test",
        source: "rules",
        costUsd: 0,
        inputTokens: 1000,
        outputTokens: 200,
        cacheHit: false,
        fallbackReason: "budget_exhausted",
      });
      // Without budgets configured: no caps.
      const uncapped = await app.inject({ method: "GET", url: "/v1/usage/llm", headers: auth });
      expect(uncapped.json().month.budgetUsd).toBeNull();
      expect(uncapped.json().today.budgetUsd).toBeNull();
      const bad = await app.inject({ method: "GET", url: "/v1/usage/llm?limit=0", headers: auth });
      expect(bad.statusCode).toBe(400);
      expect((await app.inject({ method: "GET", url: "/v1/usage/llm" })).statusCode).toBe(401);
    } finally {
      await withBudgets.close();
    }
  });

  it("GET /v1/learnings: newest first without q, filters by tag and outcome, ranked with q", async () => {
    const a = await applyOutcome("dash-learn-a", false);
    const b = await applyOutcome("dash-learn-b", false);
    const insert = (outcomeId: string, statement: string, tags: string[]) =>
      learnings.insertLearning(api.t.db, {
        workspaceId: api.seed.workspaceId,
        outcomeId,
        experimentId: null,
        statement,
        decision: "ship",
        effect: -0.01,
        ciLow: -0.02,
        ciHigh: 0,
        tags,
      });
    const first = await insert(a, "Express checkout buttons reduce abandonment on mobile", ["checkout", "mobile"]);
    const second = await insert(b, "Shipping costs shown early reduce surprise at payment", ["shipping"]);
    const third = await insert(a, "Trust badges near the pay button did nothing measurable", ["checkout", "trust"]);

    const all = await app.inject({ method: "GET", url: "/v1/learnings?limit=50", headers: auth });
    expect(all.statusCode).toBe(200);
    const ids = all.json().items.map((l: { id: string }) => l.id);
    expect(ids.indexOf(third)).toBeLessThan(ids.indexOf(second));
    expect(ids.indexOf(second)).toBeLessThan(ids.indexOf(first));
    expect(all.json().items[0]).toMatchObject({ rank: 0, links: [] });
    expect(all.json().search).toBeNull(); // no query, no search: newest first

    const tagged = await app.inject({ method: "GET", url: "/v1/learnings?tag=checkout&limit=50", headers: auth });
    expect(tagged.json().items.map((l: { id: string }) => l.id)).toEqual([third, first]);
    const ofB = await app.inject({ method: "GET", url: "/v1/learnings?outcome=dash-learn-b", headers: auth });
    expect(ofB.json().items.map((l: { id: string }) => l.id)).toEqual([second]);
    const both = await app.inject({
      method: "GET",
      url: "/v1/learnings?outcome=dash-learn-a&tag=trust",
      headers: auth,
    });
    expect(both.json().items.map((l: { id: string }) => l.id)).toEqual([third]);

    const searched = await app.inject({ method: "GET", url: "/v1/learnings?q=express%20mobile", headers: auth });
    expect(searched.json().items[0]).toMatchObject({ id: first, rank: expect.any(Number) });
    expect(searched.json().items[0].rank).toBeGreaterThan(0);
    // The app's gateway has no embedding model here: full text, and the answer says why.
    expect(searched.json().search).toMatchObject({ search: "full_text", fallbackReason: expect.any(String) });
    const searchedTag = await app.inject({
      method: "GET",
      url: "/v1/learnings?q=shipping&tag=checkout",
      headers: auth,
    });
    expect(searchedTag.json().items).toEqual([]);

    const unknown = await app.inject({ method: "GET", url: "/v1/learnings?outcome=nope-nope", headers: auth });
    expect(unknown.statusCode).toBe(404);
    const tooLong = await app.inject({ method: "GET", url: `/v1/learnings?q=${"x".repeat(501)}`, headers: auth });
    expect(tooLong.statusCode).toBe(400);
  });

  it("GET /v1/audit: filters by actor, channel, subject and action, with cursor pages", async () => {
    const member = await api.seed.key("auditor@acme.example", "member");
    await applyOutcome("dash-audit", false);
    const { cookie, csrfToken } = await signIn();
    // A web-channel event: abandon through the dashboard session.
    const abandoned = await app.inject({
      method: "POST",
      url: "/v1/outcomes/dash-audit/abandon",
      headers: { cookie, "x-csrf-token": csrfToken },
      payload: { reason: "dropped" },
    });
    expect(abandoned.statusCode).toBe(200);

    const web = await app.inject({ method: "GET", url: "/v1/audit?channel=web", headers: auth });
    expect(web.statusCode).toBe(200);
    expect(web.json().items.length).toBeGreaterThanOrEqual(1);
    for (const e of web.json().items) expect(e.channel).toBe("web");

    const byMember = await app.inject({
      method: "GET",
      url: `/v1/audit?actor=${encodeURIComponent("auditor@acme.example")}`,
      headers: auth,
    });
    expect(byMember.json().items).toEqual([]);
    const adminName = (await app.inject({ method: "GET", url: "/session", headers: { cookie } })).json().principal
      .name as string;
    const byAdmin = await app.inject({
      method: "GET",
      url: `/v1/audit?actor=${encodeURIComponent(adminName)}&subjectType=outcome&action=outcome.created`,
      headers: auth,
    });
    expect(byAdmin.json().items.length).toBeGreaterThanOrEqual(1);
    for (const e of byAdmin.json().items) {
      expect(e).toMatchObject({ action: "outcome.created", subjectType: "outcome", actor: { name: adminName } });
    }

    // Pages of 2 walk the whole log once, newest first.
    const whole = (await app.inject({ method: "GET", url: "/v1/audit?limit=1000", headers: auth })).json();
    expect(whole.nextCursor).toBeNull();
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = (await app.inject({ method: "GET", url, headers: auth })).json();
      walked.push(...page.items.map((e: { id: string }) => e.id));
      cursor = page.nextCursor;
    } while (cursor !== null && walked.length < 10_000);
    expect(walked).toEqual(whole.items.map((e: { id: string }) => e.id));

    const badCursor = await app.inject({ method: "GET", url: "/v1/audit?cursor=bm9wZQ", headers: auth });
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json()).toMatchObject({ code: "validation_failed", errors: [{ field: "cursor" }] });
    const badChannel = await app.inject({ method: "GET", url: "/v1/audit?channel=fax", headers: auth });
    expect(badChannel.statusCode).toBe(400);
    // Members read the audit log too.
    const asMember = await app.inject({
      method: "GET",
      url: "/v1/audit?limit=1",
      headers: { authorization: `Bearer ${member.key}` },
    });
    expect(asMember.statusCode).toBe(200);
  });

  it("POST /v1/outcomes/validate: every error with position and hint, nothing stored", async () => {
    const good = await app.inject({
      method: "POST",
      url: "/v1/outcomes/validate",
      headers: { ...auth, "content-type": "application/yaml" },
      body: outcomeVariant("dash-validate"),
    });
    expect(good.statusCode).toBe(200);
    expect(good.json()).toEqual({ valid: true, errors: [], warnings: [] });

    const broken = outcomeVariant("dash-validate", [["kind: proportion", "kind: ratio-ish"]]).replace(
      /^name: .*$/m,
      "$&\ncolour: red",
    );
    const bad = await app.inject({
      method: "POST",
      url: "/v1/outcomes/validate?file=mine.yaml",
      headers: { ...auth, "content-type": "application/yaml" },
      body: broken,
    });
    expect(bad.statusCode).toBe(200);
    const body = bad.json();
    expect(body.valid).toBe(false);
    expect(body.errors.length).toBeGreaterThanOrEqual(2);
    for (const e of body.errors) {
      expect(e).toMatchObject({
        file: "mine.yaml",
        line: expect.any(Number),
        column: expect.any(Number),
        code: expect.any(String),
        message: expect.any(String),
      });
    }
    expect(body.errors.map((e: { code: string }) => e.code)).toContain("unknown_key");
    expect(body.errors.find((e: { code: string }) => e.code === "unknown_key").hint).toEqual(expect.any(String));

    const asJson = await app.inject({
      method: "POST",
      url: "/v1/outcomes/validate",
      headers: { ...auth, "content-type": "application/json" },
      body: "{ not json",
    });
    expect(asJson.statusCode).toBe(200);
    expect(asJson.json().errors[0].code).toBe("yaml_syntax");

    const stored = await app.inject({ method: "GET", url: "/v1/outcomes/dash-validate", headers: auth });
    expect(stored.statusCode).toBe(404);
    const form = await app.inject({
      method: "POST",
      url: "/v1/outcomes/validate",
      headers: { ...auth, "content-type": "application/x-www-form-urlencoded" },
      body: "a=b",
    });
    expect(form.statusCode).toBe(415);
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/v1/outcomes/validate",
          body: "x",
          headers: { "content-type": "text/plain" },
        })
      ).statusCode,
    ).toBe(401);
  });
});
