/**
 * The decision rules (failure_limit, dry_run, inconclusive_limit,
 * consecutive_error_limit) on the real path: Postgres, the real `postgres`
 * connector reading a source table, `pollExperiment` and `analyseExperiment`.
 * The rows come from the R14 table (packages/core/src/decision-rules.cases.ts).
 */
import { createTestDatabase, type Seeded, seedWorkspace, type TestDatabase } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRuleBench,
  type RuleBench,
  replayCase,
  workerDecisions,
} from "../../../../tests/support/decision-rules-driver";
import { RULE_CASES, type RuleCase } from "../../../core/src/decision-rules.cases";
import { decideGate } from "../decide-gate";
import { getExperiment, listExperimentAnalyses } from "../experiments";
import { pollExperiment } from "./poll";

let t: TestDatabase;
let seed: Seeded;
let bench: RuleBench;

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  bench = await createRuleBench(t.db, seed);
});
afterAll(async () => {
  await bench.close();
  await t.drop();
});

function row(match: (c: RuleCase) => boolean): RuleCase {
  const found = RULE_CASES.find(match);
  if (found === undefined) throw new Error("no such row in the R14 table");
  return found;
}

describe("decision rules on real polls and analyses", () => {
  it("failure_limit 1 pauses at the 2nd violated analysis, not the 1st, and counts nothing twice", async () => {
    const c = row((x) => x.rule === "guardrail" && x.limits.failureLimit === 1);
    const replay = await replayCase(bench, c, "rules-limit-one");
    expect(replay.decision).toEqual({ action: "pause", reason: "guardrail", at: 2 });
    expect(replay.stops).toBe(1);
    const { analyses } = await listExperimentAnalyses({ db: t.db }, seed.admin, replay.experimentId);
    // warm-up, then the tolerated first violation, then the pause
    expect(analyses.map((a) => (a.decision as { reason: string }).reason)).toEqual([
      "warming_up",
      "failure_tolerated",
      "guardrail",
    ]);
    expect(
      analyses.map((a) => (a.details as { rules?: { counts: { guardrails: object } } }).rules?.counts.guardrails),
    ).toEqual([{}, { payment_error_rate: 1 }, { payment_error_rate: 2 }]);
  });

  it("a dry-run guardrail is recorded as violated in every analysis and never pauses", async () => {
    const c = row((x) => x.limits.dryRun === true);
    const replay = await replayCase(bench, c, "rules-dry-run");
    expect(replay.decision).toBeNull();
    expect(replay.stops).toBe(0);
    const { analyses } = await listExperimentAnalyses({ db: t.db }, seed.admin, replay.experimentId);
    const violated = analyses.filter((a) => a.guardrails.some((g) => g.verdict === "violated" && g.dryRun));
    expect(violated).toHaveLength(c.steps.length);
  });

  it("the 5th consecutive poll error pauses once, with reason errors, one audit event and an analysis review", async () => {
    const c = row((x) => x.name.startsWith("consecutive_error_limit 4 (default)"));
    const replay = await replayCase(bench, c, "rules-errors");
    expect(replay.decision).toEqual({ action: "pause", reason: "errors", at: 6 });
    expect(replay.failedPolls).toBe(5);
    const events = await workerDecisions(bench, replay.experimentId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: "experiment.paused",
      after: { reason: "errors", consecutive_errors: 5, consecutive_error_limit: 4 },
    });
    const gates = await t.db
      .selectFrom("gates")
      .selectAll()
      .where("experiment_id", "=", replay.experimentId)
      .where("kind", "=", "analysis_review")
      .execute();
    expect(gates).toHaveLength(1);
    expect(gates[0]).toMatchObject({ status: "pending", context: { action: "pause", reason: "errors" } });
    const hooks = await t.db
      .selectFrom("webhook_deliveries")
      .selectAll()
      .where("event_type", "=", "experiment.paused")
      .execute();
    expect(
      hooks.filter(
        (h) => (h.payload as { data: { experiment?: { id: string } } }).data.experiment?.id === replay.experimentId,
      ),
    ).toHaveLength(1);
  });

  it("a successful poll in between resets the consecutive errors", async () => {
    const c = row((x) => x.name.includes("a success in between resets"));
    const replay = await replayCase(bench, c, "rules-errors-reset");
    expect(replay.decision).toBeNull();
    expect(replay.failedPolls).toBe(12);
    expect(replay.stops).toBe(0);
  });

  it("after a person resumes an errors pause, polls still failing pause again only after limit + 1 more", async () => {
    const c = row((x) => x.name.startsWith("consecutive_error_limit 4 (default)"));
    const replay = await replayCase(bench, c, "rules-errors-resume");
    expect(replay.decision).toMatchObject({ reason: "errors" });
    const detail = await getExperiment({ db: t.db }, seed.admin, replay.experimentId);
    const review = detail.gates.find((g) => g.kind === "analysis_review" && g.status === "pending");
    await decideGate({ db: t.db }, seed.admin, review!.id, { decision: "resume" });
    const key = detail.experiment.key;
    await bench.source.query("INSERT INTO r14_faults VALUES ($1)", [key]);
    const deps = { db: t.db, connectors: bench.connectors };
    const states: string[] = [];
    for (let i = 0; i < 5; i++) {
      await expect(pollExperiment(deps, replay.experimentId)).rejects.toThrow(/injected analytics failure/);
      states.push((await getExperiment({ db: t.db }, seed.admin, replay.experimentId)).experiment.state);
    }
    await bench.source.query("DELETE FROM r14_faults WHERE experiment_key = $1", [key]);
    // The 1st to 4th failures after the resume are tolerated; the 5th pauses again, with a second audit event.
    expect(states).toEqual(["running", "running", "running", "running", "paused"]);
    const events = await workerDecisions(bench, replay.experimentId);
    expect(events.map((e) => (e.after as { consecutive_errors: number }).consecutive_errors)).toEqual([10, 5]);
  });
});
