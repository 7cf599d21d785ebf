/**
 * Every malformed outcome fixture, sent to POST /v1/outcomes: a 4xx problem
 * document with positioned errors, never a 500 or a stack trace.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { makeHugeOutcome } from "@outcome-runtime/spec/fixtures/huge";
import type { Seeded } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

const dir = fileURLToPath(new URL("../../../packages/spec/fixtures/invalid/", import.meta.url));
const fixtures = readdirSync(dir).filter((f) => f !== "expected.json");

let api: TestApi;
let seed: Seeded;
let app: TestApi["app"];

beforeAll(async () => {
  api = await createTestApi();
  ({ seed, app } = api);
});
afterAll(async () => {
  await api.close();
});

describe("malformed outcomes over HTTP", () => {
  it("has at least 25 fixtures", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(25);
  });

  it.each(fixtures)("%s → 422 with positioned errors", async (file) => {
    const body = readFileSync(`${dir}${file}`, "utf8");
    const res = await app.inject({
      method: "POST",
      url: `/v1/outcomes?file=${file}`,
      headers: {
        authorization: `Bearer ${seed.adminKey}`,
        "content-type": file.endsWith(".json") ? "application/json" : "application/yaml",
      },
      body,
    });
    expect(res.statusCode).toBe(422);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    const problem = res.json();
    expect(problem.code).toBe("outcome_invalid");
    expect(problem.errors.length).toBeGreaterThan(0);
    for (const e of problem.errors) {
      expect(e).toMatchObject({
        file,
        line: expect.any(Number),
        column: expect.any(Number),
        message: expect.any(String),
      });
      expect(e.code).not.toBe("internal_error");
    }
    expect(res.body).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it("a 5 MB outcome is refused as too large, quickly and without a stack", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/outcomes",
      headers: { authorization: `Bearer ${seed.adminKey}`, "content-type": "application/yaml" },
      body: makeHugeOutcome(5 * 1024 * 1024),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: "payload_too_large", status: 413 });
  });

  it("nothing was stored", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/v1/outcomes",
      headers: { authorization: `Bearer ${seed.adminKey}` },
    });
    expect(res.json().items).toEqual([]);
  });
});
