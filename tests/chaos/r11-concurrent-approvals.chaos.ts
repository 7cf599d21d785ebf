/**
 * R11: 200 concurrent decisions of one gate, through every channel, many
 * trials.
 *
 * Per trial one launch approval waits; 200 requests leave at once against a
 * real API process: 160 REST `POST /v1/gates/:id/decision` with five API keys
 * (the admin and four approvers), 20 from two dashboard sessions (cookie +
 * `x-csrf-token`), and 20 POSTs of email decision links (ten assignees, each
 * with the approve and the reject link of the email the runtime really sent,
 * with real tokens, through the mailer's log mode). Half approve, half reject.
 *
 * Pass, per trial: exactly one 200; the gate decided once with that decision;
 * one `gate.decided` audit event and one experiment move; the 199 others
 * refused with 409 naming the winning decision: problem+json
 * `gate_already_decided` with `details.decision` for REST and sessions, the
 * "already decided" page (409) naming the winner for email links (also when a
 * link's checks raced the winner's commit).
 */
import { request as httpRequest } from "node:http";
import { createMailer, type MailLog, mailConfigFromEnv } from "@outcome-runtime/notify";
import {
  applyOutcome,
  decideGate,
  proposeExperiment,
  sendGateNotification,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { afterAll, expect, it } from "vitest";
import { startApiProcess } from "../support/processes";
import { type Cleanups, createWorld, outcomeYaml, runCleanups, type World } from "../support/world";
import { medianMax, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const TRIALS = scaled(20, 2);
const SLUG = "chaos-approvals";
const PEOPLE = Array.from({ length: 10 }, (_, i) => `pm${i}@acme.example`);
const PUBLIC_URL = "https://outcomes.chaos.example";

type Decision = "approve" | "reject";
type Channel = "api" | "dashboard" | "email";

interface Request {
  readonly channel: Channel;
  readonly who: string;
  readonly decision: Decision;
  readonly send: () => Promise<Response>;
}

interface Answer {
  readonly request: Request;
  readonly status: number;
  /** The decision the refusal names (REST: `details.decision.decision`; email: read from the page). */
  readonly named: string | null;
  readonly namedBy: string | null;
  readonly code: string | null;
}

/** POST a form from the local address `from` (fetch cannot choose its source address). */
function postForm(url: string, form: URLSearchParams, from: string): Promise<Response> {
  const body = form.toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: "POST",
        localAddress: from,
        headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The launch approval of a new experiment: propose, approve the portfolio, claim, report built. */
async function pendingLaunchGate(world: World, trial: number): Promise<{ gateId: string; experimentId: string }> {
  const { deps, seed } = world;
  const p = await proposeExperiment(deps, seed.admin, SLUG, {
    key: `r11-${trial}`,
    title: `Variant ${trial}`,
    statement: `If we ship variant ${trial}, more users convert, because the flow is shorter.`,
  });
  await decideGate(deps, seed.admin, p.gate.id, { decision: "approve" });
  await transitionExperiment(deps, seed.admin, p.experiment.id, { action: "claim", claimedBy: "chaos-agent" });
  const built = await transitionExperiment(deps, seed.admin, p.experiment.id, {
    action: "report_built",
    changedPaths: [],
  });
  return { gateId: built.openedGates[0]!.id, experimentId: p.experiment.id };
}

it(`R11: ${TRIALS} trials of 200 concurrent mixed-channel decisions of one gate apply exactly one`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const gatesYaml = `gates:\n  launch_approval:\n    assignees: [${PEOPLE.join(", ")}]\n    sla: 48h\n`;
  await applyOutcome(world.deps, world.seed.admin, { source: `${outcomeYaml(SLUG, 1_000_000_000)}${gatesYaml}` });
  await transitionOutcome(world.deps, world.seed.admin, SLUG, "activate", null);

  const api = await startApiProcess(
    {
      DATABASE_URL: world.t.url,
      REDIS_URL: world.redisUrl,
      QUEUE_PREFIX: world.prefix,
      OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
      OUTCOME_RUNTIME_PUBLIC_URL: PUBLIC_URL,
    },
    cleanups,
  );

  // REST: the admin and four approvers (assignees). Dashboard: two approvers signed in with a session.
  const restKeys = [{ name: world.seed.admin.principal.name, key: world.seed.adminKey }];
  for (const person of PEOPLE.slice(0, 4))
    restKeys.push({ name: person, key: (await world.seed.key(person, "approver")).key });
  const sessions: { name: string; cookie: string; csrf: string }[] = [];
  for (const person of PEOPLE.slice(4, 6)) {
    const { key } = await world.seed.key(person, "approver");
    const login = await fetch(`${api.base}/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: key }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(";")[0])
      .join("; ");
    sessions.push({ name: person, cookie, csrf: ((await login.json()) as { csrfToken: string }).csrfToken });
  }

  // The mailer in log mode: real tokens are issued and stored hashed; the links land here.
  const logged: { to: string; links: { label: string; url: string }[] }[] = [];
  const log: MailLog = (fields) => logged.push(fields as (typeof logged)[number]);
  const mailDeps = {
    db: world.t.db,
    mailer: createMailer(mailConfigFromEnv({ MAIL_LOG_LINKS: "true" }), log),
    links: { publicUrl: PUBLIC_URL },
  };

  const winners: { channel: Channel; decision: Decision }[] = [];
  const staleRowsPerTrial: number[] = [];
  const trialMs: number[] = [];
  let refusals = 0;
  let refusalsNamingWinner = 0;
  let emailNamingWinner = 0;
  let emailNoLongerApplies = 0;
  let duplicated = 0;
  let lost = 0;
  const problems: string[] = [];

  for (let trial = 0; trial < TRIALS; trial += 1) {
    const { gateId, experimentId } = await pendingLaunchGate(world, trial);
    const notifications = await world.t.db
      .selectFrom("gate_notifications")
      .select("id")
      .where("gate_id", "=", gateId)
      .execute();
    logged.length = 0;
    for (const n of notifications) expect(await sendGateNotification(mailDeps, n.id)).toEqual({ status: "logged" });
    const emailLinks = logged.flatMap((mail) =>
      mail.links.map((l) => {
        const url = new URL(l.url);
        return {
          to: mail.to,
          decision: url.pathname.split("/").at(-1) as Decision,
          url: `${api.base}${url.pathname}${url.search}`,
        };
      }),
    );
    expect(emailLinks).toHaveLength(20);

    const requests: Request[] = [];
    const decisionOf = (i: number): Decision => (i % 2 === 0 ? "approve" : "reject");
    for (let i = 0; i < 160; i += 1) {
      const k = restKeys[i % restKeys.length]!;
      const decision = decisionOf(Math.floor(i / restKeys.length));
      requests.push({
        channel: "api",
        who: k.name,
        decision,
        send: () =>
          fetch(`${api.base}/v1/gates/${gateId}/decision`, {
            method: "POST",
            headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
            body: JSON.stringify({ decision, reason: `R11 ${k.name}` }),
          }),
      });
    }
    for (let i = 0; i < 20; i += 1) {
      const s = sessions[i % sessions.length]!;
      const decision = decisionOf(Math.floor(i / sessions.length));
      requests.push({
        channel: "dashboard",
        who: s.name,
        decision,
        send: () =>
          fetch(`${api.base}/v1/gates/${gateId}/decision`, {
            method: "POST",
            headers: { cookie: s.cookie, "x-csrf-token": s.csrf, "content-type": "application/json" },
            body: JSON.stringify({ decision, reason: `R11 session ${s.name}` }),
          }),
      });
    }
    for (const link of emailLinks) {
      requests.push({
        channel: "email",
        who: link.to,
        decision: link.decision,
        // Each person clicks from a machine of their own (a loopback address of their own): the email routes
        // allow 120 POSTs a minute per IP address.
        send: () =>
          postForm(
            link.url,
            new URLSearchParams({ reason: `R11 email ${link.to}` }),
            `127.0.1.${PEOPLE.indexOf(link.to) + 1}`,
          ),
      });
    }
    expect(requests).toHaveLength(200);
    // Sent in a random order, so that any channel and either decision may win.
    for (let i = requests.length - 1; i > 0; i -= 1) {
      const j = Math.floor(Math.random() * (i + 1));
      [requests[i], requests[j]] = [requests[j]!, requests[i]!];
    }
    expect(requests.filter((r) => r.decision === "approve")).toHaveLength(100);

    const t0 = Date.now();
    const answers: Answer[] = await Promise.all(
      requests.map(async (request): Promise<Answer> => {
        const response = await request.send();
        const text = await response.text();
        if (request.channel === "email") {
          // The refusal page says who decided what: `<who> decided "<decision>" via <channel> on <time>.`
          const m = /([^\s>]+) decided (?:&quot;|&#34;|")([a-z_]+)(?:&quot;|&#34;|")/.exec(text);
          // …and its refusal code: `Reference: already_decided`.
          const code = /Reference: ([a-z_]+)/.exec(text)?.[1] ?? null;
          return { request, status: response.status, named: m?.[2] ?? null, namedBy: m?.[1] ?? null, code };
        }
        const body = JSON.parse(text) as {
          code?: string;
          details?: { decision?: { decision: string; decidedBy: string } };
        };
        return {
          request,
          status: response.status,
          named: body.details?.decision?.decision ?? null,
          namedBy: body.details?.decision?.decidedBy ?? null,
          code: body.code ?? null,
        };
      }),
    );
    trialMs.push(Date.now() - t0);

    const won = answers.filter((a) => a.status === 200);
    const gate = await world.t.db
      .selectFrom("gates")
      .select(["status", "decision", "decided_by", "decided_channel"])
      .where("id", "=", gateId)
      .executeTakeFirstOrThrow();
    const audits = await world.t.db
      .selectFrom("audit_events")
      .select(["action", "subject_id"])
      .where("subject_id", "in", [gateId, experimentId])
      .execute();
    const decidedRows = audits.filter((a) => a.action === "gate.decided").length;
    const moves = audits.filter(
      (a) => a.action === "experiment.launched" || a.action === "experiment.rework_requested",
    ).length;
    staleRowsPerTrial.push(audits.filter((a) => a.action === "gate.decision_rejected_stale").length);
    const winner = won[0];
    if (won.length !== 1 || winner === undefined) {
      problems.push(`trial ${trial}: ${won.length} answers 200`);
      if (won.length === 0) lost += 1;
      duplicated += Math.max(0, won.length - 1);
      continue;
    }
    winners.push({ channel: winner.request.channel, decision: winner.request.decision });
    if (gate.decision !== winner.request.decision || gate.decided_by !== winner.request.who) {
      problems.push(
        `trial ${trial}: gate says ${gate.decision} by ${gate.decided_by}, the 200 was ${winner.request.who}`,
      );
    }
    duplicated += Math.max(0, decidedRows - 1) + Math.max(0, moves - 1);
    if (decidedRows === 0 || moves === 0) lost += 1;
    for (const a of answers) {
      if (a === winner) continue;
      refusals += 1;
      const names = a.status === 409 && a.named === gate.decision && a.namedBy === gate.decided_by;
      const email = a.request.channel === "email";
      if (names && a.code === (email ? "already_decided" : "gate_already_decided")) {
        refusalsNamingWinner += 1;
        if (email) emailNamingWinner += 1;
      } else if (email && a.status === 409 && a.code === "decision_unavailable") {
        // A page that does not name the winner: reported, and a failure.
        emailNoLongerApplies += 1;
      } else if (problems.length < 20) {
        problems.push(
          `trial ${trial}: ${a.request.channel} ${a.request.who} ${a.request.decision} → ${a.status} ${a.code} naming ${a.named} by ${a.namedBy}`,
        );
      }
    }
  }

  const stale = medianMax(staleRowsPerTrial);
  const latency = medianMax(trialMs);
  const byChannel = (c: Channel) => winners.filter((w) => w.channel === c).length;
  report({
    id: "R11",
    title: "200 concurrent mixed-channel decisions of one gate",
    fault: "200 concurrent approve/reject (REST keys, sessions, email links)",
    faults: TRIALS * 200,
    lost,
    duplicated,
    figures: {
      trials: TRIALS,
      "winners api/dashboard/email": `${byChannel("api")}/${byChannel("dashboard")}/${byChannel("email")}`,
      "winners approve/reject": `${winners.filter((w) => w.decision === "approve").length}/${winners.filter((w) => w.decision === "reject").length}`,
      refusals,
      "409 naming the winner": refusalsNamingWinner,
      "of which email pages": emailNamingWinner,
      "email 409 'no longer applies' (not naming the winner)": emailNoLongerApplies,
      "stale audit rows per trial p50": stale.median,
      "stale audit rows per trial max": stale.max,
      "trial p50 ms": latency.median,
      "trial max ms": latency.max,
    },
    ms: Date.now() - started,
  });
  expect(problems).toEqual([]);
  expect({ lost, duplicated }).toEqual({ lost: 0, duplicated: 0 });
  expect(winners).toHaveLength(TRIALS);
  expect(refusals).toBe(TRIALS * 199);
  // Every refusal, on every channel, names the winner.
  expect(emailNoLongerApplies).toBe(0);
  expect(refusalsNamingWinner).toBe(TRIALS * 199);
  // Stale refusals are audited at most once per (actor, channel, decision): 5 keys + 2 sessions, 2 decisions each.
  expect(stale.max).toBeLessThanOrEqual((restKeys.length + sessions.length) * 2);
});
