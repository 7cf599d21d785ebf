/**
 * The flag rollout outbox under a failing provider, on the LaunchDarkly
 * stand-in (`@outcome-runtime/testing/fake-launchdarkly`): the runtime's use
 * cases (`applyFlagRollout`, `checkFlagDrift`, the poll and the analysis) run
 * in this process against the test database, with a clock the test moves, so
 * each attempt, backoff and race is made exactly when the case needs it.
 *
 * - a provider down (503) during a kill: the pause is recorded at once, the
 *   rollback stays pending (attempts, backoff, last error, "rollback (pause)
 *   pending since …") and is applied once when the provider returns;
 * - a provider slower than `FLAG_TIMEOUT_MS`: `timeout`, retried, applied once;
 * - twenty writers at once: one write, one audit row;
 * - a flag edited by hand: drift audited once, the running test stopped for review;
 * - a newer version while an older one is written: the newest wins, each version audited at most once;
 * - 429 with `Retry-After`: the next attempt waits for it;
 * - the launch counts from the provider's confirmation; polls skip the experiment until then.
 */
import { audit, experiments as experimentRows, flagRollouts, gates } from "@outcome-runtime/db";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import {
  analyseExperiment,
  applyFlagRollout,
  applyOutcome,
  checkFlagDrift,
  connectorProvider,
  decideGate,
  type FlagApplyResult,
  type FlagDeps,
  flagAccessFromEnv,
  flagKeyOf,
  flagStatusOf,
  pollExperiment,
  proposeExperiment,
  type SignalDeps,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import {
  type FakeLaunchDarkly,
  type FakeLaunchDarklyOperation,
  startFakeLaunchDarkly,
} from "@outcome-runtime/testing/fake-launchdarkly";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Cleanups,
  createWorld,
  insertSource,
  outcomeYaml,
  runCleanups,
  stateOf,
  testSourceAccess,
  type World,
} from "./support/world";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups.splice(0)));

const TOKEN_ENV = "OUTCOME_RUNTIME_FLAGS_LD_TOKEN";
const PROJECT = "shop";
const ENVIRONMENT = "production";
const SLUG = "checkout-ld";
/** Every operation of LaunchDarkly's REST API the fake serves (the SDK's endpoint aside). */
const REST: readonly FakeLaunchDarklyOperation[] = [
  "getFeatureFlags",
  "getFeatureFlag",
  "postFeatureFlag",
  "patchFeatureFlag",
  "deleteFeatureFlag",
  "getApprovalsForFlag",
  "postApprovalRequestForFlag",
];
/** The width of LaunchDarkly's rate-limit window: every answer's `X-Ratelimit-Reset` is within it. */
const RATE_WINDOW_MS = 10_000;

interface Harness {
  readonly fake: FakeLaunchDarkly;
  readonly world: World;
  /** What the worker's jobs get: the database, the flags' settings, the token, and the test's clock. */
  readonly deps: FlagDeps;
  readonly signals: SignalDeps;
  /** Move the test's clock (the runtime's `now`) to just after `at` (never back). */
  advanceTo(at: Date): void;
  /** Move the test's clock by `ms`. */
  advanceBy(ms: number): void;
  flagKey(experimentKey: string): string;
}

/** A world whose outcome splits its experiments through the fake LaunchDarkly, and the runtime's deps for it. */
async function harness(options: { timeoutMs?: number } = {}): Promise<Harness> {
  const fake = await startFakeLaunchDarkly({ projectKey: PROJECT, environments: [ENVIRONMENT] });
  cleanups.push(() => fake.close());
  const world = await createWorld(cleanups);
  const yaml = `${outcomeYaml(SLUG, 100, { pollInterval: "1h" })}flags:
  provider: launchdarkly
  api_url: ${fake.url}
  project: ${PROJECT}
  environment: ${ENVIRONMENT}
  access_token_env: ${TOKEN_ENV}
`;
  await applyOutcome(world.deps, world.seed.admin, { source: yaml });
  await transitionOutcome(world.deps, world.seed.admin, SLUG, "activate", null);
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const flags = {
    ...flagAccessFromEnv({
      FLAG_API_URLS: `launchdarkly=${fake.url}`,
      FLAG_TIMEOUT_MS: String(options.timeoutMs ?? 3000),
    }),
    // The fake listens on loopback, which the outbound guard refuses unless the operator allows it.
    policy: parseOutboundPolicy("127.0.0.1"),
  };
  const deps: FlagDeps = {
    db: world.t.db,
    sources: testSourceAccess(world.sourceUrl, { [TOKEN_ENV]: fake.accessToken }),
    flags,
    now,
  };
  const connectors = connectorProvider({ db: world.t.db, access: world.deps.sources });
  cleanups.push(() => connectors.close());
  return {
    fake,
    world,
    deps,
    signals: { db: world.t.db, connectors },
    advanceTo(at) {
      offsetMs = Math.max(offsetMs, at.getTime() - Date.now() + 1);
    },
    advanceBy(ms) {
      offsetMs += ms;
    },
    flagKey: (experimentKey) =>
      flagKeyOf({ provider: "launchdarkly" } as Parameters<typeof flagKeyOf>[0], experimentKey),
  };
}

async function rolloutOf(h: Harness, id: string) {
  const rollout = await flagRollouts.findRollout(h.world.t.db, id);
  if (rollout === null) throw new Error(`experiment ${id} has no flag rollout`);
  return rollout;
}

/** Apply the experiment's due rollout as a worker would, expecting it applied. */
async function applied(
  h: Harness,
  id: string,
  owner = "worker-test",
): Promise<FlagApplyResult & { status: "applied" }> {
  const result = await applyFlagRollout(h.deps, id, owner);
  if (result.status !== "applied") throw new Error(`expected the rollout applied, got ${JSON.stringify(result)}`);
  return result;
}

/**
 * Propose, approve (the flag is created, serving control), build and approve the launch of `key`: running,
 * its launch rollout pending (applied too unless `applyLaunch` is false).
 */
async function runningExperiment(h: Harness, key: string, applyLaunch = true): Promise<string> {
  const { deps, seed } = h.world;
  const proposed = await proposeExperiment(deps, seed.admin, SLUG, {
    key,
    title: `Variant ${key}`,
    statement: `If we ship variant ${key}, more users convert, because the flow is shorter.`,
  });
  const id = proposed.experiment.id;
  await decideGate(deps, seed.admin, proposed.gate.id, { decision: "approve" });
  expect(await applied(h, id)).toMatchObject({ reason: "prepare", unchanged: false });
  await transitionExperiment(deps, seed.admin, id, { action: "claim", claimedBy: "test-agent" });
  const built = await transitionExperiment(deps, seed.admin, id, {
    action: "report_built",
    changedPaths: [],
    build: { summary: `variant ${key} behind the runtime's flag`, flagKey: h.flagKey(key) },
  });
  const launched = await decideGate(deps, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
  expect(launched.experiments[0]).toMatchObject({ state: "running", launchedAt: null });
  if (applyLaunch) expect(await applied(h, id)).toMatchObject({ reason: "launch" });
  return id;
}

/** The audit rows of an experiment's applied splits (`rollout_applied` and `rollback_applied`). */
async function appliedEvents(h: Harness, id: string) {
  const { db } = h.world.t;
  const ws = h.world.seed.workspaceId;
  const events = [
    ...(await audit.listAuditEvents(db, ws, { subjectId: id, action: "experiment.rollout_applied" })),
    ...(await audit.listAuditEvents(db, ws, { subjectId: id, action: "experiment.rollback_applied" })),
  ];
  return events.map((e) => ({
    action: e.action,
    ...(e.after as { reason: string; version: number; attempts: number; unchanged: boolean; applied_at: string }),
  }));
}

/**
 * What the server SDK is served for a flag (the fake's `/sdk/latest-all`, with the environment's SDK key):
 * the share of units each variation gets, as the SDK evaluates it (off: the off variation to everyone).
 */
async function sdkServes(h: Harness, flagKey: string): Promise<Record<string, number>> {
  const response = await fetch(`${h.fake.url}/sdk/latest-all`, {
    headers: { authorization: h.fake.sdkKey(ENVIRONMENT) },
  });
  expect(response.status).toBe(200);
  const data = (await response.json()) as {
    flags: Record<
      string,
      {
        on: boolean;
        offVariation?: number;
        variations: string[];
        rules: unknown[];
        targets: unknown[];
        fallthrough: { variation?: number; rollout?: { variations: { variation: number; weight: number }[] } };
      }
    >;
  };
  const flag = data.flags[flagKey];
  if (flag === undefined) throw new Error(`the SDK is not served ${flagKey}`);
  const shares = Object.fromEntries(flag.variations.map((v) => [v, 0]));
  if (!flag.on) {
    shares[flag.variations[flag.offVariation!]!] = 1;
    return shares;
  }
  expect(flag.rules).toEqual([]);
  expect(flag.targets).toEqual([]);
  if (flag.fallthrough.variation !== undefined) {
    shares[flag.variations[flag.fallthrough.variation]!] = 1;
    return shares;
  }
  for (const w of flag.fallthrough.rollout!.variations) {
    shares[flag.variations[w.variation]!] = shares[flag.variations[w.variation]!]! + w.weight / 100_000;
  }
  return shares;
}

function failEveryRoute(h: Harness, failure: Parameters<FakeLaunchDarkly["fail"]>[1]): void {
  for (const operation of REST) h.fake.fail(operation, failure);
}

/** A harmful snapshot for `key` (half the conversions in the treatment): the next analysis kills it. */
async function harmful(h: Harness, key: string): Promise<void> {
  const ts = new Date();
  await insertSource(h.world, [
    { key, arm: "control", ts, units: 5000, conversions: 1000 },
    { key, arm: "treatment", ts, units: 5000, conversions: 500 },
  ]);
}

describe("flag rollouts under a failing provider (fake LaunchDarkly)", () => {
  it("a. provider down (503) during a kill: paused at once, the rollback pending with backoff, applied once when it returns", async () => {
    const h = await harness();
    const key = "kill-down";
    const id = await runningExperiment(h, key);
    const flagKey = h.flagKey(key);
    const launchedAt = (await experimentRows.findExperimentById(h.world.t.db, id))!.launchedAt;
    expect(launchedAt).not.toBeNull();
    expect(await sdkServes(h, flagKey)).toEqual({ control: 0.5, treatment: 0.5 });

    // The provider goes down, and harmful data arrives: the poll and the analysis do not need it.
    failEveryRoute(h, { status: 503, body: { code: "service_unavailable", message: "down for maintenance" } });
    await harmful(h, key);
    expect(await pollExperiment(h.signals, id)).toMatchObject({ status: "polled", inserted: 2 });
    const analysis = await analyseExperiment(h.signals, id);
    expect(analysis.decision).toMatchObject({ action: "pause", reason: "kill" });
    // Recorded at once: the experiment is paused and audited, its rollback pending.
    expect(await stateOf(h.world, id)).toBe("paused");
    const pausedRows = await audit.listAuditEvents(h.world.t.db, h.world.seed.workspaceId, {
      subjectId: id,
      action: "experiment.paused",
    });
    expect(pausedRows).toHaveLength(1);
    let rollout = await rolloutOf(h, id);
    expect(rollout).toMatchObject({
      status: "pending",
      reason: "pause",
      version: 3,
      desired: { control: 1, treatment: 0 },
      attempts: 0,
      lastError: null,
    });
    const requestedAt = rollout.requestedAt.toISOString();
    expect(flagStatusOf(rollout)).toMatchObject({
      status: "pending",
      rollback: true,
      pendingSince: requestedAt,
      summary: `rollback (pause) pending since ${requestedAt}`,
    });

    // Six attempts while it is down: each counted, its error kept, the next one later each time.
    const writesBefore = h.fake.writes();
    const retries: number[] = [];
    for (let k = 1; k <= 6; k++) {
      h.advanceTo(rollout.nextAttemptAt);
      const result = await applyFlagRollout(h.deps, id, `worker-${k}`);
      expect(result).toMatchObject({ status: "failed", version: 3, code: "unavailable" });
      if (result.status !== "failed") throw new Error("unreachable");
      expect(result.message).toContain("503");
      retries.push(result.retryInMs);
      rollout = await rolloutOf(h, id);
      expect(rollout).toMatchObject({ status: "pending", version: 3, attempts: k, leaseUntil: null });
      expect(rollout.lastError).toMatchObject({ code: "unavailable" });
      expect(rollout.lastError!.message).toContain("503");
      expect(rollout.nextAttemptAt.getTime() - rollout.lastAttemptAt!.getTime()).toBe(result.retryInMs);
      const status = flagStatusOf(rollout);
      expect(status.pendingSince).toBe(requestedAt);
      expect(status.summary).toBe(`rollback (pause) pending since ${requestedAt}: unavailable, attempt ${k}`);
      expect(status.lastError).toMatchObject({ code: "unavailable" });
      // Not due again before its backoff is over: a second worker finds nothing to do.
      expect(await applyFlagRollout(h.deps, id, "worker-early")).toEqual({ status: "nothing_to_do" });
    }
    // 1 s doubling. LaunchDarkly's answers carry `X-Ratelimit-Reset` (the end of the current ten-second
    // window), which the provider reads as how long to wait: the first waits may reach that end.
    retries.forEach((ms, k) => {
      expect(ms).toBeGreaterThanOrEqual(1000 * 2 ** k);
      expect(ms).toBeLessThanOrEqual(Math.max(1000 * 2 ** k, RATE_WINDOW_MS));
    });
    expect(retries.slice(4)).toEqual([16_000, 32_000]);
    expect(retries[5]!).toBeGreaterThan(retries[0]!);
    // The reads failed: nothing was written meanwhile, and the SDK still serves the split.
    expect(h.fake.writes()).toBe(writesBefore);
    expect(await sdkServes(h, flagKey)).toEqual({ control: 0.5, treatment: 0.5 });
    expect((await appliedEvents(h, id)).filter((e) => e.reason === "pause")).toEqual([]);

    // The provider returns: the next attempt applies the rollback, once.
    h.fake.clearFailures();
    h.advanceTo(rollout.nextAttemptAt);
    const result = await applyFlagRollout(h.deps, id, "worker-back");
    expect(result).toMatchObject({
      status: "applied",
      version: 3,
      reason: "pause",
      action: "experiment.rollback_applied",
      unchanged: false,
    });
    for (const owner of ["worker-again", "worker-late"]) {
      expect(await applyFlagRollout(h.deps, id, owner)).toEqual({ status: "nothing_to_do" });
    }
    expect(h.fake.writes()).toBe(writesBefore + 1);
    expect(await sdkServes(h, flagKey)).toEqual({ control: 1, treatment: 0 });
    const pauses = (await appliedEvents(h, id)).filter((e) => e.reason === "pause");
    expect(pauses).toEqual([
      expect.objectContaining({ action: "experiment.rollback_applied", version: 3, attempts: 7, unchanged: false }),
    ]);
    rollout = await rolloutOf(h, id);
    expect(rollout).toMatchObject({ status: "applied", appliedVersion: 3, lastError: null });
    expect(flagStatusOf(rollout)).toMatchObject({ pendingSince: null, status: "applied", rollback: true });
    // The launch's time is the provider's first confirmation; the rollback does not move it.
    expect((await experimentRows.findExperimentById(h.world.t.db, id))!.launchedAt).toEqual(launchedAt);
    expect(await stateOf(h.world, id)).toBe("paused");
  });

  it("b. provider slower than FLAG_TIMEOUT_MS: the attempt fails with timeout, is retried and applied once", async () => {
    const h = await harness({ timeoutMs: 500 });
    const { seed } = h.world;

    // A slow read: nothing is written by the attempt that timed out.
    const slowRead = await runningExperiment(h, "slow-read");
    await transitionExperiment(h.world.deps, seed.admin, slowRead, { action: "pause" });
    const writes = h.fake.writes();
    h.fake.fail("getFeatureFlags", { delayMs: 1500, times: 1 });
    const started = Date.now();
    const timedOut = await applyFlagRollout(h.deps, slowRead, "worker-a");
    expect(Date.now() - started).toBeLessThan(1400);
    expect(timedOut).toMatchObject({ status: "failed", code: "timeout", retryInMs: 1000 });
    expect(await rolloutOf(h, slowRead)).toMatchObject({
      status: "pending",
      attempts: 1,
      lastError: { code: "timeout" },
    });
    h.advanceBy(1001);
    expect(await applied(h, slowRead, "worker-b")).toMatchObject({ reason: "pause", unchanged: false });
    expect(h.fake.writes()).toBe(writes + 1);
    expect(await sdkServes(h, h.flagKey("slow-read"))).toEqual({ control: 1, treatment: 0 });
    expect((await appliedEvents(h, slowRead)).filter((e) => e.reason === "pause")).toEqual([
      expect.objectContaining({ attempts: 2, unchanged: false }),
    ]);

    // A slow write: the runtime gives up on it and the provider drops it with the connection (the fake, like an
    // HTTP server, does not act for a caller that went away); the retry writes it once.
    const slowWrite = await runningExperiment(h, "slow-write");
    const slowKey = h.flagKey("slow-write");
    await transitionExperiment(h.world.deps, seed.admin, slowWrite, { action: "pause" });
    const writesBefore = h.fake.writes();
    const versionBefore = h.fake.flag(slowKey)!.environments[ENVIRONMENT]!.version;
    h.fake.fail("patchFeatureFlag", { delayMs: 1200, times: 1 });
    expect(await applyFlagRollout(h.deps, slowWrite, "worker-a")).toMatchObject({ status: "failed", code: "timeout" });
    expect(await rolloutOf(h, slowWrite)).toMatchObject({ status: "pending", attempts: 1, leaseUntil: null });
    h.advanceBy(1001);
    expect(await applied(h, slowWrite, "worker-b")).toMatchObject({ reason: "pause", unchanged: false });
    // Two PATCHes reached the provider (the abandoned one and the retry); one changed the flag.
    expect(h.fake.writes()).toBe(writesBefore + 2);
    await sleep(1300);
    expect(h.fake.flag(slowKey)!.environments[ENVIRONMENT]!.version).toBe(versionBefore + 1);
    expect(await sdkServes(h, slowKey)).toEqual({ control: 1, treatment: 0 });
    expect((await appliedEvents(h, slowWrite)).filter((e) => e.reason === "pause")).toEqual([
      expect.objectContaining({ attempts: 2, unchanged: false }),
    ]);
    expect(await applyFlagRollout(h.deps, slowWrite, "worker-c")).toEqual({ status: "nothing_to_do" });
  });

  it("c. twenty workers apply the same rollback at once: one write at the provider, one audit row", async () => {
    const h = await harness();
    const id = await runningExperiment(h, "many-writers");
    await transitionExperiment(h.world.deps, h.world.seed.admin, id, { action: "pause" });
    const writes = h.fake.writes();
    const patches = h.fake.count("patchFeatureFlag");
    // A little latency at the provider, so the writers overlap its answer.
    h.fake.fail("getFeatureFlags", { delayMs: 100, times: 1 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => applyFlagRollout(h.deps, id, `worker-${i}`)),
    );
    const byStatus: Record<string, number> = {};
    for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    expect(byStatus).toEqual({ applied: 1, nothing_to_do: 19 });
    expect(h.fake.writes()).toBe(writes + 1);
    expect(h.fake.count("patchFeatureFlag")).toBe(patches + 1);
    const pauses = (await appliedEvents(h, id)).filter((e) => e.reason === "pause");
    expect(pauses).toHaveLength(1);
    expect(await sdkServes(h, h.flagKey("many-writers"))).toEqual({ control: 1, treatment: 0 });
  });

  it("d. a flag edited by hand: drift audited once over three checks, the running test stopped for review", async () => {
    const h = await harness();
    const id = await runningExperiment(h, "hand-edit");
    const flagKey = h.flagKey("hand-edit");
    // Nothing drifted yet.
    expect(await checkFlagDrift(h.deps, [id])).toEqual([
      { experimentId: id, drift: null, isNew: false, stopped: false },
    ]);

    h.fake.editFlag(flagKey, ENVIRONMENT, (config) => {
      config.fallthrough = {
        rollout: {
          variations: [
            { variation: 0, weight: 80_000 },
            { variation: 1, weight: 20_000 },
          ],
        },
      };
    });
    const writes = h.fake.writes();
    const checks = [];
    for (let i = 0; i < 3; i++) checks.push(await checkFlagDrift(h.deps, [id]));
    expect(checks.map((c) => c.map((f) => ({ isNew: f.isNew, stopped: f.stopped, kind: f.drift?.kind })))).toEqual([
      [{ isNew: true, stopped: true, kind: "weights_changed" }],
      [{ isNew: false, stopped: false, kind: "weights_changed" }],
      [{ isNew: false, stopped: false, kind: "weights_changed" }],
    ]);
    // The runtime does not write the flag back.
    expect(h.fake.writes()).toBe(writes);

    const drifts = await audit.listAuditEvents(h.world.t.db, h.world.seed.workspaceId, {
      subjectId: id,
      action: "experiment.flag_drift",
    });
    expect(drifts).toHaveLength(1);
    expect(drifts[0]!.after).toMatchObject({
      kind: "weights_changed",
      expected: { control: 0.5, treatment: 0.5 },
      served: { control: 0.8, treatment: 0.2 },
      provider: "launchdarkly",
      flag_key: flagKey,
    });
    expect(await stateOf(h.world, id)).toBe("analysing");
    const reviews = (
      await gates.listGates(h.world.t.db, h.world.seed.workspaceId, { experimentId: id, status: "pending" })
    ).items.filter((g) => g.kind === "analysis_review");
    expect(reviews).toHaveLength(1);
    expect(reviews[0]!.context).toMatchObject({ action: "analyse", reason: "flag_drift" });
    const history = await flagRollouts.weightHistory(h.world.t.db, id);
    expect(history.map((p) => ({ source: p.source, weights: p.weights }))).toEqual([
      { source: "applied", weights: { control: 1, treatment: 0 } },
      { source: "applied", weights: { control: 0.5, treatment: 0.5 } },
      { source: "drift", weights: { control: 0.8, treatment: 0.2 } },
    ]);
    const rollout = await rolloutOf(h, id);
    expect(rollout.status).toBe("applied");
    expect(flagStatusOf(rollout).drift).toMatchObject({ kind: "weights_changed" });
    // Analysing asks nothing of the provider: no new version.
    expect(rollout.version).toBe(2);
  });

  it("e. a newer version while an older one is written: the newest split is served, each version audited at most once", async () => {
    const h = await harness();
    const { deps, seed } = h.world;

    // The pause's write is in flight (slow) when a person resumes: the pause is superseded, the resume applied.
    const id = await runningExperiment(h, "pause-resume");
    const flagKey = h.flagKey("pause-resume");
    const paused = await transitionExperiment(deps, seed.admin, id, { action: "pause" });
    const pauseVersion = (await rolloutOf(h, id)).version;
    const patches = h.fake.count("patchFeatureFlag");
    h.fake.fail("patchFeatureFlag", { delayMs: 600, times: 1 });
    const writing = applyFlagRollout(h.deps, id, "worker-slow");
    await waitFor(
      "the pause's write to reach the provider",
      async () => h.fake.count("patchFeatureFlag") > patches || undefined,
      {
        timeoutMs: 5000,
        intervalMs: 5,
      },
    );
    await decideGate(deps, seed.admin, paused.openedGates[0]!.id, { decision: "resume" });
    const resumeVersion = (await rolloutOf(h, id)).version;
    expect(resumeVersion).toBe(pauseVersion + 1);
    expect(await writing).toEqual({ status: "superseded", version: pauseVersion });
    // Released at once: the newer version is due now, not when the lease would have lapsed.
    expect(await rolloutOf(h, id)).toMatchObject({ status: "pending", version: resumeVersion, leaseUntil: null });
    expect(await applied(h, id, "worker-next")).toMatchObject({ version: resumeVersion, reason: "resume" });
    expect(await applyFlagRollout(h.deps, id, "worker-late")).toEqual({ status: "nothing_to_do" });
    expect(await sdkServes(h, flagKey)).toEqual({ control: 0.5, treatment: 0.5 });
    let events = await appliedEvents(h, id);
    expect(events.filter((e) => e.version === pauseVersion)).toEqual([]);
    expect(events.filter((e) => e.version === resumeVersion)).toEqual([
      expect.objectContaining({ action: "experiment.rollout_applied", reason: "resume" }),
    ]);
    expect(new Set(events.map((e) => e.version)).size).toBe(events.length);

    // The older version's attempt fails (a slow 503) after a newer one was asked for: the newer one is not held
    // behind the failed attempt's lease.
    const second = await runningExperiment(h, "resume-kill");
    const secondKey = h.flagKey("resume-kill");
    const secondPaused = await transitionExperiment(deps, seed.admin, second, { action: "pause" });
    const olderVersion = (await rolloutOf(h, second)).version;
    const reads = h.fake.count("getFeatureFlags");
    h.fake.fail("getFeatureFlags", { status: 503, delayMs: 600, times: 1 });
    const failing = applyFlagRollout(h.deps, second, "worker-slow");
    await waitFor("the read to reach the provider", async () => h.fake.count("getFeatureFlags") > reads || undefined, {
      timeoutMs: 5000,
      intervalMs: 5,
    });
    await decideGate(deps, seed.admin, secondPaused.openedGates[0]!.id, { decision: "resume" });
    expect(await failing).toMatchObject({ status: "failed", version: olderVersion, code: "unavailable" });
    const newer = await rolloutOf(h, second);
    expect(newer).toMatchObject({ status: "pending", version: olderVersion + 1, attempts: 0, leaseUntil: null });
    expect(await applied(h, second, "worker-next")).toMatchObject({ version: olderVersion + 1, reason: "resume" });
    expect(await sdkServes(h, secondKey)).toEqual({ control: 0.5, treatment: 0.5 });
    events = await appliedEvents(h, second);
    expect(events.filter((e) => e.version === olderVersion)).toEqual([]);
    expect(new Set(events.map((e) => e.version)).size).toBe(events.length);
  });

  it("f. 429 with Retry-After: the next attempt waits as long as the provider asked", async () => {
    const h = await harness();
    const id = await runningExperiment(h, "rate-limited");
    await transitionExperiment(h.world.deps, h.world.seed.admin, id, { action: "pause" });
    h.fake.fail("getFeatureFlags", {
      status: 429,
      headers: { "Retry-After": "42" },
      body: { code: "rate_limited", message: "You have been rate limited." },
      times: 1,
    });
    const result = await applyFlagRollout(h.deps, id, "worker-a");
    expect(result).toMatchObject({ status: "failed", code: "rate_limited", retryInMs: 42_000 });
    const rollout = await rolloutOf(h, id);
    expect(rollout).toMatchObject({ attempts: 1, lastError: { code: "rate_limited" } });
    expect(rollout.nextAttemptAt.getTime() - rollout.lastAttemptAt!.getTime()).toBe(42_000);
    expect(flagStatusOf(rollout).nextAttemptAt).toBe(rollout.nextAttemptAt.toISOString());
    // Not before: 41 s later there is still nothing to do, and no request is sent.
    const requests = h.fake.count();
    expect(await applyFlagRollout(h.deps, id, "worker-b")).toEqual({ status: "nothing_to_do" });
    h.advanceBy(41_000);
    expect(await applyFlagRollout(h.deps, id, "worker-b")).toEqual({ status: "nothing_to_do" });
    expect(h.fake.count()).toBe(requests);
    h.advanceTo(rollout.nextAttemptAt);
    expect(await applied(h, id, "worker-c")).toMatchObject({ reason: "pause", unchanged: false });
    expect(await sdkServes(h, h.flagKey("rate-limited"))).toEqual({ control: 1, treatment: 0 });
  });

  it("g. the launch counts from the provider's confirmation: launched_at null and polls skipped until it is applied", async () => {
    const h = await harness();
    const key = "launch-wait";
    const id = await runningExperiment(h, key, false);
    const flagKey = h.flagKey(key);
    // Data is there, but no unit is in the test until the provider serves the split.
    await harmful(h, key);
    expect(await pollExperiment(h.signals, id)).toMatchObject({ status: "skipped", state: "running" });
    expect(await sdkServes(h, flagKey)).toEqual({ control: 1, treatment: 0 });

    // The provider is down for the first attempt: still not launched, still skipped.
    failEveryRoute(h, { status: 503, times: 1 });
    expect(await applyFlagRollout(h.deps, id, "worker-a")).toMatchObject({ status: "failed", code: "unavailable" });
    h.fake.clearFailures();
    let experiment = (await experimentRows.findExperimentById(h.world.t.db, id))!;
    expect(experiment).toMatchObject({ state: "running", launchedAt: null });
    expect(await pollExperiment(h.signals, id)).toMatchObject({ status: "skipped" });
    expect(flagStatusOf(await rolloutOf(h, id))).toMatchObject({
      reason: "launch",
      status: "pending",
      rollback: false,
    });
    expect(flagStatusOf(await rolloutOf(h, id)).summary).toMatch(
      /^rollout \(launch\) pending since .*: unavailable, attempt 1$/u,
    );

    h.advanceTo((await rolloutOf(h, id)).nextAttemptAt);
    const launch = await applied(h, id, "worker-b");
    expect(launch).toMatchObject({ reason: "launch", action: "experiment.rollout_applied", unchanged: false });
    experiment = (await experimentRows.findExperimentById(h.world.t.db, id))!;
    const rollout = await rolloutOf(h, id);
    expect(experiment.launchedAt).not.toBeNull();
    expect(experiment.launchedAt!.toISOString()).toBe(rollout.appliedAt!.toISOString());
    expect(experiment.launchedAt!.toISOString()).toBe(launch.appliedAt.toISOString());
    expect(await sdkServes(h, flagKey)).toEqual({ control: 0.5, treatment: 0.5 });
    const launches = (await appliedEvents(h, id)).filter((e) => e.reason === "launch");
    expect(launches).toEqual([expect.objectContaining({ attempts: 2, applied_at: rollout.appliedAt!.toISOString() })]);
    // Now the poll reads it.
    expect(await pollExperiment(h.signals, id)).toMatchObject({ status: "polled" });
  });
});
