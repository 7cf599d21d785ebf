/**
 * The README's "Try the example outcome" block, run as written: from an empty
 * database, `pnpm example:data` and the CLI take the example outcome (with
 * its trial timings) to a win, a guardrail pause and a kill. Only what would
 * collide with other runs on this machine is changed: the databases' names,
 * the ports, and the Redis prefix (set before the block, which leaves it
 * alone). The run must finish within the README's 5 minutes.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteRedisKeys, freePort } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the test drops the databases the documented commands created
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { root } from "./support/compose";

const README = readFileSync(join(root, "README.md"), "utf8");
const MARKER = "<!-- try-the-example:";
const FIVE_MINUTES = 5 * 60_000;

/** The shell block after the marker. */
function documentedBlock(): string {
  const at = README.indexOf(MARKER);
  expect(at, "README.md has the try-the-example block").toBeGreaterThan(0);
  const fence = /```sh\n([\s\S]*?)```/u.exec(README.slice(at));
  if (fence?.[1] === undefined) throw new Error("no ```sh block after the try-the-example marker");
  return fence[1];
}

const suffix = randomBytes(4).toString("hex");
const names = { runtime: `ort_trial_${suffix}`, example: `ort_example_${suffix}` };
const prefix = `test-trial-${suffix}`;
const serverUrl = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432";
let work = "";
let shell: ReturnType<typeof spawn> | undefined;

afterAll(async () => {
  // The block leaves the API and the worker running in the background, as a newcomer's shell would.
  if (shell?.pid !== undefined) {
    try {
      process.kill(-shell.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const admin = new pg.Client({ connectionString: new URL("/postgres", serverUrl).toString() });
  await admin.connect();
  for (const name of Object.values(names)) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  await deleteRedisKeys(redis, prefix).catch(() => {});
  redis.disconnect();
  if (work !== "") await rm(work, { recursive: true, force: true });
});

it(
  "takes the example outcome from an empty database to a win, a guardrail pause and a kill within 5 minutes",
  async () => {
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const block = documentedBlock()
      .replaceAll("outcome_runtime_trial", names.runtime)
      .replaceAll("outcome_runtime_example", names.example)
      .replaceAll("8080", String(apiPort));
    // What the block must not change, set before it: the block never mentions them.
    expect(block).not.toMatch(/QUEUE_PREFIX|WORKER_PORT/);
    work = await mkdtemp(join(tmpdir(), "try-the-example-"));
    const script = [
      "set -euo pipefail",
      `export QUEUE_PREFIX=${prefix} WORKER_PORT=${workerPort} LOG_LEVEL=info`,
      `cd ${JSON.stringify(root)}`,
      // The block writes api.log and worker.log in the current folder; here they go to a folder of the test's own.
      block
        .replaceAll("> api.log", `> ${join(work, "api.log")}`)
        .replaceAll("> worker.log", `> ${join(work, "worker.log")}`),
    ].join("\n");
    const started = Date.now();
    shell = spawn("bash", ["-c", script], {
      cwd: root,
      detached: true,
      env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    shell.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    shell.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), FIVE_MINUTES);
      shell?.on("exit", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    const seconds = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`try-the-example: the documented commands took ${seconds} s\n`);
    expect(code, `the block did not finish within 5 minutes, or failed:\n${output.slice(-4000)}`).toBe(0);

    // Each of the three was decided, for the reason its traffic called for.
    const listed = output.slice(output.lastIndexOf("checkout-abandonment\n"));
    expect(listed).toMatch(/\[analysing\]/u);
    expect(listed.match(/\[paused\]/gu)).toHaveLength(2);
    expect(output).toMatch(/its treatment gets the effect "win"/u);
    expect(output).toMatch(/every fed experiment was decided: stopping/u);
    const worker = readFileSync(join(work, "worker.log"), "utf8");
    expect(worker).toMatch(/"reason":"kill"/u);
    expect(worker).toMatch(/"reason":"guardrail"/u);
    expect(worker).toMatch(/"reason":"win"/u);
  },
  FIVE_MINUTES + 60_000,
);
