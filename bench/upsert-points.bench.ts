/**
 * Figure 3: bulk upsert of signal points (`signals.upsertPoints`), points per
 * second, in three passes over the same points on a fresh migrated database:
 *
 * 1. new points (every point inserted);
 * 2. the same points again, identical (a re-poll: nothing written);
 * 3. the same points with 1 % of them revised (those updated, the rest unchanged).
 *
 * Each call upserts one batch of one series (2 arms × batch/2 timestamps), one
 * call at a time on the pool, as a poll does; a series per experiment of the
 * example outcome.
 */
import { signals } from "@outcome-runtime/db";
import type { BenchDatabases } from "./bench-database";
import { activeExampleOutcome, insertRunningExperiments } from "./bench-fixtures";
import { hashSeed, uniform } from "./seeded-random";

export interface UpsertPass {
  readonly pass: "new" | "identical" | "revised";
  readonly points: number;
  readonly calls: number;
  readonly seconds: number;
  readonly pointsPerSecond: number;
  /** What upsertPoints reported, summed over the calls. */
  readonly inserted: number;
  readonly updated: number;
  readonly unchanged: number;
}

export interface UpsertFigure {
  readonly batch: number;
  readonly series: number;
  readonly passes: readonly UpsertPass[];
}

type Point = signals.PointInput;

/** The points of one series: cumulative per arm, one timestamp per minute. */
function seriesPoints(seriesIndex: number, perArm: number, base: number): Point[] {
  const next = uniform(hashSeed(`upsert|${seriesIndex}`));
  const out: Point[] = [];
  const totals = { control: { units: 0, sum: 0 }, treatment: { units: 0, sum: 0 } };
  for (let k = 0; k < perArm; k++) {
    const ts = new Date(base + k * 60_000);
    for (const arm of ["control", "treatment"] as const) {
      const t = totals[arm];
      const units = 400 + Math.floor(next() * 200);
      t.units += units;
      t.sum += Math.round(units * (0.6 + 0.1 * next()));
      out.push({ arm, ts, units: t.units, sum: t.sum, sum_sq: t.sum });
    }
  }
  return out;
}

export async function benchUpsertPoints(
  dbs: BenchDatabases,
  options: { points: number; batch: number; revisedFraction: number },
): Promise<UpsertFigure> {
  const seriesCount = Math.max(1, Math.round(options.points / options.batch));
  const bench = await dbs.clone("upsert", 4);
  try {
    const outcome = await activeExampleOutcome(bench.db);
    const experimentIds = await insertRunningExperiments(bench.db, outcome, seriesCount);
    const allSeries: signals.SeriesRecord[] = [];
    for (const experimentId of experimentIds) {
      allSeries.push(
        await signals.ensureSeries(bench.db, {
          workspaceId: outcome.workspaceId,
          outcomeId: outcome.outcomeId,
          experimentId,
          metric: outcome.spec.signal.metric,
          role: "primary",
          kind: outcome.spec.signal.kind,
        }),
      );
    }
    const base = Date.UTC(2026, 0, 1);
    const batches = allSeries.map((_, i) => seriesPoints(i, Math.floor(options.batch / 2), base));
    const everyNth = Math.max(1, Math.round(1 / options.revisedFraction));
    const revised = batches.map((points) =>
      points.map((p, i) =>
        i % everyNth === 0 ? { ...p, units: p.units + 1, sum: p.sum + 1, sum_sq: p.sum_sq + 1 } : p,
      ),
    );

    const run = async (pass: UpsertPass["pass"], data: Point[][]): Promise<UpsertPass> => {
      let inserted = 0;
      let updated = 0;
      let unchanged = 0;
      let points = 0;
      const start = performance.now();
      for (let i = 0; i < data.length; i++) {
        const batch = data[i] as Point[];
        const report = await signals.upsertPoints(bench.db, allSeries[i] as signals.SeriesRecord, batch, new Date());
        inserted += report.inserted;
        updated += report.updated;
        unchanged += report.unchanged;
        points += batch.length;
      }
      const seconds = (performance.now() - start) / 1000;
      return {
        pass,
        points,
        calls: data.length,
        seconds,
        pointsPerSecond: points / seconds,
        inserted,
        updated,
        unchanged,
      };
    };

    // A short warm-up on a series of its own, so connection setup and plan caching are not timed.
    const warmSeries = await signals.ensureSeries(bench.db, {
      workspaceId: outcome.workspaceId,
      outcomeId: outcome.outcomeId,
      experimentId: null,
      metric: "bench_warmup",
      role: "outcome",
      kind: "proportion",
    });
    for (let i = 0; i < 5; i++) {
      await signals.upsertPoints(bench.db, warmSeries, seriesPoints(-1 - i, 50, base + i * 86_400_000), new Date());
    }

    const passes = [await run("new", batches), await run("identical", batches), await run("revised", revised)];
    return { batch: options.batch, series: seriesCount, passes };
  } finally {
    await bench.drop();
  }
}
