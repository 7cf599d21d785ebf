/**
 * The interface every signal connector implements, and the shapes it
 * returns. See docs/connectors.md.
 */

import type { OutboundPolicy } from "@outcome-runtime/netguard";
import type { ConnectorError } from "./connector-error";
/**
 * The cumulative aggregate of one arm, as of `ts`: `units` exposed so far,
 * `sum` of their values and `sum_sq` of the squares of their values. For a
 * proportion each unit's value is 0 or 1, so `sum = sum_sq = conversions`.
 * `ts` is the as-of time of the aggregate; `null` means "as of the window
 * end" (the caller fills it in).
 */
export interface ArmAggregate {
  arm: string;
  units: number;
  sum: number;
  sum_sq: number;
  ts: Date | null;
  /**
   * The arm's units' pre-exposure covariate x, when the source gives one
   * (columns `cov_sum`, `cov_sum_sq`, `cov_sum_product`): the analysis then
   * adjusts the primary metric for it (CUPED).
   */
  covariate?: Covariate;
  /**
   * A ratio metric's denominator (columns `den_sum`, `den_sum_sq`,
   * `num_den_sum`), on every row of a ratio metric and on no other: `sum`
   * and `sum_sq` are then the numerator's Σ and Σ².
   */
  denominator?: Denominator;
}

/**
 * Σd, Σd² and Σn·d over an arm's units, d each unit's denominator and n its
 * numerator (a ratio metric Σn / Σd, analysed with the delta method).
 */
export interface Denominator {
  sum: number;
  sumSq: number;
  sumProduct: number;
}

/** Σx, Σx² and Σxy over an arm's units, x the covariate and y the metric value. */
export interface Covariate {
  sum: number;
  sumSq: number;
  sumProduct: number;
}

/** One point of an outcome's own time series. */
export interface SeriesPoint {
  ts: Date;
  value: number;
}

/**
 * What an experiment poll asks for: the aggregates of `arms` of the
 * experiment `experimentKey`, for the window (`from`, `to`].
 */
export interface ExperimentWindow {
  experimentKey: string;
  arms: readonly string[];
  from: Date;
  to: Date;
  /**
   * When the experiment was launched. Used by the `csv` connector's `speed`
   * to anchor a replayed file; defaults to `from`.
   */
  startedAt?: Date;
}

/**
 * What a batched poll asks for: the aggregates of many experiments read
 * through the same source and query, in one request. Each experiment keeps its
 * own arms and window start; the request reads from the earliest `from`.
 */
export interface BatchWindow {
  readonly experiments: readonly {
    readonly experimentKey: string;
    readonly arms: readonly string[];
    readonly from: Date;
    /**
     * When the experiment was launched: sources that count over a time range
     * (`prometheus`, `datadog`) count from it, so the aggregate stays
     * cumulative whatever the watermark `from`; defaults to `from`.
     */
    readonly startedAt?: Date;
  }[];
  readonly to: Date;
}

/**
 * A batched read's answer, by experiment key: the experiment's checked
 * aggregates (as `fetchArmAggregates` returns them; empty when the source has
 * no row for it yet), or the error that concerns that experiment alone (e.g. a
 * duplicate (arm, ts) row, a negative count).
 */
export type BatchAggregates = Map<string, ArmAggregate[] | ConnectorError>;

/** What a read would cost, as the source estimates it before running it. */
export interface CostEstimate {
  /** Bytes the read would scan (BigQuery's `totalBytesProcessed`). */
  readonly bytesProcessed: number;
  /** The cost guard the read runs under, in bytes (BigQuery's `maximumBytesBilled`), when there is one. */
  readonly maximumBytesBilled?: number;
  /** One line for people, e.g. `scans 1.2 GB (limit 10 GB)`. */
  readonly summary: string;
}

/** What an outcome series poll asks for: the points in (`from`, `to`]. */
export interface SeriesWindow {
  from: Date;
  to: Date;
}

/**
 * The identity of a Postgres database: the cluster's system identifier and
 * the database's OID (`pg_control_system()`, `pg_database`). Two connections
 * reach the same database exactly when these match, whatever host name,
 * port or role they used. `startedAt` (the postmaster's start time) stands
 * in for the cluster when `pg_control_system()` is not granted.
 */
export interface DatabaseIdentity {
  readonly systemIdentifier: string | null;
  readonly startedAt: string;
  readonly databaseOid: string;
}

/** What a connector may read from its surroundings. Nothing else. */
export interface ConnectorContext {
  /**
   * The credentials the settings name (`connectorCredentials(config)`),
   * resolved by the runtime: credential name (`database_url`, `username`,
   * `secret`) → value. The connector never reads the environment itself.
   */
  credentials?: Readonly<Record<string, string>>;
  /**
   * The runtime's own database, which is never a source: a `postgres`
   * connection that reaches it is refused. Called on the connector's first
   * connection (and at each re-check).
   */
  runtimeDatabase?: () => Promise<DatabaseIdentity>;
  /**
   * API base URLs the operator allows per connector type besides the
   * vendor's documented ones (`SOURCE_API_URLS`), e.g. a proxy, or a local
   * server in tests. `api_url` in outcome.yaml must be one of the vendor's
   * or one of these.
   */
  allowedApiUrls?: Readonly<Record<string, readonly string[]>>;
  /**
   * The longest a single source call may take, in milliseconds (the worker's
   * `POLL_TIMEOUT_MS`): a connector's own `timeout` is capped by it.
   */
  maxTimeoutMs?: number;
  /** Directory csv paths are resolved in, and may not leave (default: the working directory). */
  baseDir?: string;
  /** `ratio`: the source also returns the denominator's columns (`den_sum`, `den_sum_sq`, `num_den_sum`). */
  metricKind: "proportion" | "mean" | "ratio";
  /**
   * The HTTP transport, trusted as is (tests). Default: the global fetch held to
   * `outboundPolicy` (SSRF guard, `@outcome-runtime/netguard`).
   */
  fetch?: typeof fetch;
  /** What the default transport may reach besides public addresses; default `OUTBOUND_ALLOW`. */
  outboundPolicy?: OutboundPolicy;
}

/** A source of signal data. Create one with `createConnector`. */
export interface SignalConnector {
  /** The connector type (`postgres`, `mixpanel`, `csv`). */
  readonly type: string;
  /** One line for logs and the dashboard; never holds a secret. */
  describe(): string;
  /**
   * The cumulative aggregate per arm, validated: finite numbers, whole
   * `units` ≥ 0, `0 ≤ sum ≤ units` for a proportion, the denominator's
   * totals for a ratio, arms among
   * `window.arms`, at most one row per (arm, ts). Sorted by ts (null last),
   * then by the order of `window.arms`. An arm without data has no row.
   *
   * @throws ConnectorError
   */
  fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]>;
  /**
   * Present when the settings read many experiments in one request (`postgres`:
   * a query that uses `:experiments` and returns an `experiment` column): the
   * aggregates of every experiment of `window`, from one request. Rows are
   * split by experiment and checked as `fetchArmAggregates` checks them.
   *
   * @throws ConnectorError when the request fails, or when its answer cannot be
   *   attributed (a row naming no experiment, or one outside the batch): an error
   *   of the whole batch, nothing of it is used.
   */
  fetchBatchAggregates?(window: BatchWindow, signal?: AbortSignal): Promise<BatchAggregates>;
  /**
   * Present when the source can tell, without running it, what a read would
   * cost (`bigquery`: a dry run). `outcome-runtime signals test` and the API's
   * dry run show it.
   *
   * @throws ConnectorError as `fetchArmAggregates` does; `cost_exceeded` when the read would pass the cost guard
   */
  estimateCost?(window: BatchWindow, signal?: AbortSignal): Promise<CostEstimate>;
  /**
   * The outcome's own series in (`from`, `to`], sorted by ts.
   *
   * @throws ConnectorError `unsupported` when the settings give no way to read it
   */
  fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]>;
  /**
   * Checks, before any poll, that the source may be read as configured (for
   * `postgres`: the connection's database and role). Connectors with nothing
   * to check leave it out.
   *
   * @throws ConnectorError `source_refused` when it may not; `unavailable`, `auth_failed` or `timeout` when it
   *   cannot be reached
   */
  check?(signal?: AbortSignal): Promise<void>;
  /** Releases connections. The connector is not used afterwards. */
  close(): Promise<void>;
}

/** A connector's settings as written in outcome.yaml (raw or normalised). */
export type ConnectorConfig = { type: string } & Record<string, unknown>;
