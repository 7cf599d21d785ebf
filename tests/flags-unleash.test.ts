/**
 * End to end on a real Unleash (`unleash-server` on the local Postgres), read
 * back as an application reads it (the official `unleash-client`): the
 * runtime owns the experiment's split. Approving the hypothesis creates the
 * flag serving control; approving the launch serves 50/50 and the launch
 * counts from Unleash's confirmation; a harmful signal pauses the experiment
 * and control is served to everyone within one poll interval and a second (the times printed, not bounded);
 * shipping serves the treatment to everyone. Each step is audited once.
 */
import { audit, flagRollouts, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  decideGate,
  flagKeyOf,
  getExperiment,
  listGates,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import {
  type RunningUnleash,
  startUnleash,
  startUnleashApplication,
  type UnleashApplication,
} from "@outcome-runtime/testing/unleash";
import { afterEach, describe, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "./support/processes";
import { type Cleanups, createWorld, insertSource, outcomeYaml, runCleanups, stateOf } from "./support/world";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups.splice(0)));

const TOKEN_ENV = "OUTCOME_RUNTIME_FLAGS_UNLEASH_TOKEN";
const KEY = "one-page-checkout";
const POLL_INTERVAL_MS = 5000;

function flaggedOutcome(unleash: RunningUnleash): string {
  return `${outcomeYaml("checkout-flags", 100, { pollInterval: "5s" })}flags:
  provider: unleash
  api_url: ${unleash.url}/api
  project: default
  environment: development
  stickiness: userId
  api_token_env: ${TOKEN_ENV}
`;
}

describe("the runtime owns the split in a real Unleash", () => {
  it("creates the flag, serves 50/50 at launch, control to everyone on the kill, the treatment on ship", async () => {
    const unleash = await startUnleash();
    cleanups.push(() => unleash.stop());
    const app: UnleashApplication = await startUnleashApplication(unleash, 100);
    cleanups.push(async () => app.close());
    const world = await createWorld(cleanups);
    const deps = { ...world.deps };
    await applyOutcome(deps, world.seed.admin, { source: flaggedOutcome(unleash) });
    const outcome = await transitionOutcome(deps, world.seed.admin, "checkout-flags", "activate", null);
    const flags = (outcome.spec as { flags: Parameters<typeof flagKeyOf>[0] }).flags;
    const flagKey = flagKeyOf(flags, KEY);
    expect(flagKey).toBe(`outcome-runtime-${KEY}`);

    const worker = await startWorkerProcess(world, cleanups, {
      [TOKEN_ENV]: unleash.adminToken,
      FLAG_API_URLS: `unleash=${unleash.url}/api`,
      // Unleash listens on loopback, which production refuses unless the operator allows it.
      OUTBOUND_ALLOW: "127.0.0.1",
      OUTBOX_INTERVAL_MS: "200",
    });
    await worker.ready;

    // Approving the hypothesis creates the flag, serving control only: the build wires itself to it.
    const proposed = await proposeExperiment(deps, world.seed.admin, "checkout-flags", {
      key: KEY,
      title: "One-page checkout",
      statement: "If checkout fits on one page, more users convert, because there are fewer steps.",
    });
    const id = proposed.experiment.id;
    await decideGate(deps, world.seed.admin, proposed.gate.id, { decision: "approve" });
    await waitFor(
      "the flag to exist",
      async () => (await flagRollouts.findRollout(world.t.db, id))?.status === "applied" || undefined,
      {
        timeoutMs: 30_000,
        diagnostics: worker.output,
      },
    );
    await app.serves(flagKey, { control: 1, treatment: 0 }, { tolerance: 0 });

    await transitionExperiment(deps, world.seed.admin, id, { action: "claim", claimedBy: "test-agent" });
    const built = await transitionExperiment(deps, world.seed.admin, id, {
      action: "report_built",
      changedPaths: [],
      build: { summary: "checkout on one page behind the runtime's flag", flagKey },
    });
    const launched = await decideGate(deps, world.seed.admin, built.openedGates[0]!.id, { decision: "approve" });
    expect(launched.experiments[0]).toMatchObject({ state: "running", launchedAt: null });

    // The launch counts from Unleash's confirmation; the application then serves 50/50.
    const launchApplied = await waitFor(
      "the launch to be applied",
      async () => {
        const r = await flagRollouts.findRollout(world.t.db, id);
        return r?.status === "applied" && r.reason === "launch" ? r : undefined;
      },
      { timeoutMs: 30_000, diagnostics: worker.output },
    );
    const split = await app.serves(flagKey, { control: 0.5, treatment: 0.5 });
    expect(split.shares.control).toBeGreaterThan(0.46);
    const running = await getExperiment(deps, world.seed.admin, id);
    expect(running.experiment.launchedAt?.toISOString()).toBe(launchApplied.appliedAt?.toISOString());
    expect(running.flag).toMatchObject({ provider: "unleash", flagKey, status: "applied", reason: "launch" });

    // A harmful treatment: half the conversions of control. The next poll's analysis pauses it.
    const past = new Date(Date.now() - 60_000);
    const harmfulAt = Date.now();
    await insertSource(world, [
      { key: KEY, arm: "control", ts: past, units: 5000, conversions: 1000 },
      { key: KEY, arm: "treatment", ts: past, units: 5000, conversions: 500 },
    ]);
    const served = await app.serves(flagKey, { control: 1, treatment: 0 }, { tolerance: 0, timeoutMs: 30_000 });
    expect(await stateOf(world, id)).toBe("paused");
    const rollback = (await flagRollouts.findRollout(world.t.db, id))!;
    expect(rollback).toMatchObject({ status: "applied", reason: "pause", desired: { control: 1, treatment: 0 } });
    // Within one poll interval + 1 s: the poll after the harmful data arrived paused the experiment (its
    // analysis is the last one, and the only pause), and the rollback was applied at Unleash after it (the time printed).
    const analyses = await signals.listAnalyses(world.t.db, id);
    expect(analyses.at(-1)?.decision).toMatchObject({ action: "pause" });
    expect(analyses.filter((a) => a.decision.action === "pause")).toHaveLength(1);
    const [pausedEvent] = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
      subjectId: id,
      action: "experiment.paused",
    });
    const pauseToApplied = rollback.appliedAt!.getTime() - pausedEvent!.at.getTime();
    // The time is reported, not bounded (a busy machine may be slower): `pnpm bench --only flag` measures it.
    expect(rollback.appliedAt!.getTime()).toBeGreaterThanOrEqual(pausedEvent!.at.getTime());
    console.info(
      `harmful data → pause ${pausedEvent!.at.getTime() - harmfulAt} ms (poll interval ${POLL_INTERVAL_MS} ms), pause → rollback applied at Unleash ${pauseToApplied} ms, → control served by unleash-client ${served.at - pausedEvent!.at.getTime()} ms`,
    );
    const paused = await getExperiment(deps, world.seed.admin, id);
    expect(paused.flag).toMatchObject({ status: "applied", rollback: true, pendingSince: null });

    // A person reviews the pause and ships: the treatment to everyone.
    await transitionExperiment(deps, world.seed.admin, id, { action: "analyse" });
    const [review] = (await listGates(deps, world.seed.admin, { experimentId: id, status: "pending" })).items;
    await decideGate(deps, world.seed.admin, review!.id, { decision: "ship" });
    await app.serves(flagKey, { control: 0, treatment: 1 }, { tolerance: 0, timeoutMs: 30_000 });
    await waitFor(
      "the ship to be recorded",
      async () => (await flagRollouts.findRollout(world.t.db, id))?.status === "applied" || undefined,
      { diagnostics: worker.output },
    );
    // Give a duplicate write or audit the chance to show up before counting.
    await sleep(1500);

    const applied = [
      ...(await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
        subjectId: id,
        action: "experiment.flag_prepared",
      })),
      ...(await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
        subjectId: id,
        action: "experiment.rollout_applied",
      })),
      ...(await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
        subjectId: id,
        action: "experiment.rollback_applied",
      })),
    ];
    const steps = applied.map((e) => (e.after as { reason: string; version: number }).reason).sort();
    expect(steps).toEqual(["launch", "pause", "prepare", "ship"]);
    const versions = applied.map((e) => (e.after as { version: number }).version);
    expect(new Set(versions).size).toBe(versions.length);
    const rollbackEvent = applied.find((e) => e.action === "experiment.rollback_applied")!;
    expect(rollbackEvent.after).toMatchObject({
      provider: "unleash",
      flag_key: flagKey,
      weights: { control: 1, treatment: 0 },
      reason: "pause",
    });
    expect((await stopProcess(worker.proc)).code).toBe(0);
  }, 240_000);
});
