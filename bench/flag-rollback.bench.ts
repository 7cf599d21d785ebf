/**
 * Flag rollback latency on a real Unleash: from a kill (the pause the
 * analysis commits) to the rollback applied in Unleash (everyone to
 * control), and to an application served control, read by the official
 * `unleash-client` polling Unleash every 50 ms.
 *
 * One Unleash (`unleash-server` 7.5.1 in a child process, on a database of
 * its own: `startUnleash` of @outcome-runtime/testing) serves every scenario.
 * Each scenario clones the run's template, applies the batched example
 * outcome with a `flags:` block (provider unleash, a flag prefix of its own)
 * and inserts N running experiments (control/treatment 50/50). Their launch
 * splits are asked for as a launch does and applied by the worker (running
 * in this process with the flag settings `FLAG_API_URLS` and the token would
 * give it), so each experiment's flag exists in Unleash serving 50/50 and
 * the client serves it so before the first kill. The synthetic source gives
 * every arm 6,000 units per snapshot.
 *
 * A kill: the experiment's treatment becomes harmful (its abandonment 1.3 ×
 * the control's) in the next snapshot, published with a `poll-experiments`
 * job at the same instant. The analysis pauses it; the worker queues the
 * rollback at once (the decision's fast path, not the outbox sweep) and
 * writes it to Unleash. "one at a time" kills the N experiments one per
 * round; "all at once" kills the N in one round (N rollbacks in flight
 * together). Latencies start at the pause's `experiment.paused` audit row
 * (`now()` of the pausing transaction, so they include the rest of that
 * transaction) and end (a) at the rollout's `applied_at` (the runtime's
 * record of Unleash's confirmation) and (b) at the first moment the client
 * serves control to every one of the sampled user ids. All three clocks are
 * this machine's. Where the time goes: the rollback job's times in BullMQ
 * (added, started). Unleash refreshes what its client API serves once a
 * second (its `updateMaxRevisionId` job), so a round starts after a random
 * 0–1 s pause: kills do not fall in step with that second.
 */
import { type Db, flagRollouts } from "@outcome-runtime/db";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import {
  type ConnectorProvider,
  JOB,
  KEEP_COMPLETED,
  KEEP_FAILED,
  sourceAccessFromEnv,
} from "@outcome-runtime/runtime";
import type { RunningUnleash, UnleashApplication } from "@outcome-runtime/testing/unleash";
import { type RunningWorker, startWorker, type WorkerOptions } from "@outcome-runtime/worker";
import type { Redis } from "ioredis";
import type { BenchDatabases } from "./bench-database";
import { activeExampleOutcome, insertRunningExperiments } from "./bench-fixtures";
import { hashSeed, uniform } from "./seeded-random";
import { SyntheticSource, syntheticProvider } from "./synthetic-connector";

/** Nearest-rank quantiles, ms. */
export interface MsQuantiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export interface FlagRollbackFigure {
  /** `one at a time` (a kill per round) or `all at once` (every kill in one round). */
  readonly scenario: string;
  /** Experiments made harmful, and of them paused, rolled back in Unleash, served control by the client. */
  readonly kills: number;
  readonly paused: number;
  readonly applied: number;
  readonly served: number;
  /** Kills served control to every sampled user within {@link TARGET_MS} of the pause. */
  readonly servedWithinTarget: number;
  readonly sampledUsers: number;
  readonly refreshMs: number;
  /** ms from the pause to the rollback applied in Unleash, and to the client serving control to every user. */
  readonly appliedMs: MsQuantiles | null;
  readonly servedMs: MsQuantiles | null;
  /** ms from the pause to its rollback job added to the control queue, and to a worker starting it (BullMQ). */
  readonly jobAddedMs: MsQuantiles | null;
  readonly jobStartedMs: MsQuantiles | null;
  /** `experiment.flag_drift` events in the scenario (a drift check that raced a rollback would show here). */
  readonly driftEvents: number;
  /** 1-minute load average at the start and at the end of the scenario. */
  readonly load: readonly [number, number];
  readonly note: string | null;
}

/** The target: every sampled user served control within 1 s of the kill (p99). */
export const TARGET_MS = 1000;

/** Nearest-rank quantiles of the values, ms; null when there are none. */
export function msQuantiles(values: readonly number[]): MsQuantiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return { p50: rank(0.5), p95: rank(0.95), p99: rank(0.99), max: sorted.at(-1) as number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TOKEN_ENV = "OUTCOME_RUNTIME_FLAGS_UNLEASH_TOKEN";

/** A logger that drops everything: the scenario reads the database, not the log. */
function silentLogger(): WorkerOptions["logger"] {
  const logger = {
    level: "warn",
    info: () => {},
    debug: () => {},
    trace: () => {},
    warn: () => {},
    error: () => {},
    fatal: () => {},
    child: () => logger,
  };
  return logger as unknown as WorkerOptions["logger"];
}

/** A real Unleash for the run and an application's client of it; `stop` ends both and drops its database. */
export interface BenchUnleash {
  readonly server: RunningUnleash;
  readonly app: UnleashApplication;
  readonly refreshMs: number;
  stop(): Promise<void>;
}

/**
 * Start Unleash on a database of its own on the benchmark's Postgres server (`BENCH_POSTGRES_URL`,
 * `BENCH_ADMIN_DB`), and an `unleash-client` refreshing every `refreshMs`.
 */
export async function startBenchUnleash(refreshMs: number): Promise<BenchUnleash> {
  // The helper creates and drops its database on TEST_POSTGRES_URL, connected to TEST_ADMIN_DB.
  if (process.env.BENCH_POSTGRES_URL !== undefined) process.env.TEST_POSTGRES_URL = process.env.BENCH_POSTGRES_URL;
  if (process.env.BENCH_ADMIN_DB !== undefined) process.env.TEST_ADMIN_DB = process.env.BENCH_ADMIN_DB;
  // Loaded here: the other parts of `pnpm bench` do not pay for unleash-client and the helper's imports.
  const { startUnleash, startUnleashApplication } = await import("@outcome-runtime/testing/unleash");
  const server = await startUnleash({ timeoutMs: 120_000 });
  let app: UnleashApplication;
  try {
    app = await startUnleashApplication(server, refreshMs);
  } catch (error) {
    await server.stop();
    throw error;
  }
  let stopped: Promise<void> | null = null;
  return {
    server,
    app,
    refreshMs,
    stop: () => {
      stopped ??= (async () => {
        app.close();
        await server.stop();
      })();
      return stopped;
    },
  };
}

/** True when the client serves control to every one of `users` (a flag off counts: the app falls back to it). */
function servesControl(app: UnleashApplication, key: string, users: readonly { userId: string }[]): boolean {
  for (const context of users) {
    const variant = app.client.getVariant(key, context);
    if (variant.enabled && variant.name !== "control") return false;
  }
  return true;
}

async function queuesIdle(worker: RunningWorker, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    const [signals, control] = await Promise.all([
      // Not "delayed": the schedulers' next jobs wait there for their interval.
      worker.signalsQueue.getJobCounts("wait", "active", "prioritized"),
      worker.controlQueue.getJobCounts("wait", "active", "prioritized"),
    ]);
    const busy = Object.values(signals).reduce((a, b) => a + b, 0) + Object.values(control).reduce((a, b) => a + b, 0);
    if (busy === 0 || Date.now() - started > timeoutMs) return;
    await sleep(50);
  }
}

async function appliedRollouts(db: Db, ids: readonly string[], reason: string): Promise<Map<string, Date>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom("flag_rollouts")
    .select(["experiment_id", "applied_at"])
    .where("experiment_id", "in", [...ids])
    .where("status", "=", "applied")
    .where("reason", "=", reason)
    .execute();
  return new Map(rows.flatMap((r) => (r.applied_at === null ? [] : [[r.experiment_id, r.applied_at] as const])));
}

/**
 * One scenario: N running experiments with their flags in Unleash at 50/50, killed in `waves` (arrays of
 * experiment indexes), each wave one snapshot and one `poll-experiments` job.
 */
export async function benchFlagRollback(
  dbs: BenchDatabases,
  redis: Redis,
  unleash: BenchUnleash,
  options: {
    scenario: "one at a time" | "all at once";
    kills: number;
    concurrency: number;
    prefix: string;
    sampledUsers: number;
    waveTimeoutMs: number;
    load: () => number;
    progress?: (text: string) => void;
  },
): Promise<FlagRollbackFigure> {
  const n = options.kills;
  const loadAtStart = options.load();
  const tag = options.scenario === "all at once" ? "all" : "one";
  const bench = await dbs.clone(`flag_${tag}`, options.concurrency + 4);
  const flagPrefix = `bench-${process.pid}-${tag}-`;
  let worker: RunningWorker | null = null;
  let connectors: ConnectorProvider | null = null;
  try {
    const apiUrl = `${unleash.server.url}/api`;
    const outcome = await activeExampleOutcome(bench.db, {
      batched: true,
      extraYaml: `flags:
  provider: unleash
  api_url: ${apiUrl}
  project: default
  environment: ${unleash.server.environment}
  stickiness: userId
  flag_prefix: ${flagPrefix}
  api_token_env: ${TOKEN_ENV}
`,
    });
    const ids = await insertRunningExperiments(bench.db, outcome, n);
    const keyOf = (i: number) => `bench-${String(i + 1).padStart(6, "0")}`;
    const flagOf = (i: number) => `${flagPrefix}${keyOf(i)}`;
    const indexById = new Map(ids.map((id, i) => [id, i]));
    // Launch splits, as approving a launch asks for them: the worker creates each flag serving 50/50.
    const now = new Date();
    for (const [i, id] of ids.entries()) {
      await flagRollouts.requestRollout(bench.db, {
        experimentId: id,
        workspaceId: outcome.workspaceId,
        outcomeId: outcome.outcomeId,
        provider: "unleash",
        flagKey: flagOf(i),
        arms: [
          { name: "control", weight: 0.5 },
          { name: "treatment", weight: 0.5 },
        ],
        weights: { control: 0.5, treatment: 0.5 },
        reason: "launch",
        at: now,
      });
    }
    const harmful = new Set<string>();
    const source = new SyntheticSource({ unitsPerSnapshot: 6000, harmful, harmFactor: 1.3 });
    connectors = syntheticProvider(bench.db, source, outcome.spec);
    worker = await startWorker({
      db: bench.db,
      redis,
      connectors,
      logger: silentLogger(),
      prefix: options.prefix,
      concurrency: options.concurrency,
      reconcileIntervalMs: 3_600_000,
      outboxIntervalMs: 500,
      flags: {
        access: {
          allowedApiUrls: { unleash: [apiUrl] },
          timeoutMs: 10_000,
          policy: parseOutboundPolicy("127.0.0.1"),
        },
        sources: sourceAccessFromEnv({ [TOKEN_ENV]: unleash.server.adminToken }),
      },
    });

    // Setup: every flag created at 50/50 (and the launch confirmed), every experiment polled once (series
    // created, nothing analysed), and the client serving 50/50 for every flag.
    const setupStarted = Date.now();
    for (;;) {
      const applied = await appliedRollouts(bench.db, ids, "launch");
      const polled = await bench.db
        .selectFrom("experiments")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("last_polled_at", "is not", null)
        .executeTakeFirstOrThrow();
      if (applied.size >= n && Number(polled.n) >= n) break;
      if (Date.now() - setupStarted > 180_000) {
        throw new Error(`setup: ${applied.size} of ${n} flags created, ${polled.n} of ${n} experiments polled`);
      }
      await sleep(100);
    }
    await queuesIdle(worker, 60_000);
    for (let i = 0; i < n; i++) {
      await unleash.app.serves(flagOf(i), { control: 0.5, treatment: 0.5 }, { tolerance: 0.06, timeoutMs: 30_000 });
    }
    options.progress?.(
      `   ${options.scenario}: ${n} flags at 50/50 in Unleash and served so in ${((Date.now() - setupStarted) / 1000).toFixed(1)} s; killing`,
    );

    const users = Array.from({ length: options.sampledUsers }, (_, i) => ({ userId: `user-${i}` }));
    const waves = options.scenario === "all at once" ? [ids.map((_, i) => i)] : ids.map((_, i) => [i]);
    const servedAt = new Map<string, number>();
    const jitter = uniform(hashSeed(`flag-rollback|${options.scenario}`));
    let note: string | null = null;
    for (const [w, wave] of waves.entries()) {
      await sleep(Math.floor(jitter() * 1000));
      const pending = new Set(wave);
      const check = () => {
        for (const i of pending) {
          if (servesControl(unleash.app, flagOf(i), users)) {
            servedAt.set(ids[i] as string, Date.now());
            pending.delete(i);
          }
        }
      };
      // The client's refreshes bring the change: check at each one, and every 5 ms besides.
      unleash.app.client.on("changed", check);
      try {
        for (const i of wave) harmful.add(keyOf(i));
        source.advance();
        await worker.signalsQueue.add(
          JOB.pollExperimentBatch,
          { outcomeId: outcome.outcomeId },
          {
            jobId: `bench-flag-${tag}-${w}`,
            attempts: 5,
            backoff: { type: "exponential", delay: 2000 },
            removeOnComplete: KEEP_COMPLETED,
            removeOnFail: KEEP_FAILED,
          },
        );
        const started = Date.now();
        while (pending.size > 0 && Date.now() - started < options.waveTimeoutMs) {
          check();
          await sleep(5);
        }
        if (pending.size > 0) {
          note = `round ${w + 1}: ${pending.size} of ${wave.length} flags still served a treatment after ${options.waveTimeoutMs / 1000} s`;
          break;
        }
      } finally {
        unleash.app.client.off("changed", check);
      }
      // The round's drift checks and the rollbacks' jobs end before the next kill.
      await queuesIdle(worker, 30_000);
    }
    await queuesIdle(worker, 30_000);

    const pausedRows = await bench.db
      .selectFrom("audit_events")
      .select(["subject_id", "at"])
      .where("action", "=", "experiment.paused")
      .where("subject_id", "in", ids)
      .orderBy("at")
      .execute();
    const pausedAt = new Map<string, number>();
    for (const r of pausedRows) if (!pausedAt.has(r.subject_id)) pausedAt.set(r.subject_id, r.at.getTime());
    const applied = await appliedRollouts(bench.db, ids, "pause");
    const drift = await bench.db
      .selectFrom("audit_events")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("action", "=", "experiment.flag_drift")
      .executeTakeFirstOrThrow();
    // The rollback jobs that applied the pause: when each was added and started.
    const jobs = new Map<string, { added: number; started: number }>();
    for (const job of await worker.controlQueue.getJobs(["completed"], 0, -1)) {
      const result = job.returnvalue as { status?: string; reason?: string } | null;
      const id = (job.data as { experimentId?: string }).experimentId;
      if (job.name !== JOB.applyFlagRollout || id === undefined || result?.status !== "applied") continue;
      if (result.reason !== "pause" || job.processedOn === undefined) continue;
      jobs.set(id, { added: job.timestamp, started: job.processedOn });
    }
    const appliedMs: number[] = [];
    const servedMs: number[] = [];
    const jobAddedMs: number[] = [];
    const jobStartedMs: number[] = [];
    for (const [id, paused] of pausedAt) {
      if (!indexById.has(id)) continue;
      const a = applied.get(id);
      if (a !== undefined) appliedMs.push(a.getTime() - paused);
      const s = servedAt.get(id);
      if (s !== undefined) servedMs.push(s - paused);
      const j = jobs.get(id);
      if (j !== undefined) {
        jobAddedMs.push(j.added - paused);
        jobStartedMs.push(j.started - paused);
      }
    }
    return {
      scenario: options.scenario,
      kills: n,
      paused: pausedAt.size,
      applied: appliedMs.length,
      served: servedMs.length,
      servedWithinTarget: servedMs.filter((ms) => ms <= TARGET_MS).length,
      sampledUsers: options.sampledUsers,
      refreshMs: unleash.refreshMs,
      appliedMs: msQuantiles(appliedMs),
      servedMs: msQuantiles(servedMs),
      jobAddedMs: msQuantiles(jobAddedMs),
      jobStartedMs: msQuantiles(jobStartedMs),
      driftEvents: Number(drift.n),
      load: [loadAtStart, options.load()],
      note,
    };
  } finally {
    if (worker !== null) await worker.close();
    if (connectors !== null) await connectors.close();
    await bench.drop();
  }
}
