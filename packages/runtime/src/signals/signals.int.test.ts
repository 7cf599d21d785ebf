/**
 * Polling and analysis against the real Postgres, with a synthetic connector
 * standing in for the team's analytics (the postgres connector itself is
 * tested in packages/connectors; the worker process in tests/worker.test.ts).
 */
import { fileURLToPath } from "node:url";
import { type ArmAggregate, ConnectorError, type SeriesPoint, type SignalConnector } from "@outcome-runtime/connectors";
import { audit, gates, signals } from "@outcome-runtime/db";
import {
  analysisFixture,
  createTestDatabase,
  exampleOutcome,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test watches pg_stat_activity to order two transactions
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "../apply-outcome";
import { decideGate, getGate } from "../decide-gate";
import { getExperiment, listExperimentAnalyses, proposeExperiment, transitionExperiment } from "../experiments";
import { getOutcome, transitionOutcome } from "../outcomes";
import { analyseExperiment } from "./analyse";
import { type ConnectorProvider, connectorProvider } from "./connectors";
import { pollOutcome } from "./outcome-poll";
import { pollExperiment, type SignalDeps, type SignalObserver, type SourceRead } from "./poll";
import { pollingPlan } from "./schedules";
import { sourceAccessFromEnv } from "./source-access";

let t: TestDatabase;
let seed: Seeded;

const DAY = 86_400_000;
/** Per arm: units and the conversion rate, or for a mean metric the mean (`rate`) and standard deviation. */
type Arms = Record<string, { units: number; rate: number; sd?: number }>;

/** What the fake analytics holds: per experiment key and metric, cumulative snapshots; per outcome, a series. */
const source = {
  experiments: new Map<string, { primary: { ts: Date; arms: Arms }[]; guardrail: { ts: Date; arms: Arms }[] }>(),
  outcome: [] as SeriesPoint[],
  /** When set, the outcome series query fails like an analytics database that is down. */
  outcomeDown: false,
  /** Experiment keys whose reads fail like an analytics database that is down. */
  experimentsDown: new Set<string>(),
};

function rows(snapshots: { ts: Date; arms: Arms }[], from: Date): ArmAggregate[] {
  return snapshots
    .filter((s) => s.ts > from)
    .flatMap((s) =>
      Object.entries(s.arms).map(([arm, a]) => {
        if (a.sd !== undefined) {
          return { arm, units: a.units, sum: a.units * a.rate, sum_sq: a.units * (a.sd ** 2 + a.rate ** 2), ts: s.ts };
        }
        const conversions = Math.round(a.units * a.rate);
        return { arm, units: a.units, sum: conversions, sum_sq: conversions, ts: s.ts };
      }),
    );
}

/** The example outcome's signal reads checkout sessions; its guardrail reads payment attempts. */
function fakeConnector(config: { type: string } & Record<string, unknown>): SignalConnector {
  const guardrail = String(config.query ?? "").includes("payment_attempts");
  return {
    type: "fake",
    describe: () => (guardrail ? "fake payment errors" : "fake checkout abandonment"),
    fetchArmAggregates: async (window) => {
      if (source.experimentsDown.has(window.experimentKey)) {
        throw new ConnectorError("unavailable", "the analytics database is down");
      }
      const data = source.experiments.get(window.experimentKey);
      if (data === undefined) return [];
      return rows(guardrail ? data.guardrail : data.primary, window.from);
    },
    fetchOutcomeSeries: async (window) => {
      if (source.outcomeDown) throw new ConnectorError("unavailable", "the analytics database is down");
      return source.outcome.filter((p) => p.ts > window.from && p.ts <= window.to);
    },
    close: async () => {},
  };
}

/** The fake stands for the example outcome's analytics database, named by its source variable. */
let connectors: ConnectorProvider;

/** The example outcome's signal connector block, and its constraints up to the gates (for replacements). */
const exampleSignalConnector = /^ {2}connector:\n[\s\S]*?\ntarget:/m.exec(exampleOutcome())![0];
const exampleConstraints = /^constraints:\n[\s\S]*?\ngates:/m.exec(exampleOutcome())![0];
const deps = (now?: Date): SignalDeps => ({ db: t.db, connectors, ...(now ? { now: () => now } : {}) });

/** A connection of its own that watches the others wait on locks. */
let observer: pg.Client;

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  connectors = connectorProvider({
    db: t.db,
    access: sourceAccessFromEnv({ OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL: "postgres://analytics.invalid/app" }),
    create: (config) => fakeConnector(config),
  });
  observer = new pg.Client({ connectionString: t.url });
  await observer.connect();
});
afterAll(async () => {
  await observer.end();
  await connectors.close();
  await t.drop();
});

/** How many transactions of the test database wait on a lock now. */
async function lockWaiters(): Promise<number> {
  const { rows } = await observer.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
  );
  return rows[0]?.n ?? 0;
}

/** Resolves once at least `n` transactions of the test database wait on a lock. */
async function waitForLockWaiters(n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await lockWaiters()) >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`fewer than ${n} transactions waiting on a lock`);
}

/** An active outcome with one experiment taken to `running` through its gates. */
async function runningExperiment(slug: string, replacements: [string, string][] = []): Promise<string> {
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant(slug, replacements) });
  await transitionOutcome({ db: t.db }, seed.admin, slug, "activate", null);
  const proposed = await proposeExperiment({ db: t.db }, seed.admin, slug, {
    title: `Variant for ${slug}`,
    statement: "If the checkout is shorter, fewer shoppers abandon it, because there is less to do.",
    touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  await decideGate({ db: t.db }, seed.admin, proposed.gate.id, { decision: "approve" });
  const key = proposed.experiment.key;
  await transitionExperiment({ db: t.db }, seed.admin, key, { action: "claim", claimedBy: "agent-1" });
  const built = await transitionExperiment({ db: t.db }, seed.admin, key, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  const launch = built.openedGates.find((g) => g.kind === "launch_approval");
  await decideGate({ db: t.db }, seed.admin, launch!.id, { decision: "approve" });
  return key;
}

/** Three daily snapshots ending now, scaling units up to `units` per arm. */
function days(units: number, rates: { control: number; treatment: number }, treatmentShare = 0.5) {
  const now = Date.now();
  return [3, 2, 1].map((back, i) => {
    const n = Math.round((units * (i + 1)) / 3);
    const total = 2 * n;
    return {
      ts: new Date(now - back * DAY),
      arms: {
        control: { units: Math.round(total * (1 - treatmentShare)), rate: rates.control },
        treatment: { units: Math.round(total * treatmentShare), rate: rates.treatment },
      },
    };
  });
}

describe("what polls and analyses report (the worker's metrics and log lines)", () => {
  it("tells the observer of every connector call and of the pause five failed polls apply; analyses give each look's answer", async () => {
    const key = await runningExperiment("sig-observed");
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    // 2,000 units per arm, under min_sample_per_arm (5,000): the policy waits.
    source.experiments.set(key, {
      primary: days(2000, { control: 0.68, treatment: 0.68 }),
      guardrail: days(2000, { control: 0.01, treatment: 0.01 }),
    });
    const reads: SourceRead[] = [];
    const decisions: { action: string; reason: string }[] = [];
    const observer: SignalObserver = {
      sourceRead: (read) => reads.push(read),
      decisionApplied: (decision) => decisions.push({ action: decision.action, reason: decision.reason }),
    };
    const observed: SignalDeps = { ...deps(), observer };

    const polled = await pollExperiment(observed, id);
    expect(polled).toMatchObject({ status: "polled", experimentKey: key, inserted: 12 });
    const expected = [
      { connector: "postgres", role: "primary", result: "ok", rows: 6 },
      { connector: "postgres", role: "guardrail", result: "ok", rows: 6 },
    ];
    expect(reads).toMatchObject(expected);
    expect(polled.status === "polled" && polled.reads).toMatchObject(expected);
    expect(reads.every((r) => r.durationSeconds >= 0 && r.durationSeconds < 60)).toBe(true);

    const analysis = await analyseExperiment(observed, id);
    expect(analysis).toMatchObject({ experimentKey: key, analysed: 3, decision: null, state: "running" });
    expect(analysis.looks).toEqual([
      { action: "continue", reason: "warming_up" },
      { action: "continue", reason: "warming_up" },
      { action: "continue", reason: "warming_up" },
    ]);

    // The source goes down: five failed polls in a row, the fifth pauses (reason errors).
    source.experimentsDown.add(key);
    reads.length = 0;
    for (let i = 0; i < 5; i++) {
      await expect(pollExperiment(observed, id)).rejects.toMatchObject({ code: "unavailable" });
    }
    // Each poll tries every source (one's outage does not stop the others): the signal and the guardrail.
    expect(reads).toHaveLength(10);
    expect(reads.map((r) => r.role)).toEqual(Array.from({ length: 5 }, () => ["primary", "guardrail"]).flat());
    expect(reads.every((r) => r.result === "error" && r.errorCode === "unavailable" && r.rows === 0)).toBe(true);
    expect(decisions).toEqual([{ action: "pause", reason: "errors" }]);
    expect(await pollExperiment(observed, id)).toEqual({ status: "skipped", experimentKey: key, state: "paused" });
    source.experimentsDown.delete(key);
  });
});

describe("the decision policy on real polls", () => {
  it("pauses on the kill-switch, audited by the worker, with a webhook in the outbox", async () => {
    const key = await runningExperiment("sig-kill");
    // Abandonment should decrease; the treatment raises it from 68 % to 76 % (+12 % relative > 3 %).
    source.experiments.set(key, {
      primary: days(20_000, { control: 0.68, treatment: 0.76 }),
      guardrail: days(20_000, { control: 0.01, treatment: 0.01 }),
    });
    const polled = await pollExperiment(deps(), (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id);
    expect(polled).toMatchObject({ status: "polled", inserted: 12, updated: 0, unchanged: 0 });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    const result = await analyseExperiment(deps(), id);
    expect(result.decision).toMatchObject({ action: "pause", reason: "kill" });
    expect(result.webhooks).toHaveLength(1);
    const detail = await getExperiment({ db: t.db }, seed.admin, key);
    expect(detail.experiment.state).toBe("paused");
    expect(detail.experiment.statsPlan?.tau2).toBeGreaterThan(0);
    expect(detail.latestAnalysis?.decision).toMatchObject({ action: "pause", reason: "kill" });
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: id, action: "experiment.paused" });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: { name: "worker", role: "system" }, channel: "system" });
    // Running the analysis again changes nothing.
    expect(await analyseExperiment(deps(), id)).toMatchObject({ analysed: 0, decision: null, state: "paused" });
    const hooks = await t.db.selectFrom("webhook_deliveries").selectAll().execute();
    expect(
      hooks.filter((h) => (h.payload as { data: { experiment?: { id: string } } }).data.experiment?.id === id),
    ).toHaveLength(1);
    // The pause waits for a person: an analysis review (resume or roll back) opened, with its webhook.
    const reviews = detail.gates.filter((g) => g.kind === "analysis_review" && g.status === "pending");
    expect(reviews.map((g) => g.context)).toMatchObject([{ action: "pause", reason: "kill" }]);
    expect(
      hooks.filter(
        (h) =>
          h.event_type === "gate.opened" &&
          (h.payload as { data: { gate: { id: string } } }).data.gate.id === reviews[0]?.id,
      ),
    ).toHaveLength(1);
  });

  it("pauses on a violated guardrail even when the primary metric shows a win", async () => {
    const key = await runningExperiment("sig-guardrail");
    source.experiments.set(key, {
      primary: days(20_000, { control: 0.68, treatment: 0.6 }),
      // Payment errors should decrease; +3 points absolute is beyond the 0.5-point tolerance.
      guardrail: days(20_000, { control: 0.01, treatment: 0.04 }),
    });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    await pollExperiment(deps(), id);
    const result = await analyseExperiment(deps(), id);
    expect(result.decision).toMatchObject({ action: "pause", reason: "guardrail" });
    expect(result.decision?.detail).toContain("payment_error_rate");
    const { analyses } = await listExperimentAnalyses({ db: t.db }, seed.admin, key);
    expect(analyses.at(-1)?.guardrails).toEqual(
      expect.arrayContaining([expect.objectContaining({ metric: "payment_error_rate", verdict: "violated" })]),
    );
  });

  it("opens the analysis gate on a sample ratio mismatch, with the reason in the gate", async () => {
    const key = await runningExperiment("sig-srm");
    source.experiments.set(key, {
      primary: days(20_000, { control: 0.68, treatment: 0.68 }, 0.45),
      guardrail: days(20_000, { control: 0.01, treatment: 0.01 }, 0.45),
    });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    await pollExperiment(deps(), id);
    const result = await analyseExperiment(deps(), id);
    expect(result.decision).toMatchObject({ action: "analyse", reason: "srm" });
    const detail = await getExperiment({ db: t.db }, seed.admin, key);
    expect(detail.experiment.state).toBe("analysing");
    const gate = detail.gates.find((g) => g.kind === "analysis_review");
    expect(gate).toMatchObject({ status: "pending", context: { action: "analyse", reason: "srm" } });
  });

  it("reads a relative kill threshold against the size of a negative control mean", async () => {
    // A mean signal below 0 that should decrease: the treatment (−11) is better than control (−10).
    const key = await runningExperiment("sig-negative-mean", [
      ["kind: proportion", "kind: mean"],
      ["  baseline: 0.68\n", ""],
    ]);
    const withSd = (snapshots: ReturnType<typeof days>) =>
      snapshots.map((s) => ({
        ts: s.ts,
        arms: { control: { ...s.arms.control, sd: 2 }, treatment: { ...s.arms.treatment, sd: 2 } },
      }));
    source.experiments.set(key, {
      primary: withSd(days(20_000, { control: -10, treatment: -11 })),
      guardrail: days(20_000, { control: 0.01, treatment: 0.01 }),
    });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    await pollExperiment(deps(), id);
    const result = await analyseExperiment(deps(), id);
    expect(result.decision).toMatchObject({ action: "analyse", reason: "win" });
    expect((await getExperiment({ db: t.db }, seed.admin, key)).experiment.state).toBe("analysing");
  });

  it("decides nothing before the minimum sample, then acts once it is reached", async () => {
    const key = await runningExperiment("sig-warmup");
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    // 4,000 units per arm < min_sample_per_arm 5,000, with a large harm.
    source.experiments.set(key, {
      primary: days(4_000, { control: 0.68, treatment: 0.85 }),
      guardrail: days(4_000, { control: 0.01, treatment: 0.01 }),
    });
    await pollExperiment(deps(), id);
    const early = await analyseExperiment(deps(), id);
    expect(early).toMatchObject({ analysed: 3, decision: null, state: "running" });
    const { analyses } = await listExperimentAnalyses({ db: t.db }, seed.admin, key);
    expect(analyses.map((a) => (a.decision as { reason: string }).reason)).toEqual([
      "warming_up",
      "warming_up",
      "warming_up",
    ]);
    // A later snapshot past the minimum: the kill-switch acts.
    source.experiments.get(key)?.primary.push({
      ts: new Date(Date.now() - 1000),
      arms: { control: { units: 6_000, rate: 0.68 }, treatment: { units: 6_000, rate: 0.85 } },
    });
    await pollExperiment(deps(), id);
    expect(await analyseExperiment(deps(), id)).toMatchObject({ analysed: 1, decision: { reason: "kill" } });
  });

  it("still reads an arm whose rows arrive after the other arm's newer ones", async () => {
    const key = await runningExperiment("sig-late-arm");
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    const now = Date.now();
    const t1 = new Date(now - 2 * DAY);
    const t2 = new Date(now - DAY);
    const arms = (control: number, treatment?: number): Arms => ({
      control: { units: control, rate: 0.68 },
      ...(treatment === undefined ? {} : { treatment: { units: treatment, rate: 0.68 } }),
    });
    // At t2 only control has reported so far.
    const snapshots = [
      { ts: t1, arms: arms(1_000, 1_000) },
      { ts: t2, arms: arms(2_000) },
    ];
    source.experiments.set(key, { primary: snapshots, guardrail: [] });
    expect(await pollExperiment(deps(), id)).toMatchObject({ inserted: 3 });
    // Treatment's t2 row arrives later; the mark (t1, where both arms reported) lets the next poll read it.
    snapshots[1] = { ts: t2, arms: arms(2_000, 2_000) };
    expect(await pollExperiment(deps(), id)).toMatchObject({ inserted: 1, unchanged: 1 });
    const series = await t.db
      .selectFrom("signal_series")
      .select("polled_until")
      .where("experiment_id", "=", id)
      .where("role", "=", "primary")
      .executeTakeFirstOrThrow();
    expect(series.polled_until?.getTime()).toBe(t2.getTime());
  });

  it("stores a re-poll once and updates only values the source revised", async () => {
    const key = await runningExperiment("sig-repoll");
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    const snapshots = days(3_000, { control: 0.68, treatment: 0.68 });
    source.experiments.set(key, { primary: snapshots, guardrail: [] });
    expect(await pollExperiment(deps(), id)).toMatchObject({ inserted: 6 });
    // The next poll asks only for what is newer than the polled-until mark: nothing.
    expect(await pollExperiment(deps(), id)).toMatchObject({ inserted: 0, updated: 0, unchanged: 0 });
    // Reset the mark to re-fetch the same window with one revised value.
    await t.db.updateTable("signal_series").set({ polled_until: null }).where("experiment_id", "=", id).execute();
    snapshots[1]!.arms.control.rate = 0.69;
    expect(await pollExperiment(deps(), id)).toMatchObject({ inserted: 0, updated: 1, unchanged: 5 });
    const count = await t.db
      .selectFrom("signal_points")
      .innerJoin("signal_series", "signal_series.id", "signal_points.series_id")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("signal_series.experiment_id", "=", id)
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(6);
  });

  it("stores a point's covariate, reads it back, and revises a point whose covariate changed", async () => {
    const key = await runningExperiment("sig-covariate");
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    const series = await signals.ensureSeries(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: (await getExperiment({ db: t.db }, seed.admin, key)).experiment.outcomeId,
      experimentId: id,
      metric: "checkout_abandonment_rate",
      role: "primary",
      kind: "proportion",
    });
    const ts = new Date(Date.now() - DAY);
    const covariate = { sum: 150, sumSq: 400, sumProduct: 60 };
    const point = { arm: "control", ts, units: 100, sum: 40, sum_sq: 40, covariate };
    const plain = { arm: "treatment", ts, units: 100, sum: 41, sum_sq: 41 };
    expect(await signals.upsertPoints(t.db, series, [point, plain], new Date())).toEqual({
      inserted: 2,
      updated: 0,
      unchanged: 0,
    });
    // Identical values, covariate included, write nothing.
    expect(await signals.upsertPoints(t.db, series, [point, plain], new Date())).toMatchObject({ unchanged: 2 });
    expect(await signals.listPoints(t.db, series.id, null)).toEqual([
      { ...point, ts },
      { ...plain, ts },
    ]);
    const revised = { ...point, covariate: { ...covariate, sumProduct: 61 } };
    expect(await signals.upsertPoints(t.db, series, [revised, plain], new Date())).toMatchObject({
      updated: 1,
      unchanged: 1,
    });
    expect((await signals.latestPointsAtOrBefore(t.db, series.id, new Date()))[0]).toEqual({ ...revised, ts });
    const revision = await t.db
      .selectFrom("signal_point_revisions")
      .select(["old_cov_sum_product", "new_cov_sum_product", "old_sum", "new_sum"])
      .where("series_id", "=", series.id)
      .executeTakeFirstOrThrow();
    expect(revision).toEqual({ old_cov_sum_product: 60, new_cov_sum_product: 61, old_sum: 40, new_sum: 40 });
  });

  it("stores a ratio's denominator in a series of kind ratio, reads it back, and revises a changed denominator", async () => {
    const key = await runningExperiment("sig-ratio");
    const { experiment } = await getExperiment({ db: t.db }, seed.admin, key);
    const series = await signals.ensureSeries(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: experiment.outcomeId,
      experimentId: experiment.id,
      metric: "revenue_per_session",
      role: "secondary",
      kind: "ratio",
    });
    expect(series.kind).toBe("ratio");
    const ts = new Date(Date.now() - DAY);
    const denominator = { sum: 250, sumSq: 900, sumProduct: 1_200 };
    const control = { arm: "control", ts, units: 100, sum: 480, sum_sq: 4_000, denominator };
    const treatment = { ...control, arm: "treatment" };
    expect(await signals.upsertPoints(t.db, series, [control, treatment], new Date())).toMatchObject({ inserted: 2 });
    expect(await signals.upsertPoints(t.db, series, [control, treatment], new Date())).toMatchObject({ unchanged: 2 });
    expect(await signals.listPoints(t.db, series.id, null)).toEqual([control, treatment]);
    // A source that corrects the sessions (the denominator) alone revises the point.
    const revised = { ...control, denominator: { ...denominator, sum: 251 } };
    expect(await signals.upsertPoints(t.db, series, [revised, treatment], new Date())).toMatchObject({
      updated: 1,
      unchanged: 1,
    });
    expect((await signals.latestPointsAtOrBefore(t.db, series.id, new Date()))[0]).toEqual(revised);
    const revision = await t.db
      .selectFrom("signal_point_revisions")
      .select(["old_den_sum", "new_den_sum", "old_num_den_sum", "new_num_den_sum", "new_cov_sum"])
      .where("series_id", "=", series.id)
      .executeTakeFirstOrThrow();
    expect(revision).toEqual({
      old_den_sum: 250,
      new_den_sum: 251,
      old_num_den_sum: 1_200,
      new_num_den_sum: 1_200,
      new_cov_sum: null,
    });
  });
});

describe("an analysis racing the outcome's abandon", () => {
  it("applies before or after the abandon, never in between: no gate stays pending on the abandoned outcome", async () => {
    const key = await runningExperiment("sig-race-abandon");
    source.experiments.set(key, {
      primary: days(20_000, { control: 0.68, treatment: 0.68 }, 0.45),
      guardrail: days(20_000, { control: 0.01, treatment: 0.01 }, 0.45),
    });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    await pollExperiment(deps(), id);

    // A transaction holding an uncommitted analysis of the first snapshot makes the analysis wait
    // in the middle (after it has read the experiment), while the abandon starts.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = () => {};
    const holding = new Promise<void>((resolve) => {
      held = resolve;
    });
    const holder = t.db
      .transaction()
      .execute(async (trx) => {
        await signals.insertAnalysis(
          trx,
          analysisFixture({
            workspaceId: seed.workspaceId,
            experimentId: id,
            ts: source.experiments.get(key)!.primary[0]!.ts,
          }),
        );
        held();
        await released;
        throw new Error("roll back");
      })
      .catch(() => {});
    await holding;
    const analysis = analyseExperiment(deps(), id);
    await waitForLockWaiters(1);
    const abandon = transitionOutcome({ db: t.db }, seed.admin, "sig-race-abandon", "abandon", null);
    await waitForLockWaiters(2);
    release();
    await holder;
    const [analysed, abandoned] = await Promise.all([analysis, abandon]);
    expect(abandoned.state).toBe("abandoned");
    expect(analysed.decision).toMatchObject({ action: "analyse", reason: "srm" });
    const detail = await getExperiment({ db: t.db }, seed.admin, key);
    expect(detail.gates.filter((g) => g.status === "pending")).toEqual([]);
  });
});

describe("an analysis racing a poll of the same experiment", () => {
  it("does not deadlock with a poll that has updated the series and then records itself on the experiment", async () => {
    const key = await runningExperiment("sig-race-poll");
    source.experiments.set(key, {
      primary: days(3_000, { control: 0.68, treatment: 0.68 }),
      guardrail: days(3_000, { control: 0.01, treatment: 0.01 }),
    });
    const id = (await getExperiment({ db: t.db }, seed.admin, key)).experiment.id;
    await pollExperiment(deps(), id);
    const primary = (await signals.listSeriesOfExperiment(t.db, id)).find((s) => s.role === "primary")!;

    // The steps of a poll's transaction, the analysis starting between the series update and the
    // poll's record on the experiment row.
    let analysis: Promise<unknown> = Promise.resolve();
    await t.db.transaction().execute(async (trx) => {
      await signals.upsertPoints(trx, primary, [], new Date());
      let settled = false;
      analysis = analyseExperiment(deps(), id).finally(() => {
        settled = true;
      });
      // Until the analysis is done, or waits on this transaction.
      while (!settled && (await lockWaiters()) < 1) await new Promise((resolve) => setTimeout(resolve, 10));
      await signals.recordExperimentPoll(trx, id, new Date(), null);
    });
    expect(await analysis).toMatchObject({ analysed: 3, state: "running" });
  });
});

describe("replaying a CSV file at a speed", () => {
  it("places the file's timeline at the experiment's launch, whatever the poll window", async () => {
    const fixtures = fileURLToPath(new URL("../../../connectors/fixtures/csv/", import.meta.url));
    const csv = connectorProvider({ db: t.db, access: sourceAccessFromEnv({ SOURCE_CSV_DIR: fixtures }) });
    // One file day per second: 2026-03-01 at the launch, 2026-03-02 a second later, 2026-03-03 two seconds later.
    const key = await runningExperiment("sig-replay", [
      [exampleSignalConnector, "  connector:\n    type: replay\n    path: aggregates.csv\n    speed: 86400\ntarget:"],
      [exampleConstraints, "constraints:\n  max_concurrent_experiments: 3\n\ngates:"],
    ]);
    const { experiment } = await getExperiment({ db: t.db }, seed.admin, key);
    const launchedAt = experiment.launchedAt!.getTime();
    const replayDeps = (ms: number): SignalDeps => ({
      db: t.db,
      connectors: csv,
      now: () => new Date(launchedAt + ms),
    });
    try {
      expect(await pollExperiment(replayDeps(1500), experiment.id)).toMatchObject({ inserted: 4 });
      expect(await pollExperiment(replayDeps(2500), experiment.id)).toMatchObject({ inserted: 2, updated: 0 });
      expect(await pollExperiment(replayDeps(3500), experiment.id)).toMatchObject({ inserted: 0, updated: 0 });
    } finally {
      await csv.close();
    }
    const series = (await signals.listSeriesOfExperiment(t.db, experiment.id)).find((s) => s.role === "primary");
    const points = await signals.listPoints(t.db, series!.id, null);
    expect(points.map((p) => [p.arm, p.ts.getTime() - launchedAt, p.units])).toEqual([
      ["control", 0, 100],
      ["treatment", 0, 98],
      ["control", 1000, 210],
      ["treatment", 1000, 205],
      ["control", 2000, 320],
      ["treatment", 2000, 311],
    ]);
  });
});

describe("the polling plan", () => {
  it("counts the running experiments, of every outcome, that read through the same connector settings", async () => {
    // A connector setting no other test uses, shared by two outcomes; a third outcome reads differently.
    const shared: [string, string][] = [
      [
        "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL\n",
        "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL\n    timeout: 29s\n",
      ],
    ];
    const other: [string, string][] = [
      [
        "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL\n",
        "    database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL\n    timeout: 28s\n",
      ],
    ];
    await runningExperiment("plan-shared-a", shared);
    const b = await runningExperiment("plan-shared-b", shared);
    await runningExperiment("plan-other", other);
    const spec = (await getOutcome({ db: t.db }, seed.admin, "plan-shared-a")).outcome.spec as {
      signal: { connector: unknown };
    };
    expect(await signals.countRunningExperimentsWithConnector(t.db, spec.signal.connector)).toBe(2);
    // A paused experiment no longer polls: it no longer counts.
    await transitionExperiment({ db: t.db }, seed.admin, b, { action: "pause", reason: "plan test" });
    expect(await signals.countRunningExperimentsWithConnector(t.db, spec.signal.connector)).toBe(1);
  });

  it("stretches a Mixpanel outcome's interval to the project's query budget, and says why", async () => {
    const spec = {
      signal: {
        poll_interval: 60,
        connector: {
          type: "mixpanel",
          project_id: 1,
          event: "purchase",
          username_env: "OUTCOME_RUNTIME_SOURCE_MP_USER",
          secret_env: "OUTCOME_RUNTIME_SOURCE_MP_SECRET",
        },
      },
    };
    const plan = await pollingPlan({ db: t.db }, spec);
    expect(plan.requestedSeconds).toBe(60);
    expect(plan.effectiveSeconds).toBeGreaterThan(60);
    expect(plan.note).toMatch(/mixpanel/i);
    const postgres = await pollingPlan(
      { db: t.db },
      { signal: { poll_interval: 60, connector: { type: "postgres", query: "SELECT 1" } } },
    );
    expect(postgres).toEqual({ requestedSeconds: 60, effectiveSeconds: 60, note: null });
  });
});

describe("the outcome's own signal", () => {
  /** Daily points from `fromDay` to `toDay` (days after `at0`), each `value(day)`. */
  function daily(at0: number, fromDay: number, toDay: number, value: (day: number) => number): SeriesPoint[] {
    const out: SeriesPoint[] = [];
    for (let d = fromDay; d <= toDay; d++) out.push({ ts: new Date(at0 + d * DAY), value: value(d) });
    return out;
  }

  it("a single good point does not achieve an outcome", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-one-point") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-one-point", "activate", null);
    // baseline 0.68, target: decrease by 10 % → 0.612; one day at 0.60.
    source.outcome = [
      { ts: new Date(Date.now() - 2 * DAY), value: 0.67 },
      { ts: new Date(Date.now() - DAY), value: 0.6 },
    ];
    const result = await pollOutcome(deps(), outcome.id);
    expect(result).toMatchObject({ status: "polled", value: 0.6, state: "active", gate: null });
    expect(result.status === "polled" && result.goal).toBeCloseTo(0.612, 10);
    expect(result.status === "polled" && result.achievement).toMatchObject({
      sustained: false,
      reason: expect.stringMatching(/covers 86400 s of the 604800 s target.sustain/),
    });
    expect(await gates.findPendingGate(t.db, { outcomeId: outcome.id, kind: "achievement_review" })).toBeNull();
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: outcome.id });
    expect(events.map((e) => e.action)).not.toContain("outcome.achieved");
  });

  it("a sustained target opens the owner's confirm-achieved gate; the owner's confirmation marks it achieved", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-sustained") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-sustained", "activate", null);
    const at0 = outcome.activatedAt!.getTime();
    // At activation 0.68 (goal 0.612); from day 3 on the level holds near 0.595 for more than 7 days.
    source.outcome = [
      { ts: new Date(at0 - DAY), value: 0.68 },
      ...daily(at0, 1, 12, (d) => (d < 3 ? 0.65 : d % 2 === 0 ? 0.593 : 0.598)),
    ];
    const at = new Date(at0 + 12.5 * DAY);
    const first = await pollOutcome(deps(at), outcome.id);
    if (first.status !== "polled") throw new Error("not polled");
    expect(first.state).toBe("active");
    expect(first.gate).toMatchObject({ opened: true });
    expect(first.achievement).toMatchObject({
      sustained: true,
      evidence: { direction: "decrease", latest: 0.593, points: 7, confidence: 0.95, sustainSeconds: 604_800 },
    });
    const evidence = (first.achievement as { evidence: { bound: number; goal: number; mean: number } }).evidence;
    expect(evidence.bound).toBeLessThan(evidence.goal);
    expect(evidence.mean).toBeCloseTo((4 * 0.593 + 3 * 0.598) / 7, 12);
    // Polled again: the same gate, not a second one.
    const again = await pollOutcome(deps(new Date(at.getTime() + 60_000)), outcome.id);
    expect(again).toMatchObject({ state: "active", gate: { id: first.gate?.id, opened: false } });

    const owner = await seed.key("maya.pm@acme.example", "approver");
    const gate = await getGate({ db: t.db }, owner.caller, first.gate!.id);
    expect(gate.gate).toMatchObject({ kind: "achievement_review", assignees: ["maya.pm@acme.example"] });
    expect(gate.options.map((o) => o.label)).toEqual(["Confirm achieved", "Not yet"]);
    expect(gate.contextPackage).toMatchObject({
      kind: "achievement_review",
      metricKind: "proportion",
      evidence: { latest: 0.593, points: 7 },
      shipped: [],
    });
    expect((gate.contextPackage as { series: readonly unknown[] }).series).toHaveLength(12);
    const opened = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: first.gate!.id });
    expect(opened.find((e) => e.action === "gate.opened")?.actor).toMatchObject({ name: "worker" });

    await decideGate({ db: t.db }, owner.caller, first.gate!.id, { decision: "approve", reason: "held all week" });
    expect((await getOutcome({ db: t.db }, seed.admin, "sig-sustained")).outcome.state).toBe("achieved");
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: outcome.id });
    const achieved = events.find((e) => e.action === "outcome.achieved");
    expect(achieved?.actor).toMatchObject({ name: "maya.pm@acme.example" });
    expect(achieved?.after).toMatchObject({ state: "achieved", gateId: first.gate!.id, value: 0.593 });

    // Reopened: active again, with an audit event; reopening an active outcome is refused.
    const reopened = await transitionOutcome({ db: t.db }, owner.caller, "sig-sustained", "reopen", "did not hold");
    expect(reopened.state).toBe("active");
    const after = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: outcome.id });
    expect(after[0]).toMatchObject({ action: "outcome.reopened", before: { state: "achieved" } });
    await expect(transitionOutcome({ db: t.db }, owner.caller, "sig-sustained", "reopen", null)).rejects.toMatchObject({
      code: "illegal_transition",
    });
  });

  it("'Not yet' keeps the outcome active and asks again only after another whole window", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-not-yet") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-not-yet", "activate", null);
    const at0 = outcome.activatedAt!.getTime();
    source.outcome = [{ ts: new Date(at0 - DAY), value: 0.68 }, ...daily(at0, 1, 9, () => 0.59)];
    const first = await pollOutcome(deps(new Date(at0 + 9.5 * DAY)), outcome.id);
    expect(first).toMatchObject({ gate: { opened: true } });
    const owner = await seed.key("maya.pm@acme.example", "approver");
    const gateId = (first as { gate: { id: string } }).gate.id;
    await decideGate({ db: t.db }, owner.caller, gateId, { decision: "reject", reason: "a tracking change" });
    expect((await getOutcome({ db: t.db }, seed.admin, "sig-not-yet")).outcome.state).toBe("active");
    // The same level a few days on: not a whole window since the turned-down one ended.
    source.outcome = [...source.outcome, ...daily(at0, 10, 14, () => 0.59)];
    const soon = await pollOutcome(deps(new Date(at0 + 14.5 * DAY)), outcome.id);
    expect(soon).toMatchObject({ state: "active", gate: null, achievement: { sustained: false } });
    // Another whole week past the target: asked again, with a new gate.
    source.outcome = [...source.outcome, ...daily(at0, 15, 17, () => 0.59)];
    const later = await pollOutcome(deps(new Date(at0 + 17.5 * DAY)), outcome.id);
    expect(later).toMatchObject({ state: "active", gate: { opened: true } });
    expect((later as { gate: { id: string } }).gate.id).not.toBe(gateId);
  });

  it("a pending confirmation holds the horizon's miss until the owner decides", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-hold-miss") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-hold-miss", "activate", null);
    const at0 = outcome.activatedAt!.getTime();
    source.outcome = [{ ts: new Date(at0 - DAY), value: 0.68 }, ...daily(at0, 50, 59, () => 0.6)];
    const opened = await pollOutcome(deps(new Date(at0 + 59.5 * DAY)), outcome.id);
    expect(opened).toMatchObject({ state: "active", gate: { opened: true } });
    const afterHorizon = new Date(at0 + 61 * DAY); // horizon: 60d
    expect(await pollOutcome(deps(afterHorizon), outcome.id)).toMatchObject({ state: "active" });
    const owner = await seed.key("maya.pm@acme.example", "approver");
    await decideGate({ db: t.db }, owner.caller, (opened as { gate: { id: string } }).gate.id, { decision: "reject" });
    expect(await pollOutcome(deps(afterHorizon), outcome.id)).toMatchObject({ state: "missed" });
  });

  it("becomes missed when the horizon passes first, and stays active before it", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-miss") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-miss", "activate", null);
    source.outcome = [{ ts: new Date(Date.now() - DAY), value: 0.67 }];
    expect(await pollOutcome(deps(), outcome.id)).toMatchObject({ state: "active" });
    const afterHorizon = new Date(Date.now() + 61 * DAY); // horizon: 60d
    expect(await pollOutcome(deps(afterHorizon), outcome.id)).toMatchObject({ state: "missed" });
    expect(await pollOutcome(deps(afterHorizon), outcome.id)).toMatchObject({ status: "skipped", state: "missed" });
  });

  it("is missed at the horizon even while its connector fails, and the failure surfaces before it", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-down") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-down", "activate", null);
    source.outcomeDown = true;
    try {
      await expect(pollOutcome(deps(), outcome.id)).rejects.toThrow(/analytics database is down/);
      expect((await getOutcome({ db: t.db }, seed.admin, "sig-down")).outcome.state).toBe("active");
      const afterHorizon = new Date(Date.now() + 61 * DAY);
      expect(await pollOutcome(deps(afterHorizon), outcome.id)).toMatchObject({ state: "missed" });
    } finally {
      source.outcomeDown = false;
    }
  });

  it("is missed when the target is reached only after the horizon, even when that is polled late", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-late") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-late", "activate", null);
    const activatedAt = outcome.activatedAt!.getTime();
    // Goal 0.612 (horizon 60d); the worker was down and polls again on day 62, when 0.6 was recorded on day 61.
    source.outcome = [
      { ts: new Date(activatedAt - DAY), value: 0.67 },
      { ts: new Date(activatedAt + 30 * DAY), value: 0.65 },
      { ts: new Date(activatedAt + 61 * DAY), value: 0.6 },
    ];
    expect(await pollOutcome(deps(new Date(activatedAt + 62 * DAY)), outcome.id)).toMatchObject({
      state: "missed",
      value: 0.65,
    });
  });

  it("measures a relative target from the signal's level at activation, not from the oldest point of its history", async () => {
    await applyOutcome({ db: t.db }, seed.admin, {
      source: outcomeVariant("sig-history", [["  baseline: 0.68\n", ""]]),
    });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-history", "activate", null);
    const activatedAt = outcome.activatedAt!.getTime();
    // A year ago abandonment was 0.9; at activation it is 0.68; since then it got worse (0.75).
    source.outcome = [
      { ts: new Date(activatedAt - 365 * DAY), value: 0.9 },
      { ts: new Date(activatedAt - DAY), value: 0.68 },
      { ts: new Date(activatedAt + DAY), value: 0.75 },
    ];
    const result = await pollOutcome(deps(new Date(activatedAt + 2 * DAY)), outcome.id);
    expect(result).toMatchObject({ status: "polled", value: 0.75, state: "active" });
    expect(result.status === "polled" && result.goal).toBeCloseTo(0.612, 10);
  });
});
