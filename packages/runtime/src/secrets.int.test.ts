/**
 * Workspace secrets on the real database: sealed at rest, bound to their
 * workspace and name, set and rotated by admins only, audited without their
 * value, and resolved for connectors of their own workspace only.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Principal } from "@outcome-runtime/core";
import { audit, secrets, workspaces } from "@outcome-runtime/db";
import { codeOf, createTestDatabase, type Seeded, seedWorkspace, type TestDatabase } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "./context";
import { openSecret, secretsKeyringFromEnv } from "./secret-box";
import { deleteWorkspaceSecret, listWorkspaceSecrets, setWorkspaceSecret } from "./secrets";
import { connectorProvider } from "./signals/connectors";
import { resolveCredentials, sourceAccessFromEnv } from "./signals/source-access";

let t: TestDatabase;
let seed: Seeded;
const KEY = randomBytes(32).toString("base64");
const sources = sourceAccessFromEnv({ OUTCOME_RUNTIME_SECRETS_KEY: KEY });
const VALUE = "postgres://outcome_runtime_reader:p4ss-w0rd@analytics.internal:5432/app";

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
});
afterAll(async () => {
  await t.drop();
});

describe("workspace secrets", () => {
  it("stores only ciphertext, lists names without values, and audits each change without the value", async () => {
    const deps = { db: t.db, sources };
    const created = await setWorkspaceSecret(deps, seed.admin, {
      name: "analytics-db",
      value: VALUE,
      description: "ro",
    });
    expect(created).toMatchObject({ created: true, secret: { name: "analytics-db", version: 1 } });
    const rotated = await setWorkspaceSecret(deps, seed.admin, { name: "analytics-db", value: `${VALUE}?v=2` });
    expect(rotated).toMatchObject({ created: false, secret: { version: 2 } });

    const sealed = await secrets.findSealedSecret(t.db, seed.workspaceId, "analytics-db");
    expect(sealed?.ciphertext.toString("utf8")).not.toContain("p4ss-w0rd");
    expect(sealed?.ciphertext.toString("latin1")).not.toContain("analytics.internal");
    expect(openSecret(sources.secretsKeyring!, sealed!)).toBe(`${VALUE}?v=2`);

    const listed = await listWorkspaceSecrets(deps, seed.admin);
    expect(JSON.stringify(listed)).not.toContain("p4ss-w0rd");
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectType: "secret" });
    expect(events.map((e) => e.action).sort()).toEqual(["secret.created", "secret.rotated"]);
    expect(JSON.stringify(events)).not.toContain("p4ss-w0rd");

    await deleteWorkspaceSecret(deps, seed.admin, "analytics-db");
    expect(await listWorkspaceSecrets(deps, seed.admin)).toEqual([]);
    expect(await codeOf(deleteWorkspaceSecret(deps, seed.admin, "analytics-db"))).toBe("not_found");
  });

  it("refuses non-admins, keys without write or admin, bad names and values, and an installation without a key", async () => {
    const deps = { db: t.db, sources };
    const member = await seed.key("mallory@acme.example", "member");
    expect(await codeOf(setWorkspaceSecret(deps, member.caller, { name: "x", value: "y" }))).toBe("forbidden");
    const readAdmin: Caller = {
      ...seed.admin,
      principal: { ...seed.admin.principal, scopes: ["read", "admin"] } as Principal,
    };
    expect(await codeOf(setWorkspaceSecret(deps, readAdmin, { name: "x", value: "y" }))).toBe("forbidden");
    for (const input of [
      { name: "Bad Name", value: "y" },
      { name: "ok", value: "" },
      { name: "ok", value: "a\u0000b" },
      { name: "ok", value: "x".repeat(16 * 1024 + 1) },
    ]) {
      expect(await codeOf(setWorkspaceSecret(deps, seed.admin, input))).toBe("validation_failed");
    }
    expect(await codeOf(setWorkspaceSecret({ db: t.db }, seed.admin, { name: "ok", value: "y" }))).toBe(
      "secrets_disabled",
    );
  });

  it("does not open a sealed value moved to another workspace's row, or under another key", async () => {
    const deps = { db: t.db, sources };
    await setWorkspaceSecret(deps, seed.admin, { name: "moved", value: VALUE });
    const sealed = (await secrets.findSealedSecret(t.db, seed.workspaceId, "moved"))!;
    const other = await workspaces.ensureWorkspace(t.db, "other", "Other");
    expect(() => openSecret(sources.secretsKeyring!, { ...sealed, workspaceId: other.id })).toThrow(/does not open/);
    expect(() => openSecret(sources.secretsKeyring!, { ...sealed, name: "renamed" })).toThrow(/does not open/);
    const newKey = secretsKeyringFromEnv({ OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("hex") })!;
    expect(() => openSecret(newKey, sealed)).toThrow(/sealed with another key/);
    // The old key kept as a previous one still opens it.
    const rotatedKeys = secretsKeyringFromEnv({
      OUTCOME_RUNTIME_SECRETS_KEY: randomBytes(32).toString("hex"),
      OUTCOME_RUNTIME_SECRETS_KEY_PREVIOUS: KEY,
    })!;
    expect(openSecret(rotatedKeys, sealed)).toBe(VALUE);
    expect(() => secretsKeyringFromEnv({ OUTCOME_RUNTIME_SECRETS_KEY: "short" })).toThrow(/not 32 bytes/);
  });

  it("are resolved for connectors of their own workspace only, and a rotation reaches the poll", async () => {
    const deps = { db: t.db, sources };
    await setWorkspaceSecret(deps, seed.admin, { name: "resolved", value: "first" });
    const requirement = {
      credential: "database_url",
      field: "database_url_secret",
      ref: { via: "secret" as const, name: "resolved" },
    };
    const own = { id: seed.workspaceId, slug: "default" };
    expect(await resolveCredentials(t.db, sources, own, [requirement], "worker")).toEqual({ database_url: "first" });
    const other = await workspaces.ensureWorkspace(t.db, `ws-${randomUUID().slice(0, 8)}`, "Another");
    await expect(
      resolveCredentials(t.db, sources, { id: other.id, slug: other.slug }, [requirement], "worker"),
    ).rejects.toMatchObject({ code: "invalid_config", message: expect.stringContaining("no secret named resolved") });

    // The provider hands the connector the value; after a rotation (and the cache's time), a new connector.
    const seen: string[] = [];
    const closed: string[] = [];
    const provider = connectorProvider({
      db: t.db,
      access: sources,
      credentialsTtlMs: 0,
      create: (_config, context) => {
        const value = context.credentials?.database_url ?? "";
        seen.push(value);
        return {
          type: "fake",
          describe: () => "fake",
          fetchArmAggregates: async () => [],
          fetchOutcomeSeries: async () => [],
          close: async () => {
            closed.push(value);
          },
        };
      },
    });
    const config = {
      type: "postgres",
      database_url_secret: "resolved",
      query: "SELECT arm, 1 AS units, 0 AS sum, 0 AS sum_sq FROM t WHERE e = :experiment AND ts <= :to",
    };
    const first = await provider.get(seed.workspaceId, config, "proportion");
    expect(await provider.get(seed.workspaceId, config, "proportion")).toBe(first);
    expect(seen).toEqual(["first"]);
    await setWorkspaceSecret(deps, seed.admin, { name: "resolved", value: "second" });
    const second = await provider.get(seed.workspaceId, config, "proportion");
    expect(second).not.toBe(first);
    expect(seen).toEqual(["first", "second"]);
    expect(closed).toEqual(["first"]);
    await provider.close();
    expect(closed).toEqual(["first", "second"]);
  });
});
