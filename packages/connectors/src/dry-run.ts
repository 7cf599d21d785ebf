/**
 * A dry run of one metric's connector: its read run once against the real
 * source, through `createConnector` as the worker runs it, and what it would
 * store, per experiment and arm, with the time it took, its form (batched or
 * single) and, where the source can tell, its cost. Nothing is stored.
 * `outcome-runtime signals test` and the API's `POST /v1/outcomes/signals-test`
 * run it for each metric of an outcome, each with its own way of resolving
 * credentials.
 */
import type { ConnectorConfig, ConnectorContext, CostEstimate } from "./connector";
import { ConnectorError } from "./connector-error";
import { createConnector, readsInBatches } from "./create-connector";
import { type CredentialRequirement, connectorCredentials } from "./credentials";

/**
 * The experiment key a dry run reads when none is given: no source has rows
 * for it, but every query runs (its syntax, its permissions, its time).
 */
export const PLACEHOLDER_EXPERIMENT = "outcome-runtime-signals-test";

/** A dry run's default window: the 7 days before its end, ms. */
export const DEFAULT_DRY_RUN_WINDOW_MS = 7 * 86_400_000;

/** One metric of an outcome to read: where it is in the file, its kind and its connector's settings. */
export interface DryRunMetric {
  /** The metric's path for people, e.g. `signal` or `constraints.guardrails[1]`. */
  readonly path: string;
  readonly kind: "proportion" | "mean" | "ratio";
  readonly config: ConnectorConfig;
  /**
   * Where a setting of the connector is in the outcome file (`query`, and the character offset in its text when
   * known), for errors' `location`; leave it out when there is no file.
   */
  readonly locate?: (setting: string | null, offset: number | undefined) => { line: number; column: number };
}

/** What to read, and how. */
export interface DryRunOptions {
  /** The experiment keys to read (at least one). */
  readonly experiments: readonly string[];
  /** The arms each experiment is read with (at least one, no repeats). */
  readonly arms: readonly string[];
  /** The window (`from`, `to`]. */
  readonly from: Date;
  readonly to: Date;
  /** The context the connector is created with, but for the metric kind and the credentials. */
  readonly context: Omit<ConnectorContext, "metricKind" | "credentials">;
  /**
   * Resolves the credentials the settings name, as the process may (`credential` → value).
   *
   * @throws ConnectorError when one may not be used or is missing; the metric's result carries it
   */
  readonly credentials: (requirements: readonly CredentialRequirement[]) => Promise<Record<string, string>>;
  readonly signal?: AbortSignal;
}

/** One row the worker would store: an arm's aggregate as of `ts`. */
export interface DryRunRow {
  readonly arm: string;
  readonly units: number;
  readonly sum: number;
  readonly sum_sq: number;
  /** `sum / units` (for a ratio, `sum / den_sum`); null when the divisor is 0. */
  readonly mean: number | null;
  /** ISO 8601; null: as of the window end. */
  readonly ts: string | null;
}

/** Why a metric's read failed. */
export interface DryRunError {
  /** A `ConnectorError` code (`query_failed`, `invalid_config`, `source_refused`, ...). */
  readonly code: string;
  readonly message: string;
  /** The setting concerned, in the file's terms (e.g. `signal.connector.query`), when known. */
  readonly field: string | null;
  /** The line in the setting's text (a query's line), when the error carries one. */
  readonly line: number | null;
  /** The character offset in the setting's text, when the error carries one. */
  readonly offset: number | null;
  /** Where that is in the outcome file, when the metric has `locate`. */
  readonly location: { readonly line: number; readonly column: number } | null;
}

/** One metric's dry run. */
export interface DryRunResult {
  readonly path: string;
  readonly type: string;
  /** `batched`: every experiment in one request (`readsInBatches`); `single`: one request per experiment. */
  readonly form: "batched" | "single";
  /** The connector's `describe()`, when it was created. */
  readonly source: string | null;
  /** The reads' wall time, ms (the cost estimate excluded); null when nothing was read. */
  readonly queryMs: number | null;
  /** The source's estimate of the read's cost, when the connector has `estimateCost`. */
  readonly cost: CostEstimate | null;
  /** Per experiment, the rows it would store (empty: the source has no row for it yet), or its own error. */
  readonly experiments: readonly {
    readonly experiment: string;
    readonly rows: DryRunRow[] | null;
    readonly error: DryRunError | null;
  }[];
  /** The error of the whole read (settings, credentials, the query), or null. */
  readonly error: DryRunError | null;
}

/**
 * Runs one metric's read once, as the worker would, and reports it (see the
 * file's comment). Never throws for the source's sake: a failure is in the
 * result's `error` (the whole read) or an experiment's `error`.
 *
 * @throws RangeError for a window or a list of experiments or arms a caller should never build
 */
export async function dryRunConnector(metric: DryRunMetric, options: DryRunOptions): Promise<DryRunResult> {
  if (options.experiments.length === 0) throw new RangeError("experiments must name at least one experiment");
  if (options.arms.length === 0 || new Set(options.arms).size !== options.arms.length) {
    throw new RangeError("arms must name at least one arm, each once");
  }
  let form: "batched" | "single" = "single";
  const failed = (error: unknown, source: string | null, queryMs: number | null = null): DryRunResult => ({
    path: metric.path,
    type: metric.config.type,
    form,
    source,
    queryMs,
    cost: null,
    experiments: [],
    error: describeError(error, metric),
  });
  let connector: ReturnType<typeof createConnector>;
  try {
    form = readsInBatches(metric.config) ? "batched" : "single";
    const credentials = await options.credentials(connectorCredentials(metric.config));
    connector = createConnector(metric.config, { ...options.context, metricKind: metric.kind, credentials });
  } catch (error) {
    return failed(error, null);
  }
  const source = connector.describe();
  const { from, to, signal } = options;
  try {
    await connector.check?.(signal);
    const batch = {
      experiments: options.experiments.map((experimentKey) => ({ experimentKey, arms: options.arms, from })),
      to,
    };
    const cost = connector.estimateCost === undefined ? null : await connector.estimateCost(batch, signal);
    const started = performance.now();
    const experiments: DryRunResult["experiments"][number][] = [];
    if (form === "batched" && connector.fetchBatchAggregates !== undefined) {
      const answer = await connector.fetchBatchAggregates(batch, signal);
      for (const experiment of options.experiments) {
        const rows = answer.get(experiment) ?? [];
        experiments.push(
          rows instanceof ConnectorError
            ? { experiment, rows: null, error: describeError(rows, metric) }
            : { experiment, rows: rows.map((r) => dryRunRow(r, metric.kind)), error: null },
        );
      }
    } else {
      for (const experiment of options.experiments) {
        const rows = await connector.fetchArmAggregates(
          { experimentKey: experiment, arms: options.arms, from, to, startedAt: from },
          signal,
        );
        experiments.push({ experiment, rows: rows.map((r) => dryRunRow(r, metric.kind)), error: null });
      }
    }
    return {
      path: metric.path,
      type: metric.config.type,
      form,
      source,
      queryMs: Math.round(performance.now() - started),
      cost,
      experiments,
      error: null,
    };
  } catch (error) {
    return failed(error, source);
  } finally {
    await connector.close().catch(() => {});
  }
}

function dryRunRow(
  row: {
    arm: string;
    units: number;
    sum: number;
    sum_sq: number;
    ts: Date | null;
    denominator?: { sum: number };
  },
  kind: "proportion" | "mean" | "ratio",
): DryRunRow {
  const divisor = kind === "ratio" ? (row.denominator?.sum ?? 0) : row.units;
  return {
    arm: row.arm,
    units: row.units,
    sum: row.sum,
    sum_sq: row.sum_sq,
    mean: divisor === 0 ? null : row.sum / divisor,
    ts: row.ts === null ? null : row.ts.toISOString(),
  };
}

/** The error as the result reports it: its setting in the file's terms and, for a query, its line and offset. */
function describeError(error: unknown, metric: DryRunMetric): DryRunError {
  const connectorPath = `${metric.path}.connector`;
  if (!(error instanceof ConnectorError)) {
    const message = error instanceof Error ? error.message : String(error);
    return { code: "unavailable", message, field: null, line: null, offset: null, location: null };
  }
  const details = error.details;
  const setting =
    typeof details.sqlField === "string" ? details.sqlField : typeof details.field === "string" ? details.field : null;
  // A field named with its position (`query (line 2, column 5)`) is the setting `query`.
  const named = setting === null ? null : setting.replace(/ \(.*\)$/u, "");
  // A refused credential is about the setting that names it (`url_env`, `private_key_env`), whatever step of the
  // read (the account check, the first request) met the refusal.
  const field =
    error.code === "auth_failed" && (named === null || !Object.hasOwn(metric.config, named))
      ? (connectorCredentials(metric.config)[0]?.field ?? named)
      : named;
  let line = typeof details.line === "number" ? details.line : null;
  if (line === null && typeof details.position === "number") {
    // The source's position is in the query as sent (parameters rewritten): its line is kept, not its column.
    const match = /at line (\d+)/u.exec(error.message);
    line = match === null ? null : Number(match[1]);
  }
  const known = field !== null && Object.hasOwn(metric.config, field) ? field : null;
  const text = known === null ? undefined : metric.config[known];
  const column = typeof details.column === "number" && details.column >= 1 ? details.column : null;
  const offset =
    typeof details.offset === "number"
      ? details.offset
      : line !== null && typeof text === "string"
        ? positionIn(text, line, column)
        : null;
  return {
    code: error.code,
    message: error.message,
    field: field === null ? null : `${connectorPath}.${field}`,
    line,
    offset,
    location: metric.locate?.(known, known === null ? undefined : (offset ?? undefined)) ?? null,
  };
}

/**
 * The offset of line `line`, column `column` (both 1-based, as the driver
 * mapped them to the query as written) in `text`: the line's start when the
 * column is unknown or past the line's end; null past the text's end.
 */
function positionIn(text: string, line: number, column: number | null): number | null {
  const start = lineStart(text, line);
  if (start === null || column === null) return start;
  const end = text.indexOf("\n", start);
  return column - 1 <= (end === -1 ? text.length : end) - start ? start + column - 1 : start;
}

/** The offset of the first character of line `line` (1-based) of `text`; null past its end. */
function lineStart(text: string, line: number): number | null {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf("\n", offset);
    if (next === -1) return null;
    offset = next + 1;
  }
  return offset;
}

/** A dry run of every metric of an outcome, as `--json` prints it and the API answers it. */
export interface SignalsTestReport {
  readonly file: string;
  /** The window, ISO 8601. */
  readonly from: string;
  readonly to: string;
  readonly experiments: readonly string[];
  /** True when no experiment key was given and {@link PLACEHOLDER_EXPERIMENT} was read. */
  readonly placeholder: boolean;
  readonly arms: readonly string[];
  /** True when every metric and experiment was read without error. */
  readonly ok: boolean;
  readonly metrics: readonly DryRunResult[];
}

/**
 * Dry-runs each of an outcome's metrics in turn and reports them together.
 * With no experiment key given, reads {@link PLACEHOLDER_EXPERIMENT}.
 *
 * @param given the experiment keys asked for (may be empty)
 */
export async function dryRunOutcome(
  file: string,
  metrics: readonly DryRunMetric[],
  given: readonly string[],
  options: Omit<DryRunOptions, "experiments">,
): Promise<SignalsTestReport> {
  const experiments = given.length > 0 ? [...given] : [PLACEHOLDER_EXPERIMENT];
  const results: DryRunResult[] = [];
  for (const metric of metrics) results.push(await dryRunConnector(metric, { ...options, experiments }));
  return {
    file,
    from: options.from.toISOString(),
    to: options.to.toISOString(),
    experiments,
    placeholder: given.length === 0,
    arms: options.arms,
    ok: results.every((m) => m.error === null && m.experiments.every((e) => e.error === null)),
    metrics: results,
  };
}
