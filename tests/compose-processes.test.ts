// biome-ignore-all lint/suspicious/noTemplateCurlyInString: compose's ${VAR:-default} syntax is the subject of these strings
/**
 * The processes docker-compose.yml runs, started here as local processes with
 * the compose environment: the API with the image's ENTRYPOINT (less tini) and
 * CMD, the worker with the compose `command`. Only what points into the
 * compose network is overridden: DATABASE_URL (a fresh, empty test database
 * the API migrates), REDIS_URL (local Redis, a unique QUEUE_PREFIX), the ports,
 * SMTP_URL (no Mailpit here) and the state directory of the first-run key.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEmptyDatabase, deleteRedisKeys, freePort } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: the test reads the migration table the API wrote
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ComposeFile,
  interpolate,
  parseAll,
  readCompose,
  readDockerfile,
  root,
  serviceEnvironment,
  spawnProcess,
  terminate,
  waitHealthy,
} from "./support/compose";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface Installation {
  readonly compose: ComposeFile;
  readonly databaseUrl: string;
  readonly prefix: string;
  readonly stateDir: string;
}

async function installation(): Promise<Installation> {
  const database = await createEmptyDatabase();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `test-compose-${randomBytes(6).toString("hex")}`;
  const stateDir = await mkdtemp(join(tmpdir(), "outcome-runtime-state-"));
  cleanups.push(async () => {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
    await rm(stateDir, { recursive: true, force: true });
    await database.drop();
  });
  return { compose: readCompose(), databaseUrl: database.url, prefix, stateDir };
}

/** The api service's environment from a `.env` holding `dotenv`, pointed at local services. */
async function apiEnv(world: Installation, dotenv: Record<string, string>): Promise<Record<string, string>> {
  const env = serviceEnvironment(world.compose.services.api!, { QUEUE_PREFIX: world.prefix, ...dotenv });
  return {
    ...env,
    DATABASE_URL: world.databaseUrl,
    REDIS_URL,
    HOST: "127.0.0.1",
    PORT: String(await freePort()),
    // Compose's 9464 could be taken on a shared machine: the same setting, on a free port.
    ...(env.METRICS_PORT === undefined ? {} : { METRICS_PORT: String(await freePort()) }),
    OUTCOME_RUNTIME_STATE_DIR: world.stateDir,
  };
}

function apiArgv(): string[] {
  const { entrypoint, cmd } = readDockerfile();
  // tini forwards signals and reaps; here the test's SIGTERM goes to the process directly.
  expect(entrypoint.slice(0, 2)).toEqual(["/usr/bin/tini", "--"]);
  return [...entrypoint.slice(2), ...cmd];
}

describe("the compose processes", () => {
  it("resolves ${VAR:-default}, ${VAR-default} and $$ as compose does", () => {
    expect(interpolate("a${X:-d}b", {})).toBe("adb");
    expect(interpolate("${X:-d}", { X: "" })).toBe("d");
    expect(interpolate("${X-d}", { X: "" })).toBe("");
    expect(interpolate("${X}/$Y/$$Z", { X: "x", Y: "y" })).toBe("x/y/$Z");
  });

  it("api migrates and serves, the worker gets ready, the bootstrap key works, both exit 0 on SIGTERM", async () => {
    const world = await installation();
    const key = `ork_${randomBytes(24).toString("base64url")}`;
    const env = await apiEnv(world, { OUTCOME_RUNTIME_API_KEY: key, LOG_LEVEL: "warn" });
    expect(env.QUEUE_PREFIX).toBe(world.prefix);
    expect(env.OUTCOME_RUNTIME_API_KEY).toBe(key);

    const api = spawnProcess(apiArgv(), env, (c) => cleanups.push(c));
    const base = `http://127.0.0.1:${env.PORT}`;
    expect(await (await waitHealthy(api, `${base}/healthz`)).json()).toMatchObject({ status: "ok" });
    await waitHealthy(api, `${base}/readyz`);

    // Every migration was applied by the API's start.
    const client = new pg.Client({ connectionString: world.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>("SELECT name FROM kysely_migration ORDER BY name");
      expect(rows.map((r) => r.name)).toContain("2026-11-22T00-00-initial");
      expect(rows.map((r) => r.name)).toContain("2026-12-06T00-00-timescale-policies");
    } finally {
      await client.end();
    }

    const outcomes = await fetch(`${base}/v1/outcomes`, { headers: { authorization: `Bearer ${key}` } });
    expect(outcomes.status).toBe(200);
    const anonymous = await fetch(`${base}/v1/outcomes`);
    expect(anonymous.status).toBe(401);
    // Metrics on their own port (compose sets METRICS_PORT), never on the public one.
    expect(world.compose.services.api!.environment?.METRICS_PORT).toBeDefined();
    const metrics = await fetch(`http://127.0.0.1:${env.METRICS_PORT}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await metrics.text()).toContain("# TYPE outcome_runtime_http_request_duration_seconds histogram");
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(404);

    const workerService = world.compose.services.worker!;
    const workerEnv: Record<string, string> = {
      ...serviceEnvironment(workerService, { QUEUE_PREFIX: world.prefix, LOG_LEVEL: "warn" }),
      DATABASE_URL: world.databaseUrl,
      REDIS_URL,
      HOST: "127.0.0.1",
      WORKER_PORT: String(await freePort()),
      SMTP_URL: "",
    };
    expect(workerEnv.QUEUE_PREFIX).toBe(world.prefix);
    expect(workerService.command).toEqual(["node", "--import", "tsx", "services/worker/src/main.ts"]);
    const worker = spawnProcess(workerService.command!, workerEnv, (c) => cleanups.push(c));
    const ready = await waitHealthy(worker, `http://127.0.0.1:${workerEnv.WORKER_PORT}/readyz`);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: true, redis: true } });
    const workerMetrics = await fetch(`http://127.0.0.1:${workerEnv.WORKER_PORT}/metrics`);
    expect(workerMetrics.status).toBe(200);
    expect(await workerMetrics.text()).toContain("# TYPE outcome_runtime_queue_jobs gauge");

    expect(await terminate(worker)).toEqual({ code: 0, signal: null });
    expect(await terminate(api)).toEqual({ code: 0, signal: null });
  }, 120_000);

  it("without OUTCOME_RUNTIME_API_KEY, the first start generates a key, prints it once and keeps it", async () => {
    const world = await installation();
    const env = await apiEnv(world, { LOG_LEVEL: "warn" });
    expect(env.OUTCOME_RUNTIME_API_KEY).toBe("");
    expect(env.OUTCOME_RUNTIME_GENERATE_KEY).toBe("true");
    const base = `http://127.0.0.1:${env.PORT}`;

    const first = spawnProcess(apiArgv(), env, (c) => cleanups.push(c));
    await waitHealthy(first, `${base}/readyz`);
    const printed = /^ {2}(ork_[A-Za-z0-9_-]{43})$/m.exec(first.output())?.[1];
    expect(printed, first.output()).toBeDefined();
    const auth = { headers: { authorization: `Bearer ${printed}` } };
    expect((await fetch(`${base}/v1/outcomes`, auth)).status).toBe(200);
    expect(await terminate(first)).toEqual({ code: 0, signal: null });

    // A restart reuses the stored key and does not print it again.
    const second = spawnProcess(apiArgv(), env, (c) => cleanups.push(c));
    await waitHealthy(second, `${base}/readyz`);
    expect(second.output()).not.toContain(printed!);
    expect((await fetch(`${base}/v1/outcomes`, auth)).status).toBe(200);
    expect(await terminate(second)).toEqual({ code: 0, signal: null });
  }, 120_000);
});

describe("the compose database role", () => {
  it("is created by the init script, owns the runtime's database, is not a superuser, and the API migrates and serves as it", async () => {
    const world = await installation();
    const role = `ort_app_${randomBytes(4).toString("hex")}`;
    const database = new URL(world.databaseUrl).pathname.slice(1);
    const admin = new pg.Client({ connectionString: world.databaseUrl });
    await admin.connect();
    cleanups.push(async () => {
      await admin.query(`DROP OWNED BY ${role} CASCADE`).catch(() => {});
      await admin.end();
    });
    // After the database is dropped (registered first, so it runs last), the role goes too.
    cleanups.unshift(async () => {
      const last = new pg.Client({ connectionString: new URL("/postgres", world.databaseUrl).toString() });
      await last.connect();
      await last.query(`DROP ROLE IF EXISTS ${role}`).finally(() => last.end());
    });
    // The compose file mounts the script and gives it these.
    const timescale = world.compose.services.timescaledb!;
    expect(timescale.volumes).toContain(
      "./docker/postgres-init/20-outcome-runtime-role.sh:/docker-entrypoint-initdb.d/20-outcome-runtime-role.sh:ro",
    );
    const url = new URL(world.databaseUrl);
    const ran = spawnSync("bash", [join(root, "docker/postgres-init/20-outcome-runtime-role.sh")], {
      env: {
        ...process.env,
        PGHOST: url.hostname,
        PGPORT: url.port || "5432",
        POSTGRES_USER: decodeURIComponent(url.username) || "postgres",
        POSTGRES_DB: database,
        OUTCOME_RUNTIME_DB_USER: role,
        OUTCOME_RUNTIME_DB_PASSWORD: "compose-app-password",
      },
      encoding: "utf8",
    });
    expect(ran.status, ran.stderr).toBe(0);
    const facts = await admin.query<{ rolsuper: boolean; owner: string }>(
      `SELECT r.rolsuper, pg_get_userbyid(d.datdba) AS owner FROM pg_roles r, pg_database d
        WHERE r.rolname = $1 AND d.datname = $2`,
      [role, database],
    );
    expect(facts.rows[0]).toEqual({ rolsuper: false, owner: role });
    // The api service's DATABASE_URL names that role, not the superuser.
    expect(serviceEnvironment(world.compose.services.api!, {}).DATABASE_URL).toMatch(
      /^postgres:\/\/outcome_runtime:outcome_runtime@timescaledb:5432\/outcome_runtime$/,
    );

    const appUrl = new URL(world.databaseUrl);
    appUrl.username = role;
    appUrl.password = "compose-app-password";
    const key = `ork_${randomBytes(24).toString("base64url")}`;
    const env: Record<string, string> = {
      ...(await apiEnv(world, { OUTCOME_RUNTIME_API_KEY: key, LOG_LEVEL: "warn" })),
      DATABASE_URL: appUrl.toString(),
    };
    const api = spawnProcess(apiArgv(), env, (c) => cleanups.push(c));
    const base = `http://127.0.0.1:${env.PORT}`;
    await waitHealthy(api, `${base}/readyz`);
    expect((await fetch(`${base}/v1/outcomes`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    const owned = await admin.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1",
      [role],
    );
    expect(owned.rows[0]?.n).toBeGreaterThan(10);
    expect(await terminate(api)).toEqual({ code: 0, signal: null });
  }, 120_000);
});

describe("the compose file", () => {
  it("has a healthcheck on every service, waits for healthy dependencies, pins images and publishes only on localhost", () => {
    const { services, volumes } = readCompose();
    expect(Object.keys(services).sort()).toEqual(["api", "example-data", "mailpit", "redis", "timescaledb", "worker"]);
    // `docker compose up` starts these; the example's traffic only with --profile example, a one-shot tool.
    const always = Object.entries(services).filter(([, service]) => service.profiles === undefined);
    expect(always.map(([name]) => name).sort()).toEqual(["api", "mailpit", "redis", "timescaledb", "worker"]);
    expect(services["example-data"]!.profiles).toEqual(["example"]);
    expect(services["example-data"]!.ports).toBeUndefined();
    for (const [name, service] of always) {
      expect(service.healthcheck?.test, name).toBeDefined();
    }
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(condition, `${name} → ${dependency}`).toBe("service_healthy");
      }
      if (service.image !== undefined) expect(service.image, name).toMatch(/:(v?\d+\.\d+[\w.-]*)$/);
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
    expect(Object.keys(volumes ?? {}).sort()).toEqual(["apistate", "pgdata", "redisdata"]);
    expect(services.redis!.command).toEqual(
      expect.arrayContaining(["--appendonly", "yes", "--maxmemory-policy", "noeviction"]),
    );
    // TimescaleDB on PostgreSQL 15, telemetry off; `postgres` first, so the image's entrypoint still initialises.
    expect(services.timescaledb!.image).toMatch(/^timescale\/timescaledb:\d+\.\d+\.\d+-pg15$/);
    expect(services.timescaledb!.command?.[0]).toBe("postgres");
    expect(services.timescaledb!.command).toEqual(expect.arrayContaining(["-c", "timescaledb.telemetry_level=off"]));
  });
});

describe("the CI workflow", () => {
  type Step = { name?: string; uses?: string; run?: string; if?: string };
  type Job = { "runs-on": string; container?: { image: string }; steps: Step[] };
  const [workflow] = parseAll(readFileSync(join(root, ".github/workflows/ci.yml"), "utf8")) as [
    { jobs: Record<string, Job> },
  ];
  const runs = (job: Job) => job.steps.flatMap((s) => (s.run === undefined ? [] : [s.run]));

  it("runs the README's test command against the PostgreSQL major version the compose file ships", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    expect(readme).toMatch(/^\.\/scripts\/test\.sh\b/m);
    const test = workflow.jobs.test!;
    expect(runs(test)).toContain("./scripts/test.sh");
    const installed = /\bpostgresql-(\d+)\b/.exec(runs(test).join("\n"))?.[1];
    const shipped = /-pg(\d+)$/.exec(readCompose().services.timescaledb!.image!)?.[1];
    expect(installed).toBeDefined();
    expect(installed).toBe(shipped);
  });

  it("builds the image, starts the compose file with --wait, checks /readyz, the dashboard and MCP, and always removes it with its volumes", () => {
    const compose = workflow.jobs.compose!;
    const script = runs(compose).join("\n");
    expect(script).toMatch(/docker build --file docker\/Dockerfile /);
    expect(script).toMatch(/docker compose up [^\n]*--wait/);
    for (const path of ["/readyz", "/", "/mcp"]) expect(script).toContain(`http://127.0.0.1:8080${path}`);
    expect(script).toContain('"method":"tools/list"');
    const down = compose.steps.find((s) => s.run?.startsWith("docker compose down"));
    expect(down).toMatchObject({ if: "always()", run: "docker compose down --volumes" });
  });
});

describe("the Kubernetes manifests", () => {
  const dir = join(root, "deploy/kubernetes");
  type Manifest = {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
    spec?: Record<string, unknown>;
  };
  const manifests = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => parseAll(readFileSync(join(dir, f), "utf8")) as Manifest[]);

  it("parse, and name their kinds, namespace and required fields", () => {
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      "ConfigMap/outcome-runtime",
      "Deployment/outcome-runtime-api",
      "Deployment/outcome-runtime-worker",
      "Ingress/outcome-runtime",
      "Namespace/outcome-runtime",
      "PodDisruptionBudget/outcome-runtime-api",
      "PodDisruptionBudget/outcome-runtime-worker",
      "Secret/outcome-runtime",
      "Service/outcome-runtime-api",
    ]);
    for (const m of manifests) {
      expect(m.apiVersion, m.kind).toMatch(/^(v1|apps\/v1|policy\/v1|networking\.k8s\.io\/v1)$/);
      if (m.kind !== "Namespace") expect(m.metadata.namespace, m.kind).toBe("outcome-runtime");
    }
  });

  it("run the image's two commands with probes on their health endpoints, the workers as two replicas", () => {
    const compose = readCompose();
    const deployments = manifests.filter((m) => m.kind === "Deployment");
    type Container = {
      args: string[];
      readinessProbe: { httpGet: { path: string } };
      livenessProbe: { httpGet: { path: string } };
      envFrom: unknown[];
    };
    type DeploymentSpec = {
      replicas: number;
      selector: { matchLabels: Record<string, string> };
      template: { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } };
    };
    const byName = new Map(deployments.map((d) => [d.metadata.name, d.spec as unknown as DeploymentSpec]));
    const api = byName.get("outcome-runtime-api")!;
    const worker = byName.get("outcome-runtime-worker")!;
    expect(api.template.spec.containers[0]!.args).toEqual(readDockerfile().cmd);
    expect(worker.template.spec.containers[0]!.args).toEqual(compose.services.worker!.command);
    expect(worker.replicas).toBe(2);
    for (const spec of [api, worker]) {
      expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
      const container = spec.template.spec.containers[0]!;
      expect(container.readinessProbe.httpGet.path).toBe("/readyz");
      expect(container.livenessProbe.httpGet.path).toBe("/healthz");
      expect(container.envFrom).toHaveLength(2);
    }
    // Every setting the ConfigMap or the Secret holds is one the compose file passes to the api or the worker.
    const known = new Set(["api", "worker"].flatMap((s) => Object.keys(compose.services[s]!.environment ?? {})));
    for (const m of manifests.filter((x) => x.kind === "ConfigMap" || x.kind === "Secret")) {
      const data =
        (m as unknown as { data?: object; stringData?: object }).data ?? (m as { stringData?: object }).stringData;
      for (const key of Object.keys(data ?? {})) expect(known, `${m.kind} ${key}`).toContain(key);
    }
  });
});
