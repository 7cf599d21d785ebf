/**
 * Figure 1: updates per second of `sequentialTest` (one look of the mSPRT) on
 * growing cumulative snapshots, in process.
 *
 * The snapshots are generated before the clock starts: `experiments`
 * experiments of `looks` looks each, every look adding 90–109 units per arm.
 * Each experiment starts with no carry and hands each look's carry to the next,
 * as the analysis does. The loop is warmed up first (JIT), then timed `runs`
 * times; the median run is reported.
 */
import {
  type ArmTotals,
  type MetricKind,
  mixtureVarianceForSample,
  type SequentialCarry,
  sequentialTest,
} from "@outcome-runtime/stats";
import { conversions, hashSeed, normal, uniform } from "./seeded-random";

export interface SequentialFigure {
  readonly kind: MetricKind;
  readonly updates: number;
  readonly experiments: number;
  readonly looks: number;
  readonly runs: number;
  /** Median run. */
  readonly updatesPerSecond: number;
  readonly nsPerUpdate: number;
  /** Fastest and slowest run, updates/s. */
  readonly range: readonly [number, number];
}

/** Cumulative totals, 6 numbers per look: control units, sum, sum_sq, then treatment's. */
function snapshots(kind: MetricKind, experiments: number, looks: number): Float64Array {
  const out = new Float64Array(experiments * looks * 6);
  let k = 0;
  for (let e = 0; e < experiments; e++) {
    const next = uniform(hashSeed(`sequential|${kind}|${e}`));
    const t = [0, 0, 0, 0, 0, 0];
    for (let l = 0; l < looks; l++) {
      for (let arm = 0; arm < 2; arm++) {
        const units = 90 + Math.floor(next() * 20);
        let sum: number;
        let sumSq: number;
        if (kind === "proportion") {
          sum = conversions(next, units, arm === 0 ? 0.1 : 0.102);
          sumSq = sum;
        } else {
          // Values with mean 20 (+1 % in treatment) and sd 8: the batch's sum and a sum of squares
          // consistent with a sample variance near 64, so the totals are always a valid sample.
          const mean = arm === 0 ? 20 : 20.2;
          sum = units * mean + normal(next) * 8 * Math.sqrt(units);
          const s2 = 64 * Math.max(0.5, 1 + 0.1 * normal(next));
          sumSq = (units - 1) * s2 + (sum * sum) / units;
        }
        const base = arm * 3;
        t[base] = (t[base] as number) + units;
        t[base + 1] = (t[base + 1] as number) + sum;
        t[base + 2] = (t[base + 2] as number) + sumSq;
      }
      for (let i = 0; i < 6; i++) out[k++] = t[i] as number;
    }
  }
  return out;
}

/** Run every look of every experiment; returns a checksum so the work cannot be optimised away. */
function pass(data: Float64Array, kind: MetricKind, tau2: number, experiments: number, looks: number): number {
  let checksum = 0;
  let k = 0;
  for (let e = 0; e < experiments; e++) {
    let carry: SequentialCarry | null = null;
    for (let l = 0; l < looks; l++) {
      const control: ArmTotals = {
        units: data[k] as number,
        sum: data[k + 1] as number,
        sumSq: data[k + 2] as number,
      };
      const treatment: ArmTotals = {
        units: data[k + 3] as number,
        sum: data[k + 4] as number,
        sumSq: data[k + 5] as number,
      };
      k += 6;
      const r = sequentialTest(control, treatment, { kind, alpha: 0.05, tau2 }, carry);
      carry = r.carry;
      checksum += r.pValue ?? 0;
    }
  }
  return checksum;
}

/**
 * Measure `sequentialTest` throughput for one metric kind.
 *
 * @param options.updates looks per timed run (experiments × looks)
 */
export function benchSequentialTest(
  kind: MetricKind,
  options: { updates: number; looks?: number; runs?: number; warmupUpdates?: number },
): SequentialFigure {
  const looks = options.looks ?? 1000;
  const experiments = Math.max(1, Math.round(options.updates / looks));
  const updates = experiments * looks;
  const runs = options.runs ?? 3;
  const data = snapshots(kind, experiments, looks);
  // τ² tuned as the analysis does without an expected effect: ten times a min_sample_per_arm of 5,000.
  const sigma2 = kind === "proportion" ? 0.1 * 0.9 : 64;
  const tau2 = mixtureVarianceForSample({ alpha: 0.05, sigma2, plannedUnitsPerArm: 50_000 });

  const warmupExperiments = Math.max(1, Math.round((options.warmupUpdates ?? updates / 5) / looks));
  let sink = pass(data, kind, tau2, Math.min(warmupExperiments, experiments), looks);
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    sink += pass(data, kind, tau2, experiments, looks);
    const ns = Number(process.hrtime.bigint() - start);
    rates.push(updates / (ns / 1e9));
  }
  if (!Number.isFinite(sink)) throw new Error("sequentialTest returned a non-finite p-value");
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] as number;
  return {
    kind,
    updates,
    experiments,
    looks,
    runs,
    updatesPerSecond: median,
    nsPerUpdate: 1e9 / median,
    range: [sorted[0] as number, sorted.at(-1) as number],
  };
}
