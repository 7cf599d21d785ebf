/**
 * NUL characters (U+0000) in request bodies: Postgres stores none, and they
 * used to reach it and answer 500. Now every route refuses them with a 400
 * problem naming each field, and nothing is written.
 */
import { audit } from "@outcome-runtime/db";
import { exampleOutcome } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nulFields } from "./nul-fields";
import { createTestApi, type TestApi } from "./test-app";

let api: TestApi;
let outcomeId: string;
let experimentId: string;
let gateId: string;

beforeAll(async () => {
  api = await createTestApi();
  const created = await api.app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { ...api.auth, "content-type": "application/yaml" },
    body: exampleOutcome(),
  });
  expect(created.statusCode, created.body).toBe(201);
  outcomeId = created.json().outcome.id;
  expect((await inject("POST", `/v1/outcomes/${outcomeId}/activate`, {})).statusCode).toBe(200);
  const proposed = await inject("POST", `/v1/outcomes/${outcomeId}/experiments`, {
    title: "Express pay",
    statement: "If we offer express pay first, fewer shoppers abandon the checkout.",
  });
  expect(proposed.statusCode, proposed.body).toBe(201);
  experimentId = proposed.json().experiment.id;
  // Approved, so a claim (which stores who claims it) goes as far as the database.
  const approved = await inject("POST", `/v1/gates/${proposed.json().gate.id}/decision`, { decision: "approve" });
  expect(approved.statusCode, approved.body).toBe(200);
  const next = await inject("POST", `/v1/outcomes/${outcomeId}/experiments`, {
    title: "Guest checkout",
    statement: "If we offer guest checkout first, fewer shoppers abandon the checkout.",
  });
  expect(next.statusCode, next.body).toBe(201);
  gateId = next.json().gate.id;
});
afterAll(async () => {
  await api?.close();
});

function inject(method: "POST" | "PATCH", url: string, payload: unknown) {
  return api.app.inject({ method, url, headers: api.auth, payload: payload as object });
}

/** Expect a 400 problem whose errors name exactly `fields`. */
function expectRefused(response: Awaited<ReturnType<typeof inject>>, fields: string[]) {
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers["content-type"]).toContain("application/problem+json");
  const body = response.json();
  expect(body).toMatchObject({ code: "validation_failed", status: 400 });
  expect(body.errors.map((e: { field: string }) => e.field)).toEqual(fields);
  for (const error of body.errors) expect(error.message).toContain("NUL character (U+0000)");
  for (const field of fields) expect(body.detail).toContain(field);
}

describe("a NUL character in a JSON body", () => {
  it("in a title, a statement or a nested array: 400 naming each field, and no experiment is proposed", async () => {
    const before = await audit.listAuditEvents(api.t.db, api.seed.workspaceId, { limit: 1000 });
    const response = await inject("POST", `/v1/outcomes/${outcomeId}/experiments`, {
      title: "Express\u0000pay",
      statement: "If we offer express pay first, fewer shoppers abandon the checkout.\u0000",
      touchedPaths: ["apps/web/ok.ts", "apps/\u0000/x.ts"],
    });
    expectRefused(response, ["body.title", "body.statement", "body.touchedPaths.1"]);
    const after = await audit.listAuditEvents(api.t.db, api.seed.workspaceId, { limit: 1000 });
    expect(after).toHaveLength(before.length);
  });

  it("in a transition reason: 400, and the experiment keeps its state", async () => {
    const response = await inject("POST", `/v1/experiments/${experimentId}/transitions`, {
      action: "claim",
      claimedBy: "cursor\u0000",
      reason: "\u0000",
    });
    expectRefused(response, ["body.claimedBy", "body.reason"]);
    const experiment = await api.app.inject({
      method: "GET",
      url: `/v1/experiments/${experimentId}`,
      headers: api.auth,
    });
    expect(experiment.json().experiment).toMatchObject({ state: "approved", claimedBy: null });
  });

  it("in a gate decision's reason, a key's name, an outcome's reason and a property name: 400 each", async () => {
    expectRefused(await inject("POST", `/v1/gates/${gateId}/decision`, { decision: "approve", reason: "ok\u0000" }), [
      "body.reason",
    ]);
    const gate = await api.app.inject({ method: "GET", url: `/v1/gates/${gateId}`, headers: api.auth });
    expect(gate.json().gate.status).toBe("pending");
    expectRefused(await inject("POST", "/v1/keys", { name: "ci\u0000bot", role: "member" }), ["body.name"]);
    expectRefused(await inject("POST", `/v1/outcomes/${outcomeId}/abandon`, { reason: "\u0000" }), ["body.reason"]);
    expectRefused(await inject("PATCH", "/v1/workspace/settings", { "session\u0000": [] }), ["body.session\\u0000"]);
  });

  it("in an outcome.yaml sent as text, to apply or to validate: 400 naming the body", async () => {
    for (const url of ["/v1/outcomes", "/v1/outcomes/validate"]) {
      const response = await api.app.inject({
        method: "POST",
        url,
        headers: { ...api.auth, "content-type": "application/yaml" },
        body: exampleOutcome().replace("name:", "name: \u0000"),
      });
      expectRefused(response, ["body"]);
    }
  });

  it("in an email decision form: 400, and the gate stays pending", async () => {
    const response = await api.app.inject({
      method: "POST",
      url: `/email/gates/${gateId}/approve?to=maya%40acme.example&token=${"a".repeat(43)}`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "reason=a%00b",
    });
    expectRefused(response, ["body.reason"]);
    const gate = await api.app.inject({ method: "GET", url: `/v1/gates/${gateId}`, headers: api.auth });
    expect(gate.json().gate.status).toBe("pending");
  });
});

describe("nulFields", () => {
  it("walks a 10 000-deep body without recursion, and stops at the limit", () => {
    let deep: unknown = "x\u0000";
    for (let i = 0; i < 10_000; i++) deep = [deep];
    expect(nulFields(deep)).toEqual([{ field: `body${".0".repeat(10_000)}`, message: expect.any(String) }]);
    expect(
      nulFields(
        Array.from({ length: 50 }, () => "\u0000"),
        "body",
        5,
      ),
    ).toHaveLength(5);
    expect(nulFields({ a: 1, b: [true, null, "ok"], c: { d: "fine" } })).toEqual([]);
  });
});
