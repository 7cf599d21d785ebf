/**
 * `pnpm example:data`: an analytics database to try the example outcome
 * with (outcome.example.yaml, or examples/trial/checkout-abandonment.yaml
 * with a trial's timings).
 *
 *   pnpm example:data setup [--database outcome_runtime_example] [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
 *     Creates the database when missing, the tables the example's queries read
 *     (examples/data/schema.sql: exposures, checkout_sessions,
 *     payment_attempts) and the read-only role the runtime reads through
 *     (docs/connectors.md#a-read-only-role). Prints, on standard output, the
 *     `export OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL=...` line the API
 *     and the worker need (`eval "$(pnpm --silent example:data setup)"`).
 *
 *   pnpm example:data feed [--database ...] [--admin-url ...] [--outcome checkout-abandonment]
 *                          [--effects win,guardrail,kill] [--rate 100] [--for 10m] [--until-decided]
 *     Every second, writes checkout sessions for each running experiment of
 *     the outcome (read from the API: OUTCOME_RUNTIME_URL, OUTCOME_RUNTIME_API_KEY),
 *     as a flag system and a checkout would log them. The experiments get the
 *     effects in the order they were launched: `win` (the treatment's sessions
 *     are abandoned less: 60 % against 68 %), `kill` (more: 78 %),
 *     `guardrail` (as many, but 8 % of its payments fail against 2 %), `none`.
 *     With --until-decided it stops when none of the fed experiments runs any
 *     more (each was paused or went to analysis).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readerOf } from "@outcome-runtime/testing/read-only-role";
// biome-ignore lint/style/noRestrictedImports: the script writes the example's analytics database, as a team's pipeline would
import pg from "pg";

const SCHEMA = fileURLToPath(new URL("../examples/data/schema.sql", import.meta.url));

/** Per effect: the share of the treatment's sessions abandoned, and of its payment attempts that fail. */
const EFFECTS = {
  none: { abandoned: 0.68, errors: 0.02 },
  win: { abandoned: 0.6, errors: 0.02 },
  kill: { abandoned: 0.78, errors: 0.02 },
  guardrail: { abandoned: 0.68, errors: 0.08 },
} as const;
type Effect = keyof typeof EFFECTS;
const CONTROL = EFFECTS.none;

function fail(message: string): never {
  process.stderr.write(`example:data: ${message}\n`);
  process.exit(1);
}

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    database: { type: "string", default: "outcome_runtime_example" },
    "admin-url": { type: "string" },
    outcome: { type: "string", default: "checkout-abandonment" },
    effects: { type: "string", default: "win,guardrail,kill" },
    rate: { type: "string", default: "100" },
    for: { type: "string" },
    "until-decided": { type: "boolean", default: false },
    url: { type: "string" },
    "api-key": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});

const command = positionals[0];
if (values.help || (command !== "setup" && command !== "feed")) {
  process.stderr.write(
    [
      "usage: pnpm example:data setup [--database <name>] [--admin-url <postgres url>]",
      "       pnpm example:data feed  [--database <name>] [--admin-url <postgres url>] [--outcome <slug>]",
      "                               [--effects win,guardrail,kill] [--rate <sessions/s>] [--for <duration>] [--until-decided]",
      "",
      "setup creates the analytics tables the example outcome reads and the read-only role, and prints",
      "  export OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL=...   (eval it for the API and the worker)",
      "feed writes sessions for the outcome's running experiments every second (the API from",
      "OUTCOME_RUNTIME_URL and OUTCOME_RUNTIME_API_KEY, or --url and --api-key). See README: Try the example outcome.",
    ].join("\n") + "\n",
  );
  process.exit(values.help ? 0 : 2);
}

const database = values.database;
if (!/^[a-z_][a-z0-9_]{0,62}$/u.test(database)) {
  fail(`--database: "${database}" is not a plain database name (lowercase letters, digits, _)`);
}
const adminBase =
  values["admin-url"] ??
  `postgres://${process.env.POSTGRES_USER ?? "postgres"}@${process.env.POSTGRES_HOST ?? "127.0.0.1"}:${process.env.POSTGRES_PORT ?? "5432"}/postgres`;
if (!URL.canParse(adminBase)) fail(`--admin-url: "${adminBase}" is not a postgres:// URL`);

/** `base` pointed at database `name`. */
function databaseUrl(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: adminBase });
  await admin.connect().catch((error: Error) => fail(`cannot connect to ${new URL(adminBase).host}: ${error.message}`));
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) {
      await admin.query(`CREATE DATABASE "${database}"`);
      say(`created the database ${database}`);
    }
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminBase, database);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(readFileSync(SCHEMA, "utf8"));
  } finally {
    await client.end();
  }
  const reader = await readerOf(url);
  say(
    `${database}: exposures, checkout_sessions and payment_attempts ready; the runtime reads them as outcome_runtime_reader`,
  );
  // The only line on standard output: what the API and the worker need.
  process.stdout.write(`export OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL='${reader}'\n`);
}

/** `10m` → 600 000; `90s` → 90 000. */
function durationMs(text: string): number {
  const match = /^([1-9][0-9]*)(s|m|h)$/u.exec(text);
  if (match === null) fail(`--for: "${text}" is not a duration such as 90s, 10m or 1h`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "s" | "m" | "h"];
}

interface ExperimentJson {
  key: string;
  state: string;
  launchedAt: string | null;
  arms: { name: string; weight: number }[];
}

/** Every experiment of the outcome, following the list's cursor page by page. */
async function runningExperiments(apiUrl: string, apiKey: string, outcome: string): Promise<ExperimentJson[]> {
  const items: ExperimentJson[] = [];
  let cursor: string | null = null;
  do {
    const query = `limit=200${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
    const response = await fetch(`${apiUrl}/v1/outcomes/${encodeURIComponent(outcome)}/experiments?${query}`, {
      headers: { authorization: `Bearer ${apiKey}` },
    }).catch((error: Error) => fail(`cannot reach the API at ${apiUrl}: ${error.message}`));
    if (!response.ok)
      fail(`the API answered ${response.status} for the experiments of ${outcome}: ${await response.text()}`);
    const body = (await response.json()) as { items: ExperimentJson[]; nextCursor: string | null };
    items.push(...body.items);
    cursor = body.nextCursor;
  } while (cursor !== null);
  return items;
}

/** An arm drawn by the arms' weights. */
function drawArm(arms: { name: string; weight: number }[]): string {
  let u = Math.random();
  for (const arm of arms) {
    u -= arm.weight;
    if (u < 0) return arm.name;
  }
  return arms.at(-1)?.name ?? "control";
}

async function feed(): Promise<void> {
  const apiUrl = (values.url ?? process.env.OUTCOME_RUNTIME_URL ?? "http://127.0.0.1:8080").replace(/\/+$/u, "");
  const apiKey = values["api-key"] ?? process.env.OUTCOME_RUNTIME_API_KEY ?? "";
  if (apiKey === "") fail("no API key: set OUTCOME_RUNTIME_API_KEY (or pass --api-key)");
  const effects = values.effects.split(",").map((e) => e.trim());
  for (const effect of effects) {
    if (!(effect in EFFECTS)) fail(`--effects: "${effect}" is not one of ${Object.keys(EFFECTS).join(", ")}`);
  }
  const rate = Number(values.rate);
  if (!Number.isInteger(rate) || rate < 1 || rate > 10_000)
    fail(`--rate: "${values.rate}" is not a whole number from 1 to 10000`);
  const stopAt = values.for === undefined ? Number.POSITIVE_INFINITY : Date.now() + durationMs(values.for);
  const pool = new pg.Pool({ connectionString: databaseUrl(adminBase, database), max: 2 });
  /** key → effect, fixed the first time an experiment is seen running (in launch order). */
  const assigned = new Map<string, Effect>();
  const written = new Map<string, number>();
  let lastReport = 0;
  say(`feeding the running experiments of ${values.outcome} with ${rate} sessions a second each (Ctrl-C stops)`);
  try {
    while (Date.now() < stopAt) {
      const tick = Date.now();
      const experiments = await runningExperiments(apiUrl, apiKey, values.outcome);
      const running = experiments
        .filter((e) => e.state === "running")
        .sort((a, b) => (a.launchedAt ?? "").localeCompare(b.launchedAt ?? "") || a.key.localeCompare(b.key));
      for (const e of running) {
        if (!assigned.has(e.key)) {
          const effect = (effects[assigned.size] ?? "none") as Effect;
          assigned.set(e.key, effect);
          say(`${e.key}: running, its treatment gets the effect "${effect}"`);
        }
      }
      if (values["until-decided"] && assigned.size > 0 && running.length === 0) {
        for (const e of experiments.filter((x) => assigned.has(x.key))) say(`${e.key}: ${e.state}`);
        say("every fed experiment was decided: stopping");
        break;
      }
      for (const e of running) await writeSessions(pool, e, assigned.get(e.key) ?? "none", rate);
      for (const e of running) written.set(e.key, (written.get(e.key) ?? 0) + rate);
      if (Date.now() - lastReport >= 10_000) {
        lastReport = Date.now();
        say(
          experiments
            .filter((e) => assigned.has(e.key))
            .map((e) => `${e.key} (${assigned.get(e.key)}): ${e.state}, ${written.get(e.key) ?? 0} sessions`)
            .join("; ") || `no running experiment of ${values.outcome} yet`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (Date.now() - tick))));
    }
  } finally {
    await pool.end();
  }
}

/** `n` sessions of experiment `e`: exposures, sessions and payment attempts, in one transaction. */
async function writeSessions(pool: pg.Pool, e: ExperimentJson, effect: Effect, n: number): Promise<void> {
  const now = new Date().toISOString();
  const ids: string[] = [];
  const arms: string[] = [];
  const paid: boolean[] = [];
  const amounts: number[] = [];
  const statuses: string[] = [];
  for (let i = 0; i < n; i++) {
    const arm = drawArm(e.arms);
    const rates = arm === "control" ? CONTROL : EFFECTS[effect];
    // A failed payment abandons the session; of the others, enough are abandoned for the arm's rate.
    const error = Math.random() < rates.errors;
    const abandonedOtherwise = (rates.abandoned - rates.errors) / (1 - rates.errors);
    const isPaid = !error && Math.random() >= abandonedOtherwise;
    ids.push(`${e.key}-${randomBytes(6).toString("hex")}`);
    arms.push(arm);
    paid.push(isPaid);
    amounts.push(isPaid ? Math.round(2000 + Math.random() * 8000) / 100 : 0);
    statuses.push(error ? "error" : isPaid ? "ok" : "declined");
  }
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      "INSERT INTO exposures (unit_id, experiment_key, arm, exposed_at) SELECT u, $2, a, $3 FROM unnest($1::text[], $4::text[]) AS t(u, a)",
      [ids, e.key, now, arms],
    );
    await client.query(
      "INSERT INTO checkout_sessions (session_id, created_at, paid, amount) SELECT s, $2, p, m FROM unnest($1::text[], $3::boolean[], $4::numeric[]) AS t(s, p, m)",
      [ids, now, paid, amounts],
    );
    await client.query(
      "INSERT INTO payment_attempts (session_id, status, created_at) SELECT s, st, $2 FROM unnest($1::text[], $3::text[]) AS t(s, st)",
      [ids, now, statuses],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

if (command === "setup") await setup();
else await feed();
