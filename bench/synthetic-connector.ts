/**
 * A synthetic signal source for the poll→analysis benchmark: a
 * `SignalConnector` that computes per-arm cumulative aggregates from a seeded
 * generator, in memory, with no I/O. The worker gets it through
 * `connectorProvider({ create })`, so the benchmark measures the runtime's own
 * work (Postgres, Redis, statistics) and not a source's latency.
 *
 * The source advances one snapshot at a time (`advance`). Snapshot j of an arm
 * adds 400–599 units whose conversions are drawn at the metric's rate from a
 * generator seeded by (experiment key, metric, arm, j), so every poll of the
 * same window returns the same numbers, as a real source would.
 */
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SignalConnector,
} from "@outcome-runtime/connectors";
import type { Db } from "@outcome-runtime/db";
import { connectorProvider, measuredMetrics, sourceAccessFromEnv } from "@outcome-runtime/runtime";
import { conversions, hashSeed, uniform } from "./seeded-random";

/** What the source draws for one metric: its conversion rate and a name that seeds it. */
export interface SyntheticMetric {
  readonly name: string;
  /** Conversion rate of every arm (no true effect: the experiments keep running). */
  readonly rate: number;
}

export class SyntheticSource {
  /** Requests made to the source so far (one per `fetchArmAggregates` or `fetchBatchAggregates` call). */
  requests = 0;
  /**
   * @param options.unitsPerSnapshot units each arm gains per snapshot (default 400–599, drawn); a fixed
   *   number makes a scenario reach `min_sample_per_arm` at a known snapshot.
   * @param options.harmful experiment keys whose treatment converts at `harmFactor` × the rate (the
   *   kill-switch scenario); none by default.
   */
  constructor(
    private readonly options: {
      readonly unitsPerSnapshot?: number;
      readonly harmful?: ReadonlySet<string>;
      readonly harmFactor?: number;
    } = {},
  ) {}
  /** `times[j - 1]` is the as-of time of snapshot j. */
  private readonly times: Date[] = [];

  /** Number of snapshots published so far. */
  get snapshots(): number {
    return this.times.length;
  }

  /**
   * Publish the next snapshot, as of now (strictly after the previous one).
   * Returns its as-of time.
   */
  advance(): Date {
    const last = this.times.at(-1)?.getTime() ?? 0;
    const at = new Date(Math.max(Date.now(), last + 1));
    this.times.push(at);
    return at;
  }

  /**
   * Cumulative aggregates of `arms` for every published snapshot with as-of
   * time in (`from`, `to`], sorted by time, then by the order of `arms`.
   */
  aggregates(metric: SyntheticMetric, window: ExperimentWindow): ArmAggregate[] {
    const out: ArmAggregate[] = [];
    const totals = window.arms.map(() => ({ units: 0, sum: 0 }));
    for (let j = 1; j <= this.times.length; j++) {
      const ts = this.times[j - 1] as Date;
      window.arms.forEach((arm, i) => {
        const next = uniform(hashSeed(`${window.experimentKey}|${metric.name}|${arm}|${j}`));
        const units = this.options.unitsPerSnapshot ?? 400 + Math.floor(next() * 200);
        const total = totals[i] as { units: number; sum: number };
        const harmed = arm !== "control" && this.options.harmful?.has(window.experimentKey) === true;
        const rate = harmed ? Math.min(1, metric.rate * (this.options.harmFactor ?? 1)) : metric.rate;
        total.units += units;
        total.sum += conversions(next, units, rate);
      });
      if (ts.getTime() <= window.from.getTime() || ts.getTime() > window.to.getTime()) continue;
      window.arms.forEach((arm, i) => {
        const total = totals[i] as { units: number; sum: number };
        // A proportion: each unit's value is 0 or 1, so sum_sq = sum.
        out.push({ arm, units: total.units, sum: total.sum, sum_sq: total.sum, ts });
      });
    }
    return out;
  }
}

/**
 * A `create` function for `connectorProvider`: every connector config reads
 * `source`, with the metric `metricOf(config)` picks.
 */
function syntheticConnectors(
  source: SyntheticSource,
  metricOf: (config: ConnectorConfig) => SyntheticMetric,
): (config: ConnectorConfig, context: ConnectorContext) => SignalConnector {
  return (config) => {
    const metric = metricOf(config);
    // A query in the batched form reads many experiments per request, as the postgres connector does.
    const batched = typeof config.query === "string" && config.query.includes(":experiments");
    return {
      type: "synthetic",
      describe: () => `synthetic source (${metric.name}, rate ${metric.rate}, seeded, in memory)`,
      fetchArmAggregates: async (window) => {
        source.requests += 1;
        return source.aggregates(metric, window);
      },
      ...(batched
        ? {
            fetchBatchAggregates: async (window: BatchWindow): Promise<BatchAggregates> => {
              source.requests += 1;
              return new Map(
                window.experiments.map((e) => [
                  e.experimentKey,
                  source.aggregates(metric, { ...e, to: window.to }) as ArmAggregate[],
                ]),
              );
            },
          }
        : {}),
      // The benchmark measures experiments; the outcome's own series is empty.
      fetchOutcomeSeries: async (): Promise<SeriesPoint[]> => [],
      close: async () => {},
    };
  };
}

/**
 * A connector provider on the runtime's database whose every connector reads
 * `source`: each connector configuration of the outcome's `spec` (the signal,
 * each guardrail) is a metric of its own, the signal at its baseline rate
 * (0.5 without one), the others at 2 %. The example outcome names its
 * analytics database; the synthetic source stands for it.
 *
 * @throws Error (from a connector's creation) for a configuration the spec does not hold.
 */
export function syntheticProvider(db: Db, source: SyntheticSource, spec: Parameters<typeof measuredMetrics>[0]) {
  const metrics = new Map<string, SyntheticMetric>(
    measuredMetrics(spec).map((m) => [
      JSON.stringify(m.connector),
      { name: m.metric, rate: m.role === "primary" ? (spec.signal.baseline ?? 0.5) : 0.02 },
    ]),
  );
  return connectorProvider({
    db,
    access: sourceAccessFromEnv({
      OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL: "postgres://synthetic.invalid/bench",
    }),
    create: syntheticConnectors(source, (config) => {
      const metric = metrics.get(JSON.stringify(config));
      if (metric === undefined) throw new Error(`no synthetic metric for connector ${JSON.stringify(config)}`);
      return metric;
    }),
  });
}
