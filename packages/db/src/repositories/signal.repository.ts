/**
 * Signal series and points, analyses, poll bookkeeping and the webhook outbox.
 * Every write here is idempotent: points are keyed by (series, arm, ts), analyses
 * by (experiment, ts), webhooks by their dedupe key, so a job that runs twice
 * (BullMQ delivers at least once) changes nothing the second time.
 */
import type { AnalysisRecord, NewAnalysis } from "@outcome-runtime/core";
import { type Selectable, sql } from "kysely";
import type { DbOrTrx } from "../database";
import type { SignalSeriesTable } from "../schema";

export type SeriesRole = "primary" | "guardrail" | "secondary" | "outcome";

export interface SeriesRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly metric: string;
  readonly role: SeriesRole;
  readonly kind: "proportion" | "mean" | "ratio";
  /** As-of time of the newest stored point; null before the first point. */
  readonly polledUntil: Date | null;
  /** No request is sent for the series before this (the source's rate limit); null when none holds it. */
  readonly throttledUntil: Date | null;
}

export interface SeriesKey {
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly experimentId: string | null;
  readonly metric: string;
  readonly role: SeriesRole;
  readonly kind: "proportion" | "mean" | "ratio";
}

function toSeries(row: Selectable<SignalSeriesTable>): SeriesRecord {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    outcomeId: row.outcome_id,
    experimentId: row.experiment_id,
    metric: row.metric,
    role: row.role as SeriesRole,
    kind: row.kind as "proportion" | "mean" | "ratio",
    polledUntil: row.polled_until,
    throttledUntil: row.throttled_until,
  };
}

const NO_EXPERIMENT = "00000000-0000-0000-0000-000000000000";

async function findSeries(db: DbOrTrx, key: SeriesKey): Promise<SeriesRecord | null> {
  // The same expression as the unique index signal_series_identity, so the lookup is one index probe.
  const row = await db
    .selectFrom("signal_series")
    .selectAll()
    .where("outcome_id", "=", key.outcomeId)
    .where(sql<string>`COALESCE(experiment_id, ${NO_EXPERIMENT}::uuid)`, "=", key.experimentId ?? NO_EXPERIMENT)
    .where("metric", "=", key.metric)
    .where("role", "=", key.role)
    .executeTakeFirst();
  return row ? toSeries(row) : null;
}

/**
 * Find or create the series (unique per outcome, experiment, metric and role).
 * Reads first: after the first poll the series exists and nothing is written.
 */
export async function ensureSeries(db: DbOrTrx, key: SeriesKey): Promise<SeriesRecord> {
  const found = await findSeries(db, key);
  if (found !== null) return found;
  await sql`INSERT INTO signal_series (workspace_id, outcome_id, experiment_id, metric, role, kind)
            VALUES (${key.workspaceId}, ${key.outcomeId}, ${key.experimentId}, ${key.metric}, ${key.role}, ${key.kind})
            ON CONFLICT DO NOTHING`.execute(db);
  const created = await findSeries(db, key);
  if (created === null) throw new Error(`signal series ${key.metric}/${key.role} vanished after its insert`);
  return created;
}

/**
 * Find or create one metric's series for many experiments of one outcome in
 * two statements (a bulk insert that skips existing series, then one read), for
 * the batched poll. Returns the series by experiment id.
 */
export async function ensureExperimentSeries(
  db: DbOrTrx,
  key: Omit<SeriesKey, "experimentId">,
  experimentIds: readonly string[],
): Promise<Map<string, SeriesRecord>> {
  const byExperiment = new Map<string, SeriesRecord>();
  if (experimentIds.length === 0) return byExperiment;
  const read = async () =>
    (
      await db
        .selectFrom("signal_series")
        .selectAll()
        .where("outcome_id", "=", key.outcomeId)
        .where("experiment_id", "in", [...experimentIds])
        .where("metric", "=", key.metric)
        .where("role", "=", key.role)
        .execute()
    ).map(toSeries);
  let found = await read();
  if (found.length < experimentIds.length) {
    const have = new Set(found.map((s) => s.experimentId));
    const missing = experimentIds.filter((id) => !have.has(id));
    await sql`INSERT INTO signal_series (workspace_id, outcome_id, experiment_id, metric, role, kind)
              SELECT ${key.workspaceId}, ${key.outcomeId}, e, ${key.metric}, ${key.role}, ${key.kind}
                FROM unnest(${missing}::uuid[]) AS e
              ON CONFLICT DO NOTHING`.execute(db);
    found = await read();
  }
  for (const s of found) if (s.experimentId !== null) byExperiment.set(s.experimentId, s);
  return byExperiment;
}

/** Series of an experiment (every role). */
export async function listSeriesOfExperiment(db: DbOrTrx, experimentId: string): Promise<SeriesRecord[]> {
  return listSeriesOfExperiments(db, [experimentId]);
}

/** Series of many experiments (every role), in one statement; empty for no ids. */
export async function listSeriesOfExperiments(db: DbOrTrx, experimentIds: readonly string[]): Promise<SeriesRecord[]> {
  if (experimentIds.length === 0) return [];
  const rows = await db
    .selectFrom("signal_series")
    .selectAll()
    .where(sql<boolean>`experiment_id = ANY(${[...experimentIds]}::uuid[])`)
    .execute();
  return rows.map(toSeries);
}

export interface PointInput {
  readonly arm: string;
  readonly ts: Date;
  readonly units: number;
  readonly sum: number;
  readonly sum_sq: number;
  /** The arm's pre-exposure covariate (CUPED), when the source gives one. */
  readonly covariate?: PointCovariate;
  /** A ratio metric's denominator (`sum` and `sum_sq` are then the numerator's); on a ratio's points only. */
  readonly denominator?: PointDenominator;
}

/** Σd, Σd² and Σn·d over an arm's units, d each unit's denominator and n its numerator (a ratio metric). */
export interface PointDenominator {
  readonly sum: number;
  readonly sumSq: number;
  readonly sumProduct: number;
}

/** Σx, Σx² and Σxy over an arm's units, x the covariate and y the metric value. */
export interface PointCovariate {
  readonly sum: number;
  readonly sumSq: number;
  readonly sumProduct: number;
}

/** A stored point's covariate columns as a `PointCovariate` (absent when NULL). */
function covariateOf(r: { cov_sum: number | null; cov_sum_sq: number | null; cov_sum_product: number | null }): {
  covariate?: PointCovariate;
} {
  if (r.cov_sum === null || r.cov_sum_sq === null || r.cov_sum_product === null) return {};
  return { covariate: { sum: r.cov_sum, sumSq: r.cov_sum_sq, sumProduct: r.cov_sum_product } };
}

/** A stored point's denominator columns as a `PointDenominator` (absent when NULL). */
function denominatorOf(r: { den_sum: number | null; den_sum_sq: number | null; num_den_sum: number | null }): {
  denominator?: PointDenominator;
} {
  if (r.den_sum === null || r.den_sum_sq === null || r.num_den_sum === null) return {};
  return { denominator: { sum: r.den_sum, sumSq: r.den_sum_sq, sumProduct: r.num_den_sum } };
}

export interface UpsertReport {
  /** Points that did not exist. */
  readonly inserted: number;
  /** Existing points whose values the source revised. */
  readonly updated: number;
  /** Points already stored with the same values (a re-poll). */
  readonly unchanged: number;
}

/**
 * Upsert cumulative points in one statement (`INSERT … ON CONFLICT DO UPDATE …
 * WHERE values differ`), and set the series' "polled until" mark to the oldest
 * of its arms' newest points. Identical re-polls write nothing; revised values
 * are updated, each with one `signal_point_revisions` row (old and new values,
 * `revised_at` = `polledAt`). The covariate and a ratio's denominator are
 * values too: a point that gains, loses or changes either is revised.
 */
export async function upsertPoints(
  db: DbOrTrx,
  series: { id: string; workspaceId: string },
  points: readonly PointInput[],
  polledAt: Date,
): Promise<UpsertReport> {
  const reports = await upsertPointsOfSeries(db, [{ series, points }], polledAt);
  return reports.get(series.id) ?? { inserted: 0, updated: 0, unchanged: 0 };
}

/**
 * `upsertPoints` for many series at once, in two statements whatever their
 * number (the batched poll stores a batch of experiments so): one upsert of
 * every point with its revisions, one update of every series' marks (a series
 * given no points only has `last_polled_at` set). Each series appears once.
 *
 * @returns the report of each series, by series id.
 * @throws Error when a series appears twice.
 */
export async function upsertPointsOfSeries(
  db: DbOrTrx,
  entries: readonly { readonly series: { id: string; workspaceId: string }; readonly points: readonly PointInput[] }[],
  polledAt: Date,
): Promise<Map<string, UpsertReport>> {
  const reports = new Map<string, UpsertReport>();
  if (entries.length === 0) return reports;
  const seriesIds: string[] = [];
  const workspaceIds: string[] = [];
  const arms: string[] = [];
  const tss: string[] = [];
  const units: number[] = [];
  const sums: number[] = [];
  const sumSqs: number[] = [];
  const covSums: (number | null)[] = [];
  const covSumSqs: (number | null)[] = [];
  const covSumProducts: (number | null)[] = [];
  const denSums: (number | null)[] = [];
  const denSumSqs: (number | null)[] = [];
  const numDenSums: (number | null)[] = [];
  const withPoints: string[] = [];
  for (const { series, points } of entries) {
    if (reports.has(series.id)) throw new Error(`series ${series.id} given twice to upsertPointsOfSeries`);
    reports.set(series.id, { inserted: 0, updated: 0, unchanged: points.length });
    if (points.length > 0) withPoints.push(series.id);
    for (const p of points) {
      seriesIds.push(series.id);
      workspaceIds.push(series.workspaceId);
      arms.push(p.arm);
      tss.push(p.ts.toISOString());
      units.push(p.units);
      sums.push(p.sum);
      sumSqs.push(p.sum_sq);
      covSums.push(p.covariate?.sum ?? null);
      covSumSqs.push(p.covariate?.sumSq ?? null);
      covSumProducts.push(p.covariate?.sumProduct ?? null);
      denSums.push(p.denominator?.sum ?? null);
      denSumSqs.push(p.denominator?.sumSq ?? null);
      numDenSums.push(p.denominator?.sumProduct ?? null);
    }
  }
  if (seriesIds.length > 0) {
    // One statement: the values a revision replaces are read in the same snapshot as the upsert, and each
    // point the upsert changed (not inserted) gets one revision row with its old and new values.
    const result = await sql<{ series_id: string; inserted: boolean }>`
      WITH input AS (
        SELECT u.series_id, u.workspace_id, u.arm, u.ts, u.units, u.sum, u.sum_sq, u.cov_sum, u.cov_sum_sq,
               u.cov_sum_product, u.den_sum, u.den_sum_sq, u.num_den_sum
          FROM unnest(${seriesIds}::uuid[], ${workspaceIds}::uuid[], ${arms}::text[], ${tss}::timestamptz[],
                      ${units}::bigint[], ${sums}::float8[], ${sumSqs}::float8[],
                      ${covSums}::float8[], ${covSumSqs}::float8[], ${covSumProducts}::float8[],
                      ${denSums}::float8[], ${denSumSqs}::float8[], ${numDenSums}::float8[])
               AS u(series_id, workspace_id, arm, ts, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product,
                    den_sum, den_sum_sq, num_den_sum)
      ), previous AS (
        SELECT sp.series_id, sp.arm, sp.ts, sp.units, sp.sum, sp.sum_sq, sp.cov_sum, sp.cov_sum_sq,
               sp.cov_sum_product, sp.den_sum, sp.den_sum_sq, sp.num_den_sum
          FROM signal_points sp JOIN input i ON sp.series_id = i.series_id AND sp.arm = i.arm AND sp.ts = i.ts
      ), upserted AS (
        INSERT INTO signal_points AS sp
               (series_id, workspace_id, arm, ts, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product,
                den_sum, den_sum_sq, num_den_sum)
        SELECT series_id, workspace_id, arm, ts, units, sum, sum_sq,
               cov_sum, cov_sum_sq, cov_sum_product, den_sum, den_sum_sq, num_den_sum
          FROM input
        ON CONFLICT (series_id, arm, ts) DO UPDATE
           SET units = EXCLUDED.units, sum = EXCLUDED.sum, sum_sq = EXCLUDED.sum_sq, cov_sum = EXCLUDED.cov_sum,
               cov_sum_sq = EXCLUDED.cov_sum_sq, cov_sum_product = EXCLUDED.cov_sum_product,
               den_sum = EXCLUDED.den_sum, den_sum_sq = EXCLUDED.den_sum_sq, num_den_sum = EXCLUDED.num_den_sum,
               ingested_at = now()
         WHERE (sp.units, sp.sum, sp.sum_sq, sp.cov_sum, sp.cov_sum_sq, sp.cov_sum_product,
                sp.den_sum, sp.den_sum_sq, sp.num_den_sum)
               IS DISTINCT FROM
               (EXCLUDED.units, EXCLUDED.sum, EXCLUDED.sum_sq, EXCLUDED.cov_sum, EXCLUDED.cov_sum_sq,
                EXCLUDED.cov_sum_product, EXCLUDED.den_sum, EXCLUDED.den_sum_sq, EXCLUDED.num_den_sum)
        RETURNING sp.series_id, sp.workspace_id, sp.arm, sp.ts, sp.units, sp.sum, sp.sum_sq, sp.cov_sum,
                  sp.cov_sum_sq, sp.cov_sum_product, sp.den_sum, sp.den_sum_sq, sp.num_den_sum, (xmax = 0) AS inserted
      ), revisions AS (
        INSERT INTO signal_point_revisions
               (series_id, workspace_id, arm, ts, old_units, old_sum, old_sum_sq, new_units, new_sum, new_sum_sq,
                old_cov_sum, old_cov_sum_sq, old_cov_sum_product, new_cov_sum, new_cov_sum_sq, new_cov_sum_product,
                old_den_sum, old_den_sum_sq, old_num_den_sum, new_den_sum, new_den_sum_sq, new_num_den_sum,
                revised_at)
        SELECT u.series_id, u.workspace_id, u.arm, u.ts, p.units, p.sum, p.sum_sq,
               u.units, u.sum, u.sum_sq, p.cov_sum, p.cov_sum_sq, p.cov_sum_product,
               u.cov_sum, u.cov_sum_sq, u.cov_sum_product,
               p.den_sum, p.den_sum_sq, p.num_den_sum, u.den_sum, u.den_sum_sq, u.num_den_sum, ${polledAt}
          FROM upserted u JOIN previous p ON p.series_id = u.series_id AND p.arm = u.arm AND p.ts = u.ts
         WHERE NOT u.inserted
      )
      SELECT series_id, inserted FROM upserted`.execute(db);
    for (const row of result.rows) {
      const r = reports.get(row.series_id) as UpsertReport;
      reports.set(
        row.series_id,
        row.inserted
          ? { inserted: r.inserted + 1, updated: r.updated, unchanged: r.unchanged - 1 }
          : { inserted: r.inserted, updated: r.updated + 1, unchanged: r.unchanged - 1 },
      );
    }
  }
  // The mark is the oldest of the arms' newest points: an arm whose rows arrive later than the
  // others' (with an earlier as-of time) is still fetched by the next poll. Re-fetching the
  // faster arms' rows costs nothing: their upsert finds them unchanged.
  await sql`UPDATE signal_series s
               SET last_polled_at = ${polledAt},
                   polled_until = CASE WHEN s.id = ANY(${withPoints}::uuid[])
                                       THEN (SELECT min(newest)
                                               FROM (SELECT max(ts) AS newest FROM signal_points
                                                      WHERE series_id = s.id GROUP BY arm) AS per_arm)
                                       ELSE s.polled_until END
             WHERE s.id = ANY(${[...reports.keys()]}::uuid[])`.execute(db);
  return reports;
}

export interface StoredPoint extends PointInput {}

/** The columns of `signal_points` a point is read from. */
type PointRow = {
  arm: string;
  ts: Date;
  units: string | number;
  sum: number;
  sum_sq: number;
  cov_sum: number | null;
  cov_sum_sq: number | null;
  cov_sum_product: number | null;
  den_sum: number | null;
  den_sum_sq: number | null;
  num_den_sum: number | null;
};

/** A `signal_points` row as a point: `units` as a number (bigint comes as a string), the optional groups when set. */
function storedPointOf(r: PointRow): StoredPoint {
  return {
    arm: r.arm,
    ts: r.ts,
    units: Number(r.units),
    sum: r.sum,
    sum_sq: r.sum_sq,
    ...covariateOf(r),
    ...denominatorOf(r),
  };
}

/** Points of a series with ts > `after` (all when null), oldest first, then by arm. */
export async function listPoints(db: DbOrTrx, seriesId: string, after: Date | null): Promise<StoredPoint[]> {
  return (await pointsSince(db, [{ seriesId, since: after }])).get(seriesId)?.after ?? [];
}

/** The newest point per arm of a series with ts ≤ `atOrBefore`. */
export async function latestPointsAtOrBefore(db: DbOrTrx, seriesId: string, atOrBefore: Date): Promise<StoredPoint[]> {
  return (await pointsSince(db, [{ seriesId, since: atOrBefore }])).get(seriesId)?.base ?? [];
}

/**
 * Turn PostgreSQL's JIT compilation off until the end of the caller's
 * transaction (`SET LOCAL`). The set-based statements of a batched poll and of
 * an analysis unnest arrays, which the planner estimates at a fixed 100 rows
 * each whatever their length; once the tables are large the estimated cost
 * passes `jit_optimize_above_cost` and each statement spends about 0.4 s
 * compiling for work that takes milliseconds. Outside a transaction it does
 * nothing (PostgreSQL warns).
 */
export async function disableJit(trx: DbOrTrx): Promise<void> {
  await sql`SET LOCAL jit = off`.execute(trx);
}

/** What the analysis of an experiment reads of one of its series, from `pointsSince`. */
export interface SeriesPointsSince {
  /** The newest point per arm with ts ≤ `since` (none when `since` is null). */
  readonly base: StoredPoint[];
  /** Every point with ts > `since` (all when null), oldest first, then by arm. */
  readonly after: StoredPoint[];
  /** The earliest ts of any point of the series, or null when it has none. */
  readonly firstTs: Date | null;
}

/**
 * For each series, its points as of `since` (the newest per arm) and after
 * it, and its first point's time, in one statement whatever the number of
 * series: what `latestPointsAtOrBefore`, `listPoints` and `firstPointTs` give
 * one series at a time. The analysis of a batch of experiments reads all their
 * series so.
 *
 * @returns by series id; a series without points maps to empty lists and a null `firstTs`.
 */
export async function pointsSince(
  db: DbOrTrx,
  requests: readonly { readonly seriesId: string; readonly since: Date | null }[],
): Promise<Map<string, SeriesPointsSince>> {
  const out = new Map<string, { base: StoredPoint[]; after: StoredPoint[]; firstTs: Date | null }>();
  if (requests.length === 0) return out;
  for (const r of requests) out.set(r.seriesId, { base: [], after: [], firstTs: null });
  const ids = requests.map((r) => r.seriesId);
  const since = requests.map((r) => r.since?.toISOString() ?? null);
  // Each branch is one index probe per series (the primary key leads with series_id); the LIMIT tells the
  // planner how many series there are (it assumes 100 for any unnest). `OFFSET 0` keeps the
  // planner from flattening the "after" branch into a join, which, once the table is large, it may run as a
  // scan of every point.
  const columns = sql.raw(
    "arm, ts, units, sum, sum_sq, cov_sum, cov_sum_sq, cov_sum_product, den_sum, den_sum_sq, num_den_sum",
  );
  const rows = await sql<PointRow & { part: "base" | "after" | "first"; series_id: string }>`
    WITH q AS (SELECT * FROM unnest(${ids}::uuid[], ${since}::timestamptz[]) AS q(series_id, since)
               LIMIT ${ids.length})
    SELECT 'base' AS part, q.series_id, b.* FROM q CROSS JOIN LATERAL (
      SELECT DISTINCT ON (arm) ${columns} FROM signal_points sp
       WHERE sp.series_id = q.series_id AND sp.ts <= q.since ORDER BY arm, ts DESC) b
    UNION ALL
    SELECT 'after', q.series_id, a.* FROM q CROSS JOIN LATERAL (
      SELECT ${columns} FROM signal_points sp
       WHERE sp.series_id = q.series_id AND (q.since IS NULL OR sp.ts > q.since) OFFSET 0) a
    UNION ALL
    SELECT 'first', q.series_id, f.* FROM q CROSS JOIN LATERAL (
      SELECT ${columns} FROM signal_points sp WHERE sp.series_id = q.series_id ORDER BY ts LIMIT 1) f
    ORDER BY ts, arm`.execute(db);
  for (const row of rows.rows) {
    const entry = out.get(row.series_id);
    if (entry === undefined) continue;
    if (row.part === "first") entry.firstTs = row.ts;
    else entry[row.part].push(storedPointOf(row));
  }
  return out;
}

/**
 * Record a poll's outcome on an experiment, or on several alike (one
 * statement): success clears the error, failure counts.
 */
export async function recordExperimentPoll(
  db: DbOrTrx,
  experimentId: string | readonly string[],
  at: Date,
  error: { code: string; message: string } | null,
): Promise<void> {
  await db
    .updateTable("experiments")
    .set(
      error === null
        ? { last_polled_at: at, poll_error: null, poll_failures: 0 }
        : {
            poll_error: JSON.stringify({ ...error, at: at.toISOString() }),
            poll_failures: sql<number>`poll_failures + 1`,
          },
    )
    .where(sql<boolean>`id = ANY(${typeof experimentId === "string" ? [experimentId] : [...experimentId]}::uuid[])`)
    .execute();
}

/** Fix the experiment's statistical plan once (the first analysis); later calls keep the first plan. */
export async function setStatsPlanOnce(db: DbOrTrx, experimentId: string, plan: object): Promise<unknown> {
  await db
    .updateTable("experiments")
    .set({ stats_plan: JSON.stringify(plan) })
    .where("id", "=", experimentId)
    .where("stats_plan", "is", null)
    .execute();
  const row = await db.selectFrom("experiments").select("stats_plan").where("id", "=", experimentId).executeTakeFirst();
  return row?.stats_plan ?? null;
}

/** What an analysis stores (core's `NewAnalysis`). */
export type AnalysisInput = NewAnalysis;

/** One stored analysis (core's `AnalysisRecord`). */
export type { AnalysisRecord };

function toAnalysis(row: {
  id: string;
  workspace_id: string;
  experiment_id: string;
  ts: Date;
  arms: unknown;
  effect: number | null;
  ci_low: number | null;
  ci_high: number | null;
  relative_lift: number | null;
  p_value: number | null;
  srm_p_value: number | null;
  guardrails: unknown;
  decision: unknown;
  details: unknown;
  created_at: Date;
}): AnalysisRecord {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    experimentId: row.experiment_id,
    ts: row.ts,
    arms: row.arms as AnalysisRecord["arms"],
    effect: row.effect,
    ciLow: row.ci_low,
    ciHigh: row.ci_high,
    relativeLift: row.relative_lift,
    pValue: row.p_value,
    srmPValue: row.srm_p_value,
    guardrails: row.guardrails as AnalysisRecord["guardrails"],
    decision: row.decision as AnalysisRecord["decision"],
    details: row.details as AnalysisRecord["details"],
    createdAt: row.created_at,
  };
}

/** Insert an analysis; false when one already exists for (experiment, ts) (a re-run). */
export async function insertAnalysis(db: DbOrTrx, a: AnalysisInput): Promise<boolean> {
  return (await insertAnalyses(db, [a])).size === 1;
}

/** The key `insertAnalyses` reports an inserted analysis by. */
export function analysisKey(experimentId: string, ts: Date): string {
  return `${experimentId}@${ts.getTime()}`;
}

/**
 * Insert many analyses in one statement (arrays unnested, so any number fits
 * the protocol's parameter limit); an analysis whose (experiment, ts) already
 * exists is skipped (a re-run).
 *
 * @returns the `analysisKey` of each analysis inserted.
 */
export async function insertAnalyses(db: DbOrTrx, rows: readonly AnalysisInput[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const column = <T>(f: (a: AnalysisInput) => T): T[] => rows.map(f);
  const result = await sql<{ experiment_id: string; ts: Date }>`
    INSERT INTO analyses (workspace_id, experiment_id, ts, arms, effect, ci_low, ci_high, relative_lift, p_value,
                          srm_p_value, guardrails, decision, details)
    SELECT * FROM unnest(${column((a) => a.workspaceId)}::uuid[], ${column((a) => a.experimentId)}::uuid[],
                         ${column((a) => a.ts.toISOString())}::timestamptz[],
                         ${column((a) => JSON.stringify(a.arms))}::jsonb[],
                         ${column((a) => a.effect)}::float8[], ${column((a) => a.ciLow)}::float8[],
                         ${column((a) => a.ciHigh)}::float8[], ${column((a) => a.relativeLift)}::float8[],
                         ${column((a) => a.pValue)}::float8[], ${column((a) => a.srmPValue)}::float8[],
                         ${column((a) => JSON.stringify(a.guardrails))}::jsonb[],
                         ${column((a) => JSON.stringify(a.decision))}::jsonb[],
                         ${column((a) => JSON.stringify(a.details))}::jsonb[])
    ON CONFLICT ON CONSTRAINT analyses_experiment_ts_key DO NOTHING
    RETURNING experiment_id, ts`.execute(db);
  return new Set(result.rows.map((r) => analysisKey(r.experiment_id, r.ts)));
}

/** The newest analysis of each experiment that has one, by experiment id, in one statement. */
export async function latestAnalyses(
  db: DbOrTrx,
  experimentIds: readonly string[],
): Promise<Map<string, AnalysisRecord>> {
  if (experimentIds.length === 0) return new Map();
  // One index probe per experiment (analyses_experiment_ts_key, newest first), not every analysis of each.
  // The LIMIT tells the planner how many ids there are (it assumes 100 for any unnest).
  const rows = await sql<Parameters<typeof toAnalysis>[0]>`
    SELECT a.* FROM (SELECT * FROM unnest(${[...experimentIds]}::uuid[]) LIMIT ${experimentIds.length}) AS e(id)
      CROSS JOIN LATERAL (SELECT * FROM analyses WHERE experiment_id = e.id ORDER BY ts DESC LIMIT 1) a`.execute(db);
  return new Map(rows.rows.map((r) => [r.experiment_id, toAnalysis(r)]));
}

/** The newest analysis of an experiment, or null. */
export async function latestAnalysis(db: DbOrTrx, experimentId: string): Promise<AnalysisRecord | null> {
  return (await latestAnalyses(db, [experimentId])).get(experimentId) ?? null;
}

/** Analyses of an experiment, oldest first (at most `limit`, the newest ones). */
export async function listAnalyses(db: DbOrTrx, experimentId: string, limit = 1000): Promise<AnalysisRecord[]> {
  const rows = await db
    .selectFrom("analyses")
    .selectAll()
    .where("experiment_id", "=", experimentId)
    .orderBy("ts", "desc")
    .limit(limit)
    .execute();
  return rows.reverse().map(toAnalysis);
}

/**
 * Analyses of every workspace created after `after`, oldest first (at most
 * `limit`): what the live stream sends. `created_at` is the inserting
 * transaction's start, so a caller that must not miss a late commit reads
 * with some overlap and drops the ids it has seen.
 */
export async function listAnalysesCreatedAfter(db: DbOrTrx, after: Date, limit = 500): Promise<AnalysisRecord[]> {
  const rows = await db
    .selectFrom("analyses")
    .selectAll()
    .where("created_at", ">", after)
    .orderBy("created_at", "asc")
    .orderBy("id", "asc")
    .limit(limit)
    .execute();
  return rows.map(toAnalysis);
}

/** Ids of experiments in a state (e.g. every running one, for the schedulers). */
export async function listExperimentIdsInState(
  db: DbOrTrx,
  state: string,
): Promise<{ id: string; workspaceId: string; outcomeId: string }[]> {
  const rows = await db
    .selectFrom("experiments")
    .select(["id", "workspace_id", "outcome_id"])
    .where("state", "=", state)
    .orderBy("created_at")
    .execute();
  return rows.map((r) => ({ id: r.id, workspaceId: r.workspace_id, outcomeId: r.outcome_id }));
}

/** Ids of outcomes in a state. */
export async function listOutcomeIdsInState(
  db: DbOrTrx,
  state: string,
): Promise<{ id: string; workspaceId: string }[]> {
  const rows = await db.selectFrom("outcomes").select(["id", "workspace_id"]).where("state", "=", state).execute();
  return rows.map((r) => ({ id: r.id, workspaceId: r.workspace_id }));
}

export interface WebhookRecord {
  readonly id: string;
  readonly workspaceId: string;
  readonly eventType: string;
  readonly payload: object;
  readonly status: "pending" | "delivered" | "failed";
  readonly attempts: number;
  readonly createdAt: Date;
}

/** Record a webhook in the outbox, once per dedupe key; returns its id (the existing one on a re-run). */
export async function enqueueWebhook(
  db: DbOrTrx,
  w: { workspaceId: string; eventType: string; dedupeKey: string; payload: object },
): Promise<string> {
  await db
    .insertInto("webhook_deliveries")
    .values({
      workspace_id: w.workspaceId,
      event_type: w.eventType,
      dedupe_key: w.dedupeKey,
      payload: JSON.stringify(w.payload),
    })
    .onConflict((oc) => oc.constraint("webhook_deliveries_dedupe_key").doNothing())
    .execute();
  const row = await db
    .selectFrom("webhook_deliveries")
    .select("id")
    .where("workspace_id", "=", w.workspaceId)
    .where("dedupe_key", "=", w.dedupeKey)
    .executeTakeFirstOrThrow();
  return row.id;
}

export async function findWebhook(db: DbOrTrx, id: string): Promise<WebhookRecord | null> {
  const row = await db.selectFrom("webhook_deliveries").selectAll().where("id", "=", id).executeTakeFirst();
  return row
    ? {
        id: row.id,
        workspaceId: row.workspace_id,
        eventType: row.event_type,
        payload: row.payload as object,
        status: row.status as WebhookRecord["status"],
        attempts: row.attempts,
        createdAt: row.created_at,
      }
    : null;
}

/** Pending webhooks older than `olderThan` (for the sweeper that re-enqueues lost jobs). */
export async function listPendingWebhookIds(db: DbOrTrx, olderThan: Date, limit = 500): Promise<string[]> {
  const rows = await db
    .selectFrom("webhook_deliveries")
    .select("id")
    .where("status", "=", "pending")
    .where("created_at", "<", olderThan)
    .orderBy("created_at")
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/** Webhooks not delivered yet across every workspace, and the oldest one's creation (partial index on pending). */
export async function webhookBacklog(db: DbOrTrx): Promise<{ count: number; oldestAt: Date | null }> {
  const row = await db
    .selectFrom("webhook_deliveries")
    .select([sql<number>`count(*)::int`.as("count"), (eb) => eb.fn.min<Date | null>("created_at").as("oldest_at")])
    .where("status", "=", "pending")
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldestAt: row.oldest_at };
}

export async function markWebhookAttempt(
  db: DbOrTrx,
  id: string,
  result: { delivered: true } | { delivered: false; error: string; final: boolean },
): Promise<void> {
  await db
    .updateTable("webhook_deliveries")
    .set(
      result.delivered
        ? { status: "delivered", delivered_at: new Date(), attempts: sql<number>`attempts + 1`, last_error: null }
        : {
            status: result.final ? "failed" : "pending",
            attempts: sql<number>`attempts + 1`,
            last_error: result.error,
          },
    )
    .where("id", "=", id)
    .where("status", "=", "pending")
    .execute();
}

/** Running experiments with their outcome's spec, and active outcomes with theirs (for the schedulers). */
export async function listPollTargets(db: DbOrTrx): Promise<{
  experiments: { id: string; outcomeId: string; spec: unknown }[];
  outcomes: { id: string; spec: unknown }[];
}> {
  const running = await db
    .selectFrom("experiments")
    .select(["id", "outcome_id"])
    .where("state", "=", "running")
    .execute();
  // Each outcome's spec is read once, however many experiments it runs.
  const outcomeIds = [...new Set(running.map((e) => e.outcome_id))];
  const rows = await db
    .selectFrom("outcomes")
    .select(["id", "spec", "state"])
    .where((eb) =>
      outcomeIds.length === 0
        ? eb("state", "=", "active")
        : eb.or([eb("state", "=", "active"), eb("id", "in", outcomeIds)]),
    )
    .execute();
  const specs = new Map(rows.map((o) => [o.id, o.spec as unknown]));
  return {
    experiments: running.map((e) => ({ id: e.id, outcomeId: e.outcome_id, spec: specs.get(e.outcome_id) })),
    outcomes: rows.filter((o) => o.state === "active").map((o) => ({ id: o.id, spec: o.spec as unknown })),
  };
}

/**
 * How many running experiments, of every outcome and workspace, read their
 * signal through the connector configuration `connector` (their outcome's
 * `spec.signal.connector`, compared as JSON values): the sharing count of an
 * outcome's polling plan, counted by Postgres instead of reading every
 * running experiment's spec.
 */
export async function countRunningExperimentsWithConnector(db: DbOrTrx, connector: unknown): Promise<number> {
  const row = await db
    .selectFrom("experiments")
    .innerJoin("outcomes", "outcomes.id", "experiments.outcome_id")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("experiments.state", "=", "running")
    .where(sql<boolean>`outcomes.spec -> 'signal' -> 'connector' = ${JSON.stringify(connector)}::jsonb`)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** The points of an outcome's own signal series (role `outcome`), oldest first; empty before the first poll. */
export async function outcomeSeriesPoints(db: DbOrTrx, outcomeId: string): Promise<StoredPoint[]> {
  const series = await db
    .selectFrom("signal_series")
    .select("id")
    .where("outcome_id", "=", outcomeId)
    .where("experiment_id", "is", null)
    .where("role", "=", "outcome")
    .executeTakeFirst();
  return series === undefined ? [] : listPoints(db, series.id, null);
}

export interface PointRevision {
  readonly arm: string;
  readonly ts: Date;
  readonly before: { readonly units: number; readonly sum: number; readonly sum_sq: number };
  readonly after: { readonly units: number; readonly sum: number; readonly sum_sq: number };
  readonly revisedAt: Date;
}

/** The recorded revisions of a series' points, oldest first. */
export async function listPointRevisions(db: DbOrTrx, seriesId: string): Promise<PointRevision[]> {
  const rows = await db
    .selectFrom("signal_point_revisions")
    .selectAll()
    .where("series_id", "=", seriesId)
    .orderBy("id")
    .execute();
  return rows.map((r) => ({
    arm: r.arm,
    ts: r.ts,
    before: { units: Number(r.old_units), sum: r.old_sum, sum_sq: r.old_sum_sq },
    after: { units: Number(r.new_units), sum: r.new_sum, sum_sq: r.new_sum_sq },
    revisedAt: r.revised_at,
  }));
}
