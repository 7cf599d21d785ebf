/**
 * Retention of raw signal points: which workspaces set one, which series it
 * may touch, and the batched DELETE that applies it. The rules (which states,
 * which points are evidence) are the caller's (`packages/core`,
 * `signal-retention.ts`); this module only runs them.
 *
 * The same DELETE runs with and without TimescaleDB. TimescaleDB's
 * `add_retention_policy` (and `drop_chunks`) drop whole 7-day chunks of every
 * series of every workspace by age, so they cannot keep a running
 * experiment's points, the points an analysis used, or one workspace's longer
 * retention. A DELETE on a compressed chunk works (TimescaleDB 2.11 and later
 * decompress the rows it touches); the compression policy compresses the chunk
 * again later.
 */
import { sql } from "kysely";
import type { Db, DbOrTrx } from "../database";

/** A workspace whose settings hold a retention, and its days. */
export interface WorkspaceRetention {
  readonly workspaceId: string;
  readonly days: number;
}

/**
 * Workspaces whose `signalRetention.days` is a positive whole number, oldest
 * first. A workspace without the setting, or with `days: null`, is not listed.
 */
export async function listWorkspacesWithSignalRetention(db: DbOrTrx): Promise<WorkspaceRetention[]> {
  const rows = await sql<{ id: string; days: number }>`
    SELECT id, (settings -> 'signalRetention' ->> 'days')::float8 AS days
      FROM workspaces
     WHERE jsonb_typeof(settings -> 'signalRetention' -> 'days') = 'number'
     ORDER BY created_at, id`.execute(db);
  return rows.rows
    .filter((r) => Number.isInteger(r.days) && r.days > 0)
    .map((r) => ({ workspaceId: r.id, days: r.days }));
}

/** A series the retention may touch, with the facts its evidence rule needs. */
export interface RetentionSeries {
  readonly seriesId: string;
  /** The series' experiment; null for an outcome's own series. */
  readonly experimentId: string | null;
  /** The ts of the experiment's latest analysis; null without one (or for an outcome's series). */
  readonly analysedUntil: Date | null;
  /** When the series' outcome was activated; null if it never was. */
  readonly outcomeActivatedAt: Date | null;
  /**
   * For an outcome's series: the window (ISO times of its first and last
   * points) of the outcome's latest achievement review, when it has one.
   */
  readonly achievementWindow: { readonly start: Date; readonly end: Date } | null;
}

/**
 * Series of a workspace that hold points older than `olderThan` and belong
 * to an experiment in one of `experimentStates`, or are an outcome's own
 * series (role `outcome`) with the outcome in one of `outcomeStates`.
 */
export async function listSeriesForRetention(
  db: DbOrTrx,
  query: {
    readonly workspaceId: string;
    readonly olderThan: Date;
    readonly experimentStates: readonly string[];
    readonly outcomeStates: readonly string[];
  },
): Promise<RetentionSeries[]> {
  const rows = await sql<{
    id: string;
    experiment_id: string | null;
    analysed_until: Date | null;
    activated_at: Date | null;
    window_start: string | null;
    window_end: string | null;
  }>`
    SELECT s.id, s.experiment_id,
           (SELECT max(a.ts) FROM analyses a WHERE a.experiment_id = s.experiment_id) AS analysed_until,
           o.activated_at,
           g.context ->> 'windowStart' AS window_start, g.context ->> 'windowEnd' AS window_end
      FROM signal_series s
      JOIN outcomes o ON o.id = s.outcome_id
      LEFT JOIN experiments e ON e.id = s.experiment_id
      LEFT JOIN LATERAL (
        SELECT context FROM gates
         WHERE s.experiment_id IS NULL AND gates.outcome_id = s.outcome_id AND gates.kind = 'achievement_review'
         ORDER BY created_at DESC, id DESC LIMIT 1) g ON true
     WHERE s.workspace_id = ${query.workspaceId}
       AND ((s.experiment_id IS NOT NULL AND e.state = ANY(${[...query.experimentStates]}::text[]))
            OR (s.experiment_id IS NULL AND s.role = 'outcome' AND o.state = ANY(${[...query.outcomeStates]}::text[])))
       AND EXISTS (SELECT 1 FROM signal_points p WHERE p.series_id = s.id AND p.ts < ${query.olderThan})
     ORDER BY s.id`.execute(db);
  return rows.rows.map((r) => {
    const start = r.window_start === null ? null : new Date(r.window_start);
    const end = r.window_end === null ? null : new Date(r.window_end);
    const valid = start !== null && end !== null && Number.isFinite(start.getTime()) && Number.isFinite(end.getTime());
    return {
      seriesId: r.id,
      experimentId: r.experiment_id,
      analysedUntil: r.analysed_until,
      outcomeActivatedAt: r.activated_at,
      achievementWindow: valid ? { start: start as Date, end: end as Date } : null,
    };
  });
}

/**
 * What of a series is kept whatever its age. Whatever the rule, the newest
 * point of each arm is kept too (the series' latest totals; `polled_until`
 * points at them).
 */
export interface KeepRule {
  readonly seriesId: string;
  /** Per arm, the newest point at or before each of these times is kept (at most two: analysis, baseline). */
  readonly newestAtOrBefore: readonly Date[];
  /** Every point with ts in [start, end] is kept. */
  readonly between: { readonly start: Date; readonly end: Date } | null;
  /** The oldest point of each arm is kept. */
  readonly first: boolean;
}

/**
 * Delete at most `limit` points with ts < `olderThan` of the series in
 * `rules`, except those each rule keeps: one statement, so one short
 * transaction however large the backlog. The kept points never change as
 * batches run (the newest points, those before a fixed time, the first), so
 * repeating the call until it deletes fewer than `limit` deletes exactly the
 * eligible points, and a later call deletes nothing more.
 *
 * @returns the points deleted, by series id (series with none are absent).
 */
export async function deleteExpiredPoints(
  db: DbOrTrx,
  batch: { readonly olderThan: Date; readonly rules: readonly KeepRule[]; readonly limit: number },
): Promise<Map<string, number>> {
  const deleted = new Map<string, number>();
  if (batch.rules.length === 0 || batch.limit <= 0) return deleted;
  const ids = batch.rules.map((r) => r.seriesId);
  const keepA = batch.rules.map((r) => r.newestAtOrBefore[0]?.toISOString() ?? null);
  const keepB = batch.rules.map((r) => r.newestAtOrBefore[1]?.toISOString() ?? null);
  const from = batch.rules.map((r) => r.between?.start.toISOString() ?? null);
  const to = batch.rules.map((r) => r.between?.end.toISOString() ?? null);
  const first = batch.rules.map((r) => r.first);
  // Each kept point is found by one probe of the primary key (series_id, arm, ts).
  const rows = await sql<{ series_id: string; n: number }>`
    WITH q AS (
      SELECT * FROM unnest(${ids}::uuid[], ${keepA}::timestamptz[], ${keepB}::timestamptz[],
                           ${from}::timestamptz[], ${to}::timestamptz[], ${first}::boolean[])
               AS q(series_id, keep_a, keep_b, keep_from, keep_to, keep_first)
       LIMIT ${ids.length}
    ), doomed AS (
      SELECT p.series_id, p.arm, p.ts
        FROM q JOIN signal_points p ON p.series_id = q.series_id AND p.ts < ${batch.olderThan}
       WHERE NOT (q.keep_from IS NOT NULL AND p.ts BETWEEN q.keep_from AND q.keep_to)
         AND p.ts < (SELECT max(k.ts) FROM signal_points k WHERE k.series_id = p.series_id AND k.arm = p.arm)
         AND p.ts IS DISTINCT FROM (SELECT max(k.ts) FROM signal_points k
                                     WHERE k.series_id = p.series_id AND k.arm = p.arm AND k.ts <= q.keep_a)
         AND p.ts IS DISTINCT FROM (SELECT max(k.ts) FROM signal_points k
                                     WHERE k.series_id = p.series_id AND k.arm = p.arm AND k.ts <= q.keep_b)
         AND NOT (q.keep_first AND p.ts = (SELECT min(k.ts) FROM signal_points k
                                            WHERE k.series_id = p.series_id AND k.arm = p.arm))
       LIMIT ${batch.limit}
    ), gone AS (
      DELETE FROM signal_points sp USING doomed d
       WHERE sp.series_id = d.series_id AND sp.arm = d.arm AND sp.ts = d.ts
      RETURNING sp.series_id
    )
    SELECT series_id, count(*)::int AS n FROM gone GROUP BY series_id`.execute(db);
  for (const r of rows.rows) deleted.set(r.series_id, r.n);
  return deleted;
}

/**
 * Run `fn` holding the session-level advisory lock named `name` on one
 * connection of the pool (`fn` gets that connection as its `db`), or return
 * `{ acquired: false }` at once when another session holds it. The lock is
 * released when `fn` settles, or by PostgreSQL when the connection ends.
 */
export async function withSessionLock<T>(
  db: Db,
  name: string,
  fn: (conn: Db) => Promise<T>,
): Promise<{ readonly acquired: true; readonly value: T } | { readonly acquired: false }> {
  return db.connection().execute(async (conn) => {
    const got = await sql<{ ok: boolean }>`
      SELECT pg_try_advisory_lock(hashtextextended(${name}, 0)) AS ok`.execute(conn);
    if (got.rows[0]?.ok !== true) return { acquired: false as const };
    try {
      return { acquired: true as const, value: await fn(conn) };
    } finally {
      await sql`SELECT pg_advisory_unlock(hashtextextended(${name}, 0))`.execute(conn);
    }
  });
}
