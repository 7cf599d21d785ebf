import { randomUUID } from "node:crypto";
import { DomainError, missingScope } from "@outcome-runtime/core";
import { audit, createDb, workspaces } from "@outcome-runtime/db";
import { codeOf, createTestDatabase, sleep, type TestDatabase, waitFor } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  authenticate,
  bootstrap,
  createApiKey,
  generateApiKey,
  hashApiKey,
  listApiKeys,
  revokeApiKey,
} from "./api-keys";
import type { Caller } from "./context";

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

/** An admin caller of a fresh workspace of its own (its key made through bootstrap-free createApiKey). */
async function freshAdmin(
  now?: () => Date,
): Promise<{ caller: Caller; key: string; deps: { db: TestDatabase["db"]; now?: () => Date } }> {
  const deps = { db: t.db, ...(now ? { now } : {}) };
  const ws = await workspaces.ensureWorkspace(t.db, `keys-${randomUUID().slice(0, 8)}`, "Keys test");
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: ws.id },
    channel: "system",
    requestId: null,
  };
  const created = await createApiKey(deps, operator, { name: "admin@acme.example", role: "admin" });
  const principal = await authenticate(deps, created.key);
  if (principal === null) throw new Error("the admin key does not authenticate");
  return { caller: { principal, channel: "api", requestId: null }, key: created.key, deps };
}

describe("API key scopes", () => {
  it("default to what the role allows, and a key may carry no scope beyond its role or its creator's key", async () => {
    const { caller, deps } = await freshAdmin();
    expect(caller.principal).toMatchObject({ role: "admin", scopes: ["read", "write", "admin"] });
    const member = await createApiKey(deps, caller, { name: "sam@acme.example", role: "member" });
    expect(member.scopes).toEqual(["read", "write"]);
    expect(await authenticate(deps, member.key)).toMatchObject({ role: "member", scopes: ["read", "write"] });
    const reader = await createApiKey(deps, caller, { name: "tv", role: "approver", scopes: ["read"] });
    expect(await authenticate(deps, reader.key)).toMatchObject({ scopes: ["read"] });
    // A viewer's key holds read only: asking for write is refused, naming the scope and the role.
    const viewer = await createApiKey(deps, caller, { name: "cfo@acme.example", role: "viewer" });
    expect(viewer.scopes).toEqual(["read"]);
    expect(await authenticate(deps, viewer.key)).toMatchObject({ role: "viewer", scopes: ["read"] });
    const writingViewer = await createApiKey(deps, caller, {
      name: "x",
      role: "viewer",
      scopes: ["read", "write"],
    }).catch((e: unknown) => e);
    expect(writingViewer).toMatchObject({
      code: "validation_failed",
      message: expect.stringMatching(/^a viewer key cannot have the write scope/),
      details: { field: "scopes", role: "viewer", scopes: ["write"] },
    });
    // Canonical order, duplicates folded.
    const agent = await createApiKey(deps, caller, { name: "bot", role: "agent", scopes: ["write", "read", "write"] });
    expect(agent.scopes).toEqual(["read", "write"]);

    expect(await codeOf(createApiKey(deps, caller, { name: "x", role: "member", scopes: ["admin"] }))).toBe(
      "validation_failed",
    );
    expect(await codeOf(createApiKey(deps, caller, { name: "x", role: "member", scopes: [] }))).toBe(
      "validation_failed",
    );
    expect(await codeOf(createApiKey(deps, caller, { name: "x", role: "member", scopes: ["delete"] }))).toBe(
      "validation_failed",
    );

    // Making keys changes the workspace's administration: an admin key without `write` makes none (as on REST).
    const limited = await createApiKey(deps, caller, { name: "ops", role: "admin", scopes: ["read", "admin"] });
    const limitedCaller: Caller = {
      principal: (await authenticate(deps, limited.key))!,
      channel: "api",
      requestId: null,
    };
    const refused = await createApiKey(deps, limitedCaller, { name: "y", role: "member" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect((refused as DomainError).details).toMatchObject({ missingScope: "write", operation: "key.create" });

    // A key cannot give a new key a scope it lacks: an admin key without `read` gives out no `read`.
    const blind = await createApiKey(deps, caller, { name: "ops-2", role: "admin", scopes: ["write", "admin"] });
    const blindCaller: Caller = {
      principal: (await authenticate(deps, blind.key))!,
      channel: "api",
      requestId: null,
    };
    expect(await codeOf(createApiKey(deps, blindCaller, { name: "y", role: "member", scopes: ["read"] }))).toBe(
      "forbidden",
    );
    expect((await createApiKey(deps, blindCaller, { name: "y", role: "member" })).scopes).toEqual(["write"]);

    // An admin key without `admin` manages no keys.
    const noAdmin = await createApiKey(deps, caller, { name: "ci", role: "admin", scopes: ["read", "write"] });
    const noAdminCaller: Caller = {
      principal: (await authenticate(deps, noAdmin.key))!,
      channel: "api",
      requestId: null,
    };
    expect(await codeOf(listApiKeys(deps, noAdminCaller))).toBe("forbidden");
    expect(await codeOf(createApiKey(deps, noAdminCaller, { name: "z", role: "member" }))).toBe("forbidden");
    expect(await codeOf(revokeApiKey(deps, noAdminCaller, member.id))).toBe("forbidden");

    const refusal = missingScope(noAdminCaller.principal, "admin");
    expect(refusal?.code).toBe("forbidden");
    expect(refusal?.message).toContain('lacks the "admin" scope');
    expect(refusal?.message).toContain("outcome-runtime keys create --name ci --role admin --scopes read,write,admin");
    expect(missingScope(noAdminCaller.principal, "write")).toBeNull();

    const created = await audit.listAuditEvents(t.db, caller.principal.workspaceId, { subjectType: "api_key" });
    expect(created.find((e) => e.subjectId === reader.id)?.after).toMatchObject({ scopes: ["read"] });
  });
});

describe("revoking and listing API keys", () => {
  it("a revoked key authenticates nothing at once; revoking again changes nothing; the list never shows a hash", async () => {
    const { caller, deps } = await freshAdmin();
    const member = await createApiKey(deps, caller, { name: "sam@acme.example", role: "member" });
    expect(await authenticate(deps, member.key)).not.toBeNull();

    const first = await revokeApiKey(deps, caller, member.id);
    expect(first.revoked).toBe(true);
    expect(first.key.revokedAt).toBeInstanceOf(Date);
    expect(await authenticate(deps, member.key)).toBeNull();

    const again = await revokeApiKey(deps, caller, member.id);
    expect(again.revoked).toBe(false);
    expect(again.key.revokedAt).toEqual(first.key.revokedAt);
    const events = await audit.listAuditEvents(t.db, caller.principal.workspaceId, { subjectType: "api_key" });
    expect(events.filter((e) => e.action === "api_key.revoked").map((e) => e.subjectId)).toEqual([member.id]);

    const listed = await listApiKeys(deps, caller);
    expect(listed.map((k) => [k.name, k.role, k.scopes, k.revokedAt === null])).toEqual([
      ["admin@acme.example", "admin", ["read", "write", "admin"], true],
      ["sam@acme.example", "member", ["read", "write"], false],
    ]);
    const text = JSON.stringify(listed);
    expect(text).not.toContain(hashApiKey(member.key));
    expect(text).not.toContain(member.key);
    expect(text).not.toMatch(/hash/i);
  });

  it("another workspace's key, an unknown id and a malformed id are not_found, and stay usable", async () => {
    const a = await freshAdmin();
    const b = await freshAdmin();
    const bKey = await createApiKey(b.deps, b.caller, { name: "bot", role: "agent" });
    expect(await codeOf(revokeApiKey(a.deps, a.caller, bKey.id))).toBe("not_found");
    expect(await codeOf(revokeApiKey(a.deps, a.caller, randomUUID()))).toBe("not_found");
    expect(await codeOf(revokeApiKey(a.deps, a.caller, "not-a-uuid"))).toBe("not_found");
    expect(await authenticate(b.deps, bKey.key)).not.toBeNull();
    expect((await listApiKeys(a.deps, a.caller)).map((k) => k.id)).not.toContain(bKey.id);
  });
});

describe("last use of an API key", () => {
  it("is recorded on authentication, at most once a minute", async () => {
    let clock = new Date("2026-12-07T10:00:00.000Z");
    const { caller, deps } = await freshAdmin(() => clock);
    const member = await createApiKey(deps, caller, { name: "sam@acme.example", role: "member" });
    const lastUsed = async () => (await listApiKeys(deps, caller)).find((k) => k.id === member.id)?.lastUsedAt ?? null;
    expect(await lastUsed()).toBeNull();

    await authenticate(deps, member.key);
    await waitFor("the first use recorded", async () => (await lastUsed())?.toISOString() === clock.toISOString());
    const firstUse = clock.toISOString();

    // 30 s later: within the minute, nothing is written.
    clock = new Date("2026-12-07T10:00:30.000Z");
    await authenticate(deps, member.key);
    await sleep(200);
    expect((await lastUsed())?.toISOString()).toBe(firstUse);

    // 61 s after the first use: written again.
    clock = new Date("2026-12-07T10:01:01.000Z");
    await authenticate(deps, member.key);
    await waitFor("the later use recorded", async () => (await lastUsed())?.toISOString() === clock.toISOString());

    // A failed authentication records nothing.
    expect(await authenticate(deps, `${member.key}x`)).toBeNull();
  });

  it("is written without holding up the request, and a failed write is reported, not thrown", async () => {
    const { caller, deps } = await freshAdmin();
    const member = await createApiKey(deps, caller, { name: "sam@acme.example", role: "member" });
    // Another transaction holds the key's row, and this database gives up on a statement after 300 ms.
    const impatient = createDb({ url: t.url, max: 2, statementTimeoutMs: 300 });
    const holder = await t.db.startTransaction().execute();
    try {
      await holder.selectFrom("api_keys").select("id").where("id", "=", member.id).forUpdate().execute();
      const reported: unknown[] = [];
      const principal = await authenticate({ db: impatient }, member.key, {
        onLastUsedError: (error) => reported.push(error),
      });
      expect(principal).toMatchObject({ id: member.id });
      // Answered while the write still waits for the row (it gives up after 300 ms): nothing reported yet.
      expect(reported).toEqual([]);
      await waitFor("the failed write reported", () => reported.length > 0);
      expect(String(reported[0])).toMatch(/statement timeout|canceling statement/i);
    } finally {
      await holder.rollback().execute();
      await impatient.destroy();
    }
  });
});
