import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import {
  checkConnectorSettings,
  connectorTypes,
  createConnector,
  type SignalConnector,
} from "@outcome-runtime/connectors";
import { connectorPointers, parseOutcome } from "@outcome-runtime/spec";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AsosCheckpoint, type AsosComparison, SIM_EPOCH, simTime } from "./asos";
import { createDuckdbAppFiles, DUCKDB_TABLES, type DuckdbApp, duckdbConnectorSql } from "./duckdb-app";
import { demoOutcomeYaml } from "./outcome";

const DAY_MS = 86_400_000;

/** A checkpoint whose totals grow with `day` (metric 1: sum = sum_sq, as in the dataset). */
function checkpoint(day: number, metric: number): AsosCheckpoint {
  const arm = (units: number, rate: number) => {
    const sum = metric === 1 ? Math.round(units * rate) : units * rate * 10.25;
    return { units, sum, sum_sq: metric === 1 ? sum : sum * 12.5 };
  };
  const units = 1000 + day * 400;
  return { day, control: arm(units, 0.1), treatment: arm(units + 7, 0.11) };
}

function comparison(key: string, days: Record<number, number[]>): AsosComparison {
  const metrics = Object.fromEntries(
    Object.entries(days).map(([metric, list]) => [Number(metric), list.map((d) => checkpoint(d, Number(metric)))]),
  );
  const all = Object.values(days).flat();
  return {
    key,
    experimentId: key.split("-")[1] ?? key,
    variantId: 1,
    firstDay: Math.min(...all),
    lastDay: Math.max(...all),
    weights: { control: 0.5, treatment: 0.5 },
    metrics,
  };
}

const COMPARISONS = [
  comparison("asos-aaa111-v1", { 1: [0, 0.5, 1, 1.5, 2], 2: [0.5, 1.5] }),
  comparison("asos-bbb222-v1", { 1: [1, 3.5], 2: [1, 3.5] }),
];

/** What `connectorSql` returns on Postgres: checkpoints with from < ts <= min(clock, to), by ts then arm. */
function expectedRows(c: AsosComparison, metric: number, clockDay: number, from: Date, to: Date) {
  const clock = simTime(clockDay).getTime();
  return (c.metrics[metric] ?? [])
    .filter((p) => {
      const ts = simTime(p.day).getTime();
      return ts > from.getTime() && ts <= clock && ts <= to.getTime();
    })
    .flatMap((p) => (["control", "treatment"] as const).map((arm) => ({ arm, ...p[arm], ts: simTime(p.day) })));
}

describe("createDuckdbAppFiles", () => {
  let dir: string;
  let app: DuckdbApp;
  let reader: DuckDBInstance;
  const connectors: SignalConnector[] = [];

  beforeAll(async () => {
    dir = join(mkdtempSync(join(tmpdir(), "ort-demo-duckdb-")), "app");
    app = await createDuckdbAppFiles(dir, COMPARISONS);
    reader = await DuckDBInstance.create(":memory:");
  });

  afterEach(async () => {
    await Promise.all(connectors.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await app.close();
    reader.closeSync();
    rmSync(join(dir, ".."), { recursive: true, force: true });
  });

  async function rowsOf(sql: string): Promise<unknown[][]> {
    const connection = await reader.connect();
    try {
      return (await connection.runAndReadAll(sql)).getRows();
    } finally {
      connection.closeSync();
    }
  }

  it("writes the checkpoints and the clock as Parquet, and nothing else", () => {
    expect(readdirSync(dir).sort()).toEqual(Object.values(DUCKDB_TABLES).sort());
  });

  it("types the checkpoints as the Postgres table does, one row per checkpoint and arm", async () => {
    const file = join(dir, DUCKDB_TABLES.asos_checkpoint);
    const columns = await rowsOf(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${file}')`);
    expect(columns).toEqual([
      ["experiment_key", "VARCHAR"],
      ["metric_id", "SMALLINT"],
      ["ts", "TIMESTAMP WITH TIME ZONE"],
      ["arm", "VARCHAR"],
      ["day", "DOUBLE"],
      ["units", "BIGINT"],
      ["sum", "DOUBLE"],
      ["sum_sq", "DOUBLE"],
    ]);
    const checkpoints = COMPARISONS.flatMap((c) => Object.values(c.metrics).flat()).length;
    expect(await rowsOf(`SELECT count(*) FROM '${file}'`)).toEqual([[BigInt(2 * checkpoints)]]);
    const [row] = await rowsOf(
      `SELECT epoch_ms(ts), units, sum, sum_sq FROM '${file}'
        WHERE experiment_key = 'asos-aaa111-v1' AND metric_id = 2 AND arm = 'treatment' AND day = 1.5`,
    );
    const expected = checkpoint(1.5, 2).treatment;
    expect(row).toEqual([BigInt(simTime(1.5).getTime()), BigInt(expected.units), expected.sum, expected.sum_sq]);
  });

  it("starts the clock on day −1 and moves it by replacing the file", async () => {
    const clock = join(dir, DUCKDB_TABLES.demo_clock);
    const read = async () => Number((await rowsOf(`SELECT epoch_ms(sim_now) FROM '${clock}'`))[0]?.[0]);
    expect(await rowsOf(`SELECT typeof(sim_now), count(*) OVER () FROM '${clock}'`)).toEqual([
      ["TIMESTAMP WITH TIME ZONE", 1n],
    ]);
    expect(await read()).toBe(SIM_EPOCH.getTime() - DAY_MS);
    await app.setClock(2.5);
    expect(await read()).toBe(simTime(2.5).getTime());
    expect(readdirSync(dir).sort()).toEqual(Object.values(DUCKDB_TABLES).sort());
    await expect(app.setClock(Number.NaN)).rejects.toThrow(/finite/);
  });

  it("never lets a reader see a clock file half written", async () => {
    const clock = join(dir, DUCKDB_TABLES.demo_clock);
    await app.setClock(0);
    let writing = true;
    const seen: number[] = [];
    const writer = (async () => {
      for (let day = 0.5; day <= 30; day += 0.5) await app.setClock(day);
      writing = false;
    })();
    // Every read succeeds (a torn Parquet file fails to open) and the clock never goes back.
    while (writing) seen.push(Number((await rowsOf(`SELECT epoch_ms(sim_now) FROM '${clock}'`))[0]?.[0]));
    await writer;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.every((t) => Number.isFinite(t))).toBe(true);
  });

  it("gives the newest checkpoint of metric 1 of each experiment", async () => {
    expect(await app.newestCheckpoints()).toEqual(
      new Map([
        ["asos-aaa111-v1", simTime(2).getTime()],
        ["asos-bbb222-v1", simTime(3.5).getTime()],
      ]),
    );
  });

  it("is read by the duckdb connector of the demo's outcome as connectorSql reads Postgres", async () => {
    // The worker's SOURCE_CSV_DIR is the directory of the files (scripts/demo.ts); the CLI checks offline.
    const parsed = parseOutcome(
      demoOutcomeYaml({ id: "asos-metric-1", pm: "pm@x.example", alpha: 0.05, source: "duckdb" }),
      {
        connectors: connectorTypes(),
        checkConnector: (config, kind) =>
          checkConnectorSettings(config as { type: string } & Record<string, unknown>, kind, { baseDir: dir }),
      },
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const [signal, guardrail] = connectorPointers(parsed.spec).map(({ kind, config }) => {
      const connector = createConnector(config as { type: string } & Record<string, unknown>, {
        metricKind: kind,
        baseDir: dir,
      });
      connectors.push(connector);
      return connector;
    });
    if (signal === undefined || guardrail === undefined) throw new Error("expected two connectors");
    const window = (experimentKey: string, fromDay: number | null, toDay: number) => ({
      experimentKey,
      arms: ["control", "treatment"],
      from: fromDay === null ? new Date(0) : simTime(fromDay),
      to: simTime(toDay),
    });
    const cases: {
      key: string;
      connector: SignalConnector;
      metric: number;
      clock: number;
      from: number | null;
      to: number;
    }[] = [
      { key: "asos-aaa111-v1", connector: signal, metric: 1, clock: 1, from: null, to: 100 },
      { key: "asos-aaa111-v1", connector: signal, metric: 1, clock: 10, from: 0.5, to: 1.5 },
      { key: "asos-aaa111-v1", connector: guardrail, metric: 2, clock: 10, from: null, to: 100 },
      { key: "asos-bbb222-v1", connector: signal, metric: 1, clock: 3, from: null, to: 100 },
      { key: "asos-bbb222-v1", connector: guardrail, metric: 2, clock: 3.5, from: 1, to: 100 },
      { key: "asos-aaa111-v1", connector: signal, metric: 1, clock: -1, from: null, to: 100 },
    ];
    for (const c of cases) {
      await app.setClock(c.clock);
      const w = window(c.key, c.from, c.to);
      const got = await c.connector.fetchArmAggregates(w);
      const comparisonOf = COMPARISONS.find((x) => x.key === c.key) as AsosComparison;
      expect(got, JSON.stringify(c)).toEqual(expectedRows(comparisonOf, c.metric, c.clock, w.from, w.to));
    }
  });
});

describe("duckdbConnectorSql", () => {
  it("reads the metric's checkpoints up to the clock, in time order, with no :: cast", () => {
    const sql = duckdbConnectorSql(2);
    expect(sql).toContain("c.metric_id = 2");
    expect(sql).toContain("(SELECT sim_now FROM demo_clock)");
    expect(sql).toMatch(/ORDER BY c\.ts, c\.arm$/);
    expect(sql).not.toContain("::");
  });

  it("refuses a metric the dataset does not have", () => {
    expect(() => duckdbConnectorSql(0)).toThrow(/metric_id/);
    expect(() => duckdbConnectorSql(1.5)).toThrow(/metric_id/);
  });
});
