/**
 * `outcome-runtime stats sequential` as a user runs it: a real process, fed a
 * file or standard input. Offline; no API involved.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const example = "docs/examples/sequential-input.json";
const dir = mkdtempSync(join(tmpdir(), "ort-cli-stats-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stack trace line as Node prints them. */
const STACK = /^\s+at .+[(:]\d+:\d+\)?$/m;

const ROW_KEYS = [
  "effect",
  "ci",
  "relative_lift",
  "relative_ci",
  "p_value",
  "fixed_p_value",
  "srm_p_value",
  "srm_sequential_p_value",
  "decision",
];

interface Row {
  effect: number | null;
  ci: [number, number] | null;
  p_value: number | null;
  decision: string;
  warnings?: string[];
  [key: string]: unknown;
}

function cli(args: string[], stdin = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return path;
}

const arm = (units: number, sum: number) => ({ units, sum, sum_sq: sum });

describe("outcome-runtime stats sequential", () => {
  it("reads a file and prints one result per snapshot, exit 0", async () => {
    const result = await cli(["stats", "sequential", "--input", example]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { tau2: number; tau2_source: string; results: Row[] };
    expect(Object.keys(report)).toEqual(["tau2", "tau2_source", "results"]);
    expect(report.tau2).toBeGreaterThan(0);
    expect(report.tau2_source).toContain("tightest at 10000 units per arm (planned_units_per_arm)");
    const input = JSON.parse(readFileSync(join(root, example), "utf8")) as { snapshots: unknown[] };
    expect(report.results).toHaveLength(input.snapshots.length);
    for (const row of report.results) {
      expect(Object.keys(row).filter((k) => k !== "warnings")).toEqual(ROW_KEYS);
      expect(row.p_value).toBeGreaterThanOrEqual(0);
      expect(row.p_value).toBeLessThanOrEqual(1);
    }
    expect(report.results.map((r) => r.decision)).toEqual([
      "continue",
      "continue",
      "continue",
      "treatment_better",
      "treatment_better",
    ]);
  });

  it("runs the three-arm example: a row per snapshot with arms b and c, Holm-adjusted", async () => {
    const result = await cli(["stats", "sequential", "--input", "docs/examples/sequential-3-arms.json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      results: { arms: Record<string, Row & { adjusted_p_value: number }> }[];
    };
    expect(report.results).toHaveLength(5);
    for (const row of report.results) {
      expect(Object.keys(row).filter((k) => k !== "warnings")).toEqual([
        "arms",
        "srm_p_value",
        "srm_sequential_p_value",
      ]);
      expect(Object.keys(row.arms)).toEqual(["b", "c"]);
      for (const arm of Object.values(row.arms)) {
        expect(arm.adjusted_p_value).toBeGreaterThanOrEqual(arm.p_value as number);
      }
    }
    expect(report.results.map((r) => r.arms.b?.decision)).toEqual([
      "continue",
      "continue",
      "continue",
      "treatment_better",
      "treatment_better",
    ]);
    expect(report.results.every((r) => r.arms.c?.decision === "continue")).toBe(true);
  });

  it("runs the CUPED example: the adjusted effect, θ and the variance reduction", async () => {
    const result = await cli(["stats", "sequential", "--input", "docs/examples/sequential-cuped.json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      tau2_source: string;
      results: (Row & { cuped: { theta: number; variance_reduction: number } })[];
    };
    expect(report.tau2_source).toContain("CUPED-adjusted per-unit variance");
    for (const row of report.results) {
      expect(Object.keys(row).filter((k) => k !== "warnings")).toEqual([...ROW_KEYS, "cuped"]);
      expect(row.cuped.theta).toBeGreaterThan(0.7);
      expect(row.cuped.variance_reduction).toBeGreaterThan(0.5);
    }
    expect(report.results.map((r) => r.decision)).toEqual([
      "continue",
      "treatment_better",
      "treatment_better",
      "treatment_better",
      "treatment_better",
    ]);
  });

  it("runs the ratio example", async () => {
    const result = await cli(["stats", "sequential", "--input", "docs/examples/sequential-ratio.json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { tau2_source: string; results: Row[] };
    expect(report.tau2_source).toContain("per-unit variance of the ratio (delta method)");
    for (const row of report.results) expect(Object.keys(row).filter((k) => k !== "warnings")).toEqual(ROW_KEYS);
    expect(report.results.map((r) => r.decision)).toEqual([
      "continue",
      "continue",
      "treatment_better",
      "treatment_better",
      "treatment_better",
    ]);
  });

  it("reads a count summed in floating point (25840.999999999996 conversions) as the whole number", async () => {
    const path = file("float-counts.json", {
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [{ control: { units: 200000, sum: 25840.999999999996 }, treatment: arm(200000, 26000) }],
    });
    const fromFloat = await cli(["stats", "sequential", "--input", path]);
    expect(fromFloat.stderr).toBe("");
    expect(fromFloat.code).toBe(0);
    const whole = file("whole-counts.json", {
      metric: "proportion",
      tau2: 1e-4,
      snapshots: [{ control: arm(200000, 25841), treatment: arm(200000, 26000) }],
    });
    expect(fromFloat.stdout).toBe((await cli(["stats", "sequential", "--input", whole])).stdout);
  });

  it("reads standard input with --input -", async () => {
    const fromFile = await cli(["stats", "sequential", "--input", example]);
    const fromStdin = await cli(["stats", "sequential", "--input", "-"], readFileSync(join(root, example), "utf8"));
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.stdout).toBe(fromFile.stdout);
  });

  it("gives a degenerate snapshot nulls and warnings, exit 0", async () => {
    const path = file("degenerate.json", {
      metric: "proportion",
      snapshots: [
        { control: arm(0, 0), treatment: arm(0, 0) },
        { control: arm(400, 0), treatment: arm(400, 0) },
        { control: arm(1000, 100), treatment: arm(1000, 130) },
      ],
    });
    const result = await cli(["stats", "sequential", "--input", path]);
    expect(result.code).toBe(0);
    const rows = (JSON.parse(result.stdout) as { results: Row[] }).results;
    expect(rows[0]).toMatchObject({ effect: null, ci: null, p_value: null, decision: "continue" });
    expect(rows[0]?.warnings).toEqual(expect.arrayContaining(["control arm is empty", "treatment arm is empty"]));
    expect(rows[1]).toMatchObject({ effect: 0, ci: null, p_value: null, decision: "continue" });
    expect(rows[1]?.warnings?.join("\n")).toContain("zero variance in both arms");
    expect(rows[2]?.p_value).toBeGreaterThan(0);
    expect(result.stdout).not.toMatch(/NaN|Infinity/);
  });

  const malformed: [string, string, RegExp][] = [
    ["not JSON", "this is not json", /:1:2: error\[json_syntax\]: not valid JSON/],
    [
      "missing snapshots",
      JSON.stringify({ metric: "proportion" }),
      /:1:1: error\[missing_field\]: snapshots is missing/,
    ],
    [
      "negative units",
      JSON.stringify({ metric: "proportion", snapshots: [{ control: arm(-5, 0), treatment: arm(10, 1) }] }, null, 2),
      /:6:18: error\[out_of_range\]: snapshots\[0\]\.control\.units is -5; it must be a whole number ≥ 0/,
    ],
    [
      "sum > units for a proportion",
      JSON.stringify({ metric: "proportion", snapshots: [{ control: arm(10, 1), treatment: arm(10, 12) }] }, null, 2),
      /:12:16: error\[out_of_range\]: snapshots\[0\]\.treatment\.sum is 12; for a proportion it is the number of conversions/,
    ],
    [
      "a covariate on one arm only",
      JSON.stringify(
        {
          metric: "mean",
          snapshots: [
            {
              control: { units: 10, sum: 50, sum_sq: 300, covariate: { sum: 40, sum_sq: 200, sum_product: 230 } },
              treatment: { units: 10, sum: 55, sum_sq: 350 },
            },
          ],
        },
        null,
        2,
      ),
      /error\[missing_field\]: snapshots\[0\]\.treatment\.covariate is missing, but snapshots\[0\]\.control has one/,
    ],
    [
      "unknown metric",
      JSON.stringify({ metric: "median", snapshots: [{ control: arm(10, 1), treatment: arm(10, 2) }] }, null, 2),
      /:2:13: error\[invalid_value\]: metric is "median"; it must be "proportion", "mean" or "ratio"/,
    ],
  ];
  for (const [name, content, expected] of malformed) {
    it(`rejects ${name}: exit 1, the field and value named, a hint, no stack trace`, async () => {
      const path = file(`${name.replaceAll(/\W+/g, "-")}.json`, content);
      const result = await cli(["stats", "sequential", "--input", path]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(expected);
      expect(result.stderr.startsWith(path)).toBe(true);
      expect(result.stderr).toContain("hint:");
      expect(result.stderr).not.toMatch(STACK);
    });
  }

  it("names standard input <stdin> in errors", async () => {
    const result = await cli(["stats", "sequential", "--input", "-"], "{");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^<stdin>:1:2: error\[json_syntax\]: not valid JSON: /);
  });

  it("prints errors as JSON with --json", async () => {
    const path = file("json-errors.json", { metric: "mean", snapshots: [] });
    const result = await cli(["--json", "stats", "sequential", "--input", path]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: false,
      errors: [
        expect.objectContaining({ pointer: "/snapshots", code: "too_few_items", message: "snapshots is empty" }),
      ],
    });
  });

  it("reports a missing file plainly", async () => {
    const result = await cli(["stats", "sequential", "--input", join(dir, "absent.json")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`error: ${join(dir, "absent.json")}: no such file\n`);
  });
});
