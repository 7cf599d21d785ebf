import { createDb } from "@outcome-runtime/db";
import { exampleOutcome, outcomeVariant, type TestDatabase } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "./app";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

let api: TestApi;
let t: TestDatabase;
let redis: Redis;
let app: TestApi["app"];
let auth: { authorization: string };

beforeAll(async () => {
  api = await createTestApi();
  ({ t, redis, app } = api);
  auth = api.auth;
});
afterAll(async () => {
  await api.close();
});

function yaml(body: string, headers: Record<string, string> = auth) {
  return app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { ...headers, "content-type": "application/yaml" },
    body,
  });
}

describe("authentication", () => {
  it("refuses /v1 without a key, with a problem document and WWW-Authenticate", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/outcomes" });
    expect(res.statusCode).toBe(401);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.headers["www-authenticate"]).toContain("Bearer");
    expect(res.json()).toMatchObject({ status: 401, code: "unauthenticated", requestId: expect.any(String) });
  });

  it("refuses an unknown key", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/v1/outcomes",
      headers: { authorization: "Bearer ork_nope_nope_nope_nope" },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().detail).toContain("unknown or revoked");
  });

  it("lets an admin create keys, and nobody else", async () => {
    const created = await app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: auth,
      payload: { name: "dev@acme.example", role: "member" },
    });
    expect(created.statusCode).toBe(201);
    const { key } = created.json();
    expect(key).toMatch(/^ork_[A-Za-z0-9_-]{43}$/);
    const list = await app.inject({ method: "GET", url: "/v1/outcomes", headers: { authorization: `Bearer ${key}` } });
    expect(list.statusCode).toBe(200);
    const refused = await app.inject({
      method: "POST",
      url: "/v1/keys",
      headers: { authorization: `Bearer ${key}` },
      payload: { name: "evil", role: "admin" },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe("forbidden");
  });

  it("cannot be bypassed by percent-encoding the path", async () => {
    for (const url of ["/%761/outcomes", "/v%31/outcomes", "/%76%31/gates?status=pending"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json().code).toBe("unauthenticated");
    }
  });

  it("rate-limits requests before authenticating them", async () => {
    const limited = await buildTestApp(t.db, redis, {
      rateLimitPerMinute: 3,
      rateLimitNamespace: `test-rl-${Date.now()}-${Math.random()}:`,
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await limited.inject({
          method: "GET",
          url: "/v1/outcomes",
          headers: { authorization: "Bearer ork_wrong_key_number_one" },
        });
        statuses.push(res.statusCode);
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const last = await limited.inject({
        method: "GET",
        url: "/v1/outcomes",
        headers: { authorization: "Bearer ork_wrong_key_number_one" },
      });
      expect(last.json()).toMatchObject({ code: "rate_limited", status: 429 });
      expect(last.headers["retry-after"]).toBeDefined();
    } finally {
      await limited.close();
    }
  });

  it("keeps a well-formed X-Request-Id and replaces a malformed one", async () => {
    const kept = await app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "trace-1234abcd" } });
    expect(kept.headers["x-request-id"]).toBe("trace-1234abcd");
    const replaced = await app.inject({
      method: "GET",
      url: "/v1/outcomes",
      headers: { "x-request-id": `bad id with spaces ${"x".repeat(300)}` },
    });
    expect(replaced.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(replaced.json().requestId).toBe(replaced.headers["x-request-id"]);
  });

  it("health checks need no key; /healthz reports the signal storage mode and the connector types", async () => {
    const health = await app.inject({ method: "GET", url: "/healthz" });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({
      status: "ok",
      version: "test",
      signalStorage: "plain",
      signalStorageNote: null,
      checks: { redis_eviction_policy: { status: "ok", value: "noeviction" } },
      // No CONNECTOR_MODULES here: the built-in types only.
      connectors: { types: expect.arrayContaining(["postgres", "mixpanel", "csv", "replay"]), modules: [] },
    });
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: "ready", checks: { postgres: "up", redis: "up" } });
  });

  it("serves the OpenAPI document at /docs", async () => {
    const res = await app.inject({ method: "GET", url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/outcomes", "/v1/outcomes/{id}", "/v1/gates/{id}/decision", "/healthz", "/readyz"]),
    );
    expect((await app.inject({ method: "GET", url: "/docs" })).statusCode).toBeLessThan(400);
  });
});

describe("POST /v1/outcomes", () => {
  it("applies YAML: 201 created, then 200 unchanged, then 200 revised", async () => {
    const source = outcomeVariant("api-apply");
    const first = await yaml(source);
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      status: "created",
      outcome: { slug: "api-apply", revision: 1, state: "draft" },
    });
    expect(first.json().outcome.spec.target).toEqual({
      direction: "decrease",
      value: 0.1,
      relative: true,
      sustain: 604_800,
    });
    const second = await yaml(source);
    expect(second.statusCode).toBe(200);
    expect(second.json().status).toBe("unchanged");
    const third = await yaml(outcomeVariant("api-apply", [["max_harm: 3%", "max_harm: 4%"]]));
    expect(third.json()).toMatchObject({ status: "revised", outcome: { revision: 2 } });
    const detail = await app.inject({ method: "GET", url: "/v1/outcomes/api-apply", headers: auth });
    expect(detail.json().latestRevisions.map((r: { revision: number }) => r.revision)).toEqual([2, 1]);
  });

  it("accepts the same document as JSON, and reports JSON errors with positions", async () => {
    const { parse } = await import("yaml");
    const doc = parse(outcomeVariant("api-json"));
    const ok = await app.inject({ method: "POST", url: "/v1/outcomes", headers: auth, payload: doc });
    expect(ok.statusCode).toBe(201);
    const bad = await app.inject({
      method: "POST",
      url: "/v1/outcomes?file=body.json",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ ...doc, id: "api-json-bad", horizon: "soon" }, null, 2),
    });
    expect(bad.statusCode).toBe(422);
    const problem = bad.json();
    expect(problem.code).toBe("outcome_invalid");
    expect(problem.errors[0]).toMatchObject({ file: "body.json", pointer: "/horizon", line: expect.any(Number) });
  });

  it("reports a file with three mistakes as three errors with line and column", async () => {
    const source = exampleOutcome()
      .replace("id: checkout-abandonment", "id: Checkout Abandonment")
      .replace("alpha: 0.05", "alpha: high")
      .replace("sla: 24h", "sla: tomorrow");
    const res = await yaml(source);
    expect(res.statusCode).toBe(422);
    const body = res.json();
    expect(body.type).toBe("https://outcome-runtime.dev/problems/outcome_invalid");
    expect(body.errors).toHaveLength(3);
    for (const e of body.errors) {
      expect(e).toMatchObject({ line: expect.any(Number), column: expect.any(Number), message: expect.any(String) });
    }
    expect(body.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual(
      ["/experiment_defaults/alpha", "/gates/launch_approval/sla", "/id"].sort(),
    );
  });

  it("refuses a body over the size limit with 413 and no stack", async () => {
    const big = `${exampleOutcome()}\n# ${"x".repeat(5 * 1024 * 1024)}\n`;
    const res = await yaml(big);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: "payload_too_large" });
    expect(res.body).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it("refuses other content types with 415", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/outcomes",
      headers: { ...auth, "content-type": "application/xml" },
      body: "<outcome/>",
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().code).toBe("unsupported_media_type");
  });
});

describe("experiments and gates over HTTP", () => {
  async function activeOutcome(id: string): Promise<void> {
    expect((await yaml(outcomeVariant(id))).statusCode).toBe(201);
    const res = await app.inject({ method: "POST", url: `/v1/outcomes/${id}/activate`, headers: auth, payload: {} });
    expect(res.statusCode).toBe(200);
  }

  it("validates hypothesis bodies, naming the field", async () => {
    await activeOutcome("api-validate");
    const res = await app.inject({
      method: "POST",
      url: "/v1/outcomes/api-validate/experiments",
      headers: auth,
      payload: { title: "Hi", statement: "short", colour: "red" },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.code).toBe("validation_failed");
    const fields = body.errors.map((e: { field: string }) => e.field);
    expect(fields).toEqual(expect.arrayContaining(["body.title", "body.statement", "body.colour"]));
  });

  it("replays a POST with the same Idempotency-Key and refuses the key for another body", async () => {
    await activeOutcome("api-idem");
    const payload = { title: "One-page checkout", statement: "If checkout is one page, fewer shoppers leave it." };
    const headers = { ...auth, "idempotency-key": "4f1d2c1e-idem-1" };
    const [a, b] = await Promise.all([
      app.inject({ method: "POST", url: "/v1/outcomes/api-idem/experiments", headers, payload }),
      app.inject({ method: "POST", url: "/v1/outcomes/api-idem/experiments", headers, payload }),
    ]);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(a.json().experiment.id).toBe(b.json().experiment.id);
    expect([a.headers["idempotent-replayed"], b.headers["idempotent-replayed"]].filter(Boolean)).toEqual(["true"]);
    const list = await app.inject({ method: "GET", url: "/v1/outcomes/api-idem/experiments", headers: auth });
    // Beside the three hypotheses the activation generated, exactly one of ours.
    expect(list.json().items.filter((e: { source: string }) => e.source === "human")).toHaveLength(1);
    // A retry naming the outcome by id instead of slug, fields in another order, is the same request.
    const byId = await app.inject({
      method: "POST",
      url: `/v1/outcomes/${a.json().experiment.outcomeId}/experiments`,
      headers,
      payload: { statement: payload.statement, title: payload.title },
    });
    expect(byId.statusCode).toBe(201);
    expect(byId.headers["idempotent-replayed"]).toBe("true");
    expect(byId.json().experiment.id).toBe(a.json().experiment.id);
    const reused = await app.inject({
      method: "POST",
      url: "/v1/outcomes/api-idem/experiments",
      headers,
      payload: { ...payload, title: "Another one" },
    });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().code).toBe("idempotency_key_reused");
  });

  it("50 concurrent decisions on one gate: one applied, 49 × 409 carrying the winner, one audit event", async () => {
    await activeOutcome("api-race");
    const proposed = await app.inject({
      method: "POST",
      url: "/v1/outcomes/api-race/experiments",
      headers: auth,
      payload: { title: "Express pay first", statement: "If express pay is offered first, fewer shoppers abandon." },
    });
    expect(proposed.statusCode).toBe(201);
    const gateId: string = proposed.json().gate.id;

    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        app.inject({
          method: "POST",
          url: `/v1/gates/${gateId}/decision`,
          headers: auth,
          payload: { decision: i % 2 === 0 ? "approve" : "reject", reason: `click ${i}` },
        }),
      ),
    );
    const ok = responses.filter((r) => r.statusCode === 200);
    const conflicts = responses.filter((r) => r.statusCode === 409);
    expect(ok).toHaveLength(1);
    expect(conflicts).toHaveLength(49);
    const winner = ok[0]!.json().gate.decision;
    for (const c of conflicts) {
      const body = c.json();
      expect(body.code).toBe("gate_already_decided");
      expect(body.details.decision).toMatchObject({ decision: winner.decision, reason: winner.reason });
    }
    const events = await app.inject({
      method: "GET",
      url: `/v1/audit?subjectType=gate&subjectId=${gateId}&action=gate.decided`,
      headers: auth,
    });
    expect(events.json().items).toHaveLength(1);
    // The experiment moved exactly once.
    const experimentId: string = proposed.json().experiment.id;
    const history = await app.inject({
      method: "GET",
      url: `/v1/audit?subjectType=experiment&subjectId=${experimentId}`,
      headers: auth,
    });
    expect(history.json().items.map((e: { action: string }) => e.action)).toEqual([
      winner.decision === "approve" ? "experiment.approved" : "experiment.rejected",
      "experiment.proposed",
    ]);
  });

  it("field errors found by a use case have the same errors[] shape as schema errors", async () => {
    await activeOutcome("api-arms");
    const res = await app.inject({
      method: "POST",
      url: "/v1/outcomes/api-arms/experiments",
      headers: auth,
      payload: {
        title: "Three arms",
        statement: "If we try two treatments at once, we learn twice as fast.",
        arms: [
          { name: "control", weight: 0.5 },
          { name: "treatment", weight: 0.3 },
        ],
      },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      code: "validation_failed",
      errors: [{ field: "arms", message: expect.stringContaining("summing to 1") }],
    });
  });

  it("an illegal transition is a 409 problem naming the state and the allowed actions", async () => {
    await activeOutcome("api-illegal");
    const proposed = await app.inject({
      method: "POST",
      url: "/v1/outcomes/api-illegal/experiments",
      headers: auth,
      payload: { title: "Sticky basket", statement: "If the basket stays visible, fewer shoppers abandon." },
    });
    const res = await app.inject({
      method: "POST",
      url: `/v1/experiments/${proposed.json().experiment.key}/transitions`,
      headers: auth,
      payload: { action: "pause" },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({
      code: "illegal_transition",
      details: { machine: "experiment", from: "proposed", action: "pause" },
    });
  });

  it("unknown ids are 404 problems; a malformed gate id is a 400 naming the field", async () => {
    const missing = await app.inject({ method: "GET", url: "/v1/outcomes/nope", headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe("not_found");
    const malformed = await app.inject({ method: "GET", url: "/v1/gates/not-a-uuid", headers: auth });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().errors[0].field).toBe("params.id");
  });
});

describe("when a dependency is down", () => {
  it("readiness is 503 with Retry-After, and requests get 503 problems, never a 500", async () => {
    const deadDb = createDb({ url: "postgres://postgres@127.0.0.1:1/none", max: 1 });
    const deadRedis = new Redis("redis://127.0.0.1:1", {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    deadRedis.on("error", () => {});
    const broken = await buildApp({
      deps: { db: deadDb },
      redis: deadRedis,
      version: "test",
      signalStorage: "plain",
      rateLimitPerMinute: 100,
    });
    try {
      const ready = await broken.inject({ method: "GET", url: "/readyz" });
      expect(ready.statusCode).toBe(503);
      expect(ready.headers["retry-after"]).toBe("5");
      expect(ready.json()).toEqual({ status: "unavailable", checks: { postgres: "down", redis: "down" } });
      const res = await broken.inject({ method: "GET", url: "/v1/outcomes", headers: auth });
      expect(res.statusCode).toBe(503);
      expect(res.headers["retry-after"]).toBeDefined();
      expect(res.json().code).toBe("service_unavailable");
    } finally {
      await broken.close();
      await deadDb.destroy();
      deadRedis.disconnect();
    }
  });
});
