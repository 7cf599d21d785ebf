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
 * `--flags unleash` gives the experiments' splits to a real Unleash
 * (`unleash-server`, started on a database of its own, stopped and dropped at
 * the end, also on Ctrl-C or a failure): approving the hypotheses creates one
 * flag per experiment (control to everyone; a build is reported once its flag
 * exists), each launch counts from Unleash's confirmation, a kill sends everyone
 * to control, and the table shows each experiment's last split applied and when
 * each kill's rollback was applied. The official `unleash-client` then checks
 * what an application is served.
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
import { type DemoFlags, type DemoSource, demoOutcomeYaml } from "./demo/outcome";
import { type DemoFlag, type DemoRow, fullDataResult, renderReport, rollbackDelayMs, summarize } from "./demo/report";

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

/** The flag provider that owns the splits: `--flags unleash`, or none (the default). */
function flagsArgument(argv: readonly string[]): "unleash" | null {
  const at = argv.indexOf("--flags");
  const value = at === -1 ? argv.find((a) => a.startsWith("--flags="))?.slice(8) : argv[at + 1];
  if (at === -1 && value === undefined) return null;
  if (value === "unleash") return value;
  process.stderr.write(`demo: --flags ${value ?? "(nothing)"}: write --flags unleash, or leave it out\n`);
  process.exit(2);
}
const FLAGS = flagsArgument(process.argv.slice(2));
/** The variable the worker and the API read the Unleash admin token from (the outcome's `flags.api_token_env`). */
const FLAG_TOKEN_ENV = "OUTCOME_RUNTIME_FLAGS_UNLEASH_TOKEN";

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

/** An API answer other than 2xx, with its problem code. */
class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
  }
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
  const json = (await response.json()) as T & { detail?: string; code?: string };
  if (!response.ok)
    throw new ApiError(`${method} ${path}: ${response.status} ${json.detail ?? ""}`, response.status, json.code);
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
  after: {
    reason?: string;
    detail?: string;
    analysis_ts?: string;
    /** Flag rollouts (`experiment.rollout_applied`, `experiment.rollback_applied`). */
    weights?: Record<string, number>;
    requested_at?: string;
    applied_at?: string;
  } | null;
}

interface ExperimentView {
  experiment: { id: string; key: string; state: string };
  /** Its flag when the outcome has a flag provider: the split wanted now, applied or pending. */
  flag?: { status: string; reason: string } | null;
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type RunningUnleash = import("@outcome-runtime/testing/unleash").RunningUnleash;

/** The demo's Unleash (`--flags unleash`) while it starts and runs; stopped, and its database dropped, once. */
let unleashStarting: Promise<RunningUnleash> | null = null;
let unleashStopping: Promise<void> | null = null;

/**
 * Start a real Unleash (`startUnleash` of @outcome-runtime/testing: unleash-server in a child process) on a
 * database of its own, created on the demo's Postgres server and dropped by {@link stopDemoUnleash}.
 */
function startDemoUnleash(serverUrl: string): Promise<RunningUnleash> {
  // The helper creates and drops its database on TEST_POSTGRES_URL (a server URL), connected to TEST_ADMIN_DB.
  const server = new URL(serverUrl);
  process.env.TEST_ADMIN_DB = decodeURIComponent(server.pathname.slice(1)) || "postgres";
  server.pathname = "";
  process.env.TEST_POSTGRES_URL = server.toString();
  unleashStarting = import("@outcome-runtime/testing/unleash").then((m) => m.startUnleash({ timeoutMs: 120_000 }));
  // Awaited later; a failure before then is reported there, not as an unhandled rejection.
  unleashStarting.catch(() => {});
  return unleashStarting;
}

/** Stop the demo's Unleash and drop its database (a start that failed dropped it already); nothing without one. */
function stopDemoUnleash(): Promise<void> {
  const starting = unleashStarting;
  if (starting === null) return Promise.resolve();
  unleashStopping ??= starting.then(
    (running) => running.stop(),
    () => {},
  );
  return unleashStopping;
}

/** A count of the runtime database (`sql` selects one column `n`). */
async function countOf(runtimeUrl: string, sql: string, params: unknown[] = []): Promise<number> {
  const runtime = new pg.Client({ connectionString: runtimeUrl });
  await runtime.connect();
  try {
    return Number((await runtime.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
  } finally {
    await runtime.end();
  }
}

/**
 * Wait until the count `sql` reaches `want` (the worker applying flag rollouts); returns the seconds it took.
 *
 * @throws Error after `timeoutMs`, with the rollouts' last errors
 */
async function waitForCount(
  runtimeUrl: string,
  what: string,
  sql: string,
  want: number,
  timeoutMs: number,
  params: unknown[] = [],
) {
  const started = Date.now();
  for (;;) {
    const n = await countOf(runtimeUrl, sql, params);
    if (n >= want) return (Date.now() - started) / 1000;
    if (Date.now() - started > timeoutMs) {
      const runtime = new pg.Client({ connectionString: runtimeUrl });
      await runtime.connect();
      const errors = await runtime
        .query<{ flag_key: string; last_error: string }>(
          "SELECT flag_key, last_error FROM flag_rollouts WHERE last_error IS NOT NULL AND status <> 'applied' LIMIT 3",
        )
        .finally(() => runtime.end());
      throw new Error(
        `${what}: ${n} of ${want} after ${timeoutMs / 1000} s; see .tmp/demo-worker.log${errors.rows
          .map((r) => `\n  ${r.flag_key}: ${r.last_error}`)
          .join("")}`,
      );
    }
    await sleep(250);
  }
}

/** The audit events of `action` (newest first, at most 1000). */
async function auditOf(action: string): Promise<AuditItem[]> {
  return (await api<{ items: AuditItem[] }>("GET", `/v1/audit?action=${action}&limit=1000`)).items;
}

/** The audit actions of a split applied in the flag provider (the flag's creation, a rollout, a rollback). */
const APPLIED_ACTIONS = ["experiment.flag_prepared", "experiment.rollout_applied", "experiment.rollback_applied"];

/**
 * Each experiment's flag from the audit log: its last split applied (the applied-split events) and a kill's
 * rollback (the latest `experiment.paused` event, and the `experiment.rollback_applied` of reason `pause`
 * after it); `pending` comes from the experiment's flag status.
 */
async function demoFlags(arms: readonly string[]): Promise<(experimentId: string, pending: string | null) => DemoFlag> {
  const applied = (await Promise.all(APPLIED_ACTIONS.map(auditOf))).flat();
  const paused = await auditOf("experiment.paused");
  return (experimentId, pending) => {
    const events = applied
      .filter((e) => e.subjectId === experimentId && e.after?.applied_at !== undefined)
      .sort((a, b) => ((a.after?.applied_at ?? "") < (b.after?.applied_at ?? "") ? 1 : -1));
    const last = events[0]?.after;
    // Items are newest first: the latest pause.
    const pausedAt = paused.find((e) => e.subjectId === experimentId)?.at;
    const rollback =
      pausedAt === undefined
        ? undefined
        : events.find(
            (e) =>
              e.action === "experiment.rollback_applied" &&
              e.after?.reason === "pause" &&
              (e.after.applied_at ?? "") >= pausedAt,
          );
    return {
      applied:
        last === undefined || last === null
          ? null
          : { reason: last.reason ?? "?", weights: arms.map((a) => last.weights?.[a] ?? 0), at: last.applied_at ?? "" },
      pending,
      rollback: pausedAt === undefined ? null : { pausedAt, appliedAt: rollback?.after?.applied_at ?? null },
    };
  };
}

/** `control 50.1 %, treatment 49.9 %`. */
function describeShares(shares: Readonly<Record<string, number>>): string {
  return Object.entries(shares)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, share]) => `${name} ${(share * 100).toFixed(1)} %`)
    .join(", ");
}

async function main(): Promise<void> {
  const serverUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const started = Date.now();
  mkdirSync(tmp, { recursive: true });
  await stopPrevious();
  // Unleash migrates its empty database for a while: it starts now, beside the loading below.
  const unleashReady = FLAGS === "unleash" ? startDemoUnleash(serverUrl) : null;

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

  let unleash: RunningUnleash | null = null;
  let flagEnv: NodeJS.ProcessEnv = {};
  if (unleashReady !== null) {
    step("starting a real Unleash (unleash-server) on a database of its own");
    unleash = await unleashReady;
    say(`Unleash ${unleash.url} on the database ${unleash.database}; the runtime writes the flags with an admin token`);
    flagEnv = {
      FLAG_API_URLS: `unleash=${unleash.url}/api`,
      [FLAG_TOKEN_ENV]: unleash.adminToken,
      // Unleash listens on loopback, which the outbound policy allows only when told to.
      OUTBOUND_ALLOW: "127.0.0.1,localhost",
    };
  }

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
    ...flagEnv,
  };
  const apiProcess = startDetached("demo-api", "services/api/src/server.ts", env);
  await waitReady("demo-api", apiProcess, `${url}/readyz`);
  const workerProcess = startDetached("demo-worker", "services/worker/src/main.ts", { ...env, LOG_LEVEL: "info" });
  await waitReady("demo-worker", workerProcess, `http://127.0.0.1:${workerPort}/readyz`);
  say(`API ${url} (pid ${apiProcess.pid}), worker :${workerPort} (pid ${workerProcess.pid})`);

  step("applying the outcome with the CLI");
  const yamlPath = `${tmp}/asos-outcome.yaml`;
  const flags: DemoFlags | undefined =
    unleash === null ? undefined : { provider: "unleash", apiUrl: `${unleash.url}/api`, tokenEnv: FLAG_TOKEN_ENV };
  writeFileSync(yamlPath, demoOutcomeYaml({ id: OUTCOME, pm: PM, alpha: ALPHA, source: SOURCE, flags }));
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
  if (unleash !== null) {
    // The approval asked, in its transaction, for each approved hypothesis's flag (control to everyone; the
    // outcome's own three included); the worker creates them in Unleash.
    const seconds = await waitForCount(
      runtimeUrl,
      "flags created in Unleash (created minus asked for)",
      "SELECT count(*) FILTER (WHERE applied_version IS NOT NULL) - count(*) AS n FROM flag_rollouts",
      0,
      180_000,
    );
    const flagsCreated = await countOf(runtimeUrl, "SELECT count(*) AS n FROM flag_rollouts");
    say(
      `the worker created the ${flagsCreated} flags in Unleash (control to everyone, for the builds to use) in ${seconds.toFixed(1)} s`,
    );
  }
  for (const c of comparisons) {
    await api("POST", `/v1/experiments/${c.key}/transitions`, { action: "claim" }, agent.key);
    // With flags the build uses the flag the runtime created; without, a flag of the team's own.
    const flagKey = unleash === null ? c.key : `outcome-runtime-${c.key}`;
    const built = await reportBuilt<{ openedGates: { id: string; kind: string }[] }>(
      `/v1/experiments/${c.key}/transitions`,
      {
        action: "report_built",
        changedPaths: [`apps/web/src/experiments/${c.experimentId}/variant.tsx`],
        build: { summary: `Variant ${c.variantId} behind the flag ${flagKey}`, flagKey },
      },
      agent.key,
    );
    const launch = built.openedGates.find((g) => g.kind === "launch_approval");
    if (launch === undefined) throw new Error(`no launch gate opened for ${c.key}`);
    await api("POST", `/v1/gates/${launch.id}/decision`, { decision: "approve" }, pm.key);
  }
  say(`${comparisons.length} experiments claimed and built by demo-agent, launched by ${PM}`);
  if (unleash !== null) {
    // A launch counts from Unleash's confirmation (the applied launch split sets launched_at); polls wait for it.
    const seconds = await waitForCount(
      runtimeUrl,
      "launches confirmed by Unleash",
      "SELECT count(*) AS n FROM experiments WHERE state = 'running' AND launched_at IS NOT NULL",
      comparisons.length,
      180_000,
    );
    say(`Unleash serves each arm its share: ${comparisons.length} launches confirmed in ${seconds.toFixed(1)} s`);
  }

  const lastDay = Math.max(...comparisons.map((c) => c.metrics[1]?.at(-1)?.day ?? 0));
  step(`running the simulated clock to day ${lastDay} (${msPerDay} ms per day); decisions are the worker's`);
  const seen = new Set<string>();
  const keyById = new Map<string, string>();
  /** With flags: each pause's audit time and simulated day, by experiment id, for its rollback's line. */
  const pauses = new Map<string, { at: string; day: number }>();
  const printDecisions = async () => {
    const fresh: { day: number; line: string }[] = [];
    const actions = ["experiment.paused", "experiment.analysing"];
    if (unleash !== null) actions.push("experiment.rollback_applied");
    for (const action of actions) {
      const { items } = await api<{ items: AuditItem[] }>("GET", `/v1/audit?action=${action}&limit=1000`);
      for (const e of items) {
        if (seen.has(e.id)) continue;
        if (action === "experiment.rollback_applied") {
          // A kill's rollback, once its pause has been printed (the others: a flag's creation, a roll back).
          const pause = pauses.get(e.subjectId);
          if (e.after?.reason !== "pause" || pause === undefined) continue;
          seen.add(e.id);
          const ms = rollbackDelayMs({
            applied: null,
            pending: null,
            rollback: { pausedAt: pause.at, appliedAt: e.after.applied_at ?? null },
          });
          fresh.push({
            day: pause.day,
            line: `  day ${pause.day.toFixed(1).padStart(5)}  ${(keyById.get(e.subjectId) ?? e.subjectId).padEnd(18)} rollback  applied in unleash at ${e.after.applied_at?.slice(11, 23)} UTC, ${ms === null ? "?" : Math.round(ms)} ms after the pause: control to everyone`,
          });
          continue;
        }
        seen.add(e.id);
        let key = keyById.get(e.subjectId);
        if (key === undefined) {
          key = (await api<ExperimentView>("GET", `/v1/experiments/${e.subjectId}`)).experiment.key;
          keyById.set(e.subjectId, key);
        }
        const day = e.after?.analysis_ts ? dayOf(e.after.analysis_ts) : Number.NaN;
        if (action === "experiment.paused") pauses.set(e.subjectId, { at: e.at, day });
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

  if (unleash !== null) {
    // Each kill's rollback (control to everyone) applied before the table shows when.
    await waitForCount(
      runtimeUrl,
      "paused experiments whose rollback Unleash applied",
      `SELECT count(*) FILTER (WHERE r.status = 'applied') - count(*) AS n
         FROM experiments e JOIN flag_rollouts r ON r.experiment_id = e.id WHERE e.state = 'paused'`,
      0,
      30_000,
    );
  }
  const flagOf = unleash === null ? null : await demoFlags(["control", "treatment"]);

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
      ...(flagOf === null
        ? {}
        : {
            flag: flagOf(
              view.experiment.id,
              view.flag === null || view.flag === undefined || view.flag.status === "applied" ? null : view.flag.reason,
            ),
          }),
    });
  }
  process.stdout.write(`${renderReport(rows, unleash === null ? {} : { flags: "unleash" })}\n`);
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
  const decidedByEmail: { key: string; decision: string }[] = [];
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
    if (after.experiments[0] !== undefined) {
      decidedByEmail.push({ key: after.experiments[0].key, decision: after.gate.decision.decision });
    }
  }
  const bySubject = new Map<string, number>();
  for (const { mail: m } of mail.received) {
    const kind = /Decision needed: ([a-z ]+?) for/.exec(m.subject ?? "")?.[1] ?? "other";
    bySubject.set(kind, (bySubject.get(kind) ?? 0) + 1);
  }
  say(`Gate emails received: ${mail.received.length} (${[...bySubject].map(([k, n]) => `${n} ${k}`).join(", ")}).`);

  if (unleash !== null) await closingFlags(unleash, runtimeUrl, decidedByEmail, rows);

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
  if (unleash !== null) {
    say('Flags:      Unleash is stopped: a split the runtime asks for from now on waits, retried, as "pending"');
  }
}

/** report_built, again while the experiment's flag is not created yet (`flag_not_ready`), as an agent does. */
async function reportBuilt<T>(path: string, body: unknown, key: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await api<T>("POST", path, body, key);
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== "flag_not_ready" || Date.now() > deadline) throw error;
      await sleep(250);
    }
  }
}

/**
 * With `--flags unleash`, after the decisions by email: when Unleash applied their splits (the treatment to
 * everyone on a ship, control on a roll back), what the official unleash-client serves for them and for a
 * running experiment, what was applied in all; then Unleash stops and its database is dropped.
 */
async function closingFlags(
  unleash: RunningUnleash,
  runtimeUrl: string,
  decided: readonly { key: string; decision: string }[],
  rows: readonly DemoRow[],
): Promise<void> {
  step("what Unleash serves now, read as an application reads it (the official unleash-client)");
  const targets: { key: string; state: string; weights: Record<string, number> }[] = [];
  for (const d of decided) {
    const view = await api<ExperimentView>("GET", `/v1/experiments/${d.key}`);
    const id = view.experiment.id;
    await waitForCount(
      runtimeUrl,
      `the ${d.decision} of ${d.key} applied in Unleash`,
      "SELECT count(*) AS n FROM flag_rollouts WHERE experiment_id = $1 AND reason = $2 AND status = 'applied'",
      1,
      30_000,
      [id, d.decision],
    ).catch(() => 0);
    const events = (await api<{ items: AuditItem[] }>("GET", `/v1/audit?subjectId=${id}&limit=100`)).items;
    const applied = events.find(
      (e) =>
        (e.action === "experiment.rollout_applied" || e.action === "experiment.rollback_applied") &&
        e.after?.reason === d.decision,
    );
    const ms =
      applied?.after?.applied_at === undefined || applied.after.requested_at === undefined
        ? null
        : new Date(applied.after.applied_at).getTime() - new Date(applied.after.requested_at).getTime();
    say(
      applied === undefined
        ? `  ${d.key}: the ${d.decision} is not applied in Unleash yet`
        : `  ${d.key}: ${d.decision} applied in unleash at ${applied.after?.applied_at?.slice(11, 23)} UTC, ${ms} ms after the decision`,
    );
    targets.push({
      key: d.key,
      state: view.experiment.state,
      weights: d.decision === "ship" ? { control: 0, treatment: 1 } : { control: 1, treatment: 0 },
    });
  }
  const running = rows.find((r) => r.decision === "running");
  if (running !== undefined) {
    const view = await api<ExperimentView & { experiment: { arms?: { name: string; weight: number }[] } }>(
      "GET",
      `/v1/experiments/${running.key}`,
    );
    const arms = view.experiment.arms ?? [];
    targets.push({
      key: running.key,
      state: view.experiment.state,
      weights: Object.fromEntries(arms.map((a) => [a.name, a.weight])),
    });
  }
  const { startUnleashApplication } = await import("@outcome-runtime/testing/unleash");
  const app = await startUnleashApplication(unleash, 100);
  try {
    for (const t of targets) {
      const exact = Object.values(t.weights).every((w) => w === 0 || w === 1);
      const served = await app.serves(`outcome-runtime-${t.key}`, t.weights, {
        tolerance: exact ? 0 : 0.04,
        timeoutMs: 15_000,
      });
      say(
        `  outcome-runtime-${t.key} (${t.state}): ${describeShares(served.shares)} of 2,000 user ids (the split applied: ${describeShares(t.weights)})`,
      );
    }
  } finally {
    app.close();
  }
  const byReason = new Map<string, number>();
  for (const action of APPLIED_ACTIONS) {
    for (const e of await auditOf(action)) {
      const reason = e.after?.reason ?? "?";
      byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
    }
  }
  const drift = (await auditOf("experiment.flag_drift")).length;
  say(
    `Splits applied in Unleash, each audited once: ${[...byReason].map(([r, n]) => `${r} ${n}`).join(", ")}; flag drift found: ${drift}.`,
  );
  await stopDemoUnleash();
  say(`Unleash stopped; its database ${unleash.database} dropped.`);
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

if (FLAGS !== null) {
  // Ctrl-C (or a kill) stops Unleash and drops its database; the API and the worker are left as without flags.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\ndemo: ${signal}: stopping Unleash and dropping its database\n`);
      void stopDemoUnleash().finally(() => process.exit(130));
    });
  }
}

main().then(
  // The unleash-client and the Unleash helper's module leave nothing to wait for, but do not count on it.
  () => (FLAGS === null ? undefined : process.exit(0)),
  async (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await stopDemoUnleash().catch(() => {});
    process.exit(1);
  },
);
