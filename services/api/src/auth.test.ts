/**
 * The auth plugin fails closed: a `/v1` route that names no operation of the
 * permissions table cannot be registered, so no route is reachable by every
 * authenticated caller by accident. (What the operations allow is
 * tests/permissions-matrix.test.ts.)
 */
import cookie from "@fastify/cookie";
// biome-ignore lint/style/noRestrictedImports: a bare Fastify app with only the auth plugins, to register routes on it
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import auth from "./plugins/auth";
import problemDetails from "./plugins/problem-details";

async function appWith(register: (app: ReturnType<typeof Fastify>) => void) {
  const app = Fastify({ logger: false });
  await app.register(cookie);
  await app.register(problemDetails);
  // The routes below are never called: no request reaches the runtime.
  await app.register(auth, { deps: {} as never });
  register(app);
  return app;
}

describe("the auth plugin", () => {
  it("refuses to register a /v1 route that names no operation", async () => {
    await expect(
      appWith((a) => {
        a.get("/v1/anything", async () => ({ ok: true }));
      }),
    ).rejects.toThrow(/GET \/v1\/anything names no operation/);
  });

  it("registers one that names its operation, and routes outside /v1 without one", async () => {
    const app = await appWith((a) => {
      a.get("/v1/outcomes-like", { config: { operations: ["outcome.read"] } }, async () => ({ ok: true }));
      a.get("/health-like", async () => ({ ok: true }));
    });
    await expect(app.ready()).resolves.toBeDefined();
    await app.close();
  });
});
