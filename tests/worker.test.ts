/**
 * The worker as it runs in production: a real process (`services/worker/src/main.ts`)
 * against real Postgres and Redis, reading its signal through the real `postgres`
 * connector from a source table in the test database. Each test has its own
 * database, its own BullMQ prefix and its own port, and removes its Redis keys.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { audit, experiments as experimentRows, gates, outcomes, signals, sourceHealth } from "@outcome-runtime/db";
import {
  CONTROL_QUEUE,
  decideGate,
  EVENT_HEADER,
  experimentSchedulerId,
  getExperiment,
  JOB,
  learningJobId,
  NOTIFY_QUEUE,
  outcomeSchedulerId,
  pendingLearningSummaries,
  pendingPollRequests,
  requestPoll,
  SIGNALS_QUEUE,
  SIGNATURE_HEADER,
  transitionExperiment,
  verifyWebhookSignature,
} from "@outcome-runtime/runtime";
import { ratioSequentialTest } from "@outcome-runtime/stats";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test removes the worker's job schedulers as a Redis that lost them would
import { Queue } from "bullmq";
import { afterEach, describe, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, type WorkerProcess } from "./support/processes";
import {
  activeOutcome,
  type Cleanups,
  createWorld as createWorldOf,
  insertSource,
  launchExperiments,
  runCleanups,
  type SourceRow,
  sourceRows,
  stateOf,
  storedPoints,
  type World,
} from "./support/world";

const POLL_INTERVAL_MS = 1000;
const RECONCILE_INTERVAL_MS = 500;
const WEBHOOK_SECRET = "worker-test-webhook-secret-0123456789";

// ---------------------------------------------------------------------------
// Per-test resources, released in afterEach whatever happened.

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups));

const createWorld = (): Promise<World> => createWorldOf(cleanups);

/** The worker process (services/worker/src/main.ts), reconciling every 500 ms with a 2 s job lock. */
function startWorker(world: World, env: Record<string, string> = {}): Promise<WorkerProcess> {
  return startWorkerProcess(world, cleanups, { RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS), ...env });
}

/** SIGTERM, and the exit code and time it took (at most 10 s). */
const stopWorker = (worker: WorkerProcess) => stopProcess(worker.proc);

// ---------------------------------------------------------------------------
// A webhook receiver that records what it gets, byte for byte.

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

async function webhookReceiver(): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/outcome-runtime`, received };
}

// ---------------------------------------------------------------------------

describe("the worker process", () => {
  it("pauses a harmful treatment within one poll interval, audited and with one signed webhook; a healthy one keeps running", async () => {
    const world = await createWorld();
    await activeOutcome(world, "kill-switch");
    const [harmful, healthy] = await launchExperiments(world, "kill-switch", ["harmful", "healthy"]);

    // Five cumulative snapshots over the past two days, 1 000 more units per arm each (5 000 at the end):
    // control converts 20 %, the harmful treatment 10 %, the healthy one 20 %.
    const now = Date.now();
    const offsetsHours = [48, 36, 24, 12, 0.05];
    const rows: SourceRow[] = [];
    offsetsHours.forEach((hours, i) => {
      const ts = new Date(now - hours * 3600_000);
      const units = 1000 * (i + 1);
      rows.push(
        { key: "harmful", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "harmful", arm: "treatment", ts, units, conversions: units * 0.1 },
        { key: "healthy", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "healthy", arm: "treatment", ts, units, conversions: units * 0.2 },
      );
    });
    await insertSource(world, rows);

    const hooks = await webhookReceiver();
    // Both experiments are running before the worker starts.
    const worker = await startWorker(world, {
      OUTCOME_RUNTIME_WEBHOOK_URL: hooks.url,
      OUTCOME_RUNTIME_WEBHOOK_SECRET: WEBHOOK_SECRET,
    });
    const readyAt = await worker.ready;
    const pausedAt = await waitFor(
      "the harmful experiment to be paused",
      async () => ((await stateOf(world, harmful!.id)) === "paused" ? Date.now() : undefined),
      { timeoutMs: 30_000, intervalMs: 20, diagnostics: worker.output },
    );
    // "Within one poll interval" is the functional requirement: the first poll after the worker is ready
    // sees the harm. Bound: poll interval (1 s) + reconcile interval (0.5 s) + 3 s of scheduling slack,
    // reported; a loaded 2-core machine may take three times that (the margin asserted). The pause may even
    // precede /readyz (jobs start before the health server).
    const latencyMs = Math.max(0, pausedAt - readyAt);
    const boundMs = POLL_INTERVAL_MS + RECONCILE_INTERVAL_MS + 3000;
    console.log(
      `pause latency: ${latencyMs} ms after /readyz 200 (${pausedAt - worker.spawnedAt} ms after spawn; bound ${boundMs} ms)`,
    );
    expect(latencyMs).toBeLessThanOrEqual(3 * boundMs);

    // The webhook arrives (at least once); the healthy experiment is analysed up to its newest snapshot.
    await waitFor("the webhook delivery", async () => hooks.received.length > 0, { diagnostics: worker.output });
    await waitFor(
      "the healthy experiment's analyses of all five snapshots",
      async () => (await signals.listAnalyses(world.t.db, healthy!.id)).length === offsetsHours.length,
      { diagnostics: worker.output },
    );
    // Give duplicate deliveries or a second decision a chance to show up before counting.
    await sleep(2 * POLL_INTERVAL_MS);

    expect(await stateOf(world, harmful!.id)).toBe("paused");
    expect(await stateOf(world, healthy!.id)).toBe("running");

    const paused = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
      subjectId: harmful!.id,
      action: "experiment.paused",
    });
    expect(paused).toHaveLength(1);
    expect(paused[0]).toMatchObject({
      actor: { id: "worker", name: "worker", role: "system" },
      channel: "system",
      before: { state: "running" },
      after: { state: "paused", action: "pause", reason: "kill" },
    });

    const analyses = await signals.listAnalyses(world.t.db, harmful!.id);
    const pauses = analyses.filter((a) => (a.decision as { action: string }).action === "pause");
    expect(pauses).toHaveLength(1);
    expect(pauses[0]!.decision).toMatchObject({ action: "pause", reason: "kill" });
    // Nothing is analysed after the decision.
    expect(analyses.at(-1)!.id).toBe(pauses[0]!.id);

    const healthyAnalyses = await signals.listAnalyses(world.t.db, healthy!.id);
    expect(healthyAnalyses.every((a) => (a.decision as { action: string }).action === "continue")).toBe(true);
    expect(
      await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
        subjectId: healthy!.id,
        action: "experiment.paused",
      }),
    ).toEqual([]);

    // One experiment event, whatever the number of deliveries (at least once: receivers deduplicate on the
    // event header). The gates opened on the way (portfolio, launches, the pause's review) have events of their own.
    const typeOf = (r: { body: string }) => String((JSON.parse(r.body) as { type: string }).type);
    const experimentHooks = hooks.received.filter((r) => typeOf(r).startsWith("experiment."));
    const events = new Map(experimentHooks.map((r) => [String(r.headers[EVENT_HEADER]), r]));
    expect(events.size).toBe(1);
    expect(new Set(hooks.received.map(typeOf))).toEqual(new Set(["experiment.paused", "gate.opened", "gate.decided"]));
    for (const delivery of hooks.received) {
      const header = delivery.headers[SIGNATURE_HEADER];
      expect(typeof header).toBe("string");
      expect(verifyWebhookSignature(WEBHOOK_SECRET, delivery.body, header as string)).toBe(true);
      // An independent computation: HMAC-SHA256 over "<t>.<raw body>" with the shared secret.
      const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header as string);
      expect(match).not.toBeNull();
      const [, t, v1] = match!;
      expect(Math.abs(Number(t) - Date.now() / 1000)).toBeLessThan(300);
      expect(createHmac("sha256", WEBHOOK_SECRET).update(`${t}.${delivery.body}`).digest("hex")).toBe(v1);
      const tampered = delivery.body.replace('"type"', '"kind"');
      expect(tampered).not.toBe(delivery.body);
      expect(verifyWebhookSignature(WEBHOOK_SECRET, tampered, header as string)).toBe(false);
      expect(verifyWebhookSignature("another-secret-of-some-length", delivery.body, header as string)).toBe(false);
    }
    const [eventId, delivery] = [...events][0]!;
    const payload = JSON.parse(delivery.body) as {
      id: string;
      type: string;
      data: { reason: string; action: string; experiment: { id: string; key: string; state: string } };
    };
    expect(payload.id).toBe(eventId);
    expect(payload.type).toBe("experiment.paused");
    expect(payload.data).toMatchObject({
      reason: "kill",
      action: "pause",
      experiment: { id: harmful!.id, key: "harmful", state: "paused" },
    });

    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
  }, 90_000);

  it("polls an outcome's experiments together when its query reads in batches: one job, the harmful one paused within a poll interval, with its webhook", async () => {
    const world = await createWorld();
    const query =
      "SELECT experiment_key AS experiment, arm, units::float8 AS units, sum, sum_sq, ts FROM source_points " +
      "WHERE experiment_key = ANY(:experiments) AND ts > :from AND ts <= :to ORDER BY ts";
    const outcomeId = await activeOutcome(world, "batched-kill", 100, { query });
    const [harmful, healthy] = await launchExperiments(world, "batched-kill", ["b-harmful", "b-healthy"]);
    const now = Date.now();
    const rows: SourceRow[] = [];
    [24, 12, 0.05].forEach((hours, i) => {
      const ts = new Date(now - hours * 3600_000);
      const units = 1000 * (i + 1);
      rows.push(
        { key: "b-harmful", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "b-harmful", arm: "treatment", ts, units, conversions: units * 0.1 },
        { key: "b-healthy", arm: "control", ts, units, conversions: units * 0.2 },
        { key: "b-healthy", arm: "treatment", ts, units, conversions: units * 0.2 },
      );
    });
    await insertSource(world, rows);
    const hooks = await webhookReceiver();
    const worker = await startWorker(world, {
      LOG_LEVEL: "info",
      OUTCOME_RUNTIME_WEBHOOK_URL: hooks.url,
      OUTCOME_RUNTIME_WEBHOOK_SECRET: WEBHOOK_SECRET,
    });
    const readyAt = await worker.ready;
    const pausedAt = await waitFor(
      "the harmful experiment to be paused",
      async () => ((await stateOf(world, harmful!.id)) === "paused" ? Date.now() : undefined),
      { timeoutMs: 30_000, intervalMs: 20, diagnostics: worker.output },
    );
    // Reported, not asserted: the invariant is the single pause and its webhook below; the time is the load's.
    console.log(`batched pause latency: ${Math.max(0, pausedAt - readyAt)} ms after /readyz 200`);
    await waitFor(
      "the paused experiment's webhook",
      async () => hooks.received.some((r) => (JSON.parse(r.body) as { type: string }).type === "experiment.paused"),
      { diagnostics: worker.output },
    );
    await waitFor(
      "the healthy experiment's analyses of all three snapshots",
      async () => (await signals.listAnalyses(world.t.db, healthy!.id)).length === 3,
      { diagnostics: worker.output },
    );
    // One scheduler for the outcome's experiments, none per experiment; each round is one job.
    const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
    cleanups.push(() => queue.close());
    const ids = (await queue.getJobSchedulers(0, -1)).map((x) => x.key);
    expect(ids).toContain(`poll-experiments:${outcomeId}`);
    expect(ids.some((id) => id.startsWith("poll-experiment:"))).toBe(false);
    const batchLines = worker
      .output()
      .split("\n")
      .filter((line) => line.includes("experiments polled in batches"))
      .map((line) => JSON.parse(line) as { experiments: number; requests: number });
    expect(batchLines.length).toBeGreaterThan(0);
    // Two experiments, one request for the signal: the first round read both at once.
    expect(batchLines[0]).toMatchObject({ experiments: 2, requests: 1 });
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
    expect(await stateOf(world, healthy!.id)).toBe("running");
  }, 90_000);

  it("three treatments through the worker: a harmful one paused within the first hour of min_duration: 1d, a winner held back, Holm-adjusted p-values recorded", async () => {
    const world = await createWorld();
    await activeOutcome(world, "three-arms", 100, {
      arms: ["control", "b", "c", "d"],
      minDuration: "1d",
      secondaryMetric: "repeat_visit",
    });
    const [harm, win] = await launchExperiments(world, "three-arms", ["harm-early", "win-early"]);

    // Four cumulative snapshots in the last 40 minutes, 1 500 more units per arm each. Control converts 20 %;
    // in harm-early, d converts 10 % (half of control: beyond the 5 % kill threshold); in win-early, b 30 %.
    const now = Date.now();
    const rows: SourceRow[] = [];
    [40, 30, 20, 1].forEach((minutes, i) => {
      const ts = new Date(now - minutes * 60_000);
      const units = 1500 * (i + 1);
      for (const [key, rates] of [
        ["harm-early", { control: 0.2, b: 0.2, c: 0.2, d: 0.1 }],
        ["win-early", { control: 0.2, b: 0.3, c: 0.2, d: 0.2 }],
      ] as const) {
        for (const [arm, rate] of Object.entries(rates)) rows.push({ key, arm, ts, units, conversions: units * rate });
      }
    });
    await insertSource(world, rows);

    const worker = await startWorker(world);
    await worker.ready;
    await waitFor("harm-early to be paused", async () => (await stateOf(world, harm!.id)) === "paused" || undefined, {
      timeoutMs: 30_000,
      diagnostics: worker.output,
    });
    await waitFor(
      "win-early's analyses of all four snapshots",
      async () => (await signals.listAnalyses(world.t.db, win!.id)).length === 4 || undefined,
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });

    const paused = (await signals.listAnalyses(world.t.db, harm!.id)).at(-1)!;
    expect(paused.decision).toMatchObject({ action: "pause", reason: "kill" });
    expect(paused.details.elapsedSeconds).toBeLessThan(3600);

    expect(await stateOf(world, win!.id)).toBe("running");
    const last = (await signals.listAnalyses(world.t.db, win!.id)).at(-1)!;
    expect(last.decision).toMatchObject({ action: "continue", reason: "warming_up" });
    const comparisons = last.details.comparisons;
    expect(comparisons.map((c) => c.arm)).toEqual(["b", "c", "d"]);
    const b = comparisons[0]!;
    expect(b.pValue).toBeLessThan(1e-6);
    // Holm at this look: each adjusted p is at least its own p, the smallest at least 3 × itself (capped at 1).
    const ps = comparisons.map((c) => c.pValue as number);
    const smallest = Math.min(...ps);
    for (const c of comparisons) expect(c.adjustedPValue as number).toBeGreaterThanOrEqual(c.pValue as number);
    expect(comparisons.find((c) => c.pValue === smallest)!.adjustedPValue).toBeCloseTo(Math.min(1, 3 * smallest), 12);
    // The secondary metric (the same query, so the same numbers) is reported per treatment and decides nothing.
    expect(last.details.secondary?.map((s) => [s.metric, s.arm])).toEqual([
      ["repeat_visit", "b"],
      ["repeat_visit", "c"],
      ["repeat_visit", "d"],
    ]);
    expect(last.details.secondary?.[0]?.pValue).toBeLessThan(1e-6);
    // The win's interval is at α/3 (wider than the kill's at α, which the carry keeps per treatment).
    expect(last.details.carry.killArms?.b).toBeDefined();
    expect(b.ci![0]).toBeLessThanOrEqual(last.details.carry.killArms!.b!.ci[0]);
  }, 90_000);

  it("adjusts the analysis for a pre-exposure covariate the postgres query returns (CUPED)", async () => {
    const world = await createWorld();
    // Unit-level data: each unit's conversion rate over the 30 days before exposure (x), and whether it
    // converted after (y), more likely the higher x. 3 000 units per arm, the treatment converting 2 points more.
    await world.source.query(`
      CREATE TABLE source_units (experiment_key text, arm text, exposed_at timestamptz, pre_rate float8, converted int);
      SELECT setseed(0.25);
      INSERT INTO source_units
      SELECT 'cuped', arm, now() - interval '10 minutes', x,
             (random() < 0.2 + 0.6 * x + CASE WHEN arm = 'treatment' THEN 0.02 ELSE 0 END)::int
        FROM (SELECT arm, random() AS x
                FROM unnest(ARRAY['control', 'treatment']) AS arm, generate_series(1, 3000)
               ORDER BY arm) AS u;`);
    const query =
      "SELECT arm, count(*) AS units, sum(converted)::float8 AS sum, sum(converted)::float8 AS sum_sq, " +
      "sum(pre_rate) AS cov_sum, sum(pre_rate * pre_rate) AS cov_sum_sq, sum(pre_rate * converted) AS cov_sum_product " +
      "FROM source_units WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm";
    await activeOutcome(world, "cuped-outcome", 100, { query });
    const [experiment] = await launchExperiments(world, "cuped-outcome", ["cuped"]);

    const worker = await startWorker(world);
    await worker.ready;
    const analysis = await waitFor(
      "an analysis of the covariate-carrying points",
      async () => (await signals.listAnalyses(world.t.db, experiment!.id)).at(-1),
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });

    // The points were stored with their covariate, and the comparison is the CUPED-adjusted one.
    const points = await storedPoints(world, experiment!.id);
    expect(points.length).toBeGreaterThanOrEqual(2);
    const series = (await signals.listSeriesOfExperiment(world.t.db, experiment!.id)).find((s) => s.role === "primary");
    const stored = await signals.latestPointsAtOrBefore(world.t.db, series!.id, analysis.ts);
    expect(stored.map((p) => p.covariate?.sumSq)).toEqual([expect.any(Number), expect.any(Number)]);
    const comparison = analysis.details.comparisons[0]!;
    expect(comparison.cuped?.theta).toBeGreaterThan(0);
    expect(comparison.cuped?.varianceReduction).toBeGreaterThan(0);
    expect(comparison.ci).not.toBeNull();
    // The planned sample is what the adjusted test needs: the plan's times 1 − the variance reduction.
    const { plannedPerArm, unadjustedPlannedPerArm } = analysis.details;
    expect(unadjustedPlannedPerArm).toBeGreaterThan(0);
    expect(plannedPerArm).toBeCloseTo(unadjustedPlannedPerArm! * (1 - comparison.cuped!.varianceReduction!), 6);
  }, 90_000);

  it("opens the owner's confirm-achieved gate once the outcome's own series has held past the target, and logs it", async () => {
    const world = await createWorld();
    // The outcome's series, one point a minute: 0.40 for an hour (with one minute at 0.46), then 0.46 for the
    // last 40 minutes (goal 0.45, target.sustain 30m).
    await world.source.query(`
      CREATE TABLE outcome_level (ts timestamptz, value float8);
      INSERT INTO outcome_level
      SELECT now() - make_interval(mins => m), CASE WHEN m <= 40 OR m = 70 THEN 0.46 ELSE 0.40 END
        FROM generate_series(1, 100) AS m;`);
    const outcomeId = await activeOutcome(world, "sustained-outcome", 100, {
      seriesQuery: "SELECT ts, value FROM outcome_level WHERE ts > :from AND ts <= :to ORDER BY ts",
      target: "  direction: increase\n  value: 0.45\n  relative: false\n  sustain: 30m",
    });
    const worker = await startWorker(world, { LOG_LEVEL: "info" });
    await worker.ready;
    const gate = await waitFor(
      "the confirm-achieved gate",
      async () => (await gates.findPendingGate(world.t.db, { outcomeId, kind: "achievement_review" })) ?? undefined,
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    expect(gate.assignees).toEqual(["owner@acme.example"]);
    expect(gate.context).toMatchObject({ goal: 0.45, latest: 0.46, direction: "increase", sustainSeconds: 1800 });
    expect(gate.context.points).toBeGreaterThanOrEqual(29);
    const logged = await waitFor(
      "the worker's log line",
      async () =>
        worker
          .output()
          .split("\n")
          .filter((line) => line.includes("confirm-achieved gate opened"))
          .map((line) => JSON.parse(line) as Record<string, unknown>)[0],
      { diagnostics: worker.output },
    );
    expect(logged).toMatchObject({ outcomeId, gateId: gate.id, goal: 0.45, latest: 0.46 });
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
    // Still active: only the owner's confirmation marks it achieved.
    expect((await outcomes.findOutcomeById(world.t.db, outcomeId))?.state).toBe("active");
  }, 60_000);
  it("decides on a ratio metric the postgres query returns with its denominator, with the delta-method test", async () => {
    const world = await createWorld();
    // Unit-level data: users randomised, each with 1 to 5 sessions and the revenue of those sessions; the
    // metric is revenue per session (Σrevenue / Σsessions), about 20 % higher in the treatment.
    await world.source.query(`
      CREATE TABLE source_users (experiment_key text, arm text, exposed_at timestamptz, sessions int, revenue float8);
      SELECT setseed(0.5);
      INSERT INTO source_users
      SELECT 'ratio', u.arm, now() - interval '10 minutes', u.sessions, sum(CASE WHEN s.buys THEN s.amount ELSE 0 END)
        FROM (SELECT arm, id, 1 + floor(random() * 5)::int AS sessions
                FROM unnest(ARRAY['control', 'treatment']) AS arm, generate_series(1, 3000) AS id
               ORDER BY arm, id) AS u
             CROSS JOIN LATERAL (SELECT random() < 0.3 AS buys,
                                        20 * random() * CASE WHEN u.arm = 'treatment' THEN 1.2 ELSE 1.0 END AS amount
                                   FROM generate_series(1, u.sessions)) AS s
       GROUP BY u.arm, u.id, u.sessions;`);
    const query =
      "SELECT arm, count(*) AS units, sum(revenue) AS sum, sum(revenue * revenue) AS sum_sq, " +
      "sum(sessions)::float8 AS den_sum, sum(sessions * sessions)::float8 AS den_sum_sq, " +
      "sum(revenue * sessions) AS num_den_sum " +
      "FROM source_users WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm";
    await activeOutcome(world, "ratio-outcome", 100, { query, kind: "ratio" });
    const [experiment] = await launchExperiments(world, "ratio-outcome", ["ratio"]);

    const worker = await startWorker(world);
    await worker.ready;
    const analysis = await waitFor(
      "a decision on the ratio",
      async () =>
        (await signals.listAnalyses(world.t.db, experiment!.id)).find(
          (a) => (a.decision as { action: string }).action !== "continue",
        ),
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
    expect(analysis.decision).toMatchObject({ action: "analyse", reason: "win" });

    // The points were stored with their denominator, in a series of kind ratio.
    const series = (await signals.listSeriesOfExperiment(world.t.db, experiment!.id)).find((s) => s.role === "primary");
    expect(series?.kind).toBe("ratio");
    const [control, treatment] = await signals.latestPointsAtOrBefore(world.t.db, series!.id, analysis.ts);
    expect([control?.arm, treatment?.arm]).toEqual(["control", "treatment"]);
    const paired = (p: typeof control) => ({
      units: p!.units,
      sum: p!.sum,
      sumSq: p!.sum_sq,
      pairSum: p!.denominator!.sum,
      pairSumSq: p!.denominator!.sumSq,
      crossSum: p!.denominator!.sumProduct,
    });
    // The ratios are the source's own Σrevenue / Σsessions.
    const { rows: ratios } = await world.source.query<{ arm: string; ratio: number }>(
      "SELECT arm, sum(revenue) / sum(sessions) AS ratio FROM source_users GROUP BY arm ORDER BY arm",
    );
    expect(analysis.arms.control?.mean).toBeCloseTo(ratios[0]!.ratio, 9);
    expect(analysis.arms.treatment?.mean).toBeCloseTo(ratios[1]!.ratio, 9);
    // The stored comparison is the delta-method mSPRT on those totals, at the plan's τ² (the first look
    // that decided: no earlier carry, since the source's totals never changed).
    const expected = ratioSequentialTest(
      paired(control),
      paired(treatment),
      { alpha: 0.05, tau2: analysis.details.tau2 as number },
      null,
    );
    const comparison = analysis.details.comparisons[0]!;
    expect(comparison.effect).toBeCloseTo(expected.effect!, 9);
    expect(comparison.effect).toBeCloseTo(ratios[1]!.ratio - ratios[0]!.ratio, 9);
    expect(comparison.pValue).toBeCloseTo(expected.pValue!, 12);
    expect(comparison.ci![0]).toBeCloseTo(expected.ci![0], 9);
    expect(comparison.ci![1]).toBeCloseTo(expected.ci![1], 9);
    expect(comparison.relativeLift).toBeCloseTo(expected.effect! / ratios[0]!.ratio, 9);
    expect(analysis.pValue).toBe(comparison.pValue);
    expect(comparison.pValue).toBeLessThan(0.05);
  }, 90_000);

  it("records a poll error naming the denominator column a ratio query lacks, and analyses nothing", async () => {
    const world = await createWorld();
    await world.source.query(`
      CREATE TABLE source_users (experiment_key text, arm text, exposed_at timestamptz, sessions int, revenue float8);
      INSERT INTO source_users
      SELECT 'no-den', arm, now() - interval '10 minutes', 2, 1 FROM unnest(ARRAY['control', 'treatment']) AS arm;`);
    const query =
      "SELECT arm, count(*) AS units, sum(revenue) AS sum, sum(revenue * revenue) AS sum_sq, " +
      "sum(sessions)::float8 AS den_sum, sum(sessions * sessions)::float8 AS den_sum_sq, NULL::float8 AS num_den_sum " +
      "FROM source_users WHERE experiment_key = :experiment AND exposed_at <= :to GROUP BY arm";
    await activeOutcome(world, "ratio-null", 100, { query, kind: "ratio" });
    const [experiment] = await launchExperiments(world, "ratio-null", ["no-den"]);

    const worker = await startWorker(world);
    await worker.ready;
    const failed = await waitFor(
      "the poll error on the experiment",
      async () => {
        const row = await experimentRows.findExperimentById(world.t.db, experiment!.id);
        return row?.polling.error ?? undefined;
      },
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
    expect(JSON.stringify(failed)).toContain("column num_den_sum: is NULL or empty");
    expect(await signals.listAnalyses(world.t.db, experiment!.id)).toEqual([]);
  }, 90_000);

  it("loses and duplicates nothing when SIGKILLed in the middle of polling ten times in a row", async () => {
    const world = await createWorld();
    // A minimum sample no experiment reaches: every analysis is "warming up", nothing is decided.
    await activeOutcome(world, "crash-loop", 1_000_000_000);
    const keys = ["crash-a", "crash-b", "crash-c", "crash-d", "crash-e"];
    const launched = await launchExperiments(world, "crash-loop", keys);

    // The source gains a cumulative snapshot per arm per experiment every ~100 ms (ts strictly increasing,
    // each tick in one commit), with no true effect.
    const totals = new Map(keys.flatMap((k) => ["control", "treatment"].map((arm) => [`${k}/${arm}`, { u: 0, c: 0 }])));
    const tick = async () => {
      const ts = new Date();
      const rows: SourceRow[] = [];
      for (const key of keys) {
        for (const arm of ["control", "treatment"]) {
          const total = totals.get(`${key}/${arm}`)!;
          const added = 20 + Math.floor(Math.random() * 10);
          total.u += added;
          total.c += Math.round(added * 0.2);
          rows.push({ key, arm, ts, units: total.u, conversions: total.c });
        }
      }
      await insertSource(world, rows);
    };
    await tick();
    let inserting = true;
    const inserter = (async () => {
      while (inserting) {
        await sleep(100);
        await tick();
      }
    })();
    cleanups.push(async () => {
      inserting = false;
      await inserter;
    });

    const queues = [SIGNALS_QUEUE, CONTROL_QUEUE].map(
      (name) => new Queue(name, { connection: world.redis, prefix: world.prefix }),
    );
    cleanups.push(async () => {
      await Promise.all(queues.map((q) => q.close()));
    });
    const activeJobs = async () => (await Promise.all(queues.map((q) => q.getActive()))).flat();

    const kills: number[] = [];
    // Jobs seen active at a kill. After the random wait, the kill waits (at most 2 s) for a job this worker
    // took (an id not seen before: an earlier worker's job not yet taken over is still listed as active).
    const interrupted = new Set<string>();
    let midJob = 0;
    for (let i = 0; i < 10; i += 1) {
      const worker = await startWorker(world, { WORKER_CONCURRENCY: "4" });
      await worker.ready;
      const wait = 300 + Math.floor(Math.random() * 1200);
      await sleep(wait);
      const fresh = await waitFor(
        "a job in flight",
        async () => {
          const ids = (await activeJobs()).map((job) => `${job.queueName}/${job.id}`);
          return ids.some((id) => !interrupted.has(id)) ? ids : undefined;
        },
        { timeoutMs: 2000, intervalMs: 5 },
      ).catch(() => [] as string[]);
      process.kill(worker.proc.child.pid!, "SIGKILL");
      if (fresh.length > 0) midJob += 1;
      for (const id of fresh) interrupted.add(id);
      expect((await worker.proc.exited).signal).toBe("SIGKILL");
      kills.push(wait);
    }
    const pointsDuringKills = (await Promise.all(launched.map((e) => storedPoints(world, e.id)))).reduce(
      (n, p) => n + p.length,
      0,
    );

    const last = await startWorker(world, { WORKER_CONCURRENCY: "4" });
    await last.ready;
    inserting = false;
    await inserter;

    const caughtUpAt = Date.now();
    await waitFor(
      "every experiment's points and analyses to catch up with the source",
      async () => {
        for (const e of launched) {
          const source = await sourceRows(world, e.key);
          if ((await storedPoints(world, e.id)).length !== source.length) return false;
          const newest = (await signals.latestAnalysis(world.t.db, e.id))?.ts.getTime();
          if (newest !== source.at(-1)?.ts.getTime()) return false;
        }
        return true;
      },
      { timeoutMs: 90_000, intervalMs: 500, diagnostics: last.output },
    );
    const catchUpMs = Date.now() - caughtUpAt;
    // Every job a killed worker held is taken over once its lock expires and finishes: nothing stays active.
    // Bound: lock (2 s) + two stalled checks (2 × 2 s) + slack.
    await waitFor("the killed workers' jobs to be taken over", async () => (await activeJobs()).length === 0, {
      timeoutMs: 20_000,
      intervalMs: 250,
      diagnostics: last.output,
    });
    expect(await stopWorker(last)).toMatchObject({ code: 0 });

    let sourceTotal = 0;
    let pointTotal = 0;
    let lost = 0;
    let duplicated = 0;
    let analysisTotal = 0;
    let analysisDuplicated = 0;
    let analysisMissing = 0;
    for (const e of launched) {
      const source = (await sourceRows(world, e.key)).map((r) => `${r.arm}@${r.ts.toISOString()}`);
      const points = await storedPoints(world, e.id);
      sourceTotal += source.length;
      pointTotal += points.length;
      const stored = new Set(points);
      duplicated += points.length - stored.size;
      lost += source.filter((p) => !stored.has(p)).length;
      expect(new Set(source).size).toBe(source.length);
      expect([...stored].sort()).toEqual([...source].sort());
      expect(points).toHaveLength(source.length);

      // One analysis per snapshot where both arms have a point (every tick writes both arms).
      const snapshotTs = [
        ...new Set(
          (await sourceRows(world, e.key))
            .filter((r, _, all) => all.some((o) => o.arm !== r.arm && o.ts.getTime() === r.ts.getTime()))
            .map((r) => r.ts.toISOString()),
        ),
      ].sort();
      const analyses = await signals.listAnalyses(world.t.db, e.id, 5000);
      const analysed = analyses.map((a) => a.ts.toISOString());
      analysisTotal += analysed.length;
      analysisDuplicated += analysed.length - new Set(analysed).size;
      analysisMissing += snapshotTs.filter((ts) => !analysed.includes(ts)).length;
      expect([...analysed].sort()).toEqual(snapshotTs);
      expect(analyses.every((a) => (a.decision as { action: string }).action === "continue")).toBe(true);

      expect(await stateOf(world, e.id)).toBe("running");
      const history = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, { subjectId: e.id });
      expect(history[0]?.action).toBe("experiment.launched");
    }
    console.log(
      `SIGKILL x${kills.length} (after ${kills.join(", ")} ms of readiness; ${midJob} kills with a job in flight, ${interrupted.size} jobs): ` +
        `${sourceTotal} source points, ${pointTotal} stored (${pointsDuringKills} before the last worker), ` +
        `${lost} lost, ${duplicated} duplicated; ${analysisTotal} analyses, ${analysisDuplicated} duplicated, ` +
        `${analysisMissing} missing; caught up ${catchUpMs} ms after the inserts stopped`,
    );
    expect({ lost, duplicated, analysisDuplicated, analysisMissing }).toEqual({
      lost: 0,
      duplicated: 0,
      analysisDuplicated: 0,
      analysisMissing: 0,
    });
    expect(pointTotal).toBe(sourceTotal);
    expect(midJob).toBeGreaterThan(0);
  }, 170_000);

  it("shows a failing connector on the experiment, and clears it on the next successful poll", async () => {
    const world = await createWorld();
    await activeOutcome(world, "flaky-source");
    // The worker is running before the experiment is: the reconciliation picks the experiment up.
    const worker = await startWorker(world);
    await worker.ready;
    const [experiment] = await launchExperiments(world, "flaky-source", ["flaky"]);
    const first = new Date(Date.now() - 3600_000);
    await insertSource(world, [
      { key: "flaky", arm: "control", ts: first, units: 200, conversions: 40 },
      { key: "flaky", arm: "treatment", ts: first, units: 200, conversions: 41 },
    ]);
    const detail = () => getExperiment(world.deps, world.seed.admin, "flaky");
    await waitFor(
      "the first successful poll",
      async () => (await storedPoints(world, experiment!.id)).length === 2 && (await detail()).latestAnalysis !== null,
      { diagnostics: worker.output },
    );
    expect((await detail()).experiment.polling).toMatchObject({ failures: 0, error: null });

    // The source table disappears (renamed): the query fails, and the experiment says so.
    await world.source.query("ALTER TABLE source_points RENAME TO source_points_moved");
    const failing = await waitFor(
      "the poll error to show on the experiment",
      async () => {
        const polling = (await detail()).experiment.polling;
        return polling.error === null ? undefined : polling;
      },
      { diagnostics: worker.output },
    );
    expect(failing.failures).toBeGreaterThanOrEqual(1);
    expect(failing.error).toMatchObject({ code: "query_failed" });
    expect(failing.error!.message).toContain("source_points");
    expect(Number.isNaN(Date.parse(failing.error!.at))).toBe(false);
    // Logged with pino's error serializer under `err`: the type, the message and the stack survive. The
    // worker records the failure on the experiment before it logs, so the line may come a moment later.
    const logLines = () =>
      worker
        .output()
        .split("\n")
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as { msg?: string; code?: string; err?: { type?: string; stack?: string } }];
          } catch {
            return [];
          }
        });
    const logged = await waitFor(
      "the poll failure and the job failure in the worker's log",
      async () => {
        const lines = logLines();
        return lines.some((l) => l.msg === "poll failed") && lines.some((l) => l.msg === "job failed")
          ? lines
          : undefined;
      },
      { diagnostics: worker.output },
    );
    const pollFailed = logged.find((l) => l.msg === "poll failed");
    expect(pollFailed, worker.output()).toMatchObject({ code: "query_failed", err: { type: "ConnectorError" } });
    expect(pollFailed?.err?.stack).toMatch(/source_points[\s\S]*\n\s+at /);
    expect(logged.find((l) => l.msg === "job failed")?.err?.stack).toEqual(expect.any(String));
    // Failures are counted per poll while the source stays broken.
    await waitFor("a second failed poll", async () => (await detail()).experiment.polling.failures >= 2 || undefined, {
      diagnostics: worker.output,
    });

    // Fixed: the next poll succeeds, clears the error and stores the data that arrived meanwhile.
    await world.source.query("ALTER TABLE source_points_moved RENAME TO source_points");
    const fixedAt = new Date();
    await insertSource(world, [
      { key: "flaky", arm: "control", ts: fixedAt, units: 400, conversions: 80 },
      { key: "flaky", arm: "treatment", ts: fixedAt, units: 400, conversions: 82 },
    ]);
    const recovered = await waitFor(
      "the poll error to clear",
      async () => {
        const polling = (await detail()).experiment.polling;
        return polling.error === null && polling.lastPolledAt !== null && polling.lastPolledAt >= fixedAt
          ? polling
          : undefined;
      },
      { diagnostics: worker.output },
    );
    expect(recovered.failures).toBe(0);
    await waitFor(
      "the points stored after the fix",
      async () => (await storedPoints(world, experiment!.id)).length === 4,
    );
    expect((await detail()).experiment.state).toBe("running");
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
  }, 60_000);

  it("re-creates job schedulers Redis lost from Postgres, and polling resumes", async () => {
    const world = await createWorld();
    const outcomeId = await activeOutcome(world, "lost-schedulers");
    const [experiment] = await launchExperiments(world, "lost-schedulers", ["resilient"]);
    const first = new Date(Date.now() - 60_000);
    await insertSource(world, [
      { key: "resilient", arm: "control", ts: first, units: 150, conversions: 30 },
      { key: "resilient", arm: "treatment", ts: first, units: 150, conversions: 31 },
    ]);
    const worker = await startWorker(world);
    await worker.ready;
    await waitFor("the first poll", async () => (await storedPoints(world, experiment!.id)).length === 2, {
      diagnostics: worker.output,
    });

    const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
    cleanups.push(() => queue.close());
    const wanted = [experimentSchedulerId(experiment!.id), outcomeSchedulerId(outcomeId)];
    const schedulerKeys = async () => (await queue.getJobSchedulers(0, -1)).map((s) => s.key).sort();
    expect(await schedulerKeys()).toEqual([...wanted].sort());

    const removedAt = new Date();
    for (const key of wanted) expect(await queue.removeJobScheduler(key)).toBe(true);
    const later = new Date();
    await insertSource(world, [
      { key: "resilient", arm: "control", ts: later, units: 300, conversions: 60 },
      { key: "resilient", arm: "treatment", ts: later, units: 300, conversions: 61 },
    ]);

    await waitFor(
      "the schedulers to be re-created",
      async () => JSON.stringify(await schedulerKeys()) === JSON.stringify([...wanted].sort()),
      { timeoutMs: 10_000, diagnostics: worker.output },
    );
    await waitFor(
      "polling to resume",
      async () => {
        const polled = (await experimentRows.findExperimentById(world.t.db, experiment!.id))?.polling.lastPolledAt;
        return (
          polled !== null &&
          polled !== undefined &&
          polled > removedAt &&
          (await storedPoints(world, experiment!.id)).length === 4
        );
      },
      { timeoutMs: 10_000, diagnostics: worker.output },
    );
    const scheduler = (await queue.getJobSchedulers(0, -1)).find((s) => s.key === wanted[0]);
    expect(scheduler?.every).toBe(POLL_INTERVAL_MS);
    expect(await stopWorker(worker)).toMatchObject({ code: 0 });
  }, 60_000);

  it("queues what was asked for in Postgres while no worker ran: a poll now under the job id answered, a learning summary", async () => {
    const world = await createWorld();
    // Polled on its schedule hourly (its first scheduled poll comes at start too).
    await activeOutcome(world, "asked-for", 100, { pollInterval: "1h" });
    const [polled, concluded] = await launchExperiments(world, "asked-for", ["polled-now", "concluded"]);
    const ts = new Date(Date.now() - 60_000);
    await insertSource(world, [
      { key: "polled-now", arm: "control", ts, units: 150, conversions: 30 },
      { key: "polled-now", arm: "treatment", ts, units: 150, conversions: 31 },
    ]);
    const { jobId } = await requestPoll(world.deps, world.seed.admin, polled!.key);
    // A person concludes the other one: the learning is written and its summary asked for, in the decision's transaction.
    const analysing = await transitionExperiment(world.deps, world.seed.admin, concluded!.id, { action: "analyse" });
    const decided = await decideGate(world.deps, world.seed.admin, analysing.openedGates[0]!.id, { decision: "ship" });
    const learningId = decided.learningId!;
    expect(await pendingLearningSummaries(world.deps)).toEqual([learningId]);

    const worker = await startWorker(world, { OUTBOX_INTERVAL_MS: "200" });
    await worker.ready;
    const signalsQueue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
    const notifyQueue = new Queue(NOTIFY_QUEUE, { connection: world.redis, prefix: world.prefix });
    cleanups.push(async () => {
      await signalsQueue.close();
      await notifyQueue.close();
    });
    const finished = (queue: Queue, id: string) => async () => {
      const job = await queue.getJob(id);
      return job?.finishedOn !== undefined ? job : undefined;
    };
    const poll = await waitFor("the poll asked for", finished(signalsQueue, jobId), { diagnostics: worker.output });
    expect(poll.name).toBe(JOB.pollExperiment);
    expect(poll.returnvalue).toMatchObject({ status: "polled", experimentKey: "polled-now" });
    expect(await storedPoints(world, polled!.id)).toHaveLength(2);
    const summary = await waitFor("the learning summary", finished(notifyQueue, learningJobId(learningId)), {
      diagnostics: worker.output,
    });
    // No LLM is configured: the rules' sentence stays, and the request is done.
    expect(summary.returnvalue).toEqual({ status: "kept" });
    // The next sweep sees the poll's job has run, and forgets the request.
    await waitFor("the poll request to be done", async () => (await pendingPollRequests(world.deps)).length === 0, {
      diagnostics: worker.output,
    });
    expect(await pendingLearningSummaries(world.deps)).toEqual([]);
    expect((await stopWorker(worker)).code).toBe(0);
  });

  it("answers /healthz and /readyz with the last completed job, and exits 0 on SIGTERM", async () => {
    const world = await createWorld();
    const worker = await startWorker(world);
    await worker.ready;
    const base = `http://127.0.0.1:${worker.port}`;

    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({
      status: "ok",
      checks: { redis_eviction_policy: { status: "ok", value: "noeviction" } },
      // The connector types this worker polls: the built-ins, and none a module added (CONNECTOR_MODULES is unset).
      connectors: {
        types: expect.arrayContaining([
          "postgres",
          "mysql",
          "duckdb",
          "clickhouse",
          "snowflake",
          "bigquery",
          "mixpanel",
          "csv",
          "ga4",
          "datadog",
          "prometheus",
          "posthog",
          "amplitude",
        ]),
        modules: [],
      },
      // No source is throttled, and no rate-limited vendor has been read by this process.
      sources: { throttled: [], budgets: [] },
      // No flag rollout waits for its provider.
      flags: { unapplied: 0, oldest: [] },
    });

    // A source answers its rate limit: /healthz names it, with until when its polls are held back.
    const outcomeId = await activeOutcome(world, "healthz-throttle");
    const [experiment] = await launchExperiments(world, "healthz-throttle", ["healthz-throttle-1"]);
    const series = await signals.ensureSeries(world.t.db, {
      workspaceId: experiment!.workspaceId,
      outcomeId,
      experimentId: experiment!.id,
      metric: "conversion_rate",
      role: "primary",
      kind: "proportion",
    });
    const until = new Date(Date.now() + 3_600_000);
    await sourceHealth.recordSourceReads(world.t.db, [
      {
        seriesIds: [series.id],
        connector: "mixpanel",
        source: "mixpanel project 2741933 (us)",
        at: new Date(),
        result: { status: "throttled", code: "rate_limited", message: "429 Too Many Requests", until },
      },
    ]);
    const throttled = await fetch(`${base}/healthz`);
    expect(((await throttled.json()) as { sources: unknown }).sources).toEqual({
      throttled: [
        {
          connector: "mixpanel",
          source: "mixpanel project 2741933 (us)",
          series: 1,
          until: until.toISOString(),
          note: "429 Too Many Requests",
        },
      ],
      budgets: [],
    });

    // The reconciliation job runs every RECONCILE_INTERVAL_MS: the worker has completed jobs soon after start.
    const ready = await waitFor(
      "/readyz to report a completed job",
      async () => {
        const response = await fetch(`${base}/readyz`);
        const body = (await response.json()) as { lastCompletedJobAt: string | null };
        return response.status === 200 && body.lastCompletedJobAt !== null ? body : undefined;
      },
      { timeoutMs: 10_000, diagnostics: worker.output },
    );
    expect(ready).toMatchObject({ status: "ready", checks: { database: true, redis: true, jobs: true } });
    const last = Date.parse(ready.lastCompletedJobAt!);
    expect(last).toBeGreaterThanOrEqual(worker.spawnedAt);
    expect(last).toBeLessThanOrEqual(Date.now());

    const stopped = await stopWorker(worker);
    expect(stopped.code).toBe(0);
    // A prompt exit, with a margin a loaded machine keeps (the drain deadline itself is 30 s).
    expect(stopped.ms).toBeLessThan(15_000);
  }, 60_000);
});
