/**
 * `duckdb`: signal queries in DuckDB SQL over files a team exports (Parquet,
 * CSV, JSON) or a DuckDB database file, run in embedded DuckDB
 * (`@duckdb/node-api`) in a sandbox (see duckdb-driver.ts). See
 * docs/connectors.md#duckdb.
 *
 * Settings besides the common ones (sql-source.ts):
 * - `base_dir`: the directory the files are in, relative to the runtime's
 *   `context.baseDir` (the worker's SOURCE_CSV_DIR) and inside it (default `.`);
 * - `tables`: name → file or glob under `base_dir` (`events/*.parquet`), each
 *   a view the query reads by name; DuckDB resolves a relative path in
 *   `read_parquet('...')` against the worker's working directory, which the
 *   sandbox refuses, so the query names a table, or builds an absolute path
 *   from `getvariable('base_dir')`;
 * - `database`: a DuckDB file under `base_dir`, opened read-only;
 * - `threads` (default 2), `memory_limit` (default 512MB): per instance;
 * - `remote_urls`: URL prefixes (`s3://bucket/exports/`, `https://host/path/`)
 *   the query may read through DuckDB's httpfs extension, which must be
 *   installed ahead (it is loaded, never installed); none by default.
 */
import { isAbsolute, relative, resolve } from "node:path";
import { type ConfigReader, show } from "../config-reader";
import type { ConnectorContext } from "../connector";
import { parseNamedStatement, renderStatement, type SqlLexicon, type StatementRefusal } from "../sql/named-parameters";
import {
  SQL_QUERY_PARAMETERS,
  SQL_SERIES_PARAMETERS,
  type SqlCommonSettings,
  type SqlSourceDefinition,
} from "../sql/sql-source";
import { DuckdbDriver, type DuckdbTable } from "./duckdb-driver";
import { duckdbParse } from "./duckdb-statement";

/** DuckDB's lexical rules: standard SQL quoting, `$$` strings. */
const DUCKDB_LEXICON: SqlLexicon = Object.freeze({
  identifierQuotes: ['"'],
  stringQuotes: ["'"],
  backslashEscapes: false,
  hashComments: false,
  dashCommentNeedsSpace: false,
  slashComments: false,
  executableComments: false,
  dollarStrings: true,
});

const DEFAULT_THREADS = 2;
const DEFAULT_MEMORY_LIMIT = "512MB";
const MEMORY_LIMIT = /^[1-9][0-9]*(?:\.[0-9]+)?\s*(?:KB|MB|GB|KiB|MiB|GiB)$/u;
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/u;
const REMOTE_URL = /^(?:s3|gs|gcs|r2|https?):\/\/[^/\s'"]+\/[^\s'"]*$/u;

/** File extensions → the DuckDB function that reads them. */
const READERS: readonly [RegExp, DuckdbTable["reader"]][] = [
  [/\.parquet$/iu, "read_parquet"],
  [/\.(?:csv|tsv|txt)(?:\.gz|\.zst)?$/iu, "read_csv"],
  [/\.(?:json|jsonl|ndjson)(?:\.gz|\.zst)?$/iu, "read_json"],
];

/** The `duckdb` SQL source. */
export const DUCKDB_SOURCE: SqlSourceDefinition = Object.freeze({
  type: "duckdb",
  lexicon: DUCKDB_LEXICON,
  fields: ["base_dir", "tables", "database", "threads", "memory_limit", "remote_urls"],
  createDriver(reader: ConfigReader, context: ConnectorContext, _common: SqlCommonSettings): DuckdbDriver {
    const rootDir = resolve(context.baseDir ?? process.cwd());
    const baseDirSetting = reader.optionalString("base_dir", "give the directory of the exported files") ?? ".";
    const baseDir = insideDir(reader, "base_dir", baseDirSetting, rootDir, true, "the directory sources are read from");
    const database = reader.optionalString("database", "give the path of the DuckDB file, relative to base_dir");
    if (database !== undefined) insideDir(reader, "database", database, baseDir, false, "base_dir");
    const memoryLimit = reader.has("memory_limit")
      ? reader.string("memory_limit", "write a size such as 512MB or 2GB")
      : DEFAULT_MEMORY_LIMIT;
    if (!MEMORY_LIMIT.test(memoryLimit)) {
      throw reader.invalid(
        "memory_limit",
        `${show(memoryLimit)} is not a size`,
        "write a size with its unit, such as 512MB or 2GB",
        {
          value: memoryLimit,
        },
      );
    }
    return new DuckdbDriver({
      baseDir,
      rootDir,
      baseDirSetting,
      database,
      tables: readTables(reader, baseDir),
      threads: reader.integer("threads", DEFAULT_THREADS, 1, 16),
      memoryLimit,
      remoteUrls: readRemoteUrls(reader),
    });
  },
  checkStatement(sql: string, field: string): StatementRefusal | null {
    const parsed = parseNamedStatement(
      sql,
      DUCKDB_LEXICON,
      field === "series_query" ? SQL_SERIES_PARAMETERS : SQL_QUERY_PARAMETERS,
    );
    if (!parsed.ok) return parsed;
    for (const use of parsed.statement.uses) {
      if (use.name !== "experiments" && use.name !== "arms") continue;
      if (/\bIN\s*\(\s*$/iu.test(sql.slice(0, use.start)) && /^\s*\)/u.test(sql.slice(use.end))) {
        return {
          problem: `:${use.name} is a list, and DuckDB compares a list inside IN ( ) as one value`,
          fix: `write experiment_key = ANY(:${use.name}) or list_contains(:${use.name}, experiment_key)`,
          offset: use.start,
        };
      }
    }
    // `$name` has the length of `:name`: DuckDB's offsets are the query's.
    return duckdbParse(renderStatement(parsed.statement, (name) => `$${name}`));
  },
});

/** `path` resolved in `dir`; an absolute path or one that climbs out is `invalid_config`. */
function insideDir(
  reader: ConfigReader,
  field: string,
  path: string,
  dir: string,
  self: boolean,
  dirName: string,
): string {
  const resolved = resolve(dir, path);
  const rel = relative(dir, resolved);
  if (isAbsolute(path) || (rel === "" && !self) || rel.startsWith("..") || isAbsolute(rel)) {
    throw reader.invalid(
      field,
      `${JSON.stringify(path)} is outside ${dirName}`,
      `give a path relative to ${dirName}, without ..`,
      { value: path },
    );
  }
  return resolved;
}

function readTables(reader: ConfigReader, baseDir: string): DuckdbTable[] {
  if (!reader.has("tables")) return [];
  const raw = reader.raw("tables");
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw reader.invalid(
      "tables",
      `${show(raw)} is not a mapping`,
      "write e.g. tables: { exposures: exposures/*.parquet, conversions: conversions.csv }",
    );
  }
  return Object.entries(raw).map(([name, path]) => {
    const field = `tables.${name}`;
    if (!TABLE_NAME.test(name)) {
      throw reader.invalid(
        field,
        `${show(name)} is not a table name`,
        "name it with letters, digits and _ (starting with a letter)",
        { value: name },
      );
    }
    if (typeof path !== "string" || path.trim() === "") {
      throw reader.invalid(field, `${show(path)} is not a path`, "write a file or glob under base_dir", {
        value: path,
      });
    }
    if (/['\\]/u.test(path) || /^[a-z0-9]+:\/\//iu.test(path)) {
      throw reader.invalid(
        field,
        `${show(path)} is not a file path`,
        "write a path under base_dir, e.g. events/*.parquet (a remote file is read in the query, from remote_urls)",
        { value: path },
      );
    }
    insideDir(reader, field, path, baseDir, false, "base_dir");
    const readerFn = READERS.find(([pattern]) => pattern.test(path))?.[1];
    if (readerFn === undefined) {
      throw reader.invalid(
        field,
        `${show(path)} is not a Parquet, CSV or JSON file`,
        "name files ending in .parquet, .csv (.csv.gz), .tsv or .json/.ndjson",
        { value: path },
      );
    }
    return { name, path, reader: readerFn };
  });
}

function readRemoteUrls(reader: ConfigReader): string[] {
  if (!reader.has("remote_urls")) return [];
  const raw = reader.raw("remote_urls");
  if (!Array.isArray(raw)) {
    throw reader.invalid(
      "remote_urls",
      `${show(raw)} is not a list`,
      "write a list of URL prefixes, e.g. [s3://analytics-exports/events/]",
      {
        value: raw,
      },
    );
  }
  return raw.map((url, i) => {
    if (typeof url !== "string" || !REMOTE_URL.test(url)) {
      throw reader.invalid(
        `remote_urls[${i}]`,
        `${show(url)} is not an s3://, gs://, r2:// or https:// prefix with a path`,
        "write a bucket and path prefix ending in /, e.g. s3://analytics-exports/events/",
        { value: url },
      );
    }
    return url.endsWith("/") ? url : `${url}/`;
  });
}
