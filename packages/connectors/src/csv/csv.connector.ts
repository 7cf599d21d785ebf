/**
 * `csv` (also `replay`): a signal recorded in a CSV file, replayed as a
 * stream. The file is read row by row (never whole), in time order, and
 * reading stops at the first row past the window end.
 *
 * Two layouts, told apart by the header:
 * - unit-level: `ts, arm, value`, one row per unit; units are counted and
 *   `sum`, `sum_sq` accumulated from the first row up to each ts;
 * - aggregate: `ts, arm, units, sum, sum_sq`, each row a cumulative
 *   aggregate as of its ts, optionally with the covariate's
 *   `cov_sum, cov_sum_sq, cov_sum_product` (CUPED; all three or none), and
 *   for a ratio metric (required) the denominator's `den_sum, den_sum_sq,
 *   num_den_sum`.
 * An optional `experiment` column keeps only the rows of the polled
 * experiment.
 */
import { open, realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { parse } from "csv-parse";
import { assertWindow, checkArmAggregates, checkSeries, parseNumber, parseTimestamp } from "../boundary-checks";
import { ConfigReader, formatSeconds, show } from "../config-reader";
import type {
  ArmAggregate,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";

const FIELDS = ["path", "series_path", "columns", "speed", "snapshot_every"] as const;
const COLUMN_KEYS = [
  "ts",
  "arm",
  "value",
  "units",
  "sum",
  "sum_sq",
  "cov_sum",
  "cov_sum_sq",
  "cov_sum_product",
  "den_sum",
  "den_sum_sq",
  "num_den_sum",
  "experiment",
] as const;
type ColumnKey = (typeof COLUMN_KEYS)[number];

/** The most snapshots one poll returns; beyond it, `too_many_rows` (set snapshot_every). */
const MAX_CSV_SNAPSHOTS = 100_000;

interface CsvSettings {
  /** As written, for messages. */
  path: string;
  file: string;
  /** The directory files must stay in, after symbolic links are followed. */
  baseDir: string;
  seriesPath: string | undefined;
  seriesFile: string | undefined;
  columns: Readonly<Record<ColumnKey, string>>;
  speed: number | undefined;
  snapshotMs: number | undefined;
  metricKind: "proportion" | "mean" | "ratio";
}

/**
 * Creates a `csv` connector. Paths are relative to `context.baseDir` (the
 * worker's `SOURCE_CSV_DIR`), else the working directory, and may not leave
 * it: no absolute path, no `..` above it, no symbolic link out of it (checked
 * when the file is opened, at each poll).
 *
 * @throws ConnectorError `invalid_config`
 */
export function createCsvConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  const reader = new ConfigReader(config, FIELDS);
  const baseDir = context.baseDir ?? process.cwd();
  const path = reader.string("path", "give the path of the CSV file, relative to the outcome file");
  const seriesPath = reader.optionalString("series_path", "give the path of the series CSV file");
  const columns = readColumns(reader);
  const snapshotSeconds = reader.durationSeconds("snapshot_every");
  return new CsvConnector({
    path,
    baseDir,
    file: insideBase(reader, "path", path, baseDir),
    seriesPath,
    seriesFile: seriesPath === undefined ? undefined : insideBase(reader, "series_path", seriesPath, baseDir),
    columns,
    speed: reader.positiveNumber("speed"),
    snapshotMs: snapshotSeconds === undefined ? undefined : snapshotSeconds * 1000,
    metricKind: context.metricKind,
  });
}

/** `path` resolved in `baseDir`; an absolute path or one that climbs out of it is `invalid_config`. */
function insideBase(reader: ConfigReader, field: string, path: string, baseDir: string): string {
  const file = resolve(baseDir, path);
  const rel = relative(resolve(baseDir), file);
  if (isAbsolute(path) || rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw reader.invalid(
      field,
      `${JSON.stringify(path)} is outside the directory csv files are read from`,
      "give a path relative to the outcome file's directory (the worker's SOURCE_CSV_DIR), without ..",
      { value: path },
    );
  }
  return file;
}

function readColumns(reader: ConfigReader): Record<ColumnKey, string> {
  const columns = Object.fromEntries(COLUMN_KEYS.map((key) => [key, key])) as Record<ColumnKey, string>;
  if (!reader.has("columns")) return columns;
  const raw = reader.raw("columns");
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw reader.invalid("columns", `${show(raw)} is not a mapping`, "write e.g. columns: { ts: day, value: revenue }");
  }
  for (const [key, name] of Object.entries(raw)) {
    if (!(COLUMN_KEYS as readonly string[]).includes(key)) {
      throw reader.invalid(
        `columns.${key}`,
        "is not a column the connector reads",
        `the columns are ${COLUMN_KEYS.join(", ")}`,
      );
    }
    if (typeof name !== "string" || name.trim() === "") {
      throw reader.invalid(
        `columns.${key}`,
        `${show(name)} is not a header name`,
        "write the header of the column in the file",
      );
    }
    columns[key as ColumnKey] = name.trim();
  }
  return columns;
}

class CsvConnector implements SignalConnector {
  readonly type = "csv";

  constructor(private readonly settings: CsvSettings) {}

  describe(): string {
    const s = this.settings;
    return `csv ${s.path}${s.speed === undefined ? "" : ` at ${s.speed}× speed`}${s.snapshotMs === undefined ? "" : `, a snapshot every ${formatSeconds(s.snapshotMs / 1000)}`}${s.seriesPath === undefined ? "" : `, series ${s.seriesPath}`}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const s = this.settings;
    const name = s.path;
    const rows = records(s.file, s.baseDir, name, signal);
    const header = await rows.next();
    if (header.done === true) throw emptyFile(name);
    const at = headerIndex(header.value.record, s.columns);
    const need = (key: ColumnKey): number | undefined => at.get(s.columns[key]);
    const tsCol = need("ts");
    const armCol = need("arm");
    const valueCol = need("value");
    const [unitsCol, sumCol, sumSqCol] = [need("units"), need("sum"), need("sum_sq")];
    const experimentCol = need("experiment");
    // The covariate and a ratio's denominator (aggregate layout only): a column the header lacks stays
    // undefined, so the boundary check names a partial set.
    const pairedCols = (
      ["cov_sum", "cov_sum_sq", "cov_sum_product", "den_sum", "den_sum_sq", "num_den_sum"] as const
    ).map((key) => [key, need(key)] as const);
    const aggregate = unitsCol !== undefined || sumCol !== undefined || sumSqCol !== undefined;
    const missing: string[] = [];
    if (tsCol === undefined) missing.push(s.columns.ts);
    if (armCol === undefined) missing.push(s.columns.arm);
    if (aggregate) {
      if (valueCol !== undefined) {
        await rows.return(undefined);
        throw new ConnectorError(
          "missing_columns",
          `csv ${name}: the header has both ${s.columns.value} and ${[s.columns.units, s.columns.sum, s.columns.sum_sq].join("/")} columns, so the layout is unclear; keep either ${s.columns.value} (one row per unit) or ${s.columns.units}, ${s.columns.sum}, ${s.columns.sum_sq} (cumulative aggregates)`,
          { details: { file: name, header: header.value.record } },
        );
      }
      for (const key of ["units", "sum", "sum_sq"] as const) if (need(key) === undefined) missing.push(s.columns[key]);
      if (s.metricKind === "ratio") {
        for (const key of ["den_sum", "den_sum_sq", "num_den_sum"] as const) {
          if (need(key) === undefined) missing.push(s.columns[key]);
        }
      }
    } else if (valueCol === undefined) {
      missing.push(s.columns.value);
    } else if (s.metricKind === "ratio") {
      await rows.return(undefined);
      throw new ConnectorError(
        "missing_columns",
        `csv ${name}: the metric is a ratio, which needs two values per unit, but the file has one (${s.columns.value}); write cumulative aggregates instead: ${s.columns.ts}, ${s.columns.arm}, ${s.columns.units}, ${s.columns.sum}, ${s.columns.sum_sq}, ${s.columns.den_sum}, ${s.columns.den_sum_sq}, ${s.columns.num_den_sum}`,
        { details: { file: name, missing: [s.columns.den_sum], header: header.value.record } },
      );
    }
    if (missing.length > 0 || tsCol === undefined || armCol === undefined) {
      await rows.return(undefined);
      throw new ConnectorError(
        "missing_columns",
        `csv ${name}: the header (${header.value.record.join(", ")}) has no ${missing.join(", ")} column; a file has either ${s.columns.ts}, ${s.columns.arm}, ${s.columns.value} (one row per unit) or ${s.columns.ts}, ${s.columns.arm}, ${s.columns.units}, ${s.columns.sum}, ${s.columns.sum_sq} (cumulative aggregates); rename the headers or map them with columns:`,
        { details: { file: name, missing, header: header.value.record } },
      );
    }

    const anchor = (window.startedAt ?? window.from).getTime();
    const from = window.from.getTime();
    const to = window.to.getTime();
    const state = new Map<string, { units: number; sum: number; sumSq: number }>();
    const snapshots = new Map<
      string,
      {
        arm: string;
        units: number;
        sum: number;
        sum_sq: number;
        ts: number;
        line: number;
        covariate: Record<string, string>;
      }
    >();
    let previous = Number.NEGATIVE_INFINITY;
    let first: number | undefined;
    /** Aggregate layout: each arm's last row (its file ts and line), so a second row for one (arm, ts) is refused. */
    const lastOfArm = new Map<string, { ts: number; line: number }>();

    for await (const { record, line } of rows) {
      const cell = (col: number): string => record[col] ?? "";
      if (experimentCol !== undefined && cell(experimentCol) !== window.experimentKey) continue;
      const fileTs = csvTime(cell(tsCol), name, line, s.columns.ts);
      if (fileTs < previous) {
        throw new ConnectorError(
          "bad_response",
          `csv ${name}: line ${line}, column ${s.columns.ts}: ${show(cell(tsCol))} is earlier than the row before it; sort the file by ${s.columns.ts}`,
          { details: { file: name, line, column: s.columns.ts, value: cell(tsCol) } },
        );
      }
      previous = fileTs;
      first ??= fileTs;
      const ts = s.speed === undefined ? fileTs : anchor + (fileTs - first) / s.speed;
      if (ts > to) break; // time order: nothing later is in the window; the rest of the file is not read

      const arm = cell(armCol);
      if (!window.arms.includes(arm)) {
        throw new ConnectorError(
          "bad_response",
          `csv ${name}: line ${line}, column ${s.columns.arm}: ${show(arm)} is not an arm of experiment ${JSON.stringify(window.experimentKey)} (its arms: ${window.arms.join(", ")}); fix the arm name, or add an ${s.columns.experiment} column to tell experiments apart`,
          { details: { file: name, line, column: s.columns.arm, value: arm, unknownArms: [arm] } },
        );
      }
      if (valueCol === undefined) {
        // Two cumulative aggregates as of one time cannot both be true; keeping either would hide the conflict.
        const last = lastOfArm.get(arm);
        if (last !== undefined && last.ts === fileTs) {
          throw new ConnectorError(
            "bad_response",
            `csv ${name}: line ${line} (arm ${JSON.stringify(arm)}): a second row for arm ${JSON.stringify(arm)} at ${s.columns.ts} ${show(cell(tsCol))} (the first is line ${last.line}); a file of cumulative aggregates has one row per arm and ${s.columns.ts}${experimentCol === undefined ? "" : ` in each ${s.columns.experiment}`}`,
            { details: { file: name, line, column: s.columns.arm, value: arm, firstLine: last.line } },
          );
        }
        lastOfArm.set(arm, { ts: fileTs, line });
      }
      const current = state.get(arm) ?? { units: 0, sum: 0, sumSq: 0 };
      if (valueCol !== undefined) {
        const v = csvNumber(cell(valueCol), name, line, s.columns.value);
        if (s.metricKind === "proportion" && v !== 0 && v !== 1) {
          throw new ConnectorError(
            "bad_response",
            `csv ${name}: line ${line}, column ${s.columns.value}: ${show(cell(valueCol))} is not 0 or 1; for a proportion each unit converted (1) or not (0)`,
            { details: { file: name, line, column: s.columns.value, value: cell(valueCol) } },
          );
        }
        current.units += 1;
        current.sum += v;
        current.sumSq += v * v;
      } else {
        current.units = csvNumber(cell(unitsCol ?? -1), name, line, s.columns.units);
        current.sum = csvNumber(cell(sumCol ?? -1), name, line, s.columns.sum);
        current.sumSq = csvNumber(cell(sumSqCol ?? -1), name, line, s.columns.sum_sq);
      }
      state.set(arm, current);
      if (ts <= from) continue;
      const at = s.snapshotMs === undefined ? ts : Math.min(Math.ceil(ts / s.snapshotMs) * s.snapshotMs, to);
      const key = `${arm}\u0000${at}`;
      const covariate: Record<string, string> = {};
      if (valueCol === undefined) {
        for (const [key, col] of pairedCols) if (col !== undefined) covariate[key] = cell(col);
      }
      snapshots.set(key, {
        arm,
        units: current.units,
        sum: current.sum,
        sum_sq: current.sumSq,
        ts: at,
        line,
        covariate,
      });
      if (snapshots.size > MAX_CSV_SNAPSHOTS) {
        await rows.return(undefined);
        throw new ConnectorError(
          "too_many_rows",
          `csv ${name}: more than ${MAX_CSV_SNAPSHOTS} snapshots in one window; set snapshot_every (e.g. 1h) to report the cumulative aggregate once per period`,
          { details: { file: name, line, maxRows: MAX_CSV_SNAPSHOTS } },
        );
      }
    }
    const raw = [...snapshots.values()].map(({ covariate, ...r }) => ({
      ...r,
      ...covariate,
      ts: new Date(r.ts),
      location: `line ${r.line}`,
    }));
    return checkArmAggregates(raw, window, s.metricKind, `csv ${name}`);
  }

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.settings;
    if (s.seriesFile === undefined || s.seriesPath === undefined) {
      throw new ConnectorError(
        "unsupported",
        "csv connector: no series_path; add a series_path naming a CSV file with ts and value columns to read the outcome's series",
        { details: { field: "series_path" } },
      );
    }
    const name = s.seriesPath;
    const rows = records(s.seriesFile, s.baseDir, name, signal);
    const header = await rows.next();
    if (header.done === true) throw emptyFile(name);
    const at = headerIndex(header.value.record, s.columns);
    const tsCol = at.get(s.columns.ts);
    const valueCol = at.get(s.columns.value);
    if (tsCol === undefined || valueCol === undefined) {
      await rows.return(undefined);
      const missing = [
        tsCol === undefined ? s.columns.ts : undefined,
        valueCol === undefined ? s.columns.value : undefined,
      ].filter((c): c is string => c !== undefined);
      throw new ConnectorError(
        "missing_columns",
        `csv ${name}: the header (${header.value.record.join(", ")}) has no ${missing.join(", ")} column; a series file has ${s.columns.ts}, ${s.columns.value}`,
        { details: { file: name, missing, header: header.value.record } },
      );
    }
    const from = window.from.getTime();
    const to = window.to.getTime();
    const points: { ts: Date; value: number; location: string }[] = [];
    let previous = Number.NEGATIVE_INFINITY;
    for await (const { record, line } of rows) {
      const tsText = record[tsCol] ?? "";
      const ts = csvTime(tsText, name, line, s.columns.ts);
      if (ts < previous) {
        throw new ConnectorError(
          "bad_response",
          `csv ${name}: line ${line}, column ${s.columns.ts}: ${show(tsText)} is earlier than the row before it; sort the file by ${s.columns.ts}`,
          { details: { file: name, line, column: s.columns.ts, value: tsText } },
        );
      }
      previous = ts;
      if (ts > to) break;
      const value = csvNumber(record[valueCol] ?? "", name, line, s.columns.value);
      if (ts > from) points.push({ ts: new Date(ts), value, location: `line ${line}` });
      if (points.length > MAX_CSV_SNAPSHOTS) {
        await rows.return(undefined);
        throw new ConnectorError("too_many_rows", `csv ${name}: more than ${MAX_CSV_SNAPSHOTS} points in one window`, {
          details: { file: name, line, maxRows: MAX_CSV_SNAPSHOTS },
        });
      }
    }
    return checkSeries(points, window, `csv ${name}`);
  }

  async close(): Promise<void> {}
}

/** Header name → column index (exact match first, then ignoring case). */
function headerIndex(header: readonly string[], columns: Readonly<Record<ColumnKey, string>>): Map<string, number> {
  const index = new Map<string, number>();
  header.forEach((name, i) => {
    if (!index.has(name)) index.set(name, i);
  });
  for (const wanted of Object.values(columns)) {
    if (index.has(wanted)) continue;
    const i = header.findIndex((name) => name.toLowerCase() === wanted.toLowerCase());
    if (i !== -1) index.set(wanted, i);
  }
  return index;
}

/**
 * The records of a CSV file with their line numbers, streamed. Stopping the
 * iteration early closes the file.
 */
async function* records(
  file: string,
  baseDir: string,
  name: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ record: string[]; line: number }, void, undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // A symbolic link inside the directory may point out of it: follow links, then check again.
    const real = await realpath(file);
    const base = await realpath(baseDir);
    const rel = relative(base, real);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new ConnectorError(
        "source_refused",
        `csv ${name}: the file is a link to somewhere outside the directory csv files are read from; copy the file into it`,
        { details: { file: name } },
      );
    }
    handle = await open(real, "r");
  } catch (error) {
    if (error instanceof ConnectorError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new ConnectorError(
      code === "ENOENT" || code === "EISDIR" || code === "EACCES" ? "invalid_config" : "unavailable",
      `csv ${name}: cannot open it (${code === "ENOENT" ? "no such file" : typeof code === "string" ? code : "unreadable"}); the path is relative to the directory csv files are read from (the worker's SOURCE_CSV_DIR)`,
      { details: { file: name, cause: typeof code === "string" ? code : null }, cause: error },
    );
  }
  const input = handle.createReadStream({ highWaterMark: 64 * 1024 });
  const parser = parse({ bom: true, trim: true, skip_empty_lines: true, info: true, relax_quotes: false });
  input.on("error", (error) => parser.destroy(error));
  input.pipe(parser);
  const onAbort = (): void => {
    parser.destroy(new ConnectorError("timeout", `csv ${name}: the poll was aborted`, { details: { aborted: true } }));
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      yield { record: item.record, line: item.info.lines };
    }
  } catch (error) {
    if (error instanceof ConnectorError) throw error;
    const lines = (error as { lines?: unknown }).lines;
    throw new ConnectorError(
      "bad_response",
      `csv ${name}: ${typeof lines === "number" ? `line ${lines}: ` : ""}${error instanceof Error ? error.message : String(error)}; fix the file (every row needs as many fields as the header, quotes closed)`,
      { details: { file: name, line: typeof lines === "number" ? lines : null }, cause: error },
    );
  } finally {
    signal?.removeEventListener("abort", onAbort);
    input.unpipe(parser);
    input.destroy();
    parser.destroy();
    await handle.close().catch(() => {});
  }
}

function emptyFile(name: string): ConnectorError {
  return new ConnectorError("missing_columns", `csv ${name}: the file is empty; it needs a header row (ts, arm, ...)`, {
    details: { file: name, missing: ["ts", "arm"] },
  });
}

/** A time cell: ISO 8601 (a time without zone is UTC), a date, or Unix seconds. In epoch ms. */
function csvTime(text: string, name: string, line: number, column: string): number {
  if (/^\d+(?:\.\d+)?$/u.test(text)) return Number(text) * 1000;
  const date = parseTimestamp(text);
  if (date === undefined) {
    throw new ConnectorError(
      "bad_response",
      `csv ${name}: line ${line}, column ${column}: ${show(text)} is not a time; write ISO 8601 (2026-03-01T12:00:00Z), a date (2026-03-01) or Unix seconds`,
      { details: { file: name, line, column, value: text } },
    );
  }
  return date.getTime();
}

function csvNumber(text: string, name: string, line: number, column: string): number {
  const n = parseNumber(text);
  if (n === undefined) {
    throw new ConnectorError(
      "bad_response",
      `csv ${name}: line ${line}, column ${column}: ${text === "" ? "the cell is empty" : `${show(text)} is not a number`}; write a plain number with a dot for decimals and no thousands separator (e.g. 1234.5)`,
      { details: { file: name, line, column, value: text } },
    );
  }
  return n;
}
