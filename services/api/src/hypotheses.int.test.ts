/**
 * Portfolios over HTTP with no LLM configured: activation proposes three
 * hypotheses from the rules engine into a pending portfolio gate, and
 * POST /v1/outcomes/:id/hypotheses generates another portfolio.
 */
import { exampleOutcome } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

let api: TestApi;

beforeAll(async () => {
  api = await createTestApi();
});
afterAll(async () => {
  await api.close();
});

describe("hypotheses over HTTP", () => {
  it("activation proposes three rules hypotheses into a pending portfolio gate", async () => {
    const applied = await api.app.inject({
      method: "POST",
      url: "/v1/outcomes",
      headers: { ...api.auth, "content-type": "application/yaml" },
      body: exampleOutcome(),
    });
    expect(applied.statusCode).toBe(201);
    const res = await api.app.inject({
      method: "POST",
      url: "/v1/outcomes/checkout-abandonment/activate",
      headers: api.auth,
      payload: {},
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.outcome.state).toBe("active");
    expect(body.portfolioError).toBeNull();
    expect(body.portfolio).toMatchObject({ source: "rules", fallbackReason: null, costUsd: 0 });
    expect(body.portfolio.experiments).toHaveLength(3);
    expect(body.portfolio.gate).toMatchObject({ kind: "portfolio_review", status: "pending" });
    for (const e of body.portfolio.experiments) {
      expect(e).toMatchObject({ state: "proposed", source: "rules", portfolioGateId: body.portfolio.gate.id });
      expect(e.prediction.effect).toBeGreaterThan(0);
    }
  });

  it("regenerates a portfolio on request, with new hypotheses joining the pending gate", async () => {
    const res = await api.app.inject({
      method: "POST",
      url: "/v1/outcomes/checkout-abandonment/hypotheses",
      headers: api.auth,
    });
    expect(res.statusCode).toBe(201);
    expect(res.json().experiments).toHaveLength(3);
    const list = await api.app.inject({
      method: "GET",
      url: "/v1/outcomes/checkout-abandonment/experiments",
      headers: api.auth,
    });
    expect(list.json().items).toHaveLength(6);
    const gates = new Set(list.json().items.map((e: { portfolioGateId: string }) => e.portfolioGateId));
    expect(gates.size).toBe(1);
  });

  it("refuses agents, and outcomes that are not active", async () => {
    const agent = await api.seed.key("agent-7", "agent");
    const byAgent = await api.app.inject({
      method: "POST",
      url: "/v1/outcomes/checkout-abandonment/hypotheses",
      headers: { authorization: `Bearer ${agent.key}` },
    });
    expect(byAgent.statusCode).toBe(403);
    await api.app.inject({
      method: "POST",
      url: "/v1/outcomes",
      headers: { ...api.auth, "content-type": "application/yaml" },
      body: exampleOutcome().replace(/^id: checkout-abandonment$/m, "id: still-draft"),
    });
    const draft = await api.app.inject({
      method: "POST",
      url: "/v1/outcomes/still-draft/hypotheses",
      headers: api.auth,
    });
    expect(draft.statusCode).toBe(409);
    expect(draft.json().code).toBe("outcome_not_active");
  });
});
