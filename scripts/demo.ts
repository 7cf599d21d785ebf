/**
 * The end-to-end demo: start the API (it migrates the database under the
 * advisory lock and registers the bootstrap key), apply `outcome.example.yaml`
 * with the CLI, activate it, propose a hypothesis, print where it stands, and
 * stop the API. Exits non-zero, saying why, when the API cannot start, exits
 * early or dies during the demo.
 *
 * Environment: DATABASE_URL and REDIS_URL (set by scripts/demo.sh), PORT
 * (default 8080).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const port = process.env.PORT ?? "8080";
const url = `http://127.0.0.1:${port}`;

function demoKey(): string {
  const file = `${root}.tmp/demo-api-key`;
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(`${root}.tmp`, { recursive: true });
  const key = `ork_${randomBytes(32).toString("base64url")}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

const apiKey = demoKey();
const env = {
  ...process.env,
  PORT: port,
  OUTCOME_RUNTIME_API_KEY: apiKey,
  OUTCOME_RUNTIME_URL: url,
  LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
};

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m── ${text}\x1b[0m\n`);
}

function run(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    process.stdout.write(`$ outcome-runtime ${args.join(" ")}\n`);
    const child = spawn(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env,
      stdio: "inherit",
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

async function api<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${apiKey}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as T & { detail?: string };
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${json.detail ?? ""}`);
  return json;
}

/** How the API process ended, or undefined while it still runs. */
function ended(server: ChildProcess): string | undefined {
  if (server.exitCode !== null) return `exited with code ${server.exitCode}`;
  if (server.signalCode !== null) return `was killed by ${server.signalCode}`;
  return undefined;
}

async function waitReady(server: ChildProcess, spawnFailed: () => Error | undefined): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const failed = spawnFailed();
    if (failed) throw new Error(`the API could not be started: ${failed.message}`);
    const how = ended(server);
    if (how) throw new Error(`the API ${how} before it became ready (its output is above)`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error("the API did not become ready within 60 s (its output is above)");
}

/** Stop the API if it still runs: SIGTERM, then SIGKILL after 15 s. */
async function stop(server: ChildProcess): Promise<void> {
  if (ended(server) !== undefined || server.pid === undefined) return;
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  const timer = setTimeout(() => server.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  step(`starting the API on ${url} (migrations run under an advisory lock)`);
  const server = spawn(process.execPath, ["--import", "tsx", "services/api/src/server.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  let spawnError: Error | undefined;
  server.on("error", (error) => {
    spawnError = error;
  });
  try {
    await waitReady(server, () => spawnError);
    const health = await (await fetch(`${url}/healthz`)).json();
    process.stdout.write(`healthz: ${JSON.stringify(health)}\n`);

    step("validating outcome.example.yaml");
    if ((await run(["validate", "outcome.example.yaml"])) !== 0) throw new Error("validation failed");

    step("applying it (a new revision only when the content changed)");
    if ((await run(["apply", "outcome.example.yaml"])) !== 0) throw new Error("apply failed");

    const detail = await api<{ outcome: { state: string } }>("GET", "/v1/outcomes/checkout-abandonment");
    if (detail.outcome.state === "draft") {
      step("activating it");
      if ((await run(["activate", "checkout-abandonment"])) !== 0) throw new Error("activate failed");
    }

    step("proposing a hypothesis (it joins the pending portfolio review gate)");
    const proposed = await api<{
      experiment: { key: string; state: string };
      gate: { kind: string; assignees: string[] };
    }>(
      "POST",
      "/v1/outcomes/checkout-abandonment/experiments",
      {
        title: "Show the delivery date before payment",
        statement:
          "If shoppers see the delivery date before they are asked to pay, fewer abandon the checkout, " +
          "because the main open question is answered before the commitment.",
        touchedPaths: ["apps/web/src/checkout/DeliveryEstimate.tsx"],
        prediction: { direction: "decrease", effect: 0.03, relative: true },
      },
      { "idempotency-key": "demo-delivery-date" },
    );
    process.stdout.write(
      `experiment ${proposed.experiment.key} [${proposed.experiment.state}] awaits ${proposed.gate.kind} by ${proposed.gate.assignees.join(", ")}\n`,
    );

    step("status");
    await run(["status", "checkout-abandonment"]);
    process.stdout.write(
      `\nThe API key of this demo is in .tmp/demo-api-key; the OpenAPI document is at ${url}/docs.\n`,
    );
    const how = ended(server);
    if (how) throw new Error(`the API ${how} during the demo (its output is above)`);
  } catch (error) {
    // A step that failed because the API died says so, not just "fetch failed".
    const how = ended(server);
    const message = error instanceof Error ? error.message : String(error);
    if (how && !message.startsWith("the API")) throw new Error(`${message}: the API ${how} (its output is above)`);
    throw error;
  } finally {
    await stop(server);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
