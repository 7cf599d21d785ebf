/**
 * R21: the flag provider down exactly when the kill-switch fires. A worker
 * process owns the split of N running experiments in a LaunchDarkly (the
 * local stand-in, `@outcome-runtime/testing/fake-launchdarkly`, whose server
 * SDK endpoint shows what applications are served). Then, at once, the
 * provider fails every route with 503 and harmful data arrives for every
 * experiment: each poll's analysis pauses its experiment (recorded and
 * audited without the provider) and the rollback (control to everyone) stays
 * pending while its attempts fail and back off. Halfway through, the
 * provider's connections start hanging instead (the worker's
 * `FLAG_TIMEOUT_MS` ends each attempt). Then the provider returns.
 *
 * Pass: every experiment paused once; every rollback applied exactly once
 * after the provider returned (lost: a rollback never applied; duplicated: a
 * second audit row, or a second write at the provider, for the version); what
 * the SDK is served is control for every flag; each rollback failed several
 * attempts during the outage, `unavailable` and `timeout` among them.
 */
import { audit, experiments as experimentRows, flagRollouts } from "@outcome-runtime/db";
import {
  applyOutcome,
  decideGate,
  flagKeyOf,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import {
  type FakeLaunchDarklyFailure,
  type FakeLaunchDarklyOperation,
  startFakeLaunchDarkly,
} from "@outcome-runtime/testing/fake-launchdarkly";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "../support/processes";
import {
  type Cleanups,
  createWorld,
  insertSource,
  outcomeYaml,
  runCleanups,
  stateOf,
  type World,
} from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const EXPERIMENTS = scaled(20, 5);
/** Failed attempts of each rollback while the provider answers 503, before its connections start hanging. */
const FAILED_503 = scaled(2, 1);
/** Failed attempts of each rollback in all before the provider returns (the last ones timed out). */
const FAILED_IN_ALL = scaled(4, 3);
const FLAG_TIMEOUT_MS = 1000;
const TOKEN_ENV = "OUTCOME_RUNTIME_FLAGS_LD_TOKEN";
const PROJECT = "shop";
const ENVIRONMENT = "production";
const SLUG = "chaos-flags-outage";
/** Every route of the provider: its REST API and the server SDK's endpoint. */
const ROUTES: readonly FakeLaunchDarklyOperation[] = [
  "getFeatureFlags",
  "getFeatureFlag",
  "postFeatureFlag",
  "patchFeatureFlag",
  "deleteFeatureFlag",
  "getApprovalsForFlag",
  "postApprovalRequestForFlag",
  "sdkLatestAll",
];

async function rolloutsOf(world: World, ids: readonly string[]) {
  return [...(await flagRollouts.findRollouts(world.t.db, ids)).values()];
}

it(`R21: the flag provider down (503, then hanging) as ${EXPERIMENTS} experiments are killed: every rollback applied once when it returns`, async () => {
  const started = Date.now();
  const fake = await startFakeLaunchDarkly({ projectKey: PROJECT, environments: [ENVIRONMENT] });
  cleanups.push(() => fake.close());
  const world = await createWorld(cleanups);
  const { deps, seed } = world;
  await applyOutcome(deps, seed.admin, {
    source: `${outcomeYaml(SLUG, 100, { pollInterval: "1s" })}flags:
  provider: launchdarkly
  api_url: ${fake.url}
  project: ${PROJECT}
  environment: ${ENVIRONMENT}
  access_token_env: ${TOKEN_ENV}
`,
  });
  await transitionOutcome(deps, seed.admin, SLUG, "activate", null);
  // The worker boots while the experiments are proposed.
  const worker = await startWorkerProcess(world, cleanups, {
    [TOKEN_ENV]: fake.accessToken,
    FLAG_API_URLS: `launchdarkly=${fake.url}`,
    FLAG_TIMEOUT_MS: String(FLAG_TIMEOUT_MS),
    // The stand-in listens on loopback, which production refuses unless the operator allows it.
    OUTBOUND_ALLOW: "127.0.0.1",
    OUTBOX_INTERVAL_MS: "200",
  });
  const wait = { timeoutMs: 60_000, intervalMs: 50, diagnostics: worker.output };

  // N experiments: their flags created by the worker (serving control), built, launched (50/50 confirmed).
  const keys = Array.from({ length: EXPERIMENTS }, (_, i) => `outage-${i}`);
  const proposed = [];
  for (const key of keys) {
    proposed.push(
      await proposeExperiment(deps, seed.admin, SLUG, {
        key,
        title: `Variant ${key}`,
        statement: `If we ship variant ${key}, more users convert, because the flow is shorter.`,
      }),
    );
  }
  const ids = proposed.map((p) => p.experiment.id);
  await decideGate(deps, seed.admin, proposed[0]!.gate.id, { decision: "approve" });
  await worker.ready;
  await waitFor(
    "every flag to be created",
    async () => (await rolloutsOf(world, ids)).filter((r) => r.appliedVersion === 1).length === EXPERIMENTS,
    wait,
  );
  const flagKeyFor = (key: string) => flagKeyOf({ provider: "launchdarkly" } as Parameters<typeof flagKeyOf>[0], key);
  for (const p of proposed) {
    const id = p.experiment.id;
    await transitionExperiment(deps, seed.admin, id, { action: "claim", claimedBy: "test-agent" });
    const built = await transitionExperiment(deps, seed.admin, id, {
      action: "report_built",
      changedPaths: [],
      build: { summary: "behind the runtime's flag", flagKey: flagKeyFor(p.experiment.key) },
    });
    await decideGate(deps, seed.admin, built.openedGates[0]!.id, { decision: "approve" });
  }
  await waitFor(
    "every launch to be confirmed",
    async () =>
      (await rolloutsOf(world, ids)).filter((r) => r.reason === "launch" && r.status === "applied").length ===
      EXPERIMENTS,
    wait,
  );
  // Polled since the launch (a poll skips an experiment until its launch is confirmed).
  await waitFor(
    "every experiment's first poll",
    async () => {
      for (const id of ids) {
        if ((await experimentRows.findExperimentById(world.t.db, id))?.polling.lastPolledAt == null) return false;
      }
      return true;
    },
    wait,
  );
  const setupMs = Date.now() - started;
  const launchedAt = new Map<string, string>();
  for (const id of ids) {
    launchedAt.set(id, (await experimentRows.findExperimentById(world.t.db, id))!.launchedAt!.toISOString());
  }

  // The provider goes down as the harmful data arrives: 503 on every route.
  const failEveryRoute = (failure: FakeLaunchDarklyFailure) => {
    for (const route of ROUTES) fake.fail(route, failure);
  };
  const requestsBefore = fake.requests.length;
  const versionBefore = new Map(keys.map((k) => [k, fake.flag(flagKeyFor(k))!.environments[ENVIRONMENT]!.version]));
  failEveryRoute({ status: 503, body: { code: "service_unavailable", message: "Service Unavailable" } });
  const outageStart = Date.now();
  const ts = new Date();
  await insertSource(
    world,
    keys.flatMap((key) => [
      { key, arm: "control", ts, units: 5000, conversions: 1000 },
      { key, arm: "treatment", ts, units: 5000, conversions: 500 },
    ]),
  );
  const codesSeen = new Map<string, Set<string>>(ids.map((id) => [id, new Set()]));
  /** The wait before the next attempt after each failed one, by the failure's code, once per attempt. */
  const waits = new Map<string, { code: string; ms: number }>();
  const watch = async () => {
    const rollouts = await rolloutsOf(world, ids);
    for (const r of rollouts) {
      if (r.lastError === null || r.lastAttemptAt === null) continue;
      codesSeen.get(r.experimentId)!.add(r.lastError.code);
      waits.set(`${r.experimentId}/${r.attempts}`, {
        code: r.lastError.code,
        ms: r.nextAttemptAt.getTime() - r.lastAttemptAt.getTime(),
      });
    }
    return rollouts;
  };
  // Every experiment paused while the provider is down: the pause does not wait for it; its rollback does.
  const pausedMs = await waitFor(
    "every experiment to be paused",
    async () => {
      for (const id of ids) if ((await stateOf(world, id)) !== "paused") return undefined;
      return Date.now() - outageStart;
    },
    wait,
  );
  await waitFor(
    `every rollback to fail ${FAILED_503} attempts on 503`,
    async () => {
      const rollouts = await watch();
      return rollouts.every((r) => r.reason === "pause" && r.status === "pending" && r.attempts >= FAILED_503);
    },
    wait,
  );
  // Then its connections hang: each attempt ends at the worker's timeout.
  failEveryRoute({ status: 503, delayMs: 120_000 });
  await waitFor(
    `every rollback to fail ${FAILED_IN_ALL} attempts, the last ones timing out`,
    async () => {
      const rollouts = await watch();
      return rollouts.every(
        (r) => r.status === "pending" && r.attempts >= FAILED_IN_ALL && codesSeen.get(r.experimentId)!.has("timeout"),
      );
    },
    wait,
  );
  const duringOutage = await watch();
  const pendingDuringOutage = duringOutage.filter((r) => r.status === "pending" && r.reason === "pause").length;
  const requestsDuringOutage = fake.requests.length - requestsBefore;

  // The provider returns.
  fake.clearFailures();
  const back = Date.now();
  const outageMs = back - outageStart;
  await waitFor(
    "every rollback to be applied",
    async () => (await rolloutsOf(world, ids)).every((r) => r.reason === "pause" && r.status === "applied"),
    wait,
  );
  const allAppliedMs = Date.now() - back;
  // Let a second write or audit row show up before counting.
  await sleep(2000);
  expect((await stopProcess(worker.proc, 30_000)).code).toBe(0);

  const rollouts = await rolloutsOf(world, ids);
  const events = async (action: string) =>
    audit.listAuditEvents(world.t.db, seed.workspaceId, { subjectType: "experiment", action, limit: 1000 });
  const pausedRows = await events("experiment.paused");
  const rollbackRows = (await events("experiment.rollback_applied")).filter(
    (e) => (e.after as { reason?: string }).reason === "pause",
  );
  const sdk = (await (
    await fetch(`${fake.url}/sdk/latest-all`, { headers: { authorization: fake.sdkKey(ENVIRONMENT) } })
  ).json()) as { flags: Record<string, { on: boolean; offVariation?: number; variations: string[] }> };
  const outageRequests = fake.requests.slice(requestsBefore);

  let lost = 0;
  let duplicated = 0;
  const appliedAfterBack: number[] = [];
  const failedAttempts: number[] = [];
  let writesAtProvider = 0;
  const problems: string[] = [];
  for (const [i, id] of ids.entries()) {
    const key = keys[i]!;
    const flagKey = flagKeyFor(key);
    const rollout = rollouts.find((r) => r.experimentId === id)!;
    const paused = pausedRows.filter((e) => e.subjectId === id);
    const applied = rollbackRows.filter((e) => e.subjectId === id);
    const writes = outageRequests.filter((r) => r.method !== "GET" && r.path.endsWith(`/${flagKey}`)).length;
    const changes = fake.flag(flagKey)!.environments[ENVIRONMENT]!.version - versionBefore.get(key)!;
    writesAtProvider += writes;
    const served = sdk.flags[flagKey];
    const control = served !== undefined && !served.on && served.variations[served.offVariation ?? -1] === "control";
    if (applied.length === 0 || rollout.status !== "applied" || !control) lost += 1;
    duplicated += Math.max(0, paused.length - 1) + Math.max(0, applied.length - 1);
    duplicated += Math.max(0, writes - 1) + Math.max(0, changes - 1);
    if (paused.length !== 1) problems.push(`${key}: ${paused.length} experiment.paused rows`);
    if (writes !== 1 || changes !== 1) problems.push(`${key}: ${writes} writes, ${changes} changes at the provider`);
    if (!control) problems.push(`${key}: the SDK is served ${JSON.stringify(served)}`);
    const after = applied[0]?.after as { version?: number; attempts?: number } | undefined;
    if (after?.version !== rollout.version) problems.push(`${key}: audited version ${after?.version}`);
    failedAttempts.push((after?.attempts ?? 1) - 1);
    if (rollout.appliedAt !== null) appliedAfterBack.push(rollout.appliedAt.getTime() - back);
    const launch = (await experimentRows.findExperimentById(world.t.db, id))!.launchedAt!.toISOString();
    if (launch !== launchedAt.get(id))
      problems.push(`${key}: launched_at moved from ${launchedAt.get(id)} to ${launch}`);
  }
  const backToApplied = medianMax(appliedAfterBack);
  const attempts = medianMax(failedAttempts);
  const waitsAfter = (code: string) => {
    const { median, max } = medianMax([...waits.values()].filter((w) => w.code === code).map((w) => w.ms));
    return `${median}, ${max}`;
  };
  const timeouts = [...codesSeen.values()].filter((c) => c.has("timeout")).length;
  const unavailable = [...codesSeen.values()].filter((c) => c.has("unavailable")).length;

  report({
    id: "R21",
    title: "Flag provider outage during kills",
    fault: `fake LaunchDarkly: 503 on every route, then hanging connections (FLAG_TIMEOUT_MS ${FLAG_TIMEOUT_MS}), as harmful data arrives for ${EXPERIMENTS} experiments`,
    faults: EXPERIMENTS,
    lost,
    duplicated,
    figures: {
      experiments: EXPERIMENTS,
      "outage → all paused ms": pausedMs,
      "rollbacks pending during the outage": pendingDuringOutage,
      "failed attempts per rollback during the outage (p50, max)": `${attempts.median}, ${attempts.max}`,
      "failed attempts in all": failedAttempts.reduce((a, b) => a + b, 0),
      "rollbacks that saw unavailable / timeout": `${unavailable} / ${timeouts}`,
      "requests to the provider during the outage": requestsDuringOutage,
      "wait after a 503 ms (p50, max)": waitsAfter("unavailable"),
      "wait after a timeout ms (p50, max)": waitsAfter("timeout"),
      "outage ms": outageMs,
      "provider back → applied ms (p50, max)": `${backToApplied.median}, ${backToApplied.max}`,
      "provider back → all applied ms": allAppliedMs,
      "writes at the provider (since the outage began)": writesAtProvider,
      "setup ms (boot, flags created, launches confirmed, first polls)": setupMs,
      "experiment.paused rows": pausedRows.length,
      "rollback_applied rows (pause)": rollbackRows.length,
    },
    ms: Date.now() - started,
  });
  expect(problems).toEqual([]);
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
  expect(pendingDuringOutage).toBe(EXPERIMENTS);
  expect(Math.min(...failedAttempts)).toBeGreaterThanOrEqual(FAILED_IN_ALL);
  expect(unavailable).toBe(EXPERIMENTS);
  expect(timeouts).toBe(EXPERIMENTS);
  expect(writesAtProvider).toBe(EXPERIMENTS);
  // Every rollback waited for the provider: none was recorded applied before it returned.
  expect(Math.min(...appliedAfterBack)).toBeGreaterThanOrEqual(0);
  for (const id of ids) expect(await stateOf(world, id)).toBe("paused");
});
