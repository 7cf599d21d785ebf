/**
 * What each fault-injection scenario reports: the faults it injected, what was
 * lost and what was duplicated (both must be 0), and its own figures. Each
 * scenario writes one JSON file in the run's report directory; `tests/chaos/run.ts`
 * prints them as a table.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

/** Where this run's reports go: `CHAOS_REPORT_DIR` (set by the runner, one directory per run) or `.tmp/chaos`. */
const REPORT_DIR = process.env.CHAOS_REPORT_DIR ?? fileURLToPath(new URL("../../.tmp/chaos", import.meta.url));

/** `CHAOS_MODE=short` (CI) scales every scenario down; anything else runs the full counts of docs/reliability.md. */
export const SHORT = process.env.CHAOS_MODE === "short";

/** `full` in the full suite, `short` in the shortened one. */
export function scaled(full: number, short: number): number {
  return SHORT ? short : full;
}

/**
 * How much slower a loaded machine may be than the bounds of docs/reliability.md
 * in the shortened run: the test command runs it on a 2-core machine that may
 * be busy with other work, where scheduling, not the product, sets the pace.
 */
const LOADED_MARGIN = 3;

/**
 * A time (or rate) bound that depends on the machine's load. At full counts
 * (`pnpm chaos`, on a machine doing nothing else) the measured value must be
 * within `bound`; in the shortened run of the test command it is reported
 * with the scenario's figures, and only a margin a loaded 2-core machine
 * keeps is asserted (`LOADED_MARGIN` × the bound). Functional invariants
 * (nothing lost, nothing duplicated, re-queued at all) are asserted as they are.
 *
 * @param measured milliseconds (or any unit, the same as `bound`)
 * @param direction `at_most` for a latency, `at_least` for a count or a rate
 */
export function expectWithinLoadBound(
  measured: number,
  bound: number,
  direction: "at_most" | "at_least" = "at_most",
): void {
  const margin = SHORT ? LOADED_MARGIN : 1;
  if (direction === "at_most") expect(measured).toBeLessThanOrEqual(bound * margin);
  else expect(measured).toBeGreaterThanOrEqual(bound / margin);
}

export interface ScenarioReport {
  /** R1, R2, …, as in docs/reliability.md. */
  readonly id: string;
  readonly title: string;
  /** Faults injected (kills, restarts, duplicate adds, terminated backends, …). */
  readonly faults: number;
  /** What the fault is, e.g. "SIGKILL of the worker". */
  readonly fault: string;
  /** Items lost (points, jobs, transitions, emails …); must be 0. */
  readonly lost: number;
  /** Items done twice; must be 0. */
  readonly duplicated: number;
  /** The scenario's own figures, e.g. `{ "recovery p50 ms": 5123 }`. */
  readonly figures: Readonly<Record<string, number | string>>;
  readonly mode: "short" | "full";
  readonly ms: number;
}

/** Write the scenario's report (`.tmp/chaos/<id>.json`), for the runner's table. */
export function report(entry: Omit<ScenarioReport, "mode">): void {
  mkdirSync(REPORT_DIR, { recursive: true });
  const full: ScenarioReport = { ...entry, mode: SHORT ? "short" : "full" };
  writeFileSync(join(REPORT_DIR, `${entry.id}.json`), `${JSON.stringify(full, null, 2)}\n`);
  console.log(`[chaos] ${entry.id} ${entry.title}: ${JSON.stringify(full)}`);
}

/** Median and maximum of a list of numbers (0 and 0 when empty). */
export function medianMax(values: readonly number[]): { median: number; max: number } {
  if (values.length === 0) return { median: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, max: sorted.at(-1)! };
}
