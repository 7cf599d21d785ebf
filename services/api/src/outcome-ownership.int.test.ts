/**
 * Who may change an outcome, through the REST API: a member's takeover of
 * someone else's outcome is a 403 `not_outcome_owner` that writes nothing; the
 * owner's revision is audited with its changes; whoever revised an outcome
 * gets 403 `separation_of_duties` approving its launch alone, with a bearer
 * key or a dashboard session, until an admin turns the workspace setting off.
 */
import {
  applyOutcome,
  decideGate,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

let api: TestApi;
let app: TestApi["app"];
type Key = Awaited<ReturnType<TestApi["seed"]["key"]>>;
/** The owner (maya), the other launch assignee, a member who owns nothing here, and the building agent. */
const keys = {} as Record<"maya" | "engLead" | "mallory" | "agent", Key>;

beforeAll(async () => {
  api = await createTestApi();
  app = api.app;
  keys.maya = await api.seed.key("maya.pm@acme.example", "member");
  keys.engLead = await api.seed.key("eng.lead@acme.example", "approver");
  keys.mallory = await api.seed.key("mallory@acme.example", "member");
  keys.agent = await api.seed.key("claude-code", "agent");
});
afterAll(async () => {
  await api.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

function applyYaml(key: string, body: string) {
  return app.inject({
    method: "POST",
    url: "/v1/outcomes",
    headers: { ...bearer(key), "content-type": "application/yaml" },
    body,
  });
}

function decide(key: string, gateId: string, decision: string) {
  return app.inject({
    method: "POST",
    url: `/v1/gates/${gateId}/decision`,
    headers: bearer(key),
    payload: { decision },
  });
}

function settings(key: string, payload?: Record<string, unknown>) {
  return app.inject({
    method: payload === undefined ? "GET" : "PATCH",
    url: "/v1/workspace/settings",
    headers: bearer(key),
    ...(payload === undefined ? {} : { payload }),
  });
}

async function audit(query: string) {
  const res = await app.inject({ method: "GET", url: `/v1/audit?${query}`, headers: api.auth });
  expect(res.statusCode).toBe(200);
  return res.json().items as { action: string; actor: { name: string }; before: unknown; after: unknown }[];
}

/** Maya's outcome (created by the admin), active, with an experiment the agent claimed. */
async function mayasOutcomeWithClaimedExperiment(slug: string) {
  const deps = { db: api.t.db };
  const created = await applyOutcome(deps, api.seed.admin, { source: outcomeVariant(slug) });
  await transitionOutcome(deps, api.seed.admin, slug, "activate", null);
  const p = await proposeExperiment(deps, api.seed.admin, slug, {
    title: "Show the delivery date early",
    statement: "If we show the delivery date early, fewer shoppers abandon the checkout, because they know when.",
  });
  await decideGate(deps, keys.maya.caller, p.gate.id, { decision: "approve" });
  await transitionExperiment(deps, keys.agent.caller, p.experiment.id, { action: "claim" });
  return { outcome: created.outcome, experimentId: p.experiment.id };
}

async function reportBuilt(experimentId: string, changedPaths: string[]) {
  return app.inject({
    method: "POST",
    url: `/v1/experiments/${experimentId}/transitions`,
    headers: bearer(keys.agent.key),
    payload: { action: "report_built", changedPaths, build: { summary: "Delivery date above the fold" } },
  });
}

describe("POST /v1/outcomes by someone other than the owner", () => {
  it("regression: the member's takeover (owner, approver, billing unforbidden, max_harm 99 %) is 403 and writes nothing", async () => {
    const { outcome, experimentId } = await mayasOutcomeWithClaimedExperiment("rest-takeover");
    const attack = outcomeVariant("rest-takeover", [
      ["owner: maya.pm@acme.example", "owner: mallory@acme.example"],
      ["assignees: [maya.pm@acme.example, eng.lead@acme.example]", "assignees: [mallory@acme.example]"],
      ['      - "services/billing/**"\n', ""],
      ["max_harm: 3%", "max_harm: 99%"],
    ]);
    const refused = await applyYaml(keys.mallory.key, attack);
    expect(refused.statusCode).toBe(403);
    expect(refused.headers["content-type"]).toContain("application/problem+json");
    expect(refused.json()).toMatchObject({
      status: 403,
      code: "not_outcome_owner",
      details: { owner: "maya.pm@acme.example", outcome: "rest-takeover" },
    });
    expect(refused.json().detail).toContain("Ask maya.pm@acme.example or an admin");

    const detail = await app.inject({ method: "GET", url: "/v1/outcomes/rest-takeover", headers: api.auth });
    expect(detail.json()).toMatchObject({ outcome: { revision: 1, owner: "maya.pm@acme.example" } });
    expect(detail.json().latestRevisions.map((r: { revision: number }) => r.revision)).toEqual([1]);
    expect(await audit(`subjectId=${outcome.id}&action=outcome.revised`)).toEqual([]);

    // The agent's build touching billing stays refused; the launch gate is not mallory's.
    const billing = await reportBuilt(experimentId, ["services/billing/invoice.ts"]);
    expect(billing.statusCode).toBe(422);
    expect(billing.json().code).toBe("forbidden_paths_touched");
    const built = await reportBuilt(experimentId, ["apps/web/src/checkout/Summary.tsx"]);
    expect(built.statusCode).toBe(200);
    const launchId = built.json().openedGates[0].id as string;
    const approve = await decide(keys.mallory.key, launchId, "approve");
    expect(approve.statusCode).toBe(403);
    expect(approve.json().code).toBe("gate_not_assignee");
  });

  it("the owner's revision is 200 revised, audited with its changes and as a sensitive change", async () => {
    const { outcome } = await mayasOutcomeWithClaimedExperiment("rest-owner");
    const revised = await applyYaml(
      keys.maya.key,
      outcomeVariant("rest-owner", [
        ["assignees: [maya.pm@acme.example, eng.lead@acme.example]", "assignees: [eng.lead@acme.example]"],
      ]),
    );
    expect(revised.statusCode).toBe(200);
    expect(revised.json()).toMatchObject({ status: "revised", outcome: { revision: 2 } });
    const change = {
      path: "gates.launch_approval.assignees",
      before: ["maya.pm@acme.example", "eng.lead@acme.example"],
      after: ["eng.lead@acme.example"],
    };
    const [revision] = await audit(`subjectId=${outcome.id}&action=outcome.revised`);
    expect(revision).toMatchObject({
      actor: { name: "maya.pm@acme.example" },
      after: { revision: 2, changes: [change] },
    });
    const [sensitive] = await audit(`subjectId=${outcome.id}&action=outcome.sensitive_change`);
    expect(sensitive).toMatchObject({ after: { revision: 2, changes: [change] } });
  });
});

describe("separation of duties through the API", () => {
  it("the reviser's approve is 403 separation_of_duties (bearer and dashboard session); reject and another assignee are fine", async () => {
    const first = await mayasOutcomeWithClaimedExperiment("rest-sod");
    const revised = await applyYaml(keys.maya.key, outcomeVariant("rest-sod", [["max_harm: 3%", "max_harm: 2%"]]));
    expect(revised.statusCode).toBe(200);
    const launchId = (await reportBuilt(first.experimentId, ["apps/web/src/checkout/Summary.tsx"])).json()
      .openedGates[0].id as string;

    const refused = await decide(keys.maya.key, launchId, "approve");
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({
      code: "separation_of_duties",
      details: {
        revisedBy: "maya.pm@acme.example",
        revision: 2,
        otherApprovers: ["eng.lead@acme.example", "lead@acme.example"],
      },
    });
    expect(refused.json().detail).toContain("must approve; you may still reject");

    // The same through a dashboard session (channel web).
    const signIn = await app.inject({ method: "POST", url: "/session", payload: { apiKey: keys.maya.key } });
    const csrf = signIn.json().csrfToken as string;
    const setCookie = signIn.headers["set-cookie"];
    const session = /or_session=([^;]+)/.exec(([] as string[]).concat(setCookie ?? []).join("\n"))?.[1] ?? "";
    expect(session).not.toBe("");
    const viaSession = await app.inject({
      method: "POST",
      url: `/v1/gates/${launchId}/decision`,
      headers: {
        cookie: `or_session=${session}; or_csrf=${encodeURIComponent(csrf)}`,
        "x-csrf-token": csrf,
      },
      payload: { decision: "approve" },
    });
    expect(viaSession.statusCode).toBe(403);
    expect(viaSession.json().code).toBe("separation_of_duties");

    const gate = await app.inject({ method: "GET", url: `/v1/gates/${launchId}`, headers: api.auth });
    expect(gate.json()).toMatchObject({ gate: { status: "pending" }, experiments: [{ state: "built" }] });

    const approved = await decide(keys.engLead.key, launchId, "approve");
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toMatchObject({
      gate: { status: "approved", decision: { decidedBy: "eng.lead@acme.example" } },
      experiments: [{ state: "running" }],
    });

    // A second experiment of the same outcome: the reviser may send its build back.
    const p = await proposeExperiment({ db: api.t.db }, api.seed.admin, "rest-sod", {
      title: "Trust badges",
      statement: "If we show trust badges, fewer shoppers abandon the checkout, because they feel safe.",
    });
    await decideGate({ db: api.t.db }, keys.maya.caller, p.gate.id, { decision: "approve" });
    await transitionExperiment({ db: api.t.db }, keys.agent.caller, p.experiment.id, { action: "claim" });
    const second = (await reportBuilt(p.experiment.id, ["apps/web/src/checkout/Badges.tsx"])).json().openedGates[0]
      .id as string;
    const rejected = await decide(keys.maya.key, second, "reject");
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({ gate: { status: "rejected" }, experiments: [{ state: "building" }] });
  });

  it("GET/PATCH /v1/workspace/settings carry separationOfDuties; with it off the reviser approves alone", async () => {
    expect((await settings(keys.maya.key)).json()).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: true,
      signalRetention: { days: null },
    });
    const notAdmin = await settings(keys.maya.key, { separationOfDuties: false });
    expect(notAdmin.statusCode).toBe(403);
    expect(notAdmin.json().code).toBe("forbidden");
    const invalid = await settings(api.seed.adminKey, { separationOfDuties: "sometimes" });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ code: "validation_failed" });
    expect(JSON.stringify(invalid.json().errors)).toContain("separationOfDuties");

    const { experimentId } = await mayasOutcomeWithClaimedExperiment("rest-sod-off");
    expect(
      (await applyYaml(keys.maya.key, outcomeVariant("rest-sod-off", [["max_harm: 3%", "max_harm: 2%"]]))).statusCode,
    ).toBe(200);
    const launchId = (await reportBuilt(experimentId, ["apps/web/src/checkout/Summary.tsx"])).json().openedGates[0]
      .id as string;
    expect((await decide(keys.maya.key, launchId, "approve")).json().code).toBe("separation_of_duties");

    const off = await settings(api.seed.adminKey, { separationOfDuties: false });
    expect(off.statusCode).toBe(200);
    expect(off.json()).toEqual({
      sessionRequiredDecisions: ["resume"],
      separationOfDuties: false,
      signalRetention: { days: null },
    });
    try {
      const approved = await decide(keys.maya.key, launchId, "approve");
      expect(approved.statusCode).toBe(200);
      expect(approved.json()).toMatchObject({ gate: { status: "approved" }, experiments: [{ state: "running" }] });
    } finally {
      expect((await settings(api.seed.adminKey, { separationOfDuties: true })).statusCode).toBe(200);
    }
  });

  it("the OpenAPI document describes the setting", async () => {
    const doc = (await app.inject({ method: "GET", url: "/docs/json" })).json();
    const patch = doc.paths["/v1/workspace/settings"].patch;
    const body = patch.requestBody.content["application/json"].schema;
    expect(body.properties.separationOfDuties).toMatchObject({ type: "boolean" });
    expect(body.additionalProperties).toBe(false);
  });
});
