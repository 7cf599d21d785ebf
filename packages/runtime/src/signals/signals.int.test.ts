/**
 * Polling and analysis against the real Postgres, with a synthetic connector
 * standing in for the team's analytics (the postgres connector itself is
 * tested in packages/connectors; the worker process in tests/worker.test.ts).
 */
import type { ArmAggregate, SeriesPoint, SignalConnector } from "@outcome-runtime/connectors";
import { audit } from "@outcome-runtime/db";
import {
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "../apply-outcome";
import { decideGate } from "../decide-gate";
import { getExperiment, listExperimentAnalyses, proposeExperiment, transitionExperiment } from "../experiments";
import { getOutcome, transitionOutcome } from "../outcomes";
import { analyzeExperiment } from "./analyze";
import { connectorProvider } from "./connectors";
import { pollOutcome } from "./outcome-poll";
import { pollExperiment, type SignalDeps } from "./poll";

let t: TestDatabase;
let seed: Seeded;

const DAY = 86_400_000;
type Arms = Record<string, { units: number; rate: number }>;

/** What the fake analytics holds: per experiment key and metric, cumulative snapshots; per outcome, a series. */
const source = {
  experiments: new Map<string, { primary: { ts: Date; arms: Arms }[]; guardrail: { ts: Date; arms: Arms }[] }>(),
  outcome: [] as SeriesPoint[],
};

function rows(snapshots: { ts: Date; arms: Arms }[], from: Date): ArmAggregate[] {
  return snapshots
    .filter((s) => s.ts > from)
    .flatMap((s) =>
      Object.entries(s.arms).map(([arm, a]) => {
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
      const data = source.experiments.get(window.experimentKey);
      if (data === undefined) return [];
      return rows(guardrail ? data.guardrail : data.primary, window.from);
    },
    fetchOutcomeSeries: async (window) => source.outcome.filter((p) => p.ts > window.from && p.ts <= window.to),
    close: async () => {},
  };
}

const connectors = connectorProvider({ env: {}, create: (config) => fakeConnector(config) });
const deps = (now?: Date): SignalDeps => ({ db: t.db, connectors, ...(now ? { now: () => now } : {}) });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
});
afterAll(async () => {
  await connectors.close();
  await t.drop();
});

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
    const result = await analyzeExperiment(deps(), id);
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
    expect(await analyzeExperiment(deps(), id)).toMatchObject({ analysed: 0, decision: null, state: "paused" });
    const hooks = await t.db.selectFrom("webhook_deliveries").selectAll().execute();
    expect(
      hooks.filter((h) => (h.payload as { data: { experiment: { id: string } } }).data.experiment.id === id),
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
    const result = await analyzeExperiment(deps(), id);
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
    const result = await analyzeExperiment(deps(), id);
    expect(result.decision).toMatchObject({ action: "analyse", reason: "srm" });
    const detail = await getExperiment({ db: t.db }, seed.admin, key);
    expect(detail.experiment.state).toBe("analysing");
    const gate = detail.gates.find((g) => g.kind === "analysis_review");
    expect(gate).toMatchObject({ status: "pending", context: { action: "analyse", reason: "srm" } });
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
    const early = await analyzeExperiment(deps(), id);
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
    expect(await analyzeExperiment(deps(), id)).toMatchObject({ analysed: 1, decision: { reason: "kill" } });
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
});

describe("the outcome's own signal", () => {
  it("becomes achieved when the signal reaches the target", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("sig-achieve") });
    const outcome = await transitionOutcome({ db: t.db }, seed.admin, "sig-achieve", "activate", null);
    // baseline 0.68, target: decrease by 10 % → 0.612.
    source.outcome = [
      { ts: new Date(Date.now() - 2 * DAY), value: 0.67 },
      { ts: new Date(Date.now() - DAY), value: 0.6 },
    ];
    const result = await pollOutcome(deps(), outcome.id);
    expect(result).toMatchObject({ status: "polled", value: 0.6, state: "achieved" });
    expect(result.status === "polled" && result.goal).toBeCloseTo(0.612, 10);
    expect((await getOutcome({ db: t.db }, seed.admin, "sig-achieve")).outcome.state).toBe("achieved");
    const events = await audit.listAuditEvents(t.db, seed.workspaceId, { subjectId: outcome.id });
    expect(events.find((e) => e.action === "outcome.achieved")?.actor).toMatchObject({ name: "worker" });
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
});
