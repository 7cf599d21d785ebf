/**
 * Batched polling through the `mixpanel` connector: 100 running experiments of
 * one outcome, read from the fake Query API of
 * `@outcome-runtime/testing/fake-mixpanel` (github.com/mixpanel/docs,
 * openapi/query.openapi.yaml, GET /segmentation), which counts the requests.
 * One round reads them all with one pair of requests and stores each
 * experiment's unique exposed users and converters per arm.
 */
import { signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  connectorProvider,
  getExperiment,
  getOutcome,
  pollExperimentBatches,
  sourcesStatus,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { type FakeMixpanel, startFakeMixpanel } from "@outcome-runtime/testing/fake-mixpanel";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Cleanups, createWorld, launchExperiments, runCleanups, testSourceAccess } from "./support/world";

const cleanups: Cleanups = [];
afterEach(async () => {
  vi.useRealTimers();
  await runCleanups(cleanups.splice(0));
});

const AUTH = { username: "outcome-runtime.worker.mp-service-account", secret: "w0rker-s3cret", projectId: "2741935" };

function outcomeFile(slug: string): string {
  return `version: 1
id: ${slug}
name: Batched Mixpanel ${slug}
owner: owner@acme.example
signal:
  metric: conversion_rate
  kind: proportion
  unit: user
  poll_interval: 1m
  connector:
    type: mixpanel
    project_id: ${AUTH.projectId}
    event: Order completed
    username_env: OUTCOME_RUNTIME_SOURCE_MP_USERNAME
    secret_env: OUTCOME_RUNTIME_SOURCE_MP_SECRET
    api_url: API_URL
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
experiment_defaults:
  min_sample_per_arm: 100000
  min_duration: 1d
  max_duration: 30d
  expected_effect: 10%
  arms:
    - name: control
      weight: 0.5
    - name: treatment
      weight: 0.5
`;
}

/** Experiment `i` has 20 + i exposed users per arm (each exposed twice) and i % 9 (control) or i % 11 converters. */
function track(fake: FakeMixpanel, key: string, i: number, date: string): { control: number[]; treatment: number[] } {
  const expected = { control: [20 + i, i % 9], treatment: [20 + i, i % 11] };
  for (const arm of ["control", "treatment"] as const) {
    const [units = 0, conversions = 0] = expected[arm];
    for (let u = 0; u < units; u++) {
      const distinctId = `${key}/${arm}/${u}`;
      const properties = { "Experiment name": key, "Variant name": arm };
      fake.events.push({ event: "$experiment_started", distinctId, date, properties });
      fake.events.push({ event: "$experiment_started", distinctId, date, properties });
      if (u < conversions) fake.events.push({ event: "Order completed", distinctId, date, properties });
    }
  }
  return expected;
}

describe("batched polling through mixpanel", () => {
  it("reads 100 experiments with one pair of /segmentation requests and stores every experiment's points", async () => {
    const world = await createWorld(cleanups);
    const fake = await startFakeMixpanel(AUTH);
    cleanups.push(() => fake.close());
    const access = testSourceAccess(world.sourceUrl, {
      OUTCOME_RUNTIME_SOURCE_MP_USERNAME: AUTH.username,
      OUTCOME_RUNTIME_SOURCE_MP_SECRET: AUTH.secret,
      SOURCE_API_URLS: `mixpanel=${fake.baseUrl}`,
    });
    const connectors = connectorProvider({ db: world.t.db, access });
    cleanups.push(() => connectors.close());
    const deps = { ...world.deps, sources: access };

    const applied = await applyOutcome(deps, world.seed.admin, {
      source: outcomeFile("mp-batched").replace("API_URL", fake.baseUrl),
    });
    await transitionOutcome(deps, world.seed.admin, "mp-batched", "activate", null);
    const keys = Array.from({ length: 100 }, (_, i) => `mp-${String(i).padStart(3, "0")}`);
    const running = await launchExperiments(world, "mp-batched", keys);
    expect(running).toHaveLength(100);
    const today = new Date().toISOString().slice(0, 10);
    const expected = new Map(keys.map((k, i) => [k, track(fake, k, i, today)]));

    const round = await pollExperimentBatches({ db: world.t.db, connectors }, applied.outcome.id);
    expect(round).toMatchObject({ experiments: 100, requests: 1, failed: [] });
    expect(round.polled).toHaveLength(100);
    // One batched read: units and conversions, each one /segmentation request for all 100 experiments.
    expect(fake.requests.map((r) => [r.path, r.params.get("event")]).sort()).toEqual([
      ["/segmentation", "$experiment_started"],
      ["/segmentation", "Order completed"],
    ]);

    for (const e of running) {
      const series = (await signals.listSeriesOfExperiment(world.t.db, e.id)).find((s) => s.role === "primary");
      const points = series === undefined ? [] : await signals.listPoints(world.t.db, series.id, null);
      const want = expected.get(e.key);
      expect(points.map((p) => [p.arm, p.units, p.sum]).sort(), e.key).toEqual([
        ["control", want?.control[0], want?.control[1]],
        ["treatment", want?.treatment[0], want?.treatment[1]],
      ]);
    }
  }, 120_000);

  it("slows the polls of a project after Mixpanel's 429, sends nothing meanwhile, and catches up with nothing lost", async () => {
    const world = await createWorld(cleanups);
    const fake = await startFakeMixpanel({ ...AUTH, projectId: "2741936" });
    cleanups.push(() => fake.close());
    const access = testSourceAccess(world.sourceUrl, {
      OUTCOME_RUNTIME_SOURCE_MP_USERNAME: AUTH.username,
      OUTCOME_RUNTIME_SOURCE_MP_SECRET: AUTH.secret,
      SOURCE_API_URLS: `mixpanel=${fake.baseUrl}`,
    });
    const connectors = connectorProvider({ db: world.t.db, access });
    cleanups.push(() => connectors.close());
    const deps = { ...world.deps, sources: access };
    const file = outcomeFile("mp-throttled").replace("API_URL", fake.baseUrl).replace(AUTH.projectId, "2741936");
    const applied = await applyOutcome(deps, world.seed.admin, { source: file });
    await transitionOutcome(deps, world.seed.admin, "mp-throttled", "activate", null);
    const keys = ["mp-t-0", "mp-t-1", "mp-t-2"];
    const running = await launchExperiments(world, "mp-throttled", keys);
    const today = new Date().toISOString().slice(0, 10);
    const expected = new Map(keys.map((k, i) => [k, track(fake, k, i, today)]));
    // The runtime's clock and the connector's pause after a 429 both read Date: the test moves it.
    const start = Date.now();
    vi.useFakeTimers({ now: start, toFake: ["Date"] });

    // Mixpanel answers its documented rate-limit error (openapi/query.openapi.yaml: 429, "Rate limit exceeded").
    fake.override = () => ({ status: 429, body: { error: "Rate limit exceeded", status: "error" } });
    const limited = await pollExperimentBatches({ db: world.t.db, connectors }, applied.outcome.id);
    expect(limited.failed).toEqual([]);
    expect(limited.throttled).toEqual([]);
    expect(limited.polled).toEqual([]);
    const sent = fake.requests.length;
    expect(sent).toBeGreaterThan(0);
    const one = await getExperiment(deps, world.seed.admin, running[0]!.id);
    // Not a failed poll: the experiment is not counted towards consecutive_error_limit.
    expect(one.experiment.polling).toMatchObject({ failures: 0, error: null });
    expect(one.sources).toMatchObject([{ role: "primary", connector: "mixpanel", status: "throttled" }]);
    const until = one.sources[0]!.throttledUntil!;
    expect(until.getTime()).toBeGreaterThan(start);
    expect(one.sources[0]!.throttleNote).toMatch(/^mixpanel \/segmentation: .*429/);
    const status = await sourcesStatus(world.t.db, new Date());
    expect(status.throttled).toMatchObject([{ connector: "mixpanel", series: 3, until: until.toISOString() }]);
    const outcome = await getOutcome(deps, world.seed.admin, "mp-throttled");
    expect(outcome.sources).toMatchObject([{ role: "primary", status: "throttled", experiments: 3 }]);

    // Mixpanel answers again, but the throttle holds: no request is sent, the round says what it held back.
    fake.override = null;
    const held = await pollExperimentBatches({ db: world.t.db, connectors }, applied.outcome.id);
    expect(held.throttled).toEqual([{ metric: "conversion_rate", role: "primary", experiments: 3 }]);
    expect(held.requests).toBe(0);
    expect(fake.requests.length).toBe(sent);

    // Past the throttle: one batched read again, every experiment's points stored.
    vi.setSystemTime(until.getTime() + 1000);
    const caught = await pollExperimentBatches({ db: world.t.db, connectors }, applied.outcome.id);
    expect(caught).toMatchObject({ experiments: 3, failed: [], throttled: [] });
    expect(caught.polled).toHaveLength(3);
    for (const e of running) {
      const series = (await signals.listSeriesOfExperiment(world.t.db, e.id)).find((s) => s.role === "primary");
      const points = series === undefined ? [] : await signals.listPoints(world.t.db, series.id, null);
      const want = expected.get(e.key);
      expect(points.map((p) => [p.arm, p.units, p.sum]).sort(), e.key).toEqual([
        ["control", want?.control[0], want?.control[1]],
        ["treatment", want?.treatment[0], want?.treatment[1]],
      ]);
    }
    const healed = await getExperiment(deps, world.seed.admin, running[0]!.id);
    expect(healed.sources).toMatchObject([{ status: "ok", throttledUntil: null }]);
    expect((await sourcesStatus(world.t.db, new Date())).throttled).toEqual([]);
  }, 120_000);
});
