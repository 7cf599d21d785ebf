/**
 * C1: hostile connectors.
 *
 * One worker process polls five experiments at once. One is healthy (the
 * `postgres` connector over the source table, every second); four are
 * hostile:
 * - `mp-hang`: a Mixpanel-shaped server that accepts the request and never
 *   answers (the worker's POLL_TIMEOUT_MS must fire);
 * - `mp-html`, `mp-shape`, `mp-nan`, `mp-negative`: a Mixpanel-shaped server
 *   answering 200 with garbage: HTML instead of JSON, `values` of the wrong
 *   shape, "NaN" counts, negative counts;
 * - `mp-huge`: a Mixpanel-shaped server answering /segmentation with 10⁶
 *   segments (about 35 MB) instead of the `limit` it was asked for;
 * - `pg-huge`: a `postgres` connector query returning 10⁶ rows (a table of
 *   10⁶ rows, streamed by the server).
 * Mixpanel's hourly budget stretches each Mixpanel poll interval to minutes,
 * so each Mixpanel experiment is polled a few times (first poll and retries).
 * The fake server follows the Query API shapes of
 * packages/connectors/src/mixpanel (service-account Basic auth, `project_id`,
 * `{ data: { series, values } }`).
 *
 * Pass: each hostile experiment shows `polling.error` with the expected code
 * and a short message naming the problem (timeout, not JSON, not a count,
 * too large / max_rows); the worker's resident memory stays within
 * `MEMORY_BOUND_MB` of its baseline; and the healthy experiment keeps being
 * polled at its normal rate (its gaps between polls during the hostile phase
 * no worse than `GAP_BOUND_MS`), its points all stored exactly once.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { experiments as experimentRows } from "@outcome-runtime/db";
import type { Experiment } from "@outcome-runtime/runtime";
import { applyOutcome, transitionOutcome } from "@outcome-runtime/runtime";
import { freePort, sleep, waitFor } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  auditIngest,
  type Cleanups,
  caughtUp,
  createWorld,
  launchExperiments,
  outcomeYaml,
  runCleanups,
  startSourceTicker,
  testSourceAccess,
  type World,
} from "../support/world";
import { expectWithinLoadBound, medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const BASELINE_MS = scaled(10_000, 4000);
const HOSTILE_MS = scaled(90_000, 12_000);
const POLL_TIMEOUT_MS = 2000;
/** The healthy experiment polls every second; under hostile neighbours no gap may exceed this. */
const GAP_BOUND_MS = 4000;
const MEMORY_BOUND_MB = 150;
const HUGE_ROWS = 1_000_000;

const OUTCOME_RUNTIME_SOURCE_MP_USER = "outcome-runtime.c1.mp-service-account";
const OUTCOME_RUNTIME_SOURCE_MP_SECRET = "c1-secret-Zq9kLr0tW7";
/** One Mixpanel project per hostile outcome: the hourly query budget is per project. */
const PROJECT_IDS = ["2741931", "2741932", "2741933", "2741934", "2741935", "2741936"];

function mixpanelOutcome(slug: string, apiUrl: string, projectId: string): string {
  return `version: 1
id: ${slug}
name: Hostile ${slug}
owner: owner@acme.example
signal:
  metric: signup_rate
  kind: proportion
  unit: user
  poll_interval: 1s
  connector:
    type: mixpanel
    project_id: ${projectId}
    username_env: OUTCOME_RUNTIME_SOURCE_MP_USER
    secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET
    event: signup
    api_url: ${apiUrl}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  kill:
    max_harm: 5%
    relative: true
experiment_defaults:
  min_sample_per_arm: 1000000000
  min_duration: 1s
  max_duration: 30d
  expected_effect: 10%
  decision_rules:
    consecutive_error_limit: -1
  arms:
    - name: control
      weight: 50%
    - name: treatment
      weight: 50%
`;
}

/** The Query API's shape of a good /segmentation answer. */
function segmentation(from: string, counts: Record<string, number>): string {
  return JSON.stringify({
    data: {
      series: [from],
      values: Object.fromEntries(Object.entries(counts).map(([variant, n]) => [variant, { [from]: n }])),
    },
    legend_size: Object.keys(counts).length,
  });
}

const GARBAGE = ["html", "shape", "nan", "negative"] as const;

/**
 * The segment name a request asks for an arm under: `<experiment> | <arm>` when it segments by experiment and
 * arm together (the batched form: `on` joins the two properties, `where` lists the keys), the arm alone otherwise.
 */
function segmentOf(url: URL, arm: string): string {
  if (!(url.searchParams.get("on") ?? "").includes('" | "')) return arm;
  const key = /in \[("(?:[^"\\]|\\.)*")/.exec(url.searchParams.get("where") ?? "")?.[1];
  return key === undefined ? arm : `${JSON.parse(key) as string} | ${arm}`;
}

/** A Mixpanel-shaped server whose behaviour is chosen by the first path segment. */
async function startHostileMixpanel(cleanups: Cleanups) {
  const served = { hang: 0, garbage: new Map<string, number>(), huge: 0, hugeBytes: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const [, mode] = url.pathname.split("/");
    const expected = `Basic ${Buffer.from(`${OUTCOME_RUNTIME_SOURCE_MP_USER}:${OUTCOME_RUNTIME_SOURCE_MP_SECRET}`).toString("base64")}`;
    if (req.headers.authorization !== expected || !PROJECT_IDS.includes(url.searchParams.get("project_id") ?? "")) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "Unauthorized", status: "error" }));
      return;
    }
    const from = url.searchParams.get("from_date") ?? "2026-01-01";
    if (mode === "hang") {
      served.hang += 1;
      return; // never answers; the socket stays open until the client gives up
    }
    if (mode?.startsWith("garbage-")) {
      const kind = mode.slice("garbage-".length) as (typeof GARBAGE)[number];
      served.garbage.set(kind, (served.garbage.get(kind) ?? 0) + 1);
      res.writeHead(200, { "content-type": kind === "html" ? "text/html" : "application/json" });
      if (kind === "html") res.end("<html><body><h1>502 Bad Gateway</h1></body></html>");
      else if (kind === "shape") res.end(JSON.stringify({ data: { series: [from], values: [12, 15] } }));
      else if (kind === "nan") {
        res.end(
          `{"data":{"series":["${from}"],"values":{${JSON.stringify(segmentOf(url, "control"))}:{"${from}":"NaN"}}}}`,
        );
      } else {
        res.end(segmentation(from, { [segmentOf(url, "control")]: -40, [segmentOf(url, "treatment")]: -41 }));
      }
      return;
    }
    if (mode === "huge") {
      served.huge += 1;
      // 10⁶ segments, streamed in chunks (the server does not hold them in memory).
      res.writeHead(200, { "content-type": "application/json" });
      let i = 0;
      const head = `{"data":{"series":["${from}"],"values":{`;
      res.write(head);
      served.hugeBytes += head.length;
      const pump = () => {
        while (i < HUGE_ROWS) {
          const parts: string[] = [];
          for (let n = 0; n < 10_000 && i < HUGE_ROWS; n += 1, i += 1) {
            parts.push(`${i === 0 ? "" : ","}"variant-${i}":{"${from}":${i % 97}}`);
          }
          const chunk = parts.join("");
          served.hugeBytes += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end('}},"legend_size":1000000}');
      };
      res.on("error", () => {});
      pump();
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not found", status: "error" }));
  });
  server.on("clientError", () => {});
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, served };
}

/** Resident set size of a process, MB (Linux /proc). */
function rssMb(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? "0");
  return Math.round(kb / 1024);
}

async function polling(world: World, id: string) {
  return (await experimentRows.findExperimentById(world.t.db, id))!.polling;
}

async function applyActive(world: World, slug: string, source: string): Promise<void> {
  await applyOutcome(world.deps, world.seed.admin, { source });
  await transitionOutcome(world.deps, world.seed.admin, slug, "activate", null);
}

it("C1: hostile connectors (hang, garbage, 10⁶ rows) time out, show a clear error, bound memory and leave a healthy experiment alone", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const mixpanel = await startHostileMixpanel(cleanups);
  // The hostile server stands in for Mixpanel: the operator allows its URLs (SOURCE_API_URLS), on the API
  // side (apply) and the worker's.
  const modes = ["hang", ...GARBAGE.map((kind) => `garbage-${kind}`), "huge"];
  const SOURCE_API_URLS = modes.map((mode) => `mixpanel=${mixpanel.base}/${mode}/api/query`).join(",");
  const operator: World = {
    ...world,
    deps: {
      ...world.deps,
      sources: testSourceAccess(world.sourceUrl, {
        SOURCE_API_URLS,
        OUTCOME_RUNTIME_SOURCE_MP_USER,
        OUTCOME_RUNTIME_SOURCE_MP_SECRET,
      }),
    },
  };

  await activeOutcome(world, "c1-healthy", 1_000_000_000, { pollInterval: "1s" });
  const [healthy] = await launchExperiments(world, "c1-healthy", ["healthy"]);
  const ticker = startSourceTicker(world, ["healthy"], 250, cleanups);
  // The user's table behind the 10⁶-row query.
  await world.source.query(
    `CREATE TABLE huge_rows AS SELECT CASE WHEN g % 2 = 0 THEN 'control' ELSE 'treatment' END AS arm,
       100::float8 AS units, 10::float8 AS sum, 10::float8 AS sum_sq FROM generate_series(1, ${HUGE_ROWS}) AS g`,
  );

  const worker = await startWorkerProcess(world, cleanups, {
    POLL_TIMEOUT_MS: String(POLL_TIMEOUT_MS),
    WORKER_CONCURRENCY: "8",
    OUTCOME_RUNTIME_SOURCE_MP_USER,
    OUTCOME_RUNTIME_SOURCE_MP_SECRET,
    SOURCE_API_URLS,
    LOG_LEVEL: "error",
  });
  await worker.ready;
  const pid = worker.proc.child.pid!;

  // The healthy experiment's polls: each new lastPolledAt is one successful poll.
  const pollTimes: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    let last = 0;
    while (sampling) {
      const at = (await polling(world, healthy!.id)).lastPolledAt?.getTime() ?? 0;
      if (at !== 0 && at !== last) {
        pollTimes.push(at);
        last = at;
      }
      await sleep(100);
    }
  })();
  const rss: number[] = [];
  const memory = setInterval(() => {
    try {
      rss.push(rssMb(pid));
    } catch {
      // the process is gone; the assertions below say so
    }
  }, 100);
  cleanups.push(async () => clearInterval(memory));

  await sleep(BASELINE_MS);
  const hostileFrom = Date.now();
  const baselineRss = Math.max(...rss);

  // The hostile neighbours: launched while the healthy one polls.
  const mp = (name: string, mode: string, i: number) =>
    applyActive(
      operator,
      `c1-${name}`,
      mixpanelOutcome(`c1-${name}`, `${mixpanel.base}/${mode}/api/query`, PROJECT_IDS[i]!),
    );
  await mp("mp-hang", "hang", 0);
  for (const [i, kind] of GARBAGE.entries()) await mp(`mp-${kind}`, `garbage-${kind}`, i + 1);
  await mp("mp-huge", "huge", 5);
  const hugeQuery =
    "SELECT arm, units, sum, sum_sq, ts FROM huge_rows, (SELECT now() - interval '1 hour' AS ts) AS t " +
    "WHERE :experiment <> '' AND ts > :from AND ts <= :to";
  await applyActive(
    world,
    "c1-pg-huge",
    outcomeYaml("c1-pg-huge", 1_000_000_000, { pollInterval: "1s", query: hugeQuery }).replace(
      "  min_duration: 1s\n",
      "  min_duration: 1s\n  decision_rules:\n    consecutive_error_limit: -1\n",
    ),
  );
  const launch = async (slug: string, key: string) => (await launchExperiments(world, slug, [key]))[0]!;
  const hostile: Record<string, Experiment> = {
    hang: await launch("c1-mp-hang", "mp-hang"),
    ...Object.fromEntries(
      await Promise.all(GARBAGE.map(async (kind) => [kind, await launch(`c1-mp-${kind}`, `mp-${kind}`)] as const)),
    ),
    mpHuge: await launch("c1-mp-huge", "mp-huge"),
    pgHuge: await launch("c1-pg-huge", "pg-huge"),
  };
  const launchedAt = Date.now();

  // Every error each hostile experiment showed, sampled while the hostile phase lasts.
  const seen = new Map<string, Map<string, { code: string; message: string }>>(
    Object.keys(hostile).map((k) => [k, new Map()]),
  );
  const firstErrorMs = new Map<string, number>();
  while (Date.now() - hostileFrom < HOSTILE_MS) {
    for (const [name, e] of Object.entries(hostile)) {
      const error = (await polling(world, e.id)).error;
      if (error !== null) {
        seen.get(name)!.set(`${error.code}:${error.message}`, { code: error.code, message: error.message });
        if (!firstErrorMs.has(name)) firstErrorMs.set(name, Date.now() - launchedAt);
      }
    }
    await sleep(150);
  }
  const hostileUntil = Date.now();
  sampling = false;
  await sampler;
  clearInterval(memory);
  const peakRss = rssMb(pid, "VmHWM");
  const workerAlive = !worker.proc.isGone();

  await ticker.stop();
  await waitFor("the healthy experiment to catch up with the source", () => caughtUp(world, [healthy!]), {
    timeoutMs: 60_000,
    intervalMs: 250,
    diagnostics: worker.output,
  });
  const exit = await stopProcess(worker.proc);
  const ingest = await auditIngest(world, [healthy!]);

  // The healthy experiment's rate: gaps between its polls, before and during the hostile phase.
  const gaps = (from: number, to: number) =>
    pollTimes
      .map((t, i) => (i === 0 ? null : { at: t, gap: t - pollTimes[i - 1]! }))
      .filter((g): g is { at: number; gap: number } => g !== null && g.at > from && g.at <= to)
      .map((g) => g.gap);
  const baseline = medianMax(gaps(started, hostileFrom));
  const during = medianMax(gaps(hostileFrom, hostileUntil));
  const pollsDuring = gaps(hostileFrom, hostileUntil).length;

  const all = (name: string) => [...seen.get(name)!.values()];
  const problems: string[] = [];
  const expectErrors = (
    name: string,
    code: string,
    pattern: RegExp,
    alternative?: { code: string; pattern: RegExp },
  ) => {
    const errors = all(name);
    if (errors.length === 0) problems.push(`${name}: no polling.error shown`);
    for (const e of errors) {
      const fits =
        (e.code === code && pattern.test(e.message)) ||
        (alternative !== undefined && e.code === alternative.code && alternative.pattern.test(e.message));
      if (!fits || e.message.length > 1000) {
        problems.push(`${name}: ${e.code} (${e.message.length} chars): ${e.message.slice(0, 300)}`);
      }
    }
  };
  expectErrors("hang", "timeout", /no answer within the poll timeout/);
  expectErrors("html", "bad_response", /not JSON/);
  expectErrors("shape", "bad_response", /no data\.values object/);
  expectErrors("nan", "bad_response", /"NaN", not a count/);
  expectErrors("negative", "bad_response", /-4[01], not a count/);
  // The 10⁶-row answer is cut at 8 MiB; when the worker's poll timeout comes first (a slow stream), it says so.
  // The cap must have been seen.
  expectErrors("mpHuge", "bad_response", /larger than 8 MiB/, { code: "timeout", pattern: /poll timeout/ });
  const mpCapSeen = all("mpHuge").some((e) => e.code === "bad_response");
  if (!mpCapSeen) problems.push("mpHuge: the size cap (bad_response, larger than 8 MiB) was never reported");
  // A query that returns 10⁶ rows is stopped at the row cap (max_rows); a poll that the worker's timeout cut
  // first says so. The cap must have been seen.
  expectErrors("pgHuge", "too_many_rows", /max_rows/, { code: "timeout", pattern: /poll timeout/ });
  const capSeen = all("pgHuge").some((e) => e.code === "too_many_rows");
  if (!capSeen) problems.push("pgHuge: the row cap (too_many_rows) was never reported");
  const garbageKinds = GARBAGE.filter((kind) => all(kind).length > 0 && mixpanel.served.garbage.has(kind)).length;

  report({
    id: "C1",
    title: "Hostile connectors",
    fault: "hang, garbage, 10⁶ rows (Mixpanel); 10⁶ rows (postgres)",
    faults:
      mixpanel.served.hang + [...mixpanel.served.garbage.values()].reduce((a, b) => a + b, 0) + mixpanel.served.huge,
    lost: ingest.lostPoints + ingest.missingAnalyses,
    duplicated: ingest.duplicatePoints + ingest.duplicateAnalyses,
    figures: {
      "hung requests": mixpanel.served.hang,
      "garbage answers": [...mixpanel.served.garbage.entries()].map(([k, v]) => `${k}×${v}`).join(" "),
      "garbage kinds named": `${garbageKinds}/${GARBAGE.length}`,
      "10⁶-row answers": mixpanel.served.huge,
      "10⁶-row answer MB": Math.round(mixpanel.served.hugeBytes / Math.max(1, mixpanel.served.huge) / 1e6),
      "first error ms (hang, html, shape, nan, negative, mp-huge, pg-huge)": Object.keys(hostile)
        .map((k) => firstErrorMs.get(k) ?? "-")
        .join(", "),
      errors: Object.keys(hostile)
        .map((k) => `${k}: ${[...new Set(all(k).map((e) => e.code))].join("/")}`)
        .join("; "),
      "worker RSS baseline MB": baselineRss,
      "worker RSS peak MB": peakRss,
      "healthy gap p50/max ms before": `${baseline.median}/${baseline.max}`,
      "healthy gap p50/max ms during": `${during.median}/${during.max}`,
      "healthy polls during": pollsDuring,
      "stored points": ingest.storedPoints,
    },
    ms: Date.now() - started,
  });
  expect(problems).toEqual([]);
  expect(garbageKinds).toBe(GARBAGE.length);
  expect(capSeen).toBe(true);
  expect(workerAlive).toBe(true);
  expect(peakRss - baselineRss).toBeLessThanOrEqual(MEMORY_BOUND_MB);
  expectWithinLoadBound(during.max, GAP_BOUND_MS);
  expectWithinLoadBound(pollsDuring, Math.floor(HOSTILE_MS / 1000 / 2), "at_least");
  expect(ingest).toMatchObject({ lostPoints: 0, duplicatePoints: 0, duplicateAnalyses: 0, missingAnalyses: 0 });
  expect(exit.code).toBe(0);
});
