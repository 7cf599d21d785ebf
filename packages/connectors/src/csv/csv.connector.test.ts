import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { rejectionOf } from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorContext, ExperimentWindow } from "../connector";
import { ConnectorError } from "../connector-error";
import { createConnector } from "../create-connector";

const fixtures = fileURLToPath(new URL("../../fixtures/csv/", import.meta.url));
const proportion: ConnectorContext = { metricKind: "proportion", baseDir: fixtures };
const mean: ConnectorContext = { ...proportion, metricKind: "mean" };

const window = (from: string, to: string, extra: Partial<ExperimentWindow> = {}): ExperimentWindow => ({
  experimentKey: "exp-1",
  arms: ["control", "treatment"],
  from: new Date(from),
  to: new Date(to),
  ...extra,
});

/** The ConnectorError a call rejects with. */
const failure = (promise: Promise<unknown>): Promise<ConnectorError> => rejectionOf(promise, ConnectorError);

const at = (iso: string): Date => new Date(iso);

describe("csv connector: unit-level rows", () => {
  const connector = createConnector({ type: "csv", path: "units.csv" }, proportion);

  it("counts units and accumulates sum and sum_sq, with a cumulative snapshot at each ts in (from, to]", async () => {
    const rows = await connector.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-02T12:00:00Z"));
    expect(rows).toEqual([
      { arm: "control", units: 1, sum: 0, sum_sq: 0, ts: at("2026-03-01T09:00:00Z") },
      { arm: "treatment", units: 1, sum: 1, sum_sq: 1, ts: at("2026-03-01T09:00:00Z") },
      { arm: "control", units: 3, sum: 1, sum_sq: 1, ts: at("2026-03-01T10:00:00Z") },
      { arm: "treatment", units: 3, sum: 2, sum_sq: 2, ts: at("2026-03-02T08:00:00Z") },
    ]);
  });

  it("accumulates from the start of the file but reports only snapshots after from", async () => {
    const rows = await connector.fetchArmAggregates(window("2026-03-01T09:30:00Z", "2026-03-03T12:00:00Z"));
    expect(rows).toEqual([
      { arm: "control", units: 3, sum: 1, sum_sq: 1, ts: at("2026-03-01T10:00:00Z") },
      { arm: "treatment", units: 3, sum: 2, sum_sq: 2, ts: at("2026-03-02T08:00:00Z") },
      { arm: "control", units: 4, sum: 2, sum_sq: 2, ts: at("2026-03-03T08:00:00Z") },
    ]);
  });

  it("with snapshot_every, reports the aggregate once per period (the last one as of the window end)", async () => {
    const daily = createConnector({ type: "csv", path: "units.csv", snapshot_every: "1d" }, proportion);
    const rows = await daily.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-02T12:00:00Z"));
    expect(rows).toEqual([
      { arm: "control", units: 3, sum: 1, sum_sq: 1, ts: at("2026-03-02T00:00:00Z") },
      { arm: "treatment", units: 1, sum: 1, sum_sq: 1, ts: at("2026-03-02T00:00:00Z") },
      { arm: "treatment", units: 3, sum: 2, sum_sq: 2, ts: at("2026-03-02T12:00:00Z") },
    ]);
  });

  it("returns nothing for a window before the data", async () => {
    expect(await connector.fetchArmAggregates(window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"))).toEqual([]);
  });

  it("reads the outcome series from series_path", async () => {
    const withSeries = createConnector({ type: "replay", path: "units.csv", series_path: "series.csv" }, proportion);
    const points = await withSeries.fetchOutcomeSeries({
      from: at("2026-02-28T12:00:00Z"),
      to: at("2026-03-02T00:00:00Z"),
    });
    expect(points).toEqual([
      { ts: at("2026-03-01T00:00:00Z"), value: 0.68 },
      { ts: at("2026-03-02T00:00:00Z"), value: 0.66 },
    ]);
    await expect(connector.fetchOutcomeSeries({ from: at("2026-03-01"), to: at("2026-03-02") })).rejects.toMatchObject({
      code: "unsupported",
    });
  });

  it("reads a file with a byte order mark, CRLF line ends and a blank line", async () => {
    const bom = createConnector({ type: "csv", path: "bom-crlf.csv" }, proportion);
    const rows = await bom.fetchArmAggregates(window("2026-02-28T00:00:00Z", "2026-03-02T00:00:00Z"));
    expect(rows.map((r) => [r.arm, r.units, r.sum])).toEqual([
      ["control", 1, 1],
      ["treatment", 1, 0],
    ]);
  });
});

describe("csv connector: other layouts", () => {
  it("reads cumulative aggregate rows as they are", async () => {
    const connector = createConnector({ type: "csv", path: "aggregates.csv" }, proportion);
    const rows = await connector.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"));
    expect(rows).toEqual([
      { arm: "control", units: 210, sum: 19, sum_sq: 19, ts: at("2026-03-02T00:00:00Z") },
      { arm: "treatment", units: 205, sum: 27, sum_sq: 27, ts: at("2026-03-02T00:00:00Z") },
      { arm: "control", units: 320, sum: 30, sum_sq: 30, ts: at("2026-03-03T00:00:00Z") },
      { arm: "treatment", units: 311, sum: 41, sum_sq: 41, ts: at("2026-03-03T00:00:00Z") },
    ]);
  });

  it("reads the optional covariate columns of an aggregate file, all three or none", async () => {
    const dir = await mkdtemp(join(tmpdir(), "csv-covariate-"));
    try {
      const header = "ts,arm,units,sum,sum_sq,cov_sum,cov_sum_sq,cov_sum_product";
      await writeFile(
        join(dir, "cuped.csv"),
        `${header}\n2026-03-02T00:00:00Z,control,2,1,1,3,5,2\n2026-03-02T00:00:00Z,treatment,2,1,1,3,5,2\n`,
      );
      await writeFile(
        join(dir, "partial.csv"),
        "ts,arm,units,sum,sum_sq,cov_sum,cov_sum_sq\n2026-03-02T00:00:00Z,control,2,1,1,3,5\n",
      );
      const context = { ...proportion, baseDir: dir };
      const rows = await createConnector({ type: "csv", path: "cuped.csv" }, context).fetchArmAggregates(
        window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"),
      );
      expect(rows.map((r) => r.covariate)).toEqual([
        { sum: 3, sumSq: 5, sumProduct: 2 },
        { sum: 3, sumSq: 5, sumProduct: 2 },
      ]);
      const partial = await failure(
        createConnector({ type: "csv", path: "partial.csv" }, context).fetchArmAggregates(
          window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"),
        ),
      );
      expect(partial.message).toContain("csv partial.csv: line 2");
      expect(partial.message).toContain("no cov_sum_product");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads a ratio's denominator columns from an aggregate file, and refuses a unit-level file for a ratio", async () => {
    const dir = await mkdtemp(join(tmpdir(), "csv-ratio-"));
    try {
      await writeFile(
        join(dir, "ratio.csv"),
        "ts,arm,units,sum,sum_sq,den_sum,den_sum_sq,num_den_sum\n" +
          "2026-03-02T00:00:00Z,control,2,8,34,3,5,13\n2026-03-02T00:00:00Z,treatment,2,8,34,3,5,13\n",
      );
      await writeFile(
        join(dir, "no-denominator.csv"),
        "ts,arm,units,sum,sum_sq\n2026-03-02T00:00:00Z,control,2,8,34\n",
      );
      await writeFile(join(dir, "units.csv"), "ts,arm,value\n2026-03-02T00:00:00Z,control,4\n");
      const context: ConnectorContext = { metricKind: "ratio", baseDir: dir };
      const w = window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z");
      const rows = await createConnector({ type: "csv", path: "ratio.csv" }, context).fetchArmAggregates(w);
      expect(rows.map((r) => r.denominator)).toEqual([
        { sum: 3, sumSq: 5, sumProduct: 13 },
        { sum: 3, sumSq: 5, sumProduct: 13 },
      ]);
      const missing = await failure(
        createConnector({ type: "csv", path: "no-denominator.csv" }, context).fetchArmAggregates(w),
      );
      expect(missing.code).toBe("missing_columns");
      expect(missing.message).toContain("has no den_sum, den_sum_sq, num_den_sum column");
      const unitLevel = await failure(
        createConnector({ type: "csv", path: "units.csv" }, context).fetchArmAggregates(w),
      );
      expect(unitLevel.message).toContain("the metric is a ratio, which needs two values per unit");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("maps other header names with columns, for a mean", async () => {
    const connector = createConnector(
      { type: "csv", path: "order-values.csv", columns: { ts: "day", arm: "variant", value: "revenue" } },
      mean,
    );
    const rows = await connector.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"));
    expect(rows).toEqual([
      { arm: "control", units: 1, sum: 10.5, sum_sq: 110.25, ts: at("2026-03-01T09:00:00Z") },
      { arm: "treatment", units: 1, sum: 20, sum_sq: 400, ts: at("2026-03-01T09:30:00Z") },
      { arm: "control", units: 2, sum: 15, sum_sq: 130.5, ts: at("2026-03-01T11:00:00Z") },
      { arm: "treatment", units: 2, sum: 20, sum_sq: 400, ts: at("2026-03-02T11:00:00Z") },
    ]);
  });

  it("keeps only the rows of the polled experiment when the file has an experiment column", async () => {
    const connector = createConnector({ type: "csv", path: "experiments.csv" }, proportion);
    const rows = await connector.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"));
    expect(rows.map((r) => [r.arm, r.units, r.sum])).toEqual([
      ["control", 1, 1],
      ["treatment", 1, 0],
    ]);
  });

  it("refuses two aggregate rows for one arm at one ts, rather than keeping either, in the polled experiment only", async () => {
    const dir = await mkdtemp(join(tmpdir(), "csv-duplicate-"));
    try {
      await writeFile(
        join(dir, "twice.csv"),
        [
          "ts,experiment,arm,units,sum,sum_sq",
          "2026-03-02T00:00:00Z,exp-1,control,10,1,1",
          "2026-03-02T00:00:00Z,exp-2,control,5,1,1",
          "2026-03-02T00:00:00Z,exp-1,control,12,2,2",
          "2026-03-02T00:00:00Z,exp-2,treatment,6,2,2",
          "2026-03-03T00:00:00Z,exp-2,control,7,1,1",
          "",
        ].join("\n"),
      );
      const read = (experimentKey: string) =>
        createConnector({ type: "csv", path: "twice.csv" }, { ...proportion, baseDir: dir }).fetchArmAggregates(
          window("2026-03-01T00:00:00Z", "2026-03-04T00:00:00Z", { experimentKey }),
        );
      const error = await failure(read("exp-1"));
      expect(error.code).toBe("bad_response");
      expect(error.message).toBe(
        'csv twice.csv: line 4 (arm "control"): a second row for arm "control" at ts "2026-03-02T00:00:00Z" (the first is line 2); a file of cumulative aggregates has one row per arm and ts in each experiment',
      );
      expect(error.details).toMatchObject({ file: "twice.csv", line: 4, firstLine: 2, value: "control" });
      // The other experiment's rows, one per arm and ts (the same arm again at a later ts), read as before.
      expect((await read("exp-2")).map((r) => [r.arm, r.units, r.ts?.toISOString()])).toEqual([
        ["control", 5, "2026-03-02T00:00:00.000Z"],
        ["treatment", 6, "2026-03-02T00:00:00.000Z"],
        ["control", 7, "2026-03-03T00:00:00.000Z"],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("replays the file's timeline from the experiment's start at `speed` times real time", async () => {
    // One file day per second: day 1 at the start, day 2 one second later, day 3 (two seconds) not yet.
    const connector = createConnector({ type: "replay", path: "aggregates.csv", speed: 86_400 }, proportion);
    const startedAt = at("2026-06-01T00:00:00Z");
    const rows = await connector.fetchArmAggregates(
      window("2026-05-31T23:59:59Z", "2026-06-01T00:00:01.500Z", { startedAt }),
    );
    expect(rows.map((r) => [r.arm, r.units, r.ts?.toISOString()])).toEqual([
      ["control", 100, "2026-06-01T00:00:00.000Z"],
      ["treatment", 98, "2026-06-01T00:00:00.000Z"],
      ["control", 210, "2026-06-01T00:00:01.000Z"],
      ["treatment", 205, "2026-06-01T00:00:01.000Z"],
    ]);
  });
});

describe("csv connector: malformed files", () => {
  const fetch = (path: string, context = proportion) =>
    createConnector({ type: "csv", path }, context).fetchArmAggregates(
      window("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"),
    );

  it("names the line, the column and the value of a bad number", async () => {
    const error = await failure(fetch("bad-number.csv"));
    expect(error.code).toBe("bad_response");
    expect(error.message).toBe(
      'csv bad-number.csv: line 4, column sum: "1,9" is not a number; write a plain number with a dot for decimals and no thousands separator (e.g. 1234.5)',
    );
    expect(error.details).toMatchObject({ file: "bad-number.csv", line: 4, column: "sum", value: "1,9" });
  });

  it("names what is missing from the header, and both layouts", async () => {
    const error = await failure(fetch("missing-columns.csv"));
    expect(error.code).toBe("missing_columns");
    expect(error.message).toContain("the header (ts, arm, conversions) has no value column");
    expect(error.message).toContain("ts, arm, units, sum, sum_sq (cumulative aggregates)");
    expect((await failure(fetch("empty.csv"))).code).toBe("missing_columns");
  });

  it("refuses a file out of time order, a ragged row, an unknown arm and a non-binary proportion", async () => {
    expect((await failure(fetch("unsorted.csv"))).message).toContain(
      'line 3, column ts: "2026-03-01T00:00:00Z" is earlier than the row before it; sort the file by ts',
    );
    const ragged = await failure(fetch("ragged.csv"));
    expect(ragged.code).toBe("bad_response");
    expect(ragged.details.line).toBe(3);
    const unknown = await failure(fetch("unknown-arm.csv"));
    expect(unknown.message).toContain('line 3, column arm: "Treatment" is not an arm of experiment "exp-1"');
    expect((await failure(fetch("not-binary.csv"))).message).toContain('line 2, column value: "2" is not 0 or 1');
    expect((await fetch("not-binary.csv", mean)).map((r) => r.sum)).toEqual([2]);
  });

  it("says which file is missing, relative to its directory", async () => {
    const error = await failure(fetch("nowhere.csv"));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain("csv nowhere.csv: cannot open it (no such file); the path is relative to");
    expect(error.message).not.toContain(fixtures);
  });
});

describe("csv connector: streaming", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "csv-connector-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stops reading at the first row past the window end", async () => {
    const file = join(dir, "tail.csv");
    await writeFile(
      file,
      "ts,arm,value\n2026-03-01T00:00:00Z,control,1\n2026-03-05T00:00:00Z,control,1\nnot,a,row,at all\n",
    );
    const connector = createConnector({ type: "csv", path: "tail.csv" }, { ...proportion, baseDir: dir });
    const rows = await connector.fetchArmAggregates(window("2026-02-01T00:00:00Z", "2026-03-02T00:00:00Z"));
    expect(rows.map((r) => r.units)).toEqual([1]);
    // A window that reaches the broken line reads it, and says where it is.
    const error = await failure(connector.fetchArmAggregates(window("2026-02-01T00:00:00Z", "2026-03-06T00:00:00Z")));
    expect(error.details.line).toBe(4);
  });

  it("reads a large unit-level file row by row", async () => {
    const file = join(dir, "large.csv");
    const lines = ["ts,arm,value"];
    const start = Date.parse("2026-03-01T00:00:00Z");
    for (let i = 0; i < 60_000; i++) {
      lines.push(
        `${new Date(start + i * 1000).toISOString()},${i % 2 === 0 ? "control" : "treatment"},${i % 7 === 0 ? 1 : 0}`,
      );
    }
    await writeFile(file, `${lines.join("\n")}\n`);
    const connector = createConnector(
      { type: "csv", path: basename(file), snapshot_every: "1h" },
      { ...proportion, baseDir: dir },
    );
    const rows = await connector.fetchArmAggregates(window("2026-02-28T00:00:00Z", "2026-03-04T00:00:00Z"));
    const last = (arm: string) => rows.filter((r) => r.arm === arm).at(-1);
    expect(last("control")?.units).toBe(30_000);
    expect(last("treatment")?.units).toBe(30_000);
    expect((last("control")?.sum ?? 0) + (last("treatment")?.sum ?? 0)).toBe(Math.ceil(60_000 / 7));
    // Hour ends from 00:00 (the first control row falls on it) to 17:00 (the last row is at 16:39:59):
    // 18 snapshots of control, 17 of treatment (its first row is at 00:00:01).
    expect(rows).toHaveLength(35);
  }, 30_000);

  it("stops when the poll is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const connector = createConnector({ type: "csv", path: "units.csv" }, proportion);
    const error = await failure(
      connector.fetchArmAggregates(window("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"), controller.signal),
    );
    expect(error.code).toBe("timeout");
  });

  it("refuses a link inside its directory that points out of it, and never names the worker's paths", async () => {
    const sources = join(dir, "sources");
    await mkdir(sources, { recursive: true });
    await writeFile(join(dir, "outside.csv"), "ts,arm,value\n2026-03-01T00:00:00Z,control,1\n");
    await symlink(join(dir, "outside.csv"), join(sources, "linked.csv"));
    const linked = createConnector({ type: "csv", path: "linked.csv" }, { ...proportion, baseDir: sources });
    const error = await failure(linked.fetchArmAggregates(window("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z")));
    expect(error.code).toBe("source_refused");
    expect(error.message).toContain("outside the directory csv files are read from");
    const missing = createConnector({ type: "csv", path: "missing.csv" }, { ...proportion, baseDir: sources });
    const notFound = await failure(missing.fetchArmAggregates(window("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z")));
    expect(notFound.message).toContain("cannot open it (no such file)");
    expect(notFound.message).not.toContain(sources);
  });
});
