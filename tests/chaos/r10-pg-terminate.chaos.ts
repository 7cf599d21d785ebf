/**
 * R10: `pg_terminate_backend` of the API's Postgres connections while it
 * decides gates, once per gate decision, many times.
 *
 * A real API process decides launch approvals (approve → the experiment
 * launches; reject → it goes back to building) for clients that retry on a
 * 5xx or a network error until they get 200 or 409. While each decision is in
 * flight, a killer terminates every backend of the API (`application_name =
 * outcome-runtime-api`) at a random moment, 0–30 ms after the request left:
 * sometimes before the transaction, sometimes inside it, sometimes while the
 * COMMIT's answer is on its way back (the retry then finds its own decision).
 *
 * Pass: per gate, the transition and everything that commits with it (the
 * `gate.decided` audit event, the experiment's move and its audit event, the
 * `gate.decided` webhook row, the cancellation of the gate's unsent emails)
 * are all present exactly once or all absent; every client converges on its
 * own decision (a 200, or a 409 naming it); a dead connection answers 503
 * with Retry-After, never 500.
 */

import { decideGate, proposeExperiment, transitionExperiment } from "@outcome-runtime/runtime";
import { sleep } from "@outcome-runtime/testing";
import { afterAll, expect, it } from "vitest";
import { startApiProcess } from "../support/processes";
import { activeOutcome, type Cleanups, createWorld, runCleanups, SOURCE_QUERY, type World } from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const GATES = scaled(100, 10);
/** Decisions in flight at once: a termination also hits the neighbours' requests. */
const PARALLEL = 4;
const API_APP = "outcome-runtime-api";

interface Attempt {
  readonly status: number | "network";
  readonly retryAfter: string | null;
  readonly code: string | null;
}

interface Client {
  readonly gateId: string;
  readonly experimentId: string;
  readonly decision: "approve" | "reject";
  readonly attempts: Attempt[];
  final: { status: number; winner: string | null; decidedBy: string | null } | null;
  ms: number;
}

/** Pending launch approvals: propose, approve the portfolio, claim and report built (no launch). */
async function pendingLaunchGates(world: World, slug: string, count: number) {
  const { deps, seed } = world;
  const proposed = [];
  for (let i = 0; i < count; i += 1) {
    proposed.push(
      await proposeExperiment(deps, seed.admin, slug, {
        key: `r10-${i}`,
        title: `Variant ${i}`,
        statement: `If we ship variant ${i}, more users convert, because the flow is shorter.`,
      }),
    );
  }
  await decideGate(deps, seed.admin, proposed[0]!.gate.id, { decision: "approve" });
  const gates: { gateId: string; experimentId: string }[] = [];
  for (const p of proposed) {
    await transitionExperiment(deps, seed.admin, p.experiment.id, { action: "claim", claimedBy: "chaos-agent" });
    const built = await transitionExperiment(deps, seed.admin, p.experiment.id, {
      action: "report_built",
      changedPaths: [],
    });
    gates.push({ gateId: built.openedGates[0]!.id, experimentId: p.experiment.id });
  }
  return gates;
}

it(`R10: ${GATES} pg_terminate_backend of the API's connections mid-decision leave no partial transition`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-terminate", 1_000_000_000, { query: SOURCE_QUERY });
  const pending = await pendingLaunchGates(world, "chaos-terminate", GATES);
  const api = await startApiProcess(
    {
      DATABASE_URL: world.t.url,
      REDIS_URL: world.redisUrl,
      QUEUE_PREFIX: world.prefix,
      OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
    },
    cleanups,
  );

  let terminated = 0;
  let rounds = 0;
  const kill = async () => {
    const { rows } = await world.runtime.query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
      [world.t.name, API_APP],
    );
    rounds += 1;
    terminated += rows.filter((r) => r.ok).length;
  };

  const decideOnce = async (client: Client): Promise<boolean> => {
    const response = await fetch(`${api.base}/v1/gates/${client.gateId}/decision`, {
      method: "POST",
      headers: { authorization: `Bearer ${world.seed.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ decision: client.decision, reason: "chaos R10" }),
    }).catch(() => null);
    if (response === null) {
      if (api.proc.isGone()) {
        // A terminated backend must cost one request, not the process.
        throw new Error(`the API process died after a pg_terminate_backend:\n${api.output().slice(-3000)}`);
      }
      client.attempts.push({ status: "network", retryAfter: null, code: null });
      return false;
    }
    const body = (await response.json().catch(() => ({}))) as {
      code?: string;
      gate?: { decision?: { decision: string; decidedBy: string } | null };
      details?: { decision?: { decision: string; decidedBy: string } | null };
    };
    client.attempts.push({
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      code: body.code ?? null,
    });
    if (response.status === 200 || response.status === 409) {
      const decision = response.status === 200 ? body.gate?.decision : body.details?.decision;
      client.final = {
        status: response.status,
        winner: decision?.decision ?? null,
        decidedBy: decision?.decidedBy ?? null,
      };
      return true;
    }
    if (response.status < 500) throw new Error(`gate ${client.gateId}: ${response.status} ${JSON.stringify(body)}`);
    return false;
  };

  const clients: Client[] = pending.map((g, i) => ({
    ...g,
    decision: i % 2 === 0 ? "approve" : "reject",
    attempts: [],
    final: null,
    ms: 0,
  }));
  const queue = [...clients];
  const run = async () => {
    for (let client = queue.shift(); client !== undefined; client = queue.shift()) {
      const t0 = Date.now();
      // One termination per gate, at a random moment of its first attempt.
      const killer = sleep(Math.floor(Math.random() * 30)).then(kill);
      let done = await decideOnce(client);
      await killer;
      for (let retry = 0; !done; retry += 1) {
        if (retry > 200)
          throw new Error(
            `gate ${client.gateId} never converged: ${JSON.stringify(client.attempts.slice(0, 5))}; the API:\n${api.output().slice(-4000)}`,
          );
        await sleep(20 + Math.floor(Math.random() * 80));
        done = await decideOnce(client);
      }
      client.ms = Date.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, run));

  // Ground truth, per gate, from Postgres.
  const q = async (sql: string, params: unknown[]) => (await world.runtime.query(sql, params)).rows;
  let partial = 0;
  let lost = 0;
  let duplicated = 0;
  let decidedGates = 0;
  const problems: string[] = [];
  for (const c of clients) {
    const [gate] = await q("SELECT status, decision, decided_by FROM gates WHERE id = $1", [c.gateId]);
    const [experiment] = await q("SELECT state FROM experiments WHERE id = $1", [c.experimentId]);
    const decidedAudit = (
      await q("SELECT count(*)::int AS n FROM audit_events WHERE subject_id = $1 AND action = 'gate.decided'", [
        c.gateId,
      ])
    )[0]!.n as number;
    const moveAudit = (
      await q(
        "SELECT count(*)::int AS n FROM audit_events WHERE subject_id = $1 AND action IN ('experiment.launched', 'experiment.rework_requested')",
        [c.experimentId],
      )
    )[0]!.n as number;
    const webhooks = (
      await q("SELECT count(*)::int AS n FROM webhook_deliveries WHERE dedupe_key = $1", [`gate.decided:${c.gateId}`])
    )[0]!.n as number;
    const unsent = (
      await q("SELECT count(*)::int AS n FROM gate_notifications WHERE gate_id = $1 AND status = 'pending'", [c.gateId])
    )[0]!.n as number;
    const isDecided = gate.status !== "pending";
    const expectedState = c.decision === "approve" ? "running" : "building";
    const parts = isDecided
      ? [
          gate.status === (c.decision === "approve" ? "approved" : "rejected"),
          decidedAudit === 1,
          moveAudit === 1,
          webhooks === 1,
          unsent === 0,
          experiment.state === expectedState,
        ]
      : [decidedAudit === 0, moveAudit === 0, webhooks === 0, experiment.state === "built"];
    if (isDecided) decidedGates += 1;
    if (parts.some((ok) => !ok)) {
      partial += 1;
      problems.push(
        `${c.gateId}: ${JSON.stringify({ gate, experiment, decidedAudit, moveAudit, webhooks, unsent, want: c.decision })}`,
      );
    }
    // The client was told its decision is in: it must be.
    if (!isDecided) lost += 1;
    duplicated += Math.max(0, decidedAudit - 1) + Math.max(0, moveAudit - 1) + Math.max(0, webhooks - 1);
  }

  const attempts = clients.flatMap((c) => c.attempts);
  const failed = attempts.filter((a) => a.status !== 200 && a.status !== 409);
  const status500 = failed.filter((a) => a.status === 500).length;
  const status503 = failed.filter((a) => a.status === 503);
  const without = status503.filter((a) => a.retryAfter === null || a.code !== "service_unavailable").length;
  const converged = clients.filter(
    (c) => c.final !== null && c.final.winner === c.decision && c.final.decidedBy === world.seed.admin.principal.name,
  ).length;
  const late409 = clients.filter((c) => c.final?.status === 409).length;
  const staleRows = (
    await q("SELECT count(*)::int AS n FROM audit_events WHERE action = 'gate.decision_rejected_stale'", [])
  )[0]!.n as number;
  const hit = clients.filter((c) => c.attempts.some((a) => a.status !== 200 && a.status !== 409)).length;
  const { median, max } = medianMax(clients.map((c) => c.ms));
  report({
    id: "R10",
    title: "pg_terminate_backend of the API mid-transition",
    fault: "pg_terminate_backend of every API connection",
    faults: rounds,
    lost,
    duplicated: duplicated + partial,
    figures: {
      gates: clients.length,
      "backends terminated": terminated,
      "decisions hit (≥1 failed attempt)": hit,
      "503 answers": status503.length,
      "503 without Retry-After": without,
      "500 answers": status500,
      "network errors": failed.filter((a) => a.status === "network").length,
      "partial gates": partial,
      "converged on own decision": converged,
      "converged via 409 (commit answer lost)": late409,
      "stale audit rows": staleRows,
      "decide p50 ms": median,
      "decide max ms": max,
    },
    ms: Date.now() - started,
  });
  expect(problems).toEqual([]);
  expect({ lost, duplicated, partial }).toEqual({ lost: 0, duplicated: 0, partial: 0 });
  expect(decidedGates).toBe(clients.length);
  expect(converged).toBe(clients.length);
  const unhandled = api
    .output()
    .split("\n")
    .filter((line) => line.includes('"unhandled error"'));
  expect(status500, `the API's unhandled errors:\n${unhandled.slice(0, 3).join("\n")}`).toBe(0);
  expect(without).toBe(0);
  expect(rounds).toBe(GATES);
  // The faults must have landed on requests in flight, or the scenario proves nothing.
  expect(hit).toBeGreaterThan(0);
  // A 409 after a lost COMMIT answer is the client's own decision: audited as stale at most once per gate.
  expect(staleRows).toBeLessThanOrEqual(late409);
});
