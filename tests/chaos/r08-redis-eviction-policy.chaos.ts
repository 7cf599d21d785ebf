/**
 * R8: Redis runs with the wrong eviction policy.
 *
 * A private Redis is switched to `maxmemory-policy allkeys-lru` (the policy of
 * a cache, under which Redis may evict queued jobs) before a real worker and a
 * real API start on it. Pass: both log an error (pino level 50, not a warning)
 * at start naming the policy; both `/healthz` answer 200 (liveness: a restart
 * cannot fix a configuration) with `status: "degraded"` and
 * `checks.redis_eviction_policy` `{ status: "unhealthy", value: "allkeys-lru",
 * fix }`; every other cache policy set while they run is reported the same
 * way at once. Set back to `noeviction` at run time, both report `ok` again
 * without a restart.
 */

import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { startApiProcess, startPrivateRedis, startWorkerProcess, stopProcess } from "../support/processes";
import { type Cleanups, createWorld, runCleanups } from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

interface Healthz {
  status: string;
  checks?: { redis_eviction_policy?: { status: string; value: string | null; fix?: string } };
}

const POLICIES = ["allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl", "allkeys-random"];
/** Starts of a worker and an API on a misconfigured Redis (each start checks the error log). */
const STARTS = scaled(3, 1);

/** The pino lines of a process's output at `level` or above that mention `text`. */
function logLines(output: string, minLevel: number, text: string): { level: number; msg: string }[] {
  return output
    .split("\n")
    .flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as { level?: number; msg?: string };
        return typeof parsed.level === "number" ? [{ level: parsed.level, msg: String(parsed.msg ?? "") }] : [];
      } catch {
        return [];
      }
    })
    .filter((l) => l.level >= minLevel && l.msg.includes(text));
}

async function healthz(url: string): Promise<{ status: number; body: Healthz; ms: number }> {
  const t0 = Date.now();
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Healthz, ms: Date.now() - t0 };
}

it(`R8: a wrong Redis maxmemory-policy is an error at start and 'degraded' in /healthz (${STARTS} starts × ${POLICIES.length} policies)`, async () => {
  const started = Date.now();
  const redis = await startPrivateRedis(cleanups, { persistence: false });
  const world = await createWorld(cleanups, { redisUrl: redis.url });
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  admin.on("error", () => {});
  cleanups.push(async () => admin.disconnect());

  let faults = 0;
  let checks = 0;
  let detected = 0;
  let errorLogs = 0;
  let cleared = 0;
  const healthMs: number[] = [];
  const failures: string[] = [];
  for (let round = 0; round < STARTS; round += 1) {
    const atStart = POLICIES[round % POLICIES.length]!;
    await admin.config("SET", "maxmemory-policy", atStart);
    faults += 1;
    const [worker, api] = await Promise.all([
      startWorkerProcess(world, cleanups).then(async (w) => {
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
    const targets = [
      { name: "worker", url: `http://127.0.0.1:${worker.port}/healthz`, output: worker.output },
      { name: "api", url: `${api.base}/healthz`, output: api.output },
    ];
    for (const target of targets) {
      // pino's error level is 50; the line is written before the service is up.
      const errors = logLines(target.output(), 50, "maxmemory-policy");
      if (errors.some((l) => l.msg.includes(atStart) && l.msg.includes("noeviction"))) errorLogs += 1;
      else failures.push(`${target.name} logged no error about ${atStart} at start:\n${target.output().slice(-2000)}`);
    }
    // Every cache policy, set while the services run: /healthz sees each at once.
    for (const policy of [atStart, ...POLICIES.filter((p) => p !== atStart)]) {
      if (policy !== atStart) {
        await admin.config("SET", "maxmemory-policy", policy);
        faults += 1;
      }
      for (const target of targets) {
        const { status, body, ms } = await healthz(target.url);
        healthMs.push(ms);
        checks += 1;
        const check = body.checks?.redis_eviction_policy;
        if (
          status === 200 &&
          body.status === "degraded" &&
          check?.status === "unhealthy" &&
          check.value === policy &&
          (check.fix ?? "").includes("noeviction")
        ) {
          detected += 1;
        } else failures.push(`${target.name} /healthz with ${policy}: ${status} ${JSON.stringify(body)}`);
      }
    }
    // Fixed at run time: /healthz says ok again, no restart needed.
    await admin.config("SET", "maxmemory-policy", "noeviction");
    for (const target of targets) {
      const { status, body } = await healthz(target.url);
      if (status === 200 && body.status === "ok" && body.checks?.redis_eviction_policy?.status === "ok") cleared += 1;
      else failures.push(`${target.name} /healthz after noeviction: ${status} ${JSON.stringify(body)}`);
    }
    const [workerExit, apiExit] = await Promise.all([stopProcess(worker.proc), stopProcess(api.proc)]);
    expect(workerExit.code).toBe(0);
    expect(apiExit.code).toBe(0);
  }

  report({
    id: "R8",
    title: "Wrong Redis eviction policy",
    fault: "CONFIG SET maxmemory-policy <cache policy>",
    faults,
    lost: checks - detected,
    duplicated: 0,
    figures: {
      "service starts on a wrong policy": STARTS * 2,
      "error logs at start": errorLogs,
      "healthz checks": checks,
      "healthz degraded with the value and fix": detected,
      "healthz ok after noeviction": cleared,
      "healthz max ms": Math.max(...healthMs),
    },
    ms: Date.now() - started,
  });
  expect(failures).toEqual([]);
  expect(errorLogs).toBe(STARTS * 2);
  expect(detected).toBe(checks);
  expect(checks).toBe(STARTS * 2 * POLICIES.length);
  expect(cleared).toBe(STARTS * 2);
});
