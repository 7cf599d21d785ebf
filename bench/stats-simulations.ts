/**
 * `pnpm tsx bench/stats-simulations.ts`: the large Monte Carlo runs behind
 * the figures of docs/statistics.md ("Validation by simulation"): the SRM
 * rules under continuous monitoring, Holm across three treatments, CUPED's
 * power and A/A rate. The same scenarios as
 * packages/stats/src/monitoring-simulation.test.ts, ten times larger (a few
 * minutes on two cores). Prints one line per figure, each rate with its
 * Clopper–Pearson 95 % interval. `--scale 0.1` runs the test's sizes.
 */
import { parseArgs } from "node:util";
import {
  cupedNullRate,
  cupedPower,
  multiArmFamilyWiseErrors,
  type Rate,
  srmFalseAlarms,
} from "@outcome-runtime/stats/test-support";

const { values } = parseArgs({ options: { scale: { type: "string", default: "1" } }, strict: true });
const scale = Number(values.scale);
if (!(scale > 0)) throw new Error(`--scale must be a number > 0, got ${values.scale}`);
const runs = (n: number) => Math.max(1, Math.round(n * scale));

const alpha = 0.05;
const pct = (x: number) => `${(100 * x).toFixed(3)} %`;
const show = (r: Rate) => `${pct(r.rate)} (${r.hits}/${r.runs}; 95 % CI ${pct(r.interval[0])}–${pct(r.interval[1])})`;
function timed<T>(label: string, f: () => T): T {
  const start = performance.now();
  const result = f();
  console.log(`${label} [${((performance.now() - start) / 1000).toFixed(1)} s]`);
  return result;
}

const srm = timed("SRM A/A", () => srmFalseAlarms({ runs: runs(200_000), polls: 100, batch: 200, seed: 20261211 }));
console.log(`  sequential SRM alone:         ${show(srm.sequential)}`);
console.log(`  chi-square OR sequential:     ${show(srm.chiSquareOrSequential)}`);

const fwer = timed("three treatments, null", () =>
  multiArmFamilyWiseErrors({ runs: runs(40_000), polls: 100, batch: 100, treatments: 3, alpha, seed: 20261212 }),
);
console.log(`  Holm, adjusted p < α:         ${show(fwer.holm)}`);
console.log(`  an interval at α/3 excludes 0: ${show(fwer.intervals)}`);
console.log(`  unadjusted p < α:             ${show(fwer.unadjusted)}`);

const power = timed("CUPED power, ρ = 0.7", () =>
  cupedPower({
    runs: runs(20_000),
    looks: 100,
    horizon: 1.3,
    effect: 0.1,
    rho: 0.7,
    alpha,
    power: 0.8,
    seed: 20261213,
  }),
);
console.log(
  `  80 % power at ${power.sampleAdjusted} per arm adjusted, ${power.sampleUnadjusted} unadjusted: ratio ${power.ratio?.toFixed(3)} (1 − ρ² = 0.51)`,
);
console.log(`  planned samples (planSample): ${power.plannedAdjusted} adjusted, ${power.plannedUnadjusted} unadjusted`);
console.log(`  power at the adjusted plan:   ${show(power.powerAdjustedAtPlan)} adjusted`);
console.log(`                                ${show(power.powerUnadjustedAtAdjustedPlan)} unadjusted`);

const aa = timed("CUPED A/A, ρ = 0.7", () =>
  cupedNullRate({ runs: runs(40_000), polls: 100, batch: 100, rho: 0.7, alpha, seed: 20261214 }),
);
console.log(`  adjusted p < α:               ${show(aa.adjusted)}`);
console.log(`  unadjusted p < α:             ${show(aa.unadjusted)}`);
