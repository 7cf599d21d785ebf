/**
 * R19: clock and calendar. The worker runs once with `TZ=America/New_York`
 * and once with `TZ=Europe/London`; its poll schedulers are BullMQ `every`
 * schedulers (milliseconds, not cron), so each poll interval holds one poll
 * job whatever the zone. The source holds snapshots written with other zone
 * offsets, around the 2026 daylight-saving changes of both zones (e.g.
 * `2026-03-29T01:30:00+02:00`, both 01:30 of London's repeated hour); they
 * are stored as the same instants (epoch ms). Then the source returns a point
 * in the future (one hour ahead): the poll is refused with an error on the
 * experiment naming the timestamp and the fix, and nothing of it is stored;
 * once the source is fixed the next poll clears the error.
 *
 * No fake clock here: `RuntimeDeps.now` exists for in-process use cases, but
 * the worker process takes no clock from its environment, and BullMQ's
 * schedulers read Redis/Date time; the zone is what varies.
 */
import { experiments as experimentRows } from "@outcome-runtime/db";
import { experimentSchedulerId, SIGNALS_QUEUE } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the scenario counts the poll jobs of each window
import { Queue, QueueEvents } from "bullmq";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  type Cleanups,
  createWorld,
  launchExperiments,
  runCleanups,
  storedPoints,
  type World,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const INTERVAL_MS = 2000;
const RUN_MS = scaled(20_000, 6000);
const ZONES = ["America/New_York", "Europe/London"] as const;

/**
 * A connector query that does not bound ts by :to itself (it names :to only to pass the as-of parameter), so
 * the connector's own check of the window end is what meets a future point.
 */
const UNBOUNDED_QUERY =
  "SELECT arm, units::float8 AS units, sum, sum_sq, ts FROM source_points WHERE experiment_key = :experiment AND ts > :from AND :to::timestamptz IS NOT NULL ORDER BY ts";

/** Snapshots as a source in other zones writes them: around the DST changes of 2026 (US 8 March, EU 29 March and 25 October). */
const ZONED = [
  "2026-03-08T01:59:59-05:00", // New York, the last second of EST
  "2026-03-08T03:00:00-04:00", // New York, the first second of EDT (one second later)
  "2026-03-29T00:59:59+00:00", // London, the last second of GMT
  "2026-03-29T01:30:00+02:00", // Paris/Berlin, CEST (= 23:30 UTC the day before)
  "2026-03-29T02:30:00+01:00", // London, BST
  "2026-10-25T01:30:00+01:00", // London, the first 01:30 (BST)
  "2026-10-25T01:30:00+00:00", // London, the second 01:30 (GMT), an hour later
  "2026-10-25T12:00:00+14:00", // Kiribati
  "2026-10-25T12:00:00-09:30", // Marquesas
];

async function insertZoned(world: World, key: string, stamps: readonly string[]): Promise<void> {
  let units = 0;
  // Cumulative totals in instant order, whatever the written offsets.
  const ordered = [...stamps].sort((a, b) => new Date(a).getTime() - new Date(b).getTime());
  for (const ts of ordered) {
    units += 100;
    for (const arm of ["control", "treatment"]) {
      await world.source.query(
        "INSERT INTO source_points (experiment_key, arm, ts, units, sum, sum_sq) VALUES ($1, $2, $3::text::timestamptz, $4, $5, $5)",
        [key, arm, ts, units, units / 5],
      );
    }
  }
}

it("R19: polls once per window in any TZ, stores zoned instants as UTC, and refuses future points", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-clock", 1_000_000_000, {
    pollInterval: `${INTERVAL_MS / 1000}s`,
    query: UNBOUNDED_QUERY,
  });
  const [experiment] = await launchExperiments(world, "chaos-clock", ["clock"]);
  const id = experiment!.id;
  await insertZoned(world, "clock", ZONED);
  const expectedInstants = [...new Set(ZONED.map((s) => new Date(s).getTime()))].sort((a, b) => a - b);

  const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
  const events = new QueueEvents(SIGNALS_QUEUE, { connection: world.redis.duplicate(), prefix: world.prefix });
  cleanups.push(async () => {
    await events.close();
    await queue.close();
  });
  await events.waitUntilReady();
  // Scheduler jobs are `repeat:<scheduler id>:<ms>`: the ms is the slot the job was scheduled for.
  const prefix = `repeat:${experimentSchedulerId(id)}:`;
  const slots: number[] = [];
  events.on("completed", ({ jobId }) => {
    if (jobId.startsWith(prefix)) slots.push(Number(jobId.slice(prefix.length)));
  });

  const perZone: Record<string, { jobs: number; windows: number; maxPerWindow: number; stepsMs: string }> = {};
  for (const zone of ZONES) {
    const from = slots.length;
    const worker = await startWorkerProcess(world, cleanups, { TZ: zone });
    await workerBooted(worker);
    const zoneCheck = await fetch(`http://127.0.0.1:${worker.port}/healthz`);
    expect(zoneCheck.status).toBe(200);
    await sleep(RUN_MS);
    expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });
    const mine = slots.slice(from).sort((a, b) => a - b);
    const byWindow = new Map<number, number>();
    for (const ms of mine)
      byWindow.set(Math.floor(ms / INTERVAL_MS), (byWindow.get(Math.floor(ms / INTERVAL_MS)) ?? 0) + 1);
    const steps = new Set(mine.slice(1).map((ms, i) => ms - mine[i]!));
    perZone[zone] = {
      jobs: mine.length,
      windows: byWindow.size,
      maxPerWindow: Math.max(0, ...byWindow.values()),
      stepsMs: [...steps].sort((a, b) => a - b).join("/"),
    };
  }
  const storedRaw = await storedPoints(world, id);
  const stored = storedRaw.map((p) => p.slice(p.indexOf("@") + 1));
  const storedInstants = [...new Set(stored.map((s) => new Date(s).getTime()))].sort((a, b) => a - b);

  // A point an hour in the future: refused, with the timestamp and the fix, and not stored.
  const future = new Date(Date.now() + 3600_000);
  const alsoNew = new Date(Date.now() - 1000);
  await world.source.query(
    "INSERT INTO source_points (experiment_key, arm, ts, units, sum, sum_sq) VALUES ('clock', 'control', $1, 5000, 1000, 1000), ('clock', 'treatment', $1, 5000, 1000, 1000), ('clock', 'control', $2, 4000, 800, 800), ('clock', 'treatment', $2, 4000, 800, 800)",
    [future.toISOString(), alsoNew.toISOString()],
  );
  const worker = await startWorkerProcess(world, cleanups, { TZ: ZONES[0] });
  await workerBooted(worker);
  const error = await waitFor(
    "the poll error on the experiment",
    async () => (await experimentRows.findExperimentById(world.t.db, id))?.polling.error ?? undefined,
    { timeoutMs: 30_000, intervalMs: 100, diagnostics: worker.output },
  );
  await sleep(2 * INTERVAL_MS);
  const afterFuture = await storedPoints(world, id);
  const futureStored = afterFuture.filter((p) => p.endsWith(future.toISOString())).length;
  // The fix: the source stops returning the future row; the next poll stores the rest and clears the error.
  await world.source.query("DELETE FROM source_points WHERE ts > now()");
  const fixedAt = Date.now();
  const healedMs = await waitFor(
    "the error to clear after the source is fixed",
    async () => {
      const row = await experimentRows.findExperimentById(world.t.db, id);
      return row?.polling.error === null &&
        (await storedPoints(world, id)).some((p) => p.endsWith(alsoNew.toISOString()))
        ? Date.now()
        : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, diagnostics: worker.output },
  );
  expect(await stopProcess(worker.proc, 30_000)).toMatchObject({ code: 0 });

  const lost = expectedInstants.filter((ms) => !storedInstants.includes(ms)).length;
  const wrong = storedInstants.filter((ms) => !expectedInstants.includes(ms)).length;
  report({
    id: "R19",
    title: "Clock and calendar",
    fault: "worker TZ New York / London; zoned source timestamps across DST; a point 1 h in the future",
    faults: ZONES.length + ZONED.length + 1,
    lost,
    duplicated: storedRaw.length - new Set(storedRaw).size + wrong + futureStored,
    figures: {
      ...Object.fromEntries(
        ZONES.flatMap((z) => [
          [`${z} poll jobs`, perZone[z]!.jobs],
          [`${z} windows`, perZone[z]!.windows],
          [`${z} max jobs per window`, perZone[z]!.maxPerWindow],
          [`${z} steps ms`, perZone[z]!.stepsMs],
        ]),
      ),
      "zoned instants": expectedInstants.length,
      "stored instants": storedInstants.length,
      "future points stored": futureStored,
      "poll error": `${error.code}: ${error.message}`.slice(0, 160),
      "source fixed → error cleared ms": healedMs - fixedAt,
    },
    ms: Date.now() - started,
  });
  for (const zone of ZONES) {
    const z = perZone[zone]!;
    expect(z.maxPerWindow).toBe(1);
    // At least every other window polled while the worker ran (boot and a loaded machine may skip a slot).
    expect(z.windows).toBeGreaterThanOrEqual(Math.floor(RUN_MS / INTERVAL_MS / 2));
    // Slots are whole intervals apart: ms arithmetic, no zone offset or DST hour.
    for (const step of z.stepsMs.split("/").filter((s) => s !== "")) expect(Number(step) % INTERVAL_MS).toBe(0);
  }
  expect(storedInstants).toEqual(expectedInstants);
  expect(stored.length).toBe(2 * ZONED.length);
  expect(futureStored).toBe(0);
  expect(afterFuture.length).toBe(2 * ZONED.length);
  expect(error.message).toContain(future.toISOString());
  expect(error.message).toMatch(/:to/);
});
