/**
 * The signal retention through the API: the `signalRetention` setting (read,
 * changed by an admin, refused with the field, the value and the range) and
 * the on-demand run. What the run deletes is tested beside the use case
 * (packages/runtime/src/signals/signal-retention.int.test.ts).
 */
import { audit } from "@outcome-runtime/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

let api: TestApi;

beforeAll(async () => {
  api = await createTestApi();
});
afterAll(async () => {
  await api.close();
});

const settings = (payload?: unknown) =>
  api.app.inject({
    method: payload === undefined ? "GET" : "PATCH",
    url: "/v1/workspace/settings",
    headers: api.auth,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });

describe("signalRetention", () => {
  it("keeps points forever by default, and an admin sets and clears a retention", async () => {
    expect((await settings()).json()).toMatchObject({ signalRetention: { days: null } });
    const set = await settings({ signalRetention: { days: 90 } });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json()).toMatchObject({ signalRetention: { days: 90 }, separationOfDuties: true });
    expect((await settings()).json()).toMatchObject({ signalRetention: { days: 90 } });
    const changed = await audit.listAuditEvents(api.t.db, api.seed.workspaceId, {
      action: "workspace.settings_changed",
    });
    expect(changed[0]).toMatchObject({
      before: { signalRetention: { days: null } },
      after: { signalRetention: { days: 90 } },
    });
    expect((await settings({ signalRetention: { days: null } })).json()).toMatchObject({
      signalRetention: { days: null },
    });
  });

  it.each([
    [{ days: 0 }, "signalRetention.days", "not 0"],
    [{ days: 7.5 }, "signalRetention.days", "not 7.5"],
    [{ days: "30" }, "signalRetention.days", 'not "30"'],
    [{}, "signalRetention.days", "not undefined"],
    [30, "signalRetention", "not 30"],
    [{ days: 30, keep: "all" }, "signalRetention.keep", 'unknown field "keep"'],
  ])("refuses %j with a 400 naming %s and the value", async (value, field, given) => {
    const refused = await settings({ signalRetention: value });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ code: "validation_failed", details: { field } });
    expect(refused.json().detail).toContain(given);
    expect((await settings()).json()).toMatchObject({ signalRetention: { days: null } });
  });
});

describe("POST /v1/workspace/signal-retention/run", () => {
  it("applies the workspace's retention now and reports it; a workspace keeping points forever deletes nothing", async () => {
    const kept = await api.app.inject({ method: "POST", url: "/v1/workspace/signal-retention/run", headers: api.auth });
    expect(kept.statusCode, kept.body).toBe(200);
    expect(kept.json()).toEqual({
      workspaceId: api.seed.workspaceId,
      days: null,
      cutoff: null,
      status: "kept_forever",
      pointsDeleted: 0,
      seriesTouched: 0,
      batches: 0,
    });
    await settings({ signalRetention: { days: 30 } });
    const applied = await api.app.inject({
      method: "POST",
      url: "/v1/workspace/signal-retention/run",
      headers: api.auth,
    });
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json()).toMatchObject({ days: 30, status: "applied", pointsDeleted: 0 });
    expect(Date.parse(applied.json().cutoff)).toBeLessThan(Date.now() - 29 * 86_400_000);
  });

  it("is an admin's: a member is refused, naming the operation", async () => {
    const member = await api.seed.key("member-retention", "member");
    const refused = await api.app.inject({
      method: "POST",
      url: "/v1/workspace/signal-retention/run",
      headers: { authorization: `Bearer ${member.key}` },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: "forbidden", details: { operation: "settings.update" } });
  });
});
