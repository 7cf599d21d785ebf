/**
 * An outcome's answer stays bounded however many experiments, gates and
 * revisions it has; its lists are paged endpoints of their own, which return
 * every item once across their pages, and only to the outcome's workspace.
 */
import { randomUUID } from "node:crypto";
import type { Principal } from "@outcome-runtime/core";
import { gates, workspaces } from "@outcome-runtime/db";
import { applyOutcome, type Caller, createApiKey, proposeExperiment } from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

const SLUG = "many-lists";
const EXPERIMENTS = 120;
const REVISIONS = 9;

let api: TestApi;
let outcomeId: string;
/** Experiment ids in the order they were proposed. */
const proposed: string[] = [];
/** Every gate id of the outcome. */
const gateIds = new Set<string>();
let otherKey: string;

async function get(url: string, key = api.seed.adminKey) {
  const response = await api.app.inject({ method: "GET", url, headers: { authorization: `Bearer ${key}` } });
  return { status: response.statusCode, bytes: Buffer.byteLength(response.body), json: () => response.json() };
}

/** Every item of a paged list, following `nextCursor`; fails on a page that repeats an item. */
async function readAll<T extends { id?: string; revision?: number }>(url: string, limit: number) {
  const items: T[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = url.includes("?") ? "&" : "?";
    const page = await get(`${url}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    expect(page.status, url).toBe(200);
    const body = page.json() as { items: T[]; nextCursor: string | null };
    expect(body.items.length).toBeLessThanOrEqual(limit);
    items.push(...body.items);
    cursor = body.nextCursor;
    pages++;
  } while (cursor !== null);
  return { items, pages };
}

beforeAll(async () => {
  api = await createTestApi();
  const deps = { db: api.t.db };
  const admin = api.seed.admin;
  // Revisions 1…9 of an outcome that stays a draft (a draft takes revisions; no portfolio is generated).
  for (let r = 1; r <= REVISIONS; r++) {
    await applyOutcome(deps, admin, {
      source: outcomeVariant(SLUG, [["name: Reduce checkout abandonment", `name: Many lists, take ${r}`]]),
    });
  }
  const activated = await api.app.inject({
    method: "POST",
    url: `/v1/outcomes/${SLUG}/activate`,
    headers: api.auth,
    payload: {},
  });
  expect(activated.statusCode).toBe(200);
  outcomeId = activated.json().outcome.id;
  // The rules engine's first portfolio (3 hypotheses), then as many again as a busy team proposes.
  const first = await get(`/v1/outcomes/${SLUG}/experiments?limit=200`);
  proposed.push(...first.json().items.map((e: { id: string }) => e.id));
  for (let i = proposed.length; i < EXPERIMENTS; i++) {
    const { experiment, gate } = await proposeExperiment(deps, admin, SLUG, {
      title: `Hypothesis number ${i}`,
      statement: `If we try change number ${i}, fewer shoppers abandon the checkout.`,
    });
    proposed.push(experiment.id);
    gateIds.add(gate.id);
  }
  // Two pending gates per experiment (a launch approval and an analysis review), as a long-lived outcome gathers.
  const at = new Date();
  for (const experimentId of proposed) {
    for (const kind of ["launch_approval", "analysis_review"] as const) {
      const gate = await gates.insertPendingGate(api.t.db, {
        workspaceId: api.seed.workspaceId,
        outcomeId,
        experimentId,
        kind,
        assignees: ["maya.pm@acme.example", "eng.lead@acme.example"],
        backup: null,
        slaSeconds: 86_400,
        createdAt: at,
        context: { reason: "a gate among many", experimentId },
      });
      gateIds.add(gate!.id);
    }
  }
  // Another workspace with an admin key of its own.
  const ws = await workspaces.ensureWorkspace(api.t.db, "other", "Other workspace");
  const operator: Caller = {
    principal: { id: randomUUID(), name: "operator", role: "admin", workspaceId: ws.id } satisfies Principal,
    channel: "system",
    requestId: null,
  };
  otherKey = (await createApiKey(deps, operator, { name: "other-admin", role: "admin" })).key;
}, 120_000);

afterAll(async () => {
  await api?.close();
});

describe("GET /v1/outcomes/:id", () => {
  it("stays under 20 KB with 120 experiments, 241 gates and 9 revisions, and counts them", async () => {
    expect(gateIds.size).toBe(1 + 2 * EXPERIMENTS);
    const detail = await get(`/v1/outcomes/${SLUG}`);
    expect(detail.status).toBe(200);
    expect(detail.bytes).toBeLessThan(20_000);
    const body = detail.json();
    expect(body).not.toHaveProperty("gates");
    expect(body).not.toHaveProperty("revisions");
    expect(body.experimentCounts).toEqual({ proposed: EXPERIMENTS });
    expect(body.pendingGates).toBe(gateIds.size);
    expect(body.gateCounts).toEqual({
      portfolio_review: { pending: 1 },
      launch_approval: { pending: EXPERIMENTS },
      analysis_review: { pending: EXPERIMENTS },
    });
    expect(body.outcome.revision).toBe(REVISIONS);
    expect(body.latestRevisions.map((r: { revision: number }) => r.revision)).toEqual([9, 8, 7, 6, 5]);
  });
});

describe("the outcome's paged lists", () => {
  it("GET /v1/gates?outcomeId= returns every gate once, newest first", async () => {
    const { items, pages } = await readAll<{ id: string; createdAt: string }>(`/v1/gates?outcomeId=${outcomeId}`, 50);
    expect(pages).toBe(Math.ceil(gateIds.size / 50));
    expect(items).toHaveLength(gateIds.size);
    expect(new Set(items.map((g) => g.id))).toEqual(gateIds);
    const times = items.map((g) => Date.parse(g.createdAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const pending = await readAll<{ id: string }>(
      `/v1/gates?outcomeId=${outcomeId}&status=pending&kind=launch_approval`,
      200,
    );
    expect(pending.items).toHaveLength(EXPERIMENTS);
  });

  it("GET /v1/outcomes/:id/experiments returns every experiment once, oldest first, by id or slug", async () => {
    for (const id of [SLUG, outcomeId]) {
      const { items, pages } = await readAll<{ id: string }>(`/v1/outcomes/${id}/experiments`, 40);
      expect(pages).toBe(3);
      expect(items.map((e) => e.id)).toEqual(proposed);
    }
    // Without a limit: a page of 50 and the cursor of the next.
    const first = (await get(`/v1/outcomes/${SLUG}/experiments`)).json();
    expect(first.items).toHaveLength(50);
    expect(first.nextCursor).toEqual(expect.any(String));
  });

  it("GET /v1/outcomes/:id/revisions returns every revision once, newest first", async () => {
    const { items, pages } = await readAll<{ revision: number }>(`/v1/outcomes/${SLUG}/revisions`, 4);
    expect(pages).toBe(3);
    expect(items.map((r) => r.revision)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it("refuses a cursor no page made, naming the field", async () => {
    for (const url of [`/v1/outcomes/${SLUG}/experiments`, `/v1/outcomes/${SLUG}/revisions`]) {
      const response = await get(`${url}?cursor=not-a-cursor`);
      expect(response.status, url).toBe(400);
      expect(response.json()).toMatchObject({ code: "validation_failed", details: { field: "cursor" } });
    }
  });

  it("another workspace gets not_found for the lists, even with a valid cursor, and an empty gate list", async () => {
    const cursor = (await get(`/v1/outcomes/${SLUG}/experiments?limit=10`)).json().nextCursor as string;
    for (const url of [
      `/v1/outcomes/${outcomeId}`,
      `/v1/outcomes/${outcomeId}/experiments`,
      `/v1/outcomes/${outcomeId}/experiments?cursor=${encodeURIComponent(cursor)}`,
      `/v1/outcomes/${SLUG}/revisions`,
      `/v1/outcomes/${outcomeId}/revisions`,
    ]) {
      const response = await get(url, otherKey);
      expect(response.status, url).toBe(404);
      expect(response.json().code, url).toBe("not_found");
    }
    const gatesOfA = await get(`/v1/gates?outcomeId=${outcomeId}`, otherKey);
    expect(gatesOfA.status).toBe(200);
    expect(gatesOfA.json()).toEqual({ items: [], nextCursor: null });
  });
});
