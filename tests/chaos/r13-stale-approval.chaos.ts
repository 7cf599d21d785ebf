/**
 * R13: a decision that comes after the gate or its experiment moved on.
 *
 * Against a real API process, people decide gates that are no longer theirs
 * to decide, through REST (API keys) and the dashboard (session cookie +
 * CSRF): a launch approval someone else already rejected; a launch approval
 * that expired at the end of its SLA (the worker's expiry step, run with the
 * clock past the due time); one that expired when its outcome was abandoned;
 * the review of a paused (kill-switched) experiment that went on to analysis
 * (its `resume` no longer applies); the review of a paused experiment already
 * rolled back (concluded). Each late decision is sent as a storm of 20
 * identical requests per channel (10 in the short run).
 *
 * Pass, per case: 409 (`gate_already_decided` naming the winner, or
 * `illegal_transition` when the experiment moved on); the gate, its
 * experiment and the `gate.decided` audit events exactly as before; and one
 * `gate.decision_rejected_stale` audit event per (gate, person, channel,
 * attempted decision), whatever the storm, saying who tried what and why it
 * was stale.
 */
import {
  applyOutcome,
  decideGate,
  handleGateExpiry,
  proposeExperiment,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { afterAll, expect, it } from "vitest";
import { startApiProcess } from "../support/processes";
import { type Cleanups, createWorld, outcomeYaml, runCleanups, type World } from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const REPS = scaled(5, 1);
const STORM = scaled(20, 10);
const PEOPLE = ["pm0@acme.example", "pm1@acme.example", "pm2@acme.example"];
const STALE = "gate.decision_rejected_stale";

type Reason = "decided" | "expired" | "experiment_moved_on";

interface Case {
  readonly name: string;
  readonly gateId: string;
  readonly experimentId: string;
  readonly decision: string;
  readonly code: "gate_already_decided" | "illegal_transition";
  readonly reason: Reason;
}

function outcomeSource(slug: string): string {
  return `${outcomeYaml(slug, 1_000_000_000)}gates:
  launch_approval:
    assignees: [${PEOPLE.join(", ")}]
    sla: 1h
    on_expiry: expire
  analysis_review:
    assignees: [${PEOPLE.join(", ")}]
    sla: 1h
`;
}

async function activeOutcome(world: World, slug: string): Promise<void> {
  await applyOutcome(world.deps, world.seed.admin, { source: outcomeSource(slug) });
  await transitionOutcome(world.deps, world.seed.admin, slug, "activate", null);
}

/** A pending launch approval of a new experiment of `slug`. */
async function launchGate(world: World, slug: string, key: string) {
  const { deps, seed } = world;
  const p = await proposeExperiment(deps, seed.admin, slug, {
    key,
    title: `Variant ${key}`,
    statement: `If we ship variant ${key}, more users convert, because the flow is shorter.`,
  });
  await decideGate(deps, seed.admin, p.gate.id, { decision: "approve" });
  await transitionExperiment(deps, seed.admin, p.experiment.id, { action: "claim", claimedBy: "chaos-agent" });
  const built = await transitionExperiment(deps, seed.admin, p.experiment.id, {
    action: "report_built",
    changedPaths: [],
  });
  return { gate: built.openedGates[0]!, experimentId: p.experiment.id };
}

it("R13: late decisions are refused with 409, change nothing and are audited once as rejected_stale", async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const { deps, seed } = world;
  const api = await startApiProcess(
    {
      DATABASE_URL: world.t.url,
      REDIS_URL: world.redisUrl,
      QUEUE_PREFIX: world.prefix,
      OUTCOME_RUNTIME_API_KEY: seed.adminKey,
    },
    cleanups,
  );
  const [first, late] = [await seed.key(PEOPLE[0]!, "approver"), await seed.key(PEOPLE[1]!, "approver")];
  // pm2 decides from the dashboard: a session cookie and its CSRF token.
  const { key: sessionKey } = await seed.key(PEOPLE[2]!, "approver");
  const login = await fetch(`${api.base}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ apiKey: sessionKey }),
  });
  expect(login.status).toBe(200);
  const session = {
    cookie: login.headers
      .getSetCookie()
      .map((c) => c.split(";")[0])
      .join("; "),
    csrf: ((await login.json()) as { csrfToken: string }).csrfToken,
  };

  // The cases, REPS of each, every one on a gate of its own.
  const cases: Case[] = [];
  await activeOutcome(world, "chaos-stale");
  for (let rep = 0; rep < REPS; rep += 1) {
    // 1. Already decided: pm0 rejected the launch; pm1 and pm2 approve late.
    const decided = await launchGate(world, "chaos-stale", `decided-${rep}`);
    await decideGate(deps, first.caller, decided.gate.id, { decision: "reject", reason: "copy not ready" });
    cases.push({
      name: "already decided",
      gateId: decided.gate.id,
      experimentId: decided.experimentId,
      decision: "approve",
      code: "gate_already_decided",
      reason: "decided",
    });

    // 2. Expired at the end of its SLA (the worker's step, with the clock past the due time).
    const timedOut = await launchGate(world, "chaos-stale", `sla-${rep}`);
    const past = new Date(timedOut.gate.dueAt.getTime() + 60_000);
    expect(await handleGateExpiry({ db: world.t.db, now: () => past }, timedOut.gate.id)).toMatchObject({
      status: "done",
    });
    cases.push({
      name: "expired (SLA)",
      gateId: timedOut.gate.id,
      experimentId: timedOut.experimentId,
      decision: "approve",
      code: "gate_already_decided",
      reason: "expired",
    });

    // 3. Expired with its outcome, abandoned.
    const slug = `chaos-stale-abandoned-${rep}`;
    await activeOutcome(world, slug);
    const orphan = await launchGate(world, slug, `abandoned-${rep}`);
    await transitionOutcome(deps, seed.admin, slug, "abandon", "priorities changed");
    cases.push({
      name: "expired (outcome abandoned)",
      gateId: orphan.gate.id,
      experimentId: orphan.experimentId,
      decision: "approve",
      code: "gate_already_decided",
      reason: "expired",
    });

    // 4. Paused (as the kill-switch does), then sent to analysis: the pause's review no longer takes `resume`.
    const moved = await launchGate(world, "chaos-stale", `moved-${rep}`);
    await decideGate(deps, first.caller, moved.gate.id, { decision: "approve" });
    const paused = await transitionExperiment(deps, seed.admin, moved.experimentId, {
      action: "pause",
      reason: "kill threshold crossed",
    });
    await transitionExperiment(deps, seed.admin, moved.experimentId, { action: "analyse" });
    cases.push({
      name: "experiment moved on (paused → analysing)",
      gateId: paused.openedGates[0]!.id,
      experimentId: moved.experimentId,
      decision: "resume",
      code: "illegal_transition",
      reason: "experiment_moved_on",
    });

    // 5. Paused, then rolled back (concluded) by pm0: a late `resume`.
    const killed = await launchGate(world, "chaos-stale", `killed-${rep}`);
    await decideGate(deps, first.caller, killed.gate.id, { decision: "approve" });
    const review = (
      await transitionExperiment(deps, seed.admin, killed.experimentId, { action: "pause", reason: "kill-switch" })
    ).openedGates[0]!;
    await decideGate(deps, first.caller, review.id, { decision: "roll_back", reason: "harm confirmed" });
    cases.push({
      name: "experiment concluded (rolled back)",
      gateId: review.id,
      experimentId: killed.experimentId,
      decision: "resume",
      code: "gate_already_decided",
      reason: "decided",
    });
  }

  const snapshot = async (c: Case) => {
    const gate = await world.t.db
      .selectFrom("gates")
      .select(["status", "decision", "decided_by", "decided_at"])
      .where("id", "=", c.gateId)
      .executeTakeFirstOrThrow();
    const experiment = await world.t.db
      .selectFrom("experiments")
      .select(["state", "updated_at"])
      .where("id", "=", c.experimentId)
      .executeTakeFirstOrThrow();
    const decidedAudits = await world.t.db
      .selectFrom("audit_events")
      .select("id")
      .where("subject_id", "=", c.gateId)
      .where("action", "=", "gate.decided")
      .execute();
    return { gate, experiment, decidedAudits: decidedAudits.length };
  };
  const staleRows = async (gateId: string) =>
    world.t.db
      .selectFrom("audit_events")
      .select(["actor_name", "channel", "before", "after"])
      .where("subject_id", "=", gateId)
      .where("action", "=", STALE)
      .execute();
  const decide = (gateId: string, decision: string, via: "api" | "dashboard") =>
    fetch(`${api.base}/v1/gates/${gateId}/decision`, {
      method: "POST",
      headers:
        via === "api"
          ? { authorization: `Bearer ${late.key}`, "content-type": "application/json" }
          : { cookie: session.cookie, "x-csrf-token": session.csrf, "content-type": "application/json" },
      body: JSON.stringify({ decision, reason: "late" }),
    });

  let attempts = 0;
  let refused409 = 0;
  let changed = 0;
  let rowsWritten = 0;
  let rowsExpected = 0;
  const problems: string[] = [];
  for (const c of cases) {
    const before = await snapshot(c);
    const answers = await Promise.all([
      ...Array.from({ length: STORM }, () => decide(c.gateId, c.decision, "api")),
      ...Array.from({ length: STORM }, () => decide(c.gateId, c.decision, "dashboard")),
    ]);
    for (const response of answers) {
      attempts += 1;
      const body = (await response.json()) as {
        code?: string;
        details?: { decision?: { decision: string; decidedBy: string } | null };
      };
      if (response.status === 409 && body.code === c.code) refused409 += 1;
      else problems.push(`${c.name}: ${response.status} ${body.code}, expected 409 ${c.code}`);
      if (c.reason === "decided" && body.details?.decision?.decision !== before.gate.decision) {
        problems.push(`${c.name}: the 409 names ${JSON.stringify(body.details?.decision)}`);
      }
    }
    const after = await snapshot(c);
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      changed += 1;
      problems.push(`${c.name}: changed ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
    }
    const rows = await staleRows(c.gateId);
    rowsWritten += rows.length;
    rowsExpected += 2;
    for (const [who, channel] of [
      [PEOPLE[1]!, "api"],
      [PEOPLE[2]!, "web"],
    ] as const) {
      const mine = rows.filter((r) => r.actor_name === who && r.channel === channel);
      if (mine.length !== 1) {
        problems.push(`${c.name}: ${mine.length} stale rows for ${who} via ${channel}`);
        continue;
      }
      const expected = {
        attemptedDecision: c.decision,
        reason: c.reason,
        gateStatus: after.gate.status,
        experimentState: after.experiment.state,
      };
      if (!Object.entries(expected).every(([k, v]) => (mine[0]!.after as Record<string, unknown>)[k] === v)) {
        problems.push(`${c.name}: stale row ${JSON.stringify(mine[0]!.after)}, expected ${JSON.stringify(expected)}`);
      }
    }
  }

  report({
    id: "R13",
    title: "Decisions after the gate or its experiment moved on",
    fault: "late approve/resume (decided, expired, paused, concluded)",
    faults: attempts,
    lost: 0,
    duplicated: changed + Math.max(0, rowsWritten - rowsExpected),
    figures: {
      cases: cases.length,
      "late requests": attempts,
      "409": refused409,
      "state changes": changed,
      "stale audit rows": rowsWritten,
      "stale rows expected (1 per person, channel, decision)": rowsExpected,
    },
    ms: Date.now() - started,
  });
  expect(problems).toEqual([]);
  expect(refused409).toBe(attempts);
  expect(changed).toBe(0);
  expect(rowsWritten).toBe(rowsExpected);
});
