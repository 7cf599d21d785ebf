/**
 * Races and edge cases between use cases, on the real Postgres.
 */
import { audit, createDb } from "@outcome-runtime/db";
import {
  codeOf,
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "./apply-outcome";
import { inTransaction } from "./context";
import { decideGate, getGate } from "./decide-gate";
import { getExperiment, listExperimentsOfOutcome, proposeExperiment, transitionExperiment } from "./experiments";
import { runIdempotent } from "./idempotency";
import { moveExperiment } from "./move-experiment";
import { moveOutcome } from "./move-outcome";
import { listOutcomes, requireOutcome, transitionOutcome } from "./outcomes";
import { StateChangedError } from "./state-conflict";

let t: TestDatabase;
let seed: Seeded;
const deps = () => ({ db: t.db });

beforeAll(async () => {
  t = await createTestDatabase({ max: 20 });
  seed = await seedWorkspace(t.db);
});
afterAll(async () => {
  await t.drop();
});

async function activeOutcome(id: string): Promise<void> {
  await applyOutcome(deps(), seed.admin, { source: outcomeVariant(id) });
  await transitionOutcome(deps(), seed.admin, id, "activate", null);
}

const hypothesis = (title: string, key?: string) => ({
  title,
  statement: `If we ${title.toLowerCase()}, fewer shoppers abandon the checkout.`,
  ...(key ? { key } : {}),
});

describe("proposals racing a portfolio decision", () => {
  it("never leaves a hypothesis proposed on a decided gate", async () => {
    await activeOutcome("race-portfolio");
    const first = await proposeExperiment(deps(), seed.admin, "race-portfolio", hypothesis("Seed hypothesis"));
    const [decision] = await Promise.all([
      decideGate(deps(), seed.admin, first.gate.id, { decision: "approve" }),
      ...Array.from({ length: 15 }, (_, i) =>
        proposeExperiment(deps(), seed.admin, "race-portfolio", hypothesis(`Concurrent idea ${i}`)),
      ),
    ]);
    expect(decision.gate.status).toBe("approved");
    const all = (await listExperimentsOfOutcome(deps(), seed.admin, "race-portfolio", { limit: 200 })).items;
    expect(all).toHaveLength(16);
    for (const e of all) {
      const gate = (await getGate(deps(), seed.admin, e.portfolioGateId!)).gate;
      // Either decided with its gate, or waiting on a gate that is still pending.
      if (e.state === "proposed") expect(gate.status).toBe("pending");
      else expect(e.state).toBe("approved");
    }
  });
});

describe("experiment keys", () => {
  it("concurrent proposals with the same title in two outcomes get distinct keys", async () => {
    await activeOutcome("keys-a");
    await activeOutcome("keys-b");
    const results = await Promise.all(
      ["keys-a", "keys-b", "keys-a", "keys-b"].map((o) =>
        proposeExperiment(deps(), seed.admin, o, hypothesis("Same title")),
      ),
    );
    const keys = results.map((r) => r.experiment.key).sort();
    expect(keys).toEqual(["same-title", "same-title-2", "same-title-3", "same-title-4"]);
  });

  it("a taken explicit key is refused as experiment_key_taken; an id-shaped key as validation_failed", async () => {
    await proposeExperiment(deps(), seed.admin, "keys-a", hypothesis("Explicit", "explicit-key"));
    expect(await codeOf(proposeExperiment(deps(), seed.admin, "keys-b", hypothesis("Other", "explicit-key")))).toBe(
      "experiment_key_taken",
    );
    expect(
      await codeOf(
        proposeExperiment(deps(), seed.admin, "keys-b", hypothesis("Other", "12345678-1234-1234-1234-123456789abc")),
      ),
    ).toBe("validation_failed");
  });
});

describe("refused builds", () => {
  it("are refused and audited even when every pooled connection is busy", async () => {
    await activeOutcome("refused");
    const agent = await seed.key("refusing-agent", "agent");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await proposeExperiment(deps(), seed.admin, "refused", hypothesis(`Refused ${i}`));
      ids.push(p.experiment.id);
    }
    await decideGate(
      deps(),
      seed.admin,
      (await getExperiment(deps(), seed.admin, ids[0]!)).experiment.portfolioGateId!,
      {
        decision: "approve",
      },
    );
    for (const id of ids) await transitionExperiment(deps(), agent.caller, id, { action: "claim" });
    const small = createDb({ url: t.url, max: 2 });
    try {
      const codes = await Promise.all(
        ids.map((id) =>
          codeOf(
            transitionExperiment({ db: small }, agent.caller, id, {
              action: "report_built",
              changedPaths: ["services/billing/charge.ts"],
            }),
          ),
        ),
      );
      expect(codes).toEqual(["forbidden_paths_touched", "forbidden_paths_touched", "forbidden_paths_touched"]);
    } finally {
      await small.destroy();
    }
    for (const id of ids) {
      const events = await audit.listAuditEvents(t.db, seed.workspaceId, {
        subjectId: id,
        action: "experiment.build_refused",
      });
      expect(events).toHaveLength(1);
      expect((await getExperiment(deps(), seed.admin, id)).experiment.state).toBe("building");
    }
  });
});

describe("who may do what", () => {
  it("agents cannot apply outcomes, resume experiments, or report another agent's build", async () => {
    const agent = await seed.key("rogue-agent", "agent");
    expect(await codeOf(applyOutcome(deps(), agent.caller, { source: outcomeVariant("agent-apply") }))).toBe(
      "forbidden",
    );

    await activeOutcome("roles");
    const p = await proposeExperiment(deps(), seed.admin, "roles", hypothesis("Roles"));
    await decideGate(deps(), seed.admin, p.gate.id, { decision: "approve" });
    const builder = await seed.key("builder-agent", "agent");
    await transitionExperiment(deps(), builder.caller, p.experiment.id, { action: "claim" });
    expect(
      await codeOf(
        transitionExperiment(deps(), agent.caller, p.experiment.id, { action: "report_built", changedPaths: [] }),
      ),
    ).toBe("not_claimant");
    const built = await transitionExperiment(deps(), builder.caller, p.experiment.id, {
      action: "report_built",
      changedPaths: ["apps/web/src/checkout/x.ts"],
    });
    await decideGate(deps(), seed.admin, built.openedGates[0]!.id, { decision: "approve" });
    const paused = await transitionExperiment(deps(), builder.caller, p.experiment.id, { action: "pause" });
    const review = paused.openedGates[0]!;
    expect(review.kind).toBe("analysis_review");
    expect(await codeOf(transitionExperiment(deps(), builder.caller, p.experiment.id, { action: "resume" }))).toBe(
      "forbidden",
    );
    expect(await codeOf(decideGate(deps(), builder.caller, review.id, { decision: "resume" }))).toBe(
      "agents_cannot_decide",
    );
    const member = await seed.key("dev@acme.example", "member");
    expect(await codeOf(decideGate(deps(), member.caller, review.id, { decision: "resume" }))).toBe(
      "gate_not_assignee",
    );
    const resumed = await decideGate(deps(), seed.admin, review.id, { decision: "resume" });
    expect(resumed.experiments.map((e) => e.state)).toEqual(["running"]);
  });
});

describe("abandoning an outcome", () => {
  it("expires its pending gates, pauses its running experiments, and refuses further moves but pause", async () => {
    await activeOutcome("wind-down");
    const running = await proposeExperiment(deps(), seed.admin, "wind-down", hypothesis("Runs"));
    await decideGate(deps(), seed.admin, running.gate.id, { decision: "approve" });
    await transitionExperiment(deps(), seed.admin, running.experiment.id, { action: "claim", claimedBy: "cursor" });
    const built = await transitionExperiment(deps(), seed.admin, running.experiment.id, {
      action: "report_built",
      changedPaths: [],
    });
    await decideGate(deps(), seed.admin, built.openedGates[0]!.id, { decision: "approve" });
    const waiting = await proposeExperiment(deps(), seed.admin, "wind-down", hypothesis("Waits"));

    await transitionOutcome(deps(), seed.admin, "wind-down", "abandon", "strategy changed");

    expect((await getExperiment(deps(), seed.admin, running.experiment.id)).experiment.state).toBe("paused");
    const gate = (await getGate(deps(), seed.admin, waiting.gate.id)).gate;
    expect(gate.status).toBe("expired");
    expect(await codeOf(decideGate(deps(), seed.admin, waiting.gate.id, { decision: "approve" }))).toBe(
      "gate_already_decided",
    );
    expect(await codeOf(transitionExperiment(deps(), seed.admin, running.experiment.id, { action: "analyse" }))).toBe(
      "outcome_closed",
    );
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: running.experiment.id });
    expect(events[0]).toMatchObject({ action: "experiment.paused", after: { reason: "outcome wind-down abandoned" } });
  });
});

describe("idempotency keys", () => {
  it("are remembered for 24 hours, then may be used again", async () => {
    const scope = { workspaceId: seed.workspaceId, key: "window-key", fingerprint: "a" };
    const first = await runIdempotent(deps(), scope, async () => ({ statusCode: 201, body: { n: 1 } }));
    expect(first).toMatchObject({ replayed: false, body: { n: 1 } });
    const soon = { ...deps(), now: () => new Date(Date.now() + 23 * 3600_000) };
    expect(
      await codeOf(
        runIdempotent(soon, { ...scope, fingerprint: "b" }, async () => ({ statusCode: 201, body: { n: 2 } })),
      ),
    ).toBe("idempotency_key_reused");
    const later = { ...deps(), now: () => new Date(Date.now() + 25 * 3600_000) };
    const reused = await runIdempotent(later, { ...scope, fingerprint: "b" }, async () => ({
      statusCode: 201,
      body: { n: 2 },
    }));
    expect(reused).toMatchObject({ replayed: false, body: { n: 2 } });
  });
});

describe("pagination", () => {
  it("pages through outcomes created in the same millisecond without skipping any", async () => {
    const ids = ["page-a", "page-b", "page-c", "page-d"];
    // One transaction: every row gets the same now() to the microsecond.
    await t.db.transaction().execute(async (trx) => {
      for (const id of ids) await applyOutcome({ db: trx }, seed.admin, { source: outcomeVariant(id) });
    });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listOutcomes(deps(), seed.admin, { limit: 1, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((s) => s.outcome.slug));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen.filter((s) => ids.includes(s)).sort()).toEqual(ids);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("refuses a cursor it did not make", async () => {
    expect(await codeOf(listOutcomes(deps(), seed.admin, { cursor: "bm90LWEtY3Vyc29y" }))).toBe("validation_failed");
  });
});

describe("losing a race to move an experiment or an outcome", () => {
  it("is a 409 conflict naming the state it is in now and the change that won", async () => {
    await activeOutcome("race-move");
    const proposed = await proposeExperiment(deps(), seed.admin, "race-move", hypothesis("Sticky basket"));
    await decideGate(deps(), seed.admin, proposed.gate.id, { decision: "approve" });
    // A copy read before the winner's claim committed: its UPDATE … WHERE state = 'approved' finds nothing.
    const stale = (await getExperiment(deps(), seed.admin, proposed.experiment.id)).experiment;
    await transitionExperiment(deps(), seed.admin, stale.id, { action: "claim", claimedBy: "claude-code" });
    const outcome = await requireOutcome(t.db, seed.workspaceId, "race-move");
    const lost = await inTransaction(t.db, (trx) =>
      moveExperiment(trx, seed.admin, new Date(), {
        experiment: stale,
        outcome,
        action: "claim",
        context: { claimedBy: "cursor" },
      }),
    ).catch((error: unknown) => error);
    expect(lost).toBeInstanceOf(StateChangedError);
    expect(lost).toMatchObject({
      code: "conflict",
      details: {
        subject: "experiment",
        expected: "approved",
        state: "building",
        winner: { action: "experiment.claimed", by: seed.admin.principal.name, channel: seed.admin.channel },
      },
    });

    const staleOutcome = await requireOutcome(t.db, seed.workspaceId, "race-move");
    await transitionOutcome(deps(), seed.admin, "race-move", "abandon", "stopped");
    const late = await inTransaction(t.db, (trx) =>
      moveOutcome(trx, seed.admin, new Date(), { outcome: staleOutcome, action: "abandon" }),
    ).catch((error: unknown) => error);
    expect(late).toMatchObject({
      code: "conflict",
      details: { subject: "outcome", expected: "active", state: "abandoned", winner: { action: "outcome.abandoned" } },
    });
    // Nothing was written by the losers.
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: stale.id });
    expect(events.filter((e) => e.action === "experiment.claimed")).toHaveLength(1);
  });
});
