/**
 * The API's view of polling and analysis: an experiment's latest analysis and
 * statistical plan, its analyses, the gate context the worker writes, and
 * "poll now" (a request in Postgres for the worker's outbox sweep, whatever the
 * state of Redis).
 */
import { randomBytes } from "node:crypto";
import type { SignalConnector } from "@outcome-runtime/connectors";
import {
  analyseExperiment,
  applyOutcome,
  connectorProvider,
  decideGate,
  pendingPollRequests,
  pollExperiment,
  pollRequestDone,
  proposeExperiment,
  requestPoll,
  SIGNALS_QUEUE,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { outcomeVariant } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, createTestApi, type TestApi } from "./test-app";

let api: TestApi;
const prefix = `test-api-${randomBytes(4).toString("hex")}`;
const DAY = 86_400_000;

/** Three daily snapshots: the treatment converts at 60 % against 68 % (abandonment should decrease: a win). */
const fake: SignalConnector = {
  type: "fake",
  describe: () => "fake",
  fetchArmAggregates: async (window) =>
    [3, 2, 1].flatMap((back, i) => {
      const units = 10_000 * (i + 1);
      const ts = new Date(Date.now() - back * DAY);
      return window.arms.map((arm) => {
        const rate = arm === "control" ? 0.68 : 0.6;
        const sum = Math.round(units * rate);
        return { arm, units, sum, sum_sq: sum, ts };
      });
    }),
  fetchOutcomeSeries: async () => [],
  close: async () => {},
};

let running = "";
let proposedOnly = "";

beforeAll(async () => {
  api = await createTestApi();
  const deps = { db: api.t.db };
  const admin = api.seed.admin;
  await applyOutcome(deps, admin, { source: outcomeVariant("api-signals") });
  await transitionOutcome(deps, admin, "api-signals", "activate", null);
  const first = await proposeExperiment(deps, admin, "api-signals", {
    title: "One-page checkout",
    statement: "If the checkout fits on one page, fewer shoppers abandon it, because there is less to do.",
  });
  await proposeExperiment(deps, admin, "api-signals", {
    title: "Express pay first",
    statement: "If express payment comes first, fewer shoppers abandon the checkout, because paying is faster.",
  });
  await decideGate(deps, admin, first.gate.id, { decision: "approve" });
  running = first.experiment.key;
  await transitionExperiment(deps, admin, running, { action: "claim", claimedBy: "agent-1" });
  const built = await transitionExperiment(deps, admin, running, { action: "report_built", changedPaths: [] });
  await decideGate(deps, admin, built.openedGates[0]!.id, { decision: "approve" });
  const later = await proposeExperiment(deps, admin, "api-signals", {
    title: "Trust badges",
    statement: "If trust badges show at payment, fewer shoppers abandon the checkout, because they feel safer.",
  });
  proposedOnly = later.experiment.key;
});

afterAll(async () => {
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  await api.close();
});

describe("experiments with signals", () => {
  it("shows the launch time and an empty poll status before the first poll", async () => {
    const res = await api.app.inject({ method: "GET", url: `/v1/experiments/${running}`, headers: api.auth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.latestAnalysis).toBeNull();
    expect(body.experiment).toMatchObject({
      state: "running",
      statsPlan: null,
      polling: { lastPolledAt: null, failures: 0, error: null },
    });
    expect(Date.parse(body.experiment.launchedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("serves the analyses, the plan and the gate the worker opened", async () => {
    const connectors = connectorProvider({
      db: api.t.db,
      access: sourceAccessFromEnv({
        OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL: "postgres://analytics.invalid/app",
      }),
      create: () => fake,
    });
    const id = (await api.app.inject({ method: "GET", url: `/v1/experiments/${running}`, headers: api.auth })).json()
      .experiment.id as string;
    await pollExperiment({ db: api.t.db, connectors }, id);
    const decided = await analyseExperiment({ db: api.t.db }, id);
    expect(decided.decision).toMatchObject({ action: "analyse", reason: "win" });

    const list = await api.app.inject({ method: "GET", url: `/v1/experiments/${running}/analyses`, headers: api.auth });
    expect(list.statusCode).toBe(200);
    const items = list.json().items;
    // Day −3 is within min_duration (1d); day −2 shows the win, and analysis stops there.
    expect(items).toHaveLength(2);
    expect(items[0].decision).toMatchObject({ action: "continue", reason: "warming_up" });
    expect(items.map((a: { ts: string }) => a.ts)).toEqual([...items.map((a: { ts: string }) => a.ts)].sort());
    const last = items.at(-1);
    expect(last.effect).toBeCloseTo(-0.08, 10);
    expect(last.ci[0]).toBeLessThan(last.effect);
    expect(last.ci[1]).toBeLessThan(0);
    expect(last.pValue).toBeLessThan(0.05);
    expect(last.decision).toMatchObject({ action: "analyse", reason: "win" });
    expect(last.details.tau2).toBeGreaterThan(0);
    expect(last.arms.control).toMatchObject({ units: 20_000, sum: 13_600 });

    const detail = (
      await api.app.inject({ method: "GET", url: `/v1/experiments/${running}`, headers: api.auth })
    ).json();
    expect(detail.experiment.state).toBe("analysing");
    expect(detail.experiment.statsPlan).toMatchObject({ alpha: 0.05, power: 0.8 });
    expect(detail.experiment.statsPlan.tau2Source).toMatch(/planned sample/);
    expect(detail.experiment.polling.lastPolledAt).not.toBeNull();
    expect(detail.latestAnalysis.ts).toBe(last.ts);
    const gate = detail.gates.find((g: { kind: string }) => g.kind === "analysis_review");
    expect(gate.context).toMatchObject({ action: "analyse", reason: "win" });
    const gateView = await api.app.inject({ method: "GET", url: `/v1/gates/${gate.id}`, headers: api.auth });
    expect(gateView.json().gate.context.reason).toBe("win");
    await connectors.close();
  });
});

describe("an outcome's polling plan", () => {
  it("shows the requested and the effective poll interval", async () => {
    const res = await api.app.inject({ method: "GET", url: "/v1/outcomes/api-signals", headers: api.auth });
    expect(res.statusCode).toBe(200);
    // outcome.example.yaml polls every 15m through Postgres: nothing to stretch.
    expect(res.json().polling).toEqual({ requestedSeconds: 900, effectiveSeconds: 900, note: null });
  });
});

describe("poll now", () => {
  it("stores a request for the worker's sweep and answers the job id it will run as", async () => {
    // A fresh running experiment (the first one is analysing now).
    const admin = api.seed.admin;
    const deps = { db: api.t.db };
    const gates = await api.app.inject({ method: "GET", url: "/v1/gates?status=pending", headers: api.auth });
    const portfolio = gates.json().items.find((g: { kind: string }) => g.kind === "portfolio_review");
    await decideGate(deps, admin, portfolio.id, { decision: "approve" });
    await transitionExperiment(deps, admin, proposedOnly, { action: "claim", claimedBy: "agent-1" });
    const built = await transitionExperiment(deps, admin, proposedOnly, { action: "report_built", changedPaths: [] });
    await decideGate(deps, admin, built.openedGates[0]!.id, { decision: "approve" });

    const res = await api.app.inject({
      method: "POST",
      url: `/v1/experiments/${proposedOnly}/poll`,
      headers: api.auth,
    });
    expect(res.statusCode).toBe(202);
    const { jobId } = res.json();
    expect(jobId).toMatch(/^poll-now-[0-9a-f-]{36}-\d+$/);
    const waiting = await pendingPollRequests(deps);
    expect(waiting.map((r) => r.jobId)).toEqual([jobId]);
    // Nothing is on the queue yet: the worker's sweep puts it there.
    expect(await api.redis.exists(`${prefix}:${SIGNALS_QUEUE}:${jobId}`)).toBe(0);
    for (const r of waiting) await pollRequestDone(deps, r);
  });

  it("takes clicks in the same second as one request", async () => {
    const at = new Date("2026-12-10T09:00:00.250Z");
    const deps = { db: api.t.db, now: () => at };
    const first = await requestPoll(deps, api.seed.admin, proposedOnly);
    at.setTime(at.getTime() + 500);
    const second = await requestPoll(deps, api.seed.admin, proposedOnly);
    expect(second.jobId).toBe(first.jobId);
    expect(first.jobId).toBe(`poll-now-${first.experiment.id}-${Date.parse("2026-12-10T09:00:00Z") / 1000}`);
    const waiting = await pendingPollRequests(deps);
    expect(waiting.map((r) => r.jobId)).toEqual([first.jobId]);
    for (const r of waiting) await pollRequestDone(deps, r);
  });

  it("refuses an experiment that is not running", async () => {
    const res = await api.app.inject({ method: "POST", url: `/v1/experiments/${running}/poll`, headers: api.auth });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe("illegal_transition");
  });

  it("takes the request while Redis is down: it waits in Postgres until a worker sweeps it", async () => {
    const deadRedis = new Redis("redis://127.0.0.1:1", {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    deadRedis.on("error", () => {});
    const app = await buildTestApp(api.t.db, deadRedis, { queuePrefix: prefix });
    try {
      const started = Date.now();
      const res = await app.inject({ method: "POST", url: `/v1/experiments/${proposedOnly}/poll`, headers: api.auth });
      expect(res.statusCode).toBe(202);
      expect(Date.now() - started).toBeLessThan(2000);
      const waiting = await pendingPollRequests({ db: api.t.db });
      expect(waiting.map((r) => r.jobId)).toEqual([res.json().jobId]);
      for (const r of waiting) await pollRequestDone({ db: api.t.db }, r);
    } finally {
      await app.close();
      deadRedis.disconnect();
    }
  });
});
