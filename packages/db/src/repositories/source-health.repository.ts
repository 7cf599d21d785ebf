/**
 * Source health, kept on each signal series: the connector that reads it, the
 * last successful read, the last error (the source's own message) and the
 * throttle a rate-limit answer sets. Written after each read outside the
 * points' transaction (a read that failed stores no point, and its error must
 * still be shown); every write is idempotent for the same read.
 */
import type { SourceHealth } from "@outcome-runtime/core";
import { type Selectable, sql } from "kysely";
import type { DbOrTrx } from "../database";
import type { SignalSeriesTable } from "../schema";

/** One read of one metric through its connector, for the series of one or many experiments (a batch). */
export interface SourceReadRecord {
  readonly seriesIds: readonly string[];
  /** The connector type. */
  readonly connector: string;
  /** The connector's one-line description (never a secret); null when the connector could not be created. */
  readonly source: string | null;
  readonly at: Date;
  /** `ok`; `error` with the source's code and message; `throttled` after a rate-limit answer (an error too). */
  readonly result:
    | { readonly status: "ok" }
    | { readonly status: "error"; readonly code: string; readonly message: string }
    | {
        readonly status: "throttled";
        readonly code: string;
        readonly message: string;
        /** No request is sent for these series before this. */
        readonly until: Date;
      };
}

/** The longest error message kept, in characters. */
const MAX_MESSAGE = 2000;

/**
 * Records reads. A success sets `last_read_at` and lifts the throttle; an error
 * sets the last error (kept after later successes, dated, so a page shows the
 * newest one); a throttle sets the error and `throttled_until` (a later end
 * already set is kept).
 */
export async function recordSourceReads(db: DbOrTrx, reads: readonly SourceReadRecord[]): Promise<void> {
  for (const read of reads) {
    if (read.seriesIds.length === 0) continue;
    const ids = sql<boolean>`id = ANY(${[...read.seriesIds]}::uuid[])`;
    const base = { connector: read.connector, ...(read.source === null ? {} : { source: read.source }) };
    const r = read.result;
    if (r.status === "ok") {
      await db
        .updateTable("signal_series")
        .set({ ...base, last_read_at: read.at, throttled_until: null, throttle_note: null })
        .where(ids)
        .execute();
      continue;
    }
    const error = {
      ...base,
      last_error_at: read.at,
      last_error_code: r.code,
      last_error_message: r.message.slice(0, MAX_MESSAGE),
    };
    await db
      .updateTable("signal_series")
      .set(
        r.status === "error"
          ? error
          : {
              ...error,
              throttled_until: sql<Date>`GREATEST(throttled_until, ${r.until}::timestamptz)`,
              throttle_note: r.message.slice(0, MAX_MESSAGE),
            },
      )
      .where(ids)
      .execute();
  }
}

function healthOf(
  row: Pick<
    Selectable<SignalSeriesTable>,
    | "metric"
    | "role"
    | "connector"
    | "source"
    | "last_read_at"
    | "last_error_at"
    | "last_error_code"
    | "last_error_message"
    | "throttled_until"
    | "throttle_note"
    | "polled_until"
  > & { experiments?: number; failing?: number },
  now: Date,
): SourceHealth {
  const throttled = row.throttled_until !== null && row.throttled_until > now;
  const failing =
    row.last_error_at !== null && (row.last_read_at === null || row.last_error_at > row.last_read_at) && !throttled;
  return {
    metric: row.metric,
    role: row.role as SourceHealth["role"],
    connector: row.connector,
    source: row.source,
    status: throttled ? "throttled" : failing ? "failing" : row.last_read_at === null ? "waiting" : "ok",
    lastReadAt: row.last_read_at,
    polledUntil: row.polled_until,
    lastError:
      row.last_error_at === null
        ? null
        : { code: row.last_error_code ?? "unknown", message: row.last_error_message ?? "", at: row.last_error_at },
    throttledUntil: throttled ? row.throttled_until : null,
    throttleNote: throttled ? row.throttle_note : null,
    ...(row.experiments === undefined ? {} : { experiments: row.experiments, failingExperiments: row.failing ?? 0 }),
  };
}

const ROLE_ORDER = sql<number>`array_position(ARRAY['primary','guardrail','secondary','outcome']::text[], role)`;

/** The health of each series of an experiment: its signal first, then its guardrails, then its secondary metrics. */
export async function listExperimentSourceHealth(
  db: DbOrTrx,
  experimentId: string,
  now: Date,
): Promise<SourceHealth[]> {
  const rows = await db
    .selectFrom("signal_series")
    .selectAll()
    .where("experiment_id", "=", experimentId)
    .orderBy(ROLE_ORDER)
    .orderBy("metric")
    .execute();
  return rows.map((r) => healthOf(r, now));
}

/**
 * The health of each metric of an outcome across its series: its own series
 * (role `outcome`) and, per metric and role, its experiments' series together
 * (the newest read, the newest error, the latest throttle; `experiments` and
 * `failingExperiments` count them), counting only the experiments running now.
 */
export async function listOutcomeSourceHealth(db: DbOrTrx, outcomeId: string, now: Date): Promise<SourceHealth[]> {
  const result = await sql<
    Selectable<SignalSeriesTable> & { experiments: number; failing: number }
  >`SELECT s.metric, s.role,
           (array_agg(s.connector ORDER BY s.last_read_at DESC NULLS LAST) FILTER (WHERE s.connector IS NOT NULL))[1] AS connector,
           (array_agg(s.source ORDER BY s.last_read_at DESC NULLS LAST) FILTER (WHERE s.source IS NOT NULL))[1] AS source,
           max(s.last_read_at) AS last_read_at,
           max(s.polled_until) AS polled_until,
           max(s.last_error_at) AS last_error_at,
           (array_agg(s.last_error_code ORDER BY s.last_error_at DESC NULLS LAST))[1] AS last_error_code,
           (array_agg(s.last_error_message ORDER BY s.last_error_at DESC NULLS LAST))[1] AS last_error_message,
           max(s.throttled_until) AS throttled_until,
           (array_agg(s.throttle_note ORDER BY s.throttled_until DESC NULLS LAST))[1] AS throttle_note,
           count(s.experiment_id)::int AS experiments,
           count(*) FILTER (WHERE s.experiment_id IS NOT NULL AND s.last_error_at IS NOT NULL
                              AND (s.last_read_at IS NULL OR s.last_error_at > s.last_read_at))::int AS failing
      FROM signal_series s
      LEFT JOIN experiments e ON e.id = s.experiment_id
     WHERE s.outcome_id = ${outcomeId}
       AND (s.experiment_id IS NULL OR e.state = 'running')
     GROUP BY s.role, s.metric
     ORDER BY array_position(ARRAY['primary','guardrail','secondary','outcome']::text[], s.role), s.metric`.execute(db);
  return result.rows.map((r) => {
    const health = healthOf(r, now);
    // The outcome's own series is one series: no experiment counts.
    if (r.role !== "outcome") return health;
    const { experiments: _e, failingExperiments: _f, ...own } = health;
    return own;
  });
}

/** A throttled source as the worker's `/healthz` lists it: no workspace data beyond the connector and metric. */
export interface ThrottledSource {
  readonly connector: string | null;
  readonly source: string | null;
  /** Series held back (one per experiment and metric, or an outcome's own). */
  readonly series: number;
  readonly until: Date;
  readonly note: string | null;
}

/** The sources throttled now, by connector and description, the longest throttle first. */
export async function listThrottledSources(db: DbOrTrx, now: Date, limit = 50): Promise<ThrottledSource[]> {
  const result = await sql<ThrottledSource>`
    SELECT connector, source, count(*)::int AS series, max(throttled_until) AS until,
           (array_agg(throttle_note ORDER BY throttled_until DESC))[1] AS note
      FROM signal_series
     WHERE throttled_until > ${now}
     GROUP BY connector, source
     ORDER BY until DESC
     LIMIT ${limit}`.execute(db);
  return result.rows;
}
