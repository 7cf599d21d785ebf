/**
 * R10b: `pg_terminate_backend` of the worker's Postgres connections while
 * batched poll jobs store their groups, many times.
 *
 * One outcome whose query is in the batched form (`:experiments`) runs 100
 * experiments, polled every second by one real worker process that stores
 * them 10 per transaction (`POLL_STORE_SIZE`), four groups at once. The source
 * gains a snapshot of every experiment every 500 ms; both arms of a healthy
 * experiment are alike (no effect, nothing to decide), while a few harmful
 * ones turn harmful one after the other (from then on the treatment converts
 * none of its new units, control 20 %) and must be paused by the kill-switch
 * (the source goes on after the faults until each is). A killer waits a
 * random 50–400 ms, then for a worker backend inside a transaction, and
 * terminates every backend of the worker (`application_name =
 * outcome-runtime-worker` on the runtime's database): a group's transaction
 * dies before, inside or at its COMMIT, with the neighbours' groups and the
 * webhook deliveries in flight.
 *
 * Pass, once the faults stop and the worker has caught up: the worker never
 * exited; every healthy experiment still running, its points equal to the
 * source's and one analysis per snapshot (auditIngest); every harmful one
 * paused exactly once (one `experiment.paused` audit event, one
 * analysis_review gate, one webhook row, delivered, and one event id at the
 * receiver), its points a duplicate-free prefix of the source's and one
 * analysis per snapshot up to the pausing one, the last; no other audit event
 * or webhook row written twice.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { signals } from "@outcome-runtime/db";
import { EVENT_HEADER, type Experiment } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  BATCHED_SOURCE_QUERY,
  type Cleanups,
  caughtUp,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  type SourceRow,
  sourceRows,
  stateOf,
  storedPoints,
  type World,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const EXPERIMENTS = 100;
const HARMFUL = 5;
const STORE_SIZE = 10;
const FAULTS = scaled(200, 30);
const TICK_MS = 500;
const WORKER_APP = "outcome-runtime-worker";
const SECRET = "chaos-r10b-webhook-secret-0123456789";

/** A webhook receiver: every delivery's event id (the outbox row's id) and type. */
async function webhookReceiver() {
  const deliveries: { id: string; type: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const type = String((JSON.parse(Buffer.concat(chunks).toString("utf8")) as { type?: string }).type);
      deliveries.push({ id: String(request.headers[EVENT_HEADER] ?? ""), type });
      response.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, deliveries };
}

/**
 * Every `TICK_MS` a cumulative snapshot of every key (both arms, one commit): 10 more units per arm, 20 %
 * converting; a harmful key's treatment converts none of its new units from its tick in `harmfulFrom` on.
 */
function startTicker(world: World, keys: readonly string[], harmfulFrom: ReadonlyMap<string, number>) {
  const totals = new Map(keys.map((k) => [k, { units: 0, control: 0, treatment: 0 }]));
  let ticks = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const ts = new Date();
      const rows: SourceRow[] = [];
      for (const key of keys) {
        const t = totals.get(key)!;
        const harmful = (harmfulFrom.get(key) ?? Number.POSITIVE_INFINITY) <= ticks;
        t.units += 10;
        t.control += 2;
        t.treatment += harmful ? 0 : 2;
        rows.push({ key, arm: "control", ts, units: t.units, conversions: t.control });
        rows.push({ key, arm: "treatment", ts, units: t.units, conversions: Math.round(t.treatment) });
      }
      await insertSource(world, rows);
      ticks += 1;
      await sleep(TICK_MS);
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  cleanups.push(stop);
  return { ticks: () => ticks, stop };
}

interface HarmfulAudit {
  readonly paused: number;
  readonly gates: number;
  readonly webhookRows: number;
  readonly delivered: number;
  readonly eventIds: number;
  readonly duplicatePoints: number;
  /** Source rows up to the newest stored point that were not stored, and stored points not in the source. */
  readonly lostPoints: number;
  readonly duplicateAnalyses: number;
  /** Snapshots at or before the pausing analysis without an analysis, and analyses after it. */
  readonly missingAnalyses: number;
  readonly lastIsPause: boolean;
  /** Analysis rows (a figure, not an invariant). */
  readonly analyses: number;
}

/** A paused experiment's record against the source and the receiver. */
async function auditHarmful(
  world: World,
  e: Experiment,
  deliveries: readonly { id: string; type: string }[],
): Promise<HarmfulAudit> {
  const q = async <R extends Record<string, unknown>>(text: string, params: unknown[]) =>
    (await world.runtime.query<R>(text, params)).rows;
  const [counts] = await q<{ paused: number; gates: number }>(
    `SELECT (SELECT count(*)::int FROM audit_events WHERE subject_id = $1::text AND action = 'experiment.paused') AS paused,
            (SELECT count(*)::int FROM gates WHERE experiment_id = $1::uuid AND kind = 'analysis_review') AS gates`,
    [e.id],
  );
  const hooks = await q<{ id: string; status: string }>(
    "SELECT id, status FROM webhook_deliveries WHERE dedupe_key LIKE $1",
    [`experiment.%:${e.id}:%`],
  );
  const hookIds = new Set(hooks.map((h) => h.id));
  const source = (await sourceRows(world, e.key)).map((r) => ({ key: `${r.arm}@${r.ts.toISOString()}`, ts: r.ts }));
  const points = await storedPoints(world, e.id);
  const stored = new Set(points);
  const newest = Math.max(...source.filter((r) => stored.has(r.key)).map((r) => r.ts.getTime()));
  const analyses = await signals.listAnalyses(world.t.db, e.id, 100_000);
  const analysedTs = analyses.map((a) => a.ts.getTime());
  const pauseAt = analyses.findIndex((a) => a.decision.action === "pause");
  const pauseTs = pauseAt < 0 ? Number.NEGATIVE_INFINITY : analysedTs[pauseAt]!;
  const snapshots = [...new Set(source.map((r) => r.ts.getTime()))].filter((ts) => ts <= pauseTs);
  return {
    paused: counts!.paused,
    gates: counts!.gates,
    webhookRows: hooks.length,
    delivered: hooks.filter((h) => h.status === "delivered").length,
    eventIds: new Set(deliveries.filter((d) => hookIds.has(d.id)).map((d) => d.id)).size,
    duplicatePoints: points.length - stored.size,
    lostPoints:
      source.filter((r) => r.ts.getTime() <= newest && !stored.has(r.key)).length +
      points.filter((p) => !source.some((r) => r.key === p)).length,
    duplicateAnalyses: analysedTs.length - new Set(analysedTs).size,
    missingAnalyses:
      snapshots.filter((ts) => !analysedTs.includes(ts)).length + analysedTs.filter((ts) => ts > pauseTs).length,
    lastIsPause: pauseAt >= 0 && pauseAt === analyses.length - 1 && analyses[pauseAt]!.decision.reason === "kill",
    analyses: analyses.length,
  };
}

it(`R10b: ${FAULTS} pg_terminate_backend of the worker's connections while batched polls store ${STORE_SIZE} experiments per transaction lose and duplicate nothing`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-terminate-b", 100, { query: BATCHED_SOURCE_QUERY, pollInterval: "1s" });
  const keys = Array.from({ length: EXPERIMENTS }, (_, i) => `term-b-${String(i).padStart(3, "0")}`);
  const launched = await launchExperiments(world, "chaos-terminate-b", keys);
  // Spread over the experiments (and so over the store groups), turning harmful one after the other.
  const harmfulKeys = Array.from({ length: HARMFUL }, (_, j) => keys[Math.floor(((j + 0.5) * EXPERIMENTS) / HARMFUL)]!);
  const harmfulFrom = new Map(harmfulKeys.map((k, j) => [k, 2 + 2 * j]));
  const harmful = launched.filter((e) => harmfulFrom.has(e.key));
  const healthy = launched.filter((e) => !harmfulFrom.has(e.key));
  const receiver = await webhookReceiver();

  const worker = await startWorkerProcess(world, cleanups, {
    POLL_STORE_SIZE: String(STORE_SIZE),
    WORKER_CONCURRENCY: "8",
    OUTCOME_RUNTIME_WEBHOOK_URL: receiver.url,
    OUTCOME_RUNTIME_WEBHOOK_SECRET: SECRET,
    OUTBOX_INTERVAL_MS: "200",
  });
  await workerBooted(worker);
  const ticker = startTicker(world, keys, harmfulFrom);
  const faultsFrom = Date.now();

  let terminated = 0;
  let inTransaction = 0;
  let inStore = 0;
  for (let i = 0; i < FAULTS; i += 1) {
    await sleep(50 + Math.floor(Math.random() * 350));
    // A moment when the worker is inside a transaction (a group's store, most of the time).
    await waitFor(
      "a worker backend inside a transaction",
      async () => {
        const { rows } = await world.runtime.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND xact_start IS NOT NULL",
          [world.t.name, WORKER_APP],
        );
        return rows[0]!.n > 0;
      },
      { timeoutMs: 2000, intervalMs: 2 },
    ).catch(() => false);
    const { rows } = await world.runtime.query<{ ok: boolean; busy: boolean; storing: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok, xact_start IS NOT NULL AS busy,
              (xact_start IS NOT NULL AND query ~* '(signal_points|analyses|FOR NO KEY UPDATE|FOR SHARE)') AS storing
         FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
      [world.t.name, WORKER_APP],
    );
    terminated += rows.filter((r) => r.ok).length;
    if (rows.some((r) => r.busy)) inTransaction += 1;
    if (rows.some((r) => r.storing)) inStore += 1;
    if (worker.proc.isGone()) {
      throw new Error(`the worker exited after a pg_terminate_backend:\n${worker.output().slice(-4000)}`);
    }
  }
  const faultsMs = Date.now() - faultsFrom;
  const pausedInFaults = (await Promise.all(harmful.map((e) => stateOf(world, e.id)))).filter(
    (s) => s === "paused",
  ).length;
  // The source goes on until the kill-switch has seen enough of every harmful treatment.
  await waitFor(
    "every harmful experiment to be paused",
    async () => (await Promise.all(harmful.map((e) => stateOf(world, e.id)))).every((s) => s === "paused"),
    { timeoutMs: 60_000, intervalMs: 250, diagnostics: () => worker.output().slice(-4000) },
  );
  await ticker.stop();

  const caughtUpAt = Date.now();
  let behind = "";
  await waitFor(
    "every healthy experiment to catch up and every harmful one to be paused",
    async () => {
      const lagging: string[] = [];
      for (const e of healthy)
        if (!(await caughtUp(world, [e]))) lagging.push(`${e.key} ${await stateOf(world, e.id)}`);
      const harmfulStates = await Promise.all(harmful.map(async (e) => `${e.key} ${await stateOf(world, e.id)}`));
      behind = `not caught up: ${lagging.slice(0, 10).join(", ")} (${lagging.length}); harmful: ${harmfulStates.join(", ")}`;
      return lagging.length === 0 && harmfulStates.every((s) => s.endsWith(" paused"));
    },
    { timeoutMs: 120_000, intervalMs: 500, diagnostics: () => `${behind}\n${worker.output().slice(-4000)}` },
  );
  const catchUpMs = Date.now() - caughtUpAt;
  await waitFor(
    "every webhook delivered",
    async () => {
      const { rows } = await world.runtime.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM webhook_deliveries WHERE status <> 'delivered'",
      );
      return rows[0]!.n === 0;
    },
    { timeoutMs: 60_000, intervalMs: 250, diagnostics: () => worker.output().slice(-4000) },
  );
  // Let a late second analysis, pause or delivery show up before counting.
  await sleep(3000);
  expect(worker.proc.isGone()).toBe(false);
  expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });

  const ingest = await auditIngest(world, healthy);
  const states = await Promise.all(healthy.map((e) => stateOf(world, e.id)));
  const audits = await Promise.all(harmful.map((e) => auditHarmful(world, e, receiver.deliveries)));
  const sum = (f: (a: HarmfulAudit) => number) => audits.reduce((n, a) => n + f(a), 0);
  // Any other audit event or webhook row written twice: the same action on the same subject at the same
  // look, or one dedupe key (unique in the table) more than once.
  const { rows: repeated } = await world.runtime.query<{ action: string; n: number }>(
    `SELECT action, count(*)::int AS n FROM audit_events
      WHERE at >= to_timestamp($1 / 1000.0) AND channel = 'system'
      GROUP BY action, subject_id, after->>'analysis_ts' HAVING count(*) > 1`,
    [started],
  );
  // The webhooks written since the launches: per type, how many rows, and how many event ids the receiver got.
  const { rows: webhookRows } = await world.runtime.query<{ event_type: string; id: string }>(
    "SELECT event_type, id FROM webhook_deliveries WHERE created_at >= to_timestamp($1 / 1000.0)",
    [faultsFrom],
  );
  const received = new Set(receiver.deliveries.map((d) => d.id));
  const webhooksByType: Record<string, number> = {};
  for (const w of webhookRows) webhooksByType[w.event_type] = (webhooksByType[w.event_type] ?? 0) + 1;
  const webhooksNotReceived = webhookRows.filter((w) => !received.has(w.id)).length;
  const failedJobs = worker
    .output()
    .split("\n")
    .filter((l) => l.includes('"job failed"')).length;
  const running = states.filter((s) => s === "running").length;

  report({
    id: "R10b",
    title: "pg_terminate_backend of the worker mid batched store",
    fault: `pg_terminate_backend of every worker connection, ${EXPERIMENTS} experiments stored ${STORE_SIZE} per transaction`,
    faults: FAULTS,
    lost:
      ingest.lostPoints +
      ingest.missingAnalyses +
      sum((a) => a.lostPoints + a.missingAnalyses) +
      sum((a) => (a.paused === 0 ? 1 : 0) + (a.eventIds === 0 ? 1 : 0)) +
      webhooksNotReceived,
    duplicated:
      ingest.duplicatePoints +
      ingest.duplicateAnalyses +
      sum((a) => a.duplicatePoints + a.duplicateAnalyses) +
      sum((a) => Math.max(0, a.paused - 1) + Math.max(0, a.gates - 1) + Math.max(0, a.webhookRows - 1)) +
      repeated.length,
    figures: {
      experiments: EXPERIMENTS,
      "harmful experiments": HARMFUL,
      "source snapshots": ticker.ticks(),
      "backends terminated": terminated,
      "terminations inside a transaction": inTransaction,
      "terminations inside a store statement": inStore,
      "job attempts failed": failedJobs,
      "source points (healthy)": ingest.sourcePoints,
      "stored points (healthy)": ingest.storedPoints,
      analyses: ingest.analyses + sum((a) => a.analyses),
      "experiment.paused rows": sum((a) => a.paused),
      "paused while the faults went on": pausedInFaults,
      "webhook rows since the launches": webhookRows.length,
      "webhook deliveries received": receiver.deliveries.length,
      "faults ms": faultsMs,
      "faults over → caught up ms": catchUpMs,
    },
    ms: Date.now() - started,
  });
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(ingest.storedPoints).toBe(ingest.sourcePoints);
  expect(running).toBe(healthy.length);
  for (const a of audits) {
    expect(a).toMatchObject({
      paused: 1,
      gates: 1,
      webhookRows: 1,
      delivered: 1,
      eventIds: 1,
      duplicatePoints: 0,
      lostPoints: 0,
      duplicateAnalyses: 0,
      missingAnalyses: 0,
      lastIsPause: true,
    });
  }
  expect(repeated).toEqual([]);
  // The pauses' webhooks (the experiment's and its analysis review's) and nothing else: healthy experiments
  // decided nothing; each delivered.
  expect(webhooksByType).toEqual({ "experiment.paused": HARMFUL, "gate.opened": HARMFUL });
  expect(webhooksNotReceived).toBe(0);
  // The faults must have landed inside transactions, and cost jobs, or the scenario proves nothing.
  expect(inTransaction).toBeGreaterThan(0);
  expect(failedJobs).toBeGreaterThan(0);
});
