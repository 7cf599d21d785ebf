/**
 * The signal retention as the worker runs it: the worker schedules
 * `apply-signal-retention` daily on the `control` queue and runs it at its
 * start, so a workspace's old points of a finished experiment are gone once a
 * worker is up, and a running experiment's are not. What the job keeps and
 * deletes in detail: packages/runtime/src/signals/signal-retention.int.test.ts.
 */
import { randomBytes } from "node:crypto";
import { audit, experiments, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  CONTROL_QUEUE,
  connectorProvider,
  sourceAccessFromEnv,
  transitionOutcome,
  updateWorkspaceSettings,
} from "@outcome-runtime/runtime";
import { createTestDatabase, deleteRedisKeys, outcomeVariant, seedWorkspace, waitFor } from "@outcome-runtime/testing";
import { startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const DAY = 86_400_000;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A pino-shaped logger that keeps what the worker logs, for diagnostics. */
function collectingLogger(lines: string[]): WorkerOptions["logger"] {
  const keep = (level: string) => (obj: unknown, msg?: string) => {
    lines.push(`${level}: ${msg ?? ""} ${JSON.stringify(obj)}`);
  };
  const logger = {
    level: "info",
    info: keep("info"),
    debug: () => {},
    trace: () => {},
    warn: keep("warn"),
    error: keep("error"),
    fatal: keep("fatal"),
    child: () => logger,
  };
  return logger as unknown as WorkerOptions["logger"];
}

it("a worker applies each workspace's retention at its start and schedules it daily", async () => {
  const t = await createTestDatabase({ max: 10 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `test-retention-${randomBytes(6).toString("hex")}`;
  cleanups.push(async () => {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
    await t.drop();
  });
  const seed = await seedWorkspace(t.db);
  const deps = { db: t.db };
  await applyOutcome(deps, seed.admin, { source: outcomeVariant("retention-worker") });
  const outcome = await transitionOutcome(deps, seed.admin, "retention-worker", "activate", null);
  await updateWorkspaceSettings(deps, seed.admin, { signalRetention: { days: 30 } });

  /** An experiment in `state` with one point per arm a day, 10 to 59 days ago. */
  async function experimentWithPoints(key: string, state: "shipped" | "running") {
    const e = await experiments.insertExperiment(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: outcome.id,
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
    await experiments.updateExperimentState(t.db, e.id, "proposed", state, { at: new Date(Date.now() - 60 * DAY) });
    const series = await signals.ensureSeries(t.db, {
      workspaceId: seed.workspaceId,
      outcomeId: outcome.id,
      experimentId: e.id,
      metric: "checkout_abandonment",
      role: "primary",
      kind: "proportion",
    });
    const points = Array.from({ length: 50 }, (_, i) => 10 + i).flatMap((k) =>
      ["control", "treatment"].map((arm) => ({
        arm,
        ts: new Date(Date.now() - k * DAY),
        units: 1000 - k,
        sum: 500 - k,
        sum_sq: 500 - k,
      })),
    );
    await signals.upsertPoints(t.db, series, points, new Date());
    return series.id;
  }
  const shipped = await experimentWithPoints("retention-shipped", "shipped");
  const running = await experimentWithPoints("retention-running", "running");

  const lines: string[] = [];
  const connectors = connectorProvider({ db: t.db, access: sourceAccessFromEnv({}) });
  const worker = await startWorker({
    db: t.db,
    redis,
    connectors,
    logger: collectingLogger(lines),
    prefix,
    outboxIntervalMs: 0,
    reconcileIntervalMs: 3_600_000,
  });
  cleanups.push(async () => {
    await worker.close();
    await connectors.close();
  });

  // Days 30 to 59 are older than 30 days (the run's clock is a little later than the points'), but each
  // arm's newest point (day 10) is younger: 29 or 30 days per arm go, depending on the second day 30 falls in.
  const left = await waitFor(
    "the retention job to delete the shipped experiment's old points",
    async () => {
      const points = await signals.listPoints(t.db, shipped, null);
      return points.length <= 2 * 21 ? points : undefined;
    },
    { diagnostics: () => lines.join("\n") },
  );
  expect(left.every((p) => p.ts.getTime() > Date.now() - 31 * DAY)).toBe(true);
  expect(await signals.listPoints(t.db, running, null)).toHaveLength(100);
  const [event] = await audit.listAuditEvents(t.db, seed.workspaceId, { action: "signal.retention_applied" });
  expect(event).toMatchObject({ actor: { id: "worker" }, after: { days: 30, seriesTouched: 1 } });
  expect(lines.some((l) => l.startsWith("info: signal retention applied"))).toBe(true);

  expect(worker.controlQueue.name).toBe(CONTROL_QUEUE);
  const scheduler = (await worker.controlQueue.getJobSchedulers(0, -1)).find((s) => s.key === "signal-retention");
  expect(scheduler).toMatchObject({ name: "apply-signal-retention", every: DAY });
});
