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
 * decompress the rows it touches; `deleteExpiredPoints` keeps those few); the
 * compression policy compresses the chunk again on its next run.
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

/** One stored point, by its key; `ts` as text with its microseconds (a JavaScript Date would lose them). */
export interface PointKey {
  readonly seriesId: string;
  readonly arm: string;
  readonly ts: string;
}

/** The time of a point as fixed-width UTC text with microseconds: it parses back to the same instant. */
const TS_TEXT = sql.raw(`to_char(p.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);

/** The rules' columns, one row per series (`q`), for the statements below. */
function rulesTable(rules: readonly KeepRule[]) {
  const ids = rules.map((r) => r.seriesId);
  const keepA = rules.map((r) => r.newestAtOrBefore[0]?.toISOString() ?? null);
  const keepB = rules.map((r) => r.newestAtOrBefore[1]?.toISOString() ?? null);
  const from = rules.map((r) => r.between?.start.toISOString() ?? null);
  const to = rules.map((r) => r.between?.end.toISOString() ?? null);
  const first = rules.map((r) => r.first);
  return sql`(SELECT * FROM unnest(${ids}::uuid[], ${keepA}::timestamptz[], ${keepB}::timestamptz[],
                                    ${from}::timestamptz[], ${to}::timestamptz[], ${first}::boolean[])
                       AS q(series_id, keep_a, keep_b, keep_from, keep_to, keep_first)
               LIMIT ${ids.length})`;
}

/**
 * The points older than `olderThan` that `rules` keep one by one (besides the
 * ranges `between`, which {@link deleteExpiredPoints} checks itself): per
 * series and arm, the newest point, the newest at or before each of
 * `newestAtOrBefore`, and the first when asked. Read once per run: they never
 * change while it deletes. One statement; each is one probe of the primary key.
 *
 * The rules' times come from JavaScript Dates (whole milliseconds) while a
 * point's ts may carry microseconds (an analysis at a point's ts stores it cut
 * to the millisecond), so "at or before" includes the following millisecond.
 */
export async function pointsToKeep(
  db: DbOrTrx,
  query: { readonly olderThan: Date; readonly rules: readonly KeepRule[] },
): Promise<PointKey[]> {
  if (query.rules.length === 0) return [];
  const rows = await sql<{ series_id: string; arm: string; ts: string }>`
    WITH q AS ${rulesTable(query.rules)},
    arms AS (SELECT DISTINCT p.series_id, p.arm FROM q JOIN signal_points p
                ON p.series_id = q.series_id AND p.ts < ${query.olderThan})
    SELECT DISTINCT a.series_id, a.arm, ${TS_TEXT} AS ts
      FROM arms a JOIN q ON q.series_id = a.series_id
      CROSS JOIN LATERAL (
        SELECT (SELECT max(k.ts) FROM signal_points k WHERE k.series_id = a.series_id AND k.arm = a.arm) AS ts
        UNION ALL
        SELECT (SELECT max(k.ts) FROM signal_points k WHERE k.series_id = a.series_id AND k.arm = a.arm
                   AND k.ts < q.keep_a + interval '1 millisecond')
        UNION ALL
        SELECT (SELECT max(k.ts) FROM signal_points k WHERE k.series_id = a.series_id AND k.arm = a.arm
                   AND k.ts < q.keep_b + interval '1 millisecond')
        UNION ALL
        SELECT (SELECT min(k.ts) FROM signal_points k WHERE k.series_id = a.series_id AND k.arm = a.arm)
         WHERE q.keep_first) p
     WHERE p.ts < ${query.olderThan}`.execute(db);
  return rows.rows.map((r) => ({ seriesId: r.series_id, arm: r.arm, ts: r.ts }));
}

/**
 * Delete at most `limit` points with ts < `olderThan` of the series in
 * `rules`, except `keep` (from {@link pointsToKeep}) and those in a rule's
 * `between`, in one short transaction however large the backlog. Repeating
 * the call until it deletes fewer than `limit` deletes exactly the eligible
 * points, and a later call deletes nothing more.
 *
 * Two steps, for TimescaleDB's compressed chunks: the batch's points are
 * chosen first (a read), then deleted with one statement per series and arm
 * whose `series_id` and `arm` (the compression's segments) and `ts` range are
 * constants, so TimescaleDB decompresses only that segment's rows in that
 * range (a `DELETE … USING` a join decompresses every segment of every chunk
 * it scans, past `timescaledb.max_tuples_decompressed_per_dml_transaction`).
 *
 * @param db the pool (or a connection of it): the deletion opens its own transaction; or a transaction to join.
 * @returns the points deleted, by series id (series with none are absent).
 */
export async function deleteExpiredPoints(
  db: DbOrTrx,
  batch: {
    readonly olderThan: Date;
    readonly rules: readonly KeepRule[];
    readonly keep: readonly PointKey[];
    readonly limit: number;
  },
): Promise<Map<string, number>> {
  const deleted = new Map<string, number>();
  if (batch.rules.length === 0 || batch.limit <= 0) return deleted;
  const keepSeries = batch.keep.map((k) => k.seriesId);
  const keepArms = batch.keep.map((k) => k.arm);
  const keepTs = batch.keep.map((k) => k.ts);
  const picked = await sql<{ series_id: string; arm: string; ts: string }>`
    WITH q AS ${rulesTable(batch.rules)},
    keep AS (SELECT * FROM unnest(${keepSeries}::uuid[], ${keepArms}::text[], ${keepTs}::timestamptz[])
                        AS k(series_id, arm, ts))
    SELECT p.series_id, p.arm, ${TS_TEXT} AS ts
      FROM q JOIN signal_points p ON p.series_id = q.series_id AND p.ts < ${batch.olderThan}
     WHERE NOT (q.keep_from IS NOT NULL AND p.ts >= q.keep_from AND p.ts < q.keep_to + interval '1 millisecond')
       AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.series_id = p.series_id AND k.arm = p.arm AND k.ts = p.ts)
     LIMIT ${batch.limit}`.execute(db);
  if (picked.rows.length === 0) return deleted;
  const groups = new Map<string, { seriesId: string; arm: string; ts: string[] }>();
  for (const r of picked.rows) {
    const key = JSON.stringify([r.series_id, r.arm]);
    const group = groups.get(key) ?? { seriesId: r.series_id, arm: r.arm, ts: [] };
    group.ts.push(r.ts);
    groups.set(key, group);
  }
  const remove = async (trx: DbOrTrx) => {
    for (const g of groups.values()) {
      // The fixed-width UTC text sorts as the times do.
      const sorted = [...g.ts].sort();
      const result = await sql`
        DELETE FROM signal_points
         WHERE series_id = ${g.seriesId} AND arm = ${g.arm}
           AND ts >= ${sorted[0]}::timestamptz AND ts <= ${sorted.at(-1)}::timestamptz
           AND ts = ANY(${sorted}::timestamptz[])`.execute(trx);
      const n = Number(result.numAffectedRows ?? 0);
      if (n > 0) deleted.set(g.seriesId, (deleted.get(g.seriesId) ?? 0) + n);
    }
  };
  if (db.isTransaction) await remove(db);
  else await (db as Db).transaction().execute(remove);
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
