/**
 * The REST face of a database that refuses a write or cannot be reached: 409
 * `conflict` and 503 `service_unavailable` with Retry-After, the codes MCP
 * tools report for the same faults (packages/mcp/src/database-errors.int.test.ts).
 * The faults are Postgres' own: a trigger raising the SQLSTATE of a losing
 * concurrent write, and a port where nothing listens.
 */
import { createDb } from "@outcome-runtime/db";
import { exampleOutcome, refuseWrites, unreachableDatabaseUrl } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

let api: TestApi;
let experimentId: string;

function inject(method: "GET" | "POST", url: string, payload?: object) {
  return api.app.inject({ method, url, headers: api.auth, ...(payload === undefined ? {} : { payload }) });
}

beforeAll(async () => {
  api = await createTestApi();
  const created = await api.app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { ...api.auth, "content-type": "application/yaml" },
    body: exampleOutcome(),
  });
  expect(created.statusCode, created.body).toBe(201);
  const outcomeId = created.json().outcome.id;
  expect((await inject("POST", `/v1/outcomes/${outcomeId}/activate`, {})).statusCode).toBe(200);
  const proposed = await inject("POST", `/v1/outcomes/${outcomeId}/experiments`, {
    title: "Express pay",
    statement: "If we offer express pay first, fewer shoppers abandon the checkout.",
  });
  expect(proposed.statusCode, proposed.body).toBe(201);
  experimentId = proposed.json().experiment.id;
  const approved = await inject("POST", `/v1/gates/${proposed.json().gate.id}/decision`, { decision: "approve" });
  expect(approved.statusCode, approved.body).toBe(200);
});
afterAll(async () => {
  await api?.close();
});

describe("the REST face of database errors", () => {
  it("answers a write that loses to a concurrent change 409 conflict, and the retry succeeds", async () => {
    const restore = await refuseWrites(api.t, "experiments", "40001");
    let response: Awaited<ReturnType<typeof inject>>;
    try {
      response = await inject("POST", `/v1/experiments/${experimentId}/transitions`, { action: "claim" });
    } finally {
      await restore();
    }
    expect(response.statusCode, response.body).toBe(409);
    expect(response.json()).toMatchObject({
      code: "conflict",
      detail: "the request collided with a concurrent change; retry it",
    });
    expect(response.body).not.toMatch(/test fault|serializ/);
    const retried = await inject("POST", `/v1/experiments/${experimentId}/transitions`, { action: "claim" });
    expect(retried.statusCode, retried.body).toBe(200);
  });

  it("answers 503 service_unavailable with Retry-After when the database cannot be reached", async () => {
    const down = createDb({ url: await unreachableDatabaseUrl(), applicationName: "api-lost-connection-test" });
    const app = await buildTestApp(down, api.redis);
    try {
      const response = await app.inject({ method: "GET", url: "/v1/outcomes", headers: api.auth });
      expect(response.statusCode, response.body).toBe(503);
      expect(response.headers["retry-after"]).toBe("5");
      expect(response.json()).toMatchObject({
        code: "service_unavailable",
        detail: "the database is unavailable or too slow right now; retry shortly",
      });
      expect(response.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    } finally {
      await app.close();
      await down.destroy();
    }
  });
});
