/**
 * The error handler's mapping of a lost database connection: 503
 * service_unavailable with Retry-After, as problem+json, never a 500 with the
 * driver's message. The errors are the shapes `pg` and Kysely throw when a
 * backend is terminated mid-request (tests/chaos/r10-pg-terminate.chaos.ts
 * produces them for real).
 */
// biome-ignore lint/style/noRestrictedImports: a bare Fastify app with only this plugin, to throw the driver's errors at it
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import problemDetails from "./plugins/problem-details";

function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code, severity: "FATAL" });
}

async function answer(error: Error) {
  const app = Fastify({ logger: false });
  await app.register(problemDetails);
  app.get("/boom", async () => {
    throw error;
  });
  const response = await app.inject({ method: "GET", url: "/boom" });
  await app.close();
  return response;
}

describe("a lost database connection", () => {
  it.each([
    ["a terminated backend (57P01)", pgError("terminating connection due to administrator command", "57P01")],
    ["a crash shutdown (57P02)", pgError("terminating connection due to crash of another server process", "57P02")],
    ["a server starting up (57P03)", pgError("the database system is starting up", "57P03")],
    ["a connection exception (08006)", pgError("connection failure", "08006")],
    ["another 08xxx code (08P01)", pgError("protocol violation", "08P01")],
    ["a refused connection", pgError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED")],
    ["a reset connection", pgError("read ECONNRESET", "ECONNRESET")],
    ["a connection that ended", pgError("Connection terminated unexpectedly")],
    ["a ROLLBACK on the dead client", pgError("Client has encountered a connection error and is not queryable")],
    ["a closed client", pgError("Client was closed and is not queryable")],
    ["a cause that is one of these", new Error("query failed", { cause: pgError("x", "57P01") })],
  ])("%s answers 503 service_unavailable with Retry-After", async (_, error) => {
    const response = await answer(error);
    expect(response.statusCode).toBe(503);
    expect(response.headers["retry-after"]).toBe("5");
    expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
    const body = response.json();
    expect(body).toMatchObject({ status: 503, code: "service_unavailable" });
    expect(JSON.stringify(body)).not.toMatch(/administrator|queryable|ECONN|stack/);
  });

  it("leaves other errors a 500 that names no internals", async () => {
    const response = await answer(new Error("undefined is not a function at secret.ts:12"));
    expect(response.statusCode).toBe(500);
    expect(response.headers["retry-after"]).toBeUndefined();
    expect(response.json()).toMatchObject({ code: "internal_error" });
    expect(response.body).not.toContain("secret.ts");
  });
});
