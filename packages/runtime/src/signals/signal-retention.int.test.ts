/**
 * The retention job against real PostgreSQL, on each storage path this server
 * has (plain tables; TimescaleDB's hypertable, with compressed chunks): old
 * points of finished experiments and of abandoned outcomes go, the points
 * their latest analysis used stay, and nothing of a running or paused
 * experiment, of an active outcome or of another workspace is touched.
 */
import type { ExperimentState } from "@outcome-runtime/core";
import { audit, createDb, type Db, experiments, signals, workspaces } from "@outcome-runtime/db";
import {
  analysisFixture,
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  type SignalStorage,
  seedWorkspace,
  signalStorages,
  type TestDatabase,
} from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test counts points and compresses TimescaleDB chunks directly
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "../apply-outcome";
import type { Caller } from "../context";
import { transitionOutcome } from "../outcomes";
import { updateWorkspaceSettings } from "../workspace-settings";
import { applySignalRetention, runSignalRetention } from "./signal-retention";

const DAY = 86_400_000;
/** The clock of every run: points are placed in whole days before it. */
const NOW = new Date("2026-12-07T12:00:00.000Z");
const daysAgo = (k: number) => new Date(NOW.getTime() - k * DAY);
/** Days back of a series' points, newest first: `from` to `to` inclusive. */
const span = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.each(signalStorages())("signal retention on %s storage", (storage: SignalStorage) => {
  let t: TestDatabase;
  let seed: Seeded;
  let outcomeId: string;
  /** Series ids by name. */
  const series: Record<string, string> = {};
  let otherWorkspace: string;
  /** An admin of the other workspace. */
  let otherAdmin: Caller;

  /** Cumulative daily points on arms control and treatment, one per day in `days` (days back from NOW). */
  async function addSeries(
    name: string,
    key: {
      workspaceId: string;
      outcomeId: string;
      experimentId: string | null;
      role: "primary" | "guardrail" | "outcome";
    },
    days: number[],
    arms: string[] = ["control", "treatment"],
  ): Promise<void> {
    const s = await signals.ensureSeries(t.db, { ...key, metric: `m-${name}`, kind: "proportion" });
    series[name] = s.id;
    const points = days.flatMap((k) =>
      arms.map((arm) => ({ arm, ts: daysAgo(k), units: 1000 - k, sum: 500 - k, sum_sq: 500 - k })),
    );
    await signals.upsertPoints(t.db, s, points, NOW);
  }

  /** An experiment of `outcome` put in `state` (the repository's conditional update: test data, not a lifecycle). */
  async function experimentIn(workspaceId: string, outcome: string, key: string, state: ExperimentState) {
    const e = await experiments.insertExperiment(t.db, {
      workspaceId,
      outcomeId: outcome,
      key,
      title: key,
      statement: "If the checkout is shorter, fewer shoppers abandon it, because there is less to do.",
      mechanism: "",
      prediction: null,
      measurementPlan: "",
      rolloutPlan: "",
      effort: null,
      risk: null,
      touchedPaths: [],
      arms: [
        { name: "control", weight: 0.5 },
        { name: "treatment", weight: 0.5 },
      ],
      source: "human",
      portfolioGateId: null,
    });
    if (e === null) throw new Error(`experiment ${key} exists`);
    if (state !== "proposed")
      await experiments.updateExperimentState(t.db, e.id, "proposed", state, { at: daysAgo(90) });
    return e.id;
  }

  /** Days back of the stored points of a series' arm, newest first. */
  async function daysLeft(name: string, arm = "control"): Promise<number[]> {
    const points = await signals.listPoints(t.db, series[name] as string, null);
    return points
      .filter((p) => p.arm === arm)
      .map((p) => Math.round((NOW.getTime() - p.ts.getTime()) / DAY))
      .reverse();
  }

  /** One statement on a connection of its own (what the repositories do not offer: counting, compressing). */
  async function query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  async function pointCount(): Promise<number> {
    return (await query<{ n: number }>("SELECT count(*)::int AS n FROM signal_points"))[0]?.n ?? 0;
  }

  /**
   * The runs' pool: TimescaleDB may decompress at most 100 rows per transaction there, so a run that
   * decompressed whole compressed chunks (rather than the rows it deletes) fails (a setting plain Postgres
   * ignores).
   */
  let strict: Db;
  const run = (options: { workspaceId?: string; batchSize?: number } = {}) =>
    applySignalRetention({ db: strict, now: () => NOW }, options);

  beforeAll(async () => {
    t = await createTestDatabase({ storage });
    const url = new URL(t.url);
    url.searchParams.set("options", "-c timescaledb.max_tuples_decompressed_per_dml_transaction=100");
    strict = createDb({ url: url.toString(), max: 4 });
    seed = await seedWorkspace(t.db);
    const ws = seed.workspaceId;
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("ret-active") });
    outcomeId = (
      await transitionOutcome({ db: t.db, now: () => daysAgo(90) }, seed.admin, "ret-active", "activate", null)
    ).id;

    // Shipped: polled until 20 days ago, its latest analysis read the totals of 50 days ago.
    const shipped = await experimentIn(ws, outcomeId, "ret-shipped", "shipped");
    await addSeries("shipped", { workspaceId: ws, outcomeId, experimentId: shipped, role: "primary" }, span(20, 79));
    await addSeries(
      "shippedGuardrail",
      { workspaceId: ws, outcomeId, experimentId: shipped, role: "guardrail" },
      span(20, 79),
    );
    // Two analyses: only the latest one's points are evidence.
    await signals.insertAnalysis(t.db, analysisFixture({ workspaceId: ws, experimentId: shipped, ts: daysAgo(60) }));
    await signals.insertAnalysis(t.db, analysisFixture({ workspaceId: ws, experimentId: shipped, ts: daysAgo(50) }));
    // Rolled back before any analysis, polled until 35 days ago: only each arm's newest point stays.
    const rolledBack = await experimentIn(ws, outcomeId, "ret-rolled-back", "rolled_back");
    await addSeries(
      "rolledBack",
      { workspaceId: ws, outcomeId, experimentId: rolledBack, role: "primary" },
      span(35, 59),
    );
    // Not finished: every point stays, however old.
    for (const state of ["running", "paused", "analysing"] as const) {
      const id = await experimentIn(ws, outcomeId, `ret-${state}`, state);
      await addSeries(state, { workspaceId: ws, outcomeId, experimentId: id, role: "primary" }, span(0, 79));
      await signals.insertAnalysis(t.db, analysisFixture({ workspaceId: ws, experimentId: id, ts: daysAgo(50) }));
    }
    // The active outcome's own series stays.
    await addSeries("activeOutcome", { workspaceId: ws, outcomeId, experimentId: null, role: "outcome" }, span(0, 79), [
      "all",
    ]);
    // An outcome activated 70 days ago and abandoned: its series loses what is neither baseline, first nor newest.
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("ret-abandoned") });
    const abandoned = (
      await transitionOutcome({ db: t.db, now: () => daysAgo(70) }, seed.admin, "ret-abandoned", "activate", null)
    ).id;
    await transitionOutcome({ db: t.db, now: () => daysAgo(5) }, seed.admin, "ret-abandoned", "abandon", "test");
    await addSeries(
      "abandonedOutcome",
      { workspaceId: ws, outcomeId: abandoned, experimentId: null, role: "outcome" },
      span(10, 79),
      ["all"],
    );

    // Another workspace, keeping points forever, with a shipped experiment's old points.
    otherWorkspace = (await workspaces.ensureWorkspace(t.db, "ret-other", "Other team")).id;
    otherAdmin = {
      principal: { id: "other-admin", name: "other-admin", role: "admin", workspaceId: otherWorkspace },
      channel: "api",
      requestId: "req-retention",
    };
    await applyOutcome({ db: t.db }, otherAdmin, { source: outcomeVariant("ret-other") });
    const otherOutcome = (await transitionOutcome({ db: t.db }, otherAdmin, "ret-other", "activate", null)).id;
    const otherShipped = await experimentIn(otherWorkspace, otherOutcome, "ret-other-shipped", "shipped");
    await addSeries(
      "otherShipped",
      { workspaceId: otherWorkspace, outcomeId: otherOutcome, experimentId: otherShipped, role: "primary" },
      span(20, 79),
    );

    if (storage === "timescaledb") {
      // Compress every chunk wholly older than the retention: the job must delete from compressed chunks too.
      await query(
        "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('signal_points', older_than => $1::timestamptz) c",
        [daysAgo(31)],
      );
    }
  });
  afterAll(async () => {
    await strict?.destroy();
    await t?.drop();
  });

  it("keeps every point while the workspace keeps them forever (the default)", async () => {
    const before = await pointCount();
    expect(await run({ workspaceId: seed.workspaceId })).toEqual([
      {
        workspaceId: seed.workspaceId,
        days: null,
        cutoff: null,
        status: "kept_forever",
        pointsDeleted: 0,
        seriesTouched: 0,
        batches: 0,
      },
    ]);
    // The scheduled run looks only at workspaces that set a retention: none yet.
    expect(await run()).toEqual([]);
    expect(await pointCount()).toBe(before);
  });

  it("refuses a retention that is not whole days from 1 to 36 500, naming the field and the fix", async () => {
    for (const days of [0, 2.5, -1, "30"]) {
      await expect(
        updateWorkspaceSettings({ db: t.db }, seed.admin, { signalRetention: { days } as never }),
      ).rejects.toMatchObject({
        code: "validation_failed",
        details: { field: "signalRetention.days" },
        message: expect.stringContaining("whole number of days from 1 to 36500, or null to keep signal points forever"),
      });
    }
    expect((await workspaces.findWorkspace(t.db, seed.workspaceId))?.settings.signalRetention).toEqual({ days: null });
  });

  it("deletes old points of finished experiments and abandoned outcomes only, keeping the latest analysis' points", async () => {
    const settings = await updateWorkspaceSettings({ db: t.db }, seed.admin, { signalRetention: { days: 30 } });
    expect(settings.signalRetention).toEqual({ days: 30 });
    const otherBefore = await daysLeft("otherShipped");
    if (storage === "timescaledb") {
      const compressed = await query<{ n: number }>(
        "SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'signal_points' AND is_compressed",
      );
      expect(compressed[0]?.n).toBeGreaterThan(0);
      // More rows than the runs' pool may decompress in one transaction sit in compressed chunks.
      const rows = await query<{ n: number }>(
        `SELECT count(*)::int AS n FROM signal_points p
          WHERE EXISTS (SELECT 1 FROM timescaledb_information.chunks c
                         WHERE c.hypertable_name = 'signal_points' AND c.is_compressed
                           AND p.ts >= c.range_start AND p.ts < c.range_end)`,
      );
      expect(rows[0]?.n).toBeGreaterThan(100);
    }

    if (storage === "timescaledb") {
      // Materialise the daily roll-up of the old days, as its hourly policy does for days older than 3 days.
      await query("CALL refresh_continuous_aggregate('signal_points_daily', NULL, $1::timestamptz)", [daysAgo(3)]);
    }

    // A small batch: the run takes many statements, each deleting at most 7 points.
    const [report, ...others] = await run({ batchSize: 7 });
    expect(others).toEqual([]);
    // Shipped, per series and arm: days 31–79 are older than 30 days; day 50 (the latest analysis) stays: 48.
    // Rolled back, per arm: days 36–59 (day 35 is each arm's newest). Abandoned outcome: days 31–79 but 70
    // (the level at activation) and 79 (the first point).
    const expected = 2 * (2 * 48) + 2 * 24 + 47;
    expect(report).toMatchObject({
      workspaceId: seed.workspaceId,
      days: 30,
      cutoff: daysAgo(30),
      status: "applied",
      pointsDeleted: expected,
      seriesTouched: 4,
    });
    expect(report?.batches).toBeGreaterThanOrEqual(Math.ceil(expected / 7));

    expect(await daysLeft("shipped")).toEqual([...span(20, 30), 50]);
    expect(await daysLeft("shipped", "treatment")).toEqual([...span(20, 30), 50]);
    expect(await daysLeft("shippedGuardrail")).toEqual([...span(20, 30), 50]);
    expect(await daysLeft("rolledBack")).toEqual([35]);
    expect(await daysLeft("abandonedOutcome", "all")).toEqual([...span(10, 30), 70, 79]);
    for (const kept of ["running", "paused", "analysing"]) expect(await daysLeft(kept)).toEqual(span(0, 79));
    expect(await daysLeft("activeOutcome", "all")).toEqual(span(0, 79));
    expect(await daysLeft("otherShipped")).toEqual(otherBefore);
    // signal_points_daily: TimescaleDB's continuous aggregate keeps the days it had materialised (each day's
    // last point); the plain view follows the raw points.
    const oldDays = await query<{ n: number }>(
      "SELECT count(*)::int AS n FROM signal_points_daily WHERE series_id = $1 AND arm = 'control' AND day < $2",
      [series.shipped, daysAgo(31)],
    );
    expect(oldDays[0]?.n).toBe(storage === "timescaledb" ? 49 : 1);
    expect(otherBefore).toEqual(span(20, 79));

    // The latest analysis still finds its totals: the newest point per arm at or before it.
    const base = await signals.latestPointsAtOrBefore(t.db, series.shipped as string, daysAgo(50));
    expect(base.map((p) => [p.arm, p.units])).toEqual([
      ["control", 950],
      ["treatment", 950],
    ]);

    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "signal.retention_applied" });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: { id: "worker", role: "system" },
      channel: "system",
      subjectType: "workspace",
      subjectId: seed.workspaceId,
      after: { days: 30, cutoff: daysAgo(30).toISOString(), pointsDeleted: expected, seriesTouched: 4 },
    });
    expect(await audit.listAuditEvents(t.db, otherWorkspace, { action: "signal.retention_applied" })).toEqual([]);
  });

  it("deletes nothing more when run again, alone or twice at once, and audits nothing then", async () => {
    const before = await pointCount();
    const again = await run();
    expect(again).toMatchObject([{ workspaceId: seed.workspaceId, status: "applied", pointsDeleted: 0 }]);
    const [a, b] = await Promise.all([run(), run()]);
    // Each run either held the workspace's lock or found it held (busy); neither deleted anything.
    for (const r of [...(a ?? []), ...(b ?? [])]) {
      expect(["applied", "busy"]).toContain(r.status);
      expect(r.pointsDeleted).toBe(0);
    }
    expect(await pointCount()).toBe(before);
    expect(await audit.listAuditEvents(t.db, seed.workspaceId, { action: "signal.retention_applied" })).toHaveLength(1);
  });

  it("runs for one workspace on an admin's request, audited under the admin's name; another workspace's longer retention keeps more", async () => {
    await updateWorkspaceSettings({ db: t.db }, otherAdmin, { signalRetention: { days: 70 } });
    const report = await runSignalRetention({ db: strict, now: () => NOW }, otherAdmin);
    // Days 71–79 are older than 70 days; each arm's newest (day 20) is younger.
    expect(report).toMatchObject({ workspaceId: otherWorkspace, days: 70, status: "applied", pointsDeleted: 18 });
    expect(await daysLeft("otherShipped")).toEqual(span(20, 70));
    expect(await daysLeft("shipped")).toEqual([...span(20, 30), 50]);
    const [event] = await audit.listAuditEvents(t.db, otherWorkspace, { action: "signal.retention_applied" });
    expect(event).toMatchObject({
      actor: { id: "other-admin", role: "admin" },
      channel: "api",
      requestId: "req-retention",
      after: { days: 70, pointsDeleted: 18, seriesTouched: 1 },
    });
    // A member may not ask for it.
    const member: Caller = { ...otherAdmin, principal: { ...otherAdmin.principal, role: "member" } };
    await expect(runSignalRetention({ db: t.db, now: () => NOW }, member)).rejects.toMatchObject({ code: "forbidden" });
  });

  it("records what a run deleted before it failed half-way, and the retry deletes the rest", async () => {
    const halfway = await experimentIn(seed.workspaceId, outcomeId, "ret-halfway", "iterated");
    await addSeries(
      "halfway",
      { workspaceId: seed.workspaceId, outcomeId, experimentId: halfway, role: "primary" },
      span(31, 60),
    );
    // Postgres refuses the 11th point deleted, as a dropped connection or a statement timeout would end a run.
    await query(`CREATE SEQUENCE retention_fault;
                 CREATE FUNCTION retention_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN IF nextval('retention_fault') > 10 THEN RAISE EXCEPTION 'test fault: delete refused'; END IF;
                   RETURN OLD; END $$;
                 CREATE TRIGGER retention_fault BEFORE DELETE ON signal_points FOR EACH ROW EXECUTE FUNCTION retention_fault();`);
    try {
      await expect(run({ workspaceId: seed.workspaceId, batchSize: 5 })).rejects.toThrow("test fault: delete refused");
    } finally {
      await query(
        "DROP TRIGGER retention_fault ON signal_points; DROP FUNCTION retention_fault(); DROP SEQUENCE retention_fault",
      );
    }
    const [interrupted] = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "signal.retention_applied" });
    expect(interrupted?.after).toMatchObject({
      pointsDeleted: 10,
      seriesTouched: 1,
      interrupted: expect.stringContaining("test fault: delete refused"),
    });
    // Per arm, days 32–60 go (day 31 is the newest): 58 in all, 10 of them by the failed run.
    expect(await run({ workspaceId: seed.workspaceId, batchSize: 5 })).toMatchObject([
      { status: "applied", pointsDeleted: 48, seriesTouched: 1 },
    ]);
    expect(await daysLeft("halfway")).toEqual([31]);
    expect(await daysLeft("halfway", "treatment")).toEqual([31]);
  });
});
