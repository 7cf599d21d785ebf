/**
 * The retention job: deletes raw signal points older than a workspace's
 * `signalRetention.days`, of finished experiments and of outcomes over for
 * good only, keeping the points their latest analysis used (the rules:
 * `packages/core/src/signal-retention.ts`).
 *
 * The same batched DELETE runs on plain PostgreSQL and on TimescaleDB.
 * TimescaleDB's own `add_retention_policy` drops whole chunks (7 days of every
 * series of every workspace) by age alone, so it could not keep a running
 * experiment's points, the evidence of an analysis, or one workspace's longer
 * retention; it is not used. Deleting from a compressed chunk works
 * (TimescaleDB decompresses the rows it touches; the compression policy
 * compresses the chunk again).
 *
 * Safe to run twice, or at once on two workers: each workspace is handled
 * under a session advisory lock (`signal-retention:<workspace id>`; a second
 * run skips a workspace it finds locked), every batch is one short statement,
 * and the kept points never change between batches, so a run deletes exactly
 * the eligible points and the next deletes nothing more.
 */
import {
  authorize,
  DomainError,
  RETENTION_EXPERIMENT_STATES,
  RETENTION_OUTCOME_STATES,
  retentionCutoff,
} from "@outcome-runtime/core";
import { audit, type Db, type DbOrTrx, signalRetention, workspaces } from "@outcome-runtime/db";
import { auditActor, type Caller, nowOf, type RuntimeDeps, workerCaller } from "../context";

/** Points deleted per statement (and so per transaction) at most. */
const DEFAULT_RETENTION_BATCH = 5000;
/** Series whose points one statement looks at, at most. */
const SERIES_PER_STATEMENT = 200;

/** What one run did in one workspace. */
export interface RetentionReport {
  readonly workspaceId: string;
  /** The workspace's retention in days; null: it keeps points forever (nothing was deleted). */
  readonly days: number | null;
  /** Points with ts before this were eligible; null when `days` is null. */
  readonly cutoff: Date | null;
  /** `busy`: another run held the workspace's lock, so this one skipped it. */
  readonly status: "applied" | "kept_forever" | "busy";
  readonly pointsDeleted: number;
  /** Series that lost at least one point. */
  readonly seriesTouched: number;
  /** Statements run (each deleting at most `batchSize` points). */
  readonly batches: number;
}

/**
 * Apply each workspace's signal retention now: every workspace that sets one,
 * or only `workspaceId` (a workspace that keeps points forever then gives a
 * `kept_forever` report). One audit event `signal.retention_applied` (actor
 * `worker`, or `options.caller` for a run an admin asked for; subject the
 * workspace; `after`: `{ days, cutoff, pointsDeleted, seriesTouched }`) per
 * workspace where the run deleted points; a run that deletes nothing writes none.
 * A run that fails half-way (its committed batches stay deleted) records what it
 * deleted with `after.interrupted` (the error's message), then throws; the
 * job's retry deletes the rest.
 *
 * @param deps.db the pool, not a transaction: each batch commits on its own and the lock is held on one
 *   connection for the run.
 * @param options.batchSize points deleted per statement at most (default {@link DEFAULT_RETENTION_BATCH}).
 * @returns one report per workspace looked at.
 * @throws Error when `deps.db` is a transaction.
 */
export async function applySignalRetention(
  deps: { readonly db: DbOrTrx; readonly now?: () => Date },
  options: { readonly workspaceId?: string; readonly batchSize?: number; readonly caller?: Caller } = {},
): Promise<RetentionReport[]> {
  if (deps.db.isTransaction) throw new Error("applySignalRetention runs its own transactions: pass the pool");
  const db = deps.db as Db;
  const now = deps.now ? deps.now() : new Date();
  const batchSize = Math.max(1, Math.trunc(options.batchSize ?? DEFAULT_RETENTION_BATCH));
  let targets: { workspaceId: string; days: number | null }[];
  if (options.workspaceId === undefined) targets = await signalRetention.listWorkspacesWithSignalRetention(db);
  else {
    const workspace = await workspaces.findWorkspace(db, options.workspaceId);
    targets = workspace === null ? [] : [{ workspaceId: workspace.id, days: workspace.settings.signalRetention.days }];
  }
  const reports: RetentionReport[] = [];
  for (const target of targets) {
    const cutoff = retentionCutoff(now, target.days);
    const none = { pointsDeleted: 0, seriesTouched: 0, batches: 0 };
    if (cutoff === null) {
      reports.push({ ...target, cutoff, status: "kept_forever", ...none });
      continue;
    }
    const progress: Progress = { pointsDeleted: 0, touched: new Set(), batches: 0 };
    const audited = (interrupted?: string) =>
      audit.insertAuditEvent(db, {
        workspaceId: target.workspaceId,
        actor: auditActor(options.caller ?? workerCaller(target.workspaceId)),
        channel: options.caller?.channel ?? "system",
        action: "signal.retention_applied",
        subjectType: "workspace",
        subjectId: target.workspaceId,
        before: null,
        after: {
          days: target.days,
          cutoff: cutoff.toISOString(),
          pointsDeleted: progress.pointsDeleted,
          seriesTouched: progress.touched.size,
          ...(interrupted === undefined ? {} : { interrupted }),
        },
        requestId: options.caller?.requestId ?? null,
      });
    let run: { readonly acquired: boolean };
    try {
      run = await signalRetention.withSessionLock(db, `signal-retention:${target.workspaceId}`, (conn) =>
        retainWorkspace(conn, target.workspaceId, cutoff, batchSize, progress),
      );
    } catch (error) {
      // The batches before the failure are committed: record them (best effort) before the job is retried.
      if (progress.pointsDeleted > 0) {
        await audited(error instanceof Error ? error.message : String(error)).catch(() => undefined);
      }
      throw error;
    }
    if (!run.acquired) {
      reports.push({ ...target, cutoff, status: "busy", ...none });
      continue;
    }
    const report: RetentionReport = {
      ...target,
      cutoff,
      status: "applied",
      pointsDeleted: progress.pointsDeleted,
      seriesTouched: progress.touched.size,
      batches: progress.batches,
    };
    if (report.pointsDeleted > 0) await audited();
    reports.push(report);
  }
  return reports;
}

/**
 * An admin's "apply the retention now" for the caller's workspace: the daily
 * job's work for that workspace alone (the same audit event, with the caller as its actor).
 *
 * @throws DomainError `forbidden` unless the caller may `settings.update`; `not_found` when the workspace
 *   no longer exists.
 */
export async function runSignalRetention(deps: RuntimeDeps, caller: Caller): Promise<RetentionReport> {
  authorize(caller, "settings.update");
  const [report] = await applySignalRetention(
    { db: deps.db, now: () => nowOf(deps) },
    { workspaceId: caller.principal.workspaceId, caller },
  );
  if (report === undefined) throw new DomainError("not_found", "this workspace no longer exists");
  return report;
}

/** What a workspace's run has done so far (kept when it fails half-way, for the audit event). */
interface Progress {
  pointsDeleted: number;
  readonly touched: Set<string>;
  batches: number;
}

/** One workspace's deletions, under its lock: the eligible series, then batches until one deletes less than a batch. */
async function retainWorkspace(
  db: Db,
  workspaceId: string,
  cutoff: Date,
  batchSize: number,
  progress: Progress,
): Promise<void> {
  const series = await signalRetention.listSeriesForRetention(db, {
    workspaceId,
    olderThan: cutoff,
    experimentStates: RETENTION_EXPERIMENT_STATES,
    outcomeStates: RETENTION_OUTCOME_STATES,
  });
  const rules = series.map(keepRuleOf);
  for (let i = 0; i < rules.length; i += SERIES_PER_STATEMENT) {
    const slice = rules.slice(i, i + SERIES_PER_STATEMENT);
    // The evidence is read once: nothing this run deletes changes it.
    const keep = await signalRetention.pointsToKeep(db, { olderThan: cutoff, rules: slice });
    for (;;) {
      const deleted = await signalRetention.deleteExpiredPoints(db, {
        olderThan: cutoff,
        rules: slice,
        keep,
        limit: batchSize,
      });
      progress.batches += 1;
      let n = 0;
      for (const [id, count] of deleted) {
        progress.touched.add(id);
        n += count;
      }
      progress.pointsDeleted += n;
      if (n < batchSize) break;
    }
  }
}

/**
 * The evidence a series keeps (besides each arm's newest point, always kept):
 * an experiment's, per arm the newest point at or before its latest analysis
 * (the cumulative totals that analysis read); an outcome's own, the level at
 * activation (the baseline of a relative target), each arm's first point (the
 * baseline when nothing precedes the activation) and the window of the latest
 * achievement review.
 */
function keepRuleOf(s: signalRetention.RetentionSeries): signalRetention.KeepRule {
  if (s.experimentId !== null) {
    return {
      seriesId: s.seriesId,
      newestAtOrBefore: s.analysedUntil === null ? [] : [s.analysedUntil],
      between: null,
      first: false,
    };
  }
  return {
    seriesId: s.seriesId,
    newestAtOrBefore: s.outcomeActivatedAt === null ? [] : [s.outcomeActivatedAt],
    between: s.achievementWindow,
    first: true,
  };
}
