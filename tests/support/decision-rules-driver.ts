/**
 * Replays a row of the R14 decision-rules table (packages/core/src/decision-rules.cases.ts)
 * through the runtime's real path: an outcome with the row's limits, a running
 * experiment, and for each step a snapshot written to a source table that the
 * real `postgres` connector reads (`pollExperiment`), then `analyseExperiment`.
 * An `E` step makes the source query raise (a plpgsql function that fails
 * while a fault row exists), so the poll fails as a broken analytics query
 * would. Used by packages/runtime/src/signals/decision-rules.int.test.ts and
 * tests/chaos/r14-decision-rules.chaos.ts.
 */
import { audit, type Db, experiments as experimentRows } from "@outcome-runtime/db";
import {
  analyseExperiment,
  applyOutcome,
  type ConnectorProvider,
  connectorProvider,
  decideGate,
  pollExperiment,
  proposeExperiment,
  type SignalDeps,
  type SourceAccess,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { createSourceDatabase, type Seeded } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the source tables stand for the user's own analytics database, read by the postgres connector
import pg from "pg";
import type { RuleCase, Step } from "../../packages/core/src/decision-rules.cases";

/** What the bench needs: the test database, its workspace, and an analytics database of its own. */
export interface RuleBench {
  readonly db: Db;
  readonly seed: Seeded;
  /** What the runtime may read (the analytics database through the read-only role). */
  readonly sources: SourceAccess;
  readonly connectors: ConnectorProvider;
  /** Writes to the source tables, as the user's analytics pipeline would. */
  readonly source: pg.Pool;
  close(): Promise<void>;
}

/** Create the source table, the fault table and the reading function in an analytics database of the bench's own. */
export async function createRuleBench(db: Db, seed: Seeded): Promise<RuleBench> {
  const analytics = await createSourceDatabase();
  const source = new pg.Pool({ connectionString: analytics.adminUrl, max: 2 });
  await source.query(
    "CREATE TABLE IF NOT EXISTS r14_points (experiment_key text, metric text, arm text, ts timestamptz, units bigint, sum float8, sum_sq float8)",
  );
  await source.query("CREATE TABLE IF NOT EXISTS r14_faults (experiment_key text PRIMARY KEY)");
  // A set-returning function, so the fault is raised on every poll even when no row is new.
  await source.query(`CREATE OR REPLACE FUNCTION r14_read(k text, m text, f timestamptz, t timestamptz)
  RETURNS TABLE (arm text, units float8, sum float8, sum_sq float8, ts timestamptz) LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM r14_faults WHERE experiment_key = k) THEN
    RAISE EXCEPTION 'r14: injected analytics failure for %', k;
  END IF;
  RETURN QUERY SELECT p.arm, p.units::float8, p.sum, p.sum_sq, p.ts FROM r14_points p
    WHERE p.experiment_key = k AND p.metric = m AND p.ts > f AND p.ts <= t ORDER BY p.ts;
END $$`);
  const sources = sourceAccessFromEnv({ OUTCOME_RUNTIME_SOURCE_R14_SOURCE_URL: analytics.readerUrl });
  const connectors = connectorProvider({ db, access: sources });
  return {
    db,
    seed,
    sources,
    connectors,
    source,
    async close() {
      await connectors.close();
      await source.end();
      await analytics.drop();
    },
  };
}

const query = (metric: string) =>
  JSON.stringify(`SELECT * FROM r14_read(:experiment, '${metric}', :from::timestamptz, :to::timestamptz)`);

/** The outcome of a row: a proportion signal (kill at 5 % relative harm) and one guardrail, with the row's limits. */
function ruleOutcomeYaml(slug: string, c: RuleCase): string {
  const killLimit = c.rule === "kill" && c.limits.failureLimit !== undefined ? c.limits.failureLimit : 0;
  const guardrailLimit = c.rule === "guardrail" && c.limits.failureLimit !== undefined ? c.limits.failureLimit : 0;
  const rules = [
    c.limits.inconclusiveLimit === undefined ? null : `    inconclusive_limit: ${c.limits.inconclusiveLimit}`,
    c.limits.consecutiveErrorLimit === undefined
      ? null
      : `    consecutive_error_limit: ${c.limits.consecutiveErrorLimit}`,
  ].filter((x) => x !== null);
  return `version: 1
id: ${slug}
name: Decision rules ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1m
  connector:
    type: postgres
    database_url_env: OUTCOME_RUNTIME_SOURCE_R14_SOURCE_URL
    query: ${query("primary")}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  guardrails:
    - metric: payment_error_rate
      kind: proportion
      direction: decrease
      max_regression: 0.5%
      relative: false
      failure_limit: ${guardrailLimit}
      dry_run: ${c.limits.dryRun === true}
      connector:
        type: postgres
        database_url_env: OUTCOME_RUNTIME_SOURCE_R14_SOURCE_URL
        query: ${query("guardrail")}
  kill:
    max_harm: 5%
    relative: true
    failure_limit: ${killLimit}
experiment_defaults:
  min_sample_per_arm: 100
  min_duration: 1s
  max_duration: 30d
  expected_effect: 1%
${rules.length === 0 ? "" : `  decision_rules:\n${rules.join("\n")}\n`}`;
}

/** Per arm: units and rate of the primary metric and of the guardrail, cumulative as of a step. */
function stepRows(step: Exclude<Step, "E">, rule: RuleCase["rule"], n: number) {
  const harmful = step === "F" && rule === "kill";
  const guardrailBad = step === "F" && rule === "guardrail";
  const primary = {
    control: { units: n, rate: step === "zero_var" ? 0 : 0.5 },
    treatment: { units: step === "empty" ? 0 : n, rate: step === "zero_var" ? 0 : harmful ? 0.3 : 0.5 },
  };
  const guardrail = {
    control: { units: n, rate: 0.01 },
    treatment: { units: n, rate: guardrailBad ? 0.2 : 0.01 },
  };
  return { primary, guardrail };
}

export interface Replay {
  /** The first step (1-based) after which the experiment was no longer running, with the audited reason. */
  readonly decision: { readonly action: string; readonly reason: string; readonly at: number } | null;
  /** Decisions the worker audited for the experiment (pauses and stops): more than 1 is a duplicate. */
  readonly stops: number;
  /** Analyses written, and polls that failed (the injected faults). */
  readonly analyses: number;
  readonly failedPolls: number;
  /** Steps replayed (faults and snapshots). */
  readonly measurements: number;
  readonly experimentId: string;
  /** Milliseconds from the deciding step's start to the decision being committed. */
  readonly decisionMs: number | null;
}

/** An active outcome with one experiment taken to `running` through its gates. */
async function runningExperiment(bench: RuleBench, slug: string, c: RuleCase): Promise<{ id: string; key: string }> {
  const deps = { db: bench.db, sources: bench.sources };
  const admin = bench.seed.admin;
  await applyOutcome(deps, admin, { source: ruleOutcomeYaml(slug, c) });
  await transitionOutcome(deps, admin, slug, "activate", null);
  const proposed = await proposeExperiment(deps, admin, slug, {
    key: `${slug}-x`,
    title: `Variant for ${slug}`,
    statement: "If the checkout is shorter, more users convert, because there is less to do.",
  });
  await decideGate(deps, admin, proposed.gate.id, { decision: "approve" });
  const id = proposed.experiment.id;
  await transitionExperiment(deps, admin, id, { action: "claim", claimedBy: "agent-r14" });
  const built = await transitionExperiment(deps, admin, id, { action: "report_built", changedPaths: [] });
  await decideGate(deps, admin, built.openedGates[0]!.id, { decision: "approve" });
  return { id, key: proposed.experiment.key };
}

/**
 * Replay every step of `c` (continuing after a decision, to show nothing is
 * decided twice), re-running each analysis once more as a duplicated job would.
 */
export async function replayCase(bench: RuleBench, c: RuleCase, slug: string): Promise<Replay> {
  const { id, key } = await runningExperiment(bench, slug, c);
  const deps: SignalDeps = { db: bench.db, connectors: bench.connectors };
  const base = Date.now() - 3_600_000;
  const insert = async (ts: Date, step: Exclude<Step, "E">, n: number) => {
    const rows = stepRows(step, c.rule, n);
    for (const [metric, arms] of Object.entries(rows)) {
      for (const [arm, a] of Object.entries(arms)) {
        const sum = Math.round(a.units * a.rate);
        await bench.source.query("INSERT INTO r14_points VALUES ($1, $2, $3, $4, $5, $6, $6)", [
          key,
          metric,
          arm,
          ts,
          a.units,
          sum,
        ]);
      }
    }
  };
  // A first snapshot below the minimum sample starts the clock (warming up; counts for nothing).
  await bench.source.query(
    `INSERT INTO r14_points VALUES ($1, 'primary', 'control', $2, 10, 5, 5), ($1, 'primary', 'treatment', $2, 10, 5, 5),
       ($1, 'guardrail', 'control', $2, 10, 0, 0), ($1, 'guardrail', 'treatment', $2, 10, 0, 0)`,
    [key, new Date(base)],
  );
  await pollExperiment(deps, id);
  await analyseExperiment(deps, id);

  let decision: Replay["decision"] = null;
  let decisionMs: number | null = null;
  let failedPolls = 0;
  for (const [i, step] of c.steps.entries()) {
    const started = Date.now();
    if (step === "E") {
      await bench.source.query("INSERT INTO r14_faults VALUES ($1) ON CONFLICT DO NOTHING", [key]);
    } else {
      await bench.source.query("DELETE FROM r14_faults WHERE experiment_key = $1", [key]);
      await insert(new Date(base + (i + 1) * 60_000), step, 2_000 * (i + 1));
    }
    const polled = await pollExperiment(deps, id).then(
      () => true,
      () => false,
    );
    if (!polled) failedPolls += 1;
    await analyseExperiment(deps, id);
    // A duplicated analysis job: finds nothing new, counts nothing twice.
    await analyseExperiment(deps, id);
    const state = (await experimentRows.findExperimentById(bench.db, id))?.state;
    if (decision === null && state !== "running") {
      decisionMs = Date.now() - started;
      const [event] = await workerDecisions(bench, id);
      const after = (event?.after ?? {}) as { action?: string; reason?: string };
      decision = { action: String(after.action), reason: String(after.reason), at: i + 1 };
    }
  }
  await bench.source.query("DELETE FROM r14_faults WHERE experiment_key = $1", [key]);
  const analyses = await bench.db
    .selectFrom("analyses")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("experiment_id", "=", id)
    .executeTakeFirstOrThrow();
  return {
    decision,
    stops: (await workerDecisions(bench, id)).length,
    analyses: Number(analyses.n),
    failedPolls,
    measurements: c.steps.length,
    experimentId: id,
    decisionMs,
  };
}

/** The worker's audited decisions on an experiment, newest first. */
export async function workerDecisions(bench: RuleBench, experimentId: string) {
  const events = await audit.listAuditEvents(bench.db, bench.seed.workspaceId, {
    subjectType: "experiment",
    subjectId: experimentId,
  });
  return events.filter((e) => e.actor?.name === "worker");
}
