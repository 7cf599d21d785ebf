/**
 * R14: the decision rules (Argo Rollouts' failureLimit, inconclusiveLimit,
 * consecutiveErrorLimit, dryRun) as a table: sequences of successful, failed,
 * inconclusive and error measurements × limits, each with the action it must
 * lead to and the step it must be taken at.
 *
 * Every row goes through the pure rules (packages/core: measure, count,
 * decide, assessErrors); every row real data can show goes through the
 * runtime too: a snapshot per step in a source table read by the real
 * `postgres` connector, `pollExperiment`, `analyseExperiment` run twice per
 * step (a duplicated job), and for an error step a source query that raises.
 *
 * Pass: every row's action, reason and step as expected on both paths (a
 * mismatch counts as lost), one audited decision at most per experiment (more
 * is duplicated), and the integration path's failed polls equal the injected
 * faults.
 */
import { createTestDatabase, seedWorkspace } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { RULE_CASES, runCase } from "../../packages/core/src/decision-rules.cases";
import { createRuleBench, replayCase } from "../support/decision-rules-driver";
import { type Cleanups, runCleanups } from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

/** Replays of each integration row. */
const REPETITIONS = scaled(3, 1);

it(`R14: the decision-rules table, ${RULE_CASES.length} rows pure and ${REPETITIONS}× through polls and analyses`, async () => {
  const started = Date.now();
  const t = await createTestDatabase();
  cleanups.push(() => t.drop());
  const seed = await seedWorkspace(t.db);
  const bench = await createRuleBench(t.db, seed);
  cleanups.push(() => bench.close());

  /** What went wrong, per row and path; a row counts once as lost however many ways it failed. */
  const mismatches: string[] = [];
  const lostRows = new Set<string>();
  let measurements = 0;
  let duplicated = 0;
  let pureRows = 0;
  let integrationReplays = 0;
  let injectedErrors = 0;
  let failedPolls = 0;
  const decisionMs: number[] = [];

  for (const c of RULE_CASES) {
    const pure = runCase(c);
    pureRows += 1;
    measurements += c.steps.length;
    duplicated += Math.max(0, pure.stops - 1);
    const got =
      pure.decision === null
        ? null
        : { action: pure.decision.action, reason: pure.decision.reason, at: pure.decision.at };
    if (JSON.stringify(got) !== JSON.stringify(c.expected)) {
      lostRows.add(`pure:${c.name}`);
      mismatches.push(`pure: ${c.name}: expected ${JSON.stringify(c.expected)}, got ${JSON.stringify(got)}`);
    }
  }

  const integrationRows = RULE_CASES.filter((c) => c.integration);
  for (let rep = 0; rep < REPETITIONS; rep++) {
    for (const [i, c] of integrationRows.entries()) {
      const replay = await replayCase(bench, c, `r14-${rep}-${i}`);
      integrationReplays += 1;
      measurements += replay.measurements;
      duplicated += Math.max(0, replay.stops - 1);
      failedPolls += replay.failedPolls;
      if (replay.decisionMs !== null) decisionMs.push(replay.decisionMs);
      // Errors after the decision are not polled (the experiment is no longer running): count those injected before.
      const stopAt = replay.decision?.at ?? c.steps.length;
      injectedErrors += c.steps.slice(0, stopAt).filter((s) => s === "E").length;
      if (JSON.stringify(replay.decision) !== JSON.stringify(c.expected)) {
        lostRows.add(`integration#${rep}:${c.name}`);
        mismatches.push(
          `integration #${rep}: ${c.name}: expected ${JSON.stringify(c.expected)}, got ${JSON.stringify(replay.decision)}`,
        );
      }
      if (replay.stops < (c.expected === null ? 0 : 1)) {
        lostRows.add(`integration#${rep}:${c.name}`);
        mismatches.push(`integration #${rep}: ${c.name}: ${replay.stops} audited decisions`);
      }
    }
  }
  const latency = medianMax(decisionMs);

  report({
    id: "R14",
    title: "Decision rules table (Argo Rollouts style)",
    fault: "sequences of failed / inconclusive / error measurements × limits (errors: a source query that raises)",
    faults: measurements,
    lost: lostRows.size,
    duplicated,
    figures: {
      "rows (pure)": pureRows,
      "replays (polls + analyses)": integrationReplays,
      "injected poll errors": injectedErrors,
      "failed polls": failedPolls,
      "decision step p50 ms": latency.median,
      "decision step max ms": latency.max,
    },
    ms: Date.now() - started,
  });

  expect(mismatches).toEqual([]);
  expect(duplicated).toBe(0);
  expect(failedPolls).toBe(injectedErrors);
  expect(integrationReplays).toBe(integrationRows.length * REPETITIONS);
});
