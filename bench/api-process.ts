/**
 * The API as it runs in production, in a process of its own
 * (`node --import tsx services/api/src/server.ts`), for the API and MCP
 * benchmarks: `warn` logs, the rate limit raised out of the way.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "@outcome-runtime/testing";

export interface ApiProcess {
  readonly base: string;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Requests per minute per key: far above anything a run sends, so the limit never answers 429. */
const RATE_LIMIT_PER_MINUTE = "100000000";

/** Start the API on a free port of 127.0.0.1 against `databaseUrl`; resolves once /healthz answers 200. */
export async function startApi(env: {
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  adminKey: string;
}): Promise<ApiProcess> {
  const port = await freePort();
  let output = "";
  const child: ChildProcess = spawn("node", ["--import", "tsx", "services/api/src/server.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: env.databaseUrl,
      REDIS_URL: env.redisUrl,
      QUEUE_PREFIX: env.queuePrefix,
      OUTCOME_RUNTIME_API_KEY: env.adminKey,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      RATE_LIMIT_PER_MINUTE,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor(
      "the API's /healthz to answer 200",
      async () => {
        if (child.exitCode !== null) throw new Error(`the API exited before it was healthy:\n${output}`);
        const response = await fetch(`${base}/healthz`).catch(() => null);
        return response?.status === 200;
      },
      { timeoutMs: 90_000, intervalMs: 50, diagnostics: () => output },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { base, pid: child.pid ?? 0, stop };
}
