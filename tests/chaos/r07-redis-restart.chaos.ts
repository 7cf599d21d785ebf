/**
 * R7: Redis stops and comes back, many times, with jobs in flight.
 *
 * A private Redis (AOF, `appendfsync everysec`, as docker-compose.yml runs it)
 * serves a real worker process and a real API process; three experiments poll
 * every second while the source keeps gaining snapshots. Each fault stops Redis
 * (alternately SIGKILL, which may lose the last second of the AOF, and a clean
 * SHUTDOWN), keeps it down `DOWN_MS`, and starts it again.
 *
 * While Redis is down: `POST /v1/experiments/:id/poll` (a request stored in
 * Postgres for the worker's outbox sweep) still answers 202 with its job id,
 * fast (< 1 s), never 500 nor a hang; the API's `/readyz` reports redis down; a
 * request that needs only Postgres (`GET /v1/experiments/:id`) still answers
 * 200 (the rate limiter skips on a Redis error). After each restart the worker
 * completes a job again within 30 s (`/readyz` `lastCompletedJobAt`), and the
 * poll request is answered again. At the end every poll asked for has run
 * (no request is left in Postgres), every source row is ingested exactly once
 * and every snapshot analysed once (`auditIngest`).
 */
import { pendingPollRequests } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startApiProcess, startPrivateRedis, startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  launchExperiments,
  runCleanups,
  startSourceTicker,
  stateOf,
} from "../support/world";
import { expectWithinLoadBound, medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const RESTARTS = scaled(20, 2);
const DOWN_MS = scaled(10_000, 4000);
const RECOVERY_BOUND_MS = 30_000;
const FAST_ANSWER_BOUND_MS = 1000;

interface Probe {
  readonly status: number;
  readonly ms: number;
  readonly contentType: string;
  readonly retryAfter: string | null;
  readonly body: string;
}

async function probe(url: string, init: RequestInit = {}): Promise<Probe> {
  const t0 = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const body = await response.text();
    return {
      status: response.status,
      ms: Date.now() - t0,
      contentType: response.headers.get("content-type") ?? "",
      retryAfter: response.headers.get("retry-after"),
      body,
    };
  } catch (error) {
    // A hang (or a reset connection) is recorded as status 0.
    return { status: 0, ms: Date.now() - t0, contentType: "", retryAfter: null, body: String(error) };
  }
}

it(`R7: ${RESTARTS} Redis restarts (${DOWN_MS / 1000} s down each) with jobs in flight lose nothing`, async () => {
  const started = Date.now();
  const redis = await startPrivateRedis(cleanups, { persistence: true });
  const world = await createWorld(cleanups, { redisUrl: redis.url });
  await activeOutcome(world, "chaos-redis", 1_000_000_000, { pollInterval: "1s" });
  const keys = ["redis-a", "redis-b", "redis-c"];
  const launched = await launchExperiments(world, "chaos-redis", keys);
  const ticker = startSourceTicker(world, keys, 250, cleanups);

  const [worker, api] = await Promise.all([
    startWorkerProcess(world, cleanups, { WORKER_CONCURRENCY: "4" }).then(async (w) => {
      await w.ready;
      return w;
    }),
    startApiProcess(
      {
        DATABASE_URL: world.t.url,
        REDIS_URL: redis.url,
        OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
        QUEUE_PREFIX: world.prefix,
      },
      cleanups,
    ),
  ]);
  const auth = { authorization: `Bearer ${world.seed.adminKey}` };
  const target = launched[0]!;
  const pollNow = () => probe(`${api.base}/v1/experiments/${target.id}/poll`, { method: "POST", headers: auth });
  const workerReadyz = async () => {
    const response = await fetch(`http://127.0.0.1:${worker.port}/readyz`).catch(() => null);
    return response === null ? null : ((await response.json()) as { lastCompletedJobAt: string | null });
  };
  // Jobs complete before the first fault.
  await waitFor("the worker to complete a job", async () => (await workerReadyz())?.lastCompletedJobAt ?? undefined, {
    timeoutMs: 20_000,
    diagnostics: worker.output,
  });
  expect((await pollNow()).status).toBe(202);
  const setupMs = Date.now() - started;

  const recoveries: number[] = [];
  const answerMs: number[] = [];
  const failures: string[] = [];
  let downProbes = 0;
  let accepted = 0;
  const askedWhileDown = new Set<string>();
  let readyzDown = 0;
  let readsOk = 0;
  let pollsAfter = 0;
  for (let i = 0; i < RESTARTS; i += 1) {
    // Let the worker hold jobs when Redis goes: a random moment in its polling.
    await sleep(300 + Math.floor(Math.random() * 1500));
    await redis.stop(i % 2 === 0 ? "crash" : "shutdown");
    const downAt = Date.now();
    // Probe while Redis is down: the "poll now" route, readiness, and a Postgres-only read.
    while (Date.now() - downAt < DOWN_MS - 1500) {
      const poll = await pollNow();
      downProbes += 1;
      answerMs.push(poll.ms);
      const jobId = (() => {
        try {
          return (JSON.parse(poll.body) as { jobId?: string }).jobId ?? null;
        } catch {
          return null;
        }
      })();
      if (poll.status === 202 && jobId !== null) {
        accepted += 1;
        askedWhileDown.add(jobId);
      } else if (failures.length < 10) {
        failures.push(
          `restart ${i}: poll while Redis down → ${poll.status} in ${poll.ms} ms, retry-after ${poll.retryAfter}, ${poll.contentType}: ${poll.body.slice(0, 300)}`,
        );
      }
      const ready = await probe(`${api.base}/readyz`);
      if (ready.status === 503 && JSON.parse(ready.body).checks?.redis === "down") readyzDown += 1;
      else if (failures.length < 10)
        failures.push(`restart ${i}: API /readyz while Redis down → ${ready.status} ${ready.body}`);
      const read = await probe(`${api.base}/v1/experiments/${target.id}`, { headers: auth });
      if (read.status === 200) readsOk += 1;
      else if (failures.length < 10)
        failures.push(`restart ${i}: GET experiment while Redis down → ${read.status} ${read.body.slice(0, 300)}`);
      await sleep(500);
    }
    await sleep(Math.max(0, DOWN_MS - (Date.now() - downAt)));
    await redis.start();
    const backAt = Date.now();
    // The worker takes and completes jobs again.
    const ms = await waitFor(
      `the worker to complete a job after restart ${i}`,
      async () => {
        const last = (await workerReadyz())?.lastCompletedJobAt;
        return last !== null && last !== undefined && Date.parse(last) > backAt ? Date.parse(last) - backAt : undefined;
      },
      { timeoutMs: RECOVERY_BOUND_MS + 30_000, intervalMs: 100, diagnostics: worker.output },
    );
    recoveries.push(ms);
    // The API answers a poll request again.
    const after = await waitFor(
      `POST poll to succeed after restart ${i}`,
      async () => ((await pollNow()).status === 202 ? true : undefined),
      { timeoutMs: 15_000, intervalMs: 200, diagnostics: api.output },
    ).catch(() => false);
    if (after) pollsAfter += 1;
    else failures.push(`restart ${i}: POST poll did not succeed again within 15 s`);
  }

  await ticker.stop();
  const catchUpFrom = Date.now();
  await waitFor("every experiment to catch up with the source", () => caughtUp(world, launched), {
    timeoutMs: 120_000,
    intervalMs: 500,
    diagnostics: worker.output,
  });
  const catchUpMs = Date.now() - catchUpFrom;
  // Every poll asked for ran once Redis was back: the sweep forgets a request once its job has run.
  const polledAll = await waitFor(
    "every poll asked for to have run",
    async () => ((await pendingPollRequests(world.deps)).length === 0 ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 500, diagnostics: worker.output },
  ).catch(() => false);
  const [workerExit, apiExit] = await Promise.all([stopProcess(worker.proc), stopProcess(api.proc)]);
  const ingest = await auditIngest(world, launched);
  for (const e of launched) expect(await stateOf(world, e.id)).toBe("running");
  const recovery = medianMax(recoveries);
  const fast = medianMax(answerMs);
  report({
    id: "R7",
    title: "Redis restarts with jobs in flight",
    fault: `Redis stopped ${DOWN_MS / 1000} s (SIGKILL / SHUTDOWN) and restarted`,
    faults: RESTARTS,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "worker next job p50 ms": recovery.median,
      "worker next job max ms": recovery.max,
      "bound ms": RECOVERY_BOUND_MS,
      "POST poll while down": downProbes,
      "202 while down": accepted,
      "polls asked while down": askedWhileDown.size,
      "202 p50 ms": fast.median,
      "202 max ms": fast.max,
      "API /readyz redis down": readyzDown,
      "GET experiment 200 while down": readsOk,
      "POST poll 202 after restart": pollsAfter,
      "source points": ingest.sourcePoints,
      "stored points": ingest.storedPoints,
      analyses: ingest.analyses,
      "setup ms": setupMs,
      "catch-up ms": catchUpMs,
    },
    ms: Date.now() - started,
  });
  expect(failures).toEqual([]);
  expect(accepted).toBe(downProbes);
  expectWithinLoadBound(fast.max, FAST_ANSWER_BOUND_MS);
  expect(polledAll).toBe(true);
  expect(readyzDown).toBe(downProbes);
  expect(readsOk).toBe(downProbes);
  expect(pollsAfter).toBe(RESTARTS);
  expect(recovery.max).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(ingest.storedPoints).toBe(ingest.sourcePoints);
  expect(workerExit.code).toBe(0);
  expect(apiExit.code).toBe(0);
});
