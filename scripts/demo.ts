/**
 * The end-to-end demo on real data: the ASOS Digital Experiments Dataset
 * (Liu, Cardoso, Couturier & McCoy, NeurIPS 2021, CC BY 4.0; see data/asos).
 *
 * 1. Load the 99 treatment-vs-control comparisons of metric 1 and write every
 *    checkpoint into an "app" database with a simulated clock.
 * 2. Start the API and the worker on a fresh runtime database.
 * 3. Apply an outcome (signal: metric 1; guardrail: metric 2; a kill threshold)
 *    with the CLI, and activate it.
 * 4. Submit one hypothesis per comparison over the API, approve the portfolio as
 *    a PM, claim and report each build as an agent, approve each launch.
 * 5. Run the clock. The worker polls every experiment through the `postgres`
 *    connector (or the source's, below) and decides: pauses, analysis gates, or
 *    nothing. This script only moves the clock and prints what the runtime did.
 * 6. Print a table per comparison against the fixed-horizon result on the full
 *    data, and a summary. The API and the worker keep running for exploration.
 *
 * `--source mariadb` keeps the app database on MariaDB (TEST_MYSQL_URL or
 * mysql://root@127.0.0.1:3306) and reads it with the `mysql` connector;
 * `--source duckdb` exports it as Parquet files into .tmp/demo-duckdb (the
 * worker's SOURCE_CSV_DIR) and reads them with the `duckdb` connector. The
 * decisions are the same as on Postgres (the default, `--source postgres`).
 *
 * Environment: DATABASE_URL (a Postgres URL on the server to use; set by
 * scripts/demo.sh), REDIS_URL, PORT (default 8080), WORKER_PORT (8081),
 * DEMO_MS_PER_DAY (default 400: one simulated day per 0.4 s).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { startMailCatcher } from "@outcome-runtime/notify/test-support";
import { verifyWebhookSignature } from "@outcome-runtime/runtime";
import { Redis } from "ioredis";
import type { ParsedMail } from "mailparser";
// biome-ignore lint/style/noRestrictedImports: the demo administers its own databases (create and drop), outside the runtime's storage layer
import pg from "pg";
import { type AsosComparison, closeAppPools, createAppDatabase, loadAsos, SIM_EPOCH, setClock } from "./demo/asos";
import { createDuckdbAppFiles, type DuckdbApp } from "./demo/duckdb-app";
import { createMariadbAppDatabase, type MariadbApp } from "./demo/mariadb-app";
import { type DemoSource, demoOutcomeYaml } from "./demo/outcome";
import { type DemoRow, fullDataResult, renderReport, summarize } from "./demo/report";

const root = fileURLToPath(new URL("..", import.meta.url));
const tmp = `${root}.tmp`;
const port = process.env.PORT ?? "8080";
const workerPort = process.env.WORKER_PORT ?? "8081";
const url = `http://127.0.0.1:${port}`;
const msPerDay = Number(process.env.DEMO_MS_PER_DAY ?? 400);
const OUTCOME = "asos-metric-1";
const PM = "pm@asos-demo.example";
const QUEUE_PREFIX = "outcome-runtime-demo";
const RUNTIME_DB = "outcome_runtime_demo";
const APP_DB = "outcome_runtime_demo_app";
/** `--source duckdb`: the directory of the exported files, under the repository's root. */
const DUCKDB_DIR = ".tmp/demo-duckdb";
const DAY_MS = 86_400_000;
const ALPHA = 0.05;

/** Where the team's analytics are kept: `--source postgres` (default), `--source mariadb` or `--source duckdb`. */
function sourceArgument(argv: readonly string[]): DemoSource {
  const at = argv.indexOf("--source");
  const value = at === -1 ? (argv.find((a) => a.startsWith("--source="))?.slice(9) ?? "postgres") : argv[at + 1];
  if (value === "postgres" || value === "mariadb" || value === "duckdb") return value;
  process.stderr.write(
    `demo: --source ${value ?? "(nothing)"}: write --source postgres, --source mariadb or --source duckdb\n`,
  );
  process.exit(2);
}
const SOURCE = sourceArgument(process.argv.slice(2));

function databaseUrl(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

function secret(file: string, prefix = ""): string {
  const path = `${tmp}/${file}`;
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(tmp, { recursive: true });
  const value = `${prefix}${randomBytes(32).toString("base64url")}`;
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return value;
}

const adminKey = secret("demo-api-key", "ork_");
const webhookSecret = secret("demo-webhook-secret");

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m── ${text}\x1b[0m\n`);
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function api<T>(method: string, path: string, body?: unknown, key = adminKey): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as T & { detail?: string };
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${json.detail ?? ""}`);
  return json;
}

/** Stop the processes a previous demo left running (their pids are in .tmp). */
async function stopPrevious(): Promise<void> {
  for (const name of ["demo-api", "demo-worker"]) {
    const file = `${tmp}/${name}.pid`;
    if (!existsSync(file)) continue;
    const pid = Number(readFileSync(file, "utf8").trim());
    try {
      process.kill(pid, "SIGTERM");
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        process.kill(pid, 0);
      }
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

/** Start a long-lived process detached from the demo, its output in .tmp/<name>.log. */
function startDetached(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  const log = openSync(`${tmp}/${name}.log`, "w");
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  child.unref();
  writeFileSync(`${tmp}/${name}.pid`, `${child.pid}\n`);
  return child;
}

function logTail(name: string): string {
  try {
    return readFileSync(`${tmp}/${name}.log`, "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "(no log)";
  }
}

async function waitReady(name: string, child: ChildProcess, readyUrl: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the ${name} exited before it became ready; its log (.tmp/${name}.log) ends with:\n${logTail(name)}`,
      );
    }
    try {
      if ((await fetch(readyUrl)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the ${name} did not become ready within 60 s; see .tmp/${name}.log:\n${logTail(name)}`);
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    say(`$ outcome-runtime ${args.join(" ")}`);
    const child = spawn(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env,
      stdio: "inherit",
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

interface Received {
  body: string;
  signature: string | undefined;
  event: string | undefined;
}

/** A local webhook receiver standing in for a feature-flag system. */
/** The decision links of a gate email, from its plain-text body. */
function emailLinks(mail: ParsedMail): { url: string; gateId: string; decision: string }[] {
  return [...new Set((mail.text ?? "").match(/https?:\/\/\S+\/email\/gates\/\S+/g) ?? [])].map((url) => {
    const [, , , gateId = "", decision = ""] = new URL(url).pathname.split("/");
    return { url, gateId, decision };
  });
}

/** Open a decision link as a browser does, then submit its confirmation form with a reason. */
async function decideByEmail(
  link: string,
  reason: string,
): Promise<{ confirm: number; decided: number; again: number }> {
  const page = await fetch(link);
  const html = await page.text();
  const form = new URLSearchParams({ reason });
  for (const tag of html.match(/<input\b[^>]*type="hidden"[^>]*>/g) ?? []) {
    const name = /name="([^"]*)"/.exec(tag)?.[1];
    const value = /value="([^"]*)"/.exec(tag)?.[1];
    if (name !== undefined && value !== undefined) form.append(name, value);
  }
  const decided = await fetch(link, { method: "POST", body: form });
  const again = await fetch(link, { method: "POST", body: new URLSearchParams({ reason: "second click" }) });
  return { confirm: page.status, decided: decided.status, again: again.status };
}

function webhookReceiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        body: Buffer.concat(chunks).toString("utf8"),
        signature: req.headers["x-outcome-runtime-signature"] as string | undefined,
        event: req.headers["x-outcome-runtime-event"] as string | undefined,
      });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const p = typeof address === "object" && address !== null ? address.port : 0;
      resolve({ server, url: `http://127.0.0.1:${p}/hooks`, received });
    });
  });
}

async function recreateDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return databaseUrl(serverUrl, name);
}

async function clearQueues(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${QUEUE_PREFIX}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

interface AuditItem {
  id: string;
  at: string;
  action: string;
  subjectId: string;
  actor: { name: string } | null;
  after: { reason?: string; detail?: string; analysis_ts?: string } | null;
}

interface ExperimentView {
  experiment: { id: string; key: string; state: string };
  latestAnalysis: {
    ts: string;
    effect: number | null;
    ci: [number, number] | null;
    decision: { reason: string };
  } | null;
}

function dayOf(ts: string): number {
  return Math.round(((new Date(ts).getTime() - SIM_EPOCH.getTime()) / DAY_MS) * 2) / 2;
}

async function main(): Promise<void> {
  const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const started = Date.now();
  mkdirSync(tmp, { recursive: true });
  await stopPrevious();

  step("loading the ASOS Digital Experiments Dataset (data/asos, CC BY 4.0)");
  const asos = await loadAsos();
  const comparisons = asos.comparisons.filter((c) => (c.metrics[1]?.length ?? 0) > 0);
  say(
    `${asos.rows} rows, ${comparisons.length} treatment-vs-control comparisons with metric 1; skipped: ${asos.skipped
      .map((s) => `${s.count} (${s.reason})`)
      .join(", ")}`,
  );

  step(
    SOURCE === "duckdb"
      ? `writing the checkpoints as Parquet into ${DUCKDB_DIR} (the team's analytics, on a simulated clock)`
      : `writing the checkpoints into the app database ${APP_DB}${SOURCE === "mariadb" ? " on MariaDB" : ""} (the team's analytics, on a simulated clock)`,
  );
  // The app outside Postgres (its clock, its newest checkpoints), and what the API and the worker need to read it.
  let otherApp: MariadbApp | DuckdbApp | undefined;
  let appUrl = "";
  let sourceEnv: NodeJS.ProcessEnv;
  if (SOURCE === "mariadb") {
    const mariadbApp = await createMariadbAppDatabase(
      process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306",
      APP_DB,
      comparisons,
    );
    otherApp = mariadbApp;
    sourceEnv = { OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL: mariadbApp.readerUrl };
  } else if (SOURCE === "duckdb") {
    const duckdbApp = await createDuckdbAppFiles(`${root}${DUCKDB_DIR}`, comparisons);
    otherApp = duckdbApp;
    // The directory the duckdb connector may read, and only it: the demo's keys in .tmp stay out of its sandbox.
    sourceEnv = { SOURCE_CSV_DIR: duckdbApp.dir };
  } else {
    const app = await createAppDatabase(serverUrl, APP_DB, comparisons);
    appUrl = app.url;
    await setClock(appUrl, -1);
    // The app database as the read-only role: the runtime never reads a source as a role that could write.
    sourceEnv = { OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL: app.readerUrl };
  }
  const moveClock = (day: number) => (otherApp === undefined ? setClock(appUrl, day) : otherApp.setClock(day));
  const newestCheckpoints = () =>
    otherApp === undefined ? newestPostgresCheckpoints(appUrl) : otherApp.newestCheckpoints();

  step(`starting the API and the worker on a fresh runtime database ${RUNTIME_DB}`);
  const runtimeUrl = await recreateDatabase(serverUrl, RUNTIME_DB);
  await clearQueues(redisUrl);
  const hooks = await webhookReceiver();
  // Gate emails go to an SMTP catcher in this process (as Mailpit does with docker compose).
  const mail = await startMailCatcher();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: runtimeUrl,
    REDIS_URL: redisUrl,
    PORT: port,
    WORKER_PORT: workerPort,
    QUEUE_PREFIX,
    OUTCOME_RUNTIME_API_KEY: adminKey,
    OUTCOME_RUNTIME_URL: url,
    ...sourceEnv,
    RECONCILE_INTERVAL_MS: "1000",
    WORKER_CONCURRENCY: "6",
    OUTCOME_RUNTIME_WEBHOOK_URL: hooks.url,
    OUTCOME_RUNTIME_WEBHOOK_SECRET: webhookSecret,
    // Gate emails go to the demo's own SMTP catcher; their links point at this API.
    SMTP_URL: mail.url,
    MAIL_FROM: "Outcome Runtime demo <gates@demo.example>",
    OUTCOME_RUNTIME_PUBLIC_URL: url,
    OUTBOX_INTERVAL_MS: "500",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
  };
  const apiProcess = startDetached("demo-api", "services/api/src/server.ts", env);
  await waitReady("demo-api", apiProcess, `${url}/readyz`);
  const workerProcess = startDetached("demo-worker", "services/worker/src/main.ts", { ...env, LOG_LEVEL: "info" });
  await waitReady("demo-worker", workerProcess, `http://127.0.0.1:${workerPort}/readyz`);
  say(`API ${url} (pid ${apiProcess.pid}), worker :${workerPort} (pid ${workerProcess.pid})`);

  step("applying the outcome with the CLI");
  const yamlPath = `${tmp}/asos-outcome.yaml`;
  writeFileSync(yamlPath, demoOutcomeYaml({ id: OUTCOME, pm: PM, alpha: ALPHA, source: SOURCE }));
  for (const args of [
    ["validate", yamlPath],
    ["apply", yamlPath],
    ["activate", OUTCOME],
  ]) {
    if ((await runCli(args, env)) !== 0) throw new Error(`outcome-runtime ${args[0]} failed`);
  }

  step("people and agents: a PM (approver) and a coding agent get API keys");
  const pm = await api<{ key: string }>("POST", "/v1/keys", { name: PM, role: "approver" });
  const agent = await api<{ key: string }>("POST", "/v1/keys", { name: "demo-agent", role: "agent" });

  step(`submitting ${comparisons.length} hypotheses (one per ASOS comparison)`);
  let portfolioGate = "";
  for (const c of comparisons) {
    const proposed = await api<{ gate: { id: string } }>(
      "POST",
      `/v1/outcomes/${OUTCOME}/experiments`,
      {
        key: c.key,
        title: `ASOS experiment ${c.experimentId}, variant ${c.variantId}`,
        statement: `Variant ${c.variantId} of ASOS experiment ${c.experimentId} changes metric 1 (a real experiment, replayed).`,
        arms: [
          { name: "control", weight: c.weights.control },
          { name: "treatment", weight: c.weights.treatment },
        ],
        touchedPaths: [`apps/web/src/experiments/${c.experimentId}/**`],
      },
      pm.key,
    );
    portfolioGate = proposed.gate.id;
  }
  await api("POST", `/v1/gates/${portfolioGate}/decision`, { decision: "approve", reason: "replay them all" }, pm.key);
  say(`portfolio approved by ${PM}`);
  for (const c of comparisons) {
    await api("POST", `/v1/experiments/${c.key}/transitions`, { action: "claim" }, agent.key);
    const built = await api<{ openedGates: { id: string; kind: string }[] }>(
      "POST",
      `/v1/experiments/${c.key}/transitions`,
      {
        action: "report_built",
        changedPaths: [`apps/web/src/experiments/${c.experimentId}/variant.tsx`],
        build: { summary: `Variant ${c.variantId} behind the flag ${c.key}`, flagKey: c.key },
      },
      agent.key,
    );
    const launch = built.openedGates.find((g) => g.kind === "launch_approval");
    if (launch === undefined) throw new Error(`no launch gate opened for ${c.key}`);
    await api("POST", `/v1/gates/${launch.id}/decision`, { decision: "approve" }, pm.key);
  }
  say(`${comparisons.length} experiments claimed and built by demo-agent, launched by ${PM}`);

  const lastDay = Math.max(...comparisons.map((c) => c.metrics[1]?.at(-1)?.day ?? 0));
  step(`running the simulated clock to day ${lastDay} (${msPerDay} ms per day); decisions are the worker's`);
  const seen = new Set<string>();
  const keyById = new Map<string, string>();
  const printDecisions = async () => {
    const fresh: { day: number; line: string }[] = [];
    for (const action of ["experiment.paused", "experiment.analysing"]) {
      const { items } = await api<{ items: AuditItem[] }>("GET", `/v1/audit?action=${action}&limit=1000`);
      for (const e of items) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        let key = keyById.get(e.subjectId);
        if (key === undefined) {
          key = (await api<ExperimentView>("GET", `/v1/experiments/${e.subjectId}`)).experiment.key;
          keyById.set(e.subjectId, key);
        }
        const day = e.after?.analysis_ts ? dayOf(e.after.analysis_ts) : Number.NaN;
        const verb = action.replace("experiment.", "").padEnd(9);
        fresh.push({
          day,
          line: `  day ${day.toFixed(1).padStart(5)}  ${key.padEnd(18)} ${verb} by ${e.actor?.name ?? "?"}: ${e.after?.detail ?? ""}`,
        });
      }
    }
    for (const f of fresh.sort((a, b) => a.day - b.day)) say(f.line);
  };
  for (let day = 0; day <= lastDay; day += 0.5) {
    await moveClock(day);
    await new Promise((r) => setTimeout(r, msPerDay / 2));
    if (day % 5 === 0) {
      await printDecisions();
      if (day % 20 === 0) say(`  … simulated day ${day}`);
    }
  }
  // Let the worker catch up with the last checkpoints.
  let previous = -1;
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const pending = await countBehind(runtimeUrl, await newestCheckpoints());
    await printDecisions();
    if (pending === 0 || pending === previous) break;
    previous = pending;
  }
  await printDecisions();

  step("the runtime's decisions against the fixed-horizon test on the full data (metric 1)");
  const rows: DemoRow[] = [];
  const byKey = new Map<string, AsosComparison>(comparisons.map((c) => [c.key, c]));
  let workerDecisions = 0;
  for (const c of comparisons) {
    const view = await api<ExperimentView>("GET", `/v1/experiments/${c.key}`);
    const decided = view.experiment.state === "paused" || view.experiment.state === "analysing";
    const a = view.latestAnalysis;
    if (decided) {
      const events = await api<{ items: AuditItem[] }>("GET", `/v1/audit?subjectId=${view.experiment.id}&limit=100`);
      const decision = events.items.find(
        (e) => e.action === "experiment.paused" || e.action === "experiment.analysing",
      );
      if (decision?.actor?.name !== "worker")
        throw new Error(`${c.key} was decided by ${decision?.actor?.name}, not the worker`);
      workerDecisions += 1;
    }
    const full = fullDataResult(byKey.get(c.key) as AsosComparison, 1, ALPHA);
    rows.push({
      key: c.key,
      decisionDay: decided && a !== null ? dayOf(a.ts) : null,
      lastDay: c.metrics[1]?.at(-1)?.day ?? c.lastDay,
      decision: decided ? `${view.experiment.state} (${a?.decision.reason ?? "?"})` : view.experiment.state,
      reason: decided ? ((a?.decision as { detail?: string } | undefined)?.detail ?? null) : null,
      effect: a?.effect ?? null,
      ci: a?.ci ?? null,
      full,
    });
  }
  process.stdout.write(`${renderReport(rows)}\n`);
  const summary = summarize(rows);

  const verified = hooks.received.filter((h) => verifyWebhookSignature(webhookSecret, h.body, h.signature)).length;
  say(
    `\nEvery decision above was taken by the worker (${workerDecisions} audit events with actor "worker"). ` +
      `Webhooks received: ${hooks.received.length}, signature verified: ${verified}.`,
  );
  say(`Contradictions listed: ${summary.contradictingSignificant.length}.`);
  say(`The demo took ${((Date.now() - started) / 1000).toFixed(0)} s.`);

  step(`${PM} decides two analysis reviews from her inbox (the links in the gate emails)`);
  const inbox = await api<{ items: { id: string; experimentId: string; context: { reason?: string } }[] }>(
    "GET",
    `/v1/gates?assignee=${encodeURIComponent(PM)}&status=pending&kind=analysis_review&limit=200`,
    undefined,
    pm.key,
  );
  say(`pending analysis reviews in ${PM}'s inbox: ${inbox.items.length}`);
  const picks = [
    { reason: "win", decision: "ship", why: "the always-valid interval excludes zero on the good side" },
    { reason: "loss", decision: "roll_back", why: "the always-valid interval excludes zero on the bad side" },
  ];
  for (const pick of picks) {
    const gate = inbox.items.find((g) => g.context.reason === pick.reason);
    if (gate === undefined) continue;
    const deadline = Date.now() + 20_000;
    let link: string | undefined;
    while (link === undefined && Date.now() < deadline) {
      link = mail.received
        .flatMap((m) => emailLinks(m.mail))
        .find((l) => l.gateId === gate.id && l.decision === pick.decision)?.url;
      if (link === undefined) await new Promise((r) => setTimeout(r, 250));
    }
    if (link === undefined) throw new Error(`no ${pick.decision} link arrived for gate ${gate.id}`);
    const statuses = await decideByEmail(link, pick.why);
    const after = await api<{
      gate: { decision: { decision: string; channel: string; decidedBy: string } | null };
      experiments: { key: string; state: string }[];
    }>("GET", `/v1/gates/${gate.id}`);
    if (after.gate.decision?.channel !== "email") throw new Error(`gate ${gate.id} was not decided by email`);
    say(
      `  ${after.experiments[0]?.key}: confirmation page ${statuses.confirm}, POST ${statuses.decided} → ` +
        `${after.gate.decision.decision} by ${after.gate.decision.decidedBy} via ${after.gate.decision.channel}, ` +
        `experiment ${after.experiments[0]?.state}; a second click → ${statuses.again} (already decided)`,
    );
  }
  const bySubject = new Map<string, number>();
  for (const { mail: m } of mail.received) {
    const kind = /Decision needed: ([a-z ]+?) for/.exec(m.subject ?? "")?.[1] ?? "other";
    bySubject.set(kind, (bySubject.get(kind) ?? 0) + 1);
  }
  say(`Gate emails received: ${mail.received.length} (${[...bySubject].map(([k, n]) => `${n} ${k}`).join(", ")}).`);

  hooks.server.close();
  await mail.close();
  await closeAppPools();
  await otherApp?.close();
  step("the API and the worker keep running");
  say(`API:        ${url}  (OpenAPI at ${url}/docs)`);
  say(
    `API key:    .tmp/demo-api-key   e.g. curl -H "Authorization: Bearer $(cat .tmp/demo-api-key)" ${url}/v1/outcomes/${OUTCOME}`,
  );
  writeFileSync(`${root}.tmp/demo-pm-key`, `${pm.key}\n`, { mode: 0o600 });
  say(`Dashboard:  ${url}/   sign in as ${PM} with the key in .tmp/demo-pm-key`);
  say("Logs:       .tmp/demo-api.log, .tmp/demo-worker.log");
  say(`Stop them:  kill $(cat .tmp/demo-api.pid) $(cat .tmp/demo-worker.pid)`);
}

/** Experiment key → the newest checkpoint of metric 1 in the Postgres app database, in ms since the epoch. */
async function newestPostgresCheckpoints(appUrl: string): Promise<Map<string, number>> {
  const app = new pg.Client({ connectionString: appUrl });
  await app.connect();
  try {
    const newest = await app.query<{ experiment_key: string; ts: Date }>(
      "SELECT experiment_key, max(ts) AS ts FROM asos_checkpoint WHERE metric_id = 1 GROUP BY experiment_key",
    );
    return new Map(newest.rows.map((r) => [r.experiment_key, r.ts.getTime()]));
  } finally {
    await app.end();
  }
}

/** Running experiments whose newest analysis is older than their newest checkpoint (`wanted`, ms since the epoch). */
async function countBehind(runtimeUrl: string, wanted: ReadonlyMap<string, number>): Promise<number> {
  const runtime = new pg.Client({ connectionString: runtimeUrl });
  await runtime.connect();
  try {
    const analysed = await runtime.query<{ key: string; ts: Date | null }>(
      `SELECT e.key, max(a.ts) AS ts FROM experiments e LEFT JOIN analyses a ON a.experiment_id = e.id
        WHERE e.state = 'running' GROUP BY e.key`,
    );
    return analysed.rows.filter((r) => (r.ts?.getTime() ?? 0) < (wanted.get(r.key) ?? 0)).length;
  } finally {
    await runtime.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
