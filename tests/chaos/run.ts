/**
 * The fault-injection suite, in one command:
 *
 *   pnpm chaos              every scenario at its full count (docs/reliability.md)
 *   pnpm chaos --short      the shortened run CI does (CHAOS_MODE=short; without the soak, R18)
 *   pnpm chaos r01 r07      only the scenario files whose names contain these
 *   --json <file>           also write vitest's JSON report there (scripts/test.sh counts its tests)
 *
 * Runs the vitest project `chaos` (tests/chaos/*.chaos.ts, one file at a time,
 * against real processes, Postgres and Redis), then prints per scenario the
 * faults injected and what was lost or duplicated. Exits 1 when a scenario
 * failed, reported nothing, or lost or duplicated anything.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ScenarioReport } from "./report";

const root = fileURLToPath(new URL("../..", import.meta.url));
const args = process.argv.slice(2);
const short = args.includes("--short");
const jsonAt = args.indexOf("--json");
const jsonFile = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
if (jsonAt >= 0 && (jsonFile === undefined || jsonFile.startsWith("--"))) {
  process.stderr.write("--json needs a file name, e.g. --json .tmp/vitest-chaos-report.json\n");
  process.exit(2);
}
const filters = args.filter((a, i) => !a.startsWith("--") && !(jsonAt >= 0 && i === jsonAt + 1));

/** Scenarios whose point is their length: a shortened soak proves nothing, so `--short` leaves them out. */
const FULL_ONLY = ["r18-soak.chaos.ts"];

const files = readdirSync(join(root, "tests/chaos"))
  .filter((f) => f.endsWith(".chaos.ts"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .filter((f) => !(short && FULL_ONLY.includes(f)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`no scenario file matches ${filters.join(", ")} (tests/chaos/*.chaos.ts)\n`);
  process.exit(2);
}

// One report directory per run: two runs at once (or a run after a crashed one) never mix their reports.
const REPORT_DIR = join(root, ".tmp/chaos", `run-${process.pid}-${Date.now()}`);
rmSync(REPORT_DIR, { recursive: true, force: true });
const started = Date.now();
const run = spawnSync(
  process.execPath,
  [
    join(root, "node_modules/vitest/vitest.mjs"),
    "run",
    "--project",
    "chaos",
    ...(jsonFile === undefined ? [] : ["--reporter=default", "--reporter=json", `--outputFile.json=${jsonFile}`]),
    ...files.map((f) => `tests/chaos/${f}`),
  ],
  {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, CHAOS_MODE: short ? "short" : "full", CHAOS_REPORT_DIR: REPORT_DIR },
  },
);

const reports: ScenarioReport[] = existsSync(REPORT_DIR)
  ? readdirSync(REPORT_DIR)
      .filter((f) => f.endsWith(".json"))
      .map((f) => JSON.parse(readFileSync(join(REPORT_DIR, f), "utf8")) as ScenarioReport)
      // By number, then letter: R1, R1b, R2, …, R10, R10b (Number("10b") is NaN: a suffixed id was left anywhere).
      .sort(
        (a, b) => Number.parseInt(a.id.slice(1), 10) - Number.parseInt(b.id.slice(1), 10) || a.id.localeCompare(b.id),
      )
  : [];

const rows = reports.map((r) => [
  r.id,
  r.title,
  r.fault,
  String(r.faults),
  String(r.lost),
  String(r.duplicated),
  Object.entries(r.figures)
    .map(([k, v]) => `${k}: ${v}`)
    .join("; "),
]);
const header = ["id", "scenario", "fault", "faults", "lost", "duplicated", "figures"];
const widths = header.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === cells.length - 1 ? c : c.slice(0, widths[i]).padEnd(widths[i]!))).join(" | ");
console.log(`\nfault injection (${short ? "short" : "full"}), ${Math.round((Date.now() - started) / 1000)} s`);
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
for (const r of rows) console.log(line(r));

const bad = reports.filter((r) => r.lost !== 0 || r.duplicated !== 0);
const total = reports.reduce((n, r) => n + r.faults, 0);
console.log(
  `\n${reports.length} scenarios, ${total} faults injected, ${reports.reduce((n, r) => n + r.lost, 0)} lost, ` +
    `${reports.reduce((n, r) => n + r.duplicated, 0)} duplicated${run.status === 0 ? "" : "; some scenario failed (see above)"}`,
);
console.log(`reports: ${REPORT_DIR}`);
if (run.status !== 0 || bad.length > 0 || reports.length === 0) process.exit(1);
