/**
 * Real processes for the processes' tests and the fault-injection suite: the
 * worker and the API as they run in production (`tsx` on their `main`), and a
 * Redis server and a Postgres cluster of a test's own, which it may stop,
 * restart and misconfigure without disturbing the shared ones.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the cluster of a test's own is created and checked with plain pg
import pg from "pg";
import { type Process, spawnProcess, terminate } from "./compose";
import { type Cleanups, SOURCE_ENV, type World } from "./world";

export interface WorkerProcess {
  readonly proc: Process;
  readonly port: number;
  readonly spawnedAt: number;
  /** Resolves with the time /readyz first answered 200. */
  readonly ready: Promise<number>;
  output(): string;
}

/**
 * Spawn `services/worker/src/main.ts` against the world's database and queue
 * prefix (reconciling every 500 ms, a 2 s job lock, `warn` logs); `env`
 * overrides any of it.
 */
export async function startWorkerProcess(
  world: Pick<World, "t" | "prefix" | "redisUrl" | "sourceUrl">,
  cleanups: Cleanups,
  env: Record<string, string> = {},
): Promise<WorkerProcess> {
  const port = await freePort();
  const spawnedAt = Date.now();
  const proc = spawnProcess(
    ["node", "--import", "tsx", "services/worker/src/main.ts"],
    {
      DATABASE_URL: world.t.url,
      [SOURCE_ENV]: world.sourceUrl,
      REDIS_URL: world.redisUrl,
      QUEUE_PREFIX: world.prefix,
      WORKER_PORT: String(port),
      RECONCILE_INTERVAL_MS: "500",
      LOCK_DURATION_MS: "2000",
      LOG_LEVEL: "warn",
      ...env,
    },
    (cleanup) => cleanups.push(cleanup),
  );
  const ready = waitFor(
    "the worker's /readyz to answer 200",
    async () => {
      if (proc.isGone()) throw new Error(`the worker exited before it was ready:\n${proc.output()}`);
      const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
      return response?.status === 200 ? Date.now() : undefined;
    },
    // Generous: on a loaded 2-core machine, importing the worker alone has taken 16 s.
    { timeoutMs: 90_000, intervalMs: 25, diagnostics: proc.output },
  );
  ready.catch(() => {});
  return { proc, port, spawnedAt, ready, output: proc.output };
}

/** SIGTERM, and the exit code and the time it took. */
export async function stopProcess(proc: Process, timeoutMs = 10_000): Promise<{ code: number | null; ms: number }> {
  const start = Date.now();
  const result = await terminate(proc, timeoutMs);
  return { code: result.code, ms: Date.now() - start };
}

export interface ApiProcess {
  readonly proc: Process;
  readonly base: string;
  output(): string;
}

/** Spawn `services/api/src/server.ts` on a free port; resolves once /healthz answers. */
export async function startApiProcess(
  env: { DATABASE_URL: string; REDIS_URL: string; OUTCOME_RUNTIME_API_KEY: string; QUEUE_PREFIX: string } & Record<
    string,
    string
  >,
  cleanups: Cleanups,
): Promise<ApiProcess> {
  const port = await freePort();
  const proc = spawnProcess(
    ["node", "--import", "tsx", "services/api/src/server.ts"],
    { PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "100000", ...env },
    (cleanup) => cleanups.push(cleanup),
  );
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    "the API's /healthz to answer 200",
    async () => {
      if (proc.isGone()) throw new Error(`the API exited before it was healthy:\n${proc.output()}`);
      const response = await fetch(`${base}/healthz`).catch(() => null);
      return response?.status === 200;
    },
    { timeoutMs: 60_000, intervalMs: 50, diagnostics: proc.output },
  );
  return { proc, base, output: proc.output };
}

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** Start (again) on the same port and directory; with AOF the data written before a stop comes back. */
  start(): Promise<void>;
  /** SIGKILL (`crash`) or SHUTDOWN NOSAVE (a clean stop that still keeps the AOF). */
  stop(how?: "crash" | "shutdown"): Promise<void>;
  isRunning(): boolean;
}

/**
 * A `redis-server` of a test's own on a free port, in a temporary directory.
 * `appendonly` (AOF, `appendfsync everysec`, as docker-compose.yml runs it) by
 * default; `{ persistence: false }` keeps nothing on disk.
 */
export async function startPrivateRedis(
  cleanups: Cleanups,
  options: { persistence?: boolean } = {},
): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "ort-redis-"));
  const persistence = options.persistence ?? true;
  let current: Process | null = null;
  const args = [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    persistence ? "yes" : "no",
    "--appendfsync",
    "everysec",
    "--maxmemory-policy",
    "noeviction",
  ];
  const ownCleanups: Cleanups = [];
  const start = async () => {
    const proc = spawnProcess(args, {}, (cleanup) => ownCleanups.push(cleanup));
    current = proc;
    await waitFor(
      `redis-server on port ${port}`,
      async () => {
        if (proc.isGone()) throw new Error(`redis-server exited:\n${proc.output()}`);
        const client = new Redis(port, "127.0.0.1", {
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
        });
        client.on("error", () => {});
        try {
          await client.connect();
          // Loading the AOF answers LOADING errors until it is done.
          return (await client.ping()) === "PONG";
        } catch {
          return false;
        } finally {
          client.disconnect();
        }
      },
      { timeoutMs: 15_000, intervalMs: 25, diagnostics: proc.output },
    );
  };
  const stop = async (how: "crash" | "shutdown" = "crash") => {
    const proc = current;
    if (proc === null || proc.isGone()) return;
    if (how === "crash") proc.child.kill("SIGKILL");
    else {
      const client = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 0 });
      client.on("error", () => {});
      await client.call("SHUTDOWN", "NOSAVE").catch(() => {});
      client.disconnect();
    }
    await proc.exited;
    current = null;
  };
  cleanups.push(async () => {
    await stop();
    for (const cleanup of ownCleanups.splice(0)) await cleanup().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    isRunning: () => current !== null && !current.isGone(),
  };
}

export interface PrivatePostgres {
  readonly port: number;
  /** URL of `database` on this cluster (user `postgres`, trust). */
  url(database: string): string;
  /** `pg_ctl stop -m fast`: every connection is closed, new ones are refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

function runAsPostgres(argv: readonly string[]): string {
  // initdb and postgres refuse to run as root; the cluster belongs to the `postgres` user.
  const asRoot = process.getuid?.() === 0;
  const [command, args] = asRoot ? ["runuser", ["-u", "postgres", "--", ...argv]] : [argv[0]!, argv.slice(1)];
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`${argv.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * A Postgres 15 cluster of a test's own (initdb in a temporary directory,
 * trust auth, a free port), for faults that stop the database server.
 * `PG_BIN` names the server's binaries (default `/usr/lib/postgresql/15/bin`).
 */
export async function startPrivatePostgres(cleanups: Cleanups): Promise<PrivatePostgres> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "ort-pg-"));
  spawnSync("chown", ["postgres:postgres", dir]);
  const data = join(dir, "data");
  runAsPostgres([`${PG_BIN}/initdb`, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  const log = join(dir, "server.log");
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  let running = false;
  const start = async () => {
    runAsPostgres([`${PG_BIN}/pg_ctl`, "-D", data, "-l", log, "-o", options, "-w", "start"]);
    running = true;
  };
  const stop = async () => {
    if (!running) return;
    runAsPostgres([`${PG_BIN}/pg_ctl`, "-D", data, "-m", "fast", "-w", "stop"]);
    running = false;
  };
  cleanups.push(async () => {
    await stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const client = new pg.Client({ connectionString: url("postgres") });
  await client.connect();
  await client.end();
  return { port, url, stop, start };
}

/**
 * The time the worker's `/healthz` first answered 200. Its health server
 * listens only after its first reconciliation, so this marks the end of its
 * boot; unlike `ready` (`/readyz`), a fresh replica that the others leave no
 * jobs to is not held back as "stale". Waits up to 120 s (a loaded 2-core
 * machine, `tsx` compiling at start).
 */
export function workerBooted(worker: WorkerProcess): Promise<number> {
  return waitFor(
    "the worker's /healthz to answer 200",
    async () => {
      if (worker.proc.isGone()) throw new Error(`the worker exited during its boot:\n${worker.output()}`);
      const response = await fetch(`http://127.0.0.1:${worker.port}/healthz`).catch(() => null);
      return response?.status === 200 ? Date.now() : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 25, diagnostics: worker.output },
  );
}
