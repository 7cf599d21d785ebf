/**
 * A real Unleash server for tests (`unleash-server`, the npm package of
 * github.com/Unleash/unleash), run in a child process (./unleash-server.mjs)
 * on a fresh database of the local PostgreSQL (`TEST_POSTGRES_URL`, default
 * trust auth as `postgres` on 127.0.0.1:5432), named
 * `unleash_test_<pid>_<random>`. Nothing is faked: the provider under test
 * talks to Unleash's Admin API, an application's `unleash-client` to its
 * client API.
 *
 * Unleash migrates the empty database at start (about 5 s on two cores), so
 * a test file starts one server in `beforeAll` and shares it. The server
 * knows two API tokens from the start (`authentication.initApiTokens`): an
 * admin token (all projects, all environments) and a backend (client) token
 * for one environment.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { InMemStorageProvider, Unleash } from "unleash-client";
import { serverUrl } from "./postgres";

/** A running Unleash server. */
export interface RunningUnleash {
  /** `http://127.0.0.1:<port>`: nothing after host and port (the API is under `/api`). */
  readonly url: string;
  /** An admin API token (`*:*.<hex>`): the Admin API, every project and environment. */
  readonly adminToken: string;
  /** A backend (client) token (`*:<environment>.<hex>`): the client API, for `unleash-client`. */
  readonly clientToken: string;
  /** The environment the client token reads (`development` unless asked otherwise). */
  readonly environment: string;
  /** The database the server runs on (dropped by {@link RunningUnleash.stop}). */
  readonly database: string;
  /** Stops the server (its graceful shutdown, then SIGKILL after 10 s) and drops its database. */
  stop(): Promise<void>;
}

/** Options of {@link startUnleash}. */
export interface StartUnleashOptions {
  /** The environment the client token is for: `development` (default) or `production`, both built in. */
  readonly environment?: string;
  /** Milliseconds to wait for the server to answer `/health` (default 60 000). */
  readonly timeoutMs?: number;
}

const ENTRY = fileURLToPath(new URL("./unleash-server.mjs", import.meta.url));

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** Runs `sql` on the administrative database (`TEST_ADMIN_DB`, else `postgres`). */
async function adminQuery(sql: string): Promise<void> {
  const url = new URL(serverUrl());
  url.pathname = `/${process.env.TEST_ADMIN_DB ?? "postgres"}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * Creates a database, starts Unleash on it in a child process and resolves
 * once `GET /health` answers 200.
 *
 * @throws Error when the server exits or is not healthy within `timeoutMs` (its output attached); the
 *   database is dropped then
 */
export async function startUnleash(options: StartUnleashOptions = {}): Promise<RunningUnleash> {
  const environment = options.environment ?? "development";
  const database = `unleash_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  const adminToken = `*:*.${randomBytes(16).toString("hex")}`;
  const clientToken = `*:${environment}.${randomBytes(16).toString("hex")}`;
  const pgUrl = new URL(serverUrl());
  await adminQuery(`CREATE DATABASE ${quote(database)}`);

  let log = "";
  const child: ChildProcess = spawn(process.execPath, [ENTRY], {
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      ...process.env,
      SEND_TELEMETRY: "false",
      CHECK_VERSION: "false",
      LOG_LEVEL: "error",
      NODE_NO_WARNINGS: "1",
      UNLEASH_TEST_CONFIG: JSON.stringify({
        db: {
          host: pgUrl.hostname,
          port: Number(pgUrl.port || 5432),
          user: decodeURIComponent(pgUrl.username || "postgres"),
          password: decodeURIComponent(pgUrl.password),
          database,
        },
        adminToken,
        clientToken,
        environment,
      }),
    },
  });
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      resolve();
    });
    child.once("error", (error) => {
      exited = `could not start (${error.message})`;
      resolve();
    });
  });
  const listening: { port: number | null } = { port: null };
  child.stdout?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-6000);
    const line = /UNLEASH_LISTENING (\d+)/u.exec(log);
    if (line !== null) listening.port = Number(line[1]);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-6000);
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (exited === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(killer);
    }
    await adminQuery(`DROP DATABASE IF EXISTS ${quote(database)} WITH (FORCE)`);
  };

  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`unleash-server ${exited}:\n${log}`);
    }
    if (listening.port !== null) {
      const healthy = await fetch(`http://127.0.0.1:${listening.port}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (healthy) break;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`unleash-server was not healthy within ${options.timeoutMs ?? 60_000} ms:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return { url: `http://127.0.0.1:${listening.port}`, adminToken, clientToken, environment, database, stop };
}

/** An application's view of a flag: the official `unleash-client`, polling the client API. */
export interface UnleashApplication {
  readonly client: Unleash;
  /** What the client serves now to `users` distinct ids (`user-0`, …), as shares by variant (`control` for none). */
  shares(key: string, control: string, users?: number): Record<string, number>;
  /**
   * Waits (at most `timeoutMs`, default 20 s) until the client serves `weights` within `tolerance` (default
   * 0.04); returns the shares served and when the client first served them (ms since the epoch).
   *
   * @throws Error naming what it still serves after the timeout
   */
  serves(
    key: string,
    weights: Readonly<Record<string, number>>,
    options?: { tolerance?: number; timeoutMs?: number },
  ): Promise<{ shares: Record<string, number>; at: number }>;
  close(): void;
}

/**
 * Starts `unleash-client` against `server` with its client token, refreshing every `refreshMs` (default
 * 100), and resolves once it has synchronized.
 *
 * @throws Error when it does not synchronize within 20 s
 */
export async function startUnleashApplication(server: RunningUnleash, refreshMs = 100): Promise<UnleashApplication> {
  const client = new Unleash({
    url: `${server.url}/api`,
    appName: "outcome-runtime-test",
    customHeaders: { Authorization: server.clientToken },
    refreshInterval: refreshMs,
    disableMetrics: true,
    storageProvider: new InMemStorageProvider(),
    skipInstanceCountWarning: true,
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("unleash-client did not synchronize in 20 s")), 20_000);
    client.once("synchronized", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const shares = (key: string, control: string, users = 2000) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < users; i++) {
      const variant = client.getVariant(key, { userId: `user-${i}` });
      const name = variant.enabled ? variant.name : control;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([name, n]) => [name, n / users]));
  };
  return {
    client,
    shares,
    async serves(key, weights, options = {}) {
      const tolerance = options.tolerance ?? 0.04;
      const control = Object.keys(weights)[0] ?? "control";
      const deadline = Date.now() + (options.timeoutMs ?? 20_000);
      const near = (s: Record<string, number>) =>
        Object.entries(weights).every(([name, w]) => Math.abs((s[name] ?? 0) - w) <= tolerance);
      for (;;) {
        const served = shares(key, control);
        if (near(served)) return { shares: served, at: Date.now() };
        if (Date.now() > deadline) {
          throw new Error(
            `unleash-client still serves ${JSON.stringify(served)} for ${key}, not ${JSON.stringify(weights)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () => client.destroy(),
  };
}
