import { audit } from "@outcome-runtime/db";
import { createTestDatabase, type TestDatabase } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticate, bootstrap, createApiKey, generateApiKey, hashApiKey } from "./api-keys";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe("API keys", () => {
  it("bootstrap registers the key once, and rotating the variable revokes the previous key", async () => {
    const deps = { db: t.db };
    const first = generateApiKey();
    expect(await bootstrap(deps, { apiKey: first })).toMatchObject({ keyCreated: true, keysRevoked: 0 });
    expect(await bootstrap(deps, { apiKey: first })).toMatchObject({ keyCreated: false, keysRevoked: 0 });
    expect(await authenticate(deps, first)).toMatchObject({ name: "bootstrap-admin", role: "admin" });

    const second = generateApiKey();
    const rotated = await bootstrap(deps, { apiKey: second });
    expect(rotated).toMatchObject({ keyCreated: true, keysRevoked: 1 });
    expect(await authenticate(deps, first)).toBeNull();
    expect(await authenticate(deps, second)).toMatchObject({ role: "admin" });

    // Going back to the first key re-enables it and revokes the second.
    expect(await bootstrap(deps, { apiKey: first })).toMatchObject({ keyCreated: true, keysRevoked: 1 });
    expect(await authenticate(deps, first)).not.toBeNull();
    expect(await authenticate(deps, second)).toBeNull();

    const events = await audit.listAuditEvents(t.db, rotated.workspaceId, { subjectType: "workspace" });
    expect(events.map((e) => e.action)).toEqual([
      "api_key.bootstrap_rotated",
      "api_key.bootstrap_rotated",
      "api_key.bootstrap_registered",
    ]);
    expect(JSON.stringify(events)).not.toContain(first);
  });

  it("keys created by an admin work and are stored only as hashes", async () => {
    const deps = { db: t.db };
    expect(await authenticate(deps, "")).toBeNull();
    const adminKey = generateApiKey();
    await bootstrap(deps, { apiKey: adminKey });
    const principal = await authenticate(deps, adminKey);
    expect(principal).not.toBeNull();
    const created = await createApiKey(
      deps,
      { principal: principal!, channel: "api", requestId: null },
      {
        name: "claude-code",
        role: "agent",
      },
    );
    expect(await authenticate(deps, created.key)).toMatchObject({ name: "claude-code", role: "agent" });
    const stored = await t.db
      .selectFrom("api_keys")
      .select(["key_hash", "prefix"])
      .where("id", "=", created.id)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toBe(hashApiKey(created.key));
    expect(stored.key_hash).not.toContain(created.key.slice(4));
    expect(stored.prefix).toBe(created.key.slice(0, 12));
  });
});
