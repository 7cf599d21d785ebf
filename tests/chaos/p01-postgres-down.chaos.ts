/**
 * P1: Postgres stops under load.
 *
 * The runtime's database lives on a Postgres cluster of the test's own; the
 * user's analytics table (the source) stays on the shared server. A real API
 * process and a real worker run on the private cluster; two experiments poll
 * every second while the source gains snapshots, and four clients call the API
 * without pause: claim/release transitions of approved experiments, reads, and
 * the decision of a pending portfolio gate. Postgres is then stopped
 * (`pg_ctl stop -m fast`: every connection is cut, even mid-transaction) for
 * `OUTAGE_MS`, and started again.
 *
 * Pass: every API answer is a success, a 409 of the domain, or 503 with
 * `Retry-After` as problem+json without a stack trace; never a 500 nor a hang.
 * `/readyz` goes red during the outage and green after it. The worker is not
 * restarted by the test: it must keep running (no exit) and its polling
 * resumes (new points stored after the restart). Every transition is whole:
 * each experiment's audit trail alternates claim/release and ends in its
 * state, and a gate is decided exactly when its `gate.decided` event exists.
 * Every source row is ingested exactly once in the end (`auditIngest`).
 */
import {
  audit,
  createDb,
  type Db,
  experiments as experimentRows,
  gates as gateRows,
  migrateToLatest,
} from "@outcome-runtime/db";
import { proposeExperiment } from "@outcome-runtime/runtime";
import { seedWorkspace, sleep, type TestDatabase, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the test creates the runtime's database on its own cluster
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { startApiProcess, startPrivatePostgres, startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  launchExperiments,
  runCleanups,
  startSourceTicker,
  storedPoints,
  type World,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const OUTAGES = scaled(3, 1);
const OUTAGE_MS = scaled(30_000, 8000);
const CHURN = ["churn-a", "churn-b", "churn-c"];

interface Answer {
  readonly at: number;
  readonly what: string;
  readonly status: number;
  readonly ms: number;
  readonly retryAfter: string | null;
  readonly contentType: string;
  readonly body: string;
}

/** A database on the private cluster, as the runtime's own. */
async function runtimeDatabase(url: string, cleanups: Cleanups): Promise<TestDatabase> {
  const admin = new pg.Client({ connectionString: url.replace(/\/[^/]+$/, "/postgres") });
  await admin.connect();
  await admin.query("CREATE DATABASE outcome_runtime");
  await admin.end();
  const db: Db = createDb({ url, max: 6 });
  cleanups.push(async () => db.destroy());
  await migrateToLatest(db);
  return { name: "outcome_runtime", url, db, drop: async () => {} };
}

it(`P1: Postgres stopped ${OUTAGES}× for ${OUTAGE_MS / 1000} s under load: 503s, no crash loop, no half transition`, async () => {
  const started = Date.now();
  const shared = await createWorld(cleanups);
  const cluster = await startPrivatePostgres(cleanups);
  const t = await runtimeDatabase(cluster.url("outcome_runtime"), cleanups);
  const world: World = {
    ...shared,
    t,
    seed: await seedWorkspace(t.db),
    deps: { db: t.db, sources: shared.deps.sources },
  };

  await activeOutcome(world, "chaos-pg", 1_000_000_000, { pollInterval: "1s" });
  // Proposed first, they join the portfolio gate launchExperiments approves: they stay `approved`.
  const churn = [];
  for (const key of CHURN) {
    churn.push(
      (
        await proposeExperiment(world.deps, world.seed.admin, "chaos-pg", {
          key,
          title: `Churn ${key}`,
          statement: `If we ship ${key}, more users convert, because the flow is shorter.`,
        })
      ).experiment,
    );
  }
  const keys = ["pg-a", "pg-b"];
  const launched = await launchExperiments(world, "chaos-pg", keys);
  const ticker = startSourceTicker(world, keys, 250, cleanups);

  const [worker, api] = await Promise.all([
    startWorkerProcess(world, cleanups).then(async (w) => {
      await w.ready;
      return w;
    }),
    startApiProcess(
      {
        DATABASE_URL: t.url,
        REDIS_URL: world.redisUrl,
        OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
        QUEUE_PREFIX: world.prefix,
      },
      cleanups,
    ),
  ]);
  const headers = { authorization: `Bearer ${world.seed.adminKey}`, "content-type": "application/json" };
  const answers: Answer[] = [];
  const call = async (what: string, path: string, init: RequestInit = {}): Promise<Answer> => {
    const t0 = Date.now();
    let answer: Answer;
    try {
      const response = await fetch(`${api.base}${path}`, {
        ...init,
        headers: { ...headers, ...(init.headers ?? {}) },
        signal: AbortSignal.timeout(20_000),
      });
      answer = {
        at: t0,
        what,
        status: response.status,
        ms: Date.now() - t0,
        retryAfter: response.headers.get("retry-after"),
        contentType: response.headers.get("content-type") ?? "",
        body: await response.text(),
      };
    } catch (error) {
      answer = { at: t0, what, status: 0, ms: Date.now() - t0, retryAfter: null, contentType: "", body: String(error) };
    }
    answers.push(answer);
    return answer;
  };

  // Clients: one per churn experiment toggling claim/release, one reading.
  let clientsRunning = true;
  const acked = new Map<string, number>(churn.map((e) => [e.id, 0]));
  const clients = [
    ...churn.map(async (experiment) => {
      let claimed = false;
      while (clientsRunning) {
        const body = claimed ? { action: "release" } : { action: "claim", claimedBy: "chaos-agent" };
        const answer = await call("transition", `/v1/experiments/${experiment.id}/transitions`, {
          method: "POST",
          body: JSON.stringify(body),
        });
        if (answer.status === 200) {
          claimed = !claimed;
          acked.set(experiment.id, acked.get(experiment.id)! + 1);
        } else if (answer.status === 409) {
          // A transition committed whose answer was lost: read where the experiment is.
          const read = await call("read", `/v1/experiments/${experiment.id}`);
          if (read.status === 200)
            claimed = (JSON.parse(read.body) as { experiment: { state: string } }).experiment.state === "building";
        }
        await sleep(answer.status === 503 ? 200 : 20);
      }
    }),
    (async () => {
      while (clientsRunning) {
        await call("list", "/v1/gates");
        await call("read", `/v1/experiments/${launched[0]!.id}`);
        await sleep(200);
      }
    })(),
  ];

  const readyz = async () =>
    (await fetch(`${api.base}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => null))?.status ?? 0;
  const outages: { red: boolean; greenMs: number; pointsAfter: boolean; workerAlive: boolean }[] = [];
  let gateDecisions = 0;
  const setupMs = Date.now() - started;
  for (let i = 0; i < OUTAGES; i += 1) {
    await sleep(1500);
    // A pending portfolio gate, decided by a client as the database goes away.
    const extra = await proposeExperiment(world.deps, world.seed.admin, "chaos-pg", {
      key: `late-${i}`,
      title: `Late ${i}`,
      statement: `If we ship late-${i}, more users convert, because the flow is shorter.`,
    });
    const deciding = (async () => {
      for (let n = 0; n < 400 && clientsRunning; n += 1) {
        const answer = await call("decide", `/v1/gates/${extra.gate.id}/decision`, {
          method: "POST",
          body: JSON.stringify({ decision: "reject", reason: "chaos" }),
        });
        if (answer.status === 200 || answer.status === 409) return;
        await sleep(200);
      }
    })();
    gateDecisions += 1;
    await sleep(Math.floor(Math.random() * 100));
    await cluster.stop();
    const downAt = Date.now();
    let red = false;
    while (Date.now() - downAt < OUTAGE_MS) {
      if ((await readyz()) === 503) red = true;
      await sleep(500);
    }
    await cluster.start();
    const upAt = Date.now();
    const greenMs = await waitFor(
      "the API's /readyz to turn green",
      async () => ((await readyz()) === 200 ? Date.now() - upAt : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        diagnostics: api.output,
      },
    );
    await deciding;
    // Polling resumes: new points stored after the restart, by the same worker process.
    const before = new Map(
      await Promise.all(launched.map(async (e) => [e.id, (await storedPoints(world, e.id)).length] as const)),
    );
    const pointsAfter = await waitFor(
      "points stored after the restart",
      async () => {
        for (const e of launched) if ((await storedPoints(world, e.id)).length <= before.get(e.id)!) return undefined;
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 250, diagnostics: worker.output },
    ).catch(() => false);
    outages.push({ red, greenMs, pointsAfter, workerAlive: !worker.proc.isGone() });
  }
  await sleep(1000);
  clientsRunning = false;
  await Promise.all(clients);
  await ticker.stop();
  const catchUpFrom = Date.now();
  await waitFor("every experiment to catch up with the source", () => caughtUp(world, launched), {
    timeoutMs: 120_000,
    intervalMs: 500,
    diagnostics: worker.output,
  });
  const catchUpMs = Date.now() - catchUpFrom;
  const workerAlive = !worker.proc.isGone();
  const [workerExit, apiExit] = await Promise.all([stopProcess(worker.proc), stopProcess(api.proc)]);

  // Answers: success, a domain 409, or 503 + Retry-After problem+json without a stack; nothing else.
  const bad = answers.filter((a) => {
    if (a.status >= 200 && a.status < 300) return false;
    if (a.status === 409 && a.contentType.startsWith("application/problem+json")) return false;
    return !(
      a.status === 503 &&
      a.retryAfter !== null &&
      a.contentType.startsWith("application/problem+json") &&
      !/\n\s+at |node_modules|Error: /.test(a.body)
    );
  });
  const unavailable = answers.filter((a) => a.status === 503);

  // Transitions whole: each churn experiment's claim/release events alternate and end in its state.
  const halfApplied: string[] = [];
  let transitionEvents = 0;
  for (const e of churn) {
    const events = (await audit.listAuditEvents(t.db, world.seed.workspaceId, { subjectId: e.id, limit: 1000 }))
      .filter((a) => a.action === "experiment.claimed" || a.action === "experiment.released")
      .reverse();
    transitionEvents += events.length;
    let state = "approved";
    for (const event of events) {
      const expected = state === "approved" ? "experiment.claimed" : "experiment.released";
      if (event.action !== expected) halfApplied.push(`${e.key}: ${event.action} while ${state}`);
      state = event.action === "experiment.claimed" ? "building" : "approved";
    }
    const now = (await experimentRows.findExperimentById(t.db, e.id))?.state;
    if (now !== state) halfApplied.push(`${e.key}: state ${now}, audit trail says ${state}`);
    // Every acknowledged transition is in the trail (a lost answer may add one unacknowledged).
    if (events.length < acked.get(e.id)!)
      halfApplied.push(`${e.key}: ${acked.get(e.id)} acked, ${events.length} events`);
  }
  // Gates: decided exactly when a gate.decided event exists (one of them).
  const gateEvents = await audit.listAuditEvents(t.db, world.seed.workspaceId, { action: "gate.decided", limit: 1000 });
  const gateIds = new Set([...gateEvents.map((g) => g.subjectId)]);
  const allGates = await audit.listAuditEvents(t.db, world.seed.workspaceId, { action: "gate.opened", limit: 1000 });
  for (const opened of allGates) {
    const gate = await gateRows.findGateById(t.db, opened.subjectId);
    const events = gateEvents.filter((g) => g.subjectId === opened.subjectId).length;
    if ((gate?.status !== "pending") !== events > 0 || events > 1) {
      halfApplied.push(`gate ${opened.subjectId}: status ${gate?.status}, ${events} gate.decided events`);
    }
  }

  const ingest = await auditIngest(world, launched);
  report({
    id: "P1",
    title: "Postgres down under load",
    fault: `pg_ctl stop -m fast for ${OUTAGE_MS / 1000} s`,
    faults: OUTAGES,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "API answers": answers.length,
      "503 + Retry-After": unavailable.length - bad.filter((a) => a.status === 503).length,
      "503 max ms": Math.max(0, ...unavailable.map((a) => a.ms)),
      "bad answers (500, hang, no Retry-After, stack)": bad.length,
      "readyz red during outage": outages.filter((o) => o.red).length,
      "readyz green after ms (max)": Math.max(...outages.map((o) => o.greenMs)),
      "polling resumed": outages.filter((o) => o.pointsAfter).length,
      worker: workerAlive ? "kept running (no restart)" : "exited",
      "transitions (audit)": transitionEvents,
      "transitions acked": [...acked.values()].reduce((a, b) => a + b, 0),
      "gates decided while Postgres stopped": gateDecisions,
      "gates checked (status ⇔ gate.decided)": allGates.length,
      "gates decided": gateIds.size,
      "half-applied": halfApplied.length,
      "source points": ingest.sourcePoints,
      "stored points": ingest.storedPoints,
      "setup ms": setupMs,
      "catch-up ms": catchUpMs,
    },
    ms: Date.now() - started,
  });
  expect(
    bad.slice(0, 5).map((a) => `${a.what} ${a.status} ${a.ms}ms ra=${a.retryAfter} ${a.body.slice(0, 300)}`),
  ).toEqual([]);
  expect(unavailable.length).toBeGreaterThan(0);
  expect(halfApplied).toEqual([]);
  for (const o of outages) expect(o).toMatchObject({ red: true, pointsAfter: true, workerAlive: true });
  expect(workerAlive).toBe(true);
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(workerExit.code).toBe(0);
  expect(apiExit.code).toBe(0);
});
